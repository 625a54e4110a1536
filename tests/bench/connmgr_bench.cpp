// Google Benchmark suite: the figures in docs/performance.md come from here.
//
//   ./dev.sh bench --benchmark_filter='BM_Trim'
//
// Every benchmark builds its pool the way the issue tracker specifies: N connections to N
// distinct peers, alternating direction, no streams, random tag values 0-99, grace 0, and
// a connection whose close() reports the closure back to the manager synchronously.
#include <benchmark/benchmark.h>

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_pool.hpp"

namespace cm = dep2p::connmgr;
using cm::bench::bench_config;
using cm::bench::BenchConnection;
using cm::bench::Pool;
using cm::bench::PoolShape;
using cm::testing::peer_id;

namespace {

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

// BM_Trim's trim with the peers spread over 4,096 /16s, so the diversity rule (on by
// default) has groups to keep and count. Second argument 1: tag values 0-99 as in BM_Trim
// (the rule chooses within the boundary value, about N/100 peers); 0: no tags, every
// candidate of one value, so it chooses among all N. Third argument 0: the rule off, the
// same pool in the default order, for the ratio.
void BM_TrimDiverse(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  cm::Config config = bench_config(n);
  config.diversity.enabled = state.range(2) != 0;
  const PoolShape shape{.spread_addresses = true, .tagged = state.range(1) != 0};
  std::size_t closed = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto pool = std::make_unique<Pool>(n, config, nullptr, shape);
    state.ResumeTiming();
    closed = pool->manager.trim();
    state.PauseTiming();
    pool.reset();
    state.ResumeTiming();
  }
  state.counters["closed"] = static_cast<double>(closed);
}
BENCHMARK(BM_TrimDiverse)
    ->Args({100'000, 1, 1})
    ->Args({100'000, 1, 0})
    ->Args({100'000, 0, 1})
    ->Args({100'000, 0, 0})
    ->Unit(benchmark::kMillisecond);

// The same trim with realms: the N connections spread evenly over 100 realms, each with
// a share (low water) of half its connections and a reserve of a quarter, so the node's
// trim from N to N/2 runs the realm rules over every candidate. Compare with BM_Trim.
struct RealmPool {
  explicit RealmPool(std::size_t n, std::shared_ptr<cm::Trimmer> trimmer = nullptr)
      : RealmPool(n, bench_config(n), std::move(trimmer)) {}
  RealmPool(std::size_t n, cm::Config config, std::shared_ptr<cm::Trimmer> trimmer = nullptr)
      : time(std::make_shared<cm::ManualTimeSource>(io)),
        node(io, std::move(config),
             cm::Dependencies{.time_source = time, .trimmer = std::move(trimmer)}) {
    constexpr std::size_t kRealms = 100;
    cm::RealmConfig realm;
    realm.low_water = n / kRealms / 2;
    realm.min_reserved = n / kRealms / 4;
    for (std::size_t r = 0; r < kRealms; ++r)
      node.create_realm("realm-" + std::to_string(r), realm);
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> value(0, 99);
    connections.reserve(n);
    cm::ConnectionManager& manager = node.manager();
    for (std::size_t i = 0; i < n; ++i) {
      auto c = std::make_shared<BenchConnection>(
          manager, peer_id(i), i % 2 == 0 ? cm::Direction::inbound : cm::Direction::outbound);
      manager.add_connection(c);
      manager.tag_peer(peer_id(i), "score", value(rng));
      node.bind(*c, "realm-" + std::to_string(i % kRealms));
      connections.push_back(std::move(c));
    }
  }
  boost::asio::io_context io;
  std::shared_ptr<cm::ManualTimeSource> time;
  cm::RealmConnectionManager node;
  std::vector<std::shared_ptr<BenchConnection>> connections;
};

// One node trim from N to N/2 over a RealmPool built with `trimmer` (null: the default).
void realm_trim(benchmark::State& state,
                const std::function<std::shared_ptr<cm::Trimmer>()>& trimmer) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::size_t closed = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto pool = std::make_unique<RealmPool>(n, trimmer ? trimmer() : nullptr);
    state.ResumeTiming();
    closed = pool->node.manager().trim();
    state.PauseTiming();
    pool.reset();
    state.ResumeTiming();
  }
  state.counters["closed"] = static_cast<double>(closed);
}

void BM_RealmTrim(benchmark::State& state) { realm_trim(state, nullptr); }
BENCHMARK(BM_RealmTrim)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);

// BM_RealmTrim with a host trimmer (the activity order): it ranks every candidate, sorted,
// through a snapshot with the candidates' realms, and the realm rules choose in its order.
void BM_RealmTrimHostOrder(benchmark::State& state) {
  realm_trim(state, [] { return cm::make_activity_trimmer(); });
}
BENCHMARK(BM_RealmTrimHostOrder)->Arg(100'000)->Unit(benchmark::kMillisecond);

// A stream opened and closed on a different connection each call, over the pool of
// BM_RealmTrim (every connection bound to one of 100 realms); with the second argument 1
// one more realm limits streams, so every open and close runs under the whole lock and
// tells the realm layer. Compare with BM_StreamOpenClose.
void BM_RealmStreamOpenClose(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  RealmPool pool(n);
  if (state.range(1) != 0) {
    cm::RealmConfig limited;
    limited.max_streams = 1'000'000;
    pool.node.create_realm("limited", limited);
  }
  cm::ConnectionManager& manager = pool.node.manager();
  std::size_t i = 0;
  for (auto _ : state) {
    const cm::Connection& c = *pool.connections[i];
    manager.stream_opened(c);
    manager.stream_closed(c);
    if (++i == n) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RealmStreamOpenClose)->Args({100'000, 0})->Args({100'000, 1});

// The admission of an inbound connection up to its add: admit_inbound, on_secured for a
// peer not in the pool, and a claim of one realm (second argument 1: claim() after
// on_secured; 2: RealmConnectionManager::on_secured with the realm, one step), with the
// pool of BM_RealmTrim (N connections bound to 100 realms); the reservation is then
// released. The difference from argument 0 is what a realm claim costs.
void BM_AdmitSecured(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto mode = state.range(1);
  cm::Config config = bench_config(n);
  const cm::Rate huge{1e9, 1e9};
  config.limits.inbound_rate.ipv4_24 = huge;
  config.limits.inbound_rate.ipv4_16 = huge;
  config.limits.system.connections_inbound = 10 * n;
  config.limits.system.connections_total = 10 * n;
  RealmPool pool(n, config);
  cm::ConnectionManager& manager = pool.node.manager();
  std::vector<cm::Endpoint> remotes;
  std::vector<cm::NodeId> peers;
  for (std::size_t i = 0; i < 1024; ++i) {
    remotes.push_back(cm::Endpoint{
        boost::asio::ip::make_address_v4(0x0a000000u + static_cast<std::uint32_t>(i)), 4001});
    peers.push_back(peer_id(n + i));
  }
  std::size_t i = 0;
  std::size_t refused = 0;
  for (auto _ : state) {
    cm::Admission admitted = manager.admit_inbound(remotes[i]);
    if (!admitted) {
      ++refused;
    } else if (mode == 2) {
      if (!pool.node.on_secured(admitted.reservation, peers[i], "realm-7")) {
        ++refused;
      }
    } else if (!manager.on_secured(admitted.reservation, peers[i]) ||
               (mode == 1 && !pool.node.claim(admitted.reservation, "realm-7"))) {
      ++refused;
    }
    i = (i + 1) & 1023;
  }  // each iteration's reservation is released as it goes out of scope
  state.counters["refused"] = static_cast<double>(refused);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AdmitSecured)->Args({100'000, 0})->Args({100'000, 1})->Args({100'000, 2});

// One decay tick over N peers that each hold a decaying tag (built-in fixed decay; the
// values are large so that no tag is removed however many ticks run).
void BM_DecayTick(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  Pool pool(n);
  std::error_code ec;
  auto tag = pool.manager.register_decaying_tag("decay", std::chrono::seconds(60),
                                                cm::Decay::fixed(1), cm::Bump::sum(), ec);
  for (const auto& peer : pool.peers) tag.bump(peer, 1'000'000'000);
  const auto before = pool.manager.stats().decay_ticks;
  for (auto _ : state) {
    pool.time->advance(std::chrono::seconds(60));  // fires exactly one decay tick
  }
  state.counters["ticks"] = static_cast<double>(pool.manager.stats().decay_ticks - before);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_DecayTick)->Arg(1'000)->Arg(100'000)->Unit(benchmark::kMillisecond);

// DecayingTag::bump with the built-in sum, a different peer each call.
void BM_Bump(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  Pool pool(n);
  std::error_code ec;
  auto tag = pool.manager.register_decaying_tag("bump", std::chrono::seconds(60),
                                                cm::Decay::fixed(1), cm::Bump::sum(), ec);
  std::size_t i = 0;
  for (auto _ : state) {
    tag.bump(pool.peers[i], 1);
    if (++i == n) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Bump)->Arg(1'000)->Arg(100'000);

// BasicGater::intercept_accept with N CIDR block rules: nine in ten IPv4 subnets spread
// over every length from /16 to /32, the rest IPv6 (/32, /48, /56, /64, /128), so a
// lookup probes the hash table once per prefix length of its family in use (17 for IPv4,
// 5 for IPv6), whatever N is, unless the coarse filter (one bit per IPv4 /16, per hashed
// IPv6 /32) shows that no rule that long lies near the address.
// BM_GaterLookup asks about random addresses no rule covers (the usual case on the accept
// path; the filter answers most of them); BM_GaterLookupNearMiss about uncovered addresses
// in the /16 (/32) of a rule, so every length is probed; BM_GaterLookupBlocked about
// addresses inside a rule (the answer carries a formatted reason). Each cycles through
// 1,024 different addresses so that no single entry stays hot.
struct GaterRules {
  explicit GaterRules(std::size_t n) : time(std::make_shared<cm::ManualTimeSource>(io)) {
    cm::BasicGaterOptions options;
    options.time_source = time;
    gater = std::make_shared<cm::BasicGater>(io.get_executor(), std::move(options));
    std::mt19937 rng(7);
    std::uniform_int_distribution<std::uint32_t> word;
    auto random_v6 = [&] {
      boost::asio::ip::address_v6::bytes_type bytes;
      for (auto& b : bytes) b = static_cast<unsigned char>(word(rng));
      bytes[0] = 0x20;  // global unicast, never IPv4-mapped
      return boost::asio::ip::address_v6(bytes);
    };
    const std::size_t v6_rules = n / 10;
    // Until the count is exact: a random /16 now and then repeats an earlier one.
    for (std::size_t i = 0; gater->rule_count() < n - v6_rules; ++i) {
      const boost::asio::ip::address_v4 address(word(rng));
      gater->block(address.to_string() + "/" + std::to_string(16 + i % 17));
      if (blocked.size() < 896) blocked.push_back(cm::Endpoint{address, 4001});
    }
    constexpr int kV6Lengths[] = {32, 48, 56, 64, 128};
    for (std::size_t i = 0; gater->rule_count() < n; ++i) {
      const auto address = random_v6();
      gater->block(address.to_string() + "/" + std::to_string(kV6Lengths[i % 5]));
      if (blocked.size() < 1024) blocked.push_back(cm::Endpoint{address, 4001});
    }
    for (std::size_t i = 0; near_miss.size() < 1024; ++i) {
      const cm::Endpoint& rule = blocked[i % blocked.size()];
      boost::asio::ip::address address;
      if (rule.address.is_v4()) {
        const auto top = rule.address.to_v4().to_uint() & 0xffff'0000u;
        address = boost::asio::ip::address_v4(top | (word(rng) & 0xffffu));
      } else {
        auto bytes = rule.address.to_v6().to_bytes();
        for (std::size_t b = 4; b < bytes.size(); ++b)
          bytes[b] = static_cast<unsigned char>(word(rng));
        address = boost::asio::ip::address_v6(bytes);
      }
      if (!gater->is_address_blocked(address)) near_miss.push_back(cm::Endpoint{address, 4001});
    }
    while (open.size() < 1024) {
      const boost::asio::ip::address address =
          open.size() % 8 == 0 ? boost::asio::ip::address(random_v6())
                               : boost::asio::ip::address(boost::asio::ip::address_v4(word(rng)));
      if (!gater->is_address_blocked(address)) open.push_back(cm::Endpoint{address, 4001});
    }
    std::shuffle(blocked.begin(), blocked.end(), rng);
  }
  boost::asio::io_context io;
  std::shared_ptr<cm::ManualTimeSource> time;
  std::shared_ptr<cm::BasicGater> gater;
  std::vector<cm::Endpoint> open;
  std::vector<cm::Endpoint> near_miss;
  std::vector<cm::Endpoint> blocked;
};

void gater_lookup(benchmark::State& state, std::vector<cm::Endpoint> GaterRules::*which) {
  GaterRules rules(static_cast<std::size_t>(state.range(0)));
  const std::vector<cm::Endpoint>& addresses = rules.*which;
  const bool want_blocked = which == &GaterRules::blocked;
  if (addresses.size() != 1024) {
    state.SkipWithError("too few rules to pick 1,024 blocked addresses");
    return;
  }
  for (const cm::Endpoint& e : addresses) {
    if (rules.gater->intercept_accept(e).allowed == want_blocked) {
      state.SkipWithError("an address was not judged as intended");
      return;
    }
  }
  std::size_t i = 0;
  for (auto _ : state) {
    auto decision = rules.gater->intercept_accept(addresses[i]);
    benchmark::DoNotOptimize(decision);
    i = (i + 1) & 1023;
  }
  state.counters["rules"] = static_cast<double>(rules.gater->rule_count());
  state.SetItemsProcessed(state.iterations());
}

void BM_GaterLookup(benchmark::State& state) { gater_lookup(state, &GaterRules::open); }
BENCHMARK(BM_GaterLookup)->Arg(10'000);

void BM_GaterLookupNearMiss(benchmark::State& state) {
  gater_lookup(state, &GaterRules::near_miss);
}
BENCHMARK(BM_GaterLookupNearMiss)->Arg(10'000);

void BM_GaterLookupBlocked(benchmark::State& state) { gater_lookup(state, &GaterRules::blocked); }
BENCHMARK(BM_GaterLookupBlocked)->Arg(10'000);

// One admit_inbound decision, accepted, and the release of its reservation: the gater
// with 10k CIDR rules, the system limits, the per-address and per-subnet caps and the
// subnet rate buckets are all consulted, with 100k connections in the pool. The rates are
// set so high that the buckets are charged but never refuse (virtual time stands still).
void BM_AdmitInbound(benchmark::State& state) {
  GaterRules rules(10'000);
  const auto n = static_cast<std::size_t>(state.range(0));
  cm::Config config = bench_config(n);
  const cm::Rate huge{1e9, 1e9};
  config.limits.inbound_rate.ipv4_24 = huge;
  config.limits.inbound_rate.ipv4_16 = huge;
  config.limits.inbound_rate.ipv6_64 = huge;
  config.limits.inbound_rate.ipv6_48 = huge;
  config.limits.system.connections_inbound = 10 * n;
  config.limits.system.connections_total = 10 * n;
  Pool pool(n, config, rules.gater);
  std::size_t i = 0;
  std::size_t refused = 0;
  for (auto _ : state) {
    cm::Admission admitted = pool.manager.admit_inbound(rules.open[i]);
    if (!admitted) ++refused;
    i = (i + 1) & 1023;
  }  // each iteration's reservation is released as it goes out of scope
  state.counters["refused"] = static_cast<double>(refused);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AdmitInbound)->Arg(100'000);

// check_dial over a pool of N connected peers while N other peers are in dial backoff
// (each failed once; virtual time stands still, so every backoff lasts): each call asks
// about one of the backed-off peers, in a shuffled order, and is refused with the time
// its backoff ends.
void BM_CheckDial(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  cm::Config config = bench_config(n);
  config.dial.max_backoff_peers = n;
  Pool pool(n, config);
  std::vector<cm::NodeId> backed_off;
  backed_off.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    backed_off.push_back(peer_id(n + i));
    pool.manager.dial_failed(backed_off.back(), cm::DialFailure::error);
  }
  std::shuffle(backed_off.begin(), backed_off.end(), std::mt19937(7));
  std::size_t i = 0;
  std::size_t refused = 0;
  for (auto _ : state) {
    const cm::Admission check = pool.manager.check_dial(backed_off[i]);
    if (check.error == cm::Errc::dial_backoff) ++refused;
    if (++i == n) i = 0;
  }
  state.counters["refused"] =
      benchmark::Counter(static_cast<double>(refused), benchmark::Counter::kAvgIterations);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CheckDial)->Arg(100'000);

// Keepalive scheduling: N connections pinged every 5 s (timeout 5 s, idle check on),
// answered at once by a ping that does nothing else. One iteration simulates one minute
// of virtual time: 12 pings per connection, the timer firing on its tick grid, every
// answer processed. The CPU time per iteration is the manager's cost per simulated
// minute; divided by 60 s it is the share of one core (the "core" counter, in percent).
void BM_KeepaliveMinute(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  cm::Config config = bench_config(n);
  config.keepalive_interval = std::chrono::seconds(5);
  config.keepalive_timeout = std::chrono::seconds(5);
  config.idle_timeout = std::chrono::hours(1);
  Pool pool(n, config);
  const auto pings_before = pool.manager.stats().pings_sent;
  for (auto _ : state) pool.time->advance(std::chrono::minutes(1));
  const auto pings = pool.manager.stats().pings_sent - pings_before;
  state.counters["pings"] = static_cast<double>(pings);
  state.counters["connections"] = static_cast<double>(pool.manager.connection_count());
  // iterations * 0.6 / elapsed, inverted: seconds per simulated minute / 0.6 = percent.
  state.counters["core%"] = benchmark::Counter(
      0.6 * static_cast<double>(state.iterations()),
      benchmark::Counter::Flags(benchmark::Counter::kIsRate | benchmark::Counter::kInvert));
}
BENCHMARK(BM_KeepaliveMinute)->Arg(100'000)->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace

BENCHMARK_MAIN();
