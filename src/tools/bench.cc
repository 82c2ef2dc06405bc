// `sqraft bench` (placeholder registration; see bench implementation).
#include "tools.h"

namespace sqraft::tools {
void add_bench_command(CLI::App&, int&) {}
}  // namespace sqraft::tools
