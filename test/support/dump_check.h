// Reads a node's copy of a database through DUMP, for tests: the files are
// written to a temporary directory and opened with SQLite itself.
#pragma once

#include <sqlite3.h>

#include <fstream>
#include <string>

#include "client.h"
#include "support/sql.h"
#include "support/temp_dir.h"

namespace sqraft::test {

// Runs `sql` on node `address`'s copy of `db`; "ERROR ..." on failure.
inline std::string query_copy(const std::string& address, const std::string& db, const std::string& sql) {
  auto c = Client::connect_node(address, 10000);
  if (!c.ok()) return "ERROR connect: " + c.status().message();
  auto files = c.value()->dump(db);
  if (!files.ok()) return "ERROR dump: " + files.status().message();
  TempDir dir;
  for (const File& f : files.value()) {
    std::ofstream out(dir.file(f.name), std::ios::binary);
    out.write(f.data.data(), std::streamsize(f.data.size()));
  }
  sqlite3* conn = nullptr;
  if (sqlite3_open_v2(dir.file(db).c_str(), &conn, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close(conn);
    return "ERROR open";
  }
  std::string out = query(conn, sql);
  sqlite3_close(conn);
  return out;
}

}  // namespace sqraft::test
