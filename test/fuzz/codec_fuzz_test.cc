// Mutation fuzzing of everything that decodes bytes from the Raft log or a
// snapshot: no input may crash, hang or trip a sanitizer; whatever decodes
// must be safe to apply.
#include <doctest/doctest.h>

#include <chrono>
#include <random>

#include "command.h"
#include "snapshot_codec.h"
#include "support/sql.h"
#include "vfs.h"

using namespace sqraft;

namespace {

std::vector<std::string> seed_commands() {
  std::vector<std::string> out;
  Command open;
  open.proposal_id = 7;
  open.body = OpenCommand{"app", 4096, Database::initial_page1(4096)};
  out.push_back(encode_command(open));
  FramesBatch b;
  b.db = "app";
  b.txn_id = 99;
  b.page_size = 4096;
  for (uint32_t i = 1; i <= 3; i++) {
    PagePtr p = make_zero_page(4096);
    p[i] = uint8_t(i);
    b.frames.push_back({i, i + 1, p});
  }
  Command piece;
  piece.body = b;
  out.push_back(encode_command(piece));
  b.commit = true;
  b.frame_count = 3;
  b.db_size = 4;
  b.checksum = 0x1234;
  Command commit;
  commit.body = b;
  out.push_back(encode_command(commit));
  Command undo;
  undo.body = UndoCommand{"app", 99};
  out.push_back(encode_command(undo));
  Command ckpt;
  ckpt.body = CheckpointCommand{"app"};
  out.push_back(encode_command(ckpt));
  return out;
}

std::string mutate(std::string s, std::mt19937& rng) {
  const int edits = 1 + int(rng() % 4);
  for (int e = 0; e < edits; e++) {
    switch (rng() % 5) {
      case 0:  // flip a bit
        if (!s.empty()) s[rng() % s.size()] ^= char(1u << (rng() % 8));
        break;
      case 1:  // set a byte
        if (!s.empty()) s[rng() % s.size()] = char(rng());
        break;
      case 2:  // truncate
        s.resize(rng() % (s.size() + 1));
        break;
      case 3:  // append junk
        for (unsigned n = rng() % 16; n > 0; n--) s.push_back(char(rng()));
        break;
      case 4:  // large varint somewhere (lengths, counts)
        if (!s.empty()) {
          size_t at = rng() % s.size();
          s.insert(at, std::string("\xff\xff\xff\xff\x0f", 5));
        }
        break;
    }
  }
  return s;
}

}  // namespace

TEST_CASE("fuzz: mutated commands decode to an error or to something safe to apply") {
  const std::vector<std::string> seeds = seed_commands();
  for (const std::string& s : seeds) REQUIRE(decode_command(s.data(), s.size()).ok());
  Vfs::Options o;
  o.name = "fuzz-commands";
  auto vfs = Vfs::create(o, nullptr).value();
  REQUIRE(vfs->apply_open("app", Database::initial_page1(4096)).ok());
  std::mt19937 rng(1234);
  int decoded = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 30000; i++) {
    std::string m = mutate(seeds[rng() % seeds.size()], rng);
    Result<Command> c = decode_command(m.data(), m.size());
    if (!c.ok()) {
      CHECK(!c.status().message().empty());
      continue;
    }
    decoded++;
    // Anything that decodes is applied without crashing, hanging or
    // corrupting the database.
    Command& cmd = c.value();
    if (auto* f = std::get_if<FramesBatch>(&cmd.body)) {
      (void)vfs->apply_frames(std::move(*f), false);
    } else if (auto* u = std::get_if<UndoCommand>(&cmd.body)) {
      (void)vfs->apply_undo(u->db, u->txn_id);
    }
  }
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE(decoded << " of 30000 mutated commands decoded; " << seconds << " s");
  CHECK(seconds < 60);
  sqlite3* conn = vfs->open("app").value();
  CHECK(test::query(conn, "PRAGMA integrity_check") == "ok");
  sqlite3_close(conn);
}

TEST_CASE("fuzz: random bytes never decode into a command") {
  std::mt19937 rng(99);
  for (int i = 0; i < 20000; i++) {
    std::string junk(rng() % 300, '\0');
    for (auto& ch : junk) ch = char(rng());
    Result<Command> c = decode_command(junk.data(), junk.size());
    if (c.ok()) {
      // A valid command by chance must still have passed validation.
      const std::string back = encode_command(c.value());
      CHECK(decode_command(back.data(), back.size()).ok());
    }
  }
}

TEST_CASE("fuzz: hostile but well-formed commits are refused quickly") {
  Vfs::Options o;
  o.name = "fuzz-hostile";
  auto vfs = Vfs::create(o, nullptr).value();
  REQUIRE(vfs->apply_open("app", Database::initial_page1(4096)).ok());
  FramesBatch b;
  b.db = "app";
  b.txn_id = 5;
  b.page_size = 4096;
  b.frames.push_back({1, 1, Database::initial_page1(4096)});
  b.commit = true;
  b.frame_count = 0xffffffffu;  // more frames than arrived
  b.db_size = 1;
  CHECK(vfs->apply_frames(b, false).is_corruption());
  b.frame_count = 1;
  b.db_size = 0xfffffff0u;  // a database that grows by pages nobody wrote
  const auto start = std::chrono::steady_clock::now();
  CHECK(vfs->apply_frames(b, false).is_corruption());
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
}

TEST_CASE("fuzz: mutated snapshots are refused or restore consistently") {
  Vfs::Options o;
  o.name = "fuzz-snap-source";
  auto src = Vfs::create(o, nullptr).value();
  sqlite3* conn = src->open("app").value();
  REQUIRE(test::exec(conn, "CREATE TABLE t(x, y); INSERT INTO t VALUES(1, randomblob(100)), (2, 'two')") == SQLITE_OK);
  sqlite3_close(conn);
  std::vector<uint8_t> bytes;
  for (auto& b : encode_snapshot(src->capture())) bytes.insert(bytes.end(), b.data.get(), b.data.get() + b.size);
  REQUIRE(decode_snapshot(bytes.data(), bytes.size()).ok());

  Vfs::Options to;
  to.name = "fuzz-snap-target";
  auto target = Vfs::create(to, nullptr).value();
  std::mt19937 rng(5);
  int accepted = 0;
  for (int i = 0; i < 3000; i++) {
    std::string s(bytes.begin(), bytes.end());
    s = mutate(s, rng);
    auto images = decode_snapshot(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    if (!images.ok()) continue;
    if (target->restore(images.value()).ok()) accepted++;
  }
  MESSAGE(accepted << " mutated snapshots restored");
  // Whatever was accepted left a consistent database behind.
  if (auto db = target->find("app")) {
    CHECK(db->recompute_state_checksum() == db->state_checksum());
  }
}
