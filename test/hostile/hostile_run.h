// The hostile-SQL run: SqlGen's statements from several clients against a
// real 3-node cluster (ProcessCluster), with the checks a user relies on:
// no node crashes, no election caused by load, memory and threads within
// bounds, every database identical on every node, the cluster writable at
// the end.
//
// `./scripts/hostile.sh --duration S` runs it long; the process suite runs a
// short slice (test/process/hostile_sql_test.cc).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sqraft::test {

struct HostileOptions {
  unsigned duration_s = 20;
  uint64_t seed = 1;
  unsigned clients = 4;
  unsigned databases = 8;        // each client picks among these (plus rare new ones)
  unsigned new_db_percent = 1;   // per connection: a database never seen before
  unsigned statement_timeout_ms = 5000;
  bool verbose = false;
};

struct NodeFigures {
  uint64_t peak_rss_kb = 0;
  uint64_t peak_threads = 0;
  bool crashed = false;
  int exit_status = 0;
};

struct HostileReport {
  uint64_t statements = 0;
  uint64_t errors = 0;
  std::map<int, uint64_t> errors_by_code;  // primary SQLite code
  uint64_t reconnects = 0;
  size_t elections = 0;  // during the run, after the first leader
  std::vector<NodeFigures> nodes;
  size_t databases = 0;
  size_t divergent = 0;  // databases whose content differs between nodes
  std::vector<std::string> problems;  // human-readable, empty when all is well
  bool writable_at_end = false;
  double seconds = 0;
  std::string summary() const;
  bool ok() const { return problems.empty(); }
};

HostileReport run_hostile(const HostileOptions& options);

}  // namespace sqraft::test
