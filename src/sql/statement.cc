#include "statement.h"

#include <cassert>

#include <cctype>
#include <cstring>

#include "lexer.h"
#include "sql_guard.h"

namespace sqraft {

bool single_statement(std::string_view s) { return lexer::single_statement(s); }

StmtKind classify_sql(std::string_view sql) {
  const std::vector<std::string> kws = lexer::leading_words(sql, 3);
  const std::string kw = kws.empty() ? "" : kws[0];
  if (kw == "BEGIN") return single_statement(sql) ? StmtKind::kBegin : StmtKind::kOther;
  // ROLLBACK [TRANSACTION] TO savepoint ends no transaction.
  const bool rollback_to = kw == "ROLLBACK" && ((kws.size() > 1 && kws[1] == "TO") ||
                                                (kws.size() > 2 && kws[1] == "TRANSACTION" && kws[2] == "TO"));
  if (kw == "COMMIT" || kw == "END" || (kw == "ROLLBACK" && !rollback_to)) {
    return single_statement(sql) ? StmtKind::kEnd : StmtKind::kOther;
  }
  // Savepoints open or end a transaction on the connection that runs them:
  // always the writer, like BEGIN.
  if (kw == "SAVEPOINT" || kw == "RELEASE" || rollback_to) return StmtKind::kWriteExclusive;
  if (!single_statement(sql)) return StmtKind::kOther;
  if (kw == "SELECT" || kw == "VALUES") return StmtKind::kRead;
  // CREATE may make a TEMP object (CREATE TEMP ..., CREATE TABLE temp.x),
  // which lives on the client's own connection: classify it by preparing.
  if (kw == "CREATE") return StmtKind::kOther;
  if (kw == "INSERT" || kw == "UPDATE" || kw == "DELETE" || kw == "REPLACE" || kw == "DROP" || kw == "ALTER") {
    return StmtKind::kWrite;
  }
  return StmtKind::kOther;
}

// ---- StmtCache -----------------------------------------------------------------

StmtCache::~StmtCache() { clear(); }

void StmtCache::clear() {
  for (auto& [sql, e] : entries_) sqlite3_finalize(e.stmt);
  entries_.clear();
  lru_.clear();
}

Result<sqlite3_stmt*> StmtCache::get(const std::string& sql) {
  if (auto it = entries_.find(sql); it != entries_.end()) {
    if (sqlite3_stmt_isexplain(it->second.stmt) == 0) {
      lru_.splice(lru_.begin(), lru_, it->second.pos);
      sqlite3_reset(it->second.stmt);
      sqlite3_clear_bindings(it->second.stmt);
      return it->second.stmt;
    }
    // SQLite does not check an EXPLAIN statement against schema changes: a
    // cached one may still point at a dropped table's freed memory. Prepare
    // it afresh every time.
    sqlite3_finalize(it->second.stmt);
    lru_.erase(it->second.pos);
    entries_.erase(it);
  }
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v3(conn_, sql.c_str(), int(sql.size()) + 1, SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
  if (rc != SQLITE_OK) return sqlite_error(conn_, rc);
  if (stmt == nullptr) return Status::Error(SQLITE_MISUSE, "empty statement");
  if (tail != nullptr && *tail != '\0' && !std::string_view(tail).empty()) {
    bool only_space = true;
    for (const char* p = tail; *p; p++) only_space = only_space && (std::isspace(static_cast<unsigned char>(*p)) || *p == ';');
    if (!only_space) {
      sqlite3_finalize(stmt);
      return Status::Error(SQLITE_MISUSE, "expected a single statement");
    }
  }
  lru_.push_front(sql);
  entries_[sql] = Entry{stmt, lru_.begin(), std::nullopt};
  while (entries_.size() > capacity_) {
    const std::string& victim = lru_.back();
    auto it = entries_.find(victim);
    sqlite3_finalize(it->second.stmt);
    entries_.erase(it);
    lru_.pop_back();
  }
  return stmt;
}

sqlite3_stmt* StmtCache::get_bounded(const std::string& sql) {
  auto it = entries_.find(sql);
  if (it == entries_.end() || it->second.bounded != std::optional<bool>(true)) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.pos);
  sqlite3_reset(it->second.stmt);
  sqlite3_clear_bindings(it->second.stmt);
  return it->second.stmt;
}

void StmtCache::learn_cost(const std::string& sql) {
  auto it = entries_.find(sql);
  if (it == entries_.end() || it->second.bounded.has_value()) return;
  it->second.bounded = sqlite3_stmt_isexplain(it->second.stmt) == 0 && bounded_cost(conn_, sql);
}

namespace {

// Functions whose cost is linear in their arguments (which the inline
// value limit keeps small) or constant.
bool linear_function(std::string_view name) {
  static const char* const kLinear[] = {
      "abs",    "avg",       "changes", "char",   "count",  "date",     "datetime", "hex",     "ifnull",
      "julianday", "last_insert_rowid", "length", "lower", "ltrim", "max", "min", "nullif", "quote",
      "random", "round",     "rtrim",   "sign",   "strftime", "substr", "substring", "sum", "time",
      "total",  "trim",      "typeof",  "unicode", "unixepoch", "upper", "zeroblob", "coalesce", "iif",
      "sqlite_version", "total_changes", "octet_length",
  };
  for (const char* f : kLinear) {
    if (name == f) return true;
  }
  return false;
}

bool bounded_opcode(std::string_view op, std::string_view p4) {
  static const char* const kUnbounded[] = {
      "Count",     // counts a whole b-tree in one step
      "IntegrityCk", "VOpen", "VFilter", "VNext", "VColumn", "VUpdate", "VBegin", "VCreate", "VDestroy",
      "VCheck",    "VInitIn", "Program", "ParseSchema", "Vacuum", "SqlExec",
  };
  for (const char* u : kUnbounded) {
    if (op == u) return false;
  }
  if (op == "Function" || op == "PureFunc" || op == "AggStep" || op == "AggStep1" || op == "AggValue" ||
      op == "AggInverse" || op == "AggFinal") {
    // P4 is "name(nargs)".
    const size_t paren = p4.find('(');
    std::string name(p4.substr(0, paren));
    for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
    return linear_function(name);
  }
  return true;
}

}  // namespace

bool bounded_cost(sqlite3* conn, const std::string& sql) {
  if (sql.size() > kBoundedSqlBytesMax) return false;
  const std::string explain = "EXPLAIN " + sql;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(conn, explain.c_str(), int(explain.size()), &stmt, nullptr) != SQLITE_OK || stmt == nullptr) {
    sqlite3_finalize(stmt);
    return false;
  }
  bool bounded = true;
  int rc;
  while (bounded && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    // EXPLAIN's columns: addr, opcode, p1, p2, p3, p4, p5, comment.
    const auto* op = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1));
    const auto* p4 = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 5));
    bounded = bounded_opcode(op ? op : "", p4 ? p4 : "");
  }
  if (bounded && rc != SQLITE_DONE) bounded = false;
  sqlite3_finalize(stmt);
  return bounded;
}

// ---- execution -------------------------------------------------------------------

Status sqlite_error(sqlite3* conn, int rc) {
  int code = conn ? sqlite3_extended_errcode(conn) : rc;
  if (code == SQLITE_OK) code = rc;
  if (code == kErrNotLeader || rc == kErrNotLeader) return Status::NotLeader();
  if (code == kErrLeadershipLost || rc == kErrLeadershipLost) return Status::LeadershipLost();
  Status s = Status::Error(code, conn ? sqlite3_errmsg(conn) : sqlite3_errstr(rc));
  // A refusal of the client policy or a stop of the guard says why.
  if (const SqlGuard* guard = conn ? SqlGuard::of(conn) : nullptr) return guard->explain(s);
  return s;
}

Status bind_params(sqlite3_stmt* stmt, const SqlParams& params) {
  const int expected = sqlite3_bind_parameter_count(stmt);
  if (int(params.size()) > expected) {
    return Status::Error(SQLITE_RANGE, "statement has " + std::to_string(expected) + " parameters, got " +
                                           std::to_string(params.size()));
  }
  for (size_t i = 0; i < params.size(); i++) {
    const SqlValue& v = params[i];
    const int idx = int(i) + 1;
    int rc;
    switch (v.type) {
      case SQLITE_INTEGER:
        rc = sqlite3_bind_int64(stmt, idx, v.integer);
        break;
      case SQLITE_FLOAT:
        rc = sqlite3_bind_double(stmt, idx, v.real);
        break;
      case SQLITE_TEXT:
        rc = sqlite3_bind_text64(stmt, idx, v.bytes.data(), v.bytes.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
        break;
      case SQLITE_BLOB:
        rc = sqlite3_bind_blob64(stmt, idx, v.bytes.data(), v.bytes.size(), SQLITE_TRANSIENT);
        break;
      default:
        rc = sqlite3_bind_null(stmt, idx);
        break;
    }
    if (rc != SQLITE_OK) return sqlite_error(sqlite3_db_handle(stmt), rc);
  }
  return Status::Ok();
}

Result<ExecOutcome> step_all(sqlite3* conn, sqlite3_stmt* stmt) {
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) {
    Status s = sqlite_error(conn, rc);
    sqlite3_reset(stmt);
    return s;
  }
  ExecOutcome out;
  out.last_insert_id = uint64_t(sqlite3_last_insert_rowid(conn));
  out.rows_affected = uint64_t(sqlite3_changes64(conn));
  sqlite3_reset(stmt);
  return out;
}

Result<ExecOutcome> exec_script(sqlite3* conn, const std::string& sql, const SqlParams& params) {
  const char* tail = sql.c_str();
  const char* end = tail + sql.size();
  ExecOutcome last;
  while (tail < end) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(conn, tail, int(end - tail), &stmt, &tail);
    if (rc != SQLITE_OK) return sqlite_error(conn, rc);
    if (stmt == nullptr) break;  // only whitespace or comments left
    if (sqlite3_bind_parameter_count(stmt) > 0) {
      if (Status s = bind_params(stmt, params); !s.ok()) {
        sqlite3_finalize(stmt);
        return s;
      }
    }
    Result<ExecOutcome> r = step_all(conn, stmt);
    sqlite3_finalize(stmt);
    if (!r.ok()) return r.status();
    last = r.value();
  }
  return last;
}

// ---- rows ------------------------------------------------------------------------

RowCursor::RowCursor(sqlite3_stmt* stmt, std::unique_ptr<RowEncoder> encoder)
    : stmt_(stmt), encoder_(std::move(encoder)), writes_(sqlite3_stmt_readonly(stmt) == 0) {
  assert(stmt_ != nullptr && encoder_ != nullptr);
}

RowCursor::~RowCursor() {
  if (stmt_ != nullptr && last_rc_ == SQLITE_ROW) sqlite3_reset(stmt_);
}

RowCursor::RowCursor(RowCursor&& o) noexcept
    : stmt_(o.stmt_),
      encoder_(std::move(o.encoder_)),
      last_rc_(o.last_rc_),
      interrupted_(o.interrupted_),
      writes_(o.writes_) {
  o.stmt_ = nullptr;
}

Result<std::vector<uint8_t>> RowCursor::next_batch(sqlite3* conn, size_t max_bytes, bool* done) {
  if (interrupted_) {
    *done = true;
    return Status::Error(SQLITE_INTERRUPT, SqlGuard::kInterruptedByClient);
  }
  encoder_->begin();
  // A statement that writes runs to its end whatever the client's INTERRUPT
  // (see SqlGuard::honor_client_interrupt).
  SqlGuard* guard = writes_ ? SqlGuard::of(conn) : nullptr;
  if (guard != nullptr) guard->honor_client_interrupt(false);
  struct Restore {
    SqlGuard* g;
    ~Restore() {
      if (g != nullptr) g->honor_client_interrupt(true);
    }
  } restore{guard};
  for (;;) {
    last_rc_ = sqlite3_step(stmt_);
    if (last_rc_ != SQLITE_ROW) break;
    encoder_->add_row(stmt_);
    if (encoder_->bytes() >= max_bytes) {
      *done = false;
      return encoder_->finish(true);
    }
  }
  if (last_rc_ == SQLITE_INTERRUPT && encoder_->rows() > 0) {
    // The client interrupted the query while its first batch was being
    // made: the rows so far go out, marked "more"; the stream then ends.
    const SqlGuard* guard = SqlGuard::of(conn);
    if (guard != nullptr && guard->reason() == StopReason::kClientInterrupt) {
      sqlite3_reset(stmt_);
      interrupted_ = true;
      *done = false;
      return encoder_->finish(true);
    }
  }
  if (last_rc_ != SQLITE_DONE) {
    Status s = sqlite_error(conn, last_rc_);
    sqlite3_reset(stmt_);
    *done = true;
    return s;
  }
  sqlite3_reset(stmt_);
  *done = true;
  return encoder_->finish(false);
}

}  // namespace sqraft
