// Trimming rules of docs/design.md, "Trimming", in virtual time: which connections a trim closes,
// how many, when the background check runs, force_trim, trim_connections, set_limits, and the
// coalescing of concurrent trim() calls.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using testing::BlockingTrimmer;
using testing::count_closed;
using testing::EventRecorder;
using testing::expect_closes_carry;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::peer_id;
using testing::ThrowingTrimmer;
using testing::trim_config;

using Connections = std::vector<std::shared_ptr<FakeConnection>>;

void append(Connections& to, const Connections& from) {
  to.insert(to.end(), from.begin(), from.end());
}

// --- How many: grace, watermarks, protection ---------------------------------------------

TEST(Trim, NothingClosedWhileFewerThanLowWaterConnectionsAreOutOfGrace) {
  ManagerHarness h(trim_config(10, 100, 20s));
  Connections all = h.add_peers(1, 1);
  h.time->advance(20s);
  append(all, h.add_peers(2, 30));
  ASSERT_EQ(h.manager.connection_count(), 31u);

  // 31 connections, 30 of them in grace: one candidate, fewer than low water (10).
  EXPECT_EQ(h.manager.trim(), 0u);
  EXPECT_EQ(count_closed(all), 0u);
  EXPECT_EQ(h.manager.connection_count(), 31u);

  // Once the grace has passed every connection is a candidate: 31 - 10 = 21 go.
  h.time->advance(20s);
  EXPECT_EQ(h.manager.trim(), 21u);
  EXPECT_EQ(count_closed(all), 21u);
  EXPECT_EQ(h.manager.connection_count(), 10u);
  EXPECT_EQ(h.manager.stats().connections, 10u);
  expect_closes_carry(all, CloseReason::trimmed);
}

TEST(Trim, GraceEndsExactlyGracePeriodAfterFirstSeen) {
  ManagerHarness h(trim_config(10, 100, 20s));
  Connections all = h.add_peers(1, 15);

  h.time->advance(20s - 1ms);
  EXPECT_EQ(h.manager.trim(), 0u);
  EXPECT_EQ(count_closed(all), 0u);

  h.time->advance(1ms);  // now - first_seen == grace_period: out of grace
  EXPECT_EQ(h.manager.trim(), 5u);
  EXPECT_EQ(count_closed(all), 5u);
}

TEST(Trim, ZeroGraceMeansNoGrace) {
  ManagerHarness h(trim_config(10, 100, 0ms));
  Connections all = h.add_peers(1, 15);
  EXPECT_EQ(h.manager.trim(), 5u);
  EXPECT_EQ(count_closed(all), 5u);
  EXPECT_EQ(h.manager.connection_count(), 10u);
}

TEST(Trim, ProtectedPeersNeverCountTowardTheTarget) {
  ManagerHarness h(trim_config(10, 100));
  Connections protected_connections = h.add_peers(1, 8);
  Connections others = h.add_peers(9, 12);
  for (std::uint64_t n = 1; n <= 8; ++n) {
    ASSERT_FALSE(h.manager.protect(peer_id(n), "keep"));  // value 0: the cheapest peers
  }
  for (std::uint64_t n = 9; n <= 20; ++n) {
    ASSERT_FALSE(h.manager.tag_peer(peer_id(n), "value", static_cast<int>(n)));
  }

  // Candidates: the 12 unprotected connections; 12 - low water 10 = 2 close (not 20 - 10).
  EXPECT_EQ(h.manager.trim(), 2u);
  EXPECT_EQ(count_closed(protected_connections), 0u);
  EXPECT_EQ(count_closed(others), 2u);
  EXPECT_TRUE(others[0]->closed());  // values 9 and 10: the lowest unprotected
  EXPECT_TRUE(others[1]->closed());
  EXPECT_EQ(h.manager.connection_count(), 18u);
  for (std::uint64_t n = 1; n <= 8; ++n) EXPECT_TRUE(h.manager.is_protected(peer_id(n)));
}

TEST(Trim, NothingClosedWhenUnprotectedCandidatesAreFewerThanLowWater) {
  ManagerHarness h(trim_config(10, 100));
  Connections all = h.add_peers(1, 20);
  for (std::uint64_t n = 1; n <= 12; ++n) ASSERT_FALSE(h.manager.protect(peer_id(n), "keep"));

  EXPECT_EQ(h.manager.trim(), 0u);  // 8 candidates < low water 10
  EXPECT_EQ(count_closed(all), 0u);
  EXPECT_EQ(h.manager.connection_count(), 20u);
}

TEST(Trim, MultiConnectionPeersCountPerConnectionAndCloseAsAWhole) {
  ManagerHarness h(trim_config(9, 100));
  std::vector<Connections> by_peer(7);
  for (std::uint64_t n = 1; n <= 6; ++n) {
    by_peer[n].push_back(h.add(n, Direction::inbound));
    by_peer[n].push_back(h.add(n, Direction::outbound));
    ASSERT_FALSE(h.manager.tag_peer(peer_id(n), "value", static_cast<int>(n)));
  }
  ASSERT_EQ(h.manager.connection_count(), 12u);
  ASSERT_EQ(h.manager.peer_count(), 6u);

  // Target 12 - 9 = 3 connections: the cheapest peer (2) is not enough, so a second whole
  // peer goes too: 4 connections closed, never half a peer.
  EXPECT_EQ(h.manager.trim(), 4u);
  for (std::uint64_t n = 1; n <= 6; ++n) {
    const bool expect_closed = n <= 2;
    for (const auto& c : by_peer[n]) EXPECT_EQ(c->closed(), expect_closed) << "peer " << n;
  }
  EXPECT_EQ(h.manager.connection_count(), 8u);
  EXPECT_EQ(h.manager.peer_count(), 4u);
}

TEST(Trim, TargetIsCountedInConnectionsNotPeers) {
  ManagerHarness h(trim_config(6, 100));
  Connections all;
  for (std::uint64_t n = 1; n <= 4; ++n) {
    for (int i = 0; i < 3; ++i) all.push_back(h.add(n));
    ASSERT_FALSE(h.manager.tag_peer(peer_id(n), "value", static_cast<int>(n)));
  }
  // 12 connections in 4 peers, low water 6: two whole peers (6 connections) go.
  EXPECT_EQ(h.manager.trim(), 6u);
  EXPECT_EQ(h.manager.connection_count(), 6u);
  EXPECT_EQ(h.manager.peer_count(), 2u);
  EXPECT_EQ(h.manager.connections(peer_id(3)).size(), 3u);
  EXPECT_EQ(h.manager.connections(peer_id(4)).size(), 3u);
}

// --- Which: temporary entries, order ------------------------------------------------------

TEST(Trim, TemporaryEntriesPastTheirLifetimeAreGoneAndYoungerOnesSurviveATrim) {
  Config config = trim_config(2, 100, 10s);
  config.temp_peer_lifetime = 10s;
  ManagerHarness h(config);
  const NodeId old_temporary = peer_id(100);
  const NodeId young_temporary = peer_id(101);
  // A high value: a temporary entry holds no connection, so value cannot keep it.
  ASSERT_FALSE(h.manager.tag_peer(old_temporary, "early", 1000));
  Connections all = h.add_peers(1, 5);
  h.time->advance(10s);  // the old entry's lifetime ends: it expires without a trim
  EXPECT_FALSE(h.manager.tag_info(old_temporary).has_value());
  EXPECT_EQ(h.manager.stats().temporary_peers_pruned, 1u);
  ASSERT_FALSE(h.manager.tag_peer(young_temporary, "early", 1000));
  ASSERT_EQ(h.manager.stats().temporary_peers, 1u);

  EXPECT_EQ(h.manager.trim(), 3u);  // connections only: entries hold none
  EXPECT_EQ(count_closed(all), 3u);
  const auto young = h.manager.tag_info(young_temporary);
  ASSERT_TRUE(young.has_value());
  EXPECT_TRUE(young->temporary);
  EXPECT_EQ(young->value, 1000);
  const Stats stats = h.manager.stats();
  EXPECT_EQ(stats.temporary_peers, 1u);
  EXPECT_EQ(stats.temporary_peers_pruned, 1u);
}

TEST(Trim, LowerValueGoesFirst) {
  ManagerHarness h(trim_config(6, 100));
  const std::array<int, 10> values = {5, 2, 9, 0, 7, 3, 8, 1, 6, 4};
  Connections all = h.add_peers(1, values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    // Split over two tags: the value is their sum.
    ASSERT_FALSE(h.manager.tag_peer(peer_id(i + 1), "a", values[i] * 10));
    ASSERT_FALSE(h.manager.tag_peer(peer_id(i + 1), "b", values[i]));
  }
  EXPECT_EQ(h.manager.trim(), 4u);
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(all[i]->closed(), values[i] < 4) << "value " << values[i] * 11;
  }
}

TEST(Trim, PeersWithStreamsAreKeptOverPeersWithout) {
  ManagerHarness h(trim_config(4, 100));
  Connections all;
  for (std::uint64_t n = 1; n <= 8; ++n) {
    auto c = testing::reporting_connection(h.manager, peer_id(n), Direction::inbound);
    if (n == 1 || n == 3) c->initial_streams = 2;  // streams open when added
    ASSERT_FALSE(h.manager.add_connection(c));
    all.push_back(c);
  }
  ASSERT_TRUE(h.manager.stream_opened(*all[4]));  // peer 5: a stream opened later
  ASSERT_TRUE(h.manager.stream_opened(*all[6]));  // peer 7
  ASSERT_EQ(h.manager.stats().streams, 6u);

  EXPECT_EQ(h.manager.trim(), 4u);
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i]->closed(), i % 2 == 1) << "peer " << i + 1;
  }
}

// --- When: the background check, explicit trims, watermarks 0 ----------------------------

TEST(Trim, BackgroundCheckNeverRunsBeforeItsFirstTick) {
  ManagerHarness h(trim_config(5, 10, 0ms, 10s));
  EventRecorder events(h.manager);
  Connections all = h.add_peers(1, 10);  // at high water

  h.time->advance(10s - 1ms);
  EXPECT_EQ(count_closed(all), 0u);

  h.time->advance(1ms);
  EXPECT_EQ(count_closed(all), 5u);
  EXPECT_EQ(h.manager.connection_count(), 5u);
  expect_closes_carry(all, CloseReason::trimmed);
  const auto trims = events.of<TrimmedEvent>();
  ASSERT_EQ(trims.size(), 1u);
  EXPECT_EQ(trims[0].kind, TrimmedEvent::Kind::background);
  EXPECT_EQ(trims[0].connections_closed, 5u);
}

TEST(Trim, BackgroundCheckTrimsOnlyAtOrAboveHighWater) {
  ManagerHarness h(trim_config(5, 10, 0ms, 10s));
  Connections all = h.add_peers(1, 9);  // above low water, below high water
  h.time->advance(30s);                 // three checks
  EXPECT_EQ(count_closed(all), 0u);
  EXPECT_EQ(h.manager.stats().trims, 0u);

  append(all, h.add_peers(10, 1));  // now exactly at high water
  h.time->run_ready();
  EXPECT_EQ(count_closed(all), 0u) << "a new connection does not trim by itself";
  h.time->advance(10s);
  EXPECT_EQ(count_closed(all), 5u);
  EXPECT_EQ(h.manager.connection_count(), 5u);
}

TEST(Trim, NewConnectionsAboveHighWaterDoNotTrimByThemselves) {
  ManagerHarness h(trim_config(5, 10, 0ms, 10s));
  Connections all = h.add_peers(1, 25);
  h.time->run_ready();
  h.time->advance(10s - 1ms);
  EXPECT_EQ(count_closed(all), 0u);
  EXPECT_EQ(h.manager.connection_count(), 25u);
  h.time->advance(1ms);
  EXPECT_EQ(h.manager.connection_count(), 5u);
}

TEST(Trim, ExplicitTrimRunsAboveLowWaterEvenBelowHighWater) {
  ManagerHarness h(trim_config(5, 100));
  Connections all = h.add_peers(1, 8);
  EXPECT_EQ(h.manager.trim(), 3u);
  EXPECT_EQ(h.manager.connection_count(), 5u);
  expect_closes_carry(all, CloseReason::trimmed);
}

TEST(Trim, ExplicitTrimAtLowWaterClosesNothing) {
  ManagerHarness h(trim_config(5, 100));
  Connections all = h.add_peers(1, 5);
  EXPECT_EQ(h.manager.trim(), 0u);
  EXPECT_EQ(count_closed(all), 0u);
}

TEST(Trim, LowWaterZeroDisablesTrimming) {
  ManagerHarness h(trim_config(0, 10, 0ms, 10s));
  Connections all = h.add_peers(1, 20);
  EXPECT_EQ(h.manager.trim(), 0u);
  h.time->advance(30s);
  EXPECT_EQ(count_closed(all), 0u);
  EXPECT_EQ(h.manager.connection_count(), 20u);
}

TEST(Trim, HighWaterZeroDisablesTrimming) {
  ManagerHarness h(trim_config(10, 0, 0ms, 10s));
  Connections all = h.add_peers(1, 20);
  EXPECT_EQ(h.manager.trim(), 0u);
  h.time->advance(30s);
  EXPECT_EQ(count_closed(all), 0u);
  EXPECT_EQ(h.manager.connection_count(), 20u);
}

TEST(Trim, BothWatermarksZeroDisableTrimming) {
  ManagerHarness h(trim_config(0, 0, 0ms, 10s));
  Connections all = h.add_peers(1, 20);
  EXPECT_EQ(h.manager.trim(), 0u);
  h.time->advance(30s);
  EXPECT_EQ(count_closed(all), 0u);
}

TEST(Trim, HighWaterZeroSetAtRunTimeDisablesTrimming) {
  ManagerHarness h(trim_config(5, 10, 0ms, 10s));
  Connections all = h.add_peers(1, 8);
  ASSERT_FALSE(h.manager.set_limits(0, 0));
  h.time->run_ready();
  EXPECT_EQ(h.manager.trim(), 0u);
  append(all, h.add_peers(9, 10));
  h.time->advance(30s);
  EXPECT_EQ(count_closed(all), 0u);
  EXPECT_EQ(h.manager.connection_count(), 18u);
}

// --- force_trim ---------------------------------------------------------------------------

TEST(Trim, ForceTrimIgnoresGraceAndSparesProtectedPeersWhenItCan) {
  ManagerHarness h(trim_config(10, 100, 1h));
  EventRecorder events(h.manager);
  Connections protected_connections = h.add_peers(1, 5);
  Connections others = h.add_peers(6, 15);
  for (std::uint64_t n = 1; n <= 5; ++n) ASSERT_FALSE(h.manager.protect(peer_id(n), "keep"));
  ASSERT_EQ(h.manager.trim(), 0u);  // everything is in grace

  EXPECT_EQ(h.manager.force_trim(), 10u);
  EXPECT_EQ(count_closed(protected_connections), 0u);
  EXPECT_EQ(count_closed(others), 10u);
  EXPECT_EQ(h.manager.connection_count(), 10u);
  expect_closes_carry(others, CloseReason::forced_trim);
  const auto trims = events.of<TrimmedEvent>();
  ASSERT_EQ(trims.size(), 1u);
  EXPECT_EQ(trims[0].kind, TrimmedEvent::Kind::forced);
}

TEST(Trim, ForceTrimClosesProtectedPeersOnlyWhileStillAboveLowWater) {
  ManagerHarness h(trim_config(10, 100, 1h));
  Connections protected_connections = h.add_peers(1, 15);
  Connections others = h.add_peers(16, 5);
  for (std::uint64_t n = 1; n <= 15; ++n) ASSERT_FALSE(h.manager.protect(peer_id(n), "keep"));

  // 20 connections, low water 10: the 5 unprotected go first, then 5 protected.
  EXPECT_EQ(h.manager.force_trim(), 10u);
  EXPECT_EQ(count_closed(others), 5u);
  EXPECT_EQ(count_closed(protected_connections), 5u);
  EXPECT_EQ(h.manager.connection_count(), 10u);
  expect_closes_carry(protected_connections, CloseReason::forced_trim);
  expect_closes_carry(others, CloseReason::forced_trim);
}

TEST(Trim, ForceTrimClosesNoProtectedPeerBecauseOfConnectionsAddedWhileItRuns) {
  ManagerHarness* harness = nullptr;
  Connections late;
  auto trimmer = std::make_shared<testing::HookTrimmer>([&] {
    // The host adds unprotected connections while the trim ranks, outside any lock.
    if (late.empty()) late = harness->add_peers(100, 5);
  });
  ManagerHarness h(trim_config(10, 100, 1h), trimmer);
  harness = &h;
  Connections protected_connections = h.add_peers(1, 5);
  Connections others = h.add_peers(6, 15);
  for (std::uint64_t n = 1; n <= 5; ++n) ASSERT_FALSE(h.manager.protect(peer_id(n), "keep"));

  // Planned from 20 connections: 10 unprotected go. The 5 added meanwhile are
  // unprotected too, so no protected peer may be closed on their account.
  const std::size_t closed = h.manager.force_trim();
  ASSERT_EQ(late.size(), 5u);
  EXPECT_EQ(count_closed(protected_connections), 0u);
  EXPECT_EQ(count_closed(others), 10u);
  EXPECT_EQ(closed, 10u + count_closed(late));
  EXPECT_EQ(h.manager.connection_count(), 25u - closed);
}

TEST(Trim, ForceTrimAtLowWaterClosesNothing) {
  ManagerHarness h(trim_config(10, 100, 1h));
  Connections all = h.add_peers(1, 10);
  EXPECT_EQ(h.manager.force_trim(), 0u);
  EXPECT_EQ(count_closed(all), 0u);
}

// --- trim_connections ---------------------------------------------------------------------

TEST(Trim, TrimConnectionsClosesExactlyCountInTrimmerOrderSplittingTheLastPeer) {
  ManagerHarness h(trim_config(100, 400));
  EventRecorder events(h.manager);
  std::vector<Connections> by_peer(6);
  for (std::uint64_t n = 1; n <= 5; ++n) {
    by_peer[n].push_back(h.add(n));
    by_peer[n].push_back(h.add(n));
    ASSERT_FALSE(h.manager.tag_peer(peer_id(n), "value", static_cast<int>(n)));
  }
  // Far below low water: trim_connections ignores the watermarks.
  EXPECT_EQ(h.manager.trim_connections(3), 3u);
  EXPECT_EQ(count_closed(by_peer[1]), 2u);
  EXPECT_EQ(count_closed(by_peer[2]), 1u);
  for (std::uint64_t n = 3; n <= 5; ++n) EXPECT_EQ(count_closed(by_peer[n]), 0u) << n;
  EXPECT_EQ(h.manager.connection_count(), 7u);
  EXPECT_EQ(h.manager.connections(peer_id(2)).size(), 1u);
  for (const auto& connections : by_peer) {
    expect_closes_carry(connections, CloseReason::forced_trim);
  }
  const auto trims = events.of<TrimmedEvent>();
  ASSERT_EQ(trims.size(), 1u);
  EXPECT_EQ(trims[0].kind, TrimmedEvent::Kind::exact_count);
  EXPECT_EQ(trims[0].connections_closed, 3u);
}

TEST(Trim, TrimConnectionsClosesFewerWhenFewerAreEligible) {
  ManagerHarness h(trim_config(1, 400, 10s));
  Connections eligible;
  eligible.push_back(h.add(1));
  eligible.push_back(h.add(1));
  Connections kept = h.add_peers(2, 1);  // protected
  ASSERT_FALSE(h.manager.protect(peer_id(2), "keep"));
  h.time->advance(10s);
  append(kept, h.add_peers(3, 2));  // in grace

  EXPECT_EQ(h.manager.trim_connections(10), 2u);
  EXPECT_EQ(count_closed(eligible), 2u);
  EXPECT_EQ(count_closed(kept), 0u);
  EXPECT_EQ(h.manager.connection_count(), 3u);
  expect_closes_carry(eligible, CloseReason::forced_trim);
}

// --- set_limits ---------------------------------------------------------------------------

TEST(Trim, LoweringHighWaterToTheCountSchedulesATrimOnTheExecutor) {
  ManagerHarness h(trim_config(10, 100));
  EventRecorder events(h.manager);
  Connections all = h.add_peers(1, 30);

  const auto error = h.manager.set_limits(5, 30);
  ASSERT_FALSE(error) << error.message();
  EXPECT_EQ(h.manager.config().low_water, 5u);
  EXPECT_EQ(h.manager.config().high_water, 30u);
  EXPECT_EQ(count_closed(all), 0u) << "the trim is scheduled, not run inside set_limits";

  h.time->run_ready();
  EXPECT_EQ(count_closed(all), 25u);
  EXPECT_EQ(h.manager.connection_count(), 5u);
  expect_closes_carry(all, CloseReason::trimmed);
  const auto trims = events.of<TrimmedEvent>();
  ASSERT_EQ(trims.size(), 1u);
  EXPECT_EQ(trims[0].kind, TrimmedEvent::Kind::limits_changed);
  EXPECT_EQ(trims[0].connections_after, 5u);
}

TEST(Trim, LoweringHighWaterBelowTheCountSchedulesATrim) {
  ManagerHarness h(trim_config(10, 100));
  Connections all = h.add_peers(1, 30);
  ASSERT_FALSE(h.manager.set_limits(8, 20));
  h.time->run_ready();
  EXPECT_EQ(count_closed(all), 22u);
  EXPECT_EQ(h.manager.connection_count(), 8u);
}

TEST(Trim, SetLimitsWithHighWaterAboveTheCountSchedulesNothing) {
  ManagerHarness h(trim_config(10, 100));
  Connections all = h.add_peers(1, 30);
  ASSERT_FALSE(h.manager.set_limits(5, 31));
  h.time->run_ready();
  EXPECT_EQ(count_closed(all), 0u);
  EXPECT_EQ(h.manager.stats().trims, 0u);
}

TEST(Trim, SetLimitsWithLowAboveHighIsRejectedAndChangesNothing) {
  ManagerHarness h(trim_config(10, 100));
  Connections all = h.add_peers(1, 30);
  EXPECT_EQ(h.manager.set_limits(20, 5), Errc::invalid_argument);
  h.time->run_ready();
  const Config config = h.manager.config();
  EXPECT_EQ(config.low_water, 10u);
  EXPECT_EQ(config.high_water, 100u);
  EXPECT_EQ(count_closed(all), 0u);
  EXPECT_EQ(h.manager.trim(), 20u) << "the old low water still applies";
}

// --- Events, host reports, coalescing, failing trimmers -----------------------------------

TEST(Trim, TrimmedEventFollowsTheDisconnectedEventsOfItsConnections) {
  ManagerHarness h(trim_config(10, 100));
  EventRecorder events(h.manager);
  Connections all = h.add_peers(1, 15);
  ASSERT_EQ(h.manager.trim(), 5u);
  h.time->run_ready();

  const auto recorded = events.events();
  ASSERT_EQ(recorded.size(), 15u + 5u + 1u);
  std::set<ConnectionId> disconnected;
  for (std::size_t i = 15; i < 20; ++i) {
    const auto* d = std::get_if<DisconnectedEvent>(&recorded[i]);
    ASSERT_NE(d, nullptr) << "event " << i;
    EXPECT_EQ(d->reason, CloseReason::trimmed);
    EXPECT_FALSE(d->detail.empty());
    disconnected.insert(d->connection);
  }
  EXPECT_EQ(disconnected.size(), 5u) << "one DisconnectedEvent per closed connection";
  const auto* trimmed = std::get_if<TrimmedEvent>(&recorded[20]);
  ASSERT_NE(trimmed, nullptr);
  EXPECT_EQ(trimmed->kind, TrimmedEvent::Kind::explicit_trim);
  EXPECT_EQ(trimmed->peers_closed, 5u);
  EXPECT_EQ(trimmed->connections_closed, 5u);
  EXPECT_EQ(trimmed->connections_after, 10u);
}

TEST(Trim, HostReportsForTrimmedConnectionsAreExpectedAndChangeNothing) {
  ManagerHarness h(trim_config(10, 100));
  EventRecorder events(h.manager);
  // Connections whose close() does not report back: the trim forgets them itself.
  Connections all = h.add_peers(1, 15, Direction::inbound, /*reporting=*/false);
  ASSERT_EQ(h.manager.trim(), 5u);
  EXPECT_EQ(h.manager.connection_count(), 10u);

  for (const auto& c : all) {
    if (c->closed()) {
      EXPECT_EQ(h.manager.remove_connection(*c), std::error_code{});
    }
  }
  EXPECT_EQ(h.manager.stats().closure_reports, 5u);
  EXPECT_EQ(h.manager.stats().duplicate_reports, 0u);
  EXPECT_EQ(h.manager.connection_count(), 10u);
  EXPECT_EQ(h.manager.stats().connections, 10u);
  EXPECT_EQ(events.of<DisconnectedEvent>().size(), 5u);
  EXPECT_EQ(h.manager.stats().closes(CloseReason::trimmed), 5u);
  EXPECT_EQ(h.manager.stats().closes(CloseReason::host), 0u);
}

TEST(Trim, ConcurrentTrimCallsJoinOneTrim) {
  auto trimmer = std::make_shared<BlockingTrimmer>();
  ManagerHarness h(trim_config(10, 100), trimmer);
  Connections all = h.add_peers(1, 15);

  std::size_t first_result = 0;
  std::size_t second_result = 0;
  std::thread first([&] { first_result = h.manager.trim(); });
  trimmer->wait_entered();  // the first trim is inside rank(), holding no lock
  std::thread second([&] { second_result = h.manager.trim(); });

  constexpr int kSpinLimit = 20'000'000;
  bool joined = false;
  for (int i = 0; i < kSpinLimit && !joined; ++i) {
    joined = h.manager.stats().trims_joined == 1;
    if (!joined) std::this_thread::yield();
  }
  trimmer->release();
  first.join();
  second.join();

  EXPECT_TRUE(joined) << "the second trim() did not join the running one";
  EXPECT_EQ(first_result, 5u);
  EXPECT_EQ(second_result, 5u);
  EXPECT_EQ(trimmer->calls.load(), 1);
  EXPECT_EQ(count_closed(all), 5u);
  const Stats stats = h.manager.stats();
  EXPECT_EQ(stats.trims, 1u);
  EXPECT_EQ(stats.trims_joined, 1u);
  EXPECT_EQ(stats.connections, 10u);
}

TEST(Trim, ThrowingTrimmerAbortsTheTrimAndClosesNothing) {
  auto trimmer = std::make_shared<ThrowingTrimmer>();
  ManagerHarness h(trim_config(10, 100), trimmer);
  EventRecorder events(h.manager);
  Connections all = h.add_peers(1, 15);

  EXPECT_EQ(h.manager.trim(), 0u);
  EXPECT_EQ(h.manager.force_trim(), 0u);
  EXPECT_EQ(h.manager.trim_connections(3), 0u);
  EXPECT_GE(trimmer->calls.load(), 1);
  EXPECT_EQ(count_closed(all), 0u);
  EXPECT_EQ(h.manager.connection_count(), 15u);
  EXPECT_TRUE(events.of<TrimmedEvent>().empty());
  EXPECT_TRUE(events.of<DisconnectedEvent>().empty());

  // The manager still works.
  EXPECT_FALSE(h.manager.remove_connection(*all[0]));
  EXPECT_EQ(h.manager.connection_count(), 14u);
}

}  // namespace
}  // namespace dep2p::connmgr
