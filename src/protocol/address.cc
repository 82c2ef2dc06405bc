#include "address.h"

#include <sys/un.h>

#include <string>

namespace sqraft {

Result<Address> parse_address(std::string_view text) {
  Address a;
  a.text = std::string(text);
  if (text.empty()) return Status::Invalid("empty address");
  if (text[0] == '@') {
    a.kind = Address::Kind::kAbstract;
    a.path = std::string(text.substr(1));
    if (a.path.empty()) return Status::Invalid("address '@': abstract socket name is empty");
    if (a.path.size() > sizeof(sockaddr_un{}.sun_path) - 1) {
      return Status::Invalid("address '" + a.text + "': abstract socket name too long");
    }
    return a;
  }
  if (text[0] == '/' || text[0] == '.') {
    a.kind = Address::Kind::kPath;
    a.path = std::string(text);
    if (a.path.size() > sizeof(sockaddr_un{}.sun_path) - 1) {
      return Status::Invalid("address '" + a.text + "': socket path longer than " +
                             std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes");
    }
    return a;
  }
  a.kind = Address::Kind::kTcp;
  std::string_view host = text;
  std::string_view port;
  if (text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return Status::Invalid("address '" + a.text + "': missing ']'");
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return Status::Invalid("address '" + a.text + "': expected ':' after ']'");
      port = text.substr(close + 2);
    }
  } else if (const size_t colon = text.rfind(':'); colon != std::string_view::npos) {
    if (text.find(':') != colon) return Status::Invalid("address '" + a.text + "': IPv6 addresses need [brackets]");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) return Status::Invalid("address '" + a.text + "': missing host");
  a.host = std::string(host);
  a.port = kDefaultPort;
  if (!port.empty()) {
    unsigned long v = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return Status::Invalid("address '" + a.text + "': port is not a number");
      v = v * 10 + unsigned(c - '0');
      if (v > 65535) return Status::Invalid("address '" + a.text + "': port out of range");
    }
    if (v == 0) return Status::Invalid("address '" + a.text + "': port 0");
    a.port = uint16_t(v);
  }
  return a;
}

}  // namespace sqraft
