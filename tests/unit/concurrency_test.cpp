// Several host threads at once (docs/architecture.md, "Locks and their order" and "Trims and
// concurrent calls"): per-peer calls on different peers run in lanes, and a trim ranks
// with the lanes open and commits in batches. Each test checks a state that a wrong lock
// would break: sums of tags, stream counts, counts against the connections held, the
// reservations, and what a trim keeps when a peer changes while it ranks.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dep2p/connmgr/connmgr.hpp"
#include "manager/core_probe.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using detail::CoreProbe;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

using Connections = std::vector<std::shared_ptr<FakeConnection>>;
using TrimPoint = CoreProbe::TrimPoint;

// One thread's calls on its own peers [first, first + count), from a seed: tags under three
// names, untags, upserts, streams opened and closed. The same seed gives the same calls.
void own_peers_script(ConnectionManager& manager, const Connections& connections,
                      std::uint64_t first, std::size_t count, std::uint32_t seed, int rounds) {
  std::mt19937 random(seed);
  static const char* const kNames[] = {"a", "b", "c"};
  for (int round = 0; round < rounds; ++round) {
    const std::size_t i = random() % count;
    const NodeId peer = peer_id(first + i);
    const char* name = kNames[random() % 3];
    switch (random() % 6) {
      case 0:
      case 1: (void)manager.tag_peer(peer, name, static_cast<int>(random() % 100) - 20); break;
      case 2: (void)manager.untag_peer(peer, name); break;
      case 3: (void)manager.upsert_tag(peer, name, [](int old) { return old + 3; }); break;
      case 4: (void)manager.stream_opened(*connections[i], Direction::outbound); break;
      case 5: (void)manager.stream_closed(*connections[i], Direction::outbound); break;
    }
  }
}

// The streams the manager counts on the peer's connections.
std::size_t streams_of(const ConnectionManager& manager, const NodeId& peer) {
  std::size_t streams = 0;
  if (auto explanation = manager.explain(peer)) {
    for (const ConnectionExplanation& c : explanation->connections) streams += c.streams;
  }
  return streams;
}

struct PeerState {
  std::int64_t value;
  std::vector<std::pair<std::string, int>> tags;
  std::size_t connections;
  std::size_t streams;
  bool operator==(const PeerState&) const = default;
};

std::map<std::uint64_t, PeerState> state_of(ConnectionManager& manager, std::uint64_t last) {
  std::map<std::uint64_t, PeerState> out;
  for (std::uint64_t n = 1; n <= last; ++n) {
    if (auto info = manager.tag_info(peer_id(n))) {
      auto tags = info->tags;
      std::sort(tags.begin(), tags.end());
      out[n] = PeerState{info->value, tags, info->connections, streams_of(manager, peer_id(n))};
    }
  }
  return out;
}

TEST(Concurrency, ThreadsOnTheirOwnPeersEndInTheStateOfASequentialRun) {
  constexpr std::size_t kThreads = 4;
  constexpr std::size_t kPerThread = 50;
  constexpr int kRounds = 20'000;
  ManagerHarness parallel(trim_config(1000, 2000));
  ManagerHarness sequential(trim_config(1000, 2000));
  std::vector<Connections> parallel_connections(kThreads);
  std::vector<Connections> sequential_connections(kThreads);
  for (std::size_t t = 0; t < kThreads; ++t) {
    const std::uint64_t first = 1 + t * kPerThread;
    parallel_connections[t] = parallel.add_peers(first, kPerThread, Direction::outbound);
    sequential_connections[t] = sequential.add_peers(first, kPerThread, Direction::outbound);
  }

  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      own_peers_script(parallel.manager, parallel_connections[t], 1 + t * kPerThread, kPerThread,
                       static_cast<std::uint32_t>(t) + 1, kRounds);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (std::size_t t = 0; t < kThreads; ++t) {
    own_peers_script(sequential.manager, sequential_connections[t], 1 + t * kPerThread, kPerThread,
                     static_cast<std::uint32_t>(t) + 1, kRounds);
  }

  const std::uint64_t last = kThreads * kPerThread;
  const auto expected = state_of(sequential.manager, last);
  EXPECT_EQ(state_of(parallel.manager, last), expected);
  EXPECT_EQ(expected.size(), last);
  for (const auto& [n, peer] : expected) {
    std::int64_t sum = 0;
    for (const auto& tag : peer.tags) sum += tag.second;
    EXPECT_EQ(peer.value, sum) << n;
  }
  // The totals the lanes add up.
  EXPECT_EQ(parallel.manager.stats().streams, sequential.manager.stats().streams);
  EXPECT_GT(sequential.manager.stats().streams, 0u);
}

// Peers 1..20, one connection each, peer n tagged n: a trim to low water 10 ranks peers
// 1..10 as its victims.
struct Ranked {
  ManagerHarness h{trim_config(10, 100)};
  Connections all;
  Ranked() {
    all = h.add_peers(1, 20);
    for (std::uint64_t n = 1; n <= 20; ++n) {
      EXPECT_FALSE(h.manager.tag_peer(peer_id(n), "v", static_cast<int>(n)));
    }
  }
};

TEST(Concurrency, APeerTaggedBetweenTheRankingAndTheCommitIsLeftByThatTrim) {
  Ranked r;
  int probes = 0;
  CoreProbe::on_trim(
      r.h.manager,
      [&](TrimPoint point) {
        if (point != TrimPoint::ranked) return;
        ++probes;
        // Ranked already: peer 3 is a victim. Tagging it up now keeps it this time; so
        // does tagging peer 4 down (any change of its tags), and untagging peer 5.
        EXPECT_FALSE(r.h.manager.tag_peer(peer_id(3), "v", 1000));
        EXPECT_FALSE(r.h.manager.tag_peer(peer_id(4), "v", 0));
        EXPECT_FALSE(r.h.manager.untag_peer(peer_id(5), "v"));
        // Streams are not a change of the peer's value.
        EXPECT_TRUE(r.h.manager.stream_opened(*r.all[5]));
      },
      1024);

  EXPECT_EQ(r.h.manager.trim(), 7u);
  EXPECT_EQ(probes, 1);
  for (std::uint64_t n : {1u, 2u, 6u, 7u, 8u, 9u, 10u}) EXPECT_TRUE(r.all[n - 1]->closed()) << n;
  for (std::uint64_t n : {3u, 4u, 5u}) EXPECT_FALSE(r.all[n - 1]->closed()) << n;
  for (std::uint64_t n = 11; n <= 20; ++n) EXPECT_FALSE(r.all[n - 1]->closed()) << n;
  EXPECT_EQ(r.h.manager.connection_count(), 13u);

  // The next trim ranks by the values as they are now: 4 (value 0) and 5 (no tags) go,
  // and 11 (value 11) is the lowest of the rest; 3 (value 1000) stays.
  CoreProbe::on_trim(r.h.manager, nullptr, 1024);
  EXPECT_EQ(r.h.manager.trim(), 3u);
  EXPECT_TRUE(r.all[3]->closed());
  EXPECT_TRUE(r.all[4]->closed());
  EXPECT_TRUE(r.all[10]->closed());
  EXPECT_FALSE(r.all[2]->closed());
}

TEST(Concurrency, APeerProtectedBetweenTwoBatchesOfTheCommitIsLeftByThatTrim) {
  Ranked r;
  // Batches of 2 peers: 1 and 2 first; then the lock is let go.
  bool first = true;
  CoreProbe::on_trim(
      r.h.manager,
      [&](TrimPoint point) {
        if (point != TrimPoint::batch_committed || !first) return;
        first = false;
        EXPECT_TRUE(r.all[0]->closed());
        EXPECT_TRUE(r.all[1]->closed());
        EXPECT_FALSE(r.all[5]->closed());
        EXPECT_FALSE(r.h.manager.protect(peer_id(6), "keep"));   // protected
        EXPECT_FALSE(r.h.manager.remove_connection(*r.all[6]));  // 7 leaves by itself
        EXPECT_FALSE(r.h.manager.add_connection(                 // 8 gets a second one
            std::make_shared<FakeConnection>(peer_id(8), Direction::outbound)));
      },
      2);

  // 10 victims ranked; 6 protected, 7 gone, 8 changed: 1,2,3,4,5,9,10 close.
  EXPECT_EQ(r.h.manager.trim(), 7u);
  for (std::uint64_t n : {1u, 2u, 3u, 4u, 5u, 9u, 10u}) EXPECT_TRUE(r.all[n - 1]->closed()) << n;
  EXPECT_FALSE(r.all[5]->closed());
  EXPECT_FALSE(r.all[6]->closed());  // removed by the host, not closed by the trim
  EXPECT_FALSE(r.all[7]->closed());
  EXPECT_EQ(r.h.manager.connections(peer_id(8)).size(), 2u);
  EXPECT_EQ(r.h.manager.connection_count(), 20u - 1u - 7u + 1u);
  EXPECT_EQ(r.h.manager.stats().connections, r.h.manager.connection_count());
}

TEST(Concurrency, ATrimCommittedInBatchesClosesWhatOneBatchCloses) {
  // The same pool trimmed twice, in one batch and in batches of 3: the same victims, the
  // same events, the same counts.
  std::vector<std::set<std::uint64_t>> closed_sets;
  std::vector<std::size_t> counts;
  for (std::size_t batch : {1024u, 3u}) {
    ManagerHarness h(trim_config(40, 200));
    CoreProbe::on_trim(h.manager, nullptr, batch);
    std::mt19937 random(7);
    Connections all = h.add_peers(1, 100);
    for (std::uint64_t n = 1; n <= 100; ++n) {
      ASSERT_FALSE(h.manager.tag_peer(peer_id(n), "v", static_cast<int>(random() % 50)));
      if (n % 9 == 0) {
        ASSERT_FALSE(h.manager.protect(peer_id(n), "p"));
      }
    }
    counts.push_back(h.manager.trim());
    std::set<std::uint64_t> closed;
    for (std::uint64_t n = 1; n <= 100; ++n) {
      if (all[n - 1]->closed()) closed.insert(n);
    }
    closed_sets.push_back(closed);
    // 11 protected peers do not count toward the target: 89 candidates, 49 go.
    EXPECT_EQ(h.manager.connection_count(), 51u);
    EXPECT_EQ(h.manager.peer_count(), 51u);
  }
  EXPECT_EQ(counts[0], 49u);
  EXPECT_EQ(counts[1], counts[0]);
  EXPECT_EQ(closed_sets[1], closed_sets[0]);
}

// Realms as well: threads tag, open streams and bind while others trim and force-trim.
// After the run the model's invariants hold: the counts equal the connections held, every
// reservation is released, no protected peer lost a connection to a normal trim, and each
// peer's value is the sum of its tags.
TEST(Concurrency, RandomCallsFromFourThreadsWithRealmsKeepTheInvariants) {
  boost::asio::io_context io;
  auto time = std::make_shared<ManualTimeSource>(io);
  Dependencies deps;
  deps.time_source = time;
  RealmConnectionManager node(io, trim_config(150, 300, 0ms, 10s), deps);
  ConnectionManager& manager = node.manager();
  CoreProbe::on_trim(manager, nullptr, 16);
  RealmConfig realm;
  realm.low_water = 20;
  realm.high_water = 60;
  ASSERT_FALSE(node.create_realm("r1", realm));
  ASSERT_FALSE(node.create_realm("r2", realm));

  constexpr std::uint64_t kPeers = 400;
  constexpr std::uint64_t kProtected = 20;  // peers 1..20: protected throughout
  std::vector<Connections> connections(kPeers + 1);
  std::mutex connections_mutex;
  auto add = [&](std::uint64_t n) {
    auto c = testing::reporting_connection(manager, peer_id(n), Direction::inbound);
    if (manager.add_connection(c)) return;
    std::lock_guard lock(connections_mutex);
    connections[n].push_back(c);
  };
  for (std::uint64_t n = 1; n <= kProtected; ++n) ASSERT_FALSE(manager.protect(peer_id(n), "p"));
  for (std::uint64_t n = 1; n <= kPeers; ++n) add(n);

  std::atomic<bool> stop{false};
  auto worker = [&](std::uint32_t seed) {
    std::mt19937 random(seed);
    for (int round = 0; round < 4000; ++round) {
      const std::uint64_t n = 1 + random() % kPeers;
      std::shared_ptr<FakeConnection> c;
      {
        std::lock_guard lock(connections_mutex);
        if (!connections[n].empty()) c = connections[n][random() % connections[n].size()];
      }
      switch (random() % 8) {
        case 0: (void)manager.tag_peer(peer_id(n), "x", static_cast<int>(random() % 30)); break;
        case 1: (void)manager.untag_peer(peer_id(n), "x"); break;
        case 2: (void)manager.upsert_tag(peer_id(n), "y", [](int v) { return v + 1; }); break;
        case 3:
          if (c) (void)manager.stream_opened(*c);
          break;
        case 4:
          if (c) (void)manager.stream_closed(*c);
          break;
        case 5:
          if (c) (void)node.bind(*c, random() % 2 == 0 ? "r1" : "r2");
          break;
        case 6: add(n); break;
        case 7: (void)manager.tag_info(peer_id(n)); break;
      }
    }
  };
  auto trimmer = [&] {
    for (int round = 0; !stop.load(); ++round) {
      switch (round % 4) {
        case 0: (void)manager.trim(); break;
        case 1: (void)manager.force_trim(); break;
        case 2: (void)node.trim_realm("r1"); break;
        case 3: (void)manager.trim_connections(5); break;
      }
    }
  };
  std::vector<std::thread> threads;
  for (std::uint32_t seed = 1; seed <= 3; ++seed) threads.emplace_back(worker, seed);
  std::thread trims(trimmer);
  for (std::thread& t : threads) t.join();
  stop = true;
  trims.join();
  time->run_ready();

  // Counts equal the connections held (the host removed what the manager closed).
  std::size_t held = 0;
  std::size_t streams = 0;
  for (std::uint64_t n = 1; n <= kPeers; ++n) {
    std::size_t open_of_peer = 0;
    for (const auto& c : connections[n]) {
      if (!c->closed()) ++open_of_peer;
    }
    held += open_of_peer;
    streams += streams_of(manager, peer_id(n));
    EXPECT_EQ(manager.connections(peer_id(n)).size(), open_of_peer) << n;
    if (auto info = manager.tag_info(peer_id(n))) {
      std::int64_t sum = 0;
      for (const auto& tag : info->tags) sum += tag.second;
      EXPECT_EQ(info->value, sum) << n;
    }
  }
  const Stats stats = manager.stats();
  EXPECT_EQ(manager.connection_count(), held);
  EXPECT_EQ(stats.connections, held);
  EXPECT_EQ(stats.streams, streams);
  EXPECT_EQ(stats.reservations, 0u);
  // The protected peers lost connections only to force_trim, never to a normal trim.
  for (std::uint64_t n = 1; n <= kProtected; ++n) {
    for (const auto& c : connections[n]) {
      if (c->closed()) {
        EXPECT_EQ(c->last_reason(), CloseReason::forced_trim) << n;
      }
    }
  }
}

}  // namespace
}  // namespace dep2p::connmgr
