// Requests: the queue of pipelined requests, one handler per request type,
// and the database and statement tables of the connection.
#include "session.h"

#include <spdlog/spdlog.h>

#include <cassert>
#include <chrono>
#include <cstring>
#include <utility>

#include "vfs.h"
#include "limits.h"

namespace sqraft {

void Session::dispatch(Message m) {
  if (m.header.type == wire::kInterrupt) {
    if (stream_rows_) {
      handle_interrupt();
      return;
    }
    if (busy_ && (current_type_ == wire::kQuery || current_type_ == wire::kQuerySql) && !interrupt_pending_) {
      // The query's first batch is not out yet: the query stops; the rows
      // it made so far go out, then EMPTY.
      interrupt_pending_ = true;
      cancel_ = uint8_t(StopReason::kClientInterrupt);
      return;
    }
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
  if (interrupt_pending_) {  // the query ended (or failed) before streaming
    interrupt_pending_ = false;
    reply_empty();
  }
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

// ---- requests ------------------------------------------------------------------

bool Session::retry_parked() {
  if (!parked_ || closing_) return false;
  if (!node_.leader_ready() && raft_state(node_.raft()) == RAFT_LEADER &&
      std::chrono::steady_clock::now() < parked_until_) {
    return true;
  }
  Message m = std::move(*parked_);
  parked_.reset();
  handle(m, /*retry=*/true);  // ready (it runs) or not the leader any more (it fails)
  return false;
}

void Session::handle(Message& m, bool retry) {
  if (!retry) node_.metrics().requests[m.header.type]++;
  busy_ = true;
  const uint8_t type = m.header.type;
  current_type_ = type;
  const uint8_t schema = m.header.schema;
  const bool needs_leader = type == wire::kOpen || type == wire::kPrepare || type == wire::kExec ||
                            type == wire::kQuery || type == wire::kExecSql || type == wire::kQuerySql;
  if (needs_leader && !node_.leader_ready() && raft_state(node_.raft()) == RAFT_LEADER) {
    // Just elected: wait (up to an election timeout) until everything earlier
    // leaders committed is applied, rather than send the client away.
    parked_until_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(node_.raft()->election_timeout);
    parked_ = std::move(m);
    node_.park(id_);
    return;
  }
  wire::BodyReader r(m.body);
  auto malformed = [&] {
    reply_failure(wire::kErrProto, std::string("malformed ") + wire::request_name(type) + " request");
    done();
  };
  if (schema > 1) {
    reply_failure(wire::kErrProto, "unsupported schema " + std::to_string(schema) + " for " + wire::request_name(type));
    done();
    return;
  }
  switch (type) {
    case wire::kLeader: {
      raft_id id = 0;
      const char* address = nullptr;
      raft_leader(node_.raft(), &id, &address);
      wire::BodyWriter w;
      w.u64(id);
      w.text(address ? address : "");
      send(w.finish(wire::kServer));
      done();
      return;
    }
    case wire::kClient: {
      if (!r.u64(&client_id_)) return malformed();
      wire::BodyWriter w;
      w.u64(node_.raft()->heartbeat_timeout);
      send(w.finish(wire::kWelcome));
      done();
      return;
    }
    case wire::kHeartbeat: {
      // Legacy: the body is a timestamp; the answer is the server list
      // without roles.
      uint64_t timestamp;
      if (!r.u64(&timestamp)) return malformed();
      send_servers(0);
      done();
      return;
    }
    case wire::kCluster:
      return handle_cluster(r);
    case wire::kOpen:
      return handle_open(r);
    case wire::kPrepare:
      return handle_prepare(r, schema);
    case wire::kExec:
    case wire::kQuery: {
      uint32_t db_id, stmt_id;
      std::vector<wire::Value> params;
      if (!r.u32_pair(&db_id, &stmt_id)) return malformed();
      if (Status s = r.params(schema, &params); !s.ok()) {
        reply_failure(s);
        done();
        return;
      }
      auto it = stmts_.find(stmt_id);
      if (it == stmts_.end() || it->second.db != db_id) {
        reply_failure(SQLITE_NOTFOUND, "no statement with id " + std::to_string(stmt_id));
        done();
        return;
      }
      return handle_sql(db_id, it->second.sql, std::move(params), type == wire::kQuery, it->second.kind);
    }
    case wire::kFinalize:
      return handle_finalize(r);
    case wire::kExecSql:
    case wire::kQuerySql: {
      uint64_t db_id;
      std::string sql;
      std::vector<wire::Value> params;
      if (!r.u64(&db_id) || !r.text(&sql)) return malformed();
      if (Status s = r.params(schema, &params); !s.ok()) {
        reply_failure(s);
        done();
        return;
      }
      if (!wire::valid_utf8(sql)) {
        reply_failure(SQLITE_ERROR, "SQL text is not valid UTF-8");
        done();
        return;
      }
      const StmtKind kind = classify_sql(sql);
      return handle_sql(uint32_t(db_id), std::move(sql), std::move(params), type == wire::kQuerySql, kind);
    }
    case wire::kInterrupt:
      reply_empty();  // nothing is streaming
      done();
      return;
    case wire::kConnect:
      reply_failure(wire::kErrProto, "CONNECT is only valid as the first request");
      close("late CONNECT");
      return;
    case wire::kAdd:
    case wire::kAssign:
    case wire::kRemove:
    case wire::kTransfer:
      return handle_membership(type, r);
    case wire::kDump:
      return handle_dump(r);
    case wire::kDescribe: {
      uint64_t format;
      if (!r.u64(&format)) return malformed();
      if (format != 0) {
        reply_failure(wire::kErrProto, "unknown describe format " + std::to_string(format));
        done();
        return;
      }
      wire::BodyWriter w;
      w.u64(node_.failure_domain());
      w.u64(node_.weight());
      send(w.finish(wire::kMetadata));
      done();
      return;
    }
    case wire::kWeight: {
      uint64_t weight;
      if (!r.u64(&weight)) return malformed();
      node_.set_weight(weight);
      reply_empty();
      done();
      return;
    }
    default:
      reply_failure(wire::kErrProto, "unknown request type " + std::to_string(type));
      done();
      return;
  }
}

Session::Db* Session::db(uint64_t id, bool need_leader) {
  if (need_leader && !node_.leader_ready()) {
    reply_failure(Status::NotLeader());
    done();
    return nullptr;
  }
  auto it = dbs_.find(uint32_t(id));
  if (id > UINT32_MAX || it == dbs_.end()) {
    reply_failure(SQLITE_NOTFOUND, "no database with id " + std::to_string(id) + " is open on this connection");
    done();
    return nullptr;
  }
  return &it->second;
}

void Session::handle_open(wire::BodyReader& r) {
  std::string name, vfs_name;
  uint64_t flags;
  if (!r.text(&name) || !r.u64(&flags) || !r.text(&vfs_name)) {
    reply_failure(wire::kErrProto, "malformed open request");
    return done();
  }
  if (!node_.leader_ready()) {
    reply_failure(Status::NotLeader());
    return done();
  }
  if (!wire::valid_utf8(name)) {
    reply_failure(SQLITE_CANTOPEN, "database name is not valid UTF-8");
    return done();
  }
  if (Status s = Vfs::validate_name(name); !s.ok()) {
    reply_failure(SQLITE_CANTOPEN, s.message());
    return done();
  }
  for (auto& [id, d] : dbs_) {
    if (d.name == name) {
      wire::BodyWriter w;
      w.u32_pair(id, 0);
      send(w.finish(wire::kDb));
      return done();
    }
  }
  if (dbs_.size() >= kMaxDbs) {
    reply_failure(SQLITE_CANTOPEN, "too many databases open on this connection (limit " + std::to_string(kMaxDbs) + ")");
    return done();
  }
  if (Status s = node_.may_open(name); !s.ok()) {
    reply_failure(s);
    return done();
  }
  job_started();
  Vfs* vfs = &node_.vfs();
  const bool submitted = node_.readers().submit([this, vfs, name] {
    Result<sqlite3*> conn = vfs->open(name);
    if (conn.ok()) sqlite3_busy_timeout(conn.value(), kReaderBusyTimeoutMs);
    if (!node_.post([this, name, conn = std::move(conn)]() mutable {
          if (!job_finished()) {
            if (conn.ok()) sqlite3_close_v2(conn.value());
            return;
          }
          if (!conn.ok()) {
            reply_failure(conn.status());
            return done();
          }
          const uint32_t id = next_db_++;
          Db& d = dbs_[id];
          d.name = name;
          d.conn = conn.value();
          d.guard = std::make_unique<SqlGuard>(d.conn, node_.sql_limits(), node_.sql_stopping(), true);
          d.cache = std::make_unique<StmtCache>(d.conn);
          d.writer = &node_.writer(name);
          wire::BodyWriter w;
          w.u32_pair(id, 0);
          send(w.finish(wire::kDb));
          done();
        })) {
      if (conn.ok()) sqlite3_close_v2(conn.value());
    }
  });
  if (!submitted) {
    job_undone();
    reply_failure(Status::LeadershipLost("leadership lost: node is shutting down"));
    done();
  }
}

void Session::handle_prepare(wire::BodyReader& r, uint8_t schema) {
  uint64_t db_id;
  std::string sql;
  if (!r.u64(&db_id) || !r.text(&sql)) {
    reply_failure(wire::kErrProto, "malformed prepare request");
    return done();
  }
  Db* d = db(db_id, true);
  if (d == nullptr) return;
  if (!wire::valid_utf8(sql)) {
    reply_failure(SQLITE_ERROR, "SQL text is not valid UTF-8");
    return done();
  }
  if (stmts_.size() >= kMaxStmts) {
    reply_failure(SQLITE_ERROR, "too many prepared statements on this connection (limit " + std::to_string(kMaxStmts) + ")");
    return done();
  }
  auto finish = [this, db_id = uint32_t(db_id), sql, schema](const Status& st, uint64_t params, uint64_t tail,
                                                            StmtKind kind) {
    if (!st.ok()) {
      reply_failure(st);
      if (st.is_not_leader() || st.is_leadership_lost()) drop_db(db_id);
      return done();
    }
    bool tail_empty = true;
    for (size_t i = tail; i < sql.size(); i++) {
      if (!std::isspace(static_cast<unsigned char>(sql[i])) && sql[i] != ';') tail_empty = false;
    }
    if (schema == 0 && !tail_empty) {
      reply_failure(SQLITE_ERROR, "nonempty statement tail");
      return done();
    }
    const uint32_t id = next_stmt_++;
    stmts_[id] = Stmt{db_id, sql.substr(0, tail), kind, params};
    wire::BodyWriter w;
    w.u32_pair(db_id, id);
    w.u64(params);
    if (schema == 1) w.u64(tail);
    send(w.finish(wire::kStmt, schema));
    done();
  };
  if (d->in_txn) {
    DbWriter::Request req;
    req.session = id_;
    req.kind = DbWriter::Kind::kPrepare;
    req.sql = sql;
    req.expect_owner = true;
    job_started();
    req.done = [this, finish, sql](DbWriter::Reply rep) {
      back_to_loop([this, finish, rep = std::move(rep), sql]() {
        if (!job_finished()) return;
        StmtKind kind = classify_sql(sql.substr(0, rep.tail));
        // kOther stays: each EXEC finds out whether it touches TEMP objects.
        finish(rep.status, rep.params, rep.tail, kind);
      });
    };
    if (!d->writer->submit(std::move(req))) {
      job_undone();
      reply_failure(Status::Busy("database is locked: too many queued writes"));
      done();
    }
    return;
  }
  sqlite3* conn = d->conn;
  start_read_job([this, conn, sql, finish] {
    sqlite3_stmt* stmt = nullptr;
    const char* tail = nullptr;
    int rc = sqlite3_prepare_v2(conn, sql.c_str(), int(sql.size()), &stmt, &tail);
    Status st = rc == SQLITE_OK ? Status::Ok() : sqlite_error(conn, rc);
    uint64_t params = 0;
    uint64_t tail_off = tail ? uint64_t(tail - sql.c_str()) : sql.size();
    StmtKind kind = StmtKind::kOther;
    if (st.ok() && stmt == nullptr) st = Status::Error(SQLITE_ERROR, "empty statement");
    if (st.ok()) {
      params = uint64_t(sqlite3_bind_parameter_count(stmt));
      kind = classify_sql(sql.substr(0, tail_off));
      // Other writes stay kOther: each EXEC finds out whether they only
      // touch the client's TEMP objects.
      if (kind == StmtKind::kOther && sqlite3_stmt_readonly(stmt)) kind = StmtKind::kRead;
    }
    sqlite3_finalize(stmt);
    back_to_loop([this, st, params, tail_off, kind, finish]() {
      if (!job_finished()) return;
      finish(st, params, tail_off, kind);
    });
  });
}

void Session::handle_finalize(wire::BodyReader& r) {
  uint32_t db_id, stmt_id;
  if (!r.u32_pair(&db_id, &stmt_id)) {
    reply_failure(wire::kErrProto, "malformed finalize request");
    return done();
  }
  auto it = stmts_.find(stmt_id);
  if (it == stmts_.end() || it->second.db != db_id) {
    reply_failure(SQLITE_NOTFOUND, "no statement with id " + std::to_string(stmt_id));
    return done();
  }
  stmts_.erase(it);
  reply_empty();
  done();
}

void Session::handle_sql(uint32_t db_id, std::string sql, std::vector<wire::Value> params, bool query, StmtKind kind) {
  Db* d = db(db_id, true);
  if (d == nullptr) return;
  // Once the client has TEMP objects, any statement but BEGIN/COMMIT may be
  // about them: prepare it on the client's connection to find out.
  if (d->has_temp && kind != StmtKind::kBegin && kind != StmtKind::kEnd) {
    return classify_then_run(db_id, std::move(sql), std::move(params), query);
  }
  if (d->in_txn && kind != StmtKind::kOther) return run_on_writer(db_id, std::move(sql), std::move(params), query, false);
  switch (kind) {
    case StmtKind::kRead:
      return run_on_reader(db_id, std::move(sql), std::move(params), query);
    case StmtKind::kWrite:
      return run_on_writer(db_id, std::move(sql), std::move(params), query, !query);
    case StmtKind::kWriteExclusive:
    case StmtKind::kBegin:
    case StmtKind::kEnd:
      return run_on_writer(db_id, std::move(sql), std::move(params), query, false);
    case StmtKind::kOther:
      return classify_then_run(db_id, std::move(sql), std::move(params), query);
  }
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

}  // namespace sqraft
