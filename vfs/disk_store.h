// DiskStore: a database's two files on disk, in the standard SQLite layout
// (`<dir>/<file>` and `<dir>/<file>-wal`), plus the record of what they hold
// (AppliedRecord, in `<dir>/.applied/<file>`).
//
// Only the WAL's 24-byte frame headers are kept in memory (they are what the
// wal-index is built from); pages are read from and written to the files.
// SQLite connections run with synchronous=OFF, so nothing here syncs on its
// own: Database decides when (sync_wal/sync_db before writing a record).
//
// Durability contract (see docs/architecture.md, "Disk mode"): a record
// names a WAL generation (its salt) and a frame count; after a crash the
// files are trusted only as far as the newest record says, and only after
// every frame up to there has passed its checksum.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "status.h"
#include "store.h"

namespace sqraft {

// What a database's files durably hold: the state after log entry `index`.
struct AppliedRecord {
  uint64_t index = 0;       // the last log entry whose effect the files hold
  uint32_t page_size = 0;
  uint32_t n_page = 0;      // logical size after that entry
  uint32_t mx_frame = 0;    // WAL frames that belong to the state (0: the WAL is ignored)
  uint8_t salt[8] = {};     // the WAL generation those frames carry
  uint64_t checksum = 0;    // StateHash of the logical content
};

class DiskStore final : public Store {
 public:
  // Opens (creating if missing) the files of `file` in `dir`, which must
  // exist. `fresh`: truncate both to zero first (a new database).
  static Result<std::unique_ptr<DiskStore>> open(const std::string& dir, const std::string& file,
                                                 uint32_t page_size, bool fresh);
  ~DiskStore() override;
  DiskStore(const DiskStore&) = delete;
  DiskStore& operator=(const DiskStore&) = delete;

  // The file name a database name maps to: bytes other than [A-Za-z0-9_.-]
  // (and a leading '.') as %XX, so that every name is one safe file name.
  static std::string file_name(const std::string& db);
  static std::optional<std::string> db_name(const std::string& file);  // the inverse

  int db_read(uint8_t* out, int n, int64_t offset) override;
  int db_write(const uint8_t* in, int n, int64_t offset) override;
  int db_truncate(int64_t size) override;
  int64_t db_size() override { return db_bytes_; }
  PagePtr db_page(uint32_t pgno) override;
  int db_replace(const std::vector<PagePtr>& pages) override;

  int64_t wal_size() override { return wal_bytes_; }
  int wal_read(uint8_t* out, int n, int64_t offset) override;
  int wal_write(const uint8_t* in, int n, int64_t offset) override;
  int wal_truncate(int64_t size) override;
  bool wal_has_header() override { return wal_bytes_ >= int64_t(wal::kHeaderSize); }
  const uint8_t* wal_header() override { return header_; }
  uint32_t wal_frame_count() override { return uint32_t(headers_.size()); }
  const uint8_t* frame_header(uint32_t frame) override { return headers_[frame - 1].data(); }
  PagePtr frame_page(uint32_t frame) override;
  int wal_start(const uint8_t header[wal::kHeaderSize]) override;
  int wal_append(const uint8_t header[wal::kFrameHeaderSize], const PagePtr& page) override;
  int wal_keep(uint32_t frames) override;
  int wal_clear() override;

  // Reads a page of the database file (`pgno`) or of a WAL frame
  // (`frame`) into `out` straight from the file: no state of the store is
  // touched, so any thread may call it while the owner writes elsewhere.
  // Past the end of the file: zeros.
  int pread_db_page(uint32_t pgno, uint8_t* out) const;
  int pread_frame_page(uint32_t frame, uint8_t* out) const;

  // ---- durability (no mutex needed: fds are fixed for the store's life) ----
  int sync_wal();
  int sync_db();
  // Atomically replaces the record (temporary file, fsync, rename, fsync
  // of the directory).
  Status write_record(const AppliedRecord& r);
  // Removes the record (durably): the files hold no trusted state until the
  // next write_record.
  Status drop_record();
  // The record of `file` in `dir`; nullopt if there is none; an error if it
  // exists but is damaged.
  static Result<std::optional<AppliedRecord>> read_record(const std::string& dir, const std::string& file);
  // Deletes the files and the record of `file` (a database whose files are
  // not trusted). Missing files are fine.
  static Status remove(const std::string& dir, const std::string& file);

  // Recovery: keeps WAL frames 1..r.mx_frame after checking that the WAL
  // header carries r.salt and every frame its salt and a valid cumulative
  // checksum, the last one a commit of r.n_page pages; drops the rest.
  // Returns the cumulative checksum after the last kept frame.
  Result<wal::Checksum> recover_wal(const AppliedRecord& r);

  const std::string& path() const { return db_path_; }

 private:
  DiskStore(std::string dir, std::string file, uint32_t page_size, int db_fd, int wal_fd);
  uint64_t frame_size() const { return wal::kFrameHeaderSize + uint64_t(page_size_); }

  const std::string dir_;
  const std::string file_;
  const std::string db_path_;
  const uint32_t page_size_;
  int db_fd_ = -1;
  int wal_fd_ = -1;
  int64_t db_bytes_ = 0;
  int64_t wal_bytes_ = 0;  // the WAL's logical size (the file may be longer)
  uint8_t header_[wal::kHeaderSize] = {};
  std::vector<std::array<uint8_t, wal::kFrameHeaderSize>> headers_;  // headers_[i]: frame i + 1
};

}  // namespace sqraft
