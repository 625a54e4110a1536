// Acceptance 3: tag and protect calls from two threads while a third trims (trim,
// force_trim, trim_connections, the background check) and the host adds and removes
// connections. Iteration counts are bounded and nothing sleeps; the end state is checked
// exactly: counts, protections, tag sums, events, and that no connection was closed twice.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <set>
#include <thread>
#include <variant>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "manager/core_probe.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

constexpr std::uint64_t kFirstPermanent = 1;  // peers 1..10: protected throughout, 2 conns
constexpr std::uint64_t kPermanentPeers = 10;
constexpr std::uint64_t kFirstChurn = 11;  // peers 11..30: tags and protections churn
constexpr std::uint64_t kChurnPeers = 20;
constexpr std::uint64_t kFirstFresh = 1000;  // one connection each, added during the run
constexpr int kTagRounds = 1000;
constexpr int kFreshConnections = 5000;
constexpr int kMinTrimRounds = 200;
constexpr int kMaxTrimRounds = 100'000;

struct Tracked {
  std::shared_ptr<FakeConnection> connection;
  bool removed_by_host = false;
};

// One churning thread: tags, untags, upserts, protects and unprotects the churn peers
// under its own tag name, and finally leaves the even peers protected by `name` when
// `protect_even_at_end`, none otherwise.
void churn(ConnectionManager& manager, const char* name, bool protect_even_at_end) {
  for (int round = 0; round < kTagRounds; ++round) {
    for (std::uint64_t n = kFirstChurn; n < kFirstChurn + kChurnPeers; ++n) {
      const NodeId peer = peer_id(n);
      const int step = round + static_cast<int>(n);
      (void)manager.tag_peer(peer, name, step % 7);
      if (step % 3 == 0) (void)manager.untag_peer(peer, name);
      if (step % 5 == 0) (void)manager.upsert_tag(peer, "shared", [](int old) { return old + 1; });
      if (step % 2 == 0) {
        EXPECT_FALSE(manager.protect(peer, name));
      } else {
        (void)manager.unprotect(peer, name);
      }
      (void)manager.is_protected(peer);
      (void)manager.tag_info(peer);
    }
  }
  for (std::uint64_t n = kFirstChurn; n < kFirstChurn + kChurnPeers; ++n) {
    if (protect_even_at_end && n % 2 == 0) {
      EXPECT_FALSE(manager.protect(peer_id(n), name));
    } else {
      (void)manager.unprotect(peer_id(n), name);
    }
  }
}

// The run, for a pool whose trims close about `low_water` connections each, committed in
// batches of `trim_batch` peers: one hold of the lock, or several with the lock released
// between them while the other threads keep calling.
void run_stress(std::size_t low_water, std::size_t trim_batch) {
  ManagerHarness h(trim_config(low_water, 2 * low_water, 0ms, 10s));
  detail::CoreProbe::on_trim(h.manager, nullptr, trim_batch);
  std::atomic<std::uint64_t> connected_events{0};
  std::atomic<std::uint64_t> disconnected_events{0};
  Subscription subscription = h.manager.subscribe([&](const Event& e) {
    if (std::holds_alternative<ConnectedEvent>(e)) ++connected_events;
    if (std::holds_alternative<DisconnectedEvent>(e)) ++disconnected_events;
  });

  std::vector<Tracked> tracked;
  tracked.reserve(2 * kPermanentPeers + kChurnPeers + static_cast<std::size_t>(kFreshConnections) +
                  low_water + 136);
  for (std::uint64_t n = kFirstPermanent; n < kFirstPermanent + kPermanentPeers; ++n) {
    ASSERT_FALSE(h.manager.protect(peer_id(n), "permanent"));
    tracked.push_back({h.add(n, Direction::inbound), false});
    tracked.push_back({h.add(n, Direction::outbound, /*reporting=*/false), false});
  }
  for (std::uint64_t n = kFirstChurn; n < kFirstChurn + kChurnPeers; ++n) {
    tracked.push_back({h.add(n, n % 2 == 0 ? Direction::inbound : Direction::outbound), false});
  }
  const std::size_t permanent_connections = 2 * kPermanentPeers;
  // At most 20 permanent + 20 churn connections are ever protected: below low water, so
  // force_trim never needs to close a protected peer.
  ASSERT_LE(2 * kPermanentPeers + kChurnPeers, low_water);

  std::atomic<bool> adds_done{false};
  std::thread churn_a([&] { churn(h.manager, "a", /*protect_even_at_end=*/true); });
  std::thread churn_b([&] { churn(h.manager, "b", /*protect_even_at_end=*/false); });
  std::thread trimmer([&] {
    for (int round = 0; round < kMaxTrimRounds && (round < kMinTrimRounds || !adds_done.load());
         ++round) {
      (void)h.manager.trim();
      if (round % 4 == 0) (void)h.manager.force_trim();
      if (round % 5 == 0) (void)h.manager.trim_connections(2);
      if (round % 10 == 0) h.time->advance(10s);  // the background check, on this thread
      const Stats stats = h.manager.stats();
      EXPECT_EQ(stats.inbound + stats.outbound, stats.connections);
    }
  });

  // The host: adds connections (half report their closure back from close(), half do
  // not) and reports some closures of its own.
  for (int i = 0; i < kFreshConnections; ++i) {
    const auto n = kFirstFresh + static_cast<std::uint64_t>(i);
    const Direction direction = i % 2 == 0 ? Direction::inbound : Direction::outbound;
    tracked.push_back({h.add(n, direction, /*reporting=*/i % 3 != 0), false});
    if (i % 4 == 3) {
      Tracked& earlier = tracked[tracked.size() - 3];
      if (earlier.connection->remote_peer() >= peer_id(kFirstFresh)) {
        (void)h.manager.remove_connection(*earlier.connection);
        earlier.removed_by_host = true;
      }
    }
  }
  adds_done = true;
  churn_a.join();
  churn_b.join();
  trimmer.join();
  h.time->run_ready();

  // Everything settled: the pool is exactly the connections neither closed nor removed.
  const auto alive = [&] {
    std::size_t count = 0;
    for (const auto& t : tracked) {
      EXPECT_LE(t.connection->close_count(), 1) << "closed twice: " << t.connection->remote_peer();
      if (!t.connection->closed() && !t.removed_by_host) ++count;
    }
    return count;
  };
  std::size_t expected = alive();
  Stats stats = h.manager.stats();
  EXPECT_EQ(h.manager.connection_count(), expected);
  EXPECT_EQ(stats.connections, expected);
  EXPECT_EQ(stats.connections_added - stats.connections_removed, stats.connections);
  EXPECT_EQ(stats.inbound + stats.outbound, stats.connections);
  EXPECT_EQ(h.manager.connection_count(Direction::inbound), stats.inbound);
  EXPECT_EQ(connected_events.load(), stats.connections_added);
  EXPECT_EQ(disconnected_events.load(), stats.connections_removed);
  EXPECT_EQ(std::accumulate(stats.closes_by_reason.begin(), stats.closes_by_reason.end(),
                            std::uint64_t{0}),
            stats.connections_removed);
  EXPECT_GT(stats.trims, 0u);

  // Per peer, the pool agrees with the fakes.
  std::set<NodeId> alive_peers;
  for (const auto& t : tracked) {
    if (!t.connection->closed() && !t.removed_by_host) {
      alive_peers.insert(t.connection->remote_peer());
    }
  }
  EXPECT_EQ(h.manager.peer_count(), alive_peers.size());
  std::size_t per_peer_sum = 0;
  for (const auto& peer : alive_peers) per_peer_sum += h.manager.connections(peer).size();
  EXPECT_EQ(per_peer_sum, expected);

  // Protections are exactly what the threads left; the permanent peers kept both
  // connections through every trim, forced or not.
  for (std::uint64_t n = kFirstPermanent; n < kFirstPermanent + kPermanentPeers; ++n) {
    EXPECT_TRUE(h.manager.is_protected(peer_id(n), "permanent"));
    EXPECT_EQ(h.manager.connections(peer_id(n)).size(), 2u) << "permanent peer " << n;
  }
  for (std::size_t i = 0; i < permanent_connections; ++i) {
    const auto& c = tracked[i].connection;
    EXPECT_FALSE(c->closed()) << "permanent peer " << c->remote_peer().to_hex().substr(48)
                              << " closed (" << c->last_reason() << ": " << c->last_detail() << ")";
  }
  for (std::uint64_t n = kFirstChurn; n < kFirstChurn + kChurnPeers; ++n) {
    EXPECT_EQ(h.manager.is_protected(peer_id(n), "a"), n % 2 == 0) << "peer " << n;
    EXPECT_FALSE(h.manager.is_protected(peer_id(n), "b")) << "peer " << n;
    // The cached sum matches the tags.
    if (const auto info = h.manager.tag_info(peer_id(n))) {
      std::int64_t sum = 0;
      for (const auto& [name, value] : info->tags) sum += value;
      EXPECT_EQ(info->value, sum) << "peer " << n;
    }
  }
  EXPECT_EQ(stats.protected_peers, kPermanentPeers + kChurnPeers / 2);

  // A last emergency trim lands exactly on low water (single-connection fresh peers make
  // up the difference) without touching a protected peer.
  std::vector<std::uint64_t> protected_churn_alive;
  for (std::uint64_t n = kFirstChurn + kFirstChurn % 2; n < kFirstChurn + kChurnPeers; n += 2) {
    if (!h.manager.connections(peer_id(n)).empty()) protected_churn_alive.push_back(n);
  }
  const std::uint64_t first_late = kFirstFresh + static_cast<std::uint64_t>(kFreshConnections);
  for (std::uint64_t i = 0; i < low_water + 36; ++i) {
    tracked.push_back({h.add(first_late + i), false});
  }
  (void)h.manager.force_trim();
  h.time->run_ready();
  expected = alive();
  EXPECT_EQ(h.manager.connection_count(), low_water);
  EXPECT_EQ(expected, low_water);
  for (std::uint64_t n = kFirstPermanent; n < kFirstPermanent + kPermanentPeers; ++n) {
    EXPECT_EQ(h.manager.connections(peer_id(n)).size(), 2u) << "permanent peer " << n;
  }
  for (const std::uint64_t n : protected_churn_alive) {
    EXPECT_EQ(h.manager.connections(peer_id(n)).size(), 1u) << "protected churn peer " << n;
  }
}

TEST(Stress, TagAndProtectFromTwoThreadsWhileTrimsRunKeepsExactCounts) { run_stress(64, 2048); }

// Trims of about 1,200 victims in batches of 256: their commits release the lock between
// batches while the other threads keep calling.
TEST(Stress, TheSameWhileTrimsCommitInSeveralBatches) { run_stress(1200, 256); }

}  // namespace
}  // namespace dep2p::connmgr
