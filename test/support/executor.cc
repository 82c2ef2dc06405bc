#include "executor.h"

#include <spdlog/spdlog.h>

#include "vfs.h"

namespace sqraft {

namespace {
constexpr int kBusyTimeoutMs = 10000;
}

struct Executor::Worker {
  std::string db;
  Vfs* vfs = nullptr;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> jobs;
  bool stopping = false;
  sqlite3* conn = nullptr;
  std::thread thread;

  void run();
  Result<ExecResult> execute(const Job& job);
  Status run_sql(const std::string& sql, ExecResult* out);
};

Status Executor::error_of(sqlite3* conn, int rc) {
  int code = conn ? sqlite3_extended_errcode(conn) : rc;
  if (code == SQLITE_OK) code = rc;
  if (code == kErrNotLeader || rc == kErrNotLeader) return Status::NotLeader();
  if (code == kErrLeadershipLost || rc == kErrLeadershipLost) return Status::LeadershipLost();
  return Status::Error(code, conn ? sqlite3_errmsg(conn) : sqlite3_errstr(rc));
}

Status Executor::Worker::run_sql(const std::string& sql, ExecResult* out) {
  const char* tail = sql.c_str();
  const char* end = tail + sql.size();
  while (tail < end) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(conn, tail, int(end - tail), &stmt, &tail);
    if (rc != SQLITE_OK) return error_of(conn, rc);
    if (stmt == nullptr) continue;  // whitespace or a comment
    std::vector<std::vector<std::string>> rows;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(stmt); i++) {
        const unsigned char* text = sqlite3_column_text(stmt, i);
        row.emplace_back(text ? reinterpret_cast<const char*>(text) : "NULL");
      }
      rows.push_back(std::move(row));
    }
    const bool had_columns = sqlite3_column_count(stmt) > 0;
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE) return error_of(conn, rc);
    out->rows_affected = sqlite3_changes64(conn);
    out->last_insert_id = sqlite3_last_insert_rowid(conn);
    if (had_columns) out->rows = std::move(rows);
  }
  return Status::Ok();
}

Result<ExecResult> Executor::Worker::execute(const Job& job) {
  if (conn == nullptr) {
    Result<sqlite3*> opened = vfs->open(db);
    if (!opened.ok()) return opened.status();
    conn = opened.value();
    // The loop thread briefly takes the write lock to checkpoint; wait for it.
    sqlite3_busy_timeout(conn, kBusyTimeoutMs);
  }
  ExecResult result;
  Status s;
  // IMMEDIATE: take the write lock up front, through the busy handler, rather
  // than fail on the upgrade from a read if someone holds it at that moment.
  if (job.mode != Mode::kAutocommit) s = run_sql("BEGIN IMMEDIATE", &result);
  for (size_t i = 0; s.ok() && i < job.stmts.size(); i++) s = run_sql(job.stmts[i], &result);
  if (s.ok() && job.mode == Mode::kTransaction) s = run_sql("COMMIT", &result);
  if (s.ok() && job.mode == Mode::kRolledBack) s = run_sql("ROLLBACK", &result);
  if (!sqlite3_get_autocommit(conn)) {
    // A failed statement or commit left a transaction open: end it.
    sqlite3_exec(conn, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  if (!s.ok()) return s;
  return result;
}

void Executor::Worker::run() {
  for (;;) {
    Job job;
    {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return stopping || !jobs.empty(); });
      if (jobs.empty()) break;
      job = std::move(jobs.front());
      jobs.pop_front();
    }
    Result<ExecResult> r = execute(job);
    if (job.cb) job.cb(std::move(r));
  }
  if (conn) sqlite3_close_v2(conn);
  conn = nullptr;
}

Executor::Executor(Vfs& vfs) : vfs_(vfs) {}

Executor::~Executor() { stop(); }

void Executor::submit(const std::string& db, std::vector<std::string> stmts, Mode mode, Callback cb) {
  std::lock_guard lk(mu_);
  if (stopped_) {
    if (cb) cb(Status::LeadershipLost("executor stopped"));
    return;
  }
  auto& w = workers_[db];
  if (!w) {
    w = std::make_unique<Worker>();
    w->db = db;
    w->vfs = &vfs_;
    w->thread = std::thread([worker = w.get()] { worker->run(); });
  }
  {
    std::lock_guard wl(w->mu);
    w->jobs.push_back(Job{std::move(stmts), mode, std::move(cb)});
  }
  w->cv.notify_one();
}

void Executor::stop() {
  std::map<std::string, std::unique_ptr<Worker>> workers;
  {
    std::lock_guard lk(mu_);
    stopped_ = true;
    workers.swap(workers_);
  }
  for (auto& [db, w] : workers) {
    {
      std::lock_guard wl(w->mu);
      w->stopping = true;
    }
    w->cv.notify_one();
  }
  for (auto& [db, w] : workers) w->thread.join();
}

}  // namespace sqraft
