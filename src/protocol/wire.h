// The dqlite wire protocol, version 1: framing, bodies, values and rows.
//
// Facts: docs/wire-protocol.md. A message is an 8-byte header (body length in
// 8-byte words, type, schema, two zero bytes) and a body of whole words. The
// BodyWriter builds bodies; the BodyReader parses them with bounds checks on
// every field, so a malformed or hostile body yields an error, never a read
// past its end.
//
// Thread-safety: value types.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"

namespace sqraft::wire {

inline constexpr uint64_t kProtocolVersion = 1;
inline constexpr uint64_t kProtocolVersionLegacy = 0x86104dd760433fe5ULL;
inline constexpr size_t kHeaderSize = 8;
inline constexpr size_t kWord = 8;

enum Request : uint8_t {
  kLeader = 0,
  kClient = 1,
  kHeartbeat = 2,
  kOpen = 3,
  kPrepare = 4,
  kExec = 5,
  kQuery = 6,
  kFinalize = 7,
  kExecSql = 8,
  kQuerySql = 9,
  kInterrupt = 10,
  kConnect = 11,
  kAdd = 12,
  kAssign = 13,
  kRemove = 14,
  kDump = 15,
  kCluster = 16,
  kTransfer = 17,
  kDescribe = 18,
  kWeight = 19,
};
const char* request_name(uint8_t type);

enum Response : uint8_t {
  kFailure = 0,
  kServer = 1,
  kWelcome = 2,
  kServers = 3,
  kDb = 4,
  kStmt = 5,
  kResult = 6,
  kRows = 7,
  kEmpty = 8,
  kFiles = 9,
  kMetadata = 10,
};

// Value type codes, in parameters and rows.
enum ValueType : uint8_t {
  kInteger = 1,
  kFloat = 2,
  kText = 3,
  kBlob = 4,
  kNull = 5,
  kUnixTime = 9,
  kIso8601 = 10,
  kBoolean = 11,
};

// Roles on the wire.
inline constexpr uint64_t kRoleVoter = 0;
inline constexpr uint64_t kRoleStandby = 1;
inline constexpr uint64_t kRoleSpare = 2;

// dqlite's error code for a malformed or unknown request.
inline constexpr uint64_t kErrProto = 1005;

inline constexpr uint64_t kRowsMore = 0xeeeeeeeeeeeeeeeeULL;
inline constexpr uint64_t kRowsDone = 0xffffffffffffffffULL;

struct Header {
  uint32_t words = 0;
  uint8_t type = 0;
  uint8_t schema = 0;
  uint16_t extra = 0;
};
Header decode_header(const uint8_t in[kHeaderSize]);
void encode_header(const Header& h, uint8_t out[kHeaderSize]);

struct Value {
  ValueType type = kNull;
  int64_t integer = 0;  // kInteger, kUnixTime, kBoolean (0/1)
  double real = 0;      // kFloat
  std::string bytes;    // kText, kIso8601, kBlob

  static Value Integer(int64_t v) { return {kInteger, v, 0, {}}; }
  static Value Float(double v) { return {kFloat, 0, v, {}}; }
  static Value Text(std::string v) { return {kText, 0, 0, std::move(v)}; }
  static Value Blob(std::string v) { return {kBlob, 0, 0, std::move(v)}; }
  static Value Null() { return {}; }
  bool operator==(const Value&) const = default;
};

// Appends message bodies. All sizes are padded to whole words.
class BodyWriter {
 public:
  void u64(uint64_t v);
  void i64(int64_t v) { u64(uint64_t(v)); }
  void f64(double v);
  void u32_pair(uint32_t a, uint32_t b);
  void u8(uint8_t v) { buf_.push_back(v); }
  void text(std::string_view s);        // bytes + NUL, padded
  void blob(std::string_view b);        // u64 length + bytes, padded
  void raw(const void* data, size_t n);  // unpadded
  void pad();                            // zero bytes up to a word boundary
  void value(const Value& v);            // the value only (no type code)
  // Parameters: count + types (schema 0: u8 count, schema 1: u32 count).
  void params(const std::vector<Value>& values, uint8_t schema);

  size_t size() const { return buf_.size(); }
  // The whole message: header (type, schema) + body. The body must be padded.
  std::vector<uint8_t> finish(uint8_t type, uint8_t schema = 0) const;
  std::vector<uint8_t>& bytes() { return buf_; }

 private:
  std::vector<uint8_t> buf_;
};

// Reads message bodies. Every getter fails (returns false) instead of reading
// past the end; after a failure the reader stays failed.
class BodyReader {
 public:
  BodyReader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  explicit BodyReader(std::span<const uint8_t> s) : BodyReader(s.data(), s.size()) {}

  bool u64(uint64_t* v);
  bool i64(int64_t* v);
  bool f64(double* v);
  bool u32_pair(uint32_t* a, uint32_t* b);
  bool u8(uint8_t* v);
  bool raw(void* out, size_t n);  // n bytes, unpadded
  bool text(std::string* s);  // NUL-terminated, padded
  bool blob(std::string* b);
  bool skip_padding();         // to the next word boundary from the start
  bool value(ValueType type, Value* v);
  // Parameters of EXEC/QUERY/*_SQL: no bytes at all means none.
  Status params(uint8_t schema, std::vector<Value>* out);

  size_t remaining() const { return size_t(end_ - p_); }
  bool at_end() const { return p_ == end_; }
  bool failed() const { return failed_; }

 private:
  bool need(size_t n);
  const uint8_t* p_;
  const uint8_t* end_;
  const uint8_t* start_ = p_;  // declared after p_: initialised from it
  bool failed_ = false;
};

// A FAILURE response.
std::vector<uint8_t> failure(uint64_t code, std::string_view message);
// Whether `s` is valid UTF-8.
bool valid_utf8(std::string_view s);

// Builds one ROWS message: column count and names, rows, then a marker.
class RowsWriter {
 public:
  explicit RowsWriter(const std::vector<std::string>& columns);
  // Appends a row column by column: begin_row(), then one call per column,
  // in order.
  void begin_row();
  void integer(ValueType type, int64_t v);   // kInteger, kUnixTime, kBoolean
  void real(double v);                       // kFloat
  void text(ValueType type, std::string_view s);  // kText, kIso8601: up to its first NUL
  void blob(std::string_view b);
  void null();
  // Appends a row of values.
  void row(const std::vector<Value>& values);
  size_t size() const { return body_.size(); }
  size_t rows() const { return rows_; }
  std::vector<uint8_t> finish(bool more);

 private:
  void next_type(ValueType type);  // the next column's type code, in the row's header

  size_t n_columns_;
  size_t rows_ = 0;
  size_t header_at_ = 0;  // offset of the current row's type header
  size_t column_ = 0;     // columns of the current row written
  BodyWriter body_;
};

}  // namespace sqraft::wire
