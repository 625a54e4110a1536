// The one address-prefix type and its parser (src/net/prefix.hpp), and the prefix map the
// gater keeps its rules in (src/net/prefix_map.hpp): normalization of mapped addresses,
// masking, formatting, parsing and its refusals, the override checks Config uses, and
// round trips over the CIDR fuzz corpus and generated text.
#include <gtest/gtest.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <boost/unordered/unordered_flat_set.hpp>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "dep2p/connmgr/limits.hpp"
#include "net/prefix.hpp"
#include "net/prefix_map.hpp"

namespace dep2p::connmgr::detail {
namespace {

using boost::asio::ip::address;

address ip(const char* text) { return boost::asio::ip::make_address(text); }

Prefix prefix(const char* text) {
  std::string error;
  auto key = parse_prefix(text, &error);
  EXPECT_TRUE(key.has_value()) << error;
  return key.value_or(Prefix{});
}

std::string cidr(const char* address_text, unsigned length) {
  return to_string(prefix_of(ip(address_text), length));
}

TEST(Prefix, Ipv4MappedAddressIsNormalizedToIpv4) {
  EXPECT_EQ(normalize(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
  EXPECT_TRUE(normalize(ip("::ffff:10.1.2.3")).is_v4());
  EXPECT_EQ(normalize(ip("2001:db8::1")), ip("2001:db8::1"));
  EXPECT_EQ(normalize(ip("10.1.2.3")), ip("10.1.2.3"));
  EXPECT_EQ(host_prefix(ip("::ffff:10.1.2.3")), host_prefix(ip("10.1.2.3")));
  EXPECT_EQ(host_prefix(ip("::ffff:10.1.2.3")).family, Family::v4);
}

TEST(Prefix, Ipv4PrefixKeysKeepOnlyThePrefixBits) {
  EXPECT_EQ(cidr("10.1.2.3", 32), "10.1.2.3/32");
  EXPECT_EQ(cidr("10.1.2.3", 24), "10.1.2.0/24");
  EXPECT_EQ(cidr("10.1.2.3", 16), "10.1.0.0/16");
  EXPECT_EQ(cidr("10.1.2.3", 0), "0.0.0.0/0");
  EXPECT_EQ(cidr("::ffff:10.1.2.3", 24), "10.1.2.0/24");
  EXPECT_EQ(prefix_of(ip("10.1.2.3"), 24), prefix_of(ip("10.1.2.250"), 24));
  EXPECT_NE(prefix_of(ip("10.1.2.3"), 24), prefix_of(ip("10.1.3.3"), 24));
  EXPECT_EQ(prefix_of(ip("10.1.2.3"), 16), prefix_of(ip("10.1.3.3"), 16));
  // Same bits, different lengths: different subnets.
  EXPECT_NE(prefix_of(ip("10.1.0.0"), 24), prefix_of(ip("10.1.0.0"), 16));
}

TEST(Prefix, Ipv6PrefixKeysKeepOnlyThePrefixBits) {
  EXPECT_EQ(cidr("2001:db8:1:2ab::1", 128), "2001:db8:1:2ab::1/128");
  EXPECT_EQ(cidr("2001:db8:1:2ab::1", 64), "2001:db8:1:2ab::/64");
  EXPECT_EQ(cidr("2001:db8:1:2ab::1", 56), "2001:db8:1:200::/56");
  EXPECT_EQ(cidr("2001:db8:1:2ab::1", 48), "2001:db8:1::/48");
  EXPECT_EQ(cidr("2001:db8:1:2ab:ffff:ffff:ffff:ffff", 65), "2001:db8:1:2ab:8000::/65");
  EXPECT_EQ(cidr("2001:db8:1:2ab:ffff:ffff:ffff:ffff", 63), "2001:db8:1:2aa::/63");
  EXPECT_EQ(cidr("2001:db8::1", 0), "::/0");
  EXPECT_EQ(prefix_of(ip("2001:db8:1:200::1"), 56), prefix_of(ip("2001:db8:1:2ff::9"), 56));
  EXPECT_NE(prefix_of(ip("2001:db8:1:200::1"), 56), prefix_of(ip("2001:db8:1:300::1"), 56));
  EXPECT_EQ(prefix_of(ip("2001:db8:1:200::1"), 48), prefix_of(ip("2001:db8:1:300::1"), 48));
}

TEST(Prefix, FamiliesNeverShareAKey) {
  EXPECT_NE(prefix_of(ip("0.0.0.0"), 0), prefix_of(ip("::"), 0));
  // ::10.1.2.3 (the old IPv4-compatible form) is an IPv6 address with the same low bits.
  EXPECT_NE(host_prefix(ip("10.1.2.3")), host_prefix(ip("::a01:203")));
  EXPECT_FALSE(contains(prefix("::/0"), host_prefix(ip("10.1.2.3"))));
  EXPECT_FALSE(contains(prefix("0.0.0.0/0"), host_prefix(ip("2001:db8::1"))));
}

TEST(Prefix, ContainsTestsPrefixMembership) {
  EXPECT_TRUE(contains(prefix("10.0.0.0/8"), host_prefix(ip("10.200.1.1"))));
  EXPECT_TRUE(contains(prefix("10.0.0.0/8"), prefix("10.1.0.0/16")));
  EXPECT_FALSE(contains(prefix("10.1.0.0/16"), prefix("10.0.0.0/8")));
  EXPECT_FALSE(contains(prefix("10.0.0.0/8"), host_prefix(ip("11.0.0.1"))));
  EXPECT_TRUE(contains(prefix("2001:db8::/32"), host_prefix(ip("2001:db8:ffff::1"))));
  EXPECT_FALSE(contains(prefix("2001:db8::/32"), host_prefix(ip("2001:db9::1"))));
}

TEST(Prefix, LoopbackCoversIpv4Slash8Ipv6OneAndMappedForms) {
  for (const char* text : {"127.0.0.1", "127.5.6.7", "::1", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(is_loopback(ip(text))) << text;
    EXPECT_TRUE(is_loopback(host_prefix(ip(text)))) << text;
  }
  for (const char* text : {"10.0.0.1", "128.0.0.1", "::2", "::", "2001:db8::1"}) {
    EXPECT_FALSE(is_loopback(ip(text))) << text;
    EXPECT_FALSE(is_loopback(host_prefix(ip(text)))) << text;
  }
}

TEST(Prefix, HashSpreadsSiblingSubnetsOverLowBits) {
  // 4096 sibling /24s (one /12) into 4096 slots by the low 12 bits: a uniform hash fills
  // about 63% of them; one that ignores the varying bits fills a handful.
  boost::unordered_flat_set<std::size_t> slots;
  boost::unordered_flat_set<std::size_t> hashes;
  for (std::uint32_t i = 0; i < 4096; ++i) {
    const auto a = boost::asio::ip::address_v4((10U << 24) | (i << 8) | 1U);
    const std::size_t h = PrefixHash{}(prefix_of(address(a), 24));
    hashes.insert(h);
    slots.insert(h & 0xfff);
  }
  EXPECT_EQ(hashes.size(), 4096U);
  EXPECT_GT(slots.size(), 2400U);
  // The same for IPv6 /64s of one /48.
  slots.clear();
  for (unsigned i = 0; i < 4096; ++i) {
    const std::string text = "2001:db8:1:" + std::to_string(i) + "::1";
    slots.insert(PrefixHash{}(prefix_of(ip(text.c_str()), 64)) & 0xfff);
  }
  EXPECT_GT(slots.size(), 2400U);
}

TEST(Prefix, FormatsPrefixesAndAddressesAsText) {
  EXPECT_EQ(to_string(prefix_of(ip("10.1.2.3"), 24)), "10.1.2.0/24");
  EXPECT_EQ(to_string(prefix_of(ip("2001:db8:1:2::5"), 48)), "2001:db8:1::/48");
  EXPECT_EQ(address_text(host_prefix(ip("10.1.2.3"))), "10.1.2.3");
  EXPECT_EQ(address_text(host_prefix(ip("::ffff:10.1.2.3"))), "10.1.2.3");
  EXPECT_EQ(address_text(host_prefix(ip("2001:DB8::0001"))), "2001:db8::1");
  EXPECT_EQ(to_address(prefix_of(ip("10.1.2.3"), 16)), ip("10.1.0.0"));
}

TEST(Prefix, ParsesCidrTextAndBareAddresses) {
  const Prefix lan = prefix("10.0.0.0/8");
  EXPECT_EQ(lan.family, Family::v4);
  EXPECT_EQ(lan.length, 8);
  EXPECT_EQ(lan, prefix_of(ip("10.20.30.40"), 8));
  EXPECT_EQ(prefix("2001:db8::/32"), prefix_of(ip("2001:db8:ffff::1"), 32));
  EXPECT_EQ(prefix("10.1.2.3"), host_prefix(ip("10.1.2.3")));
  EXPECT_EQ(prefix("::1"), host_prefix(ip("::1")));
  EXPECT_EQ(prefix("0.0.0.0/0"), prefix_of(ip("1.2.3.4"), 0));
  EXPECT_EQ(prefix("::/0"), prefix_of(ip("2001::1"), 0));
  EXPECT_EQ(prefix("10.1.2.3/32"), host_prefix(ip("10.1.2.3")));
  EXPECT_EQ(to_string(prefix("2001:DB8:1::/48")), "2001:db8:1::/48");
  // An IPv4-mapped prefix is the IPv4 prefix it maps, as addresses are normalized alike.
  EXPECT_EQ(prefix("::ffff:10.0.0.0/104"), prefix("10.0.0.0/8"));
  EXPECT_EQ(prefix("::ffff:0:0/96"), prefix("0.0.0.0/0"));
  // Bits past the length are cleared, as Config::validate() and the gater read the text.
  EXPECT_EQ(prefix("10.1.2.3/24"), prefix("10.1.2.0/24"));
  EXPECT_EQ(prefix("2001:db8::1/64"), prefix("2001:db8::/64"));
  EXPECT_EQ(prefix("::ffff:0:0/80"), prefix("::/80"));
}

TEST(Prefix, RejectsMalformedCidrWithAReason) {
  const std::vector<std::string> malformed = {
      "",
      "/8",
      "10.0.0.0/",
      "10.0.0.0/33",
      "2001:db8::/129",
      "10.0.0/8",
      "10.0.0.0/8/8",
      "10.0.0.0/-1",
      "10.0.0.0/+8",
      "10.0.0.0/0008",
      "10.0.0.0/8 ",
      " 10.0.0.0/8",
      "10.0.0.0 /8",
      "fe80::1%eth0/64",
      "hello/8",
      "256.0.0.0/8",
      std::string("10.0.0.0\0/8", 11),
      std::string("10.0.0.0/8\0", 11),
  };
  for (const std::string& text : malformed) {
    std::string error;
    EXPECT_FALSE(parse_prefix(text, &error).has_value()) << "accepted: " << text;
    EXPECT_EQ(error.rfind("malformed CIDR \"", 0), 0U) << text << " -> " << error;
    EXPECT_FALSE(parse_prefix(text).has_value()) << text;
  }
  std::string error;
  (void)parse_prefix("10.0.0.0/33", &error);
  EXPECT_EQ(error, "malformed CIDR \"10.0.0.0/33\": prefix length 33 exceeds 32 for IPv4");
  (void)parse_prefix("2001:db8::/129", &error);
  EXPECT_EQ(error, "malformed CIDR \"2001:db8::/129\": prefix length 129 exceeds 128 for IPv6");
  (void)parse_prefix("10.0.0.0/x", &error);
  EXPECT_EQ(error, "malformed CIDR \"10.0.0.0/x\": the prefix length is not a number");
  (void)parse_prefix("10.0.0.0 /8", &error);
  EXPECT_EQ(error, "malformed CIDR \"10.0.0.0 /8\": not an IP address");
}

TEST(Prefix, AddressTextOfIpv4IsWhatBoostWrites) {
  std::mt19937 rng(3);
  for (int i = 0; i < 10'000; ++i) {
    const boost::asio::ip::address_v4 a(static_cast<std::uint32_t>(rng()));
    EXPECT_EQ(address_text(host_prefix(address(a))), a.to_string());
  }
}

TEST(Prefix, AcceptedTextMeansWhatBoostReadsAndPrintsBackToItself) {
  // Valid prefixes of every length and family: parse_prefix agrees with asio's networks
  // (host bits cleared), and its text parses back to the same prefix.
  std::mt19937_64 rng(5);
  for (int i = 0; i < 20'000; ++i) {
    const bool v6 = i % 2 == 1;
    const unsigned length = static_cast<unsigned>(rng() % (v6 ? 129 : 33));
    std::string text;
    Prefix expected;
    if (v6) {
      boost::asio::ip::address_v6::bytes_type bytes;
      for (auto& b : bytes) b = static_cast<unsigned char>(rng());
      bytes[0] = static_cast<unsigned char>(0x20 | (bytes[0] & 0x0f));  // never v4-mapped
      const boost::asio::ip::address_v6 a(bytes);
      text = a.to_string() + "/" + std::to_string(length);
      const auto net = boost::asio::ip::make_network_v6(a, static_cast<unsigned short>(length));
      expected = prefix_of(host_prefix(address(net.network())), length);
    } else {
      const boost::asio::ip::address_v4 a(static_cast<std::uint32_t>(rng()));
      text = a.to_string() + "/" + std::to_string(length);
      const auto net = boost::asio::ip::make_network_v4(a, static_cast<unsigned short>(length));
      expected = prefix_of(host_prefix(address(net.network())), length);
    }
    const auto parsed = parse_prefix(text);
    ASSERT_TRUE(parsed.has_value()) << text;
    EXPECT_EQ(*parsed, expected) << text;
    EXPECT_EQ(parse_prefix(to_string(*parsed)), parsed) << text;
  }
}

TEST(Prefix, TheFuzzCorpusRoundTrips) {
  const std::filesystem::path corpus =
      std::filesystem::path(DEP2P_SOURCE_DIR) / "tests/fuzz/corpus/cidr";
  std::size_t accepted = 0;
  for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    std::istringstream words(text);
    for (std::string word; words >> word;) {
      const auto parsed = parse_prefix(word);
      if (!parsed) continue;
      ++accepted;
      EXPECT_EQ(prefix_of(*parsed, parsed->length), *parsed) << word << " is not canonical";
      EXPECT_EQ(parse_prefix(to_string(*parsed)), parsed) << word;
    }
  }
  EXPECT_GE(accepted, 5u);
}

TEST(Prefix, OverridesThatDoNotParseOrRepeatAreNamed) {
  SubnetCaps caps;
  caps.overrides = {{"10.0.0.0/8", 100}, {"10.1.0.0/16", 10}};
  EXPECT_FALSE(check_overrides(caps).has_value());
  caps.overrides.push_back({"10.0.0.7/8", 5});  // the same prefix once masked
  auto error = check_overrides(caps);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "limits.subnets.overrides[2].subnet");
  EXPECT_EQ(error->message, "limits.subnets.overrides[2].subnet: 10.0.0.0/8 repeats overrides[0]");
  caps.overrides = {{"10.0.0.0/33", 1}};
  error = check_overrides(caps);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "limits.subnets.overrides[0].subnet");
  EXPECT_NE(error->message.find("exceeds 32"), std::string::npos) << error->message;
}

TEST(PrefixMap, FindsEveryContainingEntryMostSpecificFirst) {
  PrefixMap<int> map;
  map[prefix("10.0.0.0/8")] = 8;
  map[prefix("10.1.0.0/16")] = 16;
  map[prefix("10.1.2.3")] = 32;
  map[prefix("2001:db8::/32")] = 132;
  std::vector<int> seen;
  map.visit_matches(host_prefix(ip("10.1.2.3")), [&](const Prefix&, const int& v) {
    seen.push_back(v);
    return false;
  });
  EXPECT_EQ(seen, (std::vector<int>{32, 16, 8}));
  seen.clear();
  map.visit_matches(host_prefix(ip("::ffff:10.9.9.9")), [&](const Prefix&, const int& v) {
    seen.push_back(v);
    return false;
  });
  EXPECT_EQ(seen, (std::vector<int>{8}));
  EXPECT_FALSE(map.visit_matches(host_prefix(ip("11.0.0.1")),
                                 [](const Prefix&, const int&) { return true; }));
  EXPECT_TRUE(map.erase(prefix("10.1.0.0/16")));
  EXPECT_FALSE(map.erase(prefix("10.1.0.0/16")));
  EXPECT_EQ(map.size(), 3u);
}

}  // namespace
}  // namespace dep2p::connmgr::detail
