// Status and Result<T>: how errors travel between sqraft modules.
//
// A Status is either OK or an error carrying a SQLite-compatible result code
// (SQLITE_* or one of the sqraft extended codes below) and a human readable
// message. Context is added as an error travels up ("apply frames: db 'app':
// page 7: short write"). OK statuses carry no allocation.
//
// Thread-safety: values; no shared state.
#pragma once

#include <sqlite3.h>

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace sqraft {

// Extended SQLite codes used by dqlite and its clients (see docs/wire-protocol.md).
inline constexpr int kErrNotLeader = SQLITE_IOERR | (40 << 8);        // 10250
inline constexpr int kErrLeadershipLost = SQLITE_IOERR | (41 << 8);   // 10506
// sqraft's own: leadership was lost while a transaction committed, and the
// node could not learn in time whether the cluster kept it.
inline constexpr int kErrOutcomeUnknown = SQLITE_IOERR | (42 << 8);   // 10762
// What the application's own connections (the SQLite-replacement mode) get
// when they try to write on a node that is not the leader: a READONLY-class
// code, which SQLite programs already treat as "this handle cannot write".
inline constexpr int kErrReadonlyNotLeader = SQLITE_READONLY | (40 << 8);  // 10248
// sqraft's own: the node stopped because its Raft log could not be written
// (a full disk): safe to restart once the cause is gone.
inline constexpr int kErrRaftWrite = SQLITE_IOERR | (43 << 8);        // 11018
// sqraft's own: the node stopped because its database files (disk storage)
// could not be written while it applied the log: the same remedy.
inline constexpr int kErrStorageWrite = SQLITE_IOERR | (44 << 8);     // 11274
// sqraft's own: this node's copy of the data differs from the leader's.
inline constexpr int kErrDivergence = SQLITE_CORRUPT | (99 << 8);

class [[nodiscard]] Status {
 public:
  Status() = default;

  static Status Ok() { return Status(); }
  static Status Error(int code, std::string message) {
    assert(code != SQLITE_OK);
    return Status(code, std::move(message));
  }
  static Status NotLeader(std::string m = "not leader") { return Error(kErrNotLeader, std::move(m)); }
  static Status LeadershipLost(std::string m = "leadership lost") {
    return Error(kErrLeadershipLost, std::move(m));
  }
  static Status Corruption(std::string m) { return Error(SQLITE_CORRUPT, std::move(m)); }
  static Status Divergence(std::string m) { return Error(kErrDivergence, std::move(m)); }
  static Status Invalid(std::string m) { return Error(SQLITE_MISUSE, std::move(m)); }
  static Status IoError(std::string m) { return Error(SQLITE_IOERR, std::move(m)); }
  static Status Busy(std::string m) { return Error(SQLITE_BUSY, std::move(m)); }
  static Status NotFound(std::string m) { return Error(SQLITE_NOTFOUND, std::move(m)); }
  static Status NoMemory(std::string m) { return Error(SQLITE_NOMEM, std::move(m)); }
  static Status Internal(std::string m) { return Error(SQLITE_INTERNAL, std::move(m)); }

  bool ok() const { return code_ == SQLITE_OK; }
  int code() const { return code_; }
  const std::string& message() const { return message_; }

  bool is_not_leader() const { return code_ == kErrNotLeader; }
  bool is_leadership_lost() const { return code_ == kErrLeadershipLost; }
  bool is_outcome_unknown() const { return code_ == kErrOutcomeUnknown; }
  bool is_corruption() const { return (code_ & 0xff) == SQLITE_CORRUPT; }
  bool is_busy() const { return (code_ & 0xff) == SQLITE_BUSY; }
  bool is_divergence() const { return code_ == kErrDivergence; }

  // Returns a copy whose message is "context: message". OK stays OK.
  Status with_context(std::string_view context) const {
    if (ok()) return *this;
    std::string m(context);
    m += ": ";
    m += message_;
    return Status(code_, std::move(m));
  }

  std::string to_string() const {
    if (ok()) return "OK";
    return message_ + " (code " + std::to_string(code_) + ")";
  }

 private:
  Status(int code, std::string message) : code_(code), message_(std::move(message)) {}

  int code_ = SQLITE_OK;
  std::string message_;
};

// Either a value or an error Status.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { assert(ok()); return std::get<T>(v_); }
  const T& value() const& { assert(ok()); return std::get<T>(v_); }
  T&& value() && { assert(ok()); return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace sqraft
