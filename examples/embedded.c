/* The SQLite API on a replicated database, linked in.
 *
 * Starts a one-node cluster in this process with its VFS registered as
 * "sqraft", then uses nothing but sqlite3_* on "notes.db": a table, an
 * insert, a prepared query, a pragma of sqraft's. More nodes are the same
 * program with more entries in the cluster list (see
 * docs/sqlite-replacement.md).
 *
 *   cc -std=c11 embedded.c $(pkg-config --cflags --libs sqraft sqlite3)
 *   ./a.out /tmp/notes-node   (prints "1 replicated hello" and the leader) */
#include <sqlite3.h>
#include <sqraft.h>
#include <stdio.h>

int main(int argc, char** argv) {
  const char* dir = argc > 1 ? argv[1] : "/tmp/sqraft-example-embedded";
  const char* address = "@sqraft-example-embedded";
  sqraft_node* node = NULL;
  if (sqraft_node_create(1, address, dir, &node) != SQRAFT_OK) return 1;
  sqraft_server self = {1, address, SQRAFT_VOTER};
  sqraft_node_set_cluster(node, &self, 1);
  sqraft_node_set_vfs_name(node, "sqraft");
  if (sqraft_node_start(node) != SQRAFT_OK) {
    fprintf(stderr, "start: %s\n", sqraft_node_errmsg(node));
    sqraft_node_destroy(node);
    return 1;
  }

  /* From here on, plain SQLite. Creating a database needs a leader: a new
   * node elects itself within a second, so the open is retried until then. */
  sqlite3* db = NULL;
  int rc = sqlite3_open_v2("notes.db", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "sqraft");
  for (int tries = 0; rc != SQLITE_OK && tries < 100; tries++) {
    sqlite3_close(db);
    sqlite3_sleep(50);
    rc = sqlite3_open_v2("notes.db", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "sqraft");
  }
  if (rc != SQLITE_OK) {
    fprintf(stderr, "open: %s\n", sqlite3_errmsg(db));
    return 1;
  }
  sqlite3_busy_timeout(db, 5000);
  char* err = NULL;
  rc = sqlite3_exec(db,
                    "CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, text TEXT);"
                    "INSERT INTO notes(text) VALUES ('replicated hello');",
                    NULL, NULL, &err); /* returns once a quorum stored it */
  if (rc != SQLITE_OK) {
    fprintf(stderr, "write: %s\n", err);
    return 1;
  }
  sqlite3_stmt* stmt = NULL;
  sqlite3_prepare_v2(db, "SELECT id, text FROM notes WHERE id = ?", -1, &stmt, NULL);
  sqlite3_bind_int64(stmt, 1, sqlite3_last_insert_rowid(db));
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    printf("%lld %s\n", (long long)sqlite3_column_int64(stmt, 0), (const char*)sqlite3_column_text(stmt, 1));
  }
  sqlite3_finalize(stmt);
  sqlite3_prepare_v2(db, "PRAGMA sqraft_leader", -1, &stmt, NULL);
  if (sqlite3_step(stmt) == SQLITE_ROW) printf("leader %s\n", (const char*)sqlite3_column_text(stmt, 0));
  sqlite3_finalize(stmt);

  sqlite3_close(db); /* before the node stops */
  sqraft_node_stop(node);
  sqraft_node_destroy(node);
  return 0;
}
