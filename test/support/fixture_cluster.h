// FixtureCluster: n sqraft replicas on libraft's deterministic in-memory
// cluster (raft/fixture.h), driven by the test thread, which plays every
// node's loop thread. SQL runs on each node's Executor threads, so commits
// really block on Raft while the test thread steps the cluster.
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

extern "C" {
#include <raft/fixture.h>
}

#include "support/executor.h"
#include "support/fixture_gateway.h"
#include "proposer.h"
#include "support/sql.h"

namespace sqraft::test {

class FixtureCluster {
 public:
  struct Options {
    unsigned n = 3;
    size_t spill_threshold_bytes = size_t{8} << 20;
    uint32_t checkpoint_threshold_frames = 1000;
    unsigned commit_outcome_timeout_ms = 5000;
    unsigned snapshot_threshold = 0;  // 0: libraft's default
    unsigned snapshot_trailing = 0;
  };

  // A job running on some node's executor.
  struct Job {
    std::atomic<bool> done{false};
    Result<ExecResult> result{Status::Internal("not finished")};
  };

  explicit FixtureCluster(Options options);
  ~FixtureCluster();
  FixtureCluster(const FixtureCluster&) = delete;
  FixtureCluster& operator=(const FixtureCluster&) = delete;

  unsigned size() const { return unsigned(proposers_.size()); }
  Proposer& proposer(unsigned i) { return *proposers_[i]; }
  Vfs& vfs(unsigned i) { return proposers_[i]->vfs(); }
  struct raft* raft(unsigned i) { return raft_fixture_get(&f_, i); }
  struct raft_fixture* fixture() { return &f_; }

  // One round: let every node run posted work, then one fixture event.
  void step();
  // Steps (waiting for writer threads when nothing is in flight) until
  // `cond` holds; false after `max_ms` of cluster time or 60 s of real time.
  bool step_until(const std::function<bool()>& cond, unsigned max_ms = 30000);
  void step_for(unsigned ms);

  // Index of a leader that accepts writes (stepping until there is one), or
  // size() if none appears.
  unsigned wait_leader(unsigned max_ms = 30000);
  // Steps until every live node has applied everything the leader applied.
  bool settle(unsigned max_ms = 30000);

  std::shared_ptr<Job> submit(unsigned node, const std::string& db, std::vector<std::string> stmts,
                              Executor::Mode mode = Executor::Mode::kAutocommit);
  Result<ExecResult> exec(unsigned node, const std::string& db, std::vector<std::string> stmts,
                          Executor::Mode mode = Executor::Mode::kAutocommit);
  Result<ExecResult> exec(unsigned node, const std::string& db, const std::string& sql) {
    return exec(node, db, std::vector<std::string>{sql});
  }

  // The production path: a real client connected to node i's gateway (a
  // Session on the cluster's loop, the node's DbWriters). Any thread; use
  // the client on a thread other than the stepping one (start_client,
  // run_client).
  std::unique_ptr<Client> client(unsigned node);
  // Runs `fn` (client calls) on another thread; step the cluster until the
  // future is ready.
  template <typename Fn>
  auto start_client(Fn fn) -> std::future<decltype(fn())> {
    return std::async(std::launch::async, [this, fn]() mutable {
      struct Wake {
        FixtureCluster* c;
        ~Wake() { c->wake(); }
      } wake{this};
      return fn();
    });
  }
  // start_client, stepping until it returns.
  template <typename Fn>
  auto run_client(Fn fn) -> decltype(fn()) {
    auto f = start_client(std::move(fn));
    wait_for(f);
    return f.get();
  }
  // Steps until `f` is ready (10 minutes of real time at most).
  template <typename T>
  void wait_for(std::future<T>& f) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(10);
    auto ready = [&] { return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready; };
    while (!step_until(ready, 600000)) {
      REQUIRE_MESSAGE(std::chrono::steady_clock::now() < give_up, "client calls did not finish");
    }
  }

  // Reads node i's copy directly (no Raft): rows as "a|b" lines.
  std::string query(unsigned i, const std::string& db, const std::string& sql);
  uint64_t checksum(unsigned i, const std::string& db);
  // Every live node: same rows for `sql`, same state hash, integrity ok.
  // Returns a description of the first difference, or "".
  std::string compare(const std::string& db, const std::string& sql);

  bool alive(unsigned i) { return raft_fixture_alive(&f_, i); }
  void kill(unsigned i) { raft_fixture_kill(&f_, i); }
  void revive(unsigned i) { raft_fixture_revive(&f_, i); }
  void isolate(unsigned i);  // drop everything to and from i
  void heal(unsigned i);

 private:
  struct AsyncWork {
    struct raft_io_async_work* req;
    raft_io_async_work_cb cb;
    std::future<int> result;
  };
  static int async_work(struct raft_io* io, struct raft_io_async_work* req, raft_io_async_work_cb cb);
  void poll_all();
  void wake();

  Options options_;
  struct raft_fixture f_ {};
  std::vector<std::unique_ptr<Proposer>> proposers_;
  std::vector<std::unique_ptr<Executor>> executors_;
  uv_loop_t loop_{};  // the gateways' sessions
  std::vector<std::unique_ptr<FixtureGateway>> gateways_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t wakeups_ = 0;
  int running_jobs_ = 0;  // submitted, callback not yet run
  std::vector<AsyncWork> work_;  // snapshots being encoded on other threads
};

}  // namespace sqraft::test
