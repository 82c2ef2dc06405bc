// Deterministic fault schedules on the fixture cluster.
//
// A seed gives a Schedule: a node count (3, 5 or 7), cluster options (low
// snapshot, checkpoint and spill thresholds for some seeds) and a list of
// steps mixing workload operations (transactions on whoever leads, over a
// few databases) with faults from raft/fixture.h (partitions, one-way and
// failing links, kills and revivals, network and disk latency, I/O failures,
// deposed leaders, leadership transfers). make_schedule() is a pure function
// of the seed: the same seed always gives the same steps.
//
// run_schedule() plays a schedule on a FixtureCluster. Every step ends with
// fixture steps (its `ms` of cluster time); after every step each node's
// last applied index and the state hash of each of its databases go into a
// StateLedger, which fails the run as soon as two nodes report different
// states at the same index. The schedule ends with a heal (every link
// restored, every node revived, latencies back to normal, no I/O fault
// pending) and a settle; then every live node must have applied the same
// index with equal contents (FixtureCluster::compare), no proposer may have
// diverged, every write acknowledged OK must be present, and no write that
// certainly failed (refused as "not leader", rolled back) may be.
//
// The nodes run libraft behind the production RaftIoShim, as sqraft node
// does (its corrections of libraft 0.15 included; a node whose log write
// fails stops for good, as the shim makes sqraft node do), and the
// fixture's in-memory disk behind a guard against its own truncation bug.
//
// Targets are roles ("the leader", "a follower", "any node") resolved when
// the step runs, so a schedule stays meaningful whoever wins elections.
// Writers run on the nodes' executor threads in real time: a replay of a
// seed takes the same steps, and usually — not always — the same path.
//
// Thread-safety: none; run_schedule() plays every node's loop thread.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "support/fixture_cluster.h"

namespace sqraft::test {

// What one step does. The order is the one of kStepKindNames.
enum class StepKind : uint8_t {
  kWrite,       // a transaction on the leader (or, one in ten, on any node)
  kAdvance,     // only fixture steps
  kIsolate,     // every link of one node dropped
  kSplit,       // a minority group cut off from the rest
  kCutLink,     // one pair of nodes cannot talk (messages dropped)
  kCutOneWay,   // messages from one node to another dropped, not back
  kDisconnect,  // one pair of nodes: sends fail (RAFT_NOCONNECTION)
  kHealNet,     // every link between live nodes restored
  kKill,
  kRevive,
  kNetLatency,   // one node's messages take `value` ms
  kDiskLatency,  // one node's appends take `value` ms
  kIoFault,      // one node's log appends fail (after some), `repeat` times
  kDepose,       // raft_fixture_depose: the leader loses its followers' replies
  kTransfer,     // raft_transfer to another node (an election it was told to win)
  kCheckpoint,   // the leader proposes a Checkpoint of one database
  kCount,
};
inline constexpr size_t kStepKinds = size_t(StepKind::kCount);
extern const std::array<const char*, kStepKinds> kStepKindNames;

enum class WriteKind : uint8_t {
  kInsert,      // INSERT OR REPLACE of 1-3 rows
  kUpdate,      // UPDATE of a residue class of keys
  kDelete,      // DELETE of a residue class of keys
  kMulti,       // 2-5 of the above and schema changes in one transaction
  kLarge,       // 20-150 rows of 0.5-3 KB, or one 64-200 KB row: spills, snapshots
  kAutocommit,  // a single statement committing on its own
  kRolledBack,  // BEGIN, statements, ROLLBACK: must never be visible
  kCount,
};
inline constexpr size_t kWriteKinds = size_t(WriteKind::kCount);

enum class Role : uint8_t { kLeader, kFollower, kAny };

struct ScheduleStep {
  StepKind kind = StepKind::kAdvance;
  Role role = Role::kAny;
  uint32_t pick = 0;   // chooses among the nodes of `role` when the step runs
  uint32_t pick2 = 0;  // a second node (links), or a group (splits)
  unsigned ms = 0;     // cluster time to step afterwards
  unsigned value = 0;  // latency (ms); I/O faults: appends (value % 6) or requests before failing
  unsigned repeat = 0; // I/O faults: failures in a row; kKill: 1 = even past a quorum
  // Partitions, kills, latency: undone this many steps later (0: only by a
  // heal-net, a revive, or the final heal).
  unsigned lasts = 0;
  // kWrite
  WriteKind write = WriteKind::kInsert;
  unsigned db = 0;
  uint32_t key = 0;    // drives the statements' keys and sizes
  bool wait = false;   // step until the write is decided before going on
  std::string describe() const;
};

struct Schedule {
  uint64_t seed = 0;
  FixtureCluster::Options options;
  unsigned databases = 1;
  unsigned first_leader = 0;
  // Nodes that may be given I/O faults: at most (n - 1) / 2 of them, since a
  // node whose log write fails stops for good (RAFT_UNAVAILABLE).
  std::vector<unsigned> io_fault_nodes;
  std::vector<ScheduleStep> steps;
  std::string describe() const;  // one line: nodes, options, step count
};

// The schedule of `seed` (a pure function of it, for one generation of the
// generator: any change to make_schedule() that changes the steps it makes
// must bump kScheduleGeneration, since recorded seeds then mean other
// schedules).
inline constexpr unsigned kScheduleGeneration = 1;
Schedule make_schedule(uint64_t seed);

// The invariant: for every index, the state (each database's name and state
// hash) of every node that reported having applied it.
class StateLedger {
 public:
  using State = std::vector<std::pair<std::string, uint64_t>>;  // sorted by name
  // Records that `node` had applied `index` with `state`. Returns "" or, if
  // another node reported a different state at `index`, a description of
  // both (which nodes, when, which database differs).
  std::string record(unsigned node, uint64_t index, const State& state, const std::string& when);
  size_t indices() const { return by_index_.size(); }

 private:
  struct Seen {
    unsigned node;
    std::string when;
    State state;
  };
  std::map<uint64_t, Seen> by_index_;
};

// What a run counted (summed over seeds by the suite).
struct ScheduleStats {
  uint64_t seeds = 0;
  std::array<uint64_t, 8> by_nodes{};  // seeds per node count
  uint64_t steps = 0;
  std::array<uint64_t, kStepKinds> executed{};  // steps that did something
  std::array<uint64_t, kStepKinds> skipped{};   // steps whose role or guard left nothing to do
  uint64_t writes_ok = 0, writes_failed = 0, writes_unknown = 0;
  uint64_t checks = 0;          // invariant checks (node × step)
  uint64_t indices_checked = 0; // distinct indices compared
  uint64_t snapshots_taken = 0, snapshots_restored = 0;
  uint64_t unavailable_nodes = 0;  // nodes an I/O failure stopped for good
  uint64_t hints_corrected = 0;    // RaftIoShim: results whose hint it capped
  uint64_t snapshot_skips = 0;     // RaftIoShim: AppendEntries cut at the snapshot
  uint64_t cluster_ms = 0;
  void add(const ScheduleStats& o);
  std::string describe() const;
  // The same as key=value words on one line (scripts/schedules.sh sums them).
  std::string key_values() const;
};

struct ScheduleResult {
  bool ok = true;
  std::string failure;  // the first broken property
  std::string log;      // every step as it ran
  ScheduleStats stats;
};

// Test-only hooks: positive controls that prove the checks can fail.
struct ScheduleHooks {
  // After this step (settled first), perturb one follower's state hash of one
  // database: the StateLedger must report it.
  int corrupt_after_step = -1;
  // Count one write that never ran as acknowledged: the final check must
  // report it missing.
  bool phantom_ack = false;
  // Run the nodes on the fixture's raft_io without the production
  // RaftIoShim (libraft 0.15 uncorrected).
  bool without_io_shim = false;
  // Skip the I/O fault steps (to tell what they cause from the rest).
  bool without_io_faults = false;
  // I/O faults as the fixture's raft_fixture_io_fault: the next requests
  // (appends, sends, term and vote writes) fail at once, synchronously.
  // Off by default: libraft 0.15 then frees a follower's entries twice and
  // the process crashes now and then (see docs/reliability.md); by default
  // appends fail in their callback, as a full disk does.
  bool sync_io_faults = false;
};

// Plays `schedule` on a new cluster and checks it.
ScheduleResult run_schedule(const Schedule& schedule, const ScheduleHooks& hooks = {});

}  // namespace sqraft::test
