// WAL and WAL-index formats: constants and codecs.
//
// Facts from sqlite.org "Database File Format" (section 4, the WAL file) and
// "WAL-mode File Format" (the wal-index, or shm). Everything here is a pure
// function over bytes, so it can be unit tested against files SQLite wrote.
//
//   WAL file:   32-byte header, then frames of a 24-byte header + one page.
//               All header integers are big-endian. Checksums are cumulative
//               over the WAL header and then every frame, in the byte order the
//               magic number names.
//   wal-index:  32 KiB regions. Region 0 starts with two copies of a 48-byte
//               index header and a 40-byte checkpoint-info block (136 bytes),
//               then page-number slots; every region ends with a hash table of
//               8192 u16 slots mapping page numbers to frames.
#pragma once

#include "byte_order.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

namespace sqraft::wal {

// ---- WAL file -------------------------------------------------------------
inline constexpr uint32_t kMagicLittleEndian = 0x377f0682;  // checksums over LE words
inline constexpr uint32_t kMagicBigEndian = 0x377f0683;     // checksums over BE words
inline constexpr uint32_t kFormatVersion = 3007000;
inline constexpr size_t kHeaderSize = 32;
inline constexpr size_t kFrameHeaderSize = 24;

inline constexpr uint32_t kPageSizeMin = 512;
inline constexpr uint32_t kPageSizeMax = 65536;
bool valid_page_size(uint32_t page_size);

using sqraft::get_be32;  // byte_order.h
using sqraft::put_be32;

using Salt = std::array<uint8_t, 8>;  // opaque: copied byte for byte between headers

struct Checksum {
  uint32_t s0 = 0;
  uint32_t s1 = 0;
  bool operator==(const Checksum&) const = default;
};

// The cumulative WAL checksum of `n` bytes (a multiple of 8) continuing from
// `seed`. `big_endian` selects how the 32-bit words are read.
Checksum checksum(bool big_endian, const uint8_t* data, size_t n, Checksum seed);

struct Header {
  uint32_t magic = kMagicLittleEndian;
  uint32_t version = kFormatVersion;
  uint32_t page_size = 0;
  uint32_t checkpoint_seq = 0;
  Salt salt{};
  Checksum cksum;  // over the first 24 bytes

  bool big_endian() const { return magic == kMagicBigEndian; }
};

// Encodes `h` (computing its checksum) into 32 bytes and returns the checksum.
Checksum encode_header(Header h, uint8_t out[kHeaderSize]);
// Decodes and validates a WAL header: magic, version, page size and checksum.
std::optional<Header> decode_header(const uint8_t in[kHeaderSize]);

struct FrameHeader {
  uint32_t pgno = 0;
  uint32_t db_size = 0;  // database size in pages after commit; 0 unless commit frame
  Salt salt{};
  Checksum cksum;
};

// Builds the frame header of a frame holding `page` (page_size bytes), chaining
// its checksum from `prev` (the previous frame's, or the WAL header's).
Checksum encode_frame_header(bool big_endian, uint32_t pgno, uint32_t db_size, const Salt& salt,
                             const uint8_t* page, uint32_t page_size, Checksum prev,
                             uint8_t out[kFrameHeaderSize]);
FrameHeader decode_frame_header(const uint8_t in[kFrameHeaderSize]);

inline uint64_t frame_offset(uint32_t frame, uint32_t page_size) {  // frame is 1-based
  return kHeaderSize + uint64_t(frame - 1) * (kFrameHeaderSize + page_size);
}

// ---- WAL-index (shm) ------------------------------------------------------
inline constexpr size_t kRegionSize = 32768;
inline constexpr uint32_t kIndexVersion = 3007000;
inline constexpr size_t kIndexHeaderSize = 48;
inline constexpr size_t kCkptInfoOffset = 2 * kIndexHeaderSize;  // 96
inline constexpr size_t kIndexPrologueSize = 136;                 // 2 headers + ckpt info
inline constexpr uint32_t kReadmarkNotUsed = 0xffffffff;
inline constexpr int kNumReaders = 5;

// shm lock slots (xShmLock offsets).
inline constexpr int kLockWrite = 0;
inline constexpr int kLockCheckpoint = 1;
inline constexpr int kLockRecover = 2;
inline constexpr int kLockReadFirst = 3;  // read lock i is slot 3 + i
inline constexpr int kNumLocks = 8;

inline constexpr uint32_t kHashFramesPerRegion = 4096;
inline constexpr uint32_t kHashFramesRegionZero = 4062;  // (32768/2 - 136) / 4
inline constexpr uint32_t kHashSlots = 8192;
inline constexpr uint32_t kHashMultiplier = 383;
inline constexpr size_t kHashTableOffset = kRegionSize / 2;  // u16[8192] at 16 KiB

// The 48-byte index header, in the host's byte order, exactly as SQLite lays
// it out in shared memory.
struct IndexHeader {
  uint32_t version = 0;
  uint32_t unused = 0;
  uint32_t change = 0;      // incremented by every commit
  uint8_t is_init = 0;
  uint8_t big_end_cksum = 0;
  uint16_t page_size_code = 0;  // page size, with 65536 stored as 1
  uint32_t mx_frame = 0;    // last committed frame
  uint32_t n_page = 0;      // database size in pages
  uint32_t frame_cksum[2] = {0, 0};  // checksum of frame mx_frame
  uint8_t salt[8] = {};
  uint32_t cksum[2] = {0, 0};  // over the first 40 bytes, native byte order

  uint32_t page_size() const {
    return (uint32_t(page_size_code) & 0xfe00) + ((uint32_t(page_size_code) & 1) << 16);
  }
  static uint16_t encode_page_size(uint32_t page_size) {
    return uint16_t((page_size & 0xff00) | (page_size >> 16));
  }
};
static_assert(sizeof(IndexHeader) == kIndexHeaderSize);

// Fills in version/is_init and the checksum of `h`.
void seal_index_header(IndexHeader& h);
bool index_header_valid(const IndexHeader& h);

// Where frame `frame` (1-based) lives in the index.
struct HashLocation {
  uint32_t region;      // which 32 KiB region
  uint32_t first_frame; // frame number of the region's slot 1, minus one ("iZero")
  size_t pgno_offset;   // byte offset of the region's first page-number slot
};
HashLocation hash_location_of_region(uint32_t region);
uint32_t region_of_frame(uint32_t frame);
inline uint32_t hash_key(uint32_t pgno) { return (pgno * kHashMultiplier) & (kHashSlots - 1); }
inline uint32_t hash_next(uint32_t key) { return (key + 1) & (kHashSlots - 1); }

}  // namespace sqraft::wal
