// ProcessCluster: real `sqraft node` processes on this machine, for tests.
//
// Each node gets a data directory under a temporary directory and an
// address (abstract unix sockets by default, or TCP on 127.0.0.1). Nodes can
// be killed with SIGKILL, stopped with SIGTERM and restarted from their data.
// Logs go to <dir>/nodeN.log and are printed when a test fails (dump_logs).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "client.h"
#include "status.h"
#include "support/temp_dir.h"

namespace sqraft::test {

class ProcessCluster {
 public:
  enum class Net { kAbstract, kTcp, kPath };
  struct Options {
    unsigned n = 3;
    Net net = Net::kAbstract;
    unsigned latency_ms = 10;  // fast elections in tests
    unsigned snapshot_threshold = 1024;
    unsigned snapshot_trailing = 8192;
    std::vector<std::string> extra_args;
  };

  explicit ProcessCluster(Options options);
  ~ProcessCluster();  // SIGKILLs whatever still runs

  // Path of the sqraft binary (from the SQRAFT_BIN environment variable, set
  // by meson, or ./sqraft).
  static std::string binary();

  const std::string& address(unsigned i) const { return addresses_[i]; }
  std::vector<std::string> addresses() const { return addresses_; }
  std::string dir(unsigned i) const;
  std::string cluster_spec() const;

  // Starts node i (bootstrapping with the whole cluster on first start).
  Status start(unsigned i, const std::vector<std::string>& extra = {});
  Status start_all();
  void kill(unsigned i);             // SIGKILL, waits for the process
  Status stop(unsigned i);           // SIGTERM, waits (up to 30 s) and checks exit status 0
  bool running(unsigned i) const { return pids_[i] > 0; }
  pid_t pid(unsigned i) const { return pids_[i]; }
  // False (and the exit status in *status) if node i was started and has
  // exited by itself since; reaps it.
  bool alive(unsigned i, int* status = nullptr);

  // A client connected to the leader (retrying up to `timeout_ms`).
  Result<std::unique_ptr<Client>> leader_client(unsigned timeout_ms = 30000);
  // Index of the current leader (by asking the nodes), or n if none.
  unsigned leader_index(unsigned timeout_ms = 30000);
  std::string logs() const;

 private:
  Options options_;
  TempDir tmp_;
  std::vector<std::string> addresses_;
  std::vector<pid_t> pids_;
  std::vector<bool> started_once_;
};

// Runs a command and returns its exit status and combined output.
struct CommandResult {
  int status = -1;
  std::string output;
};
CommandResult run_command(const std::vector<std::string>& argv, const std::string& input = "", unsigned timeout_ms = 60000);

}  // namespace sqraft::test
