// The doctest runner shared by every test binary.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

int main(int argc, char** argv) {
  // SQRAFT_LOG=trace|debug|info|warn|error|off sets the log level.
  if (const char* level = std::getenv("SQRAFT_LOG")) {
    spdlog::set_level(spdlog::level::from_str(level));
  } else {
    spdlog::set_level(spdlog::level::err);
  }
  doctest::Context context(argc, argv);
  return context.run();
}
