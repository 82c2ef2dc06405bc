// Requests: the queue of pipelined requests, one handler per request type
// (the table in handlers()), and the connection's tables of open databases
// and prepared statements.
#include "session.h"

#include <spdlog/spdlog.h>

#include <cassert>
#include <cctype>
#include <chrono>
#include <utility>

#include "rows_encoder.h"
#include "session_limits.h"
#include "db_name.h"
#include "vfs.h"

namespace sqraft {

namespace {

// Requests that run SQL: on a leader still applying earlier leaders' entries
// they wait until it is ready.
bool runs_sql(uint8_t type) {
  return type == wire::kOpen || type == wire::kPrepare || type == wire::kExec || type == wire::kQuery ||
         type == wire::kExecSql || type == wire::kQuerySql;
}

bool is_query(uint8_t type) { return type == wire::kQuery || type == wire::kQuerySql; }

// Statements: what they answer comes from this node's state, so it must
// still be the leader (outside its read lease, confirmed first).
bool runs_statement(uint8_t type) {
  return type == wire::kExec || type == wire::kQuery || type == wire::kExecSql || type == wire::kQuerySql;
}

}  // namespace

void Session::dispatch(Message m) {
  if (m.header.type == wire::kInterrupt && query_ != QueryState::kIdle && query_ != QueryState::kInterruptedEarly) {
    interrupt_query();
    return;
  }
  if (busy_) {
    if (queued_.size() >= kMaxQueued) {
      spdlog::warn("session {}: more than {} requests pipelined; closing", id_, kMaxQueued);
      close("too many pipelined requests");
      return;
    }
    // Bytes in flight: what waits here, besides the request running, stays
    // within one maximum message.
    if (queued_bytes_ + m.body.size() > node_.max_message_bytes()) {
      spdlog::warn("session {}: more than {} bytes of requests pipelined; closing", id_,
                   node_.max_message_bytes());
      close("too many pipelined bytes");
      return;
    }
    queued_bytes_ += m.body.size();
    queued_.push_back(std::move(m));
    return;
  }
  handle(m);
}

void Session::done() {
  assert(busy_ || closing_);
  assert(!stream_rows_);
  if (query_ == QueryState::kInterruptedEarly) reply_empty();  // the query ended (or failed) before streaming
  if (query_ != QueryState::kIdle) query_to(QueryState::kIdle);
  for (; owed_empties_ > 0; owed_empties_--) reply_empty();
  busy_ = false;
  if (!closing_) cancel_ = uint8_t(StopReason::kNone);  // no SQL of the request runs any more
  while (!busy_ && !closing_ && !queued_.empty()) {
    Message m = std::move(queued_.front());
    queued_.pop_front();
    queued_bytes_ -= m.body.size();
    handle(m);
  }
}

void Session::fail(const Status& s) {
  reply_failure(s);
  done();
}

void Session::fail(uint64_t code, const std::string& message) {
  reply_failure(code, message);
  done();
}

void Session::malformed(const Request& r) {
  fail(wire::kErrProto, std::string("malformed ") + wire::request_name(r.type) + " request");
}

// ---- requests ------------------------------------------------------------------

bool Session::retry_parked() {
  if (!parked_ || closing_) return false;
  if (confirm_ticket_ != 0) {
    const GatewayContext::Confirmation c = node_.confirmation(confirm_ticket_);
    if (c == GatewayContext::Confirmation::kPending && node_.leader_ready() &&
        std::chrono::steady_clock::now() < parked_until_) {
      return true;
    }
    confirm_ticket_ = 0;
    Message m = std::move(*parked_);
    parked_.reset();
    if (c == GatewayContext::Confirmation::kConfirmed) {
      handle(m, /*retry=*/true, /*confirmed=*/true);
    } else {
      // Deposed, or cut off from its followers: the client should look for
      // the leader (10250 makes dqlite clients do so).
      const Status s = Status::NotLeader("this node could not confirm that it is still the leader");
      if (is_query(m.header.type)) {
        fail_stream(s);
      } else {
        fail(s);
      }
    }
    return false;
  }
  if (!node_.leader_ready() && raft_state(node_.raft()) == RAFT_LEADER &&
      std::chrono::steady_clock::now() < parked_until_) {
    return true;
  }
  Message m = std::move(*parked_);
  parked_.reset();
  handle(m, /*retry=*/true);  // ready (it runs) or not the leader any more (it fails)
  return false;
}

const std::array<Session::Handler, 256>& Session::handlers() {
  static const std::array<Handler, 256> table = [] {
    std::array<Handler, 256> t{};
    t[wire::kLeader] = &Session::handle_leader;
    t[wire::kClient] = &Session::handle_client;
    t[wire::kHeartbeat] = &Session::handle_heartbeat;
    t[wire::kOpen] = &Session::handle_open;
    t[wire::kPrepare] = &Session::handle_prepare;
    t[wire::kExec] = &Session::handle_exec;
    t[wire::kQuery] = &Session::handle_exec;
    t[wire::kFinalize] = &Session::handle_finalize;
    t[wire::kExecSql] = &Session::handle_exec_sql;
    t[wire::kQuerySql] = &Session::handle_exec_sql;
    t[wire::kInterrupt] = &Session::handle_interrupt;
    t[wire::kConnect] = &Session::handle_connect;
    t[wire::kAdd] = &Session::handle_membership;
    t[wire::kAssign] = &Session::handle_membership;
    t[wire::kRemove] = &Session::handle_membership;
    t[wire::kDump] = &Session::handle_dump;
    t[wire::kCluster] = &Session::handle_cluster;
    t[wire::kTransfer] = &Session::handle_transfer;
    t[wire::kDescribe] = &Session::handle_describe;
    t[wire::kWeight] = &Session::handle_weight;
    return t;
  }();
  return table;
}

// A statement on a leader outside its read lease waits (up to an election
// timeout) for a round of Raft to confirm the leadership: otherwise a leader
// already replaced, paused or cut off could answer from stale state.
bool Session::park_for_confirmation(Message& m) {
  const uint64_t ticket = node_.request_confirmation();
  if (ticket == 0) return false;  // not leading: the handler answers NOTLEADER
  confirm_ticket_ = ticket;
  parked_until_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(node_.raft()->election_timeout);
  parked_ = std::move(m);
  node_.park(id_);
  return true;
}

void Session::handle(Message& m, bool retry, bool confirmed) {
  assert(!closing_);
  const uint8_t type = m.header.type;
  if (!retry) {
    node_.metrics().requests[type]++;
    if (is_query(type)) query_to(QueryState::kStarting);  // from here on INTERRUPT stops it
  }
  busy_ = true;
  if (runs_sql(type) && !node_.leader_ready() && raft_state(node_.raft()) == RAFT_LEADER) {
    // Just elected: wait (up to an election timeout) until everything earlier
    // leaders committed is applied, rather than send the client away.
    parked_until_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(node_.raft()->election_timeout);
    parked_ = std::move(m);
    node_.park(id_);
    return;
  }
  if (runs_statement(type) && !confirmed && node_.leader_ready() && !node_.read_lease_held() &&
      park_for_confirmation(m)) {
    return;
  }
  if (m.header.schema > 1) {
    return fail(wire::kErrProto,
                "unsupported schema " + std::to_string(m.header.schema) + " for " + wire::request_name(type));
  }
  const Handler handler = handlers()[type];
  if (handler == nullptr) return fail(wire::kErrProto, "unknown request type " + std::to_string(type));
  Request r{type, m.header.schema, wire::BodyReader(m.body)};
  (this->*handler)(r);
}

void Session::handle_leader(Request&) {
  raft_id id = 0;
  const char* address = nullptr;
  raft_leader(node_.raft(), &id, &address);
  wire::BodyWriter w;
  w.u64(id);
  w.text(address ? address : "");
  send(w.finish(wire::kServer));
  done();
}

void Session::handle_client(Request& r) {
  if (!r.body.u64(&client_id_)) return malformed(r);
  wire::BodyWriter w;
  w.u64(node_.raft()->heartbeat_timeout);
  send(w.finish(wire::kWelcome));
  done();
}

void Session::handle_heartbeat(Request& r) {
  // Legacy: the body is a timestamp; the answer is the server list without
  // roles.
  uint64_t timestamp;
  if (!r.body.u64(&timestamp)) return malformed(r);
  send_servers(0);
  done();
}

void Session::handle_interrupt(Request&) {
  reply_empty();  // nothing is streaming
  done();
}

void Session::handle_connect(Request&) {
  reply_failure(wire::kErrProto, "CONNECT is only valid as the first request");
  close("late CONNECT");
}

Session::Db* Session::db(uint64_t id, bool need_leader) {
  if (need_leader && !node_.leader_ready()) {
    fail(Status::NotLeader());
    return nullptr;
  }
  auto it = dbs_.find(uint32_t(id));
  if (id > UINT32_MAX || it == dbs_.end()) {
    fail(SQLITE_NOTFOUND, "no database with id " + std::to_string(id) + " is open on this connection");
    return nullptr;
  }
  return &it->second;
}

void Session::drop_db(uint32_t db_id) {
  auto it = dbs_.find(db_id);
  if (it == dbs_.end()) return;
  if (it->second.writer) it->second.writer->release(id_);
  for (auto s = stmts_.begin(); s != stmts_.end();) {
    s = s->second.db == db_id ? stmts_.erase(s) : std::next(s);
  }
  graveyard_.push_back(std::move(it->second));  // a job may still use its connection
  dbs_.erase(it);
}

void Session::note_txn(uint32_t db_id, const DbWriter::Reply& rep) {
  auto it = dbs_.find(db_id);
  if (it != dbs_.end()) it->second.in_txn = rep.in_txn;
}

void Session::handle_open(Request& r) {
  std::string name, vfs_name;
  uint64_t flags;
  if (!r.body.text(&name) || !r.body.u64(&flags) || !r.body.text(&vfs_name)) return malformed(r);
  if (!node_.leader_ready()) return fail(Status::NotLeader());
  if (!wire::valid_utf8(name)) return fail(SQLITE_CANTOPEN, "database name is not valid UTF-8");
  if (Status s = validate_db_name(name); !s.ok()) return fail(SQLITE_CANTOPEN, s.message());
  for (auto& [id, d] : dbs_) {
    if (d.name == name) return send_db(id);
  }
  if (dbs_.size() >= kMaxDbs) {
    return fail(SQLITE_CANTOPEN, "too many databases open on this connection (limit " + std::to_string(kMaxDbs) + ")");
  }
  if (Status s = node_.may_open(name); !s.ok()) return fail(s);
  Vfs* vfs = &node_.vfs();
  start_read_job([this, vfs, name] {
    Result<sqlite3*> conn = vfs->open(name);
    if (conn.ok()) sqlite3_busy_timeout(conn.value(), kReaderBusyTimeoutMs);
    sqlite3* opened = conn.ok() ? conn.value() : nullptr;
    // Refused only while the node stops: nobody will use the connection.
    if (!node_.post([this, name, conn = std::move(conn)]() mutable { on_opened(name, std::move(conn)); })) {
      sqlite3_close_v2(opened);
    }
  });
}

void Session::on_opened(const std::string& name, Result<sqlite3*> conn) {
  if (!job_finished()) {
    if (conn.ok()) sqlite3_close_v2(conn.value());
    return;
  }
  if (!conn.ok()) return fail(conn.status());
  const uint32_t id = next_db_++;
  Db& d = dbs_[id];
  d.name = name;
  d.conn = conn.value();
  d.guard = std::make_unique<SqlGuard>(d.conn, node_.sql_limits(), node_.sql_stopping(), true);
  d.cache = std::make_unique<StmtCache>(d.conn);
  d.writer = &node_.writer(name);
  send_db(id);
}

void Session::send_db(uint32_t id) {
  wire::BodyWriter w;
  w.u32_pair(id, 0);
  send(w.finish(wire::kDb));
  done();
}

void Session::handle_prepare(Request& r) {
  uint64_t db_id;
  std::string sql;
  if (!r.body.u64(&db_id) || !r.body.text(&sql)) return malformed(r);
  Db* d = db(db_id, true);
  if (d == nullptr) return;
  if (!wire::valid_utf8(sql)) return fail(SQLITE_ERROR, "SQL text is not valid UTF-8");
  if (stmts_.size() >= kMaxStmts) {
    return fail(SQLITE_ERROR, "too many prepared statements on this connection (limit " + std::to_string(kMaxStmts) + ")");
  }
  const Prepared p{uint32_t(db_id), std::move(sql), r.schema};
  if (!d->in_txn) return prepare_on_reader(*d, p);
  // Inside the client's transaction the statement may name tables the
  // transaction made: the writer's connection prepares it.
  DbWriter::Request req;
  req.session = id_;
  req.kind = DbWriter::Kind::kPrepare;
  req.sql = p.sql;
  req.expect_owner = true;
  req.done = [this, p](DbWriter::Reply rep) {
    finish_on_loop([this, p, rep = std::move(rep)]() {
      // kOther stays: each EXEC finds out whether it touches TEMP objects.
      on_prepared(p, rep.status, rep.params, rep.tail, classify_sql(p.sql.substr(0, rep.tail)));
    });
  };
  if (!start_writer_job(*d->writer, std::move(req))) fail(write_queue_full());
}

void Session::prepare_on_reader(Db& d, const Prepared& p) {
  sqlite3* conn = d.conn;
  start_read_job([this, conn, p] {
    sqlite3_stmt* stmt = nullptr;
    const char* tail = nullptr;
    int rc = sqlite3_prepare_v2(conn, p.sql.c_str(), int(p.sql.size()), &stmt, &tail);
    Status st = rc == SQLITE_OK ? Status::Ok() : sqlite_error(conn, rc);
    uint64_t params = 0;
    uint64_t tail_off = tail ? uint64_t(tail - p.sql.c_str()) : p.sql.size();
    StmtKind kind = StmtKind::kOther;
    if (st.ok() && stmt == nullptr) st = Status::Error(SQLITE_ERROR, "empty statement");
    if (st.ok()) {
      params = uint64_t(sqlite3_bind_parameter_count(stmt));
      kind = classify_sql(p.sql.substr(0, tail_off));
      // Other writes stay kOther: each EXEC finds out whether they only
      // touch the client's TEMP objects.
      if (kind == StmtKind::kOther && sqlite3_stmt_readonly(stmt)) kind = StmtKind::kRead;
    }
    sqlite3_finalize(stmt);
    finish_on_loop([this, p, st, params, tail_off, kind]() {
      on_prepared(p, st, params, tail_off, kind);
    });
  });
}

void Session::on_prepared(const Prepared& p, const Status& st, uint64_t params, uint64_t tail, StmtKind kind) {
  if (!st.ok()) {
    reply_failure(st);
    if (st.is_not_leader() || st.is_leadership_lost()) drop_db(p.db);
    return done();
  }
  bool tail_empty = true;
  for (size_t i = tail; i < p.sql.size(); i++) {
    if (!std::isspace(static_cast<unsigned char>(p.sql[i])) && p.sql[i] != ';') tail_empty = false;
  }
  if (p.schema == 0 && !tail_empty) return fail(SQLITE_ERROR, "nonempty statement tail");
  const uint32_t id = next_stmt_++;
  stmts_[id] = Stmt{p.db, p.sql.substr(0, tail), kind, params};
  wire::BodyWriter w;
  w.u32_pair(p.db, id);
  w.u64(params);
  if (p.schema == 1) w.u64(tail);
  send(w.finish(wire::kStmt, p.schema));
  done();
}

void Session::handle_exec(Request& r) {
  uint32_t db_id, stmt_id;
  std::vector<wire::Value> params;
  if (!r.body.u32_pair(&db_id, &stmt_id)) return malformed(r);
  if (Status s = r.body.params(r.schema, &params); !s.ok()) return fail(s);
  auto it = stmts_.find(stmt_id);
  if (it == stmts_.end() || it->second.db != db_id) {
    return fail(SQLITE_NOTFOUND, "no statement with id " + std::to_string(stmt_id));
  }
  run_sql(db_id, it->second.sql, sql_params(std::move(params)), is_query(r.type), it->second.kind);
}

void Session::handle_exec_sql(Request& r) {
  uint64_t db_id;
  std::string sql;
  std::vector<wire::Value> params;
  if (!r.body.u64(&db_id) || !r.body.text(&sql)) return malformed(r);
  if (Status s = r.body.params(r.schema, &params); !s.ok()) return fail(s);
  if (!wire::valid_utf8(sql)) return fail(SQLITE_ERROR, "SQL text is not valid UTF-8");
  const StmtKind kind = classify_sql(sql);
  run_sql(uint32_t(db_id), std::move(sql), sql_params(std::move(params)), is_query(r.type), kind);
}

void Session::handle_finalize(Request& r) {
  uint32_t db_id, stmt_id;
  if (!r.body.u32_pair(&db_id, &stmt_id)) return malformed(r);
  auto it = stmts_.find(stmt_id);
  if (it == stmts_.end() || it->second.db != db_id) {
    return fail(SQLITE_NOTFOUND, "no statement with id " + std::to_string(stmt_id));
  }
  stmts_.erase(it);
  reply_empty();
  done();
}

}  // namespace sqraft
