#!/usr/bin/env bash
# Reference test: sqraft's own client (`sqraft shell`) against the REAL dqlite
# server (Debian's libdqlite0, driven by go-dqlite's `dqlite-demo`).
#
#   SQRAFT_BIN=/path/to/sqraft bash test/interop/reference.sh
#
# A 3-node dqlite cluster is started with /work/shared/bench/dqlite-reference.sh
# on 127.0.0.1:P, P+1, P+2 (its HTTP API on P+100..P+102), P picked from our
# PID in 20000-29000 with none of those ports (nor P+3, used as a dead
# address) accepting connections. It is always stopped on exit, and any
# process left that runs from our temporary directory is killed.
#
# Checks: every value type written and read back (tabular and JSON), scripts
# on stdin and SQL errors, explicit transactions, a result of many ROWS
# batches, the dot-commands (.cluster, .leader, .describe, .weight, .dump,
# .remove, .help) and leader discovery with a dead first address. Dumped files
# are opened with the `sqlite3` CLI. Every client call is bounded by
# `timeout 30`. Each check prints `ok - ...` or `not ok - ...`; the script ends
# with `reference: N passed, N failed` and exits 0 only if nothing failed.
#
# Environment: SQRAFT_BIN (default /work/main/build-me/sqraft), copied into
# the temporary directory first so that a concurrent rebuild cannot disturb
# the run; DQLITE_REFERENCE_SH (default /work/shared/bench/dqlite-reference.sh);
# KEEP_TMP=1 keeps the temporary directory (it is kept anyway when a check
# fails, without the dumps).
set -u
set -o pipefail

SQRAFT_BIN=${SQRAFT_BIN:-/work/main/build-me/sqraft}
# The team's shared helper when it is there (../shared next to the
# repository); otherwise the same steps built in (reference_cluster below).
HELPER=${DQLITE_REFERENCE_SH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/shared/bench/dqlite-reference.sh}
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

finish() {
  echo "reference: $PASS passed, $FAIL failed"
  ((FAIL == 0))
  exit
}

# ------------------------------------------------------------------ packages
need=()
command -v dqlite-demo >/dev/null 2>&1 || need+=(go-dqlite)
command -v dqlite >/dev/null 2>&1 || need+=(go-dqlite) # the helper waits with it
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
if ((${#need[@]})); then
  note "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq "${need[@]}"; } >/tmp/sqraft-reference-apt.$$.log 2>&1; then
    tail -20 /tmp/sqraft-reference-apt.$$.log
    nok "install ${need[*]} with apt-get"
    finish
  fi
  rm -f /tmp/sqraft-reference-apt.$$.log
fi
# reference_cluster start|stop PORT DIR: three dqlite-demo processes (the
# real libdqlite0) on 127.0.0.1:PORT..PORT+2, their HTTP API on PORT+100..,
# joined into one cluster; prints the dqlite shell's .cluster once 3 voters
# are up.
reference_cluster() {
  local cmd=$1 p=$2 dir=$3 i
  case $cmd in
  start)
    rm -rf "$dir"
    mkdir -p "$dir"
    for i in 0 1 2; do
      local join=()
      ((i > 0)) && join=(-j "127.0.0.1:$p")
      dqlite-demo -a "127.0.0.1:$((p + 100 + i))" -d "127.0.0.1:$((p + i))" "${join[@]}" -D "$dir/n$((i + 1))" \
        >"$dir/n$((i + 1)).log" 2>&1 &
      echo $! >>"$dir/pids"
      sleep 1
    done
    for _ in $(seq 1 30); do
      [[ "$(dqlite -s "127.0.0.1:$p" demo .cluster 2>/dev/null | grep -c voter)" == 3 ]] && break
      sleep 1
    done
    dqlite -s "127.0.0.1:$p" demo .cluster
    ;;
  stop)
    [[ -f "$dir/pids" ]] || return 0
    for i in $(cat "$dir/pids"); do kill "$i" 2>/dev/null; done
    sleep 1
    for i in $(cat "$dir/pids"); do kill -9 "$i" 2>/dev/null; done
    rm -f "$dir/pids"
    ;;
  esac
}
if [[ -r "$HELPER" ]]; then
  helper() { bash "$HELPER" "$@"; }
else
  note "no $HELPER: starting dqlite-demo directly"
  helper() { reference_cluster "$@"; }
fi
if [[ ! -x "$SQRAFT_BIN" ]]; then
  nok "sqraft binary at $SQRAFT_BIN (set SQRAFT_BIN)"
  finish
fi

# ------------------------------------------------------------ state, cleanup
T=$(mktemp -d "${TMPDIR:-/tmp}/sqraft-reference.$$.XXXXXX")
CDIR="$T/cluster" # the helper's DIR: node data, logs and the pids file
BASE=""
STARTED=0

# PIDs of the processes whose command line mentions our cluster directory
# (the dqlite-demo nodes; nothing else uses that path).
our_processes() {
  local f p
  for f in /proc/[0-9]*/cmdline; do
    p=${f#/proc/}
    p=${p%/cmdline}
    [[ "$p" == "$$" || "$p" == "$BASHPID" ]] && continue
    if { tr '\0' ' ' <"$f"; } 2>/dev/null | grep -qF -- "-D $CDIR/n"; then echo "$p"; fi
  done
}

cleanup() {
  local rc=$? p pids
  trap '' INT TERM
  if ((STARTED)); then
    pids=$(cat "$CDIR/pids" 2>/dev/null)
    helper stop "$BASE" "$CDIR" >/dev/null 2>&1
    for p in $pids $(our_processes); do
      kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null
    done
  fi
  if [[ "${KEEP_TMP:-0}" == 1 ]]; then
    echo "# logs and data kept in $T"
  elif ((FAIL == 0)); then
    rm -rf "$T"
  else
    rm -rf "$T"/dump-* "$T/sqraft" "$CDIR"/n[123]
    echo "# logs kept in $T (KEEP_TMP=1 keeps the data too)"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp "$SQRAFT_BIN" "$T/sqraft" && chmod +x "$T/sqraft"
BIN="$T/sqraft"
if ! "$BIN" shell --help >/dev/null 2>&1; then
  nok "the sqraft binary copied from $SQRAFT_BIN runs (sqraft shell --help)"
  finish
fi

# ------------------------------------------------------------------ cluster
# Ports P..P+3 and P+100..P+102 must be free; P in 20000-29000, from our PID.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_base() {
  local base=$((20000 + ($$ * 7) % 8800)) tries p busy
  for ((tries = 0; tries < 100; tries++)); do
    busy=0
    for p in $base $((base + 1)) $((base + 2)) $((base + 3)) $((base + 100)) $((base + 101)) $((base + 102)); do
      port_free "$p" || { busy=1; break; }
    done
    ((busy == 0)) && { echo "$base"; return 0; }
    base=$((base + 5))
    ((base > 28800)) && base=20000
  done
  return 1
}

START=$SECONDS
if ! BASE=$(pick_base); then
  nok "find free ports for the dqlite cluster in 20000-29000"
  finish
fi
A1="127.0.0.1:$BASE"
A2="127.0.0.1:$((BASE + 1))"
A3="127.0.0.1:$((BASE + 2))"
DEAD="127.0.0.1:$((BASE + 3))"
ADDRS=("$A1" "$A2" "$A3")
SERVERS="$A1,$A2,$A3"
note "sqraft: $SQRAFT_BIN; dqlite-demo: $(command -v dqlite-demo) (go-dqlite $(dpkg-query -W -f '${Version}' go-dqlite 2>/dev/null), libdqlite0 $(dpkg-query -W -f '${Version}' libdqlite0 2>/dev/null)); sqlite3 $(sqlite3 --version | cut -d' ' -f1)"
note "dqlite cluster on $A1 $A2 $A3 in $CDIR"

STARTED=1
out=$(helper start "$BASE" "$CDIR" 2>&1)
if [[ "$(grep -c '|voter$' <<<"$out")" == 3 ]]; then
  ok "dqlite reference cluster of 3 voters started ($((SECONDS - START))s)"
else
  nok "dqlite reference cluster of 3 voters started: $out"
  for f in "$CDIR"/n*.log; do tail -5 "$f" | sed "s|^|#   $(basename "$f"): |"; done
  finish
fi
REF_CLUSTER=$out # the dqlite shell's .cluster

# ------------------------------------------------------------------ helpers
ERR="$T/stderr"
# sq DB SQL...: the sqraft shell on the whole cluster; stderr goes to $ERR.
sq() { timeout 30 "$BIN" shell -s "$SERVERS" "$@" 2>"$ERR"; }
sqj() { timeout 30 "$BIN" shell --format json -s "$SERVERS" "$@" 2>"$ERR"; }
# sq_at ADDRESSES DB SQL...: the sqraft shell with another address list.
sq_at() {
  local s=$1
  shift
  timeout 30 "$BIN" shell -s "$s" "$@" 2>"$ERR"
}
err() { cat "$ERR"; }
# The exit status and stderr of the last call, and its stdout, for check_eq.
silent() { printf '%s:%s%s' "$1" "$(err)" "$2"; }

# ---------------------------------------------------- 1. every value type
db=types
out=$(sq $db "CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, r REAL, s TEXT, b BLOB, n NULL, d DATETIME, flag BOOLEAN)")
check_eq "CREATE TABLE with INTEGER, REAL, TEXT, BLOB, NULL, DATETIME and BOOLEAN columns" "$(silent $? "$out")" "0:"

out=$(sq $db "INSERT INTO t VALUES (1, 42, 3.25, 'hello wörld ☃ 日本 😀', x'00ff10', NULL, '2024-01-02 03:04:05', 1);
INSERT INTO t VALUES (2, -9223372036854775808, -1.5e300, '', x'', NULL, 1700000000, 0);
INSERT INTO t VALUES (3, 9223372036854775807, -0.1, 'it''s \"quoted\" | piped', x'cafebabe', NULL, '2024-05-06T07:08:09.5Z', TRUE);
INSERT INTO t VALUES (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO t VALUES (5, 0, 2.0, 'tab' || char(9) || 'newline' || char(10) || 'end', zeroblob(3), 'text in a NULL column', '2000-02-29', FALSE);
INSERT INTO t VALUES (6, -1, 3.141592653589793, '\\', x'0a', 7, '1999-12-31 23:59:59.999', 1)")
check_eq "INSERT 6 rows: int64 min/max, negative and whole floats, empty string and blob, unicode, NULL, DATETIME and BOOLEAN (one call, 6 statements)" \
  "$(silent $? "$out")" "0:"

# What the server stored, as SQLite literals (the same text from any client;
# SQLite 3.40's quote() writes a real that %.15g does not round-trip with 20
# digits).
Q_QUOTE="SELECT id, quote(i), quote(r), quote(s), quote(b), quote(n), quote(d), quote(flag) FROM t ORDER BY id"
W_QUOTE="1|42|3.25|'hello wörld ☃ 日本 😀'|X'00FF10'|NULL|'2024-01-02 03:04:05'|1
2|-9223372036854775808|-1.5e+300|''|X''|NULL|1700000000|0
3|9223372036854775807|-0.1|'it''s \"quoted\" | piped'|X'CAFEBABE'|NULL|'2024-05-06T07:08:09.5Z'|1
4|NULL|NULL|NULL|NULL|NULL|NULL|NULL
5|0|2.0|'tab	newline
end'|X'000000'|'text in a NULL column'|'2000-02-29'|0
6|-1|3.14159265358979311599e+00|'\\'|X'0A'|7|'1999-12-31 23:59:59.999'|1"
out=$(sq $db "$Q_QUOTE")
check_eq "SELECT quote(...) shows the values stored exactly" "$(silent $? "$out")" "0:$W_QUOTE"
out2=$(timeout 30 dqlite -s "$SERVERS" $db "$Q_QUOTE" 2>&1)
check_eq "the same SELECT quote(...) through dqlite's own Go shell prints the same" "$out2" "$out"

out=$(sq $db "SELECT typeof(i), typeof(r), typeof(s), typeof(b), typeof(n), typeof(d), typeof(flag), r = 3.141592653589793 FROM t ORDER BY id")
check_eq "SELECT typeof(...): the SQLite storage classes (and the double stored bit-exact)" "$(silent $? "$out")" "0:integer|real|text|blob|null|text|integer|0
integer|real|text|blob|null|integer|integer|0
integer|real|text|blob|null|text|integer|0
null|null|null|null|null|null|null|NULL
integer|real|text|blob|text|text|integer|0
integer|real|text|blob|integer|text|integer|1"

# Tabular output. dqlite sends a DATETIME column as ISO8601 text or UNIXTIME
# integer and a BOOLEAN one as a boolean; the shell prints NULL as NULL,
# floats shortest-exact with ".0" on whole numbers, blobs as x'..'.
out=$(sq $db "SELECT * FROM t WHERE id <> 4 ORDER BY id")
check_eq "SELECT * in tabular output: every value type (DATETIME as text/unix time, BOOLEAN as true/false)" "$(silent $? "$out")" "0:1|42|3.25|hello wörld ☃ 日本 😀|x'00ff10'|NULL|2024-01-02 03:04:05|true
2|-9223372036854775808|-1.5e+300||x''|NULL|1700000000|false
3|9223372036854775807|-0.1|it's \"quoted\" | piped|x'cafebabe'|NULL|2024-05-06T07:08:09.5Z|true
5|0|2.0|tab	newline
end|x'000000'|text in a NULL column|2000-02-29|false
6|-1|3.141592653589793|\\|x'0a'|7|1999-12-31 23:59:59.999|true"

# A row of NULLs. dqlite itself encodes NULL in a BOOLEAN column as false
# (go-dqlite reads false too): that is the server's doing.
out=$(sq $db "SELECT id, i, r, s, b, n, flag FROM t WHERE id = 4")
check_eq "SELECT a row of NULLs (dqlite sends NULL in a BOOLEAN column as false)" "$(silent $? "$out")" "0:4|NULL|NULL|NULL|NULL|NULL|false"

# NULL in a DATETIME column: dqlite sends an empty ISO8601 text, which
# go-dqlite (the reference client) reads back as nil.
out=$(sq $db "SELECT d FROM t WHERE id = 4")
check_eq "SELECT NULL from a DATETIME column reads NULL (dqlite sends an empty ISO8601 value; go-dqlite reads it as nil)" "$(silent $? "$out")" "0:NULL"
out=$(sqj $db "SELECT id, d FROM t WHERE id = 4")
check_eq "JSON: NULL from a DATETIME column is null" "$(silent $? "$out")" '0:[{"id":4,"d":null}]'

out=$(sqj $db "SELECT * FROM t WHERE id <> 4 ORDER BY id")
check_eq "SELECT * in JSON output: numbers, strings, hex blobs, null, booleans, escapes" "$(silent $? "$out")" '0:[{"id":1,"i":42,"r":3.25,"s":"hello wörld ☃ 日本 😀","b":"00ff10","n":null,"d":"2024-01-02 03:04:05","flag":true},{"id":2,"i":-9223372036854775808,"r":-1.5e+300,"s":"","b":"","n":null,"d":1700000000,"flag":false},{"id":3,"i":9223372036854775807,"r":-0.1,"s":"it'"'"'s \"quoted\" | piped","b":"cafebabe","n":null,"d":"2024-05-06T07:08:09.5Z","flag":true},{"id":5,"i":0,"r":2.0,"s":"tab\tnewline\nend","b":"000000","n":"text in a NULL column","d":"2000-02-29","flag":false},{"id":6,"i":-1,"r":3.141592653589793,"s":"\\","b":"0a","n":7,"d":"1999-12-31 23:59:59.999","flag":true}]'

out=$(sqj $db "SELECT id, i, r, s, b, n, flag FROM t WHERE id = 4")
check_eq "JSON: a row of NULLs" "$(silent $? "$out")" '0:[{"id":4,"i":null,"r":null,"s":null,"b":null,"n":null,"flag":false}]'

out=$(sqj $db "SELECT 1 AS a, 2 AS a, 'x' AS a WHERE 0")
check_eq "JSON: a query without rows prints []" "$(silent $? "$out")" '0:[]'
out=$(sqj $db "SELECT 1 AS a, 2 AS a, NULL AS b")
check_eq "JSON: repeated column names get :2, :3" "$(silent $? "$out")" '0:[{"a":1,"a:2":2,"b":null}]'

# ------------------------------------------- 2. scripts on stdin, errors
db=script
out=$(printf '%s\n' \
  "CREATE TABLE s (a INTEGER PRIMARY KEY, b TEXT);" \
  "INSERT INTO s VALUES (1, 'one'); INSERT INTO s VALUES (2, 'two;" \
  "still two');" \
  "-- a comment line" \
  "INSERT INTO s" \
  "  VALUES (3, 'three');" \
  "SELECT a, b FROM s ORDER BY a;" \
  "UPDATE s SET b = upper(b) WHERE a = 3; DELETE FROM s WHERE a = 1;" \
  "SELECT count(*), group_concat(b, ',') FROM s" |
  timeout 30 "$BIN" shell -s "$SERVERS" $db 2>"$ERR")
check_eq "a script on stdin: statements over several lines, ';' inside a string, comments, two result sets" "$(silent $? "$out")" "0:1|one
2|two;
still two
3|three
2|two;
still two,THREE"

out=$(printf '%s\n' "INSERT INTO s VALUES (4, 'four');" "SELEC oops;" "INSERT INTO s VALUES (5, 'five');" |
  timeout 30 "$BIN" shell -s "$SERVERS" $db 2>"$ERR")
rc=$?
check_eq "a script with a wrong statement exits 1 with dqlite's message, nothing on stdout" "$rc:$(err):$out" '1:Error: near "SELEC": syntax error:'
out=$(sq $db "SELECT group_concat(a) FROM s")
check_eq "the script stopped at the error: the statement before ran, the one after did not" "$(silent $? "$out")" "0:2,3,4"

out=$(sq $db "SELECT * FROM no_such_table")
check_eq "a query on a missing table: exit 1 and dqlite's message" "$?:$(err):$out" "1:Error: no such table: no_such_table:"
out=$(sq $db "INSERT INTO s VALUES (2, 'again')")
check_eq "a constraint violation: exit 1 and dqlite's message" "$?:$(err):$out" "1:Error: UNIQUE constraint failed: s.a:"
out=$(sq $db "INSERT INTO s VALUES (1, 2, 3)")
check_eq "a wrong number of values: exit 1 and dqlite's message" "$?:$(err):$out" "1:Error: table s has 2 columns but 3 values were supplied:"

# ----------------------------------------------------- 3. transactions
db=tx
sq $db "CREATE TABLE k (a INTEGER PRIMARY KEY, b TEXT)" >/dev/null
out=$(sq $db "BEGIN; INSERT INTO k VALUES (1, 'rolled back'); SELECT count(*) FROM k; ROLLBACK; SELECT count(*) FROM k")
check_eq "BEGIN; INSERT; ROLLBACK: the row is seen inside the transaction, gone after" "$(silent $? "$out")" "0:1
0"
out=$(sq $db "SELECT count(*) FROM k")
check_eq "after ROLLBACK a new connection sees no rows" "$(silent $? "$out")" "0:0"
out=$(sq $db "BEGIN; INSERT INTO k VALUES (1, 'kept'); INSERT INTO k VALUES (2, 'kept too'); COMMIT")
check_eq "BEGIN; INSERT; INSERT; COMMIT" "$(silent $? "$out")" "0:"
out=$(sq $db "SELECT a, b FROM k ORDER BY a")
check_eq "after COMMIT a new connection sees both rows" "$(silent $? "$out")" "0:1|kept
2|kept too"
out=$(printf '%s\n' "BEGIN;" "INSERT INTO k VALUES (3, 'x');" "UPDATE k SET b = 'changed';" "ROLLBACK;" "SELECT a, b FROM k ORDER BY a;" |
  timeout 30 "$BIN" shell -s "$SERVERS" $db 2>"$ERR")
check_eq "a transaction over stdin lines: ROLLBACK undoes an INSERT and an UPDATE" "$(silent $? "$out")" "0:1|kept
2|kept too"
# An error inside a transaction ends the shell; the server must roll the
# open transaction back when the connection goes, and release its lock.
out=$(sq $db "BEGIN; INSERT INTO k VALUES (4, 'open'); SELEC broken; COMMIT")
check_eq "an error inside BEGIN...COMMIT exits 1" "$?:$(err)" '1:Error: near "SELEC": syntax error'
out=$(sq $db "INSERT INTO k VALUES (5, 'after'); SELECT group_concat(a) FROM k")
check_eq "the abandoned transaction was rolled back and the database is writable" "$(silent $? "$out")" "0:1,2,5"

# ------------------------------------------------ 4. many ROWS batches
# dqlite sends rows in batches of about 4 KB: 20,000 rows of ~40 bytes take
# a few hundred ROWS messages.
db=big
N=20000
out=$(sq $db "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT);
INSERT INTO big WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $N) SELECT x, printf('row-%06d-padding-padding-padding', x) FROM c;")
check_eq "INSERT INTO ... WITH RECURSIVE ... SELECT of $N rows" "$(silent $? "$out")" "0:"
WANT_SUMS="$N|$((N * (N + 1) / 2))|$((N * 34))"
out=$(sq $db "SELECT count(*), sum(id), sum(length(v)) FROM big")
check_eq "the server counts $N rows (count, sum(id), sum(length(v)))" "$(silent $? "$out")" "0:$WANT_SUMS"
sq $db "SELECT id, v FROM big ORDER BY id" >"$T/big.out"
rc=$?
out=$(awk -F'|' '{ n++; s += $1; l += length($2); if ($1 != n || $2 != sprintf("row-%06d-padding-padding-padding", n)) bad++ }
  END { printf "%d|%d|%d|%d", n, s, l, bad }' "$T/big.out")
check_eq "SELECT of $N rows (many ROWS batches) comes back complete and in order, tabular" "$rc:$(err)$out" "0:$WANT_SUMS|0"
sqj $db "SELECT id, v FROM big ORDER BY id" >"$T/big.json"
rc=$?
if command -v python3 >/dev/null 2>&1; then
  out=$(python3 -c '
import json, sys
rows = json.load(open(sys.argv[1]))
bad = sum(1 for n, r in enumerate(rows, 1) if r != {"id": n, "v": "row-%06d-padding-padding-padding" % n})
print("%d|%d|%d|%d" % (len(rows), sum(r["id"] for r in rows), sum(len(r["v"]) for r in rows), bad))' "$T/big.json" 2>&1)
else
  out="$(grep -o '"id":' "$T/big.json" | wc -l)|?|?|?"
fi
check_eq "SELECT of $N rows in JSON: one array, complete and in order" "$rc:$(err)$out" "0:$WANT_SUMS|0"
out=$(sq $db "SELECT id FROM big WHERE id % 5000 = 0 ORDER BY id DESC")
check_eq "a filtered query over the big table" "$(silent $? "$out")" "0:20000
15000
10000
5000"
# A CTE in front of a write: the statement starts with WITH but returns no rows.
out=$(sq $db "WITH c(x) AS (SELECT $N + 1) INSERT INTO big SELECT x, 'with-insert' FROM c")
check_eq "WITH ... INSERT (a write that starts with WITH) succeeds" "$(silent $? "$out")" "0:"
out=$(sq $db "SELECT count(*) FROM big WHERE v = 'with-insert'")
check_eq "WITH ... INSERT inserted its row" "$(silent $? "$out")" "0:1"

# ------------------------------------------------------ 5. dot-commands
db=types
out=$(sq $db ".cluster")
rc=$?
check_eq ".cluster prints the same as dqlite's own shell (ID in hex|ADDRESS|ROLE)" "$rc:$(err)$out" "0:$REF_CLUSTER"
check_eq ".cluster lists the 3 nodes with their addresses and roles" "$(cut -d'|' -f2,3 <<<"$out" | sort)" "$A1|voter
$A2|voter
$A3|voter"
CLUSTER_TAB=$out
out=$(sqj $db ".cluster")
rc=$?
want="["
while IFS='|' read -r id addr role; do
  [[ "$want" != "[" ]] && want+=","
  want+="{\"id\":$(printf '%u' $((16#$id))),\"address\":\"$addr\",\"role\":\"$role\"}"
done <<<"$CLUSTER_TAB"
want+="]"
check_eq ".cluster in JSON: decimal ids, addresses and roles" "$rc:$(err)$out" "0:$want"

LEADER=$(sq $db ".leader")
rc=$?
if ((rc == 0)) && [[ "$LEADER" == "$A1" || "$LEADER" == "$A2" || "$LEADER" == "$A3" ]]; then
  ok ".leader names one of the nodes: $LEADER"
else
  nok ".leader names one of the nodes: rc=$rc out='$LEADER' err='$(err)'"
fi
REF_LEADER=$(timeout 30 dqlite -s "$SERVERS" $db ".leader" 2>&1)
check_eq ".leader agrees with dqlite's own shell" "$LEADER" "$REF_LEADER"
leader_id=$(grep -F "|$LEADER|" <<<"$CLUSTER_TAB" | cut -d'|' -f1)
out=$(sqj $db ".leader")
check_eq ".leader in JSON: the leader's id and address" "$(silent $? "$out")" "0:{\"id\":$(printf '%u' $((16#${leader_id:-0}))),\"address\":\"$LEADER\"}"

for a in "${ADDRS[@]}"; do
  out=$(sq $db ".describe $a")
  check_eq ".describe $a: failure domain 0 and weight 0 (dqlite-demo's defaults)" "$(silent $? "$out")" "0:$a|0|0"
done
out=$(sq $db ".weight $A2 7")
check_eq ".weight $A2 7 succeeds silently" "$(silent $? "$out")" "0:"
out=$(sq $db ".describe $A2")
check_eq ".describe $A2 then shows weight 7" "$(silent $? "$out")" "0:$A2|0|7"
out=$(sqj $db ".describe $A2")
check_eq ".describe in JSON" "$(silent $? "$out")" "0:{\"address\":\"$A2\",\"failure_domain\":0,\"weight\":7}"
out=$(sq $db ".describe $A3")
check_eq ".weight changed only that node ($A3 still has weight 0)" "$(silent $? "$out")" "0:$A3|0|0"
out=$(sq $db ".weight $A2 -1")
check_eq ".weight with a bad number: exit 1 and a usage message" "$?:$(err)" "1:Error: bad weight '-1': usage: .weight ADDRESS N (N a non-negative integer)"
out=$(sq $db ".describe $DEAD")
rc=$?
if ((rc == 1)) && [[ "$(err)" == "Error: connect to $DEAD: "*"refused"* ]]; then
  ok ".describe of a dead address: exit 1 ($(err))"
else
  nok ".describe of a dead address: exit 1 and a connection error: rc=$rc err='$(err)' out='$out'"
fi

out=$(sq $db ".help")
rc=$?
if ((rc == 0)) && [[ "$out" == *".dump ADDRESS [DB]"* && "$out" == *".cluster"* && "$out" == *".weight ADDRESS N"* ]]; then
  ok ".help lists the commands"
else
  nok ".help lists the commands: rc=$rc out='$out'"
fi
out=$(sq $db ".bogus")
check_eq "an unknown dot-command: exit 1" "$?:$(err)" "1:Error: unknown command .bogus (see .help)"

# .dump ADDRESS [DB] writes DB and DB-wal into the current directory. A
# follower applies committed entries a moment after the leader answers:
# retry until its dump holds the rows. sqlite3 checkpoints and deletes the
# -wal file when it closes a database, so it reads a copy.
dump_hashes=()
for a in "${ADDRS[@]}"; do
  dir="$T/dump-${a##*:}"
  deadline=$((SECONDS + 10))
  while :; do
    rm -rf "$dir" "$dir.copy"
    mkdir -p "$dir"
    out=$(cd "$dir" && sq $db ".dump $a $db")
    rc=$?
    files=$(cd "$dir" && for f in *; do printf '%s ' "$f"; done)
    cp -a "$dir" "$dir.copy"
    rows=$(sqlite3 -batch -noheader -separator '|' "$dir.copy/$db" "$Q_QUOTE" 2>&1)
    [[ "$rc:$out" == "0:OK" && "$rows" == "$W_QUOTE" ]] && break
    ((SECONDS >= deadline)) && break
    sleep 0.3
  done
  check_eq ".dump $a $db prints OK" "$rc:$(err)$out" "0:OK"
  check_eq ".dump $a $db wrote the files '$db' and '$db-wal'" "$files" "$db $db-wal "
  check_eq "sqlite3 reads the same rows from $a's dump" "$rows" "$W_QUOTE"
  out=$(sqlite3 -batch "$dir.copy/$db" "PRAGMA integrity_check" 2>&1)
  check_eq "sqlite3: PRAGMA integrity_check of $a's dump" "$out" "ok"
  dump_hashes+=("$(sqlite3 -batch "$dir.copy/$db" ".sha3sum" 2>&1)")
done
if [[ "${dump_hashes[0]}" == "${dump_hashes[1]}" && "${dump_hashes[1]}" == "${dump_hashes[2]}" && "${dump_hashes[0]}" =~ ^[0-9a-f]{40,}$ ]]; then
  ok "the 3 nodes' dumps have the same content (sqlite3 .sha3sum ${dump_hashes[0]:0:12}…)"
else
  nok "the 3 nodes' dumps have the same content: ${dump_hashes[*]}"
fi
# .dump without DB: the shell's own database; another database's dump.
dir="$T/dump-default"
mkdir -p "$dir"
out=$(cd "$dir" && sq big ".dump $LEADER")
check_eq ".dump ADDRESS without DB dumps the shell's database" "$(silent $? "$out"):$(cd "$dir" && ls | tr '\n' ' ')" "0:OK:big big-wal "
out=$(cp -a "$dir" "$dir.copy" && sqlite3 -batch "$dir.copy/big" "PRAGMA integrity_check; SELECT count(*), sum(id) FROM big WHERE v LIKE 'row-%'" 2>&1)
check_eq "sqlite3 reads the $N rows of the big database's dump" "$out" "ok
$N|$((N * (N + 1) / 2))"

# ----------------------------------------------- 6. leader discovery
db=discovery
out=$(sq_at "$DEAD,$SERVERS" $db "CREATE TABLE d (x); INSERT INTO d VALUES ('via dead first'); SELECT x FROM d")
check_eq "a server list whose first address is dead still reaches the leader (write and read)" "$(silent $? "$out")" "0:via dead first"
out=$(sq_at "$DEAD,$SERVERS" $db ".leader")
check_eq ".leader with a dead first address" "$(silent $? "$out")" "0:$LEADER"
for a in "${ADDRS[@]}"; do
  [[ "$a" == "$LEADER" ]] && continue
  out=$(sq_at "$DEAD,$a" $db "INSERT INTO d VALUES ('via $a'); SELECT count(*) FROM d WHERE x = 'via $a'")
  check_eq "only a dead address and the follower $a: the write goes to the leader" "$(silent $? "$out")" "0:1"
done
out=$(sq_at "$DEAD" $db "SELECT 1")
rc=$?
if ((rc == 1)) && [[ "$(err)" == "Error: "*"$DEAD"*"refused"* && -z "$out" ]]; then
  ok "only a dead address: exit 1 ($(err))"
else
  nok "only a dead address: exit 1 and a connection error: rc=$rc err='$(err)' out='$out'"
fi

# ----------------------------------------------------------- .remove
# Last, since it changes the cluster: remove a follower.
victim=""
for a in "${ADDRS[@]}"; do [[ "$a" != "$LEADER" ]] && victim=$a; done
out=$(sq $db ".remove 127.0.0.1:9")
check_eq ".remove of an unknown address: exit 1" "$?:$(err)" "1:Error: no node has address 127.0.0.1:9"
out=$(sq $db ".remove $victim")
check_eq ".remove $victim (a follower) succeeds silently" "$(silent $? "$out")" "0:"
out=$(sq $db ".cluster")
rc=$?
check_eq ".cluster after .remove lists the other 2 nodes" "$rc:$(err)$out" "0:$(grep -vF "|$victim|" <<<"$CLUSTER_TAB")"
out=$(sq_at "$(IFS=,; echo "${ADDRS[*]}" | sed "s/$victim,\?//; s/,$//")" $db "INSERT INTO d VALUES ('after remove'); SELECT count(*) FROM d")
check_eq "the 2-node cluster still takes writes" "$(silent $? "$out")" "0:4"

note "total time $((SECONDS - START))s"
finish
