// Separate `sqraft node` processes on unix sockets: elections, replication,
// kill -9 of leaders and of everyone, restarts from snapshots, catch-up by
// snapshot over the network, and bad input of every kind.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "support/dump_check.h"
#include "support/process_cluster.h"
#include "support/row_stream.h"

using namespace sqraft;
using test::ProcessCluster;
using Clock = std::chrono::steady_clock;

using test::check_identical;
using test::create_table;
using test::ids_on;
using test::Writer;

TEST_CASE("process: a 3-node cluster elects a leader and replicates writes to every node") {
  ProcessCluster c({});
  REQUIRE(c.start_all().ok());
  REQUIRE(c.leader_index() < 3);
  create_table(c, "app");
  Writer w(c, "app");
  for (long id = 1; id <= 50; id++) REQUIRE(w.write_one(id));
  check_identical(c, "app");
  for (unsigned i = 0; i < 3; i++) CHECK(ids_on(c, i, "app").size() == 50);
  for (unsigned i = 0; i < 3; i++) CHECK(c.stop(i).ok());  // SIGTERM: clean exit
}

TEST_CASE("process: kill -9 of the leader during writes loses no acknowledged write") {
  ProcessCluster c({});
  REQUIRE(c.start_all().ok());
  create_table(c, "app");
  Writer w(c, "app");
  long id = 0;
  for (; id < 100; id++) w.write_one(id + 1);
  const unsigned old_leader = c.leader_index();
  REQUIRE(old_leader < 3);
  c.kill(old_leader);
  const auto killed_at = Clock::now();
  bool first = true;
  double recovery_ms = 0;
  for (long n = 0; n < 100; n++, id++) {
    if (w.write_one(id + 1) && first) {
      first = false;
      recovery_ms = std::chrono::duration<double, std::milli>(Clock::now() - killed_at).count();
    }
  }
  MESSAGE("first write acknowledged " << recovery_ms << " ms after killing the leader");
  REQUIRE(!first);
  REQUIRE(c.start(old_leader).ok());
  for (long n = 0; n < 20; n++, id++) w.write_one(id + 1);
  check_identical(c, "app");
  for (unsigned i = 0; i < 3; i++) {
    const std::set<long> present = ids_on(c, i, "app");
    for (long a : w.acked) REQUIRE_MESSAGE(present.count(a), "acknowledged id " << a << " missing on node " << i);
  }
}

TEST_CASE("process: kill -9 of every node, then restart: every acknowledged write is there") {
  ProcessCluster c({});
  REQUIRE(c.start_all().ok());
  create_table(c, "app");
  Writer w(c, "app");
  std::atomic<bool> stop{false};
  long id = 0;
  for (; id < 200; id++) w.write_one(id + 1);
  for (unsigned i = 0; i < 3; i++) c.kill(i);
  REQUIRE(c.start_all().ok());
  REQUIRE(c.leader_index() < 3);
  for (long n = 0; n < 10; n++, id++) REQUIRE(w.write_one(id + 1));
  check_identical(c, "app");
  const std::set<long> present = ids_on(c, 0, "app");
  for (long a : w.acked) REQUIRE_MESSAGE(present.count(a), "acknowledged id " << a << " missing");
  (void)stop;
}

TEST_CASE("process: a node restarted after log compaction restores from its snapshot") {
  ProcessCluster::Options o;
  o.snapshot_threshold = 32;
  o.snapshot_trailing = 8;
  ProcessCluster c(o);
  REQUIRE(c.start_all().ok());
  create_table(c, "app");
  Writer w(c, "app");
  for (long id = 1; id <= 150; id++) REQUIRE(w.write_one(id));
  const unsigned f = (c.leader_index() + 1) % 3;
  REQUIRE(c.stop(f).ok());
  Status restarted = c.start(f);
  REQUIRE_MESSAGE(restarted.ok(), restarted.to_string());
  // Its log says it loaded a snapshot (not index 0).
  bool from_snapshot = false;
  std::ifstream log(c.dir(f) + "/../node" + std::to_string(f + 1) + ".log");
  for (std::string line; std::getline(log, line);) {
    if (line.find("loaded snapshot and log") != std::string::npos && line.find("snapshot at 0,") == std::string::npos) {
      from_snapshot = true;
    }
  }
  CHECK(from_snapshot);
  check_identical(c, "app");
  CHECK(ids_on(c, f, "app").size() == 150);
}

TEST_CASE("process: a follower down through several snapshots catches up by snapshot install") {
  ProcessCluster::Options o;
  o.snapshot_threshold = 16;
  o.snapshot_trailing = 4;
  ProcessCluster c(o);
  REQUIRE(c.start_all().ok());
  create_table(c, "app");
  Writer w(c, "app");
  for (long id = 1; id <= 20; id++) REQUIRE(w.write_one(id));
  const unsigned f = (c.leader_index() + 1) % 3;
  c.kill(f);
  for (long id = 21; id <= 200; id++) REQUIRE(w.write_one(id));
  REQUIRE(c.start(f).ok());
  check_identical(c, "app", 60000);
  CHECK(ids_on(c, f, "app").size() == 200);
  std::ifstream log(c.dir(f) + "/../node" + std::to_string(f + 1) + ".log");
  (void)log;
}

TEST_CASE("process: a missing data directory is created (mode 0700, parents too) and the node comes back from it") {
  test::TempDir tmp;
  const std::string dir = tmp.file("a/b/node1");
  ProcessCluster::Options o;
  o.n = 1;
  ProcessCluster c(o);
  // ProcessCluster made its own directory; point the node at a new one.
  std::vector<std::string> argv = {ProcessCluster::binary(), "node", "--id", "1", "--address", c.address(0),
                                   "--dir", dir, "--cluster", "1@" + c.address(0)};
  auto run = test::run_command(argv, "", 3000);  // runs until the timeout kills it
  CHECK_MESSAGE(run.output.find("created data directory '" + dir + "' (mode 0700)") != std::string::npos, run.output);
  struct stat st {};
  REQUIRE(::stat(dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(::stat(tmp.file("a").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  CHECK(std::filesystem::exists(dir + "/metadata1"));
  // Its own files do not count as a stranger's: it starts again from them.
  auto again = test::run_command(argv, "", 3000);
  CHECK(again.output.find("holds files that are not sqraft's") == std::string::npos);
  CHECK_MESSAGE(again.output.find("rejoining") != std::string::npos, again.output);
}

TEST_CASE("process: bad start-up input gives specific errors") {
  test::TempDir tmp;
  const std::string bin = ProcessCluster::binary();
  // A directory that holds files that are not sqraft's is refused.
  std::filesystem::create_directories(tmp.file("home"));
  std::ofstream(tmp.file("home/notes.txt")) << "mine";
  auto foreign = test::run_command({bin, "node", "--id", "1", "--address", "@sqraft-bad-1", "--dir", tmp.file("home"),
                                    "--cluster", "1@@sqraft-bad-1"});
  CHECK(foreign.status == 1);
  CHECK_MESSAGE(foreign.output.find("holds files that are not sqraft's (for example 'notes.txt')") != std::string::npos,
                foreign.output);
  CHECK(std::filesystem::exists(tmp.file("home/notes.txt")));
  CHECK_FALSE(std::filesystem::exists(tmp.file("home/metadata1")));

  std::ofstream(tmp.file("a-file")) << "x";
  auto not_dir = test::run_command({bin, "node", "--id", "1", "--address", "@sqraft-bad-2", "--dir", tmp.file("a-file")});
  CHECK(not_dir.status != 0);
  CHECK(not_dir.output.find("is not a directory") != std::string::npos);

  std::filesystem::create_directories(tmp.file("d"));
  auto bad_cluster = test::run_command({bin, "node", "--id", "1", "--address", "@sqraft-bad-3", "--dir", tmp.file("d"),
                                        "--cluster", "1@@a,two@@b"});
  CHECK(bad_cluster.status == 2);
  CHECK(bad_cluster.output.find("id 'two' is not a number") != std::string::npos);

  auto bad_address = test::run_command({bin, "node", "--id", "1", "--address", "host:99999", "--dir", tmp.file("d")});
  CHECK(bad_address.status != 0);
  CHECK(bad_address.output.find("port out of range") != std::string::npos);

  if (::geteuid() != 0) {
    std::filesystem::create_directories(tmp.file("ro"));
    std::filesystem::permissions(tmp.file("ro"), std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
    auto ro = test::run_command({bin, "node", "--id", "1", "--address", "@sqraft-bad-4", "--dir", tmp.file("ro")});
    CHECK(ro.output.find("is not writable") != std::string::npos);
  }
}

TEST_CASE("process: an address in use, a corrupt log and a stranger's bytes do not hurt the cluster") {
  ProcessCluster c({});
  REQUIRE(c.start_all().ok());
  create_table(c, "app");
  Writer w(c, "app");
  for (long id = 1; id <= 30; id++) REQUIRE(w.write_one(id));

  // A second process on a node's address refuses to start.
  test::TempDir tmp;
  auto in_use = test::run_command({ProcessCluster::binary(), "node", "--id", "9", "--address", c.address(0), "--dir",
                                   tmp.path().string()});
  CHECK(in_use.status != 0);
  CHECK(in_use.output.find("is already in use") != std::string::npos);

  // A stranger writes garbage to a node's socket: that connection is closed.
  for (int round = 0; round < 20; round++) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    const std::string name = c.address(round % 3).substr(1);
    std::memcpy(sun.sun_path + 1, name.data(), name.size());
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sun), socklen_t(offsetof(sockaddr_un, sun_path) + 1 + name.size())) == 0);
    std::mt19937 rng(round);
    std::string junk(1 + rng() % 4000, '\0');
    for (auto& ch : junk) ch = char(rng());
    ssize_t n = ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
    (void)n;
    char buf[256];
    while (::recv(fd, buf, sizeof buf, 0) > 0) {
    }
    ::close(fd);
  }

  // A node whose log is damaged refuses to start, with the reason.
  const unsigned f = (c.leader_index() + 1) % 3;
  REQUIRE(c.stop(f).ok());
  bool damaged = false;
  for (auto& entry : std::filesystem::directory_iterator(c.dir(f))) {
    const std::string name = entry.path().filename().string();
    if (name.find('-') != std::string::npos && name.rfind("open", 0) != 0 && name.rfind("snapshot", 0) != 0 &&
        std::filesystem::file_size(entry.path()) > 64) {
      std::fstream file(entry.path(), std::ios::in | std::ios::out | std::ios::binary);
      file.seekp(40);
      const char junk[16] = {'j', 'u', 'n', 'k', 'j', 'u', 'n', 'k', 'j', 'u', 'n', 'k', 'j', 'u', 'n', 'k'};
      file.write(junk, sizeof junk);
      damaged = true;
      break;
    }
  }
  if (damaged) {
    CHECK(!c.start(f).ok());
    CHECK(c.logs().find("cannot start raft") != std::string::npos);
  }

  // The other two keep serving, and nothing was lost.
  for (long id = 31; id <= 60; id++) REQUIRE(w.write_one(id));
  check_identical(c, "app");
  for (unsigned i = 0; i < 3; i++) {
    if (!c.running(i)) continue;
    CHECK(ids_on(c, i, "app").size() == 60);
  }
}
