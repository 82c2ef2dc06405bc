// LiveCluster: a ProcessCluster that is up — every node started and a leader
// found (the test stops at once, with the nodes' logs, if not) — optionally
// with each node serving /metrics on a port of its own; and helpers to read
// those pages.
#pragma once

#include <doctest/doctest.h>
#include <httplib.h>

#include <random>
#include <string>
#include <vector>

#include "support/process_cluster.h"

namespace sqraft::test {

struct LiveCluster {
  explicit LiveCluster(ProcessCluster::Options o = {}, bool metrics = false) : c(o) {
    std::random_device rd;
    const int base = 40000 + int(rd() % 20000);
    for (unsigned i = 0; i < o.n; i++) {
      std::vector<std::string> extra;
      if (metrics) {
        metrics_ports.push_back(base + int(i));
        extra = {"--metrics-address", "127.0.0.1:" + std::to_string(metrics_ports.back())};
      }
      Status s = c.start(i, extra);
      REQUIRE_MESSAGE(s.ok(), s.to_string() << c.logs());
    }
    auto leader = c.leader_client();
    REQUIRE_MESSAGE(leader.ok(), leader.status().to_string() << c.logs());
  }
  ProcessCluster c;
  std::vector<int> metrics_ports;  // node i's, when asked for
};

// GET `path` from 127.0.0.1:port; the body ("" on failure) and the status.
inline std::string http_get(int port, const std::string& path = "/metrics", int* status = nullptr) {
  httplib::Client http("127.0.0.1", port);
  http.set_connection_timeout(5, 0);
  http.set_read_timeout(5, 0);
  auto res = http.Get(path.c_str());
  if (status) *status = res ? res->status : -1;
  return res ? res->body : std::string();
}

// The value of sample `series` (its name and labels as printed) in a
// Prometheus text page, or -1 if it is not there.
inline double metric_sample(const std::string& page, const std::string& series) {
  const std::string key = "\n" + series + " ";
  const size_t at = ("\n" + page).find(key);
  if (at == std::string::npos) return -1;
  return std::stod(page.substr(at + key.size() - 1));
}

}  // namespace sqraft::test
