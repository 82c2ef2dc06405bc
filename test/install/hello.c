/* The example of docs/c-api.md, built against an installed sqraft with
 * pkg-config by test/install/run.sh: a one-node cluster and a client in one
 * process. Usage: hello [DATA_DIR]. Prints "42 hello". */
#include <sqraft.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int main(int argc, char** argv) {
  const char* address = "@example-node-1";
  const char* dir = argc > 1 ? argv[1] : "/tmp/example-node-1";
  /* the data directory is created (mode 0700) if missing */

  sqraft_node* node = NULL;
  if (sqraft_node_create(1, address, dir, &node) != SQRAFT_OK) return 1;
  sqraft_server self = {1, address, SQRAFT_VOTER};
  sqraft_node_set_cluster(node, &self, 1); /* bootstraps on the first start */
  int rc = sqraft_node_start(node);
  if (rc != SQRAFT_OK) {
    fprintf(stderr, "start: %d %s\n", rc, sqraft_node_errmsg(node));
    sqraft_node_destroy(node);
    return 1;
  }

  sqraft_client* client = NULL;
  const char* addresses[] = {address};
  rc = sqraft_client_open(addresses, 1, "app", &client);
  if (rc != SQRAFT_OK) {
    fprintf(stderr, "open: %d %s\n", rc, sqraft_client_errmsg(client));
    sqraft_client_close(client);
    sqraft_node_destroy(node);
    return 1;
  }

  sqraft_value v[2];
  memset(v, 0, sizeof v);
  v[0].type = SQRAFT_INTEGER;
  v[0].integer = 42;
  v[1].type = SQRAFT_TEXT;
  v[1].data = "hello";
  v[1].size = 5;
  rc = sqraft_exec(client, "CREATE TABLE IF NOT EXISTS t (n INTEGER, s TEXT)", NULL, 0, NULL, NULL);
  if (rc == SQRAFT_OK) rc = sqraft_exec(client, "INSERT INTO t VALUES (?, ?)", v, 2, NULL, NULL);
  if (rc != SQRAFT_OK) fprintf(stderr, "exec: %d %s\n", rc, sqraft_client_errmsg(client));

  sqraft_rows* rows = NULL;
  if (sqraft_query(client, "SELECT n, s FROM t", NULL, 0, &rows) == SQRAFT_OK) {
    while ((rc = sqraft_rows_next(rows)) == SQRAFT_ROW) {
      printf("%lld %s\n", sqraft_rows_value(rows, 0)->integer, sqraft_rows_value(rows, 1)->data);
    }
    if (rc != SQRAFT_DONE) fprintf(stderr, "rows: %d %s\n", rc, sqraft_client_errmsg(client));
    sqraft_rows_close(rows);
  }

  sqraft_client_close(client);
  sqraft_node_handover(node); /* nobody to hand over to here: returns OK */
  sqraft_node_stop(node);
  sqraft_node_destroy(node);
  return 0;
}
