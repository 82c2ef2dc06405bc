// Database, disk storage: reopening files from their applied record, and
// the record's rules (persist, seal, checkpoints bounded by a record).
// See docs/architecture.md, "Disk storage".
#include "database.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace sqraft {

Result<std::shared_ptr<Database>> Database::reopen(std::string name, Options options,
                                                   std::unique_ptr<DiskStore> store, const AppliedRecord& record) {
  if (record.page_size != options.page_size) {
    return Status::Invalid("db '" + name + "' has page size " + std::to_string(record.page_size) + ", the node " +
                           std::to_string(options.page_size));
  }
  if (record.n_page == 0) return Status::Corruption("db '" + name + "': its record names no pages");
  Result<wal::Checksum> ck = store->recover_wal(record);
  if (!ck.ok()) return ck.status();
  std::shared_ptr<Database> db(new Database(std::move(name), options, std::move(store)));
  std::lock_guard lk(db->mu_);
  Store& st = *db->store_;
  db->init_index_locked(record.n_page);
  wal::IndexHeader h = db->header_locked();
  const uint8_t* wh = st.wal_header();
  if (record.mx_frame > 0) {
    h.big_end_cksum = wal::get_be32(wh) == wal::kMagicBigEndian ? 1 : 0;
    std::memcpy(h.salt, record.salt, 8);
    db->checkpoint_seq_ = wal::get_be32(wh + 12);
  }
  // Page -> its last frame, to hash the content as readers see it.
  std::vector<uint32_t> last_frame(record.n_page, 0);
  for (uint32_t f = 1; f <= record.mx_frame; f++) {
    const uint32_t pgno = wal::decode_frame_header(st.frame_header(f)).pgno;
    if (!db->shm_.append(f, pgno, f - 1)) return Status::Corruption("db '" + db->name_ + "': wal-index build failed");
    if (pgno <= record.n_page) last_frame[pgno - 1] = f;
  }
  h.mx_frame = record.mx_frame;
  h.n_page = record.n_page;
  h.frame_cksum[0] = ck.value().s0;
  h.frame_cksum[1] = ck.value().s1;
  h.change++;
  db->shm_.publish_header(h);
  PagePtr cur;
  db->hash_.rebuild(record.n_page, [&](uint32_t p) {
    cur = last_frame[p - 1] ? st.frame_page(last_frame[p - 1]) : st.db_page(p);
    return cur.get();
  });
  if (db->hash_.value() != record.checksum) {
    return Status::Corruption("db '" + db->name_ + "': the content of its files does not match its record");
  }
  db->published_locked(record.index, record.checksum);
  db->recovered_index_ = record.index;
  {
    std::lock_guard rl(db->record_mu_);
    db->last_record_ = record;
  }
  return db;
}

// ---- durability --------------------------------------------------------------

void Database::note_applied(uint64_t index) {
  std::lock_guard lk(mu_);
  if (deferred_.empty() && !capture_.committed) event_index_ = std::max(event_index_, index);
}

AppliedRecord Database::record_locked() {
  const wal::IndexHeader h = header_locked();
  AppliedRecord r;
  r.index = event_index_;
  r.checksum = published_hash_;
  if (capture_.committed && capture_.base && h.mx_frame == *capture_.base + capture_.frame_count) {
    // The writer's commit is applied and SQLite already published it in the
    // wal-index; end_write_locked() has not run yet.
    r.index = capture_.commit_index;
    r.checksum = capture_.commit_hash;
  }
  // Pieces of a streamed transaction live only in memory: after a crash
  // they must be applied again, so the record stops before the first.
  if (!pending_.empty() && pending_first_index_ > 0) r.index = std::min(r.index, pending_first_index_ - 1);
  r.page_size = page_size_;
  r.n_page = h.n_page;
  r.mx_frame = h.mx_frame;
  std::memcpy(r.salt, h.salt, 8);
  return r;
}

Status Database::seal_locked() {
  if (int rc = disk_->sync_db(); rc != SQLITE_OK) {
    return Status::Error(rc, "db '" + name_ + "': sync of the database file failed: " + sqlite3_errstr(rc));
  }
  AppliedRecord r = record_locked();
  r.mx_frame = 0;  // everything is in the database file now
  std::lock_guard rl(record_mu_);
  wal_gen_++;
  if (Status s = disk_->write_record(r); !s.ok()) return s.with_context("db '" + name_ + "': seal");
  last_record_ = r;
  return Status::Ok();
}

Status Database::persist() {
  if (!disk_) return Status::Ok();
  AppliedRecord r;
  uint64_t gen;
  {
    std::lock_guard lk(mu_);
    if (!failure_.ok()) return failure_;
    r = record_locked();
    gen = wal_gen_;
  }
  {
    std::lock_guard rl(record_mu_);
    if (last_record_.index == r.index && last_record_.mx_frame == r.mx_frame &&
        last_record_.checksum == r.checksum && std::memcmp(last_record_.salt, r.salt, 8) == 0) {
      return Status::Ok();  // nothing new
    }
  }
  // Frames 1..r.mx_frame were written before the state was read: syncing now
  // makes them (and the database file they overlay) durable.
  int rc = disk_->sync_wal();
  if (rc == SQLITE_OK) rc = disk_->sync_db();
  if (rc != SQLITE_OK) return Status::Error(rc, "db '" + name_ + "': sync failed: " + sqlite3_errstr(rc));
  std::lock_guard rl(record_mu_);
  if (gen != wal_gen_) return Status::Ok();  // the WAL started over since: a newer record exists
  if (r.mx_frame < last_record_.mx_frame) return Status::Ok();  // a newer one got here first
  if (Status s = disk_->write_record(r); !s.ok()) return s.with_context("db '" + name_ + "'");
  last_record_ = r;
  return Status::Ok();
}

Result<bool> Database::begin_disk_checkpoint() {
  {
    std::lock_guard lk(mu_);
    if (!disk_) return true;
    if (views_ > 0) return false;  // a snapshot reads the files: fold later
    // Pin a read slot whose mark is the WAL's end now, as a SQLite reader
    // would: SQLite's checkpoint folds no frame past the mark of a slot it
    // cannot lock (a lower mark would stop it there), and the record written
    // next names at least this much. Writers go on meanwhile.
    const uint32_t end = header_locked().mx_frame;
    pinned_slot_ = -1;
    for (int i = 1; i < wal::kNumReaders && pinned_slot_ < 0; i++) {
      const uint32_t mark = shm_.read_mark(i);
      if (mark == end &&
          locks_.shm_lock(kCheckpointOwner, wal::kLockReadFirst + i, 1, SQLITE_SHM_LOCK | SQLITE_SHM_SHARED) ==
              SQLITE_OK) {
        pinned_slot_ = i;
      }
    }
    for (int i = 1; i < wal::kNumReaders && pinned_slot_ < 0; i++) {
      if (locks_.shm_lock(kCheckpointOwner, wal::kLockReadFirst + i, 1, kShmLockExclusive) != SQLITE_OK) continue;
      shm_.set_read_mark(i, end);
      locks_.shm_lock(kCheckpointOwner, wal::kLockReadFirst + i, 1, kShmUnlockExclusive);
      locks_.shm_lock(kCheckpointOwner, wal::kLockReadFirst + i, 1, SQLITE_SHM_LOCK | SQLITE_SHM_SHARED);
      pinned_slot_ = i;
    }
    if (pinned_slot_ < 0) return false;  // every slot busy: fold later
  }
  if (Status s = persist(); !s.ok()) {
    end_disk_checkpoint();
    return s;
  }
  return true;
}

bool Database::writer_active() {
  std::lock_guard lk(mu_);
  return locks_.shm_exclusive_owner(wal::kLockWrite) != nullptr;
}

void Database::end_disk_checkpoint() {
  std::lock_guard lk(mu_);
  if (pinned_slot_ > 0) {
    locks_.shm_lock(kCheckpointOwner, wal::kLockReadFirst + pinned_slot_, 1, SQLITE_SHM_UNLOCK | SQLITE_SHM_SHARED);
    pinned_slot_ = -1;
  }
}

AppliedRecord Database::last_record() {
  std::lock_guard rl(record_mu_);
  return last_record_;
}

}  // namespace sqraft
