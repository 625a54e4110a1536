#!/usr/bin/env bash
# CI: builds the libFuzzer targets (the `fuzz` preset: clang, -fsanitize=fuzzer,address,
# undefined) and runs each for a bounded time from its seed corpus in tests/fuzz/corpus/.
# Any crash, sanitizer report, leak or failed check is a finding and fails the build;
# the input is kept under build/fuzz/findings/ to replay (./fuzz_<target> <file>). Each
# target's speed (executions per second) is printed after its run.
#
#   bash .ci/fuzz.sh [seconds per target]     (default 20)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-20}
targets=(operations cidr gater_file node_id admission realm)

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$(nproc 2>/dev/null || echo 2)"

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
  # A scratch copy of the corpus: what the run discovers stays out of the repository.
  work=$(mktemp -d "${TMPDIR:-/tmp}/dep2p-fuzz-$target.XXXXXX")
  cp tests/fuzz/corpus/"$target"/* "$work"/
  echo "fuzz: $target for ${seconds}s"
  read -r -a options <<<"$(target_options "$target")"
  if ! ./build/fuzz/tests/fuzz/fuzz_"$target" -max_total_time="$seconds" "${options[@]}" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$findings/$target-" "$work" >"$findings/$target.log" 2>&1; then
    echo "fuzz: $target FOUND SOMETHING; see $findings/$target.log" >&2
    grep -a -E "ERROR|fuzz check failed|model disagreement|runtime error|Test unit written" \
      "$findings/$target.log" | head -20 >&2 || true
    status=1
  fi
  # Its speed: runs, seconds and executions per second, from libFuzzer's last line.
  done_line=$(grep -a -E "^Done [0-9]+ runs in [0-9]+ second" "$findings/$target.log" | tail -1 || true)
  if [ -n "$done_line" ]; then
    runs=$(echo "$done_line" | awk '{print $2}')
    secs=$(echo "$done_line" | awk '{print $5}')
    echo "fuzz: $target: $runs runs in ${secs}s, $((runs / (secs > 0 ? secs : 1))) exec/s"
  fi
  rm -rf "$work"
done
exit $status
