// Node: one sqraft server — a libuv loop thread running Raft (log and
// snapshots on disk under `dir`), the state machine, and one listening
// address that serves dqlite wire-protocol clients and Raft peers alike.
//
// Lifecycle: create() validates options; start() opens the data directory,
// loads the latest snapshot and the log, bootstraps a new cluster if asked to,
// starts listening and returns once the node is running; stop() shuts down
// gracefully (idempotent; also done by the destructor).
//
// Thread-safety: public methods may be called from any thread except the
// loop thread itself.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "raft_api.h"
#include "sql_guard.h"
#include "status.h"

namespace sqraft {

class NodeImpl;

struct Member {
  raft_id id = 0;
  std::string address;
  int role = RAFT_VOTER;  // raft role code
};

// Where a node keeps its databases (docs/operations.md, "Storage modes").
enum class Storage {
  kMemory,  // in memory; a restart rebuilds them from the snapshot and the log
  kDisk,    // SQLite files under <dir>/databases; a restart replays only the log's tail
};
inline constexpr char kDatabasesDir[] = "databases";

struct NodeOptions {
  raft_id id = 0;
  std::string address;        // how clients and peers reach this node
  std::string bind_address;   // where to listen, if different (e.g. 0.0.0.0:9000)
  std::string dir;            // data directory: created (0700) if missing; must hold only sqraft's files
  // Expected one-way network latency; heartbeat = 5x, election timeout = 50x.
  unsigned network_latency_ms = 20;
  unsigned snapshot_threshold = 1024;  // entries between snapshots
  unsigned snapshot_trailing = 8192;   // entries kept after a snapshot
  uint64_t failure_domain = 0;
  uint64_t weight = 0;
  // Founding voters. A node that finds itself in this list and has an empty
  // data directory bootstraps the cluster with it; otherwise it is ignored.
  std::vector<Member> cluster;
  uint32_t page_size = 4096;
  Storage storage = Storage::kMemory;
  // Disk mode: how often the databases' applied state is made durable and
  // recorded (what a restart after a crash need not replay).
  unsigned persist_interval_ms = 1000;
  size_t spill_threshold_bytes = size_t{8} << 20;
  uint32_t checkpoint_threshold_frames = 1000;
  // How long a commit whose leader lost leadership waits to learn whether
  // the cluster kept it, before failing with "outcome unknown".
  unsigned commit_outcome_timeout_ms = 5000;
  size_t max_message_bytes = size_t{64} << 20;  // larger requests are refused
  unsigned max_connections = 4096;
  unsigned read_threads = 4;
  // Threads that run the writers of all databases (a bounded pool, not a
  // thread per database).
  unsigned write_threads = 4;
  // A database's writer closes its SQLite connection after this long unused.
  unsigned db_idle_close_ms = 10000;
  // Databases a node holds; OPEN of a new one beyond it fails.
  unsigned max_databases = 10000;
  // Time, step and size limits on every client statement.
  SqlLimits sql;
  unsigned write_queue_max = 10000;
  unsigned write_batch_max = 512;
  unsigned write_queue_timeout_ms = 10000;
  unsigned txn_idle_timeout_ms = 30000;
  // host:port where GET /metrics serves Prometheus metrics; empty: none.
  std::string metrics_address;
  // Also registers the node's VFS with SQLite under this name when the node
  // starts, for the application's own sqlite3 connections (the SQLite-
  // replacement mode, see Vfs::register_alias); "" registers none.
  std::string vfs_name;
  // stop() leaves the VFS registered (and its memory allocated) so that
  // connections the application still holds stay valid: for a process
  // that stops its node while exiting (the preload library).
  bool keep_vfs_after_stop = false;
  // Called (on the node's loop thread) when the node stops itself because it
  // cannot go on safely: its state diverged from the leader's (an
  // Internal/Corrupt status), or the Raft log could not be written — a full
  // disk (an IoError status: restarting the node once there is room is
  // safe; `sqraft node` does). The node is already shutting down; the owner
  // should still call stop().
  std::function<void(const Status&)> on_fatal;
};

class Node {
 public:
  static Result<std::unique_ptr<Node>> create(NodeOptions options);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  Status start();
  Status stop();
  // If this node leads, hands leadership to another voter and waits (up to
  // the election timeout) for it to take over. OK if not leader.
  Status handover();

  raft_id id() const;
  const std::string& address() const;
  // Thread-safe snapshots of Raft state, for tools and tests.
  bool is_leader() const;
  std::string describe_state() const;
  // The leader's address as this node knows it; "" during an election or
  // when the node does not run.
  std::string leader_address() const;
  // This node holds database `db` (false when the node does not run).
  bool has_database(const std::string& db) const;

  // Rewrites the cluster configuration of a stopped node's data directory
  // (disaster recovery: see docs/operations.md).
  static Status recover(const std::string& dir, raft_id id, const std::string& address,
                        const std::vector<Member>& cluster);
  // A new random node id, derived from the address and the time.
  static raft_id generate_id(const std::string& address);

 private:
  explicit Node(std::unique_ptr<NodeImpl> impl);
  std::unique_ptr<NodeImpl> impl_;
};

// Parses "id@address,id@address,...".
Result<std::vector<Member>> parse_cluster(const std::string& spec);

}  // namespace sqraft
