// FixtureGateway: the production gateway (Session) and per-database writers
// (DbWriter) of one FixtureCluster node, so the integration suite runs the
// path clients use — wire protocol, routing, group commit, proposer, FSM —
// on libraft's deterministic fixture. Clients are the real blocking Client
// on one end of a socketpair whose other end is a Session on the cluster's
// libuv loop. The test thread plays the node's loop thread: poll() runs
// posted completions, leadership changes and parked requests, as the
// server's node does on each loop iteration.
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client.h"
#include "clients.h"
#include "context.h"
#include "proposer.h"
#include "session.h"
#include "thread_pool.h"
#include "writer_pool.h"

namespace sqraft::test {

class FixtureGateway final : public GatewayContext {
 public:
  // `raft` and `proposer` belong to the cluster; `wake` tells its stepping
  // thread that there is work for poll().
  FixtureGateway(struct raft* raft, Proposer& proposer, uv_loop_t* loop, std::function<void()> wake);
  ~FixtureGateway() override;
  FixtureGateway(const FixtureGateway&) = delete;
  FixtureGateway& operator=(const FixtureGateway&) = delete;

  // Any thread: a new client connection to this node (null if the node
  // stopped). Use it from another thread than the one stepping the cluster.
  std::unique_ptr<Client> connect();
  // Loop thread: what the node's loop does each iteration.
  void poll();
  // Loop thread: closes every session and stops the writers and readers.
  void stop();

  // GatewayContext.
  bool post(std::function<void()> fn) override;
  Metrics& metrics() override { return metrics_; }
  struct raft* raft() override { return raft_; }
  bool leader_ready() const override;
  // The fixture's io is not the node's shim: no lease, so every statement
  // confirms leadership with a round of Raft (that path is what runs here).
  bool read_lease_held() override { return false; }
  uint64_t request_confirmation() override { return proposer_.request_confirmation(); }
  Confirmation confirmation(uint64_t ticket) override { return proposer_.confirmation(ticket); }
  Vfs& vfs() override { return proposer_.vfs(); }
  ThreadPool& readers() override { return readers_; }
  DbWriter& writer(const std::string& db) override { return clients_->writer(db); }
  Status may_open(const std::string&) override { return Status::Ok(); }
  const std::atomic<bool>* sql_stopping() const override { return &stopping_; }
  size_t max_message_bytes() const override { return size_t{64} << 20; }
  const SqlLimits& sql_limits() const override { return limits_; }
  uint64_t failure_domain() const override { return 0; }
  uint64_t weight() const override { return 0; }
  void set_weight(uint64_t) override {}
  void reap(Session* s) override { clients_->reap(s); }
  void park(uint64_t session) override { clients_->park(session); }
  void hand_to_raft(uint64_t, const std::string&, uv_stream_t* stream) override;

 private:
  DbWriter::Options writer_options();
  struct raft* raft_;
  Proposer& proposer_;
  uv_loop_t* loop_;
  std::function<void()> wake_;
  Metrics metrics_;
  SqlLimits limits_;
  std::atomic<bool> stopping_{false};
  ThreadPool readers_{2};
  WriterPool writer_pool_{2};
  std::unique_ptr<Clients> clients_;  // after the pools it uses; freed by stop()
  mutable std::mutex mu_;
  std::vector<std::function<void()>> posted_;  // guarded by mu_
  bool stopped_ = false;                        // guarded by mu_
};

}  // namespace sqraft::test
