// SqlGuard: what a client's SQL may do, and how long it may run.
//
// Every SQLite connection that runs SQL sent by a client (a session's own
// connection to a database, and each database's writer connection) carries
// one SqlGuard. It installs, for the connection's whole life:
//
// - SQLite's own protections: SQLITE_DBCONFIG_DEFENSIVE (no writes to the
//   schema table, sqlite_dbpage or shadow tables), no extensions, and
//   sqlite3_limit caps on value size, SQL length, attached databases,
//   LIKE pattern length and expression depth (SqlLimits).
// - An authorizer with an allow-list of pragmas and actions: process-wide
//   settings (hard_heap_limit, ...) and settings that can corrupt a
//   replicated database (writable_schema, schema_version=...) are refused
//   with a clear error; connection settings sqraft manages itself
//   (busy_timeout, synchronous, cache_size, ...) are accepted and ignored.
//   docs/wire-protocol.md "What client SQL may do" lists them.
// - A progress handler that stops a statement when its deadline passes, its
//   VM-step budget runs out, its client interrupts it or goes away, or the
//   node is stopping. The statement fails with SQLITE_INTERRUPT; explain()
//   turns that into a message saying why.
//
// arm() before running a client's statement(s), disarm() after. While
// disarmed the handler never interrupts (the writer's own statements).
//
// Thread-safety: a SqlGuard belongs to its connection and is used by the
// thread using that connection. The cancel flag and the node's stopping
// flag it watches are atomics set from any thread.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "status.h"

namespace sqraft {

// Per-node limits on client SQL (NodeOptions, `sqraft node` flags).
struct SqlLimits {
  unsigned statement_timeout_ms = 60000;      // wall time of one request's SQL
  uint64_t statement_vm_steps_max = 0;        // SQLite VM steps per request; 0: no step limit
  int value_bytes_max = 32 * 1024 * 1024;     // SQLITE_LIMIT_LENGTH: one string or blob
  int sql_bytes_max = 16 * 1024 * 1024;       // SQLITE_LIMIT_SQL_LENGTH
  int like_pattern_bytes_max = 10000;         // SQLITE_LIMIT_LIKE_PATTERN_LENGTH
  int expr_depth_max = 1000;                  // SQLITE_LIMIT_EXPR_DEPTH
  int compound_select_max = 500;              // SQLITE_LIMIT_COMPOUND_SELECT
  int columns_max = 2000;                     // SQLITE_LIMIT_COLUMN
  int trigger_depth_max = 100;                // SQLITE_LIMIT_TRIGGER_DEPTH
};

// Why a client's statement was stopped. Values of the cancel flag a session
// shares with its guards are kNone, kClientInterrupt and kClientGone.
enum class StopReason : uint8_t {
  kNone = 0,
  kClientInterrupt,  // the client sent INTERRUPT
  kClientGone,       // the client disconnected
  kTimeout,          // SqlLimits::statement_timeout_ms
  kSteps,            // SqlLimits::statement_vm_steps_max
  kInlineBudget,     // the loop thread's small budget (the read restarts elsewhere)
  kNodeStopping,     // the node is shutting down
};

// What a statement touches, recorded by the authorizer while it is
// prepared (Session routes by it): TEMP objects live on the client's own
// connection, everything else in the shared, replicated database.
struct Touches {
  bool writes_temp = false;
  bool writes_shared = false;  // or does something connection-wide
  bool reads_temp = false;
  bool reads_shared = false;
  bool txn_control = false;  // BEGIN, SAVEPOINT, ...: belongs on the writer
  std::vector<std::string> unresolved;  // tables read for no column: schema not given
  // Tables read without naming a column come without a schema: the name
  // resolves to the TEMP table if `conn` has one.
  void resolve(sqlite3* conn);
};

class SqlGuard {
 public:
  // SQLite VM steps between two checks of the progress handler.
  static constexpr int kStepsPerCheck = 1000;
  // The loop thread's budget for an inline read (then it restarts on the
  // reader pool): time, checks, and value/pattern sizes small enough that
  // no single VM step can take long.
  static constexpr auto kInlineTime = std::chrono::milliseconds(2);
  static constexpr uint64_t kInlineChecks = 10;
  static constexpr int kInlineValueBytesMax = 256 * 1024;
  static constexpr int kInlineLikePatternBytesMax = 1000;

  // Applies the protections to `conn` (which stays owned by the caller and
  // must outlive the guard). `node_stopping` (may be null) must outlive it.
  // A connection that may run reads on the loop thread (`inline_reads`)
  // rests at the inline size limits: arm() raises them for the statement,
  // disarm() lowers them again, so the common inline read changes nothing.
  SqlGuard(sqlite3* conn, const SqlLimits& limits, const std::atomic<bool>* node_stopping, bool inline_reads = false);
  ~SqlGuard();  // removes the handler and the authorizer
  SqlGuard(const SqlGuard&) = delete;
  SqlGuard& operator=(const SqlGuard&) = delete;

  // Starts the budget of one request: deadline and step count from now;
  // `cancel` (may be null; a StopReason stored as uint8_t) is watched.
  void arm(const std::atomic<uint8_t>* cancel);
  // The small budget of a read tried on the loop thread.
  void arm_inline(const std::atomic<uint8_t>* cancel);
  // No more interrupts; back to the resting size limits.
  void disarm();
  // Why the handler stopped the last statement (kNone if it did not).
  StopReason reason() const { return reason_; }
  // `s` with a message that says why, if the guard stopped the statement.
  Status explain(const Status& s) const;

  // A statement that writes is not stopped by the client's INTERRUPT (it
  // would roll back the write, or the client's whole transaction, while the
  // client only asked to stop reading rows); RowCursor turns this off for
  // such statements. Deadlines, disconnects and shutdown still stop them.
  void honor_client_interrupt(bool on) { honor_interrupt_ = on; }

  // While set, the authorizer also records what statements touch.
  void record(Touches* touches) { touches_ = touches; }

  // The guard of `conn`, or null (for sqlite_error() and RowCursor).
  static SqlGuard* of(sqlite3* conn);

  // The message of a statement stopped by its client's INTERRUPT.
  static constexpr const char* kInterruptedByClient = "interrupted: the client sent INTERRUPT";

  // The message a refused pragma gets (for tests and docs).
  static std::string pragma_refusal(const std::string& name);

 private:
  static int on_progress(void* arg);
  void start(const std::atomic<uint8_t>* cancel, std::chrono::nanoseconds budget, uint64_t checks, bool on_loop);
  void set_size_limits(bool small);
  static int on_authorize(void* arg, int action, const char* a1, const char* a2, const char* db, const char* trigger);
  int authorize(int action, const char* a1, const char* a2, const char* db);
  // True while a VACUUM statement of this connection is stepping.
  bool vacuum_running() const;

  sqlite3* const conn_;
  const SqlLimits limits_;
  const std::atomic<bool>* const node_stopping_;
  const bool inline_reads_;

  // The current request (the connection's thread only).
  bool armed_ = false;
  bool inline_ = false;
  const std::atomic<uint8_t>* cancel_ = nullptr;
  std::chrono::steady_clock::time_point deadline_;
  uint64_t checks_left_ = 0;  // 0: unlimited
  StopReason reason_ = StopReason::kNone;
  Touches* touches_ = nullptr;
  bool honor_interrupt_ = true;
};

}  // namespace sqraft
