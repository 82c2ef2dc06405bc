#!/bin/bash
# bench/compare.sh: sqraft against the real dqlite, same client, same workloads.
#
# Starts a 3-node sqraft cluster (127.0.0.1:$SQRAFT_PORT..+2) and the reference
# dqlite cluster (../shared/bench/dqlite-reference.sh, 127.0.0.1:$DQLITE_PORT..+2;
# its dqlite-demo HTTP API takes $DQLITE_PORT+100..+102, so the sqraft ports
# must stay clear of those), runs `sqraft bench --json` against each and prints
# a table. Both clusters are stopped on exit. The JSON of every run is saved
# under /tmp/sqraft-bench-results/ (outside the repository).
#
#   BENCH_DURATION=5 bench/compare.sh
# Environment: BENCH_DURATION (seconds per run, default 10), SQRAFT_BIN, SQRAFT_PORT
# (default 9701), DQLITE_PORT (default 9401), BENCH_RESULTS_DIR,
# SQRAFT_NODE_ARGS (more `sqraft node` options, e.g. "--storage disk").
# Needs root for apt-get when go-dqlite or jq is missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
# SQRAFT_BIN: another sqraft binary to measure (e.g. a build of an earlier
# commit, for before/after figures); then nothing is built.
SQRAFT=${SQRAFT_BIN:-$BUILD/sqraft}
REFERENCE=$(cd "$ROOT/.." && pwd)/shared/bench/dqlite-reference.sh
DURATION=${BENCH_DURATION:-10}
SQ_PORT=${SQRAFT_PORT:-9701}
DQ_PORT=${DQLITE_PORT:-9401}
RESULTS_DIR=${BENCH_RESULTS_DIR:-/tmp/sqraft-bench-results}
RESULTS=$RESULTS_DIR/compare-$(date +%Y%m%d-%H%M%S).json
# workload:workers
RUNS=("kvwrite:1" "kvwrite:8" "kvread:4")

log() { echo "compare: $*" >&2; }
die() { log "$*"; exit 1; }

# ---- prerequisites --------------------------------------------------------------
apt_install() {
  log "installing $1"
  apt-get install -y "$1" >/dev/null || { apt-get update >/dev/null && apt-get install -y "$1" >/dev/null; } ||
    die "cannot install $1"
}
if ! command -v dqlite-demo >/dev/null || ! command -v dqlite >/dev/null; then apt_install go-dqlite; fi
command -v jq >/dev/null || apt_install jq
[ -f "$REFERENCE" ] || die "missing $REFERENCE"

if [ -n "${SQRAFT_BIN:-}" ]; then
  [ -x "$SQRAFT" ] || die "SQRAFT_BIN=$SQRAFT is not executable"
elif [ ! -f "$BUILD/build.ninja" ]; then
  log "configuring $BUILD"
  meson setup "$BUILD" "$ROOT" >/dev/null
fi
if [ -z "${SQRAFT_BIN:-}" ] && ! ninja -C "$BUILD" sqraft >"$BUILD/compare-build.log" 2>&1; then
  [ -x "$SQRAFT" ] || { cat "$BUILD/compare-build.log" >&2; die "cannot build sqraft"; }
  log "warning: building sqraft failed (see $BUILD/compare-build.log); using the existing $SQRAFT"
fi

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $SQ_PORT $((SQ_PORT + 1)) $((SQ_PORT + 2)) \
         $DQ_PORT $((DQ_PORT + 1)) $((DQ_PORT + 2)) $((DQ_PORT + 100)) $((DQ_PORT + 101)) $((DQ_PORT + 102)); do
  port_busy "$p" && die "port $p is in use (set SQRAFT_PORT / DQLITE_PORT)"
done

# ---- clusters -------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/sqraft-compare.XXXXXX)
SQ_PIDS=()
KEEP_WORK=0

cleanup() {
  local rc=$?
  set +e
  if [ ${#SQ_PIDS[@]} -gt 0 ]; then
    kill -TERM "${SQ_PIDS[@]}" 2>/dev/null
    for _ in $(seq 1 100); do
      kill -0 "${SQ_PIDS[@]}" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "${SQ_PIDS[@]}" 2>/dev/null
    wait "${SQ_PIDS[@]}" 2>/dev/null
  fi
  bash "$REFERENCE" stop "$DQ_PORT" "$WORK/dqlite" >/dev/null 2>&1
  if [ $rc -ne 0 ] || [ $KEEP_WORK -ne 0 ]; then
    log "logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SQ_SERVERS=""
SQ_CLUSTER=""
for i in 1 2 3; do
  a=127.0.0.1:$((SQ_PORT + i - 1))
  SQ_SERVERS+=${SQ_SERVERS:+,}$a
  SQ_CLUSTER+=${SQ_CLUSTER:+,}$i@$a
done
DQ_SERVERS=127.0.0.1:$DQ_PORT,127.0.0.1:$((DQ_PORT + 1)),127.0.0.1:$((DQ_PORT + 2))

log "starting sqraft on $SQ_SERVERS"
for i in 1 2 3; do
  mkdir -p "$WORK/sqraft/n$i"
  "$SQRAFT" node --id "$i" --address "127.0.0.1:$((SQ_PORT + i - 1))" --dir "$WORK/sqraft/n$i" \
    --cluster "$SQ_CLUSTER" --log-level warn ${SQRAFT_NODE_ARGS:-} >"$WORK/sqraft/n$i.log" 2>&1 &
  SQ_PIDS+=($!)
done

log "starting dqlite on $DQ_SERVERS"
bash "$REFERENCE" start "$DQ_PORT" "$WORK/dqlite" >"$WORK/dqlite-start.log" 2>&1 ||
  { cat "$WORK/dqlite-start.log" >&2; die "the reference dqlite cluster did not start"; }
[ "$(grep -c voter "$WORK/dqlite-start.log")" = 3 ] ||
  { cat "$WORK/dqlite-start.log" >&2; die "the reference dqlite cluster has no 3 voters"; }

# A short run on each doubles as the wait for a leader and as a warm-up.
for side in sqraft dqlite; do
  servers=$SQ_SERVERS
  [ $side = dqlite ] && servers=$DQ_SERVERS
  "$SQRAFT" bench -s "$servers" --db warmup --duration 0.5 --connect-timeout 30 >"$WORK/warmup-$side.txt" 2>&1 ||
    { cat "$WORK/warmup-$side.txt" >&2; die "$side: no leader within 30 s"; }
done
log "both clusters have a leader; ${DURATION} s per run"

# ---- runs -------------------------------------------------------------------------------
# run SIDE SERVERS WORKLOAD WORKERS: the JSON report, or {"failed": "..."}.
run() {
  local out
  if out=$("$SQRAFT" bench -s "$2" --db bench --workload "$3" --workers "$4" --duration "$DURATION" \
             --connect-timeout 30 --json 2>"$WORK/$1-$3-$4.err"); then
    echo "$out"
  else
    jq -n --arg e "$(cat "$WORK/$1-$3-$4.err")" '{failed: $e}'
  fi
}

for r in "${RUNS[@]}"; do
  w=${r%%:*}
  n=${r##*:}
  log "$w, $n worker(s): sqraft"
  run sqraft "$SQ_SERVERS" "$w" "$n" >"$WORK/run-$w-$n-sqraft.json"
  log "$w, $n worker(s): dqlite"
  run dqlite "$DQ_SERVERS" "$w" "$n" >"$WORK/run-$w-$n-dqlite.json"
  jq -n --arg w "$w" --argjson n "$n" \
    --slurpfile s "$WORK/run-$w-$n-sqraft.json" --slurpfile d "$WORK/run-$w-$n-dqlite.json" \
    '{workload: $w, workers: $n, sqraft: $s[0], dqlite: $d[0]}' >"$WORK/run-$w-$n.json"
done

mkdir -p "$RESULTS_DIR"
files=()
for r in "${RUNS[@]}"; do files+=("$WORK/run-${r%%:*}-${r##*:}.json"); done
jq -s --arg date "$(date -Iseconds)" --argjson duration "$DURATION" --arg host "$(uname -n)" \
  --argjson cpus "$(nproc)" --arg sq "$SQ_SERVERS" --arg dq "$DQ_SERVERS" \
  '{date: $date, host: $host, cpus: $cpus, duration_s: $duration, sqraft_servers: $sq, dqlite_servers: $dq, runs: .}' \
  "${files[@]}" >"$RESULTS"

# ---- table ----------------------------------------------------------------------------
echo
printf "%-12s %8s %12s %12s %7s %8s %8s %19s %19s\n" workload workers "sqraft ops/s" "dqlite ops/s" ratio \
  "sq errs" "dq errs" "sqraft p50/p99 ms" "dqlite p50/p99 ms"
jq -r '.runs[] |
  def side(x): if x.failed then ["-", "failed", "-"]
               else [(x.ops_per_s * 10 | round / 10 | tostring), (x.error_count | tostring),
                     "\(x.latency_ms.p50 * 1000 | round / 1000)/\(x.latency_ms.p99 * 1000 | round / 1000)"] end;
  side(.sqraft) as $s | side(.dqlite) as $d |
  (if .sqraft.failed or .dqlite.failed or .dqlite.ops_per_s == 0 then "-"
   else (.sqraft.ops_per_s / .dqlite.ops_per_s * 100 | round / 100 | tostring) end) as $ratio |
  [.workload, (.workers | tostring), $s[0], $d[0], $ratio, $s[1], $d[1], $s[2], $d[2]] | @tsv' "$RESULTS" |
  while IFS=$'\t' read -r w n sq dq ratio se de sl dl; do
    printf "%-12s %8s %12s %12s %7s %8s %8s %19s %19s\n" "$w" "$n" "$sq" "$dq" "$ratio" "$se" "$de" "$sl" "$dl"
  done
echo
echo "ratio = sqraft ops/s / dqlite ops/s; latencies of successful operations; ${DURATION} s per run, $(nproc) CPUs"
jq -r '.runs[] | select((.sqraft.error_count // 0) + (.dqlite.error_count // 0) > 0 or .sqraft.failed or .dqlite.failed) |
  "errors in \(.workload) x\(.workers): sqraft \(.sqraft.failed // .sqraft.errors) dqlite \(.dqlite.failed // .dqlite.errors)"' \
  "$RESULTS"
echo "JSON results: $RESULTS"
