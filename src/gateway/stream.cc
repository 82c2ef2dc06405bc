// A query's rows, batch by batch, and INTERRUPT: the QueryState machine.
//
//   kIdle ──query starts──▶ kStarting ──first batch, more to come──▶ kStreaming
//                              │                                      │
//                         INTERRUPT                               INTERRUPT
//                              ▼                                      ▼
//                       kInterruptedEarly                        kInterrupted
//
// Every state returns to kIdle when the query's last answer is out. A
// query interrupted before its first batch sends what it made (rows or
// FAILURE), then EMPTY; one interrupted while streaming drops the batch in
// flight and sends EMPTY. Each further INTERRUPT of a stream is owed one
// more EMPTY.
#include "session.h"

#include <spdlog/spdlog.h>

#include <cassert>
#include <utility>

#include "session_limits.h"

namespace sqraft {

const char* Session::query_state_name(QueryState s) {
  switch (s) {
    case QueryState::kIdle: return "idle";
    case QueryState::kStarting: return "starting";
    case QueryState::kInterruptedEarly: return "interrupted-early";
    case QueryState::kStreaming: return "streaming";
    case QueryState::kInterrupted: return "interrupted";
  }
  return "?";
}

void Session::query_to(QueryState next) {
  using Q = QueryState;
  const Q from = query_;
  const bool allowed = (from == Q::kIdle && next == Q::kStarting) ||
                       (from == Q::kStarting && (next == Q::kInterruptedEarly || next == Q::kStreaming)) ||
                       (from == Q::kStreaming && next == Q::kInterrupted) ||
                       (from != Q::kIdle && next == Q::kIdle);
  if (!allowed) {
    spdlog::error("session {}: query state {} -> {} is not a transition", id_, query_state_name(from),
                  query_state_name(next));
  }
  assert(allowed);
  query_ = next;
}

void Session::begin_stream(uint32_t db_id, bool on_writer, std::unique_ptr<RowCursor> cursor) {
  assert(!stream_rows_);
  assert(on_writer == (cursor == nullptr));
  // Stream{}, not emplace(): clang 14 does not see a nested struct with
  // member initialisers as default-constructible here (the fuzz build).
  stream_rows_.emplace(Stream{});
  stream_rows_->db = db_id;
  stream_rows_->on_writer = on_writer;
  stream_rows_->cursor = std::move(cursor);
}

void Session::on_rows(Result<std::vector<uint8_t>> batch, bool last) {
  if (!batch.ok()) {
    if (stopped_by_interrupt(batch.status())) return end_stream_interrupted();
    return fail_stream(batch.status());
  }
  on_batch(std::move(batch).value(), last);
}

void Session::on_batch(std::vector<uint8_t> batch, bool last) {
  if (last) {
    if (!batch.empty()) send(std::move(batch));
    return end_stream_done();
  }
  assert(stream_rows_);
  switch (query_) {
    case QueryState::kInterruptedEarly:  // the first batch goes out, then EMPTY
      send(std::move(batch));
      return end_stream_interrupted();
    case QueryState::kInterrupted:  // the batch in flight is dropped
      return end_stream_interrupted();
    case QueryState::kStarting:
      query_to(QueryState::kStreaming);
      break;
    case QueryState::kStreaming:
      break;
    case QueryState::kIdle:
      assert(false && "rows of no query");
      return;
  }
  send(std::move(batch), [this] { next_rows(); });
}

void Session::next_rows() {
  if (closing_ || !stream_rows_) return;
  if (query_ == QueryState::kInterrupted) return end_stream_interrupted();
  const uint32_t db_id = stream_rows_->db;
  if (dbs_.count(db_id) == 0) return fail_stream(Status::NotFound("database closed during the query"));
  Db& d = dbs_.at(db_id);
  if (stream_rows_->on_writer) {
    DbWriter::Request req;
    req.session = id_;
    req.kind = DbWriter::Kind::kNextRows;
    req.expect_owner = true;
    req.cancel = &cancel_;
    req.done = [this, db_id](DbWriter::Reply rep) {
      finish_on_loop([this, db_id, rep = std::move(rep)]() mutable {
        note_txn(db_id, rep);
        if (stopped_by_interrupt(rep.status)) return end_stream_interrupted();
        if (!rep.status.ok() || rep.rows.empty()) {
          return fail_stream(rep.status.ok() ? Status::Internal("no rows") : rep.status);
        }
        on_batch(std::move(rep.rows.back()), rep.rows_done);
      });
    };
    if (!start_writer_job(*d.writer, std::move(req))) fail_stream(write_queue_full());
    return;
  }
  RowCursor* cursor = stream_rows_->cursor.get();
  sqlite3* conn = d.conn;
  SqlGuard* guard = d.guard.get();
  start_read_job([this, cursor, conn, guard] {
    guard->arm(&cancel_);
    bool last = false;
    Result<std::vector<uint8_t>> batch = cursor->next_batch(conn, kRowsBatchBytes, &last);
    guard->disarm();
    finish_on_loop([this, batch = std::move(batch), last]() mutable { on_rows(std::move(batch), last); });
  });
}

void Session::fail_stream(const Status& status) {
  // The FAILURE ends the query; an INTERRUPT sent during it is still owed
  // its EMPTY.
  const bool interrupted = query_ == QueryState::kInterrupted || query_ == QueryState::kInterruptedEarly;
  stream_rows_.reset();
  if (query_ != QueryState::kIdle) query_to(QueryState::kIdle);
  reply_failure(status);
  if (interrupted) reply_empty();
  done();
}

void Session::end_stream_done() {
  // An INTERRUPT that arrived while the last batch was being produced is
  // still owed its EMPTY: the client reads until it gets one.
  const bool interrupted = query_ == QueryState::kInterrupted || query_ == QueryState::kInterruptedEarly;
  stream_rows_.reset();
  if (query_ != QueryState::kIdle) query_to(QueryState::kIdle);
  if (interrupted) reply_empty();
  done();
}

void Session::interrupt_query() {
  // Before the first batch, or once a stream runs: the query stops (the
  // guard stops it early) and EMPTY follows, one for every INTERRUPT.
  if (query_ == QueryState::kStarting) {
    query_to(QueryState::kInterruptedEarly);
  } else if (query_ == QueryState::kStreaming) {
    query_to(QueryState::kInterrupted);
  } else {
    assert(query_ == QueryState::kInterrupted);
    owed_empties_++;
  }
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
  if (query_ != QueryState::kIdle) query_to(QueryState::kIdle);
  // Only a client's own transaction keeps a cursor on the writer; outside
  // one the writer has already dropped it (and another client may own the
  // writer, so a cancel request would wait behind its transaction).
  if (on_writer && dbs_.count(db_id) && dbs_.at(db_id).in_txn) {
    DbWriter::Request req;
    req.session = id_;
    req.kind = DbWriter::Kind::kCancelRows;
    req.expect_owner = true;
    req.done = [this, db_id](DbWriter::Reply rep) {
      finish_on_loop([this, db_id, rep = std::move(rep)]() {
        note_txn(db_id, rep);
        reply_empty();
        done();
      });
    };
    // Refused (its queue is full): the writer keeps the cursor until the
    // client's next query or the end of its transaction, which drop it.
    if (start_writer_job(*dbs_.at(db_id).writer, std::move(req))) return;
  }
  reply_empty();
  done();
}

}  // namespace sqraft
