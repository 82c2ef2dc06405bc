// How a statement's text decides where it runs (classify_sql,
// single_statement), and which statements may run on the loop thread
// (bounded_cost), on a plain in-memory SQLite connection.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <string>

#include "statement.h"
#include "support/sql.h"

using namespace sqraft;

TEST_CASE("statement: the first keywords route a statement") {
  CHECK(classify_sql("SELECT 1") == StmtKind::kRead);
  CHECK(classify_sql("  -- a comment\n /* another */ values (1)") == StmtKind::kRead);
  CHECK(classify_sql("insert into t values (1)") == StmtKind::kWrite);
  for (const char* w : {"UPDATE t SET x = 1", "DELETE FROM t", "REPLACE INTO t VALUES (1)", "DROP TABLE t",
                        "ALTER TABLE t ADD COLUMN y"}) {
    CAPTURE(w);
    CHECK(classify_sql(w) == StmtKind::kWrite);
  }
  CHECK(classify_sql("BEGIN IMMEDIATE") == StmtKind::kBegin);
  CHECK(classify_sql("COMMIT") == StmtKind::kEnd);
  CHECK(classify_sql("end transaction;") == StmtKind::kEnd);
  CHECK(classify_sql("ROLLBACK") == StmtKind::kEnd);
  // ROLLBACK TO ends no transaction; savepoints belong to the writer.
  CHECK(classify_sql("ROLLBACK TO sp") == StmtKind::kWriteExclusive);
  CHECK(classify_sql("ROLLBACK TRANSACTION TO sp") == StmtKind::kWriteExclusive);
  CHECK(classify_sql("SAVEPOINT sp") == StmtKind::kWriteExclusive);
  CHECK(classify_sql("RELEASE sp") == StmtKind::kWriteExclusive);
  // Unknown from the text alone: prepared to find out.
  CHECK(classify_sql("CREATE TEMP TABLE x(a)") == StmtKind::kOther);
  CHECK(classify_sql("WITH c AS (SELECT 1) SELECT * FROM c") == StmtKind::kOther);
  CHECK(classify_sql("PRAGMA user_version") == StmtKind::kOther);
  CHECK(classify_sql("") == StmtKind::kOther);
  // Two statements are never one kind.
  CHECK(classify_sql("SELECT 1; DELETE FROM t") == StmtKind::kOther);
  CHECK(classify_sql("BEGIN; INSERT INTO t VALUES (1)") == StmtKind::kOther);
}

TEST_CASE("statement: separators inside strings, names and comments do not split") {
  CHECK(single_statement("SELECT 1"));
  CHECK(single_statement("SELECT 1;"));
  CHECK(single_statement("SELECT 1; ;  -- trailing\n/* and */ ;"));
  CHECK(single_statement("SELECT 'a;b', \"c;d\", `e;f`, [g;h]"));
  CHECK(single_statement("SELECT 1 -- ; not here\n"));
  CHECK(single_statement("SELECT /* ; */ 1"));
  CHECK_FALSE(single_statement("SELECT 1; SELECT 2"));
  CHECK_FALSE(single_statement("SELECT 'x'';'; DELETE FROM t"));
}

TEST_CASE("statement: only statements whose every step is bounded may run on the loop thread") {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(":memory:", &db) == SQLITE_OK);
  REQUIRE(test::exec(db, "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)") == SQLITE_OK);
  CHECK(bounded_cost(db, "SELECT v FROM t WHERE k = ?"));
  CHECK(bounded_cost(db, "SELECT k, length(v), upper(v) FROM t WHERE k > 10 LIMIT 5"));
  // One call that can run for a second whatever it returns.
  CHECK_FALSE(bounded_cost(db, "SELECT printf('%.*c', 900000000, 'x')"));
  CHECK_FALSE(bounded_cost(db, "SELECT count(*) FROM t"));
  CHECK_FALSE(bounded_cost(db, "PRAGMA integrity_check"));
  CHECK_FALSE(bounded_cost(db, "SELECT * FROM pragma_table_info('t')"));
  CHECK_FALSE(bounded_cost(db, "SELECT v FROM t WHERE k = 1 /*" + std::string(kBoundedSqlBytesMax, ' ') + "*/"));
  CHECK_FALSE(bounded_cost(db, "SELECT nonsense FROM nowhere"));  // does not compile: not bounded
  sqlite3_close(db);
}
