// WriterPool: the threads that run every database's writer.
//
// A node may hold thousands of databases; a thread per database would grow
// without bound. Instead each DbWriter with work is scheduled here and one of
// a fixed number of threads runs it (DbWriter::drain) until it has nothing
// left to do now. A writer that must act later (an open transaction's idle
// timeout, a queued request's timeout, closing an idle connection) asks to
// be woken at that time.
//
// Thread-safety: schedule()/wake_at() from any thread. stop() once, after
// every writer stopped; writers must outlive the pool's stop().
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "thread_pool.h"

namespace sqraft {

class DbWriter;

class WriterPool {
 public:
  using Clock = std::chrono::steady_clock;
  explicit WriterPool(unsigned threads);
  ~WriterPool();  // stop()
  WriterPool(const WriterPool&) = delete;
  WriterPool& operator=(const WriterPool&) = delete;

  // Runs w->drain() on a pool thread. False once stopped.
  bool run(DbWriter* w);
  // Calls w->schedule() at `when` (or soon after).
  void wake_at(DbWriter* w, Clock::time_point when);
  void stop();
  unsigned threads() const { return threads_; }

 private:
  void timer_main();

  const unsigned threads_;
  ThreadPool workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<Clock::time_point, DbWriter*> timers_;  // guarded by mu_
  std::unordered_map<DbWriter*, Clock::time_point> earliest_;  // guarded by mu_
  bool stopping_ = false;                               // guarded by mu_
  std::thread timer_;
};

}  // namespace sqraft
