// Where a statement runs: on the loop thread (bounded reads), the reader
// pool with the client's own connection, or the database's writer.
#include "session.h"

#include <spdlog/spdlog.h>

#include <cassert>
#include <chrono>
#include <cstring>
#include <utility>

#include "rows_encoder.h"
#include "session_limits.h"

namespace sqraft {

void Session::run_sql(uint32_t db_id, std::string sql, SqlParams params, bool query, StmtKind kind) {
  Db* d = db(db_id, !(kind == StmtKind::kRead && node_.unsafe_leader_reads()));
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

bool Session::try_read_inline(uint32_t db_id, const std::string& sql, const SqlParams& params) {
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
  auto cursor = std::make_unique<RowCursor>(stmt, make_rows_encoder(stmt));
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
  if (!done_rows && batch.ok()) begin_stream(db_id, false, std::move(cursor));
  on_rows(std::move(batch), done_rows);
  return true;
}

void Session::run_on_reader(uint32_t db_id, std::string sql, SqlParams params, bool query) {
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
        finish_on_loop([this, st] { on_rows(st, true); });
        return;
      }
      auto cursor = std::make_shared<RowCursor>(stmt.value(), make_rows_encoder(stmt.value()));
      bool done_rows = false;
      Result<std::vector<uint8_t>> batch = cursor->next_batch(conn, kRowsBatchBytes, &done_rows);
      guard->disarm();
      // Whether later runs may be answered on the loop thread.
      if (done_rows) cache->learn_cost(sql);
      finish_on_loop([this, db_id, cursor, batch = std::move(batch), done_rows]() mutable {
        if (!done_rows) begin_stream(db_id, false, std::make_unique<RowCursor>(std::move(*cursor)));
        on_rows(std::move(batch), done_rows);
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
    finish_on_loop([this, out = std::move(out)]() {
      if (!out.ok()) return fail(out.status());
      send_result(out.value());
    });
  });
}

namespace {

// Prepares every statement of `sql` on the client's connection and says
// whether all are reads and what they touch (the shared database, the
// client's TEMP objects, transaction control). Runs on a reader thread.
bool classify_script(sqlite3* conn, SqlGuard* guard, const std::string& sql, Touches* touches) {
  bool readonly = true;
  const char* tail = sql.c_str();
  const char* end = tail + sql.size();
  guard->record(touches);
  while (tail < end) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(conn, tail, int(end - tail), &stmt, &tail);
    if (rc != SQLITE_OK) {
      // The statement may depend on an earlier one of the same script
      // (CREATE then INSERT): let the writer run it and report.
      readonly = false;
      touches->writes_shared = true;
      break;
    }
    if (stmt == nullptr) break;
    const StmtKind kind = classify_sql(sqlite3_sql(stmt));
    if (!sqlite3_stmt_readonly(stmt) || kind == StmtKind::kBegin || kind == StmtKind::kEnd) readonly = false;
    sqlite3_finalize(stmt);
  }
  guard->record(nullptr);
  touches->resolve(conn);
  return readonly;
}

}  // namespace

void Session::classify_then_run(uint32_t db_id, std::string sql, SqlParams params, bool query) {
  Db& d = dbs_.at(db_id);
  sqlite3* conn = d.conn;
  SqlGuard* guard = d.guard.get();
  start_read_job([this, db_id, conn, guard, sql = std::move(sql), params = std::move(params), query]() mutable {
    Touches touches;
    const bool readonly = classify_script(conn, guard, sql, &touches);
    finish_on_loop([this, db_id, sql = std::move(sql), params = std::move(params), query, readonly,
                  touches = std::move(touches)]() mutable {
      run_classified(db_id, std::move(sql), std::move(params), query, readonly, touches);
    });
  });
}

void Session::run_classified(uint32_t db_id, std::string sql, SqlParams params, bool query,
                             bool readonly, const Touches& touches) {
  // Reads of the shared database and anything that only touches this
  // client's TEMP objects stay on its connection; the rest goes to the
  // writer.
  auto it = dbs_.find(db_id);
  if (it == dbs_.end()) {
    return fail(SQLITE_NOTFOUND, "no database with id " + std::to_string(db_id) + " is open on this connection");
  }
  const bool in_txn = it->second.in_txn;
  if (touches.writes_temp || touches.reads_temp) {
    // TEMP objects live on this client's connection. Writes of the
    // replicated database run on the shared writer connection, which
    // cannot see them; inside a transaction, this connection cannot see
    // the transaction's own changes.
    if (touches.writes_shared) {
      return fail(SQLITE_ERROR,
                  "a statement that writes the replicated database cannot use this connection's TEMP "
                  "objects; copy the data in separate statements");
    }
    if (in_txn && touches.reads_shared) {
      return fail(SQLITE_ERROR,
                  "inside a transaction, a statement cannot combine this connection's TEMP objects with "
                  "the replicated database");
    }
    if (touches.writes_temp) it->second.has_temp = true;
    return run_on_reader(db_id, std::move(sql), std::move(params), query);
  }
  if (readonly && !touches.txn_control && !in_txn) {
    return run_on_reader(db_id, std::move(sql), std::move(params), query);
  }
  run_on_writer(db_id, std::move(sql), std::move(params), query, false);
}

void Session::run_on_writer(uint32_t db_id, std::string sql, SqlParams params, bool query,
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
  req.done = [this, db_id, query](DbWriter::Reply rep) {
    finish_on_loop([this, db_id, query, rep = std::move(rep)]() mutable {
      on_writer_reply(db_id, query, std::move(rep));
    });
  };
  if (!start_writer_job(*d.writer, std::move(req))) fail(write_queue_full());
}

void Session::on_writer_reply(uint32_t db_id, bool query, DbWriter::Reply rep) {
  note_txn(db_id, rep);
  if (!rep.status.ok()) {
    if (rep.status.is_not_leader() || rep.status.is_leadership_lost()) drop_db(db_id);
    if (query && stopped_by_interrupt(rep.status)) return end_stream_interrupted();
    return fail_stream(rep.status);
  }
  if (!query) return send_result(rep.outcome);
  // Outside a transaction the writer ran the query to its end: every batch
  // is here. Inside one, the first batch is, and the rest follow on demand.
  for (size_t i = 0; i + 1 < rep.rows.size(); i++) send(std::move(rep.rows[i]));
  std::vector<uint8_t> last = rep.rows.empty() ? std::vector<uint8_t>() : std::move(rep.rows.back());
  if (!rep.rows_done) begin_stream(db_id, true, nullptr);
  on_batch(std::move(last), rep.rows_done);
}

void Session::send_result(const ExecOutcome& out) {
  wire::BodyWriter w;
  w.u64(out.last_insert_id);
  w.u64(out.rows_affected);
  send(w.finish(wire::kResult));
  done();
}

}  // namespace sqraft
