// The per-group connection cap (DiversityConfig::max_per_group, docs/eclipse.md): the
// counter (src/admission/subnet_counter.hpp) and the admission stages that charge it,
// admit_inbound and check_dial_addr. Time is virtual.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "admission/subnet_counter.hpp"
#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/gater.hpp"
#include "net/netgroup.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using boost::asio::ip::address;
using detail::GroupCap;
using detail::NetGroup;
using detail::SubnetCounter;
using testing::endpoint;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

address ip(const char* text) { return boost::asio::ip::make_address(text); }

GroupCap cap_of(std::size_t max) { return GroupCap{detail::GroupRule{}, max}; }

NetGroup group_of(const char* text) { return detail::network_group(ip(text), detail::GroupRule{}); }

// ---------------------------------------------------------------------------------------
// The counter

TEST(GroupCap, AThirdConnectionFromOneSlash16IsRefusedWhateverItsSlash24) {
  SubnetCounter capped({}, cap_of(2));
  SubnetCounter uncapped;
  for (SubnetCounter* counter : {&capped, &uncapped}) {
    EXPECT_EQ(counter->try_add(ip("10.1.2.3"), false), std::nullopt);
    EXPECT_EQ(counter->try_add(ip("10.1.9.9"), false), std::nullopt);
  }
  EXPECT_EQ(capped.try_add(ip("10.1.200.1"), false), "group 10.1.0.0/16 holds 2 of 2 connections");
  EXPECT_EQ(uncapped.try_add(ip("10.1.200.1"), false), std::nullopt) << "no cap: admitted";
  EXPECT_EQ(capped.try_add(ip("10.2.0.1"), false), std::nullopt) << "another group has room";
  EXPECT_EQ(capped.group_count(group_of("10.1.0.0")), 2U);
  ASSERT_TRUE(capped.remove(ip("10.1.9.9")));
  EXPECT_EQ(capped.try_add(ip("10.1.200.1"), false), std::nullopt) << "a removal frees a place";
}

TEST(GroupCap, OutboundConnectionsAreChargedToTheirGroupOnly) {
  SubnetCaps caps;
  caps.ipv4_32 = 1;
  caps.ipv4_24 = 1;
  SubnetCounter counter(caps, cap_of(3));
  // The address and /24 caps are inbound ones: two dials to one address pass them.
  EXPECT_EQ(counter.try_add(ip("10.1.2.3"), false, Direction::outbound), std::nullopt);
  EXPECT_EQ(counter.try_add(ip("10.1.2.3"), false, Direction::outbound), std::nullopt);
  EXPECT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt) << "inbound: its caps were empty";
  EXPECT_EQ(counter.try_add(ip("10.1.7.7"), false, Direction::outbound),
            "group 10.1.0.0/16 holds 3 of 3 connections");
  EXPECT_EQ(counter.try_add(ip("10.1.7.7"), false), "group 10.1.0.0/16 holds 3 of 3 connections");
  EXPECT_EQ(counter.connections(ip("10.1.2.3")), 3U);
  ASSERT_TRUE(counter.remove(ip("10.1.2.3"), Direction::outbound));
  EXPECT_EQ(counter.try_add(ip("10.1.2.3"), false), "address 10.1.2.3 holds 1 of 1 connections")
      << "the outbound removal left the inbound charge in place";
  EXPECT_EQ(counter.try_add(ip("10.1.7.7"), false), std::nullopt);
  ASSERT_TRUE(counter.remove(ip("10.1.7.7")));
  ASSERT_TRUE(counter.remove(ip("10.1.2.3")));
  ASSERT_TRUE(counter.remove(ip("10.1.2.3"), Direction::outbound));
  EXPECT_EQ(counter.tracked(), 0U);
}

// Inbound and outbound charges are released apart: closing an inbound connection frees
// the inbound place it held, whatever outbound connection the address still has.
TEST(GroupCap, ClosingAConnectionReleasesAChargeOfItsOwnDirection) {
  SubnetCaps caps;
  caps.overrides = {{"10.5.0.0/16", 1}};
  SubnetCounter counter(caps, cap_of(2));
  ASSERT_EQ(counter.try_add(ip("10.5.1.1"), false), std::nullopt);
  ASSERT_EQ(counter.try_add(ip("10.5.1.1"), false, Direction::outbound), std::nullopt)
      << "an override address is not charged to its group";
  ASSERT_TRUE(counter.remove(ip("10.5.1.1")));
  EXPECT_EQ(counter.try_add(ip("10.5.1.1"), false), std::nullopt)
      << "the override's place is free although the outbound connection lives";
  ASSERT_TRUE(counter.remove(ip("10.5.1.1")));
  EXPECT_FALSE(counter.remove(ip("10.5.1.1"))) << "no inbound charge is left";
  ASSERT_TRUE(counter.remove(ip("10.5.1.1"), Direction::outbound));
  EXPECT_FALSE(counter.remove(ip("10.5.1.1"), Direction::outbound));
  EXPECT_EQ(counter.tracked(), 0U);
}

TEST(GroupCap, ANarrowerFullCapIsNamedBeforeTheGroup) {
  SubnetCaps caps;
  caps.ipv4_24 = 1;
  SubnetCounter counter(caps, cap_of(1));
  ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  EXPECT_EQ(counter.try_add(ip("10.1.2.4"), false), "subnet 10.1.2.0/24 holds 1 of 1 connections");
  EXPECT_EQ(counter.try_add(ip("10.1.3.4"), false), "group 10.1.0.0/16 holds 1 of 1 connections");
}

TEST(GroupCap, OverridesAllowedAddressesAndExemptLoopbackAreNotCharged) {
  SubnetCaps caps;
  caps.overrides = {{"10.5.0.0/16", 100}};
  SubnetCounter counter(caps, cap_of(1));
  for (Direction d : {Direction::inbound, Direction::outbound, Direction::inbound}) {
    EXPECT_EQ(counter.try_add(ip("10.5.1.1"), false, d), std::nullopt) << "override prefix";
    EXPECT_EQ(counter.try_add(ip("10.6.1.1"), true, d), std::nullopt) << "allow-listed";
    EXPECT_EQ(counter.try_add(ip("127.0.0.1"), false, d), std::nullopt) << "loopback";
  }
  EXPECT_EQ(counter.group_count(group_of("10.5.0.0")), 0U);
  EXPECT_EQ(counter.group_count(group_of("10.6.0.0")), 0U);
  EXPECT_EQ(counter.try_add(ip("10.6.1.1"), false), std::nullopt) << "the group's place is free";

  SubnetCaps strict;
  strict.exempt_loopback = false;
  SubnetCounter loopback(strict, cap_of(1));
  EXPECT_EQ(loopback.try_add(ip("127.0.0.1"), false), std::nullopt);
  EXPECT_EQ(loopback.try_add(ip("127.0.0.2"), false, Direction::outbound),
            "group 127.0.0.0/24 holds 1 of 1 connections");
  EXPECT_EQ(loopback.try_add(ip("127.0.1.1"), false, Direction::outbound), std::nullopt)
      << "another /24 of 127/8 is another group";
}

TEST(GroupCap, MappedAddressesShareTheirIpv4GroupAndIpv6GroupsBySlash32) {
  SubnetCounter counter({}, cap_of(1));
  ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  EXPECT_EQ(counter.try_add(ip("::ffff:10.1.99.1"), false, Direction::outbound),
            "group 10.1.0.0/16 holds 1 of 1 connections");
  ASSERT_EQ(counter.try_add(ip("2001:db8:1::1"), false), std::nullopt);
  EXPECT_EQ(counter.try_add(ip("2001:db8:ffff::1"), false),
            "group 2001:db8::/32 holds 1 of 1 connections");
  EXPECT_EQ(counter.try_add(ip("2001:db9::1"), false), std::nullopt);
}

// A plain statement of the cap: every charge is listed with its direction and whether it
// counts in its group (not allow-listed, not loopback, not in an override prefix); a group
// holds the counted ones whose address is in it. When a connection closes, the counter
// releases a charge of its address and direction, one that does not count first (the
// charges of an address whose allow-list status changed need not be the closing
// connection's own).
struct Charged {
  address at;
  Direction direction;
  bool capped;
};

TEST(GroupCap, RandomSequencesAgreeWithAPlainStatementAndEndAtZero) {
  const std::vector<const char*> pool = {
      "10.1.2.3",  "10.1.2.4", "10.1.77.1",     "10.2.0.1",      "::ffff:10.2.9.9",
      "127.0.0.1", "10.9.0.1", "2001:db8:1::1", "2001:db8:2::1", "2001:db9::1"};
  constexpr std::size_t kMax = 3;
  std::size_t refusals = 0, removals_of_another_charge = 0;
  for (unsigned seed = 0; seed < 1000; ++seed) {
    std::mt19937 rng(seed);
    SubnetCaps caps;  // the inbound caps far above the group's: only the group refuses
    caps.ipv4_32 = 100;
    caps.ipv4_24 = 100;
    caps.overrides = {{"10.9.0.0/16", 100}};
    SubnetCounter counter(caps, cap_of(kMax));
    const detail::Prefix override = detail::prefix_of(detail::host_prefix(ip("10.9.0.0")), 16);
    std::vector<Charged> live;   // the charges the counter holds
    std::vector<Charged> conns;  // the connections they were made for
    std::set<address> allowed;
    auto held = [&](const NetGroup& g) {
      return static_cast<std::size_t>(
          std::count_if(live.begin(), live.end(), [&](const Charged& c) {
            return c.capped && detail::network_group(c.at, detail::GroupRule{}) == g;
          }));
    };
    std::uniform_int_distribution<std::size_t> pick(0, pool.size() - 1);
    std::uniform_int_distribution<int> percent(0, 99);
    for (int op = 0; op < 80; ++op) {
      const int roll = percent(rng);
      if (roll < 10) {
        // The allow list changes between an address's admissions.
        const address a = detail::normalize(ip(pool[pick(rng)]));
        if (!allowed.erase(a)) allowed.insert(a);
      } else if (roll < 60) {
        const address a = detail::normalize(ip(pool[pick(rng)]));
        const Direction d = percent(rng) < 50 ? Direction::inbound : Direction::outbound;
        const bool exempt = allowed.contains(a) || a.is_loopback() ||
                            detail::prefix_of(detail::host_prefix(a), 16) == override;
        const NetGroup g = detail::network_group(a, detail::GroupRule{});
        std::optional<std::string> expected;
        if (!exempt && held(g) >= kMax) {
          expected = "group " + detail::to_string(g) + " holds " + std::to_string(held(g)) +
                     " of " + std::to_string(kMax) + " connections";
        }
        ASSERT_EQ(counter.try_add(a, allowed.contains(a), d), expected)
            << "seed " << seed << " op " << op << " " << a;
        if (expected) {
          ++refusals;
        } else {
          live.push_back({a, d, !exempt});
          conns.push_back({a, d, !exempt});
        }
      } else if (!conns.empty()) {
        // A connection closes; the counter releases a charge of its address by the rule.
        std::uniform_int_distribution<std::size_t> which(0, conns.size() - 1);
        const std::size_t i = which(rng);
        const Charged gone = conns[i];
        conns.erase(conns.begin() + static_cast<std::ptrdiff_t>(i));
        ASSERT_TRUE(counter.remove(gone.at, gone.direction)) << "seed " << seed << " op " << op;
        auto of = [&](bool capped) {
          return std::find_if(live.begin(), live.end(), [&](const Charged& c) {
            return c.at == gone.at && c.direction == gone.direction && c.capped == capped;
          });
        };
        auto it = of(false);
        if (it == live.end()) it = of(true);
        ASSERT_NE(it, live.end());
        if (it->capped != gone.capped) ++removals_of_another_charge;
        live.erase(it);
      }
      for (const char* text : pool) {
        const NetGroup g = detail::network_group(ip(text), detail::GroupRule{});
        ASSERT_EQ(counter.group_count(g), held(g))
            << "seed " << seed << " op " << op << " " << text;
      }
    }
    for (const Charged& c : conns) ASSERT_TRUE(counter.remove(c.at, c.direction));
    ASSERT_EQ(counter.tracked(), 0U) << "seed " << seed;
  }
  EXPECT_GT(refusals, 1000U);
  EXPECT_GT(removals_of_another_charge, 10U);
}

// ---------------------------------------------------------------------------------------
// Admission

Config group_capped(std::size_t max) {
  Config config = trim_config(0, 0);  // no trimming: admission alone
  config.diversity.max_per_group = max;
  return config;
}

std::shared_ptr<FakeConnection> add_inbound(ConnectionManager& m, std::uint64_t peer,
                                            const char* from) {
  Admission admitted = m.admit_inbound(endpoint(from));
  if (!admitted || !m.on_secured(admitted.reservation, peer_id(peer))) return nullptr;
  auto c = std::make_shared<FakeConnection>(peer_id(peer), Direction::inbound, endpoint(from));
  if (!m.add_admitted(c, std::move(admitted.reservation))) return nullptr;
  return c;
}

std::shared_ptr<FakeConnection> add_outbound(ConnectionManager& m, std::uint64_t peer,
                                             const char* to) {
  Admission admitted = m.check_dial_addr(peer_id(peer), endpoint(to));
  if (!admitted || !m.on_secured(admitted.reservation, peer_id(peer))) return nullptr;
  auto c = std::make_shared<FakeConnection>(peer_id(peer), Direction::outbound, endpoint(to));
  if (!m.add_admitted(c, std::move(admitted.reservation))) return nullptr;
  return c;
}

TEST(GroupCap, AdmissionRefusesAThirdConnectionFromOneGroupInEitherDirection) {
  ManagerHarness h(group_capped(2));
  auto in = add_inbound(h.manager, 1, "10.1.2.3");
  auto out = add_outbound(h.manager, 2, "10.1.50.1");
  ASSERT_NE(in, nullptr);
  ASSERT_NE(out, nullptr);

  Admission third_in = h.manager.admit_inbound(endpoint("10.1.99.1"));
  EXPECT_EQ(third_in.error, Errc::limit_exceeded);
  EXPECT_EQ(third_in.refusal.reason, RefusalReason::subnet_cap);
  EXPECT_EQ(third_in.refusal.stage, Stage::accept);
  EXPECT_EQ(third_in.refusal.scope, "group 10.1.0.0/16");
  EXPECT_EQ(third_in.refusal.limit, "group cap");
  EXPECT_EQ(third_in.refusal.message,
            "inbound refused: group 10.1.0.0/16 holds 2 of 2 connections");
  Admission third_out = h.manager.check_dial_addr(peer_id(3), endpoint("10.1.0.9"));
  EXPECT_EQ(third_out.error, Errc::limit_exceeded);
  EXPECT_EQ(third_out.refusal.stage, Stage::dial_addr);
  EXPECT_EQ(third_out.refusal.scope, "group 10.1.0.0/16");
  EXPECT_NE(add_outbound(h.manager, 4, "10.2.0.1"), nullptr) << "another group has room";
  EXPECT_EQ(
      h.manager.stats().refusals_by_reason[static_cast<std::size_t>(RefusalReason::subnet_cap)],
      2U);

  // Closing either connection gives its place back.
  ASSERT_FALSE(h.manager.remove_connection(*out));
  EXPECT_NE(add_inbound(h.manager, 5, "10.1.99.1"), nullptr);
  ASSERT_FALSE(h.manager.remove_connection(*in));
  EXPECT_NE(add_outbound(h.manager, 6, "10.1.0.9"), nullptr);
}

TEST(GroupCap, AReservationDroppedBeforeItsAddGivesItsPlaceBack) {
  ManagerHarness h(group_capped(1));
  {
    Admission dial = h.manager.check_dial_addr(peer_id(1), endpoint("10.1.2.3"));
    ASSERT_TRUE(dial);
    EXPECT_FALSE(h.manager.admit_inbound(endpoint("10.1.4.4"))) << "the pending dial holds it";
  }
  EXPECT_EQ(h.manager.stats().capped_addresses, 0U);
  EXPECT_NE(add_inbound(h.manager, 2, "10.1.4.4"), nullptr);
}

TEST(GroupCap, WithoutACapDialsAreNotCountedAndTheGroupIsUnbounded) {
  ManagerHarness h(group_capped(0));
  std::vector<std::shared_ptr<FakeConnection>> open;
  for (std::uint64_t i = 0; i < 10; ++i) {
    open.push_back(add_outbound(h.manager, i, "10.1.2.3"));
    ASSERT_NE(open.back(), nullptr) << i;
  }
  EXPECT_EQ(h.manager.stats().capped_addresses, 0U) << "outbound connections charge nothing";
  EXPECT_NE(add_inbound(h.manager, 20, "10.1.9.9"), nullptr);
}

// Lets one address past the caps, as an allow list would.
class AllowOne final : public Gater {
 public:
  bool bypasses_caps(const address& a) override { return a == ip("10.1.2.3"); }
};

TEST(GroupCap, AnAllowListedAddressIsNotCharged) {
  Dependencies deps;
  deps.gater = std::make_shared<AllowOne>();
  ManagerHarness h(group_capped(1), deps);
  auto a = add_outbound(h.manager, 1, "10.1.2.3");
  auto b = add_inbound(h.manager, 2, "10.1.2.3");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(add_inbound(h.manager, 3, "10.1.8.8"), nullptr) << "the group's place is still free";
  EXPECT_FALSE(h.manager.check_dial_addr(peer_id(4), endpoint("10.1.9.9")));
  for (const auto& c : {a, b}) ASSERT_FALSE(h.manager.remove_connection(*c));
}

TEST(GroupCap, ConfigDescribesTheCapWhenSet) {
  EXPECT_EQ(group_capped(0).describe().find("max_per_group"), std::string::npos);
  EXPECT_NE(group_capped(2).describe().find("max_per_group=2"), std::string::npos);
}

}  // namespace
}  // namespace dep2p::connmgr
