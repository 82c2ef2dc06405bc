#include "metrics_page.h"

#include <filesystem>

#include <fmt/format.h>

#include "raft_api.h"
#include "wire.h"

namespace sqraft {

// ---- the data directory --------------------------------------------------------

void measure_raft_dir(const std::string& dir, NodeGauges* g) {
  std::error_code ec;
  std::string newest_snapshot;
  uint64_t newest_size = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const uint64_t size = entry.is_regular_file(ec) ? uint64_t(entry.file_size(ec)) : 0;
    if (name.rfind("snapshot-", 0) == 0) {
      if (name.size() > 5 && name.compare(name.size() - 5, 5, ".meta") == 0) continue;
      // snapshot-TERM-INDEX-TIMESTAMP: the newest has the largest name when the
      // numbers have the same width; compare by (length, text) to be safe.
      if (name.size() > newest_snapshot.size() || (name.size() == newest_snapshot.size() && name > newest_snapshot)) {
        newest_snapshot = name;
        newest_size = size;
      }
    } else if (name.rfind("open-", 0) == 0 || (!name.empty() && name[0] >= '0' && name[0] <= '9')) {
      g->log_bytes += size;
    }
  }
  g->snapshot_bytes = newest_size;
}

// ---- rendering ------------------------------------------------------------------

namespace {

std::string label_value(const std::string& v) {
  std::string out;
  for (char ch : v) {
    if (ch == '\\' || ch == '"') out += '\\';
    if (ch == '\n') {
      out += "\\n";
      continue;
    }
    out += ch;
  }
  return out;
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void one(std::string& out, const char* name, const char* type, const char* help, double value) {
  family(out, name, type, help);
  out += fmt::format("{} {}\n", name, value);
}

void raft_metrics(std::string& out, const NodeGauges& g) {
  one(out, "sqraft_raft_term", "gauge", "Current Raft term.", double(g.term));
  family(out, "sqraft_raft_role", "gauge", "1 for this node's current Raft role, 0 for the others.");
  const std::pair<int, const char*> roles[] = {
      {RAFT_UNAVAILABLE, "unavailable"}, {RAFT_FOLLOWER, "follower"}, {RAFT_CANDIDATE, "candidate"}, {RAFT_LEADER, "leader"}};
  for (const auto& [code, name] : roles) out += fmt::format("sqraft_raft_role{{role=\"{}\"}} {}\n", name, g.role == code ? 1 : 0);
  one(out, "sqraft_raft_leader_id", "gauge", "Id of the leader this node knows of (0: none).", double(g.leader_id));
  one(out, "sqraft_node_id", "gauge", "This node's id.", double(g.id));
  one(out, "sqraft_raft_commit_index", "gauge", "Highest log index known to be committed.", double(g.commit_index));
  one(out, "sqraft_raft_applied_index", "gauge", "Highest log index applied to this node's databases.",
      double(g.applied_index));
  one(out, "sqraft_raft_last_index", "gauge", "Index of the last entry in this node's log.", double(g.last_index));
  one(out, "sqraft_raft_voters", "gauge", "Voters in the cluster configuration.", double(g.voters));
  one(out, "sqraft_raft_log_bytes", "gauge", "Bytes of Raft log segments in the data directory.", double(g.log_bytes));
  one(out, "sqraft_raft_snapshot_bytes", "gauge", "Size of the newest snapshot file in the data directory.",
      double(g.snapshot_bytes));
}

void traffic_metrics(std::string& out, const Metrics& m, const NodeGauges& g) {
  one(out, "sqraft_client_connections", "gauge", "Open client connections.", double(g.client_connections));
  one(out, "sqraft_connections_accepted_total", "counter", "Connections accepted (clients and peers).",
      double(m.connections_accepted.load()));
  one(out, "sqraft_connections_refused_total", "counter", "Connections refused: over --max-connections.",
      double(m.connections_refused.load()));
  family(out, "sqraft_requests_total", "counter", "Client requests received, by wire request type.");
  std::map<std::string, uint64_t> by_name;  // every unknown type counts as "unknown"
  for (unsigned t = 0; t < m.requests.size(); t++) {
    const uint64_t n = m.requests[t].load();
    if (n > 0) by_name[wire::request_name(uint8_t(t))] += n;
  }
  for (const auto& [name, n] : by_name) out += fmt::format("sqraft_requests_total{{type=\"{}\"}} {}\n", name, n);
  family(out, "sqraft_request_errors_total", "counter",
         "FAILURE responses sent to clients, by error code (SQLite extended codes; 10250 not leader).");
  for (const auto& [code, n] : m.errors()) out += fmt::format("sqraft_request_errors_total{{code=\"{}\"}} {}\n", code, n);
  one(out, "sqraft_proposed_entries_total", "counter", "Raft entries this node proposed as leader.",
      double(m.proposed_entries.load()));
  one(out, "sqraft_proposed_bytes_total", "counter", "Bytes of Raft entries this node proposed (replicated to peers).",
      double(m.proposed_bytes.load()));
  one(out, "sqraft_applied_entries_total", "counter", "Commands applied to this node's databases.",
      double(m.applied_entries.load()));
  one(out, "sqraft_applied_bytes_total", "counter", "Bytes of commands applied to this node's databases.",
      double(m.applied_bytes.load()));
  family(out, "sqraft_commit_seconds", "histogram",
         "Write transactions' commit entries: from proposal until applied on this leader.");
  m.commit_seconds.render(out, "sqraft_commit_seconds");
}

void snapshot_metrics(std::string& out, const Metrics& m) {
  one(out, "sqraft_snapshots_taken_total", "counter", "Snapshots this node took.", double(m.snapshots_taken.load()));
  one(out, "sqraft_snapshots_restored_total", "counter", "Snapshots installed on this node (start-up or from the leader).",
      double(m.snapshots_restored.load()));
  one(out, "sqraft_snapshot_last_bytes", "gauge", "Encoded size of the last snapshot taken.",
      double(m.snapshot_last_bytes.load()));
  family(out, "sqraft_snapshot_seconds", "histogram", "Time to take a snapshot (capture and encoding).");
  m.snapshot_seconds.render(out, "sqraft_snapshot_seconds");
}

void database_metrics(std::string& out, const NodeGauges& g) {
  one(out, "sqraft_databases", "gauge", "Databases this node holds.", double(g.databases));
  family(out, "sqraft_db_write_queue_depth", "gauge", "Requests waiting for a database's writer (leader).");
  for (const DbGauges& d : g.dbs) {
    out += fmt::format("sqraft_db_write_queue_depth{{db=\"{}\"}} {}\n", label_value(d.name), d.queue_depth);
  }
  family(out, "sqraft_db_group_commits_total", "counter",
         "Transactions the writer ran for queued autocommit write statements, one or more each (group commits).");
  for (const DbGauges& d : g.dbs) {
    out += fmt::format("sqraft_db_group_commits_total{{db=\"{}\"}} {}\n", label_value(d.name), d.group_commits);
  }
  family(out, "sqraft_db_group_commit_statements_total", "counter",
         "Statements in those group commits (divide by sqraft_db_group_commits_total for the mean batch size).");
  for (const DbGauges& d : g.dbs) {
    out += fmt::format("sqraft_db_group_commit_statements_total{{db=\"{}\"}} {}\n", label_value(d.name),
                       d.group_commit_statements);
  }
  family(out, "sqraft_db_writer_connection_open", "gauge", "1 while a database's writer holds an SQLite connection.");
  for (const DbGauges& d : g.dbs) {
    out += fmt::format("sqraft_db_writer_connection_open{{db=\"{}\"}} {}\n", label_value(d.name), d.connection_open ? 1 : 0);
  }
}

}  // namespace

std::string render_metrics(const Metrics& m, const NodeGauges& g) {
  std::string out;
  out.reserve(8192);
  raft_metrics(out, g);
  traffic_metrics(out, m, g);
  snapshot_metrics(out, m);
  database_metrics(out, g);
  return out;
}

}  // namespace sqraft
