// Vfs, disk storage: opening a node's database files at start-up, recording
// their state, and the checkpoint a busy leader's writer runs itself. See
// docs/architecture.md, "Disk storage".
#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>
#include <set>

#include "db_name.h"
#include "vfs.h"

namespace sqraft {

Result<size_t> Vfs::load() {
  if (!on_disk()) return size_t{0};
  const std::string& dir = options_.dir;
  std::error_code ec;
  std::set<std::string> recorded;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/.applied", ec)) {
    const std::string file = e.path().filename().string();
    if (ends_with(file, ".tmp")) {
      std::filesystem::remove(e.path(), ec);  // an interrupted record write
      continue;
    }
    recorded.insert(file);
  }
  if (ec) return Status::IoError("list '" + dir + "/.applied': " + ec.message());
  // Files without a record never held a state anybody relied on.
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    std::string file = e.path().filename().string();
    if (ends_with(file, kShmSuffix)) {
      // The wal-index a SQLite program (the sqlite3 shell) left next to a
      // stopped node's files; the node keeps its own in memory.
      std::filesystem::remove(e.path(), ec);
      continue;
    }
    if (ends_with(file, kWalSuffix)) file.resize(file.size() - std::strlen(kWalSuffix));
    if (!recorded.count(file)) {
      spdlog::info("vfs {}: removing '{}': no record of what it holds", name(), e.path().string());
      std::filesystem::remove(e.path(), ec);
    }
  }
  size_t loaded = 0;
  for (const std::string& file : recorded) {
    Result<std::shared_ptr<Database>> d = load_one(file);
    if (d.ok()) {
      std::lock_guard lk(mu_);
      dbs_[d.value()->name()] = d.value();
      loaded++;
      continue;
    }
    if (d.status().code() == SQLITE_IOERR) return d.status();  // the disk itself fails: do not guess
    spdlog::warn("vfs {}: not using the files of '{}' ({}): the snapshot and the log bring the database back",
                 name(), file, d.status().message());
    if (Status s = DiskStore::remove(dir, file); !s.ok()) return s;
  }
  return loaded;
}

Result<std::shared_ptr<Database>> Vfs::load_one(const std::string& file) {
  const std::optional<std::string> db = DiskStore::db_name(file);
  if (!db || !validate_name(*db).ok()) return Status::Invalid("not the file of a database name");
  Result<std::optional<AppliedRecord>> r = DiskStore::read_record(options_.dir, file);
  if (!r.ok()) return r.status();
  if (!r.value()) return Status::NotFound("its record is gone");
  const AppliedRecord& rec = *r.value();
  Result<std::unique_ptr<DiskStore>> st = DiskStore::open(options_.dir, file, options_.page_size, false);
  if (!st.ok()) return st.status();
  Result<std::shared_ptr<Database>> d = Database::reopen(*db, db_options(), std::move(st).value(), rec);
  if (!d.ok()) return d.status().code() == SQLITE_IOERR ? Status::Corruption(d.status().message()) : d.status();
  spdlog::info("vfs {}: db '{}' holds log index {} ({} pages, {} WAL frames)", name(), *db, rec.index, rec.n_page,
               rec.mx_frame);
  return d;
}

uint64_t Vfs::recovered_index(const std::string& db) {
  std::shared_ptr<Database> d = find(db);
  return d ? d->recovered_index() : 0;
}

void Vfs::fold_if_wanted(const std::string& db_name, sqlite3* conn) {
  if (!on_disk()) return;
  std::shared_ptr<Database> db = find(db_name);
  if (!db || !db->take_fold()) return;
  Result<bool> go = db->begin_disk_checkpoint();
  if (!go.ok()) {
    spdlog::warn("vfs {}: checkpoint of '{}' skipped: {}", name(), db_name, go.status().message());
    return;
  }
  if (!go.value()) {
    db->want_fold();  // a snapshot reads the files: after the next commit
    return;
  }
  int log_frames = 0, done_frames = 0;
  const int rc = sqlite3_wal_checkpoint_v2(conn, "main", SQLITE_CHECKPOINT_PASSIVE, &log_frames, &done_frames);
  db->end_disk_checkpoint();
  if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY) {
    spdlog::warn("vfs {}: checkpoint of '{}': {}", name(), db_name, sqlite3_errmsg(conn));
  }
}

Status Vfs::persist_all() {
  Status first;
  for (const std::string& n : names()) {
    std::shared_ptr<Database> d = find(n);
    if (!d) continue;
    if (Status s = d->persist(); !s.ok() && first.ok()) first = s;
  }
  return first;
}

}  // namespace sqraft
