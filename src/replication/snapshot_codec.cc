#include "snapshot_codec.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "byte_order.h"
#include "snapshot.pb.h"
#include "wal_format.h"

namespace sqraft {

namespace {

constexpr char kMagic[8] = {'S', 'Q', 'R', 'A', 'F', 'T', 'S', 'N'};


SnapshotBuffer make_buffer(size_t size) {
  return SnapshotBuffer{std::unique_ptr<uint8_t[]>(new uint8_t[size]), size};
}

SnapshotBuffer pages_section(const std::vector<PagePtr>& pages, uint32_t page_size) {
  SnapshotBuffer b = make_buffer(pages.size() * size_t(page_size));
  for (size_t i = 0; i < pages.size(); i++) {
    uint8_t* dst = b.data.get() + i * page_size;
    if (pages[i]) {
      std::memcpy(dst, pages[i].get(), page_size);
    } else {
      std::memset(dst, 0, page_size);
    }
  }
  return b;
}

// Parses a WAL file: every frame must carry the header's salt and a valid
// cumulative checksum, and the last frame must be a commit.
Status parse_wal(const uint8_t* p, size_t n, uint32_t page_size, std::vector<DbImage::WalFrame>* out) {
  if (n == 0) return Status::Ok();
  const size_t frame_size = wal::kFrameHeaderSize + page_size;
  if (n < wal::kHeaderSize || (n - wal::kHeaderSize) % frame_size != 0) {
    return Status::Corruption("WAL section has " + std::to_string(n) + " bytes, not whole frames");
  }
  std::optional<wal::Header> h = wal::decode_header(p);
  if (!h) return Status::Corruption("WAL section has an invalid header");
  if (h->page_size != page_size) return Status::Corruption("WAL section page size differs");
  wal::Checksum ck = h->cksum;
  for (size_t off = wal::kHeaderSize; off < n; off += frame_size) {
    const wal::FrameHeader fh = wal::decode_frame_header(p + off);
    if (std::memcmp(fh.salt.data(), h->salt.data(), 8) != 0) {
      return Status::Corruption("WAL section frame at offset " + std::to_string(off) + " has a stale salt");
    }
    ck = wal::checksum(h->big_endian(), p + off, 8, ck);
    ck = wal::checksum(h->big_endian(), p + off + wal::kFrameHeaderSize, page_size, ck);
    if (ck != fh.cksum) {
      return Status::Corruption("WAL section frame at offset " + std::to_string(off) + " fails its checksum");
    }
    if (fh.pgno == 0) return Status::Corruption("WAL section frame has page number 0");
    out->push_back({fh.pgno, fh.db_size, copy_page(p + off + wal::kFrameHeaderSize, page_size)});
  }
  if (out->back().db_size == 0) return Status::Corruption("WAL section does not end with a commit frame");
  return Status::Ok();
}

}  // namespace

std::vector<uint8_t> build_wal_file(const std::vector<DbImage::WalFrame>& frames, uint32_t page_size) {
  if (frames.empty()) return {};
  std::vector<uint8_t> out(wal::kHeaderSize + frames.size() * (wal::kFrameHeaderSize + page_size));
  wal::Header h;
  h.page_size = page_size;
  // Any salt is valid; a fixed one keeps snapshots of equal state identical.
  h.salt = {0x53, 0x51, 0x52, 0x41, 0x46, 0x54, 0x00, 0x01};
  wal::Checksum ck = wal::encode_header(h, out.data());
  uint8_t* p = out.data() + wal::kHeaderSize;
  for (const DbImage::WalFrame& f : frames) {
    std::memcpy(p + wal::kFrameHeaderSize, f.data.get(), page_size);
    ck = wal::encode_frame_header(false, f.pgno, f.db_size, h.salt, p + wal::kFrameHeaderSize, page_size, ck, p);
    p += wal::kFrameHeaderSize + page_size;
  }
  return out;
}

std::vector<SnapshotBuffer> encode_snapshot(const std::vector<DbImage>& images, uint64_t index) {
  std::vector<SnapshotBuffer> sections;
  proto::SnapshotHeader header;
  header.set_format_version(kSnapshotFormatVersion);
  header.set_index(index);
  for (const DbImage& img : images) {
    proto::SnapshotDatabase* d = header.add_databases();
    d->set_name(img.name);
    d->set_page_size(img.page_size);
    d->set_n_page(img.n_page);
    d->set_state_checksum(img.checksum);

    SnapshotBuffer db = pages_section(img.pages, img.page_size);
    d->set_db_bytes(db.size);
    d->set_db_xxh3(XXH3_64bits(db.data.get(), db.size));

    std::vector<uint8_t> wal_bytes = build_wal_file(img.wal, img.page_size);
    SnapshotBuffer wal = make_buffer(wal_bytes.size());
    if (!wal_bytes.empty()) std::memcpy(wal.data.get(), wal_bytes.data(), wal_bytes.size());
    d->set_wal_bytes(wal.size);
    d->set_wal_xxh3(XXH3_64bits(wal.data.get(), wal.size));

    d->set_pending_txn(img.pending.txn_id);
    std::vector<PagePtr> pending_pages;
    for (const auto& [pos, f] : img.pending.frames) {
      d->add_pending_positions(pos);
      d->add_pending_page_numbers(f.pgno);
      pending_pages.push_back(f.data);
    }
    SnapshotBuffer pending = pages_section(pending_pages, img.page_size);
    d->set_pending_bytes(pending.size);
    d->set_pending_xxh3(XXH3_64bits(pending.data.get(), pending.size));

    sections.push_back(std::move(db));
    sections.push_back(std::move(wal));
    sections.push_back(std::move(pending));
  }
  const std::string head = header.SerializeAsString();
  SnapshotBuffer prologue = make_buffer(sizeof kMagic + 4 + head.size() + 8);
  uint8_t* p = prologue.data.get();
  std::memcpy(p, kMagic, sizeof kMagic);
  put_le32(p + 8, uint32_t(head.size()));
  std::memcpy(p + 12, head.data(), head.size());
  put_le64(p + 12 + head.size(), XXH3_64bits(head.data(), head.size()));

  std::vector<SnapshotBuffer> out;
  out.reserve(sections.size() + 1);
  out.push_back(std::move(prologue));
  for (auto& s : sections) {
    if (s.size > 0) out.push_back(std::move(s));
  }
  return out;
}

Result<std::vector<DbImage>> decode_snapshot(const uint8_t* data, size_t size, uint64_t* index) {
  auto corrupt = [](const std::string& m) { return Status::Corruption("snapshot: " + m); };
  if (size < sizeof kMagic + 4 + 8 || std::memcmp(data, kMagic, sizeof kMagic) != 0) {
    return corrupt("not a sqraft snapshot (bad magic or too short)");
  }
  const uint32_t head_len = get_le32(data + 8);
  if (size_t(head_len) > size - (sizeof kMagic + 4 + 8)) return corrupt("header length beyond the end");
  const uint8_t* head = data + 12;
  if (XXH3_64bits(head, head_len) != get_le64(head + head_len)) return corrupt("header checksum mismatch");
  proto::SnapshotHeader header;
  if (!header.ParseFromArray(head, int(head_len))) return corrupt("header does not parse");
  if (header.format_version() == 0 || header.format_version() > kSnapshotFormatVersion) {
    return corrupt("unsupported format version " + std::to_string(header.format_version()));
  }
  size_t off = 12 + size_t(head_len) + 8;
  std::vector<DbImage> images;
  for (const proto::SnapshotDatabase& d : header.databases()) {
    const std::string where = "db '" + d.name() + "': ";
    if (!wal::valid_page_size(d.page_size())) return corrupt(where + "invalid page size");
    const uint64_t ps = d.page_size();
    for (uint64_t len : {d.db_bytes(), d.wal_bytes(), d.pending_bytes()}) {
      if (len > size - off) return corrupt(where + "section runs past the end");
    }
    if (d.db_bytes() + d.wal_bytes() + d.pending_bytes() > size - off) {
      return corrupt(where + "sections run past the end");
    }
    const uint8_t* db = data + off;
    const uint8_t* walp = db + d.db_bytes();
    const uint8_t* pend = walp + d.wal_bytes();
    if (XXH3_64bits(db, d.db_bytes()) != d.db_xxh3()) return corrupt(where + "database section checksum mismatch");
    if (XXH3_64bits(walp, d.wal_bytes()) != d.wal_xxh3()) return corrupt(where + "WAL section checksum mismatch");
    if (XXH3_64bits(pend, d.pending_bytes()) != d.pending_xxh3()) {
      return corrupt(where + "pending section checksum mismatch");
    }
    if (d.db_bytes() % ps != 0) return corrupt(where + "database section is not whole pages");
    const size_t n_pending = size_t(d.pending_positions_size());
    if (size_t(d.pending_page_numbers_size()) != n_pending || d.pending_bytes() != n_pending * ps) {
      return corrupt(where + "pending section sizes disagree");
    }
    if (n_pending > 0 && d.pending_txn() == 0) return corrupt(where + "pending frames without a transaction");
    DbImage img;
    img.name = d.name();
    img.page_size = d.page_size();
    img.n_page = d.n_page();
    img.checksum = d.state_checksum();
    for (uint64_t i = 0; i < d.db_bytes() / ps; i++) img.pages.push_back(copy_page(db + i * ps, uint32_t(ps)));
    if (Status s = parse_wal(walp, d.wal_bytes(), d.page_size(), &img.wal); !s.ok()) {
      return s.with_context("snapshot: " + where);
    }
    // Every size the image states (its own, each commit's, each page number)
    // stays within the pages it carries plus the few SQLite leaves unwritten
    // (frames.h): restoring costs memory in proportion to them.
    const uint64_t size_max = uint64_t(img.pages.size()) + img.wal.size() + kMaxUnwrittenPages;
    uint32_t max_pgno = uint32_t(img.pages.size());
    for (const DbImage::WalFrame& f : img.wal) {
      if (f.pgno > size_max || f.db_size > size_max) {
        return corrupt(where + "WAL frame of page " + std::to_string(f.pgno) + " (size " +
                       std::to_string(f.db_size) + ") beyond the " + std::to_string(size_max) +
                       " pages its content allows");
      }
      max_pgno = std::max(max_pgno, f.pgno);
    }
    if (img.n_page == 0 || img.n_page > max_pgno) {
      return corrupt(where + "size of " + std::to_string(img.n_page) + " pages does not match its content");
    }
    if (!img.wal.empty() && img.wal.back().db_size != img.n_page) {
      return corrupt(where + "size differs from the WAL's last commit");
    }
    img.pending.txn_id = d.pending_txn();
    for (size_t i = 0; i < n_pending; i++) {
      const uint32_t pos = d.pending_positions(int(i));
      const uint32_t pgno = d.pending_page_numbers(int(i));
      if (pos == 0 || pgno == 0) return corrupt(where + "pending frame with position or page 0");
      img.pending.frames[pos] = CapturedFrame{pos, pgno, copy_page(pend + i * ps, uint32_t(ps))};
    }
    off += d.db_bytes() + d.wal_bytes() + d.pending_bytes();
    images.push_back(std::move(img));
  }
  if (off != size) return corrupt(std::to_string(size - off) + " trailing bytes");
  for (DbImage& img : images) img.applied_index = header.index();
  if (index) *index = header.index();
  return images;
}

}  // namespace sqraft
