// Unit tests for the default ScoreTrimmer (trimmer.hpp, docs/design.md, "Trimming") on hand-built
// snapshots. The trimmer's contract is about which peers fall within the target when the
// manager walks the order a whole peer at a time; with one connection per peer the order
// among those peers is free, so those cases compare sets, not sequences.
#include "dep2p/connmgr/trimmer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "support/fake_connection.hpp"

namespace dep2p::connmgr {
namespace {

using std::chrono::seconds;
using testing::peer_id;
using PeerSet = std::set<std::uint32_t>;

struct Conn {
  Direction direction = Direction::inbound;
  std::uint32_t streams = 0;
};

// Builds a snapshot the way the manager does: per-peer aggregates derived from the
// connections, connections stored contiguously per peer.
class SnapshotBuilder {
 public:
  SnapshotBuilder() { snapshot_.now = TimePoint{} + seconds(1000); }

  // Returns the peer's index in snapshot.peers.
  std::uint32_t add(std::int64_t value, std::vector<Conn> conns,
                    TimePoint first_seen = TimePoint{}) {
    PeerSnapshot peer;
    snapshot_.peer_ids.push_back(peer_id(next_id_++));
    peer.value = value;
    peer.first_seen = first_seen;
    peer.first_connection = static_cast<std::uint32_t>(snapshot_.connections.size());
    peer.connection_count = static_cast<std::uint32_t>(conns.size());
    for (const Conn& c : conns) {
      ConnectionSnapshot cs;
      cs.id = static_cast<ConnectionId>(++next_connection_);
      cs.direction = c.direction;
      cs.streams = c.streams;
      cs.opened_at = first_seen;
      snapshot_.connections.push_back(cs);
      peer.streams += c.streams;
      peer.has_inbound = peer.has_inbound || c.direction == Direction::inbound;
    }
    snapshot_.peers.push_back(peer);
    return static_cast<std::uint32_t>(snapshot_.peers.size() - 1);
  }
  std::uint32_t add_single(std::int64_t value, Direction direction = Direction::inbound,
                           std::uint32_t streams = 0) {
    return add(value, {Conn{direction, streams}});
  }

  const TrimSnapshot& snapshot() const { return snapshot_; }

 private:
  TrimSnapshot snapshot_;
  std::uint64_t next_id_ = 1;
  std::uint64_t next_connection_ = 0;
};

std::vector<std::uint32_t> rank(const TrimSnapshot& snapshot, std::size_t target) {
  auto trimmer = make_score_trimmer();
  std::vector<std::uint32_t> order;
  trimmer->rank(snapshot, target, order);
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

std::size_t total_connections(const TrimSnapshot& snapshot) { return snapshot.connections.size(); }

// Every index in range and none repeated.
void expect_well_formed(const TrimSnapshot& snapshot, const std::vector<std::uint32_t>& order) {
  PeerSet seen;
  for (std::uint32_t index : order) {
    EXPECT_LT(index, snapshot.peers.size());
    EXPECT_TRUE(seen.insert(index).second) << "index " << index << " repeated";
  }
}

TEST(ScoreTrimmer, LowestValuePeersFallWithinTheTarget) {
  SnapshotBuilder b;
  const std::vector<std::int64_t> values{50, 3, 99, 7, 42, 1, 88, 15, 60, 4};
  for (auto v : values) b.add_single(v);
  const auto order = rank(b.snapshot(), 4);
  expect_well_formed(b.snapshot(), order);
  // Lowest four values: 1 (index 5), 3 (1), 4 (9), 7 (3).
  EXPECT_EQ(victims(b.snapshot(), order, 4), (PeerSet{1, 3, 5, 9}));
}

TEST(ScoreTrimmer, NegativeAndLargeValuesOrderNumerically) {
  SnapshotBuilder b;
  const auto big = b.add_single(std::int64_t{1} << 40);
  const auto neg = b.add_single(-(std::int64_t{1} << 40));
  const auto zero = b.add_single(0);
  const auto small_neg = b.add_single(-1);
  const auto order = rank(b.snapshot(), 2);
  EXPECT_EQ(victims(b.snapshot(), order, 2), (PeerSet{neg, small_neg}));
  EXPECT_EQ(victims(b.snapshot(), rank(b.snapshot(), 3), 3), (PeerSet{neg, small_neg, zero}));
  (void)big;
}

TEST(ScoreTrimmer, OnTiedValuePeersWithoutStreamsGoFirst) {
  SnapshotBuilder b;
  const auto s1 = b.add_single(10, Direction::inbound, 1);
  const auto n1 = b.add_single(10, Direction::inbound, 0);
  const auto s2 = b.add_single(10, Direction::inbound, 3);
  const auto n2 = b.add_single(10, Direction::inbound, 0);
  (void)s1;
  (void)s2;
  EXPECT_EQ(victims(b.snapshot(), rank(b.snapshot(), 2), 2), (PeerSet{n1, n2}));
}

TEST(ScoreTrimmer, ValueOutranksStreams) {
  SnapshotBuilder b;
  const auto low_busy = b.add_single(1, Direction::inbound, 5);
  const auto high_idle = b.add_single(2, Direction::inbound, 0);
  (void)high_idle;
  EXPECT_EQ(victims(b.snapshot(), rank(b.snapshot(), 1), 1), (PeerSet{low_busy}));
}

TEST(ScoreTrimmer, OnTiedValueAndNoStreamsInboundGoesBeforeOutboundOnly) {
  SnapshotBuilder b;
  const auto o1 = b.add_single(10, Direction::outbound);
  const auto i1 = b.add_single(10, Direction::inbound);
  const auto o2 = b.add_single(10, Direction::outbound);
  const auto i2 = b.add_single(10, Direction::inbound);
  const auto i3 = b.add_single(10, Direction::inbound);
  (void)o1;
  (void)o2;
  EXPECT_EQ(victims(b.snapshot(), rank(b.snapshot(), 3), 3), (PeerSet{i1, i2, i3}));
}

TEST(ScoreTrimmer, NoStreamsOutranksInbound) {
  // "no streams before streams" comes before "inbound before outbound-only".
  SnapshotBuilder b;
  const auto inbound_busy = b.add_single(10, Direction::inbound, 2);
  const auto outbound_idle = b.add_single(10, Direction::outbound, 0);
  (void)inbound_busy;
  EXPECT_EQ(victims(b.snapshot(), rank(b.snapshot(), 1), 1), (PeerSet{outbound_idle}));
}

TEST(ScoreTrimmer, PeerWithAnyInboundConnectionCountsAsInbound) {
  SnapshotBuilder b;
  const auto outbound_only = b.add(10, {{Direction::outbound, 0}, {Direction::outbound, 0}});
  const auto mixed = b.add(10, {{Direction::outbound, 0}, {Direction::inbound, 0}});
  (void)outbound_only;
  EXPECT_EQ(victims(b.snapshot(), rank(b.snapshot(), 2), 2), (PeerSet{mixed}));
}

TEST(ScoreTrimmer, OnTiedValueFewerStreamsGoFirst) {
  SnapshotBuilder b;
  const auto s5 = b.add_single(10, Direction::outbound, 5);
  const auto s1 = b.add_single(10, Direction::outbound, 1);
  const auto s3 = b.add_single(10, Direction::outbound, 3);
  const auto s2 = b.add_single(10, Direction::outbound, 2);
  const auto s4 = b.add_single(10, Direction::outbound, 4);
  (void)s5;
  (void)s4;
  EXPECT_EQ(victims(b.snapshot(), rank(b.snapshot(), 3), 3), (PeerSet{s1, s2, s3}));
}

TEST(ScoreTrimmer, InboundOutranksFewerStreams) {
  SnapshotBuilder b;
  const auto outbound_one = b.add_single(10, Direction::outbound, 1);
  const auto inbound_four = b.add_single(10, Direction::inbound, 4);
  (void)outbound_one;
  EXPECT_EQ(victims(b.snapshot(), rank(b.snapshot(), 1), 1), (PeerSet{inbound_four}));
}

TEST(ScoreTrimmer, OnFullTieTheNewerPeerGoesFirst) {
  SnapshotBuilder b;
  const TimePoint t0 = b.snapshot().now - seconds(500);
  const auto oldest = b.add(10, {{Direction::inbound, 0}}, t0);
  const auto newest = b.add(10, {{Direction::inbound, 0}}, t0 + seconds(300));
  const auto middle = b.add(10, {{Direction::inbound, 0}}, t0 + seconds(100));
  (void)oldest;
  EXPECT_EQ(victims(b.snapshot(), rank(b.snapshot(), 1), 1), (PeerSet{newest}));
  EXPECT_EQ(victims(b.snapshot(), rank(b.snapshot(), 2), 2), (PeerSet{newest, middle}));
}

TEST(ScoreTrimmer, MultiConnectionPeersAreOrderedSoWholePeerWalkClosesTheLowest) {
  // Walking lowest value first: v0 (1 conn), then v1 (3 conns) reaches the target of 2.
  // An unsorted order that put v1 first would stop after it and spare v0 wrongly.
  SnapshotBuilder b;
  const auto v2 = b.add(2, {{Direction::inbound, 0}});
  const auto v1 =
      b.add(1, {{Direction::inbound, 0}, {Direction::outbound, 0}, {Direction::inbound, 0}});
  const auto v0 = b.add(0, {{Direction::inbound, 0}});
  const auto v3 = b.add(3, {{Direction::outbound, 0}, {Direction::outbound, 0}});
  (void)v2;
  (void)v3;
  const auto order = rank(b.snapshot(), 2);
  expect_well_formed(b.snapshot(), order);
  ASSERT_GE(order.size(), std::size_t{2});
  EXPECT_EQ(order[0], v0);
  EXPECT_EQ(order[1], v1);
  EXPECT_EQ(victims(b.snapshot(), order, 2), (PeerSet{v0, v1}));
}

TEST(ScoreTrimmer, MultiConnectionWalkStopsOnceTheTargetIsCovered) {
  SnapshotBuilder b;
  const auto big_low = b.add(0, {{Direction::inbound, 0},
                                 {Direction::inbound, 0},
                                 {Direction::inbound, 0},
                                 {Direction::inbound, 0}});
  const auto single_a = b.add(1, {{Direction::inbound, 0}});
  const auto single_b = b.add(2, {{Direction::inbound, 0}});
  const auto pair = b.add(3, {{Direction::inbound, 0}, {Direction::inbound, 0}});
  (void)single_b;
  (void)pair;
  EXPECT_EQ(victims(b.snapshot(), rank(b.snapshot(), 4), 4), (PeerSet{big_low}));
  EXPECT_EQ(victims(b.snapshot(), rank(b.snapshot(), 5), 5), (PeerSet{big_low, single_a}));
}

// Reference: sort peers by value (all distinct here) and walk whole peers.
PeerSet expected_by_value(const TrimSnapshot& snapshot, std::size_t target) {
  std::vector<std::uint32_t> order(snapshot.peers.size());
  std::iota(order.begin(), order.end(), std::uint32_t{0});
  std::ranges::sort(order, {}, [&](std::uint32_t i) { return snapshot.peers[i].value; });
  return victims(snapshot, order, target);
}

TEST(ScoreTrimmer, RandomMultiConnectionSnapshotsMatchAWholePeerWalkByValue) {
  std::mt19937 rng(12345);
  for (int trial = 0; trial < 50; ++trial) {
    SnapshotBuilder b;
    std::vector<std::int64_t> values(300);
    std::iota(values.begin(), values.end(), std::int64_t{-100});
    std::shuffle(values.begin(), values.end(), rng);
    std::uniform_int_distribution<int> conns(1, 3);
    for (auto v : values) {
      std::vector<Conn> cs(static_cast<std::size_t>(conns(rng)));
      b.add(v, cs);
    }
    const std::size_t total = total_connections(b.snapshot());
    std::uniform_int_distribution<std::size_t> pick(1, total - 1);
    const std::size_t target = pick(rng);
    const auto order = rank(b.snapshot(), target);
    expect_well_formed(b.snapshot(), order);
    EXPECT_EQ(victims(b.snapshot(), order, target), expected_by_value(b.snapshot(), target))
        << "trial " << trial << " target " << target;
  }
}

TEST(ScoreTrimmer, RandomSingleConnectionSnapshotsSelectTheLowestValues) {
  std::mt19937 rng(777);
  for (int trial = 0; trial < 50; ++trial) {
    SnapshotBuilder b;
    std::vector<std::int64_t> values(500);
    std::iota(values.begin(), values.end(), std::int64_t{0});
    std::shuffle(values.begin(), values.end(), rng);
    for (auto v : values) b.add_single(v);
    std::uniform_int_distribution<std::size_t> pick(1, values.size() - 1);
    const std::size_t target = pick(rng);
    const auto order = rank(b.snapshot(), target);
    expect_well_formed(b.snapshot(), order);
    const PeerSet chosen = victims(b.snapshot(), order, target);
    ASSERT_EQ(chosen.size(), target) << "trial " << trial;
    for (std::uint32_t index : chosen) {
      EXPECT_LT(b.snapshot().peers[index].value, static_cast<std::int64_t>(target))
          << "trial " << trial << " target " << target;
    }
  }
}

TEST(ScoreTrimmer, TargetCoveringAllConnectionsReturnsEveryPeer) {
  SnapshotBuilder b;
  b.add(5, {{Direction::inbound, 0}, {Direction::outbound, 1}});
  b.add_single(1);
  b.add_single(9, Direction::outbound, 2);
  b.add(3, {{Direction::outbound, 0}, {Direction::outbound, 0}, {Direction::inbound, 0}});
  const PeerSet all{0, 1, 2, 3};
  const std::size_t total = total_connections(b.snapshot());
  for (std::size_t target : {total, total + 1, total * 10}) {
    const auto order = rank(b.snapshot(), target);
    expect_well_formed(b.snapshot(), order);
    EXPECT_EQ(PeerSet(order.begin(), order.end()), all) << "target " << target;
    EXPECT_EQ(victims(b.snapshot(), order, target), all) << "target " << target;
  }
}

TEST(ScoreTrimmer, TargetZeroClosesNothing) {
  SnapshotBuilder b;
  b.add_single(5);
  b.add_single(1);
  const auto order = rank(b.snapshot(), 0);
  expect_well_formed(b.snapshot(), order);
  EXPECT_TRUE(victims(b.snapshot(), order, 0).empty());
}

TEST(ScoreTrimmer, EmptySnapshotYieldsAnEmptyOrder) {
  const TrimSnapshot empty;
  EXPECT_TRUE(rank(empty, 0).empty());
  EXPECT_TRUE(rank(empty, 10).empty());
}

TEST(ScoreTrimmer, TrimmerCanBeReusedAcrossSnapshots) {
  auto trimmer = make_score_trimmer();
  SnapshotBuilder first;
  const auto a_low = first.add_single(1);
  first.add_single(2);
  SnapshotBuilder second;
  second.add_single(2);
  const auto b_low = second.add_single(1);

  std::vector<std::uint32_t> order;
  trimmer->rank(first.snapshot(), 1, order);
  EXPECT_EQ(victims(first.snapshot(), order, 1), (PeerSet{a_low}));
  order.clear();
  trimmer->rank(second.snapshot(), 1, order);
  EXPECT_EQ(victims(second.snapshot(), order, 1), (PeerSet{b_low}));
}

}  // namespace
}  // namespace dep2p::connmgr
