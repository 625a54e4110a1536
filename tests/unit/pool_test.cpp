// The pool's tables (src/pool/pool.hpp) on their own: the totals as connections join and
// leave, peer slots taken, released and reused, the batch release, and the packed remote
// endpoint — what the manager's counters and trims rely on.
#include <gtest/gtest.h>

#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <set>

#include "pool/pool.hpp"
#include "support/fake_connection.hpp"

namespace dep2p::connmgr::detail {
namespace {

using boost::asio::ip::make_address;
using testing::endpoint;
using testing::FakeConnection;
using testing::peer_id;

const TimePoint kNow = TimePoint(std::chrono::seconds(100));

ConnectionFacts facts(std::uint64_t peer, Direction direction, std::uint32_t streams = 0,
                      Endpoint remote = endpoint("127.0.0.1")) {
  return ConnectionFacts{peer_id(peer), direction, PathKind::direct,
                         streams,       remote,    Transport::tcp};
}

struct PoolTest : ::testing::Test {
  Pool pool;
  TagNames names;
  ConnectionId next_id{0};

  std::uint32_t add(std::uint64_t peer, Direction direction, std::uint32_t streams = 0,
                    Endpoint remote = endpoint("127.0.0.1"),
                    std::optional<boost::asio::ip::address> capped = std::nullopt) {
    std::uint32_t slot = pool.find(peer_id(peer));
    if (slot == kNoSlot) slot = pool.add_peer(peer_id(peer), kNow, false, false);
    auto handle = std::make_shared<FakeConnection>(peer_id(peer), direction, remote);
    next_id = ConnectionId{static_cast<std::uint64_t>(next_id) + 1};
    return pool.add_connection(slot, handle, next_id, facts(peer, direction, streams, remote), kNow,
                               capped);
  }
};

TEST_F(PoolTest, TheTotalsFollowEveryConnectionInAndOut) {
  const auto a = add(1, Direction::inbound, 2);
  const auto b = add(1, Direction::outbound, 3);
  const auto c = add(2, Direction::inbound);
  EXPECT_EQ(pool.counts().connections, 3u);
  EXPECT_EQ(pool.counts().inbound, 2u);
  EXPECT_EQ(pool.counts().outbound, 1u);
  EXPECT_EQ(pool.counts().streams[0], 2u);
  EXPECT_EQ(pool.counts().streams[1], 3u);
  EXPECT_EQ(pool.peers(), 2u);
  const std::uint32_t one = pool.find(peer_id(1));
  EXPECT_EQ(pool.peer(one).conns.size(), 2u);
  EXPECT_EQ(pool.peer(one).streams, 5u);
  EXPECT_EQ(pool.peer(one).inbound, 1u);
  EXPECT_EQ(pool.cold(one).streams_in, 2u);

  EXPECT_TRUE(pool.detach(a));
  EXPECT_EQ(pool.counts().connections, 2u);
  EXPECT_EQ(pool.counts().inbound, 1u);
  EXPECT_EQ(pool.counts().streams[0], 0u);
  EXPECT_EQ(pool.peer(one).streams, 3u);
  EXPECT_EQ(pool.peer(one).inbound, 0u);
  EXPECT_TRUE(pool.detach(b));
  EXPECT_TRUE(pool.detach(c));
  EXPECT_EQ(pool.counts().connections, 0u);
  EXPECT_EQ(pool.counts().inbound + pool.counts().outbound, 0u);
  EXPECT_EQ(pool.counts().streams[0] + pool.counts().streams[1], 0u);
  EXPECT_EQ(pool.peers(), 2u) << "entries stay until the caller releases them";
}

TEST_F(PoolTest, StreamsCountInTheirConnectionsPeerAndTheTotals) {
  const auto a = add(1, Direction::outbound);
  pool.count_stream(a, Direction::inbound, +1);
  pool.count_stream(a, Direction::outbound, +1);
  pool.count_stream(a, Direction::outbound, +1);
  EXPECT_EQ(pool.conn(a).streams(), 3u);
  EXPECT_EQ(pool.counts().streams[0], 1u);
  EXPECT_EQ(pool.counts().streams[1], 2u);
  pool.count_stream(a, Direction::outbound, -1);
  EXPECT_EQ(pool.peer(pool.find(peer_id(1))).streams, 2u);
  pool.detach(a);
  EXPECT_EQ(pool.counts().streams[0] + pool.counts().streams[1], 0u);
}

TEST_F(PoolTest, APeersOnlyConnectionIsItsBestPathAndLeavingClearsIt) {
  const auto a = add(1, Direction::inbound);
  const std::uint32_t one = pool.find(peer_id(1));
  EXPECT_EQ(pool.peer(one).best, a);
  const auto b = add(1, Direction::outbound);
  EXPECT_EQ(pool.peer(one).best, a) << "a second path is the selector's to choose";
  pool.detach(a);
  EXPECT_EQ(pool.peer(one).best, kNoSlot);
  EXPECT_EQ(pool.live_conn(a, ConnectionId{1}), nullptr);
  EXPECT_NE(pool.live_conn(b, ConnectionId{2}), nullptr);
}

TEST_F(PoolTest, AReleasedPeerSlotIsReusedWithANewGenerationAndLeavesTheIndex) {
  const auto a = add(1, Direction::inbound);
  const std::uint32_t slot = pool.find(peer_id(1));
  const std::uint32_t generation = pool.peer(slot).generation;
  pool.detach(a);
  pool.release_peer(slot, names);
  EXPECT_EQ(pool.find(peer_id(1)), kNoSlot);
  EXPECT_EQ(pool.peers(), 0u);
  EXPECT_FALSE(pool.peer(slot).live);
  const std::uint32_t again = pool.add_peer(peer_id(2), kNow, false, false);
  EXPECT_EQ(again, slot) << "a free slot is taken before the table grows";
  EXPECT_NE(pool.peer(again).generation, generation);
  EXPECT_EQ(pool.id_of(again), peer_id(2));
  EXPECT_EQ(pool.peer_slots(), 1u);
}

TEST_F(PoolTest, TemporaryEntriesAreCountedAsTheyComeGoAndConnect) {
  const std::uint32_t t1 = pool.add_peer(peer_id(1), kNow, true, false);
  const std::uint32_t t2 = pool.add_peer(peer_id(2), kNow, true, false);
  EXPECT_EQ(pool.counts().temporary, 2u);
  pool.set_temporary(t1, false);  // it connected
  pool.set_temporary(t1, false);  // no change counts once
  EXPECT_EQ(pool.counts().temporary, 1u);
  pool.release_peer(t2, names);
  EXPECT_EQ(pool.counts().temporary, 0u);
  pool.set_temporary(t1, true);  // kept after its last connection
  EXPECT_EQ(pool.counts().temporary, 1u);
}

TEST_F(PoolTest, ABatchReleaseLeavesTheIndexInOnePassWithTheSameResult) {
  constexpr std::uint64_t kPeers = 4096;
  for (std::uint64_t p = 0; p < kPeers; ++p) add(p, Direction::inbound);
  pool.begin_batch(kPeers / 2);  // large enough to batch
  for (std::uint64_t p = 0; p < kPeers; p += 2) {
    const std::uint32_t slot = pool.find(peer_id(p));
    pool.detach(pool.peer(slot).conns.front());
    pool.release_peer(slot, names);
  }
  pool.end_batch();
  EXPECT_EQ(pool.peers(), kPeers / 2);
  EXPECT_EQ(pool.counts().connections, kPeers / 2);
  for (std::uint64_t p = 0; p < kPeers; ++p) {
    EXPECT_EQ(pool.find(peer_id(p)) == kNoSlot, p % 2 == 0) << p;
  }
}

// The sweep goes one part of the index per step; between steps (where the owner lets
// its lock go) peers are found, added back, and released, and the index stays exact.
TEST_F(PoolTest, ABatchSweptInStepsStaysExactWhilePeersComeAndGoBetweenSteps) {
  constexpr std::uint64_t kPeers = 4096;
  for (std::uint64_t p = 0; p < kPeers; ++p) add(p, Direction::inbound);
  pool.begin_batch(kPeers / 2);
  for (std::uint64_t p = 0; p < kPeers; p += 2) {
    const std::uint32_t slot = pool.find(peer_id(p));
    pool.detach(pool.peer(slot).conns.front());
    pool.release_peer(slot, names);
  }
  EXPECT_EQ(pool.peers(), kPeers / 2);
  // Released ids are not found before any sweep; one comes back (its stale entry and
  // the reused slot's leave the index first).
  EXPECT_EQ(pool.find(peer_id(0)), kNoSlot);
  add(0, Direction::inbound);
  std::set<std::uint64_t> live;
  for (std::uint64_t p = 1; p < kPeers; p += 2) live.insert(p);
  live.insert(0);
  std::size_t steps = 0;
  std::uint64_t next_back = 2;  // released ids added back, one per step
  std::uint64_t next_gone = 1;  // live ids released, one per step
  while (!pool.end_batch_step()) {
    ++steps;
    ASSERT_LT(steps, 1000u);
    add(next_back, Direction::inbound);
    live.insert(next_back);
    next_back += 2;
    const std::uint32_t slot = pool.find(peer_id(next_gone));
    ASSERT_NE(slot, kNoSlot);
    pool.detach(pool.peer(slot).conns.front());
    pool.release_peer(slot, names);
    live.erase(next_gone);
    next_gone += 2;
    EXPECT_EQ(pool.peers(), live.size());
  }
  EXPECT_GT(steps, 4u);  // swept in parts, not in one pass
  EXPECT_EQ(pool.peers(), live.size());
  EXPECT_EQ(pool.counts().connections, live.size());
  for (std::uint64_t p = 0; p < kPeers; ++p) {
    const std::uint32_t slot = pool.find(peer_id(p));
    ASSERT_EQ(slot != kNoSlot, live.contains(p)) << p;
    if (slot != kNoSlot) {
      EXPECT_EQ(pool.id_of(slot), peer_id(p));
    }
  }
  // Every released slot is reusable, and each id is indexed once: releasing every live
  // peer empties the index.
  for (const std::uint64_t p : live) {
    const std::uint32_t slot = pool.find(peer_id(p));
    pool.detach(pool.peer(slot).conns.front());
    pool.release_peer(slot, names);
  }
  EXPECT_EQ(pool.peers(), 0u);
  for (std::uint64_t p = 0; p < kPeers; ++p) EXPECT_EQ(pool.find(peer_id(p)), kNoSlot) << p;
}

TEST_F(PoolTest, TheRemoteEndpointComesBackAsItWentInScopeIdIncluded) {
  const Endpoint v4 = endpoint("10.2.3.4", 4001);
  Endpoint scoped{make_address("fe80::1%1"), 9000};
  const Endpoint v6 = endpoint("2001:db8::7", 443);
  const auto a = add(1, Direction::inbound, 0, v4);
  const auto b = add(2, Direction::outbound, 0, scoped);
  const auto c = add(3, Direction::outbound, 0, v6);
  EXPECT_EQ(pool.remote_of(a), v4);
  EXPECT_EQ(pool.remote_of(b), scoped);
  EXPECT_EQ(pool.remote_of(c), v6);
  EXPECT_TRUE(pool.conn(c).ipv6);
  EXPECT_FALSE(pool.conn(a).ipv6);
}

TEST_F(PoolTest, ACapHeldAtAnotherAddressIsKeptUntilTheConnectionLeaves) {
  const auto a = add(1, Direction::inbound, 0, endpoint("10.0.0.1"), make_address("10.0.0.1"));
  const auto b = add(2, Direction::inbound, 0, endpoint("10.0.0.2"), make_address("192.0.2.9"));
  EXPECT_EQ(pool.cap_address(a), make_address("10.0.0.1"));
  EXPECT_EQ(pool.cap_address(b), make_address("192.0.2.9"));
  pool.detach(b);
  const auto c = add(3, Direction::inbound, 0, endpoint("10.0.0.3"), make_address("10.0.0.3"));
  EXPECT_EQ(c, b) << "the freed connection slot is reused";
  EXPECT_EQ(pool.cap_address(c), make_address("10.0.0.3")) << "not the earlier connection's";
}

}  // namespace
}  // namespace dep2p::connmgr::detail
