#!/usr/bin/env bash
# Packaging check: the library installs as a CMake package that a consumer finds with
# find_package(dep2p_connmgr) or pkg-config, the examples build against that install, and
# the library builds inside a consumer's tree with add_subdirectory, as a shared library
# that exports its public API and nothing of its internals.
#
#   1. installs the library to a staging prefix under a temporary directory: from BUILD_DIR
#      when given (an existing build tree of this repository, such as build/ci, which CI
#      has just built and tested), otherwise from a fresh Release build (no tests or
#      examples, Ninja);
#   2. configures, builds and runs tests/consumers/find_package against that prefix only
#      (CMAKE_PREFIX_PATH; the system's Boost, spdlog and fmt packages are found as usual);
#   3. builds the same program with nothing but `pkg-config --cflags --libs dep2p_connmgr`
#      (PKG_CONFIG_PATH pointing into the prefix) and runs it. The .pc file carries what
#      the exported CMake target carries, so a sanitized install (build/ci: static, ASan +
#      UBSan) brings its -fsanitize flags and a static one brings spdlog and fmt;
#   4. configures examples/ on its own against the prefix (public headers and the package
#      only, warnings as errors), builds basic_usage and the p2p_node library and runs
#      basic_usage. The swarm demo is left out to keep this step short: it adds nothing
#      the p2p_node library does not already show about the package;
#   5. configures, builds and runs tests/consumers/add_subdirectory, which adds this
#      repository's root to its own tree, this time as a shared library
#      (BUILD_SHARED_LIBS=ON), so both library kinds are built and linked; checks the
#      soname (0.MINOR while the major version is 0, README.md "Versioning"), and, since
#      that build has no tests and so hides its internals (DEP2P_CONNMGR_HIDE_INTERNALS,
#      docs/architecture.md "Packaging"), that the .so exports the public API
#      (dep2p::connmgr::version(), ConnectionManager) and no symbol of
#      dep2p::connmgr::detail (such as detail::parse_prefix).
#
#   bash .ci/consumers.sh [BUILD_DIR]
#
# Environment: DEP2P_JOBS (build parallelism, default nproc), DEP2P_KEEP_WORKDIR=1 keeps
# the temporary directory for inspection.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
jobs=${DEP2P_JOBS:-$(nproc 2>/dev/null || echo 2)}
work=$(mktemp -d "${TMPDIR:-/tmp}/dep2p-consumers.XXXXXX")
if [ "${DEP2P_KEEP_WORKDIR:-0}" = 1 ]; then
  echo "consumers: work directory $work"
else
  trap 'rm -rf "$work"' EXIT
fi
prefix=$work/prefix
common=(-G Ninja -DCMAKE_BUILD_TYPE=Release -Wno-dev)

if [ $# -ge 1 ]; then
  library=$1
  [ -f "$library/CMakeCache.txt" ] || { echo "consumers: $library is not a build tree" >&2; exit 2; }
  echo "consumers: installing the library built in $library to $prefix"
  cmake --build "$library" -j "$jobs" --target dep2p_connmgr
else
  library=$work/library
  echo "consumers: building and installing the library to $prefix"
  cmake -S "$root" -B "$library" "${common[@]}" \
    -DDEP2P_CONNMGR_BUILD_TESTS=OFF -DDEP2P_CONNMGR_BUILD_EXAMPLES=OFF \
    -DDEP2P_CONNMGR_INSTALL=ON >/dev/null
  cmake --build "$library" -j "$jobs"
fi
cmake --install "$library" --prefix "$prefix" >/dev/null
config=$(find "$prefix" -path '*/cmake/dep2p_connmgr/dep2p_connmgrConfig.cmake' -print -quit)
[ -n "$config" ] || { echo "consumers: no package config installed" >&2; exit 1; }
libdir=${config%/cmake/dep2p_connmgr/dep2p_connmgrConfig.cmake}
for installed in "$libdir/pkgconfig/dep2p_connmgr.pc" "$prefix/include/dep2p/connmgr/version.hpp" \
                 "$prefix/include/dep2p/connmgr/export.hpp" \
                 "$prefix/include/dep2p/connmgr/testing.hpp" "$prefix/share/doc/dep2p_connmgr/LICENSE"; do
  [ -f "$installed" ] || { echo "consumers: $installed was not installed" >&2; exit 1; }
done
version_macro() {
  sed -nE "s/^#define DEP2P_CONNMGR_VERSION_$1 ([0-9]+)$/\1/p" "$prefix/include/dep2p/connmgr/version.hpp"
}
major=$(version_macro MAJOR)
minor=$(version_macro MINOR)

echo "consumers: find_package consumer"
cmake -S "$root/tests/consumers/find_package" -B "$work/find_package" "${common[@]}" \
  -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/find_package" -j "$jobs"
"$work/find_package/consumer"

echo "consumers: pkg-config consumer"
command -v pkg-config >/dev/null || { echo "consumers: pkg-config is missing (./dev.sh installs pkgconf)" >&2; exit 1; }
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
[ "$(pkg-config --modversion dep2p_connmgr)" = "$major.$minor.$(version_macro PATCH)" ] ||
  { echo "consumers: the .pc file's version is not version.hpp's" >&2; exit 1; }
read -ra pc_flags < <(pkg-config --cflags --libs dep2p_connmgr)
echo "consumers: pkg-config --cflags --libs: ${pc_flags[*]}"
# Unoptimised, as the add_subdirectory consumer: one translation unit, built fastest.
c++ -std=c++20 "$root/tests/consumers/find_package/main.cpp" -o "$work/pkg_config_consumer" "${pc_flags[@]}"
"$work/pkg_config_consumer"

echo "consumers: the examples against the installed package"
cmake -S "$root/examples" -B "$work/examples" "${common[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
  -DDEP2P_CONNMGR_WERROR=ON >/dev/null
cmake --build "$work/examples" -j "$jobs" --target basic_usage p2p_node
"$work/examples/basic_usage" >/dev/null

echo "consumers: add_subdirectory consumer"
# Unoptimised (no build type): what this checks does not depend on it, and it builds fastest.
cmake -S "$root/tests/consumers/add_subdirectory" -B "$work/add_subdirectory" -G Ninja -Wno-dev \
  -DCMAKE_BUILD_TYPE= -DDEP2P_CONNMGR_SOURCE_DIR="$root" -DBUILD_SHARED_LIBS=ON >/dev/null
cmake --build "$work/add_subdirectory" -j "$jobs"
ls "$work/add_subdirectory/dep2p_connmgr"/libdep2p_connmgr.so* >/dev/null ||
  { echo "consumers: the add_subdirectory build made no shared library" >&2; exit 1; }
soname=libdep2p_connmgr.so.$major
[ "$major" = 0 ] && soname=$soname.$minor
readelf -d "$work/add_subdirectory/dep2p_connmgr/libdep2p_connmgr.so" | grep -F "soname: [$soname]" >/dev/null ||
  { echo "consumers: the shared library's soname is not $soname" >&2; exit 1; }
"$work/add_subdirectory/consumer"
# The dynamic symbol table, demangled: the public API in, the internals out.
so=$work/add_subdirectory/dep2p_connmgr/libdep2p_connmgr.so
exported=$(nm -DC --defined-only "$so")
for symbol in 'dep2p::connmgr::version()' 'dep2p::connmgr::ConnectionManager::ConnectionManager('; do
  grep -qF " $symbol" <<<"$exported" || { echo "consumers: $so does not export $symbol" >&2; exit 1; }
done
if internal=$(grep -E '^[0-9a-f]+ [A-Za-z] ((vtable|typeinfo|typeinfo name|guard variable) for )?dep2p::connmgr::detail::' <<<"$exported"); then
  echo "consumers: $so exports internal symbols (dep2p::connmgr::detail), e.g.:" >&2
  head -5 <<<"$internal" >&2
  exit 1
fi
echo "consumers: $so exports $(grep -c ' dep2p::connmgr::' <<<"$exported") symbols of dep2p::connmgr, none of detail"

echo "consumers: the consumers and the examples built and ran"
