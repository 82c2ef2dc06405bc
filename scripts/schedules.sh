#!/bin/sh
# The long run of the deterministic fault schedules (test/support/fault_schedule.h):
# seeds S .. S+N-1 of random faults × random workloads × 3/5/7 nodes on the
# fixture cluster, each checked after every step (one state hash per applied
# index) and after its heal (identical nodes, no acknowledged write lost).
#   scripts/schedules.sh [--seeds N] [--from S] [--jobs J] [--build-dir DIR] [--no-io-faults]
# I/O faults (failed log appends) are on here, off in the suite's slice:
# libraft 0.15 crashes now and then handling a failed append.
# --jobs runs J processes on consecutive slices of the seeds (the schedules
# mostly wait for writer threads, so 2 pays on 2 cores). A seed that crashes
# its process is recorded as failed and the run goes on from the next one.
# Prints the totals (seeds/s, node counts, steps, faults by kind) and every
# failing seed with how to replay it; exits 1 if any failed.
# Builds in build/ (scripts/configure.sh) unless --build-dir names another.
set -eu
cd "$(dirname "$0")/.."

seeds=10000
from=1
jobs=1
dir=""
io_faults=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --build-dir) dir=$2; shift 2 ;;
    --no-io-faults) io_faults=""; shift ;;
    *) echo "usage: $0 [--seeds N] [--from S] [--jobs J] [--build-dir DIR] [--no-io-faults]" >&2; exit 2 ;;
  esac
done
if [ -z "$dir" ]; then
  ./scripts/setup.sh >&2
  dir=$(./scripts/configure.sh)
fi
ninja -C "$dir" test/schedule-tests >&2
bin="$dir/test/schedule-tests"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Runs seeds [$1, $2) in one process, again from the next seed after a crash.
run_slice() {
  next=$1
  end=$2
  tag=$3
  while [ "$next" -lt "$end" ]; do
    rm -f "$work/progress.$tag"
    rc=0
    SQRAFT_SCHEDULE_FROM=$next SQRAFT_SCHEDULE_SEEDS=$((end - next)) \
      SQRAFT_SCHEDULE_PROGRESS="$work/progress.$tag" SQRAFT_SCHEDULE_FAILURES="$work/failures" \
      SQRAFT_SCHEDULE_STATS="$work/stats" SQRAFT_SCHEDULE_IO_FAULTS=$io_faults \
      "$bin" --test-case='schedule: seeded*' >>"$work/log.$tag" 2>&1 || rc=$?
    # doctest exits 1 when a check failed (the seed is in failures already);
    # anything else is the process dying in the middle of a seed.
    [ "$rc" -le 1 ] && break
    crashed=$(cat "$work/progress.$tag" 2>/dev/null || echo "$next")
    echo "$crashed crashed the process (exit $rc): see the log of slice $tag" >>"$work/failures"
    next=$((crashed + 1))
  done
}

start=$(date +%s)
per=$(( (seeds + jobs - 1) / jobs ))
j=0
while [ "$j" -lt "$jobs" ]; do
  a=$((from + j * per))
  b=$((a + per))
  [ "$b" -gt $((from + seeds)) ] && b=$((from + seeds))
  [ "$a" -lt "$b" ] && run_slice "$a" "$b" "$j" &
  j=$((j + 1))
done
wait
secs=$(( $(date +%s) - start ))
[ "$secs" -gt 0 ] || secs=1

touch "$work/stats" "$work/failures"
failed=$(grep -c '^[0-9]' "$work/failures" || true)
awk -v secs="$secs" -v failed="$failed" '
  { for (i = 1; i <= NF; i++) { split($i, kv, "="); sum[kv[1]] += kv[2]; if (!(kv[1] in seen)) { seen[kv[1]] = 1; order[++n] = kv[1] } } }
  END {
    printf "schedules: %d seeds run in %d s (%.2f seeds/s), %d failed (crashed ones are not in the totals below)\n", sum["seeds"], secs, sum["seeds"] / secs, failed
    printf "  nodes: 3: %d, 5: %d, 7: %d; %d steps (%.1f per seed)\n", sum["nodes3"], sum["nodes5"], sum["nodes7"], sum["steps"], sum["steps"] / (sum["seeds"] ? sum["seeds"] : 1)
    printf "  steps executed (skipped):"
    for (i = 1; i <= n; i++) { k = order[i]; if (k ~ /-skipped$/ || k !~ /^(write|advance|isolate|split|cut-link|cut-one-way|disconnect|heal-net|kill|revive|net-latency|disk-latency|io-fault|depose|transfer|checkpoint)$/) continue; printf " %s=%d(%d)", k, sum[k], sum[k "-skipped"] }
    printf "\n  writes: %d ok, %d failed, %d outcome unknown; %d node-state checks over %d indices\n", sum["writes-ok"], sum["writes-failed"], sum["writes-unknown"], sum["checks"], sum["indices"]
    printf "  snapshots: %d taken, %d restored; %d nodes stopped by I/O failures; %d s of cluster time\n", sum["snapshots-taken"], sum["snapshots-restored"], sum["unavailable-nodes"], sum["cluster-ms"] / 1000
    printf "  RaftIoShim: %d heartbeat hints capped, %d AppendEntries cut at a follower'"'"'s snapshot\n", sum["hints-corrected"], sum["snapshot-skips"]
  }' "$work/stats"
if [ -s "$work/failures" ]; then
  echo "failing seeds (replay: SQRAFT_SCHEDULE_FROM=<seed> SQRAFT_SCHEDULE_SEEDS=1 $bin --test-case='schedule: seeded*'):"
  sort -n "$work/failures"
  for f in "$work"/log.*; do
    grep -q "ERROR\|crashed\|Abort\|Segmentation" "$f" && { echo "--- $f"; cat "$f"; }
  done
  exit 1
fi
