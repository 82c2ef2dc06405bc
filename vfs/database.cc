#include "database.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <thread>

namespace sqraft {

namespace {

std::string hex64(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

PagePtr Database::initial_page1(uint32_t page_size) {
  assert(wal::valid_page_size(page_size));
  PagePtr page = make_zero_page(page_size);
  uint8_t* p = page.get();
  std::memcpy(p, "SQLite format 3", 16);  // includes the terminating NUL
  const uint32_t size_field = page_size == 65536 ? 1 : page_size;
  p[16] = uint8_t(size_field >> 8);
  p[17] = uint8_t(size_field);
  p[18] = 2;     // file format write version: WAL
  p[19] = 2;     // file format read version: WAL
  p[21] = 64;    // maximum embedded payload fraction
  p[22] = 32;    // minimum embedded payload fraction
  p[23] = 32;    // leaf payload fraction
  wal::put_be32(p + 24, 1);   // file change counter
  wal::put_be32(p + 28, 1);   // database size in pages
  wal::put_be32(p + 92, 1);   // version-valid-for
  wal::put_be32(p + 96, uint32_t(sqlite3_libversion_number()));
  p[100] = 0x0d;  // sqlite_schema root: an empty leaf table b-tree page
  const uint32_t content_start = page_size == 65536 ? 0 : page_size;
  p[105] = uint8_t(content_start >> 8);
  p[106] = uint8_t(content_start);
  return page;
}

Database::Database(std::string name, Options options, std::unique_ptr<Store> store)
    : name_(std::move(name)),
      page_size_(options.page_size),
      options_(options),
      hash_(options.page_size),
      salt_rng_(std::random_device{}()) {
  assert(wal::valid_page_size(page_size_));
  store_ = std::move(store);
  disk_ = dynamic_cast<DiskStore*>(store_.get());
  locks_.set_allow_exclusive(!options.replicated);
  next_txn_id_ = (uint64_t(salt_rng_()) << 32 | salt_rng_()) | 1;
}

Database::Database(std::string name, const PagePtr& page1, Options options)
    : Database(std::move(name), page1, options, nullptr, 0) {}

Database::Database(std::string name, const PagePtr& page1, Options options, std::unique_ptr<DiskStore> store,
                   uint64_t index)
    : Database(std::move(name), options,
               store ? std::unique_ptr<Store>(std::move(store)) : std::make_unique<MemoryStore>(options.page_size)) {
  std::lock_guard lk(mu_);
  // A failed write shows in failure_: the first apply reports it.
  (void)store_failure_locked(store_->db_replace({page1}), "creating the database file");
  init_index_locked(1);
  hash_.rebuild(1, [&](uint32_t) { return page1.get(); });
  published_locked(index, hash_.value());
}

void Database::init_index_locked(uint32_t n_page) {
  wal::IndexHeader h{};
  h.page_size_code = wal::IndexHeader::encode_page_size(page_size_);
  h.n_page = n_page;
  h.change = uint32_t(salt_rng_());
  for (int i = 0; i < 8; i += 4) wal::put_be32(h.salt + i, salt_rng_());
  shm_.region(0, true);
  shm_.set_backfill(0);
  shm_.set_backfill_attempted(0);
  shm_.set_read_mark(0, 0);
  for (int i = 1; i < wal::kNumReaders; i++) shm_.set_read_mark(i, wal::kReadmarkNotUsed);
  shm_.publish_header(h);
}

wal::IndexHeader Database::header_locked() const {
  // A SQLite writer may be rewriting the header right now (a WAL restart);
  // like a SQLite reader, retry until both copies agree.
  for (int attempt = 0;; attempt++) {
    if (auto h = shm_.read_header()) return *h;
    if (attempt > 1000000) {
      spdlog::critical("db '{}': wal-index header stays torn", name_);
      std::abort();
    }
    std::this_thread::yield();
  }
}

// ---- database file ---------------------------------------------------------

int Database::db_read(void* buf, int n, int64_t offset) {
  std::lock_guard lk(mu_);
  return store_->db_read(static_cast<uint8_t*>(buf), n, offset);
}

int Database::db_write(const void* buf, int n, int64_t offset) {
  std::lock_guard lk(mu_);
  return store_->db_write(static_cast<const uint8_t*>(buf), n, offset);
}

int Database::db_truncate(int64_t size) {
  std::lock_guard lk(mu_);
  return store_->db_truncate(size);
}

int64_t Database::db_size() {
  std::lock_guard lk(mu_);
  return store_->db_size();
}

// ---- WAL file --------------------------------------------------------------

int64_t Database::wal_size() {
  std::lock_guard lk(mu_);
  return store_->wal_size();
}

int Database::wal_read(void* buf, int n, int64_t offset) {
  std::lock_guard lk(mu_);
  return store_->wal_read(static_cast<uint8_t*>(buf), n, offset);
}

int Database::wal_truncate(int64_t size) {
  std::lock_guard lk(mu_);
  if (disk_ && size < store_->wal_size()) {
    if (Status s = seal_locked(); !s.ok()) {
      spdlog::error("{}", s.message());
      return s.code();
    }
  }
  return store_->wal_truncate(size);
}

Database::WalWrite Database::wal_write(const void* buf, int n, int64_t offset) {
  std::lock_guard lk(mu_);
  WalWrite out;
  const bool capturing = options_.replicated && capture_.writer != nullptr;
  if (capturing && capture_.failed) {
    // The transaction already failed to replicate; SQLite is about to roll
    // back. Refuse further writes so nothing more is captured.
    out.rc = SQLITE_IOERR_WRITE;
    return out;
  }
  if (disk_ && offset < int64_t(wal::kHeaderSize)) {
    // A writer starts the WAL over: the frames it overwrites must no longer
    // be named by the record.
    if (Status s = seal_locked(); !s.ok()) {
      spdlog::error("{}", s.message());
      out.rc = s.code();
      return out;
    }
  }
  out.rc = store_->wal_write(static_cast<const uint8_t*>(buf), n, offset);
  if (out.rc != SQLITE_OK) {
    if (capturing) capture_.failed = true;
    return out;
  }
  if (!capturing) return out;
  if (offset < int64_t(wal::kHeaderSize)) {
    // SQLite restarted the WAL for this transaction: its frames start at 1.
    capture_.base = 0;
    return out;
  }
  const uint64_t frame_size = wal::kFrameHeaderSize + page_size_;
  const uint64_t first = (uint64_t(offset) - wal::kHeaderSize) / frame_size;
  const uint64_t last = (uint64_t(offset) + n - 1 - wal::kHeaderSize) / frame_size;
  for (uint64_t k = first; k <= last && !out.batch; k++) {
    const uint64_t page_end = wal::kHeaderSize + k * frame_size + frame_size - 1;
    if (uint64_t(offset) > page_end || uint64_t(offset) + n - 1 < page_end) continue;
    Status error;
    out.batch = capture_frame_locked(uint32_t(k + 1), &error);
    if (!error.ok()) {
      spdlog::error("db '{}': {}", name_, error.message());
      capture_.failed = true;
      out.rc = SQLITE_IOERR_WRITE;
      return out;
    }
  }
  if (!out.batch && capture_.unshipped_bytes >= options_.spill_threshold_bytes) {
    out.batch = make_batch_locked(false);
  }
  return out;
}

std::optional<FramesBatch> Database::capture_frame_locked(uint32_t frame, Status* error) {
  if (!capture_.base) capture_.base = header_locked().mx_frame;
  const uint32_t base = *capture_.base;
  if (frame <= base) {
    *error = Status::Internal("writer wrote frame " + std::to_string(frame) +
                              " inside the committed WAL (which ends at " + std::to_string(base) + ")");
    return std::nullopt;
  }
  const wal::FrameHeader fh = wal::decode_frame_header(store_->frame_header(frame));
  if (fh.pgno == 0) {
    *error = Status::Internal("frame " + std::to_string(frame) + " has page number 0");
    return std::nullopt;
  }
  const uint32_t position = frame - base;
  auto [it, inserted] = capture_.unshipped.insert_or_assign(position, CapturedFrame{position, fh.pgno, store_->frame_page(frame)});
  (void)it;
  if (inserted) capture_.unshipped_bytes += page_size_;
  if (fh.db_size == 0) return std::nullopt;
  capture_.frame_count = position;
  capture_.db_size = fh.db_size;
  return make_batch_locked(true);
}

std::vector<StateHash::PageChange> Database::final_changes_locked(
    const std::vector<CapturedFrame>& frames, uint32_t db_size) const {
  (void)db_size;
  std::map<uint32_t, const uint8_t*> last;  // pgno -> final content
  for (const CapturedFrame& f : frames) last[f.pgno] = f.data.get();
  std::vector<StateHash::PageChange> changes;
  changes.reserve(last.size());
  for (auto& [pgno, data] : last) changes.push_back({pgno, data});
  return changes;
}

FramesBatch Database::make_batch_locked(bool commit) {
  FramesBatch b;
  b.db = name_;
  b.txn_id = capture_.txn_id;
  b.page_size = page_size_;
  b.frames.reserve(capture_.unshipped.size());
  for (auto& [pos, f] : capture_.unshipped) b.frames.push_back(std::move(f));
  capture_.unshipped.clear();
  capture_.unshipped_bytes = 0;
  b.commit = commit;
  if (commit) {
    b.frame_count = capture_.frame_count;
    b.db_size = capture_.db_size;
    // The transaction's final frames are positions 1..frame_count as they are
    // in the WAL now (earlier pieces included).
    std::vector<CapturedFrame> final_frames;
    final_frames.reserve(b.frame_count);
    for (uint32_t p = 1; p <= b.frame_count; p++) {
      const uint32_t frame = *capture_.base + p;
      final_frames.push_back({p, wal::decode_frame_header(store_->frame_header(frame)).pgno, store_->frame_page(frame)});
    }
    b.checksum = hash_.preview(final_changes_locked(final_frames, b.db_size), b.db_size);
  }
  return b;
}

int Database::on_replicated(const FramesBatch& batch, const Status& status) {
  std::lock_guard lk(mu_);
  if (capture_.writer == nullptr || capture_.txn_id != batch.txn_id) return SQLITE_IOERR_WRITE;
  if (!status.ok()) {
    capture_.failed = true;
    return status.code();
  }
  if (!batch.commit) {
    capture_.shipped_pieces = true;
    return SQLITE_OK;
  }
  if (!capture_.committed) {
    // Replication reported success but this writer's commit was not applied
    // as its own; the loop thread publishes it instead. Roll back here.
    spdlog::error("db '{}': txn {} replicated but not applied as the writer's own", name_,
                  hex64(batch.txn_id));
    capture_.failed = true;
    return SQLITE_IOERR_WRITE;
  }
  return SQLITE_OK;
}

// ---- locks and shm ---------------------------------------------------------

int Database::file_lock(LockOwner owner, int level) {
  std::lock_guard lk(mu_);
  return locks_.file_lock(owner, level);
}

int Database::file_unlock(LockOwner owner, int level) {
  std::lock_guard lk(mu_);
  return locks_.file_unlock(owner, level);
}

bool Database::file_reserved() {
  std::lock_guard lk(mu_);
  return locks_.file_reserved();
}

int Database::shm_map(int region, int size, bool extend, void volatile** pp) {
  if (size != int(wal::kRegionSize)) return SQLITE_IOERR_SHMSIZE;
  std::lock_guard lk(mu_);
  *pp = shm_.region(uint32_t(region), extend);
  return SQLITE_OK;
}

Database::ShmLockResult Database::shm_lock(LockOwner owner, bool system, int offset, int n,
                                           int flags, bool writes_allowed) {
  std::lock_guard lk(mu_);
  ShmLockResult r;
  const bool covers_write = offset == wal::kLockWrite;
  const bool capture = options_.replicated && !system && covers_write;
  if (capture && flags == kShmLockExclusive) {
    if (!deferred_.empty() || locks_.shm_exclusive_owner(wal::kLockWrite) == kSystemOwner) {
      r.rc = SQLITE_BUSY;
      return r;
    }
    if (!writes_allowed) {
      r.rc = kErrNotLeader;
      return r;
    }
  }
  const bool was_writer = capture && capture_.writer == owner && owner != nullptr;
  r.rc = locks_.shm_lock(owner, offset, n, flags);
  if (r.rc != SQLITE_OK) return r;
  if (capture && flags == kShmLockExclusive) {
    capture_ = Capture{};
    capture_.writer = owner;
    capture_.txn_id = next_txn_id_++;
    if (capture_.txn_id == 0) capture_.txn_id = next_txn_id_++;
  } else if (was_writer && (flags & SQLITE_SHM_UNLOCK)) {
    r = end_write_locked();
  }
  return r;
}

Database::ShmLockResult Database::end_write_locked() {
  ShmLockResult r;
  if (capture_.committed) {
    // SQLite has published the commit we let through; check it did so as
    // captured.
    const wal::IndexHeader h = header_locked();
    if (h.mx_frame != *capture_.base + capture_.frame_count || h.n_page != capture_.db_size) {
      spdlog::critical("db '{}': writer published mxFrame={} nPage={}, expected {} and {}", name_,
                       h.mx_frame, h.n_page, *capture_.base + capture_.frame_count, capture_.db_size);
    }
    published_locked(capture_.commit_index, capture_.commit_hash);
  } else if (capture_.shipped_pieces) {
    r.undo_txn = capture_.txn_id;  // its streamed pieces must be dropped everywhere
  }
  capture_ = Capture{};
  publish_cv_.notify_all();
  // Frames past the published end belong to nobody now (a rollback, or what
  // a WAL restart left behind): free them.
  store_->wal_keep(header_locked().mx_frame);
  if (!deferred_.empty()) {
    // Commits arrived while the writer held the lock; the loop thread applies
    // them before anyone else may write.
    locks_.shm_lock(kSystemOwner, wal::kLockWrite, 1, kShmLockExclusive);
    r.wake_loop = true;
  }
  return r;
}

Database::ShmLockResult Database::close_connection(LockOwner owner) {
  std::lock_guard lk(mu_);
  ShmLockResult r;
  if (capture_.writer == owner && owner != nullptr) {
    locks_.shm_lock(owner, wal::kLockWrite, 1, kShmUnlockExclusive);
    r = end_write_locked();
  }
  locks_.release_all(owner);
  return r;
}

bool Database::try_system_locks_locked(int offset, int n) {
  return locks_.shm_lock(kSystemOwner, offset, n, kShmLockExclusive) == SQLITE_OK;
}

void Database::release_system_locks_locked(int offset, int n) {
  locks_.shm_lock(kSystemOwner, offset, n, kShmUnlockExclusive);
}

// ---- replication -----------------------------------------------------------

Status Database::apply_frames(FramesBatch batch, bool own, uint64_t index) {
  std::lock_guard lk(mu_);
  if (!failure_.ok()) return failure_;
  if (batch.page_size != page_size_) {
    return Status::Corruption("page size " + std::to_string(batch.page_size) + " does not match " +
                              std::to_string(page_size_));
  }
  if (pending_.txn_id != batch.txn_id) {  // a new transaction
    pending_.reset(batch.txn_id);
    pending_first_index_ = index;
  }
  for (CapturedFrame& f : batch.frames) pending_.frames[f.position] = std::move(f);
  if (!batch.commit) return Status::Ok();

  if (batch.frame_count > pending_.frames.size()) {
    pending_.reset();
    return Status::Corruption("transaction " + hex64(batch.txn_id) + " commits " +
                              std::to_string(batch.frame_count) + " frames but only " +
                              std::to_string(pending_.frames.size()) + " arrived");
  }
  std::vector<CapturedFrame> final_frames;
  final_frames.reserve(batch.frame_count);
  uint32_t max_pgno = 0;
  for (uint32_t p = 1; p <= batch.frame_count; p++) {
    auto it = pending_.frames.find(p);
    if (it == pending_.frames.end()) {
      pending_.reset();
      return Status::Corruption("transaction " + hex64(batch.txn_id) + " is missing frame " +
                                std::to_string(p) + " of " + std::to_string(batch.frame_count));
    }
    final_frames.push_back(it->second);
    max_pgno = std::max(max_pgno, it->second.pgno);
  }
  pending_.reset();
  if (batch.db_size > std::max(hash_.n_page(), max_pgno)) {
    // A database only grows by pages the transaction wrote.
    return Status::Corruption("transaction " + hex64(batch.txn_id) + " claims " + std::to_string(batch.db_size) +
                              " pages but writes none past " + std::to_string(std::max(hash_.n_page(), max_pgno)));
  }
  // Growth is pages written plus the few SQLite leaves unwritten (frames.h);
  // so is every page a transaction writes (one past the size it commits
  // was inside the database while it ran), and later snapshots' page
  // tables are as long as the largest.
  const uint64_t size_max = uint64_t(hash_.n_page()) + batch.frame_count + kMaxUnwrittenPages;
  if (batch.db_size > size_max || max_pgno > size_max) {
    return Status::Corruption("transaction " + hex64(batch.txn_id) + " grows the database from " +
                              std::to_string(hash_.n_page()) + " to " + std::to_string(batch.db_size) +
                              " pages (writing up to page " + std::to_string(max_pgno) + ") but writes " +
                              std::to_string(batch.frame_count) + " frames");
  }
  const auto changes = final_changes_locked(final_frames, batch.db_size);
  const bool writer_is_waiting =
      own && capture_.writer != nullptr && capture_.txn_id == batch.txn_id && !capture_.failed;
  // Followers check that their state after this commit is the leader's. The
  // leader computed the expected value from this very state, so it does not.
  const uint64_t local = hash_.preview(changes, batch.db_size);
  if (!writer_is_waiting && local != batch.checksum) {
    return Status::Divergence("state divergence: db '" + name_ + "' after transaction " +
                              hex64(batch.txn_id) + ": local checksum " + hex64(local) +
                              " != leader checksum " + hex64(batch.checksum));
  }
  hash_.apply(changes, batch.db_size);

  if (writer_is_waiting) {
    capture_.committed = true;  // the writer publishes it when it returns
    capture_.commit_index = index;
    capture_.commit_hash = hash_.value();
    return Status::Ok();
  }
  const LockOwner holder = locks_.shm_exclusive_owner(wal::kLockWrite);
  if (holder == nullptr && deferred_.empty()) {
    locks_.shm_lock(kSystemOwner, wal::kLockWrite, 1, kShmLockExclusive);
    const int rc = write_commit_locked(final_frames, batch.db_size);
    release_system_locks_locked(wal::kLockWrite, 1);
    if (rc == SQLITE_OK) published_locked(index, hash_.value());
    return store_failure_locked(rc, "writing the WAL");
  }
  deferred_.push_back({std::move(final_frames), batch.db_size, index, hash_.value()});
  return Status::Ok();
}

void Database::apply_undo(uint64_t txn_id) {
  std::lock_guard lk(mu_);
  if (pending_.txn_id == txn_id) pending_.reset();
}

void Database::drain_deferred() {
  std::lock_guard lk(mu_);
  if (deferred_.empty()) return;
  const LockOwner holder = locks_.shm_exclusive_owner(wal::kLockWrite);
  if (holder == nullptr) {
    locks_.shm_lock(kSystemOwner, wal::kLockWrite, 1, kShmLockExclusive);
  } else if (holder != kSystemOwner) {
    return;  // a writer still holds it; it hands the lock over when done
  }
  while (!deferred_.empty()) {
    const DeferredCommit& d = deferred_.front();
    const int rc = write_commit_locked(d.frames, d.db_size);
    if (rc == SQLITE_OK) published_locked(d.index, d.hash);
    // A failure is kept in failure_: the next apply reports it.
    (void)store_failure_locked(rc, "writing the WAL");
    deferred_.pop_front();
  }
  release_system_locks_locked(wal::kLockWrite, 1);
}

void Database::wait_publish() {
  std::unique_lock lk(mu_);
  publish_cv_.wait(lk, [&] { return !capture_.committed; });
}

void Database::maybe_restart_wal_locked(wal::IndexHeader& h) {
  if (h.mx_frame == 0 || shm_.backfill() != h.mx_frame) return;
  // Every frame is in the database file; start the WAL over if no reader
  // still uses it (read locks 1..4 free), as a SQLite writer would.
  if (!try_system_locks_locked(wal::kLockReadFirst + 1, wal::kNumReaders - 1)) return;
  if (disk_) {
    if (Status s = seal_locked(); !s.ok()) {
      // Keep appending to this WAL; the next checkpoint tries again.
      spdlog::warn("{}; the WAL keeps growing", s.message());
      release_system_locks_locked(wal::kLockReadFirst + 1, wal::kNumReaders - 1);
      return;
    }
  }
  wal::put_be32(h.salt, wal::get_be32(h.salt) + 1);
  wal::put_be32(h.salt + 4, salt_rng_());
  h.mx_frame = 0;
  shm_.publish_header(h);
  shm_.set_backfill(0);
  shm_.set_backfill_attempted(0);
  shm_.set_read_mark(1, 0);
  for (int i = 2; i < wal::kNumReaders; i++) shm_.set_read_mark(i, wal::kReadmarkNotUsed);
  release_system_locks_locked(wal::kLockReadFirst + 1, wal::kNumReaders - 1);
  checkpoint_seq_ = (store_->wal_has_header() ? wal::get_be32(store_->wal_header() + 12) : checkpoint_seq_) + 1;
  store_->wal_clear();
}

int Database::write_commit_locked(const std::vector<CapturedFrame>& frames, uint32_t db_size) {
  assert(locks_.shm_exclusive_owner(wal::kLockWrite) == kSystemOwner);
  assert(!frames.empty() && db_size > 0);
  wal::IndexHeader h = header_locked();
  maybe_restart_wal_locked(h);
  const bool big_endian = h.big_end_cksum != 0;
  wal::Salt salt;
  std::memcpy(salt.data(), h.salt, 8);
  wal::Checksum ck;
  if (h.mx_frame == 0) {
    wal::Header wh;
    wh.magic = big_endian ? wal::kMagicBigEndian : wal::kMagicLittleEndian;
    wh.page_size = page_size_;
    wh.checkpoint_seq = checkpoint_seq_;
    wh.salt = salt;
    uint8_t header[wal::kHeaderSize];
    ck = wal::encode_header(wh, header);
    if (int rc = store_->wal_start(header); rc != SQLITE_OK) return rc;
  } else {
    ck = {h.frame_cksum[0], h.frame_cksum[1]};
    // Frames past the end belong to a rolled back writer.
    if (int rc = store_->wal_keep(h.mx_frame); rc != SQLITE_OK) return rc;
  }
  for (size_t i = 0; i < frames.size(); i++) {
    uint8_t header[wal::kFrameHeaderSize];
    const uint32_t commit_size = i + 1 == frames.size() ? db_size : 0;
    ck = wal::encode_frame_header(big_endian, frames[i].pgno, commit_size, salt, frames[i].data.get(),
                                  page_size_, ck, header);
    if (int rc = store_->wal_append(header, frames[i].data); rc != SQLITE_OK) return rc;
  }
  // Stale hash entries past mx_frame (a rolled back writer's) are cleared
  // lazily by append(), as SQLite does; readers never look past their end.
  for (size_t i = 0; i < frames.size(); i++) {
    if (!shm_.append(h.mx_frame + 1 + uint32_t(i), frames[i].pgno, h.mx_frame + uint32_t(i))) {
      spdlog::critical("db '{}': wal-index hash table corrupt at frame {}", name_, h.mx_frame + 1 + i);
      std::abort();
    }
  }
  h.mx_frame += uint32_t(frames.size());
  h.n_page = db_size;
  h.change++;
  h.frame_cksum[0] = ck.s0;
  h.frame_cksum[1] = ck.s1;
  shm_.publish_header(h);
  return SQLITE_OK;
}

Status Database::store_failure_locked(int rc, const char* what) {
  if (rc == SQLITE_OK) return Status::Ok();
  Status s = Status::Error(rc, "db '" + name_ + "': " + what + " failed: " + sqlite3_errstr(rc));
  if (failure_.ok()) {
    spdlog::error("{}; this node's copy can no longer follow the log", s.message());
    failure_ = s;
  }
  return s;
}

// ---- inspection --------------------------------------------------------------

uint64_t Database::state_checksum() {
  std::lock_guard lk(mu_);
  return hash_.value();
}

std::vector<PagePtr> Database::visible_pages_locked() {
  const wal::IndexHeader h = header_locked();
  std::vector<PagePtr> pages;
  const uint32_t file_pages = uint32_t(store_->db_size() / page_size_);
  pages.reserve(std::max(file_pages, h.n_page));
  for (uint32_t p = 1; p <= file_pages; p++) pages.push_back(store_->db_page(p));
  for (uint32_t f = 1; f <= h.mx_frame; f++) {
    const uint32_t pgno = wal::decode_frame_header(store_->frame_header(f)).pgno;
    if (pgno > pages.size()) pages.resize(pgno);
    pages[pgno - 1] = store_->frame_page(f);
  }
  pages.resize(h.n_page);
  return pages;
}

uint64_t Database::recompute_state_checksum() {
  std::lock_guard lk(mu_);
  const std::vector<PagePtr> pages = visible_pages_locked();
  StateHash fresh(page_size_);
  fresh.rebuild(uint32_t(pages.size()), [&](uint32_t p) { return pages[p - 1].get(); });
  return fresh.value();
}

uint32_t Database::wal_frames() {
  std::lock_guard lk(mu_);
  return header_locked().mx_frame;
}

uint32_t Database::unfolded_frames() {
  std::lock_guard lk(mu_);
  const uint32_t mx = header_locked().mx_frame;
  return mx - std::min(mx, shm_.backfill());
}

bool Database::has_deferred() {
  std::lock_guard lk(mu_);
  return !deferred_.empty();
}

void Database::perturb_state_hash_for_testing() {
  std::lock_guard lk(mu_);
  std::vector<uint8_t> junk(page_size_, 0xab);
  StateHash::PageChange change{1, junk.data()};
  hash_.apply(std::span<const StateHash::PageChange>(&change, 1), hash_.n_page());
}

std::string Database::debug_state() {
  std::lock_guard lk(mu_);
  const LockOwner w = locks_.shm_exclusive_owner(wal::kLockWrite);
  std::string s = "write_lock=";
  s += w == nullptr ? "free" : w == kSystemOwner ? "system" : "conn";
  s += " deferred=" + std::to_string(deferred_.size());
  s += " capturing=" + std::to_string(capture_.writer != nullptr);
  s += " committed=" + std::to_string(capture_.committed);
  s += " failed=" + std::to_string(capture_.failed);
  for (int i = 0; i < wal::kNumLocks; i++) {
    s += " slot" + std::to_string(i) + "=" + std::to_string(locks_.shm_shared_count(i)) +
         (locks_.shm_exclusive_owner(i) ? "x" : "");
  }
  return s;
}

uint64_t Database::pending_txn() {
  std::lock_guard lk(mu_);
  return pending_.txn_id;
}

}  // namespace sqraft
