// Store: where one database's two files live — the database file (pages)
// and its WAL (a 32-byte header, then frames of a 24-byte header and a
// page) — byte for byte as SQLite reads and writes them.
//
// Database keeps the logic (capture, apply, visibility, locks, the
// wal-index) and asks its Store for bytes, pages and frames. Two stores:
//  * MemoryStore (here): both files as shared page buffers, nothing on disk.
//  * DiskStore (disk_store.h): both files real files in the node's data
//    directory, which `sqlite3` can open when the node is stopped.
//
// Return codes are SQLite's: SQLITE_OK, SQLITE_IOERR_SHORT_READ for a read
// past the end (the rest of the buffer zeroed), SQLITE_FULL or an
// SQLITE_IOERR_* code when the disk refuses.
//
// Thread-safety: none; the owning Database calls it with its mutex held.
#pragma once

#include <cstdint>
#include <vector>

#include "page.h"
#include "wal_format.h"

namespace sqraft {

class Store {
 public:
  virtual ~Store() = default;

  // ---- database file ----
  virtual int db_read(uint8_t* out, int n, int64_t offset) = 0;
  virtual int db_write(const uint8_t* in, int n, int64_t offset) = 0;
  virtual int db_truncate(int64_t size) = 0;
  virtual int64_t db_size() = 0;
  // Page `pgno` (1-based) of the file; nullptr for a page past the end or
  // one that reads as zeros.
  virtual PagePtr db_page(uint32_t pgno) = 0;
  // Makes the file exactly `pages` (nullptr: a zero page).
  virtual int db_replace(const std::vector<PagePtr>& pages) = 0;

  // ---- WAL file ----
  virtual int64_t wal_size() = 0;
  virtual int wal_read(uint8_t* out, int n, int64_t offset) = 0;
  virtual int wal_write(const uint8_t* in, int n, int64_t offset) = 0;
  virtual int wal_truncate(int64_t size) = 0;
  virtual bool wal_has_header() = 0;
  virtual const uint8_t* wal_header() = 0;  // kHeaderSize bytes (zeros if none)
  // Frames in the file, counting a partly written last one.
  virtual uint32_t wal_frame_count() = 0;
  virtual const uint8_t* frame_header(uint32_t frame) = 0;  // 1-based; kFrameHeaderSize bytes
  virtual PagePtr frame_page(uint32_t frame) = 0;           // 1-based
  // Writes a new WAL header and drops every frame.
  virtual int wal_start(const uint8_t header[wal::kHeaderSize]) = 0;
  // Writes frame wal_frame_count() + 1.
  virtual int wal_append(const uint8_t header[wal::kFrameHeaderSize], const PagePtr& page) = 0;
  // Drops frames after `frames` (no-op if there are not more).
  virtual int wal_keep(uint32_t frames) = 0;
  // No header, no frames: an empty WAL file.
  virtual int wal_clear() = 0;
};

// Both files in memory. Pages are shared with captured transactions and
// snapshot images (page.h), so capturing costs no copies.
class MemoryStore final : public Store {
 public:
  explicit MemoryStore(uint32_t page_size) : page_size_(page_size) {}

  int db_read(uint8_t* out, int n, int64_t offset) override;
  int db_write(const uint8_t* in, int n, int64_t offset) override;
  int db_truncate(int64_t size) override;
  int64_t db_size() override { return int64_t(pages_.size()) * page_size_; }
  PagePtr db_page(uint32_t pgno) override { return pgno <= pages_.size() ? pages_[pgno - 1] : nullptr; }
  int db_replace(const std::vector<PagePtr>& pages) override {
    pages_ = pages;
    return 0;
  }

  int64_t wal_size() override;
  int wal_read(uint8_t* out, int n, int64_t offset) override;
  int wal_write(const uint8_t* in, int n, int64_t offset) override;
  int wal_truncate(int64_t size) override;
  bool wal_has_header() override { return has_header_; }
  const uint8_t* wal_header() override { return header_; }
  uint32_t wal_frame_count() override { return uint32_t(frames_.size()); }
  const uint8_t* frame_header(uint32_t frame) override { return frames_[frame - 1].header; }
  PagePtr frame_page(uint32_t frame) override { return frames_[frame - 1].page; }
  int wal_start(const uint8_t header[wal::kHeaderSize]) override;
  int wal_append(const uint8_t header[wal::kFrameHeaderSize], const PagePtr& page) override;
  int wal_keep(uint32_t frames) override;
  int wal_clear() override;

 private:
  struct Frame {
    uint8_t header[wal::kFrameHeaderSize] = {};
    PagePtr page;
  };
  // Copies between `buf` and the WAL's bytes [offset, offset + n), which
  // must lie inside the file unless writing (writes extend it).
  void copy(bool write, uint8_t* buf, int n, int64_t offset, const uint8_t* src);

  const uint32_t page_size_;
  std::vector<PagePtr> pages_;  // pages_[i] is page i + 1
  bool has_header_ = false;
  uint8_t header_[wal::kHeaderSize] = {};
  std::vector<Frame> frames_;  // frames_[i] is frame i + 1
};

// Calls fn(page index, offset within the page, offset within the buffer,
// length) for each page that bytes [offset, offset + n) of a file of
// `page_size` pages touch, in order, while fn returns true.
template <typename Fn>
void for_each_page_span(int64_t offset, int n, uint32_t page_size, Fn fn) {
  int done = 0;
  while (done < n) {
    const uint64_t pos = uint64_t(offset) + uint64_t(done);
    const uint32_t within = uint32_t(pos % page_size);
    const int chunk = int(std::min<uint64_t>(uint64_t(n - done), page_size - within));
    if (!fn(pos / page_size, within, done, chunk)) return;
    done += chunk;
  }
}

}  // namespace sqraft
