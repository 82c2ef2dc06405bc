#include "writer_pool.h"

#include "db_writer.h"

namespace sqraft {

WriterPool::WriterPool(unsigned threads) : threads_(threads), workers_(threads) {
  timer_ = std::thread([this] { timer_main(); });
}

WriterPool::~WriterPool() { stop(); }

bool WriterPool::run(DbWriter* w) {
  return workers_.submit([w] { w->drain(); });
}

void WriterPool::wake_at(DbWriter* w, Clock::time_point when) {
  {
    std::lock_guard lk(mu_);
    if (stopping_) return;
    // A wake already due earlier will do: the writer asks again for the rest.
    auto it = earliest_.find(w);
    if (it != earliest_.end() && it->second <= when) return;
    earliest_[w] = when;
    timers_.emplace(when, w);
  }
  cv_.notify_one();
}

void WriterPool::timer_main() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    if (timers_.empty()) {
      cv_.wait(lk);
      continue;
    }
    auto first = timers_.begin();
    if (first->first > Clock::now()) {
      const Clock::time_point when = first->first;  // a copy: stop() may erase the entry while we wait
      cv_.wait_until(lk, when);
      continue;
    }
    DbWriter* w = first->second;
    if (auto e = earliest_.find(w); e != earliest_.end() && e->second == first->first) earliest_.erase(e);
    timers_.erase(first);
    lk.unlock();
    w->schedule();
    lk.lock();
  }
}

void WriterPool::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopping_) return;
    stopping_ = true;
    timers_.clear();
    earliest_.clear();
  }
  cv_.notify_all();
  if (timer_.joinable()) timer_.join();
  workers_.stop();
}

}  // namespace sqraft
