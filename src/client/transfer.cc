#include "transfer.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <vector>

namespace sqraft {

namespace {

using Row = std::vector<wire::Value>;

// ---- the source file ---------------------------------------------------------------

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtCloser {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtCloser>;

std::string quote_name(const std::string& name) {
  std::string out = "\"";
  for (char ch : name) {
    out += ch;
    if (ch == '"') out += '"';
  }
  return out + "\"";
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

Status sqlite_status(sqlite3* db, const std::string& what) {
  return Status::Error(sqlite3_errcode(db), what + ": " + sqlite3_errmsg(db));
}

Result<StmtPtr> prepare(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), int(sql.size()), &s, nullptr) != SQLITE_OK) {
    return sqlite_status(db, "source");
  }
  return StmtPtr(s);
}

wire::Value column_value(sqlite3_stmt* s, int i) {
  switch (sqlite3_column_type(s, i)) {
    case SQLITE_INTEGER:
      return wire::Value::Integer(sqlite3_column_int64(s, i));
    case SQLITE_FLOAT:
      return wire::Value::Float(sqlite3_column_double(s, i));
    case SQLITE_TEXT: {
      const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
      return wire::Value::Text(std::string(p, size_t(sqlite3_column_bytes(s, i))));
    }
    case SQLITE_BLOB: {
      const auto* p = static_cast<const char*>(sqlite3_column_blob(s, i));
      return wire::Value::Blob(p ? std::string(p, size_t(sqlite3_column_bytes(s, i))) : std::string());
    }
    default:
      return wire::Value::Null();
  }
}

// One table of the source whose rows are copied.
struct SourceTable {
  std::string name;
  std::string sql;                   // its CREATE statement
  std::vector<std::string> columns;  // copied columns (generated ones are not)
  std::string rowid;                 // the name the rowid is copied under; empty: not copied
  bool rebuild = false;              // external-content full-text index: rebuilt, not copied
  uint64_t rows = 0;
};

struct SourceSchema {
  std::vector<SourceTable> tables;
  std::vector<std::string> later;  // indexes, views, triggers, in schema order: after the rows
  bool has_sequence = false;
  bool has_stat = false;
  uint64_t rows = 0;
  uint64_t bytes = 0;  // page_count * page_size
};

Result<std::vector<std::string>> copied_columns(sqlite3* db, SourceTable& t, bool is_virtual, bool without_rowid) {
  Result<StmtPtr> s = prepare(db, "SELECT name, hidden FROM pragma_table_xinfo(?1)");
  if (!s.ok()) return s.status();
  sqlite3_bind_text(s.value().get(), 1, t.name.c_str(), -1, SQLITE_TRANSIENT);
  std::vector<std::string> all, copied;
  int rc;
  while ((rc = sqlite3_step(s.value().get())) == SQLITE_ROW) {
    const std::string name = reinterpret_cast<const char*>(sqlite3_column_text(s.value().get(), 0));
    all.push_back(lower(name));
    if (sqlite3_column_int(s.value().get(), 1) == 0) copied.push_back(name);
  }
  if (rc != SQLITE_DONE) return sqlite_status(db, "columns of " + t.name);
  // The rowid is kept for rowid tables and full-text tables (their docids);
  // an R*Tree's rowid is its id column, copied already.
  const std::string create = lower(t.sql);
  const bool keeps_rowid = !without_rowid && (!is_virtual || create.find("using fts") != std::string::npos ||
                                              create.find("using geopoly") != std::string::npos);
  if (keeps_rowid) {
    for (const char* alias : {"rowid", "_rowid_", "oid"}) {
      if (std::find(all.begin(), all.end(), alias) == all.end()) {
        t.rowid = alias;
        break;
      }
    }
  }
  return copied;
}

Status add_table(sqlite3* db, SourceSchema& schema, const std::string& name, const std::string& sql,
                 const std::string& list_type, bool without_rowid) {
  SourceTable t;
  t.name = name;
  t.sql = sql;
  const bool is_virtual = list_type == "virtual";
  if (is_virtual) {
    const std::string create = lower(sql);
    const size_t content = create.find("content=");
    if (content != std::string::npos) {
      const std::string value = create.substr(content + 8, 2);
      if (value == "''" || value == "\"\"") {
        return Status::Invalid("table " + name + ": a contentless full-text table has no rows to import");
      }
      t.rebuild = true;
    }
  }
  Result<std::vector<std::string>> cols = copied_columns(db, t, is_virtual, without_rowid);
  if (!cols.ok()) return cols.status();
  t.columns = std::move(cols.value());
  if (!t.rebuild) {
    Result<StmtPtr> count = prepare(db, "SELECT count(*) FROM main." + quote_name(name));
    if (!count.ok()) return count.status().with_context("table " + name);
    if (sqlite3_step(count.value().get()) != SQLITE_ROW) return sqlite_status(db, "counting rows of " + name);
    t.rows = uint64_t(sqlite3_column_int64(count.value().get(), 0));
    schema.rows += t.rows;
  }
  schema.tables.push_back(std::move(t));
  return Status::Ok();
}

// Reads what the source holds. Called inside the source's read transaction.
Result<SourceSchema> read_schema(sqlite3* db) {
  SourceSchema schema;
  Result<StmtPtr> s = prepare(db,
                              "SELECT s.type, s.name, s.sql, coalesce(l.type, ''), coalesce(l.wr, 0) "
                              "FROM sqlite_schema s LEFT JOIN pragma_table_list l "
                              "ON l.schema = 'main' AND l.name = s.name ORDER BY s.rowid");
  if (!s.ok()) return s.status();
  sqlite3_stmt* st = s.value().get();
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const std::string type = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    const std::string name = reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
    const char* sql = reinterpret_cast<const char*>(sqlite3_column_text(st, 2));
    const std::string list_type = reinterpret_cast<const char*>(sqlite3_column_text(st, 3));
    if (type == "table" && name == "sqlite_sequence") {
      schema.has_sequence = true;
    } else if (type == "table" && name.rfind("sqlite_stat", 0) == 0) {
      schema.has_stat = true;  // statistics: rebuilt with ANALYZE
    } else if (sql == nullptr || name.rfind("sqlite_", 0) == 0 || list_type == "shadow") {
      continue;  // automatic indexes, SQLite's own tables, a virtual table's storage
    } else if (type == "table") {
      if (Status a = add_table(db, schema, name, sql, list_type, sqlite3_column_int(st, 4) != 0); !a.ok()) return a;
    } else {
      schema.later.emplace_back(sql);
    }
  }
  if (rc != SQLITE_DONE) return sqlite_status(db, "reading the schema");
  Result<StmtPtr> size = prepare(db, "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size");
  if (!size.ok()) return size.status();
  if (sqlite3_step(size.value().get()) == SQLITE_ROW) schema.bytes = uint64_t(sqlite3_column_int64(size.value().get(), 0));
  return schema;
}

Result<DbPtr> open_source(const std::string& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) return Status::NotFound(file + ": no such file");
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(file.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) return Status::Error(rc, file + ": " + (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  // The whole copy reads one snapshot of the source, even if it is being written.
  if (sqlite3_exec(db.get(), "BEGIN; SELECT count(*) FROM sqlite_schema", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return sqlite_status(db.get(), file);
  }
  return db;
}

// ---- the cluster ---------------------------------------------------------------------

Result<std::vector<Row>> query_all(Client& c, uint32_t db, const std::string& sql, const Row& params = {}) {
  Result<std::unique_ptr<Rows>> rows = c.query(db, sql, params);
  if (!rows.ok()) return rows.status();
  std::vector<Row> out;
  Row row;
  while (rows.value()->next(&row)) out.push_back(row);
  if (!rows.value()->status().ok()) return rows.value()->status();
  return out;
}

Status exec(Client& c, uint32_t db, const std::string& sql, const Row& params = {}) {
  Result<Client::Outcome> r = c.exec(db, sql, params);
  return r.ok() ? Status::Ok() : r.status();
}

// Empties `db` inside the open transaction: triggers and views, then tables
// (their indexes and a virtual table's storage go with them).
Status drop_everything(Client& c, uint32_t db) {
  Result<std::vector<Row>> objects = query_all(
      c, db,
      "SELECT s.type, s.name FROM sqlite_schema s LEFT JOIN pragma_table_list l "
      "ON l.schema = 'main' AND l.name = s.name "
      "WHERE s.type IN ('trigger', 'view', 'table') AND s.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
      "AND coalesce(l.type, '') <> 'shadow' ORDER BY s.type = 'table'");
  if (!objects.ok()) return objects.status().with_context("listing what to replace");
  for (const Row& o : objects.value()) {
    const std::string sql = "DROP " + lower(o[0].bytes) + " IF EXISTS main." + quote_name(o[1].bytes);
    if (Status s = exec(c, db, sql); !s.ok()) return s.with_context("replacing " + o[1].bytes);
  }
  Result<std::vector<Row>> internal =
      query_all(c, db, "SELECT name FROM sqlite_schema WHERE name IN ('sqlite_sequence', 'sqlite_stat1', 'sqlite_stat4')");
  if (!internal.ok()) return internal.status();
  for (const Row& t : internal.value()) {
    if (Status s = exec(c, db, "DELETE FROM main." + quote_name(t[0].bytes)); !s.ok()) return s;
  }
  return Status::Ok();
}

// Sends one table's rows in INSERTs of up to `batch_bytes` (or the most
// parameters a statement takes), one prepared statement per batch size.
class TableCopier {
 public:
  TableCopier(Client& c, uint32_t db, const SourceTable& t, size_t batch_bytes)
      : c_(c), db_(db), t_(t), batch_bytes_(batch_bytes) {
    width_ = t.columns.size() + (t.rowid.empty() ? 0 : 1);
    max_rows_ = std::max<size_t>(1, std::min<size_t>(500, 30000 / std::max<size_t>(1, width_)));
  }
  ~TableCopier() {
    for (auto& [n, p] : prepared_) (void)c_.finalize(p);  // best effort: the connection may be gone
  }

  // Adds one row; sends a batch when it is full.
  Status add(Row&& row, size_t bytes) {
    for (wire::Value& v : row) params_.push_back(std::move(v));
    rows_++;
    bytes_ += bytes;
    return bytes_ >= batch_bytes_ || rows_ == max_rows_ ? flush() : Status::Ok();
  }

  Status flush() {
    if (rows_ == 0) return Status::Ok();
    auto it = prepared_.find(rows_);
    if (it == prepared_.end()) {
      Result<Client::Prepared> p = c_.prepare(db_, insert_sql(rows_));
      if (!p.ok()) return p.status();
      it = prepared_.emplace(rows_, p.value()).first;
    }
    Result<Client::Outcome> r = c_.exec_prepared(it->second, params_);
    if (!r.ok()) return r.status();
    params_.clear();
    rows_ = 0;
    bytes_ = 0;
    return Status::Ok();
  }

 private:
  std::string insert_sql(size_t rows) const {
    std::string sql = "INSERT INTO main." + quote_name(t_.name) + "(";
    std::string one = "(";
    bool first = true;
    auto column = [&](const std::string& name) {
      sql += (first ? "" : ",") + quote_name(name);
      one += first ? "?" : ",?";
      first = false;
    };
    if (!t_.rowid.empty()) column(t_.rowid);
    for (const std::string& col : t_.columns) column(col);
    sql += ") VALUES ";
    one += ")";
    for (size_t i = 0; i < rows; i++) sql += (i ? "," : "") + one;
    return sql;
  }

  Client& c_;
  const uint32_t db_;
  const SourceTable& t_;
  const size_t batch_bytes_;
  size_t width_ = 0;
  size_t max_rows_ = 1;
  std::map<size_t, Client::Prepared> prepared_;
  Row params_;
  size_t rows_ = 0;
  size_t bytes_ = 0;
};

class Importer {
 public:
  Importer(Client& c, uint32_t db, sqlite3* src, const SourceSchema& schema, const ImportOptions& o)
      : c_(c), db_(db), src_(src), schema_(schema), o_(o) {}

  Result<ImportReport> run() {
    if (Status s = prepare_target(); !s.ok()) return s;
    for (const SourceTable& t : schema_.tables) {
      if (Status s = exec(c_, db_, t.sql); !s.ok()) return s.with_context("creating table " + t.name);
    }
    for (const SourceTable& t : schema_.tables) {
      if (Status s = copy_rows(t); !s.ok()) return s.with_context("table " + t.name);
    }
    for (const std::string& sql : schema_.later) {
      if (Status s = exec(c_, db_, sql); !s.ok()) return s.with_context(sql.substr(0, 60));
      report_.objects++;
    }
    if (Status s = copy_sequence(); !s.ok()) return s.with_context("sqlite_sequence");
    if (schema_.has_stat) {
      if (Status s = exec(c_, db_, "ANALYZE"); !s.ok()) return s.with_context("ANALYZE");
    }
    if (Status s = verify_counts(); !s.ok()) return s;
    if (Status s = exec(c_, db_, "COMMIT"); !s.ok()) return s.with_context("COMMIT");
    if (o_.progress) o_.progress(schema_.bytes, schema_.bytes);
    return report_;
  }

 private:
  Status prepare_target() {
    if (Status s = exec(c_, db_, "PRAGMA defer_foreign_keys = ON"); !s.ok()) return s;
    Result<std::vector<Row>> n = query_all(c_, db_, "SELECT count(*) FROM sqlite_schema");
    if (!n.ok()) return n.status();
    if (n.value().at(0).at(0).integer == 0) return Status::Ok();
    if (!o_.replace) {
      return Status::Error(SQLITE_ERROR, "database already has tables (use --replace to replace it)");
    }
    return drop_everything(c_, db_);
  }

  Status copy_rows(const SourceTable& t) {
    if (t.rebuild) {
      const std::string q = quote_name(t.name);
      return exec(c_, db_, "INSERT INTO main." + q + "(" + q + ") VALUES ('rebuild')");
    }
    std::string sql = "SELECT ";
    bool first = true;
    if (!t.rowid.empty()) sql += t.rowid, first = false;
    for (const std::string& col : t.columns) sql += (first ? "" : ", ") + quote_name(col), first = false;
    Result<StmtPtr> s = prepare(src_, sql + " FROM main." + quote_name(t.name));
    if (!s.ok()) return s.status();
    sqlite3_stmt* st = s.value().get();
    TableCopier copier(c_, db_, t, o_.batch_bytes);
    const int width = sqlite3_column_count(st);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      Row row;
      row.reserve(size_t(width));
      size_t bytes = 8;
      for (int i = 0; i < width; i++) {
        row.push_back(column_value(st, i));
        bytes += 8 + row.back().bytes.size();
      }
      if (Status a = copier.add(std::move(row), bytes); !a.ok()) return a;
      report_.rows++;
      if (o_.progress && schema_.rows > 0 && report_.rows % 256 == 0) {
        o_.progress(uint64_t(double(schema_.bytes) * double(report_.rows) / double(schema_.rows)), schema_.bytes);
      }
    }
    if (rc != SQLITE_DONE) return sqlite_status(src_, "reading " + t.name);
    report_.tables++;
    return copier.flush();
  }

  Status copy_sequence() {
    if (!schema_.has_sequence) return Status::Ok();
    Result<StmtPtr> s = prepare(src_, "SELECT name, seq FROM sqlite_sequence");
    if (!s.ok()) return s.status();
    if (Status d = exec(c_, db_, "DELETE FROM sqlite_sequence"); !d.ok()) return d;
    while (sqlite3_step(s.value().get()) == SQLITE_ROW) {
      Row row = {column_value(s.value().get(), 0), column_value(s.value().get(), 1)};
      if (Status i = exec(c_, db_, "INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)", row); !i.ok()) return i;
    }
    return Status::Ok();
  }

  // The last check before COMMIT: every table has as many rows as the source's.
  Status verify_counts() {
    for (const SourceTable& t : schema_.tables) {
      if (t.rebuild) continue;
      Result<std::vector<Row>> n = query_all(c_, db_, "SELECT count(*) FROM main." + quote_name(t.name));
      if (!n.ok()) return n.status().with_context("counting " + t.name);
      const int64_t got = n.value().at(0).at(0).integer;
      if (uint64_t(got) != t.rows) {
        return Status::Internal("table " + t.name + " has " + std::to_string(got) + " rows after the copy, the source " +
                                std::to_string(t.rows));
      }
    }
    return Status::Ok();
  }

  Client& c_;
  const uint32_t db_;
  sqlite3* src_;
  const SourceSchema& schema_;
  const ImportOptions& o_;
  ImportReport report_;
};

// ---- backup ----------------------------------------------------------------------------

Status write_file(const std::string& path, const std::string& data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IoError(path + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const Status s = Status::IoError(path + ": " + std::strerror(errno));
      ::close(fd);
      return s;
    }
    done += size_t(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  return synced ? Status::Ok() : Status::IoError(path + ": fsync: " + std::strerror(errno));
}

// Opens the dumped pair with SQLite, which folds the WAL in when it leaves
// WAL mode, and checks the result.
Result<uint64_t> fold_wal(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) return Status::Error(rc, path + ": " + (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  std::string check;
  auto first_column = [](void* out, int, char** values, char**) {
    *static_cast<std::string*>(out) = values[0] ? values[0] : "";
    return 0;
  };
  if (sqlite3_exec(db.get(), "PRAGMA journal_mode = DELETE", nullptr, nullptr, nullptr) != SQLITE_OK ||
      sqlite3_exec(db.get(), "PRAGMA quick_check", first_column, &check, nullptr) != SQLITE_OK) {
    return sqlite_status(db.get(), path);
  }
  if (check != "ok") return Status::Corruption(path + ": quick_check: " + check);
  std::string pages;
  if (sqlite3_exec(db.get(), "PRAGMA page_count", first_column, &pages, nullptr) != SQLITE_OK) {
    return sqlite_status(db.get(), path);
  }
  return uint64_t(std::stoull(pages.empty() ? "0" : pages));
}

}  // namespace

Result<ImportReport> import_database(Client& client, const std::string& db, const std::string& file,
                                     const ImportOptions& options) {
  Result<DbPtr> src = open_source(file);
  if (!src.ok()) return src.status();
  Result<SourceSchema> schema = read_schema(src.value().get());
  if (!schema.ok()) return schema.status().with_context(file);
  Result<uint32_t> id = client.open(db);
  if (!id.ok()) return id.status().with_context("open " + db);
  if (Status s = exec(client, id.value(), "BEGIN"); !s.ok()) return s.with_context("BEGIN");
  Importer importer(client, id.value(), src.value().get(), schema.value(), options);
  Result<ImportReport> report = importer.run();
  if (!report.ok()) {
    (void)exec(client, id.value(), "ROLLBACK");  // best effort: a lost connection rolls back on its own
    return report.status().with_context("import " + file + " as " + db);
  }
  return report;
}

Result<BackupReport> backup_database(Client& client, const std::string& db, const std::string& file,
                                     const TransferProgress& progress) {
  client.set_receive_progress(progress);
  Result<std::vector<File>> files = client.dump(db);
  client.set_receive_progress({});
  if (!files.ok()) return files.status().with_context("backup " + db);
  uint64_t received = 0;
  for (const File& f : files.value()) received += f.data.size();
  if (progress) progress(received, received);  // small copies arrive in one piece, without calls on the way
  const File* main = nullptr;
  const File* wal = nullptr;
  for (const File& f : files.value()) {
    if (f.name == db) main = &f;
    if (f.name == db + "-wal") wal = &f;
  }
  if (!main) return Status::Error(int(wire::kErrProto), "backup " + db + ": the node sent no database file");
  const std::string tmp = file + ".sqraft-tmp";
  std::error_code ec;
  std::filesystem::remove(tmp + "-journal", ec);
  if (Status s = write_file(tmp, main->data); !s.ok()) return s;
  if (wal) {
    if (Status s = write_file(tmp + "-wal", wal->data); !s.ok()) return s;
  }
  Result<uint64_t> pages = fold_wal(tmp);
  std::filesystem::remove(tmp + "-wal", ec);
  std::filesystem::remove(tmp + "-shm", ec);
  if (!pages.ok()) {
    std::filesystem::remove(tmp, ec);
    return pages.status().with_context("backup " + db);
  }
  std::filesystem::rename(tmp, file, ec);
  if (ec) return Status::IoError("backup " + db + ": rename to " + file + ": " + ec.message());
  BackupReport report;
  report.pages = pages.value();
  report.bytes = std::filesystem::file_size(file, ec);
  return report;
}

}  // namespace sqraft
