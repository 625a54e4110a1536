// Google Benchmark suite: the figures in docs/performance.md come from here.
//
//   ./dev.sh bench --benchmark_filter='BM_Trim'
//
// Every benchmark builds its pool the way the issue tracker specifies: N connections to N
// distinct peers, alternating direction, no streams, random tag values 0-99, grace 0, and
// a connection whose close() reports the closure back to the manager synchronously.
#include <benchmark/benchmark.h>

#include <boost/asio/io_context.hpp>
#include <memory>
#include <random>
#include <vector>

#include "dep2p/connmgr/connmgr.hpp"
#include "support/fake_connection.hpp"

namespace cm = dep2p::connmgr;
using cm::testing::peer_id;

namespace {

// Reports its closure back at once, as a host that closes synchronously would.
class BenchConnection final : public cm::Connection {
 public:
  BenchConnection(cm::ConnectionManager& manager, cm::NodeId peer, cm::Direction direction)
      : manager_(&manager), peer_(std::move(peer)), direction_(direction) {}
  cm::NodeId remote_peer() const override { return peer_; }
  cm::Direction direction() const override { return direction_; }
  cm::Endpoint remote_endpoint() const override { return {}; }
  void close(cm::CloseReason reason, std::string_view) override {
    manager_->remove_connection(*this, reason);
  }
  void ping(PingHandler done) override { done({}); }

 private:
  cm::ConnectionManager* manager_;
  cm::NodeId peer_;
  cm::Direction direction_;
};

cm::Config bench_config(std::size_t n) {
  cm::Config config;
  config.low_water = n / 2;
  config.high_water = n;
  config.grace_period = std::chrono::milliseconds(0);
  config.silence_period = std::chrono::hours(24);  // keep the background check out of it
  config.max_temp_peers = n + 1;
  return config;
}

struct Pool {
  explicit Pool(std::size_t n)
      : time(std::make_shared<cm::ManualTimeSource>(io)),
        manager(io, bench_config(n), cm::Dependencies{.time_source = time}) {
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> value(0, 99);
    peers.reserve(n);
    connections.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      peers.push_back(peer_id(i));
      auto c = std::make_shared<BenchConnection>(
          manager, peers.back(), i % 2 == 0 ? cm::Direction::inbound : cm::Direction::outbound);
      manager.add_connection(c);
      manager.tag_peer(peers.back(), "score", value(rng));
      connections.push_back(std::move(c));
    }
  }
  boost::asio::io_context io;
  std::shared_ptr<cm::ManualTimeSource> time;
  cm::ConnectionManager manager;
  std::vector<cm::NodeId> peers;
  std::vector<std::shared_ptr<BenchConnection>> connections;
};

void BM_AddRemoveConnection(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  Pool pool(n);
  auto extra =
      std::make_shared<BenchConnection>(pool.manager, peer_id(n + 1), cm::Direction::inbound);
  for (auto _ : state) {
    pool.manager.add_connection(extra);
    pool.manager.remove_connection(*extra);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AddRemoveConnection)->Arg(1'000)->Arg(10'000)->Arg(100'000)->Arg(1'000'000);

// Tags a different peer each call, walking all N (the table's cache misses included).
void BM_TagPeer(benchmark::State& state) {
  static std::unique_ptr<Pool> pool;
  const auto n = static_cast<std::size_t>(state.range(0));
  if (state.thread_index() == 0) pool = std::make_unique<Pool>(n);
  // Google Benchmark starts the timed loop of all threads together after setup.
  std::size_t i = (static_cast<std::size_t>(state.thread_index()) * 7919) % n;
  int v = 0;
  for (auto _ : state) {
    pool->manager.tag_peer(pool->peers[i], "bench", ++v & 0xff);
    if (++i == n) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TagPeer)->Arg(1'000)->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->Threads(1);
BENCHMARK(BM_TagPeer)->Arg(100'000)->Threads(2);

// One trim from N connections to N/2, including the synchronous closure reports.
void BM_Trim(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::size_t closed = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto pool = std::make_unique<Pool>(n);
    state.ResumeTiming();
    closed = pool->manager.trim();
    state.PauseTiming();
    pool.reset();
    state.ResumeTiming();
  }
  state.counters["closed"] = static_cast<double>(closed);
  state.SetComplexityN(state.range(0));
}
BENCHMARK(BM_Trim)
    ->Arg(1'000)
    ->Arg(10'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Unit(benchmark::kMillisecond)
    ->Complexity(benchmark::oNLogN);

}  // namespace

BENCHMARK_MAIN();
