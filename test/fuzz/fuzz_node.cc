#include "fuzz_node.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace sqraft::fuzz {

namespace {

FuzzNode* g_node = nullptr;  // the one FuzzNode alive (see the header)
unsigned g_node_seq = 0;     // VFS names are unique in a process

int64_t cpu_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// CPU time of every thread but the calling one: the pools running SQL.
int64_t other_threads_cpu_ns() { return cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu_ns(CLOCK_THREAD_CPUTIME_ID); }

// Iterations without progress after which the node counts as quiet, and
// how long each of them waits for a completion to be posted.
constexpr int kQuietRounds = 3;
constexpr unsigned kQuietWaitUs = 500;
// Other threads using more CPU than this during one iteration are running
// a client's SQL: not quiet yet.
constexpr int64_t kBusyCpuNs = 100000;

}  // namespace

void die(const std::string& what) {
  std::fprintf(stderr, "fuzz: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

void quiet_logs() { spdlog::set_level(spdlog::level::critical); }

FuzzNode::FuzzNode() {
  require(g_node == nullptr, "only one FuzzNode may exist at a time");
  g_node = this;
  // As a node's start does (NodeImpl::start): a client that hangs up while
  // its session writes must not kill the process. Without it the fuzzer
  // died of SIGPIPE after some 15,000 inputs.
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
  require(uv_loop_init(&loop_) == 0, "uv_loop_init failed");
  require(raft_fixture_initialize(&f_) == 0, "raft_fixture_initialize failed");
  Proposer::Options o;
  o.vfs_name = "fuzz-node-" + std::to_string(g_node_seq++);
  o.metrics = &metrics_;
  o.commit_outcome_timeout_ms = 1000;
  Result<std::unique_ptr<Proposer>> p = Proposer::create(o);
  if (!p.ok()) die("Proposer::create: " + p.status().to_string());
  proposer_ = std::move(p).value();
  // libraft 0.15's in-memory io has no async_work, so raft_fixture_grow
  // would refuse an FSM with snapshot_async: grow without it, then give the
  // io an async_work that step() runs (see FixtureCluster).
  struct raft_fsm* fsm = proposer_->raft_fsm();
  auto snapshot_async = fsm->snapshot_async;
  fsm->snapshot_async = nullptr;
  require(raft_fixture_grow(&f_, fsm) == 0, "raft_fixture_grow failed");
  fsm->snapshot_async = snapshot_async;
  f_.servers[0].io.version = 2;
  f_.servers[0].io.async_work = async_work;
  raft_ = raft_fixture_get(&f_, 0);
  struct raft_configuration conf;
  require(raft_fixture_configuration(&f_, 1, &conf) == 0, "raft_fixture_configuration failed");
  require(raft_fixture_bootstrap(&f_, &conf) == 0, "raft_fixture_bootstrap failed");
  raft_configuration_close(&conf);
  require(raft_fixture_start(&f_) == 0, "raft_fixture_start failed");
  proposer_->attach(raft_, [this] { wake(); });
  clients_ = std::make_unique<Clients>(*this, writer_options(), writer_pool_);
  require(step_until([this] { return leader_ready(); }, 10000), "the node did not become a ready leader");
}

FuzzNode::~FuzzNode() {
  // Snapshot work libraft is waiting for ends first, then the writers
  // waiting for Raft fail, so that every thread can finish.
  std::vector<Work> work;
  work.swap(work_);
  for (Work& w : work) w.cb(w.req, w.req->work(w.req));
  proposer_->shutdown();
  stop();
  raft_fixture_close(&f_);
  proposer_.reset();
  uv_run(&loop_, UV_RUN_NOWAIT);
  require(uv_loop_close(&loop_) == 0, "a libuv handle outlived the node (a session's stream not closed)");
  g_node = nullptr;
}

SqlLimits FuzzNode::fuzz_limits() {
  SqlLimits l;
  l.statement_timeout_ms = 200;
  l.statement_vm_steps_max = 2000000;
  l.value_bytes_max = 1 << 20;
  l.sql_bytes_max = 1 << 20;
  return l;
}

DbWriter::Options FuzzNode::writer_options() const {
  DbWriter::Options o;
  o.queue_timeout_ms = 500;
  o.txn_idle_timeout_ms = 1000;
  o.busy_timeout_ms = 100;
  o.limits = limits_;
  o.node_stopping = &stopping_;
  return o;
}

int FuzzNode::async_work(struct raft_io*, struct raft_io_async_work* req, raft_io_async_work_cb cb) {
  g_node->work_.push_back(Work{req, cb});
  return 0;
}

int FuzzNode::connect() {
  int fds[2];
  require(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0, "socketpair failed");
  const bool posted = post([this, fd = fds[0]] {
    // Session frees its stream with raft_free, as the server's accepted ones.
    auto* pipe = static_cast<uv_pipe_t*>(raft_malloc(sizeof(uv_pipe_t)));
    require(pipe != nullptr, "out of memory");
    uv_pipe_init(&loop_, pipe, 0);
    if (uv_pipe_open(pipe, fd) != 0) die("uv_pipe_open failed");
    clients_->add(reinterpret_cast<uv_stream_t*>(pipe));
  });
  require(posted, "connect() after the node stopped");
  return fds[1];
}

bool FuzzNode::post(std::function<void()> fn) {
  std::lock_guard lk(mu_);
  if (stopped_) return false;
  posted_.push_back(std::move(fn));
  wakeups_++;
  posted_cv_.notify_all();
  return true;
}

void FuzzNode::wake() {
  std::lock_guard lk(mu_);
  wakeups_++;
  posted_cv_.notify_all();
}

bool FuzzNode::wait_for_wakeup(unsigned timeout_us) {
  std::unique_lock lk(mu_);
  const uint64_t seen = wakeups_;
  return posted_cv_.wait_for(lk, std::chrono::microseconds(timeout_us), [&] { return wakeups_ != seen; });
}

size_t FuzzNode::run_posted() {
  std::vector<std::function<void()>> fns;
  {
    std::lock_guard lk(mu_);
    fns.swap(posted_);
  }
  for (auto& fn : fns) fn();
  return fns.size();
}

bool FuzzNode::leader_ready() const { return raft_state(raft_) == RAFT_LEADER && proposer_->leader_ready(); }

bool FuzzNode::raft_busy() const { return raft_last_index(raft_) != raft_last_applied(raft_); }

void FuzzNode::hand_to_raft(uint64_t, const std::string&, uv_stream_t* stream) {
  // No Raft peer connects to a fuzz node: a CONNECT's socket is closed.
  uv_close(reinterpret_cast<uv_handle_t*>(stream), [](uv_handle_t* h) { raft_free(h); });
}

size_t FuzzNode::step() {
  const size_t ran = run_posted();
  uv_run(&loop_, UV_RUN_NOWAIT);
  if (clients_) (void)clients_->poll(raft_state(raft_) == RAFT_LEADER);
  proposer_->poll();
  std::vector<Work> work;
  work.swap(work_);
  for (Work& w : work) w.cb(w.req, w.req->work(w.req));
  raft_fixture_step(&f_);
  return ran;
}

bool FuzzNode::step_until(const std::function<bool()>& done, unsigned wall_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wall_ms);
  for (;;) {
    const size_t ran = step();
    if (done()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    // Let the pools' threads post before the fixture's clock moves on.
    if (ran == 0 && !proposer_->busy() && !raft_busy()) (void)wait_for_wakeup(50);
  }
}

void FuzzNode::step_until_quiet(unsigned wall_ms, const std::function<bool()>& progress) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wall_ms);
  int quiet = 0;
  while (quiet < kQuietRounds && std::chrono::steady_clock::now() < deadline) {
    const int64_t others_before = other_threads_cpu_ns();
    bool busy = step() > 0;
    busy = progress() || busy;
    busy = busy || proposer_->busy() || raft_busy();
    if (!busy) busy = wait_for_wakeup(kQuietWaitUs);
    busy = busy || other_threads_cpu_ns() - others_before > kBusyCpuNs;
    quiet = busy ? 0 : quiet + 1;
  }
}

void FuzzNode::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
  }
  stopping_ = true;
  clients_->close_all("fuzz node stopping");
  clients_->stop_writers();
  writer_pool_.stop();
  readers_.stop();
  // Completions of jobs that ended meanwhile, then the closes.
  for (int i = 0; i < 100; i++) {
    run_posted();
    clients_->poll(raft_state(raft_) == RAFT_LEADER);
    uv_run(&loop_, UV_RUN_NOWAIT);
  }
  {
    std::lock_guard lk(mu_);
    stopped_ = true;
    posted_.clear();
  }
  clients_.reset();
}

}  // namespace sqraft::fuzz
