// Sockets behind node addresses (src/protocol/address.h), on a libuv loop.
//
// The helpers work on a libuv loop and must be called on its thread.
// Streams they hand out are allocated with raft_malloc(), because a stream
// given to libraft is freed by libraft.
#pragma once

#include <uv.h>

#include <functional>

#include "address.h"
#include "status.h"

namespace sqraft {

// Opens a listening socket. On success *out is a uv_tcp_t or uv_pipe_t owned
// by the caller (close with uv_close, then raft_free).
Status listen_on(uv_loop_t* loop, const Address& address, int backlog, uv_connection_cb cb, void* data,
                 uv_stream_t** out);
// Accepts one connection from `server` into a new stream of the same kind.
Result<uv_stream_t*> accept_from(uv_stream_t* server);

// Connects to `address`; `done` runs on the loop thread with 0 and a stream
// (owned by the callee) or a libuv error code and nullptr. The returned
// handle can cancel the attempt (done then runs with UV_ECANCELED).
class Connector;
Connector* connect_to(uv_loop_t* loop, const Address& address,
                      std::function<void(int status, uv_stream_t* stream)> done);
void cancel_connect(Connector* c);

// Closes and frees a stream allocated by these helpers.
void close_stream(uv_stream_t* stream);

}  // namespace sqraft
