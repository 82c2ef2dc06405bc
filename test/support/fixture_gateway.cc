#include "support/fixture_gateway.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>


namespace sqraft::test {

FixtureGateway::FixtureGateway(struct raft* raft, Proposer& proposer, uv_loop_t* loop, std::function<void()> wake)
    : raft_(raft), proposer_(proposer), loop_(loop), wake_(std::move(wake)) {
  clients_ = std::make_unique<Clients>(*this, writer_options(), writer_pool_);
}

DbWriter::Options FixtureGateway::writer_options() {
  DbWriter::Options o;
  o.limits = limits_;
  o.node_stopping = &stopping_;
  return o;
}

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
    clients_->add(reinterpret_cast<uv_stream_t*>(pipe));
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
  // The fixture logs no leadership changes. Nothing is left after stop().
  if (clients_) (void)clients_->poll(raft_state(raft_) == RAFT_LEADER);
}

void FixtureGateway::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
  }
  stopping_ = true;
  clients_->close_all("fixture stopping");
  clients_->stop_writers();
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
  clients_.reset();
}

}  // namespace sqraft::test
