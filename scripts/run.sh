#!/usr/bin/env bash
# Installs what is missing, builds sqraft and runs a local 3-node cluster in
# the foreground until Ctrl-C.
#
#   ./scripts/run.sh
#
# The nodes listen on abstract unix sockets @sqraft-1, @sqraft-2, @sqraft-3
# and keep their data in ./data/node1..3, so a second run restarts the same
# cluster with its databases. Environment:
#   SQRAFT_DATA   data folder (default ./data)
#   SQRAFT_NAME   socket name prefix (default sqraft: @sqraft-1 ...)
#   SQRAFT_LOG    log level of the nodes (default info)
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
if [ ! -f build/build.ninja ]; then meson setup build >/dev/null; fi
ninja -C build sqraft >/dev/null
BIN=$PWD/build/sqraft

DATA=${SQRAFT_DATA:-./data}
NAME=${SQRAFT_NAME:-sqraft}
LEVEL=${SQRAFT_LOG:-info}
ADDRS=("@$NAME-1" "@$NAME-2" "@$NAME-3")
CLUSTER="1@${ADDRS[0]},2@${ADDRS[1]},3@${ADDRS[2]}"
SERVERS=$(IFS=,; echo "${ADDRS[*]}")

mkdir -p "$DATA"
PIDS=()
stopping=0
stop_all() {
  stopping=1
  echo
  echo "run: stopping the cluster (SIGTERM, each node shuts down cleanly)"
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  echo "run: stopped; data kept in $DATA"
}
trap 'stop_all; exit 0' INT TERM

for i in 1 2 3; do
  mkdir -p "$DATA/node$i"
  # --cluster only matters the first time: a node with state on disk rejoins
  # with what it has.
  "$BIN" node --id "$i" --address "${ADDRS[$((i - 1))]}" --dir "$DATA/node$i" \
    --cluster "$CLUSTER" --log-level "$LEVEL" 2> >(sed -u "s/^/[node$i] /" >&2) &
  PIDS+=($!)
done

# Wait (up to 30 s) until the cluster has a leader.
leader=""
deadline=$((SECONDS + 30))
while [ -z "$leader" ] && [ "$SECONDS" -lt "$deadline" ]; do
  leader=$("$BIN" shell -s "$SERVERS" --timeout-ms 500 mydb .leader 2>/dev/null) || leader=""
  [ -n "$leader" ] || sleep 0.2
done
if [ -z "$leader" ]; then
  echo "run: no leader was elected within 30 s; see the node logs above" >&2
  stop_all
  exit 1
fi

cat <<EOF

sqraft: a 3-node cluster is running (leader: $leader)
  node 1  ${ADDRS[0]}   data $DATA/node1
  node 2  ${ADDRS[1]}   data $DATA/node2
  node 3  ${ADDRS[2]}   data $DATA/node3

Talk to it from another terminal:
  $BIN shell -s $SERVERS mydb
  $BIN shell -s $SERVERS mydb "CREATE TABLE t (x); INSERT INTO t VALUES (1); SELECT * FROM t"
  $BIN bench -s $SERVERS --workload kvwrite --duration 5
  dqlite -s $SERVERS mydb        (Debian's go-dqlite shell works too)

Press Ctrl-C to stop the cluster.
EOF

# Run until Ctrl-C (the terminal sends SIGINT to the nodes too; each stops
# cleanly), or until a node exits by itself.
while [ "$stopping" = 0 ]; do
  for idx in 0 1 2; do
    if ! kill -0 "${PIDS[$idx]}" 2>/dev/null; then
      rc=0
      wait "${PIDS[$idx]}" || rc=$?
      if [ "$rc" = 0 ]; then
        echo "run: node $((idx + 1)) stopped; stopping the others"
      else
        echo "run: node $((idx + 1)) exited with status $rc; stopping the others" >&2
      fi
      stop_all
      exit "$rc"
    fi
  done
  sleep 1 &
  wait $! || true  # a signal interrupts the wait, so the trap runs at once
done
