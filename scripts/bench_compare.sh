#!/usr/bin/env bash
# Compares two builds of the benchmarks on this machine: each benchmark runs alone in its
# own process, the two binaries alternating, ROUNDS times; prints the best and the median
# of each side and the ratio of the bests (after / before). Best against best, never one
# run against one: a shared host moves the same binary's figure by 10% from run to run.
#
#   scripts/bench_compare.sh BEFORE_BINARY AFTER_BINARY [ROUNDS] [FILTER...]
#
# Without filters it compares the benchmarks docs/performance.md tracks.
set -euo pipefail
before=$1
after=$2
rounds=${3:-5}
shift $(( $# >= 3 ? 3 : $# ))
filters=("$@")
if [ ${#filters[@]} -eq 0 ]; then
  filters=('BM_Trim/100000$' 'BM_Trim/1000000$' 'BM_AddRemoveConnection/100000$'
           'BM_TagPeer/100000/threads:1$' 'BM_AdmitInbound/100000$' 'BM_RealmTrim/100000$'
           'BM_KeepaliveMinute/100000')
fi
# One figure: the real time of the benchmark's line, in ns.
run() {
  "$1" --benchmark_filter="$2" --benchmark_format=csv 2>/dev/null |
    awk -F, -v f="$2" 'NR > 1 && $1 ~ /^"BM_/ {
      t = $3; u = $5; gsub(/"/, "", u)
      s = (u == "ms") ? 1e6 : (u == "us") ? 1e3 : (u == "s") ? 1e9 : 1
      printf "%.1f\n", t * s; exit }'
}
summary() {  # best and median of the numbers on stdin
  sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
                   printf "%s %s", v[1], m }'
}
printf '%-34s %12s %12s %12s %12s %7s\n' benchmark "before best" "before med" "after best" \
  "after med" ratio
for filter in "${filters[@]}"; do
  b=()
  a=()
  for ((i = 0; i < rounds; i++)); do
    b+=("$(run "$before" "$filter")")
    a+=("$(run "$after" "$filter")")
  done
  read -r bb bm <<< "$(printf '%s\n' "${b[@]}" | summary)"
  read -r ab am <<< "$(printf '%s\n' "${a[@]}" | summary)"
  printf '%-34s %12s %12s %12s %12s %7.3f\n' "$filter" "$bb" "$bm" "$ab" "$am" \
    "$(awk -v x="$ab" -v y="$bb" 'BEGIN { print x / y }')"
done
