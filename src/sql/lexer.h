// The one SQL lexer sqraft has: just enough of SQLite's token rules to
// route statements (src/sql/statement.cc) and to split and classify a
// shell's input (src/tools/shell_input.cc) — comments, quoted strings and
// names, parentheses, words. Never a parser: whatever it cannot decide is
// left to SQLite (prepare, sqlite3_complete).
//
// Pure functions of the text; any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sqraft::lexer {

// The first position at or after `pos` that is not whitespace or a comment
// (-- to the end of the line, /* to */); the end if there is none.
size_t skip_space(std::string_view sql, size_t pos);
// The same, also skipping ';' separators.
size_t skip_filler(std::string_view sql, size_t pos);
// Nothing but whitespace, comments and ';'.
bool blank(std::string_view sql);

// The first `n` words of `sql`, upper-cased: letters and '_' after leading
// whitespace and comments, stopping at the first thing that is not a word.
std::vector<std::string> leading_words(std::string_view sql, size_t n);
// The words outside parentheses, strings, quoted names and comments,
// upper-cased, up to `max` of them (for WITH ... SELECT).
std::vector<std::string> top_level_words(std::string_view sql, size_t max);

// True if `sql` holds at most one statement: nothing but separators,
// whitespace and comments after its first ';' outside strings and quoted
// names.
bool single_statement(std::string_view sql);

}  // namespace sqraft::lexer
