#include "rows_encoder.h"

#include <strings.h>

#include <optional>
#include <string>
#include <string_view>

namespace sqraft {

namespace {

enum class Declared : uint8_t { kPlain, kTime, kBoolean };

Declared declared_of(const char* decl) {
  if (decl == nullptr) return Declared::kPlain;
  if (strcasecmp(decl, "DATETIME") == 0 || strcasecmp(decl, "DATE") == 0 || strcasecmp(decl, "TIMESTAMP") == 0) {
    return Declared::kTime;
  }
  if (strcasecmp(decl, "BOOLEAN") == 0) return Declared::kBoolean;
  return Declared::kPlain;
}

std::string_view column_bytes(sqlite3_stmt* stmt, int c, const void* data) {
  const int n = sqlite3_column_bytes(stmt, c);  // after the pointer: it may convert
  return data == nullptr ? std::string_view() : std::string_view(static_cast<const char*>(data), size_t(n));
}

class RowsEncoder final : public RowEncoder {
 public:
  explicit RowsEncoder(sqlite3_stmt* stmt) {
    const int n = sqlite3_column_count(stmt);
    for (int i = 0; i < n; i++) {
      const char* name = sqlite3_column_name(stmt, i);
      names_.emplace_back(name ? name : "");
      declared_.push_back(declared_of(sqlite3_column_decltype(stmt, i)));
    }
  }

  void begin() override { rows_.emplace(names_); }

  void add_row(sqlite3_stmt* stmt) override {
    wire::RowsWriter& w = *rows_;
    w.begin_row();
    for (size_t i = 0; i < names_.size(); i++) {
      const int c = int(i);
      switch (sqlite3_column_type(stmt, c)) {
        case SQLITE_INTEGER:
          w.integer(declared_[i] == Declared::kTime      ? wire::kUnixTime
                    : declared_[i] == Declared::kBoolean ? wire::kBoolean
                                                         : wire::kInteger,
                    sqlite3_column_int64(stmt, c));
          break;
        case SQLITE_FLOAT:
          w.real(sqlite3_column_double(stmt, c));
          break;
        case SQLITE_TEXT:
          w.text(declared_[i] == Declared::kTime ? wire::kIso8601 : wire::kText,
                 column_bytes(stmt, c, sqlite3_column_text(stmt, c)));
          break;
        case SQLITE_BLOB:
          w.blob(column_bytes(stmt, c, sqlite3_column_blob(stmt, c)));
          break;
        default:
          w.null();
          break;
      }
    }
  }

  size_t bytes() const override { return rows_->size(); }
  size_t rows() const override { return rows_->rows(); }
  std::vector<uint8_t> finish(bool more) override {
    std::vector<uint8_t> msg = rows_->finish(more);
    rows_.reset();
    return msg;
  }

 private:
  std::vector<std::string> names_;
  std::vector<Declared> declared_;
  std::optional<wire::RowsWriter> rows_;  // the batch being made
};

}  // namespace

std::unique_ptr<RowEncoder> make_rows_encoder(sqlite3_stmt* stmt) { return std::make_unique<RowsEncoder>(stmt); }

SqlParams sql_params(std::vector<wire::Value> params) {
  SqlParams out(params.size());
  for (size_t i = 0; i < params.size(); i++) {
    wire::Value& v = params[i];
    SqlValue& p = out[i];
    switch (v.type) {
      case wire::kInteger:
      case wire::kUnixTime:
      case wire::kBoolean:
        p.type = SQLITE_INTEGER;
        p.integer = v.integer;
        break;
      case wire::kFloat:
        p.type = SQLITE_FLOAT;
        p.real = v.real;
        break;
      case wire::kText:
      case wire::kIso8601:
        p.type = SQLITE_TEXT;
        p.bytes = std::move(v.bytes);
        break;
      case wire::kBlob:
        p.type = SQLITE_BLOB;
        p.bytes = std::move(v.bytes);
        break;
      default:
        p.type = SQLITE_NULL;
        break;
    }
  }
  return out;
}

}  // namespace sqraft
