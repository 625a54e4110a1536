#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine: installs what is missing, configures,
# builds and runs.
#
#   ./dev.sh demo [ARGS]     build and run the swarm demo (ARGS: --nodes N, --svg PATH, --seed S, --ipv6, --verbose, --help)
#   ./dev.sh test [PRESET]   build and run every test (preset: ci by default, with ASan + UBSan; tsan, clang, dev)
#   ./dev.sh bench [ARGS]    build the benchmarks in Release and run them (ARGS go to Google Benchmark)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PACKAGES=(g++ clang cmake ninja-build libboost1.81-dev libspdlog-dev libfmt-dev libgtest-dev
          libbenchmark-dev libclang-rt-14-dev pkgconf)

install_missing() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "dev.sh: installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

njobs() { nproc 2>/dev/null || echo 2; }

build() {  # build PRESET [TARGET...]
  local preset=$1; shift
  cmake --preset "$preset" >/dev/null
  if [ $# -gt 0 ]; then
    cmake --build --preset "$preset" -j "$(njobs)" --target "$@"
  else
    cmake --build --preset "$preset" -j "$(njobs)"
  fi
}

cmd=${1:-test}; shift || true
install_missing
case "$cmd" in
  demo)
    build dev swarm_demo
    ./build/dev/examples/swarm_demo "$@"
    ;;
  test)
    preset=${1:-ci}
    build "$preset"
    ctest --preset "$preset" -j "$(njobs)"
    ;;
  bench)
    build bench
    ./build/bench/tests/bench/connmgr_bench "$@"
    ;;
  *)
    echo "usage: ./dev.sh demo | test [preset] | bench [benchmark args]" >&2
    exit 2
    ;;
esac
