#!/bin/bash
# bench/recovery.sh: how long a node takes to come back, and how long writes
# stop when the leader dies.
#
#   bench/recovery.sh
#
# 1. Restart: a 3-node cluster (default latency) is loaded with SIZE_MIB of
#    data, one follower is stopped and started again, and the time its
#    start-up took (load snapshot + replay the log, as the node logs it) is
#    reported. Done twice: once with a snapshot threshold low enough that the
#    data sits in a snapshot, once with the default threshold (all of it in
#    the log).
# 2. Failover: the leader is killed with SIGKILL right after a committed
#    write, and `sqraft shell` retries an INSERT until a new leader commits
#    it (election timeout + the new leader's barrier + client retry). Three
#    rounds.
#
#    With STORAGE=disk the nodes run --storage disk and each restart is done
#    twice: after a clean stop (SIGTERM) and after kill -9; the entries the
#    node applied again are reported with its resident memory.
#
# Environment: SIZE_MIB (default 100), LATENCY_MS (node --latency-ms, default:
# the node's default), BENCH_DIR (default /tmp/sqraft-recovery), STORAGE
# (memory or disk, default memory), SKIP_FAILOVER=1 (restarts only).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
SQRAFT=$BUILD/sqraft
SIZE_MIB=${SIZE_MIB:-100}
DIR=${BENCH_DIR:-/tmp/sqraft-recovery}
NAME=sqraft-recovery-$$
LAT=()
if [ -n "${LATENCY_MS:-}" ]; then LAT=(--latency-ms "$LATENCY_MS"); fi
STORAGE=${STORAGE:-memory}
LAT+=(--storage "$STORAGE")

if [ ! -f "$BUILD/build.ninja" ]; then meson setup "$BUILD" "$ROOT" >/dev/null; fi
ninja -C "$BUILD" sqraft >/dev/null

ADDR=("" "@$NAME-1" "@$NAME-2" "@$NAME-3")
CLUSTER="1@${ADDR[1]},2@${ADDR[2]},3@${ADDR[3]}"
SERVERS="${ADDR[1]},${ADDR[2]},${ADDR[3]}"
PID=("" "" "" "")
cleanup() {
  for i in 1 2 3; do [ -n "${PID[$i]}" ] && kill -9 "${PID[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

start() { # start I [node flags...]
  local i=$1
  shift
  "$SQRAFT" node --id "$i" --address "${ADDR[$i]}" --dir "$DIR/n$i" --cluster "$CLUSTER" "${LAT[@]}" "$@" \
    >>"$DIR/n$i.log" 2>&1 &
  PID[$i]=$!
}
shell() { "$SQRAFT" shell -s "$SERVERS" --timeout-ms 60000 "$@"; }
leader_index() {
  local l
  l=$(shell bench .leader)
  for i in 1 2 3; do if [ "${ADDR[$i]}" = "$l" ]; then echo "$i"; fi; done
}
wait_leader() {
  for _ in $(seq 1 100); do
    if shell bench .leader >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "no leader" >&2
  exit 1
}
# The start-up time the node logged: "start-up done: ... N ms after start".
startup_ms() { grep -o 'start-up done.* \([0-9.]*\) ms after start' "$DIR/n$1.log" | tail -1 | grep -o '[0-9.]* ms' | cut -d' ' -f1; }

restart_run() { # restart_run LABEL [node flags...]
  local label=$1
  shift
  rm -rf "$DIR"
  mkdir -p "$DIR/n1" "$DIR/n2" "$DIR/n3"
  for i in 1 2 3; do start "$i" "$@"; done
  wait_leader
  shell bench "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)" >/dev/null
  # 10 MiB per transaction (2560 rows of 4 KiB).
  local chunks=$(((SIZE_MIB + 9) / 10))
  for _ in $(seq 1 "$chunks"); do
    shell bench "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<2560)
                 INSERT INTO blobs (data) SELECT randomblob(4096) FROM s" >/dev/null
  done
  local l f
  l=$(leader_index)
  f=$((l % 3 + 1))
  local size
  size=$(shell bench "SELECT page_count * page_size / 1048576 FROM pragma_page_count, pragma_page_size")
  local how
  local ways=(TERM)
  if [ "$STORAGE" = disk ]; then ways=(TERM KILL); fi
  for how in "${ways[@]}"; do
    local before
    before=$(grep -c "start-up done" "$DIR/n$f.log" || true)
    kill "-$how" "${PID[$f]}"
    wait "${PID[$f]}" || true
    local t0 t1
    t0=$(date +%s%N)
    start "$f" "$@"
    for _ in $(seq 1 1200); do
      [ "$(grep -c "start-up done" "$DIR/n$f.log" || true)" -gt "$before" ] && break
      sleep 0.05
    done
    t1=$(date +%s%N)
    echo "restart ($label, $STORAGE, SIG$how): ${size} MiB database, node logged start-up in $(startup_ms "$f") ms" \
      "(process start to ready seen by the script: $(((t1 - t0) / 1000000)) ms)"
    grep "loaded snapshot and log" "$DIR/n$f.log" | tail -1 | sed 's/^/  log: /'
    grep "start-up done" "$DIR/n$f.log" | tail -1 | sed 's/.*(\(.*\))$/  applied: \1/'
    local rss=""
    for i in 1 2 3; do rss="$rss n$i=$(awk '/VmRSS/ {print int($2/1024) " MiB"}' "/proc/${PID[$i]}/status")"; done
    echo "  resident memory:$rss"
  done
  for i in 1 2 3; do kill -TERM "${PID[$i]}" 2>/dev/null || true; done
  for i in 1 2 3; do wait "${PID[$i]}" 2>/dev/null || true; PID[$i]=""; done
}

restart_run "data in a snapshot" --snapshot-threshold 4 --snapshot-trailing 2
restart_run "data in the log" --snapshot-threshold 1024

if [ "${SKIP_FAILOVER:-0}" = 1 ]; then exit 0; fi
# ---- failover ---------------------------------------------------------------------
rm -rf "$DIR"
mkdir -p "$DIR/n1" "$DIR/n2" "$DIR/n3"
for i in 1 2 3; do start "$i"; done
wait_leader
shell bench "CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)" >/dev/null
for round in 1 2 3; do
  l=$(leader_index)
  shell bench "INSERT INTO kv (v) VALUES ('before')" >/dev/null
  t0=$(date +%s%N)
  kill -9 "${PID[$l]}"
  # Write until a new leader commits; each attempt asks the surviving nodes.
  until "$SQRAFT" shell -s "$SERVERS" --timeout-ms 2000 bench "INSERT INTO kv (v) VALUES ('after')" \
    >/dev/null 2>&1; do
    sleep 0.01
  done
  t1=$(date +%s%N)
  echo "failover $round: SIGKILL of the leader to the next committed write: $(((t1 - t0) / 1000000)) ms"
  wait "${PID[$l]}" 2>/dev/null || true
  start "$l"  # back as a follower for the next round
  sleep 2
done
