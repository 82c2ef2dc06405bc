// The C API (include/sqraft.h) over Node and Client. Every entry point
// catches everything: no exception crosses into C.
#include "sqraft.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "address.h"
#include "client.h"
#include "transfer.h"
#include "node.h"

using namespace sqraft;

struct sqraft_node {
  NodeOptions options;
  std::unique_ptr<Node> node;
  bool started = false;
  std::string errmsg;
};

struct sqraft_client {
  std::vector<std::string> addresses;
  std::string db;
  std::unique_ptr<Client> conn;
  uint32_t db_id = 0;
  std::string errmsg;
};

struct sqraft_rows {
  sqraft_client* client = nullptr;
  std::unique_ptr<Rows> rows;
  std::vector<wire::Value> current;
  std::vector<sqraft_value> values;
};

namespace {

char* dup_string(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

int fail(std::string* errmsg, const Status& s) {
  if (errmsg) *errmsg = s.message();
  return s.ok() ? SQRAFT_OK : s.code();
}

template <class F>
int guarded(std::string* errmsg, F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    if (errmsg) *errmsg = "out of memory";
    return SQRAFT_NOMEM;
  } catch (const std::exception& e) {
    if (errmsg) *errmsg = e.what();
    return SQRAFT_INTERNAL;
  } catch (...) {
    if (errmsg) *errmsg = "unknown error";
    return SQRAFT_INTERNAL;
  }
}

std::once_flag log_setup;
std::atomic<bool> log_configured{false};

// Points spdlog's default logger at stderr (a library must not write to the
// application's stdout) at `level`.
bool set_log_level(const std::string& level) {
  const spdlog::level::level_enum l = spdlog::level::from_str(level);
  if (l == spdlog::level::off && level != "off") return false;
  std::call_once(log_setup, [] {
    std::shared_ptr<spdlog::logger> logger = spdlog::get("sqraft");  // the application may have made one
    spdlog::set_default_logger(logger ? logger : spdlog::stderr_color_mt("sqraft"));
  });
  spdlog::set_level(l);
  log_configured = true;
  return true;
}

void default_logging() {
  if (log_configured) return;  // the application chose
  const char* env = std::getenv("SQRAFT_LOG_LEVEL");
  if (!set_log_level(env && *env ? env : "warn")) set_log_level("warn");
}

int not_before_start(sqraft_node* node) {
  if (node == nullptr) return SQRAFT_MISUSE;
  if (node->started) {
    node->errmsg = "the node is already started";
    return SQRAFT_MISUSE;
  }
  return SQRAFT_OK;
}

// Sets a setting before the node starts; `field` names it in the node's
// options.
template <typename T, typename Field>
int set_before_start(sqraft_node* node, T value, Field field) {
  if (int rc = not_before_start(node); rc != SQRAFT_OK) return rc;
  field(node->options) = value;
  return SQRAFT_OK;
}
// The same for a setting that must be positive.
template <typename Field>
int set_positive(sqraft_node* node, unsigned value, Field field) {
  if (node != nullptr && value == 0) return SQRAFT_MISUSE;
  return set_before_start(node, value, field);
}

std::vector<wire::Value> to_values(const sqraft_value* params, unsigned n) {
  std::vector<wire::Value> out;
  out.reserve(n);
  for (unsigned i = 0; i < n; i++) {
    const sqraft_value& p = params[i];
    wire::Value v;
    v.type = wire::ValueType(p.type);
    switch (p.type) {
      case SQRAFT_INTEGER:
      case SQRAFT_UNIXTIME:
      case SQRAFT_BOOLEAN:
        v.integer = p.integer;
        break;
      case SQRAFT_FLOAT:
        v.real = p.real;
        break;
      case SQRAFT_TEXT:
      case SQRAFT_ISO8601:
        v.bytes.assign(p.data ? p.data : "", p.data ? (p.size ? p.size : std::strlen(p.data)) : 0);
        break;
      case SQRAFT_BLOB:
        v.bytes.assign(p.data ? p.data : "", p.data ? p.size : 0);
        break;
      default:
        v.type = wire::kNull;
        break;
    }
    out.push_back(std::move(v));
  }
  return out;
}

Status connect_client(sqraft_client* c) {
  c->conn.reset();
  Client::Options o;
  o.addresses = c->addresses;
  o.connect_attempts = 40;  // about 10 s of looking for a leader
  Result<std::unique_ptr<Client>> conn = Client::connect(o);
  if (!conn.ok()) return conn.status();
  Result<uint32_t> db = conn.value()->open(c->db);
  if (!db.ok()) return db.status();
  c->conn = std::move(conn).value();
  c->db_id = db.value();
  return Status::Ok();
}

Status ensure_connected(sqraft_client* c) { return c->conn ? Status::Ok() : connect_client(c); }

// After a failure: connections that may point at an old leader are dropped.
void after_failure(sqraft_client* c, const Status& s) {
  if (needs_new_connection(s)) c->conn.reset();
}

template <class F>
int membership(sqraft_client* c, F&& op) {
  if (c == nullptr) return SQRAFT_MISUSE;
  return guarded(&c->errmsg, [&] {
    for (int attempt = 0;; attempt++) {
      if (Status s = ensure_connected(c); !s.ok()) return fail(&c->errmsg, s);
      Status s = op(*c->conn);
      if (s.ok()) return SQRAFT_OK;
      after_failure(c, s);
      if (!s.is_not_leader() || attempt > 0) return fail(&c->errmsg, s);
    }
  });
}

// A per-node request: connects to `address`, runs `fn` with the client and
// hands an error's message to the caller as *errmsg (theirs to free).
template <class F>
int on_node(const char* address, char** errmsg, F&& fn) {
  std::string msg;
  int rc = guarded(&msg, [&] {
    auto c = Client::connect_node(address);
    if (!c.ok()) return fail(&msg, c.status());
    return fail(&msg, fn(*c.value()));
  });
  if (rc != SQRAFT_OK && errmsg) *errmsg = dup_string(msg);
  return rc;
}

}  // namespace

extern "C" {

void sqraft_free(void* p) { std::free(p); }

sqraft_id sqraft_generate_id(const char* address) {
  try {
    return Node::generate_id(address ? address : "");
  } catch (...) {
    return 1;
  }
}

// ---- nodes ----------------------------------------------------------------------

int sqraft_node_create(sqraft_id id, const char* address, const char* data_dir, sqraft_node** out) {
  if (out == nullptr) return SQRAFT_MISUSE;
  *out = nullptr;
  if (id == 0 || address == nullptr || data_dir == nullptr) return SQRAFT_MISUSE;
  return guarded(nullptr, [&] {
    default_logging();
    if (!parse_address(address).ok()) return SQRAFT_MISUSE;
    auto* n = new sqraft_node;
    n->options.id = id;
    n->options.address = address;
    n->options.dir = data_dir;
    *out = n;
    return SQRAFT_OK;
  });
}

void sqraft_node_destroy(sqraft_node* node) {
  if (node == nullptr) return;
  try {
    if (node->node) (void)node->node->stop();
  } catch (...) {
  }
  delete node;
}

const char* sqraft_node_errmsg(const sqraft_node* node) { return node ? node->errmsg.c_str() : ""; }

int sqraft_node_set_bind_address(sqraft_node* node, const char* address) {
  if (int rc = not_before_start(node); rc != SQRAFT_OK) return rc;
  return guarded(&node->errmsg, [&] {
    if (address == nullptr) return SQRAFT_MISUSE;
    if (Result<Address> a = parse_address(address); !a.ok()) return fail(&node->errmsg, Status::Invalid(a.status().message()));
    node->options.bind_address = address;
    return SQRAFT_OK;
  });
}

int sqraft_node_set_network_latency_ms(sqraft_node* node, unsigned ms) {
  if (int rc = not_before_start(node); rc != SQRAFT_OK) return rc;
  if (ms == 0 || ms > 10000) {
    node->errmsg = "network latency must be between 1 and 10000 ms";
    return SQRAFT_MISUSE;
  }
  node->options.network_latency_ms = ms;
  return SQRAFT_OK;
}

int sqraft_node_set_snapshot_params(sqraft_node* node, unsigned threshold, unsigned trailing) {
  if (int rc = not_before_start(node); rc != SQRAFT_OK) return rc;
  if (threshold == 0) {
    node->errmsg = "snapshot threshold must be 1 or more";
    return SQRAFT_MISUSE;
  }
  node->options.snapshot_threshold = threshold;
  node->options.snapshot_trailing = trailing;
  return SQRAFT_OK;
}

int sqraft_node_set_failure_domain(sqraft_node* node, unsigned long long domain) {
  return set_before_start(node, domain, [](NodeOptions& o) -> auto& { return o.failure_domain; });
}

int sqraft_set_log_level(const char* level) {
  if (level == nullptr) return SQRAFT_MISUSE;
  try {
    return set_log_level(level) ? SQRAFT_OK : SQRAFT_MISUSE;
  } catch (...) {
    return SQRAFT_ERROR;
  }
}

int sqraft_node_set_txn_idle_timeout_ms(sqraft_node* node, unsigned ms) {
  return set_positive(node, ms, [](NodeOptions& o) -> auto& { return o.txn_idle_timeout_ms; });
}

int sqraft_node_set_commit_timeout_ms(sqraft_node* node, unsigned ms) {
  return set_positive(node, ms, [](NodeOptions& o) -> auto& { return o.commit_outcome_timeout_ms; });
}

int sqraft_node_set_write_queue_timeout_ms(sqraft_node* node, unsigned ms) {
  return set_positive(node, ms, [](NodeOptions& o) -> auto& { return o.write_queue_timeout_ms; });
}

int sqraft_node_set_statement_timeout_ms(sqraft_node* node, unsigned ms) {
  return set_positive(node, ms, [](NodeOptions& o) -> auto& { return o.sql.statement_timeout_ms; });
}

int sqraft_node_set_storage(sqraft_node* node, int storage) {
  if (int rc = not_before_start(node); rc != SQRAFT_OK) return rc;
  if (storage != SQRAFT_STORAGE_MEMORY && storage != SQRAFT_STORAGE_DISK) return SQRAFT_MISUSE;
  node->options.storage = storage == SQRAFT_STORAGE_DISK ? Storage::kDisk : Storage::kMemory;
  return SQRAFT_OK;
}

int sqraft_node_set_max_databases(sqraft_node* node, unsigned n) {
  return set_positive(node, n, [](NodeOptions& o) -> auto& { return o.max_databases; });
}

int sqraft_node_set_threads(sqraft_node* node, unsigned readers, unsigned writers) {
  if (int rc = not_before_start(node); rc != SQRAFT_OK) return rc;
  if (readers == 0 || readers > 256 || writers == 0 || writers > 256) return SQRAFT_MISUSE;
  node->options.read_threads = readers;
  node->options.write_threads = writers;
  return SQRAFT_OK;
}

int sqraft_node_set_vfs_name(sqraft_node* node, const char* name) {
  if (int rc = not_before_start(node); rc != SQRAFT_OK) return rc;
  return guarded(&node->errmsg, [&] {
    node->options.vfs_name = name != nullptr ? name : "sqraft";
    if (node->options.vfs_name.empty()) {
      node->errmsg = "a VFS name must not be empty";
      return SQRAFT_MISUSE;
    }
    return SQRAFT_OK;
  });
}

int sqraft_node_set_metrics_address(sqraft_node* node, const char* address) {
  if (int rc = not_before_start(node); rc != SQRAFT_OK) return rc;
  if (address == nullptr) return SQRAFT_MISUSE;
  return guarded(&node->errmsg, [&] {
    Result<Address> a = parse_address(address);
    if (!a.ok() || a.value().is_unix()) {
      node->errmsg = std::string("metrics address '") + address + "': must be host:port";
      return SQRAFT_MISUSE;
    }
    node->options.metrics_address = address;
    return SQRAFT_OK;
  });
}

int sqraft_node_set_weight(sqraft_node* node, unsigned long long weight) {
  return set_before_start(node, weight, [](NodeOptions& o) -> auto& { return o.weight; });
}

int sqraft_node_set_cluster(sqraft_node* node, const sqraft_server* servers, unsigned n) {
  if (int rc = not_before_start(node); rc != SQRAFT_OK) return rc;
  return guarded(&node->errmsg, [&] {
    if (servers == nullptr || n == 0) return SQRAFT_MISUSE;
    std::vector<Member> members;
    for (unsigned i = 0; i < n; i++) {
      if (servers[i].id == 0 || servers[i].address == nullptr || !parse_address(servers[i].address).ok()) {
        node->errmsg = "cluster member " + std::to_string(i) + " has a zero id or an invalid address";
        return SQRAFT_MISUSE;
      }
      const int role = servers[i].role == SQRAFT_VOTER ? RAFT_VOTER : servers[i].role == SQRAFT_STANDBY ? RAFT_STANDBY : RAFT_SPARE;
      members.push_back(Member{servers[i].id, servers[i].address, role});
    }
    node->options.cluster = std::move(members);
    return SQRAFT_OK;
  });
}

int sqraft_node_start(sqraft_node* node) {
  if (int rc = not_before_start(node); rc != SQRAFT_OK) return rc;
  return guarded(&node->errmsg, [&] {
    Result<std::unique_ptr<Node>> n = Node::create(node->options);
    if (!n.ok()) return fail(&node->errmsg, n.status());
    node->node = std::move(n).value();
    node->started = true;
    Status st = node->node->start();
    if (!st.ok()) {  // nothing runs: the settings may change and start be retried
      node->node.reset();
      node->started = false;
    }
    return fail(&node->errmsg, st);
  });
}

int sqraft_node_handover(sqraft_node* node) {
  if (node == nullptr || !node->node) return SQRAFT_MISUSE;
  return guarded(&node->errmsg, [&] { return fail(&node->errmsg, node->node->handover()); });
}

int sqraft_node_stop(sqraft_node* node) {
  if (node == nullptr || !node->node) return SQRAFT_MISUSE;
  return guarded(&node->errmsg, [&] { return fail(&node->errmsg, node->node->stop()); });
}

int sqraft_node_recover(const char* data_dir, sqraft_id id, const char* address, const sqraft_server* servers,
                        unsigned n, char** errmsg) {
  if (errmsg) *errmsg = nullptr;
  if (data_dir == nullptr || address == nullptr || servers == nullptr || n == 0 || id == 0) return SQRAFT_MISUSE;
  std::string msg;
  int rc = guarded(&msg, [&] {
    std::vector<Member> members;
    for (unsigned i = 0; i < n; i++) {
      const int role = servers[i].role == SQRAFT_VOTER ? RAFT_VOTER : servers[i].role == SQRAFT_STANDBY ? RAFT_STANDBY : RAFT_SPARE;
      members.push_back(Member{servers[i].id, servers[i].address ? servers[i].address : "", role});
    }
    return fail(&msg, Node::recover(data_dir, id, address, members));
  });
  if (rc != SQRAFT_OK && errmsg) *errmsg = dup_string(msg);
  return rc;
}

// ---- clients ---------------------------------------------------------------------

int sqraft_client_open(const char* const* addresses, unsigned n, const char* db, sqraft_client** out) {
  if (out == nullptr) return SQRAFT_MISUSE;
  *out = nullptr;
  try {
    auto* c = new sqraft_client;
    *out = c;
    if (addresses == nullptr || n == 0 || db == nullptr) {
      c->errmsg = "addresses and a database name are required";
      return SQRAFT_MISUSE;
    }
    for (unsigned i = 0; i < n; i++) c->addresses.emplace_back(addresses[i] ? addresses[i] : "");
    c->db = db;
    return guarded(&c->errmsg, [&] { return fail(&c->errmsg, connect_client(c)); });
  } catch (...) {
    return SQRAFT_NOMEM;
  }
}

void sqraft_client_close(sqraft_client* client) { delete client; }

const char* sqraft_client_errmsg(const sqraft_client* client) { return client ? client->errmsg.c_str() : ""; }

int sqraft_exec(sqraft_client* c, const char* sql, const sqraft_value* params, unsigned n_params,
                unsigned long long* last_insert_id, unsigned long long* rows_affected) {
  if (c == nullptr || sql == nullptr || (n_params > 0 && params == nullptr)) return SQRAFT_MISUSE;
  return guarded(&c->errmsg, [&] {
    const std::vector<wire::Value> values = to_values(params, n_params);
    for (int attempt = 0;; attempt++) {
      if (Status s = ensure_connected(c); !s.ok()) return fail(&c->errmsg, s);
      Result<Client::Outcome> r = c->conn->exec(c->db_id, sql, values);
      if (r.ok()) {
        if (last_insert_id) *last_insert_id = r->last_insert_id;
        if (rows_affected) *rows_affected = r->rows_affected;
        c->errmsg.clear();
        return SQRAFT_OK;
      }
      after_failure(c, r.status());
      // "not leader" means it did not run: safe to try again on the leader.
      if (!r.status().is_not_leader() || attempt > 0) return fail(&c->errmsg, r.status());
    }
  });
}

int sqraft_query(sqraft_client* c, const char* sql, const sqraft_value* params, unsigned n_params, sqraft_rows** out) {
  if (out) *out = nullptr;
  if (c == nullptr || sql == nullptr || out == nullptr || (n_params > 0 && params == nullptr)) return SQRAFT_MISUSE;
  return guarded(&c->errmsg, [&] {
    const std::vector<wire::Value> values = to_values(params, n_params);
    for (int attempt = 0;; attempt++) {
      if (Status s = ensure_connected(c); !s.ok()) return fail(&c->errmsg, s);
      Result<std::unique_ptr<Rows>> r = c->conn->query(c->db_id, sql, values);
      if (r.ok()) {
        auto* rows = new sqraft_rows;
        rows->client = c;
        rows->rows = std::move(r).value();
        *out = rows;
        return SQRAFT_OK;
      }
      after_failure(c, r.status());
      if (!r.status().is_not_leader() || attempt > 0) return fail(&c->errmsg, r.status());
    }
  });
}

int sqraft_rows_next(sqraft_rows* rows) {
  if (rows == nullptr) return SQRAFT_MISUSE;
  return guarded(&rows->client->errmsg, [&] {
    if (rows->rows->next(&rows->current)) {
      rows->values.assign(rows->current.size(), sqraft_value{});
      for (size_t i = 0; i < rows->current.size(); i++) {
        const wire::Value& v = rows->current[i];
        sqraft_value& o = rows->values[i];
        o.type = v.type;
        o.integer = v.integer;
        o.real = v.real;
        o.data = (v.type == wire::kText || v.type == wire::kIso8601 || v.type == wire::kBlob) ? v.bytes.c_str() : nullptr;
        o.size = v.bytes.size();
      }
      return SQRAFT_ROW;
    }
    if (!rows->rows->status().ok()) {
      after_failure(rows->client, rows->rows->status());
      return fail(&rows->client->errmsg, rows->rows->status());
    }
    return SQRAFT_DONE;
  });
}

unsigned sqraft_rows_column_count(const sqraft_rows* rows) { return rows ? unsigned(rows->rows->columns().size()) : 0; }

const char* sqraft_rows_column_name(const sqraft_rows* rows, unsigned i) {
  if (rows == nullptr || i >= rows->rows->columns().size()) return nullptr;
  return rows->rows->columns()[i].c_str();
}

const sqraft_value* sqraft_rows_value(const sqraft_rows* rows, unsigned i) {
  if (rows == nullptr || i >= rows->values.size()) return nullptr;
  return &rows->values[i];
}

int sqraft_rows_close(sqraft_rows* rows) {
  if (rows == nullptr) return SQRAFT_OK;
  int rc = guarded(&rows->client->errmsg, [&] {
    Status s = rows->rows->close();
    if (!s.ok()) after_failure(rows->client, s);
    return fail(&rows->client->errmsg, s);
  });
  delete rows;
  return rc;
}

int sqraft_client_leader(sqraft_client* c, sqraft_id* id, char** address) {
  if (c == nullptr) return SQRAFT_MISUSE;
  return guarded(&c->errmsg, [&] {
    if (Status s = ensure_connected(c); !s.ok()) return fail(&c->errmsg, s);
    Result<ServerInfo> l = c->conn->leader();
    if (!l.ok()) {
      after_failure(c, l.status());
      return fail(&c->errmsg, l.status());
    }
    if (id) *id = l->id;
    if (address) *address = dup_string(l->address);
    return SQRAFT_OK;
  });
}

int sqraft_client_cluster(sqraft_client* c, sqraft_server** servers, unsigned* n) {
  if (c == nullptr || servers == nullptr || n == nullptr) return SQRAFT_MISUSE;
  *servers = nullptr;
  *n = 0;
  return guarded(&c->errmsg, [&] {
    if (Status s = ensure_connected(c); !s.ok()) return fail(&c->errmsg, s);
    Result<std::vector<ServerInfo>> list = c->conn->cluster();
    if (!list.ok()) {
      after_failure(c, list.status());
      return fail(&c->errmsg, list.status());
    }
    size_t bytes = list->size() * sizeof(sqraft_server);
    for (const ServerInfo& s : list.value()) bytes += s.address.size() + 1;
    auto* block = static_cast<char*>(std::malloc(bytes == 0 ? 1 : bytes));
    if (block == nullptr) return SQRAFT_NOMEM;
    auto* arr = reinterpret_cast<sqraft_server*>(block);
    char* strings = block + list->size() * sizeof(sqraft_server);
    for (size_t i = 0; i < list->size(); i++) {
      const ServerInfo& s = list.value()[i];
      std::memcpy(strings, s.address.c_str(), s.address.size() + 1);
      arr[i] = sqraft_server{s.id, strings, int(s.role)};
      strings += s.address.size() + 1;
    }
    *servers = arr;
    *n = unsigned(list->size());
    return SQRAFT_OK;
  });
}

int sqraft_client_add(sqraft_client* c, sqraft_id id, const char* address) {
  if (address == nullptr) return SQRAFT_MISUSE;
  return membership(c, [&](Client& cl) { return cl.add(id, address); });
}
int sqraft_client_assign(sqraft_client* c, sqraft_id id, int role) {
  return membership(c, [&](Client& cl) { return cl.assign(id, uint64_t(role)); });
}
int sqraft_client_remove(sqraft_client* c, sqraft_id id) {
  return membership(c, [&](Client& cl) { return cl.remove(id); });
}
int sqraft_client_transfer(sqraft_client* c, sqraft_id id) {
  return membership(c, [&](Client& cl) { return cl.transfer(id); });
}

int sqraft_describe(const char* address, unsigned long long* failure_domain, unsigned long long* weight, char** errmsg) {
  if (errmsg) *errmsg = nullptr;
  if (address == nullptr) return SQRAFT_MISUSE;
  return on_node(address, errmsg, [&](Client& c) {
    auto m = c.describe();
    if (!m.ok()) return m.status();
    if (failure_domain) *failure_domain = m->failure_domain;
    if (weight) *weight = m->weight;
    return Status::Ok();
  });
}

int sqraft_set_weight(const char* address, unsigned long long weight, char** errmsg) {
  if (errmsg) *errmsg = nullptr;
  if (address == nullptr) return SQRAFT_MISUSE;
  return on_node(address, errmsg, [&](Client& c) { return c.weight(weight); });
}

int sqraft_dump(const char* address, const char* db, const char* dir, char** errmsg) {
  if (errmsg) *errmsg = nullptr;
  if (address == nullptr || db == nullptr || dir == nullptr) return SQRAFT_MISUSE;
  return on_node(address, errmsg, [&](Client& c) {
    auto files = c.dump(db);
    if (!files.ok()) return files.status();
    for (const File& f : files.value()) {
      if (f.name.find('/') != std::string::npos) return Status::Error(SQRAFT_PROTO, "bad file name " + f.name);
      std::ofstream out(std::filesystem::path(dir) / f.name, std::ios::binary | std::ios::trunc);
      out.write(f.data.data(), std::streamsize(f.data.size()));
      if (!out) return Status::IoError("cannot write " + f.name + " in " + dir);
    }
    return Status::Ok();
  });
}

// ---- import and backup -------------------------------------------------------------

int sqraft_import(sqraft_client* c, const char* file, int flags, sqraft_progress_fn progress, void* arg) {
  if (c == nullptr) return SQRAFT_MISUSE;
  if (file == nullptr || (flags & ~SQRAFT_IMPORT_REPLACE) != 0) {
    c->errmsg = "sqraft_import: a file name and only known flags are required";
    return SQRAFT_MISUSE;
  }
  return guarded(&c->errmsg, [&] {
    if (Status s = ensure_connected(c); !s.ok()) return fail(&c->errmsg, s);
    ImportOptions o;
    o.replace = (flags & SQRAFT_IMPORT_REPLACE) != 0;
    if (progress) o.progress = [progress, arg](uint64_t done, uint64_t total) { progress(arg, done, total); };
    Result<ImportReport> r = import_database(*c->conn, c->db, file, o);
    if (!r.ok()) {
      // The import's transaction is over either way; a connection that broke
      // or points at an old leader is replaced on the next call.
      after_failure(c, r.status());
      return fail(&c->errmsg, r.status());
    }
    return SQRAFT_OK;
  });
}

int sqraft_backup(sqraft_client* c, const char* node_address, const char* file, sqraft_progress_fn progress,
                  void* arg) {
  if (c == nullptr) return SQRAFT_MISUSE;
  if (file == nullptr) {
    c->errmsg = "sqraft_backup: a file name is required";
    return SQRAFT_MISUSE;
  }
  return guarded(&c->errmsg, [&] {
    TransferProgress p;
    if (progress) p = [progress, arg](uint64_t done, uint64_t total) { progress(arg, done, total); };
    if (node_address != nullptr) {
      Result<std::unique_ptr<Client>> node = Client::connect_node(node_address);
      if (!node.ok()) return fail(&c->errmsg, node.status());
      Result<BackupReport> r = backup_database(*node.value(), c->db, file, p);
      return fail(&c->errmsg, r.ok() ? Status::Ok() : r.status());
    }
    if (Status s = ensure_connected(c); !s.ok()) return fail(&c->errmsg, s);
    Result<BackupReport> r = backup_database(*c->conn, c->db, file, p);
    if (!r.ok()) after_failure(c, r.status());
    return fail(&c->errmsg, r.ok() ? Status::Ok() : r.status());
  });
}

}  // extern "C"
