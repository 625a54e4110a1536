// The small surface around the pool (issue 21, item 7), in virtual time: plan_trim()'s dry
// run against what trim() then does, under the default order and a host trimmer;
// temporary_peer_count() beside peer_count(); protections(peer); a peer value beyond the
// range of one tag.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/explain.hpp"
#include "dep2p/connmgr/trimmer.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using testing::EventRecorder;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

using Connections = std::vector<std::shared_ptr<FakeConnection>>;

std::vector<NodeId> planned_peers(const TrimPlan& plan) {
  std::vector<NodeId> peers;
  for (const PlannedVictim& v : plan.victims) peers.push_back(v.peer);
  return peers;
}

std::set<NodeId> closed_peers(const Connections& all) {
  std::set<NodeId> peers;
  for (const auto& c : all)
    if (c->closed()) peers.insert(c->remote_peer());
  return peers;
}

TEST(PlanTrim, ListsTheVictimsInOrderWithWhyAndClosesNothing) {
  ManagerHarness h(trim_config(3, 100, 0ms));
  EventRecorder events(h.manager);
  Connections all = h.add_peers(1, 6);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 5));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(2), "dht", 1));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(3), "dht", 3));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(4), "dht", 9));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(5), "relay", 7));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(6), "dht", 2));
  const std::size_t events_before = events.size();

  const TrimPlan plan = h.manager.plan_trim();
  ASSERT_EQ(plan.victims.size(), 3u);
  EXPECT_EQ(planned_peers(plan), (std::vector<NodeId>{peer_id(2), peer_id(6), peer_id(3)}));
  EXPECT_EQ(plan.connections, 6u);
  EXPECT_EQ(plan.low_water, 3u);
  EXPECT_EQ(plan.candidates, 6u);
  EXPECT_EQ(plan.target, 3u);
  EXPECT_EQ(plan.at, h.time->now());
  const PlannedVictim& first = plan.victims[0];
  EXPECT_EQ(first.rank, 1u);
  EXPECT_EQ(first.connections, 1u);
  EXPECT_EQ(first.value, 1);
  EXPECT_EQ(first.why, "rank 1 of 6: value 1 (dht 1), 0 streams");
  EXPECT_EQ(plan.summary, "trim would close 3 connections of 3 peers: 6 connections, low water 3");

  // Nothing happened.
  EXPECT_EQ(h.manager.connection_count(), 6u);
  EXPECT_TRUE(closed_peers(all).empty());
  EXPECT_EQ(h.manager.stats().trims, 0u);
  EXPECT_EQ(events.size(), events_before);

  // The trim then closes exactly those.
  ASSERT_EQ(h.manager.trim(), 3u);
  const std::vector<NodeId> planned = planned_peers(plan);
  EXPECT_EQ(closed_peers(all), std::set<NodeId>(planned.begin(), planned.end()));
}

TEST(PlanTrim, KeepsProtectedAndInGracePeersOutAndSaysWhenNothingWouldGo) {
  // Low water 1 counts candidates' connections only (as a trim does): one of the two goes.
  ManagerHarness h(trim_config(1, 100, 10s));
  Connections old = h.add_peers(1, 3);
  h.time->advance(10s);
  Connections young = h.add_peers(10, 3);  // in grace
  ASSERT_FALSE(h.manager.protect(peer_id(1), "boot"));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(3), "dht", 1));

  const TrimPlan plan = h.manager.plan_trim();
  EXPECT_EQ(plan.candidates, 2u);  // peers 2 and 3
  EXPECT_EQ(plan.target, 1u);
  EXPECT_EQ(planned_peers(plan), (std::vector<NodeId>{peer_id(2)}));

  ManagerHarness small(trim_config(5, 100, 0ms));
  small.add_peers(1, 5);
  const TrimPlan none = small.manager.plan_trim();
  EXPECT_TRUE(none.victims.empty());
  EXPECT_EQ(none.summary, "trim would close nothing: 5 connections, at or below low water 5");
}

// A host trimmer that takes the highest peer numbers first.
class HighestIdFirst final : public Trimmer {
 public:
  void rank(const TrimSnapshot& s, std::size_t, std::vector<std::uint32_t>& order) override {
    ++calls;
    for (std::uint32_t i = 0; i < s.peers.size(); ++i) order.push_back(i);
    std::sort(order.begin(), order.end(),
              [&](std::uint32_t a, std::uint32_t b) { return s.peer_ids[b] < s.peer_ids[a]; });
  }
  int calls = 0;
};

TEST(PlanTrim, FollowsTheHostsTrimmer) {
  auto trimmer = std::make_shared<HighestIdFirst>();
  ManagerHarness h(trim_config(4, 100, 0ms), Dependencies{.trimmer = trimmer});
  Connections all = h.add_peers(1, 7);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(7), "dht", 100));  // the trimmer ignores values

  const TrimPlan plan = h.manager.plan_trim();
  EXPECT_EQ(trimmer->calls, 1);
  EXPECT_EQ(planned_peers(plan), (std::vector<NodeId>{peer_id(7), peer_id(6), peer_id(5)}));
  EXPECT_EQ(h.manager.connection_count(), 7u);
  ASSERT_EQ(h.manager.trim(), 3u);
  EXPECT_EQ(closed_peers(all), (std::set<NodeId>{peer_id(5), peer_id(6), peer_id(7)}));
}

TEST(PeerCounts, TemporaryEntriesAreCountedApartFromConnectedPeers) {
  ManagerHarness h(trim_config(10, 100));
  h.add_peers(1, 3);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(50), "early", 1));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(51), "early", 1));
  EXPECT_EQ(h.manager.peer_count(), 3u);
  EXPECT_EQ(h.manager.temporary_peer_count(), 2u);
  h.add(50);  // the entry becomes a connected peer
  EXPECT_EQ(h.manager.peer_count(), 4u);
  EXPECT_EQ(h.manager.temporary_peer_count(), 1u);
}

TEST(Protections, AreListedWithTheirEndsInTheOrderFirstSet) {
  ManagerHarness h;
  EXPECT_TRUE(h.manager.protections(peer_id(1)).empty());
  ASSERT_FALSE(h.manager.protect(peer_id(1), "relay"));
  ASSERT_FALSE(h.manager.protect_for(peer_id(1), "boot", 30s));
  ASSERT_FALSE(h.manager.protect(peer_id(2), "other"));
  const std::vector<Protection> list = h.manager.protections(peer_id(1));
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].tag, "relay");
  EXPECT_EQ(list[0].until, std::nullopt);
  EXPECT_EQ(list[1].tag, "boot");
  EXPECT_EQ(list[1].until, h.time->now() + 30s);
  h.time->advance(30s);
  ASSERT_EQ(h.manager.protections(peer_id(1)).size(), 1u);
  EXPECT_FALSE(h.manager.unprotect(peer_id(1), "relay"));
  EXPECT_TRUE(h.manager.protections(peer_id(1)).empty());
}

// Tags are 32-bit (TagValue); a peer's value, their sum, is 64-bit (PeerValue) and exact.
TEST(TagValues, APeersValueHoldsTheSumOfTagsBeyondOneTagsRange) {
  ManagerHarness h;
  h.add(1);
  constexpr TagValue kMax = std::numeric_limits<TagValue>::max();
  for (int i = 0; i < 4; ++i) {
    ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "t" + std::to_string(i), kMax));
  }
  const PeerValue expected = PeerValue{4} * kMax;
  EXPECT_EQ(h.manager.tag_info(peer_id(1))->value, expected);
  EXPECT_EQ(h.manager.explain(peer_id(1))->value, expected);
}

}  // namespace
}  // namespace dep2p::connmgr
