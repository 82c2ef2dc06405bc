// `sqraft shell` against a real three-node cluster: SQL of every value type
// in both output formats, stdin input, errors and exit statuses, and the
// dot-commands (.cluster, .leader, .describe, .weight, .dump, .remove, .help).
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "support/process_cluster.h"
#include "support/sql.h"
#include "support/temp_dir.h"

using namespace sqraft;
using test::CommandResult;
using test::ProcessCluster;

namespace {

// A running cluster with a leader.
struct Cluster {
  ProcessCluster c{ProcessCluster::Options{}};
  Cluster() {
    Status s = c.start_all();
    REQUIRE_MESSAGE(s.ok(), s.to_string() << c.logs());
    auto leader = c.leader_client();
    REQUIRE_MESSAGE(leader.ok(), leader.status().to_string() << c.logs());
  }
};

std::vector<std::string> shell_argv(const ProcessCluster& c, const std::vector<std::string>& args) {
  std::string servers;
  for (const std::string& a : c.addresses()) servers += (servers.empty() ? "" : ",") + a;
  std::vector<std::string> argv = {ProcessCluster::binary(), "shell", "-s", servers};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// `sqraft shell -s <every address> ARGS...` with `input` on stdin.
CommandResult shell(const ProcessCluster& c, const std::vector<std::string>& args, const std::string& input = "") {
  return test::run_command(shell_argv(c, args), input);
}

// The same, run in directory `dir`.
CommandResult shell_in(const std::string& dir, const ProcessCluster& c, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"sh", "-c", "cd \"$1\" && shift && exec \"$@\"", "sh", dir};
  const std::vector<std::string> rest = shell_argv(c, args);
  argv.insert(argv.end(), rest.begin(), rest.end());
  return test::run_command(argv);
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    out.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

void require_ok(const CommandResult& r, const ProcessCluster& c) {
  REQUIRE_MESSAGE(r.status == 0, "exit status " << r.status << ", output:\n" << r.output << c.logs());
}

}  // namespace

TEST_CASE("shell: values of every type, tabular and json") {
  Cluster cl;
  ProcessCluster& c = cl.c;
  require_ok(shell(c, {"app", "CREATE TABLE t(i INTEGER, f REAL, s TEXT, b BLOB, n, flag BOOLEAN)"}), c);
  require_ok(shell(c, {"app", "INSERT INTO t VALUES(42, 1.5, 'hello|world', x'0102ff', NULL, 1); "
                              "INSERT INTO t VALUES(-7, 2.0, 'h\xc3\xa9llo', x'', NULL, 0)"}),
             c);

  CommandResult r = shell(c, {"app", "SELECT * FROM t ORDER BY i DESC"});
  require_ok(r, c);
  CHECK(r.output == "42|1.5|hello|world|x'0102ff'|NULL|true\n-7|2.0|h\xc3\xa9llo|x''|NULL|false\n");

  r = shell(c, {"--format", "json", "app", "SELECT * FROM t ORDER BY i DESC"});
  require_ok(r, c);
  CHECK(r.output ==
        "[{\"i\":42,\"f\":1.5,\"s\":\"hello|world\",\"b\":\"0102ff\",\"n\":null,\"flag\":true},"
        "{\"i\":-7,\"f\":2.0,\"s\":\"h\xc3\xa9llo\",\"b\":\"\",\"n\":null,\"flag\":false}]\n");

  // Expressions: repeated column names stay apart in JSON; no rows is [].
  r = shell(c, {"--format", "json", "app", "SELECT 1 AS a, 'x' AS a; SELECT * FROM t WHERE 0"});
  require_ok(r, c);
  CHECK(r.output == "[{\"a\":1,\"a:2\":\"x\"}]\n[]\n");

  // Other query keywords; -s given several times, one address only a follower.
  const unsigned leader = c.leader_index();
  REQUIRE(leader < 3);
  const unsigned follower = (leader + 1) % 3;
  r = test::run_command({ProcessCluster::binary(), "shell", "-s", c.address(follower), "-s",
                         c.address((follower + 1) % 3), "app",
                         "VALUES(1, 'v'); WITH x(y) AS (SELECT 5) SELECT y FROM x; PRAGMA user_version"});
  require_ok(r, c);
  CHECK(r.output == "1|v\n5\n0\n");
}

TEST_CASE("shell: statements from stdin") {
  Cluster cl;
  ProcessCluster& c = cl.c;
  const std::string input =
      "CREATE TABLE t(x INTEGER,\n"
      "  s TEXT);\n"
      "\n"
      "   \n"
      "INSERT INTO t VALUES(1, 'a'); INSERT INTO t VALUES(2, 'b');\n"
      "-- a comment line\n"
      "INSERT INTO t VALUES(3, 'two\n"
      "lines');\n"
      "SELECT x FROM t ORDER BY x; SELECT count(*) FROM t;\n"
      "/* comment */ SELECT s FROM t WHERE x = 3;\n";
  CommandResult r = shell(c, {"app"}, input);
  require_ok(r, c);
  CHECK(r.output == "1\n2\n3\n3\ntwo\nlines\n");

  // A statement goes on over lines until ';', in an argument too.
  r = shell(c, {"app", "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<3)\nSELECT sum(i)\nFROM s"});
  require_ok(r, c);
  CHECK(r.output == "6\n");

  // A WITH whose main statement writes runs as a write (no rows printed).
  r = shell(c, {"app", "WITH c(x) AS (SELECT 9) INSERT INTO t SELECT x, 'w' FROM c; SELECT count(*) FROM t WHERE x = 9"});
  require_ok(r, c);
  CHECK(r.output == "1\n");

  // Commands mix with SQL; .exit stops reading.
  r = shell(c, {"app"}, "SELECT 7;\n.leader\n.exit\nSELECT 8;\n");
  require_ok(r, c);
  const std::vector<std::string> out = lines(r.output);
  REQUIRE(out.size() == 2);
  CHECK(out[0] == "7");
  const std::vector<std::string> addresses = c.addresses();
  CHECK(std::find(addresses.begin(), addresses.end(), out[1]) != addresses.end());
}

TEST_CASE("shell: an SQL error gives exit status 1") {
  Cluster cl;
  ProcessCluster& c = cl.c;
  CommandResult r = shell(c, {"app", "SELECT * FROM missing"});
  CHECK(r.status == 1);
  CHECK(r.output == "Error: no such table: missing\n");

  r = shell(c, {"app", "SELEKT 1"});
  CHECK(r.status == 1);
  CHECK(r.output.rfind("Error: ", 0) == 0);

  // stdin: stops at the first error, later lines do not run.
  r = shell(c, {"app"}, "CREATE TABLE t(x);\nINSERT INTO t VALUES(1);\nINSERT INTO nope VALUES(1);\nINSERT INTO t VALUES(2);\n");
  CHECK(r.status == 1);
  CHECK(r.output == "Error: no such table: nope\n");
  r = shell(c, {"app", "SELECT count(*) FROM t"});
  require_ok(r, c);
  CHECK(r.output == "1\n");

  // A constraint failure and garbage: errors, never a crash.
  require_ok(shell(c, {"app", "CREATE TABLE u(x PRIMARY KEY); INSERT INTO u VALUES(1)"}), c);
  r = shell(c, {"app", "INSERT INTO u VALUES(1)"});
  CHECK(r.status == 1);
  CHECK(r.output.find("Error: UNIQUE constraint failed") == 0);
  r = shell(c, {"app"}, std::string("\x01\x02\xff garbage\n'unterminated", 25));
  CHECK(r.status == 1);
  CHECK(r.output.rfind("Error: ", 0) == 0);
}

TEST_CASE("shell: .cluster lists the voters and .leader one address") {
  Cluster cl;
  ProcessCluster& c = cl.c;
  CommandResult r = shell(c, {"app", ".cluster"});
  require_ok(r, c);
  const std::vector<std::string> out = lines(r.output);
  REQUIRE(out.size() == 3);
  for (unsigned i = 0; i < 3; i++) {
    // Node ids are 1, 2, 3: the same in hex.
    CHECK(std::find(out.begin(), out.end(), std::to_string(i + 1) + "|" + c.address(i) + "|voter") != out.end());
  }

  r = shell(c, {"--format", "json", "app", ".cluster"});
  require_ok(r, c);
  for (unsigned i = 0; i < 3; i++) {
    CHECK(r.output.find("{\"id\":" + std::to_string(i + 1) + ",\"address\":\"" + c.address(i) + "\",\"role\":\"voter\"}") !=
          std::string::npos);
  }

  r = shell(c, {"app", ".leader"});
  require_ok(r, c);
  const unsigned leader = c.leader_index();
  REQUIRE(leader < 3);
  CHECK(r.output == c.address(leader) + "\n");
}

TEST_CASE("shell: .describe and .weight") {
  Cluster cl;
  ProcessCluster& c = cl.c;
  CommandResult r = shell(c, {"app", ".describe " + c.address(1)});
  require_ok(r, c);
  CHECK(r.output == c.address(1) + "|0|0\n");

  r = shell(c, {"app", ".weight " + c.address(1) + " 17"});
  require_ok(r, c);
  CHECK(r.output == "");

  r = shell(c, {"app", ".describe " + c.address(1)});
  require_ok(r, c);
  CHECK(r.output == c.address(1) + "|0|17\n");
  r = shell(c, {"--format", "json", "app", ".describe " + c.address(1)});
  require_ok(r, c);
  CHECK(r.output == "{\"address\":\"" + c.address(1) + "\",\"failure_domain\":0,\"weight\":17}\n");
  // The other nodes keep theirs.
  r = shell(c, {"app", ".describe " + c.address(2)});
  require_ok(r, c);
  CHECK(r.output == c.address(2) + "|0|0\n");
}

TEST_CASE("shell: .dump writes files that sqlite3 opens") {
  Cluster cl;
  ProcessCluster& c = cl.c;
  require_ok(shell(c, {"app", "CREATE TABLE t(x INTEGER, s TEXT); INSERT INTO t VALUES(1, 'one'), (2, 'two')"}), c);
  require_ok(shell(c, {"other", "CREATE TABLE o(y); INSERT INTO o VALUES(9)"}), c);
  const unsigned leader = c.leader_index();
  REQUIRE(leader < 3);

  test::TempDir dir;
  CommandResult r = shell_in(dir.path().string(), c, {"app", ".dump " + c.address(leader)});
  require_ok(r, c);
  CHECK(r.output == "OK\n");
  r = shell_in(dir.path().string(), c, {"app", ".dump " + c.address(leader) + " other"});
  require_ok(r, c);
  CHECK(r.output == "OK\n");
  CHECK(std::filesystem::exists(dir.file("app")));
  CHECK(std::filesystem::exists(dir.file("other")));

  sqlite3* conn = nullptr;
  REQUIRE(sqlite3_open_v2(dir.file("app").c_str(), &conn, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  CHECK(test::query(conn, "SELECT x, s FROM t ORDER BY x") == "1|one\n2|two");
  CHECK(test::query(conn, "PRAGMA integrity_check") == "ok");
  sqlite3_close(conn);
  conn = nullptr;
  REQUIRE(sqlite3_open_v2(dir.file("other").c_str(), &conn, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  CHECK(test::query(conn, "SELECT y FROM o") == "9");
  sqlite3_close(conn);

  // A database the node does not have.
  r = shell_in(dir.path().string(), c, {"app", ".dump " + c.address(leader) + " nosuch"});
  CHECK(r.status == 1);
  CHECK(r.output.rfind("Error: ", 0) == 0);
}

TEST_CASE("shell: .remove leaves two nodes in .cluster") {
  Cluster cl;
  ProcessCluster& c = cl.c;
  const unsigned leader = c.leader_index();
  REQUIRE(leader < 3);
  const unsigned victim = (leader + 1) % 3;
  CommandResult r = shell(c, {"app", ".remove " + c.address(victim)});
  require_ok(r, c);
  CHECK(r.output == "");

  r = shell(c, {"app", ".cluster"});
  require_ok(r, c);
  const std::vector<std::string> out = lines(r.output);
  CHECK(out.size() == 2);
  CHECK(r.output.find(c.address(victim)) == std::string::npos);

  // Unknown addresses are an error.
  r = shell(c, {"app", ".remove " + c.address(victim)});
  CHECK(r.status == 1);
  CHECK(r.output == "Error: no node has address " + c.address(victim) + "\n");
}

TEST_CASE("shell: .help and bad dot-command usage") {
  Cluster cl;
  ProcessCluster& c = cl.c;
  CommandResult r = shell(c, {"app", ".help"});
  require_ok(r, c);
  for (const char* command : {".cluster", ".leader", ".describe", ".weight", ".remove", ".dump", ".help"}) {
    CHECK_MESSAGE(r.output.find(command) != std::string::npos, command);
  }

  const std::vector<std::string> bad = {".describe", ".describe a b", ".weight " + c.address(0),
                                        ".weight " + c.address(0) + " heavy", ".weight " + c.address(0) + " -3",
                                        ".remove", ".dump", ".dump a b c", ".cluster now", ".leader x"};
  for (const std::string& command : bad) {
    r = shell(c, {"app", command});
    CHECK_MESSAGE(r.status == 1, command);
    CHECK_MESSAGE(r.output.rfind("Error: ", 0) == 0, command << ": " << r.output);
    CHECK_MESSAGE(r.output.find("usage: ") != std::string::npos, command << ": " << r.output);
  }

  r = shell(c, {"app", ".nosuch"});
  CHECK(r.status == 1);
  CHECK(r.output == "Error: unknown command .nosuch (see .help)\n");

  // On stdin too, and the commands before it ran.
  r = shell(c, {"app"}, ".leader\n.weight x\n.leader\n");
  CHECK(r.status == 1);
  const std::vector<std::string> out = lines(r.output);
  REQUIRE(out.size() == 2);
  CHECK(out[1] == "Error: usage: .weight ADDRESS N");
}
