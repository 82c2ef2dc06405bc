// DiskStore: file names for any database name, the applied record, and the
// checks recovery makes of a WAL before trusting it.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "disk_store.h"
#include "support/temp_dir.h"
#include "wal_format.h"

using namespace sqraft;

namespace {

constexpr uint32_t kPage = 4096;

PagePtr page_of(uint8_t fill) {
  PagePtr p = make_zero_page(kPage);
  std::memset(p.get(), fill, kPage);
  return p;
}

std::unique_ptr<DiskStore> open_store(const std::string& dir, bool fresh = true) {
  std::filesystem::create_directories(dir + "/.applied");
  auto s = DiskStore::open(dir, "app.db", kPage, fresh);
  REQUIRE(s.ok());
  return std::move(s).value();
}

// Writes a WAL of `n` frames (pages 1..n, the last a commit of n pages);
// returns the record that names all of them.
AppliedRecord write_wal(DiskStore& s, uint32_t n) {
  wal::Header h;
  h.page_size = kPage;
  h.salt = {1, 2, 3, 4, 5, 6, 7, 8};
  uint8_t hdr[wal::kHeaderSize];
  wal::Checksum ck = wal::encode_header(h, hdr);
  REQUIRE(s.wal_start(hdr) == SQLITE_OK);
  for (uint32_t f = 1; f <= n; f++) {
    PagePtr page = page_of(uint8_t(f));
    uint8_t fh[wal::kFrameHeaderSize];
    ck = wal::encode_frame_header(false, f, f == n ? n : 0, h.salt, page.get(), kPage, ck, fh);
    REQUIRE(s.wal_append(fh, page) == SQLITE_OK);
  }
  AppliedRecord r;
  r.index = 42;
  r.page_size = kPage;
  r.n_page = n;
  r.mx_frame = n;
  std::memcpy(r.salt, h.salt.data(), 8);
  r.checksum = 0x1234;
  return r;
}

void flip_byte(const std::string& path, std::streamoff at) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f.good());
  f.seekg(at);
  char b = 0;
  f.read(&b, 1);
  b = char(b ^ 0x01);
  f.seekp(at);
  f.write(&b, 1);
}

}  // namespace

TEST_CASE("disk store: every database name maps to one safe file name and back") {
  for (const std::string name : {"app.db", "a/b", "..", ".hidden", "100%", "tab\tname", "\xc3\xa9t\xc3\xa9", "x-wal2"}) {
    const std::string file = DiskStore::file_name(name);
    CHECK(file.find('/') == std::string::npos);
    CHECK(file[0] != '.');
    const auto back = DiskStore::db_name(file);
    REQUIRE(back);
    CHECK(*back == name);
  }
  CHECK(DiskStore::file_name("app.db") == "app.db");  // plain names stay readable
  // Only the canonical spelling decodes: two files never name one database.
  CHECK_FALSE(DiskStore::db_name("%61pp"));
  CHECK_FALSE(DiskStore::db_name("a%2f"));
  CHECK_FALSE(DiskStore::db_name("bad%"));
  CHECK_FALSE(DiskStore::db_name(".x"));
}

TEST_CASE("disk store: the applied record round-trips, and a damaged one is refused") {
  test::TempDir tmp;
  auto s = open_store(tmp.path().string());
  CHECK(!DiskStore::read_record(tmp.path().string(), "app.db").value());  // none yet
  AppliedRecord r;
  r.index = 987654321;
  r.page_size = kPage;
  r.n_page = 77;
  r.mx_frame = 12;
  for (int i = 0; i < 8; i++) r.salt[i] = uint8_t(i * 3);
  r.checksum = 0xfeedfacecafebeefULL;
  REQUIRE(s->write_record(r).ok());
  auto got = DiskStore::read_record(tmp.path().string(), "app.db");
  REQUIRE(got.ok());
  REQUIRE(got.value());
  CHECK(got.value()->index == r.index);
  CHECK(got.value()->n_page == 77);
  CHECK(got.value()->mx_frame == 12);
  CHECK(std::memcmp(got.value()->salt, r.salt, 8) == 0);
  CHECK(got.value()->checksum == r.checksum);
  CHECK(!std::filesystem::exists(tmp.path().string() + "/.applied/app.db.tmp"));
  flip_byte(tmp.path().string() + "/.applied/app.db", 20);
  CHECK(DiskStore::read_record(tmp.path().string(), "app.db").status().is_corruption());
  REQUIRE(s->drop_record().ok());
  CHECK(!DiskStore::read_record(tmp.path().string(), "app.db").value());
}

TEST_CASE("disk store: recovery keeps exactly the frames a record names, after checking each") {
  test::TempDir tmp;
  AppliedRecord r;
  {
    auto s = open_store(tmp.path().string());
    r = write_wal(*s, 3);
    // Frames past the record (written, never recorded) are dropped.
    uint8_t fh[wal::kFrameHeaderSize] = {0, 0, 0, 9};
    REQUIRE(s->wal_append(fh, page_of(9)) == SQLITE_OK);
  }
  const std::string wal = tmp.path().string() + "/app.db-wal";
  {
    auto s = open_store(tmp.path().string(), false);
    auto ck = s->recover_wal(r);
    REQUIRE_MESSAGE(ck.ok(), ck.status().to_string());
    CHECK(s->wal_frame_count() == 3);
    CHECK(s->wal_size() == int64_t(wal::kHeaderSize + 3 * (wal::kFrameHeaderSize + kPage)));
    CHECK(std::filesystem::file_size(wal) == uint64_t(s->wal_size()));
    CHECK(s->frame_page(2).get()[100] == 2);
  }
  SUBCASE("another WAL generation (salt)") {
    AppliedRecord other = r;
    other.salt[0] ^= 1;
    auto s = open_store(tmp.path().string(), false);
    CHECK(s->recover_wal(other).status().is_corruption());
  }
  SUBCASE("a frame that is not the commit the record names") {
    AppliedRecord two = r;
    two.mx_frame = 2;
    two.n_page = 2;
    auto s = open_store(tmp.path().string(), false);
    CHECK(s->recover_wal(two).status().is_corruption());
  }
  SUBCASE("a damaged page inside the named frames") {
    flip_byte(wal, std::streamoff(wal::kHeaderSize + (wal::kFrameHeaderSize + kPage) + 30 + wal::kFrameHeaderSize));
    auto s = open_store(tmp.path().string(), false);
    CHECK(s->recover_wal(r).status().is_corruption());
  }
  SUBCASE("a WAL shorter than the record") {
    std::filesystem::resize_file(wal, wal::kHeaderSize + 2 * (wal::kFrameHeaderSize + kPage));
    auto s = open_store(tmp.path().string(), false);
    CHECK(s->recover_wal(r).status().is_corruption());
  }
  SUBCASE("a record of an empty WAL ignores what the file holds") {
    AppliedRecord none = r;
    none.mx_frame = 0;
    auto s = open_store(tmp.path().string(), false);
    REQUIRE(s->recover_wal(none).ok());
    CHECK(s->wal_size() == 0);
    CHECK(std::filesystem::file_size(wal) == 0);
  }
}

TEST_CASE("disk store: SQLite's byte-level WAL writes keep the frame headers it reads back") {
  test::TempDir tmp;
  auto s = open_store(tmp.path().string());
  write_wal(*s, 2);
  // SQLite writes a frame as its 24-byte header, then the page.
  uint8_t fh[wal::kFrameHeaderSize] = {0, 0, 0, 7, 0, 0, 0, 3};
  const int64_t off = int64_t(wal::kHeaderSize + 2 * (wal::kFrameHeaderSize + kPage));
  REQUIRE(s->wal_write(fh, sizeof fh, off) == SQLITE_OK);
  CHECK(s->wal_frame_count() == 3);
  PagePtr p = page_of(0x77);
  REQUIRE(s->wal_write(p.get(), kPage, off + int64_t(wal::kFrameHeaderSize)) == SQLITE_OK);
  CHECK(wal::decode_frame_header(s->frame_header(3)).pgno == 7);
  CHECK(wal::decode_frame_header(s->frame_header(3)).db_size == 3);
  CHECK(s->frame_page(3).get()[4095] == 0x77);
  uint8_t buf[16];
  CHECK(s->wal_read(buf, sizeof buf, s->wal_size()) == SQLITE_IOERR_SHORT_READ);
  REQUIRE(s->wal_keep(1) == SQLITE_OK);
  CHECK(s->wal_frame_count() == 1);
  CHECK(s->wal_read(buf, sizeof buf, off) == SQLITE_IOERR_SHORT_READ);  // past the logical end
}
