// The rules for database names, shared by the VFS (which maps SQLite's file
// names onto databases), the commands in the Raft log and the gateway's
// OPEN: a name is 1-255 bytes without NUL and never ends with a suffix
// SQLite gives its side files.
#pragma once

#include <cstring>
#include <string>
#include <string_view>

#include "status.h"

namespace sqraft {

inline constexpr char kWalSuffix[] = "-wal";
inline constexpr char kJournalSuffix[] = "-journal";
inline constexpr char kShmSuffix[] = "-shm";

// True if `s` is longer than `suffix` and ends with it.
inline bool ends_with(std::string_view s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() > n && s.compare(s.size() - n, n, suffix) == 0;
}

inline Status validate_db_name(std::string_view db) {
  if (db.empty()) return Status::Invalid("database name must not be empty");
  if (db.size() > 255) return Status::Invalid("database name is longer than 255 bytes");
  if (db.find('\0') != std::string_view::npos) return Status::Invalid("database name contains a NUL byte");
  if (ends_with(db, kWalSuffix) || ends_with(db, kJournalSuffix) || ends_with(db, kShmSuffix)) {
    return Status::Invalid("database name '" + std::string(db) + "' ends with a reserved suffix");
  }
  return Status::Ok();
}

}  // namespace sqraft
