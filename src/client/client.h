// Client: a blocking dqlite wire-protocol client.
//
// connect() finds the cluster's leader from any list of node addresses (a
// node answers LEADER with the leader's address, which is then dialled) and
// does the CLIENT handshake. connect_node() talks to one given node without
// looking for the leader (DESCRIBE, WEIGHT, DUMP, LEADER go to any node).
//
// Every call returns a Status with the server's code and message on failure
// (e.g. 10250 "not leader"). A Client is one connection; it is not
// thread-safe, use one per thread. The C API wraps it with automatic
// reconnection to a new leader (see include/sqraft.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "status.h"
#include "wire.h"

namespace sqraft {

struct ServerInfo {
  uint64_t id = 0;
  std::string address;
  uint64_t role = 0;  // wire roles: 0 voter, 1 standby, 2 spare
};

struct File {
  std::string name;
  std::string data;
};

class Rows;

// The one reconnect rule (the C API, the shell, the bench and import all
// use it): after an error for which this is true, the connection may no
// longer reach the leader or is broken — drop it and find the leader again.
// True for not leader and leadership lost (SQLITE_IOERR extended codes),
// every other I/O error, a malformed message, and SQLITE_NOTFOUND (the
// server forgot the connection's open databases when its leadership ended).
bool needs_new_connection(const Status& s);

class Client {
 public:
  struct Options {
    std::vector<std::string> addresses;
    unsigned timeout_ms = 10000;       // per network operation
    unsigned connect_attempts = 60;    // rounds over all addresses (50 ms, 100 ms, 200 ms, then 250 ms apart: ~15 s)
    uint64_t client_id = 0;
  };

  static Result<std::unique_ptr<Client>> connect(const Options& options);
  static Result<std::unique_ptr<Client>> connect_node(const std::string& address, unsigned timeout_ms = 10000);
  // A client on a connected socket the caller made (an in-process node's
  // socketpair, say). Takes `fd`; `name` stands for the address in messages.
  static Result<std::unique_ptr<Client>> adopt(int fd, std::string name, unsigned timeout_ms = 10000);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const std::string& address() const { return address_; }

  Result<uint32_t> open(const std::string& db);
  struct Outcome {
    uint64_t last_insert_id = 0;
    uint64_t rows_affected = 0;
  };
  Result<Outcome> exec(uint32_t db, const std::string& sql, const std::vector<wire::Value>& params = {});
  // Starts a query; rows are read batch by batch from the returned cursor,
  // which must be drained or closed before the next request.
  Result<std::unique_ptr<Rows>> query(uint32_t db, const std::string& sql, const std::vector<wire::Value>& params = {});

  struct Prepared {
    uint32_t db = 0;
    uint32_t id = 0;
    uint64_t params = 0;
  };
  Result<Prepared> prepare(uint32_t db, const std::string& sql);
  Result<Outcome> exec_prepared(const Prepared& stmt, const std::vector<wire::Value>& params = {});
  Result<std::unique_ptr<Rows>> query_prepared(const Prepared& stmt, const std::vector<wire::Value>& params = {});
  Status finalize(const Prepared& stmt);

  Result<ServerInfo> leader();
  Result<std::vector<ServerInfo>> cluster();
  Status add(uint64_t id, const std::string& address);
  Status assign(uint64_t id, uint64_t role);
  Status remove(uint64_t id);
  Status transfer(uint64_t id);
  struct Metadata {
    uint64_t failure_domain = 0;
    uint64_t weight = 0;
  };
  Result<Metadata> describe();
  Status weight(uint64_t weight);
  Result<std::vector<File>> dump(const std::string& db);

  // Called while a large response arrives (bytes so far, bytes in all);
  // empty: no calls. For progress output of long transfers (DUMP).
  using Progress = std::function<void(uint64_t done, uint64_t total)>;
  void set_receive_progress(Progress p) { receive_progress_ = std::move(p); }

  // Raw access for tests: send one message and read one response.
  Status send_raw(const std::vector<uint8_t>& bytes);
  Result<std::pair<wire::Header, std::vector<uint8_t>>> receive();

 private:
  friend class Rows;
  explicit Client(int fd, std::string address, unsigned timeout_ms);
  static Result<std::unique_ptr<Client>> dial(const std::string& address, unsigned timeout_ms);
  // Sends a request and reads the response; a FAILURE becomes a Status.
  Result<std::vector<uint8_t>> call(uint8_t type, const wire::BodyWriter& body, uint8_t expected, uint8_t schema = 0);
  // EXEC_SQL/QUERY_SQL (`sql` given) or EXEC/QUERY of statement `stmt`, with
  // its parameters: the answer's body.
  Result<std::vector<uint8_t>> statement_request(uint8_t type, uint8_t answer, uint32_t db, const std::string* sql,
                                                 uint32_t stmt, const std::vector<wire::Value>& params);
  Result<std::unique_ptr<Rows>> rows_from(Result<std::vector<uint8_t>> first);
  Status read_exact(void* buf, size_t n);
  Status write_all(const void* buf, size_t n);

  int fd_;
  std::string address_;
  unsigned timeout_ms_;
  bool broken_ = false;
  Progress receive_progress_;
};

// A query's rows, streamed from the server.
class Rows {
 public:
  ~Rows();  // interrupts the query if rows are left
  const std::vector<std::string>& columns() const { return columns_; }
  // Reads the next row into `out`; false at the end (or on error: see status()).
  bool next(std::vector<wire::Value>* out);
  const Status& status() const { return status_; }
  // Stops the query early (sends INTERRUPT and waits for its end).
  Status close();

 private:
  friend class Client;
  Rows(Client* c, std::vector<uint8_t> first);
  bool load(std::vector<uint8_t> body);
  Client* client_;
  std::vector<std::string> columns_;
  std::vector<uint8_t> body_;
  size_t offset_ = 0;
  bool more_ = false;   // the server will send another batch
  bool done_ = false;   // no rows left
  Status status_;
};

}  // namespace sqraft
