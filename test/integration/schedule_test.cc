// Seeded fault schedules on the fixture cluster (support/fault_schedule.h):
// random faults (partitions, kills, latency, disk latency, I/O failures,
// deposed leaders, transfers) × random transactions × 3/5/7 nodes. After
// every step every node that applied index i has the same state hash at i;
// after the heal every node is identical and no acknowledged write is lost.
//
// The suite runs a slice of seeds without I/O faults; SQRAFT_SCHEDULE_SEEDS=N,
// SQRAFT_SCHEDULE_FROM=S and SQRAFT_SCHEDULE_IO_FAULTS=1 choose others
// (scripts/schedules.sh runs any number, I/O faults included). A failing seed prints its step log; each one found becomes a
// regression seed below. The positive controls prove the checks can fail.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include "support/fault_schedule.h"

using namespace sqraft::test;

namespace {

// The suite's slice: under a minute on two idle cores, two on loaded ones.
constexpr uint64_t kSuiteSeeds = 250;

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

struct RegressionSeed {
  uint64_t seed;
  const char* found;
};

// Every seed that ever failed, with what it found. They run in every suite.
// They are seeds of generation kScheduleGeneration of make_schedule(): a
// change to the generator changes every schedule, and the list must be
// found again (run the old failures' causes by hand, keep them as tests).
constexpr RegressionSeed kRegressionSeeds[] = {
    {56, "a follower holding an uncommitted entry of an earlier term was recorded as matched by the next "
         "leader (libraft 0.15's heartbeat hint) and never caught up: did not settle after the heal. The "
         "fixture ran libraft without the production RaftIoShim; now every node runs behind it (and the "
         "test below keeps the failure without it visible)"},
    {135, "crash (SIGSEGV in libraft's log) when a new leader probing back to index 1 sent a follower entries "
          "it had compacted into its snapshot; fixed in RaftIoShim::skip_snapshotted"},
    {151, "the runner's settle took a deposed node still in leader state for the leader and checked "
          "convergence too early (a runner bug: settle now wants the highest term, every node in it)"},
    {153, "as 151"},
    {242, "crash in raft_fixture_close: the fixture's in-memory disk truncated past the entries it held "
          "(after a snapshot install) and freed garbage; FixtureDiskGuard bounds it"},
    {426, "double free in libraft under a synchronous append/send failure (raft_fixture_io_fault) on a "
          "follower; not fixed (the shim refuses such writes at once, by contract): synchronous faults are "
          "off by default (SQRAFT_SCHEDULE_SYNC_IO_FAULTS=1), appends fail in their callback instead"},
    {427, "as 426"},
    {1881, "no leader after the heal: the runner undid a two-way disconnect with a one-way reconnect "
           "(raft_fixture_disconnect/reconnect act on one direction); a runner bug, fixed"},
};

// Seeds that still fail, each with what it shows; not run by default (a
// crash takes the whole process), `--no-skip` runs them. Move one to the list
// above once its cause is fixed.
constexpr RegressionSeed kOpenSeeds[] = {
    {1478, "SIGSEGV inside libraft during raft_fixture_depose of a leader, 5 nodes, snapshots every 5 entries; "
           "without I/O faults, without the shim too (deterministic)"},
    {2674, "SIGSEGV in free() inside libraft when the first leader, killed right after its election, is "
           "revived and steps down on a higher term (clearing its leader state); no I/O faults, no shim needed"},
    {4463, "SIGSEGV in libraft's log reference table from a failed append's completion (I/O faults)"},
    {250, "as 4463 (1 run in 6 on replay)"},
    {4677, "as 4463 (never without I/O faults)"},
    {5055, "as 4677"},
    {9952, "as 4677"},
    {3971, "SIGSEGV (long run 2, with I/O faults; not yet analysed)"},
    {4077, "as 3971"},
    {5951, "as 3971"},
    {3542, "did not settle: a follower holds entries it never stored (last 28, stored 25) and answers the "
           "leader's probes from memory; snapshots every 5 entries, no I/O faults"},
    {4966, "did not settle, as 3542 (7 nodes)"},
    {9560, "did not settle, as 3542 (5 nodes)"},
    {8195, "did not settle (long run 2; not yet analysed)"},
    {2323, "a write undecided 60 s of cluster time after the heal; passes on replay (its writer thread "
           "starved in real time on a loaded machine, most likely)"},
    {5198, "as 2323"},
    {6558, "as 2323 (long run 2)"},
};

// Runs one seed; on failure reports it with its log (and appends it to
// $SQRAFT_SCHEDULE_FAILURES, for scripts/schedules.sh).
bool run_seed(uint64_t seed, ScheduleStats* total) {
  const Schedule s = make_schedule(seed);
  ScheduleHooks hooks;
  // SQRAFT_SCHEDULE_WITHOUT_SHIM=1: libraft's own raft_io, uncorrected (to
  // see what the shim saves).
  hooks.without_io_shim = std::getenv("SQRAFT_SCHEDULE_WITHOUT_SHIM") != nullptr;
  // The I/O fault steps (failed appends) run only with
  // SQRAFT_SCHEDULE_IO_FAULTS=1, as scripts/schedules.sh sets by default:
  // libraft 0.15 crashes now and then in its handling of a failed append
  // (about 5 seeds in 10,000, timing-dependent: kOpenSeeds), which would make
  // the suite's slice flaky.
  const char* io_faults = std::getenv("SQRAFT_SCHEDULE_IO_FAULTS");
  hooks.without_io_faults = io_faults == nullptr || *io_faults == '\0';
  // SQRAFT_SCHEDULE_SYNC_IO_FAULTS=1: the fixture's synchronous I/O faults
  // (libraft 0.15 crashes under them now and then: a double free).
  hooks.sync_io_faults = std::getenv("SQRAFT_SCHEDULE_SYNC_IO_FAULTS") != nullptr;
  ScheduleResult r = run_schedule(s, hooks);
  total->add(r.stats);
  if (const char* path = std::getenv("SQRAFT_SCHEDULE_STATS")) {  // per seed: a crash loses none
    std::ofstream(path, std::ios::app) << "failed=" << !r.ok << " " << r.stats.key_values() << "\n";
  }
  if (r.ok) return true;
  FAIL_CHECK("seed " << seed << " failed: " << r.failure << "\nreplay: SQRAFT_SCHEDULE_FROM=" << seed
                         << " SQRAFT_SCHEDULE_SEEDS=1\nstep log:\n"
                         << r.log);
  if (const char* path = std::getenv("SQRAFT_SCHEDULE_FAILURES")) {
    std::ofstream(path, std::ios::app) << seed << " " << r.failure.substr(0, r.failure.find('\n')) << "\n";
  }
  return false;
}

}  // namespace

TEST_CASE("schedule: seeded faults and workloads on 3/5/7 nodes: one state per applied index, no acknowledged write lost") {
  const uint64_t from = env_u64("SQRAFT_SCHEDULE_FROM", 1);
  const uint64_t count = env_u64("SQRAFT_SCHEDULE_SEEDS", kSuiteSeeds);
  const char* progress = std::getenv("SQRAFT_SCHEDULE_PROGRESS");
  ScheduleStats total;
  uint64_t failed = 0;
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t seed = from; seed < from + count; seed++) {
    // The seed about to run, for a script to find one that crashed the process.
    if (progress) std::ofstream(progress, std::ios::trunc) << seed << "\n";
    failed += !run_seed(seed, &total);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE("schedules " << from << ".." << from + count - 1 << ": " << failed << " failed, " << secs << " s, "
                       << double(count) / secs << " seeds/s\n  " << total.describe());
  CHECK(total.writes_ok > count);  // the workloads really wrote
}

TEST_CASE("schedule: regression seeds stay fixed") {
  ScheduleStats total;
  for (const RegressionSeed& r : kRegressionSeeds) {
    INFO("seed " << r.seed << ": " << r.found);
    run_seed(r.seed, &total);
  }
}

TEST_CASE("schedule: open seeds (known failures, see kOpenSeeds)" * doctest::skip()) {
  ScheduleStats total;
  for (const RegressionSeed& r : kOpenSeeds) {
    INFO("seed " << r.seed << ": " << r.found);
    run_seed(r.seed, &total);
  }
}

TEST_CASE("schedule: a seed always gives the same schedule, and seeds differ") {
  for (uint64_t seed : {1, 2, 77, 123456789}) {
    const Schedule a = make_schedule(seed);
    const Schedule b = make_schedule(seed);
    REQUIRE(a.describe() == b.describe());
    REQUIRE(a.steps.size() == b.steps.size());
    for (size_t i = 0; i < a.steps.size(); i++) CHECK(a.steps[i].describe() == b.steps[i].describe());
    CHECK(a.describe() != make_schedule(seed + 1).describe());
  }
  // The mix the long run relies on: every node count, every kind of step.
  std::array<unsigned, 8> nodes{};
  std::array<unsigned, kStepKinds> kinds{};
  for (uint64_t seed = 1; seed <= 300; seed++) {
    const Schedule s = make_schedule(seed);
    nodes[s.options.n]++;
    for (const ScheduleStep& st : s.steps) kinds[size_t(st.kind)]++;
  }
  CHECK(nodes[3] > 100);
  CHECK(nodes[5] > 60);
  CHECK(nodes[7] > 20);
  for (size_t k = 0; k < kStepKinds; k++) CHECK_MESSAGE(kinds[k] > 50, kStepKindNames[k]);
}

TEST_CASE("schedule: StateLedger reports two nodes with different states at one index, whatever came between") {
  StateLedger l;
  CHECK(l.record(0, 5, {{"a", 1}}, "step 1") == "");
  CHECK(l.record(1, 7, {{"a", 2}}, "step 1") == "");
  CHECK(l.record(1, 5, {{"a", 1}}, "step 2") == "");  // the same state: fine
  CHECK(l.record(2, 7, {{"a", 2}}, "step 3") == "");
  const std::string err = l.record(2, 5, {{"a", 1}, {"b", 9}}, "step 4");  // a database more
  CHECK(err.find("state differs at applied index 5") != std::string::npos);
  CHECK(err.find("node 0 (step 1)") != std::string::npos);
  CHECK(l.record(0, 7, {{"a", 3}}, "step 5") != "");
  CHECK(l.indices() == 2);
}

namespace {

// A hand-made schedule: three waited writes on a 3-node cluster, then quiet.
Schedule three_writes() {
  Schedule s;
  s.seed = 0;
  s.options.n = 3;
  s.options.commit_outcome_timeout_ms = 500;
  s.databases = 1;
  for (uint32_t k = 0; k < 3; k++) {
    ScheduleStep w;
    w.kind = StepKind::kWrite;
    w.write = WriteKind::kInsert;
    w.pick = 1;
    w.key = 1000 + k;
    w.wait = true;
    w.ms = 50;
    s.steps.push_back(w);
  }
  ScheduleStep quiet;
  quiet.kind = StepKind::kAdvance;
  quiet.ms = 300;
  s.steps.push_back(quiet);
  return s;
}

}  // namespace

TEST_CASE("schedule: positive control: a node whose state hash differs at an applied index is reported") {
  const Schedule s = three_writes();
  const ScheduleResult clean = run_schedule(s);
  REQUIRE_MESSAGE(clean.ok, clean.failure << "\n" << clean.log);
  CHECK(clean.stats.writes_ok == 3);
  ScheduleHooks hooks;
  hooks.corrupt_after_step = 2;
  const ScheduleResult r = run_schedule(s, hooks);
  CHECK_FALSE(r.ok);
  CHECK_MESSAGE(r.failure.find("state differs at applied index") != std::string::npos, r.failure);
  CHECK_MESSAGE(r.failure.find("after step 2") != std::string::npos, r.failure);
}

TEST_CASE("schedule: without the production RaftIoShim, libraft 0.15 leaves seed 56's follower behind for good") {
  // What regression seed 56 found, kept visible: the fixture on libraft's own
  // raft_io fails the schedule; the same seed behind the shim passes.
  ScheduleHooks hooks;
  hooks.without_io_shim = true;
  const ScheduleResult r = run_schedule(make_schedule(56), hooks);
  CHECK_FALSE(r.ok);
  CHECK_MESSAGE(r.failure.find("did not settle") != std::string::npos, r.failure);
}

TEST_CASE("schedule: positive control: an acknowledged write missing after the heal is reported") {
  ScheduleHooks hooks;
  hooks.phantom_ack = true;
  const ScheduleResult r = run_schedule(three_writes(), hooks);
  CHECK_FALSE(r.ok);
  CHECK_MESSAGE(r.failure.find("was acknowledged, node") != std::string::npos, r.failure);
}
