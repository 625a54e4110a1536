// The default trimmer's in-place trim against the snapshot trim. With ScoreTrimmer the
// manager ranks its pool directly, under the lock (see score_victims in
// connection_manager.cpp); with any other trimmer it hands the trimmer a snapshot. Here
// two managers get the same pools and the same trims: one with the default trimmer, one
// with a trimmer that merely forwards to ScoreTrimmer (so the manager takes the snapshot
// path). Every trim must close the same connections, in the same order, with the same
// reasons and counts.
#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/trimmer.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

// ScoreTrimmer's order through the snapshot: not recognised as the built-in trimmer.
class ForwardingTrimmer final : public Trimmer {
 public:
  TrimInputs inputs() const override { return inner_->inputs(); }
  void rank(const TrimSnapshot& snapshot, std::size_t target,
            std::vector<std::uint32_t>& order) override {
    ++calls;
    inner_->rank(snapshot, target, order);
  }
  int calls = 0;

 private:
  std::shared_ptr<Trimmer> inner_ = make_score_trimmer();
};

// One manager and the log of what its trims closed: "peer/connection reason".
struct Side {
  explicit Side(Config config, std::shared_ptr<Trimmer> trimmer = nullptr)
      : h(std::move(config), std::move(trimmer)) {}

  void add(std::uint64_t peer, std::size_t nth, Direction direction) {
    auto c = std::make_shared<FakeConnection>(peer_id(peer), direction);
    const std::string name = std::to_string(peer) + "/" + std::to_string(nth);
    c->on_close = [this, name](FakeConnection& self, CloseReason reason) {
      closed.push_back(name + " " + std::string(to_string(reason)));
      h.manager.remove_connection(self, reason);
    };
    ASSERT_FALSE(h.manager.add_connection(c));
    connections.push_back(std::move(c));
  }

  ManagerHarness h;
  std::vector<std::shared_ptr<FakeConnection>> connections;
  std::vector<std::string> closed;
};

// The tag values a pool is built with: each seed picks one shape.
int tag_value(std::mt19937_64& rng, int shape) {
  switch (shape) {
    case 0: return static_cast<int>(rng() % 10);                     // a few values, many ties
    case 1: return 0;                                                // untagged-like: everyone tied
    case 2: return static_cast<int>(rng() % 2'000'001) - 1'000'000;  // wide, negative too
    default: {
      const int extremes[] = {INT_MIN, INT_MAX, -1, 0, 1};
      return extremes[rng() % 5];  // sums far outside int, both signs
    }
  }
}

void run_seed(std::uint64_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const std::size_t peers = seed % 12 == 0 ? 2000 : 40 + rng() % 200;
  const int shape = static_cast<int>(rng() % 4);
  Config config = trim_config(peers / 3, peers, 10s);
  config.max_temp_peers = peers * 2;
  Side in_place(config);
  auto forwarding = std::make_shared<ForwardingTrimmer>();
  Side snapshot(config, forwarding);
  Side* sides[] = {&in_place, &snapshot};

  std::size_t next_peer = 1;
  auto add_peers = [&](std::size_t count) {
    for (std::size_t i = 0; i < count; ++i, ++next_peer) {
      // Most peers hold one connection; some two or three; now and then one holds 300
      // (more than a byte counts).
      std::size_t conns = rng() % 8 == 0 ? 2 + rng() % 2 : 1;
      if (rng() % 1500 == 0) conns = 300;
      const std::size_t tags = rng() % 3;
      std::vector<int> values;
      for (std::size_t t = 0; t < tags; ++t) values.push_back(tag_value(rng, shape));
      const bool protect = rng() % 10 == 0;
      const std::uint32_t streams = rng() % 4 == 0 ? static_cast<std::uint32_t>(rng() % 3) : 0;
      for (Side* side : sides) {
        for (std::size_t c = 0; c < conns; ++c) {
          side->add(next_peer, c,
                    (next_peer + c) % 2 == 0 ? Direction::inbound : Direction::outbound);
        }
        for (std::size_t t = 0; t < tags; ++t) {
          side->h.manager.tag_peer(peer_id(next_peer), "t" + std::to_string(t), values[t]);
        }
        if (protect) side->h.manager.protect(peer_id(next_peer), "keep");
        for (std::uint32_t s = 0; s < streams; ++s) {
          side->h.manager.stream_opened(*side->connections.back(), Direction::inbound);
        }
      }
    }
  };

  add_peers(peers);
  for (Side* side : sides) side->h.time->advance(11s);  // out of grace
  add_peers(peers / 10);                                // these stay in grace
  // Temporary entries: tagged, never connected.
  for (std::size_t i = 0; i < 5; ++i) {
    for (Side* side : sides) side->h.manager.tag_peer(peer_id(900'000 + i), "t", 1);
  }

  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::size_t closed[2];
    const bool exact = rng() % 2 == 0;
    const std::size_t count = 1 + rng() % (peers / 2);
    for (int s = 0; s < 2; ++s) {
      closed[s] = exact ? sides[s]->h.manager.trim_connections(count) : sides[s]->h.manager.trim();
    }
    EXPECT_EQ(closed[0], closed[1]);
    ASSERT_EQ(in_place.closed, snapshot.closed);
    EXPECT_EQ(in_place.h.manager.connection_count(), snapshot.h.manager.connection_count());
    EXPECT_EQ(in_place.h.manager.stats().peers, snapshot.h.manager.stats().peers);
    EXPECT_EQ(in_place.h.manager.stats().trims, snapshot.h.manager.stats().trims);
    // Refill between rounds, so later trims run over reused slots.
    add_peers(peers / 4);
    for (Side* side : sides) side->h.time->advance(11s);
  }
  EXPECT_GT(forwarding->calls, 0);  // the second manager did go through the snapshot
  EXPECT_FALSE(in_place.closed.empty());
}

TEST(InPlaceTrim, ClosesExactlyWhatTheSnapshotTrimCloses) {
  for (std::uint64_t seed = 1; seed <= 24; ++seed) run_seed(seed);
}

// The boundary of the in-place selection: candidates tied on the value at the target
// are ordered by the rest of the key (streams, direction, first seen), and a multi-
// connection peer at the boundary gives up only part of its connections in an exact trim.
TEST(InPlaceTrim, TiesAtTheBoundaryFollowTheFullKey) {
  ManagerHarness h(trim_config(1, 100));
  // Four peers of value 5 and one of value 1; trim_connections(3) takes the value-1 peer
  // and then two of value 5: the ones without streams, inbound before outbound-only.
  std::vector<std::shared_ptr<FakeConnection>> c;
  c.push_back(h.add(1, Direction::inbound));   // value 5, streams
  c.push_back(h.add(2, Direction::outbound));  // value 5, no streams, outbound only
  c.push_back(h.add(3, Direction::inbound));   // value 5, no streams, inbound
  c.push_back(h.add(4, Direction::inbound));   // value 1
  c.push_back(h.add(5, Direction::outbound));  // value 5, streams
  for (std::uint64_t p : {1u, 2u, 3u, 5u}) h.manager.tag_peer(peer_id(p), "v", 5);
  h.manager.tag_peer(peer_id(4), "v", 1);
  h.manager.stream_opened(*c[0], Direction::inbound);
  h.manager.stream_opened(*c[4], Direction::inbound);
  EXPECT_EQ(h.manager.trim_connections(3), 3u);
  EXPECT_TRUE(c[3]->closed());
  EXPECT_TRUE(c[2]->closed());
  EXPECT_TRUE(c[1]->closed());
  EXPECT_FALSE(c[0]->closed());
  EXPECT_FALSE(c[4]->closed());

  // A peer with three connections at the boundary: an exact trim of 2 takes two of them,
  // newest first.
  ManagerHarness m(trim_config(1, 100));
  auto a1 = m.add(7, Direction::inbound);
  auto a2 = m.add(7, Direction::inbound);
  auto a3 = m.add(7, Direction::inbound);
  auto b = m.add(8, Direction::inbound);
  m.manager.tag_peer(peer_id(8), "v", 9);
  EXPECT_EQ(m.manager.trim_connections(2), 2u);
  EXPECT_FALSE(a1->closed());
  EXPECT_TRUE(a2->closed());
  EXPECT_TRUE(a3->closed());
  EXPECT_FALSE(b->closed());
}

}  // namespace
}  // namespace dep2p::connmgr
