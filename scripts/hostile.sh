#!/bin/sh
# The hostile-SQL run: random and adversarial SQL from several clients against
# a 3-node cluster of real `sqraft node` processes, then checks (no crash, no
# election, identical databases on every node, writable at the end).
#   scripts/hostile.sh --duration 1200 --seed 7 [--clients 4] [--verbose]
#   scripts/hostile.sh --sanitize --duration 120    (ASan + UBSan build)
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
dir=build
opts=""
if [ "${1:-}" = "--sanitize" ]; then
  shift
  dir=build-asan
  opts="-Db_sanitize=address,undefined -Db_lundef=false"
fi
if [ ! -f "$dir/build.ninja" ]; then
  # shellcheck disable=SC2086
  meson setup "$dir" $opts
fi
ninja -C "$dir" sqraft test/sqraft-hostile
SQRAFT_BIN="$dir/sqraft" exec "$dir/test/sqraft-hostile" "$@"
