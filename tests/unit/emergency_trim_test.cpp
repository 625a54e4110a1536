// The emergency trim, force_trim() (docs/design.md, "Trimming"): grace ignored, unprotected
// peers first in the emergency order (more streams before fewer), then protected peers only
// for the shortfall, least valuable first; temporary entries pruned only as a normal trim
// prunes them. A randomised test compares force_trim() with a reference written straight
// from the rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/trimmer.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using testing::count_closed;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

using Connections = std::vector<std::shared_ptr<FakeConnection>>;

// A connection to peer_id(n) carrying `streams` streams from the start.
std::shared_ptr<FakeConnection> add_with_streams(ManagerHarness& h, std::uint64_t n,
                                                 std::uint32_t streams,
                                                 Direction direction = Direction::outbound) {
  auto connection = testing::reporting_connection(h.manager, peer_id(n), direction);
  connection->initial_streams = streams;
  EXPECT_FALSE(h.manager.add_connection(connection));
  return connection;
}

// --- The protected phase --------------------------------------------------------------

TEST(EmergencyTrim, TheProtectedPhaseTakesTheLeastValuableProtectedPeer) {
  ManagerHarness h(trim_config(1, 100));
  ASSERT_FALSE(h.manager.protect(peer_id(1), "x"));
  ASSERT_FALSE(h.manager.protect(peer_id(2), "x"));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "v", 100));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(2), "v", 10));
  auto p1 = h.add(1, Direction::outbound);
  auto p2 = h.add(2, Direction::outbound);
  auto p3 = h.add(3, Direction::outbound);

  // Three connections, low water 1: the unprotected p3 covers one, and one protected peer
  // must go for the shortfall, the less valuable one.
  EXPECT_EQ(h.manager.force_trim(), 2u);
  EXPECT_TRUE(p3->closed());
  EXPECT_TRUE(p2->closed());
  EXPECT_FALSE(p1->closed()) << "the most valuable protected peer was closed";
  EXPECT_EQ(h.manager.connection_count(), 1u);
}

TEST(EmergencyTrim, TheProtectedPhaseRanksForItsOwnShortfallAmongManyProtectedPeers) {
  ManagerHarness h(trim_config(10, 100));
  // 30 protected peers with values 30 .. 1 (the last added is the least valuable) and 5
  // unprotected: 35 connections, low water 10, so 20 of the protected must go.
  Connections by_value(31);
  for (std::uint64_t n = 1; n <= 30; ++n) {
    ASSERT_FALSE(h.manager.protect(peer_id(n), "keep"));
    ASSERT_FALSE(h.manager.tag_peer(peer_id(n), "v", static_cast<int>(31 - n)));
    by_value[31 - n] = h.add(n, Direction::outbound);
  }
  Connections others = h.add_peers(100, 5, Direction::outbound);
  EXPECT_EQ(h.manager.force_trim(), 25u);
  EXPECT_EQ(count_closed(others), 5u);
  for (int value = 1; value <= 30; ++value) {
    EXPECT_EQ(by_value[static_cast<std::size_t>(value)]->closed(), value <= 20)
        << "the protected peer of value " << value;
  }
}

// --- The emergency order --------------------------------------------------------------

TEST(EmergencyTrim, MoreStreamsGoFirstInAnEmergency) {
  ManagerHarness h(trim_config(1, 100));
  auto one = add_with_streams(h, 1, 1);
  auto two = add_with_streams(h, 2, 2);
  EXPECT_EQ(h.manager.force_trim(), 1u);
  EXPECT_TRUE(two->closed()) << "the peer with more streams holds more memory";
  EXPECT_FALSE(one->closed());
}

TEST(EmergencyTrim, FewerStreamsGoFirstInANormalTrim) {
  ManagerHarness h(trim_config(1, 100));
  auto one = add_with_streams(h, 1, 1);
  auto two = add_with_streams(h, 2, 2);
  EXPECT_EQ(h.manager.trim(), 1u);
  EXPECT_TRUE(one->closed());
  EXPECT_FALSE(two->closed());
}

TEST(EmergencyTrim, InAnEmergencyAPeerWithoutStreamsStillGoesBeforeOneWithStreams) {
  ManagerHarness h(trim_config(1, 100));
  auto busy = add_with_streams(h, 1, 5);
  auto idle = add_with_streams(h, 2, 0);
  EXPECT_EQ(h.manager.force_trim(), 1u);
  EXPECT_TRUE(idle->closed());
  EXPECT_FALSE(busy->closed());
}

TEST(EmergencyTrim, ValueStillDecidesBeforeStreams) {
  ManagerHarness h(trim_config(1, 100));
  auto cheap = add_with_streams(h, 1, 1);
  auto valuable = add_with_streams(h, 2, 9);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(2), "v", 5));
  EXPECT_EQ(h.manager.force_trim(), 1u);
  EXPECT_TRUE(cheap->closed());
  EXPECT_FALSE(valuable->closed());
}

TEST(EmergencyTrim, TheScoreTrimmerReadsTheForcedFlag) {
  auto trimmer = make_score_trimmer();
  TrimSnapshot snapshot;
  for (std::uint32_t streams : {1u, 3u, 2u}) {
    PeerSnapshot peer;
    peer.streams = streams;
    peer.connection_count = 1;
    snapshot.peers.push_back(peer);
  }
  std::vector<std::uint32_t> order;
  trimmer->rank(snapshot, 1, order);
  ASSERT_EQ(order.size(), 1u);
  EXPECT_EQ(order[0], 0u) << "normal: fewest streams first";
  snapshot.forced = true;
  order.clear();
  trimmer->rank(snapshot, 1, order);
  ASSERT_EQ(order.size(), 1u);
  EXPECT_EQ(order[0], 1u) << "emergency: most streams first";
}

// --- Temporary entries ----------------------------------------------------------------

TEST(EmergencyTrim, KeepsTemporaryEntriesThatHaveNotExpired) {
  ManagerHarness h(trim_config(2, 100, 10s));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(100), "early", 5));
  Connections all = h.add_peers(1, 5);
  EXPECT_EQ(h.manager.force_trim(), 3u);
  const auto entry = h.manager.tag_info(peer_id(100));
  ASSERT_TRUE(entry.has_value()) << "a fresh temporary entry holds no connection to free";
  EXPECT_TRUE(entry->temporary);
  EXPECT_EQ(entry->value, 5);
  EXPECT_EQ(h.manager.stats().temporary_peers_pruned, 0u);
}

TEST(EmergencyTrim, KeepsTheTemporaryEntryOfAProtectedPeerEvenWhenExpired) {
  ManagerHarness h(trim_config(2, 100, 10s));
  ASSERT_FALSE(h.manager.protect(peer_id(100), "boot"));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(100), "early", 5));
  Connections all = h.add_peers(1, 5);
  h.time->jump(20s);  // the entry's end passes without the expiry timer firing
  EXPECT_EQ(h.manager.force_trim(), 3u);
  ASSERT_TRUE(h.manager.tag_info(peer_id(100)).has_value());
}

TEST(EmergencyTrim, PrunesExpiredUnprotectedTemporaryEntriesAsANormalTrimDoes) {
  Config config = trim_config(2, 100, 10s);
  config.temp_peer_lifetime = 10s;
  ManagerHarness h(config);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(100), "early", 5));
  Connections all = h.add_peers(1, 5);
  h.time->jump(20s);  // expired, but its timer has not fired yet
  EXPECT_EQ(h.manager.force_trim(), 3u);
  EXPECT_FALSE(h.manager.tag_info(peer_id(100)).has_value());
  EXPECT_EQ(h.manager.stats().temporary_peers_pruned, 1u);
}

// --- Against a reference --------------------------------------------------------------

// One random pool: peers with 1..3 connections in random directions, streams, values,
// first-seen times and protections.
struct RandomPeer {
  std::uint64_t n = 0;
  std::int64_t value = 0;
  std::uint32_t streams = 0;
  bool inbound = false;
  bool is_protected = false;
  std::size_t connections = 0;
  TimePoint first_seen{};
  std::size_t order = 0;  // creation order: the pool's slot order in a fresh manager
};

// The emergency order written out plainly (docs/design.md, "Trimming"): lower value; no
// streams before streams; a peer with an inbound connection first; more streams first;
// later first_seen first; then slot order.
bool emergency_before(const RandomPeer& a, const RandomPeer& b) {
  auto key = [](const RandomPeer& p) {
    return std::make_tuple(p.value, p.streams > 0, !p.inbound,
                           -static_cast<std::int64_t>(p.streams),
                           -p.first_seen.time_since_epoch().count(), p.order);
  };
  return key(a) < key(b);
}

// Takes whole peers from `ranked` until `target` connections are covered.
std::set<std::uint64_t> take(std::vector<RandomPeer> ranked, std::size_t target) {
  std::sort(ranked.begin(), ranked.end(), emergency_before);
  std::set<std::uint64_t> taken;
  std::size_t covered = 0;
  for (const RandomPeer& p : ranked) {
    if (covered >= target) break;
    taken.insert(p.n);
    covered += p.connections;
  }
  return taken;
}

TEST(EmergencyTrim, ClosesExactlyWhatTheReferenceClosesOnAThousandRandomPools) {
  std::mt19937_64 random(20261203);
  auto below = [&](std::uint64_t bound) { return static_cast<std::size_t>(random() % bound); };
  std::size_t pools_with_protected_victims = 0;
  for (int pool = 0; pool < 1000; ++pool) {
    const std::size_t peer_count = 1 + below(24);
    std::vector<RandomPeer> peers;
    std::size_t total = 0;
    for (std::size_t i = 0; i < peer_count; ++i) {
      RandomPeer p;
      p.n = i + 1;
      p.order = i;
      p.value = static_cast<std::int64_t>(below(4));  // few values: many ties
      p.streams = static_cast<std::uint32_t>(below(4));
      p.inbound = below(2) == 0;
      p.is_protected = below(3) == 0;
      p.connections = 1 + below(3);
      total += p.connections;
      peers.push_back(p);
    }
    const std::size_t low = 1 + below(total);
    ManagerHarness h(trim_config(low, 10'000, 1h));
    std::vector<Connections> handles(peer_count);
    for (RandomPeer& p : peers) {
      if (below(2) == 0) h.time->advance(std::chrono::milliseconds(1 + below(3)));
      p.first_seen = h.time->now();
      for (std::size_t c = 0; c < p.connections; ++c) {
        // The first connection sets the direction the reference reads; the others are
        // outbound, so they never change whether the peer has an inbound one.
        const Direction d = c == 0 && p.inbound ? Direction::inbound : Direction::outbound;
        // Streams sit on the first connection; a peer's count is the sum.
        handles[p.order].push_back(add_with_streams(h, p.n, c == 0 ? p.streams : 0, d));
      }
      if (p.value != 0) {
        ASSERT_FALSE(h.manager.tag_peer(peer_id(p.n), "v", static_cast<int>(p.value)));
      }
      if (p.is_protected) {
        ASSERT_FALSE(h.manager.protect(peer_id(p.n), "keep"));
      }
    }

    // The reference: unprotected peers to the target, then protected ones for the rest.
    std::vector<RandomPeer> unprotected;
    std::vector<RandomPeer> protected_peers;
    std::size_t unprotected_connections = 0;
    for (const RandomPeer& p : peers) {
      (p.is_protected ? protected_peers : unprotected).push_back(p);
      if (!p.is_protected) unprotected_connections += p.connections;
    }
    const std::size_t target = total > low ? total - low : 0;
    std::set<std::uint64_t> expected = take(unprotected, target);
    if (target > unprotected_connections) {
      const std::set<std::uint64_t> more = take(protected_peers, target - unprotected_connections);
      if (!more.empty()) ++pools_with_protected_victims;
      expected.insert(more.begin(), more.end());
    }

    std::size_t expected_connections = 0;
    for (const RandomPeer& p : peers) {
      if (expected.count(p.n) != 0) expected_connections += p.connections;
    }
    EXPECT_EQ(h.manager.force_trim(), expected_connections) << "pool " << pool;
    for (const RandomPeer& p : peers) {
      const std::size_t closed = count_closed(handles[p.order]);
      const bool victim = expected.count(p.n) != 0;
      EXPECT_EQ(closed, victim ? p.connections : 0u)
          << "pool " << pool << ", peer " << p.n << (p.is_protected ? " (protected)" : "")
          << " value " << p.value << " streams " << p.streams;
    }
    if (::testing::Test::HasFailure()) return;
  }
  // The protected phase must be exercised, not only the unprotected one.
  EXPECT_GT(pools_with_protected_victims, 100u);
}

}  // namespace
}  // namespace dep2p::connmgr
