// Rows with increasing ids written to a ProcessCluster through whoever
// leads (Writer), and the checks the process tests make of them: the same
// rows and integrity_check ok on every live node, the ids a node holds.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "support/dump_check.h"
#include "support/process_cluster.h"

namespace sqraft::test {

// Writes rows with increasing ids, reconnecting to whoever leads, and
// records which ids were acknowledged.
class Writer {
 public:
  Writer(ProcessCluster& c, std::string db) : c_(c), db_(std::move(db)) {}
  // Inserts one row; true if acknowledged.
  bool write_one(long id) {
    for (int attempt = 0; attempt < 2; attempt++) {
      if (!client_) {
        auto cl = c_.leader_client(30000);
        if (!cl.ok()) return false;
        client_ = std::move(cl).value();
        auto d = client_->open(db_);
        if (!d.ok()) {
          client_.reset();
          continue;
        }
        db_id_ = d.value();
      }
      auto r = client_->exec(db_id_, "INSERT INTO t(id, v) VALUES(?, randomblob(200))", {wire::Value::Integer(id)});
      if (r.ok()) {
        acked.insert(id);
        return true;
      }
      // Leadership changes and dead connections: find the leader again.
      client_.reset();
      if (r.status().is_leadership_lost()) return false;  // outcome unknown
    }
    return false;
  }
  std::set<long> acked;

 private:
  ProcessCluster& c_;
  std::string db_;
  std::unique_ptr<Client> client_;
  uint32_t db_id_ = 0;
};

inline std::set<long> ids_on(const ProcessCluster& c, unsigned i, const std::string& db) {
  std::set<long> out;
  const std::string rows = test::query_copy(c.address(i), db, "SELECT id FROM t");
  REQUIRE_MESSAGE(rows.rfind("ERROR", 0) != 0, rows);
  size_t pos = 0;
  while (pos < rows.size()) {
    size_t nl = rows.find('\n', pos);
    if (nl == std::string::npos) nl = rows.size();
    out.insert(std::stol(rows.substr(pos, nl - pos)));
    pos = nl + 1;
  }
  return out;
}

inline void create_table(ProcessCluster& c, const std::string& db) {
  auto cl = c.leader_client();
  REQUIRE_MESSAGE(cl.ok(), cl.status().to_string() << c.logs());
  auto d = cl.value()->open(db);
  REQUIRE_MESSAGE(d.ok(), d.status().to_string());
  REQUIRE(cl.value()->exec(d.value(), "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)").ok());
}

// Every live node has the same rows and passes integrity_check.
inline void check_identical(ProcessCluster& c, const std::string& db, unsigned timeout_ms = 30000) {
  const std::string sql = "SELECT id, hex(v) FROM t ORDER BY id";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string diff;
  while (std::chrono::steady_clock::now() < deadline) {
    diff.clear();
    std::string first;
    for (unsigned i = 0; i < 3; i++) {
      if (!c.running(i)) continue;
      std::string rows = test::query_copy(c.address(i), db, sql);
      if (test::query_copy(c.address(i), db, "PRAGMA integrity_check") != "ok") diff = "integrity on node " + std::to_string(i);
      if (first.empty()) {
        first = rows;
      } else if (rows != first) {
        diff = "rows differ on node " + std::to_string(i) + ": " + std::to_string(std::count(rows.begin(), rows.end(), '\n')) +
               " vs " + std::to_string(std::count(first.begin(), first.end(), '\n')) + " lines";
      }
    }
    if (diff.empty()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  FAIL(diff << "\n" << c.logs());
}


}  // namespace sqraft::test
