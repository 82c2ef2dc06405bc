// Subcommands of the `sqraft` binary, each in its own file.
#pragma once

#include <CLI/CLI.hpp>

namespace sqraft::tools {

// `sqraft shell`: sets `rc` to the exit status when it runs.
void add_shell_command(CLI::App& app, int& rc);
// `sqraft bench`.
void add_bench_command(CLI::App& app, int& rc);
// `sqraft import` and `sqraft backup`.
void add_transfer_commands(CLI::App& app, int& rc);

}  // namespace sqraft::tools
