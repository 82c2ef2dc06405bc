#include "lock_table.h"

#include <sqlite3.h>

#include <cassert>

namespace sqraft {

int LockTable::file_level(LockOwner owner) const {
  auto it = owners_.find(owner);
  return it == owners_.end() ? SQLITE_LOCK_NONE : it->second.file_level;
}

int LockTable::file_lock(LockOwner owner, int level) {
  OwnerState& me = owners_[owner];
  if (me.file_level >= level) return SQLITE_OK;
  switch (level) {
    case SQLITE_LOCK_SHARED:
      if ((pending_ && pending_ != owner) || (exclusive_ && exclusive_ != owner)) return SQLITE_BUSY;
      shared_holders_++;
      me.file_level = SQLITE_LOCK_SHARED;
      return SQLITE_OK;
    case SQLITE_LOCK_RESERVED:
      assert(me.file_level == SQLITE_LOCK_SHARED);
      if (reserved_ || exclusive_) return SQLITE_BUSY;
      reserved_ = owner;
      me.file_level = SQLITE_LOCK_RESERVED;
      return SQLITE_OK;
    case SQLITE_LOCK_EXCLUSIVE:
      assert(me.file_level >= SQLITE_LOCK_SHARED);
      if (!allow_exclusive_) return SQLITE_BUSY;
      if ((reserved_ && reserved_ != owner) || (pending_ && pending_ != owner)) return SQLITE_BUSY;
      // PENDING keeps new readers out while we wait for existing ones to go.
      pending_ = owner;
      if (shared_holders_ > 1) {
        me.file_level = SQLITE_LOCK_PENDING;
        return SQLITE_BUSY;
      }
      exclusive_ = owner;
      me.file_level = SQLITE_LOCK_EXCLUSIVE;
      return SQLITE_OK;
    default:
      return SQLITE_OK;  // PENDING is never requested directly
  }
}

int LockTable::file_unlock(LockOwner owner, int level) {
  auto it = owners_.find(owner);
  if (it == owners_.end()) return SQLITE_OK;
  OwnerState& me = it->second;
  if (me.file_level <= level) return SQLITE_OK;
  if (reserved_ == owner) reserved_ = nullptr;
  if (pending_ == owner) pending_ = nullptr;
  if (exclusive_ == owner) exclusive_ = nullptr;
  if (level == SQLITE_LOCK_NONE && me.file_level >= SQLITE_LOCK_SHARED) shared_holders_--;
  me.file_level = level;
  return SQLITE_OK;
}

int LockTable::shm_lock(LockOwner owner, int offset, int n, int flags) {
  assert(offset >= 0 && n >= 1 && offset + n <= kSlots);
  OwnerState& me = owners_[owner];
  const uint8_t mask = uint8_t(((1u << n) - 1) << offset);
  if (flags & SQLITE_SHM_UNLOCK) {
    for (int s = offset; s < offset + n; s++) {
      const uint8_t bit = uint8_t(1u << s);
      if (me.exclusive_mask & bit) {
        slots_[s].exclusive = nullptr;
        me.exclusive_mask &= uint8_t(~bit);
      }
      if (me.shared_mask & bit) {
        slots_[s].shared--;
        me.shared_mask &= uint8_t(~bit);
      }
    }
    return SQLITE_OK;
  }
  if (flags & SQLITE_SHM_SHARED) {
    assert(n == 1);
    if (me.shared_mask & mask) return SQLITE_OK;
    if (slots_[offset].exclusive && slots_[offset].exclusive != owner) return SQLITE_BUSY;
    slots_[offset].shared++;
    me.shared_mask |= mask;
    return SQLITE_OK;
  }
  // Exclusive: all or nothing over the range.
  for (int s = offset; s < offset + n; s++) {
    const uint8_t bit = uint8_t(1u << s);
    if (slots_[s].exclusive && slots_[s].exclusive != owner) return SQLITE_BUSY;
    int others_shared = slots_[s].shared - ((me.shared_mask & bit) ? 1 : 0);
    if (others_shared > 0) return SQLITE_BUSY;
  }
  for (int s = offset; s < offset + n; s++) slots_[s].exclusive = owner;
  me.exclusive_mask |= mask;
  return SQLITE_OK;
}

void LockTable::release_all(LockOwner owner) {
  auto it = owners_.find(owner);
  if (it == owners_.end()) return;
  shm_lock(owner, 0, kSlots, SQLITE_SHM_UNLOCK | SQLITE_SHM_SHARED);
  shm_lock(owner, 0, kSlots, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE);
  file_unlock(owner, SQLITE_LOCK_NONE);
  owners_.erase(owner);
}

}  // namespace sqraft
