// fuzz-corpus-gen: writes the seed corpora of the libFuzzer targets, one
// directory per target under the directory given (test/fuzz/corpus):
//
//   wire-requests/     request streams (after the handshake) of every type
//   command-apply/     valid command sequences on the base database
//   snapshot-restore/  valid snapshots of several states
//   client-responses/  answers to the calls of fuzz-client-responses
//
// Everything is made with the production encoders (wire::BodyWriter and
// RowsWriter, encode_command, encode_snapshot); commands and snapshots come
// from a SourceNode's real writes, starting from the same base database the
// targets start from, and are checked to apply before they are written.
// Deterministic: running it again rewrites the same files.
//
//   build-fuzz/test/fuzz/fuzz-corpus-gen test/fuzz/corpus
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "command.h"
#include "fsm_node.h"
#include "fuzz_node.h"
#include "snapshot_codec.h"
#include "wire.h"

using namespace sqraft;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<uint8_t>;

void write_file(const fs::path& dir, const std::string& name, const void* data, size_t size) {
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), std::streamsize(size));
  if (!out) fuzz::die("cannot write " + (dir / name).string());
}
void write_file(const fs::path& dir, const std::string& name, const Bytes& b) { write_file(dir, name, b.data(), b.size()); }
void write_file(const fs::path& dir, const std::string& name, const std::string& s) {
  write_file(dir, name, s.data(), s.size());
}

// Appends whole messages to one stream.
struct Stream {
  Bytes bytes;
  Stream& add(const wire::BodyWriter& w, uint8_t type, uint8_t schema = 0) {
    const Bytes m = w.finish(type, schema);
    bytes.insert(bytes.end(), m.begin(), m.end());
    return *this;
  }
  Stream& add(const Bytes& m) {
    bytes.insert(bytes.end(), m.begin(), m.end());
    return *this;
  }
};

// ---- wire-requests ------------------------------------------------------------------

wire::BodyWriter u64s(std::initializer_list<uint64_t> values) {
  wire::BodyWriter w;
  for (uint64_t v : values) w.u64(v);
  return w;
}

wire::BodyWriter open_body(const std::string& db) {
  wire::BodyWriter w;
  w.text(db);
  w.u64(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  w.text("volatile");
  return w;
}

// EXEC_SQL / QUERY_SQL / PREPARE bodies: db id, SQL, parameters.
wire::BodyWriter sql_body(uint64_t db, const std::string& sql, const std::vector<wire::Value>& params = {},
                          uint8_t schema = 0) {
  wire::BodyWriter w;
  w.u64(db);
  w.text(sql);
  w.params(params, schema);
  return w;
}

// EXEC / QUERY / FINALIZE bodies: db id, statement id, parameters.
wire::BodyWriter stmt_body(uint32_t db, uint32_t stmt, const std::vector<wire::Value>& params = {}) {
  wire::BodyWriter w;
  w.u32_pair(db, stmt);
  w.params(params, 0);
  return w;
}

std::vector<wire::Value> every_type() {
  wire::Value unix_time{wire::kUnixTime, 1700000000, 0, {}};
  wire::Value iso{wire::kIso8601, 0, 0, "2024-01-02 03:04:05"};
  wire::Value boolean{wire::kBoolean, 1, 0, {}};
  return {wire::Value::Integer(-7), wire::Value::Float(2.5), wire::Value::Text("text"),
          wire::Value::Blob(std::string("\0\1\2", 3)), wire::Value::Null(), unix_time, iso, boolean};
}

void wire_requests(const fs::path& dir) {
  const std::string create = "CREATE TABLE t(a INTEGER PRIMARY KEY, b, c, d, e, f, g, h)";
  const std::string insert = "INSERT INTO t(b, c, d, e, f, g, h) VALUES (?, ?, ?, ?, ?, ?, ?)";
  std::vector<wire::Value> seven = every_type();
  seven.resize(7);

  write_file(dir, "01-leader", Stream().add(u64s({0}), wire::kLeader).bytes);
  write_file(dir, "02-client-heartbeat",
             Stream().add(u64s({42}), wire::kClient).add(u64s({123456}), wire::kHeartbeat).bytes);
  write_file(dir, "03-cluster-describe-weight",
             Stream()
                 .add(u64s({0}), wire::kCluster)
                 .add(u64s({1}), wire::kCluster)
                 .add(u64s({0}), wire::kDescribe)
                 .add(u64s({5}), wire::kWeight)
                 .bytes);
  write_file(dir, "04-open-exec-query",
             Stream()
                 .add(open_body("app"), wire::kOpen)
                 .add(sql_body(0, create), wire::kExecSql)
                 .add(sql_body(0, insert, seven), wire::kExecSql)
                 .add(sql_body(0, "SELECT * FROM t WHERE a > ?", {wire::Value::Integer(0)}), wire::kQuerySql)
                 .bytes);
  write_file(dir, "05-prepare-exec-query-finalize",
             Stream()
                 .add(open_body("app"), wire::kOpen)
                 .add(sql_body(0, create), wire::kExecSql)
                 .add(sql_body(0, insert), wire::kPrepare)
                 .add(stmt_body(0, 0, seven), wire::kExec)
                 .add(sql_body(0, "SELECT b, c FROM t"), wire::kPrepare)
                 .add(stmt_body(0, 1), wire::kQuery)
                 .add(stmt_body(0, 0), wire::kFinalize)
                 .add(stmt_body(0, 1), wire::kFinalize)
                 .bytes);
  // More than one ROWS batch (64 KiB each), and an INTERRUPT of the stream.
  const std::string fill =
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600) "
      "INSERT INTO t(b) SELECT printf('%0300d', i) FROM n";
  write_file(dir, "06-rows-batches-interrupt",
             Stream()
                 .add(open_body("app"), wire::kOpen)
                 .add(sql_body(0, create), wire::kExecSql)
                 .add(sql_body(0, fill), wire::kExecSql)
                 .add(sql_body(0, "SELECT a, b FROM t"), wire::kQuerySql)
                 .add(sql_body(0, "SELECT b FROM t ORDER BY a DESC"), wire::kQuerySql)
                 .add(u64s({0}), wire::kInterrupt)
                 .add(u64s({0}), wire::kInterrupt)
                 .bytes);
  write_file(dir, "07-transactions",
             Stream()
                 .add(open_body("app"), wire::kOpen)
                 .add(sql_body(0, create), wire::kExecSql)
                 .add(sql_body(0, "BEGIN"), wire::kExecSql)
                 .add(sql_body(0, "INSERT INTO t(b) VALUES (1)"), wire::kExecSql)
                 .add(sql_body(0, "SELECT count(*) FROM t"), wire::kQuerySql)
                 .add(sql_body(0, "COMMIT"), wire::kExecSql)
                 .add(sql_body(0, "BEGIN IMMEDIATE; INSERT INTO t(b) VALUES (2); ROLLBACK"), wire::kExecSql)
                 .add(sql_body(0, "SAVEPOINT s; INSERT INTO t(b) VALUES (3); RELEASE s"), wire::kExecSql)
                 .bytes);
  write_file(dir, "08-temp-and-two-dbs",
             Stream()
                 .add(open_body("app"), wire::kOpen)
                 .add(open_body("other"), wire::kOpen)
                 .add(sql_body(0, "CREATE TEMP TABLE tmp(x); INSERT INTO tmp VALUES (1)"), wire::kExecSql)
                 .add(sql_body(0, "SELECT * FROM tmp"), wire::kQuerySql)
                 .add(sql_body(1, "CREATE TABLE u(x); INSERT INTO u VALUES (zeroblob(5000))"), wire::kExecSql)
                 .add(sql_body(1, "SELECT length(x) FROM u"), wire::kQuerySql)
                 .bytes);
  write_file(dir, "09-dump",
             Stream()
                 .add(open_body("app"), wire::kOpen)
                 .add(sql_body(0, create), wire::kExecSql)
                 .add([] {
                   wire::BodyWriter w;
                   w.text("app");
                   return w;
                 }(),
                      wire::kDump)
                 .bytes);
  write_file(dir, "10-membership",
             Stream()
                 .add([] {
                   wire::BodyWriter w;
                   w.u64(2);
                   w.text("127.0.0.1:9002");
                   return w;
                 }(),
                      wire::kAdd)
                 .add(u64s({2, wire::kRoleSpare}), wire::kAssign)
                 .add(u64s({2}), wire::kTransfer)
                 .add(u64s({2}), wire::kRemove)
                 .bytes);
  write_file(dir, "11-connect-first", Stream().add([] {
                                                wire::BodyWriter w;
                                                w.u64(2);
                                                w.text("127.0.0.1:9002");
                                                return w;
                                              }(),
                                                   wire::kConnect)
                                           .bytes);
  // Schema 1: a u32 parameter count, and a PREPARE answering the tail.
  std::vector<wire::Value> many(300, wire::Value::Integer(1));
  std::string placeholders = "SELECT ?";
  for (size_t i = 1; i < many.size(); i++) placeholders += ", ?";
  write_file(dir, "12-schema-1",
             Stream()
                 .add(open_body("app"), wire::kOpen)
                 .add(sql_body(0, placeholders, many, 1), wire::kQuerySql, 1)
                 .add(sql_body(0, "SELECT 1; SELECT 2"), wire::kPrepare, 1)
                 .bytes);
  // Statements the SQL limits must stop, and errors the session answers.
  write_file(dir, "13-limits-and-errors",
             Stream()
                 .add(open_body("app"), wire::kOpen)
                 .add(sql_body(0, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                                  "SELECT count(*) FROM c"),
                      wire::kQuerySql)
                 .add(sql_body(0, "SELECT randomblob(100000000)"), wire::kQuerySql)
                 .add(sql_body(0, "SELECT * FROM missing"), wire::kQuerySql)
                 .add(sql_body(7, "SELECT 1"), wire::kQuerySql)
                 .add(open_body("bad/name"), wire::kOpen)
                 .add(u64s({0}), 99)
                 .bytes);
  // A header announcing more than the limit of one message.
  wire::BodyWriter big;
  big.u64(0);
  Bytes oversized = big.finish(wire::kLeader);
  oversized[0] = 0xff;
  oversized[1] = 0xff;
  oversized[2] = 0xff;
  write_file(dir, "14-oversized-header", oversized);
}

// ---- command-apply -------------------------------------------------------------------

// Records the commands a SourceNode's writes replicate, from the base
// database on.
struct Recorder {
  fuzz::SourceNode source{4096};  // transactions over 4 KiB are streamed in pieces
  std::vector<std::string> entries;
  std::map<uint64_t, uint64_t> txn_ids;  // the source's id -> the seed's
  uint64_t last_txn = 0;

  Recorder() {
    source.exec("app", fuzz::kBaseSql);
    source.hooks().before_replicate = [this](const FramesBatch& b) {
      // Transaction ids are random; the seeds number them 1, 2, ... so that
      // the files do not change from run to run.
      FramesBatch batch = b;
      batch.txn_id = txn_ids.emplace(b.txn_id, txn_ids.size() + 1).first->second;
      Command cmd;
      cmd.proposal_id = entries.size() + 1;
      cmd.body = batch;
      entries.push_back(encode_command(cmd));
      last_txn = batch.txn_id;
      return Status::Ok();
    };
  }
  void add(decltype(Command::body) body) {
    Command cmd;
    cmd.proposal_id = entries.size() + 1;
    cmd.body = std::move(body);
    entries.push_back(encode_command(cmd));
  }
};

// Applies `entries` to a fresh FsmNode: every one must apply and leave the
// follower's databases equal to the source's.
void check_applies(const std::vector<std::string>& entries, Vfs& source) {
  fuzz::FsmNode node;
  for (const std::string& e : entries) {
    if (node.apply({reinterpret_cast<const uint8_t*>(e.data()), e.size()}) != 0) fuzz::die("a seed command diverged");
  }
  for (const std::string& name : source.names()) {
    std::shared_ptr<Database> theirs = node.vfs().find(name);
    if (!theirs || theirs->state_checksum() != source.find(name)->state_checksum()) {
      fuzz::die("a seed's commands do not reproduce the source's db '" + name + "'");
    }
  }
  node.check();
}

void command_seed(const fs::path& dir, const std::string& name, const std::function<void(Recorder&)>& make) {
  Recorder r;
  make(r);
  check_applies(r.entries, r.source.vfs());
  write_file(dir, name, fuzz::join_entries(r.entries));
}

void command_apply(const fs::path& dir) {
  command_seed(dir, "01-insert", [](Recorder& r) { r.source.exec("app", "INSERT INTO t VALUES (2000, 'new', x'00ff')"); });
  command_seed(dir, "02-streamed-update", [](Recorder& r) { r.source.exec("app", "UPDATE t SET c = zeroblob(200)"); });
  command_seed(dir, "03-streamed-rollback", [](Recorder& r) {
    r.source.exec("app", "BEGIN; UPDATE t SET c = zeroblob(300); ROLLBACK");
    r.add(UndoCommand{"app", r.last_txn});
  });
  command_seed(dir, "04-insert-checkpoint", [](Recorder& r) {
    r.source.exec("app", "INSERT INTO t VALUES (3000, 'before checkpoint', NULL)");
    r.add(CheckpointCommand{"app"});
    r.source.exec("app", "DELETE FROM t WHERE a < 10");
  });
  command_seed(dir, "05-open-other", [](Recorder& r) {
    r.add(OpenCommand{"other", fuzz::kPageSize, Database::initial_page1(fuzz::kPageSize)});
    r.source.exec("other", "CREATE TABLE u(x); INSERT INTO u VALUES (1), (2)");
  });
  command_seed(dir, "06-shrink", [](Recorder& r) {
    r.source.exec("app", "DELETE FROM t WHERE a > 5");
    r.source.exec("app", "VACUUM");
  });
  command_seed(dir, "07-schema-change", [](Recorder& r) {
    r.source.exec("app", "ALTER TABLE t ADD COLUMN d DEFAULT 4; CREATE INDEX t_d ON t(d); DROP INDEX t_b");
  });

  // Regression input (regressions_test.cc): commits that grow the database
  // to 4e9 pages, or write page 4e9, with one frame each. The follower
  // hashed 4e9 zero pages before refusing the first; the second would have
  // left a WAL frame that made every later snapshot's page table 4e9 long.
  std::vector<std::string> far;
  for (uint32_t db_size : {4000000000u, 1u}) {
    FramesBatch b;
    b.db = "app";
    b.txn_id = far.size() + 1;
    b.page_size = fuzz::kPageSize;
    b.frames.push_back({1, 4000000000u, make_zero_page(fuzz::kPageSize)});
    b.commit = true;
    b.frame_count = 1;
    b.db_size = db_size;
    Command cmd;
    cmd.proposal_id = far.size() + 1;
    cmd.body = b;
    far.push_back(encode_command(cmd));
  }
  write_file(dir, "regress-far-pages", fuzz::join_entries(far));
}

// ---- snapshot-restore -----------------------------------------------------------------

void write_snapshot(const fs::path& dir, const std::string& name, Vfs& vfs) {
  std::vector<DbImage> images = vfs.capture();
  Bytes bytes;
  for (const SnapshotBuffer& b : encode_snapshot(images)) bytes.insert(bytes.end(), b.data.get(), b.data.get() + b.size);
  fuzz::FsmNode node;
  if (node.restore(bytes) != 0) fuzz::die("a seed snapshot does not restore");
  node.check();
  write_file(dir, name, bytes);
}

void snapshot_restore(const fs::path& dir) {
  {
    fuzz::SourceNode s;
    s.exec("app", fuzz::kBaseSql);
    write_snapshot(dir, "01-base-with-wal", s.vfs());
    if (!s.vfs().apply_checkpoint("app").ok()) fuzz::die("checkpoint failed");
    write_snapshot(dir, "02-checkpointed", s.vfs());
    s.exec("other", "CREATE TABLE u(x); INSERT INTO u VALUES ('second database')");
    write_snapshot(dir, "03-two-databases", s.vfs());
  }
  {
    fuzz::SourceNode s;
    s.exec("empty", "PRAGMA user_version");  // a database of one page
    write_snapshot(dir, "04-one-page", s.vfs());
  }
  {
    // A follower in the middle of a streamed transaction: its pieces are
    // pending, so the snapshot carries them.
    Recorder r;
    r.source.exec("app", "UPDATE t SET c = zeroblob(200)");
    fuzz::FsmNode follower;
    for (size_t i = 0; i + 1 < r.entries.size(); i++) {
      const std::string& e = r.entries[i];
      (void)follower.apply({reinterpret_cast<const uint8_t*>(e.data()), e.size()});
    }
    if (follower.vfs().pending_txns().empty()) fuzz::die("no pending transaction to snapshot");
    write_snapshot(dir, "05-pending-pieces", follower.vfs());
  }
}

// ---- client-responses --------------------------------------------------------------

Bytes server_message(uint64_t id, const std::string& address) {
  wire::BodyWriter w;
  w.u64(id);
  w.text(address);
  return w.finish(wire::kServer);
}
Bytes db_message(uint32_t id) {
  wire::BodyWriter w;
  w.u32_pair(id, 0);
  return w.finish(wire::kDb);
}
Bytes result_message(uint64_t last_id, uint64_t changes) { return u64s({last_id, changes}).finish(wire::kResult); }
Bytes empty_message() { return u64s({0}).finish(wire::kEmpty); }

// Rows of (a, b) in batches of `per_batch`, `batches` of them.
Stream rows_batches(int batches, int per_batch) {
  Stream s;
  for (int b = 0; b < batches; b++) {
    wire::RowsWriter w({"a", "b"});
    for (int i = 0; i < per_batch; i++) w.row({wire::Value::Integer(b * per_batch + i), wire::Value::Text("row")});
    s.add(w.finish(b + 1 < batches));
  }
  return s;
}

// The answers, in order, to what fuzz-client-responses runs: LEADER, OPEN,
// EXEC_SQL, QUERY_SQL, PREPARE, QUERY (closed early: INTERRUPT), FINALIZE,
// CLUSTER, DESCRIBE, DUMP.
Stream full_session(const Stream& query_rows) {
  Stream s;
  s.add(server_message(1, "127.0.0.1:9001")).add(db_message(0)).add(result_message(1, 1));
  s.add(query_rows.bytes);
  wire::BodyWriter stmt;
  stmt.u32_pair(0, 0);
  stmt.u64(1);
  s.add(stmt, wire::kStmt);
  s.add(rows_batches(2, 2).bytes).add(empty_message());  // the stream, then the INTERRUPT's end
  s.add(empty_message());                                // FINALIZE
  wire::BodyWriter servers;
  servers.u64(2);
  for (uint64_t id : {1, 2}) {
    servers.u64(id);
    servers.text("127.0.0.1:900" + std::to_string(id));
    servers.u64(id == 1 ? wire::kRoleVoter : wire::kRoleStandby);
  }
  s.add(servers, wire::kServers);
  s.add(u64s({0, 7}), wire::kMetadata);
  wire::BodyWriter files;
  files.u64(2);
  files.text("app");
  files.u64(16);
  files.raw("SQLite format 3", 16);
  files.text("app-wal");
  files.u64(0);
  files.pad();
  s.add(files, wire::kFiles);
  return s;
}

void client_responses(const fs::path& dir) {
  write_file(dir, "01-session-one-batch", full_session(rows_batches(1, 3)).bytes);
  write_file(dir, "02-session-three-batches", full_session(rows_batches(3, 4)).bytes);
  // Every value type in a row, an odd number of columns (a half-used nibble).
  wire::RowsWriter typed({"i", "f", "t", "b", "n", "u", "d", "o", "x"});
  std::vector<wire::Value> values = every_type();
  values.push_back(wire::Value::Integer(9));
  typed.row(values);
  typed.row(values);
  write_file(dir, "03-session-every-type", full_session(Stream().add(typed.finish(false))).bytes);
  // Failures where values were expected, one per call.
  Stream failures;
  for (int i = 0; i < 10; i++) failures.add(wire::failure(uint64_t(SQLITE_BUSY + i), "failure " + std::to_string(i)));
  write_file(dir, "04-failures", failures.bytes);
  // A failure in the middle of a row stream.
  Stream mid = Stream().add(rows_batches(1, 2).bytes);
  mid.bytes.resize(mid.bytes.size() - 8);
  wire::BodyWriter more;
  more.u64(wire::kRowsMore);
  mid.bytes.insert(mid.bytes.end(), more.bytes().begin(), more.bytes().end());
  mid.add(wire::failure(10250, "not leader"));
  write_file(dir, "05-failure-during-rows", full_session(mid).bytes);
  write_file(dir, "06-not-leader", Stream().add(server_message(0, "")).add(wire::failure(10250, "not leader")).bytes);

  // Regression inputs of bugs fixed in src/client/client.cc (also unit tests
  // in regressions_test.cc).
  // A ROWS of no columns: each "row" took no bytes, so reading never ended.
  wire::BodyWriter no_columns;
  no_columns.u64(0);
  no_columns.u64(1);
  no_columns.u64(wire::kRowsDone);
  Stream rows_without_columns;
  rows_without_columns.add(server_message(1, "127.0.0.1:9001")).add(db_message(0)).add(result_message(1, 1));
  rows_without_columns.add(no_columns, wire::kRows);
  write_file(dir, "regress-rows-without-columns", rows_without_columns.bytes);
  // A header claiming 32 GiB, then 8 bytes: the body was allocated (and
  // zeroed) in full before reading.
  wire::Header huge;
  huge.words = 0xffffffff;
  huge.type = wire::kServer;
  Bytes claims(wire::kHeaderSize + 8);
  wire::encode_header(huge, claims.data());
  write_file(dir, "regress-body-claims-32gib", claims);
  // A FAILURE whose code has zero low 32 bits was taken for success.
  write_file(dir, "regress-failure-code-high-bits",
             Stream().add(wire::failure(uint64_t{1} << 32, "odd")).add(wire::failure(uint64_t{2} << 32, "odd")).bytes);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (test/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  fuzz::quiet_logs();
  const fs::path root = argv[1];
  wire_requests(root / "wire-requests");
  command_apply(root / "command-apply");
  snapshot_restore(root / "snapshot-restore");
  client_responses(root / "client-responses");
  return 0;
}
