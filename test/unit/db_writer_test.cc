// The per-database writer on its own (a local VFS replicating through
// LoopbackHooks, no Raft): its queue bound, group commit with per-statement
// errors, transactions owned by one client, the waits that give up, and
// rows in the caller's format.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "db_writer.h"
#include "support/loopback_hooks.h"
#include "support/sql.h"
#include "vfs.h"
#include "writer_pool.h"

using namespace sqraft;
using Kind = DbWriter::Kind;

namespace {

std::atomic<int> g_seq{0};

// Rows as "a|b" lines; a batch ends with "more" or "done".
class TextRows final : public RowEncoder {
 public:
  explicit TextRows(sqlite3_stmt*) {}
  void begin() override {
    text_.clear();
    rows_ = 0;
  }
  void add_row(sqlite3_stmt* stmt) override {
    for (int i = 0; i < sqlite3_column_count(stmt); i++) {
      if (i) text_ += '|';
      const unsigned char* t = sqlite3_column_text(stmt, i);
      text_ += t ? reinterpret_cast<const char*>(t) : "NULL";
    }
    text_ += '\n';
    rows_++;
  }
  size_t bytes() const override { return text_.size(); }
  size_t rows() const override { return rows_; }
  std::vector<uint8_t> finish(bool more) override {
    text_ += more ? "more" : "done";
    return std::vector<uint8_t>(text_.begin(), text_.end());
  }

 private:
  std::string text_;
  size_t rows_ = 0;
};
std::unique_ptr<RowEncoder> text_rows(sqlite3_stmt* stmt) { return std::make_unique<TextRows>(stmt); }

std::string text_of(const std::vector<uint8_t>& batch) { return std::string(batch.begin(), batch.end()); }

struct Rig {
  explicit Rig(DbWriter::Options o) {
    Vfs::Options vo;
    vo.name = "writer-test-" + std::to_string(g_seq++);
    auto v = Vfs::create(vo, &hooks);
    REQUIRE(v.ok());
    vfs = std::move(v).value();
    hooks.set_leader(vfs.get());
    o.row_encoder = &text_rows;
    writer = std::make_unique<DbWriter>(*vfs, "w.db", o, pool);
  }
  ~Rig() {
    writer->stop();
    pool.stop();
  }

  // Submits a request; the future gets its reply. An invalid future: the
  // writer refused it.
  std::future<DbWriter::Reply> submit(uint64_t session, Kind kind, const std::string& sql, SqlParams params = {},
                                      bool batchable = false, bool expect_owner = false) {
    auto done = std::make_shared<std::promise<DbWriter::Reply>>();
    std::future<DbWriter::Reply> f = done->get_future();
    DbWriter::Request r;
    r.session = session;
    r.kind = kind;
    r.sql = sql;
    r.params = std::move(params);
    r.batchable = batchable;
    r.expect_owner = expect_owner;
    r.done = [done](DbWriter::Reply rep) { done->set_value(std::move(rep)); };
    if (!writer->submit(std::move(r))) return {};
    return f;
  }
  DbWriter::Reply run(uint64_t session, const std::string& sql, bool expect_owner = false) {
    auto f = submit(session, Kind::kExec, sql, {}, false, expect_owner);
    REQUIRE(f.valid());
    return f.get();
  }
  std::string read(const std::string& sql) {
    Result<sqlite3*> c = vfs->open("w.db");
    REQUIRE(c.ok());
    std::string out = test::query(c.value(), sql);
    sqlite3_close_v2(c.value());
    return out;
  }

  test::LoopbackHooks hooks;
  std::unique_ptr<Vfs> vfs;
  WriterPool pool{2};
  std::unique_ptr<DbWriter> writer;
};

SqlValue text(const std::string& s) {
  SqlValue v;
  v.type = SQLITE_TEXT;
  v.bytes = s;
  return v;
}

}  // namespace

TEST_CASE("writer: writes queued behind a transaction commit as one group; the queue is bounded") {
  DbWriter::Options o;
  o.queue_max = 8;
  Rig rig(o);
  REQUIRE(rig.run(1, "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT UNIQUE)").status.ok());
  DbWriter::Reply begin = rig.run(1, "BEGIN");
  REQUIRE(begin.status.ok());
  CHECK(begin.in_txn);
  REQUIRE(rig.run(1, "INSERT INTO t VALUES (100, 'taken')", true).status.ok());

  // Eight other clients' writes wait for client 1's transaction; a ninth
  // does not fit. The owner's own requests always do (it has one at a
  // time): they are what lets the queue move.
  std::vector<std::future<DbWriter::Reply>> waiting;
  for (int i = 0; i < 8; i++) {
    const std::string v = i == 3 ? "taken" : "v" + std::to_string(i);
    waiting.push_back(rig.submit(10 + i, Kind::kExec, "INSERT INTO t(v) VALUES (?)", {text(v)}, true));
    REQUIRE(waiting.back().valid());
  }
  CHECK(rig.writer->queue_depth() == 8);
  CHECK_FALSE(rig.submit(99, Kind::kExec, "INSERT INTO t(v) VALUES ('late')", {}, true).valid());

  const uint64_t batches_before = rig.writer->batches();
  const int commits_before = rig.hooks.commits;
  DbWriter::Reply commit = rig.run(1, "COMMIT", true);
  REQUIRE(commit.status.ok());
  CHECK_FALSE(commit.in_txn);
  for (int i = 0; i < 8; i++) {
    DbWriter::Reply r = waiting[i].get();
    CAPTURE(i);
    if (i == 3) {
      // Its own error only; the group's other statements commit.
      CHECK((r.status.code() & 0xff) == SQLITE_CONSTRAINT);
    } else {
      CHECK_MESSAGE(r.status.ok(), r.status.to_string());
      CHECK(r.outcome.rows_affected == 1);
    }
  }
  // One group: client 1's transaction and one replicated commit for the
  // seven.
  CHECK(rig.writer->batches() == batches_before + 1);
  CHECK(rig.writer->batched_statements() == 8);
  CHECK(rig.hooks.commits.load() == commits_before + 2);
  CHECK(rig.read("SELECT count(*) FROM t") == "8");
  CHECK(rig.read("SELECT count(*) FROM t WHERE v = 'taken'") == "1");
}

TEST_CASE("writer: a group never exceeds batch_max statements") {
  DbWriter::Options o;
  o.batch_max = 3;
  Rig rig(o);
  REQUIRE(rig.run(1, "CREATE TABLE t(v)").status.ok());
  REQUIRE(rig.run(1, "BEGIN").status.ok());
  std::vector<std::future<DbWriter::Reply>> waiting;
  for (int i = 0; i < 7; i++) waiting.push_back(rig.submit(10 + i, Kind::kExec, "INSERT INTO t VALUES (1)", {}, true));
  const uint64_t before = rig.writer->batches();
  REQUIRE(rig.run(1, "COMMIT", true).status.ok());
  for (auto& f : waiting) CHECK(f.get().status.ok());
  CHECK(rig.writer->batches() == before + 3);  // 3 + 3 + 1
  CHECK(rig.read("SELECT count(*) FROM t") == "7");
}

TEST_CASE("writer: a request waiting behind a transaction gives up with SQLITE_BUSY") {
  DbWriter::Options o;
  o.queue_timeout_ms = 100;
  Rig rig(o);
  REQUIRE(rig.run(1, "CREATE TABLE t(v)").status.ok());
  REQUIRE(rig.run(1, "BEGIN").status.ok());
  DbWriter::Reply r = rig.run(2, "INSERT INTO t VALUES (2)");
  CHECK((r.status.code() & 0xff) == SQLITE_BUSY);
  CHECK(r.status.message().find("another client's transaction") != std::string::npos);
  // The owner is unaffected.
  CHECK(rig.run(1, "INSERT INTO t VALUES (1)", true).status.ok());
  CHECK(rig.run(1, "COMMIT", true).status.ok());
  CHECK(rig.read("SELECT group_concat(v) FROM t") == "1");
}

TEST_CASE("writer: an idle transaction is rolled back and its client told so") {
  DbWriter::Options o;
  o.txn_idle_timeout_ms = 100;
  Rig rig(o);
  REQUIRE(rig.run(1, "CREATE TABLE t(v)").status.ok());
  REQUIRE(rig.run(1, "BEGIN").status.ok());
  REQUIRE(rig.run(1, "INSERT INTO t VALUES (1)", true).status.ok());
  // Another client's write runs once the idle transaction is gone.
  DbWriter::Reply other = rig.run(2, "INSERT INTO t VALUES (2)");
  CHECK_MESSAGE(other.status.ok(), other.status.to_string());
  DbWriter::Reply late = rig.run(1, "COMMIT", true);
  CHECK((late.status.code() & 0xff) == SQLITE_ABORT);
  CHECK(late.status.message().find("rolled back") != std::string::npos);
  CHECK(rig.read("SELECT group_concat(v) FROM t") == "2");
}

TEST_CASE("writer: a client that goes away loses its transaction and its queued requests") {
  Rig rig(DbWriter::Options{});
  REQUIRE(rig.run(1, "CREATE TABLE t(v)").status.ok());
  REQUIRE(rig.run(1, "BEGIN").status.ok());
  REQUIRE(rig.run(1, "INSERT INTO t VALUES (1)", true).status.ok());
  auto queued = rig.submit(2, Kind::kExec, "INSERT INTO t VALUES (2)");
  rig.writer->release(2);  // client 2 vanished while waiting
  DbWriter::Reply r2 = queued.get();
  CHECK((r2.status.code() & 0xff) == SQLITE_ABORT);
  rig.writer->release(1);  // the owner vanished: its transaction rolls back
  CHECK(rig.run(3, "INSERT INTO t VALUES (3)").status.ok());
  CHECK(rig.read("SELECT group_concat(v) FROM t") == "3");
}

TEST_CASE("writer: query rows come in the caller's format, whole outside a transaction, on demand inside one") {
  DbWriter::Options o;
  o.rows_batch_bytes = 16;
  Rig rig(o);
  REQUIRE(rig.run(1, "CREATE TABLE t(a, b)").status.ok());
  REQUIRE(rig.run(1, "INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three'), (4, 'four')").status.ok());

  // Outside a transaction: every batch in one reply.
  auto f = rig.submit(1, Kind::kQuery, "SELECT a, b FROM t ORDER BY a");
  DbWriter::Reply all = f.get();
  REQUIRE(all.status.ok());
  CHECK(all.rows_done);
  std::string joined;
  for (auto& b : all.rows) joined += text_of(b) + ";";
  CHECK(joined == "1|one\n2|two\n3|three\nmore;4|four\ndone;");

  // Inside the client's transaction: one batch per request, and the
  // transaction's own rows are visible.
  REQUIRE(rig.run(2, "BEGIN").status.ok());
  REQUIRE(rig.run(2, "INSERT INTO t VALUES (5, 'five')", true).status.ok());
  auto q = rig.submit(2, Kind::kQuery, "SELECT a, b FROM t WHERE a >= 2 ORDER BY a", {}, false, true);
  DbWriter::Reply first = q.get();
  REQUIRE(first.status.ok());
  REQUIRE(first.rows.size() == 1);
  CHECK_FALSE(first.rows_done);
  auto next = rig.submit(2, Kind::kNextRows, "", {}, false, true).get();
  REQUIRE(next.status.ok());
  CHECK(next.rows_done);
  CHECK(text_of(first.rows[0]) == "2|two\n3|three\n4|four\nmore");
  CHECK(text_of(next.rows[0]) == "5|five\ndone");
  REQUIRE(rig.run(2, "COMMIT", true).status.ok());
  CHECK(rig.read("SELECT count(*) FROM t") == "5");
}
