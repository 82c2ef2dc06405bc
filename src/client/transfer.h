// Whole databases into and out of a cluster: `sqraft import`, `sqraft
// backup`, and the C API's sqraft_import / sqraft_backup.
//
// Import copies an SQLite file's schema and rows (not its pages) into a
// replicated database, in one write transaction on the leader. The source
// may therefore have any page size and journal mode; the cluster's own page
// size is what the copy gets. The transaction streams to the followers as it
// grows (Frames pieces, see docs/command-schema.md) and becomes visible only
// at COMMIT, on every node at once: an import that stops anywhere before
// that (an error, a killed client, a lost leader) leaves the database as it
// was. The client holds one batch of rows (about 1 MiB) at a time, never the
// file.
//
// Backup asks one node for its copy (DUMP: the database file and its WAL as
// of one applied log index), folds the WAL in with SQLite and renames the
// result over FILE: a standalone file in rollback-journal mode that sqlite3
// opens without a -wal.
//
// Both block the calling thread and use the given Client for their whole
// run (a Client is not thread-safe).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "client.h"
#include "status.h"

namespace sqraft {

// Progress of a long transfer: bytes done so far and in all (an estimate
// for import, whose bytes are counted in the source file).
using TransferProgress = std::function<void(uint64_t done, uint64_t total)>;

struct ImportOptions {
  bool replace = false;                 // replace a database that has tables
  size_t batch_bytes = size_t{1} << 20;  // row bytes sent per INSERT
  TransferProgress progress;
};

struct ImportReport {
  uint64_t tables = 0;   // tables whose rows were copied
  uint64_t rows = 0;
  uint64_t objects = 0;  // indexes, views and triggers created
};

// Imports the SQLite database in `file` as `db` through `client` (connected
// to the leader). Fails, leaving `db` unchanged, if `db` already has tables
// and options.replace is false, if `file` is not a readable SQLite database,
// or if the cluster refuses any statement (the error names the table).
Result<ImportReport> import_database(Client& client, const std::string& db, const std::string& file,
                                     const ImportOptions& options);

struct BackupReport {
  uint64_t bytes = 0;   // size of the written file
  uint64_t pages = 0;
};

// Writes the copy of `db` held by the node `client` is connected to into
// `file` (replaced atomically if it exists; a temporary file next to it is
// used on the way).
Result<BackupReport> backup_database(Client& client, const std::string& db, const std::string& file,
                                     const TransferProgress& progress);

}  // namespace sqraft
