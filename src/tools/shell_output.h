// How `sqraft shell` prints: the text of one value, the layout of a query's
// rows in each output mode (`.mode`, `.headers`, `--format json`) and the
// name columns of `.tables` and `.indexes`, the lines of `.schema`.
//
// Pure formatting: nothing here talks to the cluster; a ResultPrinter writes
// only to the FILE* it is given. Not thread-safe (the shell has one thread).
//
// The modes follow the sqlite3 shell (3.40) where the value types allow it:
// csv quotes and the "\r\n" row ends, column and table widths, dash lines,
// centred table headers and the separators between rows once a value spans
// lines, json's one object per line. Where sqraft has its own rule (kept from
// the dqlite-style list output), every mode shares it: floats in their
// shortest exact form, blobs as x'0a1b' (hex digits in json), booleans as
// true/false. NULL is "NULL" in list mode (as dqlite's shell), empty in csv,
// column and table (as sqlite3), null in json.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"
#include "wire.h"

namespace sqraft::tools {

using Json = nlohmann::ordered_json;

enum class Mode {
  kList,      // a|b, no quoting (the default)
  kCsv,       // RFC 4180-style: a,"b c"\r\n
  kColumn,    // aligned columns, two spaces apart, a dash line under the headers
  kTable,     // aligned columns in a +---+ box, headers always shown
  kJson,      // sqlite3's: [{"a":1},\n{"a":2}] and nothing for no rows
  kJsonLine,  // --format json: the whole result on one line, [] for no rows
};

// The mode `name` names (list, csv, column, table, json) in *out; false (and
// *out untouched) for any other name. kJsonLine has no name: --format only.
bool parse_mode(std::string_view name, Mode* out);
// The name of `mode` as .mode prints it.
const char* mode_name(Mode mode);
// The names parse_mode accepts, space-separated, for error messages.
const char* mode_names();

// A value as list mode prints it: NULL as NULL, blobs as x'0a1b'.
std::string to_text(const wire::Value& v);
// A value as JSON: numbers, strings, true/false, null; a blob as its hex
// digits; NaN and infinities as null.
Json to_json(const wire::Value& v);
// One line of JSON; invalid UTF-8 in text is replaced, never thrown on.
std::string dump_json(const Json& j);

// Prints one query's result. Streaming modes (list, csv, json) print each
// row as it comes; column, table and --format json keep the rows and print
// them in finish().
class ResultPrinter {
 public:
  // `out` must outlive the printer. `headers`: print the column names
  // (list, csv, column; table always does, json never needs to).
  ResultPrinter(Mode mode, bool headers, std::FILE* out);

  // The result's column names. REQUIRES: called once, before row().
  void columns(std::vector<std::string> names);
  // Prints or keeps one row. Fails (printing nothing more) once the kept
  // rows of a column, table or --format json result pass kKeptBytesMax.
  Status row(const std::vector<wire::Value>& values);
  // Ends the result: prints the kept rows, or json's closing "]". Call it
  // only after the last row of a query that succeeded.
  void finish();

  // Bound on what column, table and --format json keep before printing.
  static constexpr size_t kKeptBytesMax = size_t(256) << 20;

 private:
  std::string join(const std::vector<wire::Value>* values, const char* sep) const;
  Status keep(const std::vector<wire::Value>& values);
  void print_line(const std::string& line, const char* end = "\n");
  void print_columnar();

  const Mode mode_;
  const bool headers_;
  std::FILE* const out_;
  std::vector<std::string> names_;
  size_t rows_ = 0;                             // rows seen so far
  std::vector<std::vector<std::string>> kept_;  // column, table: the cells' text
  Json kept_json_ = Json::array();              // --format json
  size_t kept_bytes_ = 0;
};

// Names laid out as the sqlite3 shell's .tables and .indexes do: in columns
// as wide as the longest name, two spaces apart, as many as fit in 80
// characters (at least one), filled top to bottom. Each line ends in '\n';
// nothing for no names.
std::string name_columns(const std::vector<std::string>& names);

// A schema table row's SQL as .schema prints it, without the ';': `name` is
// the object's name, `view_columns` a view's column names (null for anything
// else). As sqlite3 does: a table whose name is quoted gets IF NOT EXISTS,
// and a view with known columns gets a comment naming them, "/* v(a,b) */"
// (names quoted where they need it).
std::string schema_line(const std::string& sql, const std::string& name, const std::vector<std::string>* view_columns);

}  // namespace sqraft::tools
