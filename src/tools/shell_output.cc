// Output modes of `sqraft shell`; see shell_output.h.
#include "shell_output.h"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

namespace sqraft::tools {

namespace {

std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xf];
  }
  return out;
}

std::string format_float(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Inf" : "-Inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string out(buf, r.ptr);
  if (out.find_first_of(".e") == std::string::npos) out += ".0";
  return out;
}

// Characters as the terminal shows them: UTF-8 continuation bytes take no
// room (as in sqlite3 3.40, which does not measure wide characters either).
size_t display_width(std::string_view s) {
  const auto starts_char = [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; };
  return size_t(std::count_if(s.begin(), s.end(), starts_char));
}

// The lines a value shows as in column and table mode, as in sqlite3: a tab
// moves to the next multiple of 8; any other control character ends the
// line ("\r\n" counts once); a last empty line is dropped, but a value
// always has one line.
std::vector<std::string> display_lines(std::string_view s) {
  std::vector<std::string> lines;
  std::string line;
  size_t width = 0;
  for (size_t i = 0; i < s.size(); i++) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\t') {
      do {
        line += ' ';
        width++;
      } while (width % 8 != 0);
    } else if (c < 0x20) {
      if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') i++;
      lines.push_back(std::move(line));
      line.clear();
      width = 0;
    } else {
      line += char(c);
      if ((c & 0xc0) != 0x80) width++;
    }
  }
  if (!line.empty() || lines.empty()) lines.push_back(std::move(line));
  return lines;
}

// A csv field: quoted (inner quotes doubled) when empty or holding a space,
// a control character, a quote, an apostrophe, a comma or any byte past
// 0x7e — the same set as sqlite3's.
std::string csv_field(std::string_view s) {
  const bool quote = s.empty() || std::any_of(s.begin(), s.end(), [](char ch) {
                       const unsigned char c = static_cast<unsigned char>(ch);
                       return c <= 0x20 || c >= 0x7f || c == '"' || c == '\'' || c == ',';
                     });
  if (!quote) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string pad_right(const std::string& s, size_t width) {
  const size_t w = display_width(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

// Centred in `width`, the odd space on the right (sqlite3's table headers).
std::string centre(const std::string& s, size_t width) {
  const size_t w = display_width(s);
  if (w >= width) return s;
  const size_t left = (width - w) / 2;
  return std::string(left, ' ') + s + std::string(width - w - left, ' ');
}

// The text a cell shows in csv, column and table mode: NULL is empty.
std::string cell_text(const wire::Value& v) { return v.type == wire::kNull ? std::string() : to_text(v); }

// A row of cells, each split into display lines, printed as one or more
// lines of text: in column mode cells padded and two spaces apart, in table
// mode between "| " and " |" (centred if `centred`).
void print_cells(std::FILE* out, Mode mode, const std::vector<std::vector<std::string>>& cells,
                 const std::vector<size_t>& widths, bool centred) {
  size_t height = 0;
  for (const auto& lines : cells) height = std::max(height, lines.size());
  for (size_t l = 0; l < height; l++) {
    std::string text = mode == Mode::kTable ? "| " : "";
    for (size_t i = 0; i < cells.size(); i++) {
      const std::string& part = l < cells[i].size() ? cells[i][l] : std::string();
      if (i > 0) text += mode == Mode::kTable ? " | " : "  ";
      text += centred ? centre(part, widths[i]) : pad_right(part, widths[i]);
    }
    if (mode == Mode::kTable) text += " |";
    text += '\n';
    std::fwrite(text.data(), 1, text.size(), out);
  }
}

// A name as sqlite3's .schema shows it in a view's column comment: bare when
// it is a plain identifier and no keyword, else in double quotes.
std::string quote_name(const std::string& name) {
  const auto word_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  const bool plain = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
                     std::all_of(name.begin(), name.end(), word_char) &&
                     sqlite3_keyword_check(name.data(), int(name.size())) == 0;
  if (plain) return name;
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

bool parse_mode(std::string_view name, Mode* out) {
  static constexpr std::pair<std::string_view, Mode> kNames[] = {
      {"list", Mode::kList},   {"csv", Mode::kCsv},   {"column", Mode::kColumn},
      {"table", Mode::kTable}, {"json", Mode::kJson},
  };
  for (const auto& [n, m] : kNames) {
    if (n == name) {
      *out = m;
      return true;
    }
  }
  return false;
}

const char* mode_name(Mode mode) {
  switch (mode) {
    case Mode::kList:
      return "list";
    case Mode::kCsv:
      return "csv";
    case Mode::kColumn:
      return "column";
    case Mode::kTable:
      return "table";
    case Mode::kJson:
      return "json";
    case Mode::kJsonLine:
      break;
  }
  return "json (--format json: one line per query)";
}

const char* mode_names() { return "column csv json list table"; }

std::string to_text(const wire::Value& v) {
  switch (v.type) {
    case wire::kInteger:
    case wire::kUnixTime:
      return std::to_string(v.integer);
    case wire::kFloat:
      return format_float(v.real);
    case wire::kText:
    case wire::kIso8601:
      return v.bytes;
    case wire::kBlob:
      return "x'" + hex(v.bytes) + "'";
    case wire::kBoolean:
      return v.integer != 0 ? "true" : "false";
    case wire::kNull:
      break;
  }
  return "NULL";
}

Json to_json(const wire::Value& v) {
  switch (v.type) {
    case wire::kInteger:
    case wire::kUnixTime:
      return v.integer;
    case wire::kFloat:
      return v.real;  // NaN and infinities become null
    case wire::kText:
    case wire::kIso8601:
      return v.bytes;
    case wire::kBlob:
      return hex(v.bytes);
    case wire::kBoolean:
      return v.integer != 0;
    case wire::kNull:
      break;
  }
  return nullptr;
}

std::string dump_json(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// ---- ResultPrinter ------------------------------------------------------------

ResultPrinter::ResultPrinter(Mode mode, bool headers, std::FILE* out) : mode_(mode), headers_(headers), out_(out) {}

// --format json keys objects by column name: a repeated one gets ":2", ":3"...
void ResultPrinter::columns(std::vector<std::string> names) {
  if (mode_ != Mode::kJsonLine) {
    names_ = std::move(names);
    return;
  }
  for (const std::string& name : names) {
    std::string key = name;
    for (unsigned n = 2; std::find(names_.begin(), names_.end(), key) != names_.end(); n++) {
      key = name + ":" + std::to_string(n);
    }
    names_.push_back(std::move(key));
  }
}

void ResultPrinter::print_line(const std::string& line, const char* end) {
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fputs(end, out_);
}

// A line of `names` or of `values`' text, joined by `sep`; csv quotes.
std::string ResultPrinter::join(const std::vector<wire::Value>* values, const char* sep) const {
  std::string line;
  const size_t n = values != nullptr ? values->size() : names_.size();
  for (size_t i = 0; i < n; i++) {
    if (i > 0) line += sep;
    if (values == nullptr) {
      line += mode_ == Mode::kCsv ? csv_field(names_[i]) : names_[i];
    } else if (mode_ == Mode::kCsv) {
      if ((*values)[i].type != wire::kNull) line += csv_field(to_text((*values)[i]));
    } else {
      line += to_text((*values)[i]);
    }
  }
  return line;
}

Status ResultPrinter::row(const std::vector<wire::Value>& values) {
  const bool first = rows_++ == 0;
  switch (mode_) {
    case Mode::kList:
    case Mode::kCsv: {
      const char* sep = mode_ == Mode::kCsv ? "," : "|";
      const char* end = mode_ == Mode::kCsv ? "\r\n" : "\n";
      if (first && headers_) print_line(join(nullptr, sep), end);
      print_line(join(&values, sep), end);
      return Status::Ok();
    }
    case Mode::kJson: {
      std::string line = first ? "[{" : ",\n{";
      for (size_t i = 0; i < values.size() && i < names_.size(); i++) {
        line += (i > 0 ? "," : "") + dump_json(Json(names_[i])) + ":" + dump_json(to_json(values[i]));
      }
      print_line(line + "}", "");
      return Status::Ok();
    }
    case Mode::kColumn:
    case Mode::kTable:
    case Mode::kJsonLine:
      break;
  }
  return keep(values);
}

// The modes that print in finish() keep the row, up to kKeptBytesMax.
Status ResultPrinter::keep(const std::vector<wire::Value>& values) {
  for (const wire::Value& v : values) kept_bytes_ += v.bytes.size() + sizeof v;
  if (kept_bytes_ > kKeptBytesMax) {
    return Status::Invalid("the result passes " + std::to_string(kKeptBytesMax >> 20) + " MiB, more than " +
                           mode_name(mode_) + " mode keeps to align it (use .mode list, csv or json)");
  }
  if (mode_ == Mode::kJsonLine) {
    Json object = Json::object();
    for (size_t i = 0; i < values.size() && i < names_.size(); i++) object[names_[i]] = to_json(values[i]);
    kept_json_.push_back(std::move(object));
    return Status::Ok();
  }
  std::vector<std::string> cells;
  cells.reserve(values.size());
  for (const wire::Value& v : values) cells.push_back(cell_text(v));
  kept_.push_back(std::move(cells));
  return Status::Ok();
}

void ResultPrinter::finish() {
  switch (mode_) {
    case Mode::kJson:
      if (rows_ > 0) print_line("]");
      return;
    case Mode::kJsonLine:
      print_line(dump_json(kept_json_));
      return;
    case Mode::kColumn:
    case Mode::kTable:
      if (!kept_.empty()) print_columnar();
      return;
    case Mode::kList:
    case Mode::kCsv:
      return;
  }
}

// Column and table mode, as sqlite3 lays them out: each column as wide as
// its widest line (header included, shown or not); once any row spans
// several lines, rows are set apart (a blank line in column mode, a border
// in table mode).
void ResultPrinter::print_columnar() {
  const size_t n = names_.size();
  std::vector<std::vector<std::string>> header(n);
  std::vector<size_t> widths(n, 0);
  for (size_t i = 0; i < n; i++) {
    header[i] = display_lines(names_[i]);
    for (const std::string& l : header[i]) widths[i] = std::max(widths[i], display_width(l));
  }
  std::vector<std::vector<std::vector<std::string>>> rows;
  bool multi_line = false;
  for (const std::vector<std::string>& kept : kept_) {
    std::vector<std::vector<std::string>> cells(n);
    for (size_t i = 0; i < n && i < kept.size(); i++) {
      cells[i] = display_lines(kept[i]);
      multi_line = multi_line || cells[i].size() > 1;
      for (const std::string& l : cells[i]) widths[i] = std::max(widths[i], display_width(l));
    }
    rows.push_back(std::move(cells));
  }
  std::string border = "+";
  std::string dashes;
  for (size_t i = 0; i < n; i++) {
    border += std::string(widths[i] + 2, '-') + "+";
    dashes += (i > 0 ? "  " : "") + std::string(widths[i], '-');
  }
  const bool table = mode_ == Mode::kTable;
  if (table) print_line(border);
  if (table || headers_) {
    print_cells(out_, mode_, header, widths, table);
    print_line(table ? border : dashes);
  }
  for (size_t r = 0; r < rows.size(); r++) {
    if (r > 0 && multi_line) print_line(table ? border : "");
    print_cells(out_, mode_, rows[r], widths, false);
  }
  if (table) print_line(border);
}

std::string name_columns(const std::vector<std::string>& names) {
  constexpr size_t kLineWidth = 80;
  size_t width = 0;
  for (const std::string& name : names) width = std::max(width, name.size());
  const size_t per_line = std::max<size_t>(1, kLineWidth / (width + 2));
  const size_t lines = (names.size() + per_line - 1) / per_line;
  std::string out;
  for (size_t l = 0; l < lines; l++) {
    for (size_t i = l; i < names.size(); i += lines) {
      if (i != l) out += "  ";
      out += names[i] + std::string(width - names[i].size(), ' ');
    }
    out += '\n';
  }
  return out;
}

std::string schema_line(const std::string& sql, const std::string& name, const std::vector<std::string>* view_columns) {
  static constexpr std::string_view kCreateTable = "CREATE TABLE ";
  if (sql.starts_with(kCreateTable) && sql.size() > kCreateTable.size() &&
      (sql[kCreateTable.size()] == '"' || sql[kCreateTable.size()] == '\'')) {
    return "CREATE TABLE IF NOT EXISTS " + sql.substr(kCreateTable.size());
  }
  if (view_columns == nullptr || view_columns->empty()) return sql;
  std::string comment = quote_name(name) + "(";
  for (size_t i = 0; i < view_columns->size(); i++) comment += (i > 0 ? "," : "") + quote_name((*view_columns)[i]);
  return sql + "\n/* " + comment + ") */";
}

}  // namespace sqraft::tools
