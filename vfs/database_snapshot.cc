// Database, snapshots: capturing an image (deferred in disk storage, its
// pages read off the loop thread) and installing one.
#include "database.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace sqraft {

// ---- snapshots ---------------------------------------------------------------

namespace {

// The pages a deferred capture still has to read from the files.
class DiskView final : public ImageSource {
 public:
  DiskView(std::shared_ptr<Database> db, const DiskStore* disk, uint32_t page_size)
      : db_(std::move(db)), disk_(disk), page_size_(page_size) {}
  ~DiskView() override { db_->release_view(); }
  Status load(DbImage& img) override {
    for (size_t i = 0; i < img.pages.size(); i++) {
      PagePtr p(new uint8_t[page_size_]);
      if (int rc = disk_->pread_db_page(uint32_t(i + 1), p.get()); rc != SQLITE_OK) {
        return Status::Error(rc, "snapshot: reading the database file of '" + img.name + "' failed");
      }
      img.pages[i] = std::move(p);
    }
    for (size_t i = 0; i < frames.size(); i++) {
      PagePtr p(new uint8_t[page_size_]);
      if (int rc = disk_->pread_frame_page(frames[i], p.get()); rc != SQLITE_OK) {
        return Status::Error(rc, "snapshot: reading the WAL of '" + img.name + "' failed");
      }
      img.wal[i].data = std::move(p);
    }
    return Status::Ok();
  }
  std::vector<uint32_t> frames;  // img.wal[i] is WAL frame frames[i]

 private:
  std::shared_ptr<Database> db_;
  const DiskStore* disk_;
  const uint32_t page_size_;
};

}  // namespace

DbImage Database::capture(bool defer_load) {
  std::unique_lock lk(mu_);
  publish_cv_.wait(lk, [&] { return !capture_.committed; });
  DbImage img;
  img.name = name_;
  img.page_size = page_size_;
  const wal::IndexHeader h = header_locked();
  const uint32_t backfilled = std::min(shm_.backfill(), h.mx_frame);
  const uint32_t file_pages = uint32_t(std::min<uint64_t>(store_->db_size() / page_size_, h.n_page));
  // Disk mode, deferred: hold the files still the way a SQLite reader
  // does (a read lock that keeps the WAL from starting over and bounds
  // what a checkpoint may fold); our own checkpoints wait for views_ == 0.
  bool defer = defer_load && disk_ != nullptr;
  if (defer && views_ == 0) {
    defer = locks_.shm_lock(kSnapshotOwner, wal::kLockReadFirst + 1, 1, SQLITE_SHM_LOCK | SQLITE_SHM_SHARED) ==
            SQLITE_OK;
  }
  std::shared_ptr<DiskView> view;
  if (defer) {
    views_++;
    view = std::make_shared<DiskView>(shared_from_this(), disk_, page_size_);
    img.pages.resize(file_pages);
  } else {
    img.pages.reserve(file_pages);
    for (uint32_t p = 1; p <= file_pages; p++) img.pages.push_back(store_->db_page(p));
  }
  for (uint32_t f = backfilled + 1; f <= h.mx_frame; f++) {
    const wal::FrameHeader fh = wal::decode_frame_header(store_->frame_header(f));
    img.wal.push_back({fh.pgno, fh.db_size, view ? nullptr : store_->frame_page(f)});
    if (view) view->frames.push_back(f);
  }
  img.n_page = h.n_page;
  for (const DeferredCommit& d : deferred_) {
    for (size_t i = 0; i < d.frames.size(); i++) {
      img.wal.push_back({d.frames[i].pgno, i + 1 == d.frames.size() ? d.db_size : 0, d.frames[i].data});
    }
    img.n_page = d.db_size;
  }
  img.checksum = hash_.value();
  img.pending = pending_;
  img.source = std::move(view);
  return img;
}

void Database::release_view() {
  std::lock_guard lk(mu_);
  if (views_ > 0 && --views_ == 0) {
    locks_.shm_lock(kSnapshotOwner, wal::kLockReadFirst + 1, 1, SQLITE_SHM_UNLOCK | SQLITE_SHM_SHARED);
  }
}

std::vector<PagePtr> Database::logical_pages(const DbImage& image) {
  std::vector<PagePtr> pages(image.pages.begin(),
                             image.pages.begin() + std::min<size_t>(image.pages.size(), image.n_page));
  for (const DbImage::WalFrame& f : image.wal) {
    if (f.pgno > pages.size()) pages.resize(f.pgno);
    pages[f.pgno - 1] = f.data;
  }
  pages.resize(image.n_page);
  return pages;
}

Status Database::install(const DbImage& image) {
  std::unique_lock lk(mu_);
  publish_cv_.wait(lk, [&] { return !capture_.committed; });
  if (image.page_size != page_size_) {
    return Status::Invalid("snapshot of db '" + name_ + "' has page size " +
                           std::to_string(image.page_size) + ", local " + std::to_string(page_size_));
  }
  const std::vector<PagePtr> logical = logical_pages(image);
  const bool writer_free = locks_.shm_exclusive_owner(wal::kLockWrite) == nullptr && deferred_.empty();
  if (writer_free && try_system_locks_locked(0, wal::kNumLocks)) {
    // Nobody is reading or writing: replace the files outright. On disk the
    // record goes first: files half replaced are never taken for its state.
    if (disk_) {
      std::lock_guard rl(record_mu_);
      if (Status s = disk_->drop_record(); !s.ok()) {
        release_system_locks_locked(0, wal::kNumLocks);
        return s;
      }
      last_record_ = AppliedRecord{};
      wal_gen_++;
    }
    int rc = store_->db_replace(image.pages);
    if (rc == SQLITE_OK) rc = store_->wal_clear();
    if (rc != SQLITE_OK) {
      release_system_locks_locked(0, wal::kNumLocks);
      return store_failure_locked(rc, "installing a snapshot");
    }
    shm_.clear();
    init_index_locked(uint32_t(std::min<size_t>(image.pages.size(), image.n_page)));
    std::vector<CapturedFrame> group;
    for (const DbImage::WalFrame& f : image.wal) {
      group.push_back({uint32_t(group.size() + 1), f.pgno, f.data});
      if (f.db_size != 0) {
        rc = write_commit_locked(group, f.db_size);
        if (rc != SQLITE_OK) break;
        group.clear();
      }
    }
    release_system_locks_locked(0, wal::kNumLocks);
    if (rc != SQLITE_OK) return store_failure_locked(rc, "installing a snapshot");
  } else {
    // Connections are active: commit the whole new content through the WAL so
    // that each of them keeps a consistent view.
    DeferredCommit all;
    for (uint32_t p = 1; p <= logical.size(); p++) {
      all.frames.push_back({p, p, logical[p - 1] ? logical[p - 1] : make_zero_page(page_size_)});
    }
    all.db_size = uint32_t(logical.size());
    if (writer_free) {
      locks_.shm_lock(kSystemOwner, wal::kLockWrite, 1, kShmLockExclusive);
      const int rc = write_commit_locked(all.frames, all.db_size);
      release_system_locks_locked(wal::kLockWrite, 1);
      if (rc != SQLITE_OK) return store_failure_locked(rc, "installing a snapshot");
    } else {
      deferred_.push_back(std::move(all));
    }
  }
  hash_.rebuild(uint32_t(logical.size()), [&](uint32_t p) { return logical[p - 1].get(); });
  if (deferred_.empty()) {
    published_locked(image.applied_index, hash_.value());
  } else {
    deferred_.back().index = image.applied_index;
    deferred_.back().hash = hash_.value();
  }
  pending_ = image.pending;
  // The pieces of a pending transaction are only in memory: a record must
  // not claim an index past them (the snapshot holds them).
  pending_first_index_ = image.applied_index;
  return Status::Ok();
}

}  // namespace sqraft
