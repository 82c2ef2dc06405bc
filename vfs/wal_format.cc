#include "wal_format.h"

#include <bit>
#include <cassert>

namespace sqraft::wal {

bool valid_page_size(uint32_t page_size) {
  return page_size >= kPageSizeMin && page_size <= kPageSizeMax && std::has_single_bit(page_size);
}

Checksum checksum(bool big_endian, const uint8_t* data, size_t n, Checksum seed) {
  assert(n % 8 == 0);
  uint32_t s0 = seed.s0;
  uint32_t s1 = seed.s1;
  for (size_t i = 0; i < n; i += 8) {
    uint32_t a = big_endian ? get_be32(data + i) : get_le32(data + i);
    uint32_t b = big_endian ? get_be32(data + i + 4) : get_le32(data + i + 4);
    s0 += a + s1;
    s1 += b + s0;
  }
  return {s0, s1};
}

Checksum encode_header(Header h, uint8_t out[kHeaderSize]) {
  put_be32(out + 0, h.magic);
  put_be32(out + 4, h.version);
  put_be32(out + 8, h.page_size);
  put_be32(out + 12, h.checkpoint_seq);
  std::memcpy(out + 16, h.salt.data(), 8);
  Checksum c = checksum(h.big_endian(), out, 24, {});
  put_be32(out + 24, c.s0);
  put_be32(out + 28, c.s1);
  return c;
}

std::optional<Header> decode_header(const uint8_t in[kHeaderSize]) {
  Header h;
  h.magic = get_be32(in + 0);
  if (h.magic != kMagicLittleEndian && h.magic != kMagicBigEndian) return std::nullopt;
  h.version = get_be32(in + 4);
  if (h.version != kFormatVersion) return std::nullopt;
  h.page_size = get_be32(in + 8);
  if (!valid_page_size(h.page_size)) return std::nullopt;
  h.checkpoint_seq = get_be32(in + 12);
  std::memcpy(h.salt.data(), in + 16, 8);
  h.cksum = {get_be32(in + 24), get_be32(in + 28)};
  if (checksum(h.big_endian(), in, 24, {}) != h.cksum) return std::nullopt;
  return h;
}

Checksum encode_frame_header(bool big_endian, uint32_t pgno, uint32_t db_size, const Salt& salt,
                             const uint8_t* page, uint32_t page_size, Checksum prev,
                             uint8_t out[kFrameHeaderSize]) {
  put_be32(out + 0, pgno);
  put_be32(out + 4, db_size);
  std::memcpy(out + 8, salt.data(), 8);
  Checksum c = checksum(big_endian, out, 8, prev);
  c = checksum(big_endian, page, page_size, c);
  put_be32(out + 16, c.s0);
  put_be32(out + 20, c.s1);
  return c;
}

FrameHeader decode_frame_header(const uint8_t in[kFrameHeaderSize]) {
  FrameHeader f;
  f.pgno = get_be32(in + 0);
  f.db_size = get_be32(in + 4);
  std::memcpy(f.salt.data(), in + 8, 8);
  f.cksum = {get_be32(in + 16), get_be32(in + 20)};
  return f;
}

namespace {

Checksum index_header_checksum(const IndexHeader& h) {
  constexpr bool kNativeBigEndian = std::endian::native == std::endian::big;
  return checksum(kNativeBigEndian, reinterpret_cast<const uint8_t*>(&h), 40, {});
}

}  // namespace

void seal_index_header(IndexHeader& h) {
  h.version = kIndexVersion;
  h.is_init = 1;
  Checksum c = index_header_checksum(h);
  h.cksum[0] = c.s0;
  h.cksum[1] = c.s1;
}

bool index_header_valid(const IndexHeader& h) {
  if (h.is_init == 0 || h.version != kIndexVersion) return false;
  Checksum c = index_header_checksum(h);
  return c.s0 == h.cksum[0] && c.s1 == h.cksum[1];
}

uint32_t region_of_frame(uint32_t frame) {
  assert(frame >= 1);
  return (frame + kHashFramesPerRegion - kHashFramesRegionZero - 1) / kHashFramesPerRegion;
}

HashLocation hash_location_of_region(uint32_t region) {
  if (region == 0) return {0, 0, kIndexPrologueSize};
  return {region, kHashFramesRegionZero + (region - 1) * kHashFramesPerRegion, 0};
}

}  // namespace sqraft::wal
