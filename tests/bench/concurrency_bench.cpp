// Benchmarks of the manager under several host threads: per-peer calls from 1 and 2
// threads (the throughput ratio is what matters, see docs/performance.md) and the stall a
// trim inflicts on a thread that keeps tagging.
//
//   ./dev.sh bench --benchmark_filter='Threads|Stall|StreamOpenClose|RecordActivity'
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "bench/bench_pool.hpp"

namespace cm = dep2p::connmgr;
using cm::bench::Pool;

namespace {

// One pool shared by the benchmark's threads: thread 0 builds it in its setup. Google
// Benchmark starts every thread's timed loop together after all setups, so the pool may
// be read only inside the loop.
std::unique_ptr<Pool>& shared_pool(benchmark::State& state) {
  static std::unique_ptr<Pool> pool;
  if (state.thread_index() == 0) {
    pool = std::make_unique<Pool>(static_cast<std::size_t>(state.range(0)));
  }
  return pool;
}

std::size_t first_index(const benchmark::State& state, std::size_t n) {
  return (static_cast<std::size_t>(state.thread_index()) * 7919) % n;
}

// A stream opened and closed on a different connection each call, walking all N.
void BM_StreamOpenClose(benchmark::State& state) {
  const std::unique_ptr<Pool>& pool = shared_pool(state);
  const auto n = static_cast<std::size_t>(state.range(0));
  std::size_t i = first_index(state, n);
  for (auto _ : state) {
    const cm::Connection& c = *pool->connections[i];
    pool->manager.stream_opened(c);
    pool->manager.stream_closed(c);
    if (++i == n) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StreamOpenClose)->Arg(100'000)->Threads(1);
BENCHMARK(BM_StreamOpenClose)->Arg(100'000)->Threads(2);

// Bytes reported on a different connection each call, walking all N.
void BM_RecordActivity(benchmark::State& state) {
  const std::unique_ptr<Pool>& pool = shared_pool(state);
  const auto n = static_cast<std::size_t>(state.range(0));
  std::size_t i = first_index(state, n);
  for (auto _ : state) {
    pool->manager.record_activity(*pool->connections[i], 100, 200);
    if (++i == n) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RecordActivity)->Arg(100'000)->Threads(1);
BENCHMARK(BM_RecordActivity)->Arg(100'000)->Threads(2);

// A trim from N connections to N/2 (timed) while another thread tags random peers and
// times each call. Counters: the tagging thread's longest and p99.9 wait (microseconds)
// over the trim, and how many calls it made.
void BM_TrimStall(benchmark::State& state) {
  using Clock = std::chrono::steady_clock;
  const auto n = static_cast<std::size_t>(state.range(0));
  double longest_us = 0;
  double p999_us = 0;
  double calls = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto pool = std::make_unique<Pool>(n);
    // The tag name is known before the trim, as a host's names are after their first use
    // (interning a new name takes the lock whole, and would wait for the ranking).
    pool->manager.tag_peer(pool->peers[0], "bench", 1);
    std::atomic<bool> started{false};
    std::atomic<bool> stop{false};
    std::vector<double> waits;
    waits.reserve(1u << 22);
    std::thread tagger([&] {
      std::mt19937 rng(7);
      std::uniform_int_distribution<std::size_t> pick(0, n - 1);
      int v = 0;
      started.store(true);
      while (!stop.load(std::memory_order_relaxed)) {
        const cm::NodeId& peer = pool->peers[pick(rng)];
        const auto t0 = Clock::now();
        pool->manager.tag_peer(peer, "bench", ++v & 0xff);
        waits.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
    });
    while (!started.load()) std::this_thread::yield();
    state.ResumeTiming();
    benchmark::DoNotOptimize(pool->manager.trim());
    state.PauseTiming();
    stop.store(true);
    tagger.join();
    std::sort(waits.begin(), waits.end());
    if (!waits.empty()) {
      longest_us = std::max(longest_us, waits.back());
      p999_us = std::max(p999_us, waits[waits.size() * 999 / 1000]);
      calls += static_cast<double>(waits.size());
    }
    pool.reset();
    state.ResumeTiming();
  }
  state.counters["longest_wait_us"] = longest_us;
  state.counters["p99.9_wait_us"] = p999_us;
  state.counters["tag_calls"] = benchmark::Counter(calls, benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_TrimStall)->Arg(100'000)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

}  // namespace
