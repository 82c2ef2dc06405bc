// What a user would compare between two SQLite databases: the schema and
// every table's rows, as text a failed check prints in full.
//
// digest() gives one line per schema object (type, name, table, SQL) and one
// per table: its name, row count and a hash of every row (rowid first where
// there is one) in rowid or primary-key order. SQLite's statistics tables
// are left out (import rebuilds them with ANALYZE) and so are a virtual
// table's storage tables (their pages depend on how the rows were written);
// the virtual table's own rows are compared. sqlite_sequence counts by its
// rows only.
#pragma once

#include <sqlite3.h>
#include <xxhash.h>

#include <string>
#include <vector>

#include "support/sql.h"

namespace sqraft::test {

inline std::string digest_table(sqlite3* db, const std::string& name, bool rowid) {
  std::string quoted = "\"";
  for (char ch : name) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  quoted += "\"";
  std::string order = rowid ? "rowid" : "";
  if (!rowid) {
    sqlite3_stmt* pk = nullptr;
    sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk", -1, &pk, nullptr);
    sqlite3_bind_text(pk, 1, name.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(pk) == SQLITE_ROW) {
      order += std::string(order.empty() ? "" : ", ") + "\"" + reinterpret_cast<const char*>(sqlite3_column_text(pk, 0)) + "\"";
    }
    sqlite3_finalize(pk);
    if (order.empty()) order = "1";
  }
  const std::string sql = "SELECT " + std::string(rowid ? "rowid, " : "") + "* FROM " + quoted + " ORDER BY " + order;
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) return name + ": " + sqlite3_errmsg(db);
  XXH64_state_t* h = XXH64_createState();
  XXH64_reset(h, 0);
  uint64_t rows = 0;
  while (sqlite3_step(s) == SQLITE_ROW) {
    rows++;
    for (int i = 0; i < sqlite3_column_count(s); i++) {
      const unsigned char type = static_cast<unsigned char>(sqlite3_column_type(s, i));
      XXH64_update(h, &type, 1);
      if (type == SQLITE_INTEGER) {
        const sqlite3_int64 v = sqlite3_column_int64(s, i);
        XXH64_update(h, &v, sizeof v);
      } else if (type == SQLITE_FLOAT) {
        const double v = sqlite3_column_double(s, i);
        XXH64_update(h, &v, sizeof v);
      } else if (type != SQLITE_NULL) {
        const void* p = type == SQLITE_BLOB ? sqlite3_column_blob(s, i) : sqlite3_column_text(s, i);
        const int n = sqlite3_column_bytes(s, i);
        XXH64_update(h, &n, sizeof n);
        if (n > 0) XXH64_update(h, p, size_t(n));
      }
    }
  }
  sqlite3_finalize(s);
  const uint64_t hash = XXH64_digest(h);
  XXH64_freeState(h);
  return "rows " + name + " " + std::to_string(rows) + " " + std::to_string(hash);
}

inline std::string digest(sqlite3* db) {
  std::string out = query(db,
                          "SELECT s.type, s.name, s.tbl_name, s.sql FROM sqlite_schema s "
                          "LEFT JOIN pragma_table_list l ON l.schema = 'main' AND l.name = s.name "
                          "WHERE s.name NOT LIKE 'sqlite_stat%' AND s.name <> 'sqlite_sequence' "
                          "AND coalesce(l.type, '') <> 'shadow' "
                          "ORDER BY s.type, s.name");
  out += "\n";
  sqlite3_stmt* t = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT name, wr FROM pragma_table_list WHERE schema = 'main' AND type IN ('table', 'virtual') "
                     "AND (name NOT LIKE 'sqlite_%' OR name = 'sqlite_sequence') ORDER BY name",
                     -1, &t, nullptr);
  std::vector<std::pair<std::string, bool>> tables;
  while (sqlite3_step(t) == SQLITE_ROW) {
    tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(t, 0)), sqlite3_column_int(t, 1) == 0);
  }
  sqlite3_finalize(t);
  for (const auto& [name, rowid] : tables) {
    // SQLite keeps an empty sqlite_sequence once made (it cannot be dropped):
    // only its rows count.
    if (name == "sqlite_sequence" && query(db, "SELECT count(*) FROM sqlite_sequence") == "0") continue;
    out += digest_table(db, name, rowid && name != "sqlite_sequence") + "\n";
  }
  return out;
}

// The digest of the SQLite file at `path`, opened read-only.
inline std::string file_digest(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string e = path + ": " + sqlite3_errmsg(db);
    sqlite3_close(db);
    return e;
  }
  std::string d = digest(db);
  sqlite3_close(db);
  return d;
}

}  // namespace sqraft::test
