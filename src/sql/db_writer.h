// DbWriter: the one writer of a database on the leader, with a queue.
//
// Clients' write statements do not race for SQLite's write lock (and get
// "database is locked"): they queue here. Consecutive autocommit statements
// from any number of clients run as one SQLite transaction — each inside its
// own savepoint, so each keeps its own result or error — and therefore share
// one Raft entry and one fsync (group commit).
//
// A client that opens a transaction (BEGIN ...) owns the writer until it
// commits or rolls back, or until it stays idle longer than the idle timeout,
// which rolls it back. Requests from other clients wait; one that waits
// longer than the queue timeout fails with SQLITE_BUSY. The queue is bounded.
//
// Threads: a writer has no thread of its own. When it has work it is
// scheduled on the node's WriterPool, and drain() runs on one of the pool's
// threads until nothing is runnable now; timeouts wake it through the pool.
// A database left idle for Options::idle_close_ms closes its connection and
// statement cache, so memory does not grow with the number of databases
// ever written.
//
// Every client statement runs under the connection's SqlGuard: its deadline
// and step budget, and its client's cancel flag (Request::cancel), stop it.
//
// Thread-safety: submit()/release()/abort_owner()/schedule()/stop() from any
// thread. Completion callbacks run on a pool thread and must not block.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sql_guard.h"
#include "statement.h"
#include "status.h"
#include "writer_pool.h"

namespace sqraft {

class Vfs;

class DbWriter {
 public:
  struct Options {
    size_t queue_max = 10000;          // queued requests before SQLITE_BUSY
    size_t batch_max = 512;            // statements per group commit
    unsigned queue_timeout_ms = 10000; // wait for the writer before SQLITE_BUSY
    unsigned txn_idle_timeout_ms = 30000;
    unsigned busy_timeout_ms = 10000;  // SQLite busy handler (checkpoints)
    size_t rows_batch_bytes = 64 * 1024;
    unsigned idle_close_ms = 10000;    // close the connection after this long unused
    SqlLimits limits;
    const std::atomic<bool>* node_stopping = nullptr;  // stops every client statement
    RowEncoderFactory row_encoder = nullptr;  // the format of a query's rows (required)
  };

  struct Reply {
    Status status;
    ExecOutcome outcome;
    std::vector<std::vector<uint8_t>> rows;  // batches made by options.row_encoder (queries)
    bool rows_done = true;
    bool in_txn = false;  // the client owns the writer after this request
    uint64_t params = 0;  // kPrepare: parameter count
    uint64_t tail = 0;    // kPrepare: offset of the text after the first statement
  };
  using Done = std::function<void(Reply)>;

  enum class Kind {
    kExec,        // run `sql` (one or more statements) with `params`
    kQuery,       // run a statement and return its rows
    kNextRows,    // continue the owner's open query
    kCancelRows,  // stop the owner's open query
    kPrepare,     // prepare `sql` to describe it (param count, statement tail)
    kRelease,     // internal: the client is gone
  };
  struct Request {
    uint64_t session = 0;
    Kind kind = Kind::kExec;
    std::string sql;
    SqlParams params;
    bool batchable = false;    // one plain write statement: may join a group commit
    bool expect_owner = false; // the client believes it is in a transaction here
    // The client's cancel flag (a StopReason; may be null): the statement
    // stops when it becomes non-zero. Must outlive the request's completion.
    const std::atomic<uint8_t>* cancel = nullptr;
    Done done;
  };

  DbWriter(Vfs& vfs, std::string db, Options options, WriterPool& pool);
  ~DbWriter();  // stop()
  DbWriter(const DbWriter&) = delete;
  DbWriter& operator=(const DbWriter&) = delete;

  // Queues `r`; false (and `r.done` is not called) if the queue is full or
  // the writer stopped.
  bool submit(Request r);
  // The client is gone: roll back its transaction and drop its requests.
  void release(uint64_t session);
  // Roll back whatever transaction is open (leadership was lost).
  void abort_owner(const Status& why);
  // Fails what is queued, rolls back, closes the connection; waits for a
  // drain() in progress to end. Idempotent.
  void stop();

  // Makes sure drain() runs soon (the pool's timer calls this).
  void schedule();
  // Runs what can run now, then returns (a pool thread).
  void drain();

  const std::string& db() const { return db_; }
  // True while the writer holds an open SQLite connection (idle ones close).
  bool connection_open() const;
  // Statistics: transactions run for queued autocommit write statements
  // (one or more each: a group commit), and the statements in them.
  uint64_t batches() const { return batches_; }
  uint64_t batched_statements() const { return batched_statements_; }
  size_t queue_depth() const;  // requests waiting

 private:
  using Clock = std::chrono::steady_clock;
  struct Queued {
    Request r;
    Clock::time_point deadline;
  };

  // REQUIRES: mu_ held.
  void schedule_locked();
  // One thing to do now, under `lk`; false when there is nothing.
  bool drain_one(std::unique_lock<std::mutex>& lk);
  bool drain_for_owner(std::unique_lock<std::mutex>& lk, Clock::time_point now);
  void close_conn();
  bool ensure_conn(Status* error);
  Result<ExecOutcome> exec_client(Request& r);
  void run_batch(std::vector<Queued>& batch);
  void run_one(Queued& q);
  Reply exec_in_owner_or_alone(Request& r);
  void rollback_owner(const Status& why);
  Status exec_simple(const char* sql);
  void fail(Request& r, const Status& s);

  // Constant after construction.
  Vfs& vfs_;
  const std::string db_;
  const Options options_;
  WriterPool& pool_;

  // The drain() in progress only (one at a time, see running_).
  sqlite3* conn_ = nullptr;
  std::unique_ptr<SqlGuard> guard_;
  std::unique_ptr<StmtCache> cache_;
  std::unique_ptr<RowCursor> cursor_;  // the owner's open query
  std::string cursor_sql_;
  Clock::time_point last_used_;

  // State below is protected by mu_.
  mutable std::mutex mu_;
  std::condition_variable idle_cv_;   // running_ became false
  std::deque<Queued> queue_;
  uint64_t owner_ = 0;                // session owning an open transaction
  Clock::time_point owner_deadline_;  // idle timeout of the owner
  std::vector<uint64_t> aborted_;     // sessions whose transaction we rolled back
  Status pending_abort_;              // abort_owner() reason, handled by drain()
  bool scheduled_ = false;            // handed to the pool, or draining
  bool running_ = false;              // drain() is running
  bool stopping_ = false;
  bool stopped_ = false;
  bool has_conn_ = false;             // conn_ != nullptr, readable from any thread
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> batched_statements_{0};
};

}  // namespace sqraft
