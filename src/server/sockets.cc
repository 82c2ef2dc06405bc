#include "sockets.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "boundary.h"
#include "raft_api.h"

namespace sqraft {

namespace {

size_t unix_sockaddr(const Address& a, sockaddr_un* sun) {
  std::memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  if (a.kind == Address::Kind::kAbstract) {
    std::memcpy(sun->sun_path + 1, a.path.data(), a.path.size());  // sun_path[0] = 0
    return offsetof(sockaddr_un, sun_path) + 1 + a.path.size();
  }
  std::memcpy(sun->sun_path, a.path.data(), a.path.size());
  return offsetof(sockaddr_un, sun_path) + a.path.size() + 1;
}

std::string errno_text(int err) { return std::strerror(err); }

// True if `sun` names a socket file that refuses connections: its listener
// is gone.
bool stale_socket_file(const sockaddr_un& sun, size_t len) {
  struct stat st;
  if (::stat(sun.sun_path, &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return false;
  const bool refused =
      ::connect(probe, reinterpret_cast<const sockaddr*>(&sun), socklen_t(len)) != 0 && errno == ECONNREFUSED;
  ::close(probe);
  return refused;
}

}  // namespace

Status listen_on(uv_loop_t* loop, const Address& address, int backlog, uv_connection_cb cb, void* data,
                 uv_stream_t** out) {
  if (address.is_unix()) {
    sockaddr_un sun;
    const size_t len = unix_sockaddr(address, &sun);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Status::IoError("socket: " + errno_text(errno));
    int bound = ::bind(fd, reinterpret_cast<sockaddr*>(&sun), socklen_t(len));
    if (bound != 0 && errno == EADDRINUSE && address.kind == Address::Kind::kPath &&
        stale_socket_file(sun, len)) {
      // Left behind by a process that died: nobody listens there any more.
      ::unlink(address.path.c_str());
      bound = ::bind(fd, reinterpret_cast<sockaddr*>(&sun), socklen_t(len));
    }
    if (bound != 0) {
      const int err = errno;
      ::close(fd);
      if (err == EADDRINUSE) return Status::IoError("address " + address.text + " is already in use");
      return Status::IoError("bind " + address.text + ": " + errno_text(err));
    }
    if (::listen(fd, backlog) != 0) {
      const int err = errno;
      ::close(fd);
      return Status::IoError("listen " + address.text + ": " + errno_text(err));
    }
    auto* pipe = static_cast<uv_pipe_t*>(raft_malloc(sizeof(uv_pipe_t)));
    uv_pipe_init(loop, pipe, 0);
    int rv = uv_pipe_open(pipe, fd);
    if (rv == 0) rv = uv_listen(reinterpret_cast<uv_stream_t*>(pipe), backlog, cb);
    if (rv != 0) {
      close_stream(reinterpret_cast<uv_stream_t*>(pipe));
      return Status::IoError("listen " + address.text + ": " + uv_strerror(rv));
    }
    pipe->data = data;
    *out = reinterpret_cast<uv_stream_t*>(pipe);
    return Status::Ok();
  }
  // TCP: numeric addresses, or a name resolved now (listening is set up once).
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(address.port);
  if (int e = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &res); e != 0) {
    return Status::IoError("resolve " + address.host + ": " + gai_strerror(e));
  }
  auto* tcp = static_cast<uv_tcp_t*>(raft_malloc(sizeof(uv_tcp_t)));
  uv_tcp_init(loop, tcp);
  int rv = uv_tcp_bind(tcp, res->ai_addr, 0);
  ::freeaddrinfo(res);
  if (rv == 0) rv = uv_listen(reinterpret_cast<uv_stream_t*>(tcp), backlog, cb);
  if (rv != 0) {
    close_stream(reinterpret_cast<uv_stream_t*>(tcp));
    if (rv == UV_EADDRINUSE) return Status::IoError("address " + address.text + " is already in use");
    return Status::IoError("listen " + address.text + ": " + uv_strerror(rv));
  }
  tcp->data = data;
  *out = reinterpret_cast<uv_stream_t*>(tcp);
  return Status::Ok();
}

Result<uv_stream_t*> accept_from(uv_stream_t* server) {
  uv_stream_t* client;
  if (server->type == UV_TCP) {
    auto* tcp = static_cast<uv_tcp_t*>(raft_malloc(sizeof(uv_tcp_t)));
    uv_tcp_init(server->loop, tcp);
    uv_tcp_nodelay(tcp, 1);
    client = reinterpret_cast<uv_stream_t*>(tcp);
  } else {
    auto* pipe = static_cast<uv_pipe_t*>(raft_malloc(sizeof(uv_pipe_t)));
    uv_pipe_init(server->loop, pipe, 0);
    client = reinterpret_cast<uv_stream_t*>(pipe);
  }
  int rv = uv_accept(server, client);
  if (rv != 0) {
    close_stream(client);
    return Status::IoError(std::string("accept: ") + uv_strerror(rv));
  }
  return client;
}

void close_stream(uv_stream_t* stream) {
  if (stream == nullptr) return;
  uv_close(reinterpret_cast<uv_handle_t*>(stream), [](uv_handle_t* h) { raft_free(h); });
}

// ---- connecting ---------------------------------------------------------------

// One connection attempt. It always completes through `done`, exactly once,
// from the loop (never from inside connect_to()).
class Connector {
 public:
  uv_loop_t* loop;
  Address address;
  std::function<void(int, uv_stream_t*)> done;
  bool cancelled = false;
  bool resolving = false;
  bool connecting = false;  // uv_tcp_connect in flight
  uv_getaddrinfo_t resolve{};
  uv_connect_t connect{};
  uv_tcp_t* tcp = nullptr;

  void finish(int status, uv_stream_t* stream) {
    if (cancelled) {
      if (stream != nullptr) close_stream(stream);
      stream = nullptr;
      status = UV_ECANCELED;
    }
    auto cb = std::move(done);
    delete this;
    cb(status, stream);
  }
  void finish_later(int status, uv_stream_t* stream);
};

namespace {

struct Deferred {
  uv_timer_t timer;
  Connector* c;
  int status;
  uv_stream_t* stream;
};

void tcp_connected(uv_connect_t* req, int status);
void on_tcp_connected(uv_connect_t* req, int status) {
  at_c_boundary("raft connect", [&] { tcp_connected(req, status); });
}
void tcp_connected(uv_connect_t* req, int status) {
  auto* c = static_cast<Connector*>(req->data);
  c->connecting = false;
  uv_stream_t* s = reinterpret_cast<uv_stream_t*>(c->tcp);
  c->tcp = nullptr;
  if (status != 0) {
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(s))) close_stream(s);
    c->finish(status, nullptr);
    return;
  }
  c->finish(0, s);
}

void start_tcp(Connector* c, const sockaddr* addr) {
  c->tcp = static_cast<uv_tcp_t*>(raft_malloc(sizeof(uv_tcp_t)));
  uv_tcp_init(c->loop, c->tcp);
  uv_tcp_nodelay(c->tcp, 1);
  c->connect.data = c;
  int rv = uv_tcp_connect(&c->connect, c->tcp, addr, on_tcp_connected);
  if (rv != 0) {
    close_stream(reinterpret_cast<uv_stream_t*>(c->tcp));
    c->tcp = nullptr;
    c->finish_later(rv, nullptr);
    return;
  }
  c->connecting = true;
}

void resolved(uv_getaddrinfo_t* req, int status, addrinfo* res);
void on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
  at_c_boundary("raft resolve", [&] { resolved(req, status, res); });
}
void resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
  auto* c = static_cast<Connector*>(req->data);
  c->resolving = false;
  if (status != 0 || res == nullptr || c->cancelled) {
    if (res) uv_freeaddrinfo(res);
    c->finish(status != 0 ? status : UV_EAI_NONAME, nullptr);
    return;
  }
  sockaddr_storage ss;
  std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
  uv_freeaddrinfo(res);
  start_tcp(c, reinterpret_cast<sockaddr*>(&ss));
}

}  // namespace

void Connector::finish_later(int status, uv_stream_t* stream) {
  auto* d = new Deferred{{}, this, status, stream};
  uv_timer_init(loop, &d->timer);
  d->timer.data = d;
  uv_timer_start(
      &d->timer,
      [](uv_timer_t* t) {
        auto* dd = static_cast<Deferred*>(t->data);
        Connector* conn = dd->c;
        const int st = dd->status;
        uv_stream_t* s = dd->stream;
        uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* h) { delete static_cast<Deferred*>(h->data); });
        at_c_boundary("raft connect", [&] { conn->finish(st, s); });
      },
      0, 0);
}

Connector* connect_to(uv_loop_t* loop, const Address& address, std::function<void(int, uv_stream_t*)> done) {
  auto* c = new Connector{loop, address, std::move(done)};
  if (address.is_unix()) {
    // Unix sockets connect (or fail) at once.
    sockaddr_un sun;
    const size_t len = unix_sockaddr(address, &sun);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      c->finish_later(uv_translate_sys_error(errno), nullptr);
      return c;
    }
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sun), socklen_t(len)) != 0) {
      const int err = errno;
      ::close(fd);
      c->finish_later(uv_translate_sys_error(err), nullptr);
      return c;
    }
    auto* pipe = static_cast<uv_pipe_t*>(raft_malloc(sizeof(uv_pipe_t)));
    uv_pipe_init(loop, pipe, 0);
    if (int rv = uv_pipe_open(pipe, fd); rv != 0) {
      close_stream(reinterpret_cast<uv_stream_t*>(pipe));
      c->finish_later(rv, nullptr);
      return c;
    }
    c->finish_later(0, reinterpret_cast<uv_stream_t*>(pipe));
    return c;
  }
  sockaddr_storage ss{};
  if (uv_ip4_addr(address.host.c_str(), address.port, reinterpret_cast<sockaddr_in*>(&ss)) == 0 ||
      uv_ip6_addr(address.host.c_str(), address.port, reinterpret_cast<sockaddr_in6*>(&ss)) == 0) {
    start_tcp(c, reinterpret_cast<sockaddr*>(&ss));
    return c;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  c->resolve.data = c;
  const std::string port = std::to_string(address.port);
  int rv = uv_getaddrinfo(loop, &c->resolve, on_resolved, address.host.c_str(), port.c_str(), &hints);
  if (rv != 0) {
    c->finish_later(rv, nullptr);
    return c;
  }
  c->resolving = true;
  return c;
}

void cancel_connect(Connector* c) {
  if (c->cancelled) return;
  c->cancelled = true;
  // Make pending work complete now rather than after a network timeout.
  if (c->resolving) uv_cancel(reinterpret_cast<uv_req_t*>(&c->resolve));
  if (c->connecting && c->tcp != nullptr) {
    uv_stream_t* s = reinterpret_cast<uv_stream_t*>(c->tcp);
    close_stream(s);  // the connect callback then fires with UV_ECANCELED
  }
}

}  // namespace sqraft
