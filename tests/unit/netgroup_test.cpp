// Network groups (src/net/netgroup.hpp) and the salted key that orders them
// (src/base/siphash.hpp): which addresses share a group, and that a node's order of groups
// is its own and stable.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "base/siphash.hpp"
#include "net/netgroup.hpp"

namespace dep2p::connmgr::detail {
namespace {

NetGroup group_of(const char* text, const GroupRule& rule = {}) {
  return network_group(boost::asio::ip::make_address(text), rule);
}

// The reference vectors of SipHash-2-4 (its paper and reference code): key 00 01 .. 0f,
// message 00 01 .. (n-1).
TEST(SipHash, MatchesTheReferenceVectors) {
  const SipKey key{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
  std::vector<std::uint8_t> message(15);
  std::iota(message.begin(), message.end(), std::uint8_t{0});
  const auto first = [&](std::size_t n) {
    return siphash24(key, std::span<const std::uint8_t>(message.data(), n));
  };
  EXPECT_EQ(first(0), 0x726fdb47dd0e0e31ULL);
  EXPECT_EQ(first(1), 0x74f839c593dc67fdULL);
  EXPECT_EQ(first(2), 0x0d6c8009d9a94f5aULL);
  EXPECT_EQ(first(15), 0xa129ca6149be45e5ULL);
}

TEST(NetGroup, IPv4GroupsBySixteenBitsByDefaultAndAsConfigured) {
  EXPECT_EQ(group_of("10.1.2.3"), group_of("10.1.200.9"));
  EXPECT_NE(group_of("10.1.2.3"), group_of("10.2.2.3"));
  EXPECT_EQ(group_of("10.1.2.3").length, 16);
  const GroupRule finer{.ipv4_prefix = 24};
  EXPECT_NE(group_of("10.1.2.3", finer), group_of("10.1.3.3", finer));
  EXPECT_EQ(group_of("10.1.2.3", finer), group_of("10.1.2.200", finer));
}

TEST(NetGroup, IPv6GroupsByThirtyTwoBitsAndMappedAddressesAsTheirIPv4) {
  EXPECT_EQ(group_of("2001:db8:1::1"), group_of("2001:db8:ffff::2"));
  EXPECT_NE(group_of("2001:db8::1"), group_of("2001:db9::1"));
  EXPECT_EQ(group_of("2001:db8::1").length, 32);
  EXPECT_EQ(group_of("::ffff:10.1.2.3"), group_of("10.1.2.3"));
  EXPECT_EQ(group_of("::ffff:10.1.2.3").family, Family::v4);
}

TEST(NetGroup, LoopbackIsGroupedByTwentyFourBitsSoTestSubnetsStayApart) {
  EXPECT_EQ(group_of("127.0.1.5"), group_of("127.0.1.9"));
  EXPECT_NE(group_of("127.0.1.5"), group_of("127.0.2.5"));
  EXPECT_EQ(group_of("127.0.1.5").length, 24);
  EXPECT_EQ(group_of("::ffff:127.0.1.5"), group_of("127.0.1.5"));
  EXPECT_EQ(group_of("::1").length, 128);
  EXPECT_EQ(group_of("127.0.1.5", GroupRule{.loopback_v4_prefix = 8}),
            group_of("127.9.9.9", GroupRule{.loopback_v4_prefix = 8}));
}

// One node's salt orders groups the same way every time; another node's salt orders them
// differently, so an attacker cannot pick addresses every node ranks first.
TEST(NetGroup, TheSaltedOrderIsStableForANodeAndDiffersBetweenNodes) {
  std::vector<NetGroup> groups;
  for (int a = 1; a <= 60; ++a) {
    groups.push_back(group_of(("10." + std::to_string(a) + ".0.1").c_str()));
  }
  const SipKey node_a{0x1234, 0x5678};
  const SipKey node_b{0x9abc, 0xdef0};
  const auto order = [&](const SipKey& salt) {
    std::vector<std::size_t> index(groups.size());
    std::iota(index.begin(), index.end(), std::size_t{0});
    std::sort(index.begin(), index.end(), [&](std::size_t x, std::size_t y) {
      return keyed_group(groups[x], salt) < keyed_group(groups[y], salt);
    });
    return index;
  };
  EXPECT_EQ(order(node_a), order(node_a));
  EXPECT_NE(order(node_a), order(node_b));
  EXPECT_EQ(keyed_group(group_of("10.7.1.1"), node_a), keyed_group(group_of("10.7.200.1"), node_a));
  // The family and the length are part of the key: 10.0.0.0/16 is not ::a00:0/16.
  NetGroup v6 = group_of("10.0.0.1");
  v6.family = Family::v6;
  EXPECT_NE(keyed_group(v6, node_a), keyed_group(group_of("10.0.0.1"), node_a));
}

}  // namespace
}  // namespace dep2p::connmgr::detail
