// RaftIoShim: the raft_io that libraft drives, wrapped around the libuv
// one, to correct libraft 0.15 where it is wrong at this boundary.
//
// The correction: a follower that answers an AppendEntries at once (a
// heartbeat, or entries it already has) reports its own last log index as
// the hint in a successful result, even when entries after the request's
// last one were never checked against the leader's log. A follower holding
// an uncommitted entry of an earlier term (its leader stopped before the
// entry replicated) thus tells a new leader that it matches up to that
// entry; the leader records it as matched, every later AppendEntries is
// rejected at that index, and the leader ignores the rejections as stale:
// the follower never catches up (seen: a restarted node stuck for good).
// The shim caps the hint of such a result at what the request proved
// (prev_log_index + n_entries), which is what the Raft paper's follower
// reports.
//
// It also watches the traffic for the leader's read lease (LeaderLease):
// requests sent, successful results received, TimeoutNow. And it keeps the
// rule the lease rests on across restarts: a node that (re)starts knows no
// leader, and libraft would grant a vote at once; for one election timeout
// after start it ignores (pre-)vote requests that do not carry the leader's
// permission (a transfer's disrupt_leader), as if they were lost.
//
// It also cuts an AppendEntries that starts before the follower's snapshot
// down to the entries after it (libraft 0.15 crashes on the compacted ones;
// they are committed, so the leader's are the same).
//
// And it reports the backend's write failures (on_io_failure): libraft
// 0.15's libuv backend marks itself errored after a failed write (a full
// disk) and fails every later one, while libraft itself carries on — a
// leader keeps committing entries its own log does not hold. The node
// must stop; the shim tells it when, once.
//
// Everything else passes through unchanged. libraft gets io(); the libuv
// backend keeps its own raft_io (inner), whose `data` points to the shim.
//
// Threads: the node's loop thread, like the raft_io it wraps.
#pragma once

#include <functional>
#include <string>

#include "leader_lease.h"
#include "raft_api.h"

namespace sqraft {

class RaftIoShim {
 public:
  // `inner` is initialized (raft_uv_init) and outlives the shim.
  explicit RaftIoShim(struct raft_io* inner);
  RaftIoShim(const RaftIoShim&) = delete;
  RaftIoShim& operator=(const RaftIoShim&) = delete;

  struct raft_io* io() { return &outer_; }
  // The libraft instance driving io() (after raft_init): its timeouts and
  // state. Without it no vote is ignored and the lease is never held.
  void attach(const struct raft* raft) { raft_ = raft; }
  // LeaderLease::held for the attached instance, now, with the lease
  // `lease_ms` long.
  bool lease_held(uint64_t lease_ms) const;
  const LeaderLease& lease() const { return lease_; }
  // Vote requests ignored after start (for tests and logs).
  unsigned long long votes_ignored() const { return votes_ignored_; }
  // Called once, on the loop thread, with what failed, when the backend
  // reports a failed write of the log or of the term/vote metadata (not
  // after close() began: cancelled requests are not failures).
  void on_io_failure(std::function<void(const std::string&)> cb) { on_io_failure_ = std::move(cb); }
  bool io_failed() const { return io_failed_; }
  // Results whose hint was corrected (for tests and logs).
  unsigned long long corrected() const { return corrected_; }
  // AppendEntries whose start before the snapshot was cut (for tests and logs).
  unsigned long long snapshotted_skipped() const { return snapshotted_skipped_; }

 private:
  static RaftIoShim* of(struct raft_io* io) { return static_cast<RaftIoShim*>(io->impl); }
  static RaftIoShim* of_inner(struct raft_io* io) { return static_cast<RaftIoShim*>(io->data); }
  void keep_errmsg(int rv);
  void check_write(const char* what, int rv);
  struct Append;
  static void on_append(struct raft_io_append* ours, int status);

  static int init(struct raft_io* io, raft_id id, const char* address);
  static void close(struct raft_io* io, raft_io_close_cb cb);
  static void on_close(struct raft_io* inner);
  static int load(struct raft_io* io, raft_term* term, raft_id* voted_for, struct raft_snapshot** snapshot,
                  raft_index* start_index, struct raft_entry* entries[], size_t* n_entries);
  static int start(struct raft_io* io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv);
  static void on_tick(struct raft_io* inner);
  static void on_recv(struct raft_io* inner, struct raft_message* msg);
  static int bootstrap(struct raft_io* io, const struct raft_configuration* conf);
  static int recover(struct raft_io* io, const struct raft_configuration* conf);
  static int set_term(struct raft_io* io, raft_term term);
  static int set_vote(struct raft_io* io, raft_id server_id);
  static int send(struct raft_io* io, struct raft_io_send* req, const struct raft_message* message, raft_io_send_cb cb);
  static int append(struct raft_io* io, struct raft_io_append* req, const struct raft_entry entries[], unsigned n,
                    raft_io_append_cb cb);
  static int truncate(struct raft_io* io, raft_index index);
  static int snapshot_put(struct raft_io* io, unsigned trailing, struct raft_io_snapshot_put* req,
                          const struct raft_snapshot* snapshot, raft_io_snapshot_put_cb cb);
  static int snapshot_get(struct raft_io* io, struct raft_io_snapshot_get* req, raft_io_snapshot_get_cb cb);
  static raft_time time(struct raft_io* io);
  static int random(struct raft_io* io, int min, int max);
  static uint64_t now_ms();
  void watch_send(const struct raft_message* m);
  bool ignore_vote(const struct raft_message* m);
  void skip_snapshotted(struct raft_append_entries* ae);
  static int async_work(struct raft_io* io, struct raft_io_async_work* req, raft_io_async_work_cb cb);

  struct raft_io* inner_;
  struct raft_io outer_ {};
  raft_io_tick_cb tick_ = nullptr;
  raft_io_recv_cb recv_ = nullptr;
  raft_io_close_cb close_ = nullptr;
  // While libraft handles an AppendEntries: the last index it proves.
  bool in_append_ = false;
  raft_index proven_ = 0;
  unsigned long long corrected_ = 0;
  unsigned long long snapshotted_skipped_ = 0;
  const struct raft* raft_ = nullptr;
  LeaderLease lease_;
  uint64_t started_ms_ = 0;
  unsigned long long votes_ignored_ = 0;
  std::function<void(const std::string&)> on_io_failure_;
  bool io_failed_ = false;
  bool closing_ = false;
};

}  // namespace sqraft
