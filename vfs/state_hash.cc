#include "state_hash.h"

#include <xxhash.h>

#include <cassert>
#include <vector>

namespace sqraft {

StateHash::StateHash(uint32_t page_size) : page_size_(page_size), zero_page_(page_size, 0) {}

uint64_t StateHash::page_hash(uint32_t pgno, const uint8_t* data, uint32_t page_size) {
  return XXH3_64bits_withSeed(data, page_size, pgno);
}

uint64_t StateHash::zero_hash(uint32_t pgno) const {
  // Pages past the end of the file read as zeroes.
  return page_hash(pgno, zero_page_.data(), page_size_);
}

uint64_t StateHash::combine(uint64_t sum, uint32_t n_page) {
  uint64_t in[2] = {sum, n_page};
  return XXH3_64bits(in, sizeof in);
}

std::pair<uint64_t, std::vector<uint64_t>> StateHash::compute(std::span<const PageChange> changes,
                                                              uint32_t new_n_page) const {
  uint64_t sum = sum_;
  const uint32_t old_n_page = n_page();
  // Pages dropped by truncation.
  for (uint32_t p = new_n_page + 1; p <= old_n_page; p++) sum -= hashes_[p - 1];
  // Pages added by growth start as zero pages unless changed below.
  for (uint32_t p = old_n_page + 1; p <= new_n_page; p++) sum += zero_hash(p);
  std::vector<uint64_t> fresh(changes.size());
  for (size_t i = 0; i < changes.size(); i++) {
    const PageChange& c = changes[i];
    fresh[i] = page_hash(c.pgno, c.data, page_size_);
    if (c.pgno > new_n_page) continue;
    uint64_t before = c.pgno <= old_n_page ? hashes_[c.pgno - 1] : zero_hash(c.pgno);
    sum = sum - before + fresh[i];
  }
  return {sum, std::move(fresh)};
}

uint64_t StateHash::preview(std::span<const PageChange> changes, uint32_t new_n_page) const {
  return combine(compute(changes, new_n_page).first, new_n_page);
}

uint64_t StateHash::apply(std::span<const PageChange> changes, uint32_t new_n_page) {
  auto [sum, fresh] = compute(changes, new_n_page);
  const uint32_t old_n_page = n_page();
  hashes_.resize(new_n_page);
  for (uint32_t p = old_n_page + 1; p <= new_n_page; p++) hashes_[p - 1] = zero_hash(p);
  for (size_t i = 0; i < changes.size(); i++) {
    if (changes[i].pgno <= new_n_page) hashes_[changes[i].pgno - 1] = fresh[i];
  }
  sum_ = sum;
  return value();
}

}  // namespace sqraft
