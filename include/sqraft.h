/*
 * sqraft: a replicated SQLite database speaking the dqlite wire protocol.
 *
 * This is the only public header. It has two halves:
 *
 *  - Nodes: run a sqraft server inside your process. A node listens on one
 *    address for clients and peers, keeps its Raft log and snapshots in a
 *    data directory, and replicates every database it holds.
 *  - Clients: connect to a cluster (any node's address will do: the client
 *    finds the leader), run SQL with parameters, read rows, and manage the
 *    cluster. A client is one connection, bound to one database.
 *
 * Errors: every function that can fail returns a result code. SQRAFT_OK is 0;
 * other codes are SQLite result codes (extended), plus dqlite's
 * SQRAFT_NOTLEADER (10250) and SQRAFT_LEADERSHIPLOST (10506). A message
 * describing the last error is kept per object (sqraft_node_errmsg,
 * sqraft_client_errmsg) and stays valid until the next call on that object.
 *
 * Memory: strings passed in are copied. Memory returned through an out
 * parameter belongs to the caller and is freed with sqraft_free() unless a
 * function says otherwise.
 *
 * Threads: a node may be used from any thread (not from its own callbacks:
 * there are none). A client or a row cursor must be used by one thread at a
 * time. No C++ exception ever crosses this interface.
 */
#ifndef SQRAFT_H
#define SQRAFT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SQRAFT_API __attribute__((visibility("default")))

/* Result codes (the SQLite values) and sqraft's own. */
#define SQRAFT_OK 0
#define SQRAFT_ERROR 1
#define SQRAFT_INTERNAL 2
#define SQRAFT_BUSY 5
#define SQRAFT_INTERRUPT 9   /* stopped: statement time limit, or the node is stopping */
#define SQRAFT_NOMEM 7
#define SQRAFT_IOERR 10
#define SQRAFT_NOTFOUND 12
#define SQRAFT_CANTOPEN 14
#define SQRAFT_TOOBIG 18     /* a string or blob over the node's value size limit */
#define SQRAFT_MISUSE 21
#define SQRAFT_AUTH 23       /* SQL a client may not run (see docs/wire-protocol.md) */
#define SQRAFT_RANGE 25
#define SQRAFT_ROW 100
#define SQRAFT_DONE 101
#define SQRAFT_NOTLEADER (10 | (40 << 8))      /* 10250: ask the leader */
#define SQRAFT_LEADERSHIPLOST (10 | (41 << 8)) /* 10506: outcome unknown */
#define SQRAFT_PROTO 1005                      /* malformed message */
/* 10762: leadership was lost during a COMMIT and the node could not learn
 * within its commit timeout (sqraft_node_set_commit_timeout_ms) whether the
 * cluster kept the transaction: it may or may not have committed. When the
 * node does learn in time, the COMMIT succeeds, or fails with
 * SQRAFT_LEADERSHIPLOST having rolled back. */
#define SQRAFT_COMMIT_UNKNOWN (10 | (42 << 8))
/* 10248 (SQLITE_READONLY class): a write of the application's own sqlite3
 * connection on a node that is not the leader (see sqraft_node_set_vfs_name). */
#define SQRAFT_READONLY_NOTLEADER (8 | (40 << 8))

/* Roles, as on the wire. */
#define SQRAFT_VOTER 0
#define SQRAFT_STANDBY 1
#define SQRAFT_SPARE 2

typedef unsigned long long sqraft_id;

/* A cluster member. */
typedef struct sqraft_server {
  sqraft_id id;
  const char* address; /* host:port, @abstract-name or /socket/path */
  int role;            /* SQRAFT_VOTER, SQRAFT_STANDBY or SQRAFT_SPARE */
} sqraft_server;

/* Frees memory returned by sqraft functions. NULL is ignored. */
SQRAFT_API void sqraft_free(void* p);

/* Logging. sqraft logs through spdlog's default logger. Unless the
 * application calls this first, the first sqraft_node_create() points that
 * logger at stderr with the level from the environment variable
 * SQRAFT_LOG_LEVEL, or "warn". `level`: "trace", "debug", "info", "warn",
 * "error", "critical" or "off"; anything else is SQRAFT_MISUSE. */
SQRAFT_API int sqraft_set_log_level(const char* level);

/* A random node id for a new node (never 0). */
SQRAFT_API sqraft_id sqraft_generate_id(const char* address);

/* ---- Nodes ---------------------------------------------------------------- */

typedef struct sqraft_node sqraft_node;

/* Creates a node (not yet running). `id` must be unique in the cluster and
 * non-zero; `address` is how clients and peers reach it; `data_dir` is
 * created (mode 0700, parents too) when the node starts if it is missing,
 * and must hold only sqraft's files (else sqraft_node_start fails with
 * SQRAFT_IOERR naming one). On error *out is NULL and the code says why
 * (SQRAFT_MISUSE for invalid arguments). */
SQRAFT_API int sqraft_node_create(sqraft_id id, const char* address, const char* data_dir, sqraft_node** out);

/* Stops the node if it runs and frees it. NULL is ignored. */
SQRAFT_API void sqraft_node_destroy(sqraft_node* node);

/* The message of the node's last error, or "" (owned by the node). */
SQRAFT_API const char* sqraft_node_errmsg(const sqraft_node* node);

/* Settings; all must be called before sqraft_node_start() (SQRAFT_MISUSE
 * afterwards). */
/* Listen on this address instead of the node's address (e.g. 0.0.0.0:9001). */
SQRAFT_API int sqraft_node_set_bind_address(sqraft_node* node, const char* address);
/* Expected one-way network latency: heartbeat = 5x, election timeout = 50x.
 * Default 20 ms. */
SQRAFT_API int sqraft_node_set_network_latency_ms(sqraft_node* node, unsigned ms);
/* Take a snapshot every `threshold` log entries and keep `trailing` entries
 * after it. Defaults 1024 and 8192. */
SQRAFT_API int sqraft_node_set_snapshot_params(sqraft_node* node, unsigned threshold, unsigned trailing);
/* The failure domain DESCRIBE reports for this node (an opaque number the
 * operator chooses, e.g. a rack; sqraft stores it, does not interpret it).
 * Default 0. Before start, else SQRAFT_MISUSE. */
SQRAFT_API int sqraft_node_set_failure_domain(sqraft_node* node, unsigned long long domain);
/* The weight DESCRIBE reports (and WEIGHT / sqraft_set_weight changes while
 * the node runs, until it restarts). Default 0. Before start, else
 * SQRAFT_MISUSE. */
SQRAFT_API int sqraft_node_set_weight(sqraft_node* node, unsigned long long weight);
/* Roll back a client's explicit transaction that stays idle longer than
 * this, freeing the database's writer for others. Default 30000 ms; 0 is
 * SQRAFT_MISUSE. */
SQRAFT_API int sqraft_node_set_txn_idle_timeout_ms(sqraft_node* node, unsigned ms);
/* How long a write may wait in its database's queue for the writer before it
 * fails with SQRAFT_BUSY. Default 10000 ms; 0 is SQRAFT_MISUSE. */
SQRAFT_API int sqraft_node_set_write_queue_timeout_ms(sqraft_node* node, unsigned ms);
/* How long a commit whose leader lost leadership on the way waits to learn
 * whether the cluster kept it (default 5000 ms); after that it fails with
 * SQRAFT_COMMIT_UNKNOWN. Before start, else SQRAFT_MISUSE. */
SQRAFT_API int sqraft_node_set_commit_timeout_ms(sqraft_node* node, unsigned ms);
/* Every client statement (read or write) that runs longer than this is
 * stopped and fails with SQRAFT_INTERRUPT. Default 60000 ms; 0 is
 * SQRAFT_MISUSE. */
SQRAFT_API int sqraft_node_set_statement_timeout_ms(sqraft_node* node, unsigned ms);
/* Where the node keeps its databases: SQRAFT_STORAGE_MEMORY (the default)
 * or SQRAFT_STORAGE_DISK: each database is a SQLite database file and its
 * WAL under <dir>/databases (readable by the sqlite3 shell while the node
 * is stopped), the node's memory does not grow with database size, and a
 * restart replays only the log entries after the state last recorded on
 * disk (about once a second, and at stop). Before start; anything else is
 * SQRAFT_MISUSE. See docs/operations.md "Storage modes". */
#define SQRAFT_STORAGE_MEMORY 0
#define SQRAFT_STORAGE_DISK 1
SQRAFT_API int sqraft_node_set_storage(sqraft_node* node, int storage);
/* The most databases the node holds; opening a new one beyond it fails with
 * SQRAFT_CANTOPEN. Default 10000; 0 is SQRAFT_MISUSE. */
SQRAFT_API int sqraft_node_set_max_databases(sqraft_node* node, unsigned n);
/* Threads that run reads and threads that run the writers of all
 * databases. Defaults 4 and 4; each from 1 to 256, else SQRAFT_MISUSE. */
SQRAFT_API int sqraft_node_set_threads(sqraft_node* node, unsigned readers, unsigned writers);
/* Serves Prometheus metrics at http://<address>/metrics, address "host:port"
 * (TCP). Before start; SQRAFT_MISUSE for NULL or a
 * unix-socket address. sqraft_node_start fails with SQRAFT_IOERR if it cannot
 * listen there. Every metric is described in docs/operations.md "Metrics". */
SQRAFT_API int sqraft_node_set_metrics_address(sqraft_node* node, const char* address);
/* Lets the application's own sqlite3 connections use the node's replicated
 * databases: when the node starts, it registers its VFS with SQLite under
 * `name` (NULL: "sqraft"). Then sqlite3_open_v2("app.db", &db, flags, name)
 * or the URI "file:app.db?vfs=sqraft" opens replicated database "app.db",
 * the same one clients reach over the wire protocol; it is created (on the
 * leader) if SQLITE_OPEN_CREATE allows; its temporary files stay on
 * SQLite's default VFS. Other connections are not affected. On such a
 * connection:
 *  - on the leader, COMMIT (or an autocommit write) returns once a quorum
 *    has stored the transaction and this node applied it;
 *  - elsewhere a write fails before anything changes: with
 *    SQRAFT_READONLY_NOTLEADER while a leader is known, with SQLITE_BUSY
 *    while none is (an election), so sqlite3_busy_timeout() waits it out;
 *  - reads are of this node's copy; checkpoints are the cluster's own (the
 *    connection's automatic or explicit ones do nothing).
 * Close every such connection before stopping the node. sqraft_node_start
 * fails with SQRAFT_ERROR if SQLite already has a VFS named `name`. Before
 * start, else SQRAFT_MISUSE. */
SQRAFT_API int sqraft_node_set_vfs_name(sqraft_node* node, const char* name);
/* The founding voters of a new cluster (this node among them). A node
 * started with an empty data directory bootstraps the cluster with them; a
 * node whose directory already holds a cluster ignores them and rejoins with
 * what is on disk. `servers` is copied. */
SQRAFT_API int sqraft_node_set_cluster(sqraft_node* node, const sqraft_server* servers, unsigned n);

/* Opens the data directory, loads the latest snapshot and the log, starts
 * listening. Returns once the node runs. If the process left SIGPIPE at its
 * default action, it is ignored from now on (a vanished peer must not kill
 * the process). Errors: SQRAFT_IOERR (data
 * directory, address in use, damaged log: see the message), SQRAFT_MISUSE.
 * After a failed start the settings may be changed and the start retried.
 * A node whose data diverges from the leader's stops itself (logged at
 * critical level); its clients then get errors until it is restarted. So
 * does a node whose Raft log cannot be written (a full disk; logged at
 * error level): stop and destroy it, and once the disk has room create
 * and start a node on the same directory again (what `sqraft node` does by
 * itself). */
SQRAFT_API int sqraft_node_start(sqraft_node* node);

/* If this node leads, hands leadership to another voter (libraft picks the
 * most up-to-date) and waits until it has stepped down, at most about an
 * election timeout. SQRAFT_OK also when the node does not lead or is the
 * only voter (nothing to hand over). Errors: SQRAFT_MISUSE (NULL, or the
 * node was never started or has stopped: see sqraft_node_errmsg),
 * SQRAFT_ERROR (libraft refused the transfer; the message says why). Call
 * it before sqraft_node_stop on a leader, so clients find the next leader
 * at once instead of after an election. */
SQRAFT_API int sqraft_node_handover(sqraft_node* node);

/* Stops the node gracefully. It can not be started again. */
SQRAFT_API int sqraft_node_stop(sqraft_node* node);

/* Disaster recovery, on a stopped node: replaces the cluster configuration
 * stored in `data_dir` with `servers` (see docs/operations.md). */
SQRAFT_API int sqraft_node_recover(const char* data_dir, sqraft_id id, const char* address,
                                   const sqraft_server* servers, unsigned n, char** errmsg);

/* ---- Clients --------------------------------------------------------------- */

typedef struct sqraft_client sqraft_client;
typedef struct sqraft_rows sqraft_rows;

/* Value types (wire protocol codes). */
#define SQRAFT_INTEGER 1
#define SQRAFT_FLOAT 2
#define SQRAFT_TEXT 3
#define SQRAFT_BLOB 4
#define SQRAFT_NULL 5
#define SQRAFT_UNIXTIME 9  /* integer seconds, from DATETIME/DATE/TIMESTAMP columns */
#define SQRAFT_ISO8601 10  /* text, from DATETIME/DATE/TIMESTAMP columns */
#define SQRAFT_BOOLEAN 11  /* integer 0 or 1, from BOOLEAN columns */

typedef struct sqraft_value {
  int type;
  long long integer; /* INTEGER, UNIXTIME, BOOLEAN */
  double real;       /* FLOAT */
  const char* data;  /* TEXT, ISO8601 (NUL-terminated), BLOB */
  size_t size;       /* bytes in `data` (without the NUL) */
} sqraft_value;

/* Connects to the leader of the cluster reachable at any of `addresses` and
 * opens database `db` (created if it does not exist). On error *out is still
 * set (unless SQRAFT_NOMEM): read sqraft_client_errmsg(), then close it. */
SQRAFT_API int sqraft_client_open(const char* const* addresses, unsigned n, const char* db, sqraft_client** out);
/* Closes the connection and frees the client; NULL is a no-op. An open
 * cursor of the client must be closed first. */
SQRAFT_API void sqraft_client_close(sqraft_client* client);
/* The message of the client's last failed call ("" if none failed; "" for a
 * NULL client). Owned by the client: valid until its next call or
 * sqraft_client_close(). */
SQRAFT_API const char* sqraft_client_errmsg(const sqraft_client* client);

/* Runs `sql` (one or more statements) with `params` bound to its `?`
 * placeholders. last_insert_id and rows_affected may be NULL. A write that
 * got SQRAFT_NOTLEADER was not executed: the client reconnects to the new
 * leader and retries it once. SQRAFT_LEADERSHIPLOST means the outcome is
 * unknown; the client reconnects for the next call. */
SQRAFT_API int sqraft_exec(sqraft_client* client, const char* sql, const sqraft_value* params, unsigned n_params,
                           unsigned long long* last_insert_id, unsigned long long* rows_affected);

/* Starts a query. Read rows with sqraft_rows_next(); close the cursor before
 * the next call on the client. */
SQRAFT_API int sqraft_query(sqraft_client* client, const char* sql, const sqraft_value* params, unsigned n_params,
                            sqraft_rows** rows);
/* SQRAFT_ROW (a row is available), SQRAFT_DONE, or an error code. */
SQRAFT_API int sqraft_rows_next(sqraft_rows* rows);
/* The query's number of columns (known before the first row). */
SQRAFT_API unsigned sqraft_rows_column_count(const sqraft_rows* rows);
/* Column i's name, owned by the cursor (valid until sqraft_rows_close());
 * NULL if i is not below sqraft_rows_column_count(). */
SQRAFT_API const char* sqraft_rows_column_name(const sqraft_rows* rows, unsigned i);
/* Column i of the current row; valid until the next sqraft_rows_next(). */
SQRAFT_API const sqraft_value* sqraft_rows_value(const sqraft_rows* rows, unsigned i);
/* Ends the query (interrupting it if rows are left) and frees the cursor. */
SQRAFT_API int sqraft_rows_close(sqraft_rows* rows);

/* Cluster management, through the client's connection to the leader. Each
 * call reconnects first if an earlier failure dropped the connection, and a
 * request answered SQRAFT_NOTLEADER (nothing was done) is retried once on
 * the new leader. Every call may also fail with SQRAFT_MISUSE (a NULL
 * client or argument), SQRAFT_NOTLEADER / SQRAFT_LEADERSHIPLOST (the
 * leader changed; for a membership change SQRAFT_LEADERSHIPLOST means its
 * outcome is unknown: read sqraft_client_cluster), or an I/O error; the
 * message is in sqraft_client_errmsg(). */

/* The leader's id and address as the node the client is connected to knows
 * them; id 0 and "" when it knows none. `id` and `address` may be NULL;
 * *address is the caller's (free it with sqraft_free). */
SQRAFT_API int sqraft_client_leader(sqraft_client* client, sqraft_id* id, char** address);
/* Every member with its role. *servers is one allocation holding the
 * addresses too (free it with sqraft_free); *n its length. */
SQRAFT_API int sqraft_client_cluster(sqraft_client* client, sqraft_server** servers, unsigned* n);
/* Adds node `id` at `address` as a spare (it receives nothing until it is
 * assigned a role). Returns once the new configuration is committed. The
 * node must be started with an empty data directory and no cluster of its
 * own. SQRAFT_ERROR if libraft refuses: e.g. the id or address is already a
 * member, or another configuration change is still in progress. */
SQRAFT_API int sqraft_client_add(sqraft_client* client, sqraft_id id, const char* address);
/* Makes member `id` a SQRAFT_VOTER, SQRAFT_STANDBY or SQRAFT_SPARE. A node
 * promoted to voter first catches up with the log. Returns once the new
 * configuration is committed. SQRAFT_ERROR if libraft refuses (no such
 * member, the role it already has, an unknown role, a change in progress). */
SQRAFT_API int sqraft_client_assign(sqraft_client* client, sqraft_id id, int role);
/* Removes member `id` from the configuration; returns once that is
 * committed. Removing the leader itself makes it step down once the change
 * commits. The removed node keeps its data; wipe it before adding it back
 * under a new id. SQRAFT_ERROR if libraft refuses (no such member, a change
 * in progress). */
SQRAFT_API int sqraft_client_remove(sqraft_client* client, sqraft_id id);
/* Hands leadership to voter `id` (0: libraft picks one). SQRAFT_OK once the
 * old leader has stepped down, which does not prove that `id` leads (check
 * with sqraft_client_leader). SQRAFT_ERROR if libraft refuses the target at
 * once (not a voter, unknown) or the old leader still leads when libraft
 * gives up (after an election timeout). The client's connection goes to the
 * old leader: the next call reconnects. */
SQRAFT_API int sqraft_client_transfer(sqraft_client* client, sqraft_id id);

/* Per-node requests go to the node at `address`, leader or not. Each
 * returns SQRAFT_OK, SQRAFT_MISUSE (a NULL argument), or an error code from
 * connecting or from the node with *errmsg set (free it with sqraft_free;
 * errmsg may be NULL). */

/* The node's failure domain and weight (what sqraft_node_set_failure_domain
 * and sqraft_set_weight set); either pointer may be NULL. */
SQRAFT_API int sqraft_describe(const char* address, unsigned long long* failure_domain, unsigned long long* weight,
                               char** errmsg);
/* Sets the weight the node reports to DESCRIBE (dqlite's clients weigh nodes
 * by it when they hand out roles); it lasts until the node restarts, which
 * brings back its configured weight. */
SQRAFT_API int sqraft_set_weight(const char* address, unsigned long long weight, char** errmsg);
/* Writes the node's copy of `db` as `<dir>/<db>` and `<dir>/<db>-wal`: files
 * SQLite can open. */
SQRAFT_API int sqraft_dump(const char* address, const char* db, const char* dir, char** errmsg);

/* Whole databases (docs/operations.md "Import and backup").
 *
 * `progress`, if not NULL, is called on the calling thread now and then with
 * the bytes done so far and in all (for import an estimate, counted in the
 * source file) and `arg`. */
typedef void (*sqraft_progress_fn)(void* arg, unsigned long long done, unsigned long long total);
#define SQRAFT_IMPORT_REPLACE 1 /* replace the database if it already has tables */

/* Loads the SQLite database in `file` (any page size and journal mode) into
 * the client's database (the `db` of sqraft_client_open) in one transaction
 * on the leader: on success every node has the whole copy, on failure the
 * database is unchanged on every node. The rows are copied, not the pages,
 * in batches of about 1 MiB; indexes, views, triggers, AUTOINCREMENT
 * counters and full-text tables come along. Blocks until done. Errors (with
 * sqraft_client_errmsg()): SQRAFT_MISUSE (NULL arguments),
 * SQRAFT_NOTFOUND (no such file), SQLITE_NOTADB 26 (not a database),
 * SQRAFT_ERROR (the database already has tables and flags lacks
 * SQRAFT_IMPORT_REPLACE, or a statement failed: the message names the table),
 * SQRAFT_AUTH (the file needs SQL a client may not run, e.g. a virtual table
 * module other than fts3/4/5, rtree, geopoly), SQRAFT_TOOBIG (a value over the
 * node's --value-bytes-max), SQRAFT_NOTLEADER / SQRAFT_LEADERSHIPLOST / an I/O
 * error (the leader changed or vanished: nothing was imported, run it again).
 * The client reconnects for its next call after such errors. */
SQRAFT_API int sqraft_import(sqraft_client* client, const char* file, int flags, sqraft_progress_fn progress,
                             void* arg);

/* Writes a standalone SQLite file (rollback-journal mode, no -wal) of the
 * client's database as of one applied log index: the leader's copy, or that
 * of the node at `node_address` when not NULL. `file` is replaced
 * atomically; a temporary `<file>.sqraft-tmp` is used on the way. Errors:
 * SQRAFT_MISUSE, SQRAFT_NOTFOUND (no such database on that node),
 * SQRAFT_IOERR (cannot write `file`, or the connection failed),
 * SQLITE_CORRUPT 11 (the copy failed its quick_check; nothing written). */
SQRAFT_API int sqraft_backup(sqraft_client* client, const char* node_address, const char* file,
                             sqraft_progress_fn progress, void* arg);

#ifdef __cplusplus
}
#endif

#endif /* SQRAFT_H */
