// Executor: runs SQL on this node through its VFS, one worker thread per
// database, so that a commit can wait for Raft without blocking the loop
// thread that drives Raft.
//
// Used on the leader: a write's commit returns only once its frames are
// applied on this node (and therefore committed by a quorum), or fails with
// "not leader" / "leadership lost", in which case SQLite rolled it back and no
// node keeps a trace of it (unless Raft committed it after all: see
// docs/architecture.md, "ambiguous outcomes").
//
// Thread-safety: submit() may be called from any thread; callbacks run on the
// database's worker thread.
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "status.h"

namespace sqraft {

class Vfs;

struct ExecResult {
  int64_t last_insert_id = 0;
  int64_t rows_affected = 0;  // of the last statement
  std::vector<std::vector<std::string>> rows;  // of the last statement that returned rows
};

class Executor {
 public:
  enum class Mode {
    kAutocommit,         // each statement commits on its own
    kTransaction,        // BEGIN; statements; COMMIT
    kRolledBack,         // BEGIN; statements; ROLLBACK
  };
  using Callback = std::function<void(Result<ExecResult>)>;

  explicit Executor(Vfs& vfs);
  ~Executor();  // stop()s
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Queues `stmts` (each may hold several statements) for `db`.
  void submit(const std::string& db, std::vector<std::string> stmts, Mode mode, Callback cb);
  // Finishes queued jobs, joins the workers and closes their connections.
  void stop();

  // Maps the error of `conn` to a Status ("not leader" and "leadership lost"
  // keep their dqlite codes).
  static Status error_of(sqlite3* conn, int rc);

 private:
  struct Job {
    std::vector<std::string> stmts;
    Mode mode;
    Callback cb;
  };
  struct Worker;

  Vfs& vfs_;
  std::mutex mu_;
  bool stopped_ = false;
  std::map<std::string, std::unique_ptr<Worker>> workers_;
};

}  // namespace sqraft
