/* The SQLite-replacement mode in one process: three nodes, each with its VFS
 * registered under its own name (sqraft_node_set_vfs_name), and the
 * application's own sqlite3 connections on them. Writes on the leader reach
 * every node and the wire protocol's clients; a follower refuses writes with
 * SQRAFT_READONLY_NOTLEADER and changes nothing; eight threads writing and
 * reading on the leader at once lose no row and never see "database is
 * locked" within their busy timeout. Exits non-zero on failure. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sqlite3.h>
#include <sqraft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failures = 0;
#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      failures++;                                                                \
    }                                                                            \
  } while (0)
#define REQUIRE(cond, msg)                                                               \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "%s:%d: REQUIRE(%s) failed: %s\n", __FILE__, __LINE__, #cond, msg); \
      exit(1);                                                                           \
    }                                                                                    \
  } while (0)

enum { kNodes = 3, kThreads = 8, kRowsPerThread = 100 };

static char vfs_names[kNodes][64];

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A connection to app.db on `node`; a follower may not have applied the
 * database's creation yet, so it waits for it (up to 10 s). */
static sqlite3* open_on(int node) {
  sqlite3* db = NULL;
  int rc = SQLITE_CANTOPEN;
  for (double deadline = now_s() + 10; now_s() < deadline; usleep(20000)) {
    rc = sqlite3_open_v2("app.db", &db, SQLITE_OPEN_READWRITE, vfs_names[node]);
    if (rc == SQLITE_OK) break;
    sqlite3_close(db);
    db = NULL;
  }
  REQUIRE(rc == SQLITE_OK, sqlite3_errstr(rc));
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 5000);
  return db;
}

/* The single text value of `sql`, or "ERROR <code>" (static buffer). */
static const char* scalar(sqlite3* db, const char* sql) {
  static char out[256];
  sqlite3_stmt* stmt = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    const unsigned char* t = sqlite3_column_text(stmt, 0);
    snprintf(out, sizeof out, "%s", t ? (const char*)t : "NULL");
  } else {
    snprintf(out, sizeof out, "ERROR %d", sqlite3_extended_errcode(db));
  }
  sqlite3_finalize(stmt);
  return out;
}

static long long count_rows(sqlite3* db) {
  sqlite3_stmt* stmt = NULL;
  long long n = -1;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &stmt, NULL) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    n = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  return n;
}

/* Each thread has its own connection to the leader and inserts its rows one
 * autocommit statement at a time, reading the count after each. */
struct worker {
  int node;
  int id;
  int errors;
  char error[256];
};

static void* write_and_read(void* arg) {
  struct worker* w = arg;
  sqlite3* db = open_on(w->node);
  sqlite3_stmt* ins = NULL;
  if (sqlite3_prepare_v2(db, "INSERT INTO t(thread, i) VALUES (?, ?)", -1, &ins, NULL) != SQLITE_OK) {
    snprintf(w->error, sizeof w->error, "prepare: %s", sqlite3_errmsg(db));
    w->errors++;
  }
  for (int i = 0; ins != NULL && i < kRowsPerThread; i++) {
    sqlite3_bind_int(ins, 1, w->id);
    sqlite3_bind_int(ins, 2, i);
    int rc = sqlite3_step(ins);
    sqlite3_reset(ins);
    if (rc != SQLITE_DONE) {
      snprintf(w->error, sizeof w->error, "insert %d: %d %s", i, sqlite3_extended_errcode(db), sqlite3_errmsg(db));
      w->errors++;
    }
    if (count_rows(db) < i + 1) w->errors++;
  }
  sqlite3_finalize(ins);
  sqlite3_close(db);
  return NULL;
}

int main(void) {
  char base[256];
  snprintf(base, sizeof base, "/tmp/sqraft-embedded-%d", (int)getpid());
  mkdir(base, 0755);
  char addr[kNodes][64];
  sqraft_server cluster[kNodes];
  for (int i = 0; i < kNodes; i++) {
    snprintf(addr[i], sizeof addr[i], "@sqraft-embedded-%d-%d", (int)getpid(), i + 1);
    cluster[i].id = (sqraft_id)(i + 1);
    cluster[i].address = addr[i];
    cluster[i].role = SQRAFT_VOTER;
    snprintf(vfs_names[i], sizeof vfs_names[i], "sqraft-embedded-%d", i + 1);
  }
  sqraft_node* nodes[kNodes];
  for (int i = 0; i < kNodes; i++) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/node-%d", base, i + 1);
    REQUIRE(sqraft_node_create(cluster[i].id, addr[i], dir, &nodes[i]) == SQRAFT_OK, "create");
    REQUIRE(sqraft_node_set_network_latency_ms(nodes[i], 5) == SQRAFT_OK, sqraft_node_errmsg(nodes[i]));
    REQUIRE(sqraft_node_set_cluster(nodes[i], cluster, kNodes) == SQRAFT_OK, sqraft_node_errmsg(nodes[i]));
    REQUIRE(sqraft_node_set_vfs_name(nodes[i], vfs_names[i]) == SQRAFT_OK, sqraft_node_errmsg(nodes[i]));
    REQUIRE(sqraft_node_start(nodes[i]) == SQRAFT_OK, sqraft_node_errmsg(nodes[i]));
  }
  /* A second node may not take a VFS name SQLite already has. */
  {
    sqraft_node* dup = NULL;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/dup", base);
    REQUIRE(sqraft_node_create(9, "@sqraft-embedded-dup", dir, &dup) == SQRAFT_OK, "create");
    REQUIRE(sqraft_node_set_vfs_name(dup, vfs_names[0]) == SQRAFT_OK, sqraft_node_errmsg(dup));
    CHECK(sqraft_node_start(dup) == SQRAFT_ERROR);
    CHECK(strstr(sqraft_node_errmsg(dup), "already has a VFS") != NULL);
    sqraft_node_destroy(dup);
  }

  /* The leader is the node whose connection may write: the others refuse,
   * with SQLITE_BUSY while the election runs. */
  int leader = -1;
  sqlite3* conns[kNodes] = {NULL, NULL, NULL};
  for (double deadline = now_s() + 20; leader < 0 && now_s() < deadline;) {
    for (int i = 0; i < kNodes && leader < 0; i++) {
      sqlite3* db = NULL;
      if (sqlite3_open_v2("app.db", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs_names[i]) != SQLITE_OK) {
        sqlite3_close(db);
        continue;
      }
      sqlite3_extended_result_codes(db, 1);
      if (sqlite3_exec(db, "CREATE TABLE t(thread INTEGER, i INTEGER, PRIMARY KEY(thread, i))", NULL, NULL, NULL) ==
          SQLITE_OK) {
        leader = i;
      }
      sqlite3_close(db);
    }
    if (leader < 0) usleep(50000);
  }
  REQUIRE(leader >= 0, "no node took a write within 20 s");
  for (int i = 0; i < kNodes; i++) conns[i] = open_on(i);

  /* One explicit transaction, then eight threads at once. */
  sqlite3* l = conns[leader];
  CHECK(sqlite3_exec(l, "BEGIN; INSERT INTO t VALUES (-1, 1); INSERT INTO t VALUES (-1, 2); COMMIT", NULL, NULL,
                     NULL) == SQLITE_OK);
  CHECK(sqlite3_last_insert_rowid(l) > 0);
  pthread_t threads[kThreads];
  struct worker workers[kThreads];
  for (int t = 0; t < kThreads; t++) {
    memset(&workers[t], 0, sizeof workers[t]);
    workers[t].node = leader;
    workers[t].id = t;
    pthread_create(&threads[t], NULL, write_and_read, &workers[t]);
  }
  int errors = 0;
  for (int t = 0; t < kThreads; t++) {
    pthread_join(threads[t], NULL);
    if (workers[t].errors) fprintf(stderr, "thread %d: %d errors, last: %s\n", t, workers[t].errors, workers[t].error);
    errors += workers[t].errors;
  }
  CHECK(errors == 0);
  long long expected = 2 + kThreads * kRowsPerThread;
  CHECK(count_rows(l) == expected);

  /* Every follower gets every row; a write there is refused, leaving nothing. */
  for (int i = 0; i < kNodes; i++) {
    if (i == leader) continue;
    long long n = -1;
    for (double deadline = now_s() + 10; (n = count_rows(conns[i])) != expected && now_s() < deadline;) usleep(20000);
    CHECK(n == expected);
    int rc = sqlite3_exec(conns[i], "INSERT INTO t VALUES (99, 99)", NULL, NULL, NULL);
    CHECK(rc == SQRAFT_READONLY_NOTLEADER);
    CHECK(sqlite3_extended_errcode(conns[i]) == SQRAFT_READONLY_NOTLEADER);
    CHECK((sqlite3_errcode(conns[i]) & 0xff) == SQLITE_READONLY);
    CHECK(count_rows(conns[i]) == expected);
  }

  /* Pragmas: every node names the leader; a follower reaches the leader's
   * applied index by waiting for it and then reads what the leader wrote;
   * linearizable reads are the leader's, a follower refuses them. */
  {
    char leader_index[64];
    snprintf(leader_index, sizeof leader_index, "%s", scalar(l, "PRAGMA sqraft_applied_index"));
    CHECK(atoll(leader_index) > 0);
    CHECK(sqlite3_exec(l, "PRAGMA sqraft_read = linearizable", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(count_rows(l) == expected);
    CHECK(sqlite3_exec(l, "INSERT INTO t VALUES (-2, 1)", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(count_rows(l) == expected + 1);
    CHECK(sqlite3_exec(l, "PRAGMA sqraft_read = local", NULL, NULL, NULL) == SQLITE_OK);
    snprintf(leader_index, sizeof leader_index, "%s", scalar(l, "PRAGMA sqraft_applied_index"));
    for (int i = 0; i < kNodes; i++) {
      CHECK(strcmp(scalar(conns[i], "PRAGMA sqraft_leader"), addr[leader]) == 0);
      if (i == leader) continue;
      char wait[128];
      snprintf(wait, sizeof wait, "PRAGMA sqraft_wait_index = %s", leader_index);
      CHECK(atoll(scalar(conns[i], wait)) >= atoll(leader_index));
      CHECK(count_rows(conns[i]) == expected + 1);
      snprintf(wait, sizeof wait, "PRAGMA sqraft_wait_index = %lld", atoll(leader_index) + 1000000);
      CHECK(sqlite3_exec(conns[i], "PRAGMA sqraft_timeout = 100", NULL, NULL, NULL) == SQLITE_OK);
      CHECK(strcmp(scalar(conns[i], wait), "ERROR 5") == 0);
      CHECK(sqlite3_exec(conns[i], "PRAGMA sqraft_read = linearizable", NULL, NULL, NULL) == SQLITE_OK);
      CHECK(count_rows(conns[i]) == -1);
      CHECK(sqlite3_extended_errcode(conns[i]) == SQRAFT_NOTLEADER);
      CHECK(sqlite3_exec(conns[i], "PRAGMA sqraft_read = local", NULL, NULL, NULL) == SQLITE_OK);
    }
  }

  /* The wire protocol's clients see the same database. */
  {
    const char* addresses[kNodes] = {addr[0], addr[1], addr[2]};
    sqraft_client* c = NULL;
    int rc = sqraft_client_open(addresses, kNodes, "app.db", &c);
    REQUIRE(rc == SQRAFT_OK, c ? sqraft_client_errmsg(c) : "open");
    sqraft_rows* rows = NULL;
    REQUIRE(sqraft_query(c, "SELECT count(*) FROM t", NULL, 0, &rows) == SQRAFT_OK, sqraft_client_errmsg(c));
    CHECK(sqraft_rows_next(rows) == SQRAFT_ROW);
    CHECK(sqraft_rows_value(rows, 0)->integer == expected + 1);
    sqraft_rows_close(rows);
    CHECK(sqraft_exec(c, "INSERT INTO t VALUES (100, 1)", NULL, 0, NULL, NULL) == SQRAFT_OK);
    sqraft_client_close(c);
    CHECK(count_rows(l) == expected + 2);
  }

  for (int i = 0; i < kNodes; i++) sqlite3_close(conns[i]);
  for (int i = 0; i < kNodes; i++) {
    CHECK(sqraft_node_stop(nodes[i]) == SQRAFT_OK);
    sqraft_node_destroy(nodes[i]);
  }
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", base);
  if (failures) {
    fprintf(stderr, "embedded: %d checks failed\n", failures);
    return 1;
  }
  printf("embedded: all checks passed (leader was node %d)\n", leader + 1);
  return 0;
}
