#include "fsm_node.h"

#include <cstring>

#include "byte_order.h"
#include "fuzz_node.h"

namespace sqraft::fuzz {

namespace {

unsigned g_vfs_seq = 0;  // VFS names are unique in a process

std::unique_ptr<Vfs> make_vfs(const char* kind, size_t spill_threshold_bytes, ReplicationHooks* hooks) {
  Vfs::Options o;
  o.name = std::string("fuzz-") + kind + "-" + std::to_string(g_vfs_seq++);
  o.page_size = kPageSize;
  o.spill_threshold_bytes = spill_threshold_bytes;
  Result<std::unique_ptr<Vfs>> vfs = Vfs::create(o, hooks);
  if (!vfs.ok()) die("Vfs::create: " + vfs.status().to_string());
  return std::move(vfs).value();
}

// Steps `stmt` to its end; the result does not matter, reading does.
void step_all(sqlite3* conn, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(conn, sql, -1, &stmt, nullptr) == SQLITE_OK) {
    while (sqlite3_step(stmt) == SQLITE_ROW) {
    }
  }
  sqlite3_finalize(stmt);
}

}  // namespace

const char* const kBaseSql =
    "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c BLOB);"
    "CREATE INDEX t_b ON t(b);"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)"
    "  INSERT INTO t SELECT i, 'row ' || i, zeroblob(i % 7 * 10) FROM n;"
    "INSERT INTO t VALUES (1000, 'overflow', zeroblob(3000));";

const std::vector<DbImage>& base_images() {
  static const std::vector<DbImage> images = [] {
    SourceNode source;
    source.exec("app", kBaseSql);
    return source.vfs().capture();  // pages are shared: they outlive the VFS
  }();
  return images;
}

// ---- FsmNode ---------------------------------------------------------------------

FsmNode::FsmNode() {
  hooks_.allow_writes = false;  // a follower
  vfs_ = make_vfs("follower", size_t{8} << 20, &hooks_);
  hooks_.set_leader(vfs_.get());  // wake() drains its deferred work
  fsm_ = std::make_unique<Fsm>(*vfs_, observer_);
  if (Status s = vfs_->restore(base_images()); !s.ok()) die("restoring the base database: " + s.to_string());
}

FsmNode::~FsmNode() {
  fsm_.reset();
  vfs_.reset();
}

int FsmNode::apply(std::span<const uint8_t> entry) {
  struct raft_fsm* fsm = fsm_->raft_fsm();
  struct raft_buffer buf;
  buf.base = const_cast<uint8_t*>(entry.data());
  buf.len = entry.size();
  void* result = nullptr;
  return fsm->apply(fsm, &buf, &result);
}

int FsmNode::restore(std::span<const uint8_t> snapshot) {
  struct raft_fsm* fsm = fsm_->raft_fsm();
  struct raft_buffer buf;
  buf.len = snapshot.size();
  buf.base = raft_malloc(snapshot.empty() ? 1 : snapshot.size());
  require(buf.base != nullptr, "out of memory");
  if (!snapshot.empty()) std::memcpy(buf.base, snapshot.data(), snapshot.size());
  const int rv = fsm->restore(fsm, &buf);
  if (rv != 0) raft_free(buf.base);  // on success the FSM took it
  return rv;
}

void FsmNode::check() {
  for (const std::string& name : vfs_->names()) {
    std::shared_ptr<Database> db = vfs_->find(name);
    require(db != nullptr, "a listed database is missing");
    if (db->recompute_state_checksum() != db->state_checksum()) {
      die("db '" + name + "': its tracked hash does not match its content");
    }
    Result<sqlite3*> conn = vfs_->open(name, false);
    if (!conn.ok()) continue;  // e.g. a first page SQLite refuses
    step_all(conn.value(), "SELECT * FROM sqlite_schema");
    step_all(conn.value(), "PRAGMA quick_check");
    sqlite3_close_v2(conn.value());
  }
}

// ---- SourceNode -----------------------------------------------------------------

SourceNode::SourceNode(size_t spill_threshold_bytes) {
  vfs_ = make_vfs("source", spill_threshold_bytes, &hooks_);
  hooks_.set_leader(vfs_.get());
}

SourceNode::~SourceNode() { vfs_.reset(); }

void SourceNode::exec(const std::string& db, const std::string& sql) {
  Result<sqlite3*> conn = vfs_->open(db);
  if (!conn.ok()) die("open '" + db + "': " + conn.status().to_string());
  char* err = nullptr;
  const int rc = sqlite3_exec(conn.value(), sql.c_str(), nullptr, nullptr, &err);
  const std::string message = err ? err : "";
  sqlite3_free(err);
  sqlite3_close_v2(conn.value());
  if (rc != SQLITE_OK) die("exec on '" + db + "': " + message + " in: " + sql);
}

// ---- entries ----------------------------------------------------------------------

std::vector<std::span<const uint8_t>> split_entries(const uint8_t* data, size_t size) {
  std::vector<std::span<const uint8_t>> out;
  size_t off = 0;
  while (off + 4 <= size && out.size() < kMaxEntries) {
    const size_t n = std::min<size_t>(get_le32(data + off), size - off - 4);
    out.emplace_back(data + off + 4, n);
    off += 4 + n;
  }
  return out;
}

std::string join_entries(const std::vector<std::string>& entries) {
  std::string out;
  for (const std::string& e : entries) {
    uint8_t len[4];
    put_le32(len, uint32_t(e.size()));
    out.append(reinterpret_cast<const char*>(len), 4);
    out += e;
  }
  return out;
}

}  // namespace sqraft::fuzz
