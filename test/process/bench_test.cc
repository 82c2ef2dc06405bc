// `sqraft bench` against a real 3-node cluster: write and read workloads run
// for their duration without errors, the text report and the JSON report
// agree with the options, and an address where nothing listens fails fast
// with exit status 1.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "support/process_cluster.h"

using namespace sqraft;
using test::ProcessCluster;

namespace {

std::string servers(const ProcessCluster& c) {
  std::string s;
  for (const auto& a : c.addresses()) s += (s.empty() ? "" : ",") + a;
  return s;
}

test::CommandResult bench(const ProcessCluster& c, std::vector<std::string> args) {
  std::vector<std::string> argv = {ProcessCluster::binary(), "bench", "-s", servers(c), "--connect-timeout", "30"};
  argv.insert(argv.end(), args.begin(), args.end());
  return test::run_command(argv);
}

// The numbers of the text report's "total: N ops, X ops/s, E errors" line.
struct Totals {
  bool found = false;
  long ops = 0;
  long errors = 0;
};

// From the line "total: N ops, R ops/s, E errors, ...".
Totals totals_of(const std::string& text) {
  Totals t;
  const size_t at = text.find("total: ");
  if (at == std::string::npos) return t;
  char rest[32] = {};
  double rate = 0;
  if (std::sscanf(text.c_str() + at, "total: %ld ops, %lf ops/s, %ld %31s", &t.ops, &rate, &t.errors, rest) == 4 &&
      std::string(rest).rfind("errors", 0) == 0) {
    t.found = true;
  }
  return t;
}

// Parses the JSON report (the whole output; nothing else is printed).
nlohmann::json json_of(const std::string& output) {
  nlohmann::json j = nlohmann::json::parse(output, nullptr, /*allow_exceptions=*/false);
  REQUIRE_MESSAGE(j.is_object(), output);
  return j;
}

void check_kind(const nlohmann::json& j, const char* kind) {
  INFO(j.dump(2));
  REQUIRE(j.contains(kind));
  const nlohmann::json& k = j[kind];
  CHECK(k["ops"].get<long>() > 0);
  CHECK(k["ops_per_s"].get<double>() > 0);
  CHECK(k["error_count"].get<long>() == 0);
  CHECK(k["errors"].is_object());
  CHECK(k["errors"].empty());
  const nlohmann::json& l = k["latency_ms"];
  REQUIRE(l.is_object());
  CHECK(l["p50"].get<double>() > 0);
  CHECK(l["p50"].get<double>() <= l["p99"].get<double>());
  CHECK(l["p99"].get<double>() <= l["max"].get<double>());
}

}  // namespace

TEST_CASE("bench: kvwrite with 2 workers and kvread against a 3-node cluster complete without errors") {
  ProcessCluster c({});
  REQUIRE(c.start_all().ok());
  REQUIRE(c.leader_index() < 3);

  SUBCASE("text report") {
    auto w = bench(c, {"--workload", "kvwrite", "--workers", "2", "--duration", "2"});
    INFO(w.output);
    CHECK(w.status == 0);
    CHECK(w.output.find("kvwrite, 2 workers") != std::string::npos);
    CHECK(w.output.find("p99 (ms)") != std::string::npos);
    Totals t = totals_of(w.output);
    REQUIRE(t.found);
    CHECK(t.ops > 0);
    CHECK(t.errors == 0);

    auto r = bench(c, {"--workload", "kvread", "--preload", "200", "--duration", "2"});
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK(r.output.find("200 preloaded rows") != std::string::npos);
    t = totals_of(r.output);
    REQUIRE(t.found);
    CHECK(t.ops > 0);
    CHECK(t.errors == 0);
  }

  SUBCASE("JSON report") {
    auto w = bench(c, {"--workload", "kvwrite", "--workers", "2", "--duration", "2", "--json"});
    REQUIRE_MESSAGE(w.status == 0, w.output);
    nlohmann::json j = json_of(w.output);
    CHECK(j["workload"] == "kvwrite");
    CHECK(j["workers"] == 2);
    CHECK(j["db"] == "bench");
    CHECK(j["duration_s"].get<double>() >= 2.0);
    CHECK(j["ops"].get<long>() > 0);
    CHECK(j["ops_per_s"].get<double>() > 0);
    CHECK(j["error_count"] == 0);
    CHECK(j["errors"].empty());
    CHECK(j["latency_ms"].contains("p50"));
    check_kind(j, "exec");
    CHECK_FALSE(j.contains("query"));

    auto r = bench(c, {"--workload", "kvread", "--duration", "2", "--json"});
    REQUIRE_MESSAGE(r.status == 0, r.output);
    j = json_of(r.output);
    CHECK(j["workload"] == "kvread");
    CHECK(j["workers"] == 1);
    CHECK(j["preload"] == 1000);
    CHECK(j["error_count"] == 0);
    check_kind(j, "query");
    CHECK_FALSE(j.contains("exec"));

    auto rw = bench(c, {"--workload", "kvreadwrite", "--workers", "2", "--duration", "2", "--json"});
    REQUIRE_MESSAGE(rw.status == 0, rw.output);
    j = json_of(rw.output);
    check_kind(j, "exec");
    check_kind(j, "query");
    CHECK(j["ops"].get<long>() == j["exec"]["ops"].get<long>() + j["query"]["ops"].get<long>());
  }
}

TEST_CASE("bench: an address where nothing listens exits with status 1 and says why") {
  // Nothing listens on port 1: every connect is refused until the default
  // connect timeout (5 s) runs out.
  auto r = test::run_command({ProcessCluster::binary(), "bench", "-s", "127.0.0.1:1", "--duration", "1"}, "", 30000);
  INFO(r.output);
  CHECK(r.status == 1);
  CHECK(r.output.find("cannot connect to 127.0.0.1:1") != std::string::npos);
  CHECK(r.output.find("refused") != std::string::npos);

  auto json = test::run_command({ProcessCluster::binary(), "bench", "-s", "@sqraft-bench-nobody-here", "--json",
                                 "--connect-timeout", "0.5"},
                                "", 20000);
  INFO(json.output);
  CHECK(json.status == 1);
  CHECK(json.output.find("cannot connect") != std::string::npos);
}

TEST_CASE("bench: bad options exit with a usage error") {
  auto none = test::run_command({ProcessCluster::binary(), "bench"});
  CHECK(none.status != 0);
  CHECK(none.output.find("--servers") != std::string::npos);
  auto read_nothing =
      test::run_command({ProcessCluster::binary(), "bench", "-s", "127.0.0.1:1", "--workload", "kvread", "--preload", "0"});
  CHECK(read_nothing.status == 2);
  CHECK(read_nothing.output.find("--preload") != std::string::npos);
}
