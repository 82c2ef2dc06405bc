// Hostile SQL through the wire protocol: each case here crashed, stalled or
// bricked a node before the client policy and statement budgets existed
// (docs/wire-protocol.md "What client SQL may do"). Every case checks the
// reproducer now gets a clear error, the leader stays up and keeps its
// leadership, and the cluster is still writable.
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "hostile/hostile_run.h"
#include "support/process_cluster.h"
#include "wire.h"

using namespace sqraft;
using test::ProcessCluster;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Elections won so far, counted from the nodes' logs.
size_t elections(const ProcessCluster& c) {
  const std::string logs = c.logs();
  size_t n = 0;
  for (size_t pos = logs.find("leader in term"); pos != std::string::npos; pos = logs.find("leader in term", pos + 1)) n++;
  return n;
}

// A /proc/PID/status field ("Threads", "VmRSS") as a number.
uint64_t proc_status(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1));
  }
  return 0;
}

// A fresh client of the leader writes and reads.
void check_writable(ProcessCluster& c) {
  auto cl = c.leader_client();
  REQUIRE_MESSAGE(cl.ok(), cl.status().to_string());
  auto db = cl.value()->open("health");
  REQUIRE_MESSAGE(db.ok(), db.status().to_string() << c.logs());
  REQUIRE(cl.value()->exec(db.value(), "CREATE TABLE IF NOT EXISTS h(x)").ok());
  auto w = cl.value()->exec(db.value(), "INSERT INTO h VALUES(1)");
  REQUIRE_MESSAGE(w.ok(), w.status().to_string());
  auto rows = cl.value()->query(db.value(), "SELECT count(*) FROM h");
  REQUIRE(rows.ok());
  std::vector<wire::Value> row;
  CHECK(rows.value()->next(&row));
}

// Runs `sql` as EXEC_SQL and returns its status.
Status exec(Client& cl, uint32_t db, const std::string& sql) { return cl.exec(db, sql).status(); }

// Runs `sql` as QUERY_SQL and reads every row; returns the status.
Status query_all(Client& cl, uint32_t db, const std::string& sql, std::vector<std::vector<wire::Value>>* out = nullptr) {
  auto rows = cl.query(db, sql);
  if (!rows.ok()) return rows.status();
  std::vector<wire::Value> row;
  while (rows.value()->next(&row)) {
    if (out) out->push_back(row);
  }
  return rows.value()->status();
}

// A query that never ends by itself.
const char* const kForever = "WITH RECURSIVE c(x) AS (VALUES(1) UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c";

// Starts every node of `c` and returns the index of the elected leader.
unsigned start_with_leader(ProcessCluster& c) {
  Status started = c.start_all();
  REQUIRE_MESSAGE(started.ok(), started.to_string() << "\n" << c.logs());
  const unsigned leader = c.leader_index();
  REQUIRE(leader < 3);
  return leader;
}

bool mentions(const Status& s, const std::string& what) { return s.message().find(what) != std::string::npos; }

}  // namespace

TEST_CASE("hostile SQL: crashes, bricks and corruption become clear errors") {
  ProcessCluster c({});
  const unsigned leader = start_with_leader(c);
  const size_t elections_before = elections(c);
  auto cl = c.leader_client();
  REQUIRE(cl.ok());
  Client& client = *cl.value();
  auto db = client.open("hostile");
  REQUIRE(db.ok());
  const uint32_t d = db.value();

  // 1. A cached EXPLAIN outliving DROP TABLE read freed memory and killed the
  //    leader (then each new leader in turn).
  for (const char* explain : {"EXPLAIN INSERT INTO t VALUES(1)", "EXPLAIN INSERT INTO t VALUES(1) ON CONFLICT DO NOTHING"}) {
    CAPTURE(explain);
    REQUIRE(exec(client, d, "CREATE TABLE t(a)").ok());
    CHECK(exec(client, d, explain).ok());
    CHECK(query_all(client, d, explain).ok());
    REQUIRE(exec(client, d, "DROP TABLE t").ok());
    Status again = exec(client, d, explain);
    CHECK_MESSAGE(mentions(again, "no such table"), again.to_string());
    again = query_all(client, d, explain);
    CHECK_MESSAGE(mentions(again, "no such table"), again.to_string());
    REQUIRE(c.running(leader));
  }

  // 2. A process-wide heap limit made every later OPEN fail.
  for (const char* sql : {"PRAGMA hard_heap_limit=2048", "PRAGMA soft_heap_limit=2048", "PRAGMA main.hard_heap_limit(2048)"}) {
    CAPTURE(sql);
    Status s = query_all(client, d, sql);
    CHECK((s.code() & 0xff) == SQLITE_AUTH);
    CHECK_MESSAGE(mentions(s, "process-wide"), s.to_string());
  }
  CHECK_FALSE(query_all(client, d, "SELECT * FROM pragma_hard_heap_limit(2048)").ok());
  {
    std::vector<std::vector<wire::Value>> rows;
    REQUIRE(query_all(client, d, "PRAGMA hard_heap_limit", &rows).ok());  // reading it is fine
    CHECK(rows.at(0).at(0).integer == 0);
  }
  {
    auto other = c.leader_client();
    REQUIRE(other.ok());
    auto fresh = other.value()->open("after-heap-limit");
    REQUIRE_MESSAGE(fresh.ok(), fresh.status().to_string());
    CHECK(other.value()->exec(fresh.value(), "CREATE TABLE x(y)").ok());
  }

  // 5. TEXT with a NUL inside: the value ends at the NUL and the columns
  //    after it decode correctly (a Go client panicked).
  {
    std::vector<std::vector<wire::Value>> rows;
    Status s = query_all(client, d, "SELECT 'abcdefgh'||char(0)||'ijklmnopqrstuvwxyz', 2, 'after'", &rows);
    REQUIRE_MESSAGE(s.ok(), s.to_string());
    REQUIRE(rows.size() == 1);
    REQUIRE(rows[0].size() == 3);
    CHECK(rows[0][0].bytes == "abcdefgh");
    CHECK(rows[0][1].integer == 2);
    CHECK(rows[0][2].bytes == "after");
    // A text parameter with a NUL cannot be sent as text: the client says
    // so (before, the server read the rest of it as the next parameters);
    // as a blob it is stored whole.
    REQUIRE(exec(client, d, "CREATE TABLE nul(v)").ok());
    auto bad = client.exec(d, "INSERT INTO nul VALUES(?)", {wire::Value::Text(std::string("ab\0cd", 5))});
    CHECK_MESSAGE(mentions(bad.status(), "NUL byte"), bad.status().to_string());
    REQUIRE(client.exec(d, "INSERT INTO nul VALUES(?)", {wire::Value::Blob(std::string("ab\0cd", 5))}).ok());
    rows.clear();
    REQUIRE(query_all(client, d, "SELECT length(v), typeof(v) FROM nul", &rows).ok());
    CHECK(rows.at(0).at(0).integer == 5);
    CHECK(rows.at(0).at(1).bytes == "blob");
  }

  // 7. writable_schema let a client corrupt the schema on every node.
  REQUIRE(exec(client, d, "CREATE TABLE keep(k)").ok());
  REQUIRE(exec(client, d, "INSERT INTO keep VALUES(42)").ok());
  {
    Status s = exec(client, d, "PRAGMA writable_schema=ON");
    CHECK((s.code() & 0xff) == SQLITE_AUTH);
    CHECK_MESSAGE(mentions(s, "corrupt"), s.to_string());
    s = exec(client, d, "UPDATE sqlite_master SET sql='garbage' WHERE name='keep'");
    CHECK_FALSE(s.ok());
    s = exec(client, d, "PRAGMA schema_version=1");
    CHECK_FALSE(s.ok());
    s = exec(client, d, "PRAGMA writable_schema=ON; UPDATE sqlite_master SET sql='garbage' WHERE name='keep'");
    CHECK_FALSE(s.ok());
    // The database still opens on a new connection, its rows intact.
    auto other = c.leader_client();
    REQUIRE(other.ok());
    auto again = other.value()->open("hostile");
    REQUIRE(again.ok());
    std::vector<std::vector<wire::Value>> rows;
    REQUIRE(query_all(*other.value(), again.value(), "SELECT k FROM keep", &rows).ok());
    REQUIRE(rows.size() == 1);
    CHECK(rows[0][0].integer == 42);
    rows.clear();
    REQUIRE(query_all(*other.value(), again.value(), "PRAGMA integrity_check", &rows).ok());
    CHECK(rows.at(0).at(0).bytes == "ok");
  }

  // The policy: ATTACH, unknown pragmas and checkpoints are refused with
  // reasons; settings sqraft manages are accepted and ignored; database
  // settings work.
  {
    Status s = exec(client, d, "ATTACH 'elsewhere.db' AS e");
    CHECK((s.code() & 0xff) == SQLITE_AUTH);
    CHECK_MESSAGE(mentions(s, "ATTACH"), s.to_string());
    s = exec(client, d, "PRAGMA wal_checkpoint(TRUNCATE)");
    CHECK((s.code() & 0xff) == SQLITE_AUTH);
    s = exec(client, d, "PRAGMA no_such_pragma");
    CHECK_MESSAGE(mentions(s, "not allowed"), s.to_string());
    CHECK(exec(client, d, "PRAGMA busy_timeout=1").ok());
    CHECK(exec(client, d, "PRAGMA synchronous=FULL").ok());
    CHECK(exec(client, d, "PRAGMA journal_mode=WAL").ok());
    CHECK(exec(client, d, "PRAGMA foreign_keys=ON").ok());
    CHECK(exec(client, d, "PRAGMA user_version=7").ok());
    std::vector<std::vector<wire::Value>> rows;
    REQUIRE(query_all(client, d, "PRAGMA user_version", &rows).ok());
    CHECK(rows.at(0).at(0).integer == 7);
    s = exec(client, d, "SELECT load_extension('/tmp/x.so')");
    CHECK_FALSE(s.ok());
    s = exec(client, d, "CREATE VIRTUAL TABLE v USING dbstat");
    CHECK_MESSAGE(mentions(s, "not allowed"), s.to_string());
    CHECK(exec(client, d, "CREATE VIRTUAL TABLE docs USING fts5(body)").ok());
    CHECK(exec(client, d, "INSERT INTO docs VALUES('hello world')").ok());
    s = exec(client, d, "INSERT INTO docs_data VALUES(99, x'00')");  // shadow table: DEFENSIVE
    CHECK_FALSE(s.ok());
    // VACUUM attaches a scratch database internally: it still works; VACUUM
    // INTO would write a file on the node.
    s = exec(client, d, "VACUUM");
    CHECK_MESSAGE(s.ok(), s.to_string());
    s = exec(client, d, "VACUUM INTO '/tmp/sqraft-hostile-vacuum-into.db'");
    CHECK_MESSAGE(mentions(s, "VACUUM INTO is not allowed"), s.to_string());
    CHECK(exec(client, d, "ANALYZE").ok());
    CHECK(exec(client, d, "CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1)").ok());
    rows.clear();
    REQUIRE(query_all(client, d, "SELECT name FROM pragma_table_info('keep')", &rows).ok());
    CHECK(rows.at(0).at(0).bytes == "k");
  }

  // 4. One huge function call ran for seconds inside a single VM step of a
  //    read on the loop thread: heartbeats stopped and leadership moved.
  //    Such calls now run on the reader pool (only statements whose steps
  //    have a bounded cost run on the loop thread), and values are capped at
  //    --value-bytes-max. Run three times: from the second run on, a
  //    statement may be answered on the loop thread.
  {
    // Each call is a legitimate multi-second statement (seconds per call on
    // a busy CI machine): this client waits for it longer than the 5 s the
    // cluster's test clients do.
    auto patient = Client::connect_node(client.address(), 120000);
    REQUIRE(patient.ok());
    Client& slow = *patient.value();
    auto slow_db = slow.open("hostile");
    REQUIRE(slow_db.ok());
    const auto t0 = Clock::now();
    for (int i = 0; i < 3; i++) {
      std::vector<std::vector<wire::Value>> rows;
      Status s = query_all(slow, slow_db.value(), "SELECT length(printf('%.*c',900000000,'x'))", &rows);
      CHECK_MESSAGE((s.ok() || (s.code() & 0xff) == SQLITE_TOOBIG), s.to_string());
      if (s.ok()) CHECK(rows.at(0).at(0).type == wire::kNull);  // SQLite's printf: NULL past the limit
    }
    Status s = query_all(client, d, "SELECT length(zeroblob(2000000000))");
    CHECK((s.code() & 0xff) == SQLITE_TOOBIG);
    s = query_all(client, d, "SELECT length(replace(printf('%.*c',30000000,'x'),'x','yyyy'))");
    CHECK((s.code() & 0xff) == SQLITE_TOOBIG);
    CHECK(seconds_since(t0) < 120);  // they end (bounded, not fast)
    // A value under the limit still works, off the loop thread.
    std::vector<std::vector<wire::Value>> rows;
    s = query_all(client, d, "SELECT length(printf('%.*c',1000000,'x'))", &rows);
    REQUIRE_MESSAGE(s.ok(), s.to_string());
    CHECK(rows.at(0).at(0).integer == 1000000);
  }

  CHECK(c.leader_index() == leader);
  CHECK(elections(c) == elections_before);
  check_writable(c);
}

TEST_CASE("hostile SQL: runaway statements stop at their deadline, on INTERRUPT and on SIGTERM") {
  ProcessCluster::Options o;
  o.extra_args = {"--statement-timeout-ms", "1500"};
  ProcessCluster c(o);
  (void)start_with_leader(c);  // the leader is found again by each client
  const size_t elections_before = elections(c);
  auto cl = c.leader_client();
  REQUIRE(cl.ok());
  auto db = cl.value()->open("runaway");
  REQUIRE(db.ok());
  const std::string forever = kForever;

  // 3. A runaway read is stopped at the deadline (it ran forever).
  auto t0 = Clock::now();
  Status s = query_all(*cl.value(), db.value(), forever);
  CHECK((s.code() & 0xff) == SQLITE_INTERRUPT);
  CHECK_MESSAGE(mentions(s, "1500 ms"), s.to_string());
  CHECK(seconds_since(t0) < 5);

  // A runaway write, inside a transaction and alone.
  REQUIRE(cl.value()->exec(db.value(), "CREATE TABLE w(x)").ok());
  t0 = Clock::now();
  s = cl.value()->exec(db.value(), "INSERT INTO w " + forever.substr(0, forever.find(" SELECT count")) +
                                       " SELECT x FROM c").status();
  CHECK((s.code() & 0xff) == SQLITE_INTERRUPT);
  CHECK(seconds_since(t0) < 5);
  {
    std::vector<std::vector<wire::Value>> rows;
    REQUIRE(query_all(*cl.value(), db.value(), "SELECT count(*) FROM w", &rows).ok());
    CHECK(rows.at(0).at(0).integer == 0);  // nothing of it remains
  }

  // INTERRUPT before the first batch stops the query now, not at the deadline.
  {
    wire::BodyWriter q;
    q.u64(db.value());
    q.text(forever);
    q.params({}, 0);
    wire::BodyWriter intr;
    intr.u64(db.value());
    t0 = Clock::now();
    REQUIRE(cl.value()->send_raw(q.finish(wire::kQuerySql)).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    REQUIRE(cl.value()->send_raw(intr.finish(wire::kInterrupt)).ok());
    bool empty = false;
    for (int i = 0; i < 4 && !empty; i++) {
      auto m = cl.value()->receive();
      REQUIRE(m.ok());
      empty = m->first.type == wire::kEmpty;
    }
    CHECK(empty);
    CHECK(seconds_since(t0) < 1.0);
    std::vector<std::vector<wire::Value>> rows;
    REQUIRE(query_all(*cl.value(), db.value(), "SELECT 1", &rows).ok());  // the connection goes on
  }
  // INTERRUPT of a query that writes (INSERT ... RETURNING) stops the
  // stream, not the write: inside a transaction the transaction goes on and
  // commits everything; outside one every row is inserted.
  REQUIRE(cl.value()->exec(db.value(), "CREATE TABLE r(x)").ok());
  const std::string returning =
      "WITH RECURSIVE s(x) AS (VALUES(1) UNION ALL SELECT x+1 FROM s WHERE x < 20000) "
      "INSERT INTO r SELECT x FROM s RETURNING x";
  for (const bool in_txn : {true, false}) {
    CAPTURE(in_txn);
    if (in_txn) REQUIRE(cl.value()->exec(db.value(), "BEGIN").ok());
    wire::BodyWriter q;
    q.u64(db.value());
    q.text(returning);
    q.params({}, 0);
    std::vector<uint8_t> both = q.finish(wire::kQuerySql);
    wire::BodyWriter intr;
    intr.u64(db.value());
    const std::vector<uint8_t> second = intr.finish(wire::kInterrupt);
    both.insert(both.end(), second.begin(), second.end());
    REQUIRE(cl.value()->send_raw(both).ok());
    bool empty = false;
    for (int i = 0; i < 100 && !empty; i++) {
      auto m = cl.value()->receive();
      REQUIRE(m.ok());
      CHECK(m->first.type != wire::kFailure);
      empty = m->first.type == wire::kEmpty;
    }
    REQUIRE(empty);
    if (in_txn) {
      auto commit = cl.value()->exec(db.value(), "COMMIT");
      CHECK_MESSAGE(commit.ok(), commit.status().to_string());
    }
    std::vector<std::vector<wire::Value>> rows;
    REQUIRE(query_all(*cl.value(), db.value(), "SELECT count(*) FROM r", &rows).ok());
    CHECK(rows.at(0).at(0).integer == (in_txn ? 20000 : 40000));
  }
  CHECK(elections(c) == elections_before);
  check_writable(c);
}

TEST_CASE("hostile SQL: SIGTERM stops a node running four runaway queries within seconds") {
  ProcessCluster c({});
  const unsigned leader = start_with_leader(c);
  const std::string forever = kForever;
  std::vector<std::thread> runners;
  std::atomic<int> started{0};
  for (int i = 0; i < 4; i++) {
    runners.emplace_back([&] {
      auto cl = Client::connect_node(c.address(leader), 60000);
      if (!cl.ok()) return;
      auto db = cl.value()->open("forever");
      if (!db.ok()) return;
      started++;
      (void)query_all(*cl.value(), db.value(), forever);
    });
  }
  for (int i = 0; i < 200 && started < 4; i++) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(started == 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto t0 = Clock::now();
  Status s = c.stop(leader);
  const double took = seconds_since(t0);
  CHECK_MESSAGE(s.ok(), s.to_string());
  CHECK_MESSAGE(took < 5.0, "stopping took " << took << " s");
  MESSAGE("SIGTERM to exit with four runaway queries running: " << took << " s");
  for (auto& t : runners) t.join();
}

TEST_CASE("hostile SQL: a vanished client's write stops, and databases do not grow threads or connections") {
  ProcessCluster::Options o;
  o.extra_args = {"--db-idle-close-ms", "300", "--max-databases", "400", "--write-threads", "4",
                  "--max-connections", "24"};
  ProcessCluster c(o);
  const unsigned leader = start_with_leader(c);

  // 8. A write whose client vanished held the database's writer.
  {
    auto cl = Client::connect_node(c.address(leader), 5000);
    REQUIRE(cl.ok());
    auto db = cl.value()->open("vanish");
    REQUIRE(db.ok());
    REQUIRE(cl.value()->exec(db.value(), "CREATE TABLE big(x)").ok());
    wire::BodyWriter w;
    w.u64(db.value());
    w.text("INSERT INTO big WITH RECURSIVE c(x) AS (VALUES(1) UNION ALL SELECT x+1 FROM c) SELECT x FROM c");
    w.params({}, 0);
    REQUIRE(cl.value()->send_raw(w.finish(wire::kExecSql)).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cl.value().reset();  // gone, without a word
    auto other = c.leader_client();
    REQUIRE(other.ok());
    auto db2 = other.value()->open("vanish");
    REQUIRE(db2.ok());
    const auto t0 = Clock::now();
    auto r = other.value()->exec(db2.value(), "INSERT INTO big VALUES(-1)");
    CHECK_MESSAGE(r.ok(), r.status().to_string());
    CHECK(seconds_since(t0) < 3.0);  // not the 60 s statement timeout
    std::vector<std::vector<wire::Value>> rows;
    REQUIRE(query_all(*other.value(), db2.value(), "SELECT count(*) FROM big", &rows).ok());
    CHECK(rows.at(0).at(0).integer == 1);
  }

  // 6. One writer thread per database ever written, never released.
  const uint64_t threads_before = proc_status(c.pid(leader), "Threads");
  const uint64_t rss_before_kb = proc_status(c.pid(leader), "VmRSS");
  {
    auto cl = c.leader_client();
    REQUIRE(cl.ok());
    for (int i = 0; i < 120; i++) {
      // A connection may hold 16 databases: reconnect every 16.
      if (i % 16 == 0) {
        cl = c.leader_client();
        REQUIRE(cl.ok());
      }
      auto db = cl.value()->open("many-" + std::to_string(i));
      REQUIRE_MESSAGE(db.ok(), db.status().to_string());
      REQUIRE(cl.value()->exec(db.value(), "CREATE TABLE t(x); INSERT INTO t VALUES(1)").ok());
    }
  }
  const uint64_t threads_after = proc_status(c.pid(leader), "Threads");
  CHECK_MESSAGE(threads_after <= threads_before + 2, threads_before << " threads before, " << threads_after << " after");
  std::this_thread::sleep_for(std::chrono::milliseconds(800));  // past --db-idle-close-ms
  const uint64_t rss_after_kb = proc_status(c.pid(leader), "VmRSS");
  MESSAGE("leader after 120 databases written and their writers idle-closed: " << threads_after << " threads ("
          << threads_before << " before), RSS " << rss_after_kb / 1024 << " MiB (" << rss_before_kb / 1024
          << " MiB before): " << (rss_after_kb - std::min(rss_after_kb, rss_before_kb)) / 120 << " KiB per database");

  // Databases per node are bounded: past --max-databases OPEN fails clearly.
  {
    auto cl = c.leader_client();
    REQUIRE(cl.ok());
    Status last;
    for (int i = 0; i < 400 && last.ok(); i++) {
      if (i % 16 == 0) {
        cl = c.leader_client();
        REQUIRE(cl.ok());
      }
      auto db = cl.value()->open("limit-" + std::to_string(i));
      if (!db.ok()) {
        last = db.status();
        break;
      }
      last = cl.value()->exec(db.value(), "CREATE TABLE IF NOT EXISTS t(x)").status();
    }
    CHECK((last.code() & 0xff) == SQLITE_CANTOPEN);
    CHECK_MESSAGE(mentions(last, "--max-databases"), last.to_string());
    // Existing databases still open and write.
    cl = c.leader_client();
    REQUIRE(cl.ok());
    auto db = cl.value()->open("many-3");
    REQUIRE(db.ok());
    CHECK(cl.value()->exec(db.value(), "INSERT INTO t VALUES(2)").ok());
  }
  // Connections per node are bounded: the one past --max-connections gets
  // FAILURE 5 saying why, then the socket closes; the others go on.
  {
    std::vector<std::unique_ptr<Client>> held;
    Result<std::pair<wire::Header, std::vector<uint8_t>>> refused = Status::Internal("no refusal");
    for (int i = 0; i < 64 && !refused.ok(); i++) {
      auto cl = Client::connect_node(c.address(leader), 5000);
      REQUIRE_MESSAGE(cl.ok(), "connection " << i << ": " << cl.status().to_string() << c.logs());
      wire::BodyWriter w;
      w.u64(0);
      REQUIRE(cl.value()->send_raw(w.finish(wire::kLeader)).ok());
      auto m = cl.value()->receive();
      REQUIRE_MESSAGE(m.ok(), "connection " << i << ": " << m.status().to_string());
      if (m->first.type == wire::kFailure) {
        refused = std::move(m);
      } else {
        held.push_back(std::move(cl).value());
      }
    }
    REQUIRE(refused.ok());
    wire::BodyReader rd(refused->second);
    uint64_t code = 0;
    std::string message;
    REQUIRE(rd.u64(&code));
    REQUIRE(rd.text(&message));
    CHECK(code == SQLITE_BUSY);
    CHECK_MESSAGE(message.find("--max-connections") != std::string::npos, message);
    CHECK(held.size() >= 20);
    CHECK(held.size() < 32);
    wire::BodyWriter w;
    w.u64(0);
    REQUIRE(held.front()->send_raw(w.finish(wire::kLeader)).ok());
    CHECK(held.front()->receive().ok());
  }
  // Idle writers closed their connections (the log says so at debug level).
  CHECK(c.logs().find("closed its idle connection") != std::string::npos);
}

TEST_CASE("hostile SQL: a short run of random and adversarial SQL leaves every node up and every database identical") {
  test::HostileOptions o;
  o.duration_s = 20;
  o.seed = 20261202;
  o.clients = 4;
  const test::HostileReport r = test::run_hostile(o);
  MESSAGE(r.summary());
  CHECK(r.statements > 200);
  CHECK_MESSAGE(r.ok(), r.summary());
  for (const test::NodeFigures& n : r.nodes) {
    CHECK_FALSE(n.crashed);
    CHECK(n.peak_threads < 64);
  }
  CHECK(r.writable_at_end);
  CHECK(r.divergent == 0);
}
