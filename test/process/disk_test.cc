// Disk storage (`sqraft node --storage disk`) with real processes: kill -9
// at random points of a write stream, clean restarts that replay nothing,
// damaged files refused, snapshot install and restore from the files.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "support/process_cluster.h"
#include "support/row_stream.h"

using namespace sqraft;
using test::ProcessCluster;

namespace {

ProcessCluster::Options disk_options(unsigned persist_ms = 100) {
  ProcessCluster::Options o;
  o.extra_args = {"--storage", "disk", "--persist-interval-ms", std::to_string(persist_ms)};
  return o;
}

std::string log_of(const ProcessCluster& c, unsigned i) {
  std::ifstream f(c.dir(i) + "/../node" + std::to_string(i + 1) + ".log");
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The counts of the last start-up of node i: (entries of its own log
// applied again, entries already in the database files); (-1, -1) if it
// logged none yet.
std::pair<long, long> startup_counts(const ProcessCluster& c, unsigned i) {
  const std::string log = log_of(c, i);
  static const std::regex re(R"(entries replayed, (\d+) already in the database files; (\d+) of its own log replayed)");
  std::pair<long, long> last{-1, -1};
  for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator(); ++it) {
    last = {std::stol((*it)[2]), std::stol((*it)[1])};
  }
  return last;
}

// Waits until node i logged `n` start-ups (it applied its log).
std::pair<long, long> wait_startup(const ProcessCluster& c, unsigned i, size_t n) {
  for (int t = 0; t < 300; t++) {
    const std::string log = log_of(c, i);
    size_t count = 0;
    for (size_t p = log.find("entries replayed"); p != std::string::npos; p = log.find("entries replayed", p + 1)) count++;
    if (count >= n) return startup_counts(c, i);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  FAIL("node " << i << " did not finish start-up " << n << "\n" << c.logs());
  return {-1, -1};
}

std::string lines_with(const std::string& text, const std::string& what) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = text.substr(pos, nl - pos);
    if (line.find(what) != std::string::npos) out += line + "\n";
    pos = nl + 1;
  }
  return out;
}

// How many databases node i opened from its files at its last start.
long opened_from_files(const ProcessCluster& c, unsigned i) {
  const std::string log = log_of(c, i);
  static const std::regex re(R"(disk mode: opened (\d+) databases)");
  long last = -1;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator(); ++it) {
    last = std::stol((*it)[1]);
  }
  return last;
}

std::string db_file(const ProcessCluster& c, unsigned i, const std::string& db) {
  return c.dir(i) + "/databases/" + db;
}

}  // namespace

TEST_CASE("process: disk storage: kill -9 at random points of a write stream loses nothing and replays only the tail") {
  ProcessCluster c(disk_options());
  REQUIRE(c.start_all().ok());
  test::create_table(c, "app");
  test::Writer w(c, "app");
  std::atomic<bool> stop{false};
  std::atomic<long> next{1};
  std::thread writer([&] {
    while (!stop) w.write_one(next++);
  });
  std::mt19937 rng(20261204);
  std::vector<size_t> startups(3, 1);
  long largest_skip = 0;
  for (int round = 0; round < 8; round++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 700));
    const unsigned victim = round % 4 == 3 ? c.leader_index() : unsigned(rng() % 3);
    REQUIRE(victim < 3);
    c.kill(victim);
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 300));
    REQUIRE(c.start(victim).ok());
    const auto [replayed, skipped] = wait_startup(c, victim, ++startups[victim]);
    MESSAGE("round " << round << ": node " << victim << " replayed " << replayed << " entries, " << skipped
                     << " were already in its database files");
    // The files held what the last record (every 100 ms, and at every
    // snapshot) named: the node opened them, and of its own log it applies
    // again only the entries after that record, not everything since the
    // snapshot.
    CHECK_MESSAGE(opened_from_files(c, victim) == 1, lines_with(log_of(c, victim), "vfs "));
    CHECK(replayed < 300);
    largest_skip = std::max(largest_skip, skipped);
  }
  stop = true;
  writer.join();
  REQUIRE(largest_skip >= 100);
  // Every acknowledged row on every node, the same rows everywhere.
  const long extra = next;
  for (long n = 0; n < 5; n++) REQUIRE(w.write_one(extra + n));
  test::check_identical(c, "app", 60000);
  for (unsigned i = 0; i < 3; i++) {
    const std::set<long> present = test::ids_on(c, i, "app");
    for (long a : w.acked) REQUIRE_MESSAGE(present.count(a), "acknowledged id " << a << " missing on node " << i);
  }
}

TEST_CASE("process: disk storage: a clean restart replays nothing, and the stopped node's files open in sqlite3") {
  ProcessCluster c(disk_options(1000));
  REQUIRE(c.start_all().ok());
  test::create_table(c, "app");
  test::Writer w(c, "app");
  for (long id = 1; id <= 300; id++) REQUIRE(w.write_one(id));
  test::check_identical(c, "app");
  for (unsigned i = 0; i < 3; i++) REQUIRE(c.stop(i).ok());
  for (unsigned i = 0; i < 3; i++) {
    // What a user does with a stopped node's data: read it with SQLite.
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(db_file(c, i, "app").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*), (SELECT integrity_check FROM pragma_integrity_check) FROM t",
                               -1, &st, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    CHECK(sqlite3_column_int(st, 0) == 300);
    CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 1))) == "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
  REQUIRE(c.start_all().ok());
  for (unsigned i = 0; i < 3; i++) {
    const auto [replayed, skipped] = wait_startup(c, i, 2);
    CHECK_MESSAGE(replayed == 0, "node " << i << " replayed " << replayed);
    CHECK(skipped > 300);
  }
  for (long id = 301; id <= 310; id++) REQUIRE(w.write_one(id));
  test::check_identical(c, "app");
  CHECK(test::ids_on(c, 1, "app").size() == 310);
}

TEST_CASE("process: disk storage: damaged database files are refused and the log brings the database back") {
  ProcessCluster c(disk_options());
  REQUIRE(c.start_all().ok());
  test::create_table(c, "app");
  test::Writer w(c, "app");
  for (long id = 1; id <= 100; id++) REQUIRE(w.write_one(id));
  const unsigned f = (c.leader_index() + 1) % 3;
  REQUIRE(c.stop(f).ok());
  // One flipped byte in the first page the database file holds beyond page
  // 1, and the WAL cut short: neither matches the record any more.
  {
    const std::string path = db_file(c, f, "app");
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(file.good());
    file.seekg(4096 + 200);
    char b = 0;
    file.read(&b, 1);
    file.seekp(4096 + 200);
    b = char(b ^ 0x5a);
    file.write(&b, 1);
  }
  const auto wal_size = std::filesystem::file_size(db_file(c, f, "app") + "-wal");
  if (wal_size > 4096) std::filesystem::resize_file(db_file(c, f, "app") + "-wal", wal_size / 2);
  REQUIRE(c.start(f).ok());
  wait_startup(c, f, 2);
  CHECK(log_of(c, f).find("not using the files of 'app'") != std::string::npos);
  for (long id = 101; id <= 110; id++) REQUIRE(w.write_one(id));
  test::check_identical(c, "app");
  CHECK(test::ids_on(c, f, "app").size() == 110);
}

TEST_CASE("process: disk storage: a follower catches up by snapshot install, then restarts from its files") {
  ProcessCluster::Options o = disk_options();
  o.snapshot_threshold = 16;
  o.snapshot_trailing = 4;
  ProcessCluster c(o);
  REQUIRE(c.start_all().ok());
  test::create_table(c, "app");
  test::Writer w(c, "app");
  for (long id = 1; id <= 20; id++) REQUIRE(w.write_one(id));
  const unsigned f = (c.leader_index() + 1) % 3;
  c.kill(f);
  for (long id = 21; id <= 200; id++) REQUIRE(w.write_one(id));
  REQUIRE(c.start(f).ok());
  test::check_identical(c, "app", 60000);
  CHECK(test::ids_on(c, f, "app").size() == 200);
  // Restarted on its own snapshot, the files already hold its state: kept,
  // not rebuilt from the snapshot.
  REQUIRE(c.stop(f).ok());
  REQUIRE(c.start(f).ok());
  wait_startup(c, f, 3);
  CHECK(log_of(c, f).find("restore: db 'app' already holds log index") != std::string::npos);
  for (long id = 201; id <= 210; id++) REQUIRE(w.write_one(id));
  test::check_identical(c, "app");
  CHECK(test::ids_on(c, f, "app").size() == 210);
}
