// Node addresses.
//
// One syntax everywhere (CLI, C API, cluster configuration, wire protocol):
//   host:port     TCP (IPv4, [IPv6] or a host name; port 8080 if omitted)
//   @name         Linux abstract unix socket
//   /path, ./path a unix socket at a file system path
//
// The sockets behind them are in src/server/sockets.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "status.h"

namespace sqraft {

struct Address {
  enum class Kind { kTcp, kAbstract, kPath };
  Kind kind = Kind::kTcp;
  std::string host;  // kTcp
  uint16_t port = 0;  // kTcp
  std::string path;  // kAbstract: the name without '@'; kPath: the path
  std::string text;  // as written

  bool is_unix() const { return kind != Kind::kTcp; }
};

inline constexpr uint16_t kDefaultPort = 8080;

Result<Address> parse_address(std::string_view text);

}  // namespace sqraft
