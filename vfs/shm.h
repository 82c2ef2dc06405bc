// Shm: the wal-index ("shared memory") of one database, and the operations
// sqraft performs on it itself when it makes replicated frames visible.
//
// Regions are 32 KiB, allocated on demand and never moved or freed while the
// database lives, because SQLite keeps the pointers xShmMap returned. SQLite
// connections read and write this memory directly; sqraft's own writes follow
// the same protocol as a SQLite writer (hash entries first, then the second
// header copy, a barrier, then the first copy).
//
// Thread-safety: region allocation and all methods require the owning
// Database's mutex; the protocol-level exclusion (the WAL write lock, read
// locks) is the caller's job.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "wal_format.h"

namespace sqraft {

class Shm {
 public:
  Shm();
  ~Shm();
  Shm(const Shm&) = delete;
  Shm& operator=(const Shm&) = delete;

  // Returns region `i`, allocating (zeroed) regions up to it when `create`.
  // Returns nullptr if it does not exist and `create` is false.
  uint8_t* region(uint32_t i, bool create);
  uint32_t region_count() const { return uint32_t(regions_.size()); }

  // Reads the index header the way a SQLite reader does: both copies equal
  // and checksummed. nullopt if it is torn or uninitialised.
  std::optional<wal::IndexHeader> read_header() const;
  // Seals `h` and publishes it: copy 1, barrier, copy 0.
  void publish_header(wal::IndexHeader h);

  uint32_t backfill() const;
  void set_backfill(uint32_t frames);
  uint32_t read_mark(int i) const;
  void set_read_mark(int i, uint32_t value);
  void set_backfill_attempted(uint32_t frames);

  // Records that frame `frame` holds page `pgno` (walIndexAppend semantics).
  // Stale entries past `mx_frame` (from a writer that rolled back) are
  // cleared first. Returns false if the hash table is corrupt.
  bool append(uint32_t frame, uint32_t pgno, uint32_t mx_frame);
  // Removes every entry for frames after `mx_frame` in its region.
  void truncate_after(uint32_t mx_frame);
  // The latest frame <= mx_frame holding `pgno`, or 0 (for tests and checks).
  uint32_t lookup(uint32_t pgno, uint32_t mx_frame) const;

  // Zeroes every region (the caller rebuilds the index next).
  void clear();

  static void barrier();

 private:
  struct Region;
  uint32_t* pgno_slots(uint32_t region) const;  // slot k is frame first_frame + 1 + k
  uint16_t* hash_slots(uint32_t region) const;

  std::vector<std::unique_ptr<Region>> regions_;
};

}  // namespace sqraft
