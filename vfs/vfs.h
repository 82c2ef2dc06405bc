// Vfs: the SQLite VFS of one sqraft node.
//
// Each node registers its own VFS (a unique name), so several nodes can live
// in one process without seeing each other's databases. Every database of
// the node lives in memory (see Database) and is shared by all connections
// that open it through this VFS, on any thread. Temporary files (sorters,
// statement journals, temp databases) go to SQLite's default VFS.
//
// Replication: the node passes a ReplicationHooks. When a write transaction
// commits (or its frames pass the spill threshold), the VFS hands the frames
// to hooks->replicate() on the writer's own thread and lets SQLite continue
// only once they are applied; if replication fails SQLite rolls the
// transaction back and nothing of it remains. Opening a database that does not
// exist asks hooks->create_database(). Without hooks (nullptr), databases are
// local: created on open and written directly.
//
// The apply_* and snapshot methods belong to the node's loop thread.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "database.h"
#include "frames.h"
#include "status.h"

namespace sqraft {

class ReplicationHooks {
 public:
  virtual ~ReplicationHooks() = default;
  // True when this node may begin a write transaction now (it is the leader
  // and has applied everything earlier leaders committed). Any thread.
  virtual bool writes_allowed() = 0;
  // Replicates `batch` and returns once it is applied on this node, or failed.
  // Called on the writer's thread, inside SQLite.
  virtual Status replicate(const FramesBatch& batch) = 0;
  // Replicates the creation of database `name` whose first page is `page1`.
  // Returns once the database exists on this node, or failed. Any thread.
  virtual Status create_database(const std::string& name, const PagePtr& page1) = 0;
  // Asks for an Undo of a streamed transaction that rolled back. Must not
  // block. Any thread.
  virtual void undo(const std::string& db, uint64_t txn_id) = 0;
  // The loop thread has deferred work: call Vfs::drain() there. Must not block.
  virtual void wake() = 0;
  // The current leader's address, "" while none is known (an election).
  // Any thread.
  virtual std::string leader_address() = 0;
  // True while this node is the Raft leader, ready for writes or not yet
  // (its barrier of the new term still applying). Any thread.
  virtual bool leading() = 0;
  // The highest log index applied to this node's databases. Any thread.
  virtual uint64_t applied_index() = 0;
  // Returns once applied_index() >= index, or SQLITE_BUSY after `timeout`.
  // Any thread but the loop's.
  virtual Status wait_applied(uint64_t index, std::chrono::milliseconds timeout) = 0;
  // Returns once this node has confirmed it is still the leader and has
  // applied everything committed before the call (a Raft barrier, shared by
  // concurrent callers); kErrNotLeader on a follower, SQLITE_BUSY after
  // `timeout`. Any thread but the loop's.
  virtual Status read_barrier(std::chrono::milliseconds timeout) = 0;
};

class Vfs {
 public:
  struct Options {
    std::string name;  // the registered VFS name; unique in the process
    uint32_t page_size = 4096;
    size_t spill_threshold_bytes = size_t{8} << 20;
    // Disk mode: every database is a SQLite database file and its WAL in
    // this directory (created 0700 if missing), with a record of the log
    // index they hold in its `.applied/`. Empty: every database in memory.
    std::string dir;
  };

  // Registers a new VFS. `hooks` (may be null) must outlive it.
  static Result<std::unique_ptr<Vfs>> create(Options options, ReplicationHooks* hooks);
  ~Vfs();  // unregisters; no connection may still be open
  Vfs(const Vfs&) = delete;
  Vfs& operator=(const Vfs&) = delete;

  const std::string& name() const { return options_.name; }
  uint32_t page_size() const { return options_.page_size; }
  bool replicated() const { return hooks_ != nullptr; }

  // Registers this VFS with SQLite under `name` too, so that the
  // application's own connections (sqlite3_open_v2 with that VFS name, or a
  // "vfs=" URI parameter) open this node's databases. Those connections
  // never checkpoint (a checkpoint is replicated: Proposer::checkpoint), and
  // a write on a node that is not the leader fails with
  // kErrReadonlyNotLeader, or SQLITE_BUSY while no leader is known, so that
  // a busy timeout waits out an election. Unregistered with the VFS; fails
  // if SQLite already has a VFS of that name. Caller's thread.
  Status register_alias(const std::string& name);

  // Opens a connection to `db` with sqraft's settings (WAL, synchronous=OFF,
  // no automatic checkpoints, extended result codes). The caller owns it.
  Result<sqlite3*> open(const std::string& db, bool create = true);

  // ---- disk mode ----------------------------------------------------------
  bool on_disk() const { return !options_.dir.empty(); }
  // Opens the databases the directory holds, before the node starts.
  // Files whose record is missing or does not match them are not trusted:
  // they are removed (logged), and the log and snapshots bring the database
  // back. Returns the number of databases opened. Caller's thread.
  Result<size_t> load();
  // The log index database `db` held when it was loaded (0: not loaded).
  uint64_t recovered_index(const std::string& db);
  // Disk mode: folds the WAL of `db` through `conn` (the database's writer
  // connection, between transactions) if a Checkpoint asked for it while
  // that writer was busy (Database::want_fold). Cheap when nothing is asked.
  void fold_if_wanted(const std::string& db, sqlite3* conn);
  // Makes every database's current state durable and records it (see
  // Database::persist). Any thread but the loop's: it waits for fsync.
  Status persist_all();

  // ---- loop thread --------------------------------------------------------
  // Creates database `db` from its first page, unless it exists. `index` is
  // the log entry's (0: unknown).
  Status apply_open(const std::string& db, const PagePtr& page1, uint64_t index = 0);
  Status apply_frames(FramesBatch batch, bool own, uint64_t index = 0);
  Status apply_undo(const std::string& db, uint64_t txn_id, uint64_t index = 0);
  // Folds the WAL of `db` into its pages as far as local readers allow.
  Status apply_checkpoint(const std::string& db, uint64_t index = 0);
  // Runs commits that waited for a local writer to let go of the write lock.
  void drain();
  // Images of every database, for a snapshot (disk mode: their pages still
  // in the files, for load_image() on the worker thread).
  std::vector<DbImage> capture();
  // Verifies `images` (content against checksums) and makes them the node's
  // databases. On error nothing changes. `index` is the snapshot's log
  // index: in disk mode a database whose files already hold that state or a
  // later one (loaded at start-up, checked against their record) is kept
  // as it is; libraft then replays entries it already holds, which the FSM
  // skips (recovered_index).
  Status restore(const std::vector<DbImage>& images, uint64_t index = 0);

  // What src/ needs of one database, so that Database stays inside vfs/.
  bool exists(const std::string& db);
  // The image of `db` (pages and WAL), for DUMP; nullopt if there is none.
  std::optional<DbImage> capture(const std::string& db);
  size_t wal_frames(const std::string& db);  // 0 if there is no `db`
  // Streamed transactions not finished yet: (database, transaction id).
  std::vector<std::pair<std::string, uint64_t>> pending_txns();
  std::vector<std::string> names();
  size_t count();  // number of databases

  // The database itself: for the VFS's own code and white-box tests.
  std::shared_ptr<Database> find(const std::string& db);

  // The pages of `img` with its WAL folded in (the database as readers see
  // it), for the state hash of a snapshot.
  static std::vector<PagePtr> logical_pages(const DbImage& img) { return Database::logical_pages(img); }

  // Checks that a database name is acceptable (db_name.h).
  static Status validate_name(const std::string& db);

 private:
  friend struct VfsGlue;
  Vfs(Options options, ReplicationHooks* hooks);
  // nullptr if its files cannot be created (logged).
  std::shared_ptr<Database> create_local(const std::string& db, const PagePtr& page1, uint64_t index = 0);
  Database::Options db_options() const;
  // Disk mode: the database whose files are `file`, checked against its
  // record. SQLITE_IOERR: the disk failed; anything else: not trusted.
  Result<std::shared_ptr<Database>> load_one(const std::string& file);
  sqlite3* system_connection(const std::string& db);

  Options options_;
  ReplicationHooks* hooks_;
  sqlite3_vfs vfs_{};
  // The same VFS under the names of register_alias(), each a copy of vfs_
  // whose zName points into its own name.
  struct Alias {
    std::string name;
    sqlite3_vfs vfs{};
  };
  std::vector<std::unique_ptr<Alias>> aliases_;  // guarded by mu_
  sqlite3_vfs* base_ = nullptr;  // SQLite's default VFS, for temporary files

  std::mutex mu_;  // guards dbs_
  std::map<std::string, std::shared_ptr<Database>> dbs_;
  std::map<std::string, sqlite3*> system_conns_;  // loop thread only
};

}  // namespace sqraft
