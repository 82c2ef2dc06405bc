// The VFS: local databases, capture and apply, isolation of unreplicated
// frames, streaming of large transactions, checkpoints and snapshots.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <future>
#include <random>
#include <thread>
#include <vector>

#include "snapshot_codec.h"
#include "support/loopback_hooks.h"
#include "support/sql.h"
#include "vfs.h"

using namespace sqraft;
using test::exec;
using test::query;

namespace {

std::atomic<int> g_vfs_seq{0};
std::string unique_name(const char* base) { return std::string(base) + "-" + std::to_string(g_vfs_seq++); }

std::unique_ptr<Vfs> make_vfs(ReplicationHooks* hooks, size_t spill = size_t{8} << 20) {
  Vfs::Options o;
  o.name = unique_name("vfs");
  o.spill_threshold_bytes = spill;
  auto v = Vfs::create(o, hooks);
  REQUIRE(v.ok());
  return std::move(v).value();
}

sqlite3* open(Vfs& vfs, const std::string& db = "test.db") {
  Result<sqlite3*> c = vfs.open(db);
  REQUIRE_MESSAGE(c.ok(), c.status().to_string());
  sqlite3_busy_timeout(*c, 5000);
  return *c;
}

// Hooks of a node that is not the leader: it never writes.
struct FollowerHooks : ReplicationHooks {
  bool writes_allowed() override { return false; }
  Status replicate(const FramesBatch&) override { return Status::NotLeader(); }
  Status create_database(const std::string&, const PagePtr&) override { return Status::NotLeader(); }
  void undo(const std::string&, uint64_t) override {}
  void wake() override {}
  std::string leader_address() override { return "127.0.0.1:9001"; }
  bool leading() override { return false; }
  uint64_t applied_index() override { return 7; }
  Status wait_applied(uint64_t index, std::chrono::milliseconds) override {
    return index <= 7 ? Status::Ok() : Status::Busy("applied index 7 has not reached " + std::to_string(index));
  }
  Status read_barrier(std::chrono::milliseconds) override { return Status::NotLeader(); }
};

// A leader VFS replicating to `n` follower VFSes through LoopbackHooks.
struct Trio {
  explicit Trio(int n_followers = 2, size_t spill = size_t{8} << 20) {
    leader = make_vfs(&hooks, spill);
    hooks.set_leader(leader.get());
    for (int i = 0; i < n_followers; i++) {
      followers.push_back(make_vfs(&follower_hooks));
      hooks.add_follower(followers.back().get());
    }
  }
  ~Trio() { hooks.before_replicate = nullptr; }
  // Every node has the same logical content as the leader.
  void check_equal(const std::string& db, const std::string& sql) {
    sqlite3* l = open(*leader, db);
    const std::string expected = query(l, sql);
    const uint64_t sum = leader->find(db)->state_checksum();
    CHECK(leader->find(db)->recompute_state_checksum() == sum);
    for (auto& f : followers) {
      sqlite3* c = open(*f, db);
      CHECK(query(c, sql) == expected);
      CHECK(query(c, "PRAGMA integrity_check") == "ok");
      CHECK(f->find(db)->state_checksum() == sum);
      CHECK(f->find(db)->recompute_state_checksum() == sum);
      sqlite3_close(c);
    }
    sqlite3_close(l);
  }
  test::LoopbackHooks hooks;
  FollowerHooks follower_hooks;
  std::unique_ptr<Vfs> leader;
  std::vector<std::unique_ptr<Vfs>> followers;
};

}  // namespace

TEST_CASE("local vfs: connections share one database; other vfs instances do not see it") {
  auto vfs = make_vfs(nullptr);
  auto other = make_vfs(nullptr);
  sqlite3* a = open(*vfs);
  sqlite3* b = open(*vfs);
  REQUIRE(exec(a, "CREATE TABLE t(x); INSERT INTO t VALUES(1),(2),(3)") == SQLITE_OK);
  CHECK(query(b, "SELECT sum(x) FROM t") == "6");
  CHECK(query(b, "PRAGMA journal_mode") == "wal");
  CHECK(query(b, "PRAGMA integrity_check") == "ok");
  sqlite3* c = nullptr;
  CHECK(sqlite3_open_v2("test.db", &c, SQLITE_OPEN_READWRITE, other->name().c_str()) == SQLITE_CANTOPEN);
  sqlite3_close(c);
  sqlite3_close(a);
  sqlite3_close(b);
}

TEST_CASE("local vfs: journal mode, locking mode and page size cannot be changed") {
  auto vfs = make_vfs(nullptr);
  sqlite3* a = open(*vfs);
  REQUIRE(exec(a, "CREATE TABLE t(x)") == SQLITE_OK);
  CHECK(exec(a, "PRAGMA journal_mode=DELETE") == SQLITE_ERROR);
  CHECK(std::string(sqlite3_errmsg(a)).find("journal_mode=WAL") != std::string::npos);
  CHECK(exec(a, "PRAGMA locking_mode=EXCLUSIVE") == SQLITE_ERROR);
  CHECK(exec(a, "PRAGMA page_size=8192") == SQLITE_ERROR);
  CHECK(exec(a, "PRAGMA page_size=4096") == SQLITE_OK);
  CHECK(query(a, "PRAGMA journal_mode") == "wal");
  sqlite3_close(a);
}

TEST_CASE("local vfs: data survives checkpoints and closing every connection") {
  auto vfs = make_vfs(nullptr);
  sqlite3* a = open(*vfs);
  REQUIRE(exec(a, "CREATE TABLE t(x); INSERT INTO t SELECT value FROM generate_series(1, 2000)") != -1);
  // generate_series may be missing: fall back to a recursive CTE.
  REQUIRE(exec(a, "DELETE FROM t; WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<2000) "
                  "INSERT INTO t SELECT i FROM s") == SQLITE_OK);
  CHECK(query(a, "PRAGMA wal_checkpoint(TRUNCATE)") == "0|0|0");
  CHECK(vfs->find("test.db")->wal_frames() == 0);
  REQUIRE(exec(a, "INSERT INTO t VALUES(-1)") == SQLITE_OK);
  sqlite3_close(a);
  sqlite3* b = open(*vfs);
  CHECK(query(b, "SELECT count(*), sum(x) FROM t") == "2001|2000999");
  CHECK(query(b, "PRAGMA integrity_check") == "ok");
  sqlite3_close(b);
}

TEST_CASE("local vfs: readers on other threads always see whole transactions") {
  auto vfs = make_vfs(nullptr);
  sqlite3* w = open(*vfs);
  REQUIRE(exec(w, "CREATE TABLE ledger(id INTEGER PRIMARY KEY, amount INTEGER, pad BLOB)") == SQLITE_OK);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 4; r++) {
    readers.emplace_back([&] {
      sqlite3* c = open(*vfs);
      long last_count = 0;
      while (!stop) {
        std::string res = query(c, "SELECT count(*), coalesce(sum(amount),0) FROM ledger");
        long count = std::stol(res.substr(0, res.find('|')));
        if (res.substr(res.find('|') + 1) != "0" || count % 2 != 0 || count < last_count) bad++;
        last_count = count;
        reads++;
      }
      sqlite3_close(c);
    });
  }
  for (int i = 0; i < 400; i++) {
    REQUIRE(exec(w, "BEGIN; INSERT INTO ledger(amount, pad) VALUES(5, randomblob(3000)); "
                    "INSERT INTO ledger(amount, pad) VALUES(-5, randomblob(3000)); COMMIT") == SQLITE_OK);
    if (i % 100 == 99) REQUIRE(exec(w, "PRAGMA wal_checkpoint(PASSIVE)") == SQLITE_OK);
  }
  stop = true;
  for (auto& t : readers) t.join();
  CHECK(bad == 0);
  CHECK(reads > 0);
  CHECK(query(w, "SELECT count(*) FROM ledger") == "800");
  sqlite3_close(w);
}

TEST_CASE("capture: followers end identical to the leader") {
  Trio trio;
  sqlite3* l = open(*trio.leader);
  REQUIRE(exec(l, "CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT)") == SQLITE_OK);
  std::mt19937 rng(7);
  for (int i = 0; i < 300; i++) {
    const std::string k = "'k" + std::to_string(rng() % 100) + "'";
    switch (rng() % 4) {
      case 0: REQUIRE(exec(l, "INSERT OR REPLACE INTO kv VALUES(" + k + ", hex(randomblob(200)))") == SQLITE_OK); break;
      case 1: REQUIRE(exec(l, "DELETE FROM kv WHERE k=" + k) == SQLITE_OK); break;
      case 2: REQUIRE(exec(l, "UPDATE kv SET v = v || 'x' WHERE k >= " + k) == SQLITE_OK); break;
      case 3: REQUIRE(exec(l, "BEGIN; INSERT OR IGNORE INTO kv VALUES(" + k + ", 'a'); ROLLBACK") == SQLITE_OK); break;
    }
  }
  REQUIRE(exec(l, "CREATE INDEX kv_v ON kv(v); ALTER TABLE kv ADD COLUMN extra INTEGER DEFAULT 3") == SQLITE_OK);
  sqlite3_close(l);
  CHECK(trio.hooks.last_follower_error.ok());
  trio.check_equal("test.db", "SELECT * FROM kv ORDER BY k");
}

TEST_CASE("capture: a commit is invisible to other connections until it is applied") {
  Trio trio(1);
  sqlite3* l = open(*trio.leader);
  REQUIRE(exec(l, "CREATE TABLE t(x)") == SQLITE_OK);
  sqlite3* reader = open(*trio.leader);
  std::promise<void> entered, release;
  std::shared_future<void> release_f = release.get_future().share();
  trio.hooks.before_replicate = [&](const FramesBatch& b) {
    if (b.commit) {
      entered.set_value();
      release_f.wait();
    }
    return Status::Ok();
  };
  auto writer = std::async(std::launch::async, [&] { return exec(l, "INSERT INTO t VALUES(42)"); });
  entered.get_future().wait();
  // The writer is inside its commit, waiting for replication.
  CHECK(query(reader, "SELECT count(*) FROM t") == "0");
  sqlite3* fresh = open(*trio.leader);
  CHECK(query(fresh, "SELECT count(*) FROM t") == "0");
  release.set_value();
  CHECK(writer.get() == SQLITE_OK);
  CHECK(query(reader, "SELECT x FROM t") == "42");
  sqlite3_close(fresh);
  sqlite3_close(reader);
  sqlite3_close(l);
  trio.hooks.before_replicate = nullptr;
  trio.check_equal("test.db", "SELECT * FROM t");
}

TEST_CASE("capture: a failed replication rolls the transaction back and leaves no trace") {
  Trio trio;
  sqlite3* l = open(*trio.leader);
  REQUIRE(exec(l, "CREATE TABLE t(x); INSERT INTO t VALUES(1)") == SQLITE_OK);
  const uint64_t before = trio.leader->find("test.db")->state_checksum();
  trio.hooks.before_replicate = [](const FramesBatch&) { return Status::LeadershipLost(); };
  CHECK(exec(l, "INSERT INTO t VALUES(2)") == kErrLeadershipLost);
  CHECK(exec(l, "BEGIN; INSERT INTO t VALUES(3); UPDATE t SET x = x + 10; COMMIT") == kErrLeadershipLost);
  CHECK(sqlite3_get_autocommit(l) == 1);  // SQLite rolled back
  trio.hooks.before_replicate = [](const FramesBatch&) { return Status::NotLeader(); };
  CHECK(exec(l, "DELETE FROM t") == kErrNotLeader);
  trio.hooks.before_replicate = nullptr;
  CHECK(query(l, "SELECT * FROM t") == "1");
  CHECK(trio.leader->find("test.db")->state_checksum() == before);
  CHECK(trio.leader->find("test.db")->recompute_state_checksum() == before);
  // The connection keeps working.
  CHECK(exec(l, "INSERT INTO t VALUES(4)") == SQLITE_OK);
  sqlite3_close(l);
  trio.check_equal("test.db", "SELECT * FROM t ORDER BY x");
}

TEST_CASE("capture: writes are refused with 'not leader' when the node may not write") {
  Trio trio(1);
  sqlite3* l = open(*trio.leader);
  REQUIRE(exec(l, "CREATE TABLE t(x)") == SQLITE_OK);
  trio.hooks.allow_writes = false;
  CHECK(exec(l, "INSERT INTO t VALUES(1)") == kErrNotLeader);
  CHECK(query(l, "SELECT count(*) FROM t") == "0");  // reads still work
  trio.hooks.allow_writes = true;
  CHECK(exec(l, "INSERT INTO t VALUES(1)") == SQLITE_OK);
  sqlite3_close(l);
  trio.check_equal("test.db", "SELECT * FROM t");
}

TEST_CASE("alias: the application's own connections write through the leader and are refused elsewhere") {
  Trio trio(1);
  const std::string name = unique_name("app-vfs");
  REQUIRE(trio.leader->register_alias(name).ok());
  // The name is taken now: a second registration says so.
  Status again = trio.leader->register_alias(name);
  CHECK(!again.ok());
  CHECK(again.message().find("already has a VFS") != std::string::npos);

  // Plain sqlite3_open_v2 with the alias, no sqraft settings: the database
  // is created through the hooks and is in WAL mode by its header.
  sqlite3* app = nullptr;
  REQUIRE(sqlite3_open_v2("app.db", &app, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, name.c_str()) == SQLITE_OK);
  sqlite3_extended_result_codes(app, 1);
  CHECK(query(app, "PRAGMA journal_mode") == "wal");
  REQUIRE(exec(app, "CREATE TABLE t(x)") == SQLITE_OK);
  for (int i = 0; i < 20; i++) REQUIRE(exec(app, "INSERT INTO t VALUES(randomblob(3000))") == SQLITE_OK);
  // Its checkpoints do nothing: only the replicated Checkpoint folds the WAL
  // (SQLite's automatic one is refused the same way).
  const size_t frames = trio.leader->wal_frames("app.db");
  CHECK(frames > 20);
  CHECK(query(app, "PRAGMA wal_checkpoint(TRUNCATE)") == "1|-1|-1");
  CHECK(trio.leader->wal_frames("app.db") == frames);
  trio.check_equal("app.db", "SELECT rowid, x FROM t");

  // Not the leader: a write is refused before anything changes, with a
  // READONLY-class code when a leader is known and BUSY while none is.
  trio.hooks.allow_writes = false;
  trio.hooks.set_leader_address("127.0.0.1:9002");
  CHECK(exec(app, "INSERT INTO t VALUES(1)") == kErrReadonlyNotLeader);
  CHECK((kErrReadonlyNotLeader & 0xff) == SQLITE_READONLY);
  // A new leader still applying its predecessors' entries: BUSY, not a
  // refusal naming itself.
  trio.hooks.leading_flag = true;
  sqlite3_busy_timeout(app, 0);
  CHECK(exec(app, "INSERT INTO t VALUES(1)") == SQLITE_BUSY);
  trio.hooks.leading_flag = false;
  trio.hooks.set_leader_address("");
  CHECK(exec(app, "INSERT INTO t VALUES(1)") == SQLITE_BUSY);
  CHECK(query(app, "SELECT count(*) FROM t") == "20");  // reads go on
  // The busy timeout rides out an election: writes resume once allowed.
  sqlite3_busy_timeout(app, 5000);
  std::thread elect([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    trio.hooks.allow_writes = true;
  });
  CHECK(exec(app, "INSERT INTO t VALUES(1)") == SQLITE_OK);
  elect.join();
  // The node's own connections keep the codes dqlite's clients know.
  trio.hooks.allow_writes = false;
  trio.hooks.set_leader_address("127.0.0.1:9002");
  sqlite3* node = open(*trio.leader, "app.db");
  CHECK(exec(node, "INSERT INTO t VALUES(2)") == kErrNotLeader);
  trio.hooks.allow_writes = true;
  sqlite3_close(node);
  sqlite3_close(app);
  trio.check_equal("app.db", "SELECT rowid, x FROM t");
}

TEST_CASE("pragmas: sqraft_leader, applied and wait index, linearizable reads") {
  Trio trio(1);
  const std::string name = unique_name("app-vfs");
  REQUIRE(trio.leader->register_alias(name).ok());
  sqlite3* app = nullptr;
  REQUIRE(sqlite3_open_v2("p.db", &app, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, name.c_str()) == SQLITE_OK);
  sqlite3_extended_result_codes(app, 1);
  REQUIRE(exec(app, "CREATE TABLE t(x)") == SQLITE_OK);
  REQUIRE(exec(app, "INSERT INTO t VALUES(1)") == SQLITE_OK);

  trio.hooks.set_leader_address("127.0.0.1:9101");
  CHECK(query(app, "PRAGMA sqraft_leader") == "127.0.0.1:9101");
  trio.hooks.set_leader_address("");
  CHECK(query(app, "PRAGMA sqraft_leader") == "");
  CHECK(query(app, "PRAGMA sqraft_leader = 'x'").find("read-only") != std::string::npos);

  // Two commits so far, one log entry each in the loopback.
  CHECK(query(app, "PRAGMA sqraft_applied_index") == "2");
  CHECK(query(app, "PRAGMA sqraft_wait_index = 2") == "2");
  CHECK(query(app, "PRAGMA sqraft_wait_index = 3") == "ERROR 5: sqraft_wait_index: not applied yet");
  CHECK(query(app, "PRAGMA sqraft_wait_index = -1").find("takes a log index") != std::string::npos);
  CHECK(query(app, "PRAGMA sqraft_wait_index = '12abc'").find("takes a log index") != std::string::npos);
  CHECK(query(app, "PRAGMA sqraft_bogus").find("unknown sqraft pragma 'sqraft_bogus'") != std::string::npos);
  CHECK(query(app, "PRAGMA sqraft_timeout") == "5000");
  CHECK(query(app, "PRAGMA sqraft_timeout = 250") == "250");
  CHECK(query(app, "PRAGMA sqraft_timeout = 100000000").find("milliseconds") != std::string::npos);

  // Local reads by default: no barrier.
  CHECK(query(app, "PRAGMA sqraft_read") == "local");
  CHECK(query(app, "SELECT count(*) FROM t") == "1");
  CHECK(trio.hooks.read_barriers == 0);
  // Linearizable: every read transaction waits for one barrier first (two
  // statements in one transaction share it).
  CHECK(query(app, "PRAGMA sqraft_read = linearizable") == "linearizable");
  CHECK(query(app, "PRAGMA sqraft_read = sometimes").find("'local' or 'linearizable'") != std::string::npos);
  for (int i = 0; i < 10; i++) CHECK(query(app, "SELECT count(*) FROM t") == "1");
  CHECK(trio.hooks.read_barriers == 10);
  REQUIRE(exec(app, "BEGIN") == SQLITE_OK);
  CHECK(query(app, "SELECT count(*) FROM t") == "1");
  CHECK(query(app, "SELECT max(x) FROM t") == "1");
  REQUIRE(exec(app, "COMMIT") == SQLITE_OK);
  CHECK(trio.hooks.read_barriers == 11);
  // Writes still work (their read part is confirmed the same way).
  REQUIRE(exec(app, "INSERT INTO t VALUES(2)") == SQLITE_OK);
  CHECK(trio.hooks.read_barriers == 12);
  // Where the barrier cannot be had (not the leader), the read fails with
  // the not-leader code instead of returning possibly stale rows.
  trio.hooks.allow_writes = false;
  CHECK(query(app, "SELECT count(*) FROM t").rfind("ERROR " + std::to_string(kErrNotLeader), 0) == 0);
  CHECK(query(app, "PRAGMA sqraft_read = local") == "local");
  CHECK(query(app, "SELECT count(*) FROM t") == "2");
  trio.hooks.allow_writes = true;

  // The node's own connections (remote clients) may look, not wait.
  sqlite3* node = open(*trio.leader, "p.db");
  CHECK(query(node, "PRAGMA sqraft_applied_index") == "3");
  CHECK(query(node, "PRAGMA sqraft_read = linearizable").find("only for the application") != std::string::npos);
  CHECK(query(node, "PRAGMA sqraft_wait_index = 1").find("only for the application") != std::string::npos);
  sqlite3_close(node);
  sqlite3_close(app);

  // A follower answers from its own applied index and refuses to wait past it.
  sqlite3* f = open(*trio.followers[0], "p.db");
  CHECK(query(f, "PRAGMA sqraft_applied_index") == "7");
  sqlite3_close(f);
}

TEST_CASE("capture: a large transaction streams in pieces and commits everywhere") {
  Trio trio(2, 64 * 1024);
  sqlite3* l = open(*trio.leader);
  REQUIRE(exec(l, "PRAGMA cache_size=20; CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB)") == SQLITE_OK);
  REQUIRE(exec(l, "BEGIN") == SQLITE_OK);
  for (int i = 0; i < 800; i++) REQUIRE(exec(l, "INSERT INTO big(v) VALUES(randomblob(2000))") == SQLITE_OK);
  REQUIRE(exec(l, "UPDATE big SET v = randomblob(1000) WHERE id % 3 = 0") == SQLITE_OK);
  CHECK(trio.hooks.pieces > 1);
  // Pieces are pending on followers but invisible.
  sqlite3* f = open(*trio.followers[0]);
  CHECK(query(f, "SELECT count(*) FROM big") == "0");
  CHECK(trio.followers[0]->find("test.db")->pending_txn() != 0);
  REQUIRE(exec(l, "COMMIT") == SQLITE_OK);
  CHECK(trio.followers[0]->find("test.db")->pending_txn() == 0);
  CHECK(query(f, "SELECT count(*) FROM big") == "800");
  sqlite3_close(f);
  sqlite3_close(l);
  trio.check_equal("test.db", "SELECT id, hex(v) FROM big ORDER BY id");
}

TEST_CASE("capture: a large transaction that rolls back is undone everywhere") {
  Trio trio(2, 64 * 1024);
  sqlite3* l = open(*trio.leader);
  REQUIRE(exec(l, "PRAGMA cache_size=20; CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB); INSERT INTO big(v) VALUES('keep')") ==
          SQLITE_OK);
  const uint64_t before = trio.leader->find("test.db")->state_checksum();
  REQUIRE(exec(l, "BEGIN") == SQLITE_OK);
  for (int i = 0; i < 400; i++) REQUIRE(exec(l, "INSERT INTO big(v) VALUES(randomblob(2000))") == SQLITE_OK);
  REQUIRE(trio.hooks.pieces > 0);
  REQUIRE(trio.followers[1]->find("test.db")->pending_txn() != 0);
  REQUIRE(exec(l, "ROLLBACK") == SQLITE_OK);
  CHECK(trio.hooks.undos == 1);
  CHECK(trio.followers[1]->find("test.db")->pending_txn() == 0);
  CHECK(trio.leader->find("test.db")->recompute_state_checksum() == before);
  // And a later transaction still replicates correctly.
  REQUIRE(exec(l, "INSERT INTO big(v) VALUES('after')") == SQLITE_OK);
  sqlite3_close(l);
  trio.check_equal("test.db", "SELECT id, v FROM big ORDER BY id");
}

TEST_CASE("capture: savepoint rollbacks inside a streamed transaction replicate exactly") {
  Trio trio(2, 32 * 1024);
  sqlite3* l = open(*trio.leader);
  REQUIRE(exec(l, "PRAGMA cache_size=10; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)") == SQLITE_OK);
  REQUIRE(exec(l, "BEGIN") == SQLITE_OK);
  for (int i = 0; i < 200; i++) REQUIRE(exec(l, "INSERT INTO t(v) VALUES(randomblob(1500))") == SQLITE_OK);
  REQUIRE(exec(l, "SAVEPOINT s1") == SQLITE_OK);
  for (int i = 0; i < 300; i++) REQUIRE(exec(l, "INSERT INTO t(v) VALUES(randomblob(1500))") == SQLITE_OK);
  REQUIRE(exec(l, "UPDATE t SET v = randomblob(100) WHERE id < 50") == SQLITE_OK);
  REQUIRE(exec(l, "ROLLBACK TO s1") == SQLITE_OK);
  for (int i = 0; i < 20; i++) REQUIRE(exec(l, "INSERT INTO t(v) VALUES(randomblob(700))") == SQLITE_OK);
  REQUIRE(exec(l, "RELEASE s1; COMMIT") == SQLITE_OK);
  CHECK(trio.hooks.pieces > 0);
  CHECK(query(l, "SELECT count(*) FROM t") == "220");
  sqlite3_close(l);
  CHECK(trio.hooks.last_follower_error.ok());
  trio.check_equal("test.db", "SELECT id, hex(v) FROM t ORDER BY id");
}

TEST_CASE("apply: a follower's open read transaction keeps its snapshot while commits arrive") {
  Trio trio(1);
  sqlite3* l = open(*trio.leader);
  REQUIRE(exec(l, "CREATE TABLE t(x); INSERT INTO t VALUES(1)") == SQLITE_OK);
  sqlite3* r = open(*trio.followers[0]);
  REQUIRE(exec(r, "BEGIN") == SQLITE_OK);
  CHECK(query(r, "SELECT count(*) FROM t") == "1");
  for (int i = 0; i < 20; i++) REQUIRE(exec(l, "INSERT INTO t VALUES(2)") == SQLITE_OK);
  CHECK(query(r, "SELECT count(*) FROM t") == "1");  // still its snapshot
  REQUIRE(exec(r, "COMMIT") == SQLITE_OK);
  CHECK(query(r, "SELECT count(*) FROM t") == "21");
  sqlite3_close(r);
  sqlite3_close(l);
  trio.check_equal("test.db", "SELECT * FROM t");
}

TEST_CASE("apply: commits that arrive while a local writer holds the lock wait for it") {
  // Node A was leader and has a transaction open; B (the new leader) commits.
  test::LoopbackHooks hooks_a, hooks_b;
  auto a = make_vfs(&hooks_a);
  auto b = make_vfs(&hooks_b);
  hooks_a.set_leader(a.get());
  hooks_b.set_leader(b.get());
  hooks_b.add_follower(a.get());
  sqlite3* cb = open(*b);
  REQUIRE(exec(cb, "CREATE TABLE t(x)") == SQLITE_OK);
  sqlite3* ca = open(*a);
  REQUIRE(exec(ca, "BEGIN IMMEDIATE; SELECT 1") == SQLITE_OK);  // holds A's WAL write lock
  REQUIRE(exec(cb, "INSERT INTO t VALUES(7)") == SQLITE_OK);
  CHECK(a->find("test.db")->has_deferred());
  sqlite3* reader = open(*a);
  CHECK(query(reader, "SELECT count(*) FROM t") == "0");
  REQUIRE(exec(ca, "ROLLBACK") == SQLITE_OK);  // hands the lock over; wake() drains
  CHECK(!a->find("test.db")->has_deferred());
  CHECK(query(reader, "SELECT x FROM t") == "7");
  CHECK(a->find("test.db")->state_checksum() == b->find("test.db")->state_checksum());
  CHECK(a->find("test.db")->recompute_state_checksum() == b->find("test.db")->state_checksum());
  sqlite3_close(reader);
  sqlite3_close(ca);
  sqlite3_close(cb);
}

TEST_CASE("checkpoint: empties the WAL everywhere, or keeps what readers still need") {
  Trio trio(2);
  sqlite3* l = open(*trio.leader);
  REQUIRE(exec(l, "CREATE TABLE t(x); INSERT INTO t VALUES(1),(2)") == SQLITE_OK);
  for (int i = 0; i < 30; i++) REQUIRE(exec(l, "INSERT INTO t VALUES(randomblob(500))") == SQLITE_OK);
  sqlite3* r = open(*trio.followers[1]);
  REQUIRE(exec(r, "BEGIN") == SQLITE_OK);
  CHECK(query(r, "SELECT count(*) FROM t") == "32");
  for (int i = 0; i < 5; i++) REQUIRE(exec(l, "INSERT INTO t VALUES(3)") == SQLITE_OK);
  REQUIRE(trio.leader->apply_checkpoint("test.db").ok());
  for (auto& f : trio.followers) REQUIRE(f->apply_checkpoint("test.db").ok());
  CHECK(trio.leader->find("test.db")->unfolded_frames() == 0);
  CHECK(trio.followers[0]->find("test.db")->unfolded_frames() == 0);
  CHECK(trio.followers[0]->find("test.db")->wal_frames() == 0);      // truncated
  CHECK(trio.followers[1]->find("test.db")->unfolded_frames() > 0);  // the reader pins it
  CHECK(query(r, "SELECT count(*) FROM t") == "32");
  REQUIRE(exec(r, "COMMIT") == SQLITE_OK);
  trio.check_equal("test.db", "SELECT * FROM t");
  // Writing after the checkpoint restarts the WAL on every node.
  for (int i = 0; i < 5; i++) REQUIRE(exec(l, "INSERT INTO t VALUES(4)") == SQLITE_OK);
  CHECK(trio.leader->find("test.db")->wal_frames() <= 10);
  REQUIRE(trio.followers[1]->apply_checkpoint("test.db").ok());
  for (int i = 0; i < 5; i++) REQUIRE(exec(l, "INSERT INTO t VALUES(5)") == SQLITE_OK);
  CHECK(trio.followers[0]->find("test.db")->wal_frames() <= 10);
  sqlite3_close(r);
  sqlite3_close(l);
  trio.check_equal("test.db", "SELECT rowid, * FROM t");
}

TEST_CASE("snapshot: capture, encode, decode and restore reproduce every database") {
  Trio trio(0);
  sqlite3* l = open(*trio.leader);
  REQUIRE(exec(l, "CREATE TABLE t(x, y)") == SQLITE_OK);
  for (int i = 0; i < 100; i++) REQUIRE(exec(l, "INSERT INTO t VALUES(" + std::to_string(i) + ", randomblob(300))") == SQLITE_OK);
  REQUIRE(trio.leader->apply_checkpoint("test.db").ok());
  for (int i = 0; i < 10; i++) REQUIRE(exec(l, "UPDATE t SET y = randomblob(10) WHERE x = " + std::to_string(i)) == SQLITE_OK);
  sqlite3* other = open(*trio.leader, "other.db");
  REQUIRE(exec(other, "CREATE TABLE o(z); INSERT INTO o VALUES('hello')") == SQLITE_OK);

  std::vector<SnapshotBuffer> bufs = encode_snapshot(trio.leader->capture());
  std::vector<uint8_t> bytes;
  for (auto& b : bufs) bytes.insert(bytes.end(), b.data.get(), b.data.get() + b.size);
  Result<std::vector<DbImage>> images = decode_snapshot(bytes.data(), bytes.size());
  REQUIRE_MESSAGE(images.ok(), images.status().to_string());
  REQUIRE(images->size() == 2);

  auto target = make_vfs(nullptr);
  REQUIRE(target->restore(images.value()).ok());
  sqlite3* t = open(*target);
  CHECK(query(t, "SELECT x, hex(y) FROM t ORDER BY x") == query(l, "SELECT x, hex(y) FROM t ORDER BY x"));
  CHECK(query(t, "PRAGMA integrity_check") == "ok");
  CHECK(target->find("test.db")->state_checksum() == trio.leader->find("test.db")->state_checksum());
  sqlite3* to = open(*target, "other.db");
  CHECK(query(to, "SELECT z FROM o") == "hello");

  // Every single damaged byte in the header or a section is refused.
  std::mt19937 rng(3);
  for (int i = 0; i < 200; i++) {
    std::vector<uint8_t> bad = bytes;
    bad[rng() % bad.size()] ^= uint8_t(1 + rng() % 255);
    Result<std::vector<DbImage>> r = decode_snapshot(bad.data(), bad.size());
    if (r.ok()) {
      // A flip inside a page can only pass the section checksum by chance;
      // the content checksum in restore() must then refuse it.
      CHECK(!target->restore(r.value()).ok());
    }
  }
  CHECK(!decode_snapshot(bytes.data(), bytes.size() - 1).ok());
  CHECK(query(t, "SELECT count(*) FROM t") == "100");  // untouched by the refusals
  sqlite3_close(to);
  sqlite3_close(t);
  sqlite3_close(other);
  sqlite3_close(l);
}

TEST_CASE("snapshot: restoring under an open reader keeps the reader consistent") {
  // A follower holds an earlier state of the same history and has a reader
  // in the middle of a transaction when a newer snapshot arrives.
  Trio trio(0);
  sqlite3* l = open(*trio.leader);
  REQUIRE(exec(l, "CREATE TABLE t(x); INSERT INTO t VALUES(1),(2),(3)") == SQLITE_OK);
  std::vector<DbImage> earlier = trio.leader->capture();
  REQUIRE(exec(l, "INSERT INTO t VALUES(4); CREATE TABLE u(y); INSERT INTO u VALUES('new')") == SQLITE_OK);
  std::vector<DbImage> later = trio.leader->capture();

  auto target = make_vfs(nullptr);
  REQUIRE(target->restore(earlier).ok());
  sqlite3* r = open(*target);
  REQUIRE(exec(r, "BEGIN") == SQLITE_OK);
  CHECK(query(r, "SELECT sum(x) FROM t") == "6");
  REQUIRE(target->restore(later).ok());
  CHECK(query(r, "SELECT sum(x) FROM t") == "6");  // its snapshot
  REQUIRE(exec(r, "COMMIT") == SQLITE_OK);
  CHECK(query(r, "SELECT sum(x) FROM t") == "10");
  CHECK(query(r, "SELECT y FROM u") == "new");
  CHECK(query(r, "PRAGMA integrity_check") == "ok");
  CHECK(target->find("test.db")->recompute_state_checksum() == trio.leader->find("test.db")->state_checksum());
  sqlite3_close(r);
  sqlite3_close(l);
}
