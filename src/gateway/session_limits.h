// The gateway's fixed per-connection sizes and limits.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sqraft {

// Bytes asked of the socket per read.
inline constexpr size_t kReadChunk = 64 * 1024;
// A ROWS message ends after the row that takes it past this size.
inline constexpr size_t kRowsBatchBytes = 64 * 1024;

// Requests a client may pipeline behind the one running.
inline constexpr size_t kMaxQueued = 64;
// How long a read on the client's connection waits for a lock.
inline constexpr int kReaderBusyTimeoutMs = 5000;
// Databases open on one connection.
inline constexpr size_t kMaxDbs = 16;
// Prepared statements on one connection.
inline constexpr size_t kMaxStmts = 4096;
// Largest body of a peer's CONNECT request.
inline constexpr uint64_t kMaxConnectBody = 4096;

}  // namespace sqraft
