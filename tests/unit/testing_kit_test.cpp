// The public testing kit (dep2p/connmgr/testing.hpp) used the way a host's own tests use
// it: only the public headers, a manager on VirtualTime, FakeConnections added to it.
#include "dep2p/connmgr/testing.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "dep2p/connmgr/config.hpp"
#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/metrics.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;

// Peer `n` (1 to 255) as a 2-byte id.
NodeId peer(int n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex = "12";
  hex += kHex[(n >> 4) & 0xf];
  hex += kHex[n & 0xf];
  return NodeId::from_hex(hex);
}

// Watermarks only: no keepalive, no idle or path timeouts, a background check too rare to
// run by itself.
Config quiet_config(std::size_t low_water, std::size_t high_water) {
  Config config;
  config.low_water = low_water;
  config.high_water = high_water;
  config.grace_period = 0ms;
  config.silence_period = 1h;
  config.keepalive_interval = 0ms;
  config.path_idle_timeout = 0ms;
  return config;
}

TEST(TestingKit, ATrimClosesReportingConnectionsAndTheirClosuresComeBack) {
  testing::VirtualTime time;
  ConnectionManager manager(time.io(), quiet_config(2, 10), {.time_source = time.source()});
  std::vector<std::shared_ptr<testing::FakeConnection>> connections;
  for (int n = 1; n <= 5; ++n) {
    connections.push_back(testing::reporting_connection(manager, peer(n), Direction::inbound));
    ASSERT_FALSE(manager.add_connection(connections.back()));
  }
  ASSERT_EQ(manager.connection_count(), 5u);

  EXPECT_EQ(manager.trim(), 3u);

  EXPECT_EQ(manager.connection_count(), 2u);
  std::size_t closed = 0;
  for (const auto& c : connections) {
    if (!c->closed()) continue;
    ++closed;
    EXPECT_EQ(c->close_count(), 1);
    EXPECT_EQ(c->last_reason(), CloseReason::trimmed);
    EXPECT_FALSE(c->last_detail().empty());
  }
  EXPECT_EQ(closed, 3u);
  // Each close() reported the closure back before it returned.
  const Stats stats = manager.stats();
  EXPECT_EQ(stats.closure_reports, 3u);
  EXPECT_EQ(stats.duplicate_reports, 0u);
}

TEST(TestingKit, AConnectionThatDoesNotReportIsClosedOnceAndLeftToTheTest) {
  testing::VirtualTime time;
  ConnectionManager manager(time.io(), quiet_config(2, 10), {.time_source = time.source()});
  auto silent = std::make_shared<testing::FakeConnection>(peer(1), Direction::outbound);
  ASSERT_FALSE(manager.add_connection(silent));

  ASSERT_FALSE(manager.close_connection(*silent, CloseReason::host, "test"));

  EXPECT_EQ(silent->close_count(), 1);
  EXPECT_EQ(silent->last_detail(), "test");
  EXPECT_EQ(manager.connection_count(), 0u);
  EXPECT_EQ(manager.stats().closure_reports, 0u) << "no report until the test makes one";
}

TEST(TestingKit, AdvancingVirtualTimeFiresTheKeepalivePing) {
  testing::VirtualTime time;
  Config config = quiet_config(0, 0);
  config.keepalive_interval = 5s;
  config.keepalive_timeout = 5s;
  ConnectionManager manager(time.io(), config, {.time_source = time.source()});
  auto c = testing::reporting_connection(manager, peer(1), Direction::outbound);
  ASSERT_FALSE(manager.add_connection(c));
  const TimePoint start = time.now();

  time.advance(4s);
  EXPECT_EQ(c->pings.load(), 0);
  time.advance(1s);
  EXPECT_EQ(c->pings.load(), 1);
  EXPECT_EQ(time.now() - start, Duration(5s));
  EXPECT_FALSE(c->closed()) << "FakeConnection answers a ping at once by default";
}

TEST(TestingKit, PingsLeftUnansweredByOnPingCloseTheConnectionThroughItsReport) {
  testing::VirtualTime time;
  Config config = quiet_config(0, 0);
  config.keepalive_interval = 5s;
  config.keepalive_timeout = 5s;
  config.keepalive_max_missed = 2;
  ConnectionManager manager(time.io(), config, {.time_source = time.source()});
  auto c = testing::reporting_connection(manager, peer(1), Direction::outbound);
  std::vector<Connection::PingHandler> unanswered;
  c->on_ping = [&unanswered](Connection::PingHandler done) {
    unanswered.push_back(std::move(done));
  };
  ASSERT_FALSE(manager.add_connection(c));

  time.advance(15s);  // two intervals and the timeout

  EXPECT_EQ(c->pings.load(), 2);
  ASSERT_TRUE(c->closed());
  EXPECT_EQ(c->last_reason(), CloseReason::keepalive_timeout);
  EXPECT_EQ(manager.connection_count(), 0u);
  EXPECT_EQ(manager.stats().closure_reports, 1u);
}

TEST(TestingKit, InitialStreamsAreTheStreamsTheManagerCountsAtAddition) {
  testing::VirtualTime time;
  ConnectionManager manager(time.io(), quiet_config(2, 10), {.time_source = time.source()});
  auto c = std::make_shared<testing::FakeConnection>(peer(1), Direction::inbound);
  c->initial_streams = 3;
  ASSERT_FALSE(manager.add_connection(c));
  EXPECT_EQ(manager.stats().streams, 3u);
}

}  // namespace
}  // namespace dep2p::connmgr
