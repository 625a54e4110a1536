// Address classification, per-address/per-subnet caps and token-bucket rate limits
// (src/net/prefix.hpp, src/admission/subnet_counter.hpp and rate_limiter.hpp). Time is virtual:
// plain TimePoint arithmetic, no clock is read.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <boost/unordered/unordered_flat_set.hpp>

#include "admission/rate_limiter.hpp"
#include "admission/subnet_counter.hpp"
#include "net/prefix.hpp"

namespace dep2p::connmgr::detail {
namespace {

using boost::asio::ip::address;
using std::chrono::milliseconds;
using std::chrono::seconds;

address ip(const char* text) { return boost::asio::ip::make_address(text); }

Prefix prefix(const char* text) {
  std::string error;
  auto key = parse_prefix(text, &error);
  EXPECT_TRUE(key.has_value()) << error;
  return key.value_or(Prefix{});
}

// The message of the std::invalid_argument `f` throws, or "" when it throws none.
template <typename F>
std::string invalid_argument_of(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

// An arbitrary start, away from zero, so no test depends on the epoch.
const TimePoint t0 = TimePoint{} + std::chrono::hours(1000);

// ---------------------------------------------------------------------------------------
// subnet_counter.hpp

SubnetCaps small_caps() {
  SubnetCaps caps;
  caps.ipv4_32 = 2;
  caps.ipv4_24 = 3;
  caps.ipv6_56 = 2;
  caps.ipv6_48 = 3;
  return caps;
}

TEST(SubnetCounter, NinthConnectionFromOneIpv4AddressIsRefusedByTheAddressCap) {
  SubnetCounter counter;  // defaults: 8 per IPv4 address
  for (int i = 0; i < 8; ++i) ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  EXPECT_EQ(counter.try_add(ip("10.1.2.3"), false), "address 10.1.2.3 holds 8 of 8 connections");
  EXPECT_EQ(counter.connections(ip("10.1.2.3")), 8U);  // the refusal counted nothing
  EXPECT_EQ(counter.count(prefix("10.1.2.0/24")), 8U);
  EXPECT_EQ(counter.try_add(ip("10.1.2.4"), false), std::nullopt);
}

TEST(SubnetCounter, Slash24CapCountsDifferentAddressesTogether) {
  SubnetCounter counter;  // defaults: 64 per IPv4 /24
  for (int i = 1; i <= 64; ++i) {
    const std::string a = "10.1.2." + std::to_string(i);
    ASSERT_EQ(counter.try_add(ip(a.c_str()), false), std::nullopt) << a;
  }
  EXPECT_EQ(counter.try_add(ip("10.1.2.100"), false),
            "subnet 10.1.2.0/24 holds 64 of 64 connections");
  EXPECT_EQ(counter.connections(ip("10.1.2.100")), 0U);
  EXPECT_EQ(counter.try_add(ip("10.1.3.1"), false), std::nullopt);
  EXPECT_EQ(counter.count(prefix("10.1.2.0/24")), 64U);
}

TEST(SubnetCounter, RefusalNamesTheNarrowestFullScope) {
  SubnetCounter counter(small_caps());  // 2 per address, 3 per /24
  ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  ASSERT_EQ(counter.try_add(ip("10.1.2.4"), false), std::nullopt);
  EXPECT_EQ(counter.try_add(ip("10.1.2.3"), false), "address 10.1.2.3 holds 2 of 2 connections");
  EXPECT_EQ(counter.try_add(ip("10.1.2.4"), false), "subnet 10.1.2.0/24 holds 3 of 3 connections");
}

TEST(SubnetCounter, MappedAndPlainIpv4AreOneAddress) {
  SubnetCounter counter(small_caps());
  ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  ASSERT_EQ(counter.try_add(ip("::ffff:10.1.2.3"), false), std::nullopt);
  EXPECT_EQ(counter.try_add(ip("::ffff:10.1.2.3"), false),
            "address 10.1.2.3 holds 2 of 2 connections");
  EXPECT_TRUE(counter.remove(ip("::ffff:10.1.2.3")));
  EXPECT_TRUE(counter.remove(ip("10.1.2.3")));
  EXPECT_EQ(counter.tracked(), 0U);
}

TEST(SubnetCounter, Ipv6Slash56CapCountsAllAddressesInIt) {
  SubnetCounter counter;  // defaults: 8 per /56, 64 per /48
  for (int i = 0; i < 8; ++i) {
    // Eight different /64s of 2001:db8:1:200::/56.
    const std::string a = "2001:db8:1:2" + std::to_string(i) + "0::1";
    ASSERT_EQ(counter.try_add(ip(a.c_str()), false), std::nullopt) << a;
  }
  EXPECT_EQ(counter.try_add(ip("2001:db8:1:2ff::7"), false),
            "subnet 2001:db8:1:200::/56 holds 8 of 8 connections");
  EXPECT_EQ(counter.try_add(ip("2001:db8:1:300::1"), false), std::nullopt);
}

TEST(SubnetCounter, Ipv6HasNoPerAddressCapBelowItsSlash56) {
  SubnetCaps caps;
  caps.ipv4_32 = 1;
  caps.ipv6_56 = 20;
  SubnetCounter counter(caps);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(counter.try_add(ip("2001:db8::1"), false), std::nullopt);
  EXPECT_EQ(counter.try_add(ip("2001:db8::1"), false),
            "subnet 2001:db8::/56 holds 20 of 20 connections");
}

TEST(SubnetCounter, Ipv6Slash48CapSpansItsSlash56s) {
  SubnetCounter counter;  // 8 per /56, 64 per /48
  for (int s = 0; s < 8; ++s) {
    for (int i = 1; i <= 8; ++i) {
      const std::string a = "2001:db8:1:" + std::to_string(s) + "00::" + std::to_string(i);
      ASSERT_EQ(counter.try_add(ip(a.c_str()), false), std::nullopt) << a;
    }
  }
  EXPECT_EQ(counter.try_add(ip("2001:db8:1:900::1"), false),
            "subnet 2001:db8:1::/48 holds 64 of 64 connections");
  EXPECT_EQ(counter.try_add(ip("2001:db8:2::1"), false), std::nullopt);
  EXPECT_EQ(counter.count(prefix("2001:db8:1::/48")), 64U);
  EXPECT_EQ(counter.count(prefix("2001:db8:1:300::/56")), 8U);
}

TEST(SubnetCounter, LoopbackIsExemptByDefaultButStillRemovable) {
  SubnetCounter counter(small_caps());
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(counter.try_add(ip("127.0.0.1"), false), std::nullopt);
    ASSERT_EQ(counter.try_add(ip("::1"), false), std::nullopt);
  }
  EXPECT_EQ(counter.connections(ip("127.0.0.1")), 100U);
  EXPECT_EQ(counter.count(prefix("127.0.0.0/24")), 0U);  // charged to no subnet
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(counter.remove(ip("127.0.0.1")));
    ASSERT_TRUE(counter.remove(ip("::1")));
  }
  EXPECT_FALSE(counter.remove(ip("127.0.0.1")));
  EXPECT_EQ(counter.tracked(), 0U);
}

TEST(SubnetCounter, LoopbackIsCappedWhenNotExempt) {
  SubnetCaps caps;
  caps.exempt_loopback = false;
  SubnetCounter counter(caps);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(counter.try_add(ip("127.0.0.1"), false), std::nullopt);
  EXPECT_EQ(counter.try_add(ip("127.0.0.1"), false), "address 127.0.0.1 holds 8 of 8 connections");
  EXPECT_EQ(counter.try_add(ip("::ffff:127.0.0.1"), false),
            "address 127.0.0.1 holds 8 of 8 connections");
}

TEST(SubnetCounter, BypassSkipsTheCapsAndTakesNoRoomFromNeighbours) {
  SubnetCounter counter(small_caps());  // 2 per address, 3 per /24
  ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(counter.try_add(ip("10.1.2.3"), true), std::nullopt);
  EXPECT_EQ(counter.connections(ip("10.1.2.3")), 7U);
  EXPECT_EQ(counter.count(prefix("10.1.2.0/24")), 2U);
  EXPECT_EQ(counter.try_add(ip("10.1.2.4"), false), std::nullopt);  // the /24 has room
  EXPECT_EQ(counter.try_add(ip("10.1.2.3"), false), "address 10.1.2.3 holds 2 of 2 connections");
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(counter.remove(ip("10.1.2.3")));
  EXPECT_FALSE(counter.remove(ip("10.1.2.3")));
  EXPECT_TRUE(counter.remove(ip("10.1.2.4")));
  EXPECT_EQ(counter.tracked(), 0U);
}

TEST(SubnetCounter, AllowListChangeBetweenAddsKeepsRemovalExactAndCapsConservative) {
  SubnetCounter counter(small_caps());
  ASSERT_EQ(counter.try_add(ip("10.1.2.3"), true), std::nullopt);   // allow-listed then
  ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);  // no longer
  ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), "address 10.1.2.3 holds 2 of 2 connections");
  // One closes: the uncapped one is released first, so the cap stays full.
  ASSERT_TRUE(counter.remove(ip("10.1.2.3")));
  EXPECT_EQ(counter.try_add(ip("10.1.2.3"), false), "address 10.1.2.3 holds 2 of 2 connections");
  EXPECT_EQ(counter.count(prefix("10.1.2.0/24")), 2U);
  ASSERT_TRUE(counter.remove(ip("10.1.2.3")));
  EXPECT_EQ(counter.count(prefix("10.1.2.0/24")), 1U);
  ASSERT_TRUE(counter.remove(ip("10.1.2.3")));
  EXPECT_FALSE(counter.remove(ip("10.1.2.3")));
  EXPECT_EQ(counter.tracked(), 0U);
}

TEST(SubnetCounter, OverrideRaisesTheCapForItsPrefix) {
  SubnetCaps caps;
  caps.overrides = {{"10.0.0.0/8", 20}};
  SubnetCounter counter(caps);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  EXPECT_EQ(counter.try_add(ip("10.200.0.1"), false),
            "subnet 10.0.0.0/8 (override) holds 20 of 20 connections");
  EXPECT_EQ(counter.count(prefix("10.0.0.0/8")), 20U);
  EXPECT_EQ(counter.count(prefix("10.1.2.0/24")), 0U);  // the default /24 is not charged
  // Outside the override the defaults still apply.
  for (int i = 0; i < 8; ++i) ASSERT_EQ(counter.try_add(ip("11.0.0.1"), false), std::nullopt);
  EXPECT_EQ(counter.try_add(ip("11.0.0.1"), false), "address 11.0.0.1 holds 8 of 8 connections");
}

TEST(SubnetCounter, OverrideCanBeStricterThanTheDefaults) {
  SubnetCaps caps;
  caps.overrides = {{"192.168.0.0/16", 2}, {"2001:db8::/32", 1}};
  SubnetCounter counter(caps);
  ASSERT_EQ(counter.try_add(ip("192.168.1.1"), false), std::nullopt);
  ASSERT_EQ(counter.try_add(ip("192.168.2.1"), false), std::nullopt);
  EXPECT_EQ(counter.try_add(ip("192.168.3.1"), false),
            "subnet 192.168.0.0/16 (override) holds 2 of 2 connections");
  ASSERT_EQ(counter.try_add(ip("2001:db8:5::1"), false), std::nullopt);
  EXPECT_EQ(counter.try_add(ip("2001:db8:6::1"), false),
            "subnet 2001:db8::/32 (override) holds 1 of 1 connections");
  EXPECT_EQ(counter.try_add(ip("192.168.3.1"), true), std::nullopt);  // the allow list wins
}

TEST(SubnetCounter, LongestMatchingOverrideWinsInEitherListOrder) {
  const std::vector<std::vector<PrefixOverride>> orders = {
      {{"10.0.0.0/8", 3}, {"10.1.2.0/24", 5}},
      {{"10.1.2.0/24", 5}, {"10.0.0.0/8", 3}},
  };
  for (const auto& overrides : orders) {
    SubnetCaps caps;
    caps.overrides = overrides;
    SubnetCounter counter(caps);
    // Inside the /24: its own cap of 5, not the /8's 3, and none of the /8's room.
    for (int i = 1; i <= 5; ++i) {
      const std::string a = "10.1.2." + std::to_string(i);
      ASSERT_EQ(counter.try_add(ip(a.c_str()), false), std::nullopt) << a;
    }
    EXPECT_EQ(counter.try_add(ip("10.1.2.9"), false),
              "subnet 10.1.2.0/24 (override) holds 5 of 5 connections");
    // Inside the /8 but outside the /24: the /8's cap, untouched by the /24's five.
    for (int i = 1; i <= 3; ++i) {
      const std::string a = "10.1.3." + std::to_string(i);
      ASSERT_EQ(counter.try_add(ip(a.c_str()), false), std::nullopt) << a;
    }
    EXPECT_EQ(counter.try_add(ip("10.9.9.9"), false),
              "subnet 10.0.0.0/8 (override) holds 3 of 3 connections");
    EXPECT_TRUE(counter.remove(ip("10.1.2.1")));
    EXPECT_EQ(counter.try_add(ip("10.1.2.77"), false), std::nullopt);
    EXPECT_EQ(counter.try_add(ip("10.9.9.9"), false),
              "subnet 10.0.0.0/8 (override) holds 3 of 3 connections");
  }
}

TEST(SubnetCounter, RemoveRestoresRoom) {
  SubnetCounter counter(small_caps());
  ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  ASSERT_NE(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  ASSERT_TRUE(counter.remove(ip("10.1.2.3")));
  EXPECT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  ASSERT_EQ(counter.try_add(ip("2001:db8::1"), false), std::nullopt);
  ASSERT_EQ(counter.try_add(ip("2001:db8::2"), false), std::nullopt);
  ASSERT_NE(counter.try_add(ip("2001:db8::3"), false), std::nullopt);
  ASSERT_TRUE(counter.remove(ip("2001:db8::2")));
  EXPECT_EQ(counter.try_add(ip("2001:db8::3"), false), std::nullopt);
}

TEST(SubnetCounter, RemovingWhatWasNotCountedChangesNothing) {
  SubnetCounter counter(small_caps());
  EXPECT_FALSE(counter.remove(ip("10.1.2.3")));
  EXPECT_EQ(counter.tracked(), 0U);
  ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  // A neighbour in the same /24 that was never added must not release the /24's count.
  EXPECT_FALSE(counter.remove(ip("10.1.2.4")));
  EXPECT_EQ(counter.count(prefix("10.1.2.0/24")), 1U);
  EXPECT_TRUE(counter.remove(ip("10.1.2.3")));
  EXPECT_FALSE(counter.remove(ip("10.1.2.3")));
  EXPECT_EQ(counter.count(prefix("10.1.2.0/24")), 0U);
  // A refused add counted nothing either.
  ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  ASSERT_EQ(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  ASSERT_NE(counter.try_add(ip("10.1.2.3"), false), std::nullopt);
  EXPECT_TRUE(counter.remove(ip("10.1.2.3")));
  EXPECT_TRUE(counter.remove(ip("10.1.2.3")));
  EXPECT_FALSE(counter.remove(ip("10.1.2.3")));
  EXPECT_EQ(counter.tracked(), 0U);
}

TEST(SubnetCounter, TablesAreEmptyOnceEverythingIsRemoved) {
  SubnetCaps caps;
  caps.overrides = {{"10.9.0.0/16", 1000}};
  SubnetCounter counter(caps);
  std::vector<address> added;
  for (int i = 0; i < 300; ++i) {
    const std::string v4 = "10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".1";
    const std::string v6 = "2001:db8:" + std::to_string(i) + "::1";
    const std::string over = "10.9." + std::to_string(i % 250) + "." + std::to_string(i / 250);
    for (const std::string& a : {v4, v6, over}) {
      if (!counter.try_add(ip(a.c_str()), i % 5 == 0)) added.push_back(ip(a.c_str()));
    }
  }
  ASSERT_EQ(added.size(), 900U);
  EXPECT_GT(counter.tracked(), 900U);
  for (const address& a : added) ASSERT_TRUE(counter.remove(a));
  EXPECT_EQ(counter.tracked(), 0U);
}

TEST(SubnetCounter, MalformedOrRepeatedOverrideThrowsNamingTheField) {
  const auto message_of = [](std::vector<PrefixOverride> overrides) {
    SubnetCaps caps;
    caps.overrides = std::move(overrides);
    return invalid_argument_of([&] { SubnetCounter counter(caps); });
  };
  EXPECT_EQ(message_of({{"10.0.0.0/8", 5}, {"10.0.0.0/33", 5}}),
            "limits.subnets.overrides[1].subnet: malformed CIDR \"10.0.0.0/33\": prefix length 33 "
            "exceeds 32 for IPv4");
  EXPECT_EQ(message_of({{"10.0.0.0/8", 5}, {"::ffff:10.0.0.0/104", 7}}),
            "limits.subnets.overrides[1].subnet: 10.0.0.0/8 repeats overrides[0]");
  EXPECT_NE(message_of({{"lan", 5}}).find("limits.subnets.overrides[0].subnet"), std::string::npos);
  EXPECT_EQ(message_of({{"10.0.0.0/8", 5}, {"2001:db8::/32", 7}}), "");
}

TEST(SubnetCounter, ValidateReportsTheFieldTheConstructorWouldRefuse) {
  SubnetCaps caps;
  caps.overrides = {{"10.0.0.0/8", 5}, {"2001:db8::/32", 7}, {"2001:db8::1/32", 9}};
  const auto error = SubnetCounter::validate(caps);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "limits.subnets.overrides[2].subnet");
  EXPECT_EQ(error->message,
            "limits.subnets.overrides[2].subnet: 2001:db8::/32 repeats overrides[1]");
  caps.overrides.pop_back();
  EXPECT_FALSE(SubnetCounter::validate(caps).has_value());
  caps.overrides.push_back({"2001:db8::/200", 1});
  ASSERT_TRUE(SubnetCounter::validate(caps).has_value());
  EXPECT_EQ(SubnetCounter::validate(caps)->field, "limits.subnets.overrides[2].subnet");
}

// The model: which caps an address falls under, counted over the live connections by brute
// force, independently of the counter's tables.
struct Model {
  struct Override {
    boost::asio::ip::network_v4 net;
    std::size_t cap;
  };
  SubnetCaps caps;
  std::vector<Override> overrides;
  std::vector<address> allowed;
  std::vector<address> live;  // normalized

  enum class Kind { uncapped, overridden, regular };
  bool is_allowed(const address& a) const {
    for (const address& x : allowed) {
      if (x == a) return true;
    }
    return false;
  }
  // The index of the longest override holding `a`, if any.
  std::optional<std::size_t> override_of(const address& a) const {
    std::optional<std::size_t> best;
    if (!a.is_v4()) return best;
    for (std::size_t i = 0; i < overrides.size(); ++i) {
      const auto& net = overrides[i].net;
      if (boost::asio::ip::network_v4(a.to_v4(), net.prefix_length()).canonical() != net) continue;
      if (!best || overrides[*best].net.prefix_length() < net.prefix_length()) best = i;
    }
    return best;
  }
  Kind kind(const address& a) const {
    if (is_allowed(a) || a.is_loopback()) return Kind::uncapped;
    return override_of(a) ? Kind::overridden : Kind::regular;
  }
  static bool same_net(const address& a, const address& b, unsigned short bits) {
    if (a.is_v4() != b.is_v4()) return false;
    if (a.is_v4()) {
      return boost::asio::ip::network_v4(a.to_v4(), bits).canonical() ==
             boost::asio::ip::network_v4(b.to_v4(), bits).canonical();
    }
    return boost::asio::ip::network_v6(a.to_v6(), bits).canonical() ==
           boost::asio::ip::network_v6(b.to_v6(), bits).canonical();
  }
  std::size_t live_regular_in(const address& a, unsigned short bits) const {
    std::size_t n = 0;
    for (const address& x : live) n += (kind(x) == Kind::regular && same_net(x, a, bits)) ? 1U : 0U;
    return n;
  }
  static std::string holds(const std::string& scope, std::size_t n, std::size_t cap) {
    return scope + " holds " + std::to_string(n) + " of " + std::to_string(cap) + " connections";
  }
  std::optional<std::string> decide(const address& a) const {
    switch (kind(a)) {
      case Kind::uncapped: return std::nullopt;
      case Kind::overridden: {
        const std::size_t o = *override_of(a);
        std::size_t n = 0;
        for (const address& x : live)
          n += (kind(x) == Kind::overridden && override_of(x) == o) ? 1U : 0U;
        if (n >= overrides[o].cap) {
          return holds("subnet " + overrides[o].net.to_string() + " (override)", n,
                       overrides[o].cap);
        }
        return std::nullopt;
      }
      case Kind::regular: break;
    }
    if (a.is_v4()) {
      std::size_t n = 0;
      for (const address& x : live) n += (kind(x) == Kind::regular && x == a) ? 1U : 0U;
      if (n >= caps.ipv4_32) return holds("address " + a.to_string(), n, caps.ipv4_32);
      if (live_regular_in(a, 24) >= caps.ipv4_24) {
        return holds("subnet " + boost::asio::ip::network_v4(a.to_v4(), 24).canonical().to_string(),
                     live_regular_in(a, 24), caps.ipv4_24);
      }
      return std::nullopt;
    }
    for (const auto& [bits, cap] : {std::pair<unsigned short, std::size_t>{56, caps.ipv6_56},
                                    std::pair<unsigned short, std::size_t>{48, caps.ipv6_48}}) {
      if (live_regular_in(a, bits) >= cap) {
        return holds(
            "subnet " + boost::asio::ip::network_v6(a.to_v6(), bits).canonical().to_string(),
            live_regular_in(a, bits), cap);
      }
    }
    return std::nullopt;
  }
};

TEST(SubnetCounter, RandomAddRemoveSequencesAgreeWithAModelAndEndAtZero) {
  const std::vector<const char*> pool = {
      "10.1.2.1",          "10.1.2.2",          "10.1.2.3",          "::ffff:10.1.2.3",
      "10.1.2.4",          "10.1.3.1",          "10.9.0.1",          "10.9.1.1",
      "10.9.9.1",          "10.9.9.2",          "127.0.0.1",         "::1",
      "192.0.2.7",         "2001:db8:1:100::1", "2001:db8:1:100::2", "2001:db8:1:1ff::1",
      "2001:db8:1:200::1", "2001:db8:1:300::1", "2001:db8:2::1",     "2001:db8:1:100::1",
  };
  Model model;
  model.caps.ipv4_32 = 3;
  model.caps.ipv4_24 = 5;
  model.caps.ipv6_56 = 3;
  model.caps.ipv6_48 = 5;
  model.caps.overrides = {{"10.9.0.0/16", 4}, {"10.9.9.0/24", 2}};
  for (const auto& o : model.caps.overrides) {
    model.overrides.push_back({boost::asio::ip::make_network_v4(o.subnet), o.max_connections});
  }
  model.allowed = {ip("192.0.2.7")};

  std::size_t refusals = 0;
  std::map<std::string, std::size_t> refusals_by_scope;
  std::size_t admissions = 0;
  for (unsigned seed = 0; seed < 2000; ++seed) {
    std::mt19937 rng(seed);
    SubnetCounter counter(model.caps);
    model.live.clear();
    std::uniform_int_distribution<std::size_t> pick(0, pool.size() - 1);
    std::uniform_int_distribution<int> percent(0, 99);
    for (int op = 0; op < 60; ++op) {
      const int roll = percent(rng);
      if (roll < 55) {
        const address a = ip(pool[pick(rng)]);
        const address n = normalize(a);
        const auto expected = model.decide(n);
        const auto got = counter.try_add(a, model.is_allowed(n));
        ASSERT_EQ(got, expected) << "seed " << seed << " op " << op << " add " << a;
        if (!got) {
          model.live.push_back(n);
          ++admissions;
        } else {
          ++refusals;
          if (got->find("(override)") != std::string::npos) {
            ++refusals_by_scope["override"];
          } else if (got->rfind("address", 0) == 0) {
            ++refusals_by_scope["address"];
          } else {
            ++refusals_by_scope[got->substr(got->find('/'), 3)];
          }
        }
      } else if (roll < 90 && !model.live.empty()) {
        std::uniform_int_distribution<std::size_t> which(0, model.live.size() - 1);
        const std::size_t i = which(rng);
        ASSERT_TRUE(counter.remove(model.live[i])) << "seed " << seed << " op " << op;
        model.live.erase(model.live.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        const address a = normalize(ip(pool[pick(rng)]));
        const bool held = std::find(model.live.begin(), model.live.end(), a) != model.live.end();
        const bool removed = counter.remove(a);
        ASSERT_EQ(removed, held) << "seed " << seed << " op " << op << " remove " << a;
        if (held) model.live.erase(std::find(model.live.begin(), model.live.end(), a));
      }
      for (const char* text : pool) {
        const address n = normalize(ip(text));
        ASSERT_EQ(counter.connections(n),
                  static_cast<std::size_t>(std::count(model.live.begin(), model.live.end(), n)))
            << "seed " << seed << " op " << op << " " << n;
      }
    }
    for (const address& a : model.live) ASSERT_TRUE(counter.remove(a)) << "seed " << seed;
    ASSERT_EQ(counter.tracked(), 0U) << "seed " << seed;
    for (const char* text : pool) ASSERT_FALSE(counter.remove(ip(text))) << "seed " << seed;
  }
  // The sequences reach every kind of cap often.
  EXPECT_GT(refusals, 2000U);
  EXPECT_GT(admissions, 20000U);
  for (const char* scope : {"address", "override", "/24", "/56", "/48"}) {
    EXPECT_GT(refusals_by_scope[scope], 100U) << scope;
  }
}

// ---------------------------------------------------------------------------------------
// rate_limiter.hpp

TEST(TokenBucket, AdmitsTheBurstAtOnceThenTheSteadyRate) {
  TokenBucket bucket(Rate{10, 50});
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(bucket.take(t0)) << i;
  EXPECT_FALSE(bucket.take(t0));
  EXPECT_FALSE(bucket.take(t0 + milliseconds(99)));
  EXPECT_TRUE(bucket.take(t0 + milliseconds(100)));
  EXPECT_FALSE(bucket.take(t0 + milliseconds(100)));
  // Over the next second, trying every millisecond: exactly ten.
  int taken = 0;
  for (int ms = 101; ms <= 1100; ++ms) taken += bucket.take(t0 + milliseconds(ms)) ? 1 : 0;
  EXPECT_EQ(taken, 10);
  EXPECT_FALSE(bucket.take(t0 + milliseconds(1100)));
}

TEST(TokenBucket, StartsFullAndRefillsNoFurtherThanTheBurst) {
  TokenBucket bucket(Rate{10, 5});
  EXPECT_TRUE(bucket.full(t0));
  EXPECT_DOUBLE_EQ(bucket.tokens(t0), 5.0);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(bucket.take(t0));
  EXPECT_FALSE(bucket.full(t0));
  EXPECT_NEAR(bucket.tokens(t0 + milliseconds(250)), 2.5, 1e-9);
  const TimePoint later = t0 + std::chrono::hours(1);
  EXPECT_TRUE(bucket.full(later));
  EXPECT_DOUBLE_EQ(bucket.tokens(later), 5.0);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(bucket.take(later));
  EXPECT_FALSE(bucket.take(later));
}

TEST(TokenBucket, RefusalsTakeNothing) {
  TokenBucket bucket(Rate{1, 1});
  ASSERT_TRUE(bucket.take(t0));
  for (int ms = 0; ms < 1000; ms += 10) ASSERT_FALSE(bucket.take(t0 + milliseconds(ms)));
  EXPECT_TRUE(bucket.take(t0 + seconds(1)));
}

TEST(TokenBucket, FractionalRateRefillsInProportion) {
  TokenBucket bucket(Rate{2.5, 1});
  ASSERT_TRUE(bucket.take(t0));
  EXPECT_FALSE(bucket.take(t0 + milliseconds(399)));
  EXPECT_TRUE(bucket.take(t0 + milliseconds(400)));
}

TEST(TokenBucket, EarlierTimeRefillsNothing) {
  TokenBucket bucket(Rate{10, 2});
  ASSERT_TRUE(bucket.take(t0 + seconds(5)));
  ASSERT_TRUE(bucket.take(t0 + seconds(5)));
  EXPECT_FALSE(bucket.take(t0));
  EXPECT_TRUE(bucket.take(t0 + seconds(5) + milliseconds(100)));
}

TEST(TokenBucket, ZeroRateDisablesTheLimit) {
  TokenBucket disabled(Rate{0, 0});
  TokenBucket defaulted;
  EXPECT_FALSE(disabled.enabled());
  EXPECT_FALSE(defaulted.enabled());
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE(disabled.take(t0));
    ASSERT_TRUE(defaulted.take(t0));
  }
  EXPECT_TRUE(TokenBucket(Rate{1, 1}).enabled());
}

TEST(TokenBucket, UnusableRateThrowsNamingTheField) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (const Rate& bad : {Rate{-1, 5}, Rate{10, 0.5}, Rate{10, 0}, Rate{nan, 5}, Rate{inf, 5},
                          Rate{10, nan}, Rate{10, inf}}) {
    const std::string message =
        invalid_argument_of([&] { TokenBucket bucket(bad, "limits.example"); });
    EXPECT_EQ(message.rfind("limits.example: ", 0), 0U)
        << bad.per_second << "/s burst " << bad.burst << ": " << message;
  }
  EXPECT_NO_THROW(TokenBucket(Rate{0, 0}, "limits.example"));
  EXPECT_NO_THROW(TokenBucket(Rate{1e-9, 1}, "limits.example"));
  EXPECT_NO_THROW(TokenBucket(Rate{1e12, 1e12}, "limits.example"));
}

TEST(TokenBucket, ExtremeRatesNeitherOverflowNorMisbehave) {
  TokenBucket slow(Rate{1e-12, 1});  // a token every 31,000 years
  ASSERT_TRUE(slow.take(t0));
  EXPECT_FALSE(slow.take(t0 + std::chrono::hours(24 * 365 * 10)));
  TokenBucket deep(Rate{1, 1e15});  // a burst no clock span can express
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(deep.take(t0));
  TokenBucket fast(Rate{1e12, 1});  // faster than the clock ticks
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(fast.take(t0 + std::chrono::nanoseconds(i)));
}

TEST(SubnetRateLimiter, EachSlash24HasItsOwnBurst) {
  SubnetRateLimiter limiter;  // defaults: /24 10/s burst 50, /16 100/s burst 500
  for (int i = 0; i < 50; ++i) {
    const std::string a = "10.1.2." + std::to_string(i % 250 + 1);
    ASSERT_EQ(limiter.admit(ip(a.c_str()), t0), std::nullopt) << i;
  }
  EXPECT_EQ(limiter.admit(ip("10.1.2.99"), t0),
            "inbound rate limit: subnet 10.1.2.0/24 over 10/s (burst 50)");
  // A neighbouring /24 is independent.
  EXPECT_EQ(limiter.admit(ip("10.1.3.1"), t0), std::nullopt);
  EXPECT_EQ(limiter.admit(ip("192.0.2.1"), t0), std::nullopt);
}

TEST(SubnetRateLimiter, SubnetRefillsAtItsSteadyRate) {
  SubnetRateLimiter limiter;
  for (int i = 0; i < 50; ++i) ASSERT_EQ(limiter.admit(ip("10.1.2.3"), t0), std::nullopt);
  ASSERT_NE(limiter.admit(ip("10.1.2.3"), t0), std::nullopt);
  EXPECT_NE(limiter.admit(ip("10.1.2.3"), t0 + milliseconds(99)), std::nullopt);
  EXPECT_EQ(limiter.admit(ip("10.1.2.3"), t0 + milliseconds(100)), std::nullopt);
  EXPECT_NE(limiter.admit(ip("10.1.2.3"), t0 + milliseconds(100)), std::nullopt);
  int admitted = 0;
  for (int ms = 101; ms <= 1100; ++ms) {
    admitted += limiter.admit(ip("10.1.2.3"), t0 + milliseconds(ms)) ? 0 : 1;
  }
  EXPECT_EQ(admitted, 10);
}

TEST(SubnetRateLimiter, Slash16BucketIsSharedByItsSlash24s) {
  SubnetRateLimiter limiter;
  for (int s = 0; s < 10; ++s) {
    const std::string a = "10.1." + std::to_string(s) + ".1";
    for (int i = 0; i < 50; ++i) ASSERT_EQ(limiter.admit(ip(a.c_str()), t0), std::nullopt) << a;
  }
  EXPECT_EQ(limiter.admit(ip("10.1.200.1"), t0),
            "inbound rate limit: subnet 10.1.0.0/16 over 100/s (burst 500)");
  EXPECT_EQ(limiter.admit(ip("10.2.0.1"), t0), std::nullopt);
  // The /16 refills at 100/s: one more after 10 ms, from any of its /24s with tokens.
  EXPECT_EQ(limiter.admit(ip("10.1.200.1"), t0 + milliseconds(10)), std::nullopt);
}

TEST(SubnetRateLimiter, RefusalChargesNoBucket) {
  InboundRates rates;
  rates.ipv4_24 = {10, 50};
  rates.ipv4_16 = {1, 2};
  SubnetRateLimiter limiter(rates);
  ASSERT_EQ(limiter.admit(ip("10.1.2.1"), t0), std::nullopt);
  ASSERT_EQ(limiter.admit(ip("10.1.3.1"), t0), std::nullopt);
  ASSERT_EQ(limiter.size(), 3U);
  EXPECT_EQ(limiter.admit(ip("10.1.4.1"), t0),
            "inbound rate limit: subnet 10.1.0.0/16 over 1/s (burst 2)");
  EXPECT_EQ(limiter.size(), 3U);  // no bucket made for 10.1.4.0/24
  EXPECT_EQ(limiter.tokens(prefix("10.1.4.0/24"), t0), 50.0);
  EXPECT_NEAR(limiter.tokens(prefix("10.1.2.0/24"), t0).value_or(-1), 49.0, 1e-9);

  // The other way round: a refusing /24 leaves its /16 untouched.
  rates.ipv4_24 = {1, 1};
  rates.ipv4_16 = {10, 50};
  SubnetRateLimiter other(rates);
  ASSERT_EQ(other.admit(ip("10.1.2.1"), t0), std::nullopt);
  for (int i = 0; i < 10; ++i) ASSERT_NE(other.admit(ip("10.1.2.2"), t0), std::nullopt);
  EXPECT_NEAR(other.tokens(prefix("10.1.0.0/16"), t0).value_or(-1), 49.0, 1e-9);
}

TEST(SubnetRateLimiter, Ipv6IsLimitedPerSlash64AndSlash48) {
  SubnetRateLimiter limiter;  // defaults: /64 10/s burst 50, /48 100/s burst 500
  for (int i = 0; i < 50; ++i) {
    const std::string a = "2001:db8:1:0::" + std::to_string(i + 1);
    ASSERT_EQ(limiter.admit(ip(a.c_str()), t0), std::nullopt);
  }
  EXPECT_EQ(limiter.admit(ip("2001:db8:1:0::ffff"), t0),
            "inbound rate limit: subnet 2001:db8:1::/64 over 10/s (burst 50)");
  for (int s = 1; s < 10; ++s) {
    const std::string a = "2001:db8:1:" + std::to_string(s) + "::1";
    for (int i = 0; i < 50; ++i) ASSERT_EQ(limiter.admit(ip(a.c_str()), t0), std::nullopt) << a;
  }
  EXPECT_EQ(limiter.admit(ip("2001:db8:1:99::1"), t0),
            "inbound rate limit: subnet 2001:db8:1::/48 over 100/s (burst 500)");
  EXPECT_EQ(limiter.admit(ip("2001:db8:2::1"), t0), std::nullopt);
}

TEST(SubnetRateLimiter, MappedAddressesAreChargedAsIpv4) {
  InboundRates rates;
  rates.ipv4_24 = {1, 2};
  SubnetRateLimiter limiter(rates);
  ASSERT_EQ(limiter.admit(ip("10.1.2.3"), t0), std::nullopt);
  ASSERT_EQ(limiter.admit(ip("::ffff:10.1.2.4"), t0), std::nullopt);
  EXPECT_EQ(limiter.admit(ip("::ffff:10.1.2.5"), t0),
            "inbound rate limit: subnet 10.1.2.0/24 over 1/s (burst 2)");
}

TEST(SubnetRateLimiter, DisabledRatesChargeNothing) {
  InboundRates rates;
  rates.ipv4_24 = {0, 0};
  rates.ipv4_16 = {1, 1};
  SubnetRateLimiter limiter(rates);
  ASSERT_EQ(limiter.admit(ip("10.1.2.1"), t0), std::nullopt);
  EXPECT_EQ(limiter.admit(ip("10.1.3.1"), t0),
            "inbound rate limit: subnet 10.1.0.0/16 over 1/s (burst 1)");
  EXPECT_EQ(limiter.size(), 1U);
  EXPECT_EQ(limiter.tokens(prefix("10.1.2.0/24"), t0), std::nullopt);

  InboundRates none;
  none.ipv4_24 = none.ipv4_16 = none.ipv6_64 = none.ipv6_48 = Rate{0, 0};
  SubnetRateLimiter off(none);
  for (int i = 0; i < 10000; ++i) {
    ASSERT_EQ(off.admit(ip("10.1.2.3"), t0), std::nullopt);
    ASSERT_EQ(off.admit(ip("2001:db8::1"), t0), std::nullopt);
  }
  EXPECT_EQ(off.size(), 0U);
}

TEST(SubnetRateLimiter, LoopbackIsExemptUnlessConfiguredOtherwise) {
  SubnetRateLimiter exempt;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(exempt.admit(ip("127.0.0.1"), t0), std::nullopt);
    ASSERT_EQ(exempt.admit(ip("::1"), t0), std::nullopt);
  }
  EXPECT_EQ(exempt.size(), 0U);

  InboundRates rates;
  rates.exempt_loopback = false;
  SubnetRateLimiter limited(rates);
  for (int i = 0; i < 50; ++i) ASSERT_EQ(limited.admit(ip("127.0.0.1"), t0), std::nullopt);
  EXPECT_EQ(limited.admit(ip("::ffff:127.0.0.1"), t0),
            "inbound rate limit: subnet 127.0.0.0/24 over 10/s (burst 50)");
}

TEST(SubnetRateLimiter, FullTableRefusesNewSubnetsUntilABucketRefills) {
  InboundRates rates;
  rates.ipv4_24 = {10, 2};
  rates.ipv4_16 = {10, 2};
  rates.max_buckets = 4;
  SubnetRateLimiter limiter(rates);
  ASSERT_EQ(limiter.admit(ip("10.1.2.1"), t0), std::nullopt);
  ASSERT_EQ(limiter.admit(ip("10.2.2.1"), t0), std::nullopt);
  ASSERT_EQ(limiter.size(), 4U);
  EXPECT_EQ(limiter.admit(ip("10.3.2.1"), t0),
            "inbound rate limit: 4 of 4 subnet buckets busy, none refilled; new subnet "
            "10.3.2.0/24 refused");
  // Known subnets are still served while the table is full.
  EXPECT_EQ(limiter.admit(ip("10.1.2.1"), t0 + milliseconds(50)), std::nullopt);
  EXPECT_NE(limiter.admit(ip("10.3.2.1"), t0 + milliseconds(99)), std::nullopt);
  // 10.2.x refilled to its burst at +100 ms: its buckets are dropped to make room.
  EXPECT_EQ(limiter.admit(ip("10.3.2.1"), t0 + milliseconds(100)), std::nullopt);
  EXPECT_EQ(limiter.size(), 4U);
  EXPECT_NEAR(limiter.tokens(prefix("10.1.2.0/24"), t0 + milliseconds(100)).value_or(-1), 1.0,
              1e-9);
}

TEST(SubnetRateLimiter, FloodOfNewSubnetsCannotResetABusyBucket) {
  InboundRates rates;
  rates.ipv4_24 = {1, 3};
  rates.ipv4_16 = {0, 0};  // only /24 buckets, so the count below is exact
  rates.max_buckets = 64;
  SubnetRateLimiter limiter(rates);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(limiter.admit(ip("10.1.2.1"), t0), std::nullopt);
  ASSERT_NE(limiter.admit(ip("10.1.2.1"), t0), std::nullopt);
  // The attacker now floods fresh subnets to push its own bucket out.
  std::size_t refused = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string a =
        "172." + std::to_string(16 + i % 16) + "." + std::to_string(i / 16) + ".1";
    const TimePoint now = t0 + milliseconds(i % 900);
    refused += limiter.admit(ip(a.c_str()), now) ? 1U : 0U;
    ASSERT_LE(limiter.size(), 64U);
  }
  EXPECT_EQ(refused, 1000U - 63U);  // the 63 free places, then nothing refills before 1 s
  EXPECT_EQ(limiter.admit(ip("10.1.2.1"), t0 + milliseconds(900)),
            "inbound rate limit: subnet 10.1.2.0/24 over 1/s (burst 3)");
  EXPECT_EQ(limiter.admit(ip("10.1.2.1"), t0 + milliseconds(1000)), std::nullopt);
}

TEST(SubnetRateLimiter, SweepDropsOnlyRefilledBuckets) {
  InboundRates rates;
  rates.ipv4_24 = {10, 2};
  rates.ipv4_16 = {0, 0};
  SubnetRateLimiter limiter(rates);
  ASSERT_EQ(limiter.admit(ip("10.1.1.1"), t0), std::nullopt);  // full again at +100 ms
  ASSERT_EQ(limiter.admit(ip("10.1.2.1"), t0), std::nullopt);
  ASSERT_EQ(limiter.admit(ip("10.1.2.1"), t0), std::nullopt);  // full again at +200 ms
  EXPECT_EQ(limiter.sweep(t0 + milliseconds(99)), 0U);
  EXPECT_EQ(limiter.sweep(t0 + milliseconds(100)), 1U);
  EXPECT_EQ(limiter.size(), 1U);
  EXPECT_EQ(limiter.sweep(t0 + milliseconds(200)), 1U);
  EXPECT_EQ(limiter.size(), 0U);
  // A dropped bucket comes back full.
  ASSERT_EQ(limiter.admit(ip("10.1.2.1"), t0 + milliseconds(200)), std::nullopt);
  ASSERT_EQ(limiter.admit(ip("10.1.2.1"), t0 + milliseconds(200)), std::nullopt);
  EXPECT_NE(limiter.admit(ip("10.1.2.1"), t0 + milliseconds(200)), std::nullopt);
}

TEST(SubnetRateLimiter, UnusableRateThrowsNamingTheField) {
  InboundRates rates;
  rates.ipv6_48 = {10, 0};
  const std::string message = invalid_argument_of([&] { SubnetRateLimiter limiter(rates); });
  EXPECT_EQ(
      message,
      "limits.inbound_rate.ipv6_48: burst must be at least 1, or no connection is ever admitted");
}

TEST(OutboundDialLimiter, DisabledByDefault) {
  OutboundDialLimiter defaulted;
  OutboundDialLimiter zero(Rate{0, 0});
  EXPECT_FALSE(defaulted.enabled());
  EXPECT_FALSE(zero.enabled());
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE(defaulted.take(t0));
    ASSERT_EQ(zero.admit(t0), std::nullopt);
  }
}

TEST(OutboundDialLimiter, AdmitsBurstThenRateAndNamesTheLimit) {
  OutboundDialLimiter dials(Rate{5, 10});
  for (int i = 0; i < 10; ++i) ASSERT_EQ(dials.admit(t0), std::nullopt) << i;
  EXPECT_EQ(dials.admit(t0), "outbound dial rate limit: over 5/s (burst 10)");
  EXPECT_FALSE(dials.take(t0 + milliseconds(199)));
  EXPECT_TRUE(dials.take(t0 + milliseconds(200)));
  EXPECT_FALSE(dials.take(t0 + milliseconds(200)));
}

TEST(OutboundDialLimiter, UnusableRateThrowsNamingTheField) {
  const std::string message = invalid_argument_of([] { OutboundDialLimiter dials(Rate{5, 0}); });
  EXPECT_EQ(message.rfind("limits.outbound_dials: ", 0), 0U) << message;
}

}  // namespace
}  // namespace dep2p::connmgr::detail
