// FuzzNode: one sqraft node for the fuzz targets — a single-voter Raft on
// libraft's deterministic in-memory fixture, the node's Proposer (FSM, VFS),
// and the production gateway (Clients, Session, DbWriter, the reader and
// writer pools) on a libuv loop that the calling thread runs.
//
// It is test/support/fixture_gateway's GatewayContext cut down to one node,
// with what fuzzing needs and the integration fixture does not offer: the
// raw client end of a connection (any bytes, not only what Client sends),
// short SQL limits (a hostile statement stops within a fraction of a second,
// so an input stays bounded in time), a way to tell that the node has gone
// quiet, and no doctest (a failed setup aborts, which libFuzzer reports).
//
// Thread-safety: the thread that made it runs the loop (step*); post() and
// the pools' completions may come from any thread. One FuzzNode at a time
// per process (libraft's fixture io has no user pointer of its own: the
// async_work hook finds the node through a static).
#pragma once

#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

extern "C" {
#include <raft/fixture.h>
}

#include "clients.h"
#include "context.h"
#include "proposer.h"
#include "thread_pool.h"
#include "writer_pool.h"

namespace sqraft::fuzz {

// Prints `what` and aborts: a broken invariant in a fuzz target is a crash
// libFuzzer records with the input that caused it.
[[noreturn]] void die(const std::string& what);
inline void require(bool ok, const char* what) {
  if (!ok) die(what);
}

// Logs only critical lines (a divergence): fuzz inputs are mostly malformed
// on purpose, and warning about each would slow the run to a crawl.
void quiet_logs();

class FuzzNode final : public GatewayContext {
 public:
  // A started node that leads and accepts writes (dies if it cannot).
  FuzzNode();
  ~FuzzNode() override;
  FuzzNode(const FuzzNode&) = delete;
  FuzzNode& operator=(const FuzzNode&) = delete;

  // A new client connection: returns the client's end of a socketpair
  // (blocking, owned by the caller); the session on the other end starts on
  // the next step.
  int connect();
  // One iteration of the node's loop: posted work, libuv, the sessions'
  // bookkeeping, the proposer, snapshot work, one fixture event. Returns
  // how many posted functions ran.
  size_t step();
  // Steps until `done()` holds; false if `wall_ms` passed first.
  bool step_until(const std::function<bool()>& done, unsigned wall_ms);
  // Steps until the node has been quiet for a few iterations, or `wall_ms`
  // passed. Quiet: nothing posted, no Raft entry waiting to be applied, no
  // proposal in flight, no other thread using the CPU, and `progress()`
  // (called once per iteration, e.g. reading the client's socket) false.
  void step_until_quiet(unsigned wall_ms, const std::function<bool()>& progress);

  size_t sessions() const { return clients_ ? clients_->sessions() : 0; }
  Proposer& proposer() { return *proposer_; }

  // GatewayContext.
  bool post(std::function<void()> fn) override;
  Metrics& metrics() override { return metrics_; }
  struct raft* raft() override { return raft_; }
  bool leader_ready() const override;
  // No lease on the fixture: every statement confirms leadership with a
  // round of Raft, the path a leader outside its lease takes.
  bool read_lease_held() override { return false; }
  uint64_t request_confirmation() override { return proposer_->request_confirmation(); }
  Confirmation confirmation(uint64_t ticket) override { return proposer_->confirmation(ticket); }
  Vfs& vfs() override { return proposer_->vfs(); }
  ThreadPool& readers() override { return readers_; }
  DbWriter& writer(const std::string& db) override { return clients_->writer(db); }
  Status may_open(const std::string&) override { return Status::Ok(); }
  const std::atomic<bool>* sql_stopping() const override { return &stopping_; }
  size_t max_message_bytes() const override { return kMaxMessageBytes; }
  const SqlLimits& sql_limits() const override { return limits_; }
  uint64_t failure_domain() const override { return 0; }
  uint64_t weight() const override { return weight_; }
  void set_weight(uint64_t w) override { weight_ = w; }
  void reap(Session* s) override { clients_->reap(s); }
  void park(uint64_t session) override { clients_->park(session); }
  void hand_to_raft(uint64_t, const std::string&, uv_stream_t* stream) override;

  static constexpr size_t kMaxMessageBytes = size_t{1} << 20;

 private:
  struct Work {
    struct raft_io_async_work* req;
    raft_io_async_work_cb cb;
  };
  static int async_work(struct raft_io* io, struct raft_io_async_work* req, raft_io_async_work_cb cb);
  static SqlLimits fuzz_limits();
  DbWriter::Options writer_options() const;
  size_t run_posted();
  bool raft_busy() const;
  void wake();
  // Waits up to `timeout_us` for post() or wake(); true if one came.
  bool wait_for_wakeup(unsigned timeout_us);
  void stop();

  // Constant after construction.
  const SqlLimits limits_ = fuzz_limits();

  // Loop thread only.
  uv_loop_t loop_{};
  Metrics metrics_;  // before the proposer, which counts into it
  struct raft_fixture f_{};
  struct raft* raft_ = nullptr;
  std::unique_ptr<Proposer> proposer_;
  uint64_t weight_ = 0;
  std::atomic<bool> stopping_{false};
  ThreadPool readers_{2};
  WriterPool writer_pool_{2};
  std::unique_ptr<Clients> clients_;  // after the pools it uses; freed by stop()
  std::vector<Work> work_;            // snapshot encodings queued by libraft

  // State below is protected by mu_.
  mutable std::mutex mu_;
  std::condition_variable posted_cv_;
  std::vector<std::function<void()>> posted_;
  uint64_t wakeups_ = 0;
  bool stopped_ = false;
};

}  // namespace sqraft::fuzz
