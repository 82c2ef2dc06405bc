#include "support/fault_schedule.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "raft_io_shim.h"

namespace sqraft::test {

const std::array<const char*, kStepKinds> kStepKindNames = {
    "write", "advance", "isolate", "split", "cut-link", "cut-one-way", "disconnect", "heal-net",
    "kill",  "revive",  "net-latency", "disk-latency", "io-fault", "depose", "transfer", "checkpoint",
};

namespace {

constexpr const char* kWriteKindNames[kWriteKinds] = {"insert", "update",     "delete",     "multi",
                                                      "large",  "autocommit", "rolled-back"};
constexpr const char* kRoleNames[] = {"leader", "follower", "any"};

// The fixture's defaults (raft/fixture.h), restored by the final heal.
constexpr unsigned kDefaultNetworkLatencyMs = 15;
constexpr unsigned kDefaultDiskLatencyMs = 10;

// Limits on one schedule.
constexpr unsigned kStepsMin = 20;
constexpr unsigned kStepsSpread = 40;           // 20..59 steps
constexpr unsigned kWaitedWriteMaxMs = 20000;   // cluster time a waited write may take
constexpr unsigned kWaitLeaderMaxMs = 3000;     // cluster time a waited write waits for a leader
constexpr unsigned kHealDecideMaxMs = 60000;    // cluster time for every write to be decided after the heal
constexpr unsigned kSettleMaxMs = 30000;
constexpr auto kSeedWallMax = std::chrono::seconds(120);
// Waiting for writer threads (real time) before the cluster's clock moves on.
constexpr auto kWriterWaitMax = std::chrono::microseconds(2000);
constexpr auto kWriterWaitSlice = std::chrono::microseconds(25);
constexpr unsigned kFruitlessWaitsMax = 3;

// splitmix64: a small generator whose output is fixed by the seed alone (the
// standard distributions are not portable between libraries).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  uint32_t below(uint32_t n) { return n == 0 ? 0 : uint32_t(next() % n); }
  bool chance(unsigned percent) { return below(100) < percent; }

 private:
  uint64_t state_;
};

std::string db_name(unsigned db) { return "db" + std::to_string(db); }

// Cluster time after a step: mostly short, sometimes long enough for
// elections to time out.
unsigned pick_ms(Rng& r) {
  const uint32_t p = r.below(100);
  if (p < 50) return r.below(50);
  if (p < 90) return 50 + r.below(250);
  return 300 + r.below(1500);
}

Role pick_role(Rng& r) {
  const uint32_t p = r.below(100);
  return p < 40 ? Role::kLeader : p < 80 ? Role::kFollower : Role::kAny;
}

// Weights of the step kinds, in the order of StepKind (sum 100).
constexpr unsigned kKindWeights[kStepKinds] = {45, 7, 5, 3, 4, 3, 2, 5, 6, 2, 3, 3, 3, 3, 3, 3};
static_assert([] {
  unsigned s = 0;
  for (unsigned w : kKindWeights) s += w;
  return s == 100;
}());

StepKind pick_kind(Rng& r) {
  uint32_t p = r.below(100);
  for (size_t k = 0; k < kStepKinds; k++) {
    if (p < kKindWeights[k]) return StepKind(k);
    p -= kKindWeights[k];
  }
  return StepKind::kAdvance;
}

ScheduleStep make_step(Rng& r, const Schedule& s) {
  ScheduleStep st;
  st.kind = pick_kind(r);
  if (st.kind == StepKind::kIoFault && s.io_fault_nodes.empty()) st.kind = StepKind::kWrite;
  st.role = pick_role(r);
  st.pick = uint32_t(r.next());
  st.pick2 = uint32_t(r.next());
  st.ms = pick_ms(r);
  switch (st.kind) {
    case StepKind::kWrite:
      st.write = WriteKind(r.below(100) < 85 ? r.below(5) : 5 + r.below(2));
      if (st.write == WriteKind::kLarge && !r.chance(40)) st.write = WriteKind::kInsert;  // large ones rarer
      st.db = r.below(s.databases);
      st.key = uint32_t(r.next());
      st.wait = r.chance(40);
      if (!st.wait) st.ms = r.below(60);  // the next steps overlap it
      break;
    case StepKind::kKill:
      st.repeat = r.chance(10) ? 1 : 0;  // even past a quorum
      break;
    case StepKind::kNetLatency: {
      static constexpr unsigned kMs[] = {1, 5, 15, 15, 40, 90, 250, 600};
      st.value = kMs[r.below(8)];
      break;
    }
    case StepKind::kDiskLatency: {
      static constexpr unsigned kMs[] = {1, 2, 10, 10, 30, 80, 200, 700};
      st.value = kMs[r.below(8)];
      break;
    }
    case StepKind::kIoFault:
      st.value = r.below(25);       // requests before the failure
      st.repeat = 1 + r.below(2);   // failures in a row
      break;
    default:
      break;
  }
  switch (st.kind) {
    case StepKind::kIsolate:
    case StepKind::kSplit:
    case StepKind::kCutLink:
    case StepKind::kCutOneWay:
    case StepKind::kDisconnect:
    case StepKind::kKill:
    case StepKind::kNetLatency:
    case StepKind::kDiskLatency:
      st.lasts = r.chance(80) ? 1 + r.below(6) : 0;
      break;
    default:
      break;
  }
  return st;
}

}  // namespace

std::string ScheduleStep::describe() const {
  std::string d = kStepKindNames[size_t(kind)];
  if (kind == StepKind::kWrite) {
    d += std::string(" ") + kWriteKindNames[size_t(write)] + " " + db_name(db) + " key=" + std::to_string(key) +
         (wait ? " wait" : "");
  } else if (kind != StepKind::kAdvance && kind != StepKind::kHealNet) {
    d += std::string(" ") + kRoleNames[size_t(role)] + " pick=" + std::to_string(pick % 1000) + "/" +
         std::to_string(pick2 % 1000);
    if (value) d += " value=" + std::to_string(value);
    if (repeat) d += " repeat=" + std::to_string(repeat);
    if (lasts) d += " lasts=" + std::to_string(lasts);
  }
  return d + " +" + std::to_string(ms) + "ms";
}

std::string Schedule::describe() const {
  std::string d = "seed " + std::to_string(seed) + " (generation " + std::to_string(kScheduleGeneration) +
                  "): " + std::to_string(options.n) + " nodes, " + std::to_string(databases) + " dbs, " + std::to_string(steps.size()) + " steps, first leader " +
                  std::to_string(first_leader);
  if (options.snapshot_threshold) {
    d += ", snapshot " + std::to_string(options.snapshot_threshold) + "/" + std::to_string(options.snapshot_trailing);
  }
  if (options.checkpoint_threshold_frames != FixtureCluster::Options{}.checkpoint_threshold_frames) {
    d += ", checkpoint " + std::to_string(options.checkpoint_threshold_frames);
  }
  if (options.spill_threshold_bytes != FixtureCluster::Options{}.spill_threshold_bytes) {
    d += ", spill " + std::to_string(options.spill_threshold_bytes);
  }
  d += ", outcome timeout " + std::to_string(options.commit_outcome_timeout_ms) + "ms, io faults on {";
  for (size_t i = 0; i < io_fault_nodes.size(); i++) d += (i ? "," : "") + std::to_string(io_fault_nodes[i]);
  return d + "}";
}

Schedule make_schedule(uint64_t seed) {
  Rng r(seed);
  Schedule s;
  s.seed = seed;
  const uint32_t p = r.below(100);
  s.options.n = p < 50 ? 3 : p < 85 ? 5 : 7;
  if (r.chance(40)) {
    s.options.snapshot_threshold = 4 + r.below(20);
    s.options.snapshot_trailing = 1 + r.below(8);
  }
  if (r.chance(30)) s.options.checkpoint_threshold_frames = 20 + r.below(100);
  if (r.chance(30)) s.options.spill_threshold_bytes = size_t(16 + r.below(48)) * 1024;
  s.options.commit_outcome_timeout_ms = 60 + r.below(200);
  s.databases = 1 + r.below(3);
  s.first_leader = r.below(s.options.n);
  const unsigned faulty = r.below((s.options.n - 1) / 2 + 1);
  std::vector<unsigned> nodes(s.options.n);
  for (unsigned i = 0; i < s.options.n; i++) nodes[i] = i;
  for (unsigned k = 0; k < faulty; k++) {
    std::swap(nodes[k], nodes[k + r.below(s.options.n - k)]);
    s.io_fault_nodes.push_back(nodes[k]);
  }
  std::sort(s.io_fault_nodes.begin(), s.io_fault_nodes.end());
  const unsigned count = kStepsMin + r.below(kStepsSpread);
  for (unsigned i = 0; i < count; i++) s.steps.push_back(make_step(r, s));
  return s;
}

// ---- the invariant ------------------------------------------------------------

std::string StateLedger::record(unsigned node, uint64_t index, const State& state, const std::string& when) {
  auto [it, inserted] = by_index_.try_emplace(index, Seen{node, when, state});
  if (inserted || it->second.state == state) return "";
  auto show = [](const State& s) {
    std::string out = "{";
    for (size_t i = 0; i < s.size(); i++) {
      out += (i ? ", " : "") + s[i].first + "=" + std::to_string(s[i].second);
    }
    return out + "}";
  };
  return "state differs at applied index " + std::to_string(index) + ": node " + std::to_string(it->second.node) +
         " (" + it->second.when + ") had " + show(it->second.state) + ", node " + std::to_string(node) + " (" + when +
         ") has " + show(state);
}

void ScheduleStats::add(const ScheduleStats& o) {
  seeds += o.seeds;
  for (size_t i = 0; i < by_nodes.size(); i++) by_nodes[i] += o.by_nodes[i];
  steps += o.steps;
  for (size_t i = 0; i < kStepKinds; i++) {
    executed[i] += o.executed[i];
    skipped[i] += o.skipped[i];
  }
  writes_ok += o.writes_ok;
  writes_failed += o.writes_failed;
  writes_unknown += o.writes_unknown;
  checks += o.checks;
  indices_checked += o.indices_checked;
  snapshots_taken += o.snapshots_taken;
  snapshots_restored += o.snapshots_restored;
  unavailable_nodes += o.unavailable_nodes;
  hints_corrected += o.hints_corrected;
  snapshot_skips += o.snapshot_skips;
  cluster_ms += o.cluster_ms;
}

std::string ScheduleStats::describe() const {
  std::string d = std::to_string(seeds) + " seeds (3 nodes: " + std::to_string(by_nodes[3]) +
                  ", 5: " + std::to_string(by_nodes[5]) + ", 7: " + std::to_string(by_nodes[7]) + "), " +
                  std::to_string(steps) + " steps";
  if (seeds) d += " (" + std::to_string(steps / seeds) + " per seed)";
  d += "\n  steps executed (skipped):";
  for (size_t i = 0; i < kStepKinds; i++) {
    d += std::string(" ") + kStepKindNames[i] + "=" + std::to_string(executed[i]) + "(" + std::to_string(skipped[i]) +
         ")";
  }
  d += "\n  writes: " + std::to_string(writes_ok) + " ok, " + std::to_string(writes_failed) + " failed, " +
       std::to_string(writes_unknown) + " outcome unknown; " + std::to_string(checks) + " node-state checks over " +
       std::to_string(indices_checked) + " indices; snapshots " + std::to_string(snapshots_taken) + " taken, " +
       std::to_string(snapshots_restored) + " restored; " + std::to_string(unavailable_nodes) +
       " nodes stopped by I/O failures; " + std::to_string(cluster_ms / 1000) + " s of cluster time";
  d += "\n  RaftIoShim: " + std::to_string(hints_corrected) + " heartbeat hints capped, " +
       std::to_string(snapshot_skips) + " AppendEntries cut at a follower's snapshot";
  return d;
}

std::string ScheduleStats::key_values() const {
  std::string d = "seeds=" + std::to_string(seeds) + " nodes3=" + std::to_string(by_nodes[3]) +
                  " nodes5=" + std::to_string(by_nodes[5]) + " nodes7=" + std::to_string(by_nodes[7]) +
                  " steps=" + std::to_string(steps);
  for (size_t i = 0; i < kStepKinds; i++) {
    d += std::string(" ") + kStepKindNames[i] + "=" + std::to_string(executed[i]) + " " + kStepKindNames[i] +
         "-skipped=" + std::to_string(skipped[i]);
  }
  d += " writes-ok=" + std::to_string(writes_ok) + " writes-failed=" + std::to_string(writes_failed) +
       " writes-unknown=" + std::to_string(writes_unknown) + " checks=" + std::to_string(checks) +
       " indices=" + std::to_string(indices_checked) + " snapshots-taken=" + std::to_string(snapshots_taken) +
       " snapshots-restored=" + std::to_string(snapshots_restored) +
       " unavailable-nodes=" + std::to_string(unavailable_nodes) + " hints-corrected=" +
       std::to_string(hints_corrected) + " snapshot-skips=" + std::to_string(snapshot_skips) +
       " cluster-ms=" + std::to_string(cluster_ms);
  return d;
}

// ---- the runner -----------------------------------------------------------------

namespace {

using Mode = Executor::Mode;

// The statements of a write whose ledger row is `id` (each write inserts
// exactly one ledger row, in the same transaction as the rest).
std::vector<std::string> write_statements(const ScheduleStep& st, long id, size_t step, Mode* mode) {
  const uint32_t key = st.key;
  auto small_insert = [](uint32_t k, long id) {
    return "INSERT OR REPLACE INTO kv(k, v, n) VALUES(" + std::to_string(k % 300) + ", printf('%0*d', " +
           std::to_string(10 + (k >> 9) % 2000) + ", " + std::to_string(id) + "), 0)";
  };
  auto update = [](uint32_t k) {
    return "UPDATE kv SET n = n + 1, v = substr(v, 1, 400) || 'u' WHERE k % 7 = " + std::to_string(k % 7);
  };
  auto remove = [](uint32_t k) { return "DELETE FROM kv WHERE k % 11 = " + std::to_string(k % 11); };
  auto schema = [](uint32_t k) -> std::string {
    switch (k % 4) {
      case 0: return "CREATE TABLE IF NOT EXISTS extra_" + std::to_string((k >> 2) % 3) + "(a, b)";
      case 1: return "DROP TABLE IF EXISTS extra_" + std::to_string((k >> 2) % 3);
      case 2: return "CREATE INDEX IF NOT EXISTS kv_n ON kv(n)";
      default: return "DROP INDEX IF EXISTS kv_n";
    }
  };
  std::vector<std::string> stmts = {
      "CREATE TABLE IF NOT EXISTS kv(k INTEGER PRIMARY KEY, v BLOB, n INTEGER NOT NULL DEFAULT 0)",
      "CREATE TABLE IF NOT EXISTS ledger(id INTEGER PRIMARY KEY, step INTEGER)"};
  *mode = Mode::kTransaction;
  switch (st.write) {
    case WriteKind::kInsert:
      for (uint32_t j = 0; j <= key % 3; j++) stmts.push_back(small_insert(key + j * 7919, id));
      break;
    case WriteKind::kUpdate: stmts.push_back(update(key)); break;
    case WriteKind::kDelete: stmts.push_back(remove(key)); break;
    case WriteKind::kMulti:
      for (uint32_t j = 0, n = 2 + key % 4; j < n; j++) {
        const uint32_t k = key / (j + 3) + j * 104729;
        switch (k % 4) {
          case 0: stmts.push_back(small_insert(k, id)); break;
          case 1: stmts.push_back(update(k)); break;
          case 2: stmts.push_back(remove(k)); break;
          default: stmts.push_back(schema(k >> 3)); break;
        }
      }
      break;
    case WriteKind::kLarge:
      if (key % 3 != 0) {
        const std::string rows = std::to_string(20 + key % 131);
        const std::string base = std::to_string(100000 + (key >> 8) % 200);
        stmts.push_back("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < " + rows +
                        ") INSERT OR REPLACE INTO kv(k, v, n) SELECT " + base + " + i, printf('%0*d', " +
                        std::to_string(500 + (key >> 4) % 2500) + ", i + " + std::to_string(id) + "), i FROM s");
      } else {
        stmts.push_back("INSERT OR REPLACE INTO kv(k, v, n) VALUES(" + std::to_string(200000 + key % 8) +
                        ", zeroblob(" + std::to_string(65536 + (key >> 3) % 140000) + "), " + std::to_string(id) +
                        ")");
      }
      break;
    case WriteKind::kAutocommit:
      *mode = Mode::kAutocommit;
      stmts.erase(stmts.begin());  // the ledger's CREATE commits (or does nothing) on its own
      break;
    case WriteKind::kRolledBack:
      *mode = Mode::kRolledBack;
      stmts.push_back(small_insert(key, id));
      stmts.push_back(update(key >> 3));
      break;
    case WriteKind::kCount: break;
  }
  stmts.push_back("INSERT INTO ledger(id, step) VALUES(" + std::to_string(id) + ", " + std::to_string(step) + ")");
  return stmts;
}

std::set<long> parse_ids(const std::string& rows) {
  std::set<long> out;
  if (rows.rfind("ERROR", 0) == 0) return out;
  size_t pos = 0;
  while (pos < rows.size()) {
    size_t nl = rows.find('\n', pos);
    if (nl == std::string::npos) nl = rows.size();
    if (nl > pos) out.insert(std::stol(rows.substr(pos, nl - pos)));
    pos = nl + 1;
  }
  return out;
}

// ---- the production raft_io under the fixture ----------------------------------
//
// A node runs libraft behind RaftIoShim (src/server/raft_io_shim.h), which
// corrects libraft 0.15's hint in heartbeat results; without it a follower
// holding an uncommitted entry of an earlier term is recorded as matched
// and never catches up (seed 4 of the schedules, before this). FixtureCluster
// starts its nodes on the fixture's raft_io directly, so the shim goes in
// afterwards, before the first step: libraft then calls the shim (r->io),
// and the fixture calls the shim's tick and receive callbacks, which call
// libraft's. Those two are libraft's own (static) functions; a throwaway
// instance on a stub raft_io hands them over in its start().
struct LibraftCallbacks {
  raft_io_tick_cb tick = nullptr;
  raft_io_recv_cb recv = nullptr;
};

LibraftCallbacks libraft_callbacks() {
  static const LibraftCallbacks cbs = [] {
    static LibraftCallbacks got;
    struct raft_io io {};
    io.version = 1;
    io.init = [](struct raft_io*, raft_id, const char*) { return 0; };
    io.load = [](struct raft_io*, raft_term* term, raft_id* voted_for, struct raft_snapshot** snapshot,
                 raft_index* start_index, struct raft_entry** entries, size_t* n) {
      *term = 0;
      *voted_for = 0;
      *snapshot = nullptr;
      *start_index = 1;
      *entries = nullptr;
      *n = 0;
      return 0;
    };
    io.start = [](struct raft_io*, unsigned, raft_io_tick_cb tick, raft_io_recv_cb recv) {
      got.tick = tick;
      got.recv = recv;
      return 0;
    };
    io.close = [](struct raft_io* self, raft_io_close_cb cb) {
      if (cb) cb(self);
    };
    io.time = [](struct raft_io*) -> raft_time { return 0; };
    io.random = [](struct raft_io*, int min, int) { return min; };
    struct raft_fsm fsm {};
    fsm.version = 1;
    struct raft r {};
    REQUIRE(raft_init(&r, &io, &fsm, 1, "1") == 0);
    REQUIRE(raft_start(&r) == 0);
    raft_close(&r, [](struct raft*) {});
    REQUIRE((got.tick != nullptr && got.recv != nullptr));
    return got;
  }();
  return cbs;
}

// ---- the fixture's in-memory disk, guarded ------------------------------------
//
// libraft 0.15's in-memory raft_io keeps a node's persisted entries in an
// array that it treats as starting at index 1, whatever snapshots did, and
// its truncate(index) keeps index - 1 entries without looking at how many it
// holds. A follower that installed a snapshot (or whose appends are still in
// flight) and then truncates a conflicting suffix makes it copy and later
// free memory past the array: the process crashes at random, most often in
// raft_fixture_close (seeds 135 and 242 of generation 1). The guard counts
// the entries the array really holds (completed appends minus truncations)
// and never asks it to keep more. Nothing reads the array back (no node
// restarts from it), so only the bound matters.
class FixtureDiskGuard {
 public:
  explicit FixtureDiskGuard(struct raft_io* io) : io_(io), append_(io->append), truncate_(io->truncate) {
    std::lock_guard lk(mu());
    guards()[io] = this;
    io->append = append;
    io->truncate = truncate;
  }
  ~FixtureDiskGuard() {
    std::lock_guard lk(mu());
    guards().erase(io_);
  }
  FixtureDiskGuard(const FixtureDiskGuard&) = delete;
  FixtureDiskGuard& operator=(const FixtureDiskGuard&) = delete;

  // A full disk: after `after` more appends, the next `count` ones fail in
  // their callback (the request was taken; the write did not happen), as
  // the libuv backend reports ENOSPC.
  void fail_appends(unsigned after, unsigned count) {
    pass_ = after;
    fail_ = count;
  }

 private:
  static std::mutex& mu() {
    static std::mutex m;
    return m;
  }
  static std::map<struct raft_io*, FixtureDiskGuard*>& guards() {
    static std::map<struct raft_io*, FixtureDiskGuard*> g;
    return g;
  }
  static FixtureDiskGuard* of(struct raft_io* io) {
    std::lock_guard lk(mu());
    return guards().at(io);
  }
  static int append(struct raft_io* io, struct raft_io_append* req, const struct raft_entry entries[], unsigned n,
                    raft_io_append_cb cb) {
    FixtureDiskGuard* g = of(io);
    g->appending_[req] = Pending{cb, n};
    const int rv = g->append_(io, req, entries, n, appended);
    if (rv != 0) g->appending_.erase(req);
    return rv;
  }
  // The fixture completes appends in order; `req` is one of this node's.
  static void appended(struct raft_io_append* req, int status) {
    FixtureDiskGuard* g = nullptr;
    {
      std::lock_guard lk(mu());
      for (auto& [io, guard] : guards()) {
        if (guard->appending_.count(req)) g = guard;
      }
    }
    REQUIRE(g != nullptr);
    const Pending p = g->appending_.at(req);
    g->appending_.erase(req);
    if (status == 0 && g->fail_ > 0 && g->pass_-- == 0) {
      g->pass_ = 0;
      g->fail_--;
      status = RAFT_IOERR;  // the array holds them; held_ does not count them (only the bound matters)
    }
    if (status == 0) g->held_ += p.n;
    if (p.cb) p.cb(req, status);
  }
  static int truncate(struct raft_io* io, raft_index index) {
    FixtureDiskGuard* g = of(io);
    const raft_index keep = std::min<raft_index>(index - 1, g->held_);
    const int rv = g->truncate_(io, keep + 1);
    if (rv == 0) g->held_ = keep;
    return rv;
  }

  struct Pending {
    raft_io_append_cb cb;
    unsigned n;
  };
  struct raft_io* const io_;
  decltype(raft_io::append) const append_;
  decltype(raft_io::truncate) const truncate_;
  std::map<struct raft_io_append*, Pending> appending_;  // loop thread
  raft_index held_ = 1;  // the bootstrap configuration entry
  unsigned pass_ = 0;    // appends to let through before failing
  unsigned fail_ = 0;    // appends to fail
};

// Puts node i of `c` behind a new RaftIoShim (which must outlive `c`).
// REQUIRES: no fixture step yet.
std::unique_ptr<RaftIoShim> install_shim(FixtureCluster& c, unsigned i) {
  struct raft* r = c.raft(i);
  struct raft_io* inner = r->io;
  auto shim = std::make_unique<RaftIoShim>(inner);  // inner->data: the shim
  struct raft_io* outer = shim->io();
  outer->data = r;  // what libraft's callbacks expect
  r->io = outer;
  const LibraftCallbacks cbs = libraft_callbacks();
  REQUIRE(outer->start(outer, r->heartbeat_timeout, cbs.tick, cbs.recv) == 0);  // the fixture now calls the shim
  return shim;
}

class ScheduleRunner {
 public:
  ScheduleRunner(const Schedule& s, const ScheduleHooks& hooks)
      : s_(s), hooks_(hooks), c_(s.options), n_(s.options.n), model_(s.databases) {
    for (unsigned i = 0; i < n_; i++) disk_guards_.push_back(std::make_unique<FixtureDiskGuard>(c_.raft(i)->io));
    io_failed_.assign(n_, "");
    stopped_.assign(n_, false);
    if (!hooks.without_io_shim) {
      for (unsigned i = 0; i < n_; i++) {
        shims_.push_back(install_shim(c_, i));
        // As sqraft node does: a node whose log or term cannot be written stops.
        shims_.back()->on_io_failure([this, i](const std::string& what) { io_failed_[i] = what; });
      }
    }
    cut_.assign(n_, std::vector<bool>(n_, false));
    disconnected_ = cut_;
    dead_.assign(n_, false);
    isolated_.assign(n_, false);
    latency_changed_.assign(n_, false);
  }

  ScheduleResult run();

 private:
  struct PendingWrite {
    long id;
    unsigned db;
    unsigned node;
    WriteKind kind;
    size_t step;
    std::shared_ptr<FixtureCluster::Job> job;
  };
  struct Model {
    std::set<long> acked, failed, unknown;
  };
  // What a step with `lasts` did, to be undone at step `due`.
  struct Undo {
    size_t due;
    StepKind kind;
    unsigned node = 0;
    std::vector<std::pair<unsigned, unsigned>> links;  // cut or disconnected
  };

  // Each returns what it did ("" when it did nothing: no such role, or a
  // guard refused).
  std::string play(size_t index, const ScheduleStep& st);
  std::string write(size_t index, const ScheduleStep& st);
  std::string partition(const ScheduleStep& st);
  std::string kill_or_revive(const ScheduleStep& st);
  std::string revive(unsigned node);
  std::string leadership(const ScheduleStep& st);
  std::string slow_or_fail(const ScheduleStep& st);

  std::optional<unsigned> leader();
  std::optional<unsigned> resolve(Role role, uint32_t pick);
  unsigned other(unsigned node, uint32_t pick) const { return (node + 1 + pick % (n_ - 1)) % n_; }
  unsigned impaired() const;
  bool network_pristine() const;
  void cut(unsigned from, unsigned to);
  void undo_due(size_t index);
  std::vector<std::pair<unsigned, unsigned>> cut_now_;  // links the running step cut
  unsigned target_ = 0;                                  // the node the running step acted on
  void heal_links();

  void poll() {
    c_.step_until([] { return true; }, 0);
    stop_failed_nodes();
  }
  void stop_failed_nodes();
  bool any_busy();
  size_t running_writes() const;
  bool wait_for_writers(size_t done_before);
  void advance(unsigned ms);
  // advance() until `cond` holds (checked between fixture steps); false
  // after `max_ms` of cluster time.
  bool advance_until(const std::function<bool()>& cond, unsigned max_ms);
  unsigned wait_leader(unsigned max_ms);
  bool settle(unsigned max_ms);
  void collect();
  bool check(const std::string& when);
  void fail(const std::string& what);
  void corrupt_one_follower(size_t index);
  bool heal();
  void finish();
  void final_checks();
  void log(const std::string& line);
  std::string cluster_state();

  const Schedule& s_;
  const ScheduleHooks hooks_;
  // Declared before the cluster: raft may call a transfer back while the
  // cluster closes.
  std::vector<std::unique_ptr<struct raft_transfer>> transfers_;
  // Likewise: the cluster's close goes through them.
  std::vector<std::unique_ptr<FixtureDiskGuard>> disk_guards_;
  std::vector<std::unique_ptr<RaftIoShim>> shims_;
  FixtureCluster c_;
  const unsigned n_;
  StateLedger ledger_;
  std::vector<std::vector<bool>> cut_;           // cut_[i][j]: the schedule drops i → j
  std::vector<std::vector<bool>> disconnected_;  // raft_fixture_disconnect'ed pairs
  std::vector<bool> dead_;                       // killed by the schedule
  std::vector<bool> isolated_;
  std::vector<bool> latency_changed_;
  std::vector<std::string> io_failed_;  // what the shim reported failing, per node
  std::vector<bool> stopped_;           // stopped for good after a failed write
  std::vector<PendingWrite> pending_;
  std::vector<Undo> undos_;
  std::vector<Model> model_;
  long next_id_ = 1;
  size_t done_writes_ = 0;
  ScheduleResult res_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

// SQRAFT_SCHEDULE_TRACE=1 also prints every line at once (to see the steps
// before a crash, which never prints the log).
void ScheduleRunner::log(const std::string& line) {
  static const bool trace = std::getenv("SQRAFT_SCHEDULE_TRACE") != nullptr;
  const std::string l = "t=" + std::to_string(raft_fixture_time(c_.fixture())) + " " + line + "\n";
  res_.log += l;
  if (trace) std::fputs(l.c_str(), stderr);
}

void ScheduleRunner::fail(const std::string& what) {
  if (!res_.ok) return;  // keep the first failure
  res_.ok = false;
  res_.failure = what;
  log("FAILED: " + what);
}

// The term of entry `index` in `r`'s in-memory log (0 if it has none).
raft_term term_at(const struct raft* r, raft_index index) {
  const struct raft_log& l = r->log;
  const size_t n = l.back >= l.front ? l.back - l.front : l.size - l.front + l.back;
  if (index <= l.offset || index > l.offset + n) return 0;
  return l.entries[(l.front + (index - l.offset - 1)) % l.size].term;
}

// Every node's Raft and VFS state, for a failure message.
std::string ScheduleRunner::cluster_state() {
  std::string out;
  for (unsigned i = 0; i < n_; i++) {
    struct raft* r = c_.raft(i);
    out += "\n  node " + std::to_string(i) + (c_.alive(i) ? "" : " (killed)") + ": state " +
           std::to_string(raft_state(r)) + " term " + std::to_string(r->current_term) + " last " +
           std::to_string(raft_last_index(r)) + " commit " + std::to_string(r->commit_index) + " applied " +
           std::to_string(raft_last_applied(r)) + " stored " + std::to_string(r->last_stored) + " leader " +
           std::to_string(raft_state(r) == RAFT_FOLLOWER ? r->follower_state.current_leader.id : 0) + " ae-recv " +
           std::to_string(raft_fixture_n_recv(c_.fixture(), i, RAFT_IO_APPEND_ENTRIES)) +
           " votes-sent/recv " + std::to_string(raft_fixture_n_send(c_.fixture(), i, RAFT_IO_REQUEST_VOTE_RESULT)) +
           "/" + std::to_string(raft_fixture_n_recv(c_.fixture(), i, RAFT_IO_REQUEST_VOTE_RESULT)) +
           " last terms";
    for (raft_index k = raft_last_index(r) > 3 ? raft_last_index(r) - 3 : 1; k <= raft_last_index(r); k++) {
      out += " " + std::to_string(term_at(r, k));
    }
    if (raft_state(r) == RAFT_LEADER) {
      for (unsigned j = 0; j < n_; j++) {
        const struct raft_progress& p = r->leader_state.progress[j];
        out += " progress[" + std::to_string(j) + "]=" + std::to_string(p.state) + "/" + std::to_string(p.next_index) +
               "/" + std::to_string(p.match_index);
      }
    }
    out += std::string(c_.proposer(i).busy() ? " busy" : "") +
           (c_.proposer(i).leader_ready() ? " ready" : "");
    for (const std::string& name : c_.vfs(i).names()) out += " [" + name + " " + c_.vfs(i).find(name)->debug_state() + "]";
    for (unsigned j = 0; j < n_; j++) {
      if (j != i && raft_fixture_saturated(c_.fixture(), i, j)) out += " drops->" + std::to_string(j);
    }
  }
  return out;
}

std::optional<unsigned> ScheduleRunner::leader() {
  std::optional<unsigned> found;
  for (unsigned i = 0; i < n_; i++) {
    if (dead_[i] || raft_state(c_.raft(i)) != RAFT_LEADER) continue;
    if (!found || c_.raft(i)->current_term > c_.raft(*found)->current_term) found = i;
  }
  return found;
}

std::optional<unsigned> ScheduleRunner::resolve(Role role, uint32_t pick) {
  const std::optional<unsigned> l = leader();
  if (role == Role::kLeader) return l;
  std::vector<unsigned> candidates;
  for (unsigned i = 0; i < n_; i++) {
    if (role == Role::kFollower && (l == i || dead_[i])) continue;
    candidates.push_back(i);
  }
  if (candidates.empty()) return std::nullopt;
  return candidates[pick % candidates.size()];
}

unsigned ScheduleRunner::impaired() const {
  unsigned k = 0;
  for (unsigned i = 0; i < n_; i++) k += dead_[i] || isolated_[i];
  return k;
}

bool ScheduleRunner::network_pristine() const {
  for (unsigned i = 0; i < n_; i++) {
    if (dead_[i]) return false;
    for (unsigned j = 0; j < n_; j++) {
      if (cut_[i][j] || disconnected_[i][j]) return false;
    }
  }
  return true;
}

void ScheduleRunner::cut(unsigned from, unsigned to) {
  raft_fixture_saturate(c_.fixture(), from, to);
  cut_[from][to] = true;
  cut_now_.emplace_back(from, to);
}

// Undoes what earlier steps did for `lasts` steps, once due.
void ScheduleRunner::undo_due(size_t index) {
  for (auto it = undos_.begin(); it != undos_.end();) {
    if (it->due > index) {
      ++it;
      continue;
    }
    const Undo u = *it;
    it = undos_.erase(it);
    std::string did;
    switch (u.kind) {
      case StepKind::kKill:
        if (!dead_[u.node] || stopped_[u.node]) break;
        did = revive(u.node);
        break;
      case StepKind::kNetLatency:
        raft_fixture_set_network_latency(c_.fixture(), u.node, kDefaultNetworkLatencyMs);
        did = "network latency of node " + std::to_string(u.node) + " back to normal";
        break;
      case StepKind::kDiskLatency:
        raft_fixture_set_disk_latency(c_.fixture(), u.node, kDefaultDiskLatencyMs);
        did = "disk latency of node " + std::to_string(u.node) + " back to normal";
        break;
      default:
        for (auto [a, b] : u.links) {
          if (u.kind == StepKind::kDisconnect) {
            if (!disconnected_[a][b]) continue;
            raft_fixture_reconnect(c_.fixture(), a, b);  // one direction, as the disconnect
            disconnected_[a][b] = false;
          } else {
            if (!cut_[a][b]) continue;
            cut_[a][b] = false;
            if (!dead_[a] && !dead_[b]) raft_fixture_desaturate(c_.fixture(), a, b);
          }
        }
        if (u.kind == StepKind::kIsolate) isolated_[u.node] = false;
        did = std::string(kStepKindNames[size_t(u.kind)]) + " undone";
        break;
    }
    if (!did.empty()) log("  (before #" + std::to_string(index) + ") " + did);
  }
}

// Restores every link the schedule cut or disconnected between live nodes
// (a dead node's links stay saturated: that is what killed means here).
void ScheduleRunner::heal_links() {
  for (unsigned i = 0; i < n_; i++) {
    for (unsigned j = 0; j < n_; j++) {
      if (i == j || dead_[i] || dead_[j]) continue;
      if (cut_[i][j]) raft_fixture_desaturate(c_.fixture(), i, j);
      if (disconnected_[i][j]) raft_fixture_reconnect(c_.fixture(), i, j);
      cut_[i][j] = false;
      disconnected_[i][j] = false;
    }
    if (!dead_[i]) isolated_[i] = false;
  }
}

// A node whose Raft write failed stops, as sqraft node does (kErrRaftWrite):
// its writers fail, it leaves the cluster for good (no revive).
void ScheduleRunner::stop_failed_nodes() {
  for (unsigned i = 0; i < n_; i++) {
    if (io_failed_[i].empty() || stopped_[i]) continue;
    stopped_[i] = true;
    res_.stats.unavailable_nodes++;
    if (!dead_[i]) c_.kill(i);
    dead_[i] = true;
    c_.proposer(i).shutdown();
    log("node " + std::to_string(i) + " stops: " + io_failed_[i]);
  }
}

bool ScheduleRunner::any_busy() {
  for (unsigned i = 0; i < n_; i++) {
    if (c_.proposer(i).busy()) return true;
  }
  return false;
}

size_t ScheduleRunner::running_writes() const {
  size_t k = 0;
  for (const PendingWrite& w : pending_) k += !w.job->done.load();
  return k;
}

// Writers compute in real time: give them a moment to hand their frames to
// the loop before the cluster's clock moves on. True if one did (a proposer
// got work) or finished.
bool ScheduleRunner::wait_for_writers(size_t running_before) {
  const auto until = std::chrono::steady_clock::now() + kWriterWaitMax;
  while (std::chrono::steady_clock::now() < until) {
    if (any_busy() || running_writes() != running_before) return true;
    std::this_thread::sleep_for(kWriterWaitSlice);
  }
  return false;
}

void ScheduleRunner::advance(unsigned ms) {
  struct raft_fixture* f = c_.fixture();
  const raft_time until = raft_fixture_time(f) + ms;
  unsigned fruitless = 0;
  size_t running = running_writes();
  while (raft_fixture_time(f) < until) {
    poll();
    collect();
    const size_t now_running = running_writes();
    if (now_running != running) {
      running = now_running;
      fruitless = 0;
    }
    if (running > 0 && fruitless < kFruitlessWaitsMax && !any_busy()) {
      if (wait_for_writers(running)) {
        fruitless = 0;
        continue;
      }
      fruitless++;
    }
    raft_fixture_step(f);
  }
  poll();
  collect();
}

bool ScheduleRunner::advance_until(const std::function<bool()>& cond, unsigned max_ms) {
  const raft_time deadline = raft_fixture_time(c_.fixture()) + max_ms;
  for (;;) {
    poll();
    collect();
    if (cond()) return true;
    if (raft_fixture_time(c_.fixture()) > deadline) return false;
    advance(1);  // one event (waiting for writers if any are running)
  }
}

unsigned ScheduleRunner::wait_leader(unsigned max_ms) {
  unsigned found = n_;
  advance_until(
      [&] {
        for (unsigned i = 0; i < n_; i++) {
          if (c_.alive(i) && c_.proposer(i).leader_ready()) {
            found = i;
            return true;
          }
        }
        return false;
      },
      max_ms);
  return found;
}

// Every live node applied all the leader has, in the leader's term, nothing
// in flight. (FixtureCluster::settle takes any node in leader state as the
// leader: a deposed one that has not heard of the next term yet stops it
// too early.)
bool ScheduleRunner::settle(unsigned max_ms) {
  return advance_until(
      [&] {
        unsigned l = n_;
        for (unsigned i = 0; i < n_; i++) {
          if (!c_.alive(i) || raft_state(c_.raft(i)) != RAFT_LEADER) continue;
          if (l == n_ || c_.raft(i)->current_term > c_.raft(l)->current_term) l = i;
        }
        if (l == n_) return false;
        const raft_index target = raft_last_applied(c_.raft(l));
        if (raft_last_index(c_.raft(l)) != target) return false;
        for (unsigned i = 0; i < n_; i++) {
          if (!c_.alive(i)) continue;
          if (c_.raft(i)->current_term != c_.raft(l)->current_term) return false;
          if (raft_last_applied(c_.raft(i)) != target || c_.proposer(i).busy()) return false;
          for (const std::string& name : c_.vfs(i).names()) {
            if (c_.vfs(i).find(name)->has_deferred()) return false;
          }
        }
        return true;
      },
      max_ms);
}

// Moves decided writes into the model.
void ScheduleRunner::collect() {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (!it->job->done.load()) {
      ++it;
      continue;
    }
    Model& m = model_[it->db];
    const Status& st = it->job->result.status();
    const int primary = st.code() & 0xff;
    std::string outcome;
    if (it->kind == WriteKind::kRolledBack) {
      m.failed.insert(it->id);  // whatever it was told, a rolled-back transaction is nowhere
      outcome = "rolled back (" + (st.ok() ? std::string("ok") : st.to_string()) + ")";
      res_.stats.writes_failed++;
    } else if (st.ok()) {
      m.acked.insert(it->id);
      outcome = "ok";
      res_.stats.writes_ok++;
    } else if (st.is_not_leader() || primary == SQLITE_ERROR || primary == SQLITE_CONSTRAINT) {
      // Refused before anything was proposed, or an SQL error before COMMIT.
      m.failed.insert(it->id);
      outcome = "failed: " + st.to_string();
      res_.stats.writes_failed++;
    } else {
      m.unknown.insert(it->id);  // "leadership lost", "outcome unknown", I/O errors: either way
      outcome = "unknown: " + st.to_string();
      res_.stats.writes_unknown++;
    }
    log("  write " + std::to_string(it->id) + " (step " + std::to_string(it->step) + ", node " +
        std::to_string(it->node) + ") " + outcome);
    done_writes_++;
    it = pending_.erase(it);
  }
}

bool ScheduleRunner::check(const std::string& when) {
  for (unsigned i = 0; i < n_; i++) {
    StateLedger::State state;
    for (const std::string& name : c_.vfs(i).names()) state.emplace_back(name, c_.checksum(i, name));
    const std::string err = ledger_.record(i, raft_last_applied(c_.raft(i)), state, when);
    res_.stats.checks++;
    if (!err.empty()) {
      fail(err);
      return false;
    }
    if (c_.proposer(i).diverged()) {
      fail("node " + std::to_string(i) + " diverged (" + when + "): " + c_.proposer(i).divergence().to_string());
      return false;
    }
  }
  return true;
}

std::string ScheduleRunner::write(size_t index, const ScheduleStep& st) {
  std::vector<unsigned> ready;
  auto find_ready = [&] {
    ready.clear();
    for (unsigned i = 0; i < n_; i++) {
      if (!dead_[i] && c_.proposer(i).leader_ready()) ready.push_back(i);
    }
    return !ready.empty();
  };
  // A waited write first waits (a while) for a leader that may write.
  const raft_time leader_deadline = raft_fixture_time(c_.fixture()) + kWaitLeaderMaxMs;
  while (!find_ready() && st.wait && raft_fixture_time(c_.fixture()) < leader_deadline) advance(50);
  // One write in ten goes to any node (a follower refuses it, a killed or
  // cut-off leader may take it and lose it).
  const unsigned node = !ready.empty() && st.pick % 10 != 0 ? ready[st.pick % ready.size()] : st.pick % n_;
  const long id = next_id_++;
  Mode mode;
  std::vector<std::string> stmts = write_statements(st, id, index, &mode);
  pending_.push_back(PendingWrite{id, st.db, node, st.write, index, c_.submit(node, db_name(st.db), stmts, mode)});
  std::string what = "write " + std::to_string(id) + " on node " + std::to_string(node);
  if (!st.wait) return what;
  auto job = pending_.back().job;
  const raft_time give_up = raft_fixture_time(c_.fixture()) + kWaitedWriteMaxMs;
  while (!job->done.load() && raft_fixture_time(c_.fixture()) < give_up) advance(50);
  return what + (job->done.load() ? " (decided)" : " (still running)");
}

std::string ScheduleRunner::partition(const ScheduleStep& st) {
  const unsigned quorum_faults = (n_ - 1) / 2;
  switch (st.kind) {
    case StepKind::kIsolate: {
      const auto t = resolve(st.role, st.pick);
      if (!t || dead_[*t] || isolated_[*t] || impaired() >= quorum_faults) return "";
      for (unsigned j = 0; j < n_; j++) {
        if (j == *t) continue;
        cut(*t, j);
        cut(j, *t);
      }
      isolated_[*t] = true;
      target_ = *t;
      return "isolated node " + std::to_string(*t);
    }
    case StepKind::kSplit: {
      const unsigned size = 1 + st.pick2 % quorum_faults;
      std::vector<bool> minority(n_, false);
      std::string group;
      for (unsigned k = 0; k < size; k++) {
        const unsigned node = (st.pick + k) % n_;
        minority[node] = true;
        group += (k ? "," : "") + std::to_string(node);
      }
      for (unsigned i = 0; i < n_; i++) {
        for (unsigned j = 0; j < n_; j++) {
          if (minority[i] != minority[j]) cut(i, j);
        }
      }
      return "split {" + group + "} from the rest";
    }
    case StepKind::kCutLink:
    case StepKind::kCutOneWay:
    case StepKind::kDisconnect: {
      const auto a = resolve(st.role, st.pick);
      if (!a) return "";
      const unsigned b = other(*a, st.pick2);
      if (st.kind == StepKind::kDisconnect) {
        // raft_fixture_disconnect(i, j) fails sends from i to j only: both.
        raft_fixture_disconnect(c_.fixture(), *a, b);
        raft_fixture_disconnect(c_.fixture(), b, *a);
        disconnected_[*a][b] = disconnected_[b][*a] = true;
        cut_now_.emplace_back(*a, b);
        cut_now_.emplace_back(b, *a);
        return "disconnected " + std::to_string(*a) + " and " + std::to_string(b);
      }
      cut(*a, b);
      if (st.kind == StepKind::kCutOneWay) return "dropping " + std::to_string(*a) + " -> " + std::to_string(b);
      cut(b, *a);
      return "cut " + std::to_string(*a) + " <-> " + std::to_string(b);
    }
    case StepKind::kHealNet:
      heal_links();
      return "links between live nodes restored";
    default:
      return "";
  }
}

std::string ScheduleRunner::kill_or_revive(const ScheduleStep& st) {
  if (st.kind == StepKind::kKill) {
    const auto t = resolve(st.role, st.pick);
    if (!t || dead_[*t]) return "";
    if (st.repeat == 0 && impaired() >= (n_ - 1) / 2) return "";
    c_.kill(*t);
    dead_[*t] = true;
    target_ = *t;
    return "killed node " + std::to_string(*t);
  }
  std::vector<unsigned> down;
  for (unsigned i = 0; i < n_; i++) {
    if (dead_[i] && !stopped_[i]) down.push_back(i);
  }
  if (down.empty()) return "";
  return revive(down[st.pick % down.size()]);
}

std::string ScheduleRunner::revive(unsigned t) {
  c_.revive(t);  // desaturates every link to a live node, the schedule's cuts included:
  dead_[t] = false;
  for (unsigned j = 0; j < n_; j++) {  // put those back
    if (j == t || dead_[j]) continue;
    if (cut_[t][j]) raft_fixture_saturate(c_.fixture(), t, j);
    if (cut_[j][t]) raft_fixture_saturate(c_.fixture(), j, t);
  }
  return "revived node " + std::to_string(t);
}

void transfer_done(struct raft_transfer*) {}

std::string ScheduleRunner::leadership(const ScheduleStep& st) {
  struct raft_fixture* f = c_.fixture();
  if (st.kind == StepKind::kDepose) {
    // raft_fixture_depose asserts a stable leader; it steps the leader down by
    // dropping its followers' replies. Only on an intact network.
    if (f->leader_id == 0 || !network_pristine()) return "";
    const unsigned l = unsigned(f->leader_id - 1);
    if (raft_state(c_.raft(l)) != RAFT_LEADER) return "";
    for (unsigned i = 0; i < n_; i++) {
      if (c_.raft(i)->election_timeout != 1000) return "";
    }
    raft_fixture_depose(f);
    return "deposed leader " + std::to_string(l);
  }
  if (st.kind == StepKind::kTransfer) {
    const auto l = leader();
    if (!l) return "";
    const unsigned t = other(*l, st.pick2);
    transfers_.push_back(std::make_unique<struct raft_transfer>());
    const int rv = raft_transfer(c_.raft(*l), transfers_.back().get(), c_.raft(t)->id, transfer_done);
    if (rv != 0) return "";
    return "transfer from " + std::to_string(*l) + " to " + std::to_string(t);
  }
  const auto l = leader();
  if (!l || !c_.proposer(*l).leader_ready() || !c_.vfs(*l).exists(db_name(st.pick % s_.databases))) return "";
  c_.proposer(*l).checkpoint(db_name(st.pick % s_.databases));
  return "checkpoint of " + db_name(st.pick % s_.databases) + " on " + std::to_string(*l);
}

std::string ScheduleRunner::slow_or_fail(const ScheduleStep& st) {
  if (st.kind == StepKind::kIoFault) {
    if (hooks_.without_io_faults) return "";
    const unsigned t = s_.io_fault_nodes[st.pick % s_.io_fault_nodes.size()];
    if (hooks_.sync_io_faults) {
      raft_fixture_io_fault(c_.fixture(), t, int(st.value), int(st.repeat));
      return "synchronous I/O fault on node " + std::to_string(t) + " after " + std::to_string(st.value) +
             " requests, " + std::to_string(st.repeat) + " times";
    }
    disk_guards_[t]->fail_appends(st.value % 6, st.repeat);
    return "appends of node " + std::to_string(t) + " fail after " + std::to_string(st.value % 6) + " more, " +
           std::to_string(st.repeat) + " times";
  }
  const auto t = resolve(st.role, st.pick);
  if (!t) return "";
  latency_changed_[*t] = true;
  target_ = *t;
  if (st.kind == StepKind::kNetLatency) {
    raft_fixture_set_network_latency(c_.fixture(), *t, st.value);
    return "network latency of node " + std::to_string(*t) + " " + std::to_string(st.value) + "ms";
  }
  raft_fixture_set_disk_latency(c_.fixture(), *t, st.value);
  return "disk latency of node " + std::to_string(*t) + " " + std::to_string(st.value) + "ms";
}

std::string ScheduleRunner::play(size_t index, const ScheduleStep& st) {
  switch (st.kind) {
    case StepKind::kWrite: return write(index, st);
    case StepKind::kAdvance: return "advance";
    case StepKind::kIsolate:
    case StepKind::kSplit:
    case StepKind::kCutLink:
    case StepKind::kCutOneWay:
    case StepKind::kDisconnect:
    case StepKind::kHealNet: return partition(st);
    case StepKind::kKill:
    case StepKind::kRevive: return kill_or_revive(st);
    case StepKind::kNetLatency:
    case StepKind::kDiskLatency:
    case StepKind::kIoFault: return slow_or_fail(st);
    case StepKind::kDepose:
    case StepKind::kTransfer:
    case StepKind::kCheckpoint: return leadership(st);
    case StepKind::kCount: break;
  }
  return "";
}

// Positive control: one follower's tracked state hash is changed while every
// node has applied the same index; the next check must see it.
void ScheduleRunner::corrupt_one_follower(size_t index) {
  settle(kSettleMaxMs);
  const auto l = leader();
  for (unsigned i = 0; i < n_; i++) {
    if (l == i || dead_[i] || c_.vfs(i).names().empty()) continue;
    const std::string db = c_.vfs(i).names().front();
    c_.vfs(i).find(db)->perturb_state_hash_for_testing();
    log("test hook: perturbed the state hash of " + db + " on node " + std::to_string(i) + " after step " +
        std::to_string(index));
    return;
  }
  log("test hook: no follower with a database to perturb");
}

// Everything back to normal: links, nodes, latencies, I/O. A node that an
// I/O failure stopped for good (RAFT_UNAVAILABLE) is killed: it has stopped,
// as a real node would. False if that leaves no quorum.
bool ScheduleRunner::heal() {
  for (unsigned i = 0; i < n_; i++) {
    raft_fixture_io_fault(c_.fixture(), i, -1, 0);
    disk_guards_[i]->fail_appends(0, 0);
    if (latency_changed_[i]) {
      raft_fixture_set_network_latency(c_.fixture(), i, kDefaultNetworkLatencyMs);
      raft_fixture_set_disk_latency(c_.fixture(), i, kDefaultDiskLatencyMs);
    }
  }
  for (unsigned i = 0; i < n_; i++) {
    if (stopped_[i]) continue;
    if (dead_[i]) c_.revive(i);
    dead_[i] = false;
  }
  heal_links();
  // Whatever the bookkeeping says: every link between live nodes works.
  for (unsigned i = 0; i < n_; i++) {
    for (unsigned j = 0; j < n_; j++) {
      if (i == j || dead_[i] || dead_[j]) continue;
      raft_fixture_reconnect(c_.fixture(), i, j);
      raft_fixture_desaturate(c_.fixture(), i, j);
    }
  }
  unsigned stopped = 0;
  for (unsigned i = 0; i < n_; i++) {
    if (!stopped_[i] && raft_state(c_.raft(i)) == RAFT_UNAVAILABLE) {
      c_.kill(i);
      dead_[i] = true;
      stopped_[i] = true;
      res_.stats.unavailable_nodes++;
      log("node " + std::to_string(i) + " is unavailable (an I/O failure stopped it): killed");
    }
    stopped += stopped_[i];
  }
  log("heal");
  if (stopped > (n_ - 1) / 2) {
    fail(std::to_string(stopped) + " nodes stopped by I/O failures: no quorum left");
    return false;
  }
  return true;
}

void ScheduleRunner::final_checks() {
  for (unsigned db = 0; db < s_.databases; db++) {
    const std::string name = db_name(db);
    bool anywhere = false;
    for (unsigned i = 0; i < n_; i++) anywhere = anywhere || (c_.alive(i) && c_.vfs(i).exists(name));
    const Model& m = model_[db];
    if (!anywhere) {
      if (!m.acked.empty()) fail(name + ": " + std::to_string(m.acked.size()) + " acknowledged writes, no database");
      continue;
    }
    for (const char* sql : {"SELECT id, step FROM ledger ORDER BY id", "SELECT k, n, length(v), hex(v) FROM kv ORDER BY k",
                            "SELECT type, name, sql FROM sqlite_schema ORDER BY name"}) {
      const std::string diff = c_.compare(name, sql);
      if (!diff.empty()) fail(name + ": nodes differ after the heal (" + sql + "): " + diff);
    }
    for (unsigned i = 0; i < n_; i++) {
      if (!c_.alive(i)) continue;
      const std::set<long> present = parse_ids(c_.query(i, name, "SELECT id FROM ledger ORDER BY id"));
      for (long id : m.acked) {
        if (!present.count(id)) fail(name + ": write " + std::to_string(id) + " was acknowledged, node " +
                                     std::to_string(i) + " does not have it");
      }
      for (long id : m.failed) {
        if (present.count(id)) fail(name + ": write " + std::to_string(id) + " certainly failed, node " +
                                    std::to_string(i) + " has it");
      }
      for (long id : present) {
        if (!m.acked.count(id) && !m.unknown.count(id)) {
          fail(name + ": node " + std::to_string(i) + " has write " + std::to_string(id) + ", never acknowledged");
        }
      }
    }
  }
}

void ScheduleRunner::finish() {
  if (!heal()) return;
  const raft_time give_up = raft_fixture_time(c_.fixture()) + kHealDecideMaxMs;
  while (!pending_.empty() && raft_fixture_time(c_.fixture()) < give_up) advance(200);
  if (!check("after the heal")) return;
  for (const PendingWrite& w : pending_) {
    fail("write " + std::to_string(w.id) + " (step " + std::to_string(w.step) + ") still undecided " +
         std::to_string(kHealDecideMaxMs) + "ms after the heal");
  }
  if (!res_.ok) return;
  if (wait_leader(kSettleMaxMs) >= n_) return fail("no leader after the heal:" + cluster_state());
  if (!settle(kSettleMaxMs)) return fail("the cluster did not settle after the heal:" + cluster_state());
  if (!check("settled")) return;
  const auto l = leader();
  if (!l) return fail("no leader once settled:" + cluster_state());
  const raft_index target = raft_last_applied(c_.raft(*l));
  for (unsigned i = 0; i < n_; i++) {
    if (c_.alive(i) && raft_last_applied(c_.raft(i)) != target) {
      fail("node " + std::to_string(i) + " applied " + std::to_string(raft_last_applied(c_.raft(i))) +
           ", the leader " + std::to_string(target));
    }
  }
  if (hooks_.phantom_ack) model_[0].acked.insert(next_id_++);
  final_checks();
}

ScheduleResult ScheduleRunner::run() {
  res_.stats.seeds = 1;
  res_.stats.by_nodes[n_]++;
  log(s_.describe());
  // The first election goes to the seed's node (every node is a follower
  // with no leader yet: what raft_fixture_elect requires).
  raft_fixture_elect(c_.fixture(), s_.first_leader);
  if (wait_leader(kSettleMaxMs) >= n_) fail("no first leader");
  for (size_t i = 0; i < s_.steps.size() && res_.ok; i++) {
    const ScheduleStep& st = s_.steps[i];
    undo_due(i);
    cut_now_.clear();
    const std::string did = play(i, st);
    if (!did.empty() && st.lasts > 0) undos_.push_back(Undo{i + st.lasts, st.kind, target_, cut_now_});
    if (did.empty()) {
      res_.stats.skipped[size_t(st.kind)]++;
      log("#" + std::to_string(i) + " " + st.describe() + ": nothing to do");
    } else {
      res_.stats.executed[size_t(st.kind)]++;
      log("#" + std::to_string(i) + " " + st.describe() + ": " + did);
    }
    res_.stats.steps++;
    advance(st.ms);
    if (hooks_.corrupt_after_step == int(i)) corrupt_one_follower(i);
    if (!check("after step " + std::to_string(i))) break;
    if (std::chrono::steady_clock::now() - started_ > kSeedWallMax) fail("the seed ran out of real time");
  }
  if (res_.ok) finish();
  res_.stats.indices_checked = ledger_.indices();
  for (unsigned i = 0; i < n_; i++) {
    res_.stats.snapshots_taken += c_.proposer(i).fsm().snapshots_taken();
    res_.stats.snapshots_restored += c_.proposer(i).fsm().snapshots_restored();
  }
  res_.stats.cluster_ms = raft_fixture_time(c_.fixture());
  for (const auto& shim : shims_) {
    res_.stats.hints_corrected += shim->corrected();
    res_.stats.snapshot_skips += shim->snapshotted_skipped();
  }
  return std::move(res_);
}

}  // namespace

ScheduleResult run_schedule(const Schedule& schedule, const ScheduleHooks& hooks) {
  ScheduleRunner runner(schedule, hooks);
  return runner.run();
}

}  // namespace sqraft::test
