// SqlGen: random and adversarial SQL for the hostile-SQL run.
//
// Grammar-driven statements over the schema a client last saw (tables and
// their columns), mixed with constructs known to hurt SQL servers:
// unbounded recursive CTEs, huge printf/zeroblob/replace calls, deep
// nesting, every pragma with odd arguments, schema changes under cached and
// EXPLAIN statements, transactions left open, NULs and invalid UTF-8 in text
// and parameters, plain garbage. Deterministic for a seed.
//
// Thread-safety: one SqlGen per client thread.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "wire.h"

namespace sqraft::test {

struct GenTable {
  std::string name;
  std::vector<std::string> columns;
};

struct GenStatement {
  std::string sql;
  std::vector<wire::Value> params;
  bool query = false;     // send as QUERY_SQL (else EXEC_SQL)
  bool prepared = false;  // PREPARE, then EXEC/QUERY the statement id
};

class SqlGen {
 public:
  explicit SqlGen(uint64_t seed) : rng_(seed) {}

  // The schema the client saw last (from refresh_sql()'s rows).
  void set_schema(std::vector<GenTable> tables) { tables_ = std::move(tables); }
  // A query that lists tables and columns: rows of (table, column).
  static const char* refresh_sql();

  GenStatement next();

 private:
  // Pieces.
  uint64_t pick(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  bool chance(unsigned percent) { return pick(100) < percent; }
  const GenTable* table();
  std::string table_name();
  std::string column(const GenTable* t);
  std::string literal();
  std::string text_bytes();  // with NULs and invalid UTF-8 at times
  wire::Value param();
  std::string expr(int depth);
  std::string where(const GenTable* t);

  // Statements.
  std::string create_table();
  std::string create_other();
  std::string drop();
  std::string alter();
  std::string insert();
  std::string update();
  std::string remove();
  std::string select();
  std::string expensive();
  std::string pragma();
  std::string transaction();
  std::string garbage();

  std::mt19937_64 rng_;
  std::vector<GenTable> tables_;
  unsigned created_ = 0;
};

}  // namespace sqraft::test
