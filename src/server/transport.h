// Transport: libraft's raft_uv_transport over sqraft's single node address.
//
// Outgoing: connect to the peer's address, send the protocol handshake and a
// CONNECT request (our id and address), then hand the stream to Raft.
// Incoming: the node's listener reads a peer's handshake and CONNECT request
// and passes the stream here (accept()), which hands it to Raft.
//
// Thread-safety: loop thread only.
#pragma once

#include <set>
#include <string>

#include "sockets.h"
#include "raft_api.h"

namespace sqraft {

class Transport {
 public:
  // `silent_peer_ms` (0: off): a TCP peer connection whose sent data stays
  // unacknowledged this long is aborted by the kernel (TCP_USER_TIMEOUT), so
  // Raft reconnects instead of waiting out TCP's retransmission back-off —
  // after packet loss or a healed partition, a stalled connection otherwise
  // delays heartbeats and elections by seconds.
  explicit Transport(uv_loop_t* loop, unsigned silent_peer_ms = 0);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  struct raft_uv_transport* raft_transport() { return &t_; }

  // A peer connected to us: give its stream to Raft (or close it if Raft is
  // not listening). Takes ownership of `stream`.
  void accept(raft_id peer_id, const std::string& peer_address, uv_stream_t* stream);

  // Encodes the handshake + CONNECT request a node sends first.
  static std::vector<uint8_t> connect_preamble(raft_id id, const std::string& address);

 private:
  struct Attempt;
  static int init(struct raft_uv_transport* t, raft_id id, const char* address);
  static int listen(struct raft_uv_transport* t, raft_uv_accept_cb cb);
  static int connect(struct raft_uv_transport* t, struct raft_uv_connect* req, raft_id id, const char* address,
                     raft_uv_connect_cb cb);
  static void close(struct raft_uv_transport* t, raft_uv_transport_close_cb cb);
  int start_attempt(struct raft_uv_connect* req, const char* address, raft_uv_connect_cb cb);
  void send_preamble(Attempt* a, uv_stream_t* stream);
  void preamble_written(Attempt* a, int status);
  void finish_attempt(Attempt* a, int status, uv_stream_t* stream);
  void maybe_closed();
  void limit_silence(uv_stream_t* stream) const;

  struct raft_uv_transport t_ {};
  uv_loop_t* loop_;
  unsigned silent_peer_ms_;
  raft_id id_ = 0;
  std::string address_;
  raft_uv_accept_cb accept_cb_ = nullptr;
  std::set<Attempt*> attempts_;
  bool closing_ = false;
  raft_uv_transport_close_cb close_cb_ = nullptr;
};

}  // namespace sqraft
