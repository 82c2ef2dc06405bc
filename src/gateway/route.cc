// Where a statement runs: on the loop thread (bounded reads), the reader
// pool with the client's own connection, or the database's writer.
#include "session.h"

#include <spdlog/spdlog.h>

#include <cassert>
#include <chrono>
#include <cstring>
#include <utility>

#include "limits.h"

namespace sqraft {

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

}  // namespace sqraft
