// The /metrics page: the node's state at scrape time (NodeGauges, read on
// the loop thread by the node and handed over) with its counters (Metrics),
// in the Prometheus text format.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "metrics.h"

namespace sqraft {

struct DbGauges {
  std::string name;
  uint64_t queue_depth = 0;        // requests waiting for the writer
  uint64_t group_commits = 0;      // transactions that group-committed statements
  uint64_t group_commit_statements = 0;
  bool connection_open = false;
};

struct NodeGauges {
  uint64_t id = 0;
  uint64_t term = 0;
  int role = 0;  // libraft state: RAFT_UNAVAILABLE, FOLLOWER, CANDIDATE, LEADER
  uint64_t leader_id = 0;
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t last_index = 0;
  uint64_t voters = 0;
  uint64_t client_connections = 0;  // open sessions
  uint64_t databases = 0;
  uint64_t log_bytes = 0;           // Raft log segments on disk
  uint64_t snapshot_bytes = 0;      // the newest snapshot file on disk
  std::vector<DbGauges> dbs;
};

// The Raft log and snapshot bytes in data directory `dir` (files libraft
// writes there: segments, open segments, snapshot-* with .meta).
void measure_raft_dir(const std::string& dir, NodeGauges* g);

// The whole /metrics page.
std::string render_metrics(const Metrics& m, const NodeGauges& g);

}  // namespace sqraft
