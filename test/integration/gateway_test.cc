// The production server path — the real client, the wire protocol, Session's
// routing, the databases' writers (group commit, interactive transactions),
// the proposer and the FSM — on libraft's deterministic fixture: random
// workloads through leader changes and lagging followers, a leader lost in
// the middle of a streamed transaction, and a follower catching up by
// snapshot.
#include <doctest/doctest.h>

#include <map>
#include <random>
#include <set>
#include <thread>

#include "support/fixture_cluster.h"

using namespace sqraft;
using test::FixtureCluster;

namespace {

std::set<long> ledger_ids(FixtureCluster& c, unsigned node, const std::string& db) {
  std::set<long> out;
  const std::string rows = c.query(node, db, "SELECT id FROM ledger ORDER BY id");
  size_t pos = 0;
  while (pos < rows.size()) {
    size_t nl = rows.find('\n', pos);
    if (nl == std::string::npos) nl = rows.size();
    out.insert(std::stol(rows.substr(pos, nl - pos)));
    pos = nl + 1;
  }
  return out;
}

struct Outcome {
  std::set<long> acked, failed, ambiguous;
};

// One database's client: transactions of 1-4 random statements and a
// ledger row, run as BEGIN, the statements, COMMIT (or ROLLBACK, one in ten)
// on whichever node leads, reconnecting when it does not.
class TxnClient {
 public:
  TxnClient(FixtureCluster& c, std::string db, uint32_t seed, long first_id)
      : c_(c), db_(std::move(db)), rng_(seed), next_id_(first_id) {}

  void run(int count, Outcome* out) {
    for (int i = 0; i < count; i++) one(out);
  }

 private:
  // A client on the leader with `db_` open (tries every node in turn).
  bool connect() {
    for (int round = 0; round < 400; round++) {
      const unsigned node = unsigned(rng_() % c_.size());
      std::unique_ptr<Client> cl = c_.client(node);
      if (cl) {
        Result<uint32_t> d = cl->open(db_);
        if (d.ok()) {
          client_ = std::move(cl);
          db_id_ = d.value();
          return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }

  std::string statement() {
    const std::string k = std::to_string(rng_() % 300);
    switch (rng_() % 7) {
      case 0: case 1:
        return "INSERT OR REPLACE INTO items(k, v, n) VALUES(" + k + ", randomblob(" +
               std::to_string(10 + rng_() % 2000) + "), 0)";
      case 2:
        return "UPDATE items SET n = n + 1 WHERE k % 7 = " + std::to_string(rng_() % 7);
      case 3:
        return "DELETE FROM items WHERE k % 11 = " + std::to_string(rng_() % 11);
      case 4:
        return "INSERT INTO items(k, v, n) VALUES(" + std::to_string(1000 + rng_() % 100000) + ", zeroblob(" +
               std::to_string(rng_() % 3000) + "), 1)";
      case 5:  // schema changes inside client transactions
        switch (rng_() % 4) {
          case 0: return "CREATE TABLE IF NOT EXISTS extra_" + std::to_string(rng_() % 4) + "(a, b)";
          case 1: return "DROP TABLE IF EXISTS extra_" + std::to_string(rng_() % 4);
          case 2: return "CREATE INDEX IF NOT EXISTS items_n ON items(n)";
          default: return "DROP INDEX IF EXISTS items_n";
        }
      default:
        return "SELECT count(*), sum(n) FROM items";  // a read inside the transaction
    }
  }

  void one(Outcome* out) {
    const long id = next_id_++;
    const bool rollback = rng_() % 10 == 0;
    std::vector<std::string> stmts;
    for (unsigned i = 0, n = 1 + rng_() % 4; i < n; i++) stmts.push_back(statement());
    if (rng_() % 20 == 0) {  // a large transaction: streamed in pieces past the spill threshold
      stmts.push_back("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<150) "
                      "INSERT OR REPLACE INTO items(k, v, n) SELECT 100000 + i, randomblob(1800), i FROM s");
    }
    stmts.push_back("INSERT INTO ledger(id) VALUES(" + std::to_string(id) + ")");
    if (!client_ && !connect()) {
      out->failed.insert(id);
      return;
    }
    auto step = [&](const std::string& sql) {
      if (sql.rfind("SELECT", 0) == 0) {
        auto rows = client_->query(db_id_, sql);
        if (!rows.ok()) return rows.status();
        std::vector<wire::Value> row;
        while (rows.value()->next(&row)) {
        }
        return rows.value()->status();
      }
      return client_->exec(db_id_, sql).status();
    };
    Status s = step("BEGIN");
    for (size_t i = 0; s.ok() && i < stmts.size(); i++) s = step(stmts[i]);
    if (!s.ok()) {  // before COMMIT: nothing of it can have been committed
      out->failed.insert(id);
      if (needs_new_connection(s)) client_.reset();
      else (void)step("ROLLBACK");
      return;
    }
    if (rollback) {
      s = step("ROLLBACK");
      out->failed.insert(id);
      if (!s.ok() && needs_new_connection(s)) client_.reset();
      return;
    }
    s = step("COMMIT");
    if (s.ok()) {
      out->acked.insert(id);
    } else if (s.is_not_leader()) {
      out->failed.insert(id);  // refused before anything was proposed
      client_.reset();
    } else {
      out->ambiguous.insert(id);  // leadership lost or the connection broke: it may have committed
      if (needs_new_connection(s)) client_.reset();
    }
  }

  FixtureCluster& c_;
  std::string db_;
  std::mt19937 rng_;
  long next_id_;
  std::unique_ptr<Client> client_;
  uint32_t db_id_ = 0;
};

void check_outcomes(FixtureCluster& c, const std::vector<std::string>& dbs, std::map<std::string, Outcome>& out) {
  REQUIRE(c.settle());
  for (const auto& db : dbs) {
    CHECK_MESSAGE(c.compare(db, "SELECT k, hex(v), n FROM items ORDER BY k") == "", db);
    CHECK_MESSAGE(c.compare(db, "SELECT id FROM ledger ORDER BY id") == "", db);
    CHECK_MESSAGE(c.compare(db, "SELECT type, name, sql FROM sqlite_schema ORDER BY name") == "", db);
    for (unsigned i = 0; i < c.size(); i++) {
      if (!c.alive(i)) continue;
      const std::set<long> present = ledger_ids(c, i, db);
      const Outcome& o = out[db];
      for (long id : o.acked) REQUIRE_MESSAGE(present.count(id), "acknowledged txn " << id << " missing on node " << i);
      for (long id : o.failed) REQUIRE_MESSAGE(!present.count(id), "failed txn " << id << " present on node " << i);
      for (long id : present) REQUIRE(o.acked.count(id) + o.ambiguous.count(id) == 1);
    }
  }
}

// One phase: a client per database, all at once, `count` transactions each.
void run_phase(FixtureCluster& c, std::vector<std::unique_ptr<TxnClient>>& clients,
               const std::vector<std::string>& dbs, int count, std::map<std::string, Outcome>& out) {
  std::vector<Outcome*> outcomes;
  for (const auto& db : dbs) outcomes.push_back(&out[db]);  // each thread has its own
  c.run_client([&] {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < clients.size(); i++) {
      threads.emplace_back([&, i] { clients[i]->run(count, outcomes[i]); });
    }
    for (auto& t : threads) t.join();
    return 0;
  });
}

void random_workload(unsigned nodes, int phases, int per_phase, uint32_t seed) {
  FixtureCluster::Options opt;
  opt.n = nodes;
  opt.spill_threshold_bytes = 64 * 1024;
  opt.checkpoint_threshold_frames = 300;
  opt.snapshot_threshold = 64;
  opt.snapshot_trailing = 16;
  FixtureCluster c(opt);
  const std::vector<std::string> dbs = {"alpha", "beta", "gamma"};
  const unsigned first = c.wait_leader();
  REQUIRE(first < c.size());
  c.run_client([&] {
    std::unique_ptr<Client> cl = c.client(first);
    for (const auto& db : dbs) {
      auto d = cl->open(db);
      REQUIRE(d.ok());
      REQUIRE(cl->exec(d.value(), "CREATE TABLE items(k INTEGER PRIMARY KEY, v BLOB, n INTEGER)").ok());
      REQUIRE(cl->exec(d.value(), "CREATE TABLE ledger(id INTEGER PRIMARY KEY)").ok());
    }
    return 0;
  });
  std::vector<std::unique_ptr<TxnClient>> clients;
  for (size_t i = 0; i < dbs.size(); i++) {
    clients.push_back(std::make_unique<TxnClient>(c, dbs[i], seed + uint32_t(i), long(i + 1) * 1000000));
  }
  std::map<std::string, Outcome> out;
  std::mt19937 rng(seed);
  for (int phase = 0; phase < phases; phase++) {
    run_phase(c, clients, dbs, per_phase, out);
    check_outcomes(c, dbs, out);
    const unsigned l = c.wait_leader();
    REQUIRE(l < c.size());
    if (phase % 3 == 0) {  // leader change: isolate it until another node leads
      c.isolate(l);
      REQUIRE(c.step_until([&] {
        for (unsigned i = 0; i < c.size(); i++) {
          if (i != l && c.proposer(i).leader_ready()) return true;
        }
        return false;
      }));
      c.heal(l);
    } else if (phase % 3 == 1) {  // a follower misses a phase, then catches up
      const unsigned f = (l + 1 + rng() % (c.size() - 1)) % c.size();
      c.kill(f);
      run_phase(c, clients, dbs, per_phase / 2, out);
      c.revive(f);
    }
  }
  check_outcomes(c, dbs, out);
  size_t acked = 0, ambiguous = 0;
  for (auto& [db, o] : out) {
    acked += o.acked.size();
    ambiguous += o.ambiguous.size();
  }
  MESSAGE(nodes << " nodes through the gateway: " << acked << " acknowledged transactions checked, " << ambiguous
                << " ambiguous");
  CHECK(acked > size_t(phases * per_phase) * dbs.size() / 2);
}

// Opens "app" on `cl` and runs `create` there; the database's id.
uint32_t open_with_table(FixtureCluster& c, Client& cl, const std::string& create) {
  return c.run_client([&] {
    auto db = cl.open("app");
    REQUIRE(db.ok());
    REQUIRE(cl.exec(db.value(), create).ok());
    return db.value();
  });
}

}  // namespace

TEST_CASE("gateway on the fixture: random workload on 3 nodes stays identical, no acknowledged write lost") {
  random_workload(3, 6, 40, 7);
}

TEST_CASE("gateway on the fixture: random workload on 5 nodes stays identical, no acknowledged write lost") {
  random_workload(5, 4, 40, 19);
}

TEST_CASE("gateway on the fixture: a leader lost in the middle of a streamed client transaction") {
  FixtureCluster::Options opt;
  opt.spill_threshold_bytes = 32 * 1024;
  FixtureCluster c(opt);
  const unsigned l = c.wait_leader();
  REQUIRE(l < c.size());
  std::unique_ptr<Client> cl = c.client(l);
  const uint32_t d = open_with_table(c, *cl, "CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB)");
  REQUIRE(c.settle());
  // BEGIN and 300 rows of 2 KB: past the spill threshold the writer streams
  // pieces of the open transaction to the followers.
  auto txn = c.start_client([&] {
    Status s = cl->exec(d, "BEGIN").status();
    if (s.ok()) s = cl->exec(d, "PRAGMA cache_size=10").status();
    for (int i = 0; s.ok() && i < 300; i++) s = cl->exec(d, "INSERT INTO big(v) VALUES(randomblob(2000))").status();
    if (s.ok()) s = cl->exec(d, "COMMIT").status();
    return s;
  });
  REQUIRE(c.step_until([&] {
    for (unsigned i = 0; i < c.size(); i++) {
      if (i != l && (c.vfs(i).find("app") == nullptr || c.vfs(i).find("app")->pending_txn() == 0)) return false;
    }
    return true;
  }));
  c.isolate(l);
  unsigned nl = c.size();
  REQUIRE(c.step_until([&] {
    for (unsigned i = 0; i < c.size(); i++) {
      if (i != l && c.proposer(i).leader_ready()) nl = i;
    }
    return nl < c.size();
  }));
  // The new leader drops the orphaned pieces everywhere it reaches.
  REQUIRE(c.step_until([&] {
    for (unsigned i = 0; i < c.size(); i++) {
      if (i != l && c.vfs(i).find("app")->pending_txn() != 0) return false;
    }
    return true;
  }));
  Status after = c.run_client([&] {
    std::unique_ptr<Client> other = c.client(nl);
    auto db = other->open("app");
    if (!db.ok()) return db.status();
    return other->exec(db.value(), "INSERT INTO big(v) VALUES('after')").status();
  });
  REQUIRE_MESSAGE(after.ok(), after.to_string());
  c.heal(l);
  c.wait_for(txn);
  const Status s = txn.get();
  CHECK_MESSAGE(!s.ok(), "the old leader's transaction cannot have committed");
  MESSAGE("the old leader's client was told: " << s.to_string());
  REQUIRE(c.settle());
  CHECK(c.compare("app", "SELECT id, hex(v) FROM big ORDER BY id") == "");
  for (unsigned i = 0; i < c.size(); i++) {
    CHECK(c.query(i, "app", "SELECT group_concat(v) FROM big") == "after");
    CHECK(c.vfs(i).find("app")->pending_txn() == 0);
  }
}

TEST_CASE("gateway on the fixture: a follower that fell behind catches up by snapshot") {
  FixtureCluster::Options opt;
  opt.snapshot_threshold = 16;
  opt.snapshot_trailing = 4;
  FixtureCluster c(opt);
  const unsigned l = c.wait_leader();
  REQUIRE(l < c.size());
  std::unique_ptr<Client> cl = c.client(l);
  const uint32_t d = open_with_table(c, *cl, "CREATE TABLE t(x, y)");
  REQUIRE(c.settle());
  const unsigned f = (l + 1) % c.size();
  c.kill(f);
  const Status s = c.run_client([&] {
    for (int i = 0; i < 120; i++) {
      Status st = cl->exec(d, "INSERT INTO t VALUES(?, randomblob(700))", {wire::Value::Integer(i)}).status();
      if (!st.ok()) return st;
    }
    return Status::Ok();
  });
  REQUIRE_MESSAGE(s.ok(), s.to_string());
  CHECK(c.proposer(l).fsm().snapshots_taken() > 0);
  c.revive(f);
  REQUIRE(c.settle());
  CHECK(c.proposer(f).fsm().snapshots_restored() >= 1);
  CHECK(c.compare("app", "SELECT x, hex(y) FROM t ORDER BY x") == "");
  // Reads through the gateway see it all, and ordinary commits follow.
  const std::string rows = c.run_client([&] {
    REQUIRE(cl->exec(d, "DELETE FROM t WHERE x < 60").ok());
    auto q = cl->query(d, "SELECT count(*), min(x) FROM t");
    REQUIRE(q.ok());
    std::vector<wire::Value> row;
    REQUIRE(q.value()->next(&row));
    return std::to_string(row.at(0).integer) + "," + std::to_string(row.at(1).integer);
  });
  CHECK(rows == "60,60");
  REQUIRE(c.settle());
  CHECK(c.compare("app", "SELECT x, hex(y) FROM t ORDER BY x") == "");
}
