#include "hostile/sql_gen.h"

#include <cstdio>

namespace sqraft::test {

namespace {

const char* const kFunctions[] = {
    "abs", "length", "upper", "lower", "hex", "quote", "typeof", "trim", "substr", "replace", "instr",
    "printf", "coalesce", "ifnull", "nullif", "round", "zeroblob", "randomblob", "unicode", "char",
    "json", "json_array", "json_extract", "date", "datetime", "strftime", "min", "max", "sum",
    "total", "count", "group_concat", "avg", "likelihood", "unlikely", "soundex", "sqlite_version",
    "load_extension", "sqlite_compileoption_get", "glob", "like", "format", "iif",
};

const char* const kPragmas[] = {
    "hard_heap_limit", "soft_heap_limit", "writable_schema", "schema_version", "user_version",
    "application_id", "journal_mode", "synchronous", "cache_size", "page_size", "max_page_count",
    "locking_mode", "foreign_keys", "recursive_triggers", "query_only", "busy_timeout", "mmap_size",
    "temp_store", "wal_checkpoint", "wal_autocheckpoint", "integrity_check", "quick_check",
    "table_info", "index_list", "database_list", "compile_options", "auto_vacuum", "incremental_vacuum",
    "optimize", "shrink_memory", "secure_delete", "cell_size_check", "ignore_check_constraints",
    "case_sensitive_like", "legacy_alter_table", "trusted_schema", "threads", "encoding",
    "data_store_directory", "temp_store_directory", "count_changes", "vdbe_trace", "freelist_count",
    "function_list", "reverse_unordered_selects", "analysis_limit", "defer_foreign_keys",
};

const char* const kTypes[] = {"INTEGER", "TEXT", "BLOB", "REAL", "NUMERIC", "", "DATETIME", "BOOLEAN", "ANY"};

}  // namespace

const char* SqlGen::refresh_sql() {
  return "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p "
         "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid";
}

const GenTable* SqlGen::table() {
  if (tables_.empty()) return nullptr;
  return &tables_[pick(tables_.size())];
}

std::string SqlGen::table_name() {
  const GenTable* t = table();
  if (t == nullptr || chance(5)) return "t" + std::to_string(pick(8));
  return t->name;
}

std::string SqlGen::column(const GenTable* t) {
  if (t == nullptr || t->columns.empty() || chance(3)) return chance(50) ? "rowid" : "nosuch";
  return t->columns[pick(t->columns.size())];
}

std::string SqlGen::text_bytes() {
  std::string s;
  const size_t n = pick(24);
  for (size_t i = 0; i < n; i++) {
    const uint64_t k = pick(40);
    if (k == 0) {
      s.push_back('\0');
    } else if (k == 1) {
      s.push_back(char(0xff));  // invalid UTF-8
    } else if (k == 2) {
      s += "\xc3\xa9";  // é
    } else if (k == 3) {
      s.push_back(char(0xc3));  // truncated sequence
    } else {
      s.push_back(char('a' + pick(26)));
    }
  }
  return s;
}

std::string SqlGen::literal() {
  switch (pick(10)) {
    case 0: return "NULL";
    case 1: return std::to_string(int64_t(rng_()));
    case 2: return std::to_string(pick(1000));
    case 3: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.6g", double(int64_t(rng_() % 2000000) - 1000000) / 7.0);
      return buf;
    }
    case 4: return "x'" + std::string(pick(8) * 2, 'a') + "'";
    case 5: return "char(0)";
    case 6: return "'a'||char(0)||'b'";
    case 7: return "9223372036854775807";
    case 8: return "-9223372036854775808";
    default: {
      std::string s = "'";
      for (char c : text_bytes()) {
        if (c == '\'') s += "''";
        else if (c == '\0') s += ".";  // no NUL inside SQL text
        else s.push_back(c);
      }
      return s + "'";
    }
  }
}

wire::Value SqlGen::param() {
  switch (pick(6)) {
    case 0: return wire::Value::Null();
    case 1: return wire::Value::Integer(int64_t(rng_()));
    case 2: return wire::Value::Float(double(pick(100000)) / 3.0);
    case 3: return wire::Value::Blob(text_bytes());
    default: return wire::Value::Text(text_bytes());
  }
}

std::string SqlGen::expr(int depth) {
  if (depth <= 0 || chance(30)) {
    if (chance(40)) return column(table());
    return literal();
  }
  switch (pick(9)) {
    case 0: {
      static const char* const ops[] = {"+", "-", "*", "/", "%", "||", "=", "<>", "<", ">=", "AND", "OR", "&", "|", "<<", ">>", "IS", "IS NOT"};
      return "(" + expr(depth - 1) + " " + ops[pick(sizeof ops / sizeof *ops)] + " " + expr(depth - 1) + ")";
    }
    case 1: {
      const char* f = kFunctions[pick(sizeof kFunctions / sizeof *kFunctions)];
      std::string args = expr(depth - 1);
      for (uint64_t i = pick(3); i > 0; i--) args += ", " + expr(depth - 1);
      return std::string(f) + "(" + args + ")";
    }
    case 2: return "CASE WHEN " + expr(depth - 1) + " THEN " + expr(depth - 1) + " ELSE " + expr(depth - 1) + " END";
    case 3: return "CAST(" + expr(depth - 1) + " AS " + kTypes[pick(sizeof kTypes / sizeof *kTypes)] + ")";
    case 4: return expr(depth - 1) + " LIKE " + expr(depth - 1);
    case 5: return expr(depth - 1) + " BETWEEN " + expr(depth - 1) + " AND " + expr(depth - 1);
    case 6: return expr(depth - 1) + " IN (" + literal() + ", " + literal() + ")";
    case 7: return "(SELECT " + expr(depth - 1) + " FROM " + table_name() + " LIMIT 1)";
    default: return "NOT " + expr(depth - 1);
  }
}

std::string SqlGen::where(const GenTable* t) {
  if (chance(20)) return "";
  if (chance(30) && t != nullptr) return " WHERE " + column(t) + " = " + literal();
  return " WHERE " + expr(2);
}

std::string SqlGen::create_table() {
  std::string name = "t" + std::to_string(created_++ % 8);
  std::string sql = std::string("CREATE TABLE ") + (chance(70) ? "IF NOT EXISTS " : "") + name + "(";
  const uint64_t n = 1 + pick(5);
  for (uint64_t i = 0; i < n; i++) {
    if (i) sql += ", ";
    sql += "c" + std::to_string(i) + " " + kTypes[pick(sizeof kTypes / sizeof *kTypes)];
    if (i == 0 && chance(30)) sql += " PRIMARY KEY";
    if (chance(10)) sql += " UNIQUE";
    if (chance(10)) sql += " NOT NULL DEFAULT 0";
    if (chance(5)) sql += " CHECK (" + std::string("c") + std::to_string(i) + " IS NOT 13)";
  }
  sql += ")";
  if (chance(10)) sql += " WITHOUT ROWID";
  if (chance(10)) sql += " STRICT";
  return sql;
}

std::string SqlGen::create_other() {
  const GenTable* t = table();
  const std::string tn = t ? t->name : "t0";
  switch (pick(5)) {
    case 0: return "CREATE INDEX IF NOT EXISTS i" + std::to_string(pick(8)) + " ON " + tn + "(" + column(t) + ")";
    case 1:
      return "CREATE VIEW IF NOT EXISTS v" + std::to_string(pick(4)) + " AS SELECT " + expr(2) + " AS e FROM " + tn;
    case 2:
      return "CREATE TRIGGER IF NOT EXISTS tr" + std::to_string(pick(4)) + " AFTER INSERT ON " + tn +
             " BEGIN UPDATE " + tn + " SET " + column(t) + " = " + expr(2) + " WHERE rowid = new.rowid; END";
    case 3: return "CREATE TEMP TABLE IF NOT EXISTS tmp" + std::to_string(pick(3)) + "(a, b)";
    default: return "CREATE VIRTUAL TABLE IF NOT EXISTS f" + std::to_string(pick(3)) + " USING fts5(body)";
  }
}

std::string SqlGen::drop() {
  switch (pick(4)) {
    case 0: return "DROP INDEX IF EXISTS i" + std::to_string(pick(8));
    case 1: return "DROP VIEW IF EXISTS v" + std::to_string(pick(4));
    case 2: return "DROP TRIGGER IF EXISTS tr" + std::to_string(pick(4));
    default: return "DROP TABLE IF EXISTS " + table_name();
  }
}

std::string SqlGen::alter() {
  const GenTable* t = table();
  const std::string tn = t ? t->name : "t0";
  switch (pick(3)) {
    case 0: return "ALTER TABLE " + tn + " ADD COLUMN x" + std::to_string(pick(100)) + " " + kTypes[pick(5)];
    case 1: return "ALTER TABLE " + tn + " RENAME TO t" + std::to_string(pick(8));
    default: return "ALTER TABLE " + tn + " RENAME COLUMN " + column(t) + " TO y" + std::to_string(pick(100));
  }
}

std::string SqlGen::insert() {
  const GenTable* t = table();
  const std::string tn = t ? t->name : "t0";
  const size_t ncols = t ? t->columns.size() : 1;
  std::string sql = chance(10) ? "REPLACE INTO " + tn : "INSERT INTO " + tn;
  if (chance(20)) {
    return sql + " SELECT * FROM " + tn + " LIMIT " + std::to_string(pick(50));
  }
  if (chance(10)) {
    std::string vals;
    for (size_t i = 0; i < ncols; i++) vals += (i ? ", x" : "x");
    return sql + " WITH RECURSIVE s(x) AS (VALUES(1) UNION ALL SELECT x+1 FROM s WHERE x < " +
           std::to_string(pick(2000)) + ") SELECT " + vals + " FROM s";
  }
  sql += " VALUES";
  const uint64_t rows = 1 + pick(4);
  for (uint64_t r = 0; r < rows; r++) {
    sql += r ? ", (" : " (";
    for (size_t i = 0; i < ncols; i++) sql += (i ? ", " : "") + (chance(30) ? std::string("?") : literal());
    sql += ")";
  }
  if (chance(10)) sql += " ON CONFLICT DO NOTHING";
  if (chance(10)) sql += " RETURNING *";
  return sql;
}

std::string SqlGen::update() {
  const GenTable* t = table();
  return "UPDATE " + (t ? t->name : std::string("t0")) + " SET " + column(t) + " = " + expr(2) + where(t);
}

std::string SqlGen::remove() {
  const GenTable* t = table();
  return "DELETE FROM " + (t ? t->name : std::string("t0")) + where(t);
}

std::string SqlGen::select() {
  const GenTable* t = table();
  const std::string tn = t ? t->name : "sqlite_master";
  std::string sql = "SELECT " + expr(3);
  for (uint64_t i = pick(3); i > 0; i--) sql += ", " + expr(2);
  sql += " FROM " + tn;
  if (chance(15)) sql += " JOIN " + table_name() + " ON " + expr(1);
  sql += where(t);
  if (chance(20)) sql += " GROUP BY 1";
  if (chance(30)) sql += " ORDER BY 1" + std::string(chance(50) ? " DESC" : "");
  if (chance(40)) sql += " LIMIT " + std::to_string(pick(100));
  if (chance(5)) sql = "EXPLAIN " + sql;
  return sql;
}

std::string SqlGen::expensive() {
  switch (pick(14)) {
    case 0: return "WITH RECURSIVE c(x) AS (VALUES(1) UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c";
    case 1: return "SELECT length(printf('%.*c', " + std::to_string(1 + pick(900000000)) + ", 'x'))";
    case 2: return "SELECT length(zeroblob(" + std::to_string(pick(2000000000)) + "))";
    case 3: return "SELECT length(replace(printf('%.*c', 2000000, 'x'), 'x', 'yyyyyyyy'))";
    case 4: {
      const int depth = int(200 + pick(3000));
      return "SELECT " + std::string(size_t(depth), '(') + "1" + std::string(size_t(depth), ')');
    }
    case 5: {
      std::string in = "SELECT 1 IN (";
      for (int i = 0; i < 20000; i++) in += (i ? "," : "") + std::to_string(i);
      return in + ")";
    }
    case 6: {
      std::string u = "SELECT 1";
      for (int i = 0; i < 600; i++) u += " UNION SELECT " + std::to_string(i);
      return u;
    }
    case 7: {
      const std::string tn = table_name();
      return "SELECT count(*) FROM " + tn + " a, " + tn + " b, " + tn + " c, " + tn + " d";
    }
    case 8: return "SELECT randomblob(" + std::to_string(pick(100000000)) + ")";
    case 9: return "SELECT group_concat(printf('%.*c', 100000, 'x')) FROM (WITH RECURSIVE c(x) AS (VALUES(1) UNION ALL SELECT x+1 FROM c WHERE x < 1000) SELECT x FROM c)";
    case 10: return "SELECT 'abcdefgh'||char(0)||'ijklmnop', 2, 'after'";
    case 11: {
      // Schema change under a cached EXPLAIN: the statement that crashed nodes.
      return "EXPLAIN INSERT INTO " + table_name() + " VALUES(1)";
    }
    case 12: return "SELECT like('" + std::string(800, '%') + "a', '" + std::string(5000, 'b') + "')";
    default: return "VACUUM";
  }
}

std::string SqlGen::pragma() {
  const char* p = kPragmas[pick(sizeof kPragmas / sizeof *kPragmas)];
  switch (pick(4)) {
    case 0: return std::string("PRAGMA ") + p;
    case 1: return std::string("PRAGMA ") + p + " = " + std::to_string(int64_t(pick(5000)) - 10);
    case 2: return std::string("PRAGMA ") + p + "(" + (chance(50) ? "'" + table_name() + "'" : "ON") + ")";
    default: return std::string("SELECT * FROM pragma_") + p;
  }
}

std::string SqlGen::transaction() {
  static const char* const txn[] = {"BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK", "SAVEPOINT sp",
                                    "RELEASE sp", "ROLLBACK TO sp", "END"};
  return txn[pick(sizeof txn / sizeof *txn)];
}

std::string SqlGen::garbage() {
  switch (pick(5)) {
    case 0: {
      std::string s;
      for (uint64_t i = pick(64); i > 0; i--) s.push_back(char(1 + pick(126)));
      return s;
    }
    case 1: return "SELECT * FROM";
    case 2: return "INSERT INTO " + table_name() + " VALUES(" + std::string(pick(10), '(');
    case 3: return "SELECT '\xff\xfe' || x'00'";
    default: return "ATTACH DATABASE 'x.db' AS x";
  }
}

GenStatement SqlGen::next() {
  GenStatement st;
  const uint64_t k = pick(100);
  if (k < 6 || tables_.empty()) {
    st.sql = create_table();
  } else if (k < 10) {
    st.sql = create_other();
  } else if (k < 13) {
    st.sql = drop();
  } else if (k < 15) {
    st.sql = alter();
  } else if (k < 35) {
    st.sql = insert();
  } else if (k < 42) {
    st.sql = update();
  } else if (k < 46) {
    st.sql = remove();
  } else if (k < 70) {
    st.sql = select();
    st.query = true;
  } else if (k < 78) {
    st.sql = expensive();
    st.query = chance(70);
  } else if (k < 86) {
    st.sql = pragma();
    st.query = chance(50);
  } else if (k < 93) {
    st.sql = transaction();
  } else {
    st.sql = garbage();
    st.query = chance(50);
  }
  if (chance(20)) st.prepared = true;
  if (chance(3)) st.sql += "; " + select();  // a script
  // One parameter per '?' (the generator writes no '?' inside literals),
  // now and then one too many.
  size_t marks = 0;
  for (char ch : st.sql) marks += ch == '?';
  for (size_t i = 0; i < marks + (chance(3) ? 1 : 0); i++) st.params.push_back(param());
  return st;
}

}  // namespace sqraft::test
