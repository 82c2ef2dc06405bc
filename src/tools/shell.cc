// `sqraft shell`: an SQL shell over the wire protocol, like dqlite's, with
// the sqlite3 shell's habits (.tables, .schema, .mode, .headers, .read...).
//
//   sqraft shell -s ADDR[,ADDR...] DB [SQL]
//
// Connects to the cluster's leader, opens DB and runs SQL given as an
// argument, or the lines read from stdin when it is not a terminal, or an
// interactive prompt with libedit line editing and history in
// ~/.sqraft_history. Argument and stdin input stop at the first error (exit
// status 1) unless `.bail off` lets them go on (the exit status is 1 all the
// same); the prompt goes on after errors unless `.bail on` (then it leaves
// with status 1).
//
// Input: as in the sqlite3 shell, a statement continues over lines until a
// ';' ends it (outside strings, comments and trigger bodies); a line may hold
// several. What is left open at the end of the input runs as the last
// statement. A line starting with '.' where no statement is open is a
// command (see .help and kCommands); its arguments are split at whitespace,
// with '...' and "..." (backslash escapes inside) quoting as in sqlite3.
// `.read FILE` feeds the file's lines through the same path as typed input,
// nested up to kReadDepthMax files deep. A statement whose first keyword is
// SELECT, VALUES, PRAGMA or EXPLAIN, or a WITH whose main statement is a
// SELECT, is a query and prints its rows; others print nothing on success.
// Failures print "Error: <message>" on stderr.
//
// Output: queries print in the .mode (shell_output.h): list by default (one
// row per line, columns joined by '|', no header, as dqlite's shell; NULL as
// NULL, floats in their shortest exact form with ".0" on whole numbers,
// blobs as SQL literals x'0a1b', booleans as true/false), or csv, column,
// table or json laid out as sqlite3 does; .headers adds the column names.
// --format json: each query prints one line, an array of objects keyed by
// column name in column order (a repeated name gets ":2", ":3"... appended),
// and commands print JSON objects with snake_case keys. `.output FILE` sends
// query and command output to FILE; errors stay on stderr and, as in
// sqlite3, `.timer on`'s "Run Time: real X user Y sys Z" lines on stdout.
// `.tables`, `.schema` and `.indexes` query sqlite_master (the schema table)
// over the wire, as sqlite3 does locally.
//
// Connections: after "not leader", "leadership lost", code 12 (not found),
// a protocol error or any I/O error, the connection is dropped and the next
// statement finds the leader again; on "not leader" (nothing ran) the
// statement is retried once right away on the new leader.
#include <editline/readline.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "client.h"
#include "progress.h"
#include "shell_input.h"
#include "shell_output.h"
#include "tools.h"

namespace sqraft::tools {

namespace {

struct ShellArgs {
  std::vector<std::string> servers;
  std::string db;
  std::vector<std::string> sql;
  std::string format = "tabular";
  unsigned timeout_ms = 10000;
};

// How deep .read may nest (a file that reads itself stops there).
constexpr unsigned kReadDepthMax = 16;

// A failure whose message is already printed: a .read whose statements
// failed. report() prints nothing more for it.
constexpr int kErrReported = SQLITE_ERROR | (0x7e << 8);

// Wall-clock and CPU time since construction, printed as sqlite3's .timer
// does: "Run Time: real 0.002 user 0.000972 sys 0.000000".
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()), cpu_(cpu_now()) {}

  std::string run_time() const {
    const std::chrono::duration<double> real = std::chrono::steady_clock::now() - start_;
    const rusage now = cpu_now();
    char line[128];
    std::snprintf(line, sizeof line, "Run Time: real %.3f user %f sys %f", real.count(),
                  seconds(now.ru_utime) - seconds(cpu_.ru_utime), seconds(now.ru_stime) - seconds(cpu_.ru_stime));
    return line;
  }

 private:
  static rusage cpu_now() {
    rusage r{};
    if (::getrusage(RUSAGE_SELF, &r) != 0) r = rusage{};  // never fails for RUSAGE_SELF; zeros if it did
    return r;
  }
  static double seconds(const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) * 1e-6; }

  std::chrono::steady_clock::time_point start_;
  rusage cpu_;
};

std::string role_name(uint64_t role) {
  switch (role) {
    case wire::kRoleVoter:
      return "voter";
    case wire::kRoleStandby:
      return "stand-by";
    case wire::kRoleSpare:
      return "spare";
    default:
      return "unknown(" + std::to_string(role) + ")";
  }
}

// ---- the shell ----------------------------------------------------------------

// Closes a .output file that close_output() did not (on an exception).
struct FileCloser {
  void operator()(std::FILE* f) const { (void)std::fclose(f); }  // ignored: close_output() is the checked path
};

using Table = std::vector<std::vector<wire::Value>>;

class Shell {
 public:
  using Args = std::vector<std::string>;

  // `interactive`: input comes from a terminal (.bail then starts off).
  Shell(const ShellArgs& args, bool interactive)
      : servers_(args.servers),
        db_(args.db),
        timeout_ms_(args.timeout_ms),
        json_commands_(args.format == "json"),
        mode_(json_commands_ ? Mode::kJsonLine : Mode::kList),
        bail_(!interactive) {}

  Status connect() {
    client_.reset();
    Client::Options o;
    o.addresses = servers_;
    o.timeout_ms = timeout_ms_;
    Result<std::unique_ptr<Client>> c = Client::connect(o);
    if (!c.ok()) return c.status().with_context("connect");
    client_ = std::move(c).value();
    db_open_ = false;  // opened by the first statement: commands need no database
    return Status::Ok();
  }

  // Feeds one line of input: runs a command, or the statements it completes.
  // Errors are printed; false if anything failed.
  bool feed(const std::string& line) {
    if (pending_.empty()) {
      const std::string_view command = trim(line);
      if (command.empty()) return true;
      if (command[0] == '.') return run_command(command);
    }
    pending_ += line;
    pending_ += '\n';
    if (needs_more(pending_)) return true;
    return flush();
  }

  // Runs what is left open (at the end of the input). A failing statement
  // drops the ones after it in the same text, as in sqlite3.
  bool flush() {
    const std::string text = std::move(pending_);
    pending_.clear();
    for (const std::string& stmt : split_statements(text)) {
      if (!run_statement(stmt)) return false;
    }
    return true;
  }

  // Feeds the lines of `in` (an argument, stdin or a .read file) and runs
  // what is left open at its end. Stops at .exit, and at the first failure
  // when .bail is on. True if nothing failed.
  bool run_stream(std::istream& in) {
    bool ok = true;
    std::string line;
    while (!quit_ && std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!feed(line)) {
        ok = false;
        if (bail_) return false;
      }
    }
    if (!quit_ && pending() && !flush()) ok = false;
    return ok;
  }

  bool pending() const { return !pending_.empty(); }
  bool quit() const { return quit_; }
  bool stops_on_error() const { return bail_; }

  // Sends output back to stdout, closing the .output file if there is one.
  // Fails if that file could not be written in full.
  Status close_output() {
    std::fflush(out_);
    if (!out_file_) return Status::Ok();
    std::FILE* f = out_file_.release();
    out_ = stdout;
    const bool failed = std::ferror(f) != 0;
    if (std::fclose(f) != 0 || failed) return Status::IoError("cannot write to \"" + out_name_ + "\"");
    return Status::Ok();
  }

 private:
  // A dot-command: its name (and another it answers to), its synopsis and
  // one line of help (both for .help), and its handler.
  struct Command {
    const char* name;
    const char* alias;
    const char* synopsis;
    const char* help;
    Status (Shell::*run)(const Args& args);
  };
  static const Command kCommands[];
  static std::span<const Command> commands();

  // "usage: <synopsis>" of the command `name`.
  static Status usage(std::string_view name) {
    for (const Command& c : commands()) {
      if (name == c.name) return Status::Invalid(std::string("usage: ") + c.synopsis);
    }
    assert(false && "usage() of an unknown command");
    return Status::Invalid("usage: see .help");
  }

  bool report(const Status& s) {
    if (s.ok()) return true;
    if (s.code() == kErrReported) return false;
    std::fflush(out_);
    std::fflush(stdout);
    std::fprintf(stderr, "Error: %s\n", s.message().c_str());
    std::fflush(stderr);
    return false;
  }

  void print(const std::string& text) {
    std::fwrite(text.data(), 1, text.size(), out_);
    std::fputc('\n', out_);
  }

  // Runs `op` on the leader connection, reconnecting when needed, and once
  // more on the new leader after "not leader".
  template <class F>
  Status on_leader(F&& op) {
    for (int attempt = 0;; attempt++) {
      if (!client_) {
        if (Status s = connect(); !s.ok()) return s;
      }
      Status s = op(*client_);
      if (s.ok()) return s;
      if (needs_new_connection(s)) client_.reset();
      if (!s.is_not_leader() || attempt > 0) return s;
    }
  }

  Status ensure_db(Client& c) {
    if (db_open_) return Status::Ok();
    Result<uint32_t> db = c.open(db_);
    if (!db.ok()) return db.status().with_context("open " + db_);
    db_id_ = db.value();
    db_open_ = true;
    return Status::Ok();
  }

  // One statement, timed when .timer is on; the Run Time line comes before
  // the error, as in sqlite3.
  bool run_statement(const std::string& sql) {
    const Stopwatch watch;
    const Status s = run_sql(sql);
    if (timer_) {
      std::fflush(out_);
      std::printf("%s\n", watch.run_time().c_str());
    }
    return report(s);
  }

  Status run_sql(const std::string& sql) {
    if (!is_query(sql)) {
      return on_leader([&](Client& c) {
        if (Status o = ensure_db(c); !o.ok()) return o;
        return c.exec(db_id_, sql).status();
      });
    }
    return on_leader([&](Client& c) -> Status {
      if (Status o = ensure_db(c); !o.ok()) return o;
      Result<std::unique_ptr<Rows>> r = c.query(db_id_, sql);
      if (!r.ok()) return r.status();
      Rows& rows = *r.value();
      ResultPrinter printer(mode_, headers_, out_);
      printer.columns(rows.columns());
      std::vector<wire::Value> row;
      while (rows.next(&row)) {
        if (Status s = printer.row(row); !s.ok()) return s;  // ~Rows interrupts the query
      }
      if (!rows.status().ok()) return rows.status();
      printer.finish();
      return Status::Ok();
    });
  }

  // All rows of a query of the shell's own (.tables, .schema...).
  Result<Table> fetch(const std::string& sql, const std::vector<wire::Value>& params = {}) {
    Table table;
    Status s = on_leader([&](Client& c) -> Status {
      table.clear();
      if (Status o = ensure_db(c); !o.ok()) return o;
      Result<std::unique_ptr<Rows>> r = c.query(db_id_, sql, params);
      if (!r.ok()) return r.status();
      std::vector<wire::Value> row;
      while (r.value()->next(&row)) table.push_back(row);
      return r.value()->status();
    });
    if (!s.ok()) return s;
    return table;
  }

  bool run_command(std::string_view line) {
    const Args words = split_args(line);
    assert(!words.empty() && words[0].starts_with('.'));
    const Args args(words.begin() + 1, words.end());
    for (const Command& c : commands()) {
      if (words[0] == c.name || (c.alias != nullptr && words[0] == c.alias)) return report((this->*c.run)(args));
    }
    return report(Status::Invalid("unknown command " + words[0] + " (see .help)"));
  }

  // ---- cluster commands ----

  Status cluster(const Args& args) {
    if (!args.empty()) return usage(".cluster");
    std::vector<ServerInfo> servers;
    Status s = on_leader([&](Client& c) -> Status {
      Result<std::vector<ServerInfo>> r = c.cluster();
      if (!r.ok()) return r.status();
      servers = std::move(r).value();
      return Status::Ok();
    });
    if (!s.ok()) return s;
    if (json_commands_) {
      Json out = Json::array();
      for (const ServerInfo& info : servers) {
        out.push_back(Json{{"id", info.id}, {"address", info.address}, {"role", role_name(info.role)}});
      }
      print(dump_json(out));
      return Status::Ok();
    }
    for (const ServerInfo& info : servers) {
      char id[32];
      std::snprintf(id, sizeof id, "%llx", static_cast<unsigned long long>(info.id));
      print(std::string(id) + "|" + info.address + "|" + role_name(info.role));
    }
    return Status::Ok();
  }

  Status leader(const Args& args) {
    if (!args.empty()) return usage(".leader");
    ServerInfo info;
    Status s = on_leader([&](Client& c) -> Status {
      Result<ServerInfo> r = c.leader();
      if (!r.ok()) return r.status();
      info = std::move(r).value();
      return Status::Ok();
    });
    if (!s.ok()) return s;
    if (json_commands_) {
      print(dump_json(Json{{"id", info.id}, {"address", info.address}}));
    } else if (!info.address.empty()) {
      print(info.address);
    }
    return Status::Ok();
  }

  Result<std::unique_ptr<Client>> node(const std::string& address) const {
    Result<std::unique_ptr<Client>> c = Client::connect_node(address, timeout_ms_);
    if (!c.ok()) return c.status().with_context("connect to " + address);
    return c;
  }

  Status describe(const Args& args) {
    if (args.size() != 1) return usage(".describe");
    Result<std::unique_ptr<Client>> c = node(args[0]);
    if (!c.ok()) return c.status();
    Result<Client::Metadata> m = c.value()->describe();
    if (!m.ok()) return m.status();
    if (json_commands_) {
      print(dump_json(Json{{"address", args[0]}, {"failure_domain", m->failure_domain}, {"weight", m->weight}}));
    } else {
      print(args[0] + "|" + std::to_string(m->failure_domain) + "|" + std::to_string(m->weight));
    }
    return Status::Ok();
  }

  Status weight(const Args& args) {
    if (args.size() != 2) return usage(".weight");
    uint64_t n = 0;
    const std::string& text = args[1];
    const auto r = std::from_chars(text.data(), text.data() + text.size(), n);
    if (r.ec != std::errc() || r.ptr != text.data() + text.size()) {
      return Status::Invalid("bad weight '" + text + "': usage: .weight ADDRESS N (N a non-negative integer)");
    }
    Result<std::unique_ptr<Client>> c = node(args[0]);
    if (!c.ok()) return c.status();
    return c.value()->weight(n);
  }

  Status remove(const Args& args) {
    if (args.size() != 1) return usage(".remove");
    const std::string& address = args[0];
    return on_leader([&](Client& c) -> Status {
      Result<std::vector<ServerInfo>> servers = c.cluster();
      if (!servers.ok()) return servers.status();
      for (const ServerInfo& info : servers.value()) {
        if (info.address == address) return c.remove(info.id).with_context("remove " + address);
      }
      return Status::NotFound("no node has address " + address);
    });
  }

  Status dump(const Args& args) {
    if (args.empty() || args.size() > 2) return usage(".dump");
    const std::string db = args.size() == 2 ? args[1] : db_;
    Result<std::unique_ptr<Client>> c = node(args[0]);
    if (!c.ok()) return c.status();
    ProgressLine line(".dump " + db, progress_wanted());
    c.value()->set_receive_progress([&line](uint64_t done, uint64_t total) { line.bytes(done, total); });
    Result<std::vector<File>> files = c.value()->dump(db);
    c.value()->set_receive_progress({});
    line.finish();
    if (!files.ok()) return files.status().with_context("dump " + db);
    // Only plain names: a node must not write outside the current directory.
    for (const File& f : files.value()) {
      if (f.name.empty() || f.name == "." || f.name == ".." || f.name.find('/') != std::string::npos) {
        return Status::Invalid("dump " + db + ": refusing file name '" + f.name + "'");
      }
    }
    for (const File& f : files.value()) {
      std::FILE* out = std::fopen(f.name.c_str(), "wb");
      if (out == nullptr) return Status::IoError("write " + f.name + ": cannot create the file");
      const bool written = std::fwrite(f.data.data(), 1, f.data.size(), out) == f.data.size();
      if (std::fclose(out) != 0 || !written) return Status::IoError("write " + f.name + ": short write");
    }
    print("OK");
    return Status::Ok();
  }

  // ---- the schema, through sqlite_master (the schema table's older name,
  // which every SQLite a dqlite server runs knows) ----

  // .tables [PATTERN]: tables and views, system tables left out.
  Status tables(const Args& args) {
    if (args.size() > 1) return usage(".tables");
    return print_names(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' "
        "AND name LIKE ?1 ORDER BY 1",
        args);
  }

  // .indexes [TABLE]: the indexes of the tables whose names match, the
  // automatic ones of UNIQUE and PRIMARY KEY constraints included.
  Status indexes(const Args& args) {
    if (args.size() > 1) return usage(".indexes");
    return print_names("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name LIKE ?1 ORDER BY 1", args);
  }

  // The names `sql` returns for the LIKE pattern in `args` (default: all),
  // laid out in columns.
  Status print_names(const std::string& sql, const Args& args) {
    Result<Table> rows = fetch(sql, {wire::Value::Text(args.empty() ? "%" : args[0])});
    if (!rows.ok()) return rows.status();
    std::vector<std::string> names;
    for (const std::vector<wire::Value>& row : rows.value()) names.push_back(row.empty() ? "" : to_text(row[0]));
    const std::string text = name_columns(names);
    std::fwrite(text.data(), 1, text.size(), out_);
    return Status::Ok();
  }

  // .schema [PATTERN]: the CREATE statements in the order they were made, of
  // everything whose table's name matches PATTERN (LIKE with '\' escaping,
  // or GLOB when it holds * ? or [, as sqlite3 chooses).
  Status schema(const Args& args) {
    if (args.size() > 1) return usage(".schema");
    std::string sql = "SELECT sql, type, name FROM sqlite_master WHERE sql IS NOT NULL";
    std::vector<wire::Value> params;
    if (!args.empty()) {
      const bool glob = args[0].find_first_of("*?[") != std::string::npos;
      sql += glob ? " AND lower(tbl_name) GLOB ?1" : " AND lower(tbl_name) LIKE ?1 ESCAPE '\\'";
      params.push_back(wire::Value::Text(args[0]));
    }
    Result<Table> rows = fetch(sql + " ORDER BY rowid", params);
    if (!rows.ok()) return rows.status();
    for (const std::vector<wire::Value>& row : rows.value()) {
      if (row.size() != 3) return Status::Internal("schema query: expected 3 columns");
      const std::string& name = row[2].bytes;
      std::vector<std::string> columns;
      const bool view = row[1].bytes == "view" && row[0].bytes.starts_with("CREATE VIEW ");
      if (view) {
        if (Status s = view_columns(name, &columns); !s.ok()) return s;
      }
      print(schema_line(row[0].bytes, name, view ? &columns : nullptr) + ";");
    }
    return Status::Ok();
  }

  // The column names of view `name` in *out; none when the view is broken
  // (its tables gone), as sqlite3 then prints no comment either.
  Status view_columns(const std::string& name, std::vector<std::string>* out) {
    Result<Table> rows = fetch("SELECT name FROM pragma_table_info(?1)", {wire::Value::Text(name)});
    if (!rows.ok()) return (rows.status().code() & 0xff) == SQLITE_ERROR ? Status::Ok() : rows.status();
    for (const std::vector<wire::Value>& row : rows.value()) out->push_back(row.empty() ? "" : to_text(row[0]));
    return Status::Ok();
  }

  // ---- settings and input ----

  // An on|off command's argument into *flag.
  static Status set_switch(const Args& args, std::string_view name, bool* flag) {
    if (args.size() != 1 || !parse_switch(args[0], flag)) return usage(name);
    return Status::Ok();
  }

  Status headers(const Args& args) {
    Status s = set_switch(args, ".headers", &headers_);
    if (s.ok()) headers_set_ = true;
    return s;
  }

  Status timer(const Args& args) { return set_switch(args, ".timer", &timer_); }
  Status bail(const Args& args) { return set_switch(args, ".bail", &bail_); }

  // .mode [MODE]. As in sqlite3, column mode turns the headers on (for the
  // modes after it too) unless .headers has said otherwise; table mode
  // always shows them without changing the setting.
  Status mode(const Args& args) {
    if (args.size() > 1) return usage(".mode");
    if (args.empty()) {
      print(std::string("current output mode: ") + mode_name(mode_));
      return Status::Ok();
    }
    if (!parse_mode(args[0], &mode_)) return Status::Invalid(std::string("mode should be one of: ") + mode_names());
    if (mode_ == Mode::kColumn && !headers_set_) headers_ = true;
    return Status::Ok();
  }

  // .output [FILE]: later output to FILE (emptied first), or back to stdout.
  Status output(const Args& args) {
    if (args.size() > 1) return usage(".output");
    if (Status s = close_output(); !s.ok()) return s;
    if (args.empty()) return Status::Ok();
    if (args[0].starts_with('|')) return Status::Invalid(".output to a command is not supported");
    std::FILE* f = std::fopen(args[0].c_str(), "w");
    if (f == nullptr) return Status::IoError("cannot write to \"" + args[0] + "\"");
    out_file_.reset(f);
    out_ = f;
    out_name_ = args[0];
    return Status::Ok();
  }

  // .read FILE: the file's lines as typed input. Its errors are reported as
  // they happen; the command fails (quietly) if any statement in it failed.
  Status read_file(const Args& args) {
    if (args.size() != 1) return usage(".read");
    if (read_depth_ >= kReadDepthMax) {
      return Status::Invalid(".read nested more than " + std::to_string(kReadDepthMax) + " files deep at " + args[0]);
    }
    std::ifstream in(args[0]);
    if (!in) return Status::IoError("cannot open \"" + args[0] + "\"");
    assert(pending_.empty());  // commands run only between statements
    read_depth_++;
    const bool ok = run_stream(in);
    read_depth_--;
    return ok ? Status::Ok() : Status::Error(kErrReported, "a statement in " + args[0] + " failed");
  }

  Status help(const Args& args) {
    if (!args.empty()) return usage(".help");
    constexpr size_t kSynopsisWidth = 27;
    std::string text;
    for (const Command& c : commands()) {
      std::string line = c.synopsis;
      line.resize(std::max(line.size() + 1, kSynopsisWidth), ' ');
      text += (text.empty() ? "" : "\n") + line + c.help;
    }
    print(text);
    return Status::Ok();
  }

  Status leave(const Args& /*args: ignored, as always*/) {
    quit_ = true;
    return Status::Ok();
  }

  // Constant after construction.
  const std::vector<std::string> servers_;
  const std::string db_;
  const unsigned timeout_ms_;
  const bool json_commands_;  // --format json: commands print JSON too

  // The connection.
  std::unique_ptr<Client> client_;
  uint32_t db_id_ = 0;
  bool db_open_ = false;

  // Settings (dot-commands).
  Mode mode_;
  bool headers_ = false;
  bool headers_set_ = false;  // .headers was given: .mode leaves headers_ alone
  bool timer_ = false;
  bool bail_;
  std::FILE* out_ = stdout;  // stdout or out_file_
  std::unique_ptr<std::FILE, FileCloser> out_file_;
  std::string out_name_;

  // Input.
  std::string pending_;  // an open statement's lines so far
  unsigned read_depth_ = 0;
  bool quit_ = false;
};

// Cluster commands first, then the sqlite3 shell's.
const Shell::Command Shell::kCommands[] = {
    {".cluster", nullptr, ".cluster", "List the nodes: ID|ADDRESS|ROLE (id in hex)", &Shell::cluster},
    {".leader", nullptr, ".leader", "Print the leader's address", &Shell::leader},
    {".describe", nullptr, ".describe ADDRESS", "Print a node's ADDRESS|FAILURE_DOMAIN|WEIGHT", &Shell::describe},
    {".weight", nullptr, ".weight ADDRESS N", "Set a node's weight", &Shell::weight},
    {".remove", nullptr, ".remove ADDRESS", "Remove a node from the cluster", &Shell::remove},
    {".dump", nullptr, ".dump ADDRESS [DB]",
     "Write a node's copy of DB (default: this shell's) to the current directory", &Shell::dump},
    {".bail", nullptr, ".bail on|off", "Stop at the first error (default: off on a terminal, on otherwise)",
     &Shell::bail},
    {".headers", nullptr, ".headers on|off", "Print column names in list, csv and column mode", &Shell::headers},
    {".indexes", ".indices", ".indexes [TABLE]", "List the indexes (of the tables matching LIKE pattern TABLE)",
     &Shell::indexes},
    {".mode", nullptr, ".mode [MODE]", "Output mode: list, csv, column, table or json (none: print it)",
     &Shell::mode},
    {".output", nullptr, ".output [FILE]", "Write output to FILE (none: to stdout again)", &Shell::output},
    {".read", nullptr, ".read FILE", "Run the statements and commands in FILE", &Shell::read_file},
    {".schema", nullptr, ".schema [PATTERN]", "Print the CREATE statements (of the tables matching PATTERN)",
     &Shell::schema},
    {".tables", nullptr, ".tables [PATTERN]", "List the tables and views (matching LIKE pattern PATTERN)",
     &Shell::tables},
    {".timer", nullptr, ".timer on|off", "Print the run time of each SQL statement", &Shell::timer},
    {".help", nullptr, ".help", "Show this help", &Shell::help},
    {".exit", ".quit", ".exit, .quit", "Leave the shell", &Shell::leave},
};

std::span<const Shell::Command> Shell::commands() { return kCommands; }

std::string history_path() {
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return {};
  return std::string(home) + "/.sqraft_history";
}

int run_interactive(Shell& shell) {
  rl_readline_name = "sqraft";
  stifle_history(1000);
  const std::string history = history_path();
  if (!history.empty()) read_history(history.c_str());
  while (!shell.quit()) {
    char* raw = readline(shell.pending() ? "   ...> " : "sqraft> ");
    if (raw == nullptr) {  // Ctrl-D
      std::fputc('\n', stdout);
      break;
    }
    const std::string line(raw);
    std::free(raw);
    if (!trim(line).empty()) {
      add_history(line.c_str());
      if (!history.empty()) write_history(history.c_str());
    }
    const bool ok = shell.feed(line);
    std::fflush(stdout);
    if (!ok && shell.stops_on_error()) return 1;  // .bail on
  }
  return 0;
}

int run_shell(ShellArgs args) {
  std::erase_if(args.servers, [](std::string& a) {
    a = std::string(trim(a));
    return a.empty();
  });
  if (args.servers.empty()) {
    std::fprintf(stderr, "Error: no server addresses given (-s)\n");
    return 1;
  }
  try {
    const bool interactive = args.sql.empty() && ::isatty(STDIN_FILENO);
    Shell shell(args, interactive);
    if (Status s = shell.connect(); !s.ok()) {
      std::fprintf(stderr, "Error: %s\n", s.message().c_str());
      return 1;
    }
    int rc;
    if (!args.sql.empty()) {
      std::string sql;
      for (size_t i = 0; i < args.sql.size(); i++) sql += (i > 0 ? " " : "") + args.sql[i];
      std::istringstream in(sql);
      rc = shell.run_stream(in) ? 0 : 1;
    } else if (interactive) {
      rc = run_interactive(shell);
    } else {
      rc = shell.run_stream(std::cin) ? 0 : 1;
    }
    if (Status s = shell.close_output(); !s.ok()) {
      std::fprintf(stderr, "Error: %s\n", s.message().c_str());
      rc = 1;
    }
    std::fflush(stdout);
    return rc;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "Error: %s\n", e.what());
    return 1;
  }
}

}  // namespace

void add_shell_command(CLI::App& app, int& rc) {
  auto args = std::make_shared<ShellArgs>();
  CLI::App* cmd = app.add_subcommand("shell", "An SQL shell on a cluster (interactive on a terminal)");
  cmd->add_option("-s,--servers", args->servers, "Node addresses, comma-separated or repeated")
      ->required()
      ->delimiter(',')
      ->allow_extra_args(false);
  cmd->add_option("db", args->db, "Database name")->required();
  cmd->add_option("sql", args->sql, "SQL (or a .command) to run instead of reading input");
  cmd->add_option("--format", args->format, "Output format: tabular or json")
      ->check(CLI::IsMember({"tabular", "json"}));
  cmd->add_option("--timeout-ms", args->timeout_ms, "Timeout of each network operation")
      ->check(CLI::Range(1u, 3600000u));
  cmd->callback([args, &rc] { rc = run_shell(*args); });
}

}  // namespace sqraft::tools
