// MetricsServer: GET /metrics over HTTP (cpp-httplib) on its own thread,
// for Prometheus. Each request calls `collect`, which gathers the page (the
// node reads its state on the loop thread, bounded by a timeout); a
// collect that fails gets 503 with the reason. Anything else gets 404.
//
// Thread-safety: create() and the destructor from one owner thread;
// `collect` runs on the server's threads.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "status.h"

namespace httplib {
class Server;
}

namespace sqraft {

class MetricsServer {
 public:
  using Collect = std::function<Result<std::string>()>;
  // Listens on `address` (host:port, TCP) and
  // serves until destroyed. Fails with the reason if it cannot listen.
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& address, Collect collect);
  ~MetricsServer();  // stops serving and joins the thread
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }

 private:
  MetricsServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace sqraft
