// DirLock: at most one node per data directory.
//
// A node holds a POSIX record lock (F_SETLK) on DIR/.sqraft-lock for as long
// as it runs, so a second process given the same directory fails at start
// with the first one's pid in the message instead of writing the same files.
// Record locks do not conflict inside one process, so the process also keeps
// the set of directories its nodes hold. A record lock is not inherited by a
// forked child and disappears with the process, even on SIGKILL, so the next
// node can start at once.
//
// Thread-safety: acquire() and the destructor may run on any thread.
#pragma once

#include <memory>
#include <string>

#include "status.h"

namespace sqraft {

class DirLock {
 public:
  // `dir` must exist. Fails (SQLITE_IOERR, naming the holder) if another node holds it.
  static Result<std::unique_ptr<DirLock>> acquire(const std::string& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  DirLock(int fd, std::string key) : fd_(fd), key_(std::move(key)) {}
  int fd_;
  std::string key_;  // the directory's canonical path
};

}  // namespace sqraft
