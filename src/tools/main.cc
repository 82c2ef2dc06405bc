// The `sqraft` command: one binary, several subcommands.
//   sqraft node     run a node in the foreground
//   sqraft recover  rewrite a stopped node's cluster configuration
//   sqraft shell    an interactive SQL shell over the wire protocol
//   sqraft bench    a load generator for any dqlite-protocol cluster
//   sqraft import   load an SQLite file into the cluster
//   sqraft backup   write a standalone SQLite file of a database
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <malloc.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "node.h"
#include "tools.h"

namespace sqraft::tools {

namespace {

struct NodeArgs {
  uint64_t id = 0;
  std::string address;
  std::string bind;
  std::string dir;
  std::string cluster;
  unsigned latency_ms = 20;
  unsigned snapshot_threshold = 1024;
  unsigned snapshot_trailing = 8192;
  std::string storage = "memory";
  unsigned persist_interval_ms = 1000;
  uint64_t failure_domain = 0;
  uint64_t weight = 0;
  std::string log_level = "info";
  unsigned restart_free_mb = 64;
  std::vector<std::string> argv;  // to restart itself
  unsigned txn_idle_timeout_ms = 30000;
  unsigned write_queue_timeout_ms = 10000;
  NodeOptions limits;  // the resource and SQL limits below keep NodeOptions' defaults
};

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("sqraft");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v");
  spdlog::set_level(spdlog::level::from_str(level));
}

// The node's settings from its command line (an error: --cluster does not parse).
Result<NodeOptions> node_options(const NodeArgs& a) {
  NodeOptions o;
  o.id = a.id;
  o.address = a.address;
  o.bind_address = a.bind;
  o.dir = a.dir;
  o.network_latency_ms = a.latency_ms;
  o.snapshot_threshold = a.snapshot_threshold;
  o.snapshot_trailing = a.snapshot_trailing;
  o.storage = a.storage == "disk" ? Storage::kDisk : Storage::kMemory;
  o.persist_interval_ms = a.persist_interval_ms;
  o.failure_domain = a.failure_domain;
  o.weight = a.weight;
  o.txn_idle_timeout_ms = a.txn_idle_timeout_ms;
  o.write_queue_timeout_ms = a.write_queue_timeout_ms;
  o.read_threads = a.limits.read_threads;
  o.write_threads = a.limits.write_threads;
  o.max_connections = a.limits.max_connections;
  o.max_databases = a.limits.max_databases;
  o.db_idle_close_ms = a.limits.db_idle_close_ms;
  o.sql = a.limits.sql;
  o.metrics_address = a.limits.metrics_address;
  if (!a.cluster.empty()) {
    Result<std::vector<Member>> c = parse_cluster(a.cluster);
    if (!c.ok()) return c.status();
    o.cluster = std::move(c).value();
  }
  return o;
}

// After the node stopped because its Raft log could not be written (a full
// disk): waits until the data directory's file system has room again, then
// runs this same command again in this process (exec: the same pid, a fresh
// node that loads what is on disk — libraft 0.15 cannot resume after a
// failed write, a new instance can). Returns only if exec failed.
void restart_when_room(const NodeArgs& a) {
  const uint64_t need = uint64_t(a.restart_free_mb) << 20;
  auto free_bytes = [&]() -> uint64_t {
    struct statvfs st {};
    if (::statvfs(a.dir.c_str(), &st) != 0) return 0;
    return uint64_t(st.f_bavail) * st.f_frsize;
  };
  auto last_report = std::chrono::steady_clock::now() - std::chrono::hours(1);
  for (uint64_t f = free_bytes(); f < need; f = free_bytes()) {
    if (std::chrono::steady_clock::now() - last_report >= std::chrono::seconds(10)) {
      spdlog::error("node {}: waiting for {} MiB free in {} to restart ({} MiB free now; --restart-free-mb)", a.id,
                    a.restart_free_mb, a.dir, f >> 20);
      last_report = std::chrono::steady_clock::now();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  spdlog::warn("node {}: {} has room again: restarting the node", a.id, a.dir);
  std::vector<char*> argv;
  for (const std::string& s : a.argv) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  // The stop signals stay blocked across exec; the new node blocks them too.
  ::execv("/proc/self/exe", argv.data());
  std::fprintf(stderr, "sqraft node: restart: exec: %s\n", std::strerror(errno));
}

int run_node(const NodeArgs& a) {
  setup_logging(a.log_level);
  // Clients decide how big a value gets (up to --value-bytes-max). With
  // glibc's adaptive threshold, freed large values stay in the heap and the
  // node's RSS keeps the high-water mark of every client's biggest value;
  // a fixed threshold serves allocations over 1 MiB from mmap, returned to
  // the system when freed.
  // Fixing the threshold also fixes glibc's trim threshold at 128 KiB,
  // which would give small freed memory back (and fault it in again) all
  // the time: keep up to 32 MiB of free heap instead.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  mallopt(M_TRIM_THRESHOLD, 32 << 20);
  Result<NodeOptions> options = node_options(a);
  if (!options.ok()) {
    std::fprintf(stderr, "sqraft node: --cluster: %s\n", options.status().message().c_str());
    return 2;
  }
  NodeOptions o = std::move(options).value();
  // Block the stop signals before any thread starts; wait for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGUSR1);  // the node stopped itself (see on_fatal)
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  static std::atomic<bool> write_failed{false};
  o.on_fatal = [](const Status& why) {
    if (why.code() == kErrRaftWrite || why.code() == kErrStorageWrite) write_failed = true;
    ::kill(::getpid(), SIGUSR1);
  };
  Result<std::unique_ptr<Node>> node = Node::create(o);
  if (!node.ok()) {
    std::fprintf(stderr, "sqraft node: %s\n", node.status().message().c_str());
    return 2;
  }
  if (Status s = node.value()->start(); !s.ok()) {
    std::fprintf(stderr, "sqraft node: %s\n", s.message().c_str());
    return 1;
  }
  std::fprintf(stderr, "sqraft node %llu ready on %s\n", static_cast<unsigned long long>(o.id), o.address.c_str());
  int sig = 0;
  for (;;) {
    siginfo_t info{};
    sig = sigwaitinfo(&stop_signals, &info);
    if (sig < 0) continue;  // EINTR
    // SIGUSR1 means "stopped by itself" only when this process sent it.
    if (sig != SIGUSR1 || info.si_pid == ::getpid()) break;
    spdlog::warn("ignoring SIGUSR1 from process {}", static_cast<long>(info.si_pid));
  }
  if (sig == SIGUSR1) {
    (void)node.value()->stop();
    if (write_failed && a.restart_free_mb > 0) {
      node.value().reset();
      restart_when_room(a);  // returns only if the restart failed
      return 3;
    }
    std::fprintf(stderr, "sqraft node: stopped after a fatal error (see the log above); data kept in %s\n",
                 o.dir.c_str());
    return 3;
  }
  spdlog::info("received {}: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  (void)node.value()->handover();
  if (Status s = node.value()->stop(); !s.ok()) {
    std::fprintf(stderr, "sqraft node: stop: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}

void add_node_command(CLI::App& app, NodeArgs& a, int& rc) {
  CLI::App* cmd = app.add_subcommand("node", "Run a sqraft node in the foreground (logs on stderr; Ctrl-C stops it)");
  cmd->add_option("--id", a.id, "Node id (a positive integer, unique in the cluster)")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--address", a.address, "Address for clients and peers: host:port, @abstract or /socket/path")->required();
  cmd->add_option("--dir", a.dir, "Data directory (created, mode 0700, if missing; must hold only sqraft's files)")->required();
  cmd->add_option("--cluster", a.cluster, "Founding voters, id@address,... (bootstraps a new cluster once)");
  cmd->add_option("--bind", a.bind, "Listen here instead of --address (e.g. 0.0.0.0:9001)");
  cmd->add_option("--latency-ms", a.latency_ms, "Network latency: heartbeat 5x, election timeout 50x")
      ->check(CLI::Range(1u, 10000u));
  cmd->add_option("--snapshot-threshold", a.snapshot_threshold, "Log entries between snapshots")->check(CLI::PositiveNumber);
  cmd->add_option("--snapshot-trailing", a.snapshot_trailing, "Log entries kept after a snapshot");
  cmd->add_option("--storage", a.storage,
                  "Where databases live: memory (rebuilt from snapshot and log at start) or disk (SQLite files "
                  "under DIR/databases; a restart replays only the log's tail)")
      ->check(CLI::IsMember({"memory", "disk"}))
      ->capture_default_str();
  cmd->add_option("--persist-interval-ms", a.persist_interval_ms,
                  "Disk storage: how often the applied state is synced and recorded")
      ->check(CLI::Range(10u, 600000u))
      ->capture_default_str();
  cmd->add_option("--failure-domain", a.failure_domain, "Failure domain reported by DESCRIBE");
  cmd->add_option("--weight", a.weight, "Weight reported by DESCRIBE");
  cmd->add_option("--txn-idle-timeout-ms", a.txn_idle_timeout_ms,
                  "Roll back a client's transaction idle for longer than this")->check(CLI::PositiveNumber);
  cmd->add_option("--write-queue-timeout-ms", a.write_queue_timeout_ms,
                  "Fail a write with SQLITE_BUSY after waiting this long for the writer")->check(CLI::PositiveNumber);
  cmd->add_option("--restart-free-mb", a.restart_free_mb,
                  "After the Raft log could not be written (a full disk), restart once this much is free "
                  "(0: exit with status 3 instead)")->capture_default_str();
  cmd->add_option("--log-level", a.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  // Limits (docs/wire-protocol.md "Size and time limits").
  NodeOptions& l = a.limits;
  cmd->add_option("--statement-timeout-ms", l.sql.statement_timeout_ms,
                  "Stop a client's statement that runs longer than this")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--statement-steps-max", l.sql.statement_vm_steps_max,
                  "Stop a client's statement after this many SQLite VM steps (0: no step limit)")
      ->capture_default_str();
  cmd->add_option("--value-bytes-max", l.sql.value_bytes_max, "Largest string or blob a statement may make")
      ->check(CLI::Range(1024, 1 << 30))->capture_default_str();
  cmd->add_option("--read-threads", l.read_threads, "Threads running reads")
      ->check(CLI::Range(1u, 256u))->capture_default_str();
  cmd->add_option("--write-threads", l.write_threads, "Threads running the writers of all databases")
      ->check(CLI::Range(1u, 256u))->capture_default_str();
  cmd->add_option("--max-connections", l.max_connections, "Client and peer connections")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--max-databases", l.max_databases, "Databases this node holds; creating more fails")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--db-idle-close-ms", l.db_idle_close_ms,
                  "Close a database's writer connection after this long unused")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--metrics-address", l.metrics_address,
                  "Serve Prometheus metrics at http://HOST:PORT/metrics (docs/operations.md \"Metrics\")");
  cmd->callback([&] { rc = run_node(a); });
}

struct RecoverArgs {
  uint64_t id = 0;
  std::string address, dir, cluster;
};

void add_recover_command(CLI::App& app, RecoverArgs& a, int& rc) {
  CLI::App* cmd = app.add_subcommand(
      "recover", "Force a stopped node's cluster configuration (disaster recovery; see docs/operations.md)");
  cmd->add_option("--id", a.id, "This node's id")->required();
  cmd->add_option("--address", a.address, "This node's address")->required();
  cmd->add_option("--dir", a.dir, "Its data directory")->required();
  cmd->add_option("--cluster", a.cluster, "The new voters, id@address,...")->required();
  cmd->callback([&] {
    Result<std::vector<Member>> c = parse_cluster(a.cluster);
    if (!c.ok()) {
      std::fprintf(stderr, "sqraft recover: --cluster: %s\n", c.status().message().c_str());
      rc = 2;
      return;
    }
    Status s = Node::recover(a.dir, a.id, a.address, c.value());
    if (!s.ok()) {
      std::fprintf(stderr, "sqraft recover: %s\n", s.message().c_str());
      rc = 1;
      return;
    }
    std::printf("recovered: the configuration of %s is now %s\n", a.dir.c_str(), a.cluster.c_str());
    rc = 0;
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sqraft: a replicated SQLite database speaking the dqlite wire protocol"};
  app.require_subcommand(1);
  int rc = 0;
  NodeArgs node_args;
  node_args.argv.assign(argv, argv + argc);
  RecoverArgs recover_args;
  add_node_command(app, node_args, rc);
  add_recover_command(app, recover_args, rc);
  add_shell_command(app, rc);
  add_bench_command(app, rc);
  add_transfer_commands(app, rc);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return rc;
}

}  // namespace sqraft::tools

int main(int argc, char** argv) { return sqraft::tools::main(argc, argv); }
