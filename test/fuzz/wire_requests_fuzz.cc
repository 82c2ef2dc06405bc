// fuzz-wire-requests: a client's byte stream, after the version handshake,
// into a node's real request handling — Session (framing, dispatch,
// routing, streaming, admin), the databases' writers and readers, the
// proposer, Raft and the FSM — on a single-node fixture (fuzz_node.h).
//
// Each input gets a fresh node and one connection whose session reads it;
// the node is stepped until quiet (bounded in time); then the client hangs
// up, and its session must end within 10 s whatever it was doing. Then the
// node must still be healthy: a fresh connection gets an answer to LEADER
// and, while the node still leads (a membership request may have changed
// that), runs a query. Inputs over 64 KiB are ignored.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <string>
#include <vector>

#include "client.h"
#include "fuzz_node.h"
#include "wire.h"

using namespace sqraft;

namespace {

constexpr size_t kMaxInputBytes = 64 * 1024;
constexpr unsigned kInputWallMs = 3000;   // stepping the input, at most
constexpr unsigned kHangUpWallMs = 10000;  // for the session to end after its client left

// Reads and drops what the session answered; true if anything came.
bool drain(int fd) {
  uint8_t buf[16 * 1024];
  bool any = false;
  while (::recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) any = true;
  return any;
}

// A fresh connection: LEADER, then a query while the node leads.
void check_healthy(fuzz::FuzzNode& node) {
  const int fd = node.connect();
  auto probe = std::async(std::launch::async, [fd]() -> std::pair<Status, Status> {
    Result<std::unique_ptr<Client>> c = Client::adopt(fd, "fuzz node", 5000);
    if (!c.ok()) return {c.status(), Status::Ok()};
    Result<ServerInfo> leader = c.value()->leader();
    if (!leader.ok()) return {leader.status(), Status::Ok()};
    Result<uint32_t> db = c.value()->open("health");
    if (!db.ok()) return {Status::Ok(), db.status()};
    Result<std::unique_ptr<Rows>> rows = c.value()->query(db.value(), "SELECT 1");
    if (!rows.ok()) return {Status::Ok(), rows.status()};
    std::vector<wire::Value> row;
    if (!rows.value()->next(&row) || row.size() != 1 || row[0].integer != 1) {
      return {Status::Ok(), Status::Internal("SELECT 1 did not answer 1: " + rows.value()->status().to_string())};
    }
    return {Status::Ok(), Status::Ok()};
  });
  const bool answered = node.step_until(
      [&] { return probe.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }, 20000);
  if (!answered) fuzz::die("the node did not answer a fresh connection within 20 s");
  const auto [leader, query] = probe.get();
  if (!leader.ok()) fuzz::die("LEADER on a fresh connection failed: " + leader.to_string());
  // A query may fail only because the node no longer leads.
  if (!query.ok() && node.leader_ready()) fuzz::die("a query on a fresh connection failed: " + query.to_string());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxInputBytes) return 0;
  fuzz::FuzzNode node;
  const int fd = node.connect();
  fuzz::require(::fcntl(fd, F_SETFL, O_NONBLOCK) == 0, "fcntl failed");
  wire::BodyWriter stream;
  stream.u64(wire::kProtocolVersion);
  stream.raw(data, size);
  const std::vector<uint8_t>& bytes = stream.bytes();
  size_t sent = 0;
  node.step_until_quiet(kInputWallMs, [&] {
    bool progress = drain(fd);
    if (sent < bytes.size()) {
      const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += size_t(n);
        progress = true;
      } else if (errno != EAGAIN && errno != EINTR) {
        sent = bytes.size();  // the session closed the connection
      }
    }
    return progress;
  });
  ::close(fd);  // the client hangs up
  if (!node.step_until([&] { return node.sessions() == 0; }, kHangUpWallMs)) {
    fuzz::die("the session was still there 10 s after its client hung up");
  }
  check_healthy(node);
  return 0;
}
