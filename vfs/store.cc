#include "store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstring>

namespace sqraft {

// ---- database file ---------------------------------------------------------

int MemoryStore::db_read(uint8_t* out, int n, int64_t offset) {
  int rc = SQLITE_OK;
  for_each_page_span(offset, n, page_size_, [&](uint64_t idx, uint32_t within, int done, int chunk) {
    if (idx >= pages_.size()) {
      std::memset(out + done, 0, size_t(n - done));
      rc = SQLITE_IOERR_SHORT_READ;
      return false;
    }
    if (pages_[idx]) {
      std::memcpy(out + done, pages_[idx].get() + within, size_t(chunk));
    } else {
      std::memset(out + done, 0, size_t(chunk));
    }
    return true;
  });
  return rc;
}

int MemoryStore::db_write(const uint8_t* in, int n, int64_t offset) {
  for_each_page_span(offset, n, page_size_, [&](uint64_t idx, uint32_t within, int done, int chunk) {
    if (idx >= pages_.size()) pages_.resize(idx + 1);
    std::memcpy(mutable_page(pages_[idx], page_size_) + within, in + done, size_t(chunk));
    return true;
  });
  return SQLITE_OK;
}

int MemoryStore::db_truncate(int64_t size) {
  pages_.resize(size_t((uint64_t(size) + page_size_ - 1) / page_size_));
  return SQLITE_OK;
}

// ---- WAL file --------------------------------------------------------------

void MemoryStore::copy(bool write, uint8_t* dst, int n, int64_t offset, const uint8_t* src) {
  const uint64_t frame_size = wal::kFrameHeaderSize + page_size_;
  uint64_t pos = uint64_t(offset);
  int done = 0;
  while (done < n) {
    int chunk;
    if (pos < wal::kHeaderSize) {
      chunk = int(std::min<uint64_t>(n - done, wal::kHeaderSize - pos));
      if (write) {
        std::memcpy(header_ + pos, src + done, chunk);
        has_header_ = true;
      } else {
        std::memcpy(dst + done, header_ + pos, chunk);
      }
    } else {
      const uint64_t k = (pos - wal::kHeaderSize) / frame_size;
      const uint64_t within = (pos - wal::kHeaderSize) % frame_size;
      if (k >= frames_.size()) {
        if (!write) {
          std::memset(dst + done, 0, n - done);
          return;
        }
        frames_.resize(k + 1);
      }
      Frame& slot = frames_[k];
      if (within < wal::kFrameHeaderSize) {
        chunk = int(std::min<uint64_t>(n - done, wal::kFrameHeaderSize - within));
        if (write) {
          std::memcpy(slot.header + within, src + done, chunk);
        } else {
          std::memcpy(dst + done, slot.header + within, chunk);
        }
      } else {
        const uint64_t in_page = within - wal::kFrameHeaderSize;
        chunk = int(std::min<uint64_t>(n - done, page_size_ - in_page));
        if (write) {
          std::memcpy(mutable_page(slot.page, page_size_) + in_page, src + done, chunk);
        } else if (slot.page) {
          std::memcpy(dst + done, slot.page.get() + in_page, chunk);
        } else {
          std::memset(dst + done, 0, chunk);
        }
      }
    }
    pos += chunk;
    done += chunk;
  }
}

int64_t MemoryStore::wal_size() {
  if (!has_header_) return 0;
  return int64_t(wal::kHeaderSize + frames_.size() * (wal::kFrameHeaderSize + page_size_));
}

int MemoryStore::wal_read(uint8_t* out, int n, int64_t offset) {
  const int64_t size = wal_size();
  if (offset + n > size) {
    const int avail = int(std::max<int64_t>(0, size - offset));
    if (avail > 0) copy(false, out, avail, offset, nullptr);
    std::memset(out + avail, 0, n - avail);
    return SQLITE_IOERR_SHORT_READ;
  }
  copy(false, out, n, offset, nullptr);
  return SQLITE_OK;
}

int MemoryStore::wal_write(const uint8_t* in, int n, int64_t offset) {
  copy(true, nullptr, n, offset, in);
  return SQLITE_OK;
}

int MemoryStore::wal_truncate(int64_t size) {
  if (size <= int64_t(wal::kHeaderSize)) {
    frames_.clear();
    if (size == 0) has_header_ = false;
    return SQLITE_OK;
  }
  const uint64_t frame_size = wal::kFrameHeaderSize + page_size_;
  frames_.resize(size_t((uint64_t(size) - wal::kHeaderSize + frame_size - 1) / frame_size));
  return SQLITE_OK;
}

int MemoryStore::wal_start(const uint8_t header[wal::kHeaderSize]) {
  std::memcpy(header_, header, wal::kHeaderSize);
  has_header_ = true;
  frames_.clear();
  return SQLITE_OK;
}

int MemoryStore::wal_append(const uint8_t header[wal::kFrameHeaderSize], const PagePtr& page) {
  Frame f;
  std::memcpy(f.header, header, wal::kFrameHeaderSize);
  f.page = page;
  frames_.push_back(std::move(f));
  return SQLITE_OK;
}

int MemoryStore::wal_keep(uint32_t frames) {
  if (frames < frames_.size()) frames_.resize(frames);
  return SQLITE_OK;
}

int MemoryStore::wal_clear() {
  frames_.clear();
  has_header_ = false;
  return SQLITE_OK;
}

}  // namespace sqraft
