// The Prometheus text of ConnectionManager and RealmConnectionManager (docs/design.md,
// "Metric names"): well formed, the walk of the public description, and line by line
// against states built in virtual time.
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

#include "support/exposition_check.hpp"
#include "support/observed_pool.hpp"

namespace dep2p::connmgr::testing {
namespace {

using namespace std::chrono_literals;

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
# HELP dep2p_connmgr_capped_addresses Entries in the per-address, per-subnet and per-group cap tables.
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
