// Small helpers for running SQL in tests.
#pragma once

#include <sqlite3.h>

#include <string>
#include <vector>

namespace sqraft::test {

// Runs `sql`; returns the SQLite result code (extended).
inline int exec(sqlite3* db, const std::string& sql) {
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? rc : sqlite3_extended_errcode(db);
}

// Runs a query and returns all rows as "a|b|c" lines joined by '\n'.
// Errors come back as "ERROR <code>: <message>".
inline std::string query(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    return "ERROR " + std::to_string(sqlite3_extended_errcode(db)) + ": " + sqlite3_errmsg(db);
  }
  std::string out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if (!out.empty()) out += '\n';
    for (int i = 0; i < sqlite3_column_count(stmt); i++) {
      if (i) out += '|';
      const unsigned char* t = sqlite3_column_text(stmt, i);
      out += t ? reinterpret_cast<const char*>(t) : "NULL";
    }
  }
  if (rc != SQLITE_DONE) {
    out = "ERROR " + std::to_string(sqlite3_extended_errcode(db)) + ": " + sqlite3_errmsg(db);
  }
  sqlite3_finalize(stmt);
  return out;
}

}  // namespace sqraft::test
