// ThreadPool: a fixed number of threads running queued tasks in FIFO order.
//
// Thread-safety: submit() from any thread. stop() finishes queued tasks and
// joins; tasks submitted afterwards are dropped (submit returns false).
//
// Bound: the queue has no limit of its own because its users bound it. The
// reader pool holds at most one task per client connection (a session runs
// one request at a time, and each step of it is one job), so at most
// --max-connections; the writer pool holds each database's writer at most
// once (DbWriter::schedule), so at most --max-databases.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sqraft {

class ThreadPool {
 public:
  explicit ThreadPool(unsigned threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  bool submit(std::function<void()> task);
  void stop();

 private:
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace sqraft
