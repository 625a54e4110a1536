// The node trim's greedy over realm pools (src/realm/realm_greedy.hpp and
// realm_by_level.hpp): the level-at-a-time run must choose exactly what the step-by-step
// one chooses when no peer is in two realms.
#include "realm/realm_greedy.hpp"
#include "realm/realm_by_level.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "trim/score_key.hpp"

namespace dep2p::connmgr::detail::realm_greedy {
namespace {

// One random node trim: the pools, their candidates dealt into one array, the stakes.
struct Case {
  std::vector<Pool> pools;
  std::vector<Contender> candidates;
  std::vector<Stake> stakes;
  std::vector<StakeEntry> entries;  // stays empty: every peer in one pool
  std::size_t target = 0;
  int phases = 2;
};

Case random_case(std::mt19937& rng) {
  auto pick = [&](std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
  };
  Case c;
  const std::size_t realms = pick(1, 8);
  const std::size_t peers = pick(1, 400);
  // Narrow values make long runs of ties; wide ones defeat the counting sort.
  const std::uint64_t values = pick(0, 2) == 0 ? 1'000'000 : pick(1, 12);
  c.pools.resize(realms + 1);
  std::vector<std::vector<Contender>> dealt(realms + 1);
  std::size_t connections = 0;
  c.stakes.resize(peers);
  for (std::uint32_t i = 0; i < peers; ++i) {
    const auto pool = static_cast<std::uint32_t>(pick(0, 3) == 0 ? 0 : pick(1, realms));
    const auto bound = static_cast<std::uint32_t>(pool == 0 ? 0 : pick(1, 3));
    const auto count = static_cast<std::uint32_t>(bound + pick(pool == 0 ? 1 : 0, 1));
    c.stakes[i] = Stake{pool, bound, 0, 0};
    c.pools[pool].count += bound;
    connections += count;
    // The default key's activity: has streams, outbound only, stream count.
    const std::uint64_t streams = pick(0, 2);
    const std::uint64_t activity =
        (std::uint64_t{streams > 0} << 63) | (pick(0, 1) << 62) | streams;
    const Contender contender =
        Contender::of(pick(0, values - 1), activity, pick(0, 3), i, count, bound);
    EXPECT_EQ(contender.activity(), activity);
    dealt[pool].push_back(contender);
  }
  for (std::size_t p = 1; p <= realms; ++p) {
    Pool& pool = c.pools[p];
    pool.count += pick(0, 4);  // bound connections that are not candidates
    pool.share = pick(0, pool.count);
    pool.reserve = pick(0, pool.share);
  }
  std::uint32_t offset = 0;
  for (std::size_t p = 0; p <= realms; ++p) {
    std::shuffle(dealt[p].begin(), dealt[p].end(), rng);
    Pool& pool = c.pools[p];
    pool.begin = pool.sorted = pool.head = offset;
    offset += static_cast<std::uint32_t>(dealt[p].size());
    pool.end = offset;
    c.candidates.insert(c.candidates.end(), dealt[p].begin(), dealt[p].end());
  }
  c.target = pick(1, connections);
  c.phases = pick(0, 3) == 0 ? 3 : 2;
  return c;
}

struct Outcome {
  std::size_t covered;
  std::vector<std::uint32_t> order;
  Contender last{};
  std::vector<std::uint8_t> fate;
  std::vector<std::size_t> counts;
};

template <typename Greedy>
Outcome run(Case c, Greedy greedy) {  // by value: each run works on its own copy
  Outcome out;
  out.fate.assign(c.stakes.size(), 0);
  out.covered = greedy(Run{c.pools, c.candidates.data(), c.stakes.data(), c.entries, out.fate,
                           c.target, c.phases, &out.order, &out.last});
  for (const Pool& pool : c.pools) out.counts.push_back(pool.count);
  return out;
}

TEST(RealmGreedy, ByLevelTakesWhatStepwiseTakesWithTheSameLastPeer) {
  std::mt19937 rng(20261122);
  std::size_t wide = 0;
  std::size_t forced = 0;
  std::size_t reached = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    const Case c = random_case(rng);
    const Outcome stepped = run(c, stepwise);
    const Outcome levelled = run(c, by_level);
    SCOPED_TRACE(testing::Message() << "trial " << trial);
    ASSERT_EQ(levelled.covered, stepped.covered);
    ASSERT_EQ(levelled.counts, stepped.counts);
    ASSERT_EQ(levelled.order.size(), stepped.order.size());
    if (stepped.covered >= c.target) {
      // The last peer is the one an exact trim may take in part. (Short of the target,
      // every peer ranked goes whole, and the order does not matter.)
      ASSERT_EQ(levelled.order.back(), stepped.order.back());
      ASSERT_EQ(levelled.last.index, stepped.order.back());
      ASSERT_EQ(stepped.last.index, stepped.order.back());
    }
    std::vector<std::uint32_t> a = stepped.order;
    std::vector<std::uint32_t> b = levelled.order;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    ASSERT_EQ(b, a);
    for (std::size_t i = 0; i < c.stakes.size(); ++i) {
      ASSERT_EQ(levelled.fate[i] == kTaken, stepped.fate[i] == kTaken) << "peer " << i;
    }
    wide +=
        c.candidates.size() > 64 && std::any_of(c.candidates.begin(), c.candidates.end(),
                                                [](const Contender& x) { return x.value > 1000; });
    forced += c.phases == 3;
    reached += stepped.covered >= c.target;
  }
  // The cases reach the paths they are meant to: wide values, forced trims, and both
  // outcomes of the target.
  EXPECT_GT(wide, 100u);
  EXPECT_GT(forced, 300u);
  EXPECT_GT(reached, 300u);
  EXPECT_LT(reached, 2900u);
}

// A contender orders as the default key it was made from, in a normal trim and in an
// emergency (where more streams go first, and a peer without streams still goes before
// one with streams).
TEST(RealmGreedy, AContenderOrdersAsItsDefaultKeyInBothOrders) {
  std::mt19937 rng(11);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (const bool emergency : {false, true}) {
    for (int i = 0; i < 20'000; ++i) {
      PeerSnapshot a;
      PeerSnapshot b;
      for (PeerSnapshot* p : {&a, &b}) {
        p->value = pick(0, 1);
        p->streams = static_cast<std::uint32_t>(pick(0, 1) == 0 ? pick(0, 3) : pick(0, 1'000'000));
        p->has_inbound = pick(0, 1) == 0;
      }
      const RankKey ka = key_of(a, 1, emergency);
      const RankKey kb = key_of(b, 2, emergency);
      const Contender ca = Contender::of(ka.value, ka.activity, ka.newer, 1, 1, 1);
      const Contender cb = Contender::of(kb.value, kb.activity, kb.newer, 2, 1, 1);
      ASSERT_EQ(ka < kb, ca < cb) << "emergency " << emergency << ": streams " << a.streams << " / "
                                  << b.streams;
      ASSERT_EQ(ca.activity(), ka.activity & ((std::uint64_t{3} << 62) | 0xffff'ffffu));
    }
  }
}

}  // namespace
}  // namespace dep2p::connmgr::detail::realm_greedy
