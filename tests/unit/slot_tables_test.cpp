// The pool's packed tables (docs/performance.md, "Memory per connection"): the slot table
// that grows in pages, the 16-byte small vector, the packed peer ids, and the packed
// connection fields as the manager uses them (ids too long to sit inline, scoped IPv6
// remotes, a capped address other than the remote one).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/compact_vector.hpp"
#include "base/paged_vector.hpp"
#include "pool/peer_id_table.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using testing::endpoint;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::trim_config;

// An id of `size` bytes made of a number (the number in the last 8 bytes).
NodeId sized_id(std::size_t size, std::uint64_t n) {
  std::vector<std::uint8_t> bytes(size, 0x5a);
  for (std::size_t i = 0; i < 8 && i < size; ++i) {
    bytes[size - 1 - i] = static_cast<std::uint8_t>(n >> (8 * i));
  }
  return NodeId(bytes);
}

// --- PagedVector ---------------------------------------------------------------------

TEST(PagedVector, KeepsEveryElementAcrossPagesAndTheFirstPagesGrowth) {
  detail::PagedVector<std::uint64_t, 4> table;  // pages of 16
  EXPECT_TRUE(table.empty());
  for (std::uint64_t i = 0; i < 1000; ++i) {
    std::uint64_t& fresh = table.emplace_back();
    EXPECT_EQ(fresh, 0u) << "a new element is value-initialized";
    fresh = i * 7;
  }
  ASSERT_EQ(table.size(), 1000u);
  for (std::uint64_t i = 0; i < 1000; ++i) ASSERT_EQ(table[i], i * 7) << i;
  std::uint64_t sum = 0;
  std::size_t count = 0;
  for (std::uint64_t v : table) {
    sum += v;
    ++count;
  }
  EXPECT_EQ(count, 1000u);
  EXPECT_EQ(sum, 7u * 999u * 1000u / 2u);
}

TEST(PagedVector, ForEachVisitsEveryElementOnceInIndexOrder) {
  detail::PagedVector<std::uint32_t, 3> table;  // pages of 8
  for (const std::size_t size : {0u, 1u, 8u, 9u, 23u, 24u, 25u}) {
    while (table.size() < size) table.push_back(static_cast<std::uint32_t>(table.size() * 3));
    std::vector<std::size_t> seen;
    table.for_each([&](std::size_t index, std::uint32_t& value) {
      EXPECT_EQ(value, index * 3) << "size " << size;
      seen.push_back(index);
    });
    std::vector<std::size_t> expected(size);
    for (std::size_t i = 0; i < size; ++i) expected[i] = i;
    EXPECT_EQ(seen, expected) << "size " << size;
  }
}

TEST(PagedVector, ElementsBeyondTheFirstPageNeverMove) {
  detail::PagedVector<std::string, 3> table;  // pages of 8
  for (int i = 0; i < 8; ++i) table.push_back(std::to_string(i));
  table.push_back("eight");
  const std::string* eighth = &table[8];
  for (int i = 9; i < 500; ++i) table.push_back(std::to_string(i));
  EXPECT_EQ(eighth, &table[8]) << "growth allocates new pages; it does not move old ones";
  EXPECT_EQ(table[8], "eight");
  EXPECT_EQ(table[3], "3");
  EXPECT_EQ(table[499], "499");
}

// --- CompactVector -------------------------------------------------------------------

TEST(CompactVector, IsSixteenBytesAndHoldsNInline) {
  EXPECT_EQ(sizeof(detail::CompactVector<std::uint32_t, 2>), 16u);
  detail::CompactVector<std::uint32_t, 2> v;
  v.push_back(1);
  v.push_back(2);
  EXPECT_EQ(reinterpret_cast<const char*>(v.data()), reinterpret_cast<const char*>(&v))
      << "two 4-byte elements sit inline";
  v.push_back(3);
  EXPECT_NE(reinterpret_cast<const char*>(v.data()), reinterpret_cast<const char*>(&v));
  EXPECT_EQ(std::vector<std::uint32_t>(v.begin(), v.end()), (std::vector<std::uint32_t>{1, 2, 3}));
}

TEST(CompactVector, EraseKeepsOrderAndCopiesAndMovesAreDeep) {
  detail::CompactVector<std::uint32_t, 2> v;
  for (std::uint32_t i = 0; i < 10; ++i) v.push_back(i);
  v.erase(std::find(v.begin(), v.end(), 4u));
  v.erase(v.begin());
  ASSERT_EQ(v.size(), 8u);
  EXPECT_EQ(v.front(), 1u);
  EXPECT_EQ(v.back(), 9u);
  EXPECT_EQ(v[3], 5u);

  detail::CompactVector<std::uint32_t, 2> copy = v;
  copy[0] = 100;
  EXPECT_EQ(v[0], 1u) << "a copy owns its elements";
  detail::CompactVector<std::uint32_t, 2> moved = std::move(copy);
  EXPECT_EQ(moved.size(), 8u);
  EXPECT_EQ(moved[0], 100u);
  EXPECT_TRUE(copy.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty

  detail::CompactVector<std::uint32_t, 2> small;
  small.push_back(7);
  moved = small;  // heap to inline
  EXPECT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0], 7u);
  v.clear();  // gives the heap block back (the sanitizers see a leak otherwise)
  EXPECT_TRUE(v.empty());
  v.push_back(5);
  EXPECT_EQ(v[0], 5u);
  v.pop_back();
  EXPECT_TRUE(v.empty());
}

// --- PeerIdTable ---------------------------------------------------------------------

TEST(PeerIdTable, ShortAndLongIdsRoundTripCompareAndHashLikeNodeId) {
  detail::PeerIdTable ids;
  const NodeId one_byte = sized_id(1, 1);
  const NodeId inline_max = sized_id(detail::PeerIdTable::kInline, 2);
  const NodeId just_over = sized_id(detail::PeerIdTable::kInline + 1, 3);
  const NodeId longest = sized_id(NodeId::kMaxSize, 4);
  ids.assign(0, one_byte);
  ids.assign(1, inline_max);
  ids.assign(2, just_over);
  ids.assign(3, longest);
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(ids.long_ids(), 2u);
  const std::array<NodeId, 4> all{one_byte, inline_max, just_over, longest};
  for (std::uint32_t slot = 0; slot < 4; ++slot) {
    EXPECT_EQ(ids.get(slot), all[slot]) << slot;
    EXPECT_EQ(ids.hash(slot), all[slot].hash()) << slot;
    for (std::uint32_t other = 0; other < 4; ++other) {
      EXPECT_EQ(ids.equals(slot, all[other]), slot == other) << slot << " vs " << other;
    }
  }
  // Same length, different bytes: not equal, inline or not.
  EXPECT_FALSE(ids.equals(1, sized_id(detail::PeerIdTable::kInline, 9)));
  EXPECT_FALSE(ids.equals(3, sized_id(NodeId::kMaxSize, 9)));

  // Reassigning a slot drops a long id it held.
  ids.assign(3, one_byte);
  EXPECT_EQ(ids.long_ids(), 1u);
  EXPECT_EQ(ids.get(3), one_byte);
  ids.assign(0, longest);
  EXPECT_EQ(ids.long_ids(), 2u);
  EXPECT_EQ(ids.get(0), longest);
}

// --- Through the manager -------------------------------------------------------------

// Ids of every length share the pool: lookups (including after the index grows and
// rehashes through the packed ids), tags, trims, slot reuse and explain.
TEST(PackedPool, PeersWithIdsOfEveryLengthAreTrackedTaggedAndTrimmedExactly) {
  ManagerHarness h(trim_config(150, 400));
  std::vector<NodeId> peers;
  std::vector<std::shared_ptr<FakeConnection>> conns;
  // (2 bytes, not 1: a 1-byte id has only 256 values, and these ids must be distinct.)
  const std::array<std::size_t, 5> sizes{2, 32, detail::PeerIdTable::kInline,
                                         detail::PeerIdTable::kInline + 1, NodeId::kMaxSize};
  for (std::uint64_t i = 0; i < 300; ++i) {
    peers.push_back(sized_id(sizes[i % sizes.size()], i));
    auto c = testing::reporting_connection(h.manager, peers.back(), Direction::inbound);
    ASSERT_FALSE(h.manager.add_connection(c)) << i;
    conns.push_back(std::move(c));
    // Value = i: the trim must close exactly the 150 lowest.
    ASSERT_FALSE(h.manager.tag_peer(peers.back(), "v", static_cast<int>(i))) << i;
  }
  EXPECT_EQ(h.manager.peer_count(), 300u);
  for (std::size_t i = 0; i < peers.size(); ++i) {
    ASSERT_EQ(h.manager.get_connection(peers[i]).get(), conns[i].get()) << i;
    ASSERT_EQ(h.manager.tag_info(peers[i])->value, static_cast<std::int64_t>(i)) << i;
  }
  EXPECT_EQ(h.manager.trim_connections(150), 150u);
  for (std::size_t i = 0; i < peers.size(); ++i) {
    EXPECT_EQ(h.manager.get_connection(peers[i]) == nullptr, i < 150) << i;
  }
  const auto worst = h.manager.explain(peers[150]);
  ASSERT_TRUE(worst.has_value());
  EXPECT_EQ(worst->rank, 1u) << "the lowest value left is next to go";
  EXPECT_EQ(worst->value, 150);

  // The freed slots are reused by new peers of other lengths; the old ids are gone.
  for (std::uint64_t i = 0; i < 150; ++i) {
    const NodeId id = sized_id(sizes[(i + 2) % sizes.size()], 1000 + i);
    ASSERT_FALSE(
        h.manager.add_connection(std::make_shared<FakeConnection>(id, Direction::outbound)))
        << i;
    ASSERT_NE(h.manager.get_connection(id), nullptr) << i;
  }
  for (std::size_t i = 0; i < 150; ++i) EXPECT_EQ(h.manager.get_connection(peers[i]), nullptr);
  EXPECT_EQ(h.manager.peer_count(), 300u);
  EXPECT_EQ(h.manager.connection_count(), 300u);
}

// Records the endpoints intercept_secured is asked about, and re-checks on demand.
class RecordingGater final : public Gater {
 public:
  Decision intercept_secured(Direction, const NodeId&, const Endpoint& remote) override {
    seen.push_back(remote);
    return Decision::allow();
  }
  Subscription on_tightened(std::function<void()> handler) override {
    tightened = std::move(handler);
    return Subscription([this] { tightened = nullptr; });
  }
  std::vector<Endpoint> seen;
  std::function<void()> tightened;
};

// The remote endpoint is stored packed; a re-check sees it exactly as the host gave it,
// IPv6 scope id and port included.
TEST(PackedPool, TheRemoteEndpointComesBackExactlyForARecheck) {
  auto gater = std::make_shared<RecordingGater>();
  Dependencies deps;
  deps.gater = gater;
  ManagerHarness h(trim_config(0, 0), deps);
  auto scoped = boost::asio::ip::make_address_v6("fe80::1");
  scoped.scope_id(3);
  const std::vector<Endpoint> remotes{endpoint("10.1.2.3", 4001), endpoint("2001:db8::7", 443),
                                      Endpoint{scoped, 9}, endpoint("::ffff:10.0.0.9", 1)};
  std::uint64_t n = 0;
  for (const Endpoint& remote : remotes) {
    ASSERT_FALSE(h.manager.add_connection(
        std::make_shared<FakeConnection>(testing::peer_id(++n), Direction::inbound, remote)));
  }
  ASSERT_TRUE(gater->tightened);
  gater->tightened();
  h.time->run_ready();  // the re-check runs on the executor
  ASSERT_EQ(gater->seen.size(), remotes.size());
  for (const Endpoint& remote : remotes) {
    EXPECT_NE(std::find(gater->seen.begin(), gater->seen.end(), remote), gater->seen.end())
        << remote.address.to_string() << " port " << remote.port;
  }
}

// A connection charged to one address under the per-address cap and reported from
// another gives the place back at the charged address when it goes.
TEST(PackedPool, ACapHeldAtAnotherAddressThanTheRemoteIsReleasedThere) {
  Config config = trim_config(0, 0);
  config.limits.subnets.ipv4_32 = 1;
  config.limits.subnets.exempt_loopback = false;
  ManagerHarness h(config);
  Admission admitted = h.manager.admit_inbound(endpoint("10.0.0.1"));
  ASSERT_TRUE(admitted);
  ASSERT_TRUE(h.manager.on_secured(admitted.reservation, testing::peer_id(1)));
  auto c = std::make_shared<FakeConnection>(testing::peer_id(1), Direction::inbound,
                                            endpoint("10.9.9.9"));
  ASSERT_TRUE(h.manager.add_admitted(c, std::move(admitted.reservation)));
  EXPECT_FALSE(h.manager.admit_inbound(endpoint("10.0.0.1")))
      << "the connection holds 10.0.0.1's only place";
  EXPECT_TRUE(h.manager.admit_inbound(endpoint("10.9.9.9")))
      << "the remote it reported holds no place";
  ASSERT_FALSE(h.manager.remove_connection(*c));
  EXPECT_EQ(h.manager.stats().capped_addresses, 0u);
  EXPECT_TRUE(h.manager.admit_inbound(endpoint("10.0.0.1"))) << "the place was given back";
}

}  // namespace
}  // namespace dep2p::connmgr
