#include "transport.h"

#include <spdlog/spdlog.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>

#include "boundary.h"
#include "wire.h"

namespace sqraft {

struct Transport::Attempt {
  Transport* self;
  struct raft_uv_connect* req;
  raft_uv_connect_cb cb;
  Connector* connector = nullptr;
  uv_stream_t* stream = nullptr;
  uv_write_t write{};
  std::vector<uint8_t> preamble;
  std::string peer;
};

Transport::Transport(uv_loop_t* loop, unsigned silent_peer_ms) : loop_(loop), silent_peer_ms_(silent_peer_ms) {
  t_.impl = this;
  t_.init = init;
  t_.listen = listen;
  t_.connect = connect;
  t_.close = close;
}

Transport::~Transport() = default;

std::vector<uint8_t> Transport::connect_preamble(raft_id id, const std::string& address) {
  wire::BodyWriter proto;
  proto.u64(wire::kProtocolVersion);
  wire::BodyWriter body;
  body.u64(id);
  body.text(address);
  std::vector<uint8_t> out = proto.bytes();
  std::vector<uint8_t> msg = body.finish(wire::kConnect);
  out.insert(out.end(), msg.begin(), msg.end());
  return out;
}

int Transport::init(struct raft_uv_transport* t, raft_id id, const char* address) {
  auto* self = static_cast<Transport*>(t->impl);
  self->id_ = id;
  self->address_ = address;
  return 0;
}

int Transport::listen(struct raft_uv_transport* t, raft_uv_accept_cb cb) {
  static_cast<Transport*>(t->impl)->accept_cb_ = cb;  // the node's listener feeds accept()
  return 0;
}

void Transport::limit_silence(uv_stream_t* stream) const {
  if (silent_peer_ms_ == 0 || stream->type != UV_TCP) return;
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(stream), &fd) != 0) return;
  const unsigned ms = silent_peer_ms_;
  // Best effort: without it the connection still works, only slower to
  // notice a dead path.
  if (::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms) != 0) {
    spdlog::debug("raft: TCP_USER_TIMEOUT: {}", std::strerror(errno));
  }
}

void Transport::accept(raft_id peer_id, const std::string& peer_address, uv_stream_t* stream) {
  if (accept_cb_ == nullptr || closing_) {
    close_stream(stream);
    return;
  }
  limit_silence(stream);
  accept_cb_(&t_, peer_id, peer_address.c_str(), stream);
}

int Transport::connect(struct raft_uv_transport* t, struct raft_uv_connect* req, raft_id id, const char* address,
                       raft_uv_connect_cb cb) {
  (void)id;
  int rv = RAFT_NOMEM;
  at_c_boundary("raft connect", [&] { rv = static_cast<Transport*>(t->impl)->start_attempt(req, address, cb); });
  return rv;
}

int Transport::start_attempt(struct raft_uv_connect* req, const char* address, raft_uv_connect_cb cb) {
  if (closing_) return RAFT_CANCELED;
  Result<Address> addr = parse_address(address);
  if (!addr.ok()) {
    spdlog::warn("raft: cannot connect to '{}': {}", address, addr.status().message());
    return RAFT_NOCONNECTION;
  }
  auto a = std::make_unique<Attempt>(Attempt{this, req, cb, nullptr, nullptr, {}, {}, address});
  a->preamble = connect_preamble(id_, address_);
  Attempt* raw = a.get();
  attempts_.insert(raw);
  a.release();  // freed by finish_attempt
  raw->connector = connect_to(loop_, addr.value(), [raw](int status, uv_stream_t* stream) {
    raw->connector = nullptr;
    if (status != 0) {
      raw->self->finish_attempt(raw, status == UV_ECANCELED ? RAFT_CANCELED : RAFT_NOCONNECTION, nullptr);
      return;
    }
    raw->self->send_preamble(raw, stream);
  });
  return 0;
}

void Transport::send_preamble(Attempt* a, uv_stream_t* stream) {
  a->stream = stream;
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(a->preamble.data()), unsigned(a->preamble.size()));
  a->write.data = a;
  int rv = uv_write(&a->write, stream, &buf, 1, [](uv_write_t* w, int st) {
    auto* at = static_cast<Attempt*>(w->data);
    at_c_boundary("raft connect", [&] { at->self->preamble_written(at, st); });
  });
  if (rv != 0) {
    a->stream = nullptr;
    close_stream(stream);
    finish_attempt(a, RAFT_NOCONNECTION, nullptr);
  }
}

void Transport::preamble_written(Attempt* a, int status) {
  uv_stream_t* s = a->stream;
  a->stream = nullptr;
  if (status != 0 || closing_) {
    close_stream(s);
    finish_attempt(a, closing_ ? RAFT_CANCELED : RAFT_NOCONNECTION, nullptr);
    return;
  }
  limit_silence(s);
  finish_attempt(a, 0, s);
}

void Transport::finish_attempt(Attempt* a, int status, uv_stream_t* stream) {
  attempts_.erase(a);
  a->cb(a->req, stream, status);
  delete a;
  maybe_closed();
}

void Transport::close(struct raft_uv_transport* t, raft_uv_transport_close_cb cb) {
  auto* self = static_cast<Transport*>(t->impl);
  self->closing_ = true;
  self->close_cb_ = cb;
  self->accept_cb_ = nullptr;
  for (Attempt* a : self->attempts_) {
    if (a->connector) cancel_connect(a->connector);
  }
  self->maybe_closed();
}

void Transport::maybe_closed() {
  if (!closing_ || !attempts_.empty() || close_cb_ == nullptr) return;
  auto cb = close_cb_;
  close_cb_ = nullptr;
  cb(&t_);
}

}  // namespace sqraft
