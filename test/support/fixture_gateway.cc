#include "support/fixture_gateway.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rows_encoder.h"

namespace sqraft::test {

FixtureGateway::FixtureGateway(struct raft* raft, Proposer& proposer, uv_loop_t* loop, std::function<void()> wake)
    : raft_(raft), proposer_(proposer), loop_(loop), wake_(std::move(wake)) {}

FixtureGateway::~FixtureGateway() { stop(); }

std::unique_ptr<Client> FixtureGateway::connect() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return nullptr;
  // The session starts on the loop thread; what the client writes first
  // waits in the socket until then.
  const bool posted = post([this, fd = fds[0]] {
    // Session frees its stream with raft_free, as the server's accepted ones.
    auto* pipe = static_cast<uv_pipe_t*>(raft_malloc(sizeof(uv_pipe_t)));
    uv_pipe_init(loop_, pipe, 0);
    if (uv_pipe_open(pipe, fd) != 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(pipe), [](uv_handle_t* h) { raft_free(h); });
      return;
    }
    const uint64_t id = next_session_++;
    auto s = std::make_unique<Session>(*this, id, reinterpret_cast<uv_stream_t*>(pipe));
    Session* raw = s.get();
    sessions_[id] = std::move(s);
    raw->start();
  });
  if (!posted) {
    ::close(fds[0]);
    ::close(fds[1]);
    return nullptr;
  }
  auto c = Client::adopt(fds[1], "fixture node", 30000);
  return c.ok() ? std::move(c).value() : nullptr;
}

bool FixtureGateway::post(std::function<void()> fn) {
  {
    std::lock_guard lk(mu_);
    if (stopped_) return false;
    posted_.push_back(std::move(fn));
  }
  wake_();
  return true;
}

bool FixtureGateway::leader_ready() const {
  return raft_state(raft_) == RAFT_LEADER && proposer_.leader_ready();
}

DbWriter& FixtureGateway::writer(const std::string& db) {
  auto& w = writers_[db];
  if (!w) {
    DbWriter::Options o;
    o.limits = limits_;
    o.row_encoder = &make_rows_encoder;
    o.node_stopping = &stopping_;
    w = std::make_unique<DbWriter>(vfs(), db, o, writer_pool_);
  }
  return *w;
}

void FixtureGateway::reap(Session* s) {
  const uint64_t id = s->id();
  (void)post([this, id] {  // refused only after stop(), which frees every session
    auto it = sessions_.find(id);
    if (it != sessions_.end() && it->second->reapable()) sessions_.erase(it);
  });
}

void FixtureGateway::hand_to_raft(uint64_t, const std::string&, uv_stream_t* stream) {
  // No Raft peer connects through a fixture node's clients.
  uv_close(reinterpret_cast<uv_handle_t*>(stream), [](uv_handle_t* h) { raft_free(h); });
}

void FixtureGateway::poll() {
  std::vector<std::function<void()>> fns;
  {
    std::lock_guard lk(mu_);
    fns.swap(posted_);
  }
  for (auto& fn : fns) fn();
  const bool is_leader = raft_state(raft_) == RAFT_LEADER;
  if (was_leader_ && !is_leader) {
    for (auto& [name, w] : writers_) w->abort_owner(Status::LeadershipLost());
    for (auto& [id, s] : sessions_) s->on_leadership_lost();
  }
  was_leader_ = is_leader;
  std::vector<uint64_t> still;
  for (uint64_t id : parked_) {
    auto it = sessions_.find(id);
    if (it != sessions_.end() && it->second->retry_parked()) still.push_back(id);
  }
  parked_.swap(still);
}

void FixtureGateway::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
  }
  stopping_ = true;
  for (auto& [id, s] : sessions_) s->close("fixture stopping");
  for (auto& [name, w] : writers_) w->stop();
  writer_pool_.stop();
  readers_.stop();
  // Completions of jobs that ended meanwhile, then the closes.
  for (int i = 0; i < 100; i++) {
    poll();
    uv_run(loop_, UV_RUN_NOWAIT);
  }
  {
    std::lock_guard lk(mu_);
    stopped_ = true;
    posted_.clear();
  }
  sessions_.clear();
  writers_.clear();
}

}  // namespace sqraft::test
