#include "lexer.h"

#include <cctype>

namespace sqraft::lexer {

namespace {

bool word_start(char ch) { return std::isalpha(static_cast<unsigned char>(ch)) || ch == '_'; }

// Past the quoted string or name that starts at `pos` (its closing quote
// included; the end if it never closes).
size_t skip_quoted(std::string_view sql, size_t pos) {
  const char close = sql[pos] == '[' ? ']' : sql[pos];
  const size_t end = sql.find(close, pos + 1);
  return end == std::string_view::npos ? sql.size() : end + 1;
}

bool quote(char ch) { return ch == '\'' || ch == '"' || ch == '`' || ch == '['; }

}  // namespace

size_t skip_space(std::string_view sql, size_t pos) {
  while (pos < sql.size()) {
    if (std::isspace(static_cast<unsigned char>(sql[pos]))) {
      pos++;
    } else if (sql.compare(pos, 2, "--") == 0) {
      const size_t nl = sql.find('\n', pos);
      pos = nl == std::string_view::npos ? sql.size() : nl + 1;
    } else if (sql.compare(pos, 2, "/*") == 0) {
      const size_t end = sql.find("*/", pos + 2);
      pos = end == std::string_view::npos ? sql.size() : end + 2;
    } else {
      break;
    }
  }
  return pos;
}

size_t skip_filler(std::string_view sql, size_t pos) {
  for (pos = skip_space(sql, pos); pos < sql.size() && sql[pos] == ';'; pos = skip_space(sql, pos + 1)) {
  }
  return pos;
}

bool blank(std::string_view sql) { return skip_filler(sql, 0) == sql.size(); }

std::vector<std::string> leading_words(std::string_view sql, size_t n) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (out.size() < n) {
    pos = skip_space(sql, pos);
    std::string word;
    while (pos < sql.size() && word_start(sql[pos])) {
      word.push_back(char(std::toupper(static_cast<unsigned char>(sql[pos]))));
      pos++;
    }
    if (word.empty()) break;
    out.push_back(std::move(word));
  }
  return out;
}

std::vector<std::string> top_level_words(std::string_view sql, size_t max) {
  std::vector<std::string> words;
  int depth = 0;
  size_t pos = 0;
  while (pos < sql.size() && words.size() < max) {
    pos = skip_filler(sql, pos);
    if (pos >= sql.size()) break;
    const char ch = sql[pos];
    if (quote(ch)) {
      pos = skip_quoted(sql, pos);
    } else if (ch == '(' || ch == ')') {
      depth += ch == '(' ? 1 : -1;
      pos++;
    } else if (word_start(ch)) {
      std::string word;
      while (pos < sql.size() && (std::isalnum(static_cast<unsigned char>(sql[pos])) || sql[pos] == '_')) {
        word += char(std::toupper(static_cast<unsigned char>(sql[pos])));
        pos++;
      }
      if (depth == 0) words.push_back(std::move(word));
    } else {
      pos++;
    }
  }
  return words;
}

bool single_statement(std::string_view sql) {
  size_t pos = 0;
  while (pos < sql.size()) {
    const char ch = sql[pos];
    if (quote(ch)) {
      pos = skip_quoted(sql, pos);
    } else if (sql.compare(pos, 2, "--") == 0 || sql.compare(pos, 2, "/*") == 0) {
      pos = skip_space(sql, pos);
    } else if (ch == ';') {
      return skip_filler(sql, pos) == sql.size();
    } else {
      pos++;
    }
  }
  return true;
}

}  // namespace sqraft::lexer
