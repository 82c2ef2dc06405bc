// Page buffers shared copy-on-write between the live database and snapshots.
//
// A PagePtr holds one page of database content. Pages are shared by
// reference: a snapshot in progress, a captured transaction and the live
// store may all point at the same bytes. A holder that wants to modify a page
// calls mutable_page(), which copies it first when anyone else holds it.
//
// Thread-safety: new references to a page are only created while holding the
// owning database's mutex, so a use_count() of 1 observed under that mutex
// stays 1 until the mutex is released (other threads can only drop theirs).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>

namespace sqraft {

using PagePtr = std::shared_ptr<uint8_t[]>;

inline PagePtr make_zero_page(uint32_t page_size) {
  return std::make_shared<uint8_t[]>(page_size);  // value-initialised: zeroes
}

inline PagePtr copy_page(const uint8_t* data, uint32_t page_size) {
  PagePtr p(new uint8_t[page_size]);
  std::memcpy(p.get(), data, page_size);
  return p;
}

// Returns a writable pointer to `page`, copying it first if it is shared.
// REQUIRES: the owning database's mutex is held.
inline uint8_t* mutable_page(PagePtr& page, uint32_t page_size) {
  if (!page) {
    page = make_zero_page(page_size);
  } else if (page.use_count() > 1) {
    page = copy_page(page.get(), page_size);
  }
  return page.get();
}

}  // namespace sqraft
