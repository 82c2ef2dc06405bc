#include "metrics_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

#include "address.h"

namespace sqraft {

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& address, Collect collect) {
  Result<Address> a = parse_address(address);
  if (!a.ok()) return a.status().with_context("metrics address");
  if (a.value().is_unix()) return Status::Invalid("metrics address " + address + ": must be host:port (TCP)");
  std::unique_ptr<MetricsServer> m(new MetricsServer());
  m->server_ = std::make_unique<httplib::Server>();
  m->server_->new_task_queue = [] { return new httplib::ThreadPool(2); };  // scrapes are rare and small
  // cpp-httplib's default also sets SO_REUSEPORT, which would let a second
  // node bind the same port and share its scrapes: address reuse only.
  m->server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    (void)::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);  // best effort, as any server
  });
  m->server_->set_read_timeout(5, 0);
  m->server_->set_write_timeout(5, 0);
  m->server_->Get("/metrics", [collect = std::move(collect)](const httplib::Request&, httplib::Response& res) {
    // No exception may leave into cpp-httplib: turn it into a 500.
    try {
      Result<std::string> page = collect();
      if (!page.ok()) {
        res.status = 503;
        res.set_content(page.status().message() + "\n", "text/plain");
        return;
      }
      res.set_content(page.value(), "text/plain; version=0.0.4; charset=utf-8");
    } catch (const std::exception& e) {
      res.status = 500;
      res.set_content(std::string("metrics: ") + e.what() + "\n", "text/plain");
    }
  });
  std::string host = a.value().host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  m->port_ = m->server_->bind_to_port(host.c_str(), a.value().port) ? a.value().port : -1;
  if (m->port_ <= 0) return Status::IoError("metrics address " + address + ": cannot listen there");
  httplib::Server* server = m->server_.get();
  m->thread_ = std::thread([server] { server->listen_after_bind(); });
  // stop() is a no-op until the server runs: wait for that, so the
  // destructor can always end it.
  for (int i = 0; i < 1000 && !server->is_running(); i++) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  spdlog::info("metrics on http://{}:{}/metrics", host, m->port_);
  return m;
}

MetricsServer::~MetricsServer() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace sqraft
