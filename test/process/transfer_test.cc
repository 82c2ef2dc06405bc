// `sqraft import` and `sqraft backup` against a real three-node cluster:
// a large rollback-journal file with another page size imported and read
// back from every node's copy, an import killed halfway that leaves
// nothing, --replace, refusals, and backups taken while writers run.
#include <doctest/doctest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "support/db_digest.h"
#include "support/live_cluster.h"
#include "support/sql.h"
#include "support/temp_dir.h"

using namespace sqraft;
using test::CommandResult;
using test::ProcessCluster;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr int kBigMegabytes = 20;  // the same steps, smaller: ASan makes every byte slower
#else
constexpr int kBigMegabytes = 200;
#endif

// Everything an import must carry over, in a file written the way an
// application might: 8 KiB pages (the cluster's are 4 KiB), rollback journal.
void write_source(const std::string& path, int megabytes) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  const std::string rows = std::to_string(megabytes * 1000);
  const std::string sql =
      "PRAGMA page_size = 8192; PRAGMA journal_mode = DELETE;"
      "CREATE TABLE big(id INTEGER PRIMARY KEY, k TEXT, v BLOB, n REAL);"
      "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < " + rows + ") "
      "INSERT INTO big SELECT i, 'key' || i, randomblob(1000), i / 3.0 FROM c;"
      "CREATE INDEX big_k ON big(k);"
      "CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, v REAL, b BLOB);"
      "CREATE TABLE plain(x, y);"
      "CREATE TABLE w(k TEXT PRIMARY KEY, n INT) WITHOUT ROWID;"
      "CREATE TABLE g(a INT, b INT GENERATED ALWAYS AS (a * 2) STORED, c INT AS (a + 1));"
      "CREATE INDEX a_name ON a(name);"
      "CREATE VIEW va AS SELECT id, name FROM a;"
      "CREATE TRIGGER ta AFTER INSERT ON a BEGIN INSERT INTO plain VALUES ('trigger', new.id); END;"
      "CREATE VIRTUAL TABLE f USING fts5(body);"
      "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000) "
      "INSERT INTO a(name, v, b) SELECT 'n' || i, i * 1.5, randomblob(20) FROM c;"
      "DELETE FROM a WHERE id % 7 = 0;"  // holes in the rowids; the AUTOINCREMENT counter stays at 3000
      "INSERT INTO plain(rowid, x, y) VALUES (100000, NULL, x'00ff'), (100001, 'text', 2.5);"
      "INSERT INTO w VALUES ('k1', 1), ('k2', 2);"
      "INSERT INTO g(a) VALUES (1), (2);"
      "INSERT INTO f(rowid, body) VALUES (10, 'hello world'), (20, 'replicated sqlite');"
      "ANALYZE;";
  REQUIRE_MESSAGE(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK, sqlite3_errmsg(db));
  // The premise of the test: another page size and no WAL.
  CHECK(test::query(db, "PRAGMA page_size") == "8192");
  CHECK(test::query(db, "PRAGMA journal_mode") == "delete");
  sqlite3_close(db);
}

std::string servers(const ProcessCluster& c) {
  std::string s;
  for (const std::string& a : c.addresses()) s += (s.empty() ? "" : ",") + a;
  return s;
}

CommandResult run_sqraft(const std::vector<std::string>& args, unsigned timeout_ms = 300000) {
  std::vector<std::string> argv = {ProcessCluster::binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return test::run_command(argv, "", timeout_ms);
}

// The digest of node i's copy of `db` ("absent" if it has none), read from
// a backup of that node.
std::string node_digest(const ProcessCluster& c, unsigned i, const std::string& db, const test::TempDir& tmp) {
  const std::string file = tmp.file("node" + std::to_string(i) + "-" + db + ".db");
  CommandResult r = run_sqraft({"backup", "-s", servers(c), db, file, "--node", c.address(i), "--quiet"});
  if (r.status != 0 && r.output.find("no database named") != std::string::npos) return "absent";
  REQUIRE_MESSAGE(r.status == 0, r.output);
  CHECK_FALSE(std::filesystem::exists(file + "-wal"));
  std::string d = test::file_digest(file);
  std::filesystem::remove(file);
  return d;
}

// `sqraft import` as a child process that the test can kill.
pid_t start_import(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {ProcessCluster::binary(), "import"};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> a;
    for (std::string& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

TEST_CASE("import: a large rollback-journal file with another page size, atomically, on every node") {
  test::TempDir tmp;
  const std::string source = tmp.file("source.db");
  write_source(source, kBigMegabytes);
  const std::string expected = test::file_digest(source);
  REQUIRE(expected.find("rows big " + std::to_string(kBigMegabytes * 1000) + " ") != std::string::npos);
  test::LiveCluster cl({}, /*metrics=*/true);
  ProcessCluster& c = cl.c;

  // Killed halfway — once the leader has replicated a first piece (8 MiB)
  // of the import's transaction: no node has any of it, and the database
  // takes writes.
  const int leader_metrics = cl.metrics_ports[c.leader_index()];
  const double proposed = test::metric_sample(test::http_get(leader_metrics), "sqraft_proposed_bytes_total");
  REQUIRE(proposed >= 0);
  const pid_t pid = start_import({"-s", servers(c), "app", source, "--quiet"});
  int status = 0;
  bool running = true;
  for (int i = 0; i < 6000 && running; i++) {
    if (test::metric_sample(test::http_get(leader_metrics), "sqraft_proposed_bytes_total") > proposed + (8 << 20)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    running = ::waitpid(pid, &status, WNOHANG) == 0;
  }
  REQUIRE_MESSAGE((running && ::waitpid(pid, &status, WNOHANG) == 0), "the import ended before it could be killed");
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  for (unsigned i = 0; i < 3; i++) {
    const std::string d = node_digest(c, i, "app", tmp);
    CHECK_MESSAGE((d == "absent" || d == "\n"), "node " << i << " after the killed import:\n" << d);
  }

  // The whole import: every node's copy reads as the source.
  CommandResult r = run_sqraft({"import", "-s", servers(c), "app", source});
  REQUIRE_MESSAGE(r.status == 0, r.output << c.logs());
  CHECK(r.output.find("imported " + source + " as app: 6 tables") != std::string::npos);
  for (unsigned i = 0; i < 3; i++) CHECK_MESSAGE(node_digest(c, i, "app", tmp) == expected, "node " << i);

  // A second import does not touch it...
  r = run_sqraft({"import", "-s", servers(c), "app", source});
  CHECK(r.status == 1);
  CHECK(r.output.find("already has tables (use --replace") != std::string::npos);
  // ...unless told to replace it, at once.
  const std::string small = tmp.file("small.db");
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(small.c_str(), &db) == SQLITE_OK);
    REQUIRE(test::exec(db, "CREATE TABLE only(x); INSERT INTO only VALUES (1), ('two')") == SQLITE_OK);
    sqlite3_close(db);
  }
  r = run_sqraft({"import", "-s", servers(c), "app", small, "--replace"});
  REQUIRE_MESSAGE(r.status == 0, r.output);
  const std::string replaced = test::file_digest(small);
  for (unsigned i = 0; i < 3; i++) CHECK_MESSAGE(node_digest(c, i, "app", tmp) == replaced, "node " << i);

  // Files that are not databases are refused with the reason.
  const std::string text = tmp.file("notes.txt");
  std::FILE* f = std::fopen(text.c_str(), "w");
  std::fputs("not a database, but long enough to look like a header of one........................", f);
  std::fclose(f);
  r = run_sqraft({"import", "-s", servers(c), "other", text});
  CHECK(r.status == 1);
  CHECK(r.output.find("file is not a database") != std::string::npos);
  r = run_sqraft({"import", "-s", servers(c), "other", tmp.file("missing.db")});
  CHECK(r.status == 1);
  CHECK(r.output.find("no such file") != std::string::npos);
}

TEST_CASE("backup: standalone files as of one index while writers run, from the leader and a follower") {
  test::TempDir tmp;
  test::LiveCluster cl;
  ProcessCluster& c = cl.c;
  auto writer = c.leader_client();
  REQUIRE(writer.ok());
  auto db = writer.value()->open("bank");
  REQUIRE(db.ok());
  REQUIRE(writer.value()->exec(db.value(), "CREATE TABLE a(i INTEGER PRIMARY KEY); CREATE TABLE b(i INTEGER PRIMARY KEY)").ok());

  // Each transaction adds the same number to both tables: a copy as of one
  // index has equal tables numbered 1..n.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> committed{0};
  std::thread load([&] {
    for (int64_t i = 1; !stop; i++) {
      const std::string n = std::to_string(i);
      auto r = writer.value()->exec(db.value(), "BEGIN; INSERT INTO a VALUES (" + n + "); INSERT INTO b VALUES (" + n +
                                                    "); COMMIT");
      if (!r.ok()) break;
      committed = i;
    }
  });
  while (committed < 200) std::this_thread::sleep_for(std::chrono::milliseconds(10));

  const unsigned leader = c.leader_index();
  const unsigned follower = (leader + 1) % 3;
  for (int round = 0; round < 2; round++) {
    for (const bool from_follower : {false, true}) {
      const std::string file = tmp.file("backup-" + std::to_string(round) + (from_follower ? "-f" : "-l") + ".db");
      std::vector<std::string> args = {"backup", "-s", servers(c), "bank", file};
      if (from_follower) args.insert(args.end(), {"--node", c.address(follower)});
      CommandResult r = run_sqraft(args);
      REQUIRE_MESSAGE(r.status == 0, r.output);
      CHECK(r.output.find("backed up bank from ") != std::string::npos);
      // Alone in a directory of its own, opened read-only: no -wal needed.
      CHECK_FALSE(std::filesystem::exists(file + "-wal"));
      const std::string alone = tmp.file("alone.db");
      std::filesystem::rename(file, alone);
      sqlite3* copy = nullptr;
      REQUIRE(sqlite3_open_v2(alone.c_str(), &copy, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
      CHECK(test::query(copy, "PRAGMA integrity_check") == "ok");
      CHECK(test::query(copy, "PRAGMA journal_mode") == "delete");
      const std::string counts = test::query(copy, "SELECT (SELECT count(*) FROM a), (SELECT max(i) FROM a), "
                                                   "(SELECT count(*) FROM b), (SELECT max(i) FROM b)");
      const std::string n = test::query(copy, "SELECT count(*) FROM a");
      CHECK_MESSAGE(counts == n + "|" + n + "|" + n + "|" + n, counts);
      CHECK(std::stoll(n) >= 200);
      sqlite3_close(copy);
      std::filesystem::remove(alone);
    }
  }
  stop = true;
  load.join();
  CHECK(committed > 200);

  CommandResult r = run_sqraft({"backup", "-s", servers(c), "nosuch", tmp.file("x.db")});
  CHECK(r.status == 1);
  CHECK(r.output.find("no database named 'nosuch'") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(tmp.file("x.db")));
}

TEST_CASE("progress: a live line on a terminal, nothing in scripts") {
  test::TempDir tmp;
  test::LiveCluster cl;
  ProcessCluster& c = cl.c;
  const std::string source = tmp.file("source.db");
  write_source(source, 5);
  const std::string bin = ProcessCluster::binary();
  // Under script(1) stderr is a terminal: the line is drawn, then cleared
  // before the result is printed.
  auto on_terminal = [&](const std::string& command) {
    return test::run_command({"script", "-qec", command, "/dev/null"}, "", 120000);
  };
  CommandResult r = on_terminal(bin + " import -s " + servers(c) + " app " + source);
  REQUIRE_MESSAGE(r.status == 0, r.output);
  CHECK(r.output.find("\rimport app  ") != std::string::npos);
  CHECK(r.output.find(" MiB/s") != std::string::npos);
  CHECK(r.output.find("imported " + source) != std::string::npos);
  r = on_terminal(bin + " backup -s " + servers(c) + " app " + tmp.file("b.db"));
  REQUIRE_MESSAGE(r.status == 0, r.output);
  CHECK(r.output.find("\rbackup app  ") != std::string::npos);
  CHECK(r.output.find("100%") != std::string::npos);
  r = on_terminal(bin + " bench -s " + servers(c) + " --workload kvwrite --duration 1");
  REQUIRE_MESSAGE(r.status == 0, r.output);
  CHECK(r.output.find("\rbench kvwrite  ") != std::string::npos);
  CHECK(r.output.find(" ops/s") != std::string::npos);
  r = on_terminal("cd " + tmp.path().string() + " && " + bin + " shell -s " + servers(c) + " app '.dump " + c.address(0) +
                  "'");
  REQUIRE_MESSAGE(r.status == 0, r.output);
  CHECK(r.output.find("\r.dump app  ") != std::string::npos);
  CHECK(r.output.find("OK") != std::string::npos);
  // --quiet, or output that is not a terminal: only the result.
  r = on_terminal(bin + " backup --quiet -s " + servers(c) + " app " + tmp.file("b.db"));
  REQUIRE_MESSAGE(r.status == 0, r.output);
  CHECK(r.output.find('\r') == r.output.find("\r\n"));  // script turns \n into \r\n; no other \r
  r = run_sqraft({"backup", "-s", servers(c), "app", tmp.file("b.db")});
  REQUIRE_MESSAGE(r.status == 0, r.output);
  CHECK(r.output.find('\r') == std::string::npos);
}
