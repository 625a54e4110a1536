// Observability (docs/design.md, "Observability"): explain(peer), the completed stats() and the
// Prometheus text of ConnectionManager and RealmConnectionManager, checked field by field and line
// by line against states built in virtual time.
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
    EXPECT_TRUE(h.manager.stream_opened(*peer1, Direction::inbound));
    EXPECT_TRUE(h.manager.stream_opened(*peer1, Direction::inbound));
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

bool valid_metric_name(std::string_view name) {
  static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
  return std::regex_match(name.begin(), name.end(), kName);
}
bool valid_label_name(std::string_view name) {
  static const std::regex kName("[a-zA-Z_][a-zA-Z0-9_]*");
  return std::regex_match(name.begin(), name.end(), kName) && !name.starts_with("__");
}

// A number as the format spells it: a float, +Inf, -Inf or NaN. nullopt if it is none.
std::optional<double> parse_number(const std::string& text) {
  if (text == "+Inf") return std::numeric_limits<double>::infinity();
  if (text == "-Inf") return -std::numeric_limits<double>::infinity();
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  static const std::regex kFloat(R"(-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)");
  if (!std::regex_match(text, kFloat)) return std::nullopt;
  return std::stod(text);
}

// The shortest text of a double, the key under which both sides file an `le` bound.
std::string number_key(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

// One sample line: its name, its labels (values unescaped) and its value.
struct SampleLine {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  std::string value;
};

// Parses `name{label="value",...} value`; nullopt (and why) if the line is malformed: a
// bad name, an unescaped quote, an unknown escape, a missing separator.
std::optional<SampleLine> parse_sample(const std::string& line, std::string& why) {
  SampleLine out;
  std::size_t i = line.find_first_of("{ ");
  if (i == std::string::npos) return why = "no value", std::nullopt;
  out.name = line.substr(0, i);
  if (line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const std::size_t eq = line.find('=', i);
      if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
        return why = "label without =\"", std::nullopt;
      }
      std::string name = line.substr(i, eq - i);
      std::string value;
      std::size_t j = eq + 2;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] != '\\') {
          value += line[j];
          continue;
        }
        if (++j >= line.size()) return why = "escape at the end", std::nullopt;
        if (line[j] == 'n') {
          value += '\n';
        } else if (line[j] == '\\' || line[j] == '"') {
          value += line[j];
        } else {
          return why = "unknown escape \\" + std::string(1, line[j]), std::nullopt;
        }
      }
      if (j >= line.size()) return why = "unterminated label value", std::nullopt;
      out.labels.emplace_back(std::move(name), std::move(value));
      i = j + 1;
      if (i < line.size() && line[i] == ',') {
        ++i;
      } else if (i >= line.size() || line[i] != '}') {
        return why = "label not followed by , or }", std::nullopt;
      }
    }
    if (i >= line.size()) return why = "unterminated labels", std::nullopt;
    ++i;  // the '}'
  }
  if (i >= line.size() || line[i] != ' ') return why = "no space before the value", std::nullopt;
  out.value = line.substr(i + 1);
  return out;
}

// A label value quoted as in the text, so that keys cannot run into each other.
std::string escape_for_key(const std::string& value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return out + "\"";
}

// A series' key: its name and its labels sorted by name, `le` bounds in their shortest form.
std::string series_key(const std::string& name,
                       std::vector<std::pair<std::string, std::string>> labels) {
  std::sort(labels.begin(), labels.end());
  std::string key = name + "{";
  for (auto& [label, value] : labels) {
    if (label == "le") {
      if (auto bound = parse_number(value)) value = number_key(*bound);
    }
    key += label + "=" + escape_for_key(value) + ";";
  }
  return key + "}";
}

// The Prometheus text format 0.0.4 as this library writes it (docs/design.md, "Metric
// names"): every family has one # HELP, then one # TYPE (counter, gauge or histogram),
// then its samples, and appears once; names and label names are valid, label values
// escaped, no series repeats; counters end in _total and nothing else does; a gauge or a
// counter has samples named after it, a histogram _bucket (with le), _sum and _count, whose
// buckets are cumulative, le ascending and ending at +Inf, which equals _count.
void expect_valid_exposition(const std::string& text) {
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n') << "the text ends with a newline";
  struct Family {
    int helps = 0;
    int types = 0;
    std::string type;
    bool sampled = false;
  };
  struct Histogram {
    std::vector<std::pair<double, double>> buckets;  // (le, cumulative count), text order
    std::optional<double> sum;
    std::optional<double> count;
  };
  std::map<std::string, Family> families;
  std::set<std::string> ended;  // families whose lines are behind us
  std::set<std::string> series;
  std::map<std::string, Histogram> histograms;  // by name and labels other than le
  std::string current;
  const auto enter = [&](const std::string& name) {
    if (name == current) return;
    if (!current.empty()) ended.insert(current);
    EXPECT_EQ(ended.count(name), 0u) << "family " << name << " appears twice";
    current = name;
  };
  for (const std::string& line : lines_of(text)) {
    if (line.starts_with("# HELP ")) {
      const std::string rest = line.substr(7);
      const std::string name = rest.substr(0, rest.find(' '));
      EXPECT_TRUE(valid_metric_name(name)) << line;
      EXPECT_GT(rest.size(), name.size() + 1) << "empty HELP: " << line;
      enter(name);
      Family& f = families[name];
      EXPECT_EQ(++f.helps, 1) << "second HELP for " << name;
      EXPECT_EQ(f.types, 0) << "HELP after TYPE for " << name;
      EXPECT_FALSE(f.sampled) << "HELP after samples of " << name;
    } else if (line.starts_with("# TYPE ")) {
      std::istringstream words(line.substr(7));
      std::string name, type, extra;
      words >> name >> type >> extra;
      EXPECT_TRUE(extra.empty()) << line;
      EXPECT_TRUE(type == "counter" || type == "gauge" || type == "histogram") << line;
      enter(name);
      Family& f = families[name];
      EXPECT_EQ(f.helps, 1) << "TYPE without a HELP before it: " << name;
      EXPECT_EQ(++f.types, 1) << "second TYPE for " << name;
      EXPECT_FALSE(f.sampled) << "TYPE after samples of " << name;
      f.type = type;
      EXPECT_EQ(name.ends_with("_total"), type == "counter")
          << name << ": counters, and only they, end in _total";
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        EXPECT_FALSE(name.ends_with(suffix)) << name << " ends in a histogram sample's suffix";
      }
    } else if (line.starts_with("#")) {
      ADD_FAILURE() << "a comment that is neither HELP nor TYPE: " << line;
    } else {
      std::string why;
      const auto sample = parse_sample(line, why);
      if (!sample) {
        ADD_FAILURE() << "unparsable sample (" << why << "): [" << line << "]";
        continue;
      }
      EXPECT_TRUE(valid_metric_name(sample->name)) << line;
      const auto value = parse_number(sample->value);
      EXPECT_TRUE(value.has_value()) << "bad value: " << line;
      std::set<std::string> label_names;
      std::vector<std::pair<std::string, std::string>> without_le;
      std::optional<double> le;
      for (const auto& [label, label_value] : sample->labels) {
        EXPECT_TRUE(valid_label_name(label)) << "label " << label << ": " << line;
        EXPECT_TRUE(label_names.insert(label).second) << "label " << label << " twice: " << line;
        if (label == "le") {
          le = parse_number(label_value);
          EXPECT_TRUE(le.has_value()) << "bad le: " << line;
        } else {
          without_le.emplace_back(label, label_value);
        }
      }
      EXPECT_TRUE(series.insert(series_key(sample->name, sample->labels)).second)
          << "series repeated: " << line;
      const auto family = families.find(current);
      if (family == families.end() || family->second.types != 1) {
        ADD_FAILURE() << "sample before its family's TYPE: " << line;
        continue;
      }
      family->second.sampled = true;
      if (family->second.type != "histogram") {
        EXPECT_EQ(sample->name, current) << "sample outside its family: " << line;
        EXPECT_FALSE(le.has_value()) << "le outside a histogram: " << line;
        continue;
      }
      Histogram& h = histograms[series_key(current, without_le)];
      if (sample->name == current + "_bucket") {
        EXPECT_TRUE(le.has_value()) << "a bucket without le: " << line;
        if (le && value) h.buckets.emplace_back(*le, *value);
      } else if (sample->name == current + "_sum") {
        EXPECT_FALSE(le.has_value()) << line;
        EXPECT_FALSE(h.sum.has_value()) << "second _sum: " << line;
        h.sum = value;
      } else if (sample->name == current + "_count") {
        EXPECT_FALSE(le.has_value()) << line;
        EXPECT_FALSE(h.count.has_value()) << "second _count: " << line;
        h.count = value;
      } else {
        ADD_FAILURE() << "sample outside its histogram: " << line;
      }
    }
  }
  for (const auto& [name, f] : families) {
    EXPECT_EQ(f.helps, 1) << name;
    EXPECT_EQ(f.types, 1) << name;
  }
  for (const auto& [key, h] : histograms) {
    ASSERT_FALSE(h.buckets.empty()) << key << " has no bucket";
    for (std::size_t i = 1; i < h.buckets.size(); ++i) {
      EXPECT_LT(h.buckets[i - 1].first, h.buckets[i].first) << key << ": le not ascending";
      EXPECT_LE(h.buckets[i - 1].second, h.buckets[i].second) << key << ": buckets not cumulative";
    }
    EXPECT_TRUE(std::isinf(h.buckets.back().first)) << key << ": no le=\"+Inf\" bucket last";
    EXPECT_TRUE(h.sum.has_value()) << key << ": no _sum";
    EXPECT_TRUE(h.count.has_value()) << key << ": no _count";
    if (h.count) {
      EXPECT_EQ(h.buckets.back().second, *h.count) << key << ": +Inf bucket != _count";
    }
  }
}

TEST(Prometheus, TheExpositionCheckCatchesEachKindOfBrokenText) {
  // Each text breaks one rule; the check must fail on each.
  const std::string head = "# HELP dep2p_connmgr_x x\n# TYPE dep2p_connmgr_x gauge\n";
  const std::string hist = "# HELP dep2p_connmgr_h h\n# TYPE dep2p_connmgr_h histogram\n";
  const std::vector<std::pair<std::string, std::string>> broken = {
      {"no TYPE", "dep2p_connmgr_x 1\n"},
      {"TYPE before HELP", "# TYPE dep2p_connmgr_x gauge\n# HELP dep2p_connmgr_x x\n"},
      {"two HELPs", "# HELP dep2p_connmgr_x x\n" + head + "dep2p_connmgr_x 1\n"},
      {"unescaped quote", head + "dep2p_connmgr_x{a=\"\"\"} 1\n"},
      {"unknown escape", head + "dep2p_connmgr_x{a=\"\\t\"} 1\n"},
      {"bad label name", head + "dep2p_connmgr_x{1a=\"v\"} 1\n"},
      {"reserved label name", head + "dep2p_connmgr_x{__a=\"v\"} 1\n"},
      {"bad metric name", "# HELP 1x x\n# TYPE 1x gauge\n1x 1\n"},
      {"counter without _total",
       "# HELP dep2p_connmgr_c c\n# TYPE dep2p_connmgr_c counter\n"
       "dep2p_connmgr_c 1\n"},
      {"gauge with _total",
       "# HELP dep2p_connmgr_g_total g\n# TYPE dep2p_connmgr_g_total gauge\n"
       "dep2p_connmgr_g_total 1\n"},
      {"sample of another family", head + "dep2p_connmgr_y 1\n"},
      {"family repeated", head +
                              "dep2p_connmgr_x 1\n# HELP dep2p_connmgr_z z\n"
                              "# TYPE dep2p_connmgr_z gauge\ndep2p_connmgr_z 1\n" +
                              head},
      {"series repeated", head + "dep2p_connmgr_x 1\ndep2p_connmgr_x 2\n"},
      {"bad value", head + "dep2p_connmgr_x one\n"},
      {"buckets not cumulative", hist + "dep2p_connmgr_h_bucket{le=\"1\"} 2\n"
                                        "dep2p_connmgr_h_bucket{le=\"+Inf\"} 1\n"
                                        "dep2p_connmgr_h_sum 1\ndep2p_connmgr_h_count 1\n"},
      {"no +Inf bucket", hist + "dep2p_connmgr_h_bucket{le=\"1\"} 1\n"
                                "dep2p_connmgr_h_sum 1\ndep2p_connmgr_h_count 1\n"},
      {"+Inf bucket differs from _count", hist +
                                              "dep2p_connmgr_h_bucket{le=\"+Inf\"} 1\n"
                                              "dep2p_connmgr_h_sum 1\ndep2p_connmgr_h_count 2\n"},
      {"le not ascending", hist + "dep2p_connmgr_h_bucket{le=\"2\"} 0\n"
                                  "dep2p_connmgr_h_bucket{le=\"1\"} 0\n"
                                  "dep2p_connmgr_h_bucket{le=\"+Inf\"} 0\n"
                                  "dep2p_connmgr_h_sum 0\ndep2p_connmgr_h_count 0\n"},
      {"bucket without le", hist + "dep2p_connmgr_h_bucket 1\n"},
      {"no _count", hist + "dep2p_connmgr_h_bucket{le=\"+Inf\"} 0\ndep2p_connmgr_h_sum 0\n"},
      {"histogram sample named as a gauge", hist + "dep2p_connmgr_h 1\n"},
      {"no final newline", head + "dep2p_connmgr_x 1"},
  };
  for (const auto& [what, text] : broken) {
    ::testing::TestPartResultArray failures;
    {
      ::testing::ScopedFakeTestPartResultReporter reporter(
          ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
      expect_valid_exposition(text);
    }
    EXPECT_GT(failures.size(), 0) << "not caught: " << what;
  }
  // And a well-formed text passes.
  expect_valid_exposition(head + "dep2p_connmgr_x{a=\"q\\\"\\\\\\n\"} 1\n" + hist +
                          "dep2p_connmgr_h_bucket{le=\"1\"} 1\n"
                          "dep2p_connmgr_h_bucket{le=\"+Inf\"} 2\n"
                          "dep2p_connmgr_h_sum 3.5\ndep2p_connmgr_h_count 2\n");
}

// What the public description says, as the lines of text it implies: each family (name,
// type as the text writes it, help) in order, and each series' value by key.
class DescribedText final : public MetricVisitor {
 public:
  struct FamilyLine {
    std::string name;
    std::string type;
    std::string help;
    bool operator==(const FamilyLine&) const = default;
  };
  std::vector<FamilyLine> families;
  std::map<std::string, double> series;

  void family(const MetricFamily& family) override {
    families.push_back({std::string(family.name),
                        family.type == MetricType::gauge_histogram
                            ? "histogram"
                            : std::string(to_string(family.type)),
                        std::string(family.help)});
    for (std::string_view label : family.labels) {
      EXPECT_TRUE(valid_label_name(label)) << family.name << ": " << label;
    }
  }
  void sample(const MetricFamily& family, const MetricSample& sample) override {
    const std::string name(family.name);
    EXPECT_EQ(sample.label_values.size(), family.labels.size()) << name;
    std::vector<std::pair<std::string, std::string>> labels;
    for (std::size_t i = 0; i < std::min(family.labels.size(), sample.label_values.size()); ++i) {
      labels.emplace_back(family.labels[i], sample.label_values[i]);
    }
    const bool histogram =
        family.type == MetricType::histogram || family.type == MetricType::gauge_histogram;
    ASSERT_EQ(sample.histogram != nullptr, histogram) << name;
    if (!histogram) {
      put(name, labels, sample.value);
      return;
    }
    const HistogramValue& h = *sample.histogram;
    ASSERT_EQ(h.bucket_counts.size(), h.upper_bounds.size() + 1) << name;
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < h.upper_bounds.size(); ++i) {
      cumulative += h.bucket_counts[i];
      auto with_le = labels;
      with_le.emplace_back("le", number_key(h.upper_bounds[i]));
      put(name + "_bucket", with_le, static_cast<double>(cumulative));
    }
    EXPECT_EQ(cumulative + h.bucket_counts.back(), h.count) << name << ": buckets sum to count";
    auto with_inf = labels;
    with_inf.emplace_back("le", "+Inf");
    put(name + "_bucket", with_inf, static_cast<double>(h.count));
    put(name + "_sum", labels, h.sum);
    put(name + "_count", labels, static_cast<double>(h.count));
  }

 private:
  void put(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels,
           double value) {
    EXPECT_TRUE(series.emplace(series_key(name, labels), value).second)
        << "the description repeats " << series_key(name, labels);
  }
};

// The text says what the description says, family for family and series for series, and
// nothing else.
void expect_text_matches(const std::string& text, const DescribedText& described) {
  std::vector<DescribedText::FamilyLine> families;
  std::map<std::string, double> series;
  for (const std::string& line : lines_of(text)) {
    if (line.starts_with("# HELP ")) {
      const std::string rest = line.substr(7);
      const std::size_t space = rest.find(' ');
      families.push_back({rest.substr(0, space), "", rest.substr(space + 1)});
    } else if (line.starts_with("# TYPE ")) {
      const std::string rest = line.substr(7);
      if (!families.empty()) families.back().type = rest.substr(rest.find(' ') + 1);
    } else {
      std::string why;
      const auto sample = parse_sample(line, why);
      ASSERT_TRUE(sample.has_value()) << why << ": " << line;
      const auto value = parse_number(sample->value);
      ASSERT_TRUE(value.has_value()) << line;
      series[series_key(sample->name, sample->labels)] = *value;
    }
  }
  EXPECT_EQ(families.size(), described.families.size());
  for (std::size_t i = 0; i < std::min(families.size(), described.families.size()); ++i) {
    EXPECT_EQ(families[i].name, described.families[i].name) << "family " << i;
    EXPECT_EQ(families[i].type, described.families[i].type) << families[i].name;
    // HELP text is escaped in the exposition; ours has no backslash or newline.
    EXPECT_EQ(families[i].help, described.families[i].help) << families[i].name;
  }
  for (const auto& [key, value] : described.series) {
    const auto found = series.find(key);
    if (found == series.end()) {
      ADD_FAILURE() << "described, not in the text: " << key;
    } else {
      EXPECT_EQ(found->second, value) << key;
    }
  }
  for (const auto& [key, value] : series) {
    EXPECT_EQ(described.series.count(key), 1u) << "in the text, not described: " << key;
  }
}

// A manager with limits set, a trim that took 3 ms of virtual time and measured RTTs: every
// kind of family has samples worth comparing.
struct BusyNode {
  BusyNode() : h(config()) {
    for (std::uint64_t peer = 1; peer <= 3; ++peer) {
      auto c = answerable(h.manager, peer, peer == 2 ? Direction::outbound : Direction::inbound,
                          peer == 3 ? PathKind::relay : PathKind::direct, pings);
      c->on_close = [this](FakeConnection& self, CloseReason reason) {
        h.time->advance(3ms);  // the close takes 3 ms: the trim does
        h.manager.remove_connection(self, reason);
      };
      connections.push_back(c);
    }
    h.time->advance(5s);
    h.time->advance(30ms);
    for (auto& done : pings) done(std::error_code{});
    EXPECT_EQ(h.manager.trim_connections(1), 1u);
  }
  static Config config() {
    Config c = quiet_config(0ms);
    c.keepalive_interval = 5s;
    c.keepalive_timeout = 5s;
    c.limits.system.connections_inbound = 40;
    c.limits.system.connections_total = 64;
    c.limits.system.pending_outbound = 8;
    c.limits.system.memory_bytes = 1 << 20;
    c.high_water = 50;  // within connections_total
    return c;
  }

  ManagerHarness h;
  std::vector<Connection::PingHandler> pings;
  std::vector<std::shared_ptr<FakeConnection>> connections;
};

TEST(Prometheus, TheTextIsTheWalkOfThePublicDescription) {
  BusyNode node;
  const Stats stats = node.h.manager.stats();
  DescribedText described;
  for_each_metric(stats, described);
  std::ostringstream out;
  node.h.manager.write_prometheus(out);
  expect_valid_exposition(out.str());
  expect_text_matches(out.str(), described);
  // The walk saw what this node holds.
  EXPECT_EQ(described.series.at(series_key("dep2p_connmgr_trim_duration_seconds_count", {})), 1);
  EXPECT_EQ(described.series.at(series_key("dep2p_connmgr_connections_limit", {})), 64);
  EXPECT_EQ(described.series.at(series_key("dep2p_connmgr_connections_direction_limit",
                                           {{"direction", "outbound"}})),
            std::numeric_limits<double>::infinity());
}

TEST(Prometheus, TheComparisonWithTheDescriptionCatchesADifference) {
  KnownPool pool;
  DescribedText described;
  for_each_metric(pool.h.manager.stats(), described);
  std::ostringstream out;
  pool.h.manager.write_prometheus(out);
  const std::string text = out.str();
  expect_text_matches(text, described);
  const auto replace = [&](const std::string& from, const std::string& to) {
    std::string changed = text;
    const std::size_t at = changed.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? changed : changed.replace(at, from.size(), to);
  };
  const std::vector<std::string> broken = {
      replace("dep2p_connmgr_peers 3\n", "dep2p_connmgr_peers 4\n"),       // a value
      replace("dep2p_connmgr_peers 3\n", ""),                              // a sample gone
      replace("dep2p_connmgr_peers 3\n", "dep2p_connmgr_peers 3\nx 1\n"),  // one more
      replace("# TYPE dep2p_connmgr_peers gauge", "# TYPE dep2p_connmgr_peers counter"),
      replace("le=\"0.05\"} 1", "le=\"0.05\"} 2"),  // a bucket
  };
  for (const std::string& text_variant : broken) {
    ::testing::TestPartResultArray failures;
    {
      ::testing::ScopedFakeTestPartResultReporter reporter(
          ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
      expect_text_matches(text_variant, described);
    }
    EXPECT_GT(failures.size(), 0);
  }
}

TEST(Prometheus, HistogramsCountTheRttsOfThePoolAndEachTrimsDuration) {
  BusyNode node;
  const Stats s = node.h.manager.stats();
  // Three RTTs of 30 ms, one of them closed by the trim: two left, in (25 ms, 50 ms].
  EXPECT_EQ(s.rtts.count, 2u);
  EXPECT_EQ(s.rtts.sum, Duration(60ms));
  EXPECT_EQ(s.rtts.buckets[8], 2u) << "le 50 ms";
  EXPECT_EQ(s.rtt.count, s.rtts.count);
  // One trim, 3 ms on the manager's clock: in (2.5 ms, 5 ms].
  EXPECT_EQ(s.trims, 1u);
  EXPECT_EQ(s.trim_durations.count, 1u);
  EXPECT_EQ(s.trim_durations.sum, Duration(3ms));
  EXPECT_EQ(s.trim_durations.buckets[5], 1u) << "le 5 ms";
  // A trim with nothing to do is not counted, nor timed.
  EXPECT_EQ(node.h.manager.trim_connections(0), 0u);
  EXPECT_EQ(node.h.manager.stats().trim_durations.count, 1u);

  std::ostringstream out;
  node.h.manager.write_prometheus(out);
  const auto lines = lines_of(out.str());
  for (const char* line : {
           "# TYPE dep2p_connmgr_rtt_seconds histogram",
           "dep2p_connmgr_rtt_seconds_bucket{le=\"0.025\"} 0",
           "dep2p_connmgr_rtt_seconds_bucket{le=\"0.05\"} 2",
           "dep2p_connmgr_rtt_seconds_bucket{le=\"10\"} 2",
           "dep2p_connmgr_rtt_seconds_bucket{le=\"+Inf\"} 2",
           "dep2p_connmgr_rtt_seconds_sum 0.06",
           "dep2p_connmgr_rtt_seconds_count 2",
           "dep2p_connmgr_trim_duration_seconds_bucket{le=\"0.0025\"} 0",
           "dep2p_connmgr_trim_duration_seconds_bucket{le=\"0.005\"} 1",
           "dep2p_connmgr_trim_duration_seconds_bucket{le=\"+Inf\"} 1",
           "dep2p_connmgr_trim_duration_seconds_sum 0.003",
           "dep2p_connmgr_trim_duration_seconds_count 1",
       }) {
    EXPECT_NE(std::find(lines.begin(), lines.end(), line), lines.end()) << line;
  }
}

TEST(Prometheus, LimitsStandNextToTheirUsageAndNoLimitIsInfinite) {
  BusyNode node;
  ASSERT_FALSE(node.h.manager.set_limits(3, 7));
  std::ostringstream out;
  node.h.manager.write_prometheus(out);
  const auto lines = lines_of(out.str());
  for (const char* line : {
           "dep2p_connmgr_low_water 3",
           "dep2p_connmgr_high_water 7",
           "dep2p_connmgr_connections_limit 64",
           "dep2p_connmgr_connections_direction_limit{direction=\"inbound\"} 40",
           "dep2p_connmgr_connections_direction_limit{direction=\"outbound\"} +Inf",
           "dep2p_connmgr_streams_limit +Inf",
           "dep2p_connmgr_pending_handshakes_limit{direction=\"inbound\"} +Inf",
           "dep2p_connmgr_pending_handshakes_limit{direction=\"outbound\"} 8",
           "dep2p_connmgr_reserved_memory_limit_bytes 1048576",
           "dep2p_connmgr_reserved_fds_limit +Inf",
       }) {
    EXPECT_NE(std::find(lines.begin(), lines.end(), line), lines.end()) << line;
  }
  const Stats s = node.h.manager.stats();
  EXPECT_EQ(s.low_water, 3u);
  EXPECT_EQ(s.high_water, 7u);
  EXPECT_EQ(s.system_limits.connections_total, 64u);
}

TEST(Prometheus, ConnectionsAreOneFamilyWhoseSumIsThePool) {
  KnownPool pool;
  const Stats s = pool.h.manager.stats();
  DescribedText described;
  for_each_metric(s, described);
  double sum = 0;
  for (const auto& [key, value] : described.series) {
    if (key.starts_with("dep2p_connmgr_connections{")) sum += value;
  }
  EXPECT_EQ(sum, static_cast<double>(s.connections)) << "sum(dep2p_connmgr_connections)";
  EXPECT_EQ(s.pooled(Direction::inbound, PathKind::relay, ConnectionState::established), 1u);
  EXPECT_EQ(s.pooled(Direction::outbound, PathKind::direct, ConnectionState::closing), 1u);
  EXPECT_EQ(s.pooled(Direction::inbound, PathKind::direct, ConnectionState::dialing), 0u);
}

TEST(Prometheus, TheKnownPoolIsWrittenExactly) {
  KnownPool pool;
  std::ostringstream out;
  pool.h.manager.write_prometheus(out);
  // Build info first, then the pool with its limits, the histograms, the counters.
  const std::string expected =
      R"(# HELP dep2p_connmgr_build_info The version of the library the manager runs (the value is always 1).
# TYPE dep2p_connmgr_build_info gauge
dep2p_connmgr_build_info{version=")" +
      std::string(version()) + R"("} 1
# HELP dep2p_connmgr_connections Connections in the pool, by direction, path kind and state (established, or closing as the host reported).
# TYPE dep2p_connmgr_connections gauge
dep2p_connmgr_connections{direction="inbound",path="direct",state="established"} 1
dep2p_connmgr_connections{direction="inbound",path="direct",state="closing"} 0
dep2p_connmgr_connections{direction="inbound",path="relay",state="established"} 1
dep2p_connmgr_connections{direction="inbound",path="relay",state="closing"} 0
dep2p_connmgr_connections{direction="outbound",path="direct",state="established"} 0
dep2p_connmgr_connections{direction="outbound",path="direct",state="closing"} 1
dep2p_connmgr_connections{direction="outbound",path="relay",state="established"} 0
dep2p_connmgr_connections{direction="outbound",path="relay",state="closing"} 0
# HELP dep2p_connmgr_pending_connections Connections tracked before they are established (track_pending), by state; not in the pool.
# TYPE dep2p_connmgr_pending_connections gauge
dep2p_connmgr_pending_connections{state="dialing"} 1
dep2p_connmgr_pending_connections{state="handshaking"} 1
# HELP dep2p_connmgr_connections_limit The system's limit on pooled connections, both directions together (+Inf: none).
# TYPE dep2p_connmgr_connections_limit gauge
dep2p_connmgr_connections_limit +Inf
# HELP dep2p_connmgr_connections_direction_limit The system's limit on pooled connections of one direction (+Inf: none).
# TYPE dep2p_connmgr_connections_direction_limit gauge
dep2p_connmgr_connections_direction_limit{direction="inbound"} +Inf
dep2p_connmgr_connections_direction_limit{direction="outbound"} +Inf
# HELP dep2p_connmgr_high_water Pooled connections at which a trim starts (0: trimming is off).
# TYPE dep2p_connmgr_high_water gauge
dep2p_connmgr_high_water 100
# HELP dep2p_connmgr_low_water Pooled connections a trim brings the pool down to (0: trimming is off).
# TYPE dep2p_connmgr_low_water gauge
dep2p_connmgr_low_water 2
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
# HELP dep2p_connmgr_streams_limit The system's limit on open streams, both directions together (+Inf: none).
# TYPE dep2p_connmgr_streams_limit gauge
dep2p_connmgr_streams_limit +Inf
# HELP dep2p_connmgr_rtt_seconds Smoothed keepalive RTTs of the pooled connections that have one (a ping answered), now: the buckets may go down.
# TYPE dep2p_connmgr_rtt_seconds histogram
dep2p_connmgr_rtt_seconds_bucket{le="0.0001"} 0
dep2p_connmgr_rtt_seconds_bucket{le="0.00025"} 0
dep2p_connmgr_rtt_seconds_bucket{le="0.0005"} 0
dep2p_connmgr_rtt_seconds_bucket{le="0.001"} 0
dep2p_connmgr_rtt_seconds_bucket{le="0.0025"} 0
dep2p_connmgr_rtt_seconds_bucket{le="0.005"} 0
dep2p_connmgr_rtt_seconds_bucket{le="0.01"} 0
dep2p_connmgr_rtt_seconds_bucket{le="0.025"} 0
dep2p_connmgr_rtt_seconds_bucket{le="0.05"} 1
dep2p_connmgr_rtt_seconds_bucket{le="0.1"} 2
dep2p_connmgr_rtt_seconds_bucket{le="0.25"} 2
dep2p_connmgr_rtt_seconds_bucket{le="0.5"} 2
dep2p_connmgr_rtt_seconds_bucket{le="1"} 2
dep2p_connmgr_rtt_seconds_bucket{le="2.5"} 2
dep2p_connmgr_rtt_seconds_bucket{le="5"} 2
dep2p_connmgr_rtt_seconds_bucket{le="10"} 2
dep2p_connmgr_rtt_seconds_bucket{le="+Inf"} 2
dep2p_connmgr_rtt_seconds_sum 0.12
dep2p_connmgr_rtt_seconds_count 2
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
# HELP dep2p_connmgr_trim_duration_seconds How long each trim took, from its start to its last close, on the manager's time source.
# TYPE dep2p_connmgr_trim_duration_seconds histogram
dep2p_connmgr_trim_duration_seconds_bucket{le="0.0001"} 0
dep2p_connmgr_trim_duration_seconds_bucket{le="0.00025"} 0
dep2p_connmgr_trim_duration_seconds_bucket{le="0.0005"} 0
dep2p_connmgr_trim_duration_seconds_bucket{le="0.001"} 0
dep2p_connmgr_trim_duration_seconds_bucket{le="0.0025"} 0
dep2p_connmgr_trim_duration_seconds_bucket{le="0.005"} 0
dep2p_connmgr_trim_duration_seconds_bucket{le="0.01"} 0
dep2p_connmgr_trim_duration_seconds_bucket{le="0.025"} 0
dep2p_connmgr_trim_duration_seconds_bucket{le="0.05"} 0
dep2p_connmgr_trim_duration_seconds_bucket{le="0.1"} 0
dep2p_connmgr_trim_duration_seconds_bucket{le="0.25"} 0
dep2p_connmgr_trim_duration_seconds_bucket{le="0.5"} 0
dep2p_connmgr_trim_duration_seconds_bucket{le="1"} 0
dep2p_connmgr_trim_duration_seconds_bucket{le="2.5"} 0
dep2p_connmgr_trim_duration_seconds_bucket{le="5"} 0
dep2p_connmgr_trim_duration_seconds_bucket{le="10"} 0
dep2p_connmgr_trim_duration_seconds_bucket{le="+Inf"} 0
dep2p_connmgr_trim_duration_seconds_sum 0
dep2p_connmgr_trim_duration_seconds_count 0
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
# HELP dep2p_connmgr_pending_handshakes_limit The system's limit on handshakes in progress, by direction (+Inf: none).
# TYPE dep2p_connmgr_pending_handshakes_limit gauge
dep2p_connmgr_pending_handshakes_limit{direction="inbound"} +Inf
dep2p_connmgr_pending_handshakes_limit{direction="outbound"} +Inf
# HELP dep2p_connmgr_reservations Admission reservations alive.
# TYPE dep2p_connmgr_reservations gauge
dep2p_connmgr_reservations 0
# HELP dep2p_connmgr_reserved_memory_bytes Memory reserved through reservations.
# TYPE dep2p_connmgr_reserved_memory_bytes gauge
dep2p_connmgr_reserved_memory_bytes 0
# HELP dep2p_connmgr_reserved_memory_limit_bytes The system's limit on memory reserved (+Inf: none).
# TYPE dep2p_connmgr_reserved_memory_limit_bytes gauge
dep2p_connmgr_reserved_memory_limit_bytes +Inf
# HELP dep2p_connmgr_reserved_fds File descriptors reserved through reservations.
# TYPE dep2p_connmgr_reserved_fds gauge
dep2p_connmgr_reserved_fds 0
# HELP dep2p_connmgr_reserved_fds_limit The system's limit on file descriptors reserved (+Inf: none).
# TYPE dep2p_connmgr_reserved_fds_limit gauge
dep2p_connmgr_reserved_fds_limit +Inf
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
  expect_valid_exposition(out.str());
}

TEST(Prometheus, NoRttIsCountedBeforeAnyPingIsAnswered) {
  ManagerHarness h(quiet_config());
  h.add(1);
  std::ostringstream out;
  h.manager.write_prometheus(out);
  const auto lines = lines_of(out.str());
  auto has = [&](const std::string& line) {
    return std::find(lines.begin(), lines.end(), line) != lines.end();
  };
  EXPECT_TRUE(has("dep2p_connmgr_rtt_seconds_bucket{le=\"+Inf\"} 0"));
  EXPECT_TRUE(has("dep2p_connmgr_rtt_seconds_sum 0"));
  EXPECT_TRUE(has("dep2p_connmgr_rtt_seconds_count 0"));
  expect_valid_exposition(out.str());
}

TEST(Prometheus, TheRealmLayersTextIsTheWalkOfItsPublicDescription) {
  boost::asio::io_context io;
  auto time = std::make_shared<ManualTimeSource>(io);
  RealmConnectionManager node(io, quiet_config(), Dependencies{.time_source = time});
  RealmConfig config;
  config.hard_max = 4;
  ASSERT_FALSE(node.create_realm("chat", config));
  ASSERT_FALSE(node.create_realm("files", RealmConfig{}));
  auto c1 = reporting_connection(node.manager(), peer_id(1), Direction::inbound);
  ASSERT_FALSE(node.manager().add_connection(c1));
  ASSERT_TRUE(node.bind(*c1, "chat"));

  DescribedText described;
  node.for_each_metric(described);
  std::ostringstream out;
  node.write_prometheus(out);
  expect_valid_exposition(out.str());
  expect_text_matches(out.str(), described);
  EXPECT_EQ(described.series.at(series_key("dep2p_connmgr_realm_connections", {{"realm", "chat"}})),
            1);
  EXPECT_EQ(
      described.series.at(series_key("dep2p_connmgr_realm_connections", {{"realm", "files"}})), 0);
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
  ASSERT_TRUE(node.bind(*c1, "chat"));
  EXPECT_FALSE(node.bind(*c2, "chat")) << "max_members 1: refused";
  ASSERT_TRUE(node.bind(*c1, odd));
  ASSERT_TRUE(node.bind(*c2, odd));
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
# HELP dep2p_connmgr_realm_trims_total Realm trims that ran.
# TYPE dep2p_connmgr_realm_trims_total counter
dep2p_connmgr_realm_trims_total{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_trims_total{realm="chat"} 0
# HELP dep2p_connmgr_realm_claims_pending Claims outstanding: admissions that claimed the realm, not yet added or dropped.
# TYPE dep2p_connmgr_realm_claims_pending gauge
dep2p_connmgr_realm_claims_pending{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_claims_pending{realm="chat"} 0
# HELP dep2p_connmgr_realm_claims_total Claims of the realm accepted.
# TYPE dep2p_connmgr_realm_claims_total counter
dep2p_connmgr_realm_claims_total{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_claims_total{realm="chat"} 0
# HELP dep2p_connmgr_realm_made_room_total Members admitted above a full connection cap while the realm was below its reserve, each by closing another connection.
# TYPE dep2p_connmgr_realm_made_room_total counter
dep2p_connmgr_realm_made_room_total{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_made_room_total{realm="chat"} 0
# HELP dep2p_connmgr_realm_streams Streams open on the realm's bound connections (counted once a realm limits streams).
# TYPE dep2p_connmgr_realm_streams gauge
dep2p_connmgr_realm_streams{realm="a\\b\"c\nd"} 0
dep2p_connmgr_realm_streams{realm="chat"} 0
# HELP dep2p_connmgr_realm_refusals_total Refusals for the realm, by reason: full (binds and claims at hard_max or max_members), max_pending (claims), no_room (members above a full cap while the realm was below its reserve, with nothing to close), max_streams (stream opens).
# TYPE dep2p_connmgr_realm_refusals_total counter
dep2p_connmgr_realm_refusals_total{realm="a\\b\"c\nd",reason="full"} 0
dep2p_connmgr_realm_refusals_total{realm="a\\b\"c\nd",reason="max_pending"} 0
dep2p_connmgr_realm_refusals_total{realm="a\\b\"c\nd",reason="no_room"} 0
dep2p_connmgr_realm_refusals_total{realm="a\\b\"c\nd",reason="max_streams"} 0
dep2p_connmgr_realm_refusals_total{realm="chat",reason="full"} 1
dep2p_connmgr_realm_refusals_total{realm="chat",reason="max_pending"} 0
dep2p_connmgr_realm_refusals_total{realm="chat",reason="no_room"} 0
dep2p_connmgr_realm_refusals_total{realm="chat",reason="max_streams"} 0
# HELP dep2p_connmgr_realm_trimmed_total Bound connections closed by trims, by trim: the realm's own, or the node's.
# TYPE dep2p_connmgr_realm_trimmed_total counter
dep2p_connmgr_realm_trimmed_total{realm="a\\b\"c\nd",trim="realm"} 0
dep2p_connmgr_realm_trimmed_total{realm="a\\b\"c\nd",trim="node"} 0
dep2p_connmgr_realm_trimmed_total{realm="chat",trim="realm"} 0
dep2p_connmgr_realm_trimmed_total{realm="chat",trim="node"} 0
# HELP dep2p_connmgr_realm_hard_max The realm's hard_max: bound connections at most (+Inf: none).
# TYPE dep2p_connmgr_realm_hard_max gauge
dep2p_connmgr_realm_hard_max{realm="a\\b\"c\nd"} +Inf
dep2p_connmgr_realm_hard_max{realm="chat"} 4
# HELP dep2p_connmgr_realm_max_members The realm's max_members (+Inf: none).
# TYPE dep2p_connmgr_realm_max_members gauge
dep2p_connmgr_realm_max_members{realm="a\\b\"c\nd"} +Inf
dep2p_connmgr_realm_max_members{realm="chat"} 1
# HELP dep2p_connmgr_realm_max_pending The realm's max_pending (+Inf: none).
# TYPE dep2p_connmgr_realm_max_pending gauge
dep2p_connmgr_realm_max_pending{realm="a\\b\"c\nd"} +Inf
dep2p_connmgr_realm_max_pending{realm="chat"} 2
# HELP dep2p_connmgr_realm_max_streams The realm's max_streams (+Inf: none).
# TYPE dep2p_connmgr_realm_max_streams gauge
dep2p_connmgr_realm_max_streams{realm="a\\b\"c\nd"} +Inf
dep2p_connmgr_realm_max_streams{realm="chat"} +Inf
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
  expect_valid_exposition(text);
  // The refused bind shows in the manager's refusals too.
  EXPECT_NE(text.find("dep2p_connmgr_refusals_total{reason=\"realm_limit\"} 1\n"),
            std::string::npos);
}

}  // namespace
}  // namespace dep2p::connmgr::testing
