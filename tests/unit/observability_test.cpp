// Observability (docs/design.md, "Observability"): explain(peer), the completed stats() and the
// Prometheus text of ConnectionManager and RealmConnectionManager, checked field by field and line
// by line against states built in virtual time.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/explain.hpp"
#include "dep2p/connmgr/metrics.hpp"
#include "dep2p/connmgr/realm_manager.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr::testing {
namespace {

using namespace std::chrono_literals;

// Watermarks 2/100, the given grace, no keepalive and no idle timeout unless a test
// turns them on: explain() tests need nothing but the pool.
Config quiet_config(std::chrono::milliseconds grace = 10s) {
  Config config = trim_config(2, 100, grace);
  config.keepalive_interval = 0ms;
  config.idle_timeout = 0ms;
  return config;
}

// How explain() names peer n: its short form, which differs between the test's peers.
std::string peer_text(std::uint64_t n) { return "peer " + peer_id(n).short_string() + ": "; }

// A connection whose pings wait for the test to answer them.
std::shared_ptr<FakeConnection> answerable(ConnectionManager& manager, std::uint64_t peer,
                                           Direction direction, PathKind path,
                                           std::vector<Connection::PingHandler>& pings) {
  auto c = std::make_shared<FakeConnection>(peer_id(peer), direction, endpoint("127.0.0.1"), path);
  c->on_close = [&manager](FakeConnection& self, CloseReason reason) {
    manager.remove_connection(self, reason);
  };
  c->on_ping = [&pings](Connection::PingHandler done) { pings.push_back(std::move(done)); };
  EXPECT_FALSE(manager.add_connection(c));
  return c;
}

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
  EXPECT_EQ(e->summary, peer_text(1) + "kept: protected by relay, bootstrap (25 s left); value 7 (dht 7)");
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
  EXPECT_EQ(e->summary, peer_text(9) + "not connected: temporary entry for 15 s more; value 4 (dht 4)");
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
  EXPECT_EQ(
      e->summary,
      peer_text(9) + "not connected: temporary entry, kept while protected by boot; value 4 (dht 4)");
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
  ASSERT_FALSE(h.manager.stream_opened(*direct, Direction::inbound));
  ASSERT_FALSE(h.manager.stream_opened(*direct, Direction::outbound));
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

// A known pool, used by the stats and Prometheus tests:
//   peer 1: inbound direct, 2 streams, protected, RTT 40 ms
//   peer 2: outbound direct, reported closing, ping unanswered
//   peer 3: inbound relay, RTT 80 ms
//   two pending connections (one dialing, one handshaking), one temporary peer (tagged),
//   one connection added then closed by the host, one before_connect refusal.
struct KnownPool {
  KnownPool() : h(config()) {
    peer1 = answerable(h.manager, 1, Direction::inbound, PathKind::direct, pings1);
    peer2 = answerable(h.manager, 2, Direction::outbound, PathKind::direct, pings2);
    peer3 = answerable(h.manager, 3, Direction::inbound, PathKind::relay, pings3);
    gone = h.add(6);
    EXPECT_FALSE(h.manager.close_peer(peer_id(6)));
    EXPECT_FALSE(h.manager.track_pending(dialing, ConnectionState::dialing));
    EXPECT_FALSE(h.manager.track_pending(handshaking, ConnectionState::handshaking));
    EXPECT_FALSE(h.manager.stream_opened(*peer1, Direction::inbound));
    EXPECT_FALSE(h.manager.stream_opened(*peer1, Direction::inbound));
    EXPECT_FALSE(h.manager.report_state(*peer2, ConnectionState::closing));
    EXPECT_FALSE(h.manager.protect(peer_id(1), "relay"));
    EXPECT_FALSE(h.manager.tag_peer(peer_id(7), "dht", 5));
    auto hook = h.manager.add_before_connect(
        [](const NodeId&, const Endpoint&) { return Decision::deny("not today"); });
    EXPECT_FALSE(h.manager.check_dial_addr(peer_id(8), endpoint("10.0.0.8")));
    h.time->advance(5s);  // keepalive round: pings out
    h.time->advance(40ms);
    for (auto& done : pings1) done(std::error_code{});
    h.time->advance(40ms);
    for (auto& done : pings3) done(std::error_code{});
  }
  static Config config() {
    Config c = quiet_config(60s);  // the temporary entry lives as long as the grace
    c.keepalive_interval = 5s;
    c.keepalive_timeout = 5s;
    return c;
  }

  ManagerHarness h;
  std::vector<Connection::PingHandler> pings1, pings2, pings3;
  std::shared_ptr<FakeConnection> peer1, peer2, peer3, gone;
  std::shared_ptr<FakeConnection> dialing =
      std::make_shared<FakeConnection>(peer_id(4), Direction::outbound);
  std::shared_ptr<FakeConnection> handshaking =
      std::make_shared<FakeConnection>(peer_id(5), Direction::inbound);
};

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

// --- Prometheus ----------------------------------------------------------------------

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The exposition parses: every sample line is `name{labels} value` or `name value`, every
// family has exactly one HELP and one TYPE, before its samples, and counters end in _total.
void expect_well_formed(const std::string& text) {
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  static const std::regex kSample(
      R"re(^(dep2p_connmgr_[a-z_]+)(\{[a-z_]+="(?:[^"\\\n]|\\["\\n])*"(?:,[a-z_]+="(?:[^"\\\n]|\\["\\n])*")*\})? (-?[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?|NaN|\+Inf|-Inf)$)re");
  static const std::regex kHelp(R"(^# HELP (dep2p_connmgr_[a-z_]+) .+$)");
  static const std::regex kType(R"(^# TYPE (dep2p_connmgr_[a-z_]+) (counter|gauge)$)");
  std::map<std::string, int> helps;
  std::map<std::string, std::string> types;
  for (const std::string& line : lines_of(text)) {
    std::smatch m;
    if (std::regex_match(line, m, kHelp)) {
      ++helps[m[1]];
    } else if (std::regex_match(line, m, kType)) {
      EXPECT_EQ(types.count(m[1]), 0u) << "second TYPE for " << m[1];
      types[m[1]] = m[2];
      EXPECT_EQ(helps[m[1]], 1) << "HELP before TYPE for " << m[1];
      if (m[2] == "counter") {
        EXPECT_TRUE(m[1].str().ends_with("_total")) << m[1];
      }
    } else if (std::regex_match(line, m, kSample)) {
      EXPECT_EQ(types.count(m[1]), 1u) << "sample before TYPE: " << line;
    } else {
      ADD_FAILURE() << "unparsable line: [" << line << "]";
    }
  }
  for (const auto& [name, count] : helps) EXPECT_EQ(count, 1) << name;
  EXPECT_EQ(helps.size(), types.size());
}

TEST(Prometheus, TheKnownPoolIsWrittenExactly) {
  KnownPool pool;
  std::ostringstream out;
  pool.h.manager.write_prometheus(out);
  const std::string expected =
      R"(# HELP dep2p_connmgr_connections Connections in the pool, by direction.
# TYPE dep2p_connmgr_connections gauge
dep2p_connmgr_connections{direction="inbound"} 2
dep2p_connmgr_connections{direction="outbound"} 1
# HELP dep2p_connmgr_connections_by_path Connections in the pool, by path kind.
# TYPE dep2p_connmgr_connections_by_path gauge
dep2p_connmgr_connections_by_path{path="direct"} 2
dep2p_connmgr_connections_by_path{path="relay"} 1
# HELP dep2p_connmgr_connections_by_state Connections by lifecycle state; dialing and handshaking ones are pending, not yet in the pool.
# TYPE dep2p_connmgr_connections_by_state gauge
dep2p_connmgr_connections_by_state{state="dialing"} 1
dep2p_connmgr_connections_by_state{state="handshaking"} 1
dep2p_connmgr_connections_by_state{state="established"} 2
dep2p_connmgr_connections_by_state{state="closing"} 1
# HELP dep2p_connmgr_peers Peers with at least one connection.
# TYPE dep2p_connmgr_peers gauge
dep2p_connmgr_peers 3
# HELP dep2p_connmgr_temporary_peers Peers tagged but not connected.
# TYPE dep2p_connmgr_temporary_peers gauge
dep2p_connmgr_temporary_peers 1
# HELP dep2p_connmgr_protected_peers Peers with at least one protection.
# TYPE dep2p_connmgr_protected_peers gauge
dep2p_connmgr_protected_peers 1
# HELP dep2p_connmgr_streams Streams open on pooled connections.
# TYPE dep2p_connmgr_streams gauge
dep2p_connmgr_streams 2
# HELP dep2p_connmgr_rtt_measured_connections Pooled connections with a smoothed keepalive RTT (a ping answered).
# TYPE dep2p_connmgr_rtt_measured_connections gauge
dep2p_connmgr_rtt_measured_connections 2
# HELP dep2p_connmgr_rtt_min_seconds The lowest smoothed keepalive RTT of the measured connections.
# TYPE dep2p_connmgr_rtt_min_seconds gauge
dep2p_connmgr_rtt_min_seconds 0.04
# HELP dep2p_connmgr_rtt_mean_seconds The mean smoothed keepalive RTT of the measured connections.
# TYPE dep2p_connmgr_rtt_mean_seconds gauge
dep2p_connmgr_rtt_mean_seconds 0.06
# HELP dep2p_connmgr_rtt_max_seconds The highest smoothed keepalive RTT of the measured connections.
# TYPE dep2p_connmgr_rtt_max_seconds gauge
dep2p_connmgr_rtt_max_seconds 0.08
# HELP dep2p_connmgr_connections_added_total Connections added to the pool.
# TYPE dep2p_connmgr_connections_added_total counter
dep2p_connmgr_connections_added_total 4
# HELP dep2p_connmgr_connections_removed_total Connections that left the pool.
# TYPE dep2p_connmgr_connections_removed_total counter
dep2p_connmgr_connections_removed_total 1
# HELP dep2p_connmgr_duplicate_reports_total Add or remove reports ignored as duplicate or unknown.
# TYPE dep2p_connmgr_duplicate_reports_total counter
dep2p_connmgr_duplicate_reports_total 0
# HELP dep2p_connmgr_closure_reports_total The host's reports of closes the manager made (expected).
# TYPE dep2p_connmgr_closure_reports_total counter
dep2p_connmgr_closure_reports_total 1
# HELP dep2p_connmgr_trims_total Trims that ran.
# TYPE dep2p_connmgr_trims_total counter
dep2p_connmgr_trims_total 0
# HELP dep2p_connmgr_trims_joined_total trim() calls that joined a running trim.
# TYPE dep2p_connmgr_trims_joined_total counter
dep2p_connmgr_trims_joined_total 0
# HELP dep2p_connmgr_temporary_peers_pruned_total Temporary peer entries deleted.
# TYPE dep2p_connmgr_temporary_peers_pruned_total counter
dep2p_connmgr_temporary_peers_pruned_total 0
# HELP dep2p_connmgr_protections_expired_total Peers whose last timed protection ended.
# TYPE dep2p_connmgr_protections_expired_total counter
dep2p_connmgr_protections_expired_total 0
# HELP dep2p_connmgr_decay_ticks_total Decay ticks that decayed at least one tag.
# TYPE dep2p_connmgr_decay_ticks_total counter
dep2p_connmgr_decay_ticks_total 0
# HELP dep2p_connmgr_keepalive_pings_total Keepalive pings sent.
# TYPE dep2p_connmgr_keepalive_pings_total counter
dep2p_connmgr_keepalive_pings_total 3
# HELP dep2p_connmgr_keepalive_misses_total Keepalive pings unanswered in time or failed.
# TYPE dep2p_connmgr_keepalive_misses_total counter
dep2p_connmgr_keepalive_misses_total 0
# HELP dep2p_connmgr_closes_total Connections closed, by reason.
# TYPE dep2p_connmgr_closes_total counter
dep2p_connmgr_closes_total{reason="trimmed"} 0
dep2p_connmgr_closes_total{reason="forced_trim"} 0
dep2p_connmgr_closes_total{reason="keepalive_timeout"} 0
dep2p_connmgr_closes_total{reason="idle_timeout"} 0
dep2p_connmgr_closes_total{reason="gated"} 0
dep2p_connmgr_closes_total{reason="limit_exceeded"} 0
dep2p_connmgr_closes_total{reason="redundant_path"} 0
dep2p_connmgr_closes_total{reason="duplicate"} 0
dep2p_connmgr_closes_total{reason="shutdown"} 0
dep2p_connmgr_closes_total{reason="host"} 1
dep2p_connmgr_closes_total{reason="handshake_timeout"} 0
dep2p_connmgr_closes_total{reason="made_room"} 0
dep2p_connmgr_closes_total{reason="remote"} 0
# HELP dep2p_connmgr_refusals_total Admissions refused, by reason.
# TYPE dep2p_connmgr_refusals_total counter
dep2p_connmgr_refusals_total{reason="gater"} 0
dep2p_connmgr_refusals_total{reason="connection_limit"} 0
dep2p_connmgr_refusals_total{reason="pending_limit"} 0
dep2p_connmgr_refusals_total{reason="stream_limit"} 0
dep2p_connmgr_refusals_total{reason="memory_limit"} 0
dep2p_connmgr_refusals_total{reason="fd_limit"} 0
dep2p_connmgr_refusals_total{reason="subnet_cap"} 0
dep2p_connmgr_refusals_total{reason="rate_limit"} 0
dep2p_connmgr_refusals_total{reason="hook"} 1
dep2p_connmgr_refusals_total{reason="realm_limit"} 0
dep2p_connmgr_refusals_total{reason="backoff"} 0
dep2p_connmgr_refusals_total{reason="dial_pending"} 0
# HELP dep2p_connmgr_pending_handshakes Admission slots held by handshakes in progress, by direction.
# TYPE dep2p_connmgr_pending_handshakes gauge
dep2p_connmgr_pending_handshakes{direction="inbound"} 0
dep2p_connmgr_pending_handshakes{direction="outbound"} 0
# HELP dep2p_connmgr_reservations Admission reservations alive.
# TYPE dep2p_connmgr_reservations gauge
dep2p_connmgr_reservations 0
# HELP dep2p_connmgr_reserved_memory_bytes Memory reserved through reservations.
# TYPE dep2p_connmgr_reserved_memory_bytes gauge
dep2p_connmgr_reserved_memory_bytes 0
# HELP dep2p_connmgr_reserved_fds File descriptors reserved through reservations.
# TYPE dep2p_connmgr_reserved_fds gauge
dep2p_connmgr_reserved_fds 0
# HELP dep2p_connmgr_capped_addresses Entries in the per-address and per-subnet cap tables.
# TYPE dep2p_connmgr_capped_addresses gauge
dep2p_connmgr_capped_addresses 0
# HELP dep2p_connmgr_dial_attempts_total Dials check_dial allowed.
# TYPE dep2p_connmgr_dial_attempts_total counter
dep2p_connmgr_dial_attempts_total 0
# HELP dep2p_connmgr_dial_successes_total Dials the host reported successful.
# TYPE dep2p_connmgr_dial_successes_total counter
dep2p_connmgr_dial_successes_total 0
# HELP dep2p_connmgr_dial_failures_total Dial failures the host reported, by kind.
# TYPE dep2p_connmgr_dial_failures_total counter
dep2p_connmgr_dial_failures_total{kind="error"} 0
dep2p_connmgr_dial_failures_total{kind="timeout"} 0
dep2p_connmgr_dial_failures_total{kind="refused"} 0
# HELP dep2p_connmgr_dial_failures_offline_total Dial failures reported while offline (they grew no backoff).
# TYPE dep2p_connmgr_dial_failures_offline_total counter
dep2p_connmgr_dial_failures_offline_total 0
# HELP dep2p_connmgr_backoff_entries Peers in the dial backoff table.
# TYPE dep2p_connmgr_backoff_entries gauge
dep2p_connmgr_backoff_entries 0
# HELP dep2p_connmgr_peers_in_backoff Peers whose own or one of whose addresses' backoff lasts.
# TYPE dep2p_connmgr_peers_in_backoff gauge
dep2p_connmgr_peers_in_backoff 0
# HELP dep2p_connmgr_dials_in_flight Dials allowed by check_dial whose outcome is still to come.
# TYPE dep2p_connmgr_dials_in_flight gauge
dep2p_connmgr_dials_in_flight 0
# HELP dep2p_connmgr_offline 1 while the node is taken for offline.
# TYPE dep2p_connmgr_offline gauge
dep2p_connmgr_offline 0
# HELP dep2p_connmgr_reconnect_dials_total Reconnect dials the manager asked the Dialer for.
# TYPE dep2p_connmgr_reconnect_dials_total counter
dep2p_connmgr_reconnect_dials_total 0
# HELP dep2p_connmgr_reconnects_succeeded_total Reconnects whose dial succeeded.
# TYPE dep2p_connmgr_reconnects_succeeded_total counter
dep2p_connmgr_reconnects_succeeded_total 0
# HELP dep2p_connmgr_reconnects_given_up_total Reconnects that failed their last attempt.
# TYPE dep2p_connmgr_reconnects_given_up_total counter
dep2p_connmgr_reconnects_given_up_total 0
# HELP dep2p_connmgr_direct_path_dials_total Direct-path dials the manager asked the Dialer for (peers reached through relays).
# TYPE dep2p_connmgr_direct_path_dials_total counter
dep2p_connmgr_direct_path_dials_total 0
# HELP dep2p_connmgr_redials_queued Reconnects and direct-path jobs waiting or in flight.
# TYPE dep2p_connmgr_redials_queued gauge
dep2p_connmgr_redials_queued 0
)";
  // Line by line first, so that a difference names the line.
  const auto got = lines_of(out.str());
  const auto want = lines_of(expected);
  for (std::size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    EXPECT_EQ(got[i], want[i]) << "line " << i + 1;
  }
  EXPECT_EQ(got.size(), want.size());
  EXPECT_EQ(out.str(), expected);
  expect_well_formed(out.str());
}

TEST(Prometheus, NoRttSampleIsWrittenBeforeAnyPingIsAnswered) {
  ManagerHarness h(quiet_config());
  h.add(1);
  std::ostringstream out;
  h.manager.write_prometheus(out);
  const auto lines = lines_of(out.str());
  auto has = [&](const std::string& line) {
    return std::find(lines.begin(), lines.end(), line) != lines.end();
  };
  EXPECT_TRUE(has("dep2p_connmgr_rtt_measured_connections 0"));
  EXPECT_TRUE(has("# TYPE dep2p_connmgr_rtt_mean_seconds gauge"));
  for (const std::string& line : lines) {
    EXPECT_FALSE(line.starts_with("dep2p_connmgr_rtt_m") &&
                 !line.starts_with("dep2p_connmgr_rtt_measured"))
        << line;
  }
  expect_well_formed(out.str());
}

TEST(Prometheus, TheWellFormednessCheckCatchesBrokenText) {
  // The checker itself must be able to fail: a sample without a TYPE, a bad label.
  ::testing::TestPartResultArray failures;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
    expect_well_formed("dep2p_connmgr_x 1\n");
    expect_well_formed(
        "# HELP dep2p_connmgr_y y\n# TYPE dep2p_connmgr_y gauge\ndep2p_connmgr_y{a=\"\"\"} 1\n");
    expect_well_formed("# HELP dep2p_connmgr_z z\n# TYPE dep2p_connmgr_z counter\n");
  }
  EXPECT_EQ(failures.size(), 3);
}

TEST(Prometheus, RealmsAddPerRealmFamiliesWithEscapedNames) {
  boost::asio::io_context io;
  auto time = std::make_shared<ManualTimeSource>(io);
  Dependencies deps;
  deps.time_source = time;
  RealmConnectionManager node(io, quiet_config(), deps);
  RealmConfig config;
  config.max_members = 1;
  config.hard_max = 4;
  config.low_water = 2;
  config.high_water = 3;
  config.max_pending = 2;
  ASSERT_FALSE(node.create_realm("chat", config));
  const std::string odd = "a\\b\"c\nd";  // backslash, double quote, newline
  ASSERT_FALSE(node.create_realm(odd, RealmConfig{}));
  auto c1 = reporting_connection(node.manager(), peer_id(1), Direction::inbound);
  auto c2 = reporting_connection(node.manager(), peer_id(2), Direction::outbound);
  ASSERT_FALSE(node.manager().add_connection(c1));
  ASSERT_FALSE(node.manager().add_connection(c2));
  ASSERT_FALSE(node.bind(*c1, "chat"));
  EXPECT_TRUE(node.bind(*c2, "chat")) << "max_members 1: refused";
  ASSERT_FALSE(node.bind(*c1, odd));
  ASSERT_FALSE(node.bind(*c2, odd));
  ASSERT_FALSE(node.unbind(*c2, odd));

  std::ostringstream out;
  node.write_prometheus(out);
  const std::string text = out.str();
  std::ostringstream manager_only;
  node.manager().write_prometheus(manager_only);
  ASSERT_TRUE(text.starts_with(manager_only.str())) << "the manager's metrics come first";

  // The realm part, exactly: realms in name order ("a\\b..." sorts before "chat").
  const std::string expected_realms =
      R"(# HELP dep2p_connmgr_realms Realms defined.
# TYPE dep2p_connmgr_realms gauge
dep2p_connmgr_realms 2
# HELP dep2p_connmgr_realm_connections Connections bound to the realm.
# TYPE dep2p_connmgr_realm_connections gauge
dep2p_connmgr_realm_connections{realm="a\\b\"c\nd"} 1
dep2p_connmgr_realm_connections{realm="chat"} 1
# HELP dep2p_connmgr_realm_members Distinct peers bound to the realm.
# TYPE dep2p_connmgr_realm_members gauge
dep2p_connmgr_realm_members{realm="a\\b\"c\nd"} 1
dep2p_connmgr_realm_members{realm="chat"} 1
# HELP dep2p_connmgr_realm_binds_total Connections bound to the realm.
# TYPE dep2p_connmgr_realm_binds_total counter
dep2p_connmgr_realm_binds_total{realm="a\\b\"c\nd"} 2
dep2p_connmgr_realm_binds_total{realm="chat"} 1
# HELP dep2p_connmgr_realm_unbinds_total Bindings ended: explicitly, by disconnect or by realm removal.
# TYPE dep2p_connmgr_realm_unbinds_total counter
dep2p_connmgr_realm_unbinds_total{realm="a\\b\"c\nd"} 1
dep2p_connmgr_realm_unbinds_total{realm="chat"} 0
# HELP dep2p_connmgr_realm_refused_full_total Binds and claims refused because the realm was full.
# TYPE dep2p_connmgr_realm_refused_full_total counter
dep2p_connmgr_realm_refused_full_total{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_refused_full_total{realm="chat"} 1
# HELP dep2p_connmgr_realm_trims_total Realm trims that ran.
# TYPE dep2p_connmgr_realm_trims_total counter
dep2p_connmgr_realm_trims_total{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_trims_total{realm="chat"} 0
# HELP dep2p_connmgr_realm_trimmed_total Connections closed by the realm's own trims.
# TYPE dep2p_connmgr_realm_trimmed_total counter
dep2p_connmgr_realm_trimmed_total{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_trimmed_total{realm="chat"} 0
# HELP dep2p_connmgr_realm_trimmed_globally_total Bound connections closed by the node's trims.
# TYPE dep2p_connmgr_realm_trimmed_globally_total counter
dep2p_connmgr_realm_trimmed_globally_total{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_trimmed_globally_total{realm="chat"} 0
# HELP dep2p_connmgr_realm_claims_pending Claims outstanding: admissions that claimed the realm, not yet added or dropped.
# TYPE dep2p_connmgr_realm_claims_pending gauge
dep2p_connmgr_realm_claims_pending{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_claims_pending{realm="chat"} 0
# HELP dep2p_connmgr_realm_claims_total Claims of the realm accepted.
# TYPE dep2p_connmgr_realm_claims_total counter
dep2p_connmgr_realm_claims_total{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_claims_total{realm="chat"} 0
# HELP dep2p_connmgr_realm_refused_pending_total Claims refused at the realm's max_pending.
# TYPE dep2p_connmgr_realm_refused_pending_total counter
dep2p_connmgr_realm_refused_pending_total{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_refused_pending_total{realm="chat"} 0
# HELP dep2p_connmgr_realm_made_room_total Members admitted above a full connection cap while the realm was below its reserve, each by closing another connection.
# TYPE dep2p_connmgr_realm_made_room_total counter
dep2p_connmgr_realm_made_room_total{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_made_room_total{realm="chat"} 0
# HELP dep2p_connmgr_realm_refused_no_room_total Members above a full cap refused while the realm was below its reserve: nothing could close for them.
# TYPE dep2p_connmgr_realm_refused_no_room_total counter
dep2p_connmgr_realm_refused_no_room_total{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_refused_no_room_total{realm="chat"} 0
# HELP dep2p_connmgr_realm_streams Streams open on the realm's bound connections (counted once a realm limits streams).
# TYPE dep2p_connmgr_realm_streams gauge
dep2p_connmgr_realm_streams{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_streams{realm="chat"} 0
# HELP dep2p_connmgr_realm_refused_streams_total Stream opens refused at the realm's max_streams.
# TYPE dep2p_connmgr_realm_refused_streams_total counter
dep2p_connmgr_realm_refused_streams_total{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_refused_streams_total{realm="chat"} 0
# HELP dep2p_connmgr_realm_hard_max The realm's hard_max (0: no limit).
# TYPE dep2p_connmgr_realm_hard_max gauge
dep2p_connmgr_realm_hard_max{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_hard_max{realm="chat"} 4
# HELP dep2p_connmgr_realm_max_members The realm's max_members (0: no limit).
# TYPE dep2p_connmgr_realm_max_members gauge
dep2p_connmgr_realm_max_members{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_max_members{realm="chat"} 1
# HELP dep2p_connmgr_realm_max_pending The realm's max_pending (0: no limit).
# TYPE dep2p_connmgr_realm_max_pending gauge
dep2p_connmgr_realm_max_pending{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_max_pending{realm="chat"} 2
# HELP dep2p_connmgr_realm_max_streams The realm's max_streams (0: no limit).
# TYPE dep2p_connmgr_realm_max_streams gauge
dep2p_connmgr_realm_max_streams{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_max_streams{realm="chat"} 0
# HELP dep2p_connmgr_realm_low_water The realm's low water: its trim's target and its share.
# TYPE dep2p_connmgr_realm_low_water gauge
dep2p_connmgr_realm_low_water{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_low_water{realm="chat"} 2
# HELP dep2p_connmgr_realm_high_water The realm's high water (0: no realm trim).
# TYPE dep2p_connmgr_realm_high_water gauge
dep2p_connmgr_realm_high_water{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_high_water{realm="chat"} 3
# HELP dep2p_connmgr_realm_min_reserved Bound connections the node's trim leaves the realm.
# TYPE dep2p_connmgr_realm_min_reserved gauge
dep2p_connmgr_realm_min_reserved{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_min_reserved{realm="chat"} 0
)";
  EXPECT_EQ(text.substr(manager_only.str().size()), expected_realms);
  expect_well_formed(text);
  // The refused bind shows in the manager's refusals too.
  EXPECT_NE(text.find("dep2p_connmgr_refusals_total{reason=\"realm_limit\"} 1\n"),
            std::string::npos);
}

}  // namespace
}  // namespace dep2p::connmgr::testing
