// RowEncoder: what a query's rows become, batch by batch. RowCursor steps
// the statement; the encoder turns each row into its caller's format (the
// gateway's is dqlite's ROWS message: src/gateway/rows_encoder.h), reading
// the columns straight from the statement, so no value is copied twice.
//
// Thread-safety: one encoder per cursor, used by the thread stepping it.
#pragma once

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace sqraft {

class RowEncoder {
 public:
  virtual ~RowEncoder() = default;
  // Starts a batch.
  virtual void begin() = 0;
  // Appends the row `stmt` is on (sqlite3_step returned SQLITE_ROW).
  virtual void add_row(sqlite3_stmt* stmt) = 0;
  virtual size_t bytes() const = 0;  // of the batch so far
  virtual size_t rows() const = 0;   // in the batch so far
  // Ends the batch; `more` if further batches follow.
  virtual std::vector<uint8_t> finish(bool more) = 0;
};

// Makes the encoder for a query's rows (called once per query, with its
// statement prepared, before the first step).
using RowEncoderFactory = std::unique_ptr<RowEncoder> (*)(sqlite3_stmt* stmt);

}  // namespace sqraft
