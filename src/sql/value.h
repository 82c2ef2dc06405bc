// SqlValue: a value bound to a statement parameter, one of SQLite's storage
// classes. The SQL layer knows no wire format: the gateway makes these from
// the values a client sent.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sqraft {

struct SqlValue {
  int type = SQLITE_NULL;  // SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB or SQLITE_NULL
  int64_t integer = 0;     // SQLITE_INTEGER
  double real = 0;         // SQLITE_FLOAT
  std::string bytes;       // SQLITE_TEXT (UTF-8), SQLITE_BLOB
};
using SqlParams = std::vector<SqlValue>;

}  // namespace sqraft
