// WAL and wal-index formats, checked byte for byte against files that SQLite
// itself wrote.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <vector>

#include "database.h"
#include "shm.h"
#include "support/sql.h"
#include "support/temp_dir.h"
#include "wal_format.h"

using namespace sqraft;

namespace {

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// Opens a database on SQLite's own unix VFS in WAL mode without checkpoints.
sqlite3* open_plain(const std::string& path, int page_size = 4096) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  REQUIRE(test::exec(db, "PRAGMA page_size=" + std::to_string(page_size)) == SQLITE_OK);
  REQUIRE(test::query(db, "PRAGMA journal_mode=WAL") == "wal");
  REQUIRE(test::exec(db, "PRAGMA wal_autocheckpoint=0; PRAGMA synchronous=OFF") == SQLITE_OK);
  return db;
}

struct ParsedWal {
  wal::Header header;
  std::vector<wal::FrameHeader> frames;
  std::vector<const uint8_t*> pages;
};

ParsedWal parse(const std::vector<uint8_t>& bytes) {
  ParsedWal p;
  auto h = wal::decode_header(bytes.data());
  REQUIRE(h.has_value());
  p.header = *h;
  const size_t frame_size = wal::kFrameHeaderSize + h->page_size;
  for (size_t off = wal::kHeaderSize; off + frame_size <= bytes.size(); off += frame_size) {
    p.frames.push_back(wal::decode_frame_header(bytes.data() + off));
    p.pages.push_back(bytes.data() + off + wal::kFrameHeaderSize);
  }
  return p;
}

}  // namespace

TEST_CASE("wal format: checksums and frame headers reproduce what SQLite wrote") {
  test::TempDir dir;
  sqlite3* db = open_plain(dir.file("x.db"));
  REQUIRE(test::exec(db, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)") == SQLITE_OK);
  for (int i = 0; i < 50; i++) {
    REQUIRE(test::exec(db, "INSERT INTO t(v) VALUES(randomblob(1500))") == SQLITE_OK);
  }
  const std::vector<uint8_t> bytes = read_file(dir.file("x.db-wal"));
  ParsedWal w = parse(bytes);
  CHECK(w.header.page_size == 4096);
  CHECK(w.header.magic == wal::kMagicLittleEndian);
  REQUIRE(w.frames.size() >= 50);

  // Re-encode every frame header from the previous checksum: identical bytes.
  wal::Checksum ck = w.header.cksum;
  int commits = 0;
  for (size_t i = 0; i < w.frames.size(); i++) {
    uint8_t mine[wal::kFrameHeaderSize];
    ck = wal::encode_frame_header(false, w.frames[i].pgno, w.frames[i].db_size, w.header.salt, w.pages[i], 4096,
                                  ck, mine);
    const uint8_t* theirs = bytes.data() + wal::kHeaderSize + i * (wal::kFrameHeaderSize + 4096);
    REQUIRE(std::memcmp(mine, theirs, wal::kFrameHeaderSize) == 0);
    if (w.frames[i].db_size) commits++;
  }
  CHECK(commits == 51);  // CREATE TABLE + 50 inserts

  // And the WAL header itself.
  uint8_t header[wal::kHeaderSize];
  wal::encode_header(w.header, header);
  CHECK(std::memcmp(header, bytes.data(), wal::kHeaderSize) == 0);
  sqlite3_close(db);
}

TEST_CASE("wal format: decode_header rejects damaged headers") {
  uint8_t good[wal::kHeaderSize];
  wal::Header h;
  h.page_size = 4096;
  h.salt = {1, 2, 3, 4, 5, 6, 7, 8};
  wal::encode_header(h, good);
  REQUIRE(wal::decode_header(good).has_value());
  for (size_t byte : {0u, 5u, 9u, 17u, 26u}) {
    uint8_t bad[wal::kHeaderSize];
    std::memcpy(bad, good, sizeof bad);
    bad[byte] ^= 0x40;
    CHECK_MESSAGE(!wal::decode_header(bad).has_value(), "byte " << byte);
  }
  h.page_size = 3000;  // not a power of two
  wal::encode_header(h, good);
  CHECK(!wal::decode_header(good).has_value());
}

TEST_CASE("wal-index: our hash tables and header equal SQLite's, across regions") {
  test::TempDir dir;
  sqlite3* db = open_plain(dir.file("x.db"), 1024);
  REQUIRE(test::exec(db, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)") == SQLITE_OK);
  // Enough frames to fill region 0 (4062 frames) and start region 1.
  int i = 0;
  while (true) {
    REQUIRE(test::exec(db, "INSERT INTO t(v) VALUES(randomblob(200))") == SQLITE_OK);
    if (++i % 200 == 0 && read_file(dir.file("x.db-wal")).size() > size_t(4500) * (24 + 1024)) break;
  }
  const std::vector<uint8_t> wal_bytes = read_file(dir.file("x.db-wal"));
  const std::vector<uint8_t> shm_bytes = read_file(dir.file("x.db-shm"));
  ParsedWal w = parse(wal_bytes);
  REQUIRE(shm_bytes.size() >= 2 * wal::kRegionSize);

  wal::IndexHeader theirs;
  std::memcpy(&theirs, shm_bytes.data(), sizeof theirs);
  REQUIRE(wal::index_header_valid(theirs));
  CHECK(theirs.page_size() == 1024);
  const uint32_t mx = theirs.mx_frame;
  REQUIRE(mx > wal::kHashFramesRegionZero);
  REQUIRE(mx <= w.frames.size());
  CHECK(std::memcmp(theirs.salt, w.header.salt.data(), 8) == 0);
  CHECK(theirs.frame_cksum[0] == w.frames[mx - 1].cksum.s0);
  CHECK(theirs.frame_cksum[1] == w.frames[mx - 1].cksum.s1);

  Shm ours;
  for (uint32_t f = 1; f <= mx; f++) REQUIRE(ours.append(f, w.frames[f - 1].pgno, f - 1));
  for (uint32_t r = 0; r <= wal::region_of_frame(mx); r++) {
    const size_t from = r == 0 ? wal::kIndexPrologueSize : 0;
    CHECK_MESSAGE(std::memcmp(ours.region(r, false) + from, shm_bytes.data() + r * wal::kRegionSize + from,
                              wal::kRegionSize - from) == 0,
                  "region " << r);
  }

  // A header we seal with the same fields carries the same checksum.
  wal::IndexHeader copy = theirs;
  copy.cksum[0] = copy.cksum[1] = 0;
  wal::seal_index_header(copy);
  CHECK(std::memcmp(&copy, &theirs, sizeof copy) == 0);

  // lookup() finds the latest frame of every page, as a scan does.
  std::map<uint32_t, uint32_t> latest;
  for (uint32_t f = 1; f <= mx; f++) latest[w.frames[f - 1].pgno] = f;
  for (auto [pgno, frame] : latest) REQUIRE(ours.lookup(pgno, mx) == frame);
  sqlite3_close(db);
}

TEST_CASE("wal-index: truncate_after removes the entries of a rolled back writer") {
  Shm shm;
  for (uint32_t f = 1; f <= 10; f++) REQUIRE(shm.append(f, 100 + f, f - 1));
  shm.truncate_after(6);
  CHECK(shm.lookup(107, 10) == 0);
  CHECK(shm.lookup(106, 10) == 6);
  // Appending over stale entries cleans them first.
  for (uint32_t f = 1; f <= 10; f++) REQUIRE(shm.append(f, 200 + f, f - 1));
  REQUIRE(shm.append(7, 999, 6));  // frame 7 was 207: stale from here on
  CHECK(shm.lookup(999, 7) == 7);
  CHECK(shm.lookup(208, 10) == 0);
}

TEST_CASE("initial page 1 equals the page SQLite writes when an empty database enters WAL mode") {
  for (int page_size : {512, 4096, 65536}) {
    test::TempDir dir;
    sqlite3* db = open_plain(dir.file("x.db"), page_size);
    sqlite3_close(db);
    const std::vector<uint8_t> file = read_file(dir.file("x.db"));
    REQUIRE(file.size() == size_t(page_size));
    PagePtr ours = Database::initial_page1(uint32_t(page_size));
    CHECK_MESSAGE(std::memcmp(ours.get(), file.data(), page_size) == 0, "page size " << page_size);
  }
}

TEST_CASE("index header stores 65536 as 1") {
  CHECK(wal::IndexHeader::encode_page_size(65536) == 1);
  wal::IndexHeader h;
  h.page_size_code = 1;
  CHECK(h.page_size() == 65536);
  h.page_size_code = wal::IndexHeader::encode_page_size(4096);
  CHECK(h.page_size() == 4096);
}
