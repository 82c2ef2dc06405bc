// Metrics: what a node counts about itself, and its rendering in the
// Prometheus text format (served at /metrics by MetricsServer; every metric
// is listed with its type and meaning in docs/operations.md "Metrics").
//
// Two kinds of values:
//  - Metrics: counters and histograms that the code paths bump as they go
//    (requests, errors, bytes proposed and applied, commit latency,
//    snapshots). Every member is atomic or locked: any thread may add.
//  - NodeGauges: the state at scrape time (Raft term, role, leader, indexes,
//    queue depths), read on the loop thread by the node and handed over.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace sqraft {

// A histogram of durations with fixed bucket bounds in seconds.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double seconds);
  // Appends the _bucket, _sum and _count lines of `name`.
  void render(std::string& out, const std::string& name) const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // per bucket, not cumulative; the last is +Inf
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_ns_{0};
};

struct Metrics {
  Metrics();

  std::array<std::atomic<uint64_t>, 256> requests{};  // by wire request type
  void error(uint64_t code);                          // a FAILURE sent to a client
  std::map<uint64_t, uint64_t> errors() const;

  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> connections_refused{0};  // over --max-connections
  std::atomic<uint64_t> proposed_entries{0};      // Raft entries this node proposed
  std::atomic<uint64_t> proposed_bytes{0};
  std::atomic<uint64_t> applied_entries{0};       // commands applied to this node's databases
  std::atomic<uint64_t> applied_bytes{0};
  std::atomic<uint64_t> snapshots_taken{0};
  std::atomic<uint64_t> snapshots_restored{0};
  std::atomic<uint64_t> snapshot_last_bytes{0};
  Histogram snapshot_seconds;  // taking one: capture + encoding
  Histogram commit_seconds;    // a transaction's commit entry: proposed until applied here

 private:
  mutable std::mutex errors_mu_;
  std::map<uint64_t, uint64_t> errors_;
};

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
