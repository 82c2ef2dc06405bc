// The dqlite wire format and address syntax on their own: headers, bodies,
// values and parameters written and read back, the ROWS layout, and the
// refusals a malformed body or address must get.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "address.h"
#include "wire.h"

using namespace sqraft;

TEST_CASE("wire: a header says the body's length in words, type and schema") {
  wire::BodyWriter w;
  w.u64(7);
  w.text("abc");  // 4 bytes with the NUL, padded to 8
  const std::vector<uint8_t> msg = w.finish(wire::kQuerySql, 1);
  REQUIRE(msg.size() == wire::kHeaderSize + 16);
  const wire::Header h = wire::decode_header(msg.data());
  CHECK(h.words == 2);
  CHECK(h.type == wire::kQuerySql);
  CHECK(h.schema == 1);
  uint8_t again[wire::kHeaderSize];
  wire::encode_header(h, again);
  CHECK(std::vector<uint8_t>(again, again + 8) == std::vector<uint8_t>(msg.begin(), msg.begin() + 8));
}

TEST_CASE("wire: every field reads back as written, padding included") {
  wire::BodyWriter w;
  w.u64(0xfedcba9876543210ULL);
  w.i64(-5);
  w.f64(-0.25);
  w.u32_pair(3, 4000000000u);
  w.text("");
  w.text("exactly7");  // 8 bytes + NUL: two words
  w.blob(std::string("\0\x01\x02", 3));
  wire::BodyReader r(w.bytes());
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  uint32_t a = 0, b = 0;
  std::string t1 = "x", t2, bl;
  REQUIRE(r.u64(&u));
  REQUIRE(r.i64(&i));
  REQUIRE(r.f64(&f));
  REQUIRE(r.u32_pair(&a, &b));
  REQUIRE(r.text(&t1));
  REQUIRE(r.text(&t2));
  REQUIRE(r.blob(&bl));
  CHECK(u == 0xfedcba9876543210ULL);
  CHECK(i == -5);
  CHECK(f == -0.25);
  CHECK(a == 3);
  CHECK(b == 4000000000u);
  CHECK(t1.empty());
  CHECK(t2 == "exactly7");
  CHECK(bl == std::string("\0\x01\x02", 3));
  CHECK(r.at_end());
  CHECK(w.size() % wire::kWord == 0);
}

TEST_CASE("wire: a truncated or unterminated body fails instead of reading past its end") {
  wire::BodyWriter w;
  w.text("hello");
  std::vector<uint8_t> body = w.bytes();
  // No NUL anywhere: the text never ends.
  for (auto& byte : body) byte = 'x';
  wire::BodyReader r(body);
  std::string s;
  CHECK_FALSE(r.text(&s));
  CHECK(r.failed());
  uint64_t v = 0;
  CHECK_FALSE(r.u64(&v));  // stays failed

  // A blob whose length is larger than what follows.
  wire::BodyWriter big;
  big.u64(1000);
  wire::BodyReader rb(big.bytes());
  std::string blob;
  CHECK_FALSE(rb.blob(&blob));

  wire::BodyReader empty(nullptr, 0);
  CHECK_FALSE(empty.u64(&v));
  uint8_t raw[4];
  wire::BodyReader three(reinterpret_cast<const uint8_t*>("abc"), 3);
  CHECK_FALSE(three.raw(raw, 4));
}

TEST_CASE("wire: parameters of every type in both schemas, and malformed ones") {
  const std::vector<wire::Value> values = {
      wire::Value::Integer(-1), wire::Value::Float(1.5), wire::Value::Text("t\xc3\xa9"),
      wire::Value::Blob(std::string("\0b", 2)), wire::Value::Null()};
  for (uint8_t schema : {uint8_t(0), uint8_t(1)}) {
    CAPTURE(schema);
    wire::BodyWriter w;
    w.params(values, schema);
    wire::BodyReader r(w.bytes());
    std::vector<wire::Value> got;
    REQUIRE(r.params(schema, &got).ok());
    CHECK(got == values);
    CHECK(r.at_end());
  }
  // Schema 0 counts in one byte: 300 parameters need schema 1.
  std::vector<wire::Value> many(300, wire::Value::Integer(7));
  wire::BodyWriter w1;
  w1.params(many, 1);
  wire::BodyReader r1(w1.bytes());
  std::vector<wire::Value> got;
  REQUIRE(r1.params(1, &got).ok());
  CHECK(got.size() == 300);

  // No bytes at all: no parameters.
  wire::BodyReader none(nullptr, 0);
  REQUIRE(none.params(0, &got).ok());
  CHECK(got.empty());
  // A count larger than the message, an unknown schema, an unknown type.
  const uint8_t lies[8] = {200, 1, 0, 0, 0, 0, 0, 0};
  wire::BodyReader r2(lies, sizeof lies);
  CHECK(r2.params(0, &got).code() == int(wire::kErrProto));
  wire::BodyReader r3(lies, sizeof lies);
  CHECK(r3.params(7, &got).code() == int(wire::kErrProto));
  const uint8_t bad_type[16] = {1, 99, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
  wire::BodyReader r4(bad_type, sizeof bad_type);
  CHECK_FALSE(r4.params(0, &got).ok());
}

TEST_CASE("wire: ROWS holds the column names, a type nibble per column and the end marker") {
  wire::RowsWriter rows({"a", "b", "c"});
  rows.row({wire::Value::Integer(1), wire::Value::Text("x"), wire::Value::Null()});
  CHECK(rows.rows() == 1);
  std::vector<uint8_t> done = rows.finish(false);
  wire::BodyReader r(done.data() + wire::kHeaderSize, done.size() - wire::kHeaderSize);
  uint64_t n = 0;
  std::string name;
  REQUIRE(r.u64(&n));
  CHECK(n == 3);
  for (const char* want : {"a", "b", "c"}) {
    REQUIRE(r.text(&name));
    CHECK(name == want);
  }
  uint8_t header[8];
  REQUIRE(r.raw(header, 8));
  CHECK(header[0] == (wire::kInteger | (wire::kText << 4)));
  CHECK(header[1] == wire::kNull);
  wire::Value v;
  REQUIRE(r.value(wire::kInteger, &v));
  CHECK(v.integer == 1);
  REQUIRE(r.value(wire::kText, &v));
  CHECK(v.bytes == "x");
  REQUIRE(r.value(wire::kNull, &v));
  uint64_t marker = 0;
  REQUIRE(r.u64(&marker));
  CHECK(marker == wire::kRowsDone);
  CHECK(r.at_end());

  wire::RowsWriter part({"a"});
  std::vector<uint8_t> more = part.finish(true);
  wire::BodyReader rm(more.data() + more.size() - 8, 8);
  REQUIRE(rm.u64(&marker));
  CHECK(marker == wire::kRowsMore);
}

TEST_CASE("wire: FAILURE carries the code and message; UTF-8 is checked") {
  std::vector<uint8_t> msg = wire::failure(19, "constraint failed");
  CHECK(wire::decode_header(msg.data()).type == wire::kFailure);
  wire::BodyReader r(msg.data() + wire::kHeaderSize, msg.size() - wire::kHeaderSize);
  uint64_t code = 0;
  std::string text;
  REQUIRE(r.u64(&code));
  REQUIRE(r.text(&text));
  CHECK(code == 19);
  CHECK(text == "constraint failed");
  CHECK(wire::valid_utf8("h\xc3\xa9llo \xe2\x82\xac"));
  CHECK_FALSE(wire::valid_utf8("\xc3"));          // cut short
  CHECK_FALSE(wire::valid_utf8("\xc0\xaf"));      // overlong
  CHECK_FALSE(wire::valid_utf8("\xed\xa0\x80"));  // a surrogate
  CHECK(std::string(wire::request_name(wire::kExecSql)) == "exec_sql");
  CHECK(std::string(wire::request_name(200)) == "unknown");
}

TEST_CASE("address: the three kinds, the default port, and what is refused") {
  Result<Address> tcp = parse_address("10.0.0.1:9001");
  REQUIRE(tcp.ok());
  CHECK(tcp.value().kind == Address::Kind::kTcp);
  CHECK(tcp.value().host == "10.0.0.1");
  CHECK(tcp.value().port == 9001);
  Result<Address> bare = parse_address("db.example");
  REQUIRE(bare.ok());
  CHECK(bare.value().port == kDefaultPort);
  Result<Address> v6 = parse_address("[::1]:7000");
  REQUIRE(v6.ok());
  CHECK(v6.value().host == "::1");
  CHECK(v6.value().port == 7000);
  Result<Address> abstract = parse_address("@node-1");
  REQUIRE(abstract.ok());
  CHECK(abstract.value().kind == Address::Kind::kAbstract);
  CHECK(abstract.value().path == "node-1");
  CHECK(abstract.value().is_unix());
  Result<Address> path = parse_address("/run/sqraft.sock");
  REQUIRE(path.ok());
  CHECK(path.value().kind == Address::Kind::kPath);
  CHECK(path.value().text == "/run/sqraft.sock");

  for (const char* bad : {"", "@", "host:0", "host:65536", "host:12ab", ":9000"}) {
    INFO("address: '" << bad << "'");
    CHECK_FALSE(parse_address(bad).ok());
  }
  CHECK_FALSE(parse_address("/" + std::string(200, 'p')).ok());  // longer than sun_path
  CHECK_FALSE(parse_address("@" + std::string(200, 'n')).ok());
}
