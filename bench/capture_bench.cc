// Capture + apply versus plain SQLite.
//
// One connection inserts 1 KiB rows, one autocommit transaction per row:
//   sqlite_default_vfs      SQLite's own unix VFS, WAL, synchronous=OFF
//   sqraft_capture_apply    sqraft's VFS on one node: every commit is captured,
//                           encoded as a Frames command, decoded and applied
//                           (what a single-node cluster does, minus the log)
//   sqraft_capture_apply_2  the same, also applied to two follower VFSes
// Prints Google Benchmark's table, then the ratios of the rates measured in
// this run (the target: sqraft_capture_apply >= 0.5 x SQLite).
#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "support/loopback_hooks.h"
#include "vfs.h"

namespace {

using sqraft::Vfs;

std::atomic<int> g_seq{0};

struct Workload {
  sqlite3* db = nullptr;
  sqlite3_stmt* insert = nullptr;
  std::vector<unsigned char> row = std::vector<unsigned char>(1024);
  std::mt19937 rng{42};

  void prepare() {
    sqlite3_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)", nullptr, nullptr, nullptr);
    sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES(?)", -1, &insert, nullptr);
    for (auto& b : row) b = static_cast<unsigned char>(rng());
  }
  bool insert_one() {
    row[rng() % row.size()] = static_cast<unsigned char>(rng());
    sqlite3_bind_blob(insert, 1, row.data(), int(row.size()), SQLITE_STATIC);
    const int rc = sqlite3_step(insert);
    sqlite3_reset(insert);
    return rc == SQLITE_DONE;
  }
  ~Workload() {
    sqlite3_finalize(insert);
    sqlite3_close(db);
  }
};

// `checkpoint` folds the WAL; it runs every 1000 rows, as SQLite's default
// autocheckpoint would (and as sqraft's leader proposes a Checkpoint).
template <class Checkpoint>
void run(benchmark::State& state, Workload& w, Checkpoint&& checkpoint) {
  w.prepare();
  int64_t rows = 0;
  for (auto _ : state) {
    if (!w.insert_one()) {
      state.SkipWithError(sqlite3_errmsg(w.db));
      break;
    }
    rows++;
    if (rows % 1000 == 0) checkpoint();
  }
  state.SetItemsProcessed(rows);
  state.SetBytesProcessed(rows * 1024);
}

void sqlite_default_vfs(benchmark::State& state) {
  const auto dir = std::filesystem::temp_directory_path() / ("sqraft-bench-" + std::to_string(getpid()) + "-" +
                                                             std::to_string(g_seq++));
  std::filesystem::create_directories(dir);
  {
    Workload w;
    sqlite3_open((dir / "bench.db").c_str(), &w.db);
    sqlite3_exec(w.db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA wal_autocheckpoint=0", nullptr,
                 nullptr, nullptr);
    run(state, w, [&] { sqlite3_wal_checkpoint_v2(w.db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr); });
  }
  std::filesystem::remove_all(dir);
}

void sqraft_capture(benchmark::State& state, int followers) {
  sqraft::test::LoopbackHooks hooks;
  Vfs::Options o;
  o.name = "bench-" + std::to_string(g_seq++);
  auto leader = Vfs::create(o, &hooks).value();
  hooks.set_leader(leader.get());
  std::vector<std::unique_ptr<Vfs>> f;
  for (int i = 0; i < followers; i++) {
    Vfs::Options fo;
    fo.name = "bench-" + std::to_string(g_seq++);
    f.push_back(Vfs::create(fo, nullptr).value());
    hooks.add_follower(f.back().get());
  }
  {
    Workload w;
    w.db = leader->open("bench.db").value();
    // The replicated Checkpoint command, applied on every node.
    run(state, w, [&] {
      (void)leader->apply_checkpoint("bench.db");
      for (auto& v : f) (void)v->apply_checkpoint("bench.db");
    });
  }
}

void sqraft_capture_apply(benchmark::State& state) { sqraft_capture(state, 0); }
void sqraft_capture_apply_2(benchmark::State& state) { sqraft_capture(state, 2); }

BENCHMARK(sqlite_default_vfs)->MinTime(2.0)->Unit(benchmark::kMicrosecond);
BENCHMARK(sqraft_capture_apply)->MinTime(2.0)->Unit(benchmark::kMicrosecond);
BENCHMARK(sqraft_capture_apply_2)->MinTime(2.0)->Unit(benchmark::kMicrosecond);

// Collects items/s of every run so main() can print ratios.
class RateReporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> rates;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      auto it = r.counters.find("items_per_second");
      if (it != r.counters.end()) rates[r.benchmark_name()] = it->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  RateReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const double base = reporter.rates["sqlite_default_vfs/min_time:2.000"];
  if (base > 0) {
    std::printf("\nrates relative to sqlite_default_vfs (%.0f rows/s):\n", base);
    for (auto& [name, rate] : reporter.rates) std::printf("  %-40s %8.0f rows/s  %.2fx\n", name.c_str(), rate, rate / base);
  }
  benchmark::Shutdown();
  return 0;
}
