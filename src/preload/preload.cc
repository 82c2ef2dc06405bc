// libsqraft_preload.so: replicated databases for programs that cannot be
// changed (see docs/sqlite-replacement.md).
//
// Loaded with LD_PRELOAD, this library defines sqlite3_open, sqlite3_open_v2,
// sqlite3_open16 and sqlite3_errmsg ahead of libsqlite3. An open of a
// database the environment names (SQRAFT_DATABASES, or a "vfs=sqraft" URI)
// starts this process's node on first use and goes to the node's VFS
// ("sqraft"); everything else reaches the real libsqlite3 unchanged. The
// real functions are found by dlopen("libsqlite3.so.0") itself, not
// RTLD_NEXT, which returns NULL inside Python's and Perl's extension modules.
//
// Process rules: nothing runs at load time (no constructor, no thread);
// the node starts on the first replicated open; a forked child never uses
// its parent's node (its threads are not there) and gets a clear error;
// the data directory is locked by the node (DirLock), so a second process
// with the same SQRAFT_DIR fails at open, naming the holder; at exit the
// node hands over leadership and stops, leaving the VFS for connections the
// program never closed.
//
// Thread-safety: every entry point may be called from any thread.
#include <dlfcn.h>
#include <fnmatch.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "node.h"

#define SQRAFT_EXPORT extern "C" __attribute__((visibility("default")))

namespace sqraft {
namespace {

constexpr const char* kVfsName = "sqraft";

// ---- the real libsqlite3 ----------------------------------------------------

struct Real {
  int (*open_v2)(const char*, sqlite3**, int, const char*) = nullptr;
  int (*open16)(const void*, sqlite3**) = nullptr;
  const char* (*errmsg)(sqlite3*) = nullptr;
};

const Real& real() {
  static const Real r = [] {
    Real x;
    void* h = ::dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_GLOBAL);
    if (h != nullptr) {
      x.open_v2 = reinterpret_cast<decltype(x.open_v2)>(::dlsym(h, "sqlite3_open_v2"));
      x.open16 = reinterpret_cast<decltype(x.open16)>(::dlsym(h, "sqlite3_open16"));
      x.errmsg = reinterpret_cast<decltype(x.errmsg)>(::dlsym(h, "sqlite3_errmsg"));
    }
    if (x.open_v2 == nullptr || x.open16 == nullptr || x.errmsg == nullptr) {
      // The library links libsqlite3.so.0 itself, so this is a broken install.
      std::fprintf(stderr, "sqraft preload: cannot find libsqlite3.so.0's functions: %s\n", ::dlerror());
      std::abort();
    }
    return x;
  }();
  return r;
}

// ---- settings from the environment -------------------------------------------

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

struct Config {
  std::vector<std::string> patterns;  // SQRAFT_DATABASES, split at ','
  bool test_memory = false;           // SQRAFT_TEST_MEMORY=1
  unsigned timeout_ms = 10000;        // SQRAFT_TIMEOUT_MS
};

const Config& config() {
  static const Config c = [] {
    Config x;
    const std::string list = env("SQRAFT_DATABASES");
    size_t start = 0;
    while (start <= list.size()) {
      size_t end = list.find(',', start);
      if (end == std::string::npos) end = list.size();
      if (end > start) x.patterns.push_back(list.substr(start, end - start));
      start = end + 1;
    }
    x.test_memory = env("SQRAFT_TEST_MEMORY") == "1";
    if (const std::string t = env("SQRAFT_TIMEOUT_MS"); !t.empty()) x.timeout_ms = unsigned(std::strtoul(t.c_str(), nullptr, 10));
    return x;
  }();
  return c;
}

// ---- which opens are replicated ----------------------------------------------

struct Route {
  bool replicated = false;
  std::string name;  // the database's name in the cluster
  std::string mode;  // a URI's mode=ro|rw|rwc
};

std::string basename_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The value of URI parameter `key` in `query` ("a=1&b=2"), "" if absent.
std::string uri_param(const std::string& query, const std::string& key) {
  size_t start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    const std::string kv = query.substr(start, end - start);
    if (kv.compare(0, key.size() + 1, key + "=") == 0) return kv.substr(key.size() + 1);
    start = end + 1;
  }
  return "";
}

bool named(const std::string& path) {
  std::string absolute = path;
  if (!path.empty() && path[0] != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd) != nullptr) absolute = std::string(cwd) + "/" + path;
  }
  const std::string base = basename_of(path);
  for (const std::string& p : config().patterns) {
    const bool by_path = p.find('/') != std::string::npos;
    if (::fnmatch(p.c_str(), by_path ? absolute.c_str() : base.c_str(), 0) == 0) return true;
  }
  return false;
}

std::string fresh_memory_name() {
  static std::atomic<uint64_t> seq{0};
  return "mem-" + std::to_string(::getpid()) + "-" + std::to_string(seq++) + ".db";
}

Route route(const char* filename, const char* vfs) {
  Route r;
  if (vfs != nullptr && std::strcmp(vfs, kVfsName) != 0) return r;  // another VFS, e.g. a node's own
  std::string path = filename ? filename : "";
  std::string query;
  const bool uri = path.compare(0, 5, "file:") == 0;
  if (uri) {
    path = path.substr(5);
    if (path.compare(0, 2, "//") == 0) {  // file://authority/path
      const size_t slash = path.find('/', 2);
      path = slash == std::string::npos ? "" : path.substr(slash);
    }
    const size_t q = path.find_first_of("?#");
    if (q != std::string::npos) {
      if (path[q] == '?') query = path.substr(q + 1, path.find('#', q) - q - 1);
      path.resize(q);
    }
  }
  const bool memory = path.empty() || path == ":memory:" || uri_param(query, "mode") == "memory";
  if (memory) {
    if (!config().test_memory) return r;
    // Test-only: in-memory and temporary databases become fresh replicated
    // ones, so that a test suite written for SQLite exercises the VFS.
    r.replicated = true;
    r.name = fresh_memory_name();
    return r;
  }
  if ((vfs != nullptr) || uri_param(query, "vfs") == kVfsName || named(path)) {
    r.replicated = true;
    r.name = basename_of(path);
    r.mode = uri_param(query, "mode");
  }
  return r;
}

// ---- this process's node -------------------------------------------------------

std::mutex g_mu;  // serializes the node's start and stop
// Never freed: a forked child must not run its destructor. Set once, under g_mu.
std::atomic<Node*> g_node{nullptr};
std::atomic<pid_t> g_owner{0};

// This process's running node, or null.
Node* own_node() {
  Node* n = g_node.load();
  return n != nullptr && ::getpid() == g_owner.load() ? n : nullptr;
}

void stop_at_exit() {
  std::lock_guard lk(g_mu);
  Node* node = own_node();
  if (node == nullptr) return;
  // If it leads, the next leader is ready at once instead of after an election.
  if (Status s = node->handover(); !s.ok()) spdlog::warn("sqraft preload: handover at exit: {}", s.message());
  (void)node->stop();
}

Result<NodeOptions> options_from_env() {
  NodeOptions o;
  const std::string id = env("SQRAFT_ID"), address = env("SQRAFT_ADDRESS"), dir = env("SQRAFT_DIR");
  if (id.empty() || address.empty() || dir.empty()) {
    return Status::Invalid("set SQRAFT_ID, SQRAFT_ADDRESS and SQRAFT_DIR to run this process's node");
  }
  char* end = nullptr;
  o.id = std::strtoull(id.c_str(), &end, 10);
  if (o.id == 0 || *end != '\0') return Status::Invalid("SQRAFT_ID '" + id + "' is not a positive integer");
  o.address = address;
  o.dir = dir;
  if (const std::string c = env("SQRAFT_CLUSTER"); !c.empty()) {
    Result<std::vector<Member>> members = parse_cluster(c);
    if (!members.ok()) return members.status().with_context("SQRAFT_CLUSTER '" + c + "'");
    for (const Member& m : *members) {
      if (m.id == o.id && m.address != o.address) {
        return Status::Invalid("SQRAFT_CLUSTER lists node " + id + " at " + m.address + " but SQRAFT_ADDRESS is " +
                               address + ": two processes may not claim the same id");
      }
      if (m.id != o.id && m.address == o.address) {
        return Status::Invalid("SQRAFT_CLUSTER lists " + address + " as node " + std::to_string(m.id) +
                               ", not SQRAFT_ID " + id);
      }
    }
    o.cluster = std::move(members).value();
  }
  if (const std::string l = env("SQRAFT_LATENCY_MS"); !l.empty()) o.network_latency_ms = unsigned(std::atoi(l.c_str()));
  if (const std::string t = env("SQRAFT_COMMIT_TIMEOUT_MS"); !t.empty()) {
    o.commit_outcome_timeout_ms = unsigned(std::strtoul(t.c_str(), nullptr, 10));
    if (o.commit_outcome_timeout_ms == 0) return Status::Invalid("SQRAFT_COMMIT_TIMEOUT_MS must be a positive number");
  }
  if (const std::string st = env("SQRAFT_STORAGE"); !st.empty()) {
    if (st != "memory" && st != "disk") return Status::Invalid("SQRAFT_STORAGE is 'memory' or 'disk', not '" + st + "'");
    o.storage = st == "disk" ? Storage::kDisk : Storage::kMemory;
  }
  o.vfs_name = kVfsName;
  o.keep_vfs_after_stop = true;
  return o;
}

// Starts the node on first use.
Status ensure_node() {
  if (own_node() != nullptr) return Status::Ok();
  std::lock_guard lk(g_mu);
  if (g_node.load() != nullptr) {
    if (own_node() != nullptr) return Status::Ok();
    return Status::Invalid("this process was forked from process " + std::to_string(g_owner.load()) +
                           ", whose sqraft node did not come along: open replicated databases in the parent, or exec "
                           "a new program");
  }
  static bool logging_set = false;
  if (!logging_set) {
    const std::string level = env("SQRAFT_LOG");
    // The program's stdout is its own: the node logs to stderr.
    spdlog::set_default_logger(spdlog::stderr_color_mt("sqraft-preload"));
    spdlog::set_level(spdlog::level::from_str(level.empty() ? "warn" : level));
    logging_set = true;
  }
  Result<NodeOptions> o = options_from_env();
  if (!o.ok()) return o.status();
  const std::string what = "node " + std::to_string(o->id) + " at " + o->address;
  Result<std::unique_ptr<Node>> node = Node::create(std::move(o).value());
  if (!node.ok()) return node.status().with_context("cannot start " + what);
  if (Status s = (*node)->start(); !s.ok()) return s.with_context("cannot start " + what);
  g_owner = ::getpid();
  g_node = std::move(node).value().release();
  std::atexit(stop_at_exit);
  return Status::Ok();
}

// Waits (bounded) until `db` can be opened here: it exists on this node, or
// this node leads and can create it (a follower's open of a new database
// waits for the leader to create it).
Status wait_for_database(Node* node, const std::string& db, int flags) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(config().timeout_ms);
  for (;;) {
    if (node->has_database(db)) return Status::Ok();
    if (!(flags & SQLITE_OPEN_CREATE)) return Status::Ok();  // SQLite itself says "unable to open"
    if (node->is_leader()) return Status::Ok();
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::string leader = node->leader_address();
  if (leader.empty()) {
    return Status::Busy("database '" + db + "' does not exist on this node and no leader was elected within " +
                        std::to_string(config().timeout_ms) + " ms to create it (are the other nodes running?)");
  }
  return Status::Error(kErrReadonlyNotLeader, "database '" + db + "' does not exist on this node, and only the "
                       "leader (at " + leader + ") can create it: open it there first");
}

// An open that fails with `message`: SQLite's handle carries it (every
// sqlite3_open returns a handle, and sqlite3_errmsg() must explain).
int refuse(sqlite3** db, const std::string& message) {
  // The message travels as the name of a VFS SQLite does not have: it then
  // reads "no such vfs: sqraft: <message>".
  const std::string vfs = std::string(kVfsName) + ": " + message;
  const int rc = real().open_v2(":memory:", db, SQLITE_OPEN_READWRITE, vfs.c_str());
  return rc == SQLITE_OK ? SQLITE_CANTOPEN : rc;
}

int open_routed(const char* filename, sqlite3** db, int flags, const char* vfs) {
  const Route r = route(filename, vfs);
  if (!r.replicated) return real().open_v2(filename, db, flags, vfs);
  if (Status s = ensure_node(); !s.ok()) return refuse(db, s.message());
  if (Status s = wait_for_database(own_node(), r.name, flags); !s.ok()) return refuse(db, s.message());
  flags &= ~(SQLITE_OPEN_MEMORY | SQLITE_OPEN_URI);
  if (r.mode == "ro") flags = (flags & ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_READONLY;
  if (r.mode == "rw") flags &= ~SQLITE_OPEN_CREATE;
  return real().open_v2(r.name.c_str(), db, flags, kVfsName);
}

bool schema_on_sqraft(sqlite3* db, const char* schema) {
  sqlite3_vfs* vfs = nullptr;
  return db != nullptr &&
         sqlite3_file_control(db, schema ? schema : "main", SQLITE_FCNTL_VFS_POINTER, &vfs) == SQLITE_OK &&
         vfs != nullptr && std::strcmp(vfs->zName, kVfsName) == 0;
}

// Leaves `code` and `message` as the connection's last error, as SQLite
// would: through a statement that fails with them (a function registered
// for that one statement).
int set_error(sqlite3* db, int code, const std::string& message) {
  struct Err {
    int code;
    std::string message;
  } err{code, message};
  auto fail = [](sqlite3_context* ctx, int, sqlite3_value**) {
    auto* e = static_cast<Err*>(sqlite3_user_data(ctx));
    sqlite3_result_error(ctx, e->message.c_str(), -1);
    sqlite3_result_error_code(ctx, e->code);
  };
  const char* name = "sqraft_refusal";
  if (sqlite3_create_function(db, name, 0, SQLITE_UTF8, &err, fail, nullptr, nullptr) != SQLITE_OK) return code;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT sqraft_refusal()", -1, &stmt, nullptr) == SQLITE_OK) {
    (void)sqlite3_step(stmt);
    // finalize would keep the error too; reset leaves it on the handle.
    sqlite3_finalize(stmt);
  }
  sqlite3_create_function(db, name, 0, SQLITE_UTF8, nullptr, nullptr, nullptr, nullptr);
  return code;
}

std::string leader_now() {
  Node* node = own_node();
  return node != nullptr ? node->leader_address() : "";
}

// UTF-16 in the machine's byte order (what sqlite3_open16 takes) to UTF-8.
std::string utf16_to_utf8(const void* text) {
  std::string out;
  const auto* p = static_cast<const uint16_t*>(text);
  for (; *p != 0; p++) {
    uint32_t c = *p;
    if (c >= 0xd800 && c < 0xdc00 && p[1] >= 0xdc00 && p[1] < 0xe000) {
      c = 0x10000 + ((c - 0xd800) << 10) + (p[1] - 0xdc00);
      p++;
    }
    if (c < 0x80) {
      out += char(c);
    } else if (c < 0x800) {
      out += char(0xc0 | (c >> 6));
      out += char(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      out += char(0xe0 | (c >> 12));
      out += char(0x80 | ((c >> 6) & 0x3f));
      out += char(0x80 | (c & 0x3f));
    } else {
      out += char(0xf0 | (c >> 18));
      out += char(0x80 | ((c >> 12) & 0x3f));
      out += char(0x80 | ((c >> 6) & 0x3f));
      out += char(0x80 | (c & 0x3f));
    }
  }
  return out;
}

}  // namespace
}  // namespace sqraft

using namespace sqraft;

SQRAFT_EXPORT int sqlite3_open_v2(const char* filename, sqlite3** db, int flags, const char* vfs) {
  int rc = SQLITE_NOMEM;
  if (db != nullptr) *db = nullptr;  // never garbage, whatever fails below
  try {
    rc = open_routed(filename, db, flags, vfs);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sqraft preload: open '%s': %s\n", filename ? filename : "", e.what());
  }
  return rc;
}

SQRAFT_EXPORT int sqlite3_open(const char* filename, sqlite3** db) {
  return sqlite3_open_v2(filename, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
}

SQRAFT_EXPORT int sqlite3_open16(const void* filename, sqlite3** db) {
  int rc = SQLITE_NOMEM;
  if (db != nullptr) *db = nullptr;
  try {
    const std::string utf8 = utf16_to_utf8(filename);
    if (!route(utf8.c_str(), nullptr).replicated) return real().open16(filename, db);
    rc = open_routed(utf8.c_str(), db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sqraft preload: open16: %s\n", e.what());
  }
  return rc;
}

// Explains sqraft's codes on the application's own connections: who leads
// (so the message says where to write) and what a lost leadership did.
SQRAFT_EXPORT const char* sqlite3_errmsg(sqlite3* db) {
  const char* message = real().errmsg(db);
  try {
    const int code = db ? sqlite3_extended_errcode(db) : SQLITE_OK;
    std::string extra;
    if (code == kErrReadonlyNotLeader || code == kErrNotLeader) {
      const std::string leader = leader_now();
      extra = "this node is not the leader; " +
              (leader.empty() ? std::string("no leader is known yet") : "the leader is at " + leader);
    } else if (code == kErrOutcomeUnknown) {
      extra = "leadership was lost during the commit and whether the cluster kept the transaction is unknown: check "
              "before retrying";
    } else if (code == kErrLeadershipLost) {
      extra = "leadership was lost during the commit; the transaction did not commit";
    } else {
      return message;
    }
    if (!schema_on_sqraft(db, "main")) return message;
    // One text per connection, so that two connections' messages can be
    // held at once (as SQLite's own are).
    thread_local std::map<sqlite3*, std::string> texts;
    std::string& text = texts[db];
    text = std::string(message) + " (sqraft: " + extra + ")";
    return text.c_str();
  } catch (...) {
    return message;
  }
}

// A replicated schema may not be replaced by a private in-memory copy: the
// program would go on writing to a database nobody else sees.
SQRAFT_EXPORT int sqlite3_deserialize(sqlite3* db, const char* schema, unsigned char* data, sqlite3_int64 size,
                                      sqlite3_int64 capacity, unsigned flags) {
  using Fn = int (*)(sqlite3*, const char*, unsigned char*, sqlite3_int64, sqlite3_int64, unsigned);
  static const Fn real_deserialize = reinterpret_cast<Fn>(::dlsym(::dlopen("libsqlite3.so.0", RTLD_NOW), "sqlite3_deserialize"));
  try {
    if (schema_on_sqraft(db, schema)) {
      if (flags & SQLITE_DESERIALIZE_FREEONCLOSE) sqlite3_free(data);
      return set_error(db, SQLITE_READONLY,
                       std::string("sqlite3_deserialize cannot replace '") + (schema ? schema : "main") +
                           "': it is a replicated sqraft database (restore into it with SQL, or deserialize into "
                           "a database that is not replicated)");
    }
  } catch (...) {
    return SQLITE_NOMEM;
  }
  return real_deserialize(db, schema, data, size, capacity, flags);
}
