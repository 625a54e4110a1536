// The swarm demo's scenarios as integration tests: real p2p_node instances on loopback
// (127.0.0.0/8, and ::1 for the IPv6 run), real TCP, real time. Each test starts its own
// swarm, runs its scenario and checks the scenario's own verdict; waits are conditions
// with deadlines, never sleeps.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "swarm.hpp"

namespace {

// Smaller than the demo's 40 so each test stays within a few seconds under sanitizers;
// every scenario still has the nodes it needs.
swarm::Options small_swarm() {
  swarm::Options options;
  options.nodes = 24;
  return options;
}

void expect_pass(const swarm::Result& result) {
  EXPECT_TRUE(result.pass) << result.scenario << "\n  expected: " << result.expectation
                           << "\n  observed: " << result.observed;
  EXPECT_LT(result.seconds, 30.0) << result.scenario;
}

TEST(Swarm, GrowthAndTrimKeepEveryNodeAtOrUnderHighWater) {
  swarm::Swarm s(small_swarm());
  expect_pass(s.growth_and_trim());
}

TEST(Swarm, ProtectedPeersSurviveTheHubsTrims) {
  swarm::Swarm s(small_swarm());
  expect_pass(s.protected_peers());
}

TEST(Swarm, AttackerSubnetIsRefusedBySubnetCapAndRateLimit) {
  swarm::Swarm s(small_swarm());
  expect_pass(s.subnet_flood());
}

TEST(Swarm, FrozenPeerIsClosedByKeepaliveAndToldWhy) {
  swarm::Swarm s(small_swarm());
  expect_pass(s.frozen_peer());
}

TEST(Swarm, RealmAtHardMaxRefusesTheClaim) {
  swarm::Swarm s(small_swarm());
  expect_pass(s.realm_hard_max());
}

TEST(Swarm, AFullNodeMakesRoomForARealmBelowItsReserveAndRefusesAFullRealmAtItsClaim) {
  swarm::Swarm s(small_swarm());
  expect_pass(s.realm_reserve());
}

TEST(Swarm, RelayOnlyPeerIsUpgradedToDirect) {
  swarm::Swarm s(small_swarm());
  expect_pass(s.relay_upgrade());
}

TEST(Swarm, AProtectedPeerThatRestartsIsReconnectedAndAnUnprotectedOneIsNot) {
  swarm::Swarm s(small_swarm());
  expect_pass(s.reconnect_protected());
}

// The demo's run: every scenario in order on one swarm of the demo's default size. Its
// chart marks the growth's trims and draws the flood's refusals.
TEST(Swarm, AllScenariosInDemoOrder) {
  swarm::Swarm s(swarm::Options{});
  for (const auto& result : s.run_all()) expect_pass(result);
  const std::string svg = s.svg();
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("<g class=\"trim\">"), std::string::npos);
  EXPECT_NE(svg.find("<rect class=\"refusal\""), std::string::npos);
}

// `./dev.sh demo --ipv6`: every scenario over ::1, where the flood meets the victim's /56
// cap and /64 rate instead of the /24 ones (swarm.hpp). Skipped where the host has no ::1.
TEST(Swarm, AllScenariosInDemoOrderOverIpv6Loopback) {
  {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor probe(io);
    boost::system::error_code ec;
    probe.open(boost::asio::ip::tcp::v6(), ec);
    if (!ec) probe.bind({boost::asio::ip::address_v6::loopback(), 0}, ec);
    if (ec) GTEST_SKIP() << "no IPv6 loopback here: " << ec.message();
  }
  swarm::Options options = small_swarm();
  options.ipv6 = true;
  swarm::Swarm s(options);
  const auto results = s.run_all();
  ASSERT_EQ(results.size(), 8U);
  for (const auto& result : results) expect_pass(result);
  EXPECT_EQ(results[2].scenario, "subnet flood");
  EXPECT_NE(results[2].expectation.find("one /56"), std::string::npos) << results[2].expectation;
}

}  // namespace
