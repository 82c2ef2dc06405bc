#include "vfs.h"

#include <spdlog/spdlog.h>
#include <strings.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "boundary.h"
#include "db_name.h"
#include "wal_format.h"

namespace sqraft {

namespace {

// Who opens a connection, so that xOpen can mark its files: the
// application (its own sqlite3_open through an alias of the VFS), the node
// (Vfs::open: the gateway's readers and the databases' writers) or the loop
// thread's system connections, which may take the write lock without
// capturing and are the only ones that checkpoint.
enum class Opener : uint8_t { kApp, kNode, kSystem };
thread_local Opener t_opener = Opener::kApp;

// Sets t_opener for one scope (a system connection opens through Vfs::open).
class OpenerScope {
 public:
  explicit OpenerScope(Opener o) : saved_(t_opener) {
    if (saved_ != Opener::kSystem) t_opener = o;
  }
  ~OpenerScope() { t_opener = saved_; }
  OpenerScope(const OpenerScope&) = delete;
  OpenerScope& operator=(const OpenerScope&) = delete;

 private:
  Opener saved_;
};

// How long a connection waits for the cluster (PRAGMA sqraft_timeout).
constexpr uint32_t kDefaultTimeoutMs = 5000;
constexpr uint32_t kMaxTimeoutMs = 600000;

constexpr int kDeviceCharacteristics =
    SQLITE_IOCAP_POWERSAFE_OVERWRITE | SQLITE_IOCAP_SAFE_APPEND | SQLITE_IOCAP_SEQUENTIAL;
}  // namespace

// A file opened through sqraft's VFS (main database or WAL). Temporary files
// are opened by the default VFS directly into SQLite's buffer instead.
struct SqraftFile {
  sqlite3_file base;  // must come first
  Vfs* vfs;
  std::shared_ptr<Database> db;
  bool is_wal;
  Opener opener;
  // Set by PRAGMA sqraft_read / sqraft_timeout (main database file only).
  bool linearizable = false;
  bool read_confirmed = false;  // the barrier of the read starting now is done
  uint32_t timeout_ms = kDefaultTimeoutMs;
  bool system() const { return opener == Opener::kSystem; }
};

struct VfsGlue {
  static Vfs* of(sqlite3_vfs* v) { return static_cast<Vfs*>(v->pAppData); }
  static SqraftFile* of(sqlite3_file* f) { return reinterpret_cast<SqraftFile*>(f); }

  static void after_shm_event(SqraftFile* f, const Database::ShmLockResult& r) {
    ReplicationHooks* hooks = f->vfs->hooks_;
    if (!hooks) return;
    if (r.undo_txn != 0) hooks->undo(f->db->name(), r.undo_txn);
    if (r.wake_loop) hooks->wake();
  }

  // ---- io methods shared by main and WAL files ----
  static int close(sqlite3_file* file) {
    SqraftFile* f = of(file);
    if (!f->is_wal) at_c_boundary("vfs xClose", [&] { after_shm_event(f, f->db->close_connection(file)); });
    f->~SqraftFile();
    return SQLITE_OK;
  }
  static int sync(sqlite3_file*, int) { return SQLITE_OK; }
  static int sector_size(sqlite3_file*) { return 4096; }
  static int device_characteristics(sqlite3_file*) { return kDeviceCharacteristics; }

  // ---- main database file ----
  static int db_read(sqlite3_file* file, void* buf, int n, sqlite3_int64 off) {
    return of(file)->db->db_read(buf, n, off);
  }
  static int db_write(sqlite3_file* file, const void* buf, int n, sqlite3_int64 off) {
    int rc = SQLITE_NOMEM;
    at_c_boundary("vfs xWrite", [&] { rc = of(file)->db->db_write(buf, n, off); });
    return rc;
  }
  static int db_truncate(sqlite3_file* file, sqlite3_int64 size) { return of(file)->db->db_truncate(size); }
  static int db_file_size(sqlite3_file* file, sqlite3_int64* size) {
    *size = of(file)->db->db_size();
    return SQLITE_OK;
  }
  static int db_lock(sqlite3_file* file, int level) { return of(file)->db->file_lock(file, level); }
  static int db_unlock(sqlite3_file* file, int level) { return of(file)->db->file_unlock(file, level); }
  static int db_check_reserved(sqlite3_file* file, int* out) {
    *out = of(file)->db->file_reserved() ? 1 : 0;
    return SQLITE_OK;
  }
  static int pragma_error(char** args, const std::string& message) {
    args[0] = sqlite3_mprintf("%s", message.c_str());
    return SQLITE_ERROR;
  }
  static int db_file_control(sqlite3_file* file, int op, void* arg) {
    if (op != SQLITE_FCNTL_PRAGMA) return SQLITE_NOTFOUND;
    int rc = SQLITE_NOMEM;
    at_c_boundary("vfs xFileControl", [&] { rc = pragma_control(of(file), static_cast<char**>(arg)); });
    return rc;
  }
  static int pragma_result(char** args, const std::string& value) {
    args[0] = sqlite3_mprintf("%s", value.c_str());
    return args[0] ? SQLITE_OK : SQLITE_NOMEM;
  }
  static bool parse_u64(const char* text, uint64_t* out) {
    if (text == nullptr || *text < '0' || *text > '9') return false;
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0') return false;
    *out = v;
    return true;
  }
  // PRAGMA sqraft_*: what the application asks of the cluster. Blocking
  // ones (sqraft_wait_index, sqraft_read) belong to the application's own
  // connections; remote clients' connections get the read-only ones.
  static int sqraft_pragma(SqraftFile* f, const char* name, const char* value, char** args) {
    ReplicationHooks* hooks = f->vfs->hooks_;
    const bool app = f->opener == Opener::kApp;
    if (strcasecmp(name, "sqraft_leader") == 0) {
      if (value) return pragma_error(args, "sqraft_leader is read-only");
      return pragma_result(args, hooks ? hooks->leader_address() : "");
    }
    if (strcasecmp(name, "sqraft_applied_index") == 0) {
      if (value) return pragma_error(args, "sqraft_applied_index is read-only");
      return pragma_result(args, std::to_string(hooks ? hooks->applied_index() : 0));
    }
    if (!app) return pragma_error(args, std::string("PRAGMA ") + name + " is only for the application's own connections");
    if (strcasecmp(name, "sqraft_timeout") == 0) {
      if (value) {
        uint64_t ms = 0;
        if (!parse_u64(value, &ms) || ms > kMaxTimeoutMs) {
          return pragma_error(args, "sqraft_timeout takes milliseconds, 0 to " + std::to_string(kMaxTimeoutMs));
        }
        f->timeout_ms = uint32_t(ms);
      }
      return pragma_result(args, std::to_string(f->timeout_ms));
    }
    if (strcasecmp(name, "sqraft_read") == 0) {
      if (value) {
        if (strcasecmp(value, "linearizable") == 0) {
          f->linearizable = true;
        } else if (strcasecmp(value, "local") == 0) {
          f->linearizable = false;
        } else {
          return pragma_error(args, "sqraft_read is 'local' or 'linearizable'");
        }
        f->read_confirmed = false;
      }
      return pragma_result(args, f->linearizable ? "linearizable" : "local");
    }
    if (strcasecmp(name, "sqraft_wait_index") == 0) {
      uint64_t index = 0;
      if (!parse_u64(value, &index)) return pragma_error(args, "sqraft_wait_index takes a log index (PRAGMA sqraft_wait_index = N)");
      if (hooks == nullptr) return pragma_result(args, "0");
      const Status s = hooks->wait_applied(index, std::chrono::milliseconds(f->timeout_ms));
      if (!s.ok()) {
        args[0] = sqlite3_mprintf("sqraft_wait_index: %s", s.message().c_str());
        return s.is_busy() ? SQLITE_BUSY : SQLITE_ERROR;
      }
      return pragma_result(args, std::to_string(hooks->applied_index()));
    }
    return pragma_error(args, std::string("unknown sqraft pragma '") + name + "'");
  }
  static int pragma_control(SqraftFile* f, char** args) {
    const char* name = args[1];
    const char* value = args[2];
    if (strncasecmp(name, "sqraft_", 7) == 0) return sqraft_pragma(f, name, value, args);
    if (value == nullptr) return SQLITE_NOTFOUND;
    if (strcasecmp(name, "journal_mode") == 0 && strcasecmp(value, "wal") != 0) {
      return pragma_error(args, "sqraft databases always use journal_mode=WAL");
    }
    if (strcasecmp(name, "locking_mode") == 0 && strcasecmp(value, "exclusive") == 0) {
      return pragma_error(args, "sqraft databases do not support locking_mode=EXCLUSIVE");
    }
    if (strcasecmp(name, "page_size") == 0 && std::strtoul(value, nullptr, 10) != f->db->page_size()) {
      return pragma_error(args, "the page size of sqraft databases is fixed at " +
                                    std::to_string(f->db->page_size()));
    }
    return SQLITE_NOTFOUND;
  }
  static int shm_map(sqlite3_file* file, int region, int size, int extend, void volatile** pp) {
    int rc = SQLITE_NOMEM;
    at_c_boundary("vfs xShmMap", [&] { rc = of(file)->db->shm_map(region, size, extend != 0, pp); });
    return rc;
  }
  static int shm_lock(sqlite3_file* file, int offset, int n, int flags) {
    SqraftFile* f = of(file);
    ReplicationHooks* hooks = f->vfs->hooks_;
    const bool exclusive = (flags & SQLITE_SHM_LOCK) && (flags & SQLITE_SHM_EXCLUSIVE);
    const bool wants_write = offset == 0 && exclusive;
    const bool allowed = !wants_write || hooks == nullptr || f->system() || hooks->writes_allowed();
    if (hooks != nullptr && f->linearizable && (flags & SQLITE_SHM_LOCK) && (flags & SQLITE_SHM_SHARED) &&
        offset >= wal::kLockReadFirst && n == 1) {
      // A read transaction starts (SQLite takes a read-mark slot after it
      // read the wal-index header). The first attempt waits for a read
      // barrier and answers BUSY, which makes SQLite read the header again:
      // now it covers every transaction committed before the barrier.
      if (!f->read_confirmed) {
        Status s = Status::Internal("read barrier not run");
        at_c_boundary("vfs read barrier", [&] { s = hooks->read_barrier(std::chrono::milliseconds(f->timeout_ms)); });
        if (!s.ok()) {
          spdlog::debug("db '{}': linearizable read refused: {}", f->db->name(), s.message());
          // Not (or no longer) the leader: say so; a barrier that did not
          // come back in time: as a lock that was not granted in time.
          return s.is_not_leader() || s.is_leadership_lost() ? kErrNotLeader : SQLITE_BUSY_TIMEOUT;
        }
        f->read_confirmed = true;
        return SQLITE_BUSY;
      }
      f->read_confirmed = false;
    }
    if (hooks != nullptr && f->opener == Opener::kApp) {
      // The application's own connections: their checkpoints would fold the
      // WAL where the others do not (the replicated Checkpoint does that), so
      // the checkpoint lock alone is always busy for them (an automatic
      // checkpoint then does nothing; wal-index recovery takes it together
      // with the next lock, and goes on); a refused write says so in
      // SQLite's terms.
      if (exclusive && offset == wal::kLockCheckpoint && n == 1) return SQLITE_BUSY;
      if (wants_write && !allowed) {
        // BUSY while no leader is known, and on a new leader still applying
        // what earlier leaders committed: the busy handler waits both out.
        bool busy = true;
        at_c_boundary("vfs xShmLock", [&] { busy = hooks->leader_address().empty() || hooks->leading(); });
        return busy ? SQLITE_BUSY : kErrReadonlyNotLeader;
      }
    }
    Database::ShmLockResult r = f->db->shm_lock(file, f->system(), offset, n, flags, allowed);
    // An Undo proposal or a wake-up of the loop allocates.
    at_c_boundary("vfs xShmLock", [&] { after_shm_event(f, r); });
    return r.rc;
  }
  static void shm_barrier(sqlite3_file*) { Shm::barrier(); }
  static int shm_unmap(sqlite3_file*, int) {
    return SQLITE_OK;  // the wal-index lives as long as the database
  }

  // ---- WAL file ----
  static int wal_read(sqlite3_file* file, void* buf, int n, sqlite3_int64 off) {
    return of(file)->db->wal_read(buf, n, off);
  }
  static int wal_write(sqlite3_file* file, const void* buf, int n, sqlite3_int64 off) {
    SqraftFile* f = of(file);
    Database::WalWrite w;
    w.rc = SQLITE_NOMEM;
    at_c_boundary("vfs WAL xWrite", [&] { w = f->db->wal_write(buf, n, off); });
    if (w.rc != SQLITE_OK || !w.batch) return w.rc;
    // The frames must be applied before SQLite may go on (and, for a commit,
    // publish them). This blocks the writer's thread, never the loop.
    Status s = Status::Error(SQLITE_IOERR_WRITE, "replication failed: internal error (see the node's log)");
    at_c_boundary("vfs replicate", [&] { s = f->vfs->hooks_->replicate(*w.batch); });
    if (!s.ok()) {
      spdlog::debug("db '{}': replicating txn {:x} failed: {}", f->db->name(), w.batch->txn_id,
                    s.message());
      // Never plain BUSY here: SQLite would keep the transaction open for a
      // retry of a commit that is already decided (or unknown).
      if (s.is_busy()) s = Status::Error(SQLITE_IOERR_WRITE, s.message());
    }
    return f->db->on_replicated(*w.batch, s);
  }
  static int wal_truncate(sqlite3_file* file, sqlite3_int64 size) { return of(file)->db->wal_truncate(size); }
  static int wal_file_size(sqlite3_file* file, sqlite3_int64* size) {
    *size = of(file)->db->wal_size();
    return SQLITE_OK;
  }
  static int no_lock(sqlite3_file*, int) { return SQLITE_OK; }
  static int no_reserved(sqlite3_file*, int* out) {
    *out = 0;
    return SQLITE_OK;
  }
  static int no_file_control(sqlite3_file*, int, void*) { return SQLITE_NOTFOUND; }

  static constexpr sqlite3_io_methods kDbMethods = {
      2,         close,     db_read,          db_write,      db_truncate,
      sync,      db_file_size, db_lock,       db_unlock,     db_check_reserved,
      db_file_control, sector_size, device_characteristics, shm_map, shm_lock,
      shm_barrier, shm_unmap, nullptr, nullptr};
  static constexpr sqlite3_io_methods kWalMethods = {
      1,    close,         wal_read,    wal_write,      wal_truncate,
      sync, wal_file_size, no_lock,     no_lock,        no_reserved,
      no_file_control, sector_size, device_characteristics, nullptr, nullptr,
      nullptr, nullptr, nullptr, nullptr};

  // ---- VFS methods ----
  static int open(sqlite3_vfs* v, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
    file->pMethods = nullptr;
    int rc = SQLITE_CANTOPEN;
    at_c_boundary("vfs xOpen", [&] { rc = open_file(v, name, file, flags, out_flags); });
    return rc;
  }
  static int open_file(sqlite3_vfs* v, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
    Vfs* self = of(v);
    const bool main_db = flags & SQLITE_OPEN_MAIN_DB;
    const bool wal = flags & SQLITE_OPEN_WAL;
    if (!main_db && !wal) {
      if (flags & (SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_SUPER_JOURNAL)) {
        spdlog::error("vfs {}: refusing rollback journal '{}': databases are WAL only", self->name(),
                      name ? name : "");
        return SQLITE_CANTOPEN;
      }
      return self->base_->xOpen(self->base_, name, file, flags, out_flags);  // temporary file
    }
    if (name == nullptr) return SQLITE_CANTOPEN;
    std::string db_name(name);
    if (wal) {
      if (!ends_with(db_name, kWalSuffix)) return SQLITE_CANTOPEN;
      db_name.resize(db_name.size() - std::strlen(kWalSuffix));
    }
    std::shared_ptr<Database> db = self->find(db_name);
    if (!db && main_db && (flags & SQLITE_OPEN_CREATE)) {
      if (!validate_ok(db_name)) return SQLITE_CANTOPEN;
      if (self->hooks_ == nullptr) {
        db = self->create_local(db_name, Database::initial_page1(self->options_.page_size));
      } else {
        Status s = self->hooks_->create_database(db_name, Database::initial_page1(self->options_.page_size));
        if (!s.ok()) {
          spdlog::info("vfs {}: cannot create db '{}': {}", self->name(), db_name, s.message());
          return s.is_not_leader() || s.is_leadership_lost() ? s.code() : SQLITE_CANTOPEN;
        }
        db = self->find(db_name);
      }
    }
    if (!db) return SQLITE_CANTOPEN;
    auto* f = new (file) SqraftFile{{}, self, std::move(db), wal, t_opener};
    f->base.pMethods = wal ? &kWalMethods : &kDbMethods;
    if (out_flags) *out_flags = flags;
    return SQLITE_OK;
  }
  static bool validate_ok(const std::string& db_name) { return Vfs::validate_name(db_name).ok(); }

  // Classifies a path: one of ours (a database, its WAL or journal) or not.
  static bool ours(Vfs* self, const std::string& path, bool* exists) {
    if (!path.empty() && path[0] == '/') return false;  // a real file (temporary files)
    std::string db = path;
    if (ends_with(path, kWalSuffix)) {
      db.resize(path.size() - std::strlen(kWalSuffix));
    } else if (ends_with(path, kJournalSuffix)) {
      db.resize(path.size() - std::strlen(kJournalSuffix));
      bool known = self->find(db) != nullptr;
      *exists = false;  // never a rollback journal
      return known;
    }
    auto found = self->find(db);
    *exists = found != nullptr && (db == path || found->wal_size() > 0);
    return found != nullptr || db == path;
  }
  static int remove(sqlite3_vfs* v, const char* name, int sync_dir) {
    Vfs* self = of(v);
    bool exists = false;
    if (ours(self, name, &exists)) return SQLITE_OK;  // the node owns its files
    return self->base_->xDelete(self->base_, name, sync_dir);
  }
  static int access(sqlite3_vfs* v, const char* name, int flags, int* out) {
    Vfs* self = of(v);
    bool exists = false;
    if (ours(self, name, &exists)) {
      *out = exists ? 1 : 0;
      return SQLITE_OK;
    }
    return self->base_->xAccess(self->base_, name, flags, out);
  }
  static int full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
    if (int(std::strlen(name)) + 1 > n) return SQLITE_CANTOPEN;
    std::strcpy(out, name);
    return SQLITE_OK;
  }
  static void* dl_open(sqlite3_vfs* v, const char* path) { return of(v)->base_->xDlOpen(of(v)->base_, path); }
  static void dl_error(sqlite3_vfs* v, int n, char* msg) { of(v)->base_->xDlError(of(v)->base_, n, msg); }
  static void (*dl_sym(sqlite3_vfs* v, void* h, const char* sym))(void) {
    return of(v)->base_->xDlSym(of(v)->base_, h, sym);
  }
  static void dl_close(sqlite3_vfs* v, void* h) { of(v)->base_->xDlClose(of(v)->base_, h); }
  static int randomness(sqlite3_vfs* v, int n, char* out) { return of(v)->base_->xRandomness(of(v)->base_, n, out); }
  static int sleep(sqlite3_vfs* v, int us) { return of(v)->base_->xSleep(of(v)->base_, us); }
  static int current_time(sqlite3_vfs* v, double* out) { return of(v)->base_->xCurrentTime(of(v)->base_, out); }
  static int last_error(sqlite3_vfs* v, int n, char* out) {
    return of(v)->base_->xGetLastError ? of(v)->base_->xGetLastError(of(v)->base_, n, out) : 0;
  }
  static int current_time_int64(sqlite3_vfs* v, sqlite3_int64* out) {
    return of(v)->base_->xCurrentTimeInt64(of(v)->base_, out);
  }
};

Vfs::Vfs(Options options, ReplicationHooks* hooks) : options_(std::move(options)), hooks_(hooks) {}

Result<std::unique_ptr<Vfs>> Vfs::create(Options options, ReplicationHooks* hooks) {
  if (options.name.empty()) return Status::Invalid("vfs name must not be empty");
  if (!wal::valid_page_size(options.page_size)) {
    return Status::Invalid("page size " + std::to_string(options.page_size) +
                           " is not a power of two between 512 and 65536");
  }
  if (sqlite3_vfs_find(options.name.c_str()) != nullptr) {
    return Status::Invalid("a VFS named '" + options.name + "' is already registered");
  }
  if (!options.dir.empty()) {
    for (const std::string& d : {options.dir, options.dir + "/.applied"}) {
      if (::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) {
        return Status::IoError("cannot create '" + d + "': " + std::strerror(errno));
      }
    }
  }
  std::unique_ptr<Vfs> self(new Vfs(std::move(options), hooks));
  self->base_ = sqlite3_vfs_find(nullptr);
  if (self->base_ == nullptr) return Status::Internal("SQLite has no default VFS");
  sqlite3_vfs& v = self->vfs_;
  v.iVersion = 2;
  v.szOsFile = int(std::max<size_t>(sizeof(SqraftFile), size_t(self->base_->szOsFile)));
  v.mxPathname = std::max(512, self->base_->mxPathname);
  v.zName = self->options_.name.c_str();
  v.pAppData = self.get();
  v.xOpen = VfsGlue::open;
  v.xDelete = VfsGlue::remove;
  v.xAccess = VfsGlue::access;
  v.xFullPathname = VfsGlue::full_pathname;
  v.xDlOpen = VfsGlue::dl_open;
  v.xDlError = VfsGlue::dl_error;
  v.xDlSym = VfsGlue::dl_sym;
  v.xDlClose = VfsGlue::dl_close;
  v.xRandomness = VfsGlue::randomness;
  v.xSleep = VfsGlue::sleep;
  v.xCurrentTime = VfsGlue::current_time;
  v.xGetLastError = VfsGlue::last_error;
  v.xCurrentTimeInt64 = VfsGlue::current_time_int64;
  int rc = sqlite3_vfs_register(&v, 0);
  if (rc != SQLITE_OK) return Status::Error(rc, "cannot register VFS '" + self->options_.name + "'");
  return self;
}

Vfs::~Vfs() {
  for (auto& [name, conn] : system_conns_) sqlite3_close_v2(conn);
  system_conns_.clear();
  for (auto& a : aliases_) sqlite3_vfs_unregister(&a->vfs);
  sqlite3_vfs_unregister(&vfs_);
}

Status Vfs::register_alias(const std::string& name) {
  if (name.empty()) return Status::Invalid("a VFS name must not be empty");
  std::lock_guard lk(mu_);
  if (sqlite3_vfs_find(name.c_str()) != nullptr) {
    return Status::Error(SQLITE_ERROR, "SQLite already has a VFS named '" + name + "'");
  }
  auto a = std::make_unique<Alias>();
  a->name = name;
  a->vfs = vfs_;
  a->vfs.zName = a->name.c_str();
  a->vfs.pNext = nullptr;
  if (int rc = sqlite3_vfs_register(&a->vfs, 0); rc != SQLITE_OK) {
    return Status::Error(rc, "cannot register VFS '" + name + "'");
  }
  aliases_.push_back(std::move(a));
  return Status::Ok();
}

Status Vfs::validate_name(const std::string& db) { return validate_db_name(db); }

std::shared_ptr<Database> Vfs::find(const std::string& db) {
  std::lock_guard lk(mu_);
  auto it = dbs_.find(db);
  return it == dbs_.end() ? nullptr : it->second;
}

bool Vfs::exists(const std::string& db) { return find(db) != nullptr; }

std::optional<DbImage> Vfs::capture(const std::string& db) {
  std::shared_ptr<Database> d = find(db);
  if (!d) return std::nullopt;
  DbImage img = d->capture(true);  // disk mode: read on this thread, not under the database's mutex
  if (Status s = load_image(img); !s.ok()) {
    spdlog::error("vfs {}: {}", name(), s.message());
    return std::nullopt;
  }
  return img;
}

size_t Vfs::wal_frames(const std::string& db) {
  std::shared_ptr<Database> d = find(db);
  return d ? d->wal_frames() : 0;
}

std::vector<std::pair<std::string, uint64_t>> Vfs::pending_txns() {
  std::vector<std::pair<std::string, uint64_t>> out;
  for (const std::string& name : names()) {
    std::shared_ptr<Database> d = find(name);
    if (d && d->pending_txn() != 0) out.emplace_back(name, d->pending_txn());
  }
  return out;
}

size_t Vfs::count() {
  std::lock_guard lk(mu_);
  return dbs_.size();
}

std::vector<std::string> Vfs::names() {
  std::lock_guard lk(mu_);
  std::vector<std::string> out;
  for (auto& [name, db] : dbs_) out.push_back(name);
  return out;
}

Database::Options Vfs::db_options() const {
  Database::Options o;
  o.page_size = options_.page_size;
  o.spill_threshold_bytes = options_.spill_threshold_bytes;
  o.replicated = hooks_ != nullptr;
  return o;
}

std::shared_ptr<Database> Vfs::create_local(const std::string& db, const PagePtr& page1, uint64_t index) {
  std::lock_guard lk(mu_);
  auto it = dbs_.find(db);
  if (it != dbs_.end()) return it->second;
  std::unique_ptr<DiskStore> store;
  if (on_disk()) {
    Result<std::unique_ptr<DiskStore>> s = DiskStore::open(options_.dir, DiskStore::file_name(db), options_.page_size, true);
    if (!s.ok()) {
      spdlog::error("vfs {}: cannot create db '{}': {}", name(), db, s.status().message());
      return nullptr;
    }
    store = std::move(s).value();
  }
  auto created = std::make_shared<Database>(db, page1, db_options(), std::move(store), index);
  dbs_[db] = created;
  return created;
}

Result<sqlite3*> Vfs::open(const std::string& db, bool create) {
  if (Status s = validate_name(db); !s.ok()) return s;
  OpenerScope scope(Opener::kNode);
  sqlite3* conn = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(db.c_str(), &conn, flags, options_.name.c_str());
  if (rc != SQLITE_OK) {
    const int code = conn ? sqlite3_extended_errcode(conn) : rc;
    std::string msg = conn ? sqlite3_errmsg(conn) : sqlite3_errstr(rc);
    sqlite3_close_v2(conn);
    if (code == kErrNotLeader) return Status::NotLeader();
    if (code == kErrLeadershipLost) return Status::LeadershipLost();
    return Status::Error(code, "open db '" + db + "': " + msg);
  }
  sqlite3_extended_result_codes(conn, 1);
  const char* setup =
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA wal_autocheckpoint=0;";
  char* err = nullptr;
  rc = sqlite3_exec(conn, setup, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    sqlite3_close_v2(conn);
    return Status::Error(rc, "configure db '" + db + "': " + msg);
  }
  return conn;
}

Status Vfs::apply_open(const std::string& db, const PagePtr& page1, uint64_t index) {
  if (Status s = validate_name(db); !s.ok()) return s;
  const uint32_t size_field = (uint32_t(page1[16]) << 8) | page1[17];
  const uint32_t page_size = size_field == 1 ? 65536 : size_field;
  if (page_size != options_.page_size) {
    return Status::Invalid("open db '" + db + "': page size " + std::to_string(page_size) +
                           " differs from the node's " + std::to_string(options_.page_size));
  }
  if (!create_local(db, page1, index)) return Status::IoError("open db '" + db + "': cannot create its files");
  return Status::Ok();
}

Status Vfs::apply_frames(FramesBatch batch, bool own, uint64_t index) {
  std::shared_ptr<Database> db = find(batch.db);
  if (!db) return Status::NotFound("frames for unknown database '" + batch.db + "'");
  std::string name = batch.db;
  return db->apply_frames(std::move(batch), own, index).with_context("apply frames: db '" + name + "'");
}

Status Vfs::apply_undo(const std::string& db_name, uint64_t txn_id, uint64_t index) {
  std::shared_ptr<Database> db = find(db_name);
  if (!db) return Status::NotFound("undo for unknown database '" + db_name + "'");
  db->apply_undo(txn_id);
  db->note_applied(index);
  return Status::Ok();
}

sqlite3* Vfs::system_connection(const std::string& db) {
  auto it = system_conns_.find(db);
  if (it != system_conns_.end()) return it->second;
  OpenerScope scope(Opener::kSystem);
  Result<sqlite3*> conn = open(db, false);
  if (!conn.ok()) {
    spdlog::error("vfs {}: {}", name(), conn.status().message());
    return nullptr;
  }
  system_conns_[db] = *conn;
  return *conn;
}

Status Vfs::apply_checkpoint(const std::string& db_name, uint64_t index) {
  std::shared_ptr<Database> db = find(db_name);
  if (!db) return Status::NotFound("checkpoint of unknown database '" + db_name + "'");
  // Whatever the fold below does, the logical state after this entry is
  // the one before it.
  db->note_applied(index);
  db->wait_publish();
  sqlite3* conn = system_connection(db_name);
  if (conn == nullptr) return Status::Internal("checkpoint: no connection to '" + db_name + "'");
  // Where local transactions may write (the leader), never take the write
  // lock: a PASSIVE checkpoint folds the WAL and the next writer restarts it.
  // Elsewhere TRUNCATE also resets the WAL right away. Disk mode bounds a
  // PASSIVE checkpoint with a read slot (begin_disk_checkpoint); the next
  // commit restarts the WAL.
  const bool local_writers = hooks_ == nullptr || hooks_->writes_allowed();
  int mode = local_writers ? SQLITE_CHECKPOINT_PASSIVE : SQLITE_CHECKPOINT_TRUNCATE;
  if (db->on_disk() && local_writers && db->writer_active()) {
    db->want_fold();  // the writer folds after its commit (fold_if_wanted)
    return Status::Ok();
  }
  if (db->on_disk()) {
    Result<bool> go = db->begin_disk_checkpoint();
    if (!go.ok()) {
      spdlog::warn("vfs {}: checkpoint of '{}' skipped: {}", name(), db_name, go.status().message());
      return Status::Ok();  // the WAL keeps the frames; the logical state is the same
    }
    if (!go.value()) return Status::Ok();  // a writer is busy: the next checkpoint folds more
    mode = SQLITE_CHECKPOINT_PASSIVE;
  }
  int log_frames = 0, done_frames = 0;
  int rc = sqlite3_wal_checkpoint_v2(conn, "main", mode, &log_frames, &done_frames);
  if (db->on_disk()) db->end_disk_checkpoint();
  if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY) {
    return Status::Error(rc, "checkpoint db '" + db_name + "': " + sqlite3_errmsg(conn));
  }
  // BUSY: local readers or a writer kept part of the WAL; the logical state is
  // the same either way.
  return Status::Ok();
}

void Vfs::drain() {
  std::vector<std::shared_ptr<Database>> all;
  {
    std::lock_guard lk(mu_);
    for (auto& [name, db] : dbs_) all.push_back(db);
  }
  for (auto& db : all) db->drain_deferred();
}

std::vector<DbImage> Vfs::capture() {
  std::vector<std::shared_ptr<Database>> all;
  {
    std::lock_guard lk(mu_);
    for (auto& [name, db] : dbs_) all.push_back(db);
  }
  std::vector<DbImage> images;
  images.reserve(all.size());
  for (auto& db : all) images.push_back(db->capture(true));
  return images;
}

Status Vfs::restore(const std::vector<DbImage>& images, uint64_t index) {
  // Verify everything before touching anything.
  for (const DbImage& img : images) {
    if (Status s = validate_name(img.name); !s.ok()) return s.with_context("restore");
    if (img.page_size != options_.page_size) {
      return Status::Invalid("restore: db '" + img.name + "' has page size " +
                             std::to_string(img.page_size) + ", node uses " +
                             std::to_string(options_.page_size));
    }
    if (img.n_page == 0) return Status::Corruption("restore: db '" + img.name + "' has no pages");
    if (!img.wal.empty() && img.wal.back().db_size == 0) {
      return Status::Corruption("restore: WAL of db '" + img.name + "' does not end with a commit");
    }
    const std::vector<PagePtr> pages = Database::logical_pages(img);
    StateHash h(img.page_size);
    h.rebuild(uint32_t(pages.size()), [&](uint32_t p) { return pages[p - 1].get(); });
    if (h.value() != img.checksum) {
      return Status::Corruption("restore: content of db '" + img.name + "' does not match its checksum");
    }
  }
  for (const DbImage& img : images) {
    std::shared_ptr<Database> db = find(img.name);
    if (db && index > 0 && db->recovered_index() >= index &&
        (db->recovered_index() > index || db->state_checksum() == img.checksum)) {
      // Disk mode at start-up: the files already hold this state or a later
      // one, checked against their record when they were loaded.
      spdlog::info("vfs {}: restore: db '{}' already holds log index {} (snapshot {}): kept", name(), img.name,
                   db->recovered_index(), index);
      continue;
    }
    if (!db) {
      db = create_local(img.name, img.pages.empty() ? Database::initial_page1(img.page_size) : img.pages[0]);
      if (!db) return Status::IoError("restore: cannot create the files of db '" + img.name + "'");
    }
    DbImage at = img;
    at.applied_index = index;
    if (Status s = db->install(at); !s.ok()) return s.with_context("restore");
    if (Status s = db->persist(); !s.ok()) return s.with_context("restore");
  }
  // Databases the snapshot does not know about did not exist at its index.
  std::lock_guard lk(mu_);
  for (auto it = dbs_.begin(); it != dbs_.end();) {
    bool wanted = std::any_of(images.begin(), images.end(), [&](const DbImage& i) { return i.name == it->first; });
    // Disk mode at start-up: created after the snapshot, by entries the files hold.
    wanted = wanted || (index > 0 && it->second->recovered_index() > index);
    if (!wanted && it->second.use_count() == 1 && !system_conns_.count(it->first)) {
      if (on_disk()) {
        if (Status st = DiskStore::remove(options_.dir, DiskStore::file_name(it->first)); !st.ok()) {
          spdlog::warn("vfs {}: {}", name(), st.message());
        }
      }
      it = dbs_.erase(it);
    } else {
      if (!wanted) spdlog::warn("vfs {}: db '{}' is not in the snapshot but still open", name(), it->first);
      ++it;
    }
  }
  return Status::Ok();
}

}  // namespace sqraft
