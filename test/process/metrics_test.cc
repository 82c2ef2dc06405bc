// /metrics (--metrics-address) on a real three-node cluster: Debian's
// promtool accepts every node's page, and the numbers move as the cluster
// works (requests, errors, commits, bytes, indexes, snapshots).
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/live_cluster.h"
#include "support/temp_dir.h"

using namespace sqraft;
using test::ProcessCluster;

using test::http_get;
using test::metric_sample;

TEST_CASE("metrics: promtool accepts the page and the counters move") {
  ProcessCluster::Options o;
  o.snapshot_threshold = 64;
  o.snapshot_trailing = 16;
  test::LiveCluster cl(o, /*metrics=*/true);
  ProcessCluster& c = cl.c;
  const std::vector<int>& ports = cl.metrics_ports;
  const unsigned leader = c.leader_index();
  auto client = c.leader_client();
  REQUIRE_MESSAGE(client.ok(), client.status().to_string() << c.logs());
  auto db = client.value()->open("m");
  REQUIRE(db.ok());
  REQUIRE(client.value()->exec(db.value(), "CREATE TABLE t(x)").ok());

  const std::string before = http_get(ports[leader]);
  for (unsigned i = 0; i < 3; i++) {
    const std::string page = http_get(ports[i]);
    test::CommandResult r = test::run_command({"promtool", "check", "metrics"}, page);
    CHECK_MESSAGE(r.status == 0, "node " << i << ": " << r.output << "\n" << page);
  }
  CHECK(metric_sample(before, "sqraft_raft_role{role=\"leader\"}") == 1);
  CHECK(metric_sample(before, "sqraft_raft_voters") == 3);
  CHECK(metric_sample(before, "sqraft_client_connections") >= 1);

  auto insert = client.value()->prepare(db.value(), "INSERT INTO t VALUES (?)");
  REQUIRE(insert.ok());
  for (int i = 0; i < 150; i++) REQUIRE(client.value()->exec_prepared(insert.value(), {wire::Value::Integer(i)}).ok());
  CHECK_FALSE(client.value()->exec(db.value(), "SELECT * FROM missing").ok());
  const std::string after = http_get(ports[leader]);

  CHECK(metric_sample(after, "sqraft_requests_total{type=\"exec\"}") >= metric_sample(before, "sqraft_requests_total{type=\"exec\"}") + 150);
  CHECK(metric_sample(after, "sqraft_requests_total{type=\"exec_sql\"}") >=
        metric_sample(before, "sqraft_requests_total{type=\"exec_sql\"}") + 1);
  CHECK(metric_sample(after, "sqraft_request_errors_total{code=\"1\"}") >= 1);
  CHECK(metric_sample(after, "sqraft_commit_seconds_count") >= metric_sample(before, "sqraft_commit_seconds_count") + 150);
  CHECK(metric_sample(after, "sqraft_commit_seconds_bucket{le=\"+Inf\"}") == metric_sample(after, "sqraft_commit_seconds_count"));
  CHECK(metric_sample(after, "sqraft_proposed_bytes_total") > metric_sample(before, "sqraft_proposed_bytes_total") + 150 * 4096);
  CHECK(metric_sample(after, "sqraft_raft_commit_index") >= metric_sample(before, "sqraft_raft_commit_index") + 150);
  CHECK(metric_sample(after, "sqraft_db_group_commit_statements_total{db=\"m\"}") >= 150);
  CHECK(metric_sample(after, "sqraft_db_write_queue_depth{db=\"m\"}") == 0);
  CHECK(metric_sample(after, "sqraft_snapshots_taken_total") >= 1);
  CHECK(metric_sample(after, "sqraft_snapshot_seconds_count") >= 1);

  // The followers applied the same entries and know the same leader.
  const double committed = metric_sample(after, "sqraft_raft_commit_index");
  const double leader_id = metric_sample(after, "sqraft_node_id");
  for (unsigned i = 0; i < 3; i++) {
    if (i == leader) continue;
    std::string page;
    for (int tries = 0; tries < 100; tries++) {
      page = http_get(ports[i]);
      if (metric_sample(page, "sqraft_raft_applied_index") >= committed) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    CHECK(metric_sample(page, "sqraft_raft_applied_index") >= committed);
    CHECK(metric_sample(page, "sqraft_raft_role{role=\"follower\"}") == 1);
    CHECK(metric_sample(page, "sqraft_raft_leader_id") == leader_id);
    CHECK(metric_sample(page, "sqraft_applied_bytes_total") >= metric_sample(after, "sqraft_proposed_bytes_total") * 0.9);
    CHECK(metric_sample(page, "sqraft_raft_log_bytes") > 0);
  }

  int status = 0;
  http_get(ports[leader], "/other", &status);
  CHECK(status == 404);

  // A metrics address already in use stops the node from starting, saying so.
  test::TempDir dir;
  test::CommandResult r = test::run_command({ProcessCluster::binary(), "node", "--id", "9", "--address",
                                             "@sqraft-metrics-busy-" + std::to_string(ports[0]), "--dir", dir.file("d"),
                                             "--metrics-address", "127.0.0.1:" + std::to_string(ports[leader])},
                                            "", 20000);
  CHECK(r.status == 1);
  CHECK(r.output.find("cannot listen") != std::string::npos);
}
