// A one-line progress display on stderr for long commands (import, backup,
// .dump, bench): "LABEL  12.0 MiB / 200.0 MiB  6%  48.1 MiB/s  0:04 left",
// redrawn in place at most ten times a second. Silent when stderr is not a
// terminal or when disabled (--quiet), so scripts and logs see only results.
// One thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace sqraft::tools {

// True when progress lines should be drawn: stderr is a terminal.
bool progress_wanted();

class ProgressLine {
 public:
  ProgressLine(std::string label, bool enabled);
  ~ProgressLine();  // ends the line if one was drawn
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // Bytes done and in all (0: unknown, only bytes and rate are shown).
  void bytes(uint64_t done, uint64_t total);
  // A count with its own unit and a rate per second, e.g. "ops".
  void count(uint64_t done, const char* unit);
  // Clears the line (before the command prints its result).
  void finish();

 private:
  bool due(bool last);  // time to redraw (always for the last update)
  void draw(const std::string& text);

  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_{};
};

// "1.5 MiB", "320 B".
std::string human_bytes(double bytes);

}  // namespace sqraft::tools
