/* sqraft-embedded-bench: the sqraft bench workloads, on the SQLite API.
 *
 * A plain SQLite program (it links libsqlite3 only): run it under
 * LD_PRELOAD=libsqraft_preload.so to measure the embedded mode, or without
 * it for plain SQLite. Same table, keys and values as `sqraft bench`.
 *
 *   sqraft-embedded-bench DB STEP ARG [STEP ARG ...]
 * with steps, run in order in one process (one node start):
 *   fill ROWS        create the table, ROWS rows in one transaction
 *   write SECONDS    kvwrite: one autocommit INSERT OR REPLACE of a new key
 *   read SECONDS     kvread: SELECT of a random key among the filled ones
 * Prints one line per step: {"step": ..., "ops": N, "ops_per_s": X, "errors": E}. */
#define _GNU_SOURCE
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { kKeySize = 32, kValueSize = 1024 };

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Deterministic keys: row i of `fill` always has the same key. */
static void key_for(unsigned long long i, char* out) {
  unsigned long long x = i * 0x9e3779b97f4a7c15ULL + 1;
  for (int k = 0; k < kKeySize; k++) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    out[k] = (char)('a' + (x >> 40) % 26);
  }
  out[kKeySize] = 0;
}

static void random_letters(char* out, int n, unsigned* seed) {
  for (int k = 0; k < n; k++) out[k] = (char)('a' + rand_r(seed) % 26);
  out[n] = 0;
}

static sqlite3* open_db(const char* name) {
  sqlite3* db = NULL;
  if (sqlite3_open_v2(name, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
    fprintf(stderr, "open %s: %s\n", name, db ? sqlite3_errmsg(db) : "out of memory");
    exit(1);
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
}

static void must(sqlite3* db, int rc, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
  }
}

static void fill(sqlite3* db, unsigned long long rows) {
  char key[kKeySize + 1], value[kValueSize + 1];
  unsigned seed = 12345;
  must(db, sqlite3_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS model(key TEXT PRIMARY KEY, value TEXT)",
                        NULL, NULL, NULL), "create");
  sqlite3_stmt* ins = NULL;
  must(db, sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO model(key, value) VALUES(?, ?)", -1, &ins, NULL), "prepare");
  must(db, sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), "begin");
  for (unsigned long long i = 0; i < rows; i++) {
    key_for(i, key);
    random_letters(value, kValueSize, &seed);
    sqlite3_bind_text(ins, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 2, value, -1, SQLITE_STATIC);
    must(db, sqlite3_step(ins), "insert");
    sqlite3_reset(ins);
  }
  must(db, sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), "commit");
  sqlite3_finalize(ins);
  printf("{\"step\": \"fill\", \"rows\": %llu}\n", rows);
}

static void run(sqlite3* db, int writing, double seconds) {
  char key[kKeySize + 1], value[kValueSize + 1];
  unsigned seed = 777;
  long long rows = 0;
  if (!writing) {
    sqlite3_stmt* c = NULL;
    must(db, sqlite3_prepare_v2(db, "SELECT count(*) FROM model", -1, &c, NULL), "count");
    must(db, sqlite3_step(c), "count");
    rows = sqlite3_column_int64(c, 0);
    sqlite3_finalize(c);
    if (rows == 0) {
      fprintf(stderr, "read: fill first\n");
      exit(1);
    }
  } else {
    must(db, sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS model(key TEXT PRIMARY KEY, value TEXT)", NULL, NULL, NULL),
         "create");
  }
  sqlite3_stmt* stmt = NULL;
  must(db, sqlite3_prepare_v2(db, writing ? "INSERT OR REPLACE INTO model(key, value) VALUES(?, ?)"
                                          : "SELECT value FROM model WHERE key = ?",
                              -1, &stmt, NULL),
       "prepare");
  unsigned long long ops = 0, errors = 0;
  const double start = now_s(), end = start + seconds;
  double t = start;
  while (t < end) {
    for (int batch = 0; batch < (writing ? 1 : 64); batch++) {
      if (writing) {
        random_letters(key, kKeySize, &seed);
        random_letters(value, kValueSize, &seed);
        sqlite3_bind_text(stmt, 2, value, -1, SQLITE_STATIC);
      } else {
        key_for((unsigned long long)(rand_r(&seed) % rows), key);
      }
      sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
      int rc;
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      }
      sqlite3_reset(stmt);
      if (rc == SQLITE_DONE) {
        ops++;
      } else {
        errors++;
        if (errors == 1) fprintf(stderr, "%s: %s\n", writing ? "write" : "read", sqlite3_errmsg(db));
      }
    }
    t = now_s();
  }
  sqlite3_finalize(stmt);
  printf("{\"step\": \"%s\", \"ops\": %llu, \"ops_per_s\": %.1f, \"errors\": %llu}\n", writing ? "write" : "read",
         ops, (double)ops / (t - start), errors);
}

int main(int argc, char** argv) {
  if (argc < 4 || argc % 2 != 0) {
    fprintf(stderr, "usage: %s DB fill ROWS|write SECONDS|read SECONDS ...\n", argv[0]);
    return 2;
  }
  sqlite3* db = open_db(argv[1]);
  for (int i = 2; i + 1 < argc; i += 2) {
    const char* step = argv[i];
    const double arg = atof(argv[i + 1]);
    if (strcmp(step, "fill") == 0) {
      fill(db, (unsigned long long)arg);
    } else if (strcmp(step, "write") == 0 || strcmp(step, "read") == 0) {
      run(db, strcmp(step, "write") == 0, arg);
    } else {
      fprintf(stderr, "unknown step %s\n", step);
      return 2;
    }
    fflush(stdout);
  }
  sqlite3_close(db);
  return 0;
}
