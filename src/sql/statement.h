// Running client statements: classification, a per-connection statement
// cache, parameter binding, and a query's rows batch by batch (in the format
// of the caller's RowEncoder).
//
// Thread-safety: a StmtCache and the statements it hands out belong to one
// connection and are used by one thread at a time.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "row_encoder.h"
#include "status.h"
#include "value.h"

namespace sqraft {

// What a statement does, judged from its text alone (cheap, on any thread).
enum class StmtKind {
  kRead,            // never writes: runs on the client's own connection
  kWrite,           // one INSERT/UPDATE/DELETE/REPLACE/CREATE/DROP/ALTER: may join a group commit
  kWriteExclusive,  // writes, but must run alone on the writer (VACUUM, scripts, ...)
  kBegin,           // BEGIN
  kEnd,             // COMMIT / END / ROLLBACK (whole transaction)
  kOther,           // unknown from the text alone: classify by preparing
};
StmtKind classify_sql(std::string_view sql);
// True if `sql` holds at most one statement (comments and whitespace aside).
bool single_statement(std::string_view sql);

// Prepared statements of one connection, by SQL text (least recently used
// ones are finalized past `capacity`).
class StmtCache {
 public:
  explicit StmtCache(sqlite3* conn, size_t capacity = 64) : conn_(conn), capacity_(capacity) {}
  ~StmtCache();
  StmtCache(const StmtCache&) = delete;
  StmtCache& operator=(const StmtCache&) = delete;

  // A reset statement for `sql` (one statement; a tail is an error).
  Result<sqlite3_stmt*> get(const std::string& sql);
  // The reset statement for `sql` if it is cached and known to run at a
  // bounded cost per step (bounded_cost()), else null: the loop thread's
  // fast path. Unknown until learn_cost() ran for the cached `sql`.
  sqlite3_stmt* get_bounded(const std::string& sql);
  void learn_cost(const std::string& sql);
  void clear();
  sqlite3* conn() const { return conn_; }

 private:
  sqlite3* conn_;
  size_t capacity_;
  std::list<std::string> lru_;  // front: most recent
  struct Entry {
    sqlite3_stmt* stmt;
    std::list<std::string>::iterator pos;
    std::optional<bool> bounded;
  };
  std::unordered_map<std::string, Entry> entries_;
};

// The error of `conn` (after `rc` from a call on it) as a Status with the
// extended code; "not leader" and "leadership lost" keep dqlite's codes.
Status sqlite_error(sqlite3* conn, int rc);

Status bind_params(sqlite3_stmt* stmt, const SqlParams& params);

// True if every step of `sql`'s program on `conn` has a cost bounded by the
// sizes of the values it handles: no virtual tables, pragmas, whole-table
// counts or integrity checks, and only functions from a short list of
// linear ones (printf('%.*c', 900000000, 'x') is one call that runs for a
// second whatever its result size). Judged from the opcodes EXPLAIN lists;
// a statement longer than kBoundedSqlBytesMax is never bounded.
inline constexpr size_t kBoundedSqlBytesMax = 4096;
bool bounded_cost(sqlite3* conn, const std::string& sql);

struct ExecOutcome {
  uint64_t last_insert_id = 0;
  uint64_t rows_affected = 0;
};
// Steps `stmt` to completion, discarding rows.
Result<ExecOutcome> step_all(sqlite3* conn, sqlite3_stmt* stmt);
// Runs every statement of `sql` in order (binding `params` to each statement
// that has parameters), like sqlite3_exec.
Result<ExecOutcome> exec_script(sqlite3* conn, const std::string& sql, const SqlParams& params);

// Steps a query's statement batch by batch; `encoder` makes each batch.
class RowCursor {
 public:
  RowCursor(sqlite3_stmt* stmt, std::unique_ptr<RowEncoder> encoder);
  ~RowCursor();  // resets an unfinished statement (ends its read transaction)
  RowCursor(RowCursor&& other) noexcept;
  RowCursor& operator=(RowCursor&&) = delete;
  // Steps up to `max_bytes` worth of rows. Returns one batch ending with
  // "more" or "done"; *done says which. Errors end the cursor.
  // A client's INTERRUPT that stops the statement after some rows of the
  // batch ends the batch there ("more"); the cursor is then interrupted().
  Result<std::vector<uint8_t>> next_batch(sqlite3* conn, size_t max_bytes, bool* done);
  bool interrupted() const { return interrupted_; }

 private:
  sqlite3_stmt* stmt_;
  std::unique_ptr<RowEncoder> encoder_;
  int last_rc_ = SQLITE_ROW;
  bool interrupted_ = false;
  bool writes_ = false;  // INSERT ... RETURNING and the like
};

}  // namespace sqraft
