#!/usr/bin/env bash
# CPython's own test_sqlite3 under libsqraft_preload.so.
#
#   scripts/cpython-sqlite3.sh [--nodes 1|3] [--plain] [--files] [--build DIR] [-- extra regrtest args]
#
# Debian's libpython3.11-testsuite does not ship test_sqlite3, so the script
# fetches the python3.11 source package with a private APT sources list (a
# deb-src line for this machine's own Debian archive; /etc is not touched),
# takes Lib/test/test_sqlite3 from it and lays it beside Debian's installed
# `test` package (/usr/lib/python3.11/test/test_sqlite3; removed again at
# the end). Then it runs `/usr/bin/python3.11 -m test -v test_sqlite3`:
#   --plain     without the preload (the baseline);
#   otherwise   under the preload on a 1-node (default) or 3-node cluster,
#               with SQRAFT_TEST_MEMORY=1 so that ":memory:" and temporary
#               databases become fresh replicated ones (most of the suite's
#               connections); --files replicates the tests' named files too
#               (SQRAFT_DATABASES='*'), which the suite expects to find on
#               disk and to delete between tests. With 3 nodes the
#               suite runs on one node while two `sqraft node` processes
#               complete the cluster; their state hashes are compared at the
#               end.
# Prints the summary line and every test that did not pass.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
nodes=1
plain=0
files=0
build="$here/build"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --plain) plain=1; shift ;;
    --files) files=1; shift ;;
    --build) build=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [--nodes 1|3] [--plain] [--files] [--build DIR] [-- regrtest args]" >&2; exit 2 ;;
  esac
done
extra=("$@")
build=$(cd "$build" && pwd)
py=/usr/bin/python3.11
[[ -x $py ]] || apt-get install -y python3.11 >/dev/null
work=$(mktemp -d /tmp/sqraft-cpython-XXXXXX)
target=/usr/lib/python3.11/test/test_sqlite3
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -f $work/installed ]] && rm -rf "$target"
  rm -rf "$work"
}
trap cleanup EXIT

# ---- the tests, from the source package -------------------------------------
cache=${SQRAFT_CPYTHON_CACHE:-/var/cache/sqraft-cpython}
mkdir -p "$cache"
if ! ls "$cache"/python3.11_*.orig.tar.* >/dev/null 2>&1; then
  apt_dir="$work/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
  # The machine's own archive, as a deb-src line.
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [[ -n $uri ]] || uri=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${uri:-http://deb.debian.org/debian} $suite main" \
    > "$apt_dir/sources.list"
  opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives")
  apt-get "${opts[@]}" -o APT::Sandbox::User=root update -qq
  (cd "$cache" && apt-get "${opts[@]}" -o APT::Sandbox::User=root source --download-only -qq python3.11)
fi
orig=$(ls "$cache"/python3.11_*.orig.tar.* | head -1)
if [[ ! -d $target ]]; then
  tar -xaf "$orig" -C "$work" --wildcards '*/Lib/test/test_sqlite3/*'
  cp -r "$work"/Python-*/Lib/test/test_sqlite3 "$target"
  touch "$work/installed"
fi

# ---- the run ------------------------------------------------------------------
run_dir="$work/run"
mkdir -p "$run_dir"
env_vars=()
if [[ $plain == 0 ]]; then
  port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  addrs=()
  for i in $(seq 1 "$nodes"); do addrs+=("127.0.0.1:$(port)"); done
  cluster=""
  for i in $(seq 1 "$nodes"); do cluster+="${cluster:+,}$i@${addrs[$((i - 1))]}"; done
  # The suite's process must lead (only the leader creates its fresh
  # databases): the other nodes wait 20x longer before they stand.
  for i in $(seq 2 "$nodes"); do
    "$build/sqraft" node --id "$i" --address "${addrs[$((i - 1))]}" --dir "$work/node-$i" --cluster "$cluster" \
      --latency-ms 100 > "$work/node-$i.log" 2>&1 &
    pids+=($!)
  done
  preload="$build/libsqraft_preload.so"
  # A sanitizer build's library needs its runtime loaded first.
  runtimes=$(ldd "$preload" | awk '/libasan|libubsan/ && $3 ~ /^\// {print $3}' | paste -sd: -)
  if [[ -n $runtimes ]]; then
    preload="$runtimes:$preload"
    export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  fi
  env_vars=(LD_PRELOAD="$preload" SQRAFT_ID=1 SQRAFT_ADDRESS="${addrs[0]}"
            SQRAFT_DIR="$work/node-1" SQRAFT_CLUSTER="$cluster" SQRAFT_LATENCY_MS=5 SQRAFT_TEST_MEMORY=1)
  [[ $files == 1 ]] && env_vars+=(SQRAFT_DATABASES='*')
fi
if [[ $plain == 0 ]]; then
  # The preload must really be in: a ":memory:" connection names the leader
  # (a node of its own, so that the cluster's leadership stays put).
  probe_addr="127.0.0.1:$(port)"
  probe=$(cd "$run_dir" && env "${env_vars[@]}" SQRAFT_ID=9 SQRAFT_ADDRESS="$probe_addr" SQRAFT_DIR="$work/probe" \
    SQRAFT_CLUSTER="9@$probe_addr" "$py" -c \
    'import sqlite3; print(sqlite3.connect(":memory:").execute("PRAGMA sqraft_leader").fetchone()[0])' 2>&1 || true)
  if [[ $probe != "$probe_addr" ]]; then
    echo "the preload is not in effect (PRAGMA sqraft_leader gave: $probe)" >&2
    exit 1
  fi
fi
set +e
(cd "$run_dir" && env "${env_vars[@]}" "$py" -m test -v test_sqlite3 "${extra[@]}") > "$work/out.log" 2>&1
rc=$?
set -e
grep -E '^(Ran |OK|FAILED)' "$work/out.log" | tail -3
if [[ $plain == 0 && $nodes -gt 1 ]]; then
  # Every follower checks the leader's state hash of each database at every
  # commit it applies and stops loudly on a difference: still running, with
  # no critical line, means the same hashes everywhere.
  for i in $(seq 2 "$nodes"); do
    if kill -0 "${pids[$((i - 2))]}" 2>/dev/null && ! grep -qiE 'critical|divergence|FATAL' "$work/node-$i.log"; then
      echo "node $i: running, state hashes matched the leader's at every commit"
    else
      echo "node $i: STOPPED or diverged:"; grep -iE 'critical|divergence|FATAL' "$work/node-$i.log" | head -5
      rc=1
    fi
  done
fi
grep -E '\.\.\. (FAIL|ERROR)$|^(FAIL|ERROR): ' "$work/out.log" | sort -u | head -200
if [[ -n ${SQRAFT_CPYTHON_LOG:-} ]]; then cp "$work/out.log" "$SQRAFT_CPYTHON_LOG"; fi
echo "exit status $rc"
