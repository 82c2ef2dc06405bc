#include "client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <algorithm>
#include <cstring>
#include <thread>

#include "address.h"

namespace sqraft {

bool needs_new_connection(const Status& s) {
  return (s.code() & 0xff) == SQLITE_IOERR || s.code() == SQLITE_NOTFOUND || s.code() == int(wire::kErrProto);
}


namespace {

Status net_error(const std::string& what, int err) { return Status::IoError(what + ": " + std::strerror(err)); }

// A FAILURE response as a Status: never OK, whatever the server sent (a
// code whose low 32 bits are 0 is SQLITE_ERROR).
Status failure_status(const std::vector<uint8_t>& body) {
  wire::BodyReader r(body);
  uint64_t code = 0;
  std::string message;
  if (!r.u64(&code) || !r.text(&message)) return Status::Error(int(wire::kErrProto), "malformed failure response");
  const int c = int(uint32_t(code));
  return Status::Error(c == 0 ? SQLITE_ERROR : c, message);
}

bool wait_fd(int fd, short events, unsigned timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    int rv = ::poll(&p, 1, int(timeout_ms));
    if (rv < 0 && errno == EINTR) continue;
    return rv > 0;
  }
}

Result<int> dial_fd(const std::string& text, unsigned timeout_ms) {
  Result<Address> addr = parse_address(text);
  if (!addr.ok()) return addr.status();
  const Address& a = addr.value();
  if (a.is_unix()) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    size_t len;
    if (a.kind == Address::Kind::kAbstract) {
      std::memcpy(sun.sun_path + 1, a.path.data(), a.path.size());
      len = offsetof(sockaddr_un, sun_path) + 1 + a.path.size();
    } else {
      std::memcpy(sun.sun_path, a.path.data(), a.path.size());
      len = offsetof(sockaddr_un, sun_path) + a.path.size() + 1;
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return net_error("socket", errno);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sun), socklen_t(len)) != 0) {
      const int err = errno;
      ::close(fd);
      return net_error("connect " + text, err);
    }
    return fd;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(a.port);
  if (int e = ::getaddrinfo(a.host.c_str(), port.c_str(), &hints, &res); e != 0) {
    return Status::IoError("resolve " + a.host + ": " + gai_strerror(e));
  }
  int last_err = ECONNREFUSED;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      last_err = errno;
      continue;
    }
    int rv = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rv != 0 && errno == EINPROGRESS) {
      if (wait_fd(fd, POLLOUT, timeout_ms)) {
        int err = 0;
        socklen_t l = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
        rv = err == 0 ? 0 : -1;
        errno = err;
      } else {
        errno = ETIMEDOUT;
      }
    }
    if (rv == 0) {
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::freeaddrinfo(res);
      return fd;
    }
    last_err = errno;
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return net_error("connect " + text, last_err);
}

}  // namespace

Client::Client(int fd, std::string address, unsigned timeout_ms)
    : fd_(fd), address_(std::move(address)), timeout_ms_(timeout_ms) {}

Client::~Client() {
  if (fd_ >= 0) ::close(fd_);
}

Status Client::write_all(const void* buf, size_t n) {
  const auto* p = static_cast<const uint8_t*>(buf);
  while (n > 0) {
    if (!wait_fd(fd_, POLLOUT, timeout_ms_)) {
      broken_ = true;
      return Status::IoError("write to " + address_ + ": timed out");
    }
    ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      broken_ = true;
      return net_error("write to " + address_, errno);
    }
    p += w;
    n -= size_t(w);
  }
  return Status::Ok();
}

Status Client::read_exact(void* buf, size_t n) {
  auto* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    if (!wait_fd(fd_, POLLIN, timeout_ms_)) {
      broken_ = true;
      return Status::IoError("read from " + address_ + ": timed out");
    }
    ssize_t r = ::recv(fd_, p, n, 0);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      broken_ = true;
      return net_error("read from " + address_, errno);
    }
    if (r == 0) {
      broken_ = true;
      return Status::IoError("read from " + address_ + ": connection closed");
    }
    p += r;
    n -= size_t(r);
  }
  return Status::Ok();
}

Result<std::unique_ptr<Client>> Client::dial(const std::string& address, unsigned timeout_ms) {
  Result<int> fd = dial_fd(address, timeout_ms);
  if (!fd.ok()) return fd.status();
  return adopt(fd.value(), address, timeout_ms);
}

Result<std::unique_ptr<Client>> Client::adopt(int fd, std::string name, unsigned timeout_ms) {
  std::unique_ptr<Client> c(new Client(fd, std::move(name), timeout_ms));
  wire::BodyWriter proto;
  proto.u64(wire::kProtocolVersion);
  if (Status s = c->write_all(proto.bytes().data(), proto.size()); !s.ok()) return s;
  return c;
}

Status Client::send_raw(const std::vector<uint8_t>& bytes) { return write_all(bytes.data(), bytes.size()); }

Result<std::pair<wire::Header, std::vector<uint8_t>>> Client::receive() {
  uint8_t head[wire::kHeaderSize];
  if (Status s = read_exact(head, sizeof head); !s.ok()) return s;
  wire::Header h = wire::decode_header(head);
  const size_t total = size_t(h.words) * wire::kWord;
  // Large bodies (a DUMP's FILES) are read in pieces so a caller can show
  // progress. The buffer grows with the bytes that arrived, not with what
  // the header claims: 8 bytes from a broken server must not allocate up
  // to 32 GiB.
  constexpr size_t kPiece = size_t{1} << 20;
  std::vector<uint8_t> body;
  for (size_t done = 0; done < total;) {
    const size_t n = std::min(kPiece, total - done);
    body.resize(done + n);
    if (Status s = read_exact(body.data() + done, n); !s.ok()) return s;
    done += n;
    if (receive_progress_ && total > kPiece) receive_progress_(done, total);
  }
  return std::make_pair(h, std::move(body));
}

Result<std::vector<uint8_t>> Client::call(uint8_t type, const wire::BodyWriter& body, uint8_t expected, uint8_t schema) {
  if (broken_) return Status::IoError("connection to " + address_ + " is broken");
  if (Status s = send_raw(body.finish(type, schema)); !s.ok()) return s;
  auto msg = receive();
  if (!msg.ok()) return msg.status();
  auto& [h, data] = msg.value();
  if (h.type == wire::kFailure) return failure_status(data);
  if (h.type != expected) {
    broken_ = true;
    return Status::Error(int(wire::kErrProto), "unexpected response type " + std::to_string(h.type) + " to " +
                                                   wire::request_name(type));
  }
  return std::move(data);
}

Result<std::unique_ptr<Client>> Client::connect_node(const std::string& address, unsigned timeout_ms) {
  return dial(address, timeout_ms);
}

Result<std::unique_ptr<Client>> Client::connect(const Options& options) {
  if (options.addresses.empty()) return Status::Invalid("no node addresses given");
  Status last = Status::NotLeader("no leader found");
  for (unsigned round = 0; round < std::max(1u, options.connect_attempts); round++) {
    if (round > 0) std::this_thread::sleep_for(std::chrono::milliseconds(std::min(250u, 25u << std::min(round, 4u))));
    for (const std::string& address : options.addresses) {
      Result<std::unique_ptr<Client>> c = dial(address, options.timeout_ms);
      if (!c.ok()) {
        last = c.status();
        continue;
      }
      Result<ServerInfo> l = c.value()->leader();
      if (!l.ok()) {
        last = l.status();
        continue;
      }
      std::unique_ptr<Client> client;
      if (l->address == address) {
        client = std::move(c).value();
      } else if (!l->address.empty()) {
        Result<std::unique_ptr<Client>> lc = dial(l->address, options.timeout_ms);
        if (!lc.ok()) {
          last = lc.status();
          continue;
        }
        Result<ServerInfo> again = lc.value()->leader();
        if (!again.ok() || again->address != l->address) {
          last = again.ok() ? Status::NotLeader("reported leader " + l->address + " is not the leader") : again.status();
          continue;
        }
        client = std::move(lc).value();
      } else {
        last = Status::NotLeader("node " + address + " knows no leader");
        continue;
      }
      wire::BodyWriter w;
      w.u64(options.client_id);
      Result<std::vector<uint8_t>> welcome = client->call(wire::kClient, w, wire::kWelcome);
      if (!welcome.ok()) {
        last = welcome.status();
        continue;
      }
      return client;
    }
  }
  return last;
}

// ---- SQL ---------------------------------------------------------------------

Result<uint32_t> Client::open(const std::string& db) {
  wire::BodyWriter w;
  w.text(db);
  w.u64(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  w.text("volatile");
  Result<std::vector<uint8_t>> r = call(wire::kOpen, w, wire::kDb);
  if (!r.ok()) return r.status();
  wire::BodyReader rd(r.value());
  uint32_t id, pad;
  if (!rd.u32_pair(&id, &pad)) return Status::Error(int(wire::kErrProto), "malformed DB response");
  return id;
}

namespace {
Result<Client::Outcome> decode_result(const std::vector<uint8_t>& body) {
  wire::BodyReader rd(body);
  Client::Outcome o;
  if (!rd.u64(&o.last_insert_id) || !rd.u64(&o.rows_affected)) {
    return Status::Error(int(wire::kErrProto), "malformed RESULT response");
  }
  return o;
}
uint8_t params_schema(const std::vector<wire::Value>& params) { return params.size() > 255 ? 1 : 0; }
}  // namespace

namespace {
// The protocol's text ends at a NUL byte: a text with one inside would be
// cut there by the server and the rest read as the next fields. Refuse it
// here, with a clear error, rather than send a malformed request.
Status check_text(const std::string* sql, const std::vector<wire::Value>& params) {
  if (sql != nullptr && sql->find('\0') != std::string::npos) {
    return Status::Invalid("the SQL text contains a NUL byte, which the wire protocol cannot carry");
  }
  for (size_t i = 0; i < params.size(); i++) {
    const wire::Value& v = params[i];
    if ((v.type == wire::kText || v.type == wire::kIso8601) && v.bytes.find('\0') != std::string::npos) {
      return Status::Invalid("text parameter " + std::to_string(i + 1) +
                             " contains a NUL byte, which the wire protocol cannot carry: bind it as a blob");
    }
  }
  return Status::Ok();
}
}  // namespace

Result<std::vector<uint8_t>> Client::statement_request(uint8_t type, uint8_t answer, uint32_t db,
                                                       const std::string* sql, uint32_t stmt,
                                                       const std::vector<wire::Value>& params) {
  if (Status s = check_text(sql, params); !s.ok()) return s;
  wire::BodyWriter w;
  if (sql != nullptr) {  // EXEC_SQL, QUERY_SQL
    w.u64(db);
    w.text(*sql);
  } else {  // EXEC, QUERY of a prepared statement
    w.u32_pair(db, stmt);
  }
  const uint8_t schema = params_schema(params);
  w.params(params, schema);
  return call(type, w, answer, schema);
}

Result<std::unique_ptr<Rows>> Client::rows_from(Result<std::vector<uint8_t>> first) {
  if (!first.ok()) return first.status();
  std::unique_ptr<Rows> rows(new Rows(this, std::move(first).value()));
  if (!rows->status().ok()) return rows->status();
  return rows;
}

Result<Client::Outcome> Client::exec(uint32_t db, const std::string& sql, const std::vector<wire::Value>& params) {
  Result<std::vector<uint8_t>> r = statement_request(wire::kExecSql, wire::kResult, db, &sql, 0, params);
  if (!r.ok()) return r.status();
  return decode_result(r.value());
}

Result<std::unique_ptr<Rows>> Client::query(uint32_t db, const std::string& sql, const std::vector<wire::Value>& params) {
  return rows_from(statement_request(wire::kQuerySql, wire::kRows, db, &sql, 0, params));
}

Result<Client::Prepared> Client::prepare(uint32_t db, const std::string& sql) {
  if (Status s = check_text(&sql, {}); !s.ok()) return s;
  wire::BodyWriter w;
  w.u64(db);
  w.text(sql);
  Result<std::vector<uint8_t>> r = call(wire::kPrepare, w, wire::kStmt);
  if (!r.ok()) return r.status();
  wire::BodyReader rd(r.value());
  Prepared p;
  if (!rd.u32_pair(&p.db, &p.id) || !rd.u64(&p.params)) return Status::Error(int(wire::kErrProto), "malformed STMT");
  return p;
}

Result<Client::Outcome> Client::exec_prepared(const Prepared& stmt, const std::vector<wire::Value>& params) {
  Result<std::vector<uint8_t>> r = statement_request(wire::kExec, wire::kResult, stmt.db, nullptr, stmt.id, params);
  if (!r.ok()) return r.status();
  return decode_result(r.value());
}

Result<std::unique_ptr<Rows>> Client::query_prepared(const Prepared& stmt, const std::vector<wire::Value>& params) {
  return rows_from(statement_request(wire::kQuery, wire::kRows, stmt.db, nullptr, stmt.id, params));
}

Status Client::finalize(const Prepared& stmt) {
  wire::BodyWriter w;
  w.u32_pair(stmt.db, stmt.id);
  return call(wire::kFinalize, w, wire::kEmpty).status();
}

// ---- cluster --------------------------------------------------------------------

Result<ServerInfo> Client::leader() {
  wire::BodyWriter w;
  w.u64(0);
  Result<std::vector<uint8_t>> r = call(wire::kLeader, w, wire::kServer);
  if (!r.ok()) return r.status();
  wire::BodyReader rd(r.value());
  ServerInfo info;
  if (!rd.u64(&info.id) || !rd.text(&info.address)) return Status::Error(int(wire::kErrProto), "malformed SERVER");
  return info;
}

Result<std::vector<ServerInfo>> Client::cluster() {
  wire::BodyWriter w;
  w.u64(1);
  Result<std::vector<uint8_t>> r = call(wire::kCluster, w, wire::kServers);
  if (!r.ok()) return r.status();
  wire::BodyReader rd(r.value());
  uint64_t n;
  if (!rd.u64(&n) || n > rd.remaining()) return Status::Error(int(wire::kErrProto), "malformed SERVERS");
  std::vector<ServerInfo> out(n);
  for (auto& s : out) {
    if (!rd.u64(&s.id) || !rd.text(&s.address) || !rd.u64(&s.role)) {
      return Status::Error(int(wire::kErrProto), "malformed SERVERS");
    }
  }
  return out;
}

Status Client::add(uint64_t id, const std::string& address) {
  wire::BodyWriter w;
  w.u64(id);
  w.text(address);
  return call(wire::kAdd, w, wire::kEmpty).status();
}

Status Client::assign(uint64_t id, uint64_t role) {
  wire::BodyWriter w;
  w.u64(id);
  w.u64(role);
  return call(wire::kAssign, w, wire::kEmpty).status();
}

Status Client::remove(uint64_t id) {
  wire::BodyWriter w;
  w.u64(id);
  return call(wire::kRemove, w, wire::kEmpty).status();
}

Status Client::transfer(uint64_t id) {
  wire::BodyWriter w;
  w.u64(id);
  return call(wire::kTransfer, w, wire::kEmpty).status();
}

Result<Client::Metadata> Client::describe() {
  wire::BodyWriter w;
  w.u64(0);
  Result<std::vector<uint8_t>> r = call(wire::kDescribe, w, wire::kMetadata);
  if (!r.ok()) return r.status();
  wire::BodyReader rd(r.value());
  Metadata m;
  if (!rd.u64(&m.failure_domain) || !rd.u64(&m.weight)) return Status::Error(int(wire::kErrProto), "malformed METADATA");
  return m;
}

Status Client::weight(uint64_t weight) {
  wire::BodyWriter w;
  w.u64(weight);
  return call(wire::kWeight, w, wire::kEmpty).status();
}

Result<std::vector<File>> Client::dump(const std::string& db) {
  wire::BodyWriter w;
  w.text(db);
  Result<std::vector<uint8_t>> r = call(wire::kDump, w, wire::kFiles);
  if (!r.ok()) return r.status();
  wire::BodyReader rd(r.value());
  uint64_t n;
  if (!rd.u64(&n) || n > 16) return Status::Error(int(wire::kErrProto), "malformed FILES");
  std::vector<File> files(n);
  for (File& f : files) {
    uint64_t size;
    if (!rd.text(&f.name) || !rd.u64(&size) || size > rd.remaining()) {
      return Status::Error(int(wire::kErrProto), "malformed FILES");
    }
    f.data.resize(size);
    if (!rd.raw(f.data.data(), size)) return Status::Error(int(wire::kErrProto), "malformed FILES");
  }
  return files;
}

// ---- Rows -------------------------------------------------------------------------

Rows::Rows(Client* c, std::vector<uint8_t> first) : client_(c) { load(std::move(first)); }

bool Rows::load(std::vector<uint8_t> body) {
  body_ = std::move(body);
  offset_ = 0;
  wire::BodyReader rd(body_);
  uint64_t n;
  if (!rd.u64(&n) || n > rd.remaining()) {
    status_ = Status::Error(int(wire::kErrProto), "malformed ROWS");
    done_ = true;
    return false;
  }
  std::vector<std::string> cols(n);
  for (auto& c : cols) {
    if (!rd.text(&c)) {
      status_ = Status::Error(int(wire::kErrProto), "malformed ROWS");
      done_ = true;
      return false;
    }
  }
  columns_ = std::move(cols);
  offset_ = body_.size() - rd.remaining();
  return true;
}

bool Rows::next(std::vector<wire::Value>* out) {
  for (;;) {
    if (done_) return false;
    const size_t left = body_.size() - offset_;
    if (left < 8) {
      status_ = Status::Error(int(wire::kErrProto), "ROWS without an end marker");
      done_ = true;
      return false;
    }
    const uint8_t first = body_[offset_];
    if (first == 0xee || first == 0xff) {
      if (first == 0xff) {
        done_ = true;
        return false;
      }
      // The server sends the next batch by itself.
      auto msg = client_->receive();
      if (!msg.ok()) {
        status_ = msg.status();
        done_ = true;
        return false;
      }
      if (msg->first.type == wire::kFailure) {
        status_ = failure_status(msg->second);
        done_ = true;
        return false;
      }
      if (msg->first.type != wire::kRows || !load(std::move(msg->second))) {
        if (status_.ok()) status_ = Status::Error(int(wire::kErrProto), "unexpected response during rows");
        done_ = true;
        return false;
      }
      continue;
    }
    if (columns_.empty()) {
      // A row of no columns takes no bytes: reading on would never end.
      status_ = Status::Error(int(wire::kErrProto), "malformed ROWS: a row without columns");
      done_ = true;
      return false;
    }
    wire::BodyReader rd(body_.data() + offset_, left);
    const size_t n = columns_.size();
    const size_t header = ((n + 1) / 2 + 7) / 8 * 8;
    std::vector<uint8_t> types(n);
    for (size_t i = 0; i < header; i++) {
      uint8_t b;
      if (!rd.u8(&b)) break;
      if (i * 2 < n) types[i * 2] = b & 0x0f;
      if (i * 2 + 1 < n) types[i * 2 + 1] = b >> 4;
    }
    out->assign(n, wire::Value());
    for (size_t i = 0; i < n; i++) {
      if (!rd.value(wire::ValueType(types[i]), &(*out)[i])) {
        status_ = Status::Error(int(wire::kErrProto), "malformed row");
        done_ = true;
        return false;
      }
      // dqlite sends a NULL in a DATETIME column as an empty ISO8601 text
      // (as go-dqlite does, read it back as NULL).
      wire::Value& v = (*out)[i];
      if (v.type == wire::kIso8601 && v.bytes.empty()) v = wire::Value::Null();
    }
    offset_ = body_.size() - rd.remaining();
    return true;
  }
}

Status Rows::close() {
  if (done_) return status_;
  const bool more_pending = body_.size() - offset_ >= 8 && body_[body_.size() - 8] == 0xee;
  done_ = true;
  if (!more_pending) return Status::Ok();
  wire::BodyWriter w;
  w.u64(0);
  if (Status s = client_->send_raw(w.finish(wire::kInterrupt)); !s.ok()) return s;
  for (;;) {
    auto msg = client_->receive();
    if (!msg.ok()) return msg.status();
    if (msg->first.type == wire::kEmpty) return Status::Ok();
  }
}

Rows::~Rows() { (void)close(); }

}  // namespace sqraft
