// Heap bytes per tracked connection (issue #8): the figures of docs/performance.md's
// "Memory per connection" section.
//
//   ./build/bench/tests/bench/connmgr_memory_bench
//
// Its own executable, apart from connmgr_bench, because it replaces the global operator
// new and delete with counting ones (tests/support/counting_allocator.cpp), which would
// slow every other benchmark. The counters are the result; the time is only that of
// building the pool under the counting allocator. tests/support/memory_footprint.hpp says
// exactly what is counted.
#include <benchmark/benchmark.h>

#include <cstddef>

#include "support/memory_footprint.hpp"

namespace cm = dep2p::connmgr;

namespace {

void report(benchmark::State& state, const cm::testing::Footprint& footprint) {
  if (footprint.failures != 0) {
    state.SkipWithError("a call to build the pool failed");
    return;
  }
  state.counters["bytes_per_connection"] = footprint.bytes_per_connection();
  state.counters["blocks_per_connection"] = footprint.blocks_per_connection();
  state.counters["handle_bytes_per_connection"] = footprint.handle_bytes_per_connection();
  state.counters["construction_bytes"] = static_cast<double>(footprint.construction_bytes);
}

// N connections to N distinct peers, each peer with one tag: the manager's bytes per
// connection, the host's handles excluded.
void BM_MemoryPerConnection(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  cm::testing::Footprint footprint;
  for (auto _ : state) footprint = cm::testing::measure_plain_pool(n);
  report(state, footprint);
}
BENCHMARK(BM_MemoryPerConnection)
    ->Arg(10'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

// The same pool in a RealmConnectionManager, every connection bound to one of 100 realms:
// bytes per bound connection in all, and the part that binding adds.
void BM_RealmMemoryPerConnection(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  cm::testing::Footprint footprint;
  for (auto _ : state) footprint = cm::testing::measure_realm_pool(n, 100);
  report(state, footprint);
  state.counters["binding_bytes_per_connection"] = footprint.binding_bytes_per_connection();
}
BENCHMARK(BM_RealmMemoryPerConnection)
    ->Arg(10'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
