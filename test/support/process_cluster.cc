#include "support/process_cluster.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

namespace sqraft::test {

namespace {

pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

int wait_for(pid_t pid, unsigned timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

std::string ProcessCluster::binary() {
  if (const char* b = std::getenv("SQRAFT_BIN")) return b;
  return "./sqraft";
}

ProcessCluster::ProcessCluster(Options options) : options_(options) {
  std::random_device rd;
  const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(rd() % 100000);
  for (unsigned i = 0; i < options_.n; i++) {
    switch (options_.net) {
      case Net::kAbstract:
        addresses_.push_back("@sqraft-test-" + tag + "-" + std::to_string(i + 1));
        break;
      case Net::kPath:
        addresses_.push_back(tmp_.file("node" + std::to_string(i + 1) + ".sock"));
        break;
      case Net::kTcp: {
        // Ports from a range unlikely to collide; tests on one machine run
        // serially per binary.
        const unsigned base = 20000 + unsigned(rd() % 20000);
        addresses_.push_back("127.0.0.1:" + std::to_string(base + i));
        break;
      }
    }
    std::filesystem::create_directories(dir(i));
  }
  pids_.assign(options_.n, 0);
  started_once_.assign(options_.n, false);
}

ProcessCluster::~ProcessCluster() {
  for (unsigned i = 0; i < pids_.size(); i++) {
    if (pids_[i] > 0) kill(i);
  }
}

std::string ProcessCluster::dir(unsigned i) const { return tmp_.file("node" + std::to_string(i + 1)); }

std::string ProcessCluster::cluster_spec() const {
  std::string spec;
  for (unsigned i = 0; i < options_.n; i++) {
    if (i) spec += ",";
    spec += std::to_string(i + 1) + "@" + addresses_[i];
  }
  return spec;
}

Status ProcessCluster::start(unsigned i, const std::vector<std::string>& extra) {
  if (pids_[i] > 0) return Status::Invalid("node already running");
  std::vector<std::string> argv = {binary(), "node", "--id", std::to_string(i + 1), "--address", addresses_[i],
                                   "--dir", dir(i), "--cluster", cluster_spec(),
                                   "--latency-ms", std::to_string(options_.latency_ms),
                                   "--snapshot-threshold", std::to_string(options_.snapshot_threshold),
                                   "--snapshot-trailing", std::to_string(options_.snapshot_trailing),
                                   "--log-level", "debug"};
  for (const auto& a : options_.extra_args) argv.push_back(a);
  for (const auto& a : extra) argv.push_back(a);
  pids_[i] = spawn(argv, tmp_.file("node" + std::to_string(i + 1) + ".log"));
  started_once_[i] = true;
  // Wait until it listens (or dies).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pids_[i], &status, WNOHANG) == pids_[i]) {
      pids_[i] = 0;
      return Status::IoError("node " + std::to_string(i + 1) + " exited at start-up (status " + std::to_string(status) + ")");
    }
    if (Client::connect_node(addresses_[i], 1000).ok()) return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Status::IoError("node " + std::to_string(i + 1) + " did not start listening");
}

Status ProcessCluster::start_all() {
  for (unsigned i = 0; i < options_.n; i++) {
    if (Status s = start(i); !s.ok()) return s;
  }
  return Status::Ok();
}

bool ProcessCluster::alive(unsigned i, int* status) {
  if (pids_[i] <= 0) return false;
  int st = 0;
  if (::waitpid(pids_[i], &st, WNOHANG) == pids_[i]) {
    pids_[i] = 0;
    if (status) *status = st;
    return false;
  }
  return true;
}

void ProcessCluster::kill(unsigned i) {
  if (pids_[i] <= 0) return;
  ::kill(pids_[i], SIGKILL);
  wait_for(pids_[i], 30000);
  pids_[i] = 0;
}

Status ProcessCluster::stop(unsigned i) {
  if (pids_[i] <= 0) return Status::Ok();
  ::kill(pids_[i], SIGTERM);
  const int status = wait_for(pids_[i], 30000);
  if (status == -1) {
    ::kill(pids_[i], SIGKILL);
    wait_for(pids_[i], 30000);
    pids_[i] = 0;
    return Status::IoError("node " + std::to_string(i + 1) + " did not stop within 30 s");
  }
  pids_[i] = 0;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status::IoError("node " + std::to_string(i + 1) + " exited with status " + std::to_string(status));
  }
  return Status::Ok();
}

Result<std::unique_ptr<Client>> ProcessCluster::leader_client(unsigned timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  Status last = Status::NotLeader("no leader");
  while (std::chrono::steady_clock::now() < deadline) {
    Client::Options o;
    o.addresses = addresses_;
    o.connect_attempts = 1;
    o.timeout_ms = 5000;
    auto c = Client::connect(o);
    if (c.ok()) return c;
    last = c.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return last;
}

unsigned ProcessCluster::leader_index(unsigned timeout_ms) {
  auto c = leader_client(timeout_ms);
  if (!c.ok()) return options_.n;
  for (unsigned i = 0; i < options_.n; i++) {
    if (addresses_[i] == c.value()->address()) return i;
  }
  return options_.n;
}

std::string ProcessCluster::logs() const {
  std::ostringstream out;
  for (unsigned i = 0; i < options_.n; i++) {
    std::ifstream in(tmp_.file("node" + std::to_string(i + 1) + ".log"));
    out << "---- node " << i + 1 << " log ----\n" << in.rdbuf() << "\n";
  }
  return out.str();
}

CommandResult run_command(const std::vector<std::string>& argv, const std::string& input, unsigned timeout_ms) {
  int in_pipe[2], out_pipe[2];
  CommandResult result;
  if (::pipe(in_pipe) != 0 || ::pipe(out_pipe) != 0) return result;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(out_pipe[1], 2);
    ::close(in_pipe[1]);
    ::close(out_pipe[0]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  if (!input.empty()) {
    ssize_t w = ::write(in_pipe[1], input.data(), input.size());
    (void)w;
  }
  ::close(in_pipe[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[4096];
  for (;;) {
    pollfd p{out_pipe[0], POLLIN, 0};
    const int rv = ::poll(&p, 1, 100);
    if (rv > 0) {
      ssize_t n = ::read(out_pipe[0], buf, sizeof buf);
      if (n <= 0) break;
      result.output.append(buf, size_t(n));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      result.output += "\n<timed out>";
      break;
    }
  }
  ::close(out_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace sqraft::test
