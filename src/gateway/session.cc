#include "session.h"

#include <spdlog/spdlog.h>

#include <cassert>
#include <chrono>
#include <cstring>
#include <utility>

#include "address.h"
#include "byte_order.h"
#include "db_writer.h"
#include "snapshot_codec.h"
#include "vfs.h"

namespace sqraft {

namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kRowsBatchBytes = 64 * 1024;

constexpr size_t kMaxQueued = 64;
constexpr int kReaderBusyTimeoutMs = 5000;
constexpr size_t kMaxDbs = 16;
constexpr size_t kMaxStmts = 4096;
constexpr uint64_t kMaxConnectBody = 4096;

uint64_t wire_role(int raft_role) {
  switch (raft_role) {
    case RAFT_VOTER: return wire::kRoleVoter;
    case RAFT_STANDBY: return wire::kRoleStandby;
    default: return wire::kRoleSpare;
  }
}


std::string peer_name(uv_stream_t* s) {
  if (s->type != UV_TCP) return "unix socket";
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (uv_tcp_getpeername(reinterpret_cast<uv_tcp_t*>(s), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[64] = {0};
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    uv_ip4_name(in, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  uv_ip6_name(in6, host, sizeof host);
  return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
}

}  // namespace

Session::Session(GatewayContext& node, uint64_t id, uv_stream_t* stream) : node_(node), id_(id), stream_(stream) {
  stream_->data = this;
}

Session::~Session() {
  stream_rows_.reset();
  for (auto& [id, d] : dbs_) close_db(d);
  for (auto& d : graveyard_) close_db(d);
}

void Session::close_db(Db& d) {
  d.cache.reset();
  d.guard.reset();
  if (d.conn) sqlite3_close_v2(d.conn);
  d.conn = nullptr;
}

void Session::start() {
  int rv = uv_read_start(stream_, on_alloc, on_read);
  if (rv != 0) close(std::string("read: ") + uv_strerror(rv));
}

void Session::close(const std::string& why) {
  if (closing_) return;
  closing_ = true;
  cancel_ = uint8_t(StopReason::kClientGone);  // stops this client's SQL wherever it runs
  spdlog::debug("session {}: closing: {}", id_, why);
  for (auto& [id, d] : dbs_) {
    if (d.writer) d.writer->release(id_);
  }
  if (stream_ != nullptr) {
    uv_read_stop(stream_);
    uv_close(reinterpret_cast<uv_handle_t*>(stream_), [](uv_handle_t* h) {
      auto* s = static_cast<Session*>(h->data);
      raft_free(h);
      s->stream_ = nullptr;
      s->stream_closed_ = true;
      if (s->reapable()) s->node_.reap(s);
    });
  } else {
    stream_closed_ = true;
  }
}

void Session::start_read_job(std::function<void()> task) {
  job_started();
  if (node_.readers().submit(std::move(task))) return;
  // The pool has stopped: the node is shutting down.
  job_undone();
  reply_failure(Status::LeadershipLost("leadership lost: node is shutting down"));
  done();
}

void Session::back_to_loop(std::function<void()> fn) {
  // Refused only once the loop is gone: the node is stopping and frees every
  // session itself after its threads end, so the completion has nobody to
  // tell. Dropping it loses nothing.
  (void)node_.post(std::move(fn));
}

bool Session::job_finished() {
  job_undone();
  if (closing_) {
    if (reapable()) node_.reap(this);
    return false;
  }
  return true;
}

void Session::on_leadership_lost() {}

// ---- reading -------------------------------------------------------------------

void Session::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* s = static_cast<Session*>(h->data);
  size_t want = kReadChunk;
  // Until we know this is a client, read exactly what the current step
  // needs: a peer's Raft traffic follows its CONNECT request on the same
  // socket and must be left for Raft.
  const size_t have = s->in_.size() - s->in_used_;
  switch (s->phase_) {
    case Phase::kHandshake:
    case Phase::kFirstHeader:
      want = 8 - std::min<size_t>(have, 7);
      break;
    case Phase::kFirstBody:
      want = size_t(s->pending_header_->words) * wire::kWord - have;
      break;
    case Phase::kClient:
      break;
  }
  if (want == 0) want = 1;
  s->read_buf_.resize(want);
  buf->base = reinterpret_cast<char*>(s->read_buf_.data());
  buf->len = want;
}

void Session::on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
  auto* s = static_cast<Session*>(stream->data);
  if (s->closing_) return;
  if (n < 0) {
    s->close(n == UV_EOF ? "peer closed the connection" : std::string("read: ") + uv_strerror(int(n)));
    return;
  }
  if (n > 0) s->on_bytes(reinterpret_cast<const uint8_t*>(buf->base), size_t(n));
}

void Session::on_bytes(const uint8_t* data, size_t n) {
  if (in_used_ > 0 && in_used_ == in_.size()) {
    in_.clear();
    in_used_ = 0;
  } else if (in_used_ > kReadChunk) {
    in_.erase(in_.begin(), in_.begin() + long(in_used_));
    in_used_ = 0;
  }
  in_.insert(in_.end(), data, data + n);
  parse();
}

void Session::parse() {
  while (!closing_) {
    const size_t have = in_.size() - in_used_;
    const uint8_t* p = in_.data() + in_used_;
    if (phase_ == Phase::kHandshake) {
      if (have < 8) return;
      const uint64_t version = get_le64(p);
      in_used_ += 8;
      if (version != wire::kProtocolVersion && version != wire::kProtocolVersionLegacy) {
        spdlog::warn("connection from {}: unsupported protocol version {:#x}; closing", peer_name(stream_), version);
        close("bad protocol version");
        return;
      }
      phase_ = Phase::kFirstHeader;
      continue;
    }
    if (!pending_header_) {
      if (have < wire::kHeaderSize) return;
      wire::Header h = wire::decode_header(p);
      in_used_ += wire::kHeaderSize;
      const uint64_t len = uint64_t(h.words) * wire::kWord;
      if (phase_ == Phase::kFirstHeader) {
        if (h.type == wire::kConnect) {
          if (len > kMaxConnectBody) {
            spdlog::warn("connection from {}: CONNECT request of {} bytes; closing", peer_name(stream_), len);
            close("oversized CONNECT");
            return;
          }
          phase_ = Phase::kFirstBody;
        } else {
          phase_ = Phase::kClient;
        }
      }
      if (len > node_.max_message_bytes()) {
        spdlog::warn("session {}: {} request of {} bytes exceeds the limit of {}; closing", id_,
                     wire::request_name(h.type), len, node_.max_message_bytes());
        send(wire::failure(wire::kErrProto, "message of " + std::to_string(len) + " bytes exceeds the limit of " +
                                                std::to_string(node_.max_message_bytes()) + " bytes"),
             [this] { close("oversized message"); });
        uv_read_stop(stream_);
        return;
      }
      pending_header_ = h;
      continue;
    }
    const size_t len = size_t(pending_header_->words) * wire::kWord;
    if (have < len) return;
    Message m;
    m.header = *pending_header_;
    m.body.assign(p, p + len);
    in_used_ += len;
    pending_header_.reset();
    if (phase_ == Phase::kFirstBody) {
      hand_to_raft(m);
      return;
    }
    dispatch(std::move(m));
  }
}

void Session::hand_to_raft(const Message& m) {
  wire::BodyReader r(m.body);
  uint64_t peer_id = 0;
  std::string address;
  if (!r.u64(&peer_id) || !r.text(&address) || peer_id == 0) {
    spdlog::warn("connection from {}: malformed CONNECT request; closing", peer_name(stream_));
    close("malformed CONNECT");
    return;
  }
  uv_read_stop(stream_);
  uv_stream_t* s = stream_;
  stream_ = nullptr;
  closing_ = true;
  stream_closed_ = true;
  spdlog::debug("raft peer {} ({}) connected", peer_id, address);
  node_.hand_to_raft(peer_id, address, s);
  node_.reap(this);
}

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

// ---- writing -------------------------------------------------------------------

namespace {
struct WriteReq {
  uv_write_t req;
  std::vector<uint8_t> data;
  std::function<void()> after;
};
}  // namespace

void Session::send(std::vector<uint8_t> msg, std::function<void()> after) {
  if (stream_ == nullptr || closing_) return;
  auto* w = new WriteReq{{}, std::move(msg), std::move(after)};
  w->req.data = w;
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(w->data.data()), unsigned(w->data.size()));
  int rv = uv_write(&w->req, stream_, &buf, 1, [](uv_write_t* req, int status) {
    auto* wr = static_cast<WriteReq*>(req->data);
    if (status == 0 && wr->after) wr->after();
    delete wr;
  });
  if (rv != 0) {
    delete w;
    close(std::string("write: ") + uv_strerror(rv));
  }
}

void Session::reply_failure(uint64_t code, const std::string& message) {
  node_.metrics().error(code);
  send(wire::failure(code, message));
}

void Session::reply_failure(const Status& s) {
  reply_failure(uint64_t(uint32_t(s.code())), s.message());
}

void Session::reply_empty() {
  wire::BodyWriter w;
  w.u64(0);
  send(w.finish(wire::kEmpty));
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

bool Session::try_read_inline(uint32_t db_id, const std::string& sql, const std::vector<wire::Value>& params) {
  Db& d = dbs_.at(db_id);
  // Only statements already run once on the pool and found to have a
  // bounded cost per step (bounded_cost()); the rest always run there.
  sqlite3_stmt* stmt = d.cache->get_bounded(sql);
  if (stmt == nullptr || !bind_params(stmt, params).ok()) return false;  // the pool path reports it
  // The loop thread runs Raft: a read may run here only under a budget that
  // bounds it before it starts (a few thousand VM steps, 2 ms, values of at
  // most 256 KiB so that no single step is long) and never waits for a lock.
  d.guard->arm_inline(&cancel_);
  sqlite3_busy_timeout(d.conn, 0);
  auto cursor = std::make_unique<RowCursor>(stmt);
  bool done_rows = false;
  Result<std::vector<uint8_t>> batch = cursor->next_batch(d.conn, kRowsBatchBytes, &done_rows);
  const bool over_budget = d.guard->reason() == StopReason::kInlineBudget;
  d.guard->disarm();
  sqlite3_busy_timeout(d.conn, kReaderBusyTimeoutMs);
  // Too long, too big or blocked: the cursor's reset undoes it; run it again
  // on the pool.
  if (over_budget || (!batch.ok() && (batch.status().is_busy() || (batch.status().code() & 0xff) == SQLITE_TOOBIG))) {
    return false;
  }
  job_started();
  if (!done_rows && batch.ok()) {
    stream_rows_.emplace();
    stream_rows_->db = db_id;
    stream_rows_->cursor = std::move(cursor);
  }
  on_rows(db_id, std::move(batch), done_rows, false);
  return true;
}

void Session::run_on_reader(uint32_t db_id, std::string sql, std::vector<wire::Value> params, bool query) {
  // Most reads are short: answering them on the loop thread saves two
  // thread hand-offs. A read has no side effects, so one that turns out long
  // is abandoned and started again on the reader pool.
  if (query && try_read_inline(db_id, sql, params)) return;
  Db& d = dbs_.at(db_id);
  sqlite3* conn = d.conn;
  StmtCache* cache = d.cache.get();
  SqlGuard* guard = d.guard.get();
  start_read_job([this, db_id, conn, cache, guard, sql = std::move(sql), params = std::move(params), query] {
    guard->arm(&cancel_);
    if (query) {
      Result<sqlite3_stmt*> stmt = cache->get(sql);
      Status st = stmt.status();
      if (st.ok()) st = bind_params(stmt.value(), params);
      if (!st.ok()) {
        guard->disarm();
        back_to_loop([this, db_id, st] { on_rows(db_id, st, true, false); });
        return;
      }
      auto cursor = std::make_shared<RowCursor>(stmt.value());
      bool done_rows = false;
      Result<std::vector<uint8_t>> batch = cursor->next_batch(conn, kRowsBatchBytes, &done_rows);
      guard->disarm();
      // Whether later runs may be answered on the loop thread.
      if (done_rows) cache->learn_cost(sql);
      back_to_loop([this, db_id, cursor, batch = std::move(batch), done_rows]() mutable {
        if (!done_rows && !closing_) {
          stream_rows_.emplace();
          stream_rows_->db = db_id;
          stream_rows_->cursor.reset(new RowCursor(std::move(*cursor)));
        }
        on_rows(db_id, std::move(batch), done_rows, false);
      });
      return;
    }
    Result<ExecOutcome> out = ExecOutcome{};
    if (single_statement(sql)) {
      Result<sqlite3_stmt*> stmt = cache->get(sql);
      if (!stmt.ok()) {
        out = stmt.status();
      } else if (Status b = bind_params(stmt.value(), params); !b.ok()) {
        out = b;
      } else {
        out = step_all(conn, stmt.value());
      }
    } else {
      out = exec_script(conn, sql, params);
    }
    guard->disarm();
    back_to_loop([this, out = std::move(out)]() {
      if (!job_finished()) return;
      if (!out.ok()) {
        reply_failure(out.status());
        return done();
      }
      wire::BodyWriter w;
      w.u64(out.value().last_insert_id);
      w.u64(out.value().rows_affected);
      send(w.finish(wire::kResult));
      done();
    });
  });
}

void Session::classify_then_run(uint32_t db_id, std::string sql, std::vector<wire::Value> params, bool query) {
  Db& d = dbs_.at(db_id);
  sqlite3* conn = d.conn;
  SqlGuard* guard = d.guard.get();
  start_read_job([this, db_id, conn, guard, sql = std::move(sql), params = std::move(params), query]() mutable {
    // Prepare every statement: reads of the shared database and anything
    // that only touches this client's TEMP objects stay on its connection,
    // the rest goes to the writer.
    bool readonly = true;
    Touches touches;
    Status st;
    const char* tail = sql.c_str();
    const char* end = tail + sql.size();
    guard->record(&touches);
    while (tail < end && st.ok()) {
      sqlite3_stmt* stmt = nullptr;
      int rc = sqlite3_prepare_v2(conn, tail, int(end - tail), &stmt, &tail);
      if (rc != SQLITE_OK) {
        // The statement may depend on an earlier one of the same script
        // (CREATE then INSERT): let the writer run it and report.
        readonly = false;
        touches.writes_shared = true;
        break;
      }
      if (stmt == nullptr) break;
      if (!sqlite3_stmt_readonly(stmt) || classify_sql(sqlite3_sql(stmt)) == StmtKind::kBegin ||
          classify_sql(sqlite3_sql(stmt)) == StmtKind::kEnd) {
        readonly = false;
      }
      sqlite3_finalize(stmt);
    }
    guard->record(nullptr);
    touches.resolve(conn);
    back_to_loop([this, db_id, sql = std::move(sql), params = std::move(params), query, readonly,
                touches = std::move(touches)]() mutable {
      if (!job_finished()) return;
      auto it = dbs_.find(db_id);
      if (it == dbs_.end()) {
        reply_failure(SQLITE_NOTFOUND, "no database with id " + std::to_string(db_id) + " is open on this connection");
        return done();
      }
      const bool in_txn = it->second.in_txn;
      if (touches.writes_temp || touches.reads_temp) {
        // TEMP objects live on this client's connection. Writes of the
        // replicated database run on the shared writer connection, which
        // cannot see them; inside a transaction, this connection cannot see
        // the transaction's own changes.
        if (touches.writes_shared) {
          reply_failure(SQLITE_ERROR,
                        "a statement that writes the replicated database cannot use this connection's TEMP "
                        "objects; copy the data in separate statements");
          return done();
        }
        if (in_txn && touches.reads_shared) {
          reply_failure(SQLITE_ERROR,
                        "inside a transaction, a statement cannot combine this connection's TEMP objects with "
                        "the replicated database");
          return done();
        }
        if (touches.writes_temp) it->second.has_temp = true;
        return run_on_reader(db_id, std::move(sql), std::move(params), query);
      }
      if (readonly && !touches.txn_control && !in_txn) {
        return run_on_reader(db_id, std::move(sql), std::move(params), query);
      }
      run_on_writer(db_id, std::move(sql), std::move(params), query, false);
    });
  });
}

void Session::run_on_writer(uint32_t db_id, std::string sql, std::vector<wire::Value> params, bool query,
                            bool batchable) {
  Db& d = dbs_.at(db_id);
  DbWriter::Request req;
  req.session = id_;
  req.kind = query ? DbWriter::Kind::kQuery : DbWriter::Kind::kExec;
  req.sql = std::move(sql);
  req.params = std::move(params);
  req.batchable = batchable;
  req.expect_owner = d.in_txn;
  req.cancel = &cancel_;
  job_started();
  req.done = [this, db_id, query](DbWriter::Reply rep) {
    back_to_loop([this, db_id, query, rep = std::move(rep)]() mutable {
      if (!job_finished()) return;
      auto it = dbs_.find(db_id);
      if (it != dbs_.end()) it->second.in_txn = rep.in_txn;
      if (!rep.status.ok()) {
        if (rep.status.is_not_leader() || rep.status.is_leadership_lost()) drop_db(db_id);
        if (query && stopped_by_interrupt(rep.status)) {
          interrupt_pending_ = false;
          return end_stream_interrupted();
        }
        return fail_stream(rep.status);
      }
      if (!query) {
        wire::BodyWriter w;
        w.u64(rep.outcome.last_insert_id);
        w.u64(rep.outcome.rows_affected);
        send(w.finish(wire::kResult));
        return done();
      }
      for (size_t i = 0; i + 1 < rep.rows.size(); i++) send(std::move(rep.rows[i]));
      std::vector<uint8_t> last = rep.rows.empty() ? std::vector<uint8_t>() : std::move(rep.rows.back());
      if (rep.rows_done) {
        if (!last.empty()) send(std::move(last));
        return end_stream_done();
      }
      if (!stream_rows_) {
        stream_rows_.emplace();
        stream_rows_->db = db_id;
        stream_rows_->on_writer = true;
      }
      if (interrupt_pending_) {
        interrupt_pending_ = false;
        send(std::move(last));
        return end_stream_interrupted();
      }
      if (stream_rows_->interrupted) return end_stream_interrupted();
      send(std::move(last), [this] { next_rows(); });
    });
  };
  if (!d.writer->submit(std::move(req))) {
    job_undone();
    reply_failure(Status::Busy("database is locked: too many queued writes"));
    done();
  }
}

void Session::on_rows(uint32_t db_id, Result<std::vector<uint8_t>> batch, bool done_rows, bool on_writer) {
  (void)db_id;
  (void)on_writer;
  if (!job_finished()) return;
  if (!batch.ok()) {
    if (stopped_by_interrupt(batch.status())) {
      interrupt_pending_ = false;
      return end_stream_interrupted();
    }
    return fail_stream(batch.status());
  }
  if (done_rows) {
    send(std::move(batch).value());
    return end_stream_done();
  }
  if (interrupt_pending_) {  // the first batch goes out, then EMPTY
    interrupt_pending_ = false;
    send(std::move(batch).value());
    return end_stream_interrupted();
  }
  if (stream_rows_ && stream_rows_->interrupted) return end_stream_interrupted();
  send(std::move(batch).value(), [this] { next_rows(); });
}

void Session::next_rows() {
  if (closing_ || !stream_rows_) return;
  if (stream_rows_->interrupted) return end_stream_interrupted();
  const uint32_t db_id = stream_rows_->db;
  if (dbs_.count(db_id) == 0) return fail_stream(Status::NotFound("database closed during the query"));
  Db& d = dbs_.at(db_id);
  if (stream_rows_->on_writer) {
    DbWriter::Request req;
    req.session = id_;
    req.kind = DbWriter::Kind::kNextRows;
    req.expect_owner = true;
    req.cancel = &cancel_;
    job_started();
    req.done = [this, db_id](DbWriter::Reply rep) {
      back_to_loop([this, db_id, rep = std::move(rep)]() mutable {
        if (!job_finished()) return;
        auto it = dbs_.find(db_id);
        if (it != dbs_.end()) it->second.in_txn = rep.in_txn;
        if (stopped_by_interrupt(rep.status)) return end_stream_interrupted();
        if (!rep.status.ok() || rep.rows.empty()) {
          return fail_stream(rep.status.ok() ? Status::Internal("no rows") : rep.status);
        }
        on_rows_from_writer(std::move(rep));
      });
    };
    if (!d.writer->submit(std::move(req))) {
      job_undone();
      fail_stream(Status::Busy("database is locked: too many queued writes"));
    }
    return;
  }
  RowCursor* cursor = stream_rows_->cursor.get();
  sqlite3* conn = d.conn;
  SqlGuard* guard = d.guard.get();
  start_read_job([this, db_id, cursor, conn, guard] {
    guard->arm(&cancel_);
    bool done_rows = false;
    Result<std::vector<uint8_t>> batch = cursor->next_batch(conn, kRowsBatchBytes, &done_rows);
    guard->disarm();
    back_to_loop([this, db_id, batch = std::move(batch), done_rows]() mutable {
      on_rows(db_id, std::move(batch), done_rows, false);
    });
  });
}

void Session::on_rows_from_writer(DbWriter::Reply rep) {
  std::vector<uint8_t> last = std::move(rep.rows.back());
  if (rep.rows_done) {
    send(std::move(last));
    return end_stream_done();
  }
  if (stream_rows_ && stream_rows_->interrupted) return end_stream_interrupted();
  send(std::move(last), [this] { next_rows(); });
}

void Session::fail_stream(const Status& status) {
  // The FAILURE ends the stream; an INTERRUPT sent during it is still owed
  // its EMPTY.
  const bool interrupted = stream_rows_ && stream_rows_->interrupted;
  stream_rows_.reset();
  reply_failure(status);
  if (interrupted) reply_empty();
  done();
}

void Session::end_stream_done() {
  // An INTERRUPT that arrived while the last batch was being produced is
  // still owed its EMPTY: the client reads until it gets one.
  const bool interrupted = std::exchange(interrupt_pending_, false) || (stream_rows_ && stream_rows_->interrupted);
  stream_rows_.reset();
  if (interrupted) reply_empty();
  done();
}

void Session::handle_interrupt() {
  // The stream ends once the batch in flight is handled (the guard stops
  // it early); EMPTY follows, one for every INTERRUPT.
  if (stream_rows_->interrupted) owed_empties_++;
  stream_rows_->interrupted = true;
  cancel_ = uint8_t(StopReason::kClientInterrupt);
}

bool Session::stopped_by_interrupt(const Status& s) const {
  // The guard's message says why it stopped the statement: only a stop for
  // this client's INTERRUPT ends the stream with EMPTY alone (a deadline
  // that passes after an INTERRUPT is still reported).
  return (s.code() & 0xff) == SQLITE_INTERRUPT && cancel_.load() == uint8_t(StopReason::kClientInterrupt) &&
         s.message() == SqlGuard::kInterruptedByClient;
}

void Session::end_stream_interrupted() {
  const bool on_writer = stream_rows_ && stream_rows_->on_writer;
  const uint32_t db_id = stream_rows_ ? stream_rows_->db : 0;
  stream_rows_.reset();  // a reader cursor's statement is reset on its next use
  // Only a client's own transaction keeps a cursor on the writer; outside
  // one the writer has already dropped it (and another client may own the
  // writer, so a cancel request would wait behind its transaction).
  if (on_writer && dbs_.count(db_id) && dbs_.at(db_id).in_txn) {
    DbWriter::Request req;
    req.session = id_;
    req.kind = DbWriter::Kind::kCancelRows;
    req.expect_owner = true;
    job_started();
    req.done = [this, db_id](DbWriter::Reply rep) {
      back_to_loop([this, db_id, rep = std::move(rep)]() {
        if (!job_finished()) return;
        auto it = dbs_.find(db_id);
        if (it != dbs_.end()) it->second.in_txn = rep.in_txn;
        reply_empty();
        done();
      });
    };
    if (dbs_.at(db_id).writer->submit(std::move(req))) return;
    job_undone();
  }
  reply_empty();
  done();
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

void Session::handle_cluster(wire::BodyReader& r) {
  uint64_t format = 1;
  if (!r.u64(&format)) {
    reply_failure(wire::kErrProto, "malformed cluster request");
    return done();
  }
  if (format > 1) {
    reply_failure(wire::kErrProto, "unknown cluster format " + std::to_string(format));
    return done();
  }
  send_servers(format);
  done();
}

void Session::send_servers(uint64_t format) {
  const struct raft_configuration& conf = node_.raft()->configuration;
  wire::BodyWriter w;
  w.u64(conf.n);
  for (unsigned i = 0; i < conf.n; i++) {
    w.u64(conf.servers[i].id);
    w.text(conf.servers[i].address);
    if (format == 1) w.u64(wire_role(conf.servers[i].role));
  }
  send(w.finish(wire::kServers));
}

namespace {
struct ChangeReq {
  struct raft_change req;
  Session* session;
  std::function<void(int)> cb;
};
struct TransferReq {
  struct raft_transfer req;
  std::function<void()> cb;
};
}  // namespace

void Session::handle_membership(uint8_t type, wire::BodyReader& r) {
  uint64_t id = 0, role = 0;
  std::string address;
  bool ok = r.u64(&id);
  if (type == wire::kAdd) ok = ok && r.text(&address);
  if (type == wire::kAssign) ok = ok && r.u64(&role);
  if (!ok) {
    reply_failure(wire::kErrProto, std::string("malformed ") + wire::request_name(type) + " request");
    return done();
  }
  if (raft_state(node_.raft()) != RAFT_LEADER) {
    reply_failure(Status::NotLeader());
    return done();
  }
  auto finish = [this](int status) {
    if (!job_finished()) return;
    if (status != 0) {
      reply_failure(SQLITE_ERROR, raft_errmsg(node_.raft())[0] ? raft_errmsg(node_.raft()) : raft_strerror(status));
    } else {
      reply_empty();
    }
    done();
  };
  if (type == wire::kTransfer) {
    // libraft calls back when the transfer ends, done or timed out: it is
    // done if this node no longer leads.
    auto* t = new TransferReq{{}, [this, id] {
      if (!job_finished()) return;
      if (raft_state(node_.raft()) == RAFT_LEADER) {
        reply_failure(SQLITE_ERROR, "leadership transfer to node " + std::to_string(id) +
                                        " did not complete: this node still leads");
      } else {
        reply_empty();
      }
      done();
    }};
    t->req.data = t;
    job_started();
    int rv = raft_transfer(node_.raft(), &t->req, id, [](struct raft_transfer* req) {
      auto* tr = static_cast<TransferReq*>(req->data);
      auto cb = std::move(tr->cb);
      delete tr;
      cb();
    });
    if (rv != 0) {
      delete t;
      job_undone();
      const char* why = raft_errmsg(node_.raft());
      reply_failure(SQLITE_ERROR, std::string("transfer: ") + (why[0] != '\0' ? why : raft_strerror(rv)));
      done();
    }
    return;
  }
  auto* c = new ChangeReq{{}, this, finish};
  c->req.data = c;
  auto cb = [](struct raft_change* req, int status) {
    auto* cr = static_cast<ChangeReq*>(req->data);
    auto f = std::move(cr->cb);
    delete cr;
    f(status);
  };
  int rv;
  job_started();
  if (type == wire::kAdd) {
    if (!wire::valid_utf8(address) || !parse_address(address).ok()) {
      rv = RAFT_INVALID;
    } else {
      rv = raft_add(node_.raft(), &c->req, id, address.c_str(), cb);
    }
  } else if (type == wire::kAssign) {
    int raft_role = role == wire::kRoleVoter ? RAFT_VOTER : role == wire::kRoleStandby ? RAFT_STANDBY
                  : role == wire::kRoleSpare ? RAFT_SPARE : -1;
    rv = raft_role < 0 ? RAFT_BADROLE : raft_assign(node_.raft(), &c->req, id, raft_role, cb);
  } else {
    rv = raft_remove(node_.raft(), &c->req, id, cb);
  }
  if (rv != 0) {
    delete c;
    job_undone();
    reply_failure(SQLITE_ERROR, std::string(wire::request_name(type)) + ": " + raft_strerror(rv));
    done();
  }
}

void Session::handle_dump(wire::BodyReader& r) {
  std::string name;
  if (!r.text(&name)) {
    reply_failure(wire::kErrProto, "malformed dump request");
    return done();
  }
  std::shared_ptr<Database> database = node_.vfs().find(name);
  if (!database) {
    reply_failure(SQLITE_NOTFOUND, "no database named '" + name + "'");
    return done();
  }
  start_read_job([this, database, name] {
    DbImage img = database->capture();
    std::vector<uint8_t> wal = build_wal_file(img.wal, img.page_size);
    wire::BodyWriter w;
    w.u64(2);
    w.text(name);
    w.u64(uint64_t(img.pages.size()) * img.page_size);
    for (const PagePtr& p : img.pages) {
      if (p) {
        w.raw(p.get(), img.page_size);
      } else {
        std::vector<uint8_t> zero(img.page_size, 0);
        w.raw(zero.data(), zero.size());
      }
    }
    w.text(name + "-wal");
    w.u64(wal.size());
    w.raw(wal.data(), wal.size());
    w.pad();
    std::vector<uint8_t> msg = w.finish(wire::kFiles);
    back_to_loop([this, msg = std::move(msg)]() mutable {
      if (!job_finished()) return;
      send(std::move(msg));
      done();
    });
  });
}

}  // namespace sqraft
