// How `sqraft shell` reads its input: where statements end, which of them
// are queries, and how a dot-command's arguments split.
//
// Pure text functions of the SQL given; nothing here talks to the cluster.
// The rules follow the sqlite3 shell's: a statement ends at a ';' outside
// strings, comments and trigger bodies (sqlite3_complete), and command
// arguments split at whitespace with '...' and "..." quoting.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sqraft::tools {

// `s` without the whitespace at either end.
std::string_view trim(std::string_view s);

// Whether `text` leaves a statement open: it goes on over the next lines
// until a ';' ends it. Whatever is open at the end of the input runs as the
// last statement.
bool needs_more(const std::string& text);

// Splits text into statements at the semicolons that end one (each kept
// with its ';', trimmed); the rest, if any, is a last statement without
// ';'. Blank statements (whitespace, comments, lone ';') are dropped.
std::vector<std::string> split_statements(const std::string& text);

// Whether the statement returns rows: by its first keyword (SELECT, VALUES,
// PRAGMA, EXPLAIN); for WITH, by the statement that follows the common
// table expressions.
bool is_query(std::string_view sql);

// Splits a command line into arguments as the sqlite3 shell does: at
// whitespace, except inside '...' (taken as it is) and "..." (where the
// escapes \" \\ \n and \t are read, any other backslash stays). An unclosed
// quote runs to the end of the line.
std::vector<std::string> split_args(std::string_view line);

// on|off in *out, as sqlite3 reads them (yes|no, true|false and 1|0 too, in
// any case); false, with *out untouched, if `word` is none of them.
bool parse_switch(std::string word, bool* out);

}  // namespace sqraft::tools
