#include "metrics.h"

#include <fmt/format.h>


namespace sqraft {

// ---- Histogram -----------------------------------------------------------------

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); i++) buckets_[i] = 0;
}

void Histogram::observe(double seconds) {
  size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i]) i++;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(uint64_t(seconds > 0 ? seconds * 1e9 : 0), std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

void Histogram::render(std::string& out, const std::string& name) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); i++) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  cumulative += buckets_[bounds_.size()].load(std::memory_order_relaxed);
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, cumulative);
  out += fmt::format("{}_sum {}\n", name, double(sum_ns_.load(std::memory_order_relaxed)) / 1e9);
  // _count equals the +Inf bucket, which may have moved on since: use it.
  out += fmt::format("{}_count {}\n", name, cumulative);
}

// ---- Metrics -------------------------------------------------------------------

Metrics::Metrics()
    : snapshot_seconds({0.001, 0.01, 0.1, 0.5, 1, 5, 30, 120}),
      commit_seconds({0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5}) {}

void Metrics::error(uint64_t code) {
  std::lock_guard lk(errors_mu_);
  errors_[code]++;
}

std::map<uint64_t, uint64_t> Metrics::errors() const {
  std::lock_guard lk(errors_mu_);
  return errors_;
}

}  // namespace sqraft
