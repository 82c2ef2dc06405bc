// `sqraft shell`: an SQL shell over the wire protocol, like dqlite's.
//
//   sqraft shell -s ADDR[,ADDR...] DB [SQL]
//
// Connects to the cluster's leader, opens DB and runs SQL given as an
// argument, or the lines read from stdin when it is not a terminal (both stop
// at the first error: exit status 1), or an interactive prompt with libedit
// line editing and history in ~/.sqraft_history.
//
// Input: as in the sqlite3 shell, a statement continues over lines until a
// ';' ends it (outside strings, comments and trigger bodies); a line may hold
// several. What is left open at the end of the input runs as the last
// statement. A line starting with '.' where no statement is open is a
// command (see .help). A statement whose first keyword is SELECT, VALUES,
// PRAGMA or EXPLAIN, or a WITH whose main statement is a SELECT, is a query
// and prints its rows; others print nothing on success. Failures print
// "Error: <message>" on stderr.
//
// Output, tabular (the default): one row per line, columns joined by '|', no
// header, as dqlite's shell. NULL is printed as NULL (dqlite's Go shell
// prints Go's "<nil>"), floats in their shortest exact form with ".0" on
// whole numbers (as sqlite3), blobs as SQL literals x'0a1b', booleans as
// true/false. JSON (--format json): each query prints one line, an array of
// objects keyed by column name in column order (a repeated name gets ":2",
// ":3"... appended); integers and floats are numbers, text a string, a blob
// its hex digits, NULL null. Commands print JSON objects with snake_case keys.
//
// Connections: after "not leader", "leadership lost", code 12 (not found),
// a protocol error or any I/O error, the connection is dropped and the next
// statement finds the leader again; on "not leader" (nothing ran) the
// statement is retried once right away on the new leader.
#include <editline/readline.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "client.h"
#include "tools.h"

namespace sqraft::tools {

namespace {

using Json = nlohmann::ordered_json;

enum class Format { kTabular, kJson };

struct ShellArgs {
  std::vector<std::string> servers;
  std::string db;
  std::vector<std::string> sql;
  std::string format = "tabular";
  unsigned timeout_ms = 10000;
};

constexpr const char* kHelp =
    ".cluster                   List the nodes: ID|ADDRESS|ROLE (id in hex)\n"
    ".leader                    Print the leader's address\n"
    ".describe ADDRESS          Print a node's ADDRESS|FAILURE_DOMAIN|WEIGHT\n"
    ".weight ADDRESS N          Set a node's weight\n"
    ".remove ADDRESS            Remove a node from the cluster\n"
    ".dump ADDRESS [DB]         Write a node's copy of DB (default: this shell's) to the current directory\n"
    ".help                      Show this help\n"
    ".exit, .quit               Leave the shell";

// ---- SQL text ---------------------------------------------------------------

// Position of the first character at or after `pos` that is not whitespace,
// a comment or a ';' (the end if there is none).
size_t skip_filler(std::string_view sql, size_t pos) {
  while (pos < sql.size()) {
    const char ch = sql[pos];
    if (std::isspace(static_cast<unsigned char>(ch)) || ch == ';') {
      pos++;
    } else if (sql.substr(pos, 2) == "--") {
      const size_t nl = sql.find('\n', pos);
      pos = nl == std::string_view::npos ? sql.size() : nl + 1;
    } else if (sql.substr(pos, 2) == "/*") {
      const size_t end = sql.find("*/", pos + 2);
      pos = end == std::string_view::npos ? sql.size() : end + 2;
    } else {
      break;
    }
  }
  return pos;
}

bool blank(std::string_view sql) { return skip_filler(sql, 0) == sql.size(); }

std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) b++;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) e--;
  return s.substr(b, e - b);
}

// Whether `text` leaves a statement open: as in the sqlite3 shell, a
// statement goes on over the next lines until a ';' ends it (outside strings,
// comments and trigger bodies). Whatever is open at the end of the input
// runs as the last statement.
bool needs_more(const std::string& text) { return sqlite3_complete(text.c_str()) == 0; }

// Splits text into statements at the semicolons that end one; the rest, if
// any, is a last statement without ';'. Blank statements are dropped.
std::vector<std::string> split_statements(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t p = text.find(';'); p != std::string::npos; p = text.find(';', p + 1)) {
    const std::string candidate = text.substr(start, p + 1 - start);
    if (sqlite3_complete(candidate.c_str()) == 0) continue;
    if (!blank(candidate)) out.emplace_back(trim(candidate));
    start = p + 1;
  }
  const std::string rest = text.substr(start);
  if (!blank(rest)) out.emplace_back(trim(rest));
  return out;
}

// The words of `sql` outside parentheses, strings, quoted names and
// comments, upper-cased, up to `max` of them.
std::vector<std::string> top_level_words(std::string_view sql, size_t max) {
  std::vector<std::string> words;
  int depth = 0;
  size_t pos = 0;
  while (pos < sql.size() && words.size() < max) {
    pos = skip_filler(sql, pos);
    if (pos >= sql.size()) break;
    const char ch = sql[pos];
    if (ch == '\'' || ch == '"' || ch == '`' || ch == '[') {
      const char close = ch == '[' ? ']' : ch;
      const size_t end = sql.find(close, pos + 1);
      pos = end == std::string_view::npos ? sql.size() : end + 1;
    } else if (ch == '(') {
      depth++;
      pos++;
    } else if (ch == ')') {
      depth--;
      pos++;
    } else if (std::isalpha(static_cast<unsigned char>(ch)) || ch == '_') {
      std::string word;
      while (pos < sql.size() && (std::isalnum(static_cast<unsigned char>(sql[pos])) || sql[pos] == '_')) {
        word += char(std::toupper(static_cast<unsigned char>(sql[pos])));
        pos++;
      }
      if (depth == 0) words.push_back(std::move(word));
    } else {
      pos++;
    }
  }
  return words;
}

// Whether the statement returns rows: by its first keyword; for WITH, by the
// statement that follows the common table expressions.
bool is_query(std::string_view sql) {
  const std::vector<std::string> words = top_level_words(sql, 64);
  if (words.empty()) return false;
  const std::string& first = words[0];
  if (first != "WITH") return first == "SELECT" || first == "VALUES" || first == "PRAGMA" || first == "EXPLAIN";
  for (size_t i = 1; i < words.size(); i++) {
    const std::string& w = words[i];
    if (w == "SELECT" || w == "VALUES") return true;
    if (w == "INSERT" || w == "UPDATE" || w == "DELETE" || w == "REPLACE") return false;
  }
  return true;
}

// Splits a command line at whitespace.
std::vector<std::string> split_words(std::string_view line) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < line.size()) {
    while (pos < line.size() && std::isspace(static_cast<unsigned char>(line[pos]))) pos++;
    const size_t start = pos;
    while (pos < line.size() && !std::isspace(static_cast<unsigned char>(line[pos]))) pos++;
    if (pos > start) out.emplace_back(line.substr(start, pos - start));
  }
  return out;
}

// ---- values -----------------------------------------------------------------

std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xf];
  }
  return out;
}

std::string format_float(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Inf" : "-Inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string out(buf, r.ptr);
  if (out.find_first_of(".e") == std::string::npos) out += ".0";
  return out;
}

std::string to_text(const wire::Value& v) {
  switch (v.type) {
    case wire::kInteger:
    case wire::kUnixTime:
      return std::to_string(v.integer);
    case wire::kFloat:
      return format_float(v.real);
    case wire::kText:
    case wire::kIso8601:
      return v.bytes;
    case wire::kBlob:
      return "x'" + hex(v.bytes) + "'";
    case wire::kBoolean:
      return v.integer != 0 ? "true" : "false";
    case wire::kNull:
      break;
  }
  return "NULL";
}

Json to_json(const wire::Value& v) {
  switch (v.type) {
    case wire::kInteger:
    case wire::kUnixTime:
      return v.integer;
    case wire::kFloat:
      return v.real;  // NaN and infinities become null
    case wire::kText:
    case wire::kIso8601:
      return v.bytes;
    case wire::kBlob:
      return hex(v.bytes);
    case wire::kBoolean:
      return v.integer != 0;
    case wire::kNull:
      break;
  }
  return nullptr;
}

// One line of JSON; invalid UTF-8 in text is replaced, never thrown on.
std::string dump_json(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

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

// Whether the error may mean the connection no longer reaches the leader.
bool drops_connection(const Status& s) {
  return s.is_not_leader() || s.is_leadership_lost() || s.code() == SQLITE_NOTFOUND ||
         (s.code() & 0xff) == SQLITE_IOERR || s.code() == int(wire::kErrProto);
}

Status usage(const char* text) { return Status::Invalid(std::string("usage: ") + text); }

// ---- the shell ----------------------------------------------------------------

class Shell {
 public:
  explicit Shell(const ShellArgs& args)
      : servers_(args.servers),
        db_(args.db),
        format_(args.format == "json" ? Format::kJson : Format::kTabular),
        timeout_ms_(args.timeout_ms) {}

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

  Status ensure_db(Client& c) {
    if (db_open_) return Status::Ok();
    Result<uint32_t> db = c.open(db_);
    if (!db.ok()) return db.status().with_context("open " + db_);
    db_id_ = db.value();
    db_open_ = true;
    return Status::Ok();
  }

  // Feeds one line of input: runs a command, or the statements it completes.
  // Errors are printed; false if anything failed.
  bool feed(const std::string& line) {
    if (pending_.empty()) {
      const std::string_view command = trim(line);
      if (command.empty()) return true;
      if (command[0] == '.') return report(run_command(command));
    }
    pending_ += line;
    pending_ += '\n';
    if (needs_more(pending_)) return true;
    return flush();
  }

  // Runs what is left open (at the end of the input).
  bool flush() {
    const std::string text = std::move(pending_);
    pending_.clear();
    for (const std::string& stmt : split_statements(text)) {
      if (!report(run_sql(stmt))) return false;
    }
    return true;
  }

  bool pending() const { return !pending_.empty(); }
  bool quit() const { return quit_; }

 private:
  static bool report(const Status& s) {
    if (s.ok()) return true;
    std::fflush(stdout);
    std::fprintf(stderr, "Error: %s\n", s.message().c_str());
    std::fflush(stderr);
    return false;
  }

  static void print(const std::string& text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
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
      if (drops_connection(s)) client_.reset();
      if (!s.is_not_leader() || attempt > 0) return s;
    }
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
      std::vector<wire::Value> row;
      if (format_ == Format::kTabular) {
        while (rows.next(&row)) {
          std::string line;
          for (size_t i = 0; i < row.size(); i++) {
            if (i > 0) line += '|';
            line += to_text(row[i]);
          }
          print(line);
        }
        return rows.status();
      }
      const std::vector<std::string> keys = json_keys(rows.columns());
      Json out = Json::array();
      while (rows.next(&row)) {
        Json object = Json::object();
        for (size_t i = 0; i < row.size() && i < keys.size(); i++) object[keys[i]] = to_json(row[i]);
        out.push_back(std::move(object));
      }
      if (!rows.status().ok()) return rows.status();
      print(dump_json(out));
      return Status::Ok();
    });
  }

  // Column names made unique: a repeated one gets ":2", ":3"...
  static std::vector<std::string> json_keys(const std::vector<std::string>& columns) {
    std::vector<std::string> keys;
    for (const std::string& name : columns) {
      std::string key = name;
      for (unsigned n = 2; std::find(keys.begin(), keys.end(), key) != keys.end(); n++) {
        key = name + ":" + std::to_string(n);
      }
      keys.push_back(std::move(key));
    }
    return keys;
  }

  Status run_command(std::string_view line) {
    const std::vector<std::string> words = split_words(line);
    const std::string& name = words[0];
    const std::vector<std::string> args(words.begin() + 1, words.end());
    if (name == ".cluster") return cluster(args);
    if (name == ".leader") return leader(args);
    if (name == ".describe") return describe(args);
    if (name == ".weight") return weight(args);
    if (name == ".remove") return remove(args);
    if (name == ".dump") return dump(args);
    if (name == ".help") {
      if (!args.empty()) return usage(".help");
      print(kHelp);
      return Status::Ok();
    }
    if (name == ".exit" || name == ".quit") {
      quit_ = true;
      return Status::Ok();
    }
    return Status::Invalid("unknown command " + name + " (see .help)");
  }

  Status cluster(const std::vector<std::string>& args) {
    if (!args.empty()) return usage(".cluster");
    std::vector<ServerInfo> servers;
    Status s = on_leader([&](Client& c) -> Status {
      Result<std::vector<ServerInfo>> r = c.cluster();
      if (!r.ok()) return r.status();
      servers = std::move(r).value();
      return Status::Ok();
    });
    if (!s.ok()) return s;
    if (format_ == Format::kJson) {
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

  Status leader(const std::vector<std::string>& args) {
    if (!args.empty()) return usage(".leader");
    ServerInfo info;
    Status s = on_leader([&](Client& c) -> Status {
      Result<ServerInfo> r = c.leader();
      if (!r.ok()) return r.status();
      info = std::move(r).value();
      return Status::Ok();
    });
    if (!s.ok()) return s;
    if (format_ == Format::kJson) {
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

  Status describe(const std::vector<std::string>& args) {
    if (args.size() != 1) return usage(".describe ADDRESS");
    Result<std::unique_ptr<Client>> c = node(args[0]);
    if (!c.ok()) return c.status();
    Result<Client::Metadata> m = c.value()->describe();
    if (!m.ok()) return m.status();
    if (format_ == Format::kJson) {
      print(dump_json(Json{{"address", args[0]}, {"failure_domain", m->failure_domain}, {"weight", m->weight}}));
    } else {
      print(args[0] + "|" + std::to_string(m->failure_domain) + "|" + std::to_string(m->weight));
    }
    return Status::Ok();
  }

  Status weight(const std::vector<std::string>& args) {
    if (args.size() != 2) return usage(".weight ADDRESS N");
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

  Status remove(const std::vector<std::string>& args) {
    if (args.size() != 1) return usage(".remove ADDRESS");
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

  Status dump(const std::vector<std::string>& args) {
    if (args.empty() || args.size() > 2) return usage(".dump ADDRESS [DB]");
    const std::string db = args.size() == 2 ? args[1] : db_;
    Result<std::unique_ptr<Client>> c = node(args[0]);
    if (!c.ok()) return c.status();
    Result<std::vector<File>> files = c.value()->dump(db);
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

  std::vector<std::string> servers_;
  std::string db_;
  Format format_;
  unsigned timeout_ms_;
  std::unique_ptr<Client> client_;
  uint32_t db_id_ = 0;
  bool db_open_ = false;
  std::string pending_;  // an open statement's lines so far
  bool quit_ = false;
};

// Input that is not a terminal: SQL text or stdin. Stops at the first error.
int run_lines(Shell& shell, std::istream& in) {
  std::string line;
  while (!shell.quit() && std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!shell.feed(line)) return 1;
  }
  if (!shell.quit() && shell.pending() && !shell.flush()) return 1;
  return 0;
}

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
    shell.feed(line);
    std::fflush(stdout);
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
    Shell shell(args);
    if (Status s = shell.connect(); !s.ok()) {
      std::fprintf(stderr, "Error: %s\n", s.message().c_str());
      return 1;
    }
    int rc;
    if (!args.sql.empty()) {
      std::string sql;
      for (size_t i = 0; i < args.sql.size(); i++) sql += (i > 0 ? " " : "") + args.sql[i];
      std::istringstream in(sql);
      rc = run_lines(shell, in);
    } else if (::isatty(STDIN_FILENO)) {
      rc = run_interactive(shell);
    } else {
      rc = run_lines(shell, std::cin);
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
