#include "hostile/hostile_run.h"

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "client.h"
#include "hostile/sql_gen.h"
#include "support/process_cluster.h"
#include "support/temp_dir.h"

namespace sqraft::test {

namespace {

using Clock = std::chrono::steady_clock;

uint64_t proc_field(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return std::stoull(line.substr(prefix.size()));
  }
  return 0;
}

size_t count_in(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) n++;
  return n;
}

// Errors after which a client opens a new connection: the connection broke,
// the leader moved, or the server closed the database id.
bool needs_reconnect(const Status& s) {
  const int c = s.code();
  return c == SQLITE_IOERR || c == int(wire::kErrProto) || c == kErrNotLeader || c == kErrLeadershipLost ||
         c == SQLITE_NOTFOUND;
}

// Content hash of a database held as dumped files: schema and every row of
// every table, in a stable order; "" if it does not open, "!..." if its
// integrity check fails.
std::string content_of(const std::vector<File>& files, const TempDir& tmp, const std::string& tag) {
  std::string main_path;
  for (const File& f : files) {
    const std::string path = tmp.file(tag + "-" + std::to_string(std::hash<std::string>{}(f.name)) +
                                      (f.name.size() > 4 && f.name.substr(f.name.size() - 4) == "-wal" ? ".db-wal" : ".db"));
    std::ofstream(path, std::ios::binary).write(f.data.data(), std::streamsize(f.data.size()));
    if (path.size() > 3 && path.substr(path.size() - 3) == ".db") main_path = path;
  }
  if (main_path.empty()) return "";
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(main_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return "";
  }
  std::string out;
  auto each = [&](const std::string& sql, auto&& fn) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      out += "[prepare " + sql + ": " + sqlite3_errmsg(db) + "]";
      return;
    }
    while (sqlite3_step(st) == SQLITE_ROW) fn(st);
    sqlite3_finalize(st);
  };
  each("PRAGMA integrity_check", [&](sqlite3_stmt* st) {
    const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    if (t == nullptr || std::strcmp(t, "ok") != 0) out = "!" + std::string(t ? t : "?") + out;
  });
  std::vector<std::string> tables;
  each("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name", [&](sqlite3_stmt* st) {
    for (int i = 0; i < 4; i++) {
      const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
      out += t ? t : "NULL";
      out += '|';
    }
    const auto* type = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    const auto* sql = reinterpret_cast<const char*>(sqlite3_column_text(st, 3));
    if (type && std::strcmp(type, "table") == 0 && sql && std::strncmp(sql, "CREATE VIRTUAL", 14) != 0) {
      tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
    }
  });
  for (const std::string& t : tables) {
    each("SELECT * FROM \"" + t + "\"", [&](sqlite3_stmt* st) {
      for (int i = 0; i < sqlite3_column_count(st); i++) {
        const void* b = sqlite3_column_blob(st, i);
        out += std::to_string(sqlite3_column_type(st, i)) + ":";
        if (b) out.append(static_cast<const char*>(b), size_t(sqlite3_column_bytes(st, i)));
        out += '|';
      }
      out += '\n';
    });
  }
  sqlite3_close(db);
  return std::to_string(std::hash<std::string>{}(out)) + (out.rfind('!', 0) == 0 ? out.substr(0, 200) : "");
}

// Runs one statement the way a client would; returns its status.
Status run_statement(Client& cl, uint32_t db, const GenStatement& st) {
  if (st.prepared) {
    auto p = cl.prepare(db, st.sql);
    if (!p.ok()) return p.status();
    Status s;
    if (st.query) {
      auto rows = cl.query_prepared(p.value(), st.params);
      s = rows.status();
      if (rows.ok()) {
        std::vector<wire::Value> row;
        for (int i = 0; i < 5000 && rows.value()->next(&row); i++) {
        }
        s = rows.value()->status();
        if (s.ok()) s = rows.value()->close();
      }
    } else {
      s = cl.exec_prepared(p.value(), st.params).status();
    }
    if (!needs_reconnect(s)) (void)cl.finalize(p.value());
    return s;
  }
  if (st.query) {
    auto rows = cl.query(db, st.sql, st.params);
    if (!rows.ok()) return rows.status();
    std::vector<wire::Value> row;
    for (int i = 0; i < 5000 && rows.value()->next(&row); i++) {
    }
    Status s = rows.value()->status();
    if (s.ok()) s = rows.value()->close();  // INTERRUPT past 5000 rows
    return s;
  }
  return cl.exec(db, st.sql, st.params).status();
}

}  // namespace

std::string HostileReport::summary() const {
  std::ostringstream o;
  o << "hostile SQL: " << statements << " statements in " << int(seconds) << " s (" << errors << " errors";
  for (auto& [code, n] : errors_by_code) o << ", code " << code << ": " << n;
  o << "), " << reconnects << " reconnects, " << elections << " elections during the run, " << databases
    << " databases, " << divergent << " divergent\n";
  for (size_t i = 0; i < nodes.size(); i++) {
    o << "  node " << i + 1 << ": " << (nodes[i].crashed ? "CRASHED" : "up") << ", peak RSS "
      << nodes[i].peak_rss_kb / 1024 << " MiB, peak threads " << nodes[i].peak_threads << "\n";
  }
  o << "  writable at the end: " << (writable_at_end ? "yes" : "NO") << "\n";
  for (const std::string& p : problems) o << "  PROBLEM: " << p << "\n";
  return o.str();
}

HostileReport run_hostile(const HostileOptions& options) {
  HostileReport report;
  ProcessCluster::Options co;
  co.latency_ms = 20;
  co.extra_args = {"--statement-timeout-ms", std::to_string(options.statement_timeout_ms)};
  ProcessCluster c(co);
  if (Status s = c.start_all(); !s.ok()) {
    report.problems.push_back("cluster did not start: " + s.to_string());
    return report;
  }
  if (c.leader_index() >= 3) {
    report.problems.push_back("no leader at start");
    return report;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const size_t elections_at_start = count_in(c.logs(), "leader in term");
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::seconds(options.duration_s);

  std::mutex mu;  // guards report counters and dbs_seen below
  std::set<std::string> dbs_seen;
  std::atomic<bool> stop{false};
  report.nodes.resize(3);

  // Watch the nodes: alive, RSS, threads.
  std::thread monitor([&] {
    while (!stop) {
      for (unsigned i = 0; i < 3; i++) {
        std::lock_guard lk(mu);
        int status = 0;
        if (report.nodes[i].crashed) continue;
        if (!c.alive(i, &status)) {
          report.nodes[i].crashed = true;
          report.nodes[i].exit_status = status;
          continue;
        }
        report.nodes[i].peak_rss_kb = std::max(report.nodes[i].peak_rss_kb, proc_field(c.pid(i), "VmRSS"));
        report.nodes[i].peak_threads = std::max(report.nodes[i].peak_threads, proc_field(c.pid(i), "Threads"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });

  std::vector<std::thread> clients;
  for (unsigned k = 0; k < options.clients; k++) {
    clients.emplace_back([&, k] {
      SqlGen gen(options.seed * 1000003 + k);
      std::mt19937_64 rng(options.seed * 7919 + k);
      unsigned fresh = 0;
      while (Clock::now() < deadline) {
        Client::Options o;
        o.addresses = c.addresses();
        o.timeout_ms = options.statement_timeout_ms * 3 + 5000;
        o.connect_attempts = 20;
        auto cl = Client::connect(o);
        if (!cl.ok()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          continue;
        }
        std::string name = "h" + std::to_string(rng() % options.databases);
        if (rng() % 100 < options.new_db_percent) name = "n" + std::to_string(k) + "-" + std::to_string(fresh++);
        auto db = cl.value()->open(name);
        if (!db.ok()) continue;
        {
          std::lock_guard lk(mu);
          dbs_seen.insert(name);
        }
        // Up to a few hundred statements on this connection.
        const unsigned n = 50 + unsigned(rng() % 300);
        for (unsigned i = 0; i < n && Clock::now() < deadline; i++) {
          if (i % 40 == 0) {
            std::vector<GenTable> tables;
            auto rows = cl.value()->query(db.value(), SqlGen::refresh_sql());
            if (rows.ok()) {
              std::vector<wire::Value> row;
              while (rows.value()->next(&row)) {
                if (tables.empty() || tables.back().name != row[0].bytes) tables.push_back({row[0].bytes, {}});
                tables.back().columns.push_back(row[1].bytes);
              }
            }
            gen.set_schema(std::move(tables));
          }
          GenStatement st = gen.next();
          Status s = run_statement(*cl.value(), db.value(), st);
          std::lock_guard lk(mu);
          report.statements++;
          if (!s.ok()) {
            report.errors++;
            report.errors_by_code[s.code() & 0xff]++;
            if (options.verbose && (s.code() & 0xff) != SQLITE_ERROR) {
              std::fprintf(stderr, "[%s] %.120s -> %s\n", name.c_str(), st.sql.c_str(), s.to_string().c_str());
            }
          }
          if (needs_reconnect(s)) {
            report.reconnects++;
            break;
          }
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  stop = true;
  monitor.join();

  // Heal: every node runs (a crashed one is restarted so that the rest of
  // the checks can compare), then the cluster must accept a write on every
  // database.
  for (unsigned i = 0; i < 3; i++) {
    if (report.nodes[i].crashed) {
      report.problems.push_back("node " + std::to_string(i + 1) + " crashed (wait status " +
                                std::to_string(report.nodes[i].exit_status) + ")");
      (void)c.start(i);
    }
  }
  report.elections = count_in(c.logs(), "leader in term") - elections_at_start;
  // Sanitizer builds report problems in the nodes' logs without always
  // stopping the node (UBSan's default).
  for (const char* marker : {"runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer"}) {
    if (size_t n = count_in(c.logs(), marker); n > 0) {
      report.problems.push_back(std::to_string(n) + " sanitizer reports (\"" + marker + "\") in the nodes' logs");
    }
  }
  if (report.elections > 0) report.problems.push_back(std::to_string(report.elections) + " elections during the run");
  report.databases = dbs_seen.size();
  report.writable_at_end = true;
  {
    auto cl = c.leader_client();
    if (!cl.ok()) {
      report.writable_at_end = false;
    } else {
      unsigned opened = 0;
      for (const std::string& name : dbs_seen) {
        if (opened++ % 16 == 15) {
          cl = c.leader_client();
          if (!cl.ok()) break;
        }
        auto db = cl.value()->open(name);
        Status s = db.status();
        if (s.ok()) s = cl.value()->exec(db.value(), "CREATE TABLE IF NOT EXISTS final(x); INSERT INTO final VALUES(1)").status();
        if (!s.ok()) {
          report.writable_at_end = false;
          report.problems.push_back("database '" + name + "' not writable at the end: " + s.to_string());
        }
      }
    }
  }
  if (!report.writable_at_end && report.problems.empty()) report.problems.push_back("cluster not writable at the end");

  // Every node holds the same content (after it caught up: retry a while).
  TempDir tmp;
  for (const std::string& name : dbs_seen) {
    bool same = false;
    std::string detail;
    for (int attempt = 0; attempt < 50 && !same; attempt++) {
      std::vector<std::string> contents;
      for (unsigned i = 0; i < 3; i++) {
        auto node = Client::connect_node(c.address(i), 10000);
        if (!node.ok()) {
          contents.push_back("(unreachable)");
          continue;
        }
        auto files = node.value()->dump(name);
        contents.push_back(files.ok() ? content_of(files.value(), tmp, name + std::to_string(i)) : "(no dump)");
      }
      same = contents[0] == contents[1] && contents[1] == contents[2] && !contents[0].empty() && contents[0][0] != '!' &&
             contents[0][0] != '(';
      detail = contents[0] + " / " + contents[1] + " / " + contents[2];
      if (!same) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!same) {
      report.divergent++;
      report.problems.push_back("database '" + name + "' differs between nodes or is damaged: " + detail);
    }
  }
  return report;
}

}  // namespace sqraft::test
