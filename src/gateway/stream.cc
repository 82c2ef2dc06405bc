// A query's rows, batch by batch, and INTERRUPT.
#include "session.h"

#include <spdlog/spdlog.h>

#include <cassert>
#include <chrono>
#include <cstring>
#include <utility>

#include "limits.h"

namespace sqraft {

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

}  // namespace sqraft
