#!/usr/bin/env bash
# Tests scripts/check_layers.sh: it passes on the repository as it is, and fails, naming
# the file, on each kind of violation planted in a copy.
#
#   tests/scripts/check_layers_test.sh REPOSITORY
set -uo pipefail
repo=${1:?usage: check_layers_test.sh REPOSITORY}
check="$repo/scripts/check_layers.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

fresh_copy() {
  rm -rf "$work/tree"
  mkdir -p "$work/tree"
  cp -r "$repo/include" "$repo/src" "$repo/examples" "$work/tree/"
}

# expect_violation NAME FILE LINE_TO_ADD EXPECTED_TEXT
expect_violation() {
  local name=$1 file=$2 line=$3 expected=$4
  fresh_copy
  if [[ $file == */ ]]; then  # a new folder, with one header in it
    mkdir -p "$work/tree/$file"
    printf '%s\n' "$line" >"$work/tree/${file}thing.hpp"
  else
    printf '%s\n' "$line" >>"$work/tree/$file"
  fi
  local out
  if out=$("$check" "$work/tree" 2>&1); then
    echo "FAIL $name: the check passed"
    failures=$((failures + 1))
  elif ! grep -qF "$file" <<<"$out" || ! grep -qF "$expected" <<<"$out"; then
    echo "FAIL $name: expected '$file' and '$expected' in:"
    echo "$out"
    failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
}

fresh_copy
if out=$("$check" "$work/tree" 2>&1); then
  echo "ok   the repository passes"
else
  echo "FAIL the repository itself: $out"
  failures=$((failures + 1))
fi

expect_violation "a unit includes the core" src/trim/victims.hpp \
  '#include "manager/core.hpp"' 'layer 2 (trim) includes "manager/core.hpp" from layer 3'
expect_violation "the foundation includes a unit" src/base/config.cpp \
  '#include "pool/pool.hpp"' 'layer 1 (base) includes "pool/pool.hpp" from layer 2'
expect_violation "a public header includes a source header" include/dep2p/connmgr/types.hpp \
  '#include "base/token_owners.hpp"' 'public header includes "base/token_owners.hpp"'
expect_violation "a public header includes a source header with brackets" \
  include/dep2p/connmgr/types.hpp '#include <net/prefix.hpp>' 'public header includes a source-tree header'
expect_violation "the core includes the realm layer" src/manager/core.cpp \
  '#include "realm/realm_state.hpp"' 'the core includes "realm/realm_state.hpp"'
expect_violation "the realm layer goes round the extension" src/realm/realm_manager.cpp \
  '#include "manager/core.hpp"' 'its door to the core is manager/extension.hpp'
expect_violation "an example includes a source header" examples/basic_usage.cpp \
  '#include "pool/pool.hpp"' 'example includes "pool/pool.hpp"'
expect_violation "a folder with no layer" src/misc/ \
  '#pragma once' "folder 'misc' has no layer"

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
