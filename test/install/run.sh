#!/bin/bash
# Installs sqraft from the build directory into a temporary root, then builds
# and runs the C API example against it with nothing but pkg-config: the
# installed header, library and sqraft.pc are enough, and the installed
# `sqraft` binary runs.
#   test/install/run.sh BUILD_DIR
set -euo pipefail
BUILD=$1
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/sqraft-install.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "install test: $*" >&2; exit 1; }

meson install -C "$BUILD" --no-rebuild --destdir "$T/root" >"$T/install.log" 2>&1 ||
  { cat "$T/install.log" >&2; fail "meson install failed"; }
pc=$(find "$T/root" -name sqraft.pc | head -1)
[ -n "$pc" ] || fail "no sqraft.pc installed"
header=$(find "$T/root" -name sqraft.h | head -1)
[ -n "$header" ] || fail "no sqraft.h installed"
bin=$(find "$T/root" -path '*/bin/sqraft' | head -1)
[ -n "$bin" ] || fail "no sqraft binary installed"
libso=$(find "$T/root" -name 'libsqraft.so*' | head -1)
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
PKG_CONFIG_PATH=$(dirname "$pc")
# The files sit under a staging root: pkg-config puts it before every path.
PKG_CONFIG_SYSROOT_DIR="$T/root"
cflags=$(pkg-config --cflags sqraft)
libs=$(pkg-config --libs sqraft)
echo "pkg-config: cflags '$cflags' libs '$libs'"
case "$cflags" in *"$T/root"*) ;; *) fail "cflags do not point into the install root: $cflags" ;; esac
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -o "$T/hello" "$HERE/hello.c" $cflags $libs || fail "building the example failed"
libdir=$(dirname "$libso")
out=$(env -u LD_LIBRARY_PATH LD_LIBRARY_PATH="$libdir" timeout 60 "$T/hello" "$T/data/node1" 2>"$T/hello.err") ||
  { cat "$T/hello.err" >&2; fail "the example failed: $out"; }
[ "$out" = "42 hello" ] || fail "the example printed '$out', expected '42 hello'"
echo "the example built with pkg-config against the installed sqraft printed: $out"
LD_LIBRARY_PATH="$libdir" "$bin" --help >/dev/null || fail "the installed sqraft binary does not run"
