// LockTable: SQLite's database-file locks and wal-index (shm) locks for every
// connection of one database inside a node.
//
// Database-file locks follow the xLock/xUnlock contract (NONE < SHARED <
// RESERVED < PENDING < EXCLUSIVE). shm locks follow xShmLock: eight slots,
// each held shared by any number of owners or exclusively by one. Requests
// never block: a conflict answers SQLITE_BUSY, as the contract requires.
//
// An owner is an opaque pointer (the sqlite3_file of a connection, or
// kSystemOwner for the node itself when it applies replicated changes).
//
// Thread-safety: none; the owning Database guards it with its mutex.
#pragma once

#include <array>
#include <cstdint>
#include <unordered_map>

namespace sqraft {

using LockOwner = const void*;
inline const LockOwner kSystemOwner = reinterpret_cast<LockOwner>(uintptr_t{1});
// A snapshot reading a database's files (disk mode): a reader like SQLite's.
inline const LockOwner kSnapshotOwner = reinterpret_cast<LockOwner>(uintptr_t{2});
// A checkpoint bounded to what a record names (disk mode): a reader too.
inline const LockOwner kCheckpointOwner = reinterpret_cast<LockOwner>(uintptr_t{3});

class LockTable {
 public:
  static constexpr int kSlots = 8;

  // ---- database file locks ----
  // When false, EXCLUSIVE is never granted: replicated databases stay in WAL
  // mode and are never checkpointed and deleted by a closing connection.
  void set_allow_exclusive(bool allow) { allow_exclusive_ = allow; }
  int file_lock(LockOwner owner, int level);    // SQLITE_OK or SQLITE_BUSY
  int file_unlock(LockOwner owner, int level);  // level is SHARED or NONE
  bool file_reserved() const { return reserved_ != nullptr || exclusive_ != nullptr; }
  int file_level(LockOwner owner) const;

  // ---- shm locks ----
  // `flags` as in xShmLock. Returns SQLITE_OK or SQLITE_BUSY; an unlock of
  // something not held is a no-op.
  int shm_lock(LockOwner owner, int offset, int n, int flags);
  bool shm_held_exclusive(LockOwner owner, int slot) const {
    return slots_[slot].exclusive == owner;
  }
  LockOwner shm_exclusive_owner(int slot) const { return slots_[slot].exclusive; }
  int shm_shared_count(int slot) const { return slots_[slot].shared; }
  // Drops every lock `owner` holds (a connection closing).
  void release_all(LockOwner owner);

 private:
  struct Slot {
    int shared = 0;
    LockOwner exclusive = nullptr;
  };
  struct OwnerState {
    int file_level = 0;  // SQLITE_LOCK_*
    uint8_t shared_mask = 0;
    uint8_t exclusive_mask = 0;
  };

  bool allow_exclusive_ = true;
  int shared_holders_ = 0;  // owners at SHARED or above
  LockOwner reserved_ = nullptr;
  LockOwner pending_ = nullptr;
  LockOwner exclusive_ = nullptr;
  std::array<Slot, kSlots> slots_{};
  std::unordered_map<LockOwner, OwnerState> owners_;
};

}  // namespace sqraft
