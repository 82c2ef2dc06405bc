#!/usr/bin/env bash
# Interop tests: real dqlite clients against a 3-node sqraft cluster.
#
#   SQRAFT_BIN=/path/to/sqraft bash test/interop/run.sh
#
# Clients: Debian's `dqlite` shell (package go-dqlite) and the Go driver
# github.com/canonical/go-dqlite (golang-github-canonical-go-dqlite-dev),
# driven by gointerop/main.go through database/sql. The dumped database files
# are checked with the `sqlite3` CLI.
#
# The whole sequence runs twice: on TCP 127.0.0.1 ports and on abstract unix
# sockets. Each check prints `ok - ...` or `not ok - ...`; the script ends
# with `interop: N passed, N failed` and exits 0 only if nothing failed.
#
# Environment: SQRAFT_BIN (default /work/main/build/sqraft); KEEP_TMP=1 keeps
# the temporary directory (it is kept anyway when a check fails);
# INTEROP_ROWS (default 100000) rows for the Go bulk test.
set -u
set -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SQRAFT_BIN=${SQRAFT_BIN:-/work/main/build/sqraft}
ROWS=${INTEROP_ROWS:-100000}
# shellcheck source=lib.sh
source "$HERE/lib.sh"

# ------------------------------------------------------------------ packages
need=()
command -v dqlite >/dev/null 2>&1 || need+=(go-dqlite)
command -v go >/dev/null 2>&1 || need+=(golang-go)
[[ -d /usr/share/gocode/src/github.com/canonical/go-dqlite/driver ]] || need+=(golang-github-canonical-go-dqlite-dev)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
command -v gcc >/dev/null 2>&1 || need+=(gcc) # cgo, for go-sqlite3 (imported by the client package)
if ((${#need[@]})); then
  note "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq "${need[@]}"; } >/tmp/sqraft-interop-apt.$$.log 2>&1; then
    tail -20 /tmp/sqraft-interop-apt.$$.log
    nok "install ${need[*]} with apt-get"
    echo "interop: $PASS passed, $FAIL failed"
    exit 1
  fi
  rm -f /tmp/sqraft-interop-apt.$$.log
fi

if [[ ! -x "$SQRAFT_BIN" ]]; then
  nok "sqraft binary at $SQRAFT_BIN (set SQRAFT_BIN)"
  echo "interop: $PASS passed, $FAIL failed"
  exit 1
fi
SQRAFT_BIN=$(readlink -f "$SQRAFT_BIN")

# ------------------------------------------------------------ state, cleanup
T=$(mktemp -d "${TMPDIR:-/tmp}/sqraft-interop.$$.XXXXXX")
declare -a PID=() ADDR=()
GOPID=""

cleanup() {
  local rc=$?
  for i in 1 2 3; do
    if [[ -n "${PID[$i]:-}" ]] && kill -0 "${PID[$i]}" 2>/dev/null; then
      kill -9 "${PID[$i]}" 2>/dev/null
      wait "${PID[$i]}" 2>/dev/null
    fi
  done
  if [[ -n "$GOPID" ]] && kill -0 "$GOPID" 2>/dev/null; then
    kill -9 "$GOPID" 2>/dev/null
    wait "$GOPID" 2>/dev/null
  fi
  if [[ "${KEEP_TMP:-0}" == 1 ]]; then
    echo "# logs and data kept in $T"
  elif ((FAIL == 0)); then
    rm -rf "$T"
  else
    # Keep the node logs and the Go client's output, drop the bulky data.
    rm -rf "$T/gocache" "$T/gointerop" "$T"/*/n[123] "$T"/*/conv-* "$T"/*/dump-*
    echo "# logs kept in $T (KEEP_TMP=1 keeps the data too)"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------- Go client build
export GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS=
export GOCACHE=${INTEROP_GOCACHE:-$T/gocache}
build_start=$SECONDS
if (cd "$HERE/gointerop" && go build -o "$T/gointerop" .) >"$T/gobuild.log" 2>&1; then
  ok "build gointerop with go-dqlite from /usr/share/gocode (GO111MODULE=off, $((SECONDS - build_start))s)"
else
  sed 's/^/#   /' "$T/gobuild.log"
  nok "build gointerop with go-dqlite from /usr/share/gocode (GO111MODULE=off)"
  exit 1
fi

# ------------------------------------------------------------------ helpers
RUN="" # label of the current run: tcp or abstract
CLUSTER=""
SERVERS=""

# Pick 3 consecutive TCP ports derived from our PID, below the ephemeral range,
# none of which accepts connections yet.
pick_ports() {
  local base=$((10000 + ($$ % 7000) * 3)) tries=0 p busy
  while ((tries < 50)); do
    busy=0
    for p in $base $((base + 1)) $((base + 2)); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then busy=1; fi
    done
    ((busy == 0)) && { echo "$base"; return; }
    base=$((base + 3))
    ((base > 31000)) && base=10000
    tries=$((tries + 1))
  done
  echo "$base"
}

start_node() { # start_node I
  local i=$1
  mkdir -p "$T/$RUN/n$i"
  "$SQRAFT_BIN" node --id "$i" --address "${ADDR[$i]}" --dir "$T/$RUN/n$i" --cluster "$CLUSTER" \
    --latency-ms 10 --failure-domain $((i * 10)) >>"$T/$RUN/n$i.log" 2>&1 &
  PID[$i]=$!
}

# dq DB COMMAND...: run the dqlite shell against the whole cluster (bounded).
dq() {
  local db=$1
  shift
  timeout 30 dqlite -s "$SERVERS" "$db" "$@"
}

# Wait until the shell's .leader names one of our addresses.
wait_leader() { # wait_leader SECONDS -> prints the leader address
  local deadline=$((SECONDS + $1)) l
  while ((SECONDS < deadline)); do
    l=$(timeout 5 dqlite -s "$SERVERS" probe ".leader" 2>/dev/null)
    for i in 1 2 3; do
      [[ -n "$l" && "$l" == "${ADDR[$i]}" ]] && { echo "$l"; return 0; }
    done
    sleep 0.2
  done
  return 1
}

# dump_node I DB DIR: .dump the database DB from node I into DIR (fresh).
dump_node() {
  local i=$1 db=$2 dir=$3
  rm -rf "$dir"
  mkdir -p "$dir"
  (cd "$dir" && dq "$db" ".dump ${ADDR[$i]} $db") 2>&1
}

# Logical content of every table in a dumped database (SQLite's .sha3sum).
content_hash() { # content_hash FILE
  sqlite3 -batch "$1" ".sha3sum" 2>&1
}

# run_go LABEL ARGS...: run gointerop, echo its lines, count its checks.
run_go() {
  local label=$1 out rc
  shift
  out="$T/$RUN/go-$(echo "$label" | tr ' ' '-').out"
  "$T/gointerop" -servers "$SERVERS" -label "[$RUN] go $label" "$@" >"$out" 2>&1 &
  GOPID=$!
  wait "$GOPID"
  rc=$?
  GOPID=""
  count_go "$out"
  return $rc
}

count_go() { # count_go FILE: echo the Go program's lines and add up its checks
  local line
  while IFS= read -r line; do
    echo "$line"
    case "$line" in
      "ok - "*) PASS=$((PASS + 1)) ;;
      "not ok - "*) FAIL=$((FAIL + 1)) ;;
    esac
  done <"$1"
}

# ------------------------------------------------------------------- a run
run_suite() { # run_suite LABEL ADDR1 ADDR2 ADDR3
  RUN=$1
  ADDR=("" "$2" "$3" "$4")
  CLUSTER="1@${ADDR[1]},2@${ADDR[2]},3@${ADDR[3]}"
  SERVERS="${ADDR[1]},${ADDR[2]},${ADDR[3]}"
  mkdir -p "$T/$RUN"
  local run_start=$SECONDS
  note "---- $RUN: 3-node cluster on ${ADDR[1]} ${ADDR[2]} ${ADDR[3]}"

  for i in 1 2 3; do start_node "$i"; done
  local leader
  if leader=$(wait_leader 20); then
    ok "[$RUN] cluster of 3 nodes elects a leader (dqlite .leader = $leader)"
  else
    nok "[$RUN] cluster of 3 nodes elects a leader within 20s"
    for i in 1 2 3; do tail -5 "$T/$RUN/n$i.log" | sed 's/^/#   /'; done
    stop_nodes
    return
  fi

  shell_checks
  dump_checks
  go_normal
  go_failover
  stop_nodes
  note "---- $RUN done in $((SECONDS - run_start))s"
}

shell_checks() {
  local out want rc i

  # .cluster: every voter with its id, address and role.
  out=$(dq shell ".cluster" 2>&1 | sort)
  want=$(printf '1|%s|voter\n2|%s|voter\n3|%s|voter' "${ADDR[1]}" "${ADDR[2]}" "${ADDR[3]}")
  check_eq "[$RUN] shell .cluster lists the 3 voters with their addresses" "$out" "$want"

  out=$(dq shell ".cluster" -f json 2>&1)
  if [[ "$out" == *'"Address": "'"${ADDR[2]}"'"'* && "$out" == *'"Role": 0'* ]]; then
    ok "[$RUN] shell .cluster in JSON format"
  else
    nok "[$RUN] shell .cluster in JSON format: $out"
  fi

  # .leader: one of the configured addresses, spelled exactly as configured.
  out=$(dq shell ".leader" 2>&1)
  if [[ "$out" == "${ADDR[1]}" || "$out" == "${ADDR[2]}" || "$out" == "${ADDR[3]}" ]]; then
    ok "[$RUN] shell .leader = $out"
  else
    nok "[$RUN] shell .leader names a configured address: got '$out'"
  fi

  # .describe on each node (failure domain given by --failure-domain, weight 0).
  for i in 1 2 3; do
    out=$(dq shell ".describe ${ADDR[$i]}" 2>&1)
    check_eq "[$RUN] shell .describe ${ADDR[$i]} reports failure domain $((i * 10)) and weight 0" "$out" "${ADDR[$i]}|$((i * 10))|0"
  done

  # .weight then .describe.
  out=$(dq shell ".weight ${ADDR[2]} 7" 2>&1)
  rc=$?
  check_eq "[$RUN] shell .weight ${ADDR[2]} 7 succeeds silently" "$rc:$out" "0:"
  out=$(dq shell ".describe ${ADDR[2]}" 2>&1)
  check_eq "[$RUN] shell .describe ${ADDR[2]} shows the new weight" "$out" "${ADDR[2]}|20|7"

  # Schema and every value type as SQL literals.
  out=$(dq shell "CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, r REAL, s TEXT, b BLOB, n TEXT, d DATETIME, flag BOOLEAN)" 2>&1)
  check_eq "[$RUN] shell CREATE TABLE with INTEGER, REAL, TEXT, BLOB, DATETIME and BOOLEAN columns" "$?:$out" "0:"

  out=$(dq shell "INSERT INTO t VALUES (1, 42, 3.25, 'hello wörld', x'00ff10', NULL, '2024-01-02 03:04:05', 1);INSERT INTO t VALUES (2, -9223372036854775808, -1.5e300, '', x'', NULL, 1700000000, 0);INSERT INTO t VALUES (3, 9223372036854775807, 0.1, 'it''s \"quoted\"', x'cafebabe', NULL, '2024-05-06T07:08:09.5Z', TRUE);INSERT INTO t VALUES (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL)" 2>&1)
  check_eq "[$RUN] shell INSERT of integers, reals, text, blobs x'..', NULL, DATETIME and BOOLEAN literals (4 statements in one call)" "$?:$out" "0:"

  out=$(dq shell "SELECT * FROM t ORDER BY id" 2>&1)
  want='1|42|3.25|hello wörld|[0 255 16]|<nil>|2024-01-02 03:04:05 +0000 UTC|true
2|-9223372036854775808|-1.5e+300||[]|<nil>|2023-11-14 22:13:20 +0000 UTC|false
3|9223372036854775807|0.1|it'"'"'s "quoted"|[202 254 186 190]|<nil>|2024-05-06 07:08:09.5 +0000 UTC|true
4|<nil>|<nil>|<nil>|<nil>|<nil>|<nil>|<nil>'
  check_eq "[$RUN] shell SELECT * returns every value with its type (int, real, text, blob, NULL, DATETIME as time, BOOLEAN as bool)" "$out" "$want"

  out=$(dq shell "SELECT typeof(i), typeof(r), typeof(s), typeof(b), typeof(n), typeof(d), typeof(flag) FROM t ORDER BY id" 2>&1)
  want='integer|real|text|blob|null|text|integer
integer|real|text|blob|null|integer|integer
integer|real|text|blob|null|text|integer
null|null|null|null|null|null|null'
  check_eq "[$RUN] shell SELECT typeof(...) shows the SQLite storage classes" "$out" "$want"

  out=$(dq shell "SELECT hex(b), length(s), count(*) OVER () FROM t WHERE id <= 3 ORDER BY id" 2>&1)
  want='00FF10|11|3
|0|3
CAFEBABE|13|3'
  check_eq "[$RUN] shell SELECT of computed values (hex, length, window function)" "$out" "$want"

  out=$(dq shell "UPDATE t SET s = upper(s) WHERE id = 1;DELETE FROM t WHERE id = 4;SELECT id, s FROM t ORDER BY id" 2>&1)
  want="1|HELLO WöRLD
2|
3|it's \"quoted\""
  check_eq "[$RUN] shell UPDATE, DELETE, then SELECT" "$out" "$want"

  out=$(dq shell "SELECT * FROM no_such_table" 2>&1)
  rc=$?
  if ((rc != 0)) && [[ "$out" == *"no such table: no_such_table"* ]]; then
    ok "[$RUN] shell reports a SQL error (no such table) and exits non-zero"
  else
    nok "[$RUN] shell reports a SQL error and exits non-zero: rc=$rc out=$out"
  fi
}

# The rows of table t as sqlite3 prints them, and as they must be.
T_QUERY="SELECT id, i, r, s, hex(b), quote(n), d, flag, typeof(d) FROM t ORDER BY id"
T_WANT="1|42|3.25|HELLO WöRLD|00FF10|NULL|2024-01-02 03:04:05|1|text
2|-9223372036854775808|-1.5e+300|||NULL|1700000000|0|integer
3|9223372036854775807|0.1|it's \"quoted\"|CAFEBABE|NULL|2024-05-06T07:08:09.5Z|1|text"

dump_checks() {
  local i out files rows dir hashes=() deadline
  for i in 1 2 3; do
    dir="$T/$RUN/dump-shell-n$i"
    # A follower applies committed entries a moment after the leader answers,
    # so retry until its dump holds the rows. sqlite3 checkpoints and deletes
    # the -wal file when it closes the database: it reads a copy.
    deadline=$((SECONDS + 10))
    while :; do
      out=$(dump_node "$i" shell "$dir")
      files=$(cd "$dir" && for f in *; do printf '%s ' "$f"; done)
      rm -rf "$dir.copy"
      cp -a "$dir" "$dir.copy"
      rows=$(sqlite3 -batch -noheader -separator '|' "$dir.copy/shell" "$T_QUERY" 2>&1)
      [[ "$out" == "OK" && "$rows" == "$T_WANT" ]] && break
      ((SECONDS >= deadline)) && break
      sleep 0.3
    done
    check_eq "[$RUN] shell .dump ${ADDR[$i]} shell prints OK" "$out" "OK"
    if [[ "$files" == "shell shell-wal " ]]; then
      ok "[$RUN] .dump from node $i wrote 'shell' ($(stat -c %s "$dir/shell") bytes) and 'shell-wal' ($(stat -c %s "$dir/shell-wal") bytes)"
    else
      nok "[$RUN] .dump from node $i wrote the files 'shell' and 'shell-wal': got '$files'"
    fi
    check_eq "[$RUN] sqlite3 reads the rows and types from node $i's dump" "$rows" "$T_WANT"
    out=$(sqlite3 -batch "$dir.copy/shell" "PRAGMA integrity_check" 2>&1)
    check_eq "[$RUN] sqlite3: PRAGMA integrity_check of node $i's dump" "$out" "ok"
    hashes+=("$(content_hash "$dir.copy/shell")")
  done
  if [[ "${hashes[0]}" == "${hashes[1]}" && "${hashes[1]}" == "${hashes[2]}" && "${hashes[0]}" =~ ^[0-9a-f]{40,}$ ]]; then
    ok "[$RUN] the 3 nodes' dumps have the same content (sqlite3 .sha3sum ${hashes[0]:0:12}…)"
  else
    nok "[$RUN] the 3 nodes' dumps have the same content: ${hashes[*]}"
  fi
}

go_normal() {
  if run_go normal -mode normal -db gointerop -rows "$ROWS" -deadline 100s; then
    ok "[$RUN] go client normal mode exits 0"
  else
    nok "[$RUN] go client normal mode exits 0"
  fi
}

go_failover() {
  local lf="$T/$RUN/leader" kf="$T/$RUN/killed" out="$T/$RUN/go-failover.out"
  local deadline victim="" i rc leader
  rm -f "$lf" "$kf"
  "$T/gointerop" -servers "$SERVERS" -label "[$RUN] go failover" -mode failover -db failover \
    -leader-file "$lf" -killed-file "$kf" -deadline 90s >"$out" 2>&1 &
  GOPID=$!
  deadline=$((SECONDS + 30))
  while [[ ! -s "$lf" ]] && kill -0 "$GOPID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
  leader=$(cat "$lf" 2>/dev/null)
  for i in 1 2 3; do [[ -n "$leader" && "$leader" == "${ADDR[$i]}" ]] && victim=$i; done
  if [[ -n "$victim" ]]; then
    sleep 0.3 # let some writes run against the doomed leader
    kill -9 "${PID[$victim]}"
    wait "${PID[$victim]}" 2>/dev/null
    PID[$victim]=""
    touch "$kf"
    ok "[$RUN] SIGKILL the leader, node $victim at $leader, reported by the Go client's FindLeader, while it writes"
  else
    nok "[$RUN] the Go client reported the leader ('$leader') within 30s"
  fi
  wait "$GOPID"
  rc=$?
  GOPID=""
  count_go "$out"
  if ((rc == 0)); then
    ok "[$RUN] go client failover mode exits 0"
  else
    nok "[$RUN] go client failover mode exits 0 (status $rc)"
  fi
  [[ -z "$victim" ]] && return

  # Restart the killed node and check that the cluster converges.
  start_node "$victim"
  if leader=$(wait_leader 20); then
    ok "[$RUN] node $victim restarted; the cluster has a leader ($leader)"
  else
    nok "[$RUN] node $victim restarted; the cluster has a leader within 20s"
  fi
  out=$(dq failover "INSERT INTO failover (id, v) VALUES (1000000, 'after-restart')" 2>&1)
  check_eq "[$RUN] shell write after the restart" "$?:$out" "0:"
  out=$(dq shell ".cluster" 2>&1 | sort)
  check_eq "[$RUN] .cluster after the restart still lists the 3 voters" "$out" \
    "$(printf '1|%s|voter\n2|%s|voter\n3|%s|voter' "${ADDR[1]}" "${ADDR[2]}" "${ADDR[3]}")"

  local db converged h1 h2 h3 lasterr
  for db in failover gointerop shell; do
    deadline=$((SECONDS + 20))
    converged=0
    while ((SECONDS < deadline)); do
      lasterr=""
      for i in 1 2 3; do
        out=$(dump_node "$i" "$db" "$T/$RUN/conv-$db-n$i")
        [[ "$out" == "OK" ]] || lasterr="node $i: .dump: $out"
      done
      if [[ -z "$lasterr" ]]; then
        h1=$(content_hash "$T/$RUN/conv-$db-n1/$db")
        h2=$(content_hash "$T/$RUN/conv-$db-n2/$db")
        h3=$(content_hash "$T/$RUN/conv-$db-n3/$db")
        if [[ "$h1" == "$h2" && "$h2" == "$h3" && "$h1" =~ ^[0-9a-f]{40,}$ ]]; then
          converged=1
          break
        fi
        lasterr="hashes $h1 / $h2 / $h3"
      fi
      sleep 0.5
    done
    if ((converged)); then
      ok "[$RUN] database '$db' converged: the 3 nodes' dumps have the same content (sqlite3 .sha3sum ${h1:0:12}…)"
    else
      nok "[$RUN] database '$db' converged on the 3 nodes within 20s: $lasterr"
    fi
  done
  out=$(sqlite3 -batch "$T/$RUN/conv-failover-n$victim/failover" "PRAGMA integrity_check; SELECT v FROM failover WHERE id = 1000000" 2>&1)
  check_eq "[$RUN] the restarted node's copy passes integrity_check and has the write made after its restart" "$out" "ok
after-restart"
  out=$(sqlite3 -batch "$T/$RUN/conv-gointerop-n$victim/gointerop" "PRAGMA integrity_check; SELECT count(*) FROM bulk" 2>&1)
  check_eq "[$RUN] the restarted node's copy of the Go client's database has all $ROWS bulk rows" "$out" "ok
$ROWS"
}

stop_nodes() {
  local i rc deadline
  for i in 1 2 3; do
    [[ -n "${PID[$i]:-}" ]] && kill -TERM "${PID[$i]}" 2>/dev/null
  done
  for i in 1 2 3; do
    [[ -z "${PID[$i]:-}" ]] && continue
    deadline=$((SECONDS + 10))
    while kill -0 "${PID[$i]}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "${PID[$i]}" 2>/dev/null; then
      kill -9 "${PID[$i]}" 2>/dev/null
      wait "${PID[$i]}" 2>/dev/null
      nok "[$RUN] node $i stops on SIGTERM within 10s"
    else
      wait "${PID[$i]}"
      rc=$?
      check_eq "[$RUN] node $i stops cleanly on SIGTERM (exit status)" "$rc" "0"
    fi
    PID[$i]=""
  done
}

# -------------------------------------------------------------------- main
START=$SECONDS
note "sqraft: $SQRAFT_BIN; dqlite shell: $(command -v dqlite); go-dqlite $(dpkg-query -W -f '${Version}' golang-github-canonical-go-dqlite-dev 2>/dev/null)"

BASE=$(pick_ports)
run_suite tcp "127.0.0.1:$BASE" "127.0.0.1:$((BASE + 1))" "127.0.0.1:$((BASE + 2))"
run_suite abstract "@sqraft-interop-$$-1" "@sqraft-interop-$$-2" "@sqraft-interop-$$-3"

note "total time $((SECONDS - START))s"
echo "interop: $PASS passed, $FAIL failed"
((FAIL == 0))
