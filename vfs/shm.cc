#include "shm.h"

#include <atomic>
#include <cassert>
#include <cstring>

namespace sqraft {

struct alignas(4096) Shm::Region {
  uint8_t bytes[wal::kRegionSize];
};

Shm::Shm() = default;
Shm::~Shm() = default;

uint8_t* Shm::region(uint32_t i, bool create) {
  if (i >= regions_.size()) {
    if (!create) return nullptr;
    while (regions_.size() <= i) {
      auto r = std::make_unique<Region>();
      std::memset(r->bytes, 0, sizeof r->bytes);
      regions_.push_back(std::move(r));
    }
  }
  return regions_[i]->bytes;
}

void Shm::barrier() { std::atomic_thread_fence(std::memory_order_seq_cst); }

std::optional<wal::IndexHeader> Shm::read_header() const {
  if (regions_.empty()) return std::nullopt;
  const volatile uint8_t* base = regions_[0]->bytes;
  wal::IndexHeader h0, h1;
  std::memcpy(&h0, const_cast<const uint8_t*>(base), sizeof h0);
  barrier();
  std::memcpy(&h1, const_cast<const uint8_t*>(base) + wal::kIndexHeaderSize, sizeof h1);
  if (std::memcmp(&h0, &h1, sizeof h0) != 0) return std::nullopt;
  if (!wal::index_header_valid(h0)) return std::nullopt;
  return h0;
}

void Shm::publish_header(wal::IndexHeader h) {
  wal::seal_index_header(h);
  uint8_t* base = region(0, true);
  std::memcpy(base + wal::kIndexHeaderSize, &h, sizeof h);
  barrier();
  std::memcpy(base, &h, sizeof h);
  barrier();
}

namespace {

// Offsets inside the checkpoint-info block.
constexpr size_t kBackfillOffset = wal::kCkptInfoOffset + 0;
constexpr size_t kReadMarkOffset = wal::kCkptInfoOffset + 4;
constexpr size_t kBackfillAttemptedOffset = wal::kCkptInfoOffset + 32;

uint32_t load_u32(const uint8_t* p) {
  return __atomic_load_n(reinterpret_cast<const uint32_t*>(p), __ATOMIC_RELAXED);
}
void store_u32(uint8_t* p, uint32_t v) {
  __atomic_store_n(reinterpret_cast<uint32_t*>(p), v, __ATOMIC_RELAXED);
}

}  // namespace

uint32_t Shm::backfill() const {
  return regions_.empty() ? 0 : load_u32(regions_[0]->bytes + kBackfillOffset);
}
void Shm::set_backfill(uint32_t frames) { store_u32(region(0, true) + kBackfillOffset, frames); }
uint32_t Shm::read_mark(int i) const {
  assert(i >= 0 && i < wal::kNumReaders);
  return regions_.empty() ? 0 : load_u32(regions_[0]->bytes + kReadMarkOffset + 4 * i);
}
void Shm::set_read_mark(int i, uint32_t value) {
  assert(i >= 0 && i < wal::kNumReaders);
  store_u32(region(0, true) + kReadMarkOffset + 4 * i, value);
}
void Shm::set_backfill_attempted(uint32_t frames) {
  store_u32(region(0, true) + kBackfillAttemptedOffset, frames);
}

uint32_t* Shm::pgno_slots(uint32_t r) const {
  return reinterpret_cast<uint32_t*>(regions_[r]->bytes + wal::hash_location_of_region(r).pgno_offset);
}
uint16_t* Shm::hash_slots(uint32_t r) const {
  return reinterpret_cast<uint16_t*>(regions_[r]->bytes + wal::kHashTableOffset);
}

void Shm::truncate_after(uint32_t mx_frame) {
  if (mx_frame == 0) {
    // Everything goes: the next append to region 0 zeroes it anyway, but
    // readers must never find entries for frames that do not exist.
    if (!regions_.empty()) {
      std::memset(pgno_slots(0), 0, wal::kHashFramesRegionZero * 4);
      std::memset(hash_slots(0), 0, wal::kHashSlots * 2);
    }
    return;
  }
  const uint32_t r = wal::region_of_frame(mx_frame);
  if (r >= regions_.size()) return;
  const uint32_t limit = mx_frame - wal::hash_location_of_region(r).first_frame;  // entries kept
  uint16_t* hash = hash_slots(r);
  for (uint32_t k = 0; k < wal::kHashSlots; k++) {
    if (hash[k] > limit) __atomic_store_n(&hash[k], uint16_t(0), __ATOMIC_RELAXED);
  }
  uint32_t* pgnos = pgno_slots(r);
  const uint32_t capacity = r == 0 ? wal::kHashFramesRegionZero : wal::kHashFramesPerRegion;
  std::memset(pgnos + limit, 0, (capacity - limit) * 4);
}

bool Shm::append(uint32_t frame, uint32_t pgno, uint32_t mx_frame) {
  assert(frame >= 1 && pgno >= 1);
  const uint32_t r = wal::region_of_frame(frame);
  region(r, true);
  const uint32_t idx = frame - wal::hash_location_of_region(r).first_frame;  // 1-based
  uint32_t* pgnos = pgno_slots(r);
  uint16_t* hash = hash_slots(r);
  if (idx == 1) {
    const uint32_t capacity = r == 0 ? wal::kHashFramesRegionZero : wal::kHashFramesPerRegion;
    std::memset(pgnos, 0, capacity * 4);
    std::memset(hash, 0, wal::kHashSlots * 2);
  } else if (pgnos[idx - 1] != 0) {
    truncate_after(mx_frame);  // left behind by a rolled back writer
  }
  uint32_t key = wal::hash_key(pgno);
  uint32_t collisions = idx;
  while (hash[key] != 0) {
    if (collisions-- == 0) return false;
    key = wal::hash_next(key);
  }
  pgnos[idx - 1] = pgno;
  __atomic_store_n(&hash[key], uint16_t(idx), __ATOMIC_RELAXED);
  return true;
}

uint32_t Shm::lookup(uint32_t pgno, uint32_t mx_frame) const {
  if (mx_frame == 0 || regions_.empty()) return 0;
  uint32_t last = wal::region_of_frame(mx_frame);
  for (int64_t r = last; r >= 0; r--) {
    if (uint32_t(r) >= regions_.size()) continue;
    const uint32_t first = wal::hash_location_of_region(uint32_t(r)).first_frame;
    const uint32_t* pgnos = pgno_slots(uint32_t(r));
    const uint16_t* hash = hash_slots(uint32_t(r));
    uint32_t best = 0;
    for (uint32_t key = wal::hash_key(pgno), n = 0; hash[key] != 0 && n < wal::kHashSlots;
         key = wal::hash_next(key), n++) {
      const uint32_t f = first + hash[key];
      if (f <= mx_frame && pgnos[hash[key] - 1] == pgno && f > best) best = f;
    }
    if (best) return best;
  }
  return 0;
}

void Shm::clear() {
  for (auto& r : regions_) std::memset(r->bytes, 0, sizeof r->bytes);
}

}  // namespace sqraft
