// Observability (docs/design.md, "Observability"): explain(peer) and the completed stats(),
// checked field by field against states built in virtual time. The Prometheus text has its
// own file, prometheus_test.cpp.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/explain.hpp"
#include "dep2p/connmgr/metrics.hpp"
#include "dep2p/connmgr/metrics_description.hpp"
#include "dep2p/connmgr/realm_manager.hpp"
#include "dep2p/connmgr/version.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"
#include "support/observed_pool.hpp"

namespace dep2p::connmgr::testing {
namespace {

using namespace std::chrono_literals;

// How explain() names peer n: its short form, which differs between the test's peers.
std::string peer_text(std::uint64_t n) { return "peer " + peer_id(n).short_string() + ": "; }

// --- explain() ---------------------------------------------------------------------

TEST(Explain, APeerTheManagerDoesNotKnowHasNoExplanation) {
  ManagerHarness h(quiet_config());
  h.add(1);
  EXPECT_EQ(h.manager.explain(peer_id(2)), std::nullopt);
  EXPECT_TRUE(h.manager.explain(peer_id(1)).has_value());
}

TEST(Explain, CandidatesAreRankedInTheDefaultTrimOrderAndTheTrimAgrees) {
  ManagerHarness h(quiet_config());
  h.add(1);             // value 10: ranked after the cheaper ones
  h.add(2);             // value 0, oldest of the two at value 0: rank 2
  h.time->advance(1s);  // the later first_seen goes first among equals
  h.add(3);             // value 0, newer: rank 1
  h.add(4);             // value 5: rank 3
  h.add(5);             // protected: not a candidate
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 10));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(4), "dht", 3));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(4), "relay-hops", 2));
  ASSERT_FALSE(h.manager.protect(peer_id(5), "bootstrap"));
  h.time->advance(10s);  // everyone out of grace

  const std::vector<std::pair<std::uint64_t, std::size_t>> expected_ranks = {
      {3, 1}, {2, 2}, {4, 3}, {1, 4}};
  for (const auto& [peer, rank] : expected_ranks) {
    auto e = h.manager.explain(peer_id(peer));
    ASSERT_TRUE(e) << peer;
    EXPECT_EQ(e->rank, rank) << "peer " << peer;
    EXPECT_EQ(e->candidates, 4u);
    EXPECT_EQ(e->not_candidate, std::nullopt);
    EXPECT_EQ(e->grace_until, std::nullopt);
  }
  auto e = h.manager.explain(peer_id(4));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->value, 5);
  EXPECT_EQ(e->tags, (std::vector<std::pair<std::string, int>>{{"dht", 3}, {"relay-hops", 2}}));
  EXPECT_EQ(e->summary, peer_text(4) + "next to go: rank 3 of 4, value 5 (dht 3, relay-hops 2)");
  EXPECT_EQ(h.manager.explain(peer_id(3))->summary,
            peer_text(3) + "next to go: rank 1 of 4, value 0 (no tags)");

  // The peer explain() calls next to go is the one a trim closes first.
  EXPECT_EQ(h.manager.trim_connections(1), 1u);
  EXPECT_EQ(h.manager.explain(peer_id(3)), std::nullopt) << "closed, entry released";
  EXPECT_EQ(h.manager.explain(peer_id(2))->rank, 1u);
  EXPECT_EQ(h.manager.explain(peer_id(2))->candidates, 3u);
}

TEST(Explain, AtFullTiesTheEarlierEntryGoesFirstAsInTheTrim) {
  ManagerHarness h(quiet_config(0ms));
  auto first = h.add(1);
  auto second = h.add(2);  // same value, time, streams and direction: only the order differs
  EXPECT_EQ(h.manager.explain(peer_id(1))->rank, 1u);
  EXPECT_EQ(h.manager.explain(peer_id(2))->rank, 2u);
  EXPECT_EQ(h.manager.trim_connections(1), 1u);
  EXPECT_TRUE(first->closed());
  EXPECT_FALSE(second->closed());
}

TEST(Explain, AProtectedPeerNamesItsProtectionsAndWhenTimedOnesEnd) {
  ManagerHarness h(quiet_config());
  h.add(1);
  h.add(2);
  h.time->advance(10s);
  ASSERT_FALSE(h.manager.protect(peer_id(1), "relay"));
  ASSERT_FALSE(h.manager.protect_for(peer_id(1), "bootstrap", 30s));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 7));
  h.time->advance(5s);

  auto e = h.manager.explain(peer_id(1));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->at, h.time->now());
  EXPECT_EQ(e->rank, std::nullopt);
  EXPECT_EQ(e->not_candidate, NotCandidateReason::protection);
  EXPECT_EQ(e->candidates, 1u) << "peer 2 only";
  ASSERT_EQ(e->protections.size(), 2u);
  EXPECT_EQ(e->protections[0].tag, "relay");
  EXPECT_EQ(e->protections[0].until, std::nullopt);
  EXPECT_EQ(e->protections[1].tag, "bootstrap");
  EXPECT_EQ(e->protections[1].until, h.time->now() + 25s);
  EXPECT_EQ(e->grace_until, std::nullopt);
  EXPECT_EQ(e->value, 7);
  EXPECT_EQ(e->summary,
            peer_text(1) + "kept: protected by relay, bootstrap (25 s left); value 7 (dht 7)");
  EXPECT_EQ(to_string(*e->not_candidate), "protected");

  // Once unprotected it is a candidate again, ranked after the cheaper peer 2.
  h.manager.unprotect(peer_id(1), "relay");
  h.manager.unprotect(peer_id(1), "bootstrap");
  e = h.manager.explain(peer_id(1));
  EXPECT_EQ(e->rank, 2u);
  EXPECT_EQ(e->candidates, 2u);
  EXPECT_TRUE(e->protections.empty());
}

TEST(Explain, APeerInGraceSaysUntilWhen) {
  ManagerHarness h(quiet_config(20s));
  h.add(1);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 3));
  h.time->advance(5s);
  auto e = h.manager.explain(peer_id(1));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->not_candidate, NotCandidateReason::in_grace);
  EXPECT_EQ(e->grace_until, h.time->now() + 15s);
  EXPECT_EQ(e->rank, std::nullopt);
  EXPECT_EQ(e->candidates, 0u);
  EXPECT_EQ(e->summary, peer_text(1) + "kept: in grace for 15 s more; value 3 (dht 3)");

  // Protected and in grace: both are said, protection first.
  ASSERT_FALSE(h.manager.protect(peer_id(1), "relay"));
  h.time->advance(2500ms);
  e = h.manager.explain(peer_id(1));
  EXPECT_EQ(e->not_candidate, NotCandidateReason::protection);
  EXPECT_EQ(e->summary,
            peer_text(1) + "kept: protected by relay; in grace for 12500 ms more; value 3 (dht 3)");

  h.manager.unprotect(peer_id(1), "relay");
  h.time->advance(12500ms);  // exactly the end of grace: a candidate
  e = h.manager.explain(peer_id(1));
  EXPECT_EQ(e->grace_until, std::nullopt);
  EXPECT_EQ(e->rank, 1u);
  EXPECT_EQ(e->summary, peer_text(1) + "next to go: rank 1 of 1, value 3 (dht 3)");
}

TEST(Explain, ATemporaryPeerIsNotACandidateAndSaysWhenItExpires) {
  Config config = quiet_config(20s);
  config.temp_peer_lifetime = 20s;
  ManagerHarness h(config);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(9), "dht", 4));
  h.time->advance(5s);
  auto e = h.manager.explain(peer_id(9));
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->temporary);
  EXPECT_TRUE(e->connections.empty());
  EXPECT_EQ(e->not_candidate, NotCandidateReason::temporary);
  EXPECT_EQ(e->expires_at, h.time->now() + 15s);
  EXPECT_EQ(e->grace_until, std::nullopt);
  EXPECT_EQ(e->summary,
            peer_text(9) + "not connected: temporary entry for 15 s more; value 4 (dht 4)");
}

TEST(Explain, AProtectedTemporaryPeerHasNoEndWhileProtected) {
  Config config = quiet_config(20s);
  config.temp_peer_lifetime = 20s;
  ManagerHarness h(config);
  ASSERT_FALSE(h.manager.protect(peer_id(9), "boot"));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(9), "dht", 4));
  h.time->advance(1min);
  auto e = h.manager.explain(peer_id(9));
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->temporary);
  EXPECT_EQ(e->expires_at, std::nullopt);
  EXPECT_EQ(e->summary,
            peer_text(9) +
                "not connected: temporary entry, kept while protected by boot; value 4 (dht 4)");
  ASSERT_FALSE(h.manager.unprotect(peer_id(9), "boot"));
  e = h.manager.explain(peer_id(9));
  EXPECT_EQ(e->expires_at, h.time->now() + 20s);
}

TEST(Explain, DecayingTagsAreBrokenDownAfterPlainOnes) {
  ManagerHarness h(quiet_config(0ms));
  h.add(1);
  std::error_code ec;
  DecayingTag activity =
      h.manager.register_decaying_tag("activity", 1min, Decay::none(), Bump::sum(), ec);
  ASSERT_FALSE(ec);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 10));
  ASSERT_FALSE(activity.bump(peer_id(1), 6));
  auto e = h.manager.explain(peer_id(1));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->value, 16);
  EXPECT_EQ(e->decaying_tags, (std::vector<std::pair<std::string, int>>{{"activity", 6}}));
  EXPECT_EQ(e->summary, peer_text(1) + "next to go: rank 1 of 1, value 16 (dht 10, activity 6)");
}

TEST(Explain, ListsThePeersConnectionsWithStateStreamsAndRtt) {
  Config config = quiet_config(0ms);
  config.keepalive_interval = 5s;
  config.keepalive_timeout = 5s;
  ManagerHarness h(config);
  std::vector<Connection::PingHandler> pings;
  auto direct = answerable(h.manager, 1, Direction::inbound, PathKind::direct, pings);
  auto relay = answerable(h.manager, 1, Direction::outbound, PathKind::relay, pings);
  ASSERT_TRUE(h.manager.stream_opened(*direct, Direction::inbound));
  ASSERT_TRUE(h.manager.stream_opened(*direct, Direction::outbound));
  ASSERT_FALSE(h.manager.report_state(*relay, ConnectionState::closing));
  h.time->advance(5s);
  ASSERT_EQ(pings.size(), 2u);
  h.time->advance(30ms);
  pings[0](std::error_code{});  // the direct connection's ping (added first)

  auto e = h.manager.explain(peer_id(1));
  ASSERT_TRUE(e);
  ASSERT_EQ(e->connections.size(), 2u);
  const ConnectionExplanation& first = e->connections[0];
  const ConnectionExplanation& second = e->connections[1];
  EXPECT_EQ(first.id, h.manager.connection_id(*direct));
  EXPECT_EQ(first.direction, Direction::inbound);
  EXPECT_EQ(first.path, PathKind::direct);
  EXPECT_EQ(first.state, ConnectionState::established);
  EXPECT_EQ(first.streams, 2u);
  EXPECT_EQ(first.rtt, Duration(30ms));
  EXPECT_TRUE(first.best);
  EXPECT_EQ(second.id, h.manager.connection_id(*relay));
  EXPECT_EQ(second.direction, Direction::outbound);
  EXPECT_EQ(second.path, PathKind::relay);
  EXPECT_EQ(second.state, ConnectionState::closing);
  EXPECT_EQ(second.streams, 0u);
  EXPECT_EQ(second.rtt, std::nullopt);
  EXPECT_FALSE(second.best);
}

// --- stats() -------------------------------------------------------------------------

TEST(ObservabilityStats, CountsByDirectionPathAndStateWithAnRttSummary) {
  KnownPool pool;
  const Stats s = pool.h.manager.stats();
  EXPECT_EQ(s.connections, 3u);
  EXPECT_EQ(s.inbound, 2u);
  EXPECT_EQ(s.outbound, 1u);
  EXPECT_EQ(s.direct, 2u);
  EXPECT_EQ(s.relay, 1u);
  EXPECT_EQ(s.dialing, 1u);
  EXPECT_EQ(s.handshaking, 1u);
  EXPECT_EQ(s.established, 2u);
  EXPECT_EQ(s.closing, 1u);
  EXPECT_EQ(s.peers, 3u);
  EXPECT_EQ(s.temporary_peers, 1u);
  EXPECT_EQ(s.protected_peers, 1u);
  EXPECT_EQ(s.streams, 2u);
  EXPECT_EQ(s.connections_added, 4u);
  EXPECT_EQ(s.connections_removed, 1u);
  EXPECT_EQ(s.closes(CloseReason::host), 1u);
  EXPECT_EQ(s.refusals(RefusalReason::hook), 1u);
  EXPECT_EQ(s.rtt.count, 2u);
  EXPECT_EQ(s.rtt.min, Duration(40ms));
  EXPECT_EQ(s.rtt.mean, Duration(60ms));
  EXPECT_EQ(s.rtt.max, Duration(80ms));
}

TEST(ObservabilityStats, TheRttSummaryIsEmptyBeforeAnyAnswerAndStatesFollowTheHost) {
  ManagerHarness h(quiet_config());
  auto c = h.add(1);
  Stats s = h.manager.stats();
  EXPECT_EQ(s.rtt.count, 0u);
  EXPECT_EQ(s.rtt.min, Duration::zero());
  EXPECT_EQ(s.rtt.max, Duration::zero());
  EXPECT_EQ(s.established, 1u);
  ASSERT_FALSE(h.manager.report_state(*c, ConnectionState::closing));
  s = h.manager.stats();
  EXPECT_EQ(s.established, 0u);
  EXPECT_EQ(s.closing, 1u);
  ASSERT_FALSE(h.manager.report_state(*c, ConnectionState::closed));
  s = h.manager.stats();
  EXPECT_EQ(s.closing, 0u);
  EXPECT_EQ(s.direct, 0u);
  EXPECT_EQ(s.closes(CloseReason::host), 1u);
}

}  // namespace
}  // namespace dep2p::connmgr::testing
