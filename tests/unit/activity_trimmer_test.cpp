// Unit tests for the ActivityTrimmer (trimmer.hpp, docs/design.md, "Trimming") on hand-built
// snapshots: each criterion deciding alone, their precedence, per-peer aggregation over several
// connections and direction balance; then two through a ConnectionManager. As for
// ScoreTrimmer, the contract is which peers a whole-peer walk of the order closes, so most
// cases compare sets of victims. In the single-criterion cases the expected victim sits
// where the index tie-break would not pick it.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/trimmer.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using std::chrono::seconds;
using PeerSet = std::set<std::uint32_t>;

// One connection of a peer; by default established, inbound, active at the snapshot's
// time and moving no bytes.
struct Conn {
  Direction direction = Direction::inbound;
  bool established = true;
  seconds idle{0};  // last activity = snapshot time - idle
  double download = 0;
  double upload = 0;

  Conn& outbound() {
    direction = Direction::outbound;
    return *this;
  }
  Conn& handshaking() {
    established = false;
    return *this;
  }
  Conn& idle_for(seconds s) {
    idle = s;
    return *this;
  }
  Conn& downloading(double rate) {
    download = rate;
    return *this;
  }
  Conn& uploading(double rate) {
    upload = rate;
    return *this;
  }
};

// Builds a snapshot the way the manager does: per-peer aggregates derived from the
// connections, connections stored contiguously per peer, no peer ids (the trimmer does
// not ask for them).
class SnapshotBuilder {
 public:
  SnapshotBuilder() { snapshot_.now = TimePoint{} + seconds(10'000); }

  // Returns the peer's index in snapshot.peers.
  std::uint32_t add(const std::vector<Conn>& conns, TimePoint first_seen = TimePoint{}) {
    PeerSnapshot peer;
    peer.first_seen = first_seen;
    peer.first_connection = static_cast<std::uint32_t>(snapshot_.connections.size());
    peer.connection_count = static_cast<std::uint32_t>(conns.size());
    for (const Conn& c : conns) {
      ConnectionSnapshot cs;
      cs.id = static_cast<ConnectionId>(++next_connection_);
      cs.direction = c.direction;
      cs.opened_at = first_seen;
      cs.established = c.established;
      cs.last_activity = snapshot_.now - c.idle;
      cs.download_rate = c.download;
      cs.upload_rate = c.upload;
      snapshot_.connections.push_back(cs);
      peer.has_inbound = peer.has_inbound || c.direction == Direction::inbound;
    }
    snapshot_.peers.push_back(peer);
    return static_cast<std::uint32_t>(snapshot_.peers.size() - 1);
  }
  std::uint32_t add(Conn conn, TimePoint first_seen = TimePoint{}) {
    return add(std::vector<Conn>{conn}, first_seen);
  }

  TimePoint now() const { return snapshot_.now; }
  const TrimSnapshot& snapshot() const { return snapshot_; }

 private:
  TrimSnapshot snapshot_;
  std::uint64_t next_connection_ = 0;
};

ActivityTrimmerOptions balanced() {
  ActivityTrimmerOptions options;
  options.balance_directions = true;
  return options;
}

std::vector<std::uint32_t> rank(const TrimSnapshot& snapshot, std::size_t target,
                                ActivityTrimmerOptions options = {}) {
  std::vector<std::uint32_t> order;
  make_activity_trimmer(options)->rank(snapshot, target, order);
  return order;
}

// The peers the manager would close: walk the order a whole peer at a time, skipping
// indices out of range or repeated, until `target` connections are closed.
PeerSet victims(const TrimSnapshot& snapshot, const std::vector<std::uint32_t>& order,
                std::size_t target) {
  PeerSet closed;
  std::size_t closed_connections = 0;
  for (std::uint32_t index : order) {
    if (closed_connections >= target) break;
    if (index >= snapshot.peers.size() || closed.contains(index)) continue;
    closed.insert(index);
    closed_connections += snapshot.peers[index].connection_count;
  }
  return closed;
}

// Every index in range and none repeated.
void expect_well_formed(const TrimSnapshot& snapshot, const std::vector<std::uint32_t>& order) {
  PeerSet seen;
  for (std::uint32_t index : order) {
    EXPECT_LT(index, snapshot.peers.size());
    EXPECT_TRUE(seen.insert(index).second) << "index " << index << " repeated";
  }
}

PeerSet trim(const TrimSnapshot& snapshot, std::size_t target,
             ActivityTrimmerOptions options = {}) {
  const auto order = rank(snapshot, target, options);
  expect_well_formed(snapshot, order);
  return victims(snapshot, order, target);
}

TEST(ActivityTrimmer, AsksForConnectionsButNotPeerIds) {
  const TrimInputs inputs = make_activity_trimmer()->inputs();
  EXPECT_TRUE(inputs.connections);
  EXPECT_FALSE(inputs.peer_ids);
}

// --- Each criterion alone ---------------------------------------------------------------

TEST(ActivityTrimmer, PeerWithNoEstablishedConnectionGoesFirst) {
  SnapshotBuilder b;
  b.add(Conn());
  b.add(Conn());
  const auto handshaking = b.add(Conn().handshaking());
  b.add(Conn());
  EXPECT_EQ(trim(b.snapshot(), 1), (PeerSet{handshaking}));
}

TEST(ActivityTrimmer, LongestInactivePeerGoesFirst) {
  SnapshotBuilder b;
  b.add(Conn().idle_for(seconds(10)));
  const auto idle_30 = b.add(Conn().idle_for(seconds(30)));
  b.add(Conn().idle_for(seconds(20)));
  const auto idle_60 = b.add(Conn().idle_for(seconds(60)));
  EXPECT_EQ(trim(b.snapshot(), 1), (PeerSet{idle_60}));
  EXPECT_EQ(trim(b.snapshot(), 2), (PeerSet{idle_60, idle_30}));
}

TEST(ActivityTrimmer, LowestDownloadRatePeerGoesFirst) {
  SnapshotBuilder b;
  b.add(Conn().downloading(500));
  const auto rate_100 = b.add(Conn().downloading(100));
  b.add(Conn().downloading(900));
  const auto rate_50 = b.add(Conn().downloading(50));
  EXPECT_EQ(trim(b.snapshot(), 1), (PeerSet{rate_50}));
  EXPECT_EQ(trim(b.snapshot(), 2), (PeerSet{rate_50, rate_100}));
}

TEST(ActivityTrimmer, LowestUploadRatePeerGoesFirst) {
  SnapshotBuilder b;
  b.add(Conn().uploading(500));
  const auto rate_100 = b.add(Conn().uploading(100));
  b.add(Conn().uploading(900));
  const auto rate_50 = b.add(Conn().uploading(50));
  EXPECT_EQ(trim(b.snapshot(), 1), (PeerSet{rate_50}));
  EXPECT_EQ(trim(b.snapshot(), 2), (PeerSet{rate_50, rate_100}));
}

TEST(ActivityTrimmer, OnFullTieTheNewerPeerGoesFirst) {
  SnapshotBuilder b;
  const TimePoint t0 = b.now() - seconds(500);
  b.add(Conn(), t0);
  const auto newest = b.add(Conn(), t0 + seconds(300));
  const auto middle = b.add(Conn(), t0 + seconds(100));
  EXPECT_EQ(trim(b.snapshot(), 1), (PeerSet{newest}));
  EXPECT_EQ(trim(b.snapshot(), 2), (PeerSet{newest, middle}));
}

TEST(ActivityTrimmer, OnFullTieIncludingFirstSeenTheLowerIndexGoesFirst) {
  SnapshotBuilder b;
  for (int i = 0; i < 5; ++i) b.add(Conn().idle_for(seconds(7)).downloading(3).uploading(4));
  EXPECT_EQ(trim(b.snapshot(), 2), (PeerSet{0, 1}));
}

// --- Precedence -------------------------------------------------------------------------

TEST(ActivityTrimmer, CriteriaCombineInTheDocumentedPrecedence) {
  // Each peer goes before the next on one criterion alone: on every later criterion the
  // next peer would go first. Added in reverse, so the index tie-break works against the
  // expected order too.
  SnapshotBuilder b;
  const TimePoint t0 = b.now() - seconds(1000);
  const auto older_first_seen =
      b.add(Conn().idle_for(seconds(100)).downloading(50).uploading(20), t0 + seconds(4));
  const auto newer_first_seen =
      b.add(Conn().idle_for(seconds(100)).downloading(50).uploading(20), t0 + seconds(5));
  const auto low_upload =
      b.add(Conn().idle_for(seconds(100)).downloading(50).uploading(10), t0 + seconds(3));
  const auto low_download =
      b.add(Conn().idle_for(seconds(100)).downloading(10).uploading(90), t0 + seconds(2));
  const auto long_idle =
      b.add(Conn().idle_for(seconds(900)).downloading(90).uploading(95), t0 + seconds(1));
  const auto handshaking = b.add(Conn().handshaking().downloading(99).uploading(99), t0);
  const std::vector<std::uint32_t> expected{handshaking, long_idle,        low_download,
                                            low_upload,  newer_first_seen, older_first_seen};
  for (std::size_t target = 1; target <= expected.size(); ++target) {
    const PeerSet want(expected.begin(), expected.begin() + static_cast<std::ptrdiff_t>(target));
    EXPECT_EQ(trim(b.snapshot(), target), want) << "target " << target;
  }
}

// --- Peers with several connections -----------------------------------------------------

TEST(ActivityTrimmer, DownloadRateIsSummedOverThePeersConnections) {
  // 60 + 60 outranks a single 100; taking the maximum would evict the pair first.
  SnapshotBuilder b;
  b.add({Conn().downloading(60), Conn().downloading(60)});
  const auto single = b.add(Conn().downloading(100));
  EXPECT_EQ(trim(b.snapshot(), 1), (PeerSet{single}));
}

TEST(ActivityTrimmer, UploadRateIsSummedOverThePeersConnections) {
  SnapshotBuilder b;
  b.add({Conn().uploading(60), Conn().uploading(60)});
  const auto single = b.add(Conn().uploading(100));
  EXPECT_EQ(trim(b.snapshot(), 1), (PeerSet{single}));
}

TEST(ActivityTrimmer, LastActivityIsTheMostRecentOfThePeersConnections) {
  SnapshotBuilder b;
  b.add({Conn().idle_for(seconds(100)), Conn().idle_for(seconds(5))});
  const auto single = b.add(Conn().idle_for(seconds(50)));
  EXPECT_EQ(trim(b.snapshot(), 1), (PeerSet{single}));
}

TEST(ActivityTrimmer, PeerWithAnyEstablishedConnectionCountsAsEstablished) {
  // The mixed peer ranks among the established ones (after the older `idle`), not with
  // the handshaking-only peer.
  SnapshotBuilder b;
  const auto handshaking = b.add(Conn().handshaking());
  b.add({Conn().handshaking(), Conn()});
  const auto idle = b.add(Conn().idle_for(seconds(60)));
  EXPECT_EQ(trim(b.snapshot(), 1), (PeerSet{handshaking}));
  EXPECT_EQ(trim(b.snapshot(), 2), (PeerSet{handshaking, idle}));
}

TEST(ActivityTrimmer, MultiConnectionPeersAreOrderedSoTheWalkStopsAtTheRightPeer) {
  // Most inactive first: idle_100 (1 connection), then idle_50 (3) covers the target of 2.
  // An order that put idle_50 first would stop after it and spare idle_100 wrongly.
  SnapshotBuilder b;
  b.add(Conn().idle_for(seconds(10)));
  const auto idle_50 = b.add(
      {Conn().idle_for(seconds(50)), Conn().idle_for(seconds(50)), Conn().idle_for(seconds(50))});
  const auto idle_100 = b.add(Conn().idle_for(seconds(100)));
  b.add({Conn().idle_for(seconds(5)), Conn().idle_for(seconds(5))});
  const auto order = rank(b.snapshot(), 2);
  expect_well_formed(b.snapshot(), order);
  ASSERT_GE(order.size(), std::size_t{2});
  EXPECT_EQ(order[0], idle_100);
  EXPECT_EQ(order[1], idle_50);
  EXPECT_EQ(victims(b.snapshot(), order, 2), (PeerSet{idle_100, idle_50}));
}

TEST(ActivityTrimmer, MultiConnectionWalkStopsOnceTheTargetIsCovered) {
  SnapshotBuilder b;
  const auto quad = b.add(std::vector<Conn>(4, Conn().idle_for(seconds(100))));
  const auto single = b.add(Conn().idle_for(seconds(50)));
  b.add(Conn().idle_for(seconds(20)));
  b.add(std::vector<Conn>(2, Conn().idle_for(seconds(10))));
  EXPECT_EQ(trim(b.snapshot(), 4), (PeerSet{quad}));
  EXPECT_EQ(trim(b.snapshot(), 5), (PeerSet{quad, single}));
}

// --- Direction balance ------------------------------------------------------------------

TEST(ActivityTrimmer, WithoutBalanceDirectionDoesNotDecide) {
  SnapshotBuilder b;
  b.add(Conn());
  b.add(Conn().idle_for(seconds(20)));
  b.add(Conn().idle_for(seconds(5)));
  const auto lone_outbound = b.add(Conn().outbound().idle_for(seconds(60)));
  EXPECT_EQ(trim(b.snapshot(), 1), (PeerSet{lone_outbound}));
}

TEST(ActivityTrimmer, WithBalancePeersAllInTheInboundSurplusGoFirst) {
  SnapshotBuilder b;
  const auto in_0 = b.add(Conn());
  const auto in_20 = b.add(Conn().idle_for(seconds(20)));
  const auto in_5 = b.add(Conn().idle_for(seconds(5)));
  const auto lone_outbound = b.add(Conn().outbound().idle_for(seconds(60)));
  EXPECT_EQ(trim(b.snapshot(), 1, balanced()), (PeerSet{in_20}));
  EXPECT_EQ(trim(b.snapshot(), 3, balanced()), (PeerSet{in_0, in_20, in_5}));
  EXPECT_EQ(trim(b.snapshot(), 4, balanced()), (PeerSet{in_0, in_20, in_5, lone_outbound}));
}

TEST(ActivityTrimmer, WithBalancePeersAllInTheOutboundSurplusGoFirst) {
  SnapshotBuilder b;
  b.add(Conn().outbound());
  const auto out_20 = b.add(Conn().outbound().idle_for(seconds(20)));
  b.add(Conn().outbound().idle_for(seconds(5)));
  b.add(Conn().idle_for(seconds(60)));
  EXPECT_EQ(trim(b.snapshot(), 1, balanced()), (PeerSet{out_20}));
}

TEST(ActivityTrimmer, WithBalanceAndEvenDirectionsActivityDecides) {
  // Taking either direction as the surplus would close both peers of that direction.
  SnapshotBuilder b;
  const auto in_60 = b.add(Conn().idle_for(seconds(60)));
  b.add(Conn().idle_for(seconds(5)));
  const auto out_10 = b.add(Conn().outbound().idle_for(seconds(10)));
  b.add(Conn().outbound());
  EXPECT_EQ(trim(b.snapshot(), 2, balanced()), (PeerSet{in_60, out_10}));
}

TEST(ActivityTrimmer, WithBalanceAPeerWithBothDirectionsIsNotInSurplus) {
  // Inbound 3, outbound 2: the mixed peer is the least active but is not all-inbound.
  SnapshotBuilder b;
  const auto in_a = b.add(Conn());
  b.add({Conn().idle_for(seconds(100)), Conn().outbound().idle_for(seconds(100))});
  const auto in_b = b.add(Conn());
  b.add(Conn().outbound());
  EXPECT_EQ(trim(b.snapshot(), 1, balanced()), (PeerSet{in_a}));
  EXPECT_EQ(trim(b.snapshot(), 2, balanced()), (PeerSet{in_a, in_b}));
}

TEST(ActivityTrimmer, WithBalanceTheSurplusIsCountedInConnectionsNotPeers) {
  // One peer with 3 inbound connections against two outbound peers: inbound is in surplus.
  SnapshotBuilder b;
  b.add(Conn().outbound().idle_for(seconds(60)));
  const auto inbound_trio = b.add(std::vector<Conn>(3, Conn()));
  b.add(Conn().outbound().idle_for(seconds(30)));
  EXPECT_EQ(trim(b.snapshot(), 1, balanced()), (PeerSet{inbound_trio}));
}

TEST(ActivityTrimmer, WithBalanceTheSurplusDirectionOutranksEveryOtherCriterion) {
  // The outbound peer is worst on every activity criterion, yet the busy inbound peers of
  // the surplus go first.
  SnapshotBuilder b;
  const auto handshaking_outbound = b.add(Conn().outbound().handshaking().idle_for(seconds(60)));
  const auto in_900 = b.add(Conn().downloading(900).uploading(900));
  const auto in_1000 = b.add(Conn().downloading(1000).uploading(1000));
  const auto in_950 = b.add(Conn().downloading(950).uploading(950));
  EXPECT_EQ(trim(b.snapshot(), 1), (PeerSet{handshaking_outbound}));
  EXPECT_EQ(trim(b.snapshot(), 1, balanced()), (PeerSet{in_900}));
  EXPECT_EQ(trim(b.snapshot(), 3, balanced()), (PeerSet{in_900, in_1000, in_950}));
}

// --- Odd inputs and edges ---------------------------------------------------------------

TEST(ActivityTrimmer, NanAndNegativeRatesCountAsNoTraffic) {
  SnapshotBuilder b;
  b.add(Conn().downloading(1));
  const auto nan_rate = b.add(Conn().downloading(std::numeric_limits<double>::quiet_NaN()));
  const auto negative = b.add(Conn().downloading(-5));
  b.add(Conn().downloading(2));
  // A NaN on one connection does not hide the rate of the peer's other connection.
  const auto partly_nan =
      b.add({Conn().downloading(std::numeric_limits<double>::quiet_NaN()), Conn().downloading(3)});
  EXPECT_EQ(trim(b.snapshot(), 2), (PeerSet{nan_rate, negative}));
  EXPECT_FALSE(trim(b.snapshot(), 4).contains(partly_nan));
}

TEST(ActivityTrimmer, EmptySnapshotYieldsAnEmptyOrder) {
  const TrimSnapshot empty;
  EXPECT_TRUE(rank(empty, 0).empty());
  EXPECT_TRUE(rank(empty, 10).empty());
  EXPECT_TRUE(rank(empty, 10, balanced()).empty());
}

TEST(ActivityTrimmer, TargetZeroClosesNothing) {
  SnapshotBuilder b;
  b.add(Conn().handshaking());
  b.add(Conn().idle_for(seconds(60)));
  EXPECT_TRUE(rank(b.snapshot(), 0).empty());
  EXPECT_TRUE(rank(b.snapshot(), 0, balanced()).empty());
}

TEST(ActivityTrimmer, TargetCoveringAllConnectionsReturnsEveryPeer) {
  SnapshotBuilder b;
  b.add({Conn(), Conn().outbound().idle_for(seconds(3))});
  b.add(Conn().handshaking());
  b.add(Conn().outbound().downloading(9));
  b.add({Conn().outbound(), Conn().outbound(), Conn().uploading(4)});
  const PeerSet all{0, 1, 2, 3};
  const std::size_t total = b.snapshot().connections.size();
  for (const bool balance : {false, true}) {
    ActivityTrimmerOptions options;
    options.balance_directions = balance;
    for (const std::size_t target : {total, total + 1, total * 10}) {
      const auto order = rank(b.snapshot(), target, options);
      expect_well_formed(b.snapshot(), order);
      EXPECT_EQ(PeerSet(order.begin(), order.end()), all) << "target " << target;
      EXPECT_EQ(victims(b.snapshot(), order, target), all) << "target " << target;
    }
  }
}

// --- Against a reference ----------------------------------------------------------------

// The documented order written the slow, obvious way: aggregate, sort everything, walk.
PeerSet reference_victims(const TrimSnapshot& snapshot, std::size_t target, bool balance) {
  std::size_t inbound = 0;
  for (const auto& c : snapshot.connections) {
    if (c.direction == Direction::inbound) ++inbound;
  }
  const std::size_t outbound = snapshot.connections.size() - inbound;
  using Key = std::tuple<bool, bool, TimePoint, double, double, std::int64_t, std::uint32_t>;
  std::vector<Key> keys;
  for (std::uint32_t i = 0; i < snapshot.peers.size(); ++i) {
    const auto conns = snapshot.connections_of(snapshot.peers[i]);
    bool established = false;
    bool all_in = true;
    bool all_out = true;
    TimePoint last = TimePoint::min();
    double down = 0;
    double up = 0;
    for (const auto& c : conns) {
      established = established || c.established;
      all_in = all_in && c.direction == Direction::inbound;
      all_out = all_out && c.direction == Direction::outbound;
      last = std::max(last, c.last_activity);
      down += c.download_rate;
      up += c.upload_rate;
    }
    const bool surplus =
        balance && ((inbound > outbound && all_in) || (outbound > inbound && all_out));
    keys.emplace_back(!surplus, established, last, down, up,
                      -snapshot.peers[i].first_seen.time_since_epoch().count(), i);
  }
  std::sort(keys.begin(), keys.end());
  std::vector<std::uint32_t> order;
  order.reserve(keys.size());
  for (const Key& key : keys) order.push_back(std::get<6>(key));
  return victims(snapshot, order, target);
}

TEST(ActivityTrimmer, RandomSnapshotsMatchAReferenceWalkOfTheDocumentedOrder) {
  // Small value domains so that every criterion, and every tie-break, gets exercised.
  std::mt19937 rng(2024);
  std::uniform_int_distribution<int> peers(1, 60);
  std::uniform_int_distribution<int> conns(1, 3);
  std::uniform_int_distribution<int> small(0, 3);
  std::bernoulli_distribution coin(0.5);
  std::bernoulli_distribution mostly(0.85);
  for (int trial = 0; trial < 200; ++trial) {
    SnapshotBuilder b;
    const int peer_count = peers(rng);
    for (int p = 0; p < peer_count; ++p) {
      std::vector<Conn> cs(static_cast<std::size_t>(conns(rng)));
      for (Conn& c : cs) {
        if (coin(rng)) c.outbound();
        if (!mostly(rng)) c.handshaking();
        c.idle_for(seconds(10 * small(rng))).downloading(small(rng)).uploading(small(rng));
      }
      b.add(cs, b.now() - seconds(small(rng)));
    }
    const bool balance = trial % 2 == 1;
    ActivityTrimmerOptions options;
    options.balance_directions = balance;
    const std::size_t total = b.snapshot().connections.size();
    std::uniform_int_distribution<std::size_t> pick(1, total);
    const std::size_t target = pick(rng);
    EXPECT_EQ(trim(b.snapshot(), target, options), reference_victims(b.snapshot(), target, balance))
        << "trial " << trial << " target " << target << " balance " << balance;
  }
}

// --- Through a ConnectionManager -----------------------------------------------------
// The manager fills the activity columns from record_activity; these check that the
// trimmer's order reaches the closes, in virtual time.

TEST(ActivityTrimmerInManager, TrimClosesTheLongestInactivePeers) {
  testing::ManagerHarness h(testing::trim_config(2, 10), make_activity_trimmer());
  // Added in an order that the tie-breaks alone would not close first.
  const auto latest = h.add(1);
  const auto late = h.add(2);
  const auto silent = h.add(3);
  const auto early = h.add(4);
  h.time->advance(seconds(10));
  ASSERT_FALSE(h.manager.record_activity(*early, 100, 100));
  h.time->advance(seconds(10));
  ASSERT_FALSE(h.manager.record_activity(*late, 100, 100));
  h.time->advance(seconds(10));
  ASSERT_FALSE(h.manager.record_activity(*latest, 100, 100));

  EXPECT_EQ(h.manager.trim(), 2u);
  EXPECT_TRUE(silent->closed());
  EXPECT_TRUE(early->closed());
  EXPECT_FALSE(late->closed());
  EXPECT_FALSE(latest->closed());
  testing::expect_closes_carry({silent, early, late, latest}, CloseReason::trimmed);
}

TEST(ActivityTrimmerInManager, OnEqualActivityTimeTrimClosesTheLowestDownloadRate) {
  testing::ManagerHarness h(testing::trim_config(2, 10), make_activity_trimmer());
  const auto heavy = h.add(1);
  const auto medium = h.add(2);
  const auto light = h.add(3);
  h.time->advance(seconds(10));
  // Same instant and same upload for all, so only the download rate differs.
  ASSERT_FALSE(h.manager.record_activity(*heavy, 90'000, 10));
  ASSERT_FALSE(h.manager.record_activity(*light, 1'000, 10));
  ASSERT_FALSE(h.manager.record_activity(*medium, 40'000, 10));

  EXPECT_EQ(h.manager.trim(), 1u);
  EXPECT_TRUE(light->closed());
  EXPECT_FALSE(heavy->closed());
  EXPECT_FALSE(medium->closed());
}

}  // namespace
}  // namespace dep2p::connmgr
