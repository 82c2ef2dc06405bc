// Internals of Node; sessions see it only as their GatewayContext. Loop
// thread unless noted.
#pragma once

#include <uv.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "clients.h"
#include "context.h"
#include "db_writer.h"
#include "dir_lock.h"
#include "metrics.h"
#include "metrics_page.h"
#include "metrics_server.h"
#include "node.h"
#include "raft_api.h"
#include "proposer.h"
#include "raft_io_shim.h"
#include "thread_pool.h"
#include "transport.h"
#include "writer_pool.h"

namespace sqraft {

class Session;

class NodeImpl final : public GatewayContext {
 public:
  explicit NodeImpl(NodeOptions options);
  ~NodeImpl() override;

  // ---- GatewayContext: what sessions use (see src/gateway/context.h) ----
  bool post(std::function<void()> fn) override;
  Metrics& metrics() override { return metrics_; }
  struct raft* raft() override { return &raft_; }
  bool leader_ready() const override;
  bool read_lease_held() override;
  uint64_t request_confirmation() override { return proposer_->request_confirmation(); }
  Confirmation confirmation(uint64_t ticket) override { return proposer_->confirmation(ticket); }
  bool unsafe_leader_reads() const override { return unsafe_leader_reads_; }
  Vfs& vfs() override { return proposer_->vfs(); }
  ThreadPool& readers() override { return *readers_; }
  DbWriter& writer(const std::string& db) override;
  Status may_open(const std::string& db) override;
  const std::atomic<bool>* sql_stopping() const override { return &sql_stopping_; }
  size_t max_message_bytes() const override { return options_.max_message_bytes; }
  const SqlLimits& sql_limits() const override { return options_.sql; }
  uint64_t failure_domain() const override { return failure_domain_.load(); }
  uint64_t weight() const override { return weight_.load(); }
  void set_weight(uint64_t w) override { weight_ = w; }
  void reap(Session* s) override { clients_->reap(s); }
  void park(uint64_t session) override { clients_->park(session); }
  void hand_to_raft(uint64_t peer_id, const std::string& address, uv_stream_t* stream) override {
    transport_->accept(peer_id, address, stream);
  }

  Proposer& proposer() { return *proposer_; }
  const NodeOptions& options() const { return options_; }
  // The /metrics page: state read on the loop thread (waits up to 2 s).
  // Any thread but the loop's.
  Result<std::string> metrics_page();

  // ---- lifecycle (caller's thread) ----
  Status start();
  Status stop();
  Status handover();
  std::string describe_state();
  std::string leader_address();
  bool has_database(const std::string& db);
  std::atomic<bool> leader{false};

 private:
  friend class Node;
  Status open_dir();
  Status init_raft();
  Status bootstrap();
  DbWriter::Options writer_options() const;
  void loop_main();
  // Stops the node from inside (divergence, a failed Raft write): the
  // loop shuts down at its next turn; options_.on_fatal is told why.
  void stop_itself(const Status& why);
  // Disk mode: a thread that records the databases' applied state every
  // persist_interval_ms (Vfs::persist_all), and once more at stop.
  void start_persister();
  void stop_persister();
  void begin_shutdown();
  void on_poll();
  static void on_connection(uv_stream_t* server, int status);
  void accept_connection(uv_stream_t* server, int status);

  NodeOptions options_;
  std::unique_ptr<DirLock> dir_lock_;  // held from start until stop
  Metrics metrics_;  // before everything that counts into it
  std::atomic<uint64_t> failure_domain_{0};
  std::atomic<uint64_t> weight_{0};

  uv_loop_t loop_{};
  uv_async_t async_{};
  uv_prepare_t prepare_{};
  uv_timer_t timer_{};
  std::thread thread_;
  std::unique_ptr<Proposer> proposer_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<RaftIoShim> io_shim_;  // what libraft drives: io_ with libraft 0.15's fixes
  uint64_t lease_ms_ = 0;                // the read lease: below the election timeout
  bool unsafe_leader_reads_ = false;     // test-only: SQRAFT_TEST_UNSAFE_LEADER_READS
  struct raft_io io_ {};
  struct raft raft_ {};
  bool io_ready_ = false;
  bool raft_ready_ = false;
  uv_stream_t* listener_ = nullptr;
  std::string socket_file_;  // a unix socket path we listen on (removed on stop)
  std::unique_ptr<ThreadPool> readers_;
  std::unique_ptr<WriterPool> writer_pool_;
  std::atomic<bool> sql_stopping_{false};
  std::unique_ptr<MetricsServer> metrics_server_;
  NodeGauges gauges();  // loop thread
  std::unique_ptr<Clients> clients_;  // sessions and writers (after the pools they use)

  std::thread persister_;
  std::mutex persist_mu_;
  std::condition_variable persist_cv_;
  bool persist_stop_ = false;

  std::mutex post_mu_;
  // Completions for the loop thread. Bounded by the work that posts them:
  // one per job in flight (a reader or writer job per session, at most
  // --max-connections), one per proposal waiting to be applied.
  std::vector<std::function<void()>> posted_;
  bool loop_gone_ = false;
  bool stop_requested_ = false;
  bool shutting_down_ = false;

  enum class State { kCreated, kRunning, kStopped };
  std::mutex state_mu_;
  State state_ = State::kCreated;

  // Start-up timing: the log index to reach, and when start began.
  raft_index catch_up_index_ = 0;
  std::chrono::steady_clock::time_point started_at_;
  bool caught_up_logged_ = false;
};

}  // namespace sqraft
