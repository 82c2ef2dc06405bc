// Database: one SQLite database inside a node, held in memory as pages, a WAL
// and a wal-index, together with the locks of every connection that has it
// open and the state that replication needs.
//
// Two kinds of callers use it:
//  * SQLite connections, through the VFS file methods (any thread). On the
//    leader, the connection holding the WAL write lock is "the writer": the
//    frames it writes are captured, and the frames of a commit are handed back
//    to the VFS (which replicates them) before SQLite may publish them.
//  * The node's loop thread, through the apply_* methods, when replicated
//    commands are applied, and for snapshots.
//
// Visibility: frames become visible to readers only when the wal-index header
// is published. A leader's writer publishes its own commit after the command
// carrying it was applied (publish_pending_ covers that short window);
// everything else is published by the loop thread, which needs the WAL write
// lock to do so. If a local writer holds it (a leader that just lost
// leadership), the commit is queued in deferred_ and applied once the lock is
// handed over.
//
// Thread-safety: every method takes mu_. No method blocks on another thread
// except wait_publish(), which waits for a writer that has already been told
// its commit is applied (a bounded, in-memory step).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "frames.h"
#include "lock_table.h"
#include "shm.h"
#include "state_hash.h"
#include "status.h"
#include "disk_store.h"
#include "store.h"

namespace sqraft {

class Database : public std::enable_shared_from_this<Database> {
 public:
  struct Options {
    uint32_t page_size = 4096;
    // A transaction whose unreplicated frames exceed this is streamed in pieces.
    size_t spill_threshold_bytes = size_t{8} << 20;
    // Replicated databases capture writes and refuse EXCLUSIVE file locks.
    bool replicated = true;
  };

  // Creates a database whose only page is `page1` (see initial_page1()),
  // held in memory.
  Database(std::string name, const PagePtr& page1, Options options);
  // The same, in the files of `store` (opened fresh), created by the log
  // entry `index`.
  Database(std::string name, const PagePtr& page1, Options options, std::unique_ptr<DiskStore> store,
           uint64_t index);
  // Reopens the files of `store` as `record` describes them, after checking
  // every WAL frame it names and the content against its checksum. An error
  // says why the files cannot be trusted.
  static Result<std::shared_ptr<Database>> reopen(std::string name, Options options,
                                                  std::unique_ptr<DiskStore> store, const AppliedRecord& record);
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const std::string& name() const { return name_; }
  uint32_t page_size() const { return page_size_; }

  // ---- database file (SQLite connections) --------------------------------
  int db_read(void* buf, int n, int64_t offset);
  int db_write(const void* buf, int n, int64_t offset);
  int db_truncate(int64_t size);
  int64_t db_size();

  // ---- WAL file -----------------------------------------------------------
  struct WalWrite {
    int rc = SQLITE_OK;
    std::optional<FramesBatch> batch;  // frames to replicate before returning
  };
  // Frames are attributed to the current writer (only the holder of the WAL
  // write lock writes the WAL).
  WalWrite wal_write(const void* buf, int n, int64_t offset);
  int wal_read(void* buf, int n, int64_t offset);
  int wal_truncate(int64_t size);
  int64_t wal_size();
  // Tells the database how replicating `batch` ended.
  // Returns the code the WAL write must return to SQLite.
  int on_replicated(const FramesBatch& batch, const Status& status);

  // ---- locks and wal-index -------------------------------------------------
  int file_lock(LockOwner owner, int level);
  int file_unlock(LockOwner owner, int level);
  bool file_reserved();
  int shm_map(int region, int size, bool extend, void volatile** pp);

  // What the VFS must do after an shm lock call.
  struct ShmLockResult {
    int rc = SQLITE_OK;
    uint64_t undo_txn = 0;    // non-zero: replicate an Undo for this transaction
    bool wake_loop = false;   // deferred work was handed to the loop thread
  };
  // `system` marks the node's own connections (checkpoints); `writes_allowed`
  // is whether this node may start a replicated write transaction now.
  ShmLockResult shm_lock(LockOwner owner, bool system, int offset, int n, int flags,
                         bool writes_allowed);
  ShmLockResult close_connection(LockOwner owner);

  // ---- replication (loop thread) -------------------------------------------
  // Applies one piece of a transaction. `own` means this node's writer
  // produced it and is waiting in wal_write(). A commit whose checksum does
  // not match the local state is refused with a Divergence status and nothing
  // is changed.
  // `index` is the log entry's (0 when unknown: tests).
  Status apply_frames(FramesBatch batch, bool own, uint64_t index = 0);
  // Drops the pending transaction `txn_id` (no-op if it is not pending).
  void apply_undo(uint64_t txn_id);
  // Log entry `index` touched this database without changing what the
  // files hold (a Checkpoint, an Undo): a record may name it, unless a
  // commit applied earlier is not in the files yet.
  void note_applied(uint64_t index);
  // Runs queued commits if the loop thread holds the write lock.
  void drain_deferred();
  // Waits until the writer has published a commit it was told is applied.
  void wait_publish();

  // A consistent image of the committed state (the pending transaction
  // included). Memory mode: cheap, pages are shared, not copied. Disk mode
  // with `defer_load` (the database must be owned by a shared_ptr): only
  // the list of what to read; the image's source holds the files still
  // until load_image() read them (off the loop thread); without it, the
  // pages are read now.
  DbImage capture(bool defer_load = false);
  // Replaces the content with `image` (already verified by the caller).
  // Readers in flight keep a consistent view: if any exist, the new content
  // is committed through the WAL instead of replacing the files.
  Status install(const DbImage& image);

  // ---- durability (disk mode; no-ops in memory) --------------------------------
  bool on_disk() const { return disk_ != nullptr; }
  // The log index the files held when the node started (0: none, memory).
  uint64_t recovered_index() const { return recovered_index_; }
  // Makes the published state durable (WAL and database file synced) and
  // records it. Any thread; blocks on fsync, never with mu_ held.
  Status persist();
  // Disk mode, loop thread, around a checkpoint: pins a read slot at the
  // WAL's end (false: none free, or a snapshot reads the files; checkpoint
  // later) and makes a record of every frame the checkpoint may fold into
  // the database file (SQLite syncs the WAL before a checkpoint for the same
  // reason). Memory mode: true, nothing done.
  Result<bool> begin_disk_checkpoint();
  void end_disk_checkpoint();
  // Disk mode on a leader: a Checkpoint came while a writer held the WAL
  // write lock. The writer's own thread folds the WAL after its commit (as
  // SQLite's autocheckpoint would), so that its next transaction can start
  // the WAL over; a checkpoint on the loop thread would always race the
  // next commit.
  bool writer_active();
  void want_fold() { fold_wanted_ = true; }
  bool take_fold() { return fold_wanted_.exchange(false); }
  // A deferred capture let go of the files (its ImageSource is gone).
  void release_view();
  // The last record written (index 0: none yet).
  AppliedRecord last_record();

  // ---- inspection ------------------------------------------------------------
  uint64_t state_checksum();            // incrementally maintained
  uint64_t recompute_state_checksum();  // from the visible content, slowly
  uint32_t wal_frames();                // published mxFrame
  uint32_t unfolded_frames();           // WAL frames not yet checkpointed
  bool has_deferred();
  uint64_t pending_txn();
  // Locks and replication state, for diagnostics.
  std::string debug_state();
  // Testing: make this node's tracked state differ from everyone else's.
  void perturb_state_hash_for_testing();

  // The first page of a new, empty database in WAL mode.
  static PagePtr initial_page1(uint32_t page_size);
  // Logical pages of an image (db pages overlaid with its WAL), n_page long.
  static std::vector<PagePtr> logical_pages(const DbImage& image);

 private:
  static constexpr int kShmLockExclusive = SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE;
  static constexpr int kShmUnlockExclusive = SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE;
  struct Capture {  // the current writer's transaction
    LockOwner writer = nullptr;
    uint64_t txn_id = 0;
    std::optional<uint32_t> base;  // published mxFrame when its first frame was written
    std::map<uint32_t, CapturedFrame> unshipped;
    size_t unshipped_bytes = 0;
    bool shipped_pieces = false;
    bool failed = false;
    bool committed = false;  // applied; SQLite has not published it yet
    uint32_t frame_count = 0;
    uint32_t db_size = 0;
    uint64_t commit_index = 0;  // applied: its log index and the hash after it
    uint64_t commit_hash = 0;
  };
  struct DeferredCommit {
    std::vector<CapturedFrame> frames;  // positions 1..n in order
    uint32_t db_size = 0;
    uint64_t index = 0;  // its log entry, and the state hash after it
    uint64_t hash = 0;
  };
  Database(std::string name, Options options, std::unique_ptr<Store> store);
  // The state the files hold now, as a record (REQUIRES: mu_ held).
  AppliedRecord record_locked();
  // Disk mode, before the WAL starts over or is truncated: the database file
  // holds every published frame; sync it and record that the WAL holds
  // nothing of the state, so that no record names frames about to go.
  Status seal_locked();
  // A commit became visible in the files: its index and the hash after it.
  void published_locked(uint64_t index, uint64_t hash) {
    event_index_ = index;
    published_hash_ = hash;
  }

  // REQUIRES: mu_ held.
  void init_index_locked(uint32_t n_page);
  wal::IndexHeader header_locked() const;
  std::optional<FramesBatch> capture_frame_locked(uint32_t frame, Status* error);
  FramesBatch make_batch_locked(bool commit);
  std::vector<StateHash::PageChange> final_changes_locked(const std::vector<CapturedFrame>& frames,
                                                          uint32_t db_size) const;
  // Appends one committed transaction to the WAL and publishes it.
  // Returns the store's code; on failure nothing is published.
  int write_commit_locked(const std::vector<CapturedFrame>& frames, uint32_t db_size);
  // A store write failed (rc != SQLITE_OK): the first failure is kept in
  // failure_ and logged; returns it as a Status (OK for SQLITE_OK).
  Status store_failure_locked(int rc, const char* what);
  void maybe_restart_wal_locked(wal::IndexHeader& h);
  ShmLockResult end_write_locked();
  bool try_system_locks_locked(int offset, int n);
  void release_system_locks_locked(int offset, int n);
  std::vector<PagePtr> visible_pages_locked();

  const std::string name_;
  const uint32_t page_size_;
  const Options options_;

  std::mutex mu_;
  std::condition_variable publish_cv_;
  std::unique_ptr<Store> store_;  // the database file and the WAL
  DiskStore* disk_ = nullptr;     // store_, when it is on disk
  Status failure_;                // the first failed store write (sticky)
  uint64_t recovered_index_ = 0;  // set once, before the database is shared
  uint64_t event_index_ = 0;      // log index of the last commit in the files
  uint64_t published_hash_ = 0;   // state hash of what the files hold
  uint64_t pending_first_index_ = 0;  // log index of pending_'s first piece
  // WAL generations: bumped by seal_locked(); a record of an older one is
  // never written. Written under mu_ and record_mu_, read under either.
  uint64_t wal_gen_ = 0;
  unsigned views_ = 0;    // deferred captures still reading the files
  int pinned_slot_ = -1;  // the read slot a disk checkpoint holds (guarded by mu_)
  std::atomic<bool> fold_wanted_{false};
  std::mutex record_mu_;  // one record write at a time; after mu_ if both
  AppliedRecord last_record_;  // guarded by record_mu_
  Shm shm_;
  LockTable locks_;
  StateHash hash_;      // logical state as of the last applied command
  PendingTxn pending_;  // streamed transaction awaiting its commit
  Capture capture_;
  std::deque<DeferredCommit> deferred_;
  uint32_t checkpoint_seq_ = 0;
  uint64_t next_txn_id_ = 1;
  std::mt19937 salt_rng_;
};

}  // namespace sqraft
