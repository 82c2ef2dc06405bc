// /metrics (--metrics-address) on a real three-node cluster: Debian's
// promtool accepts every node's page, and the numbers move as the cluster
// works (requests, errors, commits, bytes, indexes, snapshots).
#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/process_cluster.h"
#include "support/temp_dir.h"

using namespace sqraft;
using test::ProcessCluster;

namespace {

std::string fetch(int port, const std::string& path = "/metrics", int* status = nullptr) {
  httplib::Client http("127.0.0.1", port);
  http.set_connection_timeout(5, 0);
  http.set_read_timeout(5, 0);
  auto res = http.Get(path.c_str());
  if (status) *status = res ? res->status : -1;
  return res ? res->body : std::string();
}

// The value of the sample `series` (name with its labels, as printed), or -1.
double sample(const std::string& page, const std::string& series) {
  const std::string key = "\n" + series + " ";
  const size_t at = ("\n" + page).find(key);
  if (at == std::string::npos) return -1;
  return std::stod(page.substr(at + key.size() - 1));
}

}  // namespace

TEST_CASE("metrics: promtool accepts the page and the counters move") {
  ProcessCluster::Options o;
  o.snapshot_threshold = 64;
  o.snapshot_trailing = 16;
  ProcessCluster c(o);
  std::random_device rd;
  const int base = 40000 + int(rd() % 20000);
  std::vector<int> ports;
  for (unsigned i = 0; i < 3; i++) {
    ports.push_back(base + int(i));
    Status s = c.start(i, {"--metrics-address", "127.0.0.1:" + std::to_string(ports[i])});
    REQUIRE_MESSAGE(s.ok(), s.to_string() << c.logs());
  }
  const unsigned leader = c.leader_index();
  auto client = c.leader_client();
  REQUIRE_MESSAGE(client.ok(), client.status().to_string() << c.logs());
  auto db = client.value()->open("m");
  REQUIRE(db.ok());
  REQUIRE(client.value()->exec(db.value(), "CREATE TABLE t(x)").ok());

  const std::string before = fetch(ports[leader]);
  for (unsigned i = 0; i < 3; i++) {
    const std::string page = fetch(ports[i]);
    test::CommandResult r = test::run_command({"promtool", "check", "metrics"}, page);
    CHECK_MESSAGE(r.status == 0, "node " << i << ": " << r.output << "\n" << page);
  }
  CHECK(sample(before, "sqraft_raft_role{role=\"leader\"}") == 1);
  CHECK(sample(before, "sqraft_raft_voters") == 3);
  CHECK(sample(before, "sqraft_client_connections") >= 1);

  auto insert = client.value()->prepare(db.value(), "INSERT INTO t VALUES (?)");
  REQUIRE(insert.ok());
  for (int i = 0; i < 150; i++) REQUIRE(client.value()->exec_prepared(insert.value(), {wire::Value::Integer(i)}).ok());
  CHECK_FALSE(client.value()->exec(db.value(), "SELECT * FROM missing").ok());
  const std::string after = fetch(ports[leader]);

  CHECK(sample(after, "sqraft_requests_total{type=\"exec\"}") >= sample(before, "sqraft_requests_total{type=\"exec\"}") + 150);
  CHECK(sample(after, "sqraft_requests_total{type=\"exec_sql\"}") >=
        sample(before, "sqraft_requests_total{type=\"exec_sql\"}") + 1);
  CHECK(sample(after, "sqraft_request_errors_total{code=\"1\"}") >= 1);
  CHECK(sample(after, "sqraft_commit_seconds_count") >= sample(before, "sqraft_commit_seconds_count") + 150);
  CHECK(sample(after, "sqraft_commit_seconds_bucket{le=\"+Inf\"}") == sample(after, "sqraft_commit_seconds_count"));
  CHECK(sample(after, "sqraft_proposed_bytes_total") > sample(before, "sqraft_proposed_bytes_total") + 150 * 4096);
  CHECK(sample(after, "sqraft_raft_commit_index") >= sample(before, "sqraft_raft_commit_index") + 150);
  CHECK(sample(after, "sqraft_db_group_commit_statements_total{db=\"m\"}") >= 150);
  CHECK(sample(after, "sqraft_db_write_queue_depth{db=\"m\"}") == 0);
  CHECK(sample(after, "sqraft_snapshots_taken_total") >= 1);
  CHECK(sample(after, "sqraft_snapshot_seconds_count") >= 1);

  // The followers applied the same entries and know the same leader.
  const double committed = sample(after, "sqraft_raft_commit_index");
  const double leader_id = sample(after, "sqraft_node_id");
  for (unsigned i = 0; i < 3; i++) {
    if (i == leader) continue;
    std::string page;
    for (int tries = 0; tries < 100; tries++) {
      page = fetch(ports[i]);
      if (sample(page, "sqraft_raft_applied_index") >= committed) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    CHECK(sample(page, "sqraft_raft_applied_index") >= committed);
    CHECK(sample(page, "sqraft_raft_role{role=\"follower\"}") == 1);
    CHECK(sample(page, "sqraft_raft_leader_id") == leader_id);
    CHECK(sample(page, "sqraft_applied_bytes_total") >= sample(after, "sqraft_proposed_bytes_total") * 0.9);
    CHECK(sample(page, "sqraft_raft_log_bytes") > 0);
  }

  int status = 0;
  fetch(ports[leader], "/other", &status);
  CHECK(status == 404);

  // A metrics address already in use stops the node from starting, saying so.
  test::TempDir dir;
  test::CommandResult r = test::run_command({ProcessCluster::binary(), "node", "--id", "9", "--address",
                                             "@sqraft-metrics-busy-" + std::to_string(base), "--dir", dir.file("d"),
                                             "--metrics-address", "127.0.0.1:" + std::to_string(ports[leader])},
                                            "", 20000);
  CHECK(r.status == 1);
  CHECK(r.output.find("cannot listen") != std::string::npos);
}
