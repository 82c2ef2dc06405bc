#include "progress.h"

#include <unistd.h>

#include <cstdio>

namespace sqraft::tools {

namespace {

std::string clock_text(double seconds) {
  const long s = long(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  }
  return buf;
}

}  // namespace

bool progress_wanted() { return ::isatty(STDERR_FILENO) == 1; }

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    u++;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

ProgressLine::ProgressLine(std::string label, bool enabled)
    : label_(std::move(label)), enabled_(enabled), start_(std::chrono::steady_clock::now()) {}

ProgressLine::~ProgressLine() { finish(); }

bool ProgressLine::due(bool last) {
  if (!enabled_) return false;
  const auto now = std::chrono::steady_clock::now();
  if (!last && drawn_ && now - last_ < std::chrono::milliseconds(100)) return false;
  last_ = now;
  return true;
}

void ProgressLine::draw(const std::string& text) {
  // \r back to the start, the text, and clear whatever a longer line left.
  std::fprintf(stderr, "\r%s  %s\x1b[K", label_.c_str(), text.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressLine::bytes(uint64_t done, uint64_t total) {
  if (!due(total > 0 && done >= total)) return;  // the end is always shown
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? double(done) / elapsed : 0;
  std::string text = human_bytes(double(done));
  if (total > 0) {
    char pct[16];
    std::snprintf(pct, sizeof pct, "%3.0f%%", 100.0 * double(done) / double(total));
    text += " / " + human_bytes(double(total)) + "  " + pct;
  }
  text += "  " + human_bytes(rate) + "/s";
  if (total > done && rate > 0) text += "  " + clock_text(double(total - done) / rate) + " left";
  draw(text);
}

void ProgressLine::count(uint64_t done, const char* unit) {
  if (!due(false)) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  char buf[96];
  std::snprintf(buf, sizeof buf, "%llu %s  %.0f %s/s  %s", static_cast<unsigned long long>(done), unit,
                elapsed > 0 ? double(done) / elapsed : 0.0, unit, clock_text(elapsed).c_str());
  draw(buf);
}

void ProgressLine::finish() {
  if (!drawn_) return;
  std::fprintf(stderr, "\r\x1b[K");
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace sqraft::tools
