// Unit tests for TagStore (docs/design.md, "Pool and tags" tag semantics without the pool).
#include "dep2p/connmgr/tag_store.hpp"

#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dep2p/connmgr/error.hpp"
#include "support/fake_connection.hpp"

namespace dep2p::connmgr {
namespace {

using testing::peer_id;
using Tags = std::vector<std::pair<std::string, int>>;

TEST(TagStore, UnknownPeerHasValueZeroAndNoTags) {
  TagStore store;
  EXPECT_EQ(store.value(peer_id(1)), 0);
  EXPECT_FALSE(store.tag_value(peer_id(1), "dht").has_value());
  EXPECT_TRUE(store.tags(peer_id(1)).empty());
  EXPECT_EQ(store.size(), std::size_t{0});
}

TEST(TagStore, TagSetsValueAndOverwrites) {
  TagStore store;
  const NodeId peer = peer_id(1);
  EXPECT_FALSE(store.tag(peer, "dht", 10));
  EXPECT_EQ(store.tag_value(peer, "dht"), std::optional<int>(10));
  EXPECT_EQ(store.value(peer), 10);
  EXPECT_FALSE(store.tag(peer, "dht", 3));
  EXPECT_EQ(store.tag_value(peer, "dht"), std::optional<int>(3));
  EXPECT_EQ(store.value(peer), 3) << "overwrite, not add";
  EXPECT_EQ(store.tags(peer), (Tags{{"dht", 3}}));
}

TEST(TagStore, ValueIsTheSumOfTheTags) {
  TagStore store;
  const NodeId peer = peer_id(1);
  store.tag(peer, "a", 10);
  store.tag(peer, "b", 20);
  store.tag(peer, "c", 5);
  EXPECT_EQ(store.value(peer), 35);
  store.tag(peer, "b", 1);
  EXPECT_EQ(store.value(peer), 16);
  store.untag(peer, "a");
  EXPECT_EQ(store.value(peer), 6);
}

TEST(TagStore, PeersAreIndependent) {
  TagStore store;
  store.tag(peer_id(1), "a", 10);
  store.tag(peer_id(2), "a", 7);
  EXPECT_EQ(store.value(peer_id(1)), 10);
  EXPECT_EQ(store.value(peer_id(2)), 7);
  EXPECT_EQ(store.size(), std::size_t{2});
}

TEST(TagStore, ValueIsSummedIn64Bits) {
  TagStore store;
  const NodeId peer = peer_id(1);
  store.tag(peer, "a", INT_MAX);
  store.tag(peer, "b", INT_MAX);
  store.tag(peer, "c", INT_MAX);
  EXPECT_EQ(store.value(peer), 3 * static_cast<std::int64_t>(INT_MAX));
  store.untag(peer, "b");
  EXPECT_EQ(store.value(peer), 2 * static_cast<std::int64_t>(INT_MAX));
}

TEST(TagStore, NegativeValuesAreSummed) {
  TagStore store;
  const NodeId peer = peer_id(1);
  store.tag(peer, "bad", -30);
  store.tag(peer, "good", 10);
  EXPECT_EQ(store.value(peer), -20);
  store.tag(peer, "min1", INT_MIN);
  store.tag(peer, "min2", INT_MIN);
  EXPECT_EQ(store.value(peer), -20 + 2 * static_cast<std::int64_t>(INT_MIN));
}

TEST(TagStore, UntagReturnsWhetherTheTagExisted) {
  TagStore store;
  const NodeId peer = peer_id(1);
  store.tag(peer, "a", 1);
  store.tag(peer, "b", 2);
  EXPECT_TRUE(store.untag(peer, "a"));
  EXPECT_FALSE(store.untag(peer, "a"));
  EXPECT_FALSE(store.untag(peer, "never"));
  EXPECT_FALSE(store.untag(peer_id(99), "b"));
  EXPECT_EQ(store.tags(peer), (Tags{{"b", 2}}));
  EXPECT_EQ(store.value(peer), 2);
}

TEST(TagStore, PeerLeftWithoutTagsIsForgotten) {
  TagStore store;
  store.tag(peer_id(1), "a", 1);
  store.tag(peer_id(1), "b", 2);
  store.tag(peer_id(2), "a", 3);
  EXPECT_EQ(store.size(), std::size_t{2});
  store.untag(peer_id(1), "a");
  EXPECT_EQ(store.size(), std::size_t{2});
  store.untag(peer_id(1), "b");
  EXPECT_EQ(store.size(), std::size_t{1});
  EXPECT_EQ(store.value(peer_id(1)), 0);
  EXPECT_TRUE(store.tags(peer_id(1)).empty());
}

TEST(TagStore, ZeroValuedTagStillCountsAsATag) {
  TagStore store;
  store.tag(peer_id(1), "zero", 0);
  EXPECT_EQ(store.size(), std::size_t{1});
  EXPECT_EQ(store.tag_value(peer_id(1), "zero"), std::optional<int>(0));
  EXPECT_TRUE(store.untag(peer_id(1), "zero"));
  EXPECT_EQ(store.size(), std::size_t{0});
}

TEST(TagStore, TagsAreListedInTheOrderFirstSet) {
  TagStore store;
  const NodeId peer = peer_id(1);
  store.tag(peer, "zeta", 1);
  store.tag(peer, "alpha", 2);
  store.tag(peer, "mid", 3);
  store.tag(peer, "zeta", 4);  // overwriting keeps the position
  EXPECT_EQ(store.tags(peer), (Tags{{"zeta", 4}, {"alpha", 2}, {"mid", 3}}));
}

TEST(TagStore, EraseForgetsEveryTagOfThePeer) {
  TagStore store;
  store.tag(peer_id(1), "a", 1);
  store.tag(peer_id(1), "b", 2);
  store.tag(peer_id(2), "a", 5);
  EXPECT_TRUE(store.erase(peer_id(1)));
  EXPECT_EQ(store.value(peer_id(1)), 0);
  EXPECT_TRUE(store.tags(peer_id(1)).empty());
  EXPECT_EQ(store.size(), std::size_t{1});
  EXPECT_EQ(store.value(peer_id(2)), 5);
  EXPECT_FALSE(store.erase(peer_id(1)));
  EXPECT_FALSE(store.erase(peer_id(3)));
}

TEST(TagStore, RetaggingAfterEraseStartsFresh) {
  TagStore store;
  store.tag(peer_id(1), "a", 100);
  store.erase(peer_id(1));
  store.tag(peer_id(1), "b", 1);
  EXPECT_EQ(store.value(peer_id(1)), 1);
  EXPECT_EQ(store.tags(peer_id(1)), (Tags{{"b", 1}}));
}

TEST(TagStore, UpsertStartsFromZeroForAnAbsentTag) {
  TagStore store;
  const NodeId peer = peer_id(1);
  int seen_old = -1;
  int new_value = -1;
  EXPECT_FALSE(store.upsert(
      peer, "count",
      [&](int old) {
        seen_old = old;
        return old + 5;
      },
      &new_value));
  EXPECT_EQ(seen_old, 0);
  EXPECT_EQ(new_value, 5);
  EXPECT_EQ(store.tag_value(peer, "count"), std::optional<int>(5));
  EXPECT_EQ(store.value(peer), 5);
}

TEST(TagStore, UpsertAppliesFnToTheOldValueAndReturnsTheNewOne) {
  TagStore store;
  const NodeId peer = peer_id(1);
  store.tag(peer, "count", 7);
  store.tag(peer, "other", 100);
  int new_value = 0;
  EXPECT_FALSE(store.upsert(
      peer, "count", [](int old) { return old * 3; }, &new_value));
  EXPECT_EQ(new_value, 21);
  EXPECT_EQ(store.tag_value(peer, "count"), std::optional<int>(21));
  EXPECT_EQ(store.value(peer), 121);
}

TEST(TagStore, UpsertWithoutOutParameterStillStores) {
  TagStore store;
  EXPECT_FALSE(store.upsert(peer_id(1), "x", [](int old) { return old - 4; }));
  EXPECT_EQ(store.value(peer_id(1)), -4);
}

TEST(TagStore, UpsertFnMayCallTheStoreWithoutDeadlock) {
  TagStore store;
  const NodeId peer = peer_id(1);
  store.tag(peer, "base", 40);
  store.tag(peer, "count", 1);
  int new_value = 0;
  EXPECT_FALSE(store.upsert(
      peer, "count",
      [&](int old) {
        // Reads and writes of other tags from inside fn must not deadlock.
        // (The write happens once, so even a store that retried on any change would end.)
        const auto base = store.value(peer);
        if (!store.tag_value(peer_id(2), "side")) store.tag(peer_id(2), "side", 9);
        return old + static_cast<int>(base);
      },
      &new_value));
  EXPECT_EQ(new_value, 42);
  EXPECT_EQ(store.value(peer_id(2)), 9);
}

TEST(TagStore, UpsertRetriesWhenTheTagChangesMeanwhile) {
  TagStore store;
  const NodeId peer = peer_id(1);
  store.tag(peer, "count", 5);
  std::vector<int> seen;
  int new_value = 0;
  EXPECT_FALSE(store.upsert(
      peer, "count",
      [&](int old) {
        seen.push_back(old);
        if (seen.size() == 1) store.tag(peer, "count", 100);  // a concurrent writer
        return old + 1;
      },
      &new_value));
  ASSERT_GE(seen.size(), std::size_t{2});
  EXPECT_EQ(seen.front(), 5);
  EXPECT_EQ(seen.back(), 100);
  EXPECT_EQ(new_value, 101);
  EXPECT_EQ(store.tag_value(peer, "count"), std::optional<int>(101));
  EXPECT_EQ(store.value(peer), 101);
}

TEST(TagStore, UpsertRetriesWhenTheTagIsRemovedMeanwhile) {
  TagStore store;
  const NodeId peer = peer_id(1);
  store.tag(peer, "count", 5);
  std::vector<int> seen;
  int new_value = 0;
  EXPECT_FALSE(store.upsert(
      peer, "count",
      [&](int old) {
        seen.push_back(old);
        if (seen.size() == 1) store.untag(peer, "count");
        return old + 1;
      },
      &new_value));
  ASSERT_GE(seen.size(), std::size_t{2});
  EXPECT_EQ(seen.back(), 0);
  EXPECT_EQ(new_value, 1);
  EXPECT_EQ(store.value(peer), 1);
}

TEST(TagStore, EmptyNameIsInvalidAndStoresNothing) {
  TagStore store;
  const NodeId peer = peer_id(1);
  EXPECT_EQ(store.tag(peer, "", 5), Errc::invalid_argument);
  bool called = false;
  int new_value = 123;
  EXPECT_EQ(store.upsert(
                peer, "",
                [&](int old) {
                  called = true;
                  return old + 1;
                },
                &new_value),
            Errc::invalid_argument);
  EXPECT_FALSE(called);
  EXPECT_EQ(store.size(), std::size_t{0});
  EXPECT_EQ(store.value(peer), 0);
  EXPECT_TRUE(store.tags(peer).empty());
  EXPECT_FALSE(store.untag(peer, ""));
}

TEST(TagStore, UpsertWithEmptyFunctionIsInvalidAndStoresNothing) {
  TagStore store;
  const NodeId peer = peer_id(1);
  EXPECT_EQ(store.upsert(peer, "x", std::function<int(int)>{}), Errc::invalid_argument);
  EXPECT_EQ(store.size(), std::size_t{0});
  store.tag(peer, "x", 3);
  EXPECT_EQ(store.upsert(peer, "x", nullptr), Errc::invalid_argument);
  EXPECT_EQ(store.tag_value(peer, "x"), std::optional<int>(3));
}

TEST(TagStore, ConcurrentTagAndUntagGiveExactSums) {
  TagStore store;
  constexpr int kPeers = 200;
  constexpr int kRounds = 50;
  auto worker = [&store](int which) {
    const std::string name = "t" + std::to_string(which);
    for (int round = 0; round < kRounds; ++round) {
      for (int i = 0; i < kPeers; ++i) {
        store.tag(peer_id(static_cast<std::uint64_t>(i)), name, (i + 1) * (which + 1) + round);
      }
      // Each thread removes its own tag from the peers of its parity, except on the last
      // round, so peers churn between tagged and forgotten while the other thread writes.
      for (int i = which; i < kPeers; i += 2) {
        if (round + 1 < kRounds) store.untag(peer_id(static_cast<std::uint64_t>(i)), name);
      }
    }
    for (int i = which; i < kPeers; i += 2) {
      store.untag(peer_id(static_cast<std::uint64_t>(i)), name);
    }
  };
  std::thread a(worker, 0);
  std::thread b(worker, 1);
  a.join();
  b.join();

  // Peer i keeps only the tag of the thread whose parity differs from i.
  constexpr int kLast = kRounds - 1;
  for (int i = 0; i < kPeers; ++i) {
    const int keeper = 1 - (i % 2);
    const std::int64_t expected = (i + 1) * (keeper + 1) + kLast;
    const NodeId peer = peer_id(static_cast<std::uint64_t>(i));
    EXPECT_EQ(store.value(peer), expected) << "peer " << i;
    EXPECT_EQ(store.tags(peer), (Tags{{"t" + std::to_string(keeper), static_cast<int>(expected)}}))
        << "peer " << i;
  }
  EXPECT_EQ(store.size(), static_cast<std::size_t>(kPeers));
}

TEST(TagStore, ConcurrentUpsertsOnOneTagLoseNoUpdate) {
  TagStore store;
  const NodeId peer = peer_id(1);
  constexpr int kIncrements = 20'000;
  auto worker = [&] {
    for (int i = 0; i < kIncrements; ++i) {
      store.upsert(peer, "counter", [](int old) { return old + 1; });
    }
  };
  std::thread a(worker);
  std::thread b(worker);
  a.join();
  b.join();
  EXPECT_EQ(store.tag_value(peer, "counter"), std::optional<int>(2 * kIncrements));
  EXPECT_EQ(store.value(peer), 2 * kIncrements);
}

}  // namespace
}  // namespace dep2p::connmgr
