// RaftIoShim: the correction of libraft 0.15's AppendEntries result hint, the
// vote requests a just-started node ignores, and LeaderLease,
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

namespace {

// The fake backend's appends: held until the test completes them.
struct PendingAppends {
  std::vector<std::pair<struct raft_io_append*, raft_io_append_cb>> reqs;
  int sync_result = 0;
};
PendingAppends* g_appends = nullptr;

struct Completed {
  std::vector<std::pair<struct raft_io_append*, int>> calls;
};
Completed* g_completed = nullptr;

void libraft_append_cb(struct raft_io_append* req, int status) { g_completed->calls.emplace_back(req, status); }

// The fake backend's appends go to g_appends (refused at once with its
// sync_result, if set); close does nothing.
void hold_appends(FakeIo* fake) {
  fake->io.append = [](struct raft_io* i, struct raft_io_append* req, const struct raft_entry[], unsigned,
                       raft_io_append_cb cb) {
    if (g_appends->sync_result != 0) {
      std::snprintf(i->errmsg, sizeof i->errmsg, "no space left on device");
      return g_appends->sync_result;
    }
    g_appends->reqs.emplace_back(req, cb);
    return 0;
  };
  fake->io.close = [](struct raft_io*, raft_io_close_cb) {};
}

}  // namespace

TEST_CASE("raft io shim: a failed write of the log is reported once; libraft still gets its own callbacks") {
  FakeIo fake;
  PendingAppends pending;
  Completed completed;
  g_appends = &pending;
  g_completed = &completed;
  hold_appends(&fake);
  RaftIoShim shim(&fake.io);
  std::vector<std::string> failures;
  shim.on_io_failure([&](const std::string& what) { failures.push_back(what); });

  struct raft_entry e {};
  struct raft_io_append a1 {}, a2 {}, a3 {};
  REQUIRE(shim.io()->append(shim.io(), &a1, &e, 1, libraft_append_cb) == 0);
  REQUIRE(shim.io()->append(shim.io(), &a2, &e, 1, libraft_append_cb) == 0);
  REQUIRE(pending.reqs.size() == 2);
  // A write that succeeds: libraft's request and callback, no report.
  pending.reqs[0].second(pending.reqs[0].first, 0);
  REQUIRE(completed.calls.size() == 1);
  CHECK(completed.calls[0].first == &a1);
  CHECK(completed.calls[0].second == 0);
  CHECK(failures.empty());
  CHECK_FALSE(shim.io_failed());
  // One that fails: reported, with the backend's message; libraft gets its status.
  std::snprintf(fake.io.errmsg, sizeof fake.io.errmsg, "create segment open-3: no space");
  pending.reqs[1].second(pending.reqs[1].first, RAFT_IOERR);
  REQUIRE(completed.calls.size() == 2);
  CHECK(completed.calls[1].first == &a2);
  CHECK(completed.calls[1].second == RAFT_IOERR);
  REQUIRE(failures.size() == 1);
  CHECK(failures[0].find("create segment open-3: no space") != std::string::npos);
  CHECK(shim.io_failed());
  CHECK(std::string(shim.io()->errmsg) == "create segment open-3: no space");
  // Later failures (the backend fails every write after one) are not reported again.
  pending.sync_result = RAFT_IOERR;
  CHECK(shim.io()->append(shim.io(), &a3, &e, 1, libraft_append_cb) == RAFT_IOERR);
  CHECK(std::string(shim.io()->errmsg) == "no space left on device");
  CHECK(failures.size() == 1);
  g_appends = nullptr;
  g_completed = nullptr;
}

TEST_CASE("raft io shim: a write refused at once is reported; requests cancelled by close are not") {
  FakeIo fake;
  PendingAppends pending;
  Completed completed;
  g_appends = &pending;
  g_completed = &completed;
  hold_appends(&fake);
  struct raft_entry e {};
  struct raft_io_append a1 {}, a2 {};
  {
    RaftIoShim shim(&fake.io);
    int reports = 0;
    shim.on_io_failure([&](const std::string&) { reports++; });
    pending.sync_result = RAFT_IOERR;
    CHECK(shim.io()->append(shim.io(), &a1, &e, 1, libraft_append_cb) == RAFT_IOERR);
    CHECK(reports == 1);
    CHECK(completed.calls.empty());  // refused at once: no callback
  }
  {
    RaftIoShim shim(&fake.io);
    int reports = 0;
    shim.on_io_failure([&](const std::string&) { reports++; });
    pending.sync_result = 0;
    REQUIRE(shim.io()->append(shim.io(), &a2, &e, 1, libraft_append_cb) == 0);
    shim.io()->close(shim.io(), nullptr);
    pending.reqs.back().second(pending.reqs.back().first, RAFT_CANCELED);
    REQUIRE(completed.calls.size() == 1);
    CHECK(completed.calls[0].second == RAFT_CANCELED);
    CHECK(reports == 0);
  }
  g_appends = nullptr;
  g_completed = nullptr;
}

namespace {

struct VoteCounter {
  int votes = 0;
};
VoteCounter* g_votes = nullptr;

void count_votes(struct raft_io*, struct raft_message* m) {
  if (m->type == RAFT_IO_REQUEST_VOTE) g_votes->votes++;
}

struct raft_message vote_request(bool disrupt) {
  struct raft_message m {};
  m.type = RAFT_IO_REQUEST_VOTE;
  m.server_id = 3;
  m.request_vote.term = 9;
  m.request_vote.candidate_id = 3;
  m.request_vote.pre_vote = true;
  m.request_vote.disrupt_leader = disrupt;
  return m;
}

}  // namespace

TEST_CASE("raft io shim: a node ignores vote requests for one election timeout after it starts") {
  FakeIo fake;
  RaftIoShim shim(&fake.io);
  struct raft r {};
  r.election_timeout = 200;
  shim.attach(&r);
  VoteCounter votes;
  g_votes = &votes;
  REQUIRE(shim.io()->start(shim.io(), 100, raft_tick, count_votes) == 0);
  // Just started: it knows no leader yet, but one may hold a lease on it.
  struct raft_message plain = vote_request(false);
  fake.recv(&fake.io, &plain);
  CHECK(votes.votes == 0);
  CHECK(shim.votes_ignored() == 1);
  // A leadership transfer's election carries the leader's permission.
  struct raft_message transfer = vote_request(true);
  fake.recv(&fake.io, &transfer);
  CHECK(votes.votes == 1);
  // After an election timeout, requests reach libraft again.
  r.election_timeout = 0;
  fake.recv(&fake.io, &plain);
  CHECK(votes.votes == 2);
  CHECK(shim.votes_ignored() == 1);
  g_votes = nullptr;
}

namespace {

// A libraft instance as LeaderLease reads it: state, term, id, voters.
struct LeaseRaft {
  struct raft r {};
  struct raft_server servers[5] {};
  explicit LeaseRaft(unsigned voters) {
    r.id = 1;
    r.state = RAFT_LEADER;
    r.current_term = 4;
    for (unsigned i = 0; i < voters; i++) {
      servers[i].id = i + 1;
      servers[i].role = RAFT_VOTER;
    }
    r.configuration.servers = servers;
    r.configuration.n = voters;
  }
};

}  // namespace

TEST_CASE("leader lease: held only while a majority confirmed this term within the lease") {
  LeaseRaft one(1);
  LeaderLease lease;
  lease.sent_request(2, 4, 0);  // enters term 4
  CHECK(lease.held(&one.r, 1000000, 800));  // a single voter: nobody else can win

  LeaseRaft three(3);
  LeaderLease l3;
  l3.sent_request(2, 4, 1000);
  l3.sent_request(3, 4, 1000);
  CHECK_FALSE(l3.held(&three.r, 1001, 800));  // sent, not confirmed
  l3.received_result(2, 4, true);
  CHECK(l3.held(&three.r, 1001, 800));  // itself + node 2
  CHECK(l3.held(&three.r, 1799, 800));
  CHECK_FALSE(l3.held(&three.r, 1800, 800));  // lease ran out

  SUBCASE("a result confirms the oldest unanswered send, not the newest") {
    LeaderLease l;
    l.sent_request(2, 4, 100);
    l.sent_request(2, 4, 200);
    l.sent_request(2, 4, 300);
    l.received_result(2, 4, true);  // which request it answers is unknown
    CHECK(l.majority_confirmed_ms(&three.r) == 100);
    l.received_result(2, 4, true);
    l.received_result(2, 4, true);
    CHECK(l.majority_confirmed_ms(&three.r) == 300);
    l.received_result(2, 4, true);  // more results than sends: ignored
    CHECK(l.majority_confirmed_ms(&three.r) == 300);
  }
  SUBCASE("rejections, other terms and unknown peers confirm nothing") {
    LeaderLease l;
    l.sent_request(2, 4, 100);
    l.received_result(2, 4, false);
    l.received_result(2, 3, true);
    l.received_result(3, 4, true);
    CHECK(l.majority_confirmed_ms(&three.r) == 0);
    CHECK_FALSE(l.held(&three.r, 101, 800));
  }
  SUBCASE("a new term starts over") {
    l3.sent_request(2, 5, 1500);
    three.r.current_term = 5;
    CHECK_FALSE(l3.held(&three.r, 1501, 800));
  }
  SUBCASE("a leadership transfer ends the lease for the term") {
    l3.sent_timeout_now(4);
    CHECK_FALSE(l3.held(&three.r, 1001, 800));
    l3.received_result(2, 4, true);
    CHECK_FALSE(l3.held(&three.r, 1001, 800));
  }
  SUBCASE("a node that is not the leader holds no lease") {
    three.r.state = RAFT_FOLLOWER;
    CHECK_FALSE(l3.held(&three.r, 1001, 800));
  }
  SUBCASE("five voters need two followers") {
    LeaseRaft five(5);
    LeaderLease l;
    for (raft_id id = 2; id <= 5; id++) l.sent_request(id, 4, 100 * id);
    l.received_result(5, 4, true);
    CHECK_FALSE(l.held(&five.r, 600, 800));
    l.received_result(3, 4, true);
    CHECK(l.majority_confirmed_ms(&five.r) == 300);  // the older of the two
    CHECK(l.held(&five.r, 1099, 800));
    CHECK_FALSE(l.held(&five.r, 1100, 800));
  }
  SUBCASE("sends past the bound are not recorded; the bound stays a lower one") {
    LeaderLease l;
    for (size_t i = 0; i < LeaderLease::kSendsMax + 10; i++) l.sent_request(2, 4, 10 + i);
    for (size_t i = 0; i < LeaderLease::kSendsMax + 10; i++) l.received_result(2, 4, true);
    CHECK(l.majority_confirmed_ms(&three.r) == 10 + LeaderLease::kSendsMax - 1);
  }
}
