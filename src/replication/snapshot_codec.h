// Snapshot codec: the byte layout of a sqraft snapshot.
//
//   "SQRAFTSN"            8 bytes magic
//   header length         u32 little-endian
//   header                Protobuf sqraft.proto.SnapshotHeader
//   header checksum       u64 little-endian, XXH3-64 of the header bytes
//   per database, in header order:
//     database file       db_bytes (whole pages)
//     WAL                 wal_bytes (a WAL file: header + frames, checksummed)
//     pending pages       pending_bytes (pages of a streamed transaction)
//
// Every section has its XXH3-64 in the header; decoding verifies all of them,
// the WAL's own frame checksums, and that the sizes add up exactly, before
// returning anything.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "frames.h"
#include "status.h"

namespace sqraft {

inline constexpr uint32_t kSnapshotFormatVersion = 1;

struct SnapshotBuffer {
  std::unique_ptr<uint8_t[]> data;
  size_t size = 0;
};

// Serialises the images (the expensive part of taking a snapshot); `index`
// is the log index they are at (0: unknown).
std::vector<SnapshotBuffer> encode_snapshot(const std::vector<DbImage>& images, uint64_t index = 0);
// Parses and verifies a snapshot; its log index goes to *index (0 in
// snapshots written before it was recorded).
Result<std::vector<DbImage>> decode_snapshot(const uint8_t* data, size_t size, uint64_t* index = nullptr);

// A valid WAL file holding `frames` (page_size each): used for snapshots and
// for files handed to clients (DUMP).
std::vector<uint8_t> build_wal_file(const std::vector<DbImage::WalFrame>& frames, uint32_t page_size);

}  // namespace sqraft
