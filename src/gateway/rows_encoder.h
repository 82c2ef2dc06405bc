// The gateway's RowEncoder: a query's rows as dqlite ROWS messages, and the
// conversion of a client's parameters to the SQL layer's values.
//
// dqlite's value types beyond SQLite's storage classes come from a column's
// declared type: an integer in a DATETIME/DATE/TIMESTAMP column is sent as
// UNIXTIME, text there as ISO8601, an integer in a BOOLEAN column as
// BOOLEAN. Parameters of those types bind as the integer or text they carry.
#pragma once

#include <memory>
#include <vector>

#include "row_encoder.h"
#include "value.h"
#include "wire.h"

namespace sqraft {

std::unique_ptr<RowEncoder> make_rows_encoder(sqlite3_stmt* stmt);

SqlParams sql_params(std::vector<wire::Value> params);

}  // namespace sqraft
