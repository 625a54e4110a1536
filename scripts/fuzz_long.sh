#!/usr/bin/env bash
# Longer fuzzing than CI's: each target for SECONDS (default 3600, an hour), growing a corpus kept
# in build/fuzz/corpus/<target> between runs (seeded from tests/fuzz/corpus). Findings go
# to build/fuzz/findings/; new interesting inputs may be copied into tests/fuzz/corpus/.
#
#   scripts/fuzz_long.sh [seconds per target] [target...]
#   targets: operations cidr gater_file node_id admission realm (all by default)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-3600}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(operations cidr gater_file node_id admission realm)

flock /tmp/dep2p-build.lock bash -c \
  'cmake --preset fuzz >/dev/null && cmake --build --preset fuzz -j "$(nproc 2>/dev/null || echo 2)"'

# Each target's own options (default -max_len=4096). operations: a run stops after 48 steps,
# about 192 bytes, and hit counts only measure a run's length (tests/fuzz/operations_fuzz.cpp).
target_options() {
  case "$1" in
    operations) echo "-max_len=192 -use_counters=0" ;;
    *) echo "-max_len=4096" ;;
  esac
}

findings=build/fuzz/findings
mkdir -p "$findings"
status=0
for target in "${targets[@]}"; do
  corpus=build/fuzz/corpus/$target
  mkdir -p "$corpus"
  cp -n tests/fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz_long: $target for ${seconds}s (corpus $corpus)"
  read -r -a options <<<"$(target_options "$target")"
  if ! ./build/fuzz/tests/fuzz/fuzz_"$target" -max_total_time="$seconds" "${options[@]}" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$findings/$target-" "$corpus" 2>&1 | tee "$findings/$target-long.log" | \
        grep -a -E "^#[0-9]+ +(pulse|DONE)|ERROR|fuzz check failed|model disagreement"; then
    :
  fi
  if grep -a -q -E "ERROR|fuzz check failed|model disagreement|Test unit written" \
       "$findings/$target-long.log"; then
    echo "fuzz_long: $target FOUND SOMETHING; see $findings/$target-long.log" >&2
    status=1
  fi
done
exit $status
