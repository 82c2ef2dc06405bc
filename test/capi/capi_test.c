/* The C API, used from C: a 1-node and a 3-node cluster in one process, SQL
 * through the client (every value type, rows, errors), cluster management,
 * DESCRIBE/WEIGHT/DUMP, and the node lifecycle. Exits non-zero on failure. */
#define _GNU_SOURCE
#include <sqraft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures = 0;
#define CHECK(cond)                                                    \
  do {                                                                 \
    if (!(cond)) {                                                     \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      failures++;                                                      \
    }                                                                  \
  } while (0)
#define REQUIRE_OK(call, obj_errmsg)                                              \
  do {                                                                            \
    int rc_ = (call);                                                             \
    if (rc_ != SQRAFT_OK) {                                                       \
      fprintf(stderr, "%s:%d: %s -> %d: %s\n", __FILE__, __LINE__, #call, rc_, obj_errmsg); \
      exit(1);                                                                    \
    }                                                                             \
  } while (0)

static char base_dir[256];

/* A plain HTTP/1.0 GET on 127.0.0.1:port; the response (headers and body,
 * NUL-terminated) in `out`. Returns the bytes read or -1. */
static int http_get(int port, const char* path, char* out, size_t size) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr*)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  char request[256];
  const int n = snprintf(request, sizeof request, "GET %s HTTP/1.0\r\n\r\n", path);
  if (write(fd, request, (size_t)n) != n) {
    close(fd);
    return -1;
  }
  size_t total = 0;
  ssize_t r;
  while (total + 1 < size && (r = read(fd, out + total, size - 1 - total)) > 0) total += (size_t)r;
  out[total] = '\0';
  close(fd);
  return (int)total;
}

static sqraft_node* start_node(sqraft_id id, const char* address, const sqraft_server* cluster, unsigned n) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/node-%llu", base_dir, id);
  mkdir(dir, 0755);
  sqraft_node* node = NULL;
  REQUIRE_OK(sqraft_node_create(id, address, dir, &node), "create");
  REQUIRE_OK(sqraft_node_set_network_latency_ms(node, 5), sqraft_node_errmsg(node));
  REQUIRE_OK(sqraft_node_set_failure_domain(node, id * 10), sqraft_node_errmsg(node));
  REQUIRE_OK(sqraft_node_set_cluster(node, cluster, n), sqraft_node_errmsg(node));
  REQUIRE_OK(sqraft_node_start(node), sqraft_node_errmsg(node));
  CHECK(sqraft_node_set_weight(node, 3) == SQRAFT_MISUSE); /* too late: it runs */
  return node;
}

static void count_progress(void* arg, unsigned long long done, unsigned long long total) {
  int* calls = (int*)arg;
  if (done <= total) (*calls)++;
}

/* Backup of the client's database (101 rows in t), then that file imported
 * as a new database: refused a second time, accepted with REPLACE. */
static void transfer(sqraft_client* c, const char* const* addresses, unsigned n) {
  char backup[512], wal[520];
  snprintf(backup, sizeof backup, "%s/backup.db", base_dir);
  snprintf(wal, sizeof wal, "%s-wal", backup);
  int calls = 0;
  REQUIRE_OK(sqraft_backup(c, NULL, backup, count_progress, &calls), sqraft_client_errmsg(c));
  CHECK(calls > 0);
  /* Another node's copy, as of what it has applied (maybe a little behind). */
  char other[512];
  snprintf(other, sizeof other, "%s/backup-other.db", base_dir);
  REQUIRE_OK(sqraft_backup(c, addresses[n - 1], other, NULL, NULL), sqraft_client_errmsg(c));
  unlink(other);
  struct stat st;
  CHECK(stat(backup, &st) == 0 && st.st_size >= 4096);
  CHECK(stat(wal, &st) != 0); /* standalone: no -wal */
  FILE* f = fopen(backup, "rb");
  unsigned char header[20] = {0};
  CHECK(f != NULL && fread(header, 1, sizeof header, f) == sizeof header);
  if (f) fclose(f);
  CHECK(memcmp(header, "SQLite format 3", 16) == 0);
  CHECK(header[18] == 1 && header[19] == 1); /* rollback journal, not WAL */

  sqraft_client* copy = NULL;
  REQUIRE_OK(sqraft_client_open(addresses, n, "capi-copy.db", &copy), sqraft_client_errmsg(copy));
  REQUIRE_OK(sqraft_import(copy, backup, 0, NULL, NULL), sqraft_client_errmsg(copy));
  sqraft_rows* rows = NULL;
  REQUIRE_OK(sqraft_query(copy, "SELECT count(*) FROM t", NULL, 0, &rows), sqraft_client_errmsg(copy));
  CHECK(sqraft_rows_next(rows) == SQRAFT_ROW && sqraft_rows_value(rows, 0)->integer == 101);
  sqraft_rows_close(rows);
  CHECK(sqraft_import(copy, backup, 0, NULL, NULL) == SQRAFT_ERROR);
  CHECK(strstr(sqraft_client_errmsg(copy), "already has tables") != NULL);
  REQUIRE_OK(sqraft_import(copy, backup, SQRAFT_IMPORT_REPLACE, NULL, NULL), sqraft_client_errmsg(copy));
  CHECK(sqraft_import(copy, "/nonexistent/file.db", 0, NULL, NULL) == SQRAFT_NOTFOUND);
  CHECK(sqraft_import(copy, backup, 99, NULL, NULL) == SQRAFT_MISUSE);
  REQUIRE_OK(sqraft_exec(copy, "INSERT INTO t(i) VALUES (1)", NULL, 0, NULL, NULL), sqraft_client_errmsg(copy));
  sqraft_client_close(copy);
  unlink(backup);
}

static void exercise_sql(const char* const* addresses, unsigned n) {
  sqraft_client* c = NULL;
  int rc = sqraft_client_open(addresses, n, "capi.db", &c);
  if (rc != SQRAFT_OK) {
    fprintf(stderr, "client_open: %d %s\n", rc, sqraft_client_errmsg(c));
    exit(1);
  }
  REQUIRE_OK(sqraft_exec(c, "CREATE TABLE t(i INTEGER, f REAL, s TEXT, b BLOB, n, d DATETIME, ok BOOLEAN)", NULL, 0, NULL, NULL),
             sqraft_client_errmsg(c));
  sqraft_value params[7];
  memset(params, 0, sizeof params);
  params[0].type = SQRAFT_INTEGER;
  params[0].integer = -42;
  params[1].type = SQRAFT_FLOAT;
  params[1].real = 3.25;
  params[2].type = SQRAFT_TEXT;
  params[2].data = "héllo";
  params[2].size = strlen("héllo");
  params[3].type = SQRAFT_BLOB;
  params[3].data = "\x00\x01\x02";
  params[3].size = 3;
  params[4].type = SQRAFT_NULL;
  params[5].type = SQRAFT_ISO8601;
  params[5].data = "2024-02-29 12:00:00";
  params[5].size = strlen(params[5].data);
  params[6].type = SQRAFT_BOOLEAN;
  params[6].integer = 1;
  unsigned long long id = 0, changed = 0;
  REQUIRE_OK(sqraft_exec(c, "INSERT INTO t VALUES(?, ?, ?, ?, ?, ?, ?)", params, 7, &id, &changed), sqraft_client_errmsg(c));
  CHECK(id == 1);
  CHECK(changed == 1);
  for (int i = 0; i < 100; i++) {
    sqraft_value v;
    memset(&v, 0, sizeof v);
    v.type = SQRAFT_INTEGER;
    v.integer = i;
    REQUIRE_OK(sqraft_exec(c, "INSERT INTO t(i) VALUES(?)", &v, 1, NULL, NULL), sqraft_client_errmsg(c));
  }

  sqraft_rows* rows = NULL;
  REQUIRE_OK(sqraft_query(c, "SELECT i, f, s, b, n, d, ok FROM t WHERE i = -42", NULL, 0, &rows), sqraft_client_errmsg(c));
  CHECK(sqraft_rows_column_count(rows) == 7);
  CHECK(strcmp(sqraft_rows_column_name(rows, 2), "s") == 0);
  CHECK(sqraft_rows_next(rows) == SQRAFT_ROW);
  CHECK(sqraft_rows_value(rows, 0)->integer == -42);
  CHECK(sqraft_rows_value(rows, 1)->real == 3.25);
  CHECK(strcmp(sqraft_rows_value(rows, 2)->data, "héllo") == 0);
  CHECK(sqraft_rows_value(rows, 3)->type == SQRAFT_BLOB && sqraft_rows_value(rows, 3)->size == 3 &&
        memcmp(sqraft_rows_value(rows, 3)->data, "\x00\x01\x02", 3) == 0);
  CHECK(sqraft_rows_value(rows, 4)->type == SQRAFT_NULL);
  CHECK(sqraft_rows_value(rows, 5)->type == SQRAFT_ISO8601);
  CHECK(sqraft_rows_value(rows, 6)->type == SQRAFT_BOOLEAN && sqraft_rows_value(rows, 6)->integer == 1);
  CHECK(sqraft_rows_next(rows) == SQRAFT_DONE);
  REQUIRE_OK(sqraft_rows_close(rows), sqraft_client_errmsg(c));

  /* A cursor closed early, then the connection keeps working. */
  REQUIRE_OK(sqraft_query(c, "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM s WHERE x < 50000) SELECT x, 'padding padding' FROM s",
                          NULL, 0, &rows), sqraft_client_errmsg(c));
  CHECK(sqraft_rows_next(rows) == SQRAFT_ROW);
  REQUIRE_OK(sqraft_rows_close(rows), sqraft_client_errmsg(c));
  REQUIRE_OK(sqraft_query(c, "SELECT count(*) FROM t", NULL, 0, &rows), sqraft_client_errmsg(c));
  CHECK(sqraft_rows_next(rows) == SQRAFT_ROW);
  CHECK(sqraft_rows_value(rows, 0)->integer == 101);
  sqraft_rows_close(rows);

  /* Errors come back as codes and messages. */
  CHECK(sqraft_exec(c, "INSERT INTO nope VALUES(1)", NULL, 0, NULL, NULL) == SQRAFT_ERROR);
  CHECK(strstr(sqraft_client_errmsg(c), "no such table") != NULL);
  CHECK(sqraft_exec(c, NULL, NULL, 0, NULL, NULL) == SQRAFT_MISUSE);

  /* A transaction. */
  REQUIRE_OK(sqraft_exec(c, "BEGIN", NULL, 0, NULL, NULL), sqraft_client_errmsg(c));
  REQUIRE_OK(sqraft_exec(c, "DELETE FROM t WHERE i >= 50", NULL, 0, NULL, &changed), sqraft_client_errmsg(c));
  CHECK(changed == 50);
  REQUIRE_OK(sqraft_exec(c, "ROLLBACK", NULL, 0, NULL, NULL), sqraft_client_errmsg(c));
  REQUIRE_OK(sqraft_query(c, "SELECT count(*) FROM t", NULL, 0, &rows), sqraft_client_errmsg(c));
  CHECK(sqraft_rows_next(rows) == SQRAFT_ROW && sqraft_rows_value(rows, 0)->integer == 101);
  sqraft_rows_close(rows);

  /* Cluster information. */
  sqraft_server* servers = NULL;
  unsigned n_servers = 0;
  REQUIRE_OK(sqraft_client_cluster(c, &servers, &n_servers), sqraft_client_errmsg(c));
  CHECK(n_servers == n);
  for (unsigned i = 0; i < n_servers; i++) CHECK(servers[i].role == SQRAFT_VOTER);
  sqraft_free(servers);
  sqraft_id leader_id = 0;
  char* leader_address = NULL;
  REQUIRE_OK(sqraft_client_leader(c, &leader_id, &leader_address), sqraft_client_errmsg(c));
  CHECK(leader_id != 0 && leader_address != NULL);

  unsigned long long domain = 0, weight = 0;
  char* err = NULL;
  REQUIRE_OK(sqraft_set_weight(leader_address, 7, &err), err ? err : "");
  REQUIRE_OK(sqraft_describe(leader_address, &domain, &weight, &err), err ? err : "");
  CHECK(domain == leader_id * 10);
  CHECK(weight == 7);
  REQUIRE_OK(sqraft_dump(leader_address, "capi.db", base_dir, &err), err ? err : "");
  char path[512];
  snprintf(path, sizeof path, "%s/capi.db", base_dir);
  struct stat st;
  CHECK(stat(path, &st) == 0 && st.st_size >= 4096);
  sqraft_free(leader_address);
  transfer(c, addresses, n);
  sqraft_client_close(c);
}

int main(void) {
  snprintf(base_dir, sizeof base_dir, "/tmp/sqraft-capi-%d", (int)getpid());
  mkdir(base_dir, 0755);

  /* One node. */
  char a1[64];
  snprintf(a1, sizeof a1, "@sqraft-capi-%d-single", (int)getpid());
  sqraft_server solo = {1, a1, SQRAFT_VOTER};
  sqraft_node* single = start_node(1, a1, &solo, 1);
  const char* solo_addresses[] = {a1};
  exercise_sql(solo_addresses, 1);
  REQUIRE_OK(sqraft_node_handover(single), sqraft_node_errmsg(single)); /* nobody to hand over to: OK */
  REQUIRE_OK(sqraft_node_stop(single), sqraft_node_errmsg(single));
  sqraft_node_destroy(single);

  /* Three nodes in this process. */
  char addr[3][64];
  sqraft_server cluster[3];
  for (int i = 0; i < 3; i++) {
    snprintf(addr[i], sizeof addr[i], "@sqraft-capi-%d-%d", (int)getpid(), i + 1);
    cluster[i].id = (sqraft_id)(i + 11);
    cluster[i].address = addr[i];
    cluster[i].role = SQRAFT_VOTER;
  }
  sqraft_node* nodes[3];
  for (int i = 0; i < 3; i++) nodes[i] = start_node(cluster[i].id, addr[i], cluster, 3);
  const char* addresses[] = {addr[0], addr[1], addr[2]};
  exercise_sql(addresses, 3);
  for (int i = 0; i < 3; i++) {
    sqraft_node_handover(nodes[i]);
    REQUIRE_OK(sqraft_node_stop(nodes[i]), sqraft_node_errmsg(nodes[i]));
    sqraft_node_destroy(nodes[i]);
  }

  /* Bad arguments are refused, not crashed on. */
  sqraft_node* bad = NULL;
  CHECK(sqraft_node_create(0, "@x", "/tmp", &bad) == SQRAFT_MISUSE && bad == NULL);
  CHECK(sqraft_node_create(5, "host:notaport", "/tmp", &bad) == SQRAFT_MISUSE);
  /* A data directory that cannot be created (its parent is a file). */
  REQUIRE_OK(sqraft_node_create(5, "@sqraft-capi-bad", "/dev/null/dir", &bad), "create");
  CHECK(sqraft_node_start(bad) == SQRAFT_IOERR);
  CHECK(strstr(sqraft_node_errmsg(bad), "/dev/null/dir") != NULL);
  sqraft_node_destroy(bad);
  CHECK(sqraft_generate_id("@x") != 0);

  /* A failed start can be retried once the cause is fixed: here a file
     stands where the data directory should be. */
  char late_dir[300], late_addr[64];
  snprintf(late_dir, sizeof late_dir, "%s/late", base_dir);
  FILE* in_the_way = fopen(late_dir, "w");
  if (in_the_way) fclose(in_the_way);
  snprintf(late_addr, sizeof late_addr, "@sqraft-capi-%d-late", (int)getpid());
  sqraft_node* late = NULL;
  REQUIRE_OK(sqraft_node_create(21, late_addr, late_dir, &late), "create");
  CHECK(sqraft_node_set_txn_idle_timeout_ms(late, 0) == SQRAFT_MISUSE);
  CHECK(sqraft_node_set_write_queue_timeout_ms(late, 0) == SQRAFT_MISUSE);
  REQUIRE_OK(sqraft_node_set_txn_idle_timeout_ms(late, 5000), sqraft_node_errmsg(late));
  REQUIRE_OK(sqraft_node_set_write_queue_timeout_ms(late, 2000), sqraft_node_errmsg(late));
  CHECK(sqraft_node_set_commit_timeout_ms(late, 0) == SQRAFT_MISUSE);
  REQUIRE_OK(sqraft_node_set_commit_timeout_ms(late, 3000), sqraft_node_errmsg(late));
  CHECK(sqraft_node_set_statement_timeout_ms(late, 0) == SQRAFT_MISUSE);
  CHECK(sqraft_node_set_max_databases(late, 0) == SQRAFT_MISUSE);
  CHECK(sqraft_node_set_threads(late, 0, 4) == SQRAFT_MISUSE);
  REQUIRE_OK(sqraft_node_set_statement_timeout_ms(late, 500), sqraft_node_errmsg(late));
  REQUIRE_OK(sqraft_node_set_max_databases(late, 3), sqraft_node_errmsg(late)); /* capi.db, capi-copy.db, second.db */
  REQUIRE_OK(sqraft_node_set_threads(late, 2, 2), sqraft_node_errmsg(late));
  REQUIRE_OK(sqraft_node_set_failure_domain(late, 210), sqraft_node_errmsg(late)); /* exercise_sql checks id * 10 */
  CHECK(sqraft_node_set_metrics_address(late, NULL) == SQRAFT_MISUSE);
  CHECK(sqraft_node_set_metrics_address(late, "@not-tcp") == SQRAFT_MISUSE);
  const int metrics_port = 40000 + (int)(getpid() % 20000);
  char metrics_address[64];
  snprintf(metrics_address, sizeof metrics_address, "127.0.0.1:%d", metrics_port);
  REQUIRE_OK(sqraft_node_set_metrics_address(late, metrics_address), sqraft_node_errmsg(late));
  sqraft_server late_cluster = {21, late_addr, SQRAFT_VOTER};
  REQUIRE_OK(sqraft_node_set_cluster(late, &late_cluster, 1), sqraft_node_errmsg(late));
  CHECK(sqraft_node_start(late) == SQRAFT_IOERR);
  CHECK(strstr(sqraft_node_errmsg(late), "is not a directory") != NULL);
  unlink(late_dir); /* the node creates the directory itself */
  REQUIRE_OK(sqraft_node_start(late), sqraft_node_errmsg(late));
  CHECK(sqraft_node_set_weight(late, 1) == SQRAFT_MISUSE); /* settings only before start */
  const char* late_addresses[] = {late_addr};
  exercise_sql(late_addresses, 1);
  {
    /* Its metrics page shows it leads and has run requests. */
    char page[65536];
    const int got = http_get(metrics_port, "/metrics", page, sizeof page);
    CHECK(got > 0 && strstr(page, "HTTP/1.1 200") == page);
    CHECK(strstr(page, "\nsqraft_raft_role{role=\"leader\"} 1\n") != NULL);
    CHECK(strstr(page, "\nsqraft_requests_total{type=\"exec_sql\"} ") != NULL);
  }
  {
    /* The statement timeout stops a runaway query; refused SQL says why;
       second.db is the last database the node may hold. */
    sqraft_client* c = NULL;
    REQUIRE_OK(sqraft_client_open(late_addresses, 1, "capi.db", &c), sqraft_client_errmsg(c));
    sqraft_rows* rows = NULL;
    int rc = sqraft_query(c, "WITH RECURSIVE s(x) AS (VALUES(1) UNION ALL SELECT x+1 FROM s) SELECT count(*) FROM s",
                          NULL, 0, &rows);
    if (rc == SQRAFT_OK) {
      rc = sqraft_rows_next(rows);
      sqraft_rows_close(rows);
    }
    CHECK(rc == SQRAFT_INTERRUPT);
    CHECK(strstr(sqraft_client_errmsg(c), "500 ms") != NULL);
    CHECK(sqraft_exec(c, "PRAGMA hard_heap_limit=1000", NULL, 0, NULL, NULL) == SQRAFT_AUTH);
    CHECK(strstr(sqraft_client_errmsg(c), "process-wide") != NULL);
    sqraft_client_close(c);
    REQUIRE_OK(sqraft_client_open(late_addresses, 1, "second.db", &c), sqraft_client_errmsg(c));
    sqraft_client_close(c);
    c = NULL;
    CHECK(sqraft_client_open(late_addresses, 1, "third.db", &c) == SQRAFT_CANTOPEN);
    sqraft_client_close(c);
  }
  REQUIRE_OK(sqraft_node_stop(late), sqraft_node_errmsg(late));
  sqraft_node_destroy(late);

  CHECK(sqraft_set_log_level("loud") == SQRAFT_MISUSE);
  CHECK(sqraft_set_log_level("error") == SQRAFT_OK);

  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", base_dir);
  if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
  if (failures) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  printf("C API: all checks passed\n");
  return 0;
}
