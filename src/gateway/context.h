// GatewayContext: what a session may use of the node that hosts it — a
// narrow view instead of the whole node, so the gateway depends on no
// server header. The server's node implements it (src/server/node_impl.h).
//
// Thread-safety: loop thread unless a method says otherwise.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "db_writer.h"
#include "metrics.h"
#include "proposer.h"
#include "raft_api.h"
#include "sql_guard.h"
#include "status.h"
#include "thread_pool.h"
#include "vfs.h"

namespace sqraft {

class Session;

class GatewayContext {
 public:
  virtual ~GatewayContext() = default;

  // Any thread: runs `fn` on the loop thread; false once the loop is gone.
  virtual bool post(std::function<void()> fn) = 0;
  // Any thread: the counters requests and errors go into.
  virtual Metrics& metrics() = 0;

  // The node's Raft instance (leadership, membership requests).
  virtual struct raft* raft() = 0;
  // This node leads and has applied what earlier leaders committed: it may run SQL.
  virtual bool leader_ready() const = 0;
  // This leader's read lease holds: no other leader can have been elected,
  // so a statement may run on its state now without confirming leadership
  // (docs/reliability.md "Reads").
  virtual bool read_lease_held() = 0;
  // Outside the lease, leadership is confirmed by a round of Raft shared by
  // the statements waiting: request_confirmation() returns a ticket (0 if
  // this node does not lead), confirmation(ticket) its state.
  using Confirmation = Proposer::Confirmation;
  virtual uint64_t request_confirmation() = 0;
  virtual Confirmation confirmation(uint64_t ticket) = 0;
  // Test-only (SQRAFT_TEST_UNSAFE_LEADER_READS=1), the fault suite's positive
  // control: reads skip every leadership check, as a deposed leader that
  // kept answering would. Never set in production.
  virtual bool unsafe_leader_reads() const { return false; }
  virtual Vfs& vfs() = 0;
  virtual ThreadPool& readers() = 0;
  // The writer of `db`, created on first use (after may_open()).
  virtual DbWriter& writer(const std::string& db) = 0;
  // OK if `db` exists or one more database is within the node's limit.
  virtual Status may_open(const std::string& db) = 0;
  // Set when the node begins to stop: every client statement stops.
  virtual const std::atomic<bool>* sql_stopping() const = 0;
  // Limits a session applies.
  virtual size_t max_message_bytes() const = 0;
  virtual const SqlLimits& sql_limits() const = 0;
  // DESCRIBE and WEIGHT.
  virtual uint64_t failure_domain() const = 0;
  virtual uint64_t weight() const = 0;
  virtual void set_weight(uint64_t w) = 0;

  // A session that finished closing may be freed.
  virtual void reap(Session* s) = 0;
  // Session `id` waits for this new leader to be ready (retry_parked()).
  virtual void park(uint64_t session) = 0;
  // CONNECT: the connection is a Raft peer's; the transport takes `stream`.
  virtual void hand_to_raft(uint64_t peer_id, const std::string& address, uv_stream_t* stream) = 0;
};

}  // namespace sqraft
