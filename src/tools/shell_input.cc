// Input of `sqraft shell`; see shell_input.h.
#include "shell_input.h"

#include <sqlite3.h>

#include <cctype>

#include "lexer.h"

namespace sqraft::tools {

using lexer::blank;
using lexer::top_level_words;

std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) b++;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) e--;
  return s.substr(b, e - b);
}

// Whether `text` leaves a statement open: as in the sqlite3 shell, a
// statement goes on over the next lines until a ';' ends it (outside strings,
// comments and trigger bodies). Whatever is open at the end of the input
// runs as the last statement.
bool needs_more(const std::string& text) { return sqlite3_complete(text.c_str()) == 0; }

// Splits text into statements at the semicolons that end one; the rest, if
// any, is a last statement without ';'. Blank statements are dropped.
std::vector<std::string> split_statements(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t p = text.find(';'); p != std::string::npos; p = text.find(';', p + 1)) {
    const std::string candidate = text.substr(start, p + 1 - start);
    if (sqlite3_complete(candidate.c_str()) == 0) continue;
    if (!blank(candidate)) out.emplace_back(trim(candidate));
    start = p + 1;
  }
  const std::string rest = text.substr(start);
  if (!blank(rest)) out.emplace_back(trim(rest));
  return out;
}

// Whether the statement returns rows: by its first keyword; for WITH, by the
// statement that follows the common table expressions.
bool is_query(std::string_view sql) {
  const std::vector<std::string> words = top_level_words(sql, 64);
  if (words.empty()) return false;
  const std::string& first = words[0];
  if (first != "WITH") return first == "SELECT" || first == "VALUES" || first == "PRAGMA" || first == "EXPLAIN";
  for (size_t i = 1; i < words.size(); i++) {
    const std::string& w = words[i];
    if (w == "SELECT" || w == "VALUES") return true;
    if (w == "INSERT" || w == "UPDATE" || w == "DELETE" || w == "REPLACE") return false;
  }
  return true;
}

// Splits a command line into arguments as the sqlite3 shell does: at
// whitespace, except inside '...' (taken as it is) and "..." (where the
// escapes \" \\ \n and \t are read, any other backslash stays). An unclosed
// quote runs to the end of the line.
std::vector<std::string> split_args(std::string_view line) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    while (pos < line.size() && std::isspace(static_cast<unsigned char>(line[pos]))) pos++;
    if (pos >= line.size()) return out;
    std::string arg;
    const char quote = line[pos];
    if (quote == '\'' || quote == '"') {
      for (pos++; pos < line.size() && line[pos] != quote; pos++) {
        char ch = line[pos];
        if (quote == '"' && ch == '\\' && pos + 1 < line.size()) {
          const char next = line[pos + 1];
          if (next == '"' || next == '\\' || next == 'n' || next == 't') {
            ch = next == 'n' ? '\n' : next == 't' ? '\t' : next;
            pos++;
          }
        }
        arg += ch;
      }
      pos++;  // the closing quote
    } else {
      while (pos < line.size() && !std::isspace(static_cast<unsigned char>(line[pos]))) arg += line[pos++];
    }
    out.push_back(std::move(arg));
  }
}

// on|off, as sqlite3 reads them (yes|no, true|false and 1|0 too, any case)
// in *out; false if `word` is none of them.
bool parse_switch(std::string word, bool* out) {
  for (char& c : word) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (word == "on" || word == "yes" || word == "true" || word == "1") {
    *out = true;
    return true;
  }
  if (word == "off" || word == "no" || word == "false" || word == "0") {
    *out = false;
    return true;
  }
  return false;
}

}  // namespace sqraft::tools
