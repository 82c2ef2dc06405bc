// sqraft-hostile: the hostile-SQL run from the command line
// (./scripts/hostile.sh passes its arguments here).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "hostile/hostile_run.h"

int main(int argc, char** argv) {
  sqraft::test::HostileOptions o;
  CLI::App app{"Random and adversarial SQL against a 3-node sqraft cluster"};
  app.add_option("--duration", o.duration_s, "Seconds of load")->capture_default_str();
  app.add_option("--seed", o.seed, "Seed of the statement generator")->capture_default_str();
  app.add_option("--clients", o.clients, "Concurrent client connections")->capture_default_str();
  app.add_option("--databases", o.databases, "Databases the clients share")->capture_default_str();
  app.add_option("--new-db-percent", o.new_db_percent, "Connections that open a database never seen before (%)")
      ->capture_default_str();
  app.add_option("--statement-timeout-ms", o.statement_timeout_ms, "The nodes' --statement-timeout-ms")
      ->capture_default_str();
  app.add_flag("--verbose", o.verbose, "Print every statement that failed with something other than SQLITE_ERROR");
  CLI11_PARSE(app, argc, argv);
  const sqraft::test::HostileReport r = sqraft::test::run_hostile(o);
  std::printf("%s", r.summary().c_str());
  std::printf("%d passed, %d failed\n", r.ok() ? 1 : 0, r.ok() ? 0 : 1);
  return r.ok() ? 0 : 1;
}
