// The swarm demo's scenarios as integration tests: real p2p_node instances on loopback
// (127.0.0.0/8), real TCP, real time. Each test starts its own swarm, runs its scenario
// and checks the scenario's own verdict; waits are conditions with deadlines, never sleeps.
#include <gtest/gtest.h>

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

// The demo's run: every scenario in order on one swarm of the demo's default size.
TEST(Swarm, AllScenariosInDemoOrder) {
  swarm::Swarm s(swarm::Options{});
  for (const auto& result : s.run_all()) expect_pass(result);
  EXPECT_NE(s.svg().find("</svg>"), std::string::npos);
}

}  // namespace
