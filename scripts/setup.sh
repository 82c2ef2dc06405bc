#!/bin/sh
# Installs the Debian packages sqraft needs to build, test and run.
# Safe to run any number of times: it installs only what is missing.
set -eu

PACKAGES="
  g++ meson ninja-build pkg-config
  libsqlite3-dev sqlite3 libuv1-dev libraft-dev
  libprotobuf-dev protobuf-compiler doctest-dev
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libedit-dev libxxhash-dev liblz4-dev libbenchmark-dev libcpp-httplib-dev
  clang libclang-rt-dev
"
# clang and its libFuzzer runtime (libclang-rt-dev): the fuzz suite's build
# (scripts/fuzz.sh, build-fuzz/).
# Reference peers for interop tests and benchmark comparisons, and promtool
# (package prometheus) that checks the /metrics page in the suite.
# The fault suite (test/fault/) runs nodes in network namespaces: ip and tc
# (iproute2), nft (nftables), eatmydata for its fsync positive control.
PEERS="go-dqlite libdqlite0 golang-go golang-github-canonical-go-dqlite-dev prometheus
  iproute2 nftables eatmydata"

missing=""
for p in $PACKAGES ${SQRAFT_WITH_PEERS:+$PEERS}; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done

if [ -z "$missing" ]; then
  exit 0
fi

echo "setup: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have empty package lists; refresh them once if needed.
if ! $SUDO apt-get install -y --no-install-recommends $missing; then
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends $missing
fi
