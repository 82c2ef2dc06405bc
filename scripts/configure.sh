#!/bin/sh
# Configures the build directory once and prints its name:
#   scripts/configure.sh              build/      (the normal build)
#   scripts/configure.sh --sanitize   build-asan/ (ASan + UBSan)
# Used by test.sh and hostile.sh; meson's own output goes to stderr.
set -eu
cd "$(dirname "$0")/.."
dir=build
opts=""
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  opts="-Db_sanitize=address,undefined -Db_lundef=false"
fi
if [ ! -f "$dir/build.ninja" ]; then
  # shellcheck disable=SC2086
  meson setup "$dir" $opts >&2
fi
echo "$dir"
