// Fsm: sqraft's libraft state machine (raft_fsm version 3).
//
//  apply     decodes one Command and applies it to the node's VFS. Malformed
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
  // Once set, every apply fails: the node is stopping.
  bool halted() const { return halted_; }

  // Counters for tests and metrics.
  uint64_t applied_commands() const { return applied_; }
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

  Status apply_command(const struct raft_buffer* buf, uint64_t* proposal_id);

  struct PendingSnapshot {
    std::vector<DbImage> images;
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
  uint64_t applied_ = 0;
  uint64_t snapshots_ = 0;
  uint64_t restores_ = 0;
  Metrics* metrics_ = nullptr;
};

}  // namespace sqraft
