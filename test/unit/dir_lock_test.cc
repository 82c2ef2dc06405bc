// DirLock: one node per data directory, within a process and across processes.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dir_lock.h"
#include "support/temp_dir.h"

using namespace sqraft;

TEST_CASE("dir lock: a directory held by a node is refused to the next, and free once released") {
  test::TempDir dir;
  auto first = DirLock::acquire(dir.path().string());
  REQUIRE(first.ok());
  // The same process (record locks would not tell), by another spelling.
  auto again = DirLock::acquire(dir.path().string() + "/.");
  REQUIRE(!again.ok());
  CHECK(again.status().message().find("in use by another node (this process)") != std::string::npos);
  // Another process: the holder's pid in the message.
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child == 0) {
    auto other = DirLock::acquire(dir.path().string());
    const bool named = !other.ok() && other.status().message().find("process " + std::to_string(parent)) !=
                                          std::string::npos;
    ::_exit(named ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  first = Status::Invalid("released");
  auto later = DirLock::acquire(dir.path().string());
  CHECK(later.ok());
  CHECK(!DirLock::acquire(dir.path().string() + "/missing").ok());
}
