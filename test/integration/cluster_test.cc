// Replication on libraft's deterministic in-memory cluster: random workloads,
// leaders lost mid-transaction, snapshots, checkpoints, corrupt input and
// divergence.
#include <doctest/doctest.h>

#include <random>
#include <set>

#include "command.h"
#include "snapshot_codec.h"
#include "support/fixture_cluster.h"

using namespace sqraft;
using test::FixtureCluster;
using Mode = Executor::Mode;

namespace {

std::set<long> ids(FixtureCluster& c, unsigned node, const std::string& db) {
  std::set<long> out;
  std::string rows = c.query(node, db, "SELECT id FROM ledger ORDER BY id");
  size_t pos = 0;
  while (pos < rows.size()) {
    size_t nl = rows.find('\n', pos);
    if (nl == std::string::npos) nl = rows.size();
    out.insert(std::stol(rows.substr(pos, nl - pos)));
    pos = nl + 1;
  }
  return out;
}

const char* kItemsQuery = "SELECT k, hex(v), n FROM items ORDER BY k";
const char* kSchemaQuery = "SELECT type, name, sql FROM sqlite_schema ORDER BY name";

// Random transactions over several databases; every transaction records its
// id in `ledger` so acknowledged and failed ones can be told apart later.
class Workload {
 public:
  explicit Workload(uint32_t seed) : rng_(seed) {}

  struct Txn {
    long id;
    std::vector<std::string> stmts;
    Mode mode;
  };

  static std::vector<std::string> setup() {
    return {"CREATE TABLE IF NOT EXISTS items(k INTEGER PRIMARY KEY, v BLOB, n INTEGER)",
            "CREATE TABLE IF NOT EXISTS ledger(id INTEGER PRIMARY KEY)"};
  }

  Txn next() {
    Txn t;
    t.id = ++seq_;
    const unsigned kind = rng_() % 100;
    t.mode = kind < 10 ? Mode::kRolledBack : Mode::kTransaction;
    const unsigned n = 1 + rng_() % 4;
    for (unsigned i = 0; i < n; i++) t.stmts.push_back(statement());
    if (kind >= 95) {  // a large transaction: streamed when the spill threshold is small
      t.stmts.push_back("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<150) "
                        "INSERT OR REPLACE INTO items(k, v, n) SELECT 100000 + i, randomblob(1800), i FROM s");
    }
    t.stmts.push_back("INSERT INTO ledger(id) VALUES(" + std::to_string(t.id) + ")");
    return t;
  }

 private:
  std::string statement() {
    const std::string k = std::to_string(rng_() % 500);
    switch (rng_() % 10) {
      case 0: case 1: case 2:
        return "INSERT OR REPLACE INTO items(k, v, n) VALUES(" + k + ", randomblob(" +
               std::to_string(10 + rng_() % 2500) + "), 0)";
      case 3: case 4:
        return "UPDATE items SET n = n + 1, v = randomblob(" + std::to_string(rng_() % 300) +
               ") WHERE k % 13 = " + std::to_string(rng_() % 13);
      case 5:
        return "DELETE FROM items WHERE k % 17 = " + std::to_string(rng_() % 17);
      case 6:
        return "CREATE TABLE IF NOT EXISTS extra_" + std::to_string(rng_() % 5) + "(a, b)";
      case 7:
        return "DROP TABLE IF EXISTS extra_" + std::to_string(rng_() % 5);
      case 8:
        return rng_() % 2 ? "CREATE INDEX IF NOT EXISTS items_n ON items(n)" : "DROP INDEX IF EXISTS items_n";
      default:
        return "INSERT INTO items(k, v, n) VALUES(" + std::to_string(1000 + rng_() % 100000) +
               ", zeroblob(" + std::to_string(rng_() % 5000) + "), 1)";
    }
  }

  std::mt19937 rng_;
  long seq_ = 0;
};

struct Outcome {
  std::set<long> acked, failed_before_commit, ambiguous;
};

// Runs `count` transactions on the current leader, one outstanding per
// database, and classifies their results.
void run_phase(FixtureCluster& c, Workload& w, const std::vector<std::string>& dbs, int count,
               std::map<std::string, Outcome>& out) {
  struct Slot {
    std::shared_ptr<FixtureCluster::Job> job;
    Workload::Txn txn;
  };
  std::map<std::string, Slot> slots;
  int submitted = 0;
  auto submit = [&](const std::string& db) {
    unsigned l = c.wait_leader();
    REQUIRE(l < c.size());
    Slot s{nullptr, w.next()};
    s.job = c.submit(l, db, s.txn.stmts, s.txn.mode);
    slots[db] = std::move(s);
    submitted++;
  };
  for (const auto& db : dbs) submit(db);
  while (!slots.empty()) {
    REQUIRE(c.step_until([&] {
      for (auto& [db, s] : slots) {
        if (s.job->done) return true;
      }
      return false;
    }, 120000));
    for (auto it = slots.begin(); it != slots.end();) {
      if (!it->second.job->done) {
        ++it;
        continue;
      }
      const Slot& s = it->second;
      Outcome& o = out[it->first];
      const Status& st = s.job->result.status();
      if (s.txn.mode == Mode::kRolledBack || st.is_not_leader()) {
        o.failed_before_commit.insert(s.txn.id);
      } else if (st.ok()) {
        o.acked.insert(s.txn.id);
      } else if (st.is_leadership_lost()) {
        o.ambiguous.insert(s.txn.id);
      } else {
        // An SQL error (a constraint, say): the transaction rolled back.
        REQUIRE_MESSAGE((st.code() & 0xff) == SQLITE_CONSTRAINT, st.to_string());
        o.failed_before_commit.insert(s.txn.id);
      }
      const std::string db = it->first;
      it = slots.erase(it);
      if (submitted < count) submit(db);
    }
  }
}

void check_all(FixtureCluster& c, const std::vector<std::string>& dbs, std::map<std::string, Outcome>& out) {
  REQUIRE(c.settle());
  for (const auto& db : dbs) {
    CHECK_MESSAGE(c.compare(db, kItemsQuery) == "", db);
    CHECK_MESSAGE(c.compare(db, kSchemaQuery) == "", db);
    for (unsigned i = 0; i < c.size(); i++) {
      if (!c.alive(i)) continue;
      const std::set<long> present = ids(c, i, db);
      const Outcome& o = out[db];
      for (long id : o.acked) REQUIRE_MESSAGE(present.count(id), "acknowledged txn " << id << " missing on node " << i);
      for (long id : o.failed_before_commit) REQUIRE_MESSAGE(!present.count(id), "failed txn " << id << " present");
      for (long id : present) REQUIRE(o.acked.count(id) + o.ambiguous.count(id) == 1);
    }
  }
}

void random_workload(unsigned nodes, int phases, int per_phase, uint32_t seed) {
  FixtureCluster::Options opt;
  opt.n = nodes;
  opt.spill_threshold_bytes = 96 * 1024;
  opt.checkpoint_threshold_frames = 300;
  opt.snapshot_threshold = 64;
  opt.snapshot_trailing = 16;
  FixtureCluster c(opt);
  const std::vector<std::string> dbs = {"alpha", "beta", "gamma"};
  Workload w(seed);
  for (const auto& db : dbs) REQUIRE(c.exec(c.wait_leader(), db, Workload::setup(), Mode::kTransaction).ok());
  std::map<std::string, Outcome> out;
  std::mt19937 rng(seed);
  for (int phase = 0; phase < phases; phase++) {
    run_phase(c, w, dbs, per_phase, out);
    check_all(c, dbs, out);
    const unsigned l = c.wait_leader();
    REQUIRE(l < c.size());
    switch (phase % 4) {
      case 0: {  // leader change: isolate it until someone else leads
        c.isolate(l);
        REQUIRE(c.step_until([&] {
          for (unsigned i = 0; i < c.size(); i++) {
            if (i != l && c.replica(i).leader_ready()) return true;
          }
          return false;
        }));
        c.heal(l);
        break;
      }
      case 1: {  // a follower misses a phase and catches up (by snapshot)
        const unsigned f = (l + 1 + rng() % (c.size() - 1)) % c.size();
        c.kill(f);
        run_phase(c, w, dbs, per_phase / 2, out);
        c.revive(f);
        break;
      }
      default:
        break;
    }
  }
  check_all(c, dbs, out);
  size_t acked = 0;
  for (auto& [db, o] : out) acked += o.acked.size();
  MESSAGE(nodes << " nodes: " << acked << " acknowledged transactions checked");
  CHECK(acked > size_t(phases * per_phase) / 2);
}

}  // namespace

TEST_CASE("cluster: writes on the leader reach every node") {
  FixtureCluster c(FixtureCluster::Options{});
  const unsigned l = c.wait_leader();
  REQUIRE(l < c.size());
  auto r = c.exec(l, "app", "CREATE TABLE t(x); INSERT INTO t VALUES(1),(2),(3)");
  REQUIRE_MESSAGE(r.ok(), r.status().to_string());
  CHECK(r->rows_affected == 3);
  REQUIRE(c.settle());
  CHECK(c.compare("app", "SELECT * FROM t") == "");
  for (unsigned i = 0; i < c.size(); i++) CHECK(c.query(i, "app", "SELECT sum(x) FROM t") == "6");
}

TEST_CASE("cluster: a follower refuses writes with 'not leader'") {
  FixtureCluster c(FixtureCluster::Options{});
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x)").ok());
  REQUIRE(c.settle());
  const unsigned f = (l + 1) % c.size();
  auto r = c.exec(f, "app", "INSERT INTO t VALUES(1)");
  CHECK(r.status().is_not_leader());
  auto created = c.exec(f, "new-db", "CREATE TABLE t(x)");
  CHECK_MESSAGE(created.status().is_not_leader(), created.status().to_string());
  REQUIRE(c.settle());
  CHECK(c.query(l, "app", "SELECT count(*) FROM t") == "0");
  CHECK(c.vfs(l).find("new-db") == nullptr);
}

TEST_CASE("cluster: random workload on 3 nodes stays identical everywhere") {
  random_workload(3, 8, 250, 11);
}

TEST_CASE("cluster: random workload on 5 nodes stays identical everywhere") {
  random_workload(5, 5, 250, 23);
}

TEST_CASE("cluster: a leader partitioned before its commit replicates leaves no trace") {
  FixtureCluster c(FixtureCluster::Options{});
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x); INSERT INTO t VALUES(1)").ok());
  REQUIRE(c.settle());
  c.isolate(l);
  auto job = c.submit(l, "app", {"INSERT INTO t VALUES(2)"});
  unsigned nl = c.size();
  REQUIRE(c.step_until([&] {
    for (unsigned i = 0; i < c.size(); i++) {
      if (i != l && c.replica(i).leader_ready()) nl = i;
    }
    return nl < c.size();
  }));
  REQUIRE(c.exec(nl, "app", "INSERT INTO t VALUES(3)").ok());
  c.heal(l);
  REQUIRE(c.step_until([&] { return job->done.load(); }));
  CHECK(job->result.status().is_leadership_lost());
  REQUIRE(c.settle());
  CHECK(c.compare("app", "SELECT * FROM t ORDER BY x") == "");
  for (unsigned i = 0; i < c.size(); i++) CHECK(c.query(i, "app", "SELECT group_concat(x) FROM t") == "1,3");
  // The old leader writes again once it leads again.
  REQUIRE(c.exec(c.wait_leader(), "app", "INSERT INTO t VALUES(4)").ok());
}

TEST_CASE("cluster: a leader lost between the pieces of a large transaction") {
  FixtureCluster::Options opt;
  opt.spill_threshold_bytes = 32 * 1024;
  FixtureCluster c(opt);
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB)").ok());
  REQUIRE(c.settle());
  std::vector<std::string> stmts = {"PRAGMA cache_size=10"};
  for (int i = 0; i < 300; i++) stmts.push_back("INSERT INTO big(v) VALUES(randomblob(2000))");
  auto job = c.submit(l, "app", stmts, Mode::kTransaction);
  // Wait until the followers hold streamed pieces of it.
  REQUIRE(c.step_until([&] {
    for (unsigned i = 0; i < c.size(); i++) {
      if (i != l && c.vfs(i).find("app")->pending_txn() == 0) return false;
    }
    return true;
  }));
  c.isolate(l);
  unsigned nl = c.size();
  REQUIRE(c.step_until([&] {
    for (unsigned i = 0; i < c.size(); i++) {
      if (i != l && c.replica(i).leader_ready()) nl = i;
    }
    return nl < c.size();
  }));
  // The new leader drops the orphaned pieces everywhere it can reach.
  REQUIRE(c.step_until([&] {
    for (unsigned i = 0; i < c.size(); i++) {
      if (i != l && c.vfs(i).find("app")->pending_txn() != 0) return false;
    }
    return true;
  }));
  REQUIRE(c.exec(nl, "app", "INSERT INTO big(v) VALUES('after')").ok());
  c.heal(l);
  REQUIRE(c.step_until([&] { return job->done.load(); }));
  CHECK(!job->result.ok());
  REQUIRE(c.settle());
  CHECK(c.compare("app", "SELECT id, hex(v) FROM big ORDER BY id") == "");
  for (unsigned i = 0; i < c.size(); i++) {
    CHECK(c.query(i, "app", "SELECT group_concat(v) FROM big") == "after");
    CHECK(c.vfs(i).find("app")->pending_txn() == 0);
  }
}

TEST_CASE("cluster: a leader killed after its commit reached the followers") {
  FixtureCluster c(FixtureCluster::Options{});
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x); INSERT INTO t VALUES(1)").ok());
  REQUIRE(c.settle());
  const raft_index before = raft_last_index(c.raft((l + 1) % c.size()));
  auto job = c.submit(l, "app", {"INSERT INTO t VALUES(2)"});
  // The entry is in the followers' logs, but the leader has not applied it.
  REQUIRE(c.step_until([&] {
    for (unsigned i = 0; i < c.size(); i++) {
      if (i != l && raft_last_index(c.raft(i)) <= before) return false;
    }
    return true;
  }));
  const bool applied_on_leader = job->done.load();
  c.kill(l);
  unsigned nl = c.size();
  REQUIRE(c.step_until([&] {
    for (unsigned i = 0; i < c.size(); i++) {
      if (i != l && c.replica(i).leader_ready()) nl = i;
    }
    return nl < c.size();
  }));
  REQUIRE(c.exec(nl, "app", "INSERT INTO t VALUES(3)").ok());
  c.revive(l);
  REQUIRE(c.step_until([&] { return job->done.load(); }));
  REQUIRE(c.settle());
  CHECK(c.compare("app", "SELECT * FROM t ORDER BY x") == "");
  // The new leader had the entry, so it committed it: present everywhere,
  // whatever the old leader's client was told.
  for (unsigned i = 0; i < c.size(); i++) CHECK(c.query(i, "app", "SELECT group_concat(x) FROM t") == "1,2,3");
  if (applied_on_leader) CHECK(job->result.ok());
}

TEST_CASE("cluster: a follower that fell behind catches up by snapshot") {
  FixtureCluster::Options opt;
  opt.snapshot_threshold = 16;
  opt.snapshot_trailing = 4;
  FixtureCluster c(opt);
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x, y)").ok());
  REQUIRE(c.settle());
  const unsigned f = (l + 1) % c.size();
  c.kill(f);
  for (int i = 0; i < 120; i++) {
    auto ins = c.exec(l, "app", "INSERT INTO t VALUES(" + std::to_string(i) + ", randomblob(700))");
    REQUIRE_MESSAGE(ins.ok(), i << ": " << ins.status().to_string());
    if (i % 40 == 0) {
      auto r = c.exec(l, "other", "CREATE TABLE IF NOT EXISTS o(z); INSERT INTO o VALUES(1)");
      REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    }
  }
  CHECK(c.replica(l).fsm().snapshots_taken() > 0);
  c.revive(f);
  REQUIRE(c.settle());
  CHECK(c.replica(f).fsm().snapshots_restored() >= 1);
  CHECK(c.compare("app", "SELECT x, hex(y) FROM t ORDER BY x") == "");
  CHECK(c.compare("other", "SELECT * FROM o") == "");
  // And it keeps following ordinary commits afterwards.
  REQUIRE(c.exec(l, "app", "DELETE FROM t WHERE x < 60").ok());
  REQUIRE(c.settle());
  CHECK(c.compare("app", "SELECT x, hex(y) FROM t ORDER BY x") == "");
}

TEST_CASE("cluster: checkpoints empty every WAL; snapshots before and after restore alike") {
  FixtureCluster::Options opt;
  opt.checkpoint_threshold_frames = 60;
  FixtureCluster c(opt);
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x, y)").ok());
  for (int i = 0; i < 20; i++) {
    REQUIRE(c.exec(l, "app", "INSERT INTO t VALUES(" + std::to_string(i) + ", randomblob(1500))").ok());
  }
  REQUIRE(c.settle());
  const uint32_t frames_before = c.vfs(l).find("app")->wal_frames();
  REQUIRE(frames_before > 20);
  std::vector<DbImage> before = c.vfs(l).capture();
  c.replica(l).checkpoint("app");
  REQUIRE(c.settle());
  for (unsigned i = 0; i < c.size(); i++) {
    CHECK_MESSAGE(c.vfs(i).find("app")->unfolded_frames() == 0, "node " << i);
    // Followers reset their WAL at once; the leader's next writer does.
    if (i != l) CHECK_MESSAGE(c.vfs(i).find("app")->wal_frames() == 0, "node " << i);
  }
  std::vector<DbImage> after = c.vfs(l).capture();
  CHECK(after[0].wal.empty());
  CHECK(!before[0].wal.empty());
  auto restore = [](const std::vector<DbImage>& images, const char* name) {
    Vfs::Options o;
    o.name = name;
    auto v = Vfs::create(o, nullptr);
    REQUIRE(v.ok());
    std::vector<SnapshotBuffer> bufs = encode_snapshot(images);
    std::vector<uint8_t> bytes;
    for (auto& b : bufs) bytes.insert(bytes.end(), b.data.get(), b.data.get() + b.size);
    auto decoded = decode_snapshot(bytes.data(), bytes.size());
    REQUIRE(decoded.ok());
    REQUIRE(v.value()->restore(decoded.value()).ok());
    return std::move(v).value();
  };
  auto v1 = restore(before, "ckpt-before");
  auto v2 = restore(after, "ckpt-after");
  CHECK(v1->find("app")->state_checksum() == v2->find("app")->state_checksum());
  CHECK(v1->find("app")->state_checksum() == c.checksum(l, "app"));
  sqlite3* a = v1->open("app").value();
  sqlite3* b = v2->open("app").value();
  CHECK(test::query(a, "SELECT x, hex(y) FROM t ORDER BY x") == test::query(b, "SELECT x, hex(y) FROM t ORDER BY x"));
  CHECK(test::query(b, "PRAGMA integrity_check") == "ok");
  sqlite3_close(a);
  sqlite3_close(b);
  REQUIRE(c.exec(l, "app", "UPDATE t SET y = 'z' WHERE x = 0").ok());
  CHECK(c.vfs(l).find("app")->wal_frames() <= 3);
  // Past the threshold, the leader checkpoints by itself.
  for (int i = 0; i < 40; i++) REQUIRE(c.exec(l, "app", "UPDATE t SET y = randomblob(1500) WHERE x = " + std::to_string(i % 20)).ok());
  REQUIRE(c.settle());
  for (unsigned i = 0; i < c.size(); i++) CHECK(c.vfs(i).find("app")->wal_frames() < 60);
  CHECK(c.compare("app", "SELECT x, hex(y) FROM t ORDER BY x") == "");
}

TEST_CASE("cluster: corrupt commands are skipped on every node without harm") {
  FixtureCluster c(FixtureCluster::Options{});
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x); INSERT INTO t VALUES(1)").ok());
  std::vector<std::string> garbage = {std::string("\x08\x01\x22\x05junk!", 10), std::string(64, '\xff'), ""};
  Command unknown_db;
  FramesBatch fb;
  fb.db = "nope";
  fb.txn_id = 9;
  fb.page_size = 4096;
  fb.frames.push_back({1, 1, make_zero_page(4096)});
  fb.commit = true;
  fb.frame_count = 1;
  fb.db_size = 1;
  unknown_db.body = fb;
  garbage.push_back(encode_command(unknown_db));
  for (const std::string& g : garbage) {
    struct raft_buffer buf;
    buf.len = g.size();
    buf.base = raft_malloc(buf.len + 1);
    std::memcpy(buf.base, g.data(), g.size());
    using ApplyReq = struct raft_apply;
    auto* req = new ApplyReq();
    REQUIRE(raft_apply(c.raft(l), req, &buf, 1, [](ApplyReq* r, int, void*) { delete r; }) == 0);
  }
  REQUIRE(c.exec(l, "app", "INSERT INTO t VALUES(2)").ok());
  REQUIRE(c.settle());
  CHECK(c.compare("app", "SELECT * FROM t") == "");
  for (unsigned i = 0; i < c.size(); i++) {
    CHECK(!c.replica(i).diverged());
    CHECK(c.vfs(i).find("nope") == nullptr);
  }
}

TEST_CASE("cluster: a damaged snapshot is refused and the node's state is untouched") {
  FixtureCluster c(FixtureCluster::Options{});
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x); INSERT INTO t VALUES(1),(2)").ok());
  REQUIRE(c.settle());
  // Take a snapshot through the FSM callbacks, as Raft does.
  struct raft_fsm* fsm = c.replica(l).raft_fsm();
  struct raft_buffer* bufs = nullptr;
  unsigned n = 0;
  REQUIRE(fsm->snapshot(fsm, &bufs, &n) == 0);
  REQUIRE(fsm->snapshot_async(fsm, &bufs, &n) == 0);
  std::vector<uint8_t> bytes;
  for (unsigned i = 0; i < n; i++) {
    bytes.insert(bytes.end(), static_cast<uint8_t*>(bufs[i].base), static_cast<uint8_t*>(bufs[i].base) + bufs[i].len);
  }
  REQUIRE(fsm->snapshot_finalize(fsm, &bufs, &n) == 0);
  const unsigned f = (l + 1) % c.size();
  REQUIRE(c.exec(l, "app", "INSERT INTO t VALUES(3)").ok());
  REQUIRE(c.settle());
  const uint64_t sum = c.checksum(f, "app");
  struct raft_fsm* ffsm = c.replica(f).raft_fsm();
  for (size_t at : {size_t(3), size_t(20), bytes.size() / 2, bytes.size() - 1}) {
    std::vector<uint8_t> bad = bytes;
    bad[at] ^= 0x10;
    struct raft_buffer buf{raft_malloc(bad.size()), bad.size()};
    std::memcpy(buf.base, bad.data(), bad.size());
    CHECK(ffsm->restore(ffsm, &buf) != 0);
    raft_free(buf.base);  // refused: still ours
    CHECK(c.checksum(f, "app") == sum);
    CHECK(c.query(f, "app", "SELECT group_concat(x) FROM t") == "1,2,3");
  }
  // The intact snapshot restores (to the older state).
  struct raft_buffer good{raft_malloc(bytes.size()), bytes.size()};
  std::memcpy(good.base, bytes.data(), bytes.size());
  CHECK(ffsm->restore(ffsm, &good) == 0);
  CHECK(c.query(f, "app", "SELECT group_concat(x) FROM t") == "1,2");
}

TEST_CASE("cluster: a follower whose state differs stops with a divergence error") {
  FixtureCluster c(FixtureCluster::Options{});
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x)").ok());
  REQUIRE(c.settle());
  const unsigned bad = (l + 1) % c.size();
  const unsigned good = (l + 2) % c.size();
  c.vfs(bad).find("app")->perturb_state_hash_for_testing();
  REQUIRE(c.exec(l, "app", "INSERT INTO t VALUES(1)").ok());
  REQUIRE(c.step_until([&] { return c.replica(bad).diverged(); }));
  const std::string msg = c.replica(bad).divergence().message();
  CHECK(msg.find("state divergence") != std::string::npos);
  CHECK(msg.find("db 'app'") != std::string::npos);
  CHECK(c.query(bad, "app", "SELECT count(*) FROM t") == "0");  // the commit was not applied there
  CHECK(!c.replica(l).diverged());
  CHECK(!c.replica(good).diverged());
  c.kill(bad);  // what the node does on its own: stop
  REQUIRE(c.exec(l, "app", "INSERT INTO t VALUES(2)").ok());
  REQUIRE(c.settle());
  CHECK(c.query(good, "app", "SELECT group_concat(x) FROM t") == "1,2");
}

TEST_CASE("cluster: followers fed a wrong checksum stop; the leader does not") {
  FixtureCluster c(FixtureCluster::Options{});
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x)").ok());
  REQUIRE(c.settle());
  c.replica(l).corrupt_next_checksum_for_testing();
  REQUIRE(c.exec(l, "app", "INSERT INTO t VALUES(1)").ok());
  REQUIRE(c.step_until([&] {
    for (unsigned i = 0; i < c.size(); i++) {
      if (i != l && !c.replica(i).diverged()) return false;
    }
    return true;
  }));
  CHECK(!c.replica(l).diverged());
}
