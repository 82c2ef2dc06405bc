// Metrics: the counters and histograms every stage bumps as it goes
// (requests, errors, bytes proposed and applied, commit latency,
// snapshots). Every member is atomic or locked: any thread may add. The
// page that shows them with the node's state is src/server/metrics_page.h;
// every metric is listed in docs/operations.md "Metrics".
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

}  // namespace sqraft
