// Session: one client (or peer) connection to a node.
//
// It reads the protocol handshake and then messages. A first request of type
// CONNECT comes from a Raft peer: the session hands the socket to the Raft
// transport and ends. Anything else is a client: requests are served one at a
// time (dqlite's protocol is request/response; only row streams and INTERRUPT
// overlap), SQL runs off the loop thread — reads on the node's reader pool
// with the session's own connection, writes on the database's DbWriter — and
// responses are written back on the loop thread.
//
// Bad input never crashes the node: malformed or oversized messages get a
// FAILURE response or close this connection, with a log line saying why.
//
// Thread-safety: loop thread only; jobs it starts elsewhere keep it alive
// (jobs_ > 0) until their completion runs on the loop thread.
#pragma once

#include <uv.h>

#include <array>
#include <atomic>
#include <cassert>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "context.h"
#include "db_writer.h"
#include "sql_guard.h"
#include "statement.h"
#include "wire.h"

namespace sqraft {

class Session {
 public:
  Session(GatewayContext& node, uint64_t id, uv_stream_t* stream);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start();
  void close(const std::string& why);
  uint64_t id() const { return id_; }
  bool reapable() const { return closing_ && stream_closed_ && jobs_ == 0; }
  // Leadership was lost: writes in progress fail; database handles go.
  void on_leadership_lost();
  // A request waiting for this leader to be ready: run it now, or give up
  // once the wait is over. Returns true while it still waits.
  bool retry_parked();

 private:
  struct Db {
    std::string name;
    sqlite3* conn = nullptr;  // this client's reader connection
    std::unique_ptr<SqlGuard> guard;  // its policy and statement budget
    std::unique_ptr<StmtCache> cache;
    DbWriter* writer = nullptr;
    bool in_txn = false;      // the client owns the database's writer
    bool has_temp = false;    // the client made TEMP objects on its connection
  };
  struct Stmt {
    uint32_t db = 0;
    std::string sql;
    StmtKind kind = StmtKind::kOther;
    uint64_t params = 0;
  };
  struct Stream {  // a query's rows, batch by batch
    uint32_t db = 0;
    bool on_writer = false;
    std::unique_ptr<RowCursor> cursor;  // reader streams
  };
  struct Message {
    wire::Header header;
    std::vector<uint8_t> body;
  };

  // A request being handled: its type, schema and body.
  struct Request {
    uint8_t type;
    uint8_t schema;
    wire::BodyReader body;
  };
  using Handler = void (Session::*)(Request&);
  // Where a query's answer stands (see stream.cc for the diagram).
  enum class QueryState : uint8_t {
    kIdle,              // no query request is running
    kStarting,          // a query runs; its first batch is not out
    kInterruptedEarly,  // INTERRUPT came in kStarting: what it made goes out, then EMPTY
    kStreaming,         // batches are out and more follow on demand
    kInterrupted,       // INTERRUPT came while streaming: the stream ends with EMPTY
  };
  // A PREPARE being answered.
  struct Prepared {
    uint32_t db;
    std::string sql;
    uint8_t schema;
  };

  // conn.cc: the connection.
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);
  void on_bytes(const uint8_t* data, size_t n);
  void parse();
  void hand_to_raft(const Message& m);
  void send(std::vector<uint8_t> msg, std::function<void()> after = {});
  void reply_failure(const Status& s);
  void reply_failure(uint64_t code, const std::string& message);
  void reply_empty();

  // dispatch.cc: requests, one handler per type.
  static const std::array<Handler, 256>& handlers();
  void dispatch(Message m);
  // retry: a parked request, counted already; confirmed: leadership was
  // confirmed after it arrived.
  void handle(Message& m, bool retry = false, bool confirmed = false);
  bool park_for_confirmation(Message& m);
  void done();  // the current request is answered: take the next one
  void fail(const Status& s);  // answers FAILURE, then done()
  void fail(uint64_t code, const std::string& message);
  void malformed(const Request& r);
  void handle_leader(Request& r);
  void handle_client(Request& r);
  void handle_heartbeat(Request& r);
  void handle_open(Request& r);
  void handle_prepare(Request& r);
  void handle_exec(Request& r);  // EXEC and QUERY
  void handle_finalize(Request& r);
  void handle_exec_sql(Request& r);  // EXEC_SQL and QUERY_SQL
  void handle_interrupt(Request& r);  // with no query running
  void handle_connect(Request& r);  // CONNECT after the first request
  void on_opened(const std::string& name, Result<sqlite3*> conn);
  void send_db(uint32_t id);
  void prepare_on_reader(Db& d, const Prepared& p);
  void on_prepared(const Prepared& p, const Status& st, uint64_t params, uint64_t tail, StmtKind kind);
  Db* db(uint64_t id, bool need_leader);  // nullptr: answered already
  void drop_db(uint32_t db_id);
  static void close_db(Db& d);
  void note_txn(uint32_t db_id, const DbWriter::Reply& rep);  // the client's transaction state on that writer

  // admin.cc: cluster administration.
  void handle_cluster(Request& r);
  void send_servers(uint64_t format);
  void handle_membership(Request& r);  // ADD, ASSIGN, REMOVE
  void handle_transfer(Request& r);
  void handle_dump(Request& r);
  void handle_describe(Request& r);
  void handle_weight(Request& r);

  // route.cc: where a statement runs.
  void run_sql(uint32_t db_id, std::string sql, SqlParams params, bool query, StmtKind kind);
  void run_on_reader(uint32_t db_id, std::string sql, SqlParams params, bool query);
  bool try_read_inline(uint32_t db_id, const std::string& sql, const SqlParams& params);
  void run_on_writer(uint32_t db_id, std::string sql, SqlParams params, bool query, bool batchable);
  void on_writer_reply(uint32_t db_id, bool query, DbWriter::Reply rep);
  void classify_then_run(uint32_t db_id, std::string sql, SqlParams params, bool query);
  void run_classified(uint32_t db_id, std::string sql, SqlParams params, bool query, bool readonly,
                      const Touches& touches);
  void send_result(const ExecOutcome& out);

  // stream.cc: a query's rows and INTERRUPT.
  static const char* query_state_name(QueryState s);
  void query_to(QueryState next);  // checked transition
  void begin_stream(uint32_t db_id, bool on_writer, std::unique_ptr<RowCursor> cursor);
  void on_rows(Result<std::vector<uint8_t>> batch, bool last);  // a reader job's batch
  void on_batch(std::vector<uint8_t> batch, bool last);
  void next_rows();
  void interrupt_query();
  void end_stream_interrupted();
  void end_stream_done();
  void fail_stream(const Status& status);
  // True if `s` is a statement stopped because this client sent INTERRUPT.
  bool stopped_by_interrupt(const Status& s) const;

  // Jobs: SQL or Raft requests of this session running elsewhere; the
  // session is not reaped while one runs. Every job starts through
  // launch_job and ends on the loop thread through job_finished (directly,
  // or through finish_on_loop, which calls it for its completion).
  //
  // Counts one job for as long as it lives, unless handed_off() says the
  // job's completion is on its way: a launch that fails or throws takes its
  // count back by leaving the scope.
  class JobCount {
   public:
    explicit JobCount(Session& s) : s_(s) { s_.jobs_++; }
    ~JobCount() {
      if (handed_off_) return;
      assert(s_.jobs_ > 0);
      s_.jobs_--;
    }
    JobCount(const JobCount&) = delete;
    JobCount& operator=(const JobCount&) = delete;
    void handed_off() { handed_off_ = true; }

   private:
    Session& s_;
    bool handed_off_ = false;
  };
  // Runs `launch`, which starts one job elsewhere and says whether it did;
  // the job is counted if it did. Returns what `launch` returned.
  template <class Launch>
  bool launch_job(Launch&& launch) {
    JobCount job(*this);
    if (!launch()) return false;
    job.handed_off();
    return true;
  }
  // Runs `task` on the reader pool as one of this session's jobs. If the
  // pool refuses it (the node is stopping), the client gets FAILURE; its
  // request is over either way.
  void start_read_job(std::function<void()> task);
  // Submits `req` to a database's writer as one of this session's jobs.
  // False (nothing answered) if its queue is full.
  bool start_writer_job(DbWriter& writer, DbWriter::Request req);
  static Status write_queue_full() { return Status::Busy("database is locked: too many queued writes"); }
  // From a job's thread: runs `fn` on the loop thread (see the .cc for why a
  // refusal may be dropped).
  void back_to_loop(std::function<void()> fn);
  // From a job's thread: ends the job on the loop thread, then runs `fn`
  // there unless the session is closing.
  template <class Fn>
  void finish_on_loop(Fn&& fn) {
    back_to_loop([this, fn = std::forward<Fn>(fn)]() mutable {
      if (job_finished()) fn();
    });
  }
  // Loop thread: ends a job. False if the session is closing (it may have
  // been reaped: touch nothing).
  bool job_finished();

  GatewayContext& node_;
  const uint64_t id_;
  uv_stream_t* stream_;
  bool closing_ = false;
  bool stream_closed_ = false;
  int jobs_ = 0;
  // Read by this client's running SQL (reader pool, writer) through its
  // guard: a StopReason, set on INTERRUPT of a query and on close, cleared
  // when the next request starts. The jobs reading it keep the session alive.
  std::atomic<uint8_t> cancel_{0};

  // Reading.
  enum class Phase { kHandshake, kFirstHeader, kFirstBody, kClient };
  Phase phase_ = Phase::kHandshake;
  std::vector<uint8_t> in_;
  size_t in_used_ = 0;
  std::vector<uint8_t> read_buf_;
  std::optional<wire::Header> pending_header_;

  // Requests.
  bool busy_ = false;
  QueryState query_ = QueryState::kIdle;
  unsigned owed_empties_ = 0;  // further INTERRUPTs of an interrupted stream
  std::deque<Message> queued_;
  size_t queued_bytes_ = 0;  // bodies in queued_
  uint64_t client_id_ = 0;
  std::map<uint32_t, Db> dbs_;
  std::vector<Db> graveyard_;  // dropped databases whose connections jobs may still hold
  uint32_t next_db_ = 0;
  std::map<uint32_t, Stmt> stmts_;
  uint32_t next_stmt_ = 0;
  std::optional<Stream> stream_rows_;
  // A request that arrived while this node had just been elected and was
  // still applying earlier leaders' entries.
  // Or one that waits for this leader to confirm its leadership (the ticket
  // of the confirmation round; 0 if it waits for readiness).
  std::optional<Message> parked_;
  std::chrono::steady_clock::time_point parked_until_;
  uint64_t confirm_ticket_ = 0;
};

}  // namespace sqraft
