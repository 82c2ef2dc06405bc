// fuzz-snapshot-restore: a snapshot, decoded and restored by the FSM on a
// follower that holds a small database.
//
// Each input is restored twice:
//  1. as it came, through the FSM's restore (what libraft calls);
//  2. with the checksums a mutation cannot forge recomputed (each section's
//     XXH3 and the header's, the WAL frames' own, the state hash of the
//     content), so that the fuzzer's changes reach what decoding and
//     installing check beyond them — while a reader holds a read
//     transaction on the database being replaced, which makes the install
//     commit through the WAL instead of replacing the files.
// A refused snapshot is fine; a crash, leak, sanitizer report or hang is a
// bug, and whatever is installed must hash to its tracked checksum and be
// readable by SQLite.
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "byte_order.h"
#include "fsm_node.h"
#include "fuzz_node.h"
#include "snapshot.pb.h"
#include "snapshot_codec.h"
#include "state_hash.h"
#include "wal_format.h"

using namespace sqraft;

namespace {

constexpr char kMagic[8] = {'S', 'Q', 'R', 'A', 'F', 'T', 'S', 'N'};
constexpr size_t kPrologue = 12;  // magic, header length
constexpr size_t kHeaderSum = 8;

// Rewrites the WAL file at `p` (n bytes) so that its header and every whole
// frame carry valid checksums and the header's salt.
void fix_wal(uint8_t* p, size_t n, uint32_t page_size) {
  if (n < wal::kHeaderSize || !wal::valid_page_size(page_size)) return;
  wal::Header h;
  h.magic = get_be32(p);
  if (h.magic != wal::kMagicLittleEndian && h.magic != wal::kMagicBigEndian) return;
  h.version = get_be32(p + 4);
  h.page_size = get_be32(p + 8);
  h.checkpoint_seq = get_be32(p + 12);
  std::memcpy(h.salt.data(), p + 16, 8);
  wal::Checksum ck = wal::encode_header(h, p);
  const size_t frame_size = wal::kFrameHeaderSize + page_size;
  for (size_t off = wal::kHeaderSize; off + frame_size <= n; off += frame_size) {
    ck = wal::encode_frame_header(h.big_endian(), get_be32(p + off), get_be32(p + off + 4), h.salt,
                                  p + off + wal::kFrameHeaderSize, page_size, ck, p + off);
  }
}

// The input with its section, WAL and header checksums recomputed; empty if
// it has no header to parse.
std::vector<uint8_t> with_fixed_checksums(const uint8_t* data, size_t size) {
  if (size < kPrologue + kHeaderSum || std::memcmp(data, kMagic, 8) != 0) return {};
  const uint32_t head_len = get_le32(data + 8);
  if (head_len > size - kPrologue - kHeaderSum) return {};
  proto::SnapshotHeader header;
  if (!header.ParseFromArray(data + kPrologue, int(head_len))) return {};
  const size_t body_at = kPrologue + head_len + kHeaderSum;
  std::vector<uint8_t> body(data + body_at, data + size);
  size_t off = 0;
  for (proto::SnapshotDatabase& d : *header.mutable_databases()) {
    const uint64_t lens[3] = {d.db_bytes(), d.wal_bytes(), d.pending_bytes()};
    uint64_t sums[3];
    for (int i = 0; i < 3; i++) {
      if (lens[i] > body.size() - off) return {};  // runs past the end: nothing to fix
      if (i == 1) fix_wal(body.data() + off, lens[i], d.page_size());
      sums[i] = XXH3_64bits(body.data() + off, lens[i]);
      off += lens[i];
    }
    d.set_db_xxh3(sums[0]);
    d.set_wal_xxh3(sums[1]);
    d.set_pending_xxh3(sums[2]);
  }
  const std::string head = header.SerializeAsString();
  std::vector<uint8_t> out(kPrologue + head.size() + kHeaderSum);
  std::memcpy(out.data(), kMagic, 8);
  put_le32(out.data() + 8, uint32_t(head.size()));
  std::memcpy(out.data() + kPrologue, head.data(), head.size());
  put_le64(out.data() + kPrologue + head.size(), XXH3_64bits(head.data(), head.size()));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

// The StateHash of an image's logical content.
uint64_t content_hash(const DbImage& img) {
  const std::vector<PagePtr> pages = Vfs::logical_pages(img);
  StateHash h(img.page_size);
  h.rebuild(uint32_t(pages.size()), [&](uint32_t p) { return pages[p - 1].get(); });
  return h.value();
}

// Runs `sql` to its end on `conn`, ignoring the outcome.
void run(sqlite3* conn, const char* sql) { (void)sqlite3_exec(conn, sql, nullptr, nullptr, nullptr); }

void restore_as_is(const uint8_t* data, size_t size) {
  fuzz::FsmNode node;
  (void)node.restore({data, size});
  node.check();
}

void restore_fixed(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> fixed = with_fixed_checksums(data, size);
  if (fixed.empty()) return;
  Result<std::vector<DbImage>> images = decode_snapshot(fixed.data(), fixed.size());
  if (!images.ok()) return;
  for (DbImage& img : images.value()) img.checksum = content_hash(img);
  fuzz::FsmNode node;
  Result<sqlite3*> reader = node.vfs().open("app", false);
  fuzz::require(reader.ok(), "cannot open the base database");
  run(reader.value(), "BEGIN; SELECT count(*) FROM t;");
  (void)node.vfs().restore(images.value());
  run(reader.value(), "SELECT count(*) FROM t; COMMIT;");
  sqlite3_close_v2(reader.value());
  node.check();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  (void)fuzz::base_images();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 1024 * 1024) return 0;  // snapshots are large; still bounded
  restore_as_is(data, size);
  restore_fixed(data, size);
  return 0;
}
