// RaftIoShim: the correction of libraft 0.15's AppendEntries result hint,
// driven through a fake inner raft_io standing for the libuv backend.
#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "raft_io_shim.h"

using namespace sqraft;

namespace {

// The fake backend: records what is sent and lets the test deliver messages.
struct FakeIo {
  struct raft_io io {};
  raft_io_recv_cb recv = nullptr;
  raft_io_tick_cb tick = nullptr;
  std::vector<struct raft_message> sent;
  int fail_set_term = 0;

  FakeIo() {
    io.version = 2;
    io.impl = this;
    io.start = [](struct raft_io* i, unsigned, raft_io_tick_cb t, raft_io_recv_cb r) {
      self(i)->tick = t;
      self(i)->recv = r;
      return 0;
    };
    io.send = [](struct raft_io* i, struct raft_io_send*, const struct raft_message* m, raft_io_send_cb) {
      self(i)->sent.push_back(*m);
      return 0;
    };
    io.set_term = [](struct raft_io* i, raft_term) {
      if (self(i)->fail_set_term == 0) return 0;
      std::snprintf(i->errmsg, sizeof i->errmsg, "disk full");
      return self(i)->fail_set_term;
    };
  }
  static FakeIo* self(struct raft_io* i) { return static_cast<FakeIo*>(i->impl); }
};

// libraft's side: answers each AppendEntries at once, with its last index.
struct FakeRaft {
  struct raft_io* io = nullptr;
  raft_index last_index = 8;
  raft_index rejected = 0;
  int ticks = 0;
};

FakeRaft* g_raft = nullptr;

void raft_recv(struct raft_io* io, struct raft_message* m) {
  CHECK(io == g_raft->io);  // libraft sees the io it was given
  if (m->type != RAFT_IO_APPEND_ENTRIES) return;
  struct raft_message r {};
  r.type = RAFT_IO_APPEND_ENTRIES_RESULT;
  r.server_id = m->server_id;
  r.append_entries_result.term = m->append_entries.term;
  r.append_entries_result.rejected = g_raft->rejected;
  r.append_entries_result.last_log_index = g_raft->last_index;
  struct raft_io_send req {};
  REQUIRE(io->send(io, &req, &r, nullptr) == 0);
}

void raft_tick(struct raft_io* io) {
  CHECK(io == g_raft->io);
  g_raft->ticks++;
}

struct raft_message append_entries(raft_index prev, unsigned n) {
  struct raft_message m {};
  m.type = RAFT_IO_APPEND_ENTRIES;
  m.server_id = 2;
  m.append_entries.term = 5;
  m.append_entries.prev_log_index = prev;
  m.append_entries.prev_log_term = 3;
  m.append_entries.n_entries = n;
  return m;
}

}  // namespace

TEST_CASE("raft io shim: a successful result claims no more than the request proved") {
  FakeIo fake;
  RaftIoShim shim(&fake.io);
  FakeRaft raft;
  raft.io = shim.io();
  g_raft = &raft;
  REQUIRE(shim.io()->start(shim.io(), 100, raft_tick, raft_recv) == 0);
  fake.tick(&fake.io);
  CHECK(raft.ticks == 1);

  // A heartbeat after index 7 to a follower whose log holds an unchecked
  // entry 8 of an older term: the result says 7, not 8.
  struct raft_message hb = append_entries(7, 0);
  fake.recv(&fake.io, &hb);
  REQUIRE(fake.sent.size() == 1);
  CHECK(fake.sent[0].append_entries_result.rejected == 0);
  CHECK(fake.sent[0].append_entries_result.last_log_index == 7);
  CHECK(shim.corrected() == 1);

  // A request that proves up to the follower's end is left alone.
  struct raft_message full = append_entries(6, 2);
  fake.recv(&fake.io, &full);
  CHECK(fake.sent.back().append_entries_result.last_log_index == 8);
  // So is a rejection: its hint is what the leader backs off to.
  raft.rejected = 7;
  fake.recv(&fake.io, &hb);
  CHECK(fake.sent.back().append_entries_result.rejected == 7);
  CHECK(fake.sent.back().append_entries_result.last_log_index == 8);
  CHECK(shim.corrected() == 1);

  // A result sent later (entries written to disk first) is not touched.
  struct raft_message late {};
  late.type = RAFT_IO_APPEND_ENTRIES_RESULT;
  late.append_entries_result.last_log_index = 9;
  struct raft_io_send req {};
  REQUIRE(shim.io()->send(shim.io(), &req, &late, nullptr) == 0);
  CHECK(fake.sent.back().append_entries_result.last_log_index == 9);

  // Errors keep their message for libraft.
  fake.fail_set_term = RAFT_IOERR;
  CHECK(shim.io()->set_term(shim.io(), 6) == RAFT_IOERR);
  CHECK(std::string(shim.io()->errmsg) == "disk full");
  g_raft = nullptr;
}
