#!/bin/sh
# Installs what is missing, builds sqraft and runs every test.
#   scripts/test.sh              the normal build (build/)
#   scripts/test.sh --sanitize   the same suite under ASan + UBSan (build-asan/)
# Extra arguments after the option go to `meson test` (e.g. --suite unit).
set -eu
cd "$(dirname "$0")/.."

SQRAFT_WITH_PEERS=1 ./scripts/setup.sh

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
ninja -C "$dir"
meson test -C "$dir" --print-errorlogs "$@"
