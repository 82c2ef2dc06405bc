#include "disk_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "byte_order.h"

namespace sqraft {

namespace {

constexpr char kRecordDir[] = ".applied";
constexpr char kRecordMagic[8] = {'S', 'Q', 'R', 'A', 'F', 'T', 'A', 'R'};
constexpr uint32_t kRecordVersion = 1;
constexpr size_t kRecordSize = 64;

int write_error(int err) { return err == ENOSPC || err == EDQUOT ? SQLITE_FULL : SQLITE_IOERR_WRITE; }

// pwrite/pread of all `n` bytes; 0 or an errno.
int write_all(int fd, const uint8_t* p, size_t n, int64_t off) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += w;
    n -= size_t(w);
    off += w;
  }
  return 0;
}

// Reads up to `n` bytes; returns the count read (short at end of file) or -errno.
ssize_t read_upto(int fd, uint8_t* p, size_t n, int64_t off) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, p + done, n - done, off + int64_t(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) break;
    done += size_t(r);
  }
  return ssize_t(done);
}

// Reads [offset, offset + n) of a file whose logical size is `size`;
// past it, zeros and SQLITE_IOERR_SHORT_READ, as SQLite expects.
int read_logical(int fd, int64_t size, uint8_t* out, int n, int64_t offset) {
  const int64_t avail = std::clamp<int64_t>(size - offset, 0, n);
  if (avail > 0) {
    const ssize_t r = read_upto(fd, out, size_t(avail), offset);
    if (r < 0) return SQLITE_IOERR_READ;
    if (r < avail) std::memset(out + r, 0, size_t(avail - r));
  }
  if (avail < n) {
    std::memset(out + avail, 0, size_t(n - avail));
    return SQLITE_IOERR_SHORT_READ;
  }
  return SQLITE_OK;
}

bool safe_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == '-';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string errno_text(int err) { return std::strerror(err); }

Status sync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::IoError("open directory '" + dir + "': " + errno_text(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return Status::IoError("fsync directory '" + dir + "': " + errno_text(err));
  return Status::Ok();
}

}  // namespace

std::string DiskStore::file_name(const std::string& db) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(db.size());
  for (size_t i = 0; i < db.size(); i++) {
    const unsigned char c = static_cast<unsigned char>(db[i]);
    if (safe_char(c) && !(i == 0 && c == '.')) {
      out.push_back(char(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::optional<std::string> DiskStore::db_name(const std::string& file) {
  std::string out;
  for (size_t i = 0; i < file.size(); i++) {
    if (file[i] != '%') {
      if (!safe_char(static_cast<unsigned char>(file[i])) || (i == 0 && file[i] == '.')) return std::nullopt;
      out.push_back(file[i]);
      continue;
    }
    if (i + 2 >= file.size()) return std::nullopt;
    const int hi = hex_value(file[i + 1]), lo = hex_value(file[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(char(hi << 4 | lo));
    i += 2;
  }
  if (file_name(out) != file) return std::nullopt;  // exactly one spelling per name
  return out;
}

DiskStore::DiskStore(std::string dir, std::string file, uint32_t page_size, int db_fd, int wal_fd)
    : dir_(std::move(dir)),
      file_(std::move(file)),
      db_path_(dir_ + "/" + file_),
      page_size_(page_size),
      db_fd_(db_fd),
      wal_fd_(wal_fd) {}

DiskStore::~DiskStore() {
  if (db_fd_ >= 0) ::close(db_fd_);
  if (wal_fd_ >= 0) ::close(wal_fd_);
}

Result<std::unique_ptr<DiskStore>> DiskStore::open(const std::string& dir, const std::string& file,
                                                   uint32_t page_size, bool fresh) {
  const int flags = O_RDWR | O_CREAT | O_CLOEXEC | (fresh ? O_TRUNC : 0);
  const std::string db_path = dir + "/" + file;
  const int db_fd = ::open(db_path.c_str(), flags, 0600);
  if (db_fd < 0) return Status::IoError("open '" + db_path + "': " + errno_text(errno));
  const std::string wal_path = db_path + "-wal";
  const int wal_fd = ::open(wal_path.c_str(), flags, 0600);
  if (wal_fd < 0) {
    const int err = errno;
    ::close(db_fd);
    return Status::IoError("open '" + wal_path + "': " + errno_text(err));
  }
  std::unique_ptr<DiskStore> s(new DiskStore(dir, file, page_size, db_fd, wal_fd));
  struct stat st;
  if (::fstat(db_fd, &st) != 0) return Status::IoError("stat '" + db_path + "': " + errno_text(errno));
  s->db_bytes_ = st.st_size;
  // The WAL is empty until recover_wal() says which frames to keep.
  return s;
}

// ---- database file ---------------------------------------------------------

int DiskStore::db_read(uint8_t* out, int n, int64_t offset) {
  return read_logical(db_fd_, db_bytes_, out, n, offset);
}

int DiskStore::db_write(const uint8_t* in, int n, int64_t offset) {
  if (int err = write_all(db_fd_, in, size_t(n), offset); err != 0) return write_error(err);
  db_bytes_ = std::max<int64_t>(db_bytes_, offset + n);
  return SQLITE_OK;
}

int DiskStore::db_truncate(int64_t size) {
  if (::ftruncate(db_fd_, size) != 0) return SQLITE_IOERR_TRUNCATE;
  db_bytes_ = size;
  return SQLITE_OK;
}

PagePtr DiskStore::db_page(uint32_t pgno) {
  const int64_t off = int64_t(pgno - 1) * page_size_;
  if (pgno == 0 || off >= db_bytes_) return nullptr;
  PagePtr p(new uint8_t[page_size_]);
  if (read_logical(db_fd_, db_bytes_, p.get(), int(page_size_), off) == SQLITE_IOERR_READ) return nullptr;
  return p;
}

int DiskStore::db_replace(const std::vector<PagePtr>& pages) {
  std::vector<uint8_t> zero(page_size_, 0);
  for (size_t i = 0; i < pages.size(); i++) {
    const uint8_t* data = pages[i] ? pages[i].get() : zero.data();
    if (int err = write_all(db_fd_, data, page_size_, int64_t(i) * page_size_); err != 0) return write_error(err);
  }
  const int64_t size = int64_t(pages.size()) * page_size_;
  if (::ftruncate(db_fd_, size) != 0) return SQLITE_IOERR_TRUNCATE;
  db_bytes_ = size;
  return SQLITE_OK;
}

// ---- WAL file --------------------------------------------------------------

int DiskStore::wal_read(uint8_t* out, int n, int64_t offset) {
  return read_logical(wal_fd_, wal_bytes_, out, n, offset);
}

int DiskStore::wal_write(const uint8_t* in, int n, int64_t offset) {
  if (int err = write_all(wal_fd_, in, size_t(n), offset); err != 0) return write_error(err);
  const int64_t end = offset + n;
  // Mirror the header and the frame headers the write touched.
  if (offset < int64_t(wal::kHeaderSize)) {
    const int64_t stop = std::min<int64_t>(end, wal::kHeaderSize);
    std::memcpy(header_ + offset, in, size_t(stop - offset));
  }
  wal_bytes_ = std::max(wal_bytes_, end);
  if (wal_bytes_ > int64_t(wal::kHeaderSize)) {
    const uint64_t frames = (uint64_t(wal_bytes_) - wal::kHeaderSize + frame_size() - 1) / frame_size();
    if (frames > headers_.size()) headers_.resize(frames);
  }
  if (end > int64_t(wal::kHeaderSize)) {
    const uint64_t from = uint64_t(std::max<int64_t>(offset, wal::kHeaderSize)) - wal::kHeaderSize;
    const uint64_t to = uint64_t(end) - wal::kHeaderSize;  // exclusive
    for (uint64_t k = from / frame_size(); k * frame_size() < to; k++) {
      const uint64_t h0 = k * frame_size(), h1 = h0 + wal::kFrameHeaderSize;
      const uint64_t a = std::max(h0, from), b = std::min(h1, to);
      if (a < b) std::memcpy(headers_[k].data() + (a - h0), in + (a + wal::kHeaderSize - uint64_t(offset)), b - a);
    }
  }
  return SQLITE_OK;
}

int DiskStore::wal_truncate(int64_t size) {
  if (::ftruncate(wal_fd_, size) != 0) return SQLITE_IOERR_TRUNCATE;
  wal_bytes_ = size;
  const uint64_t frames =
      size > int64_t(wal::kHeaderSize) ? (uint64_t(size) - wal::kHeaderSize + frame_size() - 1) / frame_size() : 0;
  headers_.resize(frames);
  if (size < int64_t(wal::kHeaderSize)) std::memset(header_, 0, sizeof header_);
  return SQLITE_OK;
}

PagePtr DiskStore::frame_page(uint32_t frame) {
  PagePtr p(new uint8_t[page_size_]);
  const int64_t off = int64_t(wal::kHeaderSize + uint64_t(frame - 1) * frame_size() + wal::kFrameHeaderSize);
  read_logical(wal_fd_, wal_bytes_, p.get(), int(page_size_), off);
  return p;
}

int DiskStore::pread_db_page(uint32_t pgno, uint8_t* out) const {
  const ssize_t r = read_upto(db_fd_, out, page_size_, int64_t(pgno - 1) * page_size_);
  if (r < 0) return SQLITE_IOERR_READ;
  std::memset(out + r, 0, page_size_ - size_t(r));
  return SQLITE_OK;
}

int DiskStore::pread_frame_page(uint32_t frame, uint8_t* out) const {
  const int64_t off = int64_t(wal::kHeaderSize + uint64_t(frame - 1) * frame_size() + wal::kFrameHeaderSize);
  const ssize_t r = read_upto(wal_fd_, out, page_size_, off);
  if (r < 0) return SQLITE_IOERR_READ;
  std::memset(out + r, 0, page_size_ - size_t(r));
  return SQLITE_OK;
}

int DiskStore::wal_start(const uint8_t header[wal::kHeaderSize]) {
  if (int err = write_all(wal_fd_, header, wal::kHeaderSize, 0); err != 0) return write_error(err);
  std::memcpy(header_, header, wal::kHeaderSize);
  headers_.clear();
  wal_bytes_ = wal::kHeaderSize;  // older frames stay in the file, unreachable
  return SQLITE_OK;
}

int DiskStore::wal_append(const uint8_t header[wal::kFrameHeaderSize], const PagePtr& page) {
  const int64_t off = int64_t(wal::kHeaderSize + headers_.size() * frame_size());
  // One write per frame, header and page together, without copying the page.
  struct iovec iov[2] = {{const_cast<uint8_t*>(header), wal::kFrameHeaderSize}, {page.get(), page_size_}};
  const ssize_t w = ::pwritev(wal_fd_, iov, 2, off);
  if (w != ssize_t(frame_size())) {
    // Short or failed: finish (or fail) with plain writes of what is left.
    const size_t done = w < 0 ? 0 : size_t(w);
    if (w < 0 && errno != EINTR) return write_error(errno);
    for (size_t pos = done; pos < frame_size();) {
      const bool in_header = pos < wal::kFrameHeaderSize;
      const uint8_t* p = in_header ? header + pos : page.get() + (pos - wal::kFrameHeaderSize);
      const size_t n = in_header ? wal::kFrameHeaderSize - pos : frame_size() - pos;
      if (int err = write_all(wal_fd_, p, n, off + int64_t(pos)); err != 0) return write_error(err);
      pos += n;
    }
  }
  headers_.emplace_back();
  std::memcpy(headers_.back().data(), header, wal::kFrameHeaderSize);
  wal_bytes_ = off + int64_t(frame_size());
  return SQLITE_OK;
}

int DiskStore::wal_keep(uint32_t frames) {
  if (frames >= headers_.size()) return SQLITE_OK;
  headers_.resize(frames);
  wal_bytes_ = int64_t(wal::kHeaderSize + frames * frame_size());
  return SQLITE_OK;
}

int DiskStore::wal_clear() {
  if (::ftruncate(wal_fd_, 0) != 0) return SQLITE_IOERR_TRUNCATE;
  headers_.clear();
  wal_bytes_ = 0;
  std::memset(header_, 0, sizeof header_);
  return SQLITE_OK;
}

// ---- durability --------------------------------------------------------------

int DiskStore::sync_wal() { return ::fdatasync(wal_fd_) == 0 ? SQLITE_OK : SQLITE_IOERR_FSYNC; }
int DiskStore::sync_db() { return ::fdatasync(db_fd_) == 0 ? SQLITE_OK : SQLITE_IOERR_FSYNC; }

Status DiskStore::write_record(const AppliedRecord& r) {
  uint8_t buf[kRecordSize] = {};
  std::memcpy(buf, kRecordMagic, 8);
  put_le32(buf + 8, kRecordVersion);
  put_le32(buf + 12, r.page_size);
  put_le64(buf + 16, r.index);
  put_le32(buf + 24, r.n_page);
  put_le32(buf + 28, r.mx_frame);
  std::memcpy(buf + 32, r.salt, 8);
  put_le64(buf + 40, r.checksum);
  put_le64(buf + 56, XXH3_64bits(buf, 56));
  const std::string rdir = dir_ + "/" + kRecordDir;
  const std::string path = rdir + "/" + file_;
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Error(write_error(errno), "create '" + tmp + "': " + errno_text(errno));
  int err = write_all(fd, buf, sizeof buf, 0);
  if (err == 0 && ::fdatasync(fd) != 0) err = errno;
  ::close(fd);
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    return Status::Error(write_error(err), "write '" + path + "': " + errno_text(err));
  }
  return sync_dir(rdir);
}

Status DiskStore::drop_record() {
  const std::string rdir = dir_ + "/" + kRecordDir;
  const std::string path = rdir + "/" + file_;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::IoError("remove '" + path + "': " + errno_text(errno));
  }
  return sync_dir(rdir);
}

Result<std::optional<AppliedRecord>> DiskStore::read_record(const std::string& dir, const std::string& file) {
  const std::string path = dir + "/" + kRecordDir + "/" + file;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<AppliedRecord>();
    return Status::IoError("open '" + path + "': " + errno_text(errno));
  }
  uint8_t buf[kRecordSize + 1];
  const ssize_t n = read_upto(fd, buf, sizeof buf, 0);
  ::close(fd);
  if (n != ssize_t(kRecordSize) || std::memcmp(buf, kRecordMagic, 8) != 0 ||
      get_le64(buf + 56) != XXH3_64bits(buf, 56) || get_le32(buf + 8) != kRecordVersion) {
    return Status::Corruption("'" + path + "' is not a valid sqraft applied record");
  }
  AppliedRecord r;
  r.page_size = get_le32(buf + 12);
  r.index = get_le64(buf + 16);
  r.n_page = get_le32(buf + 24);
  r.mx_frame = get_le32(buf + 28);
  std::memcpy(r.salt, buf + 32, 8);
  r.checksum = get_le64(buf + 40);
  return std::optional<AppliedRecord>(r);
}

Status DiskStore::remove(const std::string& dir, const std::string& file) {
  for (const std::string& p : {dir + "/" + kRecordDir + "/" + file, dir + "/" + file, dir + "/" + file + "-wal"}) {
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) return Status::IoError("remove '" + p + "': " + errno_text(errno));
  }
  return sync_dir(dir);
}

Result<wal::Checksum> DiskStore::recover_wal(const AppliedRecord& r) {
  struct stat st;
  if (::fstat(wal_fd_, &st) != 0) return Status::IoError("stat '" + db_path_ + "-wal': " + errno_text(errno));
  headers_.clear();
  if (r.mx_frame == 0) {
    if (wal_clear() != SQLITE_OK) return Status::IoError("truncate '" + db_path_ + "-wal'");
    return wal::Checksum{};
  }
  const std::string what = "'" + db_path_ + "-wal'";
  const uint64_t need = wal::kHeaderSize + uint64_t(r.mx_frame) * frame_size();
  if (uint64_t(st.st_size) < need) {
    return Status::Corruption(what + " has " + std::to_string(st.st_size) + " bytes, the record needs " +
                              std::to_string(need));
  }
  uint8_t hdr[wal::kHeaderSize];
  if (read_upto(wal_fd_, hdr, sizeof hdr, 0) != ssize_t(sizeof hdr)) return Status::IoError("read " + what);
  std::optional<wal::Header> h = wal::decode_header(hdr);
  if (!h || h->page_size != page_size_ || std::memcmp(h->salt.data(), r.salt, 8) != 0) {
    return Status::Corruption(what + " header does not match the applied record");
  }
  std::vector<uint8_t> frame(frame_size());
  wal::Checksum ck = h->cksum;
  for (uint32_t f = 1; f <= r.mx_frame; f++) {
    const int64_t off = int64_t(wal::kHeaderSize + uint64_t(f - 1) * frame_size());
    if (read_upto(wal_fd_, frame.data(), frame.size(), off) != ssize_t(frame.size())) return Status::IoError("read " + what);
    const wal::FrameHeader fh = wal::decode_frame_header(frame.data());
    ck = wal::checksum(h->big_endian(), frame.data(), 8, ck);
    ck = wal::checksum(h->big_endian(), frame.data() + wal::kFrameHeaderSize, page_size_, ck);
    if (std::memcmp(fh.salt.data(), r.salt, 8) != 0 || !(fh.cksum == ck) || fh.pgno == 0) {
      return Status::Corruption(what + " frame " + std::to_string(f) + " fails its checksum");
    }
    if (f == r.mx_frame && fh.db_size != r.n_page) {
      return Status::Corruption(what + " frame " + std::to_string(f) + " is not the commit the record names");
    }
    headers_.emplace_back();
    std::memcpy(headers_.back().data(), frame.data(), wal::kFrameHeaderSize);
  }
  std::memcpy(header_, hdr, sizeof hdr);
  wal_bytes_ = int64_t(need);
  if (::ftruncate(wal_fd_, wal_bytes_) != 0) return Status::IoError("truncate " + what);
  return ck;
}

}  // namespace sqraft
