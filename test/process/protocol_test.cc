// The wire protocol against hostile and careless clients: malformed,
// truncated and oversized messages, unknown types and schemas, invalid
// UTF-8, wrong parameter types, thousands of connections, clients vanishing
// mid-stream. The node answers with errors or closes that connection, never
// crashes, and other clients are unaffected. Also: concurrent writers queue
// instead of failing, and explicit transactions hold the writer.
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <thread>

#include "support/process_cluster.h"
#include "wire.h"

using namespace sqraft;
using test::ProcessCluster;

namespace {

struct Reply {
  bool ok = false;  // a message arrived
  wire::Header header;
  uint64_t code = 0;
  std::string message;
};

Reply read_reply(Client& c) {
  Reply r;
  auto m = c.receive();
  if (!m.ok()) return r;
  r.ok = true;
  r.header = m->first;
  if (r.header.type == wire::kFailure) {
    wire::BodyReader rd(m->second);
    rd.u64(&r.code);
    rd.text(&r.message);
  }
  return r;
}

std::vector<uint8_t> message(uint8_t type, const wire::BodyWriter& body, uint8_t schema = 0) {
  return body.finish(type, schema);
}

// A raw (handshake done) connection to node i.
std::unique_ptr<Client> raw(ProcessCluster& c, unsigned i) {
  auto cl = Client::connect_node(c.address(i), 5000);
  REQUIRE(cl.ok());
  return std::move(cl).value();
}

// The cluster still works: a fresh client writes and reads (retrying, as
// clients do, if leadership moves meanwhile).
void check_healthy(ProcessCluster& c) {
  for (int attempt = 0; attempt < 2; attempt++) {
    auto cl = c.leader_client();
    if (!cl.ok()) continue;
    auto db = cl.value()->open("health");
    if (!db.ok() && (db.status().is_leadership_lost() || db.status().is_not_leader())) continue;
    break;
  }
  auto cl = c.leader_client();
  REQUIRE_MESSAGE(cl.ok(), cl.status().to_string());
  auto db = cl.value()->open("health");
  REQUIRE_MESSAGE(db.ok(), db.status().to_string() << c.logs());
  REQUIRE(cl.value()->exec(db.value(), "CREATE TABLE IF NOT EXISTS h(x)").ok());
  REQUIRE(cl.value()->exec(db.value(), "INSERT INTO h VALUES(1)").ok());
  auto rows = cl.value()->query(db.value(), "SELECT count(*) FROM h");
  REQUIRE(rows.ok());
  std::vector<wire::Value> row;
  CHECK(rows.value()->next(&row));
}

// The 8-byte marker that ends a ROWS body.
uint64_t rows_marker(const std::vector<uint8_t>& body) {
  uint64_t m = 0;
  if (body.size() >= 8) std::memcpy(&m, body.data() + body.size() - 8, 8);
  return m;
}

// Two clients of the leader, each with `db` open.
struct TwoClients {
  Result<std::unique_ptr<Client>> a, b;
  Result<uint32_t> da, dbb;
  TwoClients(ProcessCluster& c, const std::string& db)
      : a(c.leader_client()), b(c.leader_client()), da(Status::Internal("")), dbb(Status::Internal("")) {
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    da = a.value()->open(db);
    dbb = b.value()->open(db);
    REQUIRE(da.ok());
    REQUIRE(dbb.ok());
  }
};

}  // namespace

TEST_CASE("protocol: malformed requests get errors and the connection goes on") {
  ProcessCluster c({});
  REQUIRE(c.start_all().ok());
  const unsigned l = c.leader_index();
  REQUIRE(l < 3);
  auto cl = raw(c, l);

  // Unknown request type.
  wire::BodyWriter empty;
  empty.u64(0);
  REQUIRE(cl->send_raw(message(200, empty)).ok());
  Reply r = read_reply(*cl);
  CHECK(r.header.type == wire::kFailure);
  CHECK(r.code == wire::kErrProto);
  CHECK(r.message.find("unknown request type 200") != std::string::npos);

  // Unknown schema.
  REQUIRE(cl->send_raw(message(wire::kLeader, empty, 9)).ok());
  r = read_reply(*cl);
  CHECK(r.code == wire::kErrProto);
  CHECK(r.message.find("schema") != std::string::npos);

  // A body too short for its fields.
  wire::BodyWriter short_body;
  short_body.u64(0);
  REQUIRE(cl->send_raw(message(wire::kOpen, short_body)).ok());
  r = read_reply(*cl);
  CHECK(r.code == wire::kErrProto);

  // SQL before any database is open: code 12.
  wire::BodyWriter sql;
  sql.u64(0);
  sql.text("SELECT 1");
  REQUIRE(cl->send_raw(message(wire::kQuerySql, sql)).ok());
  r = read_reply(*cl);
  CHECK(r.code == SQLITE_NOTFOUND);

  // Open a database, then invalid UTF-8, bad parameter types and counts.
  auto db = cl->open("proto");
  REQUIRE(db.ok());
  REQUIRE(cl->exec(db.value(), "CREATE TABLE t(x)").ok());
  wire::BodyWriter bad_utf8;
  bad_utf8.u64(db.value());
  bad_utf8.text("SELECT '\xff\xfe'");
  REQUIRE(cl->send_raw(message(wire::kExecSql, bad_utf8)).ok());
  r = read_reply(*cl);
  CHECK(r.header.type == wire::kFailure);
  CHECK(r.message.find("UTF-8") != std::string::npos);

  wire::BodyWriter bad_type;
  bad_type.u64(db.value());
  bad_type.text("INSERT INTO t VALUES(?)");
  bad_type.u8(1);   // one parameter
  bad_type.u8(7);   // of type 7: no such type
  bad_type.pad();
  bad_type.u64(0);
  REQUIRE(cl->send_raw(message(wire::kExecSql, bad_type)).ok());
  r = read_reply(*cl);
  CHECK(r.header.type == wire::kFailure);
  CHECK(r.message.find("unknown type 7") != std::string::npos);

  wire::BodyWriter too_many;
  too_many.u64(db.value());
  too_many.text("INSERT INTO t VALUES(?)");
  too_many.u8(200);  // claims 200 parameters
  too_many.pad();
  REQUIRE(cl->send_raw(message(wire::kExecSql, too_many)).ok());
  r = read_reply(*cl);
  CHECK(r.header.type == wire::kFailure);

  // More parameters than placeholders.
  auto extra = cl->exec(db.value(), "INSERT INTO t VALUES(?)", {wire::Value::Integer(1), wire::Value::Integer(2)});
  CHECK((extra.status().code() & 0xff) == SQLITE_RANGE);
  // Wrong SQL.
  auto wrong = cl->exec(db.value(), "INSERT INTO nowhere VALUES(1)");
  CHECK(wrong.status().message().find("no such table") != std::string::npos);
  // A name that is not valid UTF-8.
  wire::BodyWriter open;
  open.text("\xc3\x28");
  open.u64(6);
  open.text("");
  REQUIRE(cl->send_raw(message(wire::kOpen, open)).ok());
  r = read_reply(*cl);
  CHECK(r.header.type == wire::kFailure);

  // After all that, the same connection still works.
  auto ok = cl->exec(db.value(), "INSERT INTO t VALUES(?)", {wire::Value::Text("fine")});
  CHECK(ok.ok());
  check_healthy(c);
}

TEST_CASE("protocol: oversized, truncated and garbage input closes only that connection") {
  ProcessCluster c({});
  REQUIRE(c.start_all().ok());
  const unsigned l = c.leader_index();
  REQUIRE(l < 3);

  {  // A length far beyond the cap: refused before any allocation.
    auto cl = raw(c, l);
    uint8_t header[8];
    wire::encode_header(wire::Header{0xffffffffu, wire::kExecSql, 0, 0}, header);
    REQUIRE(cl->send_raw(std::vector<uint8_t>(header, header + 8)).ok());
    Reply r = read_reply(*cl);
    CHECK(r.header.type == wire::kFailure);
    CHECK(r.message.find("exceeds the limit") != std::string::npos);
    CHECK(!read_reply(*cl).ok);  // then closed
  }
  for (unsigned i = 0; i < 3; i++) {  // Truncated messages, then the client goes away.
    auto cl = raw(c, i);
    wire::BodyWriter body;
    body.u64(0);
    body.text("SELECT 1");
    std::vector<uint8_t> m = body.finish(wire::kQuerySql);
    m.resize(m.size() - 5);
    REQUIRE(cl->send_raw(m).ok());
  }
  for (int round = 0; round < 30; round++) {  // Bad handshakes and random bytes.
    auto addr = c.address(unsigned(round) % 3).substr(1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path + 1, addr.data(), addr.size());
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sun), socklen_t(offsetof(sockaddr_un, sun_path) + 1 + addr.size())) == 0);
    std::string junk(8 + size_t(round) * 37, char(round * 11));
    if (round % 2) std::memcpy(junk.data(), "\x01\0\0\0\0\0\0\0", 8);  // a valid handshake, then junk
    ssize_t n = ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
    (void)n;
    ::close(fd);
  }
  check_healthy(c);
  for (unsigned i = 0; i < 3; i++) {  // clean exits (and, under ASan, no leaks)
    Status st = c.stop(i);
    CHECK_MESSAGE(st.ok(), st.to_string() << c.logs());
  }
}

TEST_CASE("protocol: 10,000 connections opened and dropped, clients vanishing mid-stream") {
  ProcessCluster c({});
  REQUIRE(c.start_all().ok());
  {
    auto cl = c.leader_client();
    REQUIRE(cl.ok());
    auto db = cl.value()->open("big");
    REQUIRE(db.ok());
    REQUIRE(cl.value()->exec(db.value(), "CREATE TABLE t(x, pad)").ok());
    REQUIRE(cl.value()->exec(db.value(), "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<20000) "
                                         "INSERT INTO t SELECT i, hex(randomblob(50)) FROM s").ok());
  }
  for (int i = 0; i < 10000; i++) {
    auto cl = Client::connect_node(c.address(unsigned(i) % 3), 5000);
    REQUIRE_MESSAGE(cl.ok(), i << ": " << cl.status().to_string());
    if (i % 100 == 0) CHECK(cl.value()->leader().ok());
  }
  for (int i = 0; i < 20; i++) {  // read one batch of a large result, then vanish
    auto cl = c.leader_client();
    REQUIRE(cl.ok());
    auto db = cl.value()->open("big");
    REQUIRE(db.ok());
    wire::BodyWriter q;
    q.u64(db.value());
    q.text("SELECT * FROM t");
    q.params({}, 0);
    REQUIRE(cl.value()->send_raw(message(wire::kQuerySql, q)).ok());
    auto first = cl.value()->receive();
    REQUIRE(first.ok());
    CHECK(first->first.type == wire::kRows);
    CHECK(rows_marker(first->second) == wire::kRowsMore);
  }  // no INTERRUPT: the socket just closes mid-stream
  check_healthy(c);
  for (unsigned i = 0; i < 3; i++) CHECK(c.stop(i).ok());
}

TEST_CASE("protocol: a non-leader answers 'not leader' to SQL and membership requests") {
  ProcessCluster c({});
  REQUIRE(c.start_all().ok());
  const unsigned l = c.leader_index();
  const unsigned f = (l + 1) % 3;
  auto cl = raw(c, f);
  auto leader = cl->leader();
  REQUIRE(leader.ok());
  CHECK(leader->address == c.address(l));
  CHECK(cl->open("x").status().code() == 10250);
  CHECK(cl->add(99, "@nowhere").code() == 10250);
  CHECK(cl->transfer(0).code() == 10250);
  CHECK(cl->cluster().ok());   // any node answers CLUSTER
  CHECK(cl->describe().ok());  // and DESCRIBE
}

TEST_CASE("protocol: concurrent writers queue instead of failing; transactions hold the writer") {
  ProcessCluster c({});
  REQUIRE(c.start_all().ok());
  {
    auto cl = c.leader_client();
    REQUIRE(cl.ok());
    auto db = cl.value()->open("q");
    REQUIRE(db.ok());
    REQUIRE(cl.value()->exec(db.value(), "CREATE TABLE t(k INTEGER PRIMARY KEY, who)").ok());
  }
  std::atomic<int> errors{0}, done{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 8; w++) {
    writers.emplace_back([&, w] {
      auto cl = c.leader_client();
      if (!cl.ok()) {
        errors++;
        return;
      }
      auto db = cl.value()->open("q");
      for (int i = 0; i < 100; i++) {
        auto r = cl.value()->exec(db.value(), "INSERT INTO t(who) VALUES(?)", {wire::Value::Integer(w)});
        if (!r.ok()) {
          errors++;
          MESSAGE("writer " << w << ": " << r.status().to_string());
        }
      }
      done++;
    });
  }
  // Meanwhile a client holds an explicit transaction for a while.
  auto tx = c.leader_client();
  REQUIRE(tx.ok());
  auto tdb = tx.value()->open("q");
  REQUIRE(tx.value()->exec(tdb.value(), "BEGIN").ok());
  REQUIRE(tx.value()->exec(tdb.value(), "INSERT INTO t(who) VALUES(-1)").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto rows = tx.value()->query(tdb.value(), "SELECT count(*) FROM t WHERE who = -1");
  REQUIRE(rows.ok());
  std::vector<wire::Value> row;
  REQUIRE(rows.value()->next(&row));
  CHECK(row[0].integer == 1);  // sees its own write
  rows.value().reset();
  REQUIRE(tx.value()->exec(tdb.value(), "COMMIT").ok());
  for (auto& t : writers) t.join();
  CHECK(errors == 0);
  auto cl = c.leader_client();
  auto db = cl.value()->open("q");
  auto count = cl.value()->query(db.value(), "SELECT count(*) FROM t");
  REQUIRE(count.ok());
  REQUIRE(count.value()->next(&row));
  CHECK(row[0].integer == 801);
}

TEST_CASE("protocol: an idle transaction is rolled back after the idle timeout") {
  ProcessCluster::Options o;
  o.extra_args = {"--txn-idle-timeout-ms", "300"};
  ProcessCluster c(o);
  REQUIRE(c.start_all().ok());
  auto a = c.leader_client();
  REQUIRE(a.ok());
  auto adb = a.value()->open("idle");
  REQUIRE(a.value()->exec(adb.value(), "CREATE TABLE t(x)").ok());
  REQUIRE(a.value()->exec(adb.value(), "BEGIN").ok());
  REQUIRE(a.value()->exec(adb.value(), "INSERT INTO t VALUES(1)").ok());
  // Another client's write waits for the transaction, which times out.
  auto b = c.leader_client();
  auto bdb = b.value()->open("idle");
  auto start = std::chrono::steady_clock::now();
  REQUIRE(b.value()->exec(bdb.value(), "INSERT INTO t VALUES(2)").ok());
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(200));
  auto late = a.value()->exec(adb.value(), "COMMIT");
  CHECK(!late.ok());
  CHECK(late.status().message().find("rolled back") != std::string::npos);
  auto rows = b.value()->query(bdb.value(), "SELECT group_concat(x) FROM t");
  std::vector<wire::Value> row;
  REQUIRE(rows.value()->next(&row));
  CHECK(row[0].bytes == "2");
}


TEST_CASE("protocol: every INTERRUPT is answered with EMPTY, however late it arrives in the stream") {
  ProcessCluster c({});
  REQUIRE(c.start_all().ok());
  auto cl = c.leader_client();
  REQUIRE(cl.ok());
  Client& client = *cl.value();
  auto db = client.open("stream");
  REQUIRE(db.ok());
  REQUIRE(client.exec(db.value(), "CREATE TABLE t(x, pad)").ok());
  // A little more than one batch: the INTERRUPT sent after the first batch
  // often arrives while the last one is being produced.
  REQUIRE(client.exec(db.value(), "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<90) "
                                  "INSERT INTO t SELECT i, randomblob(1000) FROM s").ok());
  for (const bool in_txn : {false, true}) {
    CAPTURE(in_txn);
    if (in_txn) REQUIRE(client.exec(db.value(), "BEGIN").ok());
    for (int round = 0; round < 30; round++) {
      CAPTURE(round);
      wire::BodyWriter q;
      q.u64(db.value());
      q.text("SELECT * FROM t");
      q.params({}, 0);
      REQUIRE(client.send_raw(message(wire::kQuerySql, q)).ok());
      auto first = client.receive();
      REQUIRE(first.ok());
      REQUIRE(first->first.type == wire::kRows);
      REQUIRE(rows_marker(first->second) == wire::kRowsMore);
      wire::BodyWriter intr;
      intr.u64(db.value());
      REQUIRE(client.send_raw(message(wire::kInterrupt, intr)).ok());
      // Any ROWS still in flight, then EMPTY: the client reads until it comes.
      bool empty = false;
      for (int i = 0; i < 10 && !empty; i++) {
        auto m = client.receive();
        REQUIRE_MESSAGE(m.ok(), "no EMPTY after INTERRUPT: " << m.status().to_string());
        if (m->first.type == wire::kEmpty) empty = true;
        else REQUIRE(m->first.type == wire::kRows);
      }
      REQUIRE(empty);
      auto rows = client.query(db.value(), "SELECT count(*) FROM t");  // the connection goes on
      REQUIRE_MESSAGE(rows.ok(), rows.status().to_string());
      std::vector<wire::Value> row;
      REQUIRE(rows.value()->next(&row));
      CHECK(row.at(0).integer == 90);
    }
    {  // Two INTERRUPTs in a row: two EMPTYs.
      wire::BodyWriter q;
      q.u64(db.value());
      q.text("SELECT * FROM t");
      q.params({}, 0);
      REQUIRE(client.send_raw(message(wire::kQuerySql, q)).ok());
      auto first = client.receive();
      REQUIRE(first.ok());
      REQUIRE(rows_marker(first->second) == wire::kRowsMore);
      wire::BodyWriter intr;
      intr.u64(db.value());
      std::vector<uint8_t> two = message(wire::kInterrupt, intr);
      const std::vector<uint8_t> again = two;
      two.insert(two.end(), again.begin(), again.end());
      REQUIRE(client.send_raw(two).ok());
      int empties = 0;
      for (int i = 0; i < 10 && empties < 2; i++) {
        auto m = client.receive();
        REQUIRE_MESSAGE(m.ok(), m.status().to_string());
        if (m->first.type == wire::kEmpty) empties++;
        else REQUIRE(m->first.type == wire::kRows);
      }
      CHECK(empties == 2);
    }
    // INTERRUPT sent right behind the query, before any batch: the first
    // batch (of a long or a one-batch result) comes, then EMPTY.
    for (const char* sql : {"SELECT * FROM t", "SELECT count(*) FROM t"}) {
      CAPTURE(sql);
      wire::BodyWriter q;
      q.u64(db.value());
      q.text(sql);
      q.params({}, 0);
      wire::BodyWriter intr;
      intr.u64(db.value());
      std::vector<uint8_t> both = message(wire::kQuerySql, q);
      const std::vector<uint8_t> second = message(wire::kInterrupt, intr);
      both.insert(both.end(), second.begin(), second.end());
      REQUIRE(client.send_raw(both).ok());
      auto first = client.receive();
      REQUIRE(first.ok());
      CHECK(first->first.type == wire::kRows);
      auto next = client.receive();
      REQUIRE(next.ok());
      CHECK(next->first.type == wire::kEmpty);
    }
    if (in_txn) REQUIRE(client.exec(db.value(), "COMMIT").ok());
  }
  // HEARTBEAT (legacy) answers with the servers, without roles.
  wire::BodyWriter hb;
  hb.u64(1700000000000ULL);
  REQUIRE(client.send_raw(message(wire::kHeartbeat, hb)).ok());
  auto servers = client.receive();
  REQUIRE(servers.ok());
  REQUIRE(servers->first.type == wire::kServers);
  wire::BodyReader sr(servers->second);
  uint64_t n = 0;
  REQUIRE(sr.u64(&n));
  CHECK(n == 3);
  for (uint64_t i = 0; i < n; i++) {
    uint64_t id = 0;
    std::string address;
    REQUIRE(sr.u64(&id));
    REQUIRE(sr.text(&address));
    CHECK(address == c.address(unsigned(id - 1)));
  }
  for (unsigned i = 0; i < 3; i++) CHECK(c.stop(i).ok());
}

TEST_CASE("protocol: TEMP objects are private to the client connection that made them") {
  ProcessCluster c({});
  REQUIRE(c.start_all().ok());
  TwoClients t(c, "tempdb");
  auto& a = t.a;
  auto& b = t.b;
  auto& da = t.da;
  auto& dbb = t.dbb;
  REQUIRE(a.value()->exec(da.value(), "CREATE TABLE shared(v)").ok());
  REQUIRE(a.value()->exec(da.value(), "CREATE TEMP TABLE scratch(x)").ok());
  REQUIRE(a.value()->exec(da.value(), "INSERT INTO scratch VALUES (1), (2)").ok());
  auto prep = a.value()->prepare(da.value(), "INSERT INTO scratch VALUES (?)");
  REQUIRE_MESSAGE(prep.ok(), prep.status().to_string());
  REQUIRE(a.value()->exec_prepared(prep.value(), {wire::Value::Integer(3)}).ok());
  // A write of the shared database cannot read TEMP objects (it runs on the
  // shared writer connection): a clear error, and nothing written.
  auto mixed = a.value()->exec(da.value(), "INSERT INTO shared SELECT sum(x) FROM scratch");
  REQUIRE_FALSE(mixed.ok());
  CHECK(mixed.status().message().find("TEMP objects") != std::string::npos);
  // Shared writes still replicate while A has TEMP objects, and reads may mix both.
  REQUIRE(a.value()->exec(da.value(), "INSERT INTO shared VALUES (6)").ok());
  auto join = a.value()->query(da.value(), "SELECT count(*) FROM shared, scratch WHERE v = 6");
  REQUIRE_MESSAGE(join.ok(), join.status().to_string());
  std::vector<wire::Value> jrow;
  REQUIRE(join.value()->next(&jrow));
  CHECK(jrow.at(0).integer == 3);
  auto sum = a.value()->query(da.value(), "SELECT sum(x) FROM scratch");
  REQUIRE_MESSAGE(sum.ok(), sum.status().to_string());
  std::vector<wire::Value> row;
  REQUIRE(sum.value()->next(&row));
  CHECK(row.at(0).integer == 6);
  // B sees neither A's table nor its rows, and can make its own.
  auto other = b.value()->query(dbb.value(), "SELECT * FROM scratch");
  CHECK_FALSE(other.ok());
  REQUIRE(b.value()->exec(dbb.value(), "CREATE TEMP TABLE scratch(y)").ok());
  REQUIRE(b.value()->exec(dbb.value(), "INSERT INTO scratch VALUES ('b')").ok());
  auto shared = b.value()->query(dbb.value(), "SELECT v FROM shared");
  REQUIRE(shared.ok());
  REQUIRE(shared.value()->next(&row));
  CHECK(row.at(0).integer == 6);
  REQUIRE(a.value()->exec(da.value(), "DROP TABLE scratch").ok());
  auto gone = a.value()->query(da.value(), "SELECT * FROM scratch");
  CHECK_FALSE(gone.ok());

  // Copying shared data into TEMP objects works, however they are named.
  REQUIRE(a.value()->exec(da.value(), "CREATE TABLE temp.copy(v)").ok());
  REQUIRE(a.value()->exec(da.value(), "INSERT INTO copy SELECT v FROM shared").ok());
  REQUIRE(a.value()->exec(da.value(), "CREATE TEMP TABLE copy2 AS SELECT v * 2 AS w FROM shared").ok());
  auto copied = a.value()->query(da.value(), "SELECT (SELECT count(*) FROM copy), (SELECT w FROM copy2)");
  REQUIRE_MESSAGE(copied.ok(), copied.status().to_string());
  REQUIRE(copied.value()->next(&row));
  CHECK(row.at(0).integer == 1);
  CHECK(row.at(1).integer == 12);
  auto b_copy = b.value()->query(dbb.value(), "SELECT count(*) FROM copy");
  CHECK_FALSE(b_copy.ok());  // still A's alone

  // Inside a transaction: TEMP objects are reachable (count(*) names no
  // column), the transaction's own writes are not lost, and a statement that
  // combines both is refused rather than answered from a stale view.
  REQUIRE(a.value()->exec(da.value(), "BEGIN").ok());
  REQUIRE(a.value()->exec(da.value(), "INSERT INTO shared VALUES (7)").ok());
  auto in_txn = a.value()->query(da.value(), "SELECT count(*) FROM copy");
  REQUIRE_MESSAGE(in_txn.ok(), in_txn.status().to_string());
  REQUIRE(in_txn.value()->next(&row));
  CHECK(row.at(0).integer == 1);
  auto own = a.value()->query(da.value(), "SELECT count(*) FROM shared");
  REQUIRE(own.ok());
  REQUIRE(own.value()->next(&row));
  CHECK(row.at(0).integer == 2);
  auto combined = a.value()->query(da.value(), "SELECT count(*) FROM shared, copy");
  REQUIRE_FALSE(combined.ok());
  CHECK(combined.status().message().find("inside a transaction") != std::string::npos);
  REQUIRE(a.value()->exec(da.value(), "CREATE TEMP TABLE in_txn(x)").ok());
  REQUIRE(a.value()->exec(da.value(), "COMMIT").ok());
  auto b_txn = b.value()->query(dbb.value(), "SELECT count(*) FROM in_txn");
  CHECK_FALSE(b_txn.ok());  // not on the shared writer connection
  auto b_shared = b.value()->query(dbb.value(), "SELECT count(*) FROM shared");
  REQUIRE(b_shared.ok());
  REQUIRE(b_shared.value()->next(&row));
  CHECK(row.at(0).integer == 2);
  for (unsigned i = 0; i < 3; i++) CHECK(c.stop(i).ok());
}

TEST_CASE("protocol: a long read gets its answer without holding up other clients' reads") {
  ProcessCluster c({});
  REQUIRE(c.start_all().ok());
  TwoClients t(c, "reads");
  auto& a = t.a;
  auto& b = t.b;
  auto& da = t.da;
  auto& dbb = t.dbb;
  REQUIRE(a.value()->exec(da.value(), "CREATE TABLE kv(k INTEGER PRIMARY KEY, v)").ok());
  REQUIRE(a.value()->exec(da.value(), "INSERT INTO kv VALUES (1, 'one'), (2, 'two')").ok());
  // Far more work than a read may do on the node's event loop: it moves to
  // the reader pool, and meanwhile short reads keep being answered.
  std::atomic<bool> long_done{false};
  std::atomic<int> short_reads_before{0};
  std::thread other([&] {
    for (int i = 0; i < 200 && !long_done; i++) {
      auto rows = b.value()->query(dbb.value(), "SELECT v FROM kv WHERE k = ?", {wire::Value::Integer(1 + i % 2)});
      if (!rows.ok()) break;
      std::vector<wire::Value> row;
      if (!rows.value()->next(&row) || row.at(0).bytes != (i % 2 ? "two" : "one")) break;
      if (!long_done) short_reads_before++;
    }
  });
  auto rows = a.value()->query(da.value(), "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<3000000) "
                                           "SELECT count(*), sum(i) FROM s");
  long_done = true;
  other.join();
  REQUIRE_MESSAGE(rows.ok(), rows.status().to_string());
  std::vector<wire::Value> row;
  REQUIRE(rows.value()->next(&row));
  CHECK(row.at(0).integer == 3000000);
  CHECK(row.at(1).integer == int64_t(3000000) * 3000001 / 2);
  CHECK(short_reads_before >= 20);
  for (unsigned i = 0; i < 3; i++) CHECK(c.stop(i).ok());
}

TEST_CASE("protocol: TRANSFER hands leadership over and reports a failed transfer") {
  ProcessCluster c({});
  REQUIRE(c.start_all().ok());
  const unsigned l = c.leader_index();
  REQUIRE(l < 3);
  auto cl = c.leader_client();
  REQUIRE(cl.ok());
  Status bad = cl.value()->transfer(99);
  CHECK_FALSE(bad.ok());
  const unsigned target = (l + 1) % 3;
  Status st = cl.value()->transfer(target + 1);
  REQUIRE_MESSAGE(st.ok(), st.to_string());
  CHECK(c.leader_index() == target);
  for (unsigned i = 0; i < 3; i++) CHECK(c.stop(i).ok());
}

TEST_CASE("protocol: nodes on socket files restart after a clean stop and after kill -9") {
  ProcessCluster::Options o;
  o.net = ProcessCluster::Net::kPath;
  ProcessCluster c(o);
  REQUIRE(c.start_all().ok());
  REQUIRE(c.leader_index() < 3);
  REQUIRE(c.stop(0).ok());
  CHECK_FALSE(std::filesystem::exists(c.address(0)));  // removed on a clean stop
  REQUIRE(c.start(0).ok());
  c.kill(1);
  CHECK(std::filesystem::exists(c.address(1)));  // left behind
  Status again = c.start(1);
  REQUIRE_MESSAGE(again.ok(), again.to_string() << c.logs());
  REQUIRE(c.leader_index() < 3);  // node 2 may have led: wait for the next leader
  check_healthy(c);
  for (unsigned i = 0; i < 3; i++) CHECK(c.stop(i).ok());
}

TEST_CASE("protocol: a SAVEPOINT outside BEGIN is a transaction on the writer") {
  ProcessCluster c({});
  REQUIRE(c.start_all().ok());
  auto cl = c.leader_client();
  REQUIRE(cl.ok());
  auto db = cl.value()->open("sp");
  REQUIRE(db.ok());
  REQUIRE(cl.value()->exec(db.value(), "CREATE TABLE t(x)").ok());
  REQUIRE(cl.value()->exec(db.value(), "SAVEPOINT s").ok());
  REQUIRE(cl.value()->exec(db.value(), "INSERT INTO t VALUES (1)").ok());
  auto seen = cl.value()->query(db.value(), "SELECT count(*) FROM t");  // its own write
  REQUIRE_MESSAGE(seen.ok(), seen.status().to_string());
  std::vector<wire::Value> row;
  REQUIRE(seen.value()->next(&row));
  CHECK(row.at(0).integer == 1);
  REQUIRE(cl.value()->exec(db.value(), "ROLLBACK TO s").ok());
  REQUIRE(cl.value()->exec(db.value(), "RELEASE s").ok());
  auto after = cl.value()->query(db.value(), "SELECT count(*) FROM t");
  REQUIRE(after.ok());
  REQUIRE(after.value()->next(&row));
  CHECK(row.at(0).integer == 0);  // the rollback undid it
  for (unsigned i = 0; i < 3; i++) CHECK(c.stop(i).ok());
}
