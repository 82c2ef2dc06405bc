// at_c_boundary: runs C++ code that C called (a SQLite VFS method, a libuv
// or libraft callback), where an exception must not cross: it would unwind
// through C frames, which is undefined behaviour, and std::terminate would
// take the node down. What escapes is logged with the place, and the
// caller turns `false` into its error code (SQLITE_NOMEM, SQLITE_IOERR, a
// closed connection, ...).
#pragma once

#include <spdlog/spdlog.h>

#include <exception>
#include <new>
#include <utility>

namespace sqraft {

template <typename Fn>
bool at_c_boundary(const char* where, Fn&& fn) noexcept {
  try {
    std::forward<Fn>(fn)();
    return true;
  } catch (const std::bad_alloc&) {
    spdlog::error("{}: out of memory", where);
  } catch (const std::exception& e) {
    spdlog::error("{}: {}", where, e.what());
  } catch (...) {
    spdlog::error("{}: unknown exception", where);
  }
  return false;
}

}  // namespace sqraft
