#include "wire.h"

#include <cassert>
#include <cstring>

#include "byte_order.h"

namespace sqraft::wire {

namespace {

size_t padded(size_t n) { return (n + kWord - 1) / kWord * kWord; }

}  // namespace

const char* request_name(uint8_t type) {
  static const char* const kNames[] = {"leader", "client", "heartbeat", "open",    "prepare",
                                       "exec",   "query",  "finalize",  "exec_sql", "query_sql",
                                       "interrupt", "connect", "add",   "assign",  "remove",
                                       "dump",   "cluster", "transfer", "describe", "weight"};
  return type < sizeof kNames / sizeof kNames[0] ? kNames[type] : "unknown";
}

Header decode_header(const uint8_t in[kHeaderSize]) {
  Header h;
  h.words = uint32_t(in[0]) | (uint32_t(in[1]) << 8) | (uint32_t(in[2]) << 16) | (uint32_t(in[3]) << 24);
  h.type = in[4];
  h.schema = in[5];
  h.extra = uint16_t(in[6] | (in[7] << 8));
  return h;
}

void encode_header(const Header& h, uint8_t out[kHeaderSize]) {
  out[0] = uint8_t(h.words);
  out[1] = uint8_t(h.words >> 8);
  out[2] = uint8_t(h.words >> 16);
  out[3] = uint8_t(h.words >> 24);
  out[4] = h.type;
  out[5] = h.schema;
  out[6] = uint8_t(h.extra);
  out[7] = uint8_t(h.extra >> 8);
}

// ---- BodyWriter ---------------------------------------------------------------

void BodyWriter::u64(uint64_t v) {
  const size_t at = buf_.size();
  buf_.resize(at + 8);
  put_le64(buf_.data() + at, v);
}

void BodyWriter::f64(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  u64(bits);
}

void BodyWriter::u32_pair(uint32_t a, uint32_t b) { u64(uint64_t(a) | (uint64_t(b) << 32)); }

void BodyWriter::raw(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  buf_.insert(buf_.end(), p, p + n);
}

void BodyWriter::pad() { buf_.resize(padded(buf_.size()), 0); }

void BodyWriter::text(std::string_view s) {
  raw(s.data(), s.size());
  buf_.push_back(0);
  pad();
}

void BodyWriter::blob(std::string_view b) {
  u64(b.size());
  raw(b.data(), b.size());
  pad();
}

void BodyWriter::value(const Value& v) {
  switch (v.type) {
    case kInteger:
    case kUnixTime:
      i64(v.integer);
      break;
    case kBoolean:
      u64(v.integer != 0 ? 1 : 0);
      break;
    case kFloat:
      f64(v.real);
      break;
    case kText:
    case kIso8601:
      text(v.bytes);
      break;
    case kBlob:
      blob(v.bytes);
      break;
    case kNull:
    default:
      u64(0);
      break;
  }
}

void BodyWriter::params(const std::vector<Value>& values, uint8_t schema) {
  if (values.empty()) return;
  if (schema == 0) {
    u8(uint8_t(values.size()));
  } else {
    const uint32_t n = uint32_t(values.size());
    for (int i = 0; i < 4; i++) u8(uint8_t(n >> (8 * i)));
  }
  for (const Value& v : values) u8(v.type);
  pad();
  for (const Value& v : values) value(v);
}

std::vector<uint8_t> BodyWriter::finish(uint8_t type, uint8_t schema) const {
  std::vector<uint8_t> out(kHeaderSize + buf_.size());
  Header h;
  h.words = uint32_t(buf_.size() / kWord);
  h.type = type;
  h.schema = schema;
  encode_header(h, out.data());
  if (!buf_.empty()) std::memcpy(out.data() + kHeaderSize, buf_.data(), buf_.size());
  return out;
}

// ---- BodyReader -----------------------------------------------------------------

bool BodyReader::need(size_t n) {
  if (failed_ || size_t(end_ - p_) < n) {
    failed_ = true;
    return false;
  }
  return true;
}

bool BodyReader::u64(uint64_t* v) {
  if (!need(8)) return false;
  *v = get_le64(p_);
  p_ += 8;
  return true;
}

bool BodyReader::i64(int64_t* v) {
  uint64_t u;
  if (!u64(&u)) return false;
  *v = int64_t(u);
  return true;
}

bool BodyReader::f64(double* v) {
  uint64_t u;
  if (!u64(&u)) return false;
  std::memcpy(v, &u, 8);
  return true;
}

bool BodyReader::u32_pair(uint32_t* a, uint32_t* b) {
  uint64_t u;
  if (!u64(&u)) return false;
  *a = uint32_t(u);
  *b = uint32_t(u >> 32);
  return true;
}

bool BodyReader::u8(uint8_t* v) {
  if (!need(1)) return false;
  *v = *p_++;
  return true;
}

bool BodyReader::raw(void* out, size_t n) {
  if (!need(n)) return false;
  if (n > 0) std::memcpy(out, p_, n);
  p_ += n;
  return true;
}

bool BodyReader::skip_padding() {
  const size_t offset = size_t(p_ - start_);
  const size_t n = padded(offset) - offset;
  if (!need(n)) return false;
  p_ += n;
  return true;
}

bool BodyReader::text(std::string* s) {
  if (failed_) return false;
  // An empty rest (possibly an empty body, whose data() may be null: no
  // memchr on it) holds no terminator either.
  const void* nul = p_ == end_ ? nullptr : std::memchr(p_, 0, size_t(end_ - p_));
  if (nul == nullptr) {
    failed_ = true;
    return false;
  }
  const auto* z = static_cast<const uint8_t*>(nul);
  s->assign(reinterpret_cast<const char*>(p_), size_t(z - p_));
  p_ = z + 1;
  return skip_padding();
}

bool BodyReader::blob(std::string* b) {
  uint64_t n;
  if (!u64(&n)) return false;
  if (!need(size_t(n))) return false;  // never allocate more than the body holds
  b->assign(reinterpret_cast<const char*>(p_), size_t(n));
  p_ += n;
  return skip_padding();
}

bool BodyReader::value(ValueType type, Value* v) {
  v->type = type;
  switch (type) {
    case kInteger:
    case kUnixTime:
      return i64(&v->integer);
    case kBoolean: {
      uint64_t u;
      if (!u64(&u)) return false;
      v->integer = u != 0 ? 1 : 0;
      return true;
    }
    case kFloat:
      return f64(&v->real);
    case kText:
    case kIso8601:
      return text(&v->bytes);
    case kBlob:
      return blob(&v->bytes);
    case kNull: {
      uint64_t u;
      return u64(&u);
    }
    default:
      failed_ = true;
      return false;
  }
}

Status BodyReader::params(uint8_t schema, std::vector<Value>* out) {
  out->clear();
  if (at_end()) return Status::Ok();  // no parameters
  uint32_t n = 0;
  if (schema == 0) {
    uint8_t c;
    if (!u8(&c)) return Status::Error(int(kErrProto), "malformed parameters");
    n = c;
  } else if (schema == 1) {
    uint8_t b[4];
    for (auto& x : b) {
      if (!u8(&x)) return Status::Error(int(kErrProto), "malformed parameters");
    }
    n = uint32_t(b[0]) | (uint32_t(b[1]) << 8) | (uint32_t(b[2]) << 16) | (uint32_t(b[3]) << 24);
  } else {
    return Status::Error(int(kErrProto), "unknown parameter schema " + std::to_string(schema));
  }
  // Each parameter takes at least one type byte and one word.
  if (n > remaining()) return Status::Error(int(kErrProto), "parameter count larger than the message");
  std::vector<uint8_t> types(n);
  for (auto& t : types) {
    if (!u8(&t)) return Status::Error(int(kErrProto), "malformed parameter types");
  }
  if (!skip_padding()) return Status::Error(int(kErrProto), "malformed parameter types");
  out->reserve(n);
  for (uint32_t i = 0; i < n; i++) {
    const ValueType t = ValueType(types[i]);
    if (t != kInteger && t != kFloat && t != kText && t != kBlob && t != kNull && t != kUnixTime &&
        t != kIso8601 && t != kBoolean) {
      return Status::Error(SQLITE_MISMATCH, "parameter " + std::to_string(i + 1) + " has unknown type " +
                                                std::to_string(types[i]));
    }
    Value v;
    if (!value(t, &v)) return Status::Error(int(kErrProto), "parameter " + std::to_string(i + 1) + " is truncated");
    if ((t == kText || t == kIso8601) && !valid_utf8(v.bytes)) {
      return Status::Error(SQLITE_MISMATCH, "parameter " + std::to_string(i + 1) + " is not valid UTF-8");
    }
    out->push_back(std::move(v));
  }
  return Status::Ok();
}

// ---- helpers --------------------------------------------------------------------

std::vector<uint8_t> failure(uint64_t code, std::string_view message) {
  BodyWriter w;
  w.u64(code);
  w.text(message);
  return w.finish(kFailure);
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const uint8_t c = *p;
    int n;
    uint32_t cp;
    if (c < 0x80) {
      p++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= n) return false;
    for (int i = 1; i <= n; i++) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;  // overlong, out of range, or a surrogate
    }
    p += n + 1;
  }
  return true;
}

RowsWriter::RowsWriter(const std::vector<std::string>& columns) : n_columns_(columns.size()) {
  body_.u64(columns.size());
  for (const std::string& c : columns) body_.text(c);
}

void RowsWriter::begin_row() {
  assert(rows_ == 0 || column_ == n_columns_);
  // Header: a 4-bit type per column, column i in the low nibble of byte i/2
  // when i is even, the high nibble when odd; padded to a word.
  header_at_ = body_.size();
  body_.bytes().resize(header_at_ + padded((n_columns_ + 1) / 2), 0);
  column_ = 0;
  rows_++;
}

void RowsWriter::next_type(ValueType type) {
  assert(column_ < n_columns_);
  const uint8_t t = uint8_t(type) & 0x0f;
  body_.bytes()[header_at_ + column_ / 2] |= (column_ % 2 == 0) ? t : uint8_t(t << 4);
  column_++;
}

void RowsWriter::integer(ValueType type, int64_t v) {
  next_type(type);
  if (type == kBoolean) {
    body_.u64(v != 0 ? 1 : 0);
  } else {
    body_.i64(v);
  }
}

void RowsWriter::real(double v) {
  next_type(kFloat);
  body_.f64(v);
}

void RowsWriter::text(ValueType type, std::string_view s) {
  // The protocol's text ends at its first NUL: a value with a NUL inside is
  // sent up to it (as dqlite does), or the client would read the rest as
  // the following columns.
  next_type(type);
  body_.text(s.substr(0, s.find('\0')));
}

void RowsWriter::blob(std::string_view b) {
  next_type(kBlob);
  body_.blob(b);
}

void RowsWriter::null() {
  next_type(kNull);
  body_.u64(0);
}

void RowsWriter::row(const std::vector<Value>& values) {
  begin_row();
  for (const Value& v : values) {
    switch (v.type) {
      case kInteger:
      case kUnixTime:
      case kBoolean: integer(v.type, v.integer); break;
      case kFloat: real(v.real); break;
      case kText:
      case kIso8601: text(v.type, v.bytes); break;
      case kBlob: blob(v.bytes); break;
      default: null(); break;
    }
  }
}

std::vector<uint8_t> RowsWriter::finish(bool more) {
  body_.u64(more ? kRowsMore : kRowsDone);
  return body_.finish(kRows);
}

}  // namespace sqraft::wire
