// Proposer: the glue between one node's VFS and its Raft instance.
//
// It implements the VFS's ReplicationHooks (writers on their own threads ask
// for their frames to be replicated and wait) and the FSM's observer (the loop
// thread tells waiting writers that their command was applied). It also owns
// the node's notion of "may write": this node is the leader and a barrier of
// the current term has been applied, so everything earlier leaders committed
// is visible before any new transaction starts.
//
// Threads: attach(), poll(), shutdown() and the FsmObserver methods run on the
// loop thread; the ReplicationHooks methods run on any other thread and only
// talk to the loop through post().
#pragma once

#include "raft_api.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "command.h"
#include "fsm.h"
#include "status.h"
#include "vfs.h"

namespace sqraft {

class Proposer final : public ReplicationHooks, public FsmObserver {
 public:
  struct Options {
    std::string vfs_name;  // unique in the process
    uint32_t page_size = 4096;
    size_t spill_threshold_bytes = size_t{8} << 20;
    // Disk mode: the directory of the database files (Vfs::Options::dir);
    // empty: databases in memory.
    std::string db_dir;
    // The leader asks for a Checkpoint once a database's WAL has this many frames.
    uint32_t checkpoint_threshold_frames = 1000;
    Metrics* metrics = nullptr;  // counters to bump (may be null; must outlive the Proposer)
    // A proposal whose leader lost leadership may still commit under the
    // next one: its writer waits this long for the node to learn the
    // outcome before giving up with kErrOutcomeUnknown.
    unsigned commit_outcome_timeout_ms = 5000;
  };

  static Result<std::unique_ptr<Proposer>> create(Options options);
  ~Proposer() override;

  Vfs& vfs() { return *vfs_; }
  Fsm& fsm() { return *fsm_; }
  struct raft_fsm* raft_fsm() { return fsm_->raft_fsm(); }

  // Binds the Raft instance (after raft_init) and a function that makes the
  // loop thread call poll() soon. Loop thread.
  void attach(struct raft* raft, std::function<void()> wake_loop);
  // Runs posted work, deferred VFS work, and tracks leadership. Loop thread.
  void poll();
  // Fails every waiting writer and refuses new work. Loop thread.
  void shutdown();
  // Proposes a Checkpoint of `db` (the leader does so on its own once a WAL
  // passes checkpoint_threshold_frames). Loop thread.
  void checkpoint(const std::string& db);

  // Set when the FSM found this node's state diverged; the node must stop.
  bool diverged() const { return diverged_.load(); }
  Status divergence() const;
  // Invoked (loop thread) when the node must stop.
  void on_fatal(std::function<void(const Status&)> cb) { on_fatal_ = std::move(cb); }

  // Work is waiting for the loop thread (posted and not yet run, or proposals
  // not yet decided). Loop thread.
  bool busy() const;
  bool leader_ready() const { return writes_allowed_.load(); }

  // Confirming leadership for reads the lease does not cover (loop thread):
  // request_confirmation() asks for a round of the shared read barrier that
  // starts after this call and returns its ticket (0 if this node does not
  // lead); confirmation(ticket) says whether that round (or a later one)
  // committed, failed, or is still running. A committed round proves that a
  // majority still followed this leader after the ticket was taken.
  enum class Confirmation { kPending, kConfirmed, kFailed };
  uint64_t request_confirmation();
  Confirmation confirmation(uint64_t ticket) const;

  // ReplicationHooks (any thread but the loop's).
  bool writes_allowed() override { return writes_allowed_.load(); }
  Status replicate(const FramesBatch& batch) override;
  Status create_database(const std::string& name, const PagePtr& page1) override;
  void undo(const std::string& db, uint64_t txn_id) override;
  void wake() override;
  std::string leader_address() override;
  bool leading() override { return leading_.load(); }
  uint64_t applied_index() override { return applied_index_.load(); }
  Status wait_applied(uint64_t index, std::chrono::milliseconds timeout) override;
  Status read_barrier(std::chrono::milliseconds timeout) override;

  // FsmObserver (loop thread).
  bool is_own(uint64_t proposal_id) override;
  void restored() override;
  void applied(uint64_t proposal_id, const Status& status) override;
  void diverged(const Status& status) override;
  void committed(const std::string& db) override;

  // Testing: tamper with the checksum of this node's next commit (to prove
  // followers catch divergence).
  void corrupt_next_checksum_for_testing() { corrupt_next_checksum_ = true; }

 private:
  // One waiting writer (or reader, for a barrier). A proposal whose leader
  // lost leadership goes into limbo: its writer then waits only until the
  // limbo deadline, and once it gave up (abandoned) the entry, should it
  // still commit, is applied as someone else's.
  struct Waiter {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    bool owned = false;      // the FSM applies the entry as the writer's own
    bool abandoned = false;  // the writer stopped waiting
    bool limbo = false;
    std::chrono::steady_clock::time_point limbo_deadline;
    Status status;
    void complete(const Status& s);
    Status wait();
    // As wait(), but gives up after `timeout` with SQLITE_BUSY.
    Status wait_for(std::chrono::milliseconds timeout, const char* what);
    void enter_limbo(std::chrono::steady_clock::time_point deadline);
    // Loop thread, when the FSM applies the entry: true if the writer still
    // waits for it (then it no longer gives up).
    bool claim();
  };
  struct Limbo {
    raft_index index = 0;
    std::shared_ptr<Waiter> waiter;
  };
  struct Proposal {
    struct raft_apply req;
    Proposer* self = nullptr;
    uint64_t id = 0;
    std::string checkpoint_db;  // a Checkpoint proposal: clear the in-flight mark
    std::shared_ptr<Waiter> waiter;  // null: nobody waits
  };

  explicit Proposer(Options options);
  Status propose_and_wait(Command cmd);
  void propose_async(Command cmd);
  std::unique_ptr<Proposal> make_proposal(Command& cmd, std::string* encoded);
  // Queues `fn` for the loop thread; false once the proposer is stopping.
  bool post(std::function<void()> fn);
  void submit(std::unique_ptr<Proposal> p, std::string encoded);  // loop thread
  static void apply_cb(struct raft_apply* req, int status, void* result);
  static void barrier_cb(struct raft_barrier* req, int status);
  void barrier_done(raft_term term, int status);
  void update_leadership();
  void track_applied();  // loop thread
  void start_read_barrier();  // loop thread
  static void read_barrier_cb(struct raft_barrier* req, int status);
  void track_leader();  // loop thread
  bool on_loop_thread() const { return std::this_thread::get_id() == loop_thread_; }

  Options options_;
  std::unique_ptr<Vfs> vfs_;
  std::unique_ptr<Fsm> fsm_;
  struct raft* raft_ = nullptr;
  std::function<void()> wake_loop_;
  std::thread::id loop_thread_;
  std::function<void(const Status&)> on_fatal_;

  mutable std::mutex post_mu_;
  std::vector<std::function<void()>> posted_;
  std::atomic<bool> vfs_work_{false};
  std::atomic<uint64_t> next_proposal_id_;
  std::atomic<bool> writes_allowed_{false};
  std::atomic<bool> leading_{false};  // raft_state() == RAFT_LEADER, as the loop last saw it
  // The leader as the loop thread last saw it, for other threads.
  std::mutex leader_mu_;
  raft_id leader_id_ = 0;        // loop thread
  std::string leader_address_;  // guarded by leader_mu_
  std::atomic<bool> diverged_{false};
  std::atomic<bool> stopping_{false};
  Status divergence_;  // loop thread writes, then sets diverged_
  std::atomic<bool> corrupt_next_checksum_{false};

  // Loop thread only.
  std::unordered_map<uint64_t, Proposal*> inflight_;
  // Proposals whose leadership was lost, by id: decided once this node has
  // applied their index (committed if the FSM applied them as ours).
  std::unordered_map<uint64_t, Limbo> limbo_;
  std::set<std::string> checkpoints_inflight_;
  raft_term ready_term_ = 0;
  raft_term barrier_term_ = 0;
  // Readers waiting for the next read barrier, and those the barrier in
  // flight will answer (one barrier serves every reader that asked before it
  // was proposed).
  std::vector<std::shared_ptr<Waiter>> read_waiting_;
  std::vector<std::shared_ptr<Waiter>> read_inflight_;
  bool read_barrier_inflight_ = false;
  // raft_barrier requests libraft has not called back yet (loop thread).
  std::set<void*> outstanding_barriers_;
  // Rounds of the read barrier: started, last committed, last failed; and
  // whether a ticket waits for the next round.
  uint64_t barrier_round_ = 0;
  uint64_t confirmed_round_ = 0;
  uint64_t failed_round_ = 0;
  bool confirm_wanted_ = false;

  // The applied index as the loop thread last saw it, for other threads.
  std::atomic<uint64_t> applied_index_{0};
  std::mutex applied_mu_;
  std::condition_variable applied_cv_;
};

}  // namespace sqraft
