#include "db_writer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>

#include "vfs.h"

namespace sqraft {

DbWriter::DbWriter(Vfs& vfs, std::string db, Options options, WriterPool& pool)
    : vfs_(vfs), db_(std::move(db)), options_(options), pool_(pool) {
  assert(options_.row_encoder != nullptr);
}

DbWriter::~DbWriter() { stop(); }

void DbWriter::schedule_locked() {
  if (scheduled_ || stopped_) return;
  scheduled_ = true;
  if (!pool_.run(this)) scheduled_ = false;  // the pool stopped: stop() cleans up
}

void DbWriter::schedule() {
  std::lock_guard lk(mu_);
  schedule_locked();
}

size_t DbWriter::queue_depth() const {
  std::lock_guard lk(mu_);
  return queue_.size();
}

bool DbWriter::connection_open() const {
  std::lock_guard lk(mu_);
  return has_conn_;
}

bool DbWriter::submit(Request r) {
  std::lock_guard lk(mu_);
  // The owner of the open transaction is let past the bound: the queue
  // waits for its requests, and it has one at a time (a client's requests
  // are answered in order), so at most queue_max + 1 wait.
  const bool owners = r.expect_owner && owner_ != 0 && r.session == owner_;
  if (stopping_ || (queue_.size() >= options_.queue_max && !owners)) return false;
  queue_.push_back(Queued{std::move(r), Clock::now() + std::chrono::milliseconds(options_.queue_timeout_ms)});
  schedule_locked();
  return true;
}

void DbWriter::release(uint64_t session) {
  std::vector<Queued> dropped;
  {
    std::lock_guard lk(mu_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->r.session == session) {
        dropped.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    if (owner_ == session) {
      Request r;
      r.session = session;
      r.kind = Kind::kRelease;
      queue_.push_front(Queued{std::move(r), Clock::time_point::max()});
    }
    schedule_locked();
  }
  for (Queued& q : dropped) fail(q.r, Status::Error(SQLITE_ABORT, "client disconnected"));
}

void DbWriter::abort_owner(const Status& why) {
  std::lock_guard lk(mu_);
  pending_abort_ = why;
  schedule_locked();
}

void DbWriter::stop() {
  std::deque<Queued> left;
  {
    std::unique_lock lk(mu_);
    if (stopped_) return;
    stopping_ = true;
    idle_cv_.wait(lk, [&] { return !running_; });
    stopped_ = true;
    left.swap(queue_);
  }
  for (Queued& q : left) fail(q.r, Status::LeadershipLost("leadership lost: node is shutting down"));
  close_conn();
}

void DbWriter::close_conn() {
  cursor_.reset();
  if (conn_ != nullptr && !sqlite3_get_autocommit(conn_)) (void)exec_simple("ROLLBACK");
  cache_.reset();
  guard_.reset();
  if (conn_ != nullptr) sqlite3_close_v2(conn_);
  conn_ = nullptr;
  std::lock_guard lk(mu_);
  has_conn_ = false;
}

void DbWriter::fail(Request& r, const Status& s) {
  if (!r.done) return;
  Reply reply;
  reply.status = s;
  reply.in_txn = false;
  r.done(std::move(reply));
}

bool DbWriter::ensure_conn(Status* error) {
  if (conn_ != nullptr) return true;
  Result<sqlite3*> c = vfs_.open(db_);
  if (!c.ok()) {
    *error = c.status();
    return false;
  }
  conn_ = c.value();
  sqlite3_busy_timeout(conn_, int(options_.busy_timeout_ms));
  guard_ = std::make_unique<SqlGuard>(conn_, options_.limits, options_.node_stopping);
  cache_ = std::make_unique<StmtCache>(conn_);
  std::lock_guard lk(mu_);
  has_conn_ = true;
  return true;
}

Result<ExecOutcome> DbWriter::exec_client(Request& r) {
  if (!single_statement(r.sql)) return exec_script(conn_, r.sql, r.params);
  Result<sqlite3_stmt*> stmt = cache_->get(r.sql);
  if (!stmt.ok()) return stmt.status();
  if (Status b = bind_params(stmt.value(), r.params); !b.ok()) return b;
  return step_all(conn_, stmt.value());
}

Status DbWriter::exec_simple(const char* sql) {
  Result<sqlite3_stmt*> stmt = cache_->get(sql);
  if (!stmt.ok()) return stmt.status();
  Result<ExecOutcome> r = step_all(conn_, stmt.value());
  return r.status();
}

void DbWriter::rollback_owner(const Status& why) {
  cursor_.reset();
  if (conn_ != nullptr && !sqlite3_get_autocommit(conn_)) {
    if (Status s = exec_simple("ROLLBACK"); !s.ok()) spdlog::warn("db '{}': rollback: {}", db_, s.message());
  }
  std::lock_guard lk(mu_);
  if (owner_ != 0) {
    spdlog::info("db '{}': rolled back the transaction of client {}: {}", db_, owner_, why.message());
    aborted_.push_back(owner_);
    if (aborted_.size() > 1024) aborted_.erase(aborted_.begin());
  }
  owner_ = 0;
}

DbWriter::Reply DbWriter::exec_in_owner_or_alone(Request& r) {
  Reply reply;
  switch (r.kind) {
    case Kind::kExec: {
      Result<ExecOutcome> out = exec_client(r);
      if (out.ok()) reply.outcome = out.value();
      reply.status = out.status();
      break;
    }
    case Kind::kQuery: {
      cursor_.reset();
      Result<sqlite3_stmt*> stmt = cache_->get(r.sql);
      if (!stmt.ok()) {
        reply.status = stmt.status();
        break;
      }
      if (Status b = bind_params(stmt.value(), r.params); !b.ok()) {
        reply.status = b;
        break;
      }
      cursor_ = std::make_unique<RowCursor>(stmt.value(), options_.row_encoder(stmt.value()));
      cursor_sql_ = r.sql;
      [[fallthrough]];
    }
    case Kind::kNextRows: {
      if (!cursor_) {
        reply.status = Status::Error(SQLITE_MISUSE, "no query in progress");
        break;
      }
      // A client's own transaction streams batch by batch; anything else is
      // run to the end now (the writer cannot wait for a client between
      // batches of someone else's autocommit statement).
      const bool stream = !sqlite3_get_autocommit(conn_);
      for (;;) {
        bool done = false;
        Result<std::vector<uint8_t>> batch = cursor_->next_batch(conn_, options_.rows_batch_bytes, &done);
        if (!batch.ok()) {
          reply.status = batch.status();
          reply.rows.clear();
          cursor_.reset();
          break;
        }
        reply.rows.push_back(std::move(batch).value());
        reply.rows_done = done;
        if (done) {
          cursor_.reset();
          break;
        }
        // Interrupted by its client: the session ends the stream.
        if (stream || cursor_->interrupted()) break;
      }
      break;
    }
    case Kind::kCancelRows: {
      if (cursor_) {
        Result<sqlite3_stmt*> stmt = cache_->get(cursor_sql_);  // resets it
        (void)stmt;
      }
      cursor_.reset();
      break;
    }
    case Kind::kPrepare: {
      sqlite3_stmt* stmt = nullptr;
      const char* tail = nullptr;
      int rc = sqlite3_prepare_v2(conn_, r.sql.c_str(), int(r.sql.size()), &stmt, &tail);
      if (rc != SQLITE_OK) {
        reply.status = sqlite_error(conn_, rc);
        break;
      }
      reply.params = stmt ? uint64_t(sqlite3_bind_parameter_count(stmt)) : 0;
      reply.tail = tail ? uint64_t(tail - r.sql.c_str()) : r.sql.size();
      sqlite3_finalize(stmt);
      break;
    }
    case Kind::kRelease:
      break;
  }
  return reply;
}

void DbWriter::run_one(Queued& q) {
  Request& r = q.r;
  if (r.kind == Kind::kRelease) {
    if (owner_ == r.session) rollback_owner(Status::Error(SQLITE_ABORT, "client disconnected"));
    return;
  }
  Status error;
  if (!ensure_conn(&error)) {
    fail(r, error);
    return;
  }
  const bool is_owner = owner_ != 0 && owner_ == r.session;
  if (r.expect_owner && !is_owner) {
    bool was_aborted = false;
    {
      std::lock_guard lk(mu_);
      auto it = std::find(aborted_.begin(), aborted_.end(), r.session);
      if (it != aborted_.end()) {
        aborted_.erase(it);
        was_aborted = true;
      }
    }
    fail(r, Status::Error(SQLITE_ABORT, was_aborted ? "the transaction was rolled back (it stayed idle too long, "
                                                      "or leadership changed)"
                                                    : "no transaction is active"));
    return;
  }
  guard_->arm(r.cancel);
  Reply reply = exec_in_owner_or_alone(r);
  guard_->disarm();
  const bool in_txn = !sqlite3_get_autocommit(conn_);
  if (!in_txn) cursor_.reset();
  {
    std::lock_guard lk(mu_);
    owner_ = in_txn ? r.session : 0;
    owner_deadline_ = Clock::now() + std::chrono::milliseconds(options_.txn_idle_timeout_ms);
  }
  reply.in_txn = in_txn;
  if (r.done) r.done(std::move(reply));
}

void DbWriter::run_batch(std::vector<Queued>& batch) {
  // Plain write statements, even one alone, run inside BEGIN IMMEDIATE ...
  // COMMIT with the guard armed for the statement only: a deadline or a
  // vanished client can stop the statement, never its commit (whose outcome
  // the client would then not know).
  Status error;
  if (!ensure_conn(&error)) {
    for (Queued& q : batch) fail(q.r, error);
    return;
  }
  batches_++;
  batched_statements_ += batch.size();
  if (Status s = exec_simple("BEGIN IMMEDIATE"); !s.ok()) {
    for (Queued& q : batch) fail(q.r, s);
    return;
  }
  std::vector<Reply> replies(batch.size());
  for (size_t i = 0; i < batch.size(); i++) {
    Request& r = batch[i].r;
    Result<ExecOutcome> out = ExecOutcome{};
    if (Status s = exec_simple("SAVEPOINT sqraft_stmt"); !s.ok()) {
      out = s;
    } else {
      guard_->arm(r.cancel);
      out = exec_client(r);
      guard_->disarm();
    }
    if (out.ok()) {
      replies[i].outcome = out.value();
      (void)exec_simple("RELEASE sqraft_stmt");
      continue;
    }
    replies[i].status = out.status();
    if (sqlite3_get_autocommit(conn_)) {
      // This error ended the whole transaction (and undid the statements
      // before it). Report it, and run the others again in a new batch.
      if (batch[i].r.done) batch[i].r.done(std::move(replies[i]));
      std::lock_guard lk(mu_);
      for (size_t j = batch.size(); j-- > 0;) {
        if (j != i) queue_.push_front(std::move(batch[j]));
      }
      return;
    }
    (void)exec_simple("ROLLBACK TO sqraft_stmt");
    (void)exec_simple("RELEASE sqraft_stmt");
  }
  Status commit = exec_simple("COMMIT");
  if (!commit.ok() && !sqlite3_get_autocommit(conn_)) (void)exec_simple("ROLLBACK");
  for (size_t i = 0; i < batch.size(); i++) {
    if (!commit.ok() && replies[i].status.ok()) replies[i].status = commit;
    if (batch[i].r.done) batch[i].r.done(std::move(replies[i]));
  }
}

void DbWriter::drain() {
  std::unique_lock lk(mu_);
  if (running_ || stopped_) return;
  running_ = true;
  while (!stopping_ && drain_one(lk)) {
  }
  running_ = false;
  scheduled_ = false;
  // Work that came while stopping is failed by stop().
  lk.unlock();
  idle_cv_.notify_all();
}

// With a transaction open only its owner's requests run; the others wait
// (and give up at their deadline), and so does the transaction (its idle
// timeout). REQUIRES: lk held, owner_ != 0.
bool DbWriter::drain_for_owner(std::unique_lock<std::mutex>& lk, Clock::time_point now) {
  auto it = std::find_if(queue_.begin(), queue_.end(), [&](const Queued& q) { return q.r.session == owner_; });
  if (it != queue_.end()) {
    Queued q = std::move(*it);
    queue_.erase(it);
    lk.unlock();
    run_one(q);
    last_used_ = Clock::now();
    lk.lock();
    return true;
  }
  if (now >= owner_deadline_) {
    lk.unlock();
    rollback_owner(Status::Error(SQLITE_ABORT, "idle for more than " + std::to_string(options_.txn_idle_timeout_ms) + " ms"));
    lk.lock();
    return true;
  }
  // Requests waiting behind the transaction give up after their timeout.
  Clock::time_point wake = owner_deadline_;
  std::vector<Queued> expired;
  for (auto q = queue_.begin(); q != queue_.end();) {
    if (q->deadline <= now) {
      expired.push_back(std::move(*q));
      q = queue_.erase(q);
    } else {
      wake = std::min(wake, q->deadline);
      ++q;
    }
  }
  if (!expired.empty()) {
    lk.unlock();
    for (Queued& q : expired) {
      fail(q.r, Status::Busy("database is locked: another client's transaction held the writer for more than " +
                             std::to_string(options_.queue_timeout_ms) + " ms"));
    }
    lk.lock();
    return true;
  }
  pool_.wake_at(this, wake);  // the owner's next request schedules us sooner
  return false;
}

bool DbWriter::drain_one(std::unique_lock<std::mutex>& lk) {
  if (!pending_abort_.ok()) {
    Status why = pending_abort_;
    pending_abort_ = Status::Ok();
    if (owner_ != 0) {
      lk.unlock();
      rollback_owner(why);
      lk.lock();
    }
    return true;
  }
  const Clock::time_point now = Clock::now();
  if (owner_ != 0) return drain_for_owner(lk, now);
  if (queue_.empty()) {
    if (!has_conn_) return false;
    const Clock::time_point idle_at = last_used_ + std::chrono::milliseconds(options_.idle_close_ms);
    if (now < idle_at) {
      pool_.wake_at(this, idle_at);
      return false;
    }
    lk.unlock();
    close_conn();
    spdlog::debug("db '{}': the writer closed its idle connection", db_);
    lk.lock();
    return true;
  }
  std::vector<Queued> batch;
  batch.push_back(std::move(queue_.front()));
  queue_.pop_front();
  if (batch[0].r.batchable) {
    while (!queue_.empty() && queue_.front().r.batchable && batch.size() < options_.batch_max) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }
  lk.unlock();
  if (batch[0].r.batchable) {
    run_batch(batch);
  } else {
    run_one(batch[0]);
  }
  // Between transactions: a checkpoint the leader's loop left to us.
  if (conn_ != nullptr && sqlite3_get_autocommit(conn_)) vfs_.fold_if_wanted(db_, conn_);
  last_used_ = Clock::now();
  lk.lock();
  return true;
}

}  // namespace sqraft
