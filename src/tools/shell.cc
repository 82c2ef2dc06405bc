// `sqraft shell` (placeholder registration; see shell implementation).
#include "tools.h"

namespace sqraft::tools {
void add_shell_command(CLI::App&, int&) {}
}  // namespace sqraft::tools
