// StateHash: an incrementally maintained checksum of a database's logical
// content (pages 1..n_page as readers see them).
//
// Every page contributes XXH3-64(page bytes, seed = page number); the hash of
// the database is XXH3-64 over (sum of page hashes mod 2^64, n_page). Updating
// it after a commit costs one page hash per changed page, so the leader can
// ship the expected value with every commit and followers can verify it.
//
// Thread-safety: none; the owning Database guards it with its mutex.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace sqraft {

class StateHash {
 public:
  struct PageChange {
    uint32_t pgno;
    const uint8_t* data;  // page_size bytes
  };

  StateHash() = default;
  explicit StateHash(uint32_t page_size);

  // Hash of one page, as it contributes to the database hash.
  static uint64_t page_hash(uint32_t pgno, const uint8_t* data, uint32_t page_size);

  // Resets to a database of `n_page` pages given by `page_at(pgno)` (which
  // returns nullptr for an all-zero page).
  template <class PageAt>
  void rebuild(uint32_t n_page, PageAt&& page_at) {
    hashes_.assign(n_page, 0);
    sum_ = 0;
    for (uint32_t p = 1; p <= n_page; p++) {
      const uint8_t* d = page_at(p);
      hashes_[p - 1] = d ? page_hash(p, d, page_size_) : zero_hash(p);
      sum_ += hashes_[p - 1];
    }
  }

  // The database hash after committing `changes` (the final content of each
  // changed page, each page at most once) with `new_n_page` pages. Const.
  uint64_t preview(std::span<const PageChange> changes, uint32_t new_n_page) const;
  // Commits the same update. Returns the new database hash.
  uint64_t apply(std::span<const PageChange> changes, uint32_t new_n_page);

  uint64_t value() const { return combine(sum_, n_page()); }
  uint32_t n_page() const { return uint32_t(hashes_.size()); }
  uint32_t page_size() const { return page_size_; }

 private:
  uint64_t zero_hash(uint32_t pgno) const;
  static uint64_t combine(uint64_t sum, uint32_t n_page);
  // New sum and the page hashes of `changes` (computed once).
  std::pair<uint64_t, std::vector<uint64_t>> compute(std::span<const PageChange> changes,
                                                     uint32_t new_n_page) const;

  uint32_t page_size_ = 0;
  std::vector<uint8_t> zero_page_;  // page_size_ zero bytes
  uint64_t sum_ = 0;
  std::vector<uint64_t> hashes_;  // hashes_[p - 1] for page p
};

}  // namespace sqraft
