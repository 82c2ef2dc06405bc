// Fsm: sqraft's libraft state machine (raft_fsm version 3).
//
//  apply     decodes one Command and applies it to the node's VFS (or skips
//            it when the database's files already hold it: disk mode after
//            a restart). Malformed
//            commands and commands that fail the same way on every node are
//            reported to the proposer (if it is this node) and skipped; a
//            checksum mismatch after a commit means this node's copy diverged
//            from the leader's: the observer is told and the node must stop.
//  snapshot  captures every database (cheap: shared pages) on the loop thread;
//  snapshot_async  serialises them on a worker thread;
//  snapshot_finalize  releases both on the loop thread;
//  restore   verifies a snapshot completely, then installs it. A damaged
//            snapshot is refused and the node's state stays as it was.
//
// Thread-safety: everything except snapshot_async runs on the loop thread.
#pragma once

#include "raft_api.h"

#include <cstdint>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "frames.h"
#include "metrics.h"
#include "snapshot_codec.h"
#include "status.h"

namespace sqraft {

class Vfs;

class FsmObserver {
 public:
  virtual ~FsmObserver() = default;
  // True if `proposal_id` was proposed by this node and is waiting.
  virtual bool is_own(uint64_t proposal_id) = 0;
  // The command `proposal_id` was applied with `status`.
  virtual void applied(uint64_t proposal_id, const Status& status) = 0;
  // This node's state diverged from the leader's. It must stop.
  virtual void diverged(const Status& status) = 0;
  // A transaction committed on `db` (for checkpoint scheduling).
  virtual void committed(const std::string& db) = 0;
  // A snapshot replaced the node's state (entries up to its index were not
  // applied one by one).
  virtual void restored() = 0;
};

class Fsm {
 public:
  Fsm(Vfs& vfs, FsmObserver& observer);
  ~Fsm();
  Fsm(const Fsm&) = delete;
  Fsm& operator=(const Fsm&) = delete;

  struct raft_fsm* raft_fsm() { return &fsm_; }
  // The Raft instance applying entries: apply() learns each entry's index
  // from it (libraft 0.15 does not pass it). Loop thread, before raft_start.
  void set_raft(struct raft* raft) { raft_ = raft; }
  // Once set, every apply fails: the node is stopping.
  bool halted() const { return halted_; }

  // Counters for tests and metrics.
  uint64_t applied_commands() const { return applied_; }
  // Entries not applied because the database files already held them
  // (disk mode, after a restart).
  uint64_t skipped_commands() const { return skipped_; }
  // Start-up: entries up to `index` are the node's own log, those after
  // come from the leader. replayed_commands() counts the former applied.
  void set_replay_end(uint64_t index) { replay_end_ = index; }
  uint64_t replayed_commands() const { return replayed_; }
  // The index of the last entry apply() saw (applied or skipped).
  uint64_t last_index() const { return last_index_; }
  uint64_t snapshots_taken() const { return snapshots_; }
  uint64_t snapshots_restored() const { return restores_; }
  // Where to count applies and snapshots (may be null; must outlive the Fsm).
  void set_metrics(Metrics* m) { metrics_ = m; }

 private:
  static int apply(struct raft_fsm* fsm, const struct raft_buffer* buf, void** result);
  static int snapshot(struct raft_fsm* fsm, struct raft_buffer* bufs[], unsigned* n_bufs);
  static int snapshot_async(struct raft_fsm* fsm, struct raft_buffer* bufs[], unsigned* n_bufs);
  static int snapshot_finalize(struct raft_fsm* fsm, struct raft_buffer* bufs[], unsigned* n_bufs);
  static int restore(struct raft_fsm* fsm, struct raft_buffer* buf);

  Status apply_command(const struct raft_buffer* buf, uint64_t index, uint64_t* proposal_id, bool* skipped);

  struct PendingSnapshot {
    std::vector<DbImage> images;
    uint64_t index = 0;  // the log index they are at
    std::vector<SnapshotBuffer> encoded;
    std::unique_ptr<struct raft_buffer[]> bufs;
    Status failure;  // set by snapshot_async, acted on by snapshot_finalize
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  };

  Vfs& vfs_;
  FsmObserver& observer_;
  struct raft_fsm fsm_{};
  std::unique_ptr<PendingSnapshot> pending_;
  bool halted_ = false;
  struct raft* raft_ = nullptr;
  uint64_t applied_ = 0;
  uint64_t skipped_ = 0;
  uint64_t replay_end_ = 0;
  uint64_t replayed_ = 0;
  uint64_t last_index_ = 0;
  uint64_t snapshots_ = 0;
  uint64_t restores_ = 0;
  Metrics* metrics_ = nullptr;
};

}  // namespace sqraft
