#include "sql_guard.h"

#include <strings.h>

#include <cassert>
#include <cctype>
#include <cstring>
#include <mutex>
#include <string_view>
#include <unordered_map>

namespace sqraft {

namespace {

// ---- the pragma allow-list -----------------------------------------------------
//
// kInfo      reports something; any argument (a table name, a row limit).
// kSettable  may be read and set: the setting belongs to the database (and is
//            replicated) or only changes how the client's own statements run.
// kIgnored   may be read; setting it is accepted and has no effect, because
//            sqraft manages it (durability, memory, locking).
// kReadOnly  may be read; setting it is refused with `why`.
enum class PragmaMode { kInfo, kSettable, kIgnored, kReadOnly };
struct PragmaRule {
  PragmaMode mode;
  const char* why;  // kReadOnly: the reason given to the client
};

const std::unordered_map<std::string_view, PragmaRule>& pragma_rules() {
  static const std::unordered_map<std::string_view, PragmaRule> rules = {
      // Reports.
      {"collation_list", {PragmaMode::kInfo, nullptr}},
      {"compile_options", {PragmaMode::kInfo, nullptr}},
      {"data_version", {PragmaMode::kInfo, nullptr}},
      {"database_list", {PragmaMode::kInfo, nullptr}},
      {"foreign_key_check", {PragmaMode::kInfo, nullptr}},
      {"foreign_key_list", {PragmaMode::kInfo, nullptr}},
      {"freelist_count", {PragmaMode::kInfo, nullptr}},
      {"function_list", {PragmaMode::kInfo, nullptr}},
      {"index_info", {PragmaMode::kInfo, nullptr}},
      {"index_list", {PragmaMode::kInfo, nullptr}},
      {"index_xinfo", {PragmaMode::kInfo, nullptr}},
      {"integrity_check", {PragmaMode::kInfo, nullptr}},
      {"module_list", {PragmaMode::kInfo, nullptr}},
      {"page_count", {PragmaMode::kInfo, nullptr}},
      {"pragma_list", {PragmaMode::kInfo, nullptr}},
      {"quick_check", {PragmaMode::kInfo, nullptr}},
      {"table_info", {PragmaMode::kInfo, nullptr}},
      {"table_list", {PragmaMode::kInfo, nullptr}},
      {"table_xinfo", {PragmaMode::kInfo, nullptr}},
      // Settings of the database, replicated with it, or of how statements run.
      {"application_id", {PragmaMode::kSettable, nullptr}},
      {"user_version", {PragmaMode::kSettable, nullptr}},
      {"auto_vacuum", {PragmaMode::kSettable, nullptr}},
      {"incremental_vacuum", {PragmaMode::kSettable, nullptr}},
      {"optimize", {PragmaMode::kSettable, nullptr}},
      {"analysis_limit", {PragmaMode::kSettable, nullptr}},
      {"foreign_keys", {PragmaMode::kSettable, nullptr}},
      {"defer_foreign_keys", {PragmaMode::kSettable, nullptr}},
      {"recursive_triggers", {PragmaMode::kSettable, nullptr}},
      {"automatic_index", {PragmaMode::kSettable, nullptr}},
      {"legacy_alter_table", {PragmaMode::kSettable, nullptr}},
      {"reverse_unordered_selects", {PragmaMode::kSettable, nullptr}},
      {"shrink_memory", {PragmaMode::kSettable, nullptr}},
      {"encoding", {PragmaMode::kSettable, nullptr}},
      // The VFS answers these itself (WAL only, the node's page size, no
      // exclusive locking) with its own clear errors.
      {"journal_mode", {PragmaMode::kSettable, nullptr}},
      {"page_size", {PragmaMode::kSettable, nullptr}},
      {"locking_mode", {PragmaMode::kSettable, nullptr}},
      // Managed by sqraft: accepted, no effect.
      {"busy_timeout", {PragmaMode::kIgnored, nullptr}},
      {"synchronous", {PragmaMode::kIgnored, nullptr}},
      {"cache_size", {PragmaMode::kIgnored, nullptr}},
      {"cache_spill", {PragmaMode::kIgnored, nullptr}},
      {"temp_store", {PragmaMode::kIgnored, nullptr}},
      {"mmap_size", {PragmaMode::kIgnored, nullptr}},
      {"journal_size_limit", {PragmaMode::kIgnored, nullptr}},
      {"wal_autocheckpoint", {PragmaMode::kIgnored, nullptr}},
      {"threads", {PragmaMode::kIgnored, nullptr}},
      {"secure_delete", {PragmaMode::kIgnored, nullptr}},
      {"cell_size_check", {PragmaMode::kIgnored, nullptr}},
      // Readable, never settable by a client.
      {"hard_heap_limit", {PragmaMode::kReadOnly, "it is process-wide: it would limit every database of the node"}},
      {"soft_heap_limit", {PragmaMode::kReadOnly, "it is process-wide: it would limit every database of the node"}},
      {"writable_schema", {PragmaMode::kReadOnly, "editing the schema table directly can corrupt the replicated database"}},
      {"schema_version", {PragmaMode::kReadOnly, "changing the schema cookie can corrupt the replicated database"}},
      {"query_only", {PragmaMode::kReadOnly, "it would stop the database's shared writer"}},
      {"max_page_count", {PragmaMode::kReadOnly, "it would apply to every client of the database's shared writer"}},
      {"ignore_check_constraints", {PragmaMode::kReadOnly, "it would let every client of the shared writer break CHECK constraints"}},
      {"trusted_schema", {PragmaMode::kReadOnly, "it is a security setting of the node"}},
  };
  return rules;
}

// Virtual table modules a client may create (their shadow tables are
// ordinary replicated tables; DEFENSIVE keeps clients from writing them).
bool allowed_module(const char* m) {
  if (m == nullptr) return false;
  for (const char* ok : {"fts3", "fts4", "fts5", "rtree", "rtree_i32", "geopoly"}) {
    if (strcasecmp(m, ok) == 0) return true;
  }
  return false;
}

// Guards by connection, so that sqlite_error() can explain a refusal or an
// interrupt without every caller passing the guard along.
std::mutex registry_mu;
std::unordered_map<sqlite3*, SqlGuard*>& registry() {
  static std::unordered_map<sqlite3*, SqlGuard*> r;
  return r;
}

thread_local std::string refusal;  // why the authorizer refused, this thread's last prepare

}  // namespace

void Touches::resolve(sqlite3* conn) {
  for (const std::string& table : unresolved) {
    const bool temp = sqlite3_table_column_metadata(conn, "temp", table.c_str(), nullptr, nullptr, nullptr, nullptr,
                                                    nullptr, nullptr) == SQLITE_OK;
    (temp ? reads_temp : reads_shared) = true;
  }
  unresolved.clear();
}

std::string SqlGuard::pragma_refusal(const std::string& name) {
  auto it = pragma_rules().find(name);
  if (it == pragma_rules().end()) {
    return "PRAGMA " + name + " is not allowed on a sqraft database (see the allowed pragmas in docs/wire-protocol.md)";
  }
  return "PRAGMA " + name + " cannot be set on a sqraft database: " + (it->second.why ? it->second.why : "");
}

SqlGuard::SqlGuard(sqlite3* conn, const SqlLimits& limits, const std::atomic<bool>* node_stopping, bool inline_reads)
    : conn_(conn), limits_(limits), node_stopping_(node_stopping), inline_reads_(inline_reads) {
  assert(conn_ != nullptr);
  sqlite3_db_config(conn_, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(conn_, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr);
  sqlite3_db_config(conn_, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0, nullptr);
  sqlite3_limit(conn_, SQLITE_LIMIT_LENGTH, limits_.value_bytes_max);
  sqlite3_limit(conn_, SQLITE_LIMIT_SQL_LENGTH, limits_.sql_bytes_max);
  sqlite3_limit(conn_, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, limits_.like_pattern_bytes_max);
  sqlite3_limit(conn_, SQLITE_LIMIT_EXPR_DEPTH, limits_.expr_depth_max);
  sqlite3_limit(conn_, SQLITE_LIMIT_COMPOUND_SELECT, limits_.compound_select_max);
  sqlite3_limit(conn_, SQLITE_LIMIT_COLUMN, limits_.columns_max);
  sqlite3_limit(conn_, SQLITE_LIMIT_TRIGGER_DEPTH, limits_.trigger_depth_max);
  sqlite3_limit(conn_, SQLITE_LIMIT_ATTACHED, 1);  // VACUUM attaches its scratch database
  if (inline_reads_) set_size_limits(true);
  sqlite3_set_authorizer(conn_, on_authorize, this);
  sqlite3_progress_handler(conn_, kStepsPerCheck, on_progress, this);
  std::lock_guard lk(registry_mu);
  registry()[conn_] = this;
}

SqlGuard::~SqlGuard() {
  {
    std::lock_guard lk(registry_mu);
    registry().erase(conn_);
  }
  sqlite3_progress_handler(conn_, 0, nullptr, nullptr);
  sqlite3_set_authorizer(conn_, nullptr, nullptr);
}

void SqlGuard::set_size_limits(bool small) {
  sqlite3_limit(conn_, SQLITE_LIMIT_LENGTH, small ? std::min(kInlineValueBytesMax, limits_.value_bytes_max)
                                                  : limits_.value_bytes_max);
  sqlite3_limit(conn_, SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
                small ? std::min(kInlineLikePatternBytesMax, limits_.like_pattern_bytes_max)
                      : limits_.like_pattern_bytes_max);
}

void SqlGuard::start(const std::atomic<uint8_t>* cancel, std::chrono::nanoseconds budget, uint64_t checks,
                     bool on_loop) {
  armed_ = true;
  inline_ = on_loop;
  cancel_ = cancel;
  reason_ = StopReason::kNone;
  refusal.clear();
  deadline_ = std::chrono::steady_clock::now() + budget;
  checks_left_ = checks;
}

void SqlGuard::arm(const std::atomic<uint8_t>* cancel) {
  if (inline_reads_) set_size_limits(false);
  const uint64_t checks = limits_.statement_vm_steps_max == 0
                              ? 0
                              : std::max<uint64_t>(1, limits_.statement_vm_steps_max / kStepsPerCheck);
  start(cancel, std::chrono::milliseconds(limits_.statement_timeout_ms), checks, false);
}

void SqlGuard::arm_inline(const std::atomic<uint8_t>* cancel) {
  assert(inline_reads_);  // the connection rests at the small size limits
  start(cancel, kInlineTime, kInlineChecks, true);
}

void SqlGuard::disarm() {
  if (inline_reads_ && !inline_) set_size_limits(true);
  armed_ = false;
  inline_ = false;
  cancel_ = nullptr;
}

int SqlGuard::on_progress(void* arg) {
  auto* g = static_cast<SqlGuard*>(arg);
  if (!g->armed_) return 0;
  StopReason r = StopReason::kNone;
  if (g->node_stopping_ != nullptr && g->node_stopping_->load(std::memory_order_relaxed)) {
    r = StopReason::kNodeStopping;
  } else if (uint8_t c = g->cancel_ ? g->cancel_->load(std::memory_order_relaxed) : 0;
             c != 0 && (g->honor_interrupt_ || c != uint8_t(StopReason::kClientInterrupt))) {
    r = StopReason(c);
  } else if (g->checks_left_ != 0 && --g->checks_left_ == 0) {
    r = g->inline_ ? StopReason::kInlineBudget : StopReason::kSteps;
  } else if (std::chrono::steady_clock::now() > g->deadline_) {
    r = g->inline_ ? StopReason::kInlineBudget : StopReason::kTimeout;
  }
  if (r == StopReason::kNone) return 0;
  g->reason_ = r;
  return 1;  // SQLite stops the statement with SQLITE_INTERRUPT
}

Status SqlGuard::explain(const Status& s) const {
  if (s.ok()) return s;
  const int primary = s.code() & 0xff;
  if (primary == SQLITE_AUTH && !refusal.empty()) return Status::Error(s.code(), refusal);
  if (primary != SQLITE_INTERRUPT) return s;
  switch (reason_) {
    case StopReason::kClientInterrupt:
      return Status::Error(SQLITE_INTERRUPT, kInterruptedByClient);
    case StopReason::kClientGone:
      return Status::Error(SQLITE_INTERRUPT, "interrupted: the client disconnected");
    case StopReason::kTimeout:
      return Status::Error(SQLITE_INTERRUPT, "interrupted: the statement ran longer than the limit of " +
                                                 std::to_string(limits_.statement_timeout_ms) +
                                                 " ms (--statement-timeout-ms)");
    case StopReason::kSteps:
      return Status::Error(SQLITE_INTERRUPT, "interrupted: the statement ran more than " +
                                                 std::to_string(limits_.statement_vm_steps_max) +
                                                 " VM steps (--statement-steps-max)");
    case StopReason::kInlineBudget:
      return Status::Error(SQLITE_INTERRUPT, "interrupted: inline budget");
    case StopReason::kNodeStopping:
      return Status::Error(SQLITE_INTERRUPT, "interrupted: the node is shutting down");
    case StopReason::kNone:
      break;
  }
  return s;
}

SqlGuard* SqlGuard::of(sqlite3* conn) {
  std::lock_guard lk(registry_mu);
  auto it = registry().find(conn);
  return it == registry().end() ? nullptr : it->second;
}

int SqlGuard::on_authorize(void* arg, int action, const char* a1, const char* a2, const char* db,
                           const char* /*trigger*/) {
  auto* g = static_cast<SqlGuard*>(arg);
  const int rc = g->authorize(action, a1, a2, db);
  if (rc == SQLITE_OK && g->touches_ != nullptr) {
    Touches* t = g->touches_;
    switch (action) {
      case SQLITE_SELECT:
      case SQLITE_FUNCTION:
      case SQLITE_RECURSIVE:
        break;
      case SQLITE_READ:
        if (db == nullptr) {
          if (a1 != nullptr) t->unresolved.emplace_back(a1);
        } else {
          (std::strcmp(db, "temp") == 0 ? t->reads_temp : t->reads_shared) = true;
        }
        break;
      case SQLITE_TRANSACTION:
      case SQLITE_SAVEPOINT:
        t->txn_control = true;
        t->writes_shared = true;
        break;
      case SQLITE_PRAGMA:
      case SQLITE_ANALYZE:
      case SQLITE_REINDEX:
      case SQLITE_CREATE_VTABLE:
      case SQLITE_DROP_VTABLE:
        t->writes_shared = true;
        break;
      case SQLITE_ALTER_TABLE:
        if (a1 != nullptr) (std::strcmp(a1, "temp") == 0 ? t->writes_temp : t->writes_shared) = true;
        break;
      default:
        if (db != nullptr) (std::strcmp(db, "temp") == 0 ? t->writes_temp : t->writes_shared) = true;
        break;
    }
  }
  return rc;
}

bool SqlGuard::vacuum_running() const {
  for (sqlite3_stmt* st = sqlite3_next_stmt(conn_, nullptr); st != nullptr; st = sqlite3_next_stmt(conn_, st)) {
    if (!sqlite3_stmt_busy(st)) continue;
    const char* sql = sqlite3_sql(st);
    if (sql == nullptr) continue;
    while (*sql == ' ' || *sql == '\n' || *sql == '\t' || *sql == '\r') sql++;
    if (strncasecmp(sql, "VACUUM", 6) == 0) return true;
  }
  return false;
}

int SqlGuard::authorize(int action, const char* a1, const char* a2, const char* /*db*/) {
  switch (action) {
    case SQLITE_ATTACH:
    case SQLITE_DETACH:
      // VACUUM runs ATTACH '' (a scratch database) and DETACH while it
      // steps; a client's own ATTACH is compiled before anything runs.
      if (vacuum_running()) {
        if (action == SQLITE_DETACH || (a1 != nullptr && a1[0] == '\0')) return SQLITE_OK;
        refusal = "VACUUM INTO is not allowed: it would write a file on the node (use DUMP to copy a database)";
        return SQLITE_DENY;
      }
      refusal = "ATTACH and DETACH are not allowed: each sqraft database is replicated on its own (open it by name)";
      return SQLITE_DENY;
    case SQLITE_CREATE_VTABLE:
    case SQLITE_DROP_VTABLE:
      if (allowed_module(a2)) return SQLITE_OK;
      refusal = std::string("virtual table module '") + (a2 ? a2 : "") +
                "' is not allowed (allowed: fts3, fts4, fts5, rtree, geopoly)";
      return SQLITE_DENY;
    case SQLITE_FUNCTION:
      if (a2 != nullptr && (strcasecmp(a2, "load_extension") == 0 || strcasecmp(a2, "fts3_tokenizer") == 0)) {
        refusal = std::string("function ") + a2 + "() is not allowed on a sqraft database";
        return SQLITE_DENY;
      }
      return SQLITE_OK;
    case SQLITE_PRAGMA: {
      std::string name = a1 ? a1 : "";
      for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
      auto it = pragma_rules().find(name);
      if (it == pragma_rules().end()) {
        refusal = pragma_refusal(name);
        return SQLITE_DENY;
      }
      const bool sets = a2 != nullptr;
      switch (it->second.mode) {
        case PragmaMode::kInfo:
        case PragmaMode::kSettable:
          return SQLITE_OK;
        case PragmaMode::kIgnored:
          return sets ? SQLITE_IGNORE : SQLITE_OK;  // IGNORE: the pragma does nothing
        case PragmaMode::kReadOnly:
          if (!sets) return SQLITE_OK;
          refusal = pragma_refusal(name);
          return SQLITE_DENY;
      }
      return SQLITE_DENY;
    }
    default:
      return SQLITE_OK;
  }
}

}  // namespace sqraft
