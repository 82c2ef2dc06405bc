// `sqraft bench`: a load generator for any cluster speaking the dqlite wire
// protocol (sqraft or the real dqlite).
//
// Workloads on `model(key TEXT PRIMARY KEY, value TEXT)`:
//   kvwrite      INSERT OR REPLACE of a random new key (letters) and value
//   kvread       SELECT value of a random preloaded key
//   kvreadwrite  one or the other, 50/50
// Each worker is a thread with its own Client and prepared statements. It
// reconnects to the leader after "not leader", "leadership lost" and I/O
// errors; every failed operation is counted under "<code> <message>". The
// report gives, per operation kind (exec, query), successful operations,
// operations per second, errors and the latency of successful operations
// (p50, p99, max, in milliseconds), as text or as JSON (--json).
// Exit status: 0 when the run completed (even with failed operations), 1 when
// no leader could be reached or the table could not be set up, 2 on bad options.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <latch>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "client.h"
#include "progress.h"
#include "tools.h"

namespace sqraft::tools {

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kCreateSql = "CREATE TABLE IF NOT EXISTS model(key TEXT PRIMARY KEY, value TEXT)";
constexpr const char* kWriteSql = "INSERT OR REPLACE INTO model(key, value) VALUES(?, ?)";
constexpr const char* kReadSql = "SELECT value FROM model WHERE key = ?";
constexpr unsigned kOpTimeoutMs = 5000;
constexpr auto kRetryPause = std::chrono::milliseconds(50);

enum class Workload { kWrite, kRead, kReadWrite };

struct BenchArgs {
  std::string servers;
  std::string db = "bench";
  std::string workload = "kvwrite";
  unsigned workers = 1;
  double duration_s = 10;
  unsigned key_size = 32;
  unsigned value_size = 1024;
  unsigned preload = 1000;
  double connect_timeout_s = 5;
  bool json = false;
  bool quiet = false;
};

struct BenchConfig {
  std::vector<std::string> addresses;
  std::string db;
  Workload workload = Workload::kWrite;
  std::string workload_name;
  unsigned workers = 1;
  double duration_s = 10;
  unsigned key_size = 32;
  unsigned value_size = 1024;
  unsigned preload = 0;
  double connect_timeout_s = 5;
  std::atomic<uint64_t>* live_ops = nullptr;  // every worker's successful operations, for the progress line
};

// One operation kind's measurements.
struct KindStats {
  uint64_t ops = 0;                       // successful
  std::map<std::string, uint64_t> errors;  // "<code> <message>" -> count
  std::vector<uint64_t> latency_ns;       // of successful operations

  uint64_t error_count() const {
    uint64_t n = 0;
    for (const auto& [_, count] : errors) n += count;
    return n;
  }
  void merge(KindStats&& other) {
    ops += other.ops;
    for (const auto& [key, count] : other.errors) errors[key] += count;
    latency_ns.insert(latency_ns.end(), other.latency_ns.begin(), other.latency_ns.end());
  }
};

struct WorkerStats {
  KindStats exec;
  KindStats query;
  uint64_t reconnects = 0;
  std::map<std::string, uint64_t> connect_errors;
};

std::string error_key(const Status& s) { return std::to_string(s.code()) + " " + s.message(); }

std::vector<std::string> split_addresses(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string a = text.substr(pos, comma - pos);
    a.erase(0, a.find_first_not_of(" \t"));
    a.erase(a.find_last_not_of(" \t") + 1);
    if (!a.empty()) out.push_back(std::move(a));
    pos = comma + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); i++) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::string random_letters(std::mt19937_64& rng, size_t n) {
  static constexpr char kLetters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::uniform_int_distribution<size_t> pick(0, sizeof kLetters - 2);
  std::string s(n, 'a');
  for (char& c : s) c = kLetters[pick(rng)];
  return s;
}

// Connects to the leader, retrying until `deadline`.
Result<std::unique_ptr<Client>> connect_until(const std::vector<std::string>& addresses, Clock::time_point deadline) {
  Client::Options o;
  o.addresses = addresses;
  o.connect_attempts = 1;
  o.timeout_ms = kOpTimeoutMs;
  for (;;) {
    Result<std::unique_ptr<Client>> c = Client::connect(o);
    if (c.ok() || Clock::now() + kRetryPause >= deadline) return c;
    std::this_thread::sleep_for(kRetryPause);
  }
}

// Creates the table and inserts the preloaded keys in multi-row batches,
// reconnecting after leadership changes until `deadline`.
Status set_up(const BenchConfig& cfg, const std::vector<std::string>& keys, Clock::time_point deadline) {
  std::mt19937_64 rng(std::random_device{}());
  const size_t row_bytes = size_t(cfg.key_size) + cfg.value_size + 16;
  const size_t batch = std::clamp<size_t>((256 * 1024) / row_bytes, 1, 100);  // <= 200 parameters
  size_t done = 0;
  bool created = false;
  Status last;
  while (Clock::now() < deadline) {
    Result<std::unique_ptr<Client>> c = connect_until(cfg.addresses, deadline);
    if (!c.ok()) return c.status().with_context("cannot connect to " + join(cfg.addresses, ","));
    Client& client = *c.value();
    Result<uint32_t> db = client.open(cfg.db);
    if (!db.ok()) {
      last = db.status().with_context("open " + cfg.db);
      if (!needs_new_connection(db.status())) return last;
      continue;
    }
    if (!created) {
      Result<Client::Outcome> r = client.exec(db.value(), kCreateSql);
      if (!r.ok()) {
        last = r.status().with_context("create table");
        if (!needs_new_connection(r.status()) && !r.status().is_busy()) return last;
        std::this_thread::sleep_for(kRetryPause);
        continue;
      }
      created = true;
    }
    bool failed = false;
    while (done < keys.size()) {
      const size_t n = std::min(batch, keys.size() - done);
      std::string sql = "INSERT OR REPLACE INTO model(key, value) VALUES";
      std::vector<wire::Value> params;
      params.reserve(n * 2);
      for (size_t i = 0; i < n; i++) {
        sql += i ? ",(?, ?)" : "(?, ?)";
        params.push_back(wire::Value::Text(keys[done + i]));
        params.push_back(wire::Value::Text(random_letters(rng, cfg.value_size)));
      }
      Result<Client::Outcome> r = client.exec(db.value(), sql, params);
      if (!r.ok()) {
        last = r.status().with_context("preload");
        if (!needs_new_connection(r.status()) && !r.status().is_busy()) return last;
        failed = true;
        break;
      }
      done += n;
    }
    if (!failed) return Status::Ok();
    std::this_thread::sleep_for(kRetryPause);
  }
  return last.ok() ? Status::IoError("set-up timed out") : last;
}

class Worker {
 public:
  Worker(const BenchConfig& cfg, const std::vector<std::string>& keys, uint64_t seed)
      : cfg_(cfg), keys_(keys), rng_(seed) {}

  // Connects, signals `ready`, waits for `go`, then works until `deadline`.
  void run(std::latch& ready, std::latch& go, const Clock::time_point& deadline) {
    // Connect before the clock starts; a failure here is retried in the loop.
    (void)connect(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(cfg_.connect_timeout_s)));
    ready.count_down();
    go.wait();
    while (Clock::now() < deadline) {
      if (!client_ && !connect(deadline)) break;
      const bool read = cfg_.workload == Workload::kRead ||
                        (cfg_.workload == Workload::kReadWrite && key_count() > 0 && (rng_() & 1));
      if (read) {
        do_read();
      } else {
        do_write();
      }
    }
  }

  WorkerStats stats;

 private:
  size_t key_count() const { return keys_.size() + written_.size(); }
  const std::string& key_at(size_t i) const { return i < keys_.size() ? keys_[i] : written_[i - keys_.size()]; }

  // Connects to the leader, opens the database and prepares the statements,
  // retrying until `deadline`. False if it never succeeded.
  bool connect(Clock::time_point deadline) {
    const bool again = had_client_;
    while (Clock::now() < deadline) {
      client_.reset();
      Result<std::unique_ptr<Client>> c = connect_until(cfg_.addresses, deadline);
      if (!c.ok()) {
        stats.connect_errors[error_key(c.status())]++;
        return false;
      }
      Status s = open_and_prepare(*c.value());
      if (s.ok()) {
        client_ = std::move(c).value();
        had_client_ = true;
        if (again) stats.reconnects++;
        return true;
      }
      stats.connect_errors[error_key(s)]++;
      std::this_thread::sleep_for(kRetryPause);
    }
    return false;
  }

  Status open_and_prepare(Client& c) {
    Result<uint32_t> db = c.open(cfg_.db);
    if (!db.ok()) return db.status();
    Result<Client::Prepared> w = c.prepare(db.value(), kWriteSql);
    if (!w.ok()) return w.status();
    Result<Client::Prepared> r = c.prepare(db.value(), kReadSql);
    if (!r.ok()) return r.status();
    write_ = w.value();
    read_ = r.value();
    return Status::Ok();
  }

  void do_write() {
    std::string key = random_letters(rng_, cfg_.key_size);
    std::vector<wire::Value> params{wire::Value::Text(key), wire::Value::Text(random_letters(rng_, cfg_.value_size))};
    const auto start = Clock::now();
    Result<Client::Outcome> r = client_->exec_prepared(write_, params);
    const auto end = Clock::now();
    if (!r.ok()) {
      failed(stats.exec, r.status());
      return;
    }
    record(stats.exec, end - start);
    if (cfg_.workload == Workload::kReadWrite) written_.push_back(std::move(key));
  }

  void do_read() {
    std::uniform_int_distribution<size_t> pick(0, key_count() - 1);
    std::vector<wire::Value> params{wire::Value::Text(key_at(pick(rng_)))};
    const auto start = Clock::now();
    Result<std::unique_ptr<Rows>> rows = client_->query_prepared(read_, params);
    if (!rows.ok()) {
      failed(stats.query, rows.status());
      return;
    }
    size_t n = 0;
    std::vector<wire::Value> row;
    while (rows.value()->next(&row)) n++;
    const auto end = Clock::now();
    if (!rows.value()->status().ok()) {
      failed(stats.query, rows.value()->status());
      return;
    }
    if (n != 1) {
      // The bench's own finding, not the server's: the connection is fine.
      stats.query.errors[error_key(Status::NotFound(n == 0 ? "key not found" : "several rows for one key"))]++;
      return;
    }
    record(stats.query, end - start);
  }

  void record(KindStats& k, Clock::duration d) {
    k.ops++;
    if (cfg_.live_ops) cfg_.live_ops->fetch_add(1, std::memory_order_relaxed);
    k.latency_ns.push_back(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
  }

  void failed(KindStats& k, const Status& s) {
    k.errors[error_key(s)]++;
    if (needs_new_connection(s)) client_.reset();
  }

  const BenchConfig& cfg_;
  const std::vector<std::string>& keys_;
  std::vector<std::string> written_;  // kvreadwrite: keys this worker wrote
  std::mt19937_64 rng_;
  std::unique_ptr<Client> client_;
  bool had_client_ = false;
  Client::Prepared write_;
  Client::Prepared read_;
};

struct Latency {
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
};

// Nearest-rank percentiles; sorts `ns`.
Latency latency_of(std::vector<uint64_t>& ns) {
  Latency l;
  if (ns.empty()) return l;
  std::sort(ns.begin(), ns.end());
  auto at = [&](double p) {
    size_t rank = size_t(std::ceil(p * double(ns.size())));
    return double(ns[std::clamp<size_t>(rank, 1, ns.size()) - 1]) / 1e6;
  };
  l.p50_ms = at(0.50);
  l.p99_ms = at(0.99);
  l.max_ms = double(ns.back()) / 1e6;
  return l;
}

nlohmann::json latency_json(const Latency& l) {
  return {{"p50", l.p50_ms}, {"p99", l.p99_ms}, {"max", l.max_ms}};
}

struct Report {
  const BenchConfig* cfg = nullptr;
  double elapsed_s = 0;
  std::vector<std::pair<std::string, KindStats>> kinds;  // only the kinds the workload uses
  KindStats total;
  uint64_t reconnects = 0;
  std::map<std::string, uint64_t> connect_errors;
};

nlohmann::json to_json(Report& r) {
  const BenchConfig& cfg = *r.cfg;
  nlohmann::json j;
  j["workload"] = cfg.workload_name;
  j["servers"] = cfg.addresses;
  j["db"] = cfg.db;
  j["workers"] = cfg.workers;
  j["requested_duration_s"] = cfg.duration_s;
  j["duration_s"] = r.elapsed_s;
  j["key_size"] = cfg.key_size;
  j["value_size"] = cfg.value_size;
  j["preload"] = cfg.preload;
  j["ops"] = r.total.ops;
  j["ops_per_s"] = r.elapsed_s > 0 ? double(r.total.ops) / r.elapsed_s : 0.0;
  j["error_count"] = r.total.error_count();
  j["errors"] = r.total.errors;
  j["latency_ms"] = latency_json(latency_of(r.total.latency_ns));
  j["reconnects"] = r.reconnects;
  j["connect_errors"] = r.connect_errors;
  for (auto& [name, k] : r.kinds) {
    j[name] = {{"ops", k.ops},
               {"ops_per_s", r.elapsed_s > 0 ? double(k.ops) / r.elapsed_s : 0.0},
               {"error_count", k.error_count()},
               {"errors", k.errors},
               {"latency_ms", latency_json(latency_of(k.latency_ns))}};
  }
  return j;
}

void print_text(Report& r) {
  const BenchConfig& cfg = *r.cfg;
  std::printf("sqraft bench: %s, %u worker%s, %.2f s against %s (db \"%s\", key %u B, value %u B",
              cfg.workload_name.c_str(), cfg.workers, cfg.workers == 1 ? "" : "s", r.elapsed_s,
              join(cfg.addresses, ",").c_str(), cfg.db.c_str(), cfg.key_size, cfg.value_size);
  if (cfg.workload != Workload::kWrite) std::printf(", %u preloaded rows", cfg.preload);
  std::printf(")\n\n");
  std::printf("%-6s %10s %12s %8s %12s %12s %12s\n", "kind", "ops", "ops/s", "errors", "p50 (ms)", "p99 (ms)",
              "max (ms)");
  auto line = [&](const char* name, KindStats& k) {
    const Latency l = latency_of(k.latency_ns);
    std::printf("%-6s %10llu %12.1f %8llu %12.3f %12.3f %12.3f\n", name, static_cast<unsigned long long>(k.ops),
                r.elapsed_s > 0 ? double(k.ops) / r.elapsed_s : 0.0,
                static_cast<unsigned long long>(k.error_count()), l.p50_ms, l.p99_ms, l.max_ms);
  };
  for (auto& [name, k] : r.kinds) line(name.c_str(), k);
  if (r.kinds.size() > 1) line("total", r.total);
  std::printf("\ntotal: %llu ops, %.1f ops/s, %llu errors, %llu reconnects\n",
              static_cast<unsigned long long>(r.total.ops), r.elapsed_s > 0 ? double(r.total.ops) / r.elapsed_s : 0.0,
              static_cast<unsigned long long>(r.total.error_count()), static_cast<unsigned long long>(r.reconnects));
  bool header = false;
  for (auto& [name, k] : r.kinds) {
    for (const auto& [key, count] : k.errors) {
      if (!header) std::printf("\nerrors (code message: count):\n");
      header = true;
      std::printf("  %-5s %s: %llu\n", name.c_str(), key.c_str(), static_cast<unsigned long long>(count));
    }
  }
  if (!r.connect_errors.empty()) {
    std::printf("\nfailed reconnections (code message: count):\n");
    for (const auto& [key, count] : r.connect_errors) {
      std::printf("  %s: %llu\n", key.c_str(), static_cast<unsigned long long>(count));
    }
  }
}

// The workers' figures, added up: per kind of operation and in total.
Report merge_reports(const BenchConfig& cfg, std::vector<std::unique_ptr<Worker>>& workers, double elapsed_s) {
  Report report;
  report.cfg = &cfg;
  report.elapsed_s = elapsed_s;
  KindStats exec, query;
  for (auto& w : workers) {
    exec.merge(std::move(w->stats.exec));
    query.merge(std::move(w->stats.query));
    report.reconnects += w->stats.reconnects;
    for (const auto& [key, count] : w->stats.connect_errors) report.connect_errors[key] += count;
  }
  report.total.merge(KindStats(exec));
  report.total.merge(KindStats(query));
  if (cfg.workload != Workload::kRead) report.kinds.emplace_back("exec", std::move(exec));
  if (cfg.workload != Workload::kWrite) report.kinds.emplace_back("query", std::move(query));
  return report;
}

int run_bench(const BenchArgs& a) {
  BenchConfig cfg;
  cfg.addresses = split_addresses(a.servers);
  if (cfg.addresses.empty()) {
    std::fprintf(stderr, "sqraft bench: --servers: no address given\n");
    return 2;
  }
  cfg.db = a.db;
  cfg.workload_name = a.workload;
  cfg.workload = a.workload == "kvread"        ? Workload::kRead
                 : a.workload == "kvreadwrite" ? Workload::kReadWrite
                                               : Workload::kWrite;
  cfg.workers = a.workers;
  cfg.duration_s = a.duration_s;
  cfg.key_size = a.key_size;
  cfg.value_size = a.value_size;
  cfg.preload = cfg.workload == Workload::kWrite ? 0 : a.preload;
  cfg.connect_timeout_s = a.connect_timeout_s;
  if (cfg.workload == Workload::kRead && cfg.preload == 0) {
    std::fprintf(stderr, "sqraft bench: kvread needs --preload > 0 (the keys it reads)\n");
    return 2;
  }

  // Keys: distinct random letters (a 32-letter key space never collides in
  // practice; short keys may, which only makes fewer distinct rows).
  std::mt19937_64 rng(std::random_device{}());
  std::vector<std::string> keys;
  keys.reserve(cfg.preload);
  for (unsigned i = 0; i < cfg.preload; i++) keys.push_back(random_letters(rng, cfg.key_size));

  const auto connect_deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.connect_timeout_s));
  if (Status s = set_up(cfg, keys, connect_deadline); !s.ok()) {
    std::fprintf(stderr, "sqraft bench: %s\n", s.to_string().c_str());
    return 1;
  }

  std::atomic<uint64_t> live_ops{0};
  cfg.live_ops = &live_ops;
  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned i = 0; i < cfg.workers; i++) workers.push_back(std::make_unique<Worker>(cfg, keys, rng()));
  std::latch ready(cfg.workers);
  std::latch go(1);
  Clock::time_point deadline;  // written before `go` opens
  std::vector<std::thread> threads;
  for (auto& w : workers) {
    threads.emplace_back([&, w = w.get()] { w->run(ready, go, deadline); });
  }
  ready.wait();
  const auto start = Clock::now();
  deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.duration_s));
  go.count_down();
  {
    // A live line on a terminal while the workers run: operations so far and their rate.
    ProgressLine line("bench " + cfg.workload_name, !a.quiet && progress_wanted());
    while (Clock::now() < deadline) {
      std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(200), deadline - Clock::now()));
      line.count(live_ops.load(std::memory_order_relaxed), "ops");
    }
  }
  for (auto& t : threads) t.join();
  const double elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();

  Report report = merge_reports(cfg, workers, elapsed_s);
  workers.clear();

  if (a.json) {
    std::printf("%s\n", to_json(report).dump(2).c_str());
  } else {
    print_text(report);
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, int& rc) {
  // The arguments live as long as the App: the callback runs inside parse().
  static BenchArgs a;
  CLI::App* cmd = app.add_subcommand("bench", "Load generator for any dqlite-protocol cluster (sqraft or dqlite)");
  cmd->add_option("-s,--servers", a.servers, "Node addresses, ADDR[,ADDR...] (the leader is found from any)")->required();
  cmd->add_option("--db", a.db, "Database name")->capture_default_str();
  cmd->add_option("--workload", a.workload, "kvwrite, kvreadwrite or kvread")
      ->capture_default_str()
      ->check(CLI::IsMember({"kvwrite", "kvreadwrite", "kvread"}));
  cmd->add_option("--workers", a.workers, "Concurrent workers, each a thread with its own connection")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1024u));
  cmd->add_option("--duration", a.duration_s, "Seconds to run (fractions allowed)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--key-size", a.key_size, "Key length in letters")->capture_default_str()->check(CLI::Range(1u, 4096u));
  cmd->add_option("--value-size", a.value_size, "Value length in bytes")
      ->capture_default_str()
      ->check(CLI::Range(0u, 16u << 20));
  cmd->add_option("--preload", a.preload, "Rows inserted before a kvread or kvreadwrite run")
      ->capture_default_str()
      ->check(CLI::Range(0u, 10000000u));
  cmd->add_option("--connect-timeout", a.connect_timeout_s, "Seconds to keep looking for a leader at start")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", a.json, "Print the report as JSON");
  cmd->add_flag("-q,--quiet", a.quiet, "No live progress line on a terminal");
  cmd->callback([&rc] { rc = run_bench(a); });
}

}  // namespace sqraft::tools
