// `sqraft shell` against a real three-node cluster: SQL of every value type
// in both output formats, stdin input, errors and exit statuses, the
// cluster dot-commands (.cluster, .leader, .describe, .weight, .dump,
// .remove, .help) and the sqlite3 shell's (.tables, .schema, .indexes,
// .headers, .mode, .read, .bail, .output, .timer), these held byte for byte
// to what Debian's sqlite3 CLI prints for the same schema and rows.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "support/live_cluster.h"
#include "support/sql.h"
#include "support/temp_dir.h"

using namespace sqraft;
using test::CommandResult;
using test::ProcessCluster;

namespace {

using Cluster = test::LiveCluster;

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

// Debian's sqlite3 CLI on a local file, `input` on stdin: the reference.
CommandResult sqlite3_cli(const std::string& db, const std::string& input) {
  return test::run_command({"sqlite3", db}, input);
}

// Runs `script` through sqlite3 on `db` and through `sqraft shell` on the
// cluster's database "app": both must succeed and print the same bytes.
// Returns sqraft's output, for the caller to pin too (two empty outputs
// would agree).
std::string same_as_sqlite3(const ProcessCluster& c, const std::string& db, const std::string& script) {
  const CommandResult want = sqlite3_cli(db, script);
  REQUIRE_MESSAGE(want.status == 0, "sqlite3 failed on:\n" << script << "\n" << want.output);
  const CommandResult got = shell(c, {"app"}, script);
  require_ok(got, c);
  CHECK_MESSAGE(got.output == want.output, "script:\n" << script);
  return got.output;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  REQUIRE_MESSAGE(out.good(), "cannot write " << path);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The same schema and rows, given to sqlite3 and to the cluster: tables,
// views (one with names that need quotes), indexes (one automatic), a
// trigger, AUTOINCREMENT's sqlite_sequence; text with commas, quotes, a
// newline, a tab and UTF-8; NULL and the empty string; floats that print
// alike in both (exact in binary).
constexpr const char* kSample =
    "CREATE TABLE t(i INTEGER PRIMARY KEY, f REAL, s TEXT, n);\n"
    "CREATE INDEX t_s ON t(s);\n"
    "CREATE TABLE other(a, b);\n"
    "CREATE INDEX o_ab ON other(a, b);\n"
    "CREATE VIEW v AS SELECT i, s FROM t;\n"
    "CREATE TABLE zebra_long_name_table(x);\n"
    "CREATE TABLE au(id INTEGER PRIMARY KEY AUTOINCREMENT, u UNIQUE);\n"
    "CREATE TABLE \"weird name\"(\"a b\", \"select\", c);\n"
    "CREATE VIEW \"w v\" AS SELECT \"a b\", c AS 'x y', 1+2 FROM \"weird name\";\n"
    "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;\n"
    "INSERT INTO t VALUES(1, 1.5, 'a,b', NULL), (2, 2.0, 'say \"hi\"', ''),\n"
    "  (3, 0.25, 'two\nlines', 3), (4, -7.0, 'h\xc3\xa9llo', 'tab\tx');\n"
    "INSERT INTO au(u) VALUES('x');\n";

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
  for (const char* command : {".cluster", ".leader", ".describe", ".weight", ".remove", ".dump", ".help", ".tables",
                              ".schema", ".indexes", ".headers", ".mode", ".read", ".timer", ".output", ".bail",
                              ".exit"}) {
    CHECK_MESSAGE(r.output.find(command) != std::string::npos, command);
  }

  const std::vector<std::string> bad = {".describe", ".describe a b", ".weight " + c.address(0),
                                        ".weight " + c.address(0) + " heavy", ".weight " + c.address(0) + " -3",
                                        ".remove", ".dump", ".dump a b c", ".cluster now", ".leader x",
                                        ".tables a b", ".schema a b", ".indexes a b", ".headers", ".headers maybe",
                                        ".timer", ".bail on off", ".mode a b", ".read", ".output a b"};
  for (const std::string& command : bad) {
    r = shell(c, {"app", command});
    CHECK_MESSAGE(r.status == 1, command);
    CHECK_MESSAGE(r.output.rfind("Error: ", 0) == 0, command << ": " << r.output);
    CHECK_MESSAGE(r.output.find("usage: ") != std::string::npos, command << ": " << r.output);
  }

  r = shell(c, {"app", ".nosuch"});
  CHECK(r.status == 1);
  CHECK(r.output == "Error: unknown command .nosuch (see .help)\n");
  r = shell(c, {"app", ".mode bogus"});
  CHECK(r.status == 1);
  CHECK(r.output == "Error: mode should be one of: column csv json list table\n");

  // On stdin too, and the commands before it ran.
  r = shell(c, {"app"}, ".leader\n.weight x\n.leader\n");
  CHECK(r.status == 1);
  const std::vector<std::string> out = lines(r.output);
  REQUIRE(out.size() == 2);
  CHECK(out[1] == "Error: usage: .weight ADDRESS N");
}

TEST_CASE("shell: .tables, .schema, .indexes and the output modes print as sqlite3 does") {
  Cluster cl;
  ProcessCluster& c = cl.c;
  test::TempDir dir;
  const std::string db = dir.file("reference.db");
  const CommandResult made = sqlite3_cli(db, kSample);
  REQUIRE_MESSAGE(made.status == 0, made.output);
  require_ok(shell(c, {"app"}, kSample), c);

  // .tables: columns as wide as the longest name, filled top to bottom, no
  // sqlite_ tables; a LIKE pattern (quoted when it holds a space).
  std::string out = same_as_sqlite3(c, db, ".tables\n");
  CHECK(out ==
        "au                     v                      zebra_long_name_table\n"
        "other                  w v                  \n"
        "t                      weird name           \n");
  out = same_as_sqlite3(c, db, ".tables T%\n.tables %e%\n.tables 'w v'\n.tables nosuch\n");
  CHECK(out == "t\nother                  weird name             zebra_long_name_table\nw v\n");

  // .schema: every CREATE in the order made, a view's columns in a comment,
  // IF NOT EXISTS for a quoted table name; one table's with its index and trigger.
  out = same_as_sqlite3(c, db, ".schema\n");
  CHECK(out.find("CREATE TABLE t(i INTEGER PRIMARY KEY, f REAL, s TEXT, n);\nCREATE INDEX t_s ON t(s);\n") == 0);
  CHECK(out.find("\nCREATE VIEW v AS SELECT i, s FROM t\n/* v(i,s) */;\n") != std::string::npos);
  CHECK(out.find("\nCREATE TABLE IF NOT EXISTS \"weird name\"(\"a b\", \"select\", c);\n") != std::string::npos);
  CHECK(out.find("\n/* \"w v\"(\"a b\",\"x y\",\"1+2\") */;\n") != std::string::npos);
  CHECK(out.find("\nCREATE TABLE sqlite_sequence(name,seq);\n") != std::string::npos);
  out = same_as_sqlite3(c, db, ".schema T\n.schema \"w v\"\n");
  CHECK(out ==
        "CREATE TABLE t(i INTEGER PRIMARY KEY, f REAL, s TEXT, n);\n"
        "CREATE INDEX t_s ON t(s);\n"
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;\n"
        "CREATE VIEW \"w v\" AS SELECT \"a b\", c AS 'x y', 1+2 FROM \"weird name\"\n"
        "/* \"w v\"(\"a b\",\"x y\",\"1+2\") */;\n");

  // .indexes: all (the automatic one of UNIQUE too), or one table's.
  out = same_as_sqlite3(c, db, ".indexes\n.indexes au\n.indices other\n");
  CHECK(out == "o_ab                   sqlite_autoindex_au_1  t_s                  \nsqlite_autoindex_au_1\no_ab\n");

  // .headers on in list mode (NULL-free columns: see below), csv and column.
  out = same_as_sqlite3(c, db, ".headers on\nSELECT i, f, s FROM t ORDER BY i;\nSELECT 1 AS none WHERE 0;\n");
  CHECK(out == "i|f|s\n1|1.5|a,b\n2|2.0|say \"hi\"\n3|0.25|two\nlines\n4|-7.0|h\xc3\xa9llo\n");
  // sqraft's list mode prints NULL as NULL, as dqlite's shell (sqlite3 prints nothing).
  CommandResult r = shell(c, {"app"}, ".headers on\nSELECT i, n FROM t ORDER BY i;\n");
  require_ok(r, c);
  CHECK(r.output == "i|n\n1|NULL\n2|\n3|3\n4|tab\tx\n");

  // csv: quotes around commas, quotes (doubled), newlines, spaces, tabs,
  // apostrophes, UTF-8 and the empty string; NULL is an empty field; \r\n.
  out = same_as_sqlite3(c, db, ".mode csv\n.headers on\nSELECT * FROM t ORDER BY i;\n"
                               "SELECT 'it''s' AS \"a b\", 'x;y', char(127), 12, -1.5, '', NULL;\n");
  CHECK(out ==
        "i,f,s,n\r\n1,1.5,\"a,b\",\r\n2,2.0,\"say \"\"hi\"\"\",\"\"\r\n3,0.25,\"two\nlines\",3\r\n"
        "4,-7.0,\"h\xc3\xa9llo\",\"tab\tx\"\r\n"
        "\"a b\",\"'x;y'\",char(127),12,-1.5,\"''\",NULL\r\n\"it's\",x;y,\"\x7f\",12,-1.5,\"\",\r\n");
  out = same_as_sqlite3(c, db, ".mode csv\nSELECT i, s FROM t WHERE i < 3 ORDER BY i;\n.mode\n");
  CHECK(out == "1,\"a,b\"\r\n2,\"say \"\"hi\"\"\"\r\ncurrent output mode: csv\n");

  // column: widths from the widest line (header included, shown or not), a
  // dash line, headers on by itself; a value over two lines sets rows apart.
  out = same_as_sqlite3(c, db,
                        ".mode column\nSELECT i, s FROM t WHERE i <> 3 ORDER BY i;\nSELECT * FROM t ORDER BY i;\n"
                        ".headers off\nSELECT i AS longname, f FROM t WHERE i < 3 ORDER BY i;\n");
  CHECK(out.find("i  s       \n-  --------\n1  a,b     \n2  say \"hi\"\n4  h\xc3\xa9llo   \n") == 0);
  CHECK(out.find("\n3  0.25  two       3        \n         lines              \n\n4") != std::string::npos);
  CHECK(out.find("\n1         1.5\n2         2.0\n") != std::string::npos);

  // table: a box, headers always, centred; NULL empty; a tab to the next
  // multiple of 8.
  out = same_as_sqlite3(c, db,
                        ".mode table\nSELECT i, f, n FROM t WHERE i < 3 ORDER BY i;\nSELECT * FROM t ORDER BY i;\n");
  CHECK(out.find("+---+-----+---+\n| i |  f  | n |\n+---+-----+---+\n"
                 "| 1 | 1.5 |   |\n| 2 | 2.0 |   |\n+---+-----+---+\n") == 0);
  CHECK(out.find("| 3 | 0.25 | two      | 3         |\n"
                 "|   |      | lines    |           |\n+---+") != std::string::npos);

  // json: one object per line, escapes, null; nothing for no rows.
  out = same_as_sqlite3(c, db, ".mode json\nSELECT * FROM t ORDER BY i;\nSELECT 1 WHERE 0;\n");
  CHECK(out ==
        "[{\"i\":1,\"f\":1.5,\"s\":\"a,b\",\"n\":null},\n"
        "{\"i\":2,\"f\":2.0,\"s\":\"say \\\"hi\\\"\",\"n\":\"\"},\n"
        "{\"i\":3,\"f\":0.25,\"s\":\"two\\nlines\",\"n\":3},\n"
        "{\"i\":4,\"f\":-7.0,\"s\":\"h\xc3\xa9llo\",\"n\":\"tab\\tx\"}]\n");

  // Where sqraft keeps its own value text in every mode: blobs as x'..'
  // (sqlite3 prints the raw bytes) and floats in their shortest exact form
  // (sqlite3: 15 significant digits, "1.0e+300"; in json 20 digits).
  r = shell(c, {"app"}, ".mode csv\nSELECT x'01ff', 1e300, 0.1;\n.mode json\nSELECT x'01ff' AS b, 0.1 AS f;\n");
  require_ok(r, c);
  CHECK(r.output == "\"x'01ff'\",1e+300,0.1\r\n[{\"b\":\"01ff\",\"f\":0.1}]\n");
  r = shell(c, {"app"}, ".mode table\nSELECT x'01ff' AS b;\n");
  require_ok(r, c);
  CHECK(r.output == "+---------+\n|    b    |\n+---------+\n| x'01ff' |\n+---------+\n");
}

TEST_CASE("shell: .read, .bail, .output and .timer") {
  Cluster cl;
  ProcessCluster& c = cl.c;
  test::TempDir dir;
  const std::string steps = dir.file("steps.sql");
  write_file(steps,
             "CREATE TABLE r(x);\nINSERT INTO r VALUES(1);\nINSERT INTO nope VALUES(2);\n"
             "INSERT INTO r\n  VALUES(3);\nSELECT count(*) FROM r;\n");

  // Not a terminal, so .bail starts on: the error stops the file and the
  // input after it, exit status 1.
  CommandResult r = shell(c, {"bail_default"}, ".read " + steps + "\nSELECT 'after';\n");
  CHECK(r.status == 1);
  CHECK(r.output == "Error: no such table: nope\n");
  r = shell(c, {"bail_default", "SELECT count(*) FROM r"});
  require_ok(r, c);
  CHECK(r.output == "1\n");

  // .bail off: the rest of the file runs, then the input after it; the exit
  // status is still 1 (as sqlite3's, whose error text differs: "Parse error
  // near line 3: no such table: nope").
  r = shell(c, {"bail_off"}, ".bail off\n.read " + steps + "\nSELECT 'after';\n");
  CHECK(r.status == 1);
  CHECK(r.output == "Error: no such table: nope\n2\nafter\n");
  // .bail on again stops.
  r = shell(c, {"bail_on"}, ".bail off\n.bail on\n.read " + steps + "\nSELECT 'after';\n");
  CHECK(r.status == 1);
  CHECK(r.output == "Error: no such table: nope\n");

  // On a terminal (util-linux's `script` gives it one) .bail starts off and
  // the prompt goes on after an error; .bail on leaves at the error, status 1.
  const auto on_terminal = [&](const std::string& input) {
    std::string command;
    for (const std::string& word : shell_argv(c, {"app"})) command += "'" + word + "' ";
    return test::run_command({"env", "HOME=" + dir.path().string(), "script", "-qec", command, "/dev/null"}, input);
  };
  r = on_terminal("SELECT * FROM nope;\nSELECT 'after';\n");
  CHECK_MESSAGE(r.status == 0, r.output);
  CHECK(r.output.find("Error: no such table: nope\r\n") != std::string::npos);
  CHECK(r.output.find("\nafter\r\n") != std::string::npos);  // the row, not the echoed input
  r = on_terminal(".bail on\nSELECT * FROM nope;\nSELECT 'after';\n");
  CHECK_MESSAGE(r.status == 1, r.output);
  CHECK(r.output.find("Error: no such table: nope\r\n") != std::string::npos);
  CHECK(r.output.find("\nafter\r\n") == std::string::npos);

  // Nested .read, commands in the file, its last statement without ';'.
  const std::string inner = dir.file("inner.sql");
  write_file(inner, ".headers on\nSELECT 'in' AS w;\nSELECT 'last'\n  AS w");
  const std::string outer = dir.file("outer.sql");
  write_file(outer, "SELECT 'before';\n.read " + inner + "\nSELECT 'after' AS w;\n");
  r = shell(c, {"app"}, ".read " + outer + "\n");
  require_ok(r, c);
  CHECK(r.output == "before\nw\nin\nw\nlast\nw\nafter\n");
  // A file that reads itself stops at the depth limit.
  const std::string loop = dir.file("loop.sql");
  write_file(loop, "SELECT 'x';\n.read " + loop + "\n");
  r = shell(c, {"app"}, ".read " + loop + "\n");
  CHECK(r.status == 1);
  std::string expected;
  for (int i = 0; i < 16; i++) expected += "x\n";
  CHECK(r.output == expected + "Error: .read nested more than 16 files deep at " + loop + "\n");
  r = shell(c, {"app", ".read " + dir.file("missing.sql")});
  CHECK(r.status == 1);
  CHECK(r.output == "Error: cannot open \"" + dir.file("missing.sql") + "\"\n");

  // .output FILE takes query and command output (truncating the file); no
  // argument brings it back to stdout. Same as sqlite3 on the same input.
  const std::string script_tail = "\nSELECT 2;\n.tables r\n.output\nSELECT 3;\n";
  write_file(dir.file("sqraft.txt"), "old text\n");
  r = shell(c, {"bail_default"}, "SELECT 1;\n.output " + dir.file("sqraft.txt") + script_tail);
  require_ok(r, c);
  CHECK(r.output == "1\n3\n");
  CHECK(read_file(dir.file("sqraft.txt")) == "2\nr\n");
  REQUIRE(sqlite3_cli(dir.file("reference.db"), "CREATE TABLE r(x);").status == 0);
  const CommandResult want =
      sqlite3_cli(dir.file("reference.db"), "SELECT 1;\n.output " + dir.file("sqlite3.txt") + script_tail);
  CHECK(want.output == r.output);
  CHECK(read_file(dir.file("sqlite3.txt")) == read_file(dir.file("sqraft.txt")));
  r = shell(c, {"app", ".output " + dir.file("no/such/dir")});
  CHECK(r.status == 1);
  CHECK(r.output == "Error: cannot write to \"" + dir.file("no/such/dir") + "\"\n");

  // .timer on: a Run Time line after each statement (on stdout even under
  // .output, as in sqlite3), none after .timer off.
  r = shell(c, {"app"}, ".timer on\nSELECT 5;\nCREATE TABLE timed(x);\n.output " + dir.file("timed.txt") +
                            "\nSELECT 6;\n.output\n.timer off\nSELECT 7;\n");
  require_ok(r, c);
  const std::vector<std::string> out = lines(r.output);
  REQUIRE(out.size() == 5);
  const std::regex run_time("Run Time: real [0-9]+\\.[0-9]{3} user [0-9]+\\.[0-9]{6} sys [0-9]+\\.[0-9]{6}");
  CHECK(out[0] == "5");
  CHECK_MESSAGE(std::regex_match(out[1], run_time), out[1]);
  CHECK_MESSAGE(std::regex_match(out[2], run_time), out[2]);
  CHECK_MESSAGE(std::regex_match(out[3], run_time), out[3]);
  CHECK(out[4] == "7");
  CHECK(read_file(dir.file("timed.txt")) == "6\n");
}
