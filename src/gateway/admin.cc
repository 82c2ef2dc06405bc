// Cluster administration: CLUSTER, membership changes, leadership
// transfer, DUMP.
#include "session.h"

#include <spdlog/spdlog.h>

#include <cassert>
#include <chrono>
#include <cstring>
#include <utility>

#include "address.h"
#include "snapshot_codec.h"
#include "vfs.h"
#include "limits.h"

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

void Session::handle_cluster(wire::BodyReader& r) {
  uint64_t format = 1;
  if (!r.u64(&format)) {
    reply_failure(wire::kErrProto, "malformed cluster request");
    return done();
  }
  if (format > 1) {
    reply_failure(wire::kErrProto, "unknown cluster format " + std::to_string(format));
    return done();
  }
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

namespace {
struct ChangeReq {
  struct raft_change req;
  Session* session;
  std::function<void(int)> cb;
};
struct TransferReq {
  struct raft_transfer req;
  std::function<void()> cb;
};
}  // namespace

void Session::handle_membership(uint8_t type, wire::BodyReader& r) {
  uint64_t id = 0, role = 0;
  std::string address;
  bool ok = r.u64(&id);
  if (type == wire::kAdd) ok = ok && r.text(&address);
  if (type == wire::kAssign) ok = ok && r.u64(&role);
  if (!ok) {
    reply_failure(wire::kErrProto, std::string("malformed ") + wire::request_name(type) + " request");
    return done();
  }
  if (raft_state(node_.raft()) != RAFT_LEADER) {
    reply_failure(Status::NotLeader());
    return done();
  }
  auto finish = [this](int status) {
    if (!job_finished()) return;
    if (status != 0) {
      reply_failure(SQLITE_ERROR, raft_errmsg(node_.raft())[0] ? raft_errmsg(node_.raft()) : raft_strerror(status));
    } else {
      reply_empty();
    }
    done();
  };
  if (type == wire::kTransfer) {
    // libraft calls back when the transfer ends, done or timed out: it is
    // done if this node no longer leads.
    auto* t = new TransferReq{{}, [this, id] {
      if (!job_finished()) return;
      if (raft_state(node_.raft()) == RAFT_LEADER) {
        reply_failure(SQLITE_ERROR, "leadership transfer to node " + std::to_string(id) +
                                        " did not complete: this node still leads");
      } else {
        reply_empty();
      }
      done();
    }};
    t->req.data = t;
    job_started();
    int rv = raft_transfer(node_.raft(), &t->req, id, [](struct raft_transfer* req) {
      auto* tr = static_cast<TransferReq*>(req->data);
      auto cb = std::move(tr->cb);
      delete tr;
      cb();
    });
    if (rv != 0) {
      delete t;
      job_undone();
      const char* why = raft_errmsg(node_.raft());
      reply_failure(SQLITE_ERROR, std::string("transfer: ") + (why[0] != '\0' ? why : raft_strerror(rv)));
      done();
    }
    return;
  }
  auto* c = new ChangeReq{{}, this, finish};
  c->req.data = c;
  auto cb = [](struct raft_change* req, int status) {
    auto* cr = static_cast<ChangeReq*>(req->data);
    auto f = std::move(cr->cb);
    delete cr;
    f(status);
  };
  int rv;
  job_started();
  if (type == wire::kAdd) {
    if (!wire::valid_utf8(address) || !parse_address(address).ok()) {
      rv = RAFT_INVALID;
    } else {
      rv = raft_add(node_.raft(), &c->req, id, address.c_str(), cb);
    }
  } else if (type == wire::kAssign) {
    int raft_role = role == wire::kRoleVoter ? RAFT_VOTER : role == wire::kRoleStandby ? RAFT_STANDBY
                  : role == wire::kRoleSpare ? RAFT_SPARE : -1;
    rv = raft_role < 0 ? RAFT_BADROLE : raft_assign(node_.raft(), &c->req, id, raft_role, cb);
  } else {
    rv = raft_remove(node_.raft(), &c->req, id, cb);
  }
  if (rv != 0) {
    delete c;
    job_undone();
    reply_failure(SQLITE_ERROR, std::string(wire::request_name(type)) + ": " + raft_strerror(rv));
    done();
  }
}

void Session::handle_dump(wire::BodyReader& r) {
  std::string name;
  if (!r.text(&name)) {
    reply_failure(wire::kErrProto, "malformed dump request");
    return done();
  }
  std::shared_ptr<Database> database = node_.vfs().find(name);
  if (!database) {
    reply_failure(SQLITE_NOTFOUND, "no database named '" + name + "'");
    return done();
  }
  start_read_job([this, database, name] {
    DbImage img = database->capture();
    std::vector<uint8_t> wal = build_wal_file(img.wal, img.page_size);
    wire::BodyWriter w;
    w.u64(2);
    w.text(name);
    w.u64(uint64_t(img.pages.size()) * img.page_size);
    for (const PagePtr& p : img.pages) {
      if (p) {
        w.raw(p.get(), img.page_size);
      } else {
        std::vector<uint8_t> zero(img.page_size, 0);
        w.raw(zero.data(), zero.size());
      }
    }
    w.text(name + "-wal");
    w.u64(wal.size());
    w.raw(wal.data(), wal.size());
    w.pad();
    std::vector<uint8_t> msg = w.finish(wire::kFiles);
    back_to_loop([this, msg = std::move(msg)]() mutable {
      if (!job_finished()) return;
      send(std::move(msg));
      done();
    });
  });
}

}  // namespace sqraft
