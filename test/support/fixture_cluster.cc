#include "support/fixture_cluster.h"

#include <doctest/doctest.h>

#include <atomic>
#include <map>

namespace sqraft::test {

namespace {
std::atomic<int> g_cluster_seq{0};
// raft owns raft_io.data; find the cluster of an io through this table.
std::mutex g_io_mu;
std::map<struct raft_io*, FixtureCluster*> g_io_owner;
}

FixtureCluster::FixtureCluster(Options options) : options_(options) {
  REQUIRE(raft_fixture_initialize(&f_) == 0);
  const int seq = g_cluster_seq++;
  for (unsigned i = 0; i < options_.n; i++) {
    Proposer::Options ro;
    ro.vfs_name = "fixture-" + std::to_string(seq) + "-node-" + std::to_string(i + 1);
    ro.spill_threshold_bytes = options_.spill_threshold_bytes;
    ro.checkpoint_threshold_frames = options_.checkpoint_threshold_frames;
    ro.commit_outcome_timeout_ms = options_.commit_outcome_timeout_ms;
    auto r = Proposer::create(ro);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    proposers_.push_back(std::move(r).value());
    // libraft 0.15's in-memory I/O has no async_work, so raft_init would
    // refuse an FSM with snapshot_async. Grow without it, then give the I/O an
    // async_work that really runs the work on another thread.
    struct raft_fsm* fsm = proposers_.back()->raft_fsm();
    auto snapshot_async = fsm->snapshot_async;
    fsm->snapshot_async = nullptr;
    REQUIRE(raft_fixture_grow(&f_, fsm) == 0);
    fsm->snapshot_async = snapshot_async;
    f_.servers[i].io.version = 2;
    f_.servers[i].io.async_work = async_work;
    {
      std::lock_guard lk(g_io_mu);
      g_io_owner[&f_.servers[i].io] = this;
    }
    struct raft* rf = raft_fixture_get(&f_, i);
    if (options_.snapshot_threshold) raft_set_snapshot_threshold(rf, options_.snapshot_threshold);
    if (options_.snapshot_trailing) raft_set_snapshot_trailing(rf, options_.snapshot_trailing);
    // As a node at its default latency (node.cc): a lost snapshot transfer
    // is retried after 5 s, not libraft's 30 s.
    raft_set_install_snapshot_timeout(rf, 5000);
  }
  struct raft_configuration conf;
  REQUIRE(raft_fixture_configuration(&f_, options_.n, &conf) == 0);
  REQUIRE(raft_fixture_bootstrap(&f_, &conf) == 0);
  raft_configuration_close(&conf);
  REQUIRE(raft_fixture_start(&f_) == 0);
  REQUIRE(uv_loop_init(&loop_) == 0);
  for (unsigned i = 0; i < options_.n; i++) {
    proposers_[i]->attach(raft_fixture_get(&f_, i), [this] { wake(); });
    executors_.push_back(std::make_unique<Executor>(proposers_[i]->vfs()));
    gateways_.push_back(
        std::make_unique<FixtureGateway>(raft_fixture_get(&f_, i), *proposers_[i], &loop_, [this] { wake(); }));
  }
}

std::unique_ptr<Client> FixtureCluster::client(unsigned node) { return gateways_.at(node)->connect(); }

FixtureCluster::~FixtureCluster() {
  for (auto& w : work_) w.cb(w.req, w.result.get());
  work_.clear();
  // Fail waiting writers first so executor and writer threads can finish.
  for (auto& r : proposers_) r->shutdown();
  for (auto& g : gateways_) g->stop();
  for (auto& e : executors_) e->stop();
  raft_fixture_close(&f_);
  {
    std::lock_guard lk(g_io_mu);
    for (unsigned i = 0; i < options_.n; i++) g_io_owner.erase(&f_.servers[i].io);
  }
  gateways_.clear();
  executors_.clear();
  proposers_.clear();
  uv_run(&loop_, UV_RUN_NOWAIT);
  (void)uv_loop_close(&loop_);  // UV_EBUSY only if a test leaked a handle: nothing to do then
}

void FixtureCluster::wake() {
  std::lock_guard lk(mu_);
  wakeups_++;
  cv_.notify_all();
}

int FixtureCluster::async_work(struct raft_io* io, struct raft_io_async_work* req, raft_io_async_work_cb cb) {
  FixtureCluster* self;
  {
    std::lock_guard lk(g_io_mu);
    self = g_io_owner.at(io);
  }
  self->work_.push_back(AsyncWork{req, cb, std::async(std::launch::async, [self, req] {
                                    int rv = req->work(req);
                                    self->wake();
                                    return rv;
                                  })});
  return 0;
}

void FixtureCluster::poll_all() {
  uv_run(&loop_, UV_RUN_NOWAIT);
  for (auto& g : gateways_) g->poll();
  for (auto& r : proposers_) r->poll();
  for (size_t i = 0; i < work_.size();) {
    if (work_[i].result.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      AsyncWork w = std::move(work_[i]);
      work_.erase(work_.begin() + long(i));
      w.cb(w.req, w.result.get());
    } else {
      i++;
    }
  }
}

void FixtureCluster::step() {
  poll_all();
  raft_fixture_step(&f_);
  poll_all();
}

bool FixtureCluster::step_until(const std::function<bool()>& cond, unsigned max_ms) {
  const raft_time deadline = raft_fixture_time(&f_) + max_ms;
  const auto wall_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    poll_all();
    if (cond()) return true;
    if (raft_fixture_time(&f_) > deadline || std::chrono::steady_clock::now() > wall_deadline) return false;
    bool proposals = false;
    for (auto& r : proposers_) proposals = proposals || r->busy();
    if (!proposals) {
      // Nothing waits for the cluster. If jobs or snapshot encodings are
      // running, their threads are computing in real time: let them post work
      // or finish before the cluster's clock moves on, or simulated timeouts
      // would fire meanwhile.
      std::unique_lock lk(mu_);
      const uint64_t seen = wakeups_;
      const bool computing = running_jobs_ > 0 || !work_.empty();
      cv_.wait_for(lk, computing ? std::chrono::microseconds(20000) : std::chrono::microseconds(100),
                   [&] { return wakeups_ != seen; });
      if (wakeups_ != seen) continue;
    }
    raft_fixture_step(&f_);
  }
}

void FixtureCluster::step_for(unsigned ms) {
  const raft_time until = raft_fixture_time(&f_) + ms;
  step_until([&] { return raft_fixture_time(&f_) >= until; }, ms + 1000);
}

unsigned FixtureCluster::wait_leader(unsigned max_ms) {
  unsigned found = size();
  step_until(
      [&] {
        for (unsigned i = 0; i < size(); i++) {
          if (alive(i) && proposers_[i]->leader_ready()) {
            found = i;
            return true;
          }
        }
        return false;
      },
      max_ms);
  return found;
}

bool FixtureCluster::settle(unsigned max_ms) {
  return step_until(
      [&] {
        unsigned l = size();
        for (unsigned i = 0; i < size(); i++) {
          if (alive(i) && raft_state(raft(i)) == RAFT_LEADER) l = i;
        }
        if (l == size()) return false;
        const raft_index target = raft_last_applied(raft(l));
        if (raft_last_index(raft(l)) != target) return false;
        for (unsigned i = 0; i < size(); i++) {
          if (alive(i) && raft_last_applied(raft(i)) < target) return false;
          if (alive(i) && proposers_[i]->busy()) return false;
        }
        for (auto& r : proposers_) {
          for (const std::string& name : r->vfs().names()) {
            if (r->vfs().find(name)->has_deferred()) return false;
          }
        }
        return true;
      },
      max_ms);
}

std::shared_ptr<FixtureCluster::Job> FixtureCluster::submit(unsigned node, const std::string& db,
                                                            std::vector<std::string> stmts, Executor::Mode mode) {
  auto job = std::make_shared<Job>();
  {
    std::lock_guard lk(mu_);
    running_jobs_++;
  }
  executors_[node]->submit(db, std::move(stmts), mode, [this, job](Result<ExecResult> r) {
    job->result = std::move(r);
    job->done = true;
    std::lock_guard lk(mu_);
    running_jobs_--;
    wakeups_++;
    cv_.notify_all();
  });
  return job;
}

Result<ExecResult> FixtureCluster::exec(unsigned node, const std::string& db, std::vector<std::string> stmts,
                                        Executor::Mode mode) {
  auto job = submit(node, db, std::move(stmts), mode);
  if (!step_until([&] { return job->done.load(); }, 120000)) {
    std::string state;
    for (unsigned i = 0; i < size(); i++) {
      struct raft* r = raft(i);
      state += " [node " + std::to_string(i) + (alive(i) ? "" : " dead") + " state=" + std::to_string(raft_state(r)) +
               " term=" + std::to_string(r->current_term) + " last=" + std::to_string(raft_last_index(r)) +
               " commit=" + std::to_string(r->commit_index) + " applied=" + std::to_string(raft_last_applied(r)) +
               " busy=" + std::to_string(proposers_[i]->busy());
      if (auto d = vfs(i).find(db)) state += " " + d->debug_state();
      state += "]";
    }
    return Status::Internal("job on node " + std::to_string(node) + " did not finish:" + state);
  }
  return std::move(job->result);
}

std::string FixtureCluster::query(unsigned i, const std::string& db, const std::string& sql) {
  Result<sqlite3*> conn = vfs(i).open(db, false);
  if (!conn.ok()) return "ERROR " + conn.status().to_string();
  std::string out = test::query(*conn, sql);
  sqlite3_close(*conn);
  return out;
}

uint64_t FixtureCluster::checksum(unsigned i, const std::string& db) {
  std::shared_ptr<Database> d = vfs(i).find(db);
  return d ? d->state_checksum() : 0;
}

std::string FixtureCluster::compare(const std::string& db, const std::string& sql) {
  unsigned first = size();
  std::string rows;
  uint64_t sum = 0;
  for (unsigned i = 0; i < size(); i++) {
    if (!alive(i)) continue;
    std::shared_ptr<Database> d = vfs(i).find(db);
    if (!d) return "node " + std::to_string(i) + " has no db " + db;
    const std::string r = query(i, db, sql);
    const std::string integrity = query(i, db, "PRAGMA integrity_check");
    if (integrity != "ok") return "node " + std::to_string(i) + " integrity: " + integrity;
    if (d->recompute_state_checksum() != d->state_checksum()) {
      return "node " + std::to_string(i) + " state hash does not match its content";
    }
    if (first == size()) {
      first = i;
      rows = r;
      sum = d->state_checksum();
      continue;
    }
    if (r != rows) return "node " + std::to_string(i) + " rows differ from node " + std::to_string(first);
    if (d->state_checksum() != sum) return "node " + std::to_string(i) + " state hash differs";
  }
  return "";
}

void FixtureCluster::isolate(unsigned i) {
  for (unsigned j = 0; j < size(); j++) {
    if (j == i) continue;
    raft_fixture_saturate(&f_, i, j);
    raft_fixture_saturate(&f_, j, i);
  }
}

void FixtureCluster::heal(unsigned i) {
  for (unsigned j = 0; j < size(); j++) {
    if (j == i) continue;
    raft_fixture_desaturate(&f_, i, j);
    raft_fixture_desaturate(&f_, j, i);
  }
}

}  // namespace sqraft::test
