// Clients: a node's client sessions and the per-database writers they
// share, and what the node's loop does for them on each iteration (a
// leadership change, requests parked until a new leader is ready). The
// server's node and the deterministic test fixture's node both keep theirs
// here, so the fixture suite runs the same bookkeeping as production.
//
// Thread-safety: loop thread only (the writers run their SQL on their pool).
#pragma once

#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "context.h"
#include "db_writer.h"
#include "session.h"
#include "writer_pool.h"

namespace sqraft {

class Clients {
 public:
  // `writer_options` is what every database's writer starts with (its rows
  // are encoded as ROWS messages whatever it says); `ctx` and `pool` must
  // outlive this.
  Clients(GatewayContext& ctx, DbWriter::Options writer_options, WriterPool& pool);
  // Frees the sessions, then the writers they used.
  ~Clients();
  Clients(const Clients&) = delete;
  Clients& operator=(const Clients&) = delete;

  // A new client connection (a stream allocated with raft_malloc): its
  // session starts reading.
  void add(uv_stream_t* stream);
  size_t sessions() const { return sessions_.size(); }

  // The writer of `db`, created on first use.
  DbWriter& writer(const std::string& db);
  bool has_writer(const std::string& db) const { return writers_.count(db) != 0; }
  const std::map<std::string, std::unique_ptr<DbWriter>>& writers() const { return writers_; }

  // GatewayContext::reap and ::park, for the node to forward.
  void reap(Session* s);
  void park(uint64_t session) { parked_.push_back(session); }

  enum class Leadership { kSame, kGained, kLost };
  // Once per loop iteration, told whether this node leads now: when it
  // stopped leading, the writers abort their owners' transactions and the
  // sessions drop their database handles; parked requests run or give up.
  Leadership poll(bool is_leader);

  // Shutting down: every session closes (their SQL stops), then the writers
  // finish what they run.
  void close_all(const std::string& why);
  void stop_writers();

 private:
  GatewayContext& ctx_;
  DbWriter::Options writer_options_;
  WriterPool& pool_;
  std::map<std::string, std::unique_ptr<DbWriter>> writers_;
  std::map<uint64_t, std::unique_ptr<Session>> sessions_;  // after writers_: freed first
  uint64_t next_session_ = 1;
  std::vector<uint64_t> parked_;  // sessions waiting for this leader to be ready
  bool was_leader_ = false;
};

}  // namespace sqraft
