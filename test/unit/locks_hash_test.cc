// The VFS's lock table (SQLite's file-lock ladder and the eight shm slots,
// never blocking), the incremental state hash and the C-boundary guard, on
// their own.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <cstring>
#include <new>
#include <stdexcept>
#include <vector>

#include "boundary.h"
#include "lock_table.h"
#include "state_hash.h"

using namespace sqraft;

namespace {
int a_owner, b_owner;
const LockOwner kA = &a_owner;
const LockOwner kB = &b_owner;
}  // namespace

TEST_CASE("locks: readers share, one writer reserves, exclusive waits for readers to leave") {
  LockTable t;
  CHECK(t.file_lock(kA, SQLITE_LOCK_SHARED) == SQLITE_OK);
  CHECK(t.file_lock(kB, SQLITE_LOCK_SHARED) == SQLITE_OK);
  CHECK(t.file_lock(kA, SQLITE_LOCK_RESERVED) == SQLITE_OK);
  CHECK(t.file_reserved());
  CHECK(t.file_lock(kB, SQLITE_LOCK_RESERVED) == SQLITE_BUSY);  // one writer
  CHECK(t.file_lock(kA, SQLITE_LOCK_EXCLUSIVE) == SQLITE_BUSY);  // B still reads
  CHECK(t.file_unlock(kB, SQLITE_LOCK_NONE) == SQLITE_OK);
  CHECK(t.file_lock(kA, SQLITE_LOCK_EXCLUSIVE) == SQLITE_OK);
  CHECK(t.file_level(kA) == SQLITE_LOCK_EXCLUSIVE);
  CHECK(t.file_lock(kB, SQLITE_LOCK_SHARED) == SQLITE_BUSY);  // nobody reads under EXCLUSIVE
  CHECK(t.file_unlock(kA, SQLITE_LOCK_SHARED) == SQLITE_OK);
  CHECK(t.file_level(kA) == SQLITE_LOCK_SHARED);
  CHECK_FALSE(t.file_reserved());
  CHECK(t.file_lock(kB, SQLITE_LOCK_SHARED) == SQLITE_OK);

  // Replicated databases never grant EXCLUSIVE (they stay in WAL mode).
  LockTable wal;
  wal.set_allow_exclusive(false);
  CHECK(wal.file_lock(kA, SQLITE_LOCK_SHARED) == SQLITE_OK);
  CHECK(wal.file_lock(kA, SQLITE_LOCK_RESERVED) == SQLITE_OK);
  CHECK(wal.file_lock(kA, SQLITE_LOCK_EXCLUSIVE) == SQLITE_BUSY);
}

TEST_CASE("locks: shm slots are shared by many or held by one, and a closing owner frees all") {
  LockTable t;
  const int shared = SQLITE_SHM_LOCK | SQLITE_SHM_SHARED;
  const int exclusive = SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE;
  CHECK(t.shm_lock(kA, 3, 1, shared) == SQLITE_OK);
  CHECK(t.shm_lock(kB, 3, 1, shared) == SQLITE_OK);
  CHECK(t.shm_shared_count(3) == 2);
  CHECK(t.shm_lock(kA, 3, 1, exclusive) == SQLITE_BUSY);
  CHECK(t.shm_lock(kA, 0, 2, exclusive) == SQLITE_OK);  // slots 0 and 1
  CHECK(t.shm_held_exclusive(kA, 0));
  CHECK(t.shm_held_exclusive(kA, 1));
  CHECK(t.shm_exclusive_owner(1) == kA);
  CHECK(t.shm_lock(kB, 1, 1, shared) == SQLITE_BUSY);
  CHECK(t.shm_lock(kB, 0, 1, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE) == SQLITE_OK);  // not B's: no-op
  CHECK(t.shm_held_exclusive(kA, 0));
  t.release_all(kA);
  CHECK_FALSE(t.shm_held_exclusive(kA, 0));
  CHECK(t.shm_shared_count(3) == 1);
  CHECK(t.shm_lock(kB, 0, 2, exclusive) == SQLITE_OK);
}

TEST_CASE("state hash: incremental updates equal a rebuild, and content, order and size all count") {
  const uint32_t ps = 512;
  std::vector<std::vector<uint8_t>> pages(4, std::vector<uint8_t>(ps, 0));
  for (size_t i = 0; i < pages.size(); i++) pages[i][7] = uint8_t(i + 1);
  auto at = [&](uint32_t pgno) { return pages[pgno - 1].data(); };

  StateHash h(ps);
  h.rebuild(3, at);
  const uint64_t three = h.value();
  // Page 4 added, page 2 changed: preview, apply and a rebuild agree.
  pages[1][100] = 0xaa;
  const std::vector<StateHash::PageChange> changes = {{2, pages[1].data()}, {4, pages[3].data()}};
  const uint64_t preview = h.preview(changes, 4);
  CHECK(h.value() == three);  // preview changes nothing
  CHECK(h.apply(changes, 4) == preview);
  StateHash fresh(ps);
  fresh.rebuild(4, at);
  CHECK(fresh.value() == preview);
  CHECK(preview != three);

  // The same bytes on other page numbers hash differently.
  CHECK(StateHash::page_hash(1, pages[0].data(), ps) != StateHash::page_hash(2, pages[0].data(), ps));
  // An all-zero page counts the same given as nullptr or as zeros.
  std::vector<uint8_t> zero(ps, 0);
  StateHash z1(ps), z2(ps);
  z1.rebuild(2, [&](uint32_t p) { return p == 2 ? nullptr : pages[0].data(); });
  z2.rebuild(2, [&](uint32_t p) { return p == 2 ? zero.data() : pages[0].data(); });
  CHECK(z1.value() == z2.value());
  // Truncating to fewer pages changes the hash; growing back restores it.
  const uint64_t four = h.value();
  h.apply({}, 3);
  CHECK(h.value() != four);
  const std::vector<StateHash::PageChange> back = {{4, pages[3].data()}};
  CHECK(h.apply(back, 4) == four);
}

TEST_CASE("at_c_boundary: an exception thrown where C called us is stopped there and reported as failure") {
  static_assert(noexcept(at_c_boundary("x", [] {})), "must never throw into C");
  int ran = 0;
  CHECK(at_c_boundary("test", [&] { ran++; }));
  CHECK_FALSE(at_c_boundary("test", [] { throw std::bad_alloc(); }));
  CHECK_FALSE(at_c_boundary("test", [] { throw std::runtime_error("boom"); }));
  CHECK_FALSE(at_c_boundary("test", [] { throw 42; }));
  CHECK(ran == 1);
}
