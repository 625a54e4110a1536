// A trim under concurrent calls (docs/architecture.md, "Trims and concurrent calls"): the
// ranking runs with the lanes open, and the commit detaches its victims in batches and
// closes each batch with the lock released, so other calls get in. A peer that changes
// after the ranking began (tagged, untagged, bumped, protected, or given a connection) is
// left by that trim; on a quiescent pool the victims are exactly those of a single-batch
// commit.
//
// The calls "during the trim" are made deterministically: from the probe that runs between
// the ranking and the commit, or from the first victim's close(), which runs between the
// first batch and the rest (the tests set batches of 1,024 peers, committed in slot order):
// the victims past the first batch are then still in the pool.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <set>
#include <vector>

#include "dep2p/connmgr/connmgr.hpp"
#include "manager/core_probe.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using testing::EventRecorder;
using testing::FakeConnection;
using testing::HookTrimmer;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

using Connections = std::vector<std::shared_ptr<FakeConnection>>;
using detail::CoreProbe;
using TrimPoint = CoreProbe::TrimPoint;

constexpr std::size_t kPeers = 3000;
constexpr std::size_t kLowWater = 1000;  // 2,000 victims: peers 1..2000, two batches and more

// Peers 1..kPeers, one connection each, peer n tagged n: the victims are the lowest
// values, and they sit in slot order.
Connections fill(ManagerHarness& h) {
  CoreProbe::on_trim(h.manager, nullptr, 1024);
  Connections all = h.add_peers(1, kPeers);
  for (std::uint64_t n = 1; n <= kPeers; ++n) {
    EXPECT_FALSE(h.manager.tag_peer(peer_id(n), "v", static_cast<int>(n)));
  }
  return all;
}

std::set<std::uint64_t> open_peers(ManagerHarness& h) {
  std::set<std::uint64_t> open;
  for (std::uint64_t n = 1; n <= kPeers; ++n) {
    if (!h.manager.connections(peer_id(n)).empty()) open.insert(n);
  }
  return open;
}

std::set<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {
  std::set<std::uint64_t> out;
  for (std::uint64_t n = first; n <= last; ++n) out.insert(n);
  return out;
}

TEST(TrimBatches, AQuiescentPoolLosesExactlyTheLowestValuedPeersAcrossBatches) {
  ManagerHarness h(trim_config(kLowWater, kPeers + 1));
  EventRecorder events(h.manager);
  Connections all = fill(h);

  EXPECT_EQ(h.manager.trim(), kPeers - kLowWater);
  EXPECT_EQ(open_peers(h), range(kPeers - kLowWater + 1, kPeers));
  EXPECT_EQ(h.manager.connection_count(), kLowWater);
  // Every victim's DisconnectedEvent exactly once, then one TrimmedEvent for the whole trim.
  EXPECT_EQ(events.of<DisconnectedEvent>().size(), kPeers - kLowWater);
  const auto trimmed = events.of<TrimmedEvent>();
  ASSERT_EQ(trimmed.size(), 1u);
  EXPECT_EQ(trimmed[0].connections_closed, kPeers - kLowWater);
  EXPECT_EQ(trimmed[0].connections_after, kLowWater);
}

TEST(TrimBatches, APeerThatChangesWhileTheTrimCommitsIsLeftByIt) {
  ManagerHarness h(trim_config(kLowWater, kPeers + 1));
  Connections all = fill(h);
  std::error_code ec;
  DecayingTag score = h.manager.register_decaying_tag("score", std::chrono::seconds(1),
                                                      Decay::none(), Bump::sum(), ec);
  ASSERT_FALSE(ec);
  // Peers 1501..1505 are victims past the first batch; 1506 is one too, and unchanged.
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1504), "extra", 1));
  Connections added;
  bool first = true;
  all[0]->on_close = [&](FakeConnection& self, CloseReason reason) {
    h.manager.remove_connection(self, reason);
    if (!first) return;
    first = false;
    EXPECT_FALSE(h.manager.tag_peer(peer_id(1501), "up", 100'000));  // tagged up
    EXPECT_FALSE(h.manager.protect(peer_id(1502), "keep"));          // protected
    added.push_back(h.add(1503));                                    // a second connection
    EXPECT_FALSE(h.manager.untag_peer(peer_id(1504), "extra"));      // untagged
    EXPECT_FALSE(score.bump(peer_id(1505), 1));                      // bumped
  };

  const std::size_t closed = h.manager.trim();
  EXPECT_EQ(closed, kPeers - kLowWater - 5);
  std::set<std::uint64_t> expected = range(kPeers - kLowWater + 1, kPeers);
  expected.insert({1501, 1502, 1503, 1504, 1505});
  EXPECT_EQ(open_peers(h), expected);
  EXPECT_EQ(h.manager.connections(peer_id(1503)).size(), 2u);
  EXPECT_TRUE(all[1505]->closed());  // peer 1506: a victim that did not change
  EXPECT_EQ(h.manager.connection_count(), kLowWater + 6);
  EXPECT_EQ(h.manager.stats().connections, kLowWater + 6);

  // The marks end with the trim: the next one ranks by value again. 1,005 candidate
  // connections (1502 is protected) for low water 1,000: 1503 (two connections), 1504,
  // 1505 (1,505 + 1) and 2001 go.
  EXPECT_EQ(h.manager.trim(), 5u);
  for (const std::uint64_t n : {1503u, 1504u, 1505u, 2001u}) {
    EXPECT_TRUE(h.manager.connections(peer_id(n)).empty()) << n;
  }
  EXPECT_EQ(h.manager.connections(peer_id(1501)).size(), 1u);  // now tagged 100,000
  EXPECT_EQ(h.manager.connections(peer_id(1502)).size(), 1u);  // protected
}

TEST(TrimBatches, APeerReplacedInItsSlotWhileTheTrimCommitsIsNotClosed) {
  Config config = trim_config(kLowWater, kPeers + 1);
  config.tag_retention = std::chrono::milliseconds(0);  // a peer's last connection frees its slot
  ManagerHarness h(config);
  Connections all = fill(h);
  Connections added;
  bool first = true;
  all[0]->on_close = [&](FakeConnection& self, CloseReason reason) {
    h.manager.remove_connection(self, reason);
    if (!first) return;
    first = false;
    // Peer 1600 (a later victim) leaves and frees its slot, which the new peer takes.
    EXPECT_FALSE(h.manager.remove_connection(*all[1599]));
    added.push_back(h.add(9000));
  };

  // Peers 1..2000 less 1600 close; the newcomer in slot 1600 does not.
  EXPECT_EQ(h.manager.trim(), kPeers - kLowWater - 1);
  EXPECT_EQ(h.manager.connections(peer_id(9000)).size(), 1u);
  EXPECT_FALSE(added[0]->closed());
}

TEST(TrimBatches, APeerTaggedWhileTheHostsTrimmerRanksIsLeftByThatTrim) {
  ManagerHarness* harness = nullptr;
  auto trimmer = std::make_shared<HookTrimmer>([&] {
    EXPECT_FALSE(harness->manager.tag_peer(peer_id(1), "late", 5));
    EXPECT_FALSE(harness->manager.protect(peer_id(2), "late"));
  });
  ManagerHarness h(trim_config(10, 100), trimmer);
  harness = &h;
  Connections all = h.add_peers(1, 20);
  for (std::uint64_t n = 1; n <= 20; ++n) {
    ASSERT_FALSE(h.manager.tag_peer(peer_id(n), "v", static_cast<int>(n)));
  }

  // The snapshot ranked peers 1..10 (tagged 1..10) as the victims; 1 and 2 changed
  // while the trimmer ranked, so 8 close.
  EXPECT_EQ(h.manager.trim(), 8u);
  EXPECT_FALSE(all[0]->closed());
  EXPECT_FALSE(all[1]->closed());
  for (std::size_t i = 2; i < 10; ++i) EXPECT_TRUE(all[i]->closed()) << i;
  for (std::size_t i = 10; i < 20; ++i) EXPECT_FALSE(all[i]->closed()) << i;
}

TEST(TrimBatches, AForcedTrimLeavesAProtectedPeerThatChangesDuringItsCommit) {
  Config config = trim_config(kLowWater, kPeers + 1);
  ManagerHarness h(config);
  Connections all = fill(h);
  // Every peer is protected: the whole trim is the protected phase.
  for (std::uint64_t n = 1; n <= kPeers; ++n) {
    ASSERT_FALSE(h.manager.protect(peer_id(n), "all"));
  }
  bool first = true;
  all[0]->on_close = [&](FakeConnection& self, CloseReason reason) {
    h.manager.remove_connection(self, reason);
    if (!first) return;
    first = false;
    EXPECT_FALSE(h.manager.tag_peer(peer_id(1700), "up", 1));
  };

  EXPECT_EQ(h.manager.force_trim(), kPeers - kLowWater - 1);
  std::set<std::uint64_t> expected = range(kPeers - kLowWater + 1, kPeers);
  expected.insert(1700);
  EXPECT_EQ(open_peers(h), expected);
}

}  // namespace
}  // namespace dep2p::connmgr
