// fuzz-client-responses: bytes from a hostile or broken server, parsed by
// the client's response handling.
//
// A Client is adopted over a socketpair whose other end has written the
// input and then shut down writing, so every read ends at the input's end
// (a timeout is never needed; a short one guards anyway). The client then
// runs what an application does — LEADER, OPEN, EXEC_SQL, QUERY_SQL read
// to its end (rows may come in several batches), a prepared statement,
// CLUSTER, DESCRIBE, DUMP — and every call must return an error or a
// value: a crash, leak, sanitizer report or hang is a bug.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "client.h"
#include "fuzz_node.h"
#include "wire.h"

using namespace sqraft;

namespace {

constexpr size_t kMaxInputBytes = 64 * 1024;
constexpr unsigned kClientTimeoutMs = 200;

// Reads every row of `rows`, or stops at its error.
void read_all(Result<std::unique_ptr<Rows>> rows) {
  if (!rows.ok()) return;
  std::vector<wire::Value> row;
  while (rows.value()->next(&row)) {
  }
  (void)rows.value()->status();
}

void run_client(Client& c) {
  (void)c.leader();
  Result<uint32_t> db = c.open("app");
  const uint32_t id = db.ok() ? db.value() : 0;
  (void)c.exec(id, "INSERT INTO t VALUES (?, ?)", {wire::Value::Integer(1), wire::Value::Text("one")});
  read_all(c.query(id, "SELECT a, b FROM t"));
  Result<Client::Prepared> stmt = c.prepare(id, "SELECT * FROM t WHERE a > ?");
  if (stmt.ok()) {
    // Closed early: the client interrupts the stream and waits for its end.
    Result<std::unique_ptr<Rows>> rows = c.query_prepared(stmt.value(), {wire::Value::Integer(0)});
    if (rows.ok()) (void)rows.value()->close();
    (void)c.finalize(stmt.value());
  }
  (void)c.cluster();
  (void)c.describe();
  (void)c.dump("app");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxInputBytes) return 0;
  int fds[2];
  fuzz::require(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0, "socketpair failed");
  // The server's side: the input, then end of stream. It fits the socket's
  // buffer, and what the client sends is never read (it fits too).
  for (size_t sent = 0; sent < size;) {
    const ssize_t n = ::send(fds[0], data + sent, size - sent, MSG_NOSIGNAL);
    fuzz::require(n > 0, "the input does not fit the socket buffer");
    sent += size_t(n);
  }
  ::shutdown(fds[0], SHUT_WR);
  {
    // The client owns its end from here on, and closes it.
    Result<std::unique_ptr<Client>> client = Client::adopt(fds[1], "fuzz server", kClientTimeoutMs);
    if (client.ok()) run_client(*client.value());
  }
  ::close(fds[0]);
  return 0;
}
