// The replication core on libraft's deterministic in-memory cluster, driven
// by the test-only executor (SQL straight on a node's VFS, no gateway), for
// what the wire path (integration/gateway_test.cc) cannot reach: a leader
// killed between its followers storing an entry and it applying it,
// partitions before a commit replicates, checkpoints, corrupt commands,
// damaged snapshots, divergence.
#include <doctest/doctest.h>

#include "command.h"
#include "snapshot_codec.h"
#include "support/fixture_cluster.h"

using namespace sqraft;
using test::FixtureCluster;
using Mode = Executor::Mode;

namespace {

// Steps the cluster until a node other than `old` leads and may write.
unsigned wait_new_leader(FixtureCluster& c, unsigned old) {
  unsigned nl = c.size();
  REQUIRE(c.step_until([&] {
    for (unsigned i = 0; i < c.size(); i++) {
      if (i != old && c.proposer(i).leader_ready()) nl = i;
    }
    return nl < c.size();
  }));
  return nl;
}

}  // namespace

TEST_CASE("cluster: writes on the leader reach every node") {
  FixtureCluster c(FixtureCluster::Options{});
  const unsigned l = c.wait_leader();
  REQUIRE(l < c.size());
  auto r = c.exec(l, "app", "CREATE TABLE t(x); INSERT INTO t VALUES(1),(2),(3)");
  REQUIRE_MESSAGE(r.ok(), r.status().to_string());
  CHECK(r->rows_affected == 3);
  REQUIRE(c.settle());
  CHECK(c.compare("app", "SELECT * FROM t") == "");
  for (unsigned i = 0; i < c.size(); i++) CHECK(c.query(i, "app", "SELECT sum(x) FROM t") == "6");
}

TEST_CASE("cluster: a follower refuses writes with 'not leader'") {
  FixtureCluster c(FixtureCluster::Options{});
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x)").ok());
  REQUIRE(c.settle());
  const unsigned f = (l + 1) % c.size();
  auto r = c.exec(f, "app", "INSERT INTO t VALUES(1)");
  CHECK(r.status().is_not_leader());
  auto created = c.exec(f, "new-db", "CREATE TABLE t(x)");
  CHECK_MESSAGE(created.status().is_not_leader(), created.status().to_string());
  REQUIRE(c.settle());
  CHECK(c.query(l, "app", "SELECT count(*) FROM t") == "0");
  CHECK(c.vfs(l).find("new-db") == nullptr);
}

TEST_CASE("cluster: a leader partitioned before its commit replicates leaves no trace") {
  FixtureCluster c(FixtureCluster::Options{});
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x); INSERT INTO t VALUES(1)").ok());
  REQUIRE(c.settle());
  c.isolate(l);
  auto job = c.submit(l, "app", {"INSERT INTO t VALUES(2)"});
  const unsigned nl = wait_new_leader(c, l);
  REQUIRE(c.exec(nl, "app", "INSERT INTO t VALUES(3)").ok());
  c.heal(l);
  REQUIRE(c.step_until([&] { return job->done.load(); }));
  CHECK(job->result.status().is_leadership_lost());
  REQUIRE(c.settle());
  CHECK(c.compare("app", "SELECT * FROM t ORDER BY x") == "");
  for (unsigned i = 0; i < c.size(); i++) CHECK(c.query(i, "app", "SELECT group_concat(x) FROM t") == "1,3");
  // The old leader writes again once it leads again.
  REQUIRE(c.exec(c.wait_leader(), "app", "INSERT INTO t VALUES(4)").ok());
}

TEST_CASE("cluster: a leader killed after its commit reached the followers") {
  FixtureCluster c(FixtureCluster::Options{});
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x); INSERT INTO t VALUES(1)").ok());
  REQUIRE(c.settle());
  const raft_index before = raft_last_index(c.raft((l + 1) % c.size()));
  auto job = c.submit(l, "app", {"INSERT INTO t VALUES(2)"});
  // The entry is in the followers' logs, but the leader has not applied it.
  REQUIRE(c.step_until([&] {
    for (unsigned i = 0; i < c.size(); i++) {
      if (i != l && raft_last_index(c.raft(i)) <= before) return false;
    }
    return true;
  }));
  const bool applied_on_leader = job->done.load();
  c.kill(l);
  const unsigned nl = wait_new_leader(c, l);
  REQUIRE(c.exec(nl, "app", "INSERT INTO t VALUES(3)").ok());
  c.revive(l);
  REQUIRE(c.step_until([&] { return job->done.load(); }));
  REQUIRE(c.settle());
  CHECK(c.compare("app", "SELECT * FROM t ORDER BY x") == "");
  // The new leader had the entry, so it committed it: present everywhere,
  // and the old leader's writer, which waited for the outcome instead of
  // giving up when leadership went, was told so.
  for (unsigned i = 0; i < c.size(); i++) CHECK(c.query(i, "app", "SELECT group_concat(x) FROM t") == "1,2,3");
  (void)applied_on_leader;
  CHECK_MESSAGE(job->result.ok(), job->result.status().to_string());
}

TEST_CASE("cluster: a commit whose leader stays cut off ends 'outcome unknown' after its deadline, not 'failed'") {
  FixtureCluster::Options o;
  o.commit_outcome_timeout_ms = 300;
  FixtureCluster c(o);
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x); INSERT INTO t VALUES(1)").ok());
  REQUIRE(c.settle());
  c.isolate(l);
  auto job = c.submit(l, "app", {"INSERT INTO t VALUES(2)"});
  // The leader steps down without a quorum; cut off, it cannot learn whether
  // the entry survived, so after the deadline the writer says just that.
  REQUIRE(c.step_until([&] { return job->done.load(); }));
  CHECK_MESSAGE(job->result.status().is_outcome_unknown(), job->result.status().to_string());
  // It did not (the others never saw it): once healed, every node agrees.
  const unsigned nl = wait_new_leader(c, l);
  REQUIRE(c.exec(nl, "app", "INSERT INTO t VALUES(3)").ok());
  c.heal(l);
  REQUIRE(c.settle());
  CHECK(c.compare("app", "SELECT * FROM t ORDER BY x") == "");
  for (unsigned i = 0; i < c.size(); i++) CHECK(c.query(i, "app", "SELECT group_concat(x) FROM t") == "1,3");
  REQUIRE(c.exec(c.wait_leader(), "app", "INSERT INTO t VALUES(4)").ok());
}

TEST_CASE("cluster: checkpoints empty every WAL; snapshots before and after restore alike") {
  FixtureCluster::Options opt;
  opt.checkpoint_threshold_frames = 60;
  FixtureCluster c(opt);
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x, y)").ok());
  for (int i = 0; i < 20; i++) {
    REQUIRE(c.exec(l, "app", "INSERT INTO t VALUES(" + std::to_string(i) + ", randomblob(1500))").ok());
  }
  REQUIRE(c.settle());
  const uint32_t frames_before = c.vfs(l).find("app")->wal_frames();
  REQUIRE(frames_before > 20);
  std::vector<DbImage> before = c.vfs(l).capture();
  c.proposer(l).checkpoint("app");
  REQUIRE(c.settle());
  for (unsigned i = 0; i < c.size(); i++) {
    CHECK_MESSAGE(c.vfs(i).find("app")->unfolded_frames() == 0, "node " << i);
    // Followers reset their WAL at once; the leader's next writer does.
    if (i != l) CHECK_MESSAGE(c.vfs(i).find("app")->wal_frames() == 0, "node " << i);
  }
  std::vector<DbImage> after = c.vfs(l).capture();
  CHECK(after[0].wal.empty());
  CHECK(!before[0].wal.empty());
  auto restore = [](const std::vector<DbImage>& images, const char* name) {
    Vfs::Options o;
    o.name = name;
    auto v = Vfs::create(o, nullptr);
    REQUIRE(v.ok());
    std::vector<SnapshotBuffer> bufs = encode_snapshot(images);
    std::vector<uint8_t> bytes;
    for (auto& b : bufs) bytes.insert(bytes.end(), b.data.get(), b.data.get() + b.size);
    auto decoded = decode_snapshot(bytes.data(), bytes.size());
    REQUIRE(decoded.ok());
    REQUIRE(v.value()->restore(decoded.value()).ok());
    return std::move(v).value();
  };
  auto v1 = restore(before, "ckpt-before");
  auto v2 = restore(after, "ckpt-after");
  CHECK(v1->find("app")->state_checksum() == v2->find("app")->state_checksum());
  CHECK(v1->find("app")->state_checksum() == c.checksum(l, "app"));
  sqlite3* a = v1->open("app").value();
  sqlite3* b = v2->open("app").value();
  CHECK(test::query(a, "SELECT x, hex(y) FROM t ORDER BY x") == test::query(b, "SELECT x, hex(y) FROM t ORDER BY x"));
  CHECK(test::query(b, "PRAGMA integrity_check") == "ok");
  sqlite3_close(a);
  sqlite3_close(b);
  REQUIRE(c.exec(l, "app", "UPDATE t SET y = 'z' WHERE x = 0").ok());
  CHECK(c.vfs(l).find("app")->wal_frames() <= 3);
  // Past the threshold, the leader checkpoints by itself.
  for (int i = 0; i < 40; i++) REQUIRE(c.exec(l, "app", "UPDATE t SET y = randomblob(1500) WHERE x = " + std::to_string(i % 20)).ok());
  REQUIRE(c.settle());
  for (unsigned i = 0; i < c.size(); i++) CHECK(c.vfs(i).find("app")->wal_frames() < 60);
  CHECK(c.compare("app", "SELECT x, hex(y) FROM t ORDER BY x") == "");
}

TEST_CASE("cluster: corrupt commands are skipped on every node without harm") {
  FixtureCluster c(FixtureCluster::Options{});
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x); INSERT INTO t VALUES(1)").ok());
  std::vector<std::string> garbage = {std::string("\x08\x01\x22\x05junk!", 10), std::string(64, '\xff'), ""};
  Command unknown_db;
  FramesBatch fb;
  fb.db = "nope";
  fb.txn_id = 9;
  fb.page_size = 4096;
  fb.frames.push_back({1, 1, make_zero_page(4096)});
  fb.commit = true;
  fb.frame_count = 1;
  fb.db_size = 1;
  unknown_db.body = fb;
  garbage.push_back(encode_command(unknown_db));
  for (const std::string& g : garbage) {
    struct raft_buffer buf;
    buf.len = g.size();
    buf.base = raft_malloc(buf.len + 1);
    std::memcpy(buf.base, g.data(), g.size());
    using ApplyReq = struct raft_apply;
    auto* req = new ApplyReq();
    REQUIRE(raft_apply(c.raft(l), req, &buf, 1, [](ApplyReq* r, int, void*) { delete r; }) == 0);
  }
  REQUIRE(c.exec(l, "app", "INSERT INTO t VALUES(2)").ok());
  REQUIRE(c.settle());
  CHECK(c.compare("app", "SELECT * FROM t") == "");
  for (unsigned i = 0; i < c.size(); i++) {
    CHECK(!c.proposer(i).diverged());
    CHECK(c.vfs(i).find("nope") == nullptr);
  }
}

TEST_CASE("cluster: a damaged snapshot is refused and the node's state is untouched") {
  FixtureCluster c(FixtureCluster::Options{});
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x); INSERT INTO t VALUES(1),(2)").ok());
  REQUIRE(c.settle());
  // Take a snapshot through the FSM callbacks, as Raft does.
  struct raft_fsm* fsm = c.proposer(l).raft_fsm();
  struct raft_buffer* bufs = nullptr;
  unsigned n = 0;
  REQUIRE(fsm->snapshot(fsm, &bufs, &n) == 0);
  REQUIRE(fsm->snapshot_async(fsm, &bufs, &n) == 0);
  std::vector<uint8_t> bytes;
  for (unsigned i = 0; i < n; i++) {
    bytes.insert(bytes.end(), static_cast<uint8_t*>(bufs[i].base), static_cast<uint8_t*>(bufs[i].base) + bufs[i].len);
  }
  REQUIRE(fsm->snapshot_finalize(fsm, &bufs, &n) == 0);
  const unsigned f = (l + 1) % c.size();
  REQUIRE(c.exec(l, "app", "INSERT INTO t VALUES(3)").ok());
  REQUIRE(c.settle());
  const uint64_t sum = c.checksum(f, "app");
  struct raft_fsm* ffsm = c.proposer(f).raft_fsm();
  for (size_t at : {size_t(3), size_t(20), bytes.size() / 2, bytes.size() - 1}) {
    std::vector<uint8_t> bad = bytes;
    bad[at] ^= 0x10;
    struct raft_buffer buf{raft_malloc(bad.size()), bad.size()};
    std::memcpy(buf.base, bad.data(), bad.size());
    CHECK(ffsm->restore(ffsm, &buf) != 0);
    raft_free(buf.base);  // refused: still ours
    CHECK(c.checksum(f, "app") == sum);
    CHECK(c.query(f, "app", "SELECT group_concat(x) FROM t") == "1,2,3");
  }
  // The intact snapshot restores (to the older state).
  struct raft_buffer good{raft_malloc(bytes.size()), bytes.size()};
  std::memcpy(good.base, bytes.data(), bytes.size());
  CHECK(ffsm->restore(ffsm, &good) == 0);
  CHECK(c.query(f, "app", "SELECT group_concat(x) FROM t") == "1,2");
}

TEST_CASE("cluster: a follower whose state differs stops with a divergence error") {
  FixtureCluster c(FixtureCluster::Options{});
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x)").ok());
  REQUIRE(c.settle());
  const unsigned bad = (l + 1) % c.size();
  const unsigned good = (l + 2) % c.size();
  c.vfs(bad).find("app")->perturb_state_hash_for_testing();
  REQUIRE(c.exec(l, "app", "INSERT INTO t VALUES(1)").ok());
  REQUIRE(c.step_until([&] { return c.proposer(bad).diverged(); }));
  const std::string msg = c.proposer(bad).divergence().message();
  CHECK(msg.find("state divergence") != std::string::npos);
  CHECK(msg.find("db 'app'") != std::string::npos);
  CHECK(c.query(bad, "app", "SELECT count(*) FROM t") == "0");  // the commit was not applied there
  CHECK(!c.proposer(l).diverged());
  CHECK(!c.proposer(good).diverged());
  c.kill(bad);  // what the node does on its own: stop
  REQUIRE(c.exec(l, "app", "INSERT INTO t VALUES(2)").ok());
  REQUIRE(c.settle());
  CHECK(c.query(good, "app", "SELECT group_concat(x) FROM t") == "1,2");
}

TEST_CASE("cluster: followers fed a wrong checksum stop; the leader does not") {
  FixtureCluster c(FixtureCluster::Options{});
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x)").ok());
  REQUIRE(c.settle());
  c.proposer(l).corrupt_next_checksum_for_testing();
  REQUIRE(c.exec(l, "app", "INSERT INTO t VALUES(1)").ok());
  REQUIRE(c.step_until([&] {
    for (unsigned i = 0; i < c.size(); i++) {
      if (i != l && !c.proposer(i).diverged()) return false;
    }
    return true;
  }));
  CHECK(!c.proposer(l).diverged());
}

namespace {

// Makes the next append of one node's log fail as the uv backend does when
// the disk is full: the request was taken (the entries are in the leader's
// in-memory log and on their way to the followers), the local write failed,
// and the node then stops (a sqraft node stops on any Raft I/O failure:
// libraft 0.15 cannot go on after one). The test models the stop by
// killing the node once the followers have the entry.
struct FailNextAppend {
  static inline int (*original)(struct raft_io*, struct raft_io_append*, const struct raft_entry[], unsigned,
                                raft_io_append_cb) = nullptr;
  static inline raft_io_append_cb original_cb = nullptr;
  static inline bool armed = false;
  static inline int failed = 0;

  static void cb(struct raft_io_append* req, int /*status*/) {
    failed++;
    original_cb(req, RAFT_IOERR);
  }
  static int append(struct raft_io* io, struct raft_io_append* req, const struct raft_entry entries[], unsigned n,
                    raft_io_append_cb done) {
    if (!armed) return original(io, req, entries, n, done);
    armed = false;
    original_cb = done;
    return original(io, req, entries, n, cb);
  }
  static void install(struct raft* r) {
    original = r->io->append;
    r->io->append = append;
    armed = true;
  }
};

}  // namespace

TEST_CASE("cluster: a leader whose own log append fails does not tell its writer the transaction failed") {
  // Seen in the fault suite (disk-full): the leader's append failed, its
  // writer rolled the transaction back and answered "disk I/O error", the
  // followers committed the entry (they had stored it): a client told its
  // write failed found it committed, and the old leader's state diverged.
  FixtureCluster::Options o;
  o.commit_outcome_timeout_ms = 1000;
  FixtureCluster c(o);
  const unsigned l = c.wait_leader();
  REQUIRE(c.exec(l, "app", "CREATE TABLE t(x); INSERT INTO t VALUES(1)").ok());
  REQUIRE(c.settle());
  FailNextAppend::install(c.raft(l));
  const raft_index entry = raft_last_index(c.raft(l)) + 1;
  auto job = c.submit(l, "app", {"INSERT INTO t VALUES(2)"});
  REQUIRE(c.step_until([&] {
    if (FailNextAppend::failed == 0) return false;
    for (unsigned i = 0; i < c.size(); i++) {
      if (i != l && raft_last_index(c.raft(i)) < entry) return false;
    }
    return true;
  }));
  c.kill(l);
  REQUIRE(c.step_until([&] { return job->done.load(); }));
  const Status first = job->result.status();
  INFO("the writer was told: " << first.to_string());
  const unsigned nl = c.wait_leader();
  REQUIRE(nl != l);
  REQUIRE(c.exec(nl, "app", "INSERT INTO t VALUES(3)").ok());
  REQUIRE(c.settle());
  CHECK(c.compare("app", "SELECT * FROM t ORDER BY x") == "");
  const std::string rows = c.query(nl, "app", "SELECT group_concat(x) FROM t");
  // The followers had the entry: it committed. The writer must not have
  // been told it failed: OK, or "outcome unknown" once its node stopped.
  CHECK(rows == "1,2,3");
  CHECK((first.ok() || first.code() == kErrOutcomeUnknown));
}
