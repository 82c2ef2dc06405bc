// A session's connection: the handshake, framing of incoming messages, the
// CONNECT hand-off of a Raft peer's socket, writing responses, and the
// bookkeeping of jobs that keep the session alive.
#include "session.h"

#include <spdlog/spdlog.h>

#include <cassert>
#include <chrono>
#include <cstring>
#include <utility>

#include "boundary.h"
#include "byte_order.h"
#include "session_limits.h"

namespace sqraft {

namespace {

std::string peer_name(uv_stream_t* s) {
  if (s->type != UV_TCP) return "unix socket";
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (uv_tcp_getpeername(reinterpret_cast<uv_tcp_t*>(s), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[64] = {0};
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    uv_ip4_name(in, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  uv_ip6_name(in6, host, sizeof host);
  return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
}

}  // namespace

Session::Session(GatewayContext& node, uint64_t id, uv_stream_t* stream) : node_(node), id_(id), stream_(stream) {
  stream_->data = this;
}

Session::~Session() {
  stream_rows_.reset();
  for (auto& [id, d] : dbs_) close_db(d);
  for (auto& d : graveyard_) close_db(d);
}

void Session::close_db(Db& d) {
  d.cache.reset();
  d.guard.reset();
  if (d.conn) sqlite3_close_v2(d.conn);
  d.conn = nullptr;
}

void Session::start() {
  int rv = uv_read_start(stream_, on_alloc, on_read);
  if (rv != 0) close(std::string("read: ") + uv_strerror(rv));
}

void Session::close(const std::string& why) {
  if (closing_) return;
  closing_ = true;
  cancel_ = uint8_t(StopReason::kClientGone);  // stops this client's SQL wherever it runs
  spdlog::debug("session {}: closing: {}", id_, why);
  for (auto& [id, d] : dbs_) {
    if (d.writer) d.writer->release(id_);
  }
  if (stream_ != nullptr) {
    uv_read_stop(stream_);
    uv_close(reinterpret_cast<uv_handle_t*>(stream_), [](uv_handle_t* h) {
      auto* s = static_cast<Session*>(h->data);
      raft_free(h);
      s->stream_ = nullptr;
      s->stream_closed_ = true;
      if (s->reapable()) s->node_.reap(s);
    });
  } else {
    stream_closed_ = true;
  }
}

void Session::start_read_job(std::function<void()> task) {
  if (launch_job([&] { return node_.readers().submit(std::move(task)); })) return;
  // The pool has stopped: the node is shutting down.
  fail(Status::LeadershipLost("leadership lost: node is shutting down"));
}

bool Session::start_writer_job(DbWriter& writer, DbWriter::Request req) {
  return launch_job([&] { return writer.submit(std::move(req)); });
}

void Session::back_to_loop(std::function<void()> fn) {
  // Refused only once the loop is gone: the node is stopping and frees every
  // session itself after its threads end, so the completion has nobody to
  // tell. Dropping it loses nothing.
  (void)node_.post(std::move(fn));
}

bool Session::job_finished() {
  assert(jobs_ > 0);
  jobs_--;
  if (closing_) {
    if (reapable()) node_.reap(this);
    return false;
  }
  return true;
}

void Session::on_leadership_lost() {}

// ---- reading -------------------------------------------------------------------

void Session::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* s = static_cast<Session*>(h->data);
  size_t want = kReadChunk;
  // Until we know this is a client, read exactly what the current step
  // needs: a peer's Raft traffic follows its CONNECT request on the same
  // socket and must be left for Raft.
  const size_t have = s->in_.size() - s->in_used_;
  switch (s->phase_) {
    case Phase::kHandshake:
    case Phase::kFirstHeader:
      want = 8 - std::min<size_t>(have, 7);
      break;
    case Phase::kFirstBody:
      want = size_t(s->pending_header_->words) * wire::kWord - have;
      break;
    case Phase::kClient:
      break;
  }
  if (want == 0) want = 1;
  // Out of memory: an empty buffer, which libuv reports as UV_ENOBUFS.
  *buf = uv_buf_init(nullptr, 0);
  at_c_boundary("session read buffer", [&] {
    s->read_buf_.resize(want);
    *buf = uv_buf_init(reinterpret_cast<char*>(s->read_buf_.data()), unsigned(want));
  });
}

void Session::on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
  auto* s = static_cast<Session*>(stream->data);
  if (s->closing_) return;
  if (n < 0) {
    s->close(n == UV_EOF ? "peer closed the connection" : std::string("read: ") + uv_strerror(int(n)));
    return;
  }
  if (n > 0 && !at_c_boundary("session request", [&] { s->on_bytes(reinterpret_cast<const uint8_t*>(buf->base), size_t(n)); })) {
    s->close("internal error handling a request (see the log)");
  }
}

void Session::on_bytes(const uint8_t* data, size_t n) {
  if (in_used_ > 0 && in_used_ == in_.size()) {
    in_.clear();
    in_used_ = 0;
  } else if (in_used_ > kReadChunk) {
    in_.erase(in_.begin(), in_.begin() + long(in_used_));
    in_used_ = 0;
  }
  in_.insert(in_.end(), data, data + n);
  parse();
}

void Session::parse() {
  while (!closing_) {
    const size_t have = in_.size() - in_used_;
    const uint8_t* p = in_.data() + in_used_;
    if (phase_ == Phase::kHandshake) {
      if (have < 8) return;
      const uint64_t version = get_le64(p);
      in_used_ += 8;
      if (version != wire::kProtocolVersion && version != wire::kProtocolVersionLegacy) {
        spdlog::warn("connection from {}: unsupported protocol version {:#x}; closing", peer_name(stream_), version);
        close("bad protocol version");
        return;
      }
      phase_ = Phase::kFirstHeader;
      continue;
    }
    if (!pending_header_) {
      if (have < wire::kHeaderSize) return;
      wire::Header h = wire::decode_header(p);
      in_used_ += wire::kHeaderSize;
      const uint64_t len = uint64_t(h.words) * wire::kWord;
      if (phase_ == Phase::kFirstHeader) {
        if (h.type == wire::kConnect) {
          if (len > kMaxConnectBody) {
            spdlog::warn("connection from {}: CONNECT request of {} bytes; closing", peer_name(stream_), len);
            close("oversized CONNECT");
            return;
          }
          phase_ = Phase::kFirstBody;
        } else {
          phase_ = Phase::kClient;
        }
      }
      if (len > node_.max_message_bytes()) {
        spdlog::warn("session {}: {} request of {} bytes exceeds the limit of {}; closing", id_,
                     wire::request_name(h.type), len, node_.max_message_bytes());
        send(wire::failure(wire::kErrProto, "message of " + std::to_string(len) + " bytes exceeds the limit of " +
                                                std::to_string(node_.max_message_bytes()) + " bytes"),
             [this] { close("oversized message"); });
        uv_read_stop(stream_);
        return;
      }
      pending_header_ = h;
      continue;
    }
    const size_t len = size_t(pending_header_->words) * wire::kWord;
    if (have < len) return;
    Message m;
    m.header = *pending_header_;
    m.body.assign(p, p + len);
    in_used_ += len;
    pending_header_.reset();
    if (phase_ == Phase::kFirstBody) {
      hand_to_raft(m);
      return;
    }
    dispatch(std::move(m));
  }
}

void Session::hand_to_raft(const Message& m) {
  wire::BodyReader r(m.body);
  uint64_t peer_id = 0;
  std::string address;
  if (!r.u64(&peer_id) || !r.text(&address) || peer_id == 0) {
    spdlog::warn("connection from {}: malformed CONNECT request; closing", peer_name(stream_));
    close("malformed CONNECT");
    return;
  }
  uv_read_stop(stream_);
  uv_stream_t* s = stream_;
  stream_ = nullptr;
  closing_ = true;
  stream_closed_ = true;
  spdlog::debug("raft peer {} ({}) connected", peer_id, address);
  node_.hand_to_raft(peer_id, address, s);
  node_.reap(this);
}


// ---- writing -------------------------------------------------------------------

namespace {
struct WriteReq {
  uv_write_t req;
  Session* session;
  std::vector<uint8_t> data;
  std::function<void()> after;
};
}  // namespace

void Session::send(std::vector<uint8_t> msg, std::function<void()> after) {
  if (stream_ == nullptr || closing_) return;
  size_t sent = 0;
  if (!after) {
    // Most answers fit the socket buffer: written now, they need no write
    // request, no completion and no change of the poll set (uv_write would
    // cost an epoll_ctl per answer). libuv refuses (UV_EAGAIN) while
    // earlier writes are queued, so the order of answers holds.
    uv_buf_t now = uv_buf_init(reinterpret_cast<char*>(msg.data()), unsigned(msg.size()));
    const int n = uv_try_write(stream_, &now, 1);
    if (n == int(msg.size())) return;
    if (n > 0) {
      sent = size_t(n);
    } else if (n != UV_EAGAIN) {
      close(std::string("write: ") + uv_strerror(n));
      return;
    }
  }
  auto* w = new WriteReq{{}, this, std::move(msg), std::move(after)};
  w->req.data = w;
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(w->data.data() + sent), unsigned(w->data.size() - sent));
  int rv = uv_write(&w->req, stream_, &buf, 1, [](uv_write_t* req, int status) {
    // Write callbacks run before the stream's close callback: the session
    // is still there.
    std::unique_ptr<WriteReq> wr(static_cast<WriteReq*>(req->data));
    if (status == 0 && wr->after && !at_c_boundary("session write", wr->after)) {
      wr->session->close("internal error streaming rows (see the log)");
    }
  });
  if (rv != 0) {
    delete w;
    close(std::string("write: ") + uv_strerror(rv));
  }
}

void Session::reply_failure(uint64_t code, const std::string& message) {
  node_.metrics().error(code);
  send(wire::failure(code, message));
}

void Session::reply_failure(const Status& s) {
  reply_failure(uint64_t(uint32_t(s.code())), s.message());
}

void Session::reply_empty() {
  wire::BodyWriter w;
  w.u64(0);
  send(w.finish(wire::kEmpty));
}

}  // namespace sqraft
