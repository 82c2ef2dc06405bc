#include "dir_lock.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <map>

namespace sqraft {

namespace {

constexpr const char* kLockFile = ".sqraft-lock";

std::mutex g_mu;
// Directory -> the pid that locked it (a forked child inherits this map
// but not the locks: for it, the record lock tells).
std::map<std::string, pid_t>& held() {
  static std::map<std::string, pid_t> dirs;
  return dirs;
}

Status in_use(const std::string& dir, const std::string& by) {
  return Status::IoError("data directory '" + dir + "' is in use by another node (" + by +
                      "): each node needs a directory of its own");
}

}  // namespace

Result<std::unique_ptr<DirLock>> DirLock::acquire(const std::string& dir) {
  std::error_code ec;
  const std::string key = std::filesystem::canonical(dir, ec).string();
  if (ec) return Status::IoError("data directory '" + dir + "': " + ec.message());
  std::lock_guard lk(g_mu);
  if (auto it = held().find(key); it != held().end() && it->second == ::getpid()) return in_use(dir, "this process");
  const std::string path = key + "/" + kLockFile;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError("cannot create '" + path + "': " + std::strerror(errno));
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (::fcntl(fd, F_SETLK, &fl) != 0) {
    const int err = errno;
    struct flock probe {};
    probe.l_type = F_WRLCK;
    probe.l_whence = SEEK_SET;
    const bool known = ::fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK;
    ::close(fd);
    if (err == EACCES || err == EAGAIN) {
      return in_use(dir, known ? "process " + std::to_string(probe.l_pid) : "another process");
    }
    return Status::IoError("cannot lock '" + path + "': " + std::strerror(err));
  }
  // The holder's pid, for people looking at the directory.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
    // Not needed for the lock itself; a full disk must not stop the node here.
  }
  held()[key] = ::getpid();
  return std::unique_ptr<DirLock>(new DirLock(fd, key));
}

DirLock::~DirLock() {
  std::lock_guard lk(g_mu);
  held().erase(key_);
  ::close(fd_);  // releases the record lock
}

}  // namespace sqraft
