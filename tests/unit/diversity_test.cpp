// The diversity rule of a trim (Config::diversity, src/trim/diversity.hpp) through the
// public API, in virtual time: which groups count together, that the salted choice is a
// node's own, the kept slots for groups, RTT and age, victims from the most represented
// group, and that protection and tags still decide first. Where a kept slot is tested, the
// same pool is also trimmed without that slot, so the test shows the slot made the
// difference.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "dep2p/connmgr/config.hpp"
#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/testing.hpp"
#include "net/netgroup.hpp"
#include "trim/diversity.hpp"

namespace dep2p::connmgr {
namespace {

using std::chrono::milliseconds;
using testing::FakeConnection;

NodeId id_of(std::uint64_t n) {
  std::array<std::uint8_t, 32> bytes{};
  for (int i = 0; i < 8; ++i)
    bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  bytes[31] = 0x5a;
  return *NodeId::try_from_bytes(std::span<const std::uint8_t>(bytes.data(), bytes.size()));
}

// A config whose trims run only when asked, with the rule on and only the slots given.
Config rule_config(std::uint32_t group_slots, std::uint32_t rtt_slots, std::uint32_t age_slots,
                   std::uint64_t salt = 7) {
  Config config;
  config.low_water = 1;
  config.high_water = 1000;
  config.grace_period = milliseconds(0);
  config.silence_period = std::chrono::hours(1);
  config.keepalive_interval = milliseconds(0);
  config.path_idle_timeout = milliseconds(0);
  config.limits.subnets.ipv4_24 = kUnlimited;
  config.limits.subnets.ipv4_32 = kUnlimited;
  config.diversity.enabled = true;
  config.diversity.group_slots = group_slots;
  config.diversity.rtt_slots = rtt_slots;
  config.diversity.age_slots = age_slots;
  config.diversity.salt = salt;
  return config;
}

// One node: its manager and the connections it was given, by name.
struct Node {
  explicit Node(Config config)
      : manager(time.io(), std::move(config), {.time_source = time.source()}) {}

  // A connection from `address`, peer `n`, added; its close reports back at once.
  std::shared_ptr<FakeConnection> connect(std::uint64_t n, const char* address,
                                          Direction direction = Direction::inbound) {
    auto c = std::make_shared<FakeConnection>(
        id_of(n), direction, Endpoint{boost::asio::ip::make_address(address), 4001});
    c->on_close = [this](FakeConnection& self, CloseReason reason) {
      manager.remove_connection(self, reason);
    };
    EXPECT_FALSE(manager.add_connection(c)) << address;
    conns[n] = c;
    return c;
  }
  // The peers (of those given) whose connection was closed.
  std::set<std::uint64_t> closed() const {
    std::set<std::uint64_t> out;
    for (const auto& [n, c] : conns) {
      if (c->closed()) out.insert(n);
    }
    return out;
  }
  std::set<std::uint64_t> open() const {
    std::set<std::uint64_t> out;
    for (const auto& [n, c] : conns) {
      if (!c->closed()) out.insert(n);
    }
    return out;
  }

  testing::VirtualTime time;
  ConnectionManager manager;
  std::map<std::uint64_t, std::shared_ptr<FakeConnection>> conns;
};

std::string v4(int a, int b, int c, int d) {
  return std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c) + "." +
         std::to_string(d);
}

// Eight peers of 10.1.0.0/16 (over eight /24s) connect first, six of six other /16s after
// them; eight are trimmed. Returns how many of the eight in 10.1/16 were closed.
std::size_t closed_of_the_big_group(bool rule_on) {
  Config config = rule_config(0, 0, 0);
  config.diversity.enabled = rule_on;
  Node node(config);
  for (int i = 0; i < 8; ++i) node.connect(static_cast<std::uint64_t>(i), v4(10, 1, i, 5).c_str());
  node.time.advance(milliseconds(10));
  for (int i = 0; i < 6; ++i)
    node.connect(100 + static_cast<std::uint64_t>(i), v4(20 + i, 7, 0, 1).c_str());
  EXPECT_EQ(node.manager.trim_connections(8), 8U);
  EXPECT_EQ(node.manager.connection_count(), 6U);
  std::size_t from_group = 0;
  for (std::uint64_t n : node.closed()) from_group += n < 8 ? 1 : 0;
  return from_group;
}

TEST(Diversity, VictimsComeFromTheMostRepresentedGroupFirst) {
  // The group goes down to one connection (seven victims) before any other is touched.
  EXPECT_GE(closed_of_the_big_group(true), 7U);
  // With the rule off the newest go: the six singles and two of the group.
  EXPECT_EQ(closed_of_the_big_group(false), 2U);
}

TEST(Diversity, IPv4MappedAddressesCountInTheirIPv4Group) {
  // 10.1/16 holds three plain and three IPv4-mapped connections: six together, against
  // five of one IPv6 /32. If the mapped ones were a group apart, the /32 would lead.
  Node node(rule_config(0, 0, 0));
  for (int i = 0; i < 3; ++i) node.connect(static_cast<std::uint64_t>(i), v4(10, 1, i, 9).c_str());
  for (int i = 0; i < 3; ++i) {
    node.connect(10 + static_cast<std::uint64_t>(i), ("::ffff:" + v4(10, 1, 50 + i, 9)).c_str());
  }
  for (int i = 0; i < 5; ++i) {
    node.connect(20 + static_cast<std::uint64_t>(i),
                 ("2001:db8:" + std::to_string(100 + i) + "::1").c_str());
  }
  ASSERT_EQ(node.manager.trim_connections(1), 1U);
  const std::uint64_t victim = *node.closed().begin();
  EXPECT_LT(victim, 20U) << "the victim came from the IPv6 /32, not the larger IPv4 group";
}

TEST(Diversity, IPv6GroupsByTheirThirtyTwoBitPrefix) {
  // Five IPv6 peers in distinct /48s of one /32 against four of one IPv4 /16: the /32 is
  // the larger group, so it gives the victim.
  Node node(rule_config(0, 0, 0));
  for (int i = 0; i < 5; ++i) {
    node.connect(static_cast<std::uint64_t>(i),
                 ("2001:db8:" + std::to_string(100 + i) + "::1").c_str());
  }
  for (int i = 0; i < 4; ++i)
    node.connect(10 + static_cast<std::uint64_t>(i), v4(30, 3, i, 1).c_str());
  ASSERT_EQ(node.manager.trim_connections(1), 1U);
  EXPECT_LT(*node.closed().begin(), 5U);
}

// Twenty peers of twenty groups, sixteen trimmed: the four left are the four groups kept
// for diversity, the first in the node's salted order.
std::set<std::uint64_t> kept_by_groups(std::uint64_t salt) {
  Node node(rule_config(4, 0, 0, salt));
  for (int i = 0; i < 20; ++i)
    node.connect(static_cast<std::uint64_t>(i), v4(40 + i, 2, 0, 1).c_str());
  EXPECT_EQ(node.manager.trim_connections(16), 16U);
  return node.open();
}

TEST(Diversity, TheSaltedGroupChoiceDiffersBetweenNodesAndIsStableWithinOne) {
  const std::set<std::uint64_t> first = kept_by_groups(1);
  ASSERT_EQ(first.size(), 4U);
  EXPECT_EQ(kept_by_groups(1), first) << "one salt, one choice";
  // Another node's salt keeps other groups.
  const std::set<std::uint64_t> second = kept_by_groups(2);
  ASSERT_EQ(second.size(), 4U);
  EXPECT_NE(second, first);

  // Within one node the choice holds across trims: the same peers come back at the same
  // addresses and the same four are kept again.
  Node node(rule_config(4, 0, 0, 1));
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 20; ++i) {
      const auto n = static_cast<std::uint64_t>(i);
      if (node.conns.contains(n) && !node.conns[n]->closed()) continue;
      node.connect(n, v4(40 + i, 2, 0, 1).c_str());
    }
    ASSERT_EQ(node.manager.trim_connections(16), 16U);
    EXPECT_EQ(node.open(), first) << "round " << round;
  }
}

TEST(Diversity, AGroupKeepsOnePeerForAllReasonsTogether) {
  // Two groups of five; 10.1/16 connected a minute before 10.2/16. Four age slots are
  // asked, but a group keeps one peer: the four oldest (all of 10.1) cannot all be kept,
  // so the victims alternate between the groups and each is left with exactly one (were
  // the four kept, the two left would both be of 10.1).
  Node node(rule_config(0, 0, 4));
  for (int i = 0; i < 5; ++i) node.connect(static_cast<std::uint64_t>(i), v4(10, 1, i, 1).c_str());
  node.time.advance(std::chrono::minutes(1));
  for (int i = 0; i < 5; ++i)
    node.connect(10 + static_cast<std::uint64_t>(i), v4(10, 2, i, 1).c_str());
  ASSERT_EQ(node.manager.trim_connections(8), 8U);
  const std::set<std::uint64_t> left = node.open();
  ASSERT_EQ(left.size(), 2U);
  EXPECT_LT(*left.begin(), 5U);
  EXPECT_GE(*left.rbegin(), 10U);
}

// Six peers of six groups; peer 5 also shares its group with peer 6. Peer 5 answers pings
// in 5 ms, the others in 80 ms. All but one are trimmed: with an RTT slot the fast peer is
// the one left.
std::set<std::uint64_t> left_after_rtt(std::uint32_t rtt_slots) {
  Config config = rule_config(0, rtt_slots, 0, 3);
  config.keepalive_interval = milliseconds(1000);
  config.keepalive_timeout = milliseconds(500);
  Node node(config);
  std::vector<std::pair<Connection::PingHandler, std::uint64_t>> waiting;
  auto answer_later = [&](std::uint64_t n) {
    return
        [&waiting, n](Connection::PingHandler done) { waiting.emplace_back(std::move(done), n); };
  };
  for (int i = 0; i < 6; ++i) {
    auto c = node.connect(static_cast<std::uint64_t>(i), v4(70 + i, 1, 0, 1).c_str());
    c->on_ping = answer_later(static_cast<std::uint64_t>(i));
  }
  node.connect(6, v4(75, 1, 9, 1).c_str())->on_ping = answer_later(6);
  for (int round = 0; round < 3; ++round) {
    node.time.advance(milliseconds(1000));  // pings go out
    node.time.advance(milliseconds(5));
    for (auto& [done, n] : waiting) {
      if (n == 5) done({});
    }
    node.time.advance(milliseconds(75));
    for (auto& [done, n] : waiting) {
      if (n != 5) done({});
    }
    waiting.clear();
  }
  EXPECT_EQ(node.manager.trim_connections(6), 6U);
  return node.open();
}

TEST(Diversity, AnRttSlotKeepsTheFastestPeer) {
  EXPECT_EQ(left_after_rtt(1), (std::set<std::uint64_t>{5}));
  // Without the slot the fast peer's group, the only one with two, gives the first victim
  // and the rest go by the salted order: under this salt the fast peer is not left.
  EXPECT_NE(left_after_rtt(0), (std::set<std::uint64_t>{5}));
}

// Six peers of six groups, peer 0 connected a minute before the others; all but one
// trimmed.
std::set<std::uint64_t> left_after_age(std::uint32_t age_slots) {
  Node node(rule_config(0, 0, age_slots, 3));
  node.connect(0, v4(80, 1, 0, 1).c_str());
  node.time.advance(std::chrono::minutes(1));
  for (int i = 1; i < 6; ++i)
    node.connect(static_cast<std::uint64_t>(i), v4(80 + i, 1, 0, 1).c_str());
  node.connect(6, v4(80, 1, 7, 1).c_str());  // peer 0's group leads with two
  EXPECT_EQ(node.manager.trim_connections(6), 6U);
  return node.open();
}

TEST(Diversity, AnAgeSlotKeepsTheLongestConnectedPeer) {
  EXPECT_EQ(left_after_age(1), (std::set<std::uint64_t>{0}));
  EXPECT_NE(left_after_age(0), (std::set<std::uint64_t>{0}));
}

TEST(Diversity, ProtectionAndTagsDecideBeforeGroups) {
  Node node(rule_config(0, 0, 0));
  // 10.1/16: eight peers, one protected and one tagged; six singles of other groups.
  for (int i = 0; i < 8; ++i) node.connect(static_cast<std::uint64_t>(i), v4(10, 1, i, 1).c_str());
  for (int i = 0; i < 6; ++i)
    node.connect(100 + static_cast<std::uint64_t>(i), v4(90 + i, 1, 0, 1).c_str());
  ASSERT_FALSE(node.manager.protect(id_of(0), "keep"));
  ASSERT_FALSE(node.manager.tag_peer(id_of(1), "useful", 10));
  // A single with a negative value goes before any diversity is weighed.
  ASSERT_FALSE(node.manager.tag_peer(id_of(105), "bad", -5));
  ASSERT_EQ(node.manager.trim_connections(9), 9U);
  const std::set<std::uint64_t> closed = node.closed();
  EXPECT_FALSE(closed.contains(0)) << "protected";
  EXPECT_FALSE(closed.contains(1)) << "tagged above the others";
  EXPECT_TRUE(closed.contains(105)) << "valued below the others";
  for (std::uint64_t n = 2; n < 8; ++n) EXPECT_TRUE(closed.contains(n)) << n;
  // Nine victims: the negative single, the six untagged of the big group, two singles.
  std::size_t singles = 0;
  for (std::uint64_t n : closed) singles += n >= 100 && n != 105 ? 1 : 0;
  EXPECT_EQ(singles, 2U);
}

// Four new peers of 10.1/16 in their grace period and six older singles: with a grace
// limit of one per group, the three later ones of 10.1 are candidates, and their group,
// the largest, gives the victims; without it the grace shelters all four.
std::set<std::uint64_t> closed_with_grace_limit(std::uint32_t grace_per_group) {
  Config config = rule_config(0, 0, 0);
  config.grace_period = std::chrono::seconds(10);
  config.diversity.grace_per_group = grace_per_group;
  Node node(config);
  for (int i = 0; i < 6; ++i)
    node.connect(100 + static_cast<std::uint64_t>(i), v4(50 + i, 1, 0, 1).c_str());
  node.time.advance(std::chrono::seconds(30));
  for (int i = 0; i < 4; ++i) {
    node.connect(static_cast<std::uint64_t>(i), v4(10, 1, i, 1).c_str());
    node.time.advance(milliseconds(100));
  }
  EXPECT_EQ(node.manager.trim_connections(3), 3U);
  return node.closed();
}

TEST(Diversity, AGraceLimitLeavesAGroupsLaterNewPeersToTheTrim) {
  EXPECT_EQ(closed_with_grace_limit(1), (std::set<std::uint64_t>{1, 2, 3}));
  const std::set<std::uint64_t> unlimited = closed_with_grace_limit(0);
  ASSERT_EQ(unlimited.size(), 3U);
  EXPECT_GE(*unlimited.begin(), 100U) << "in grace, the four are not candidates";
  // Two sheltered per group: only the last two are left to the trim, and one single goes.
  const std::set<std::uint64_t> two = closed_with_grace_limit(2);
  EXPECT_TRUE(two.contains(2) && two.contains(3) && !two.contains(0) && !two.contains(1));
}

// The rule restated plainly, for one connection per peer and no streams: the victims of
// trim_connections(wanted) among `peers` (docs/eclipse.md, "The rule").
struct RefPeer {
  std::uint64_t n;
  detail::NetGroup group;
  std::int64_t value;
  bool outbound;
  std::int64_t first_seen;  // ms; distinct
  bool candidate;           // not protected, out of grace
};

std::set<std::uint64_t> reference_victims(const std::vector<RefPeer>& peers, std::size_t wanted,
                                          const Config& config) {
  const detail::SipKey salt = detail::DiversityRule::from(config.diversity, 0)->salt;
  auto salted = [&](const RefPeer& p) { return detail::keyed_group(p.group, salt); };
  // The default order: lower value, inbound before outbound, newer first.
  auto before = [](const RefPeer* a, const RefPeer* b) {
    if (a->value != b->value) return a->value < b->value;
    if (a->outbound != b->outbound) return !a->outbound;
    return a->first_seen > b->first_seen;
  };
  std::vector<const RefPeer*> order;
  for (const RefPeer& p : peers) {
    if (p.candidate) order.push_back(&p);
  }
  std::sort(order.begin(), order.end(), before);
  std::set<std::uint64_t> victims;
  std::size_t at = 0;
  while (victims.size() < wanted) {
    std::size_t end = at;
    while (end < order.size() && order[end]->value == order[at]->value) ++end;
    if (victims.size() + (end - at) <= wanted) {
      for (std::size_t k = at; k < end; ++k) victims.insert(order[k]->n);
      at = end;
      continue;
    }
    // The boundary value's peers: kept slots, then victims by group.
    const std::vector<const RefPeer*> equals(order.begin() + static_cast<std::ptrdiff_t>(at),
                                             order.begin() + static_cast<std::ptrdiff_t>(end));
    std::set<const RefPeer*> kept;
    std::set<detail::NetGroup> kept_groups;
    const std::size_t budget = equals.size() / 2;
    std::vector<const RefPeer*> by_group = equals;
    std::sort(by_group.begin(), by_group.end(), [&](const RefPeer* a, const RefPeer* b) {
      if (salted(*a) != salted(*b)) return salted(*a) > salted(*b);
      return before(b, a);  // the most valued first
    });
    for (const RefPeer* p : by_group) {
      if (kept_groups.size() == config.diversity.group_slots || kept.size() == budget) break;
      if (kept_groups.insert(p->group).second) kept.insert(p);
    }
    std::vector<const RefPeer*> by_age = equals;
    std::sort(by_age.begin(), by_age.end(),
              [](const RefPeer* a, const RefPeer* b) { return a->first_seen < b->first_seen; });
    std::size_t aged = 0;
    for (const RefPeer* p : by_age) {
      if (aged == config.diversity.age_slots || kept.size() == budget) break;
      if (kept_groups.insert(p->group).second) {
        kept.insert(p);
        ++aged;
      }
    }
    std::map<detail::NetGroup, std::size_t> count;
    for (const RefPeer& p : peers) {
      const bool equal = p.candidate && p.value == equals.front()->value;
      if (equal || !p.candidate) ++count[p.group];
    }
    std::vector<const RefPeer*> open;
    for (const RefPeer* p : equals) {
      if (!kept.contains(p)) open.push_back(p);
    }
    while (victims.size() < wanted && !open.empty()) {
      // The group of the most connections (then the higher salted key); its first member
      // in the default order.
      std::size_t pick = 0;
      for (std::size_t k = 1; k < open.size(); ++k) {
        const RefPeer& a = *open[k];
        const RefPeer& b = *open[pick];
        const auto ka = std::make_pair(count[a.group], salted(a));
        const auto kb = std::make_pair(count[b.group], salted(b));
        if (ka > kb || (ka == kb && before(&a, &b))) pick = k;
      }
      victims.insert(open[pick]->n);
      --count[open[pick]->group];
      open.erase(open.begin() + static_cast<std::ptrdiff_t>(pick));
    }
    for (const RefPeer* p : equals) {  // the kept ones last, in the default order
      if (victims.size() < wanted && kept.contains(p)) victims.insert(p->n);
    }
    break;
  }
  return victims;
}

TEST(Diversity, AgreesWithThePlainStatementOfTheRuleOnRandomPools) {
  std::mt19937_64 rng(2026);
  auto below = [&](std::uint64_t n) { return static_cast<std::uint64_t>(rng() % n); };
  for (int round = 0; round < 300; ++round) {
    Config config = rule_config(static_cast<std::uint32_t>(below(4)), 0,
                                static_cast<std::uint32_t>(below(4)), below(1'000'000) + 1);
    config.grace_period = std::chrono::seconds(10);
    Node node(config);
    std::vector<RefPeer> peers;
    const std::size_t n = 4 + below(40);
    const std::size_t young_from = n - below(n / 3 + 1);
    for (std::size_t i = 0; i < n; ++i) {
      if (i == young_from) node.time.advance(std::chrono::seconds(20));  // the rest in grace
      node.time.advance(milliseconds(1));
      // Few groups, so that groups are large and their counts tie: three /16s and an
      // IPv6 /32, with mapped addresses among the IPv4 ones.
      const std::uint64_t g = below(4);
      const std::string address =
          g == 3 ? "2001:db8:" + std::to_string(below(50)) + "::" + std::to_string(i + 1)
                 : (below(3) == 0 ? "::ffff:" : "") + v4(10, static_cast<int>(g),
                                                         static_cast<int>(below(200)),
                                                         static_cast<int>(i + 1));
      const bool outbound = below(2) == 0;
      node.connect(i, address.c_str(), outbound ? Direction::outbound : Direction::inbound);
      RefPeer p{
          i,
          detail::network_group(boost::asio::ip::make_address(address), {}),
          static_cast<std::int64_t>(below(3)),
          outbound,
          static_cast<std::int64_t>(
              std::chrono::duration_cast<milliseconds>(node.time.now().time_since_epoch()).count()),
          i < young_from};
      if (p.value != 0) {
        ASSERT_FALSE(node.manager.tag_peer(id_of(i), "v", static_cast<TagValue>(p.value)));
      }
      if (below(8) == 0) {
        ASSERT_FALSE(node.manager.protect(id_of(i), "p"));
        p.candidate = false;
      }
      peers.push_back(p);
    }
    if (young_from == n) node.time.advance(std::chrono::seconds(20));  // none in grace
    std::size_t candidates = 0;
    for (const RefPeer& p : peers) candidates += p.candidate ? 1 : 0;
    if (candidates == 0) continue;
    const std::size_t wanted = 1 + below(candidates);
    const std::set<std::uint64_t> expected = reference_victims(peers, wanted, config);
    ASSERT_EQ(node.manager.trim_connections(wanted), wanted) << "round " << round;
    ASSERT_EQ(node.closed(), expected)
        << "round " << round << ", " << n << " peers, " << wanted << " wanted";
  }
}

TEST(Diversity, ConfigRejectsPrefixLengthsOutOfRangeNamingTheField) {
  Config config;
  config.diversity.ipv4_prefix = 33;
  auto error = config.validate();
  ASSERT_TRUE(error);
  EXPECT_EQ(error->field, "diversity.ipv4_prefix");
  config = Config{};
  config.diversity.ipv6_prefix = 0;
  error = config.validate();
  ASSERT_TRUE(error);
  EXPECT_EQ(error->field, "diversity.ipv6_prefix");
  config = Config{};
  config.diversity.loopback_v4_prefix = 7;
  error = config.validate();
  ASSERT_TRUE(error);
  EXPECT_EQ(error->field, "diversity.loopback_v4_prefix");
  EXPECT_FALSE(Config{}.validate());
}

}  // namespace
}  // namespace dep2p::connmgr
