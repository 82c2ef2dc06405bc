// Cluster administration: CLUSTER, membership changes, leadership
// transfer, DUMP.
#include "session.h"

#include <spdlog/spdlog.h>

#include <cassert>
#include <chrono>
#include <cstring>
#include <optional>
#include <utility>

#include "address.h"
#include "boundary.h"
#include "snapshot_codec.h"
#include "vfs.h"
#include "session_limits.h"

namespace sqraft {

namespace {

uint64_t wire_role(int raft_role) {
  switch (raft_role) {
    case RAFT_VOTER: return wire::kRoleVoter;
    case RAFT_STANDBY: return wire::kRoleStandby;
    default: return wire::kRoleSpare;
  }
}

}  // namespace

void Session::handle_cluster(Request& r) {
  uint64_t format = 1;
  if (!r.body.u64(&format)) return malformed(r);
  if (format > 1) return fail(wire::kErrProto, "unknown cluster format " + std::to_string(format));
  send_servers(format);
  done();
}

void Session::send_servers(uint64_t format) {
  const struct raft_configuration& conf = node_.raft()->configuration;
  wire::BodyWriter w;
  w.u64(conf.n);
  for (unsigned i = 0; i < conf.n; i++) {
    w.u64(conf.servers[i].id);
    w.text(conf.servers[i].address);
    if (format == 1) w.u64(wire_role(conf.servers[i].role));
  }
  send(w.finish(wire::kServers));
}

void Session::handle_describe(Request& r) {
  uint64_t format;
  if (!r.body.u64(&format)) return malformed(r);
  if (format != 0) return fail(wire::kErrProto, "unknown describe format " + std::to_string(format));
  wire::BodyWriter w;
  w.u64(node_.failure_domain());
  w.u64(node_.weight());
  send(w.finish(wire::kMetadata));
  done();
}

void Session::handle_weight(Request& r) {
  uint64_t weight;
  if (!r.body.u64(&weight)) return malformed(r);
  node_.set_weight(weight);
  reply_empty();
  done();
}

namespace {

// A libraft request and what to do when it ends. libraft calls back on the
// loop thread, from C: nothing may throw through it.
template <typename RaftReq, typename... Args>
struct Pending {
  RaftReq req;
  std::function<void(Args...)> then;

  static Pending* make(std::function<void(Args...)> then) {
    auto* p = new Pending{{}, std::move(then)};
    p->req.data = p;
    return p;
  }
  static void callback(RaftReq* req, Args... args) {
    std::unique_ptr<Pending> p(static_cast<Pending*>(req->data));
    at_c_boundary("membership change completion", [&] { p->then(args...); });
  }
};

using PendingChange = Pending<struct raft_change, int>;
using PendingTransfer = Pending<struct raft_transfer>;

int raft_role_of(uint64_t wire_role) {
  switch (wire_role) {
    case wire::kRoleVoter: return RAFT_VOTER;
    case wire::kRoleStandby: return RAFT_STANDBY;
    case wire::kRoleSpare: return RAFT_SPARE;
    default: return -1;
  }
}

// A DUMP answer: the database file and its WAL file.
std::vector<uint8_t> files_message(const std::string& name, const DbImage& img) {
  std::vector<uint8_t> wal = build_wal_file(img.wal, img.page_size);
  wire::BodyWriter w;
  w.u64(2);
  w.text(name);
  w.u64(uint64_t(img.pages.size()) * img.page_size);
  const std::vector<uint8_t> zero(img.page_size, 0);
  for (const PagePtr& p : img.pages) w.raw(p ? p.get() : zero.data(), img.page_size);
  w.text(name + "-wal");
  w.u64(wal.size());
  w.raw(wal.data(), wal.size());
  w.pad();
  return w.finish(wire::kFiles);
}

// Asks libraft for the membership change of an ADD, ASSIGN or REMOVE
// request; 0 once it has started (`req`'s callback then reports the end).
int start_change(struct raft* raft, struct raft_change* req, uint8_t type, uint64_t id, const std::string& address,
                 uint64_t role) {
  raft->errmsg[0] = '\0';  // what is there now is some earlier call's
  if (type == wire::kAdd) {
    if (!wire::valid_utf8(address) || !parse_address(address).ok()) return RAFT_INVALID;
    return raft_add(raft, req, id, address.c_str(), PendingChange::callback);
  }
  if (type == wire::kAssign) {
    const int raft_role = raft_role_of(role);
    return raft_role < 0 ? RAFT_BADROLE : raft_assign(raft, req, id, raft_role, PendingChange::callback);
  }
  return raft_remove(raft, req, id, PendingChange::callback);
}

}  // namespace

void Session::handle_membership(Request& r) {
  uint64_t id = 0, role = 0;
  std::string address;
  bool ok = r.body.u64(&id);
  if (r.type == wire::kAdd) ok = ok && r.body.text(&address);
  if (r.type == wire::kAssign) ok = ok && r.body.u64(&role);
  if (!ok) return malformed(r);
  if (raft_state(node_.raft()) != RAFT_LEADER) return fail(Status::NotLeader());
  auto* c = PendingChange::make([this](int status) {
    if (!job_finished()) return;
    // raft_errmsg() holds the instance's last error, not necessarily this
    // change's: the status says what happened to it.
    if (status == RAFT_LEADERSHIPLOST) {
      return fail(Status::LeadershipLost("membership change: leadership lost; it may still take effect"));
    }
    if (status != 0) return fail(SQLITE_ERROR, std::string("membership change: ") + raft_strerror(status));
    reply_empty();
    done();
  });
  int rv = 0;
  if (launch_job([&] { return (rv = start_change(node_.raft(), &c->req, r.type, id, address, role)) == 0; })) return;
  delete c;
  // Refused at once: libraft's message says why ("no server has ID 99").
  const char* why = raft_errmsg(node_.raft());
  const std::string what = std::string(wire::request_name(r.type)) + ": " + (why[0] != '\0' ? why : raft_strerror(rv));
  fail(rv == RAFT_CANTCHANGE ? SQLITE_BUSY : SQLITE_ERROR, what);
}

void Session::handle_transfer(Request& r) {
  uint64_t id = 0;
  if (!r.body.u64(&id)) return malformed(r);
  if (raft_state(node_.raft()) != RAFT_LEADER) return fail(Status::NotLeader());
  // libraft calls back when the transfer ends, done or timed out: it is
  // done if this node no longer leads.
  auto* t = PendingTransfer::make([this, id] {
    if (!job_finished()) return;
    if (raft_state(node_.raft()) == RAFT_LEADER) {
      return fail(SQLITE_ERROR,
                  "leadership transfer to node " + std::to_string(id) + " did not complete: this node still leads");
    }
    reply_empty();
    done();
  });
  int rv = 0;
  if (launch_job([&] { return (rv = raft_transfer(node_.raft(), &t->req, id, PendingTransfer::callback)) == 0; })) {
    return;
  }
  delete t;
  const char* why = raft_errmsg(node_.raft());
  fail(SQLITE_ERROR, std::string("transfer: ") + (why[0] != '\0' ? why : raft_strerror(rv)));
}

void Session::handle_dump(Request& r) {
  std::string name;
  if (!r.body.text(&name)) return malformed(r);
  if (!node_.vfs().exists(name)) return fail(SQLITE_NOTFOUND, "no database named '" + name + "'");
  Vfs* vfs = &node_.vfs();
  start_read_job([this, vfs, name] {
    std::optional<DbImage> img = vfs->capture(name);
    std::vector<uint8_t> msg = img ? files_message(name, *img) : std::vector<uint8_t>();
    finish_on_loop([this, name, msg = std::move(msg)]() mutable {
      if (msg.empty()) return fail(SQLITE_NOTFOUND, "no database named '" + name + "'");
      send(std::move(msg));
      done();
    });
  });
}


}  // namespace sqraft
