// The bugs the libFuzzer targets found, each as a unit test of the normal
// suite (their inputs are in corpus/<target>/regress-*, replayed by the
// fuzz-replay tests): what a broken or hostile peer sends must end in an
// error, promptly and without an allocation the bytes received do not pay
// for.
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "client.h"
#include "snapshot_codec.h"
#include "vfs.h"
#include "wire.h"

using namespace sqraft;

namespace {

// A client whose server has sent `bytes` and then shut down writing; the
// server's end stays open (what the client writes is never read) until the
// client goes.
struct ServedClient {
  int server_fd = -1;
  std::unique_ptr<Client> client;
  ~ServedClient() {
    client.reset();
    if (server_fd >= 0) ::close(server_fd);
  }
};

std::unique_ptr<ServedClient> client_after(const std::vector<uint8_t>& bytes) {
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  auto served = std::make_unique<ServedClient>();
  served->server_fd = fds[0];
  REQUIRE(::send(fds[0], bytes.data(), bytes.size(), MSG_NOSIGNAL) == ssize_t(bytes.size()));
  ::shutdown(fds[0], SHUT_WR);
  Result<std::unique_ptr<Client>> c = Client::adopt(fds[1], "regression server", 1000);
  REQUIRE(c.ok());
  served->client = std::move(c).value();
  return served;
}

std::vector<uint8_t> db_answer() {
  wire::BodyWriter w;
  w.u32_pair(0, 0);
  return w.finish(wire::kDb);
}

}  // namespace

TEST_CASE("client: a FAILURE whose code has zero low 32 bits is still an error (SQLITE_ERROR)") {
  std::unique_ptr<ServedClient> served = client_after(wire::failure(uint64_t{1} << 32, "odd code"));
  Client* c = served->client.get();
  Result<uint32_t> db = c->open("app");
  REQUIRE(!db.ok());
  CHECK(db.status().code() == SQLITE_ERROR);
  CHECK(db.status().message() == "odd code");
}

TEST_CASE("client: a ROWS without columns ends the rows with a protocol error, not endless empty rows") {
  std::vector<uint8_t> bytes = db_answer();
  wire::BodyWriter rows;
  rows.u64(0);           // no columns
  rows.u64(1);           // a "row" that takes no bytes
  rows.u64(wire::kRowsDone);
  const std::vector<uint8_t> m = rows.finish(wire::kRows);
  bytes.insert(bytes.end(), m.begin(), m.end());
  std::unique_ptr<ServedClient> served = client_after(bytes);
  Client* c = served->client.get();
  Result<uint32_t> db = c->open("app");
  REQUIRE(db.ok());
  Result<std::unique_ptr<Rows>> r = c->query(db.value(), "SELECT 1");
  REQUIRE(r.ok());
  std::vector<wire::Value> row;
  int n = 0;
  while (r.value()->next(&row) && n < 10) n++;
  CHECK(n == 0);
  CHECK(r.value()->status().code() == int(wire::kErrProto));
}

TEST_CASE("client: a header claiming a 32 GiB body, then end of stream, fails without allocating the claim") {
  wire::Header h;
  h.words = 0xffffffff;  // 32 GiB
  h.type = wire::kDb;
  std::vector<uint8_t> bytes(wire::kHeaderSize + 8);
  wire::encode_header(h, bytes.data());
  std::unique_ptr<ServedClient> served = client_after(bytes);
  Client* c = served->client.get();
  Result<uint32_t> db = c->open("app");
  CHECK(!db.ok());  // before the fix: a 32 GiB vector, zero-filled
}

TEST_CASE("wire: text() of an empty body fails (and does not memchr a null pointer)") {
  const std::vector<uint8_t> empty;
  wire::BodyReader r(empty);
  std::string s = "unchanged";
  CHECK(!r.text(&s));
  CHECK(s == "unchanged");
}

TEST_CASE("snapshot: a WAL frame of page 4e9 is refused by the decoder, not installed as a 64 GB page table") {
  DbImage img;
  img.name = "app";
  img.page_size = 1024;
  img.pages.push_back(Database::initial_page1(1024));
  img.wal.push_back({4000000000u, 4000000000u, make_zero_page(1024)});
  img.n_page = 4000000000u;
  std::vector<uint8_t> bytes;
  for (const SnapshotBuffer& b : encode_snapshot({img})) bytes.insert(bytes.end(), b.data.get(), b.data.get() + b.size);
  Result<std::vector<DbImage>> decoded = decode_snapshot(bytes.data(), bytes.size());
  REQUIRE(!decoded.ok());
  CHECK(decoded.status().is_corruption());
  CHECK(decoded.status().message().find("beyond") != std::string::npos);
}

TEST_CASE("vfs: a commit growing a database by 4e9 pages with one frame is refused at once") {
  Vfs::Options o;
  o.name = "regress-growth";
  auto vfs = Vfs::create(o, nullptr).value();
  REQUIRE(vfs->apply_open("app", Database::initial_page1(4096)).ok());
  FramesBatch b;
  b.db = "app";
  b.txn_id = 7;
  b.page_size = 4096;
  b.frames.push_back({1, 4000000000u, make_zero_page(4096)});
  b.commit = true;
  b.frame_count = 1;
  b.db_size = 4000000000u;
  const auto start = std::chrono::steady_clock::now();
  Status s = vfs->apply_frames(b, false);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  CHECK(s.is_corruption());
  CHECK(s.message().find("grows the database") != std::string::npos);
  CHECK(ms.count() < 1000);  // before the fix: a hash of 4e9 zero pages, then a divergence
  CHECK(vfs->find("app")->state_checksum() == vfs->find("app")->recompute_state_checksum());
}

TEST_CASE("vfs: a commit writing page 4e9 while keeping the size is refused, so snapshots stay bounded") {
  Vfs::Options o;
  o.name = "regress-far-page";
  auto vfs = Vfs::create(o, nullptr).value();
  REQUIRE(vfs->apply_open("app", Database::initial_page1(4096)).ok());
  FramesBatch b;
  b.db = "app";
  b.txn_id = 8;
  b.page_size = 4096;
  b.frames.push_back({1, 1, Database::initial_page1(4096)});
  b.frames.push_back({2, 4000000000u, make_zero_page(4096)});
  b.commit = true;
  b.frame_count = 2;
  b.db_size = 1;
  Status s = vfs->apply_frames(b, false);
  CHECK(s.is_corruption());
  CHECK(s.message().find("writing up to page 4000000000") != std::string::npos);
  // Before the fix the commit was refused only by the state hash, and had
  // it matched, every later snapshot would have asked for a 64 GB table.
  std::vector<DbImage> images = vfs->capture();
  REQUIRE(images.size() == 1);
  CHECK(Vfs::logical_pages(images[0]).size() == 1);
}
