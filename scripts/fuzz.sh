#!/bin/sh
# Builds the libFuzzer targets of test/fuzz/ (clang, ASan + UBSan, in
# build-fuzz/) and runs each for a while over its seed corpus.
#
#   scripts/fuzz.sh [--time SECONDS] [--jobs N] [--parallel P] [TARGET...]
#
#   --time S      seconds per target (default 60; a long run: --time 3600)
#   --jobs N      libFuzzer processes per target, sharing its corpus (default 1)
#   --parallel P  targets run at the same time (default 1)
#   TARGET        wire-requests command-apply snapshot-restore client-responses
#                 (default: all four)
#
# The seeds in test/fuzz/corpus/<target>/ are read, never written: new inputs
# go to a work directory (SQRAFT_FUZZ_OUT, default a fresh /tmp/sqraft-fuzz.*)
# whose path is printed, with each target's log, corpus and artifacts.
# A crash, leak, out-of-memory or timeout leaves an artifact there and makes
# the script exit 1; the reproducer is `build-fuzz/test/fuzz/fuzz-TARGET FILE`.
# To keep a fixed crash's input, copy it into test/fuzz/corpus/<target>/
# (test/fuzz/README.md).
#
# Environment: SQRAFT_FUZZ_BUILD (build directory, default build-fuzz),
# SQRAFT_FUZZ_UNIT_TIMEOUT (seconds one input may take, default 60),
# SQRAFT_FUZZ_RSS_MB (a target process's RSS limit, default 4096), SQRAFT_FUZZ_SEED
# (libFuzzer's -seed: the suite fixes it; unset: random),
# SQRAFT_BUILD_JOBS (ninja -j, default 2).
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)

time_s=60
jobs=1
parallel=1
targets=""
while [ $# -gt 0 ]; do
  case "$1" in
    --time) time_s=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *) targets="$targets $1"; shift ;;
  esac
done
all="wire-requests command-apply snapshot-restore client-responses"
targets=${targets:-$all}
for t in $targets; do
  case " $all " in
    *" $t "*) ;;
    *) echo "fuzz: unknown target $t (one of: $all)" >&2; exit 2 ;;
  esac
done

# ---- clang, the build ---------------------------------------------------------
fuzzer_rt_ok() {
  command -v clang++ >/dev/null 2>&1 && [ -f "$(clang++ -print-file-name=libclang_rt.fuzzer-x86_64.a)" ]
}
if ! fuzzer_rt_ok; then
  echo "fuzz: installing clang (Debian packages clang, libclang-rt-dev)" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y --no-install-recommends clang libclang-rt-dev; then
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends clang libclang-rt-dev
  fi
fi

build=${SQRAFT_FUZZ_BUILD:-build-fuzz}
if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$build" -Dfuzz=true \
    -Db_sanitize=address,undefined -Db_lundef=false >"${TMPDIR:-/tmp}/sqraft-fuzz-setup.$$.log" 2>&1 || {
    cat "${TMPDIR:-/tmp}/sqraft-fuzz-setup.$$.log" >&2
    exit 1
  }
  rm -f "${TMPDIR:-/tmp}/sqraft-fuzz-setup.$$.log"
fi
ninja_targets=""
for t in $targets; do ninja_targets="$ninja_targets test/fuzz/fuzz-$t"; done
# shellcheck disable=SC2086  # word splitting intended
nice ninja -C "$build" -j"${SQRAFT_BUILD_JOBS:-2}" $ninja_targets

# ---- the runs -----------------------------------------------------------------
out=${SQRAFT_FUZZ_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/sqraft-fuzz.XXXXXX")}
mkdir -p "$out"
out=$(cd "$out" && pwd)
echo "fuzz: ${time_s} s per target, $jobs job(s) each, work directory $out"

# Runs one target in $out/<target>/ (cwd of libFuzzer, so -jobs logs land
# there as fuzz-<n>.log); its first corpus directory is the work copy,
# which receives new inputs, the second the seeds, only read.
run_target() {
  t=$1
  dir="$out/$t"
  # A work directory used before keeps its corpus (a head start); its last
  # artifacts move aside, its logs go.
  rm -rf "$dir/artifacts.previous" "$dir"/fuzz-*.log "$dir/run.log" "$dir/rc"
  if [ -d "$dir/artifacts" ]; then mv "$dir/artifacts" "$dir/artifacts.previous"; fi
  mkdir -p "$dir/corpus" "$dir/artifacts"
  bin="$src/$build/test/fuzz/fuzz-$t"
  # One allocation over 2 GB is a bug (a size taken from the input, not
  # paid for by it); the process as a whole may grow to 4 GB: in hour-long
  # runs of wire-requests ASan's quarantine and per-thread state (each input
  # starts a node with its own threads) grow its RSS past libFuzzer's
  # default 2 GB limit, while its heap does not grow (heaptrack) and LSan
  # checks every input for leaks.
  set -- -max_total_time="$time_s" -timeout="${SQRAFT_FUZZ_UNIT_TIMEOUT:-60}" \
    -malloc_limit_mb=2048 -rss_limit_mb="${SQRAFT_FUZZ_RSS_MB:-4096}" \
    -artifact_prefix="$dir/artifacts/" -print_final_stats=1
  if [ "$jobs" -gt 1 ]; then set -- "$@" -jobs="$jobs" -workers="$jobs"; fi
  # A fixed seed (the suite's) makes a run's mutations repeatable; 0 or
  # unset: libFuzzer picks one.
  if [ -n "${SQRAFT_FUZZ_SEED:-}" ]; then set -- "$@" -seed="$SQRAFT_FUZZ_SEED"; fi
  rc=0
  (cd "$dir" && nice "$bin" "$@" corpus "$src/test/fuzz/corpus/$t" >run.log 2>&1) || rc=$?
  echo "$rc" >"$dir/rc"
}

# Per target: execs, exec/s, cov, ft from libFuzzer's final stats and last
# status line (summed over jobs: execs and exec/s; cov, ft: the best job).
report_target() {
  t=$1
  dir="$out/$t"
  logs="$dir/run.log"
  if ls "$dir"/fuzz-*.log >/dev/null 2>&1; then logs=$(ls "$dir"/fuzz-*.log); fi
  # shellcheck disable=SC2086
  awk -v t="$t" -v rc="$(cat "$dir/rc")" -v art="$(ls "$dir/artifacts" | wc -l)" '
    /^stat::number_of_executed_units:/ { execs += $2 }
    /^stat::average_exec_per_sec:/ { rate += $2 }
    /^#[0-9]+[ \t]+(NEW|REDUCE|pulse|DONE|INITED)/ {
      for (i = 1; i < NF; i++) {
        if ($i == "cov:" && $(i + 1) + 0 > cov) cov = $(i + 1) + 0
        if ($i == "ft:" && $(i + 1) + 0 > ft) ft = $(i + 1) + 0
      }
    }
    END {
      printf "fuzz: %-17s execs %10d  exec/s %6d  cov %5d  ft %6d  artifacts %d  rc %d\n", t, execs, rate, cov, ft, art, rc
      print execs > "/dev/stderr"
    }' $logs 2>>"$out/execs"
}

running=0
for t in $targets; do
  run_target "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$parallel" ]; then
    wait
    running=0
  fi
done
wait

failed=0
: >"$out/execs"
for t in $targets; do
  report_target "$t"
  if [ "$(cat "$out/$t/rc")" != 0 ] || [ -n "$(ls "$out/$t/artifacts")" ]; then
    failed=1
    echo "fuzz: $t FAILED: see $out/$t/run.log; artifacts:" >&2
    ls "$out/$t/artifacts" | sed "s|^|  $out/$t/artifacts/|" >&2
    grep -h -m3 -E "^(==[0-9]+==ERROR|SUMMARY|fuzz: )|runtime error" "$out/$t"/*.log >&2 || true
  fi
done
total=$(awk '{ s += $1 } END { print s + 0 }' "$out/execs")
echo "fuzz: total execs $total"
exit "$failed"
