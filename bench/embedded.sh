#!/bin/bash
# bench/embedded.sh: the SQLite-replacement mode against the server and
# against plain SQLite, in one run.
#
#   BENCH_DURATION=5 bench/embedded.sh
#
# 1. server: a 3-node `sqraft node` cluster, `sqraft bench kvwrite`, 1 worker.
# 2. embedded: the same workload by a plain SQLite program
#    (sqraft-embedded-bench) under LD_PRELOAD=libsqraft_preload.so, its
#    process being node 1 (the leader) of a 3-node cluster; then kvread of
#    1000 rows on it (local reads).
# 3. plain SQLite: kvread of the same 1000 rows from a WAL file on SQLite's
#    own VFS; kvwrite and kvread on a local file with and without the preload
#    loaded (the preload's cost on a database it does not replicate), three
#    alternating rounds, medians compared.
# Environment: BENCH_DURATION (seconds per run, default 10), SQRAFT_PORT
# (default 9801).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
SQRAFT=$BUILD/sqraft
EMB=$BUILD/bench/sqraft-embedded-bench
PRELOAD=$BUILD/libsqraft_preload.so
D=${BENCH_DURATION:-10}
P=${SQRAFT_PORT:-9801}
command -v jq >/dev/null || apt-get install -y jq >/dev/null
ninja -C "$BUILD" sqraft bench/sqraft-embedded-bench libsqraft_preload.so >/dev/null
WORK=$(mktemp -d /tmp/sqraft-embedded-bench.XXXXXX)
PIDS=()
stop_nodes() {
  [ ${#PIDS[@]} -gt 0 ] || return 0
  kill -TERM "${PIDS[@]}" 2>/dev/null || true
  wait "${PIDS[@]}" 2>/dev/null || true
  PIDS=()
}
trap 'stop_nodes; rm -rf "$WORK"' EXIT
CLUSTER="1@127.0.0.1:$P,2@127.0.0.1:$((P + 1)),3@127.0.0.1:$((P + 2))"
log() { echo "embedded: $*" >&2; }
ops() { jq -r '.ops_per_s' <<<"$1"; }

# ---- 1. the server -------------------------------------------------------------
log "server: 3 sqraft nodes, kvwrite x1 for $D s"
for i in 1 2 3; do
  "$SQRAFT" node --id "$i" --address "127.0.0.1:$((P + i - 1))" --dir "$WORK/server/n$i" --cluster "$CLUSTER" \
    --log-level warn >"$WORK/server-n$i.log" 2>&1 &
  PIDS+=($!)
done
SERVERS=127.0.0.1:$P,127.0.0.1:$((P + 1)),127.0.0.1:$((P + 2))
"$SQRAFT" bench -s "$SERVERS" --db warmup --duration 0.5 --connect-timeout 30 >/dev/null
server_write=$("$SQRAFT" bench -s "$SERVERS" --db bench --workload kvwrite --workers 1 --duration "$D" --json)
stop_nodes

# ---- 2. embedded -------------------------------------------------------------------
# Nodes 2 and 3 wait 5x longer before they stand, so the program's node leads.
log "embedded: node 1 in the program, nodes 2 and 3 as sqraft node"
for i in 2 3; do
  "$SQRAFT" node --id "$i" --address "127.0.0.1:$((P + i - 1))" --dir "$WORK/emb/n$i" --cluster "$CLUSTER" \
    --latency-ms 100 --log-level warn >"$WORK/emb-n$i.log" 2>&1 &
  PIDS+=($!)
done
emb_env=(LD_PRELOAD="$PRELOAD" SQRAFT_ID=1 SQRAFT_ADDRESS="127.0.0.1:$P" SQRAFT_DIR="$WORK/emb/n1"
         SQRAFT_CLUSTER="$CLUSTER" SQRAFT_DATABASES="bench.db")
cd "$WORK"
# One process: a warm-up while the cluster forms, kvwrite, then the rows
# for kvread and kvread itself (a second process would find node 1 a
# follower: the first one hands leadership over at exit).
emb=$(env "${emb_env[@]}" "$EMB" bench.db write 1 write "$D" fill 1000 read "$D")
emb_write=$(sed -n 2p <<<"$emb")
emb_read=$(sed -n 4p <<<"$emb")
stop_nodes

# ---- 3. plain SQLite -----------------------------------------------------------------
log "plain SQLite on its own VFS, with and without the preload loaded"
"$EMB" plain-read.db fill 1000 >/dev/null
plain_read=$("$EMB" plain-read.db read "$D")
pre_env=(LD_PRELOAD="$PRELOAD" SQRAFT_ID=1 SQRAFT_ADDRESS="127.0.0.1:$P" SQRAFT_DIR="$WORK/unused"
         SQRAFT_DATABASES="other.db")
# Without and with the preload, alternating three times (the median of each
# side): this machine's noise between two runs is larger than the cost.
median() { sort -n | sed -n 2p; }
pw=() ; ppw=() ; pr=() ; ppr=()
for round in 1 2 3; do
  pw+=("$(ops "$("$EMB" "plain-w$round.db" write "$D")")")
  ppw+=("$(ops "$(env "${pre_env[@]}" "$EMB" "preload-w$round.db" write "$D")")")
  pr+=("$(ops "$("$EMB" plain-read.db read "$D")")")
  ppr+=("$(ops "$(env "${pre_env[@]}" "$EMB" plain-read.db read "$D")")")
done
plain_write_ops=$(printf '%s\n' "${pw[@]}" | median)
preload_write_ops=$(printf '%s\n' "${ppw[@]}" | median)
plain_read_ops=$(printf '%s\n' "${pr[@]}" | median)
preload_read_ops=$(printf '%s\n' "${ppr[@]}" | median)
[ ! -e "$WORK/unused" ] || { log "the preload started a node for a plain file"; exit 1; }
cd - >/dev/null

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
echo "| measure (${D} s each) | ops/s | against | ratio |"
echo "|---|---|---|---|"
echo "| embedded kvwrite x1, 3 nodes | $(ops "$emb_write") | server kvwrite x1: $(printf "%.1f" "$(ops "$server_write")") | $(ratio "$(ops "$emb_write")" "$(ops "$server_write")") |"
echo "| embedded kvread (local) | $(ops "$emb_read") | plain SQLite kvread: $(ops "$plain_read") | $(ratio "$(ops "$emb_read")" "$(ops "$plain_read")") |"
echo "| preload loaded, plain-file kvwrite (median of 3) | $preload_write_ops | without preload: $plain_write_ops | $(ratio "$preload_write_ops" "$plain_write_ops") |"
echo "| preload loaded, plain-file kvread (median of 3) | $preload_read_ops | without preload: $plain_read_ops | $(ratio "$preload_read_ops" "$plain_read_ops") |"
echo
echo "errors: embedded write $(jq .errors <<<"$emb_write"), read $(jq .errors <<<"$emb_read"); server $(jq .error_count <<<"$server_write")"
