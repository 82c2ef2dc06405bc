#!/bin/bash
# bench/disk.sh: disk storage against memory storage on the same data.
#
# For each storage mode (memory, then disk): a 3-node cluster (unix
# sockets) is loaded with SIZE_MIB of 4 KiB blobs in database "big" (10 MiB
# transactions), then `sqraft bench kvwrite` runs for DURATION seconds on
# database "bench" with a snapshot threshold of SNAPSHOT_EVERY entries, so
# that snapshots of the whole node (big included) are taken while it writes.
# Reported per mode: resident memory of each node after the load and after
# the run, the size of each node's data directory, kvwrite ops/s with its
# p50/p99/max latency, and the snapshots taken during the run (from the
# nodes' /metrics).
#
#   SIZE_MIB=1024 bench/disk.sh
#
# Environment: SIZE_MIB (default 256), DURATION (default 10), SNAPSHOT_EVERY
# (default 1024), MODES (default "memory disk"), BENCH_DIR (default
# /tmp/sqraft-disk-bench).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
SQRAFT=${SQRAFT_BIN:-$BUILD/sqraft}
SIZE_MIB=${SIZE_MIB:-256}
DURATION=${DURATION:-10}
SNAPSHOT_EVERY=${SNAPSHOT_EVERY:-1024}
MODES=${MODES:-memory disk}
DIR=${BENCH_DIR:-/tmp/sqraft-disk-bench}
NAME=sqraft-disk-$$

if [ -z "${SQRAFT_BIN:-}" ]; then
  if [ ! -f "$BUILD/build.ninja" ]; then meson setup "$BUILD" "$ROOT" >/dev/null; fi
  ninja -C "$BUILD" sqraft >/dev/null
fi
command -v jq >/dev/null || apt-get install -y jq >/dev/null

ADDR=("" "@$NAME-1" "@$NAME-2" "@$NAME-3")
CLUSTER="1@${ADDR[1]},2@${ADDR[2]},3@${ADDR[3]}"
SERVERS="${ADDR[1]},${ADDR[2]},${ADDR[3]}"
PID=("" "" "" "")
METRICS_PORT=$((19000 + $$ % 1000))
cleanup() {
  for i in 1 2 3; do [ -n "${PID[$i]}" ] && kill -9 "${PID[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

shell() { "$SQRAFT" shell -s "$SERVERS" --timeout-ms 60000 "$@"; }
rss() {
  local out=""
  for i in 1 2 3; do out="$out n$i=$(awk '/VmRSS/ {print int($2/1024)}' "/proc/${PID[$i]}/status") MiB"; done
  echo "$out"
}
snapshots() {
  local total=0 n
  for i in 1 2 3; do
    n=$(curl -s "http://127.0.0.1:$((METRICS_PORT + i))/metrics" | awk '/^sqraft_snapshots_taken_total/ {print $2}')
    total=$((total + ${n:-0}))
  done
  echo "$total"
}

for mode in $MODES; do
  rm -rf "$DIR"
  mkdir -p "$DIR"
  for i in 1 2 3; do
    "$SQRAFT" node --id "$i" --address "${ADDR[$i]}" --dir "$DIR/n$i" --cluster "$CLUSTER" --storage "$mode" \
      --snapshot-threshold "$SNAPSHOT_EVERY" --metrics-address "127.0.0.1:$((METRICS_PORT + i))" \
      --log-level warn >"$DIR/n$i.log" 2>&1 &
    PID[$i]=$!
  done
  for _ in $(seq 1 100); do shell big .leader >/dev/null 2>&1 && break; sleep 0.2; done
  shell big "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)" >/dev/null
  t0=$(date +%s%N)
  for _ in $(seq 1 $(((SIZE_MIB + 9) / 10))); do
    shell big "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<2560)
               INSERT INTO blobs (data) SELECT randomblob(4096) FROM s" >/dev/null
  done
  t1=$(date +%s%N)
  size=$(shell big "SELECT page_count * page_size / 1048576 FROM pragma_page_count, pragma_page_size")
  echo "$mode: loaded a ${size} MiB database in $(((t1 - t0) / 1000000)) ms; resident:$(rss)"
  before=$(snapshots)
  json=$("$SQRAFT" bench -s "$SERVERS" --workload kvwrite --duration "$DURATION" --json -q)
  after=$(snapshots)
  echo "$json" >"$DIR/../sqraft-disk-bench-$mode.json" 2>/dev/null || true
  echo "$mode: kvwrite x1 $(echo "$json" | jq -r '"\(.ops_per_s | floor) ops/s, p50 \(.latency_ms.p50) ms, p99 \(.latency_ms.p99) ms, max \(.latency_ms.max) ms, errors \(.error_count)"'); $((after - before)) snapshots taken during the run (3 nodes)"
  echo "$mode: after the run, resident:$(rss); data directories: $(du -sm "$DIR"/n1 "$DIR"/n2 "$DIR"/n3 | awk '{printf "%s MiB ", $1}')"
  for i in 1 2 3; do kill -TERM "${PID[$i]}" 2>/dev/null || true; done
  for i in 1 2 3; do wait "${PID[$i]}" 2>/dev/null || true; PID[$i]=""; done
done
