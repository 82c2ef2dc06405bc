// `sqraft import` and `sqraft backup`: whole databases into and out of a
// cluster (see src/client/transfer.h for how, docs/operations.md for use).
//
//   sqraft import -s ADDR[,ADDR...] DB FILE [--replace] [--quiet]
//   sqraft backup -s ADDR[,ADDR...] DB FILE [--node ADDRESS] [--quiet]
//
// Both print one line saying what they did on stdout, a progress line on
// stderr while they run when it is a terminal (not with --quiet), and
// "Error: ..." on stderr with exit status 1 on failure.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "client.h"
#include "progress.h"
#include "tools.h"
#include "transfer.h"

namespace sqraft::tools {

namespace {

struct TransferArgs {
  std::vector<std::string> servers;
  std::string db;
  std::string file;
  std::string node;  // backup: this node's copy instead of the leader's
  bool replace = false;
  bool quiet = false;
  unsigned timeout_ms = 60000;
};

int fail(const Status& s) {
  std::fprintf(stderr, "Error: %s\n", s.message().c_str());
  return 1;
}

Result<std::unique_ptr<Client>> connect(const TransferArgs& a) {
  if (!a.node.empty()) return Client::connect_node(a.node, a.timeout_ms);
  Client::Options o;
  o.addresses = a.servers;
  o.timeout_ms = a.timeout_ms;
  return Client::connect(o);
}

int run_import(const TransferArgs& a) {
  Result<std::unique_ptr<Client>> c = connect(a);
  if (!c.ok()) return fail(c.status());
  ProgressLine line("import " + a.db, !a.quiet && progress_wanted());
  ImportOptions o;
  o.replace = a.replace;
  o.progress = [&line](uint64_t done, uint64_t total) { line.bytes(done, total); };
  Result<ImportReport> r = import_database(*c.value(), a.db, a.file, o);
  line.finish();
  if (!r.ok()) return fail(r.status());
  std::printf("imported %s as %s: %llu tables, %llu rows, %llu indexes, views and triggers\n", a.file.c_str(),
              a.db.c_str(), static_cast<unsigned long long>(r.value().tables),
              static_cast<unsigned long long>(r.value().rows), static_cast<unsigned long long>(r.value().objects));
  return 0;
}

int run_backup(const TransferArgs& a) {
  Result<std::unique_ptr<Client>> c = connect(a);
  if (!c.ok()) return fail(c.status());
  ProgressLine line("backup " + a.db, !a.quiet && progress_wanted());
  Result<BackupReport> r = backup_database(*c.value(), a.db, a.file,
                                           [&line](uint64_t done, uint64_t total) { line.bytes(done, total); });
  line.finish();
  if (!r.ok()) return fail(r.status());
  std::printf("backed up %s from %s to %s: %llu pages, %s\n", a.db.c_str(), c.value()->address().c_str(),
              a.file.c_str(), static_cast<unsigned long long>(r.value().pages),
              human_bytes(double(r.value().bytes)).c_str());
  return 0;
}

CLI::App* add_common(CLI::App& app, const char* name, const char* help, TransferArgs& a) {
  CLI::App* cmd = app.add_subcommand(name, help);
  cmd->add_option("-s,--servers", a.servers, "Node addresses, ADDR[,ADDR...] (the leader is found from any)")
      ->required()
      ->delimiter(',')
      ->allow_extra_args(false);
  cmd->add_option("db", a.db, "Database name in the cluster")->required();
  cmd->add_option("file", a.file, "SQLite database file")->required();
  cmd->add_flag("-q,--quiet", a.quiet, "No progress line");
  cmd->add_option("--timeout-ms", a.timeout_ms, "Timeout of each network operation")
      ->check(CLI::Range(1u, 3600000u))
      ->capture_default_str();
  return cmd;
}

}  // namespace

void add_transfer_commands(CLI::App& app, int& rc) {
  static TransferArgs import_args, backup_args;
  CLI::App* imp = add_common(app, "import",
                             "Load an SQLite database file into the cluster as DB, atomically (docs/operations.md)",
                             import_args);
  imp->add_flag("--replace", import_args.replace, "Replace DB if it already has tables");
  imp->callback([&rc] { rc = run_import(import_args); });
  CLI::App* bak = add_common(app, "backup",
                             "Write a consistent standalone SQLite file of DB (the leader's copy, or --node's)",
                             backup_args);
  bak->add_option("--node", backup_args.node, "Take the copy of this node instead of the leader's");
  bak->callback([&rc] { rc = run_backup(backup_args); });
}

}  // namespace sqraft::tools
