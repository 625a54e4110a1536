// Unit tests for the Gater defaults, CompositeGater and BasicGater (docs/design.md, "Admission"):
// CIDR rules, allow lists, bans in virtual time, on_tightened, and the rule file.
#include "dep2p/connmgr/gater.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/error.hpp"
#include "support/fake_connection.hpp"

namespace dep2p::connmgr {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::endpoint;
using testing::peer_id;

boost::asio::ip::address ip(const char* text) { return boost::asio::ip::make_address(text); }

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// A node's clocks: virtual steady time driving the timers, and a wall clock that moves
// with it (and can be moved alone, as a restart would).
struct Node {
  Node() : time(std::make_shared<ManualTimeSource>(io)) {}

  std::shared_ptr<BasicGater> make_gater(bool close_existing = false) {
    BasicGaterOptions options;
    options.time_source = time;
    options.close_existing = close_existing;
    options.wall_clock = [this] { return wall; };
    return std::make_shared<BasicGater>(io.get_executor(), std::move(options));
  }
  void advance(Duration by) {
    time->advance(by);
    wall += std::chrono::duration_cast<std::chrono::system_clock::duration>(by);
  }

  boost::asio::io_context io;
  std::shared_ptr<ManualTimeSource> time;
  std::chrono::system_clock::time_point wall =
      std::chrono::system_clock::time_point{} + hours(24 * 365 * 55);
};

class GaterTest : public ::testing::Test {
 protected:
  Node node;
  std::shared_ptr<BasicGater> gater = node.make_gater();

  bool accepts(const char* address) {
    return static_cast<bool>(gater->intercept_accept(endpoint(address)));
  }
};

// A temporary directory under /tmp, removed with everything in it.
class GaterFileTest : public GaterTest {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/gater_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir = pattern;
    path = dir + "/rules";
  }
  void TearDown() override {
    gater.reset();
    std::filesystem::remove_all(dir);
  }
  std::string dir;
  std::string path;
};

// --- Gater defaults and CompositeGater ---------------------------------------------------

// Answers every intercept with a fixed decision and counts the questions.
class FixedGater final : public Gater {
 public:
  explicit FixedGater(std::optional<std::string> deny = std::nullopt) : deny_(std::move(deny)) {}
  Decision intercept_peer_dial(const NodeId&) override { return answer(); }
  Decision intercept_addr_dial(const NodeId&, const Endpoint&) override { return answer(); }
  Decision intercept_accept(const Endpoint&) override { return answer(); }
  Decision intercept_secured(Direction, const NodeId&, const Endpoint&) override {
    return answer();
  }
  Decision intercept_upgraded(const Connection&) override { return answer(); }
  int calls = 0;

 private:
  Decision answer() {
    ++calls;
    return deny_ ? Decision::deny(*deny_) : Decision::allow();
  }
  std::optional<std::string> deny_;
};

TEST(GaterDefaults, EveryInterceptAllowsAndOnTightenedSubscribesNothing) {
  Gater gater;
  testing::FakeConnection connection(peer_id(1), Direction::inbound);
  EXPECT_TRUE(gater.intercept_peer_dial(peer_id(1)));
  EXPECT_TRUE(gater.intercept_addr_dial(peer_id(1), endpoint("10.0.0.1")));
  EXPECT_TRUE(gater.intercept_accept(endpoint("10.0.0.1")));
  EXPECT_TRUE(gater.intercept_secured(Direction::inbound, peer_id(1), endpoint("10.0.0.1")));
  EXPECT_TRUE(gater.intercept_upgraded(connection));
  EXPECT_FALSE(gater.on_tightened([] {}).active());
}

TEST(CompositeGater, FirstDenialWinsWithItsReasonAndLaterGatersAreNotAsked) {
  auto allow = std::make_shared<FixedGater>();
  auto first = std::make_shared<FixedGater>("first says no");
  auto second = std::make_shared<FixedGater>("second says no");
  CompositeGater composite({allow, first, second});
  testing::FakeConnection connection(peer_id(1), Direction::inbound);

  const std::vector<Decision> decisions = {
      composite.intercept_peer_dial(peer_id(1)),
      composite.intercept_addr_dial(peer_id(1), endpoint("10.0.0.1")),
      composite.intercept_accept(endpoint("10.0.0.1")),
      composite.intercept_secured(Direction::outbound, peer_id(1), endpoint("10.0.0.1")),
      composite.intercept_upgraded(connection)};
  for (const Decision& d : decisions) {
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.reason, "first says no");
  }
  EXPECT_EQ(allow->calls, 5);
  EXPECT_EQ(first->calls, 5);
  EXPECT_EQ(second->calls, 0);
}

TEST(CompositeGater, AllowsWhenEveryGaterAllows) {
  auto a = std::make_shared<FixedGater>();
  auto b = std::make_shared<FixedGater>();
  CompositeGater composite({a, b});
  EXPECT_TRUE(composite.intercept_accept(endpoint("10.0.0.1")));
  EXPECT_EQ(a->calls + b->calls, 2);
  EXPECT_TRUE(CompositeGater({}).intercept_peer_dial(peer_id(1)));
}

TEST(CompositeGater, RejectsANullGater) {
  EXPECT_THROW(CompositeGater({std::make_shared<FixedGater>(), nullptr}), std::invalid_argument);
}

TEST(CompositeGater, CombinesABasicGaterDenialWithOtherGaters) {
  Node node;
  auto basic = node.make_gater();
  ASSERT_FALSE(basic->block("10.1.2.0/24"));
  CompositeGater composite({std::make_shared<FixedGater>(), basic});
  const Decision d = composite.intercept_accept(endpoint("10.1.2.3"));
  EXPECT_FALSE(d);
  EXPECT_EQ(d.reason, "address 10.1.2.3 is in blocked subnet 10.1.2.0/24");
}

TEST(CompositeGater, OnTightenedListensToEveryGaterAndOneResetCancelsAll) {
  Node node;
  auto a = node.make_gater(true);
  auto b = node.make_gater(true);
  CompositeGater composite({a, std::make_shared<FixedGater>(), b});
  int fired = 0;
  Subscription sub = composite.on_tightened([&] { ++fired; });
  ASSERT_TRUE(sub.active());
  a->block_peer(peer_id(1));
  b->block_peer(peer_id(1));
  EXPECT_EQ(fired, 2);
  sub.reset();
  a->block_peer(peer_id(2));
  b->block_peer(peer_id(2));
  EXPECT_EQ(fired, 2);
}

TEST(CompositeGater, OnTightenedIsInactiveWhenNoGaterCanTighten) {
  CompositeGater composite({std::make_shared<FixedGater>()});
  EXPECT_FALSE(composite.on_tightened([] {}).active());
}

// --- CIDR rules ---------------------------------------------------------------------------

TEST_F(GaterTest, EmptyGaterAllowsEverything) {
  EXPECT_TRUE(accepts("10.1.2.3"));
  EXPECT_TRUE(accepts("2001:db8::1"));
  EXPECT_TRUE(gater->intercept_peer_dial(peer_id(1)));
  EXPECT_EQ(gater->rule_count(), 0u);
}

TEST_F(GaterTest, Ipv4SubnetsDenyAddressesInsideAndAllowOutsideAtEveryPrefixLength) {
  ASSERT_FALSE(gater->block("10.0.0.0/8"));
  ASSERT_FALSE(gater->block("172.16.0.0/12"));
  ASSERT_FALSE(gater->block("192.168.1.0/24"));
  ASSERT_FALSE(gater->block("203.0.113.7/32"));
  ASSERT_FALSE(gater->block("198.51.100.9"));  // a bare address is a /32
  EXPECT_EQ(gater->rule_count(), 5u);

  for (const char* inside : {"10.0.0.0", "10.255.255.255", "172.16.0.1", "172.31.255.255",
                             "192.168.1.0", "192.168.1.255", "203.0.113.7", "198.51.100.9"}) {
    EXPECT_FALSE(accepts(inside)) << inside;
    EXPECT_TRUE(gater->is_address_blocked(ip(inside))) << inside;
  }
  for (const char* outside :
       {"11.0.0.0", "9.255.255.255", "172.32.0.0", "172.15.255.255", "192.168.0.255", "192.168.2.0",
        "203.0.113.6", "203.0.113.8", "198.51.100.10"}) {
    EXPECT_TRUE(accepts(outside)) << outside;
    EXPECT_FALSE(gater->is_address_blocked(ip(outside))) << outside;
  }
}

TEST_F(GaterTest, Ipv4SlashZeroBlocksEveryIpv4AddressButNoIpv6) {
  ASSERT_FALSE(gater->block("0.0.0.0/0"));
  EXPECT_FALSE(accepts("1.2.3.4"));
  EXPECT_FALSE(accepts("255.255.255.255"));
  EXPECT_FALSE(accepts("::ffff:1.2.3.4"));
  EXPECT_TRUE(accepts("2001:db8::1"));
  EXPECT_EQ(gater->intercept_accept(endpoint("1.2.3.4")).reason,
            "address 1.2.3.4 is in blocked subnet 0.0.0.0/0");
}

TEST_F(GaterTest, Ipv6SubnetsDenyAddressesInsideAndAllowOutsideAtEveryPrefixLength) {
  ASSERT_FALSE(gater->block("2001:db8::/32"));
  ASSERT_FALSE(gater->block("2001:db9:1::/48"));
  ASSERT_FALSE(gater->block("2001:dba:0:1::/64"));
  ASSERT_FALSE(gater->block("2001:dbb::1/128"));
  ASSERT_FALSE(gater->block("2001:dbc::5"));    // a bare address is a /128
  ASSERT_FALSE(gater->block("2001:dbd::/33"));  // a prefix that is not a multiple of 16

  for (const char* inside :
       {"2001:db8::1", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9:1::1",
        "2001:db9:1:ffff::1", "2001:dba:0:1::", "2001:dba:0:1:ffff:ffff:ffff:ffff", "2001:dbb::1",
        "2001:dbc::5", "2001:dbd:7fff::1"}) {
    EXPECT_FALSE(accepts(inside)) << inside;
  }
  for (const char* outside : {"2001:db7:ffff::1", "2001:db9:2::1", "2001:dba:0:2::1", "2001:dbb::2",
                              "2001:dbc::4", "2001:dbd:8000::1", "10.0.0.1"}) {
    EXPECT_TRUE(accepts(outside)) << outside;
  }
}

TEST_F(GaterTest, Ipv6SlashZeroBlocksEveryIpv6AddressButNoIpv4) {
  ASSERT_FALSE(gater->block("::/0"));
  EXPECT_FALSE(accepts("2001:db8::1"));
  EXPECT_FALSE(accepts("::1"));
  EXPECT_TRUE(accepts("10.0.0.1"));
  EXPECT_TRUE(accepts("::ffff:10.0.0.1")) << "a mapped address is IPv4";
}

TEST_F(GaterTest, Ipv4MappedAddressesAreJudgedAsIpv4) {
  ASSERT_FALSE(gater->block("10.1.2.0/24"));
  EXPECT_FALSE(accepts("::ffff:10.1.2.3"));
  EXPECT_EQ(gater->intercept_accept(endpoint("::ffff:10.1.2.3")).reason,
            "address 10.1.2.3 is in blocked subnet 10.1.2.0/24");
  EXPECT_TRUE(accepts("::ffff:10.1.3.3"));

  // Rules written in mapped form are IPv4 rules too.
  ASSERT_FALSE(gater->block("::ffff:192.0.2.1"));
  EXPECT_FALSE(accepts("192.0.2.1"));
  ASSERT_FALSE(gater->block("::ffff:172.16.0.0/108"));  // 172.16.0.0/12
  EXPECT_FALSE(accepts("172.20.1.1"));
  EXPECT_TRUE(accepts("172.32.0.1"));
  EXPECT_TRUE(gater->unblock("172.16.0.0/12"));
  EXPECT_TRUE(accepts("172.20.1.1"));
}

TEST_F(GaterTest, MalformedTextIsRejectedAndChangesNothing) {
  ASSERT_FALSE(gater->block("10.9.9.9"));
  for (const char* bad :
       {"10.1.2.0/33", "1.2.3", "::g", "", "10.1.2.0/", "/24", "10.1.2.0/-1", "10.1.2.0/24/1",
        "10.1.2.0/ 24", " 10.1.2.3", "10.1.2.3 ", "2001:db8::/129", "fe80::1%eth0", "10.1.2.0/0024",
        "example.com", "10.1.2.256"}) {
    EXPECT_EQ(gater->block(bad), Errc::invalid_argument) << '"' << bad << '"';
    EXPECT_EQ(gater->allow(bad), Errc::invalid_argument) << '"' << bad << '"';
    EXPECT_EQ(gater->ban(bad, seconds(10)), Errc::invalid_argument) << '"' << bad << '"';
    EXPECT_FALSE(gater->unblock(bad)) << '"' << bad << '"';
    EXPECT_FALSE(gater->disallow(bad)) << '"' << bad << '"';
  }
  // A NUL would end the text early for a C-string parser.
  EXPECT_EQ(gater->block(std::string_view("10.1.2.3\0junk", 13)), Errc::invalid_argument);
  EXPECT_EQ(gater->block(std::string_view("10.1.2.0/24\0", 12)), Errc::invalid_argument);
  EXPECT_EQ(gater->rule_count(), 1u);
  EXPECT_FALSE(accepts("10.9.9.9"));
}

TEST_F(GaterTest, HostBitsAreClearedSoTheRuleIsItsNetwork) {
  ASSERT_FALSE(gater->block("10.1.2.3/24"));
  EXPECT_FALSE(accepts("10.1.2.200"));
  EXPECT_EQ(gater->intercept_accept(endpoint("10.1.2.200")).reason,
            "address 10.1.2.200 is in blocked subnet 10.1.2.0/24");
  ASSERT_FALSE(gater->block("10.1.2.0/24"));
  EXPECT_EQ(gater->rule_count(), 1u) << "the same subnet twice";
  EXPECT_TRUE(gater->unblock("10.1.2.99/24"));
  EXPECT_EQ(gater->rule_count(), 0u);
  EXPECT_TRUE(accepts("10.1.2.200"));
}

TEST_F(GaterTest, UnblockRemovesOnlyThatRuleAndSaysWhetherItExisted) {
  ASSERT_FALSE(gater->block("10.0.0.0/8"));
  ASSERT_FALSE(gater->block("10.1.2.0/24"));
  ASSERT_FALSE(gater->block("2001:db8::/32"));
  EXPECT_TRUE(gater->unblock("10.1.2.0/24"));
  EXPECT_FALSE(gater->unblock("10.1.2.0/24"));
  EXPECT_FALSE(gater->unblock("10.1.0.0/16")) << "never blocked";
  EXPECT_FALSE(accepts("10.1.2.3")) << "the /8 still holds";
  EXPECT_TRUE(gater->unblock("10.0.0.0/8"));
  EXPECT_TRUE(accepts("10.1.2.3"));
  EXPECT_FALSE(accepts("2001:db8::1"));
  EXPECT_TRUE(gater->unblock("2001:db8::/32"));
  EXPECT_TRUE(accepts("2001:db8::1"));
  EXPECT_EQ(gater->rule_count(), 0u);
}

TEST_F(GaterTest, UnblockingOneRuleKeepsItsNeighboursInTheSameSlash16) {
  ASSERT_FALSE(gater->block("10.1.2.0/24"));
  ASSERT_FALSE(gater->block("10.1.3.7"));
  ASSERT_FALSE(gater->block("2001:db8:0:1::/64"));
  ASSERT_FALSE(gater->block("2001:db8:0:2::/64"));
  EXPECT_TRUE(gater->unblock("10.1.2.0/24"));
  EXPECT_TRUE(gater->unblock("2001:db8:0:1::/64"));
  EXPECT_TRUE(accepts("10.1.2.1"));
  EXPECT_FALSE(accepts("10.1.3.7"));
  EXPECT_TRUE(accepts("2001:db8:0:1::1"));
  EXPECT_FALSE(accepts("2001:db8:0:2::1"));
  EXPECT_TRUE(gater->unblock("10.1.3.7"));
  EXPECT_TRUE(gater->unblock("2001:db8:0:2::/64"));
  ASSERT_FALSE(gater->block("10.0.0.0/8"));  // a short rule still works once they are gone
  EXPECT_FALSE(accepts("10.1.3.7"));
}

TEST_F(GaterTest, DenialReasonsNameTheAddressAndTheMostSpecificRule) {
  ASSERT_FALSE(gater->block("10.0.0.0/8"));
  ASSERT_FALSE(gater->block("10.1.2.0/24"));
  ASSERT_FALSE(gater->block("10.1.2.3"));
  ASSERT_FALSE(gater->block("2001:db8::/32"));
  EXPECT_EQ(gater->intercept_accept(endpoint("10.1.2.3")).reason, "address 10.1.2.3 is blocked");
  EXPECT_EQ(gater->intercept_accept(endpoint("10.1.2.4")).reason,
            "address 10.1.2.4 is in blocked subnet 10.1.2.0/24");
  EXPECT_EQ(gater->intercept_accept(endpoint("10.9.2.4")).reason,
            "address 10.9.2.4 is in blocked subnet 10.0.0.0/8");
  EXPECT_EQ(gater->intercept_addr_dial(peer_id(1), endpoint("2001:db8::7")).reason,
            "address 2001:db8::7 is in blocked subnet 2001:db8::/32");
  EXPECT_EQ(gater->intercept_secured(Direction::inbound, peer_id(1), endpoint("10.1.2.3")).reason,
            "address 10.1.2.3 is blocked");
}

TEST_F(GaterTest, DenialReasonsWriteEveryOctetWidthAndIpv6Correctly) {
  ASSERT_FALSE(gater->block("0.9.10.255"));
  ASSERT_FALSE(gater->block("100.99.0.0/16"));
  ASSERT_FALSE(gater->block("2001:db8:0:0:1::/80"));
  EXPECT_EQ(gater->intercept_accept(endpoint("0.9.10.255")).reason,
            "address 0.9.10.255 is blocked");
  EXPECT_EQ(gater->intercept_accept(endpoint("100.99.200.1")).reason,
            "address 100.99.200.1 is in blocked subnet 100.99.0.0/16");
  EXPECT_EQ(gater->intercept_accept(endpoint("2001:db8::1:2:3:4")).reason,
            "address 2001:db8::1:2:3:4 is in blocked subnet 2001:db8:0:0:1::/80");
}

// The lookup probes hash tables per prefix length behind a coarse filter; a plain scan
// with Boost's own subnet test is the reference it must agree with.
TEST_F(GaterTest, LookupAgreesWithALinearScanOverRandomRules) {
  using boost::asio::ip::address_v4;
  using boost::asio::ip::address_v6;
  using boost::asio::ip::network_v4;
  using boost::asio::ip::network_v6;
  std::mt19937 rng(20240601);
  // Addresses drawn from a small space, so that rules overlap and lookups hit them.
  auto random_v4 = [&] {
    return address_v4(static_cast<std::uint32_t>((10u << 24) | (rng() % 4 << 16) |
                                                 (rng() % 64 << 8) | (rng() % 16)));
  };
  auto random_v6 = [&] {
    address_v6::bytes_type bytes{};
    bytes[0] = 0x20;
    bytes[1] = 0x01;
    bytes[3] = static_cast<unsigned char>(rng() % 3);
    bytes[7] = static_cast<unsigned char>(rng() % 16);
    bytes[11] = static_cast<unsigned char>(rng() % 16);
    bytes[15] = static_cast<unsigned char>(rng() % 16);
    return address_v6(bytes);
  };
  struct Rule {
    bool allow;
    bool v6;
    network_v4 net4;
    network_v6 net6;
  };
  std::vector<Rule> rules;
  auto add = [&](bool allow, const std::string& text) {
    Rule rule{allow, text.find(':') != std::string::npos, {}, {}};
    if (rule.v6) {
      rule.net6 = boost::asio::ip::make_network_v6(text).canonical();
    } else {
      rule.net4 = boost::asio::ip::make_network_v4(text).canonical();
    }
    EXPECT_FALSE(allow ? gater->allow(text) : gater->block(text)) << text;
    rules.push_back(rule);
  };
  // Short prefixes, below the coarse filter's lengths (/16, /32): some cover part of the
  // address space, some none of it.
  add(false, "10.2.0.0/15");
  add(false, "0.0.0.0/5");
  add(false, "11.0.0.0/8");
  add(false, "2001::/31");
  add(false, "3000::/4");
  // Long ones, blocks and a few narrower allows.
  for (int i = 0; i < 300; ++i) {
    const bool allow = rng() % 6 == 0;
    if (rng() % 3 == 0) {
      const auto length =
          static_cast<unsigned short>((allow ? 120 : 96) + rng() % (allow ? 9 : 33));
      add(allow, network_v6(random_v6(), length).canonical().to_string());
    } else {
      const auto length = static_cast<unsigned short>((allow ? 29 : 24) + rng() % (allow ? 4 : 9));
      add(allow, network_v4(random_v4(), length).canonical().to_string());
    }
  }
  auto covers = [](const Rule& rule, const boost::asio::ip::address& a) {
    if (rule.v6 != a.is_v6()) return false;
    if (rule.v6) {
      const network_v6 host(a.to_v6(), 128);
      return host == rule.net6 || host.is_subnet_of(rule.net6);
    }
    const network_v4 host(a.to_v4(), 32);
    return host == rule.net4 || host.is_subnet_of(rule.net4);
  };
  // Mostly the rules' own space; some addresses in /16s (IPv6 /32s) that hold no long
  // rule, so the coarse filter rules out the long prefixes: covered by a short rule or not.
  auto probe_address = [&](int i) -> boost::asio::ip::address {
    switch (i % 6) {
      case 0:
      case 1: return random_v4();
      case 2: return address_v4(static_cast<std::uint32_t>((11u << 24) | (rng() & 0xffffff)));
      case 3:
        return address_v4(
            static_cast<std::uint32_t>((10u << 24) | ((4 + rng() % 4) << 16) | (rng() & 0xffff)));
      case 4: return random_v6();
      default: {
        auto bytes = random_v6().to_bytes();
        bytes[0] = rng() % 2 == 0 ? 0x3a : 0x20;  // 3a01:5:: is in 3000::/4
        bytes[3] = 5;
        return address_v6(bytes);
      }
    }
  };
  int denied = 0;
  int rescued = 0;  // covered by a block and by an allow
  int open = 0;
  for (int i = 0; i < 3000; ++i) {
    const boost::asio::ip::address a = probe_address(i);
    bool blocked = false;
    bool allowed = false;
    for (const Rule& rule : rules) {
      if (covers(rule, a)) (rule.allow ? allowed : blocked) = true;
    }
    (blocked ? (allowed ? rescued : denied) : open) += 1;
    EXPECT_EQ(gater->is_allowed(a), allowed) << a;
    EXPECT_EQ(gater->is_address_blocked(a), blocked && !allowed) << a;
    EXPECT_EQ(static_cast<bool>(gater->intercept_accept(Endpoint{a, 1})), !(blocked && !allowed))
        << a;
  }
  // Every outcome was exercised.
  EXPECT_GT(denied, 300);
  EXPECT_GT(rescued, 10);
  EXPECT_GT(open, 300);
}

TEST_F(GaterTest, AllowedSubnetWinsOverBlocksAndBansWhateverTheirLength) {
  ASSERT_FALSE(gater->block("10.0.0.0/8"));
  ASSERT_FALSE(gater->allow("10.1.2.0/24"));
  EXPECT_TRUE(accepts("10.1.2.3"));
  EXPECT_FALSE(accepts("10.1.3.3"));
  ASSERT_FALSE(gater->ban("10.1.2.3", hours(1)));
  ASSERT_FALSE(gater->block("10.1.2.4/32"));
  EXPECT_TRUE(accepts("10.1.2.3")) << "a ban inside an allowed subnet";
  EXPECT_TRUE(accepts("10.1.2.4")) << "a narrower block inside an allowed subnet";
  EXPECT_TRUE(gater->is_allowed(ip("10.1.2.3")));
  EXPECT_TRUE(gater->is_allowed(ip("::ffff:10.1.2.3")));
  EXPECT_FALSE(gater->is_allowed(ip("10.1.3.3")));
  EXPECT_FALSE(gater->is_address_blocked(ip("10.1.2.3")));
  EXPECT_EQ(gater->rule_count(), 4u);
}

TEST_F(GaterTest, AllowedAddressesBypassTheManagersCaps) {
  ASSERT_FALSE(gater->allow("10.1.2.0/24"));
  EXPECT_TRUE(gater->bypasses_caps(ip("10.1.2.3")));
  EXPECT_TRUE(gater->bypasses_caps(ip("::ffff:10.1.2.3")));
  EXPECT_FALSE(gater->bypasses_caps(ip("10.1.3.3")));
  EXPECT_FALSE(Gater().bypasses_caps(ip("10.1.2.3")));
  CompositeGater composite({std::make_shared<FixedGater>(), gater});
  EXPECT_TRUE(composite.bypasses_caps(ip("10.1.2.3")));
  EXPECT_FALSE(composite.bypasses_caps(ip("10.1.3.3")));
}

TEST_F(GaterTest, AllowedIpv6AddressWinsOverItsBlockedSubnet) {
  ASSERT_FALSE(gater->block("2001:db8::/32"));
  ASSERT_FALSE(gater->allow("2001:db8::1"));
  EXPECT_TRUE(accepts("2001:db8::1"));
  EXPECT_FALSE(accepts("2001:db8::2"));
  EXPECT_TRUE(gater->is_allowed(ip("2001:db8::1")));
}

TEST_F(GaterTest, DisallowBringsTheBlockBack) {
  ASSERT_FALSE(gater->block("10.1.2.0/24"));
  ASSERT_FALSE(gater->allow("10.1.2.3"));
  EXPECT_TRUE(accepts("10.1.2.3"));
  EXPECT_TRUE(gater->disallow("10.1.2.3"));
  EXPECT_FALSE(gater->disallow("10.1.2.3"));
  EXPECT_FALSE(accepts("10.1.2.3"));
  EXPECT_FALSE(gater->is_allowed(ip("10.1.2.3")));
}

// --- Peers -----------------------------------------------------------------------------------

TEST_F(GaterTest, BlockedPeerIsDeniedAtEveryPeerStageWithItsId) {
  gater->block_peer(peer_id(1));
  const std::string reason = "peer " + peer_id(1).short_string() + " is blocked";
  EXPECT_EQ(gater->intercept_peer_dial(peer_id(1)).reason, reason);
  EXPECT_EQ(gater->intercept_addr_dial(peer_id(1), endpoint("10.0.0.1")).reason, reason);
  EXPECT_EQ(gater->intercept_secured(Direction::outbound, peer_id(1), endpoint("10.0.0.1")).reason,
            reason);
  EXPECT_FALSE(gater->intercept_peer_dial(peer_id(1)));
  EXPECT_TRUE(gater->intercept_peer_dial(peer_id(2)));
  EXPECT_TRUE(gater->is_peer_blocked(peer_id(1)));
  EXPECT_FALSE(gater->is_peer_blocked(peer_id(2)));
  EXPECT_TRUE(gater->unblock_peer(peer_id(1)));
  EXPECT_FALSE(gater->unblock_peer(peer_id(1)));
  EXPECT_TRUE(gater->intercept_peer_dial(peer_id(1)));
  EXPECT_EQ(gater->rule_count(), 0u);
}

TEST_F(GaterTest, AllowedPeerWinsOverItsBlockAndBan) {
  gater->block_peer(peer_id(1));
  gater->ban_peer(peer_id(1), hours(1));
  gater->allow_peer(peer_id(1));
  EXPECT_TRUE(gater->intercept_peer_dial(peer_id(1)));
  EXPECT_TRUE(gater->is_peer_allowed(peer_id(1)));
  EXPECT_FALSE(gater->is_peer_blocked(peer_id(1)));
  EXPECT_EQ(gater->rule_count(), 3u);
  EXPECT_TRUE(gater->disallow_peer(peer_id(1)));
  EXPECT_FALSE(gater->intercept_peer_dial(peer_id(1)));
  EXPECT_FALSE(gater->is_peer_allowed(peer_id(1)));
}

TEST_F(GaterTest, AllowedPeerIsStillJudgedByItsAddress) {
  gater->allow_peer(peer_id(1));
  ASSERT_FALSE(gater->block("10.1.2.0/24"));
  const Decision d = gater->intercept_secured(Direction::inbound, peer_id(1), endpoint("10.1.2.3"));
  EXPECT_FALSE(d);
  EXPECT_EQ(d.reason, "address 10.1.2.3 is in blocked subnet 10.1.2.0/24");
  EXPECT_TRUE(gater->intercept_peer_dial(peer_id(1)));
}

TEST_F(GaterTest, PeerDenialComesBeforeAddressDenial) {
  gater->block_peer(peer_id(1));
  ASSERT_FALSE(gater->block("10.1.2.3"));
  EXPECT_EQ(gater->intercept_addr_dial(peer_id(1), endpoint("10.1.2.3")).reason,
            "peer " + peer_id(1).short_string() + " is blocked");
}

// --- Bans --------------------------------------------------------------------------------------

TEST_F(GaterTest, PeerBanDeniesUntilOneMillisecondBeforeItsEndAndTheSweepRemovesIt) {
  gater->ban_peer(peer_id(1), seconds(60));
  EXPECT_EQ(gater->rule_count(), 1u);
  EXPECT_EQ(gater->intercept_peer_dial(peer_id(1)).reason,
            "peer " + peer_id(1).short_string() + " is banned for 60 s more");
  node.advance(milliseconds(1));
  EXPECT_EQ(gater->intercept_peer_dial(peer_id(1)).reason,
            "peer " + peer_id(1).short_string() + " is banned for 60 s more")
      << "rounded up";
  node.advance(milliseconds(59'998));
  EXPECT_FALSE(gater->intercept_peer_dial(peer_id(1))) << "1 ms before the end";
  EXPECT_EQ(gater->intercept_peer_dial(peer_id(1)).reason,
            "peer " + peer_id(1).short_string() + " is banned for 1 s more");
  EXPECT_EQ(gater->rule_count(), 1u);
  node.advance(milliseconds(1));
  EXPECT_TRUE(gater->intercept_peer_dial(peer_id(1))) << "at the end";
  EXPECT_FALSE(gater->is_peer_blocked(peer_id(1)));
  EXPECT_EQ(gater->rule_count(), 0u) << "swept";
  EXPECT_EQ(node.time->pending_timers(), 0u);
}

TEST_F(GaterTest, ExpiredBanDeniesNothingEvenBeforeTheSweepRuns) {
  gater->ban_peer(peer_id(1), seconds(10));
  ASSERT_FALSE(gater->ban("10.1.2.0/24", seconds(10)));
  node.time->jump(seconds(10));  // time moves, the sweep has not fired yet
  EXPECT_EQ(gater->rule_count(), 2u);
  EXPECT_TRUE(gater->intercept_peer_dial(peer_id(1)));
  EXPECT_TRUE(accepts("10.1.2.3"));
  node.time->advance(Duration::zero());
  EXPECT_EQ(gater->rule_count(), 0u);
}

TEST_F(GaterTest, SubnetBanExpiresInVirtualTime) {
  ASSERT_FALSE(gater->ban("10.1.2.0/24", seconds(30)));
  ASSERT_FALSE(gater->ban("2001:db8::/48", seconds(30)));
  EXPECT_EQ(gater->intercept_accept(endpoint("10.1.2.3")).reason,
            "address 10.1.2.3 is in banned subnet 10.1.2.0/24 for 30 s more");
  EXPECT_FALSE(accepts("2001:db8:0:1::1"));
  node.advance(milliseconds(29'999));
  EXPECT_FALSE(accepts("10.1.2.3"));
  EXPECT_FALSE(accepts("2001:db8::1"));
  node.advance(milliseconds(1));
  EXPECT_TRUE(accepts("10.1.2.3"));
  EXPECT_TRUE(accepts("2001:db8::1"));
  EXPECT_EQ(gater->rule_count(), 0u);
}

TEST_F(GaterTest, AddressBanReasonSaysBannedAndHowLong) {
  ASSERT_FALSE(gater->ban("10.1.2.3", seconds(90)));
  EXPECT_EQ(gater->intercept_accept(endpoint("10.1.2.3")).reason,
            "address 10.1.2.3 is banned for 90 s more");
}

TEST_F(GaterTest, BanExtensionKeepsTheLaterEnd) {
  gater->ban_peer(peer_id(1), seconds(60));
  gater->ban_peer(peer_id(1), seconds(10));  // shorter: ignored
  ASSERT_FALSE(gater->ban("10.1.2.0/24", seconds(60)));
  ASSERT_FALSE(gater->ban("10.1.2.0/24", seconds(10)));
  node.advance(seconds(30));
  EXPECT_FALSE(gater->intercept_peer_dial(peer_id(1)));
  EXPECT_FALSE(accepts("10.1.2.3"));

  gater->ban_peer(peer_id(1), seconds(90));  // ends at 120 s
  ASSERT_FALSE(gater->ban("10.1.2.0/24", seconds(90)));
  EXPECT_EQ(gater->rule_count(), 2u) << "extended, not duplicated";
  node.advance(milliseconds(89'999));
  EXPECT_FALSE(gater->intercept_peer_dial(peer_id(1)));
  EXPECT_FALSE(accepts("10.1.2.3"));
  EXPECT_EQ(gater->rule_count(), 2u) << "the sweep at the old end removed nothing";
  node.advance(milliseconds(1));
  EXPECT_TRUE(gater->intercept_peer_dial(peer_id(1)));
  EXPECT_TRUE(accepts("10.1.2.3"));
  EXPECT_EQ(gater->rule_count(), 0u);
}

TEST_F(GaterTest, SweepRemovesEachBanAtItsOwnEnd) {
  gater->ban_peer(peer_id(1), seconds(30));
  gater->ban_peer(peer_id(2), seconds(10));
  ASSERT_FALSE(gater->ban("10.0.0.1", seconds(20)));
  gater->block_peer(peer_id(3));
  EXPECT_EQ(gater->rule_count(), 4u);
  node.advance(seconds(10));
  EXPECT_EQ(gater->rule_count(), 3u);
  node.advance(seconds(10));
  EXPECT_EQ(gater->rule_count(), 2u);
  node.advance(seconds(10));
  EXPECT_EQ(gater->rule_count(), 1u) << "the permanent block stays";
  EXPECT_EQ(node.time->pending_timers(), 0u);
}

TEST_F(GaterTest, UnblockLiftsABanAtOnce) {
  gater->ban_peer(peer_id(1), hours(1));
  ASSERT_FALSE(gater->ban("10.1.2.0/24", hours(1)));
  EXPECT_TRUE(gater->unblock_peer(peer_id(1)));
  EXPECT_TRUE(gater->unblock("10.1.2.0/24"));
  EXPECT_TRUE(gater->intercept_peer_dial(peer_id(1)));
  EXPECT_TRUE(accepts("10.1.2.3"));
  EXPECT_EQ(gater->rule_count(), 0u);
  node.advance(hours(2));  // the sweep finds nothing left to do
  EXPECT_EQ(gater->rule_count(), 0u);
}

TEST_F(GaterTest, BanOfNonPositiveDurationChangesNothing) {
  gater->ban_peer(peer_id(1), Duration::zero());
  gater->ban_peer(peer_id(1), -seconds(1));
  EXPECT_EQ(gater->ban("10.1.2.3", Duration::zero()), Errc::invalid_argument);
  EXPECT_EQ(gater->rule_count(), 0u);
  EXPECT_TRUE(gater->intercept_peer_dial(peer_id(1)));
}

TEST_F(GaterTest, VeryLongBanDoesNotOverflowTheClock) {
  gater->ban_peer(peer_id(1), Duration::max());
  EXPECT_FALSE(gater->intercept_peer_dial(peer_id(1)));
  node.advance(hours(24 * 365));
  EXPECT_FALSE(gater->intercept_peer_dial(peer_id(1)));
}

TEST(BasicGater, DestroyingTheGaterCancelsItsSweep) {
  Node node;
  auto gater = node.make_gater();
  gater->ban_peer(peer_id(1), seconds(10));
  EXPECT_EQ(node.time->pending_timers(), 1u);
  gater.reset();
  EXPECT_EQ(node.time->pending_timers(), 0u);
  node.advance(seconds(20));  // nothing runs, nothing crashes
}

// --- on_tightened -------------------------------------------------------------------------------

TEST(BasicGater, OnTightenedFiresAfterEachBlockOrBanWhenCloseExistingIsSet) {
  Node node;
  auto gater = node.make_gater(/*close_existing=*/true);
  int fired = 0;
  std::vector<bool> denied_when_fired;
  Subscription sub = gater->on_tightened([&] {
    ++fired;
    // The change is visible, and the handler may call the gater (no lock is held).
    denied_when_fired.push_back(
        !gater->intercept_secured(Direction::inbound, peer_id(1), endpoint("10.1.2.3")));
  });
  gater->block_peer(peer_id(1));
  EXPECT_EQ(fired, 1);
  gater->block_peer(peer_id(1));
  EXPECT_EQ(fired, 1) << "no change, nothing tightened";
  ASSERT_TRUE(gater->unblock_peer(peer_id(1)));
  EXPECT_EQ(fired, 1) << "loosening";
  ASSERT_FALSE(gater->block("10.1.2.0/24"));
  EXPECT_EQ(fired, 2);
  gater->ban_peer(peer_id(1), seconds(5));
  EXPECT_EQ(fired, 3);
  ASSERT_FALSE(gater->ban("10.9.0.0/16", seconds(5)));
  EXPECT_EQ(fired, 4);
  ASSERT_FALSE(gater->allow("10.1.2.3"));
  EXPECT_EQ(fired, 4) << "loosening";
  ASSERT_TRUE(gater->disallow("10.1.2.3"));
  EXPECT_EQ(fired, 5) << "the block applies again";
  EXPECT_EQ(denied_when_fired, (std::vector<bool>{true, true, true, true, true}));
}

TEST(BasicGater, OnTightenedDoesNotFireWithoutCloseExisting) {
  Node node;
  auto gater = node.make_gater(/*close_existing=*/false);
  int fired = 0;
  Subscription sub = gater->on_tightened([&] { ++fired; });
  gater->block_peer(peer_id(1));
  ASSERT_FALSE(gater->block("10.1.2.0/24"));
  gater->ban_peer(peer_id(2), seconds(5));
  EXPECT_EQ(fired, 0);
}

TEST(BasicGater, OnTightenedStopsAfterReset) {
  Node node;
  auto gater = node.make_gater(true);
  int first = 0;
  int second = 0;
  Subscription a = gater->on_tightened([&] { ++first; });
  Subscription b = gater->on_tightened([&] { ++second; });
  gater->block_peer(peer_id(1));
  a.reset();
  gater->block_peer(peer_id(2));
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 2);
}

TEST(BasicGater, ThrowingOnTightenedHandlerDoesNotStopTheOthers) {
  Node node;
  auto gater = node.make_gater(true);
  int fired = 0;
  Subscription a = gater->on_tightened([] { throw std::runtime_error("boom"); });
  Subscription b = gater->on_tightened([&] { ++fired; });
  gater->block_peer(peer_id(1));
  EXPECT_EQ(fired, 1);
  EXPECT_TRUE(gater->is_peer_blocked(peer_id(1)));
}

TEST(BasicGater, SubscriptionMayOutliveTheGater) {
  Node node;
  auto gater = node.make_gater(true);
  Subscription sub = gater->on_tightened([] {});
  gater.reset();
  sub.reset();  // nothing to cancel any more, and no crash
}

TEST(BasicGater, ConcurrentChangesAndInterceptsAgree) {
  Node node;
  auto gater = node.make_gater();
  ASSERT_FALSE(gater->block("10.0.0.0/8"));
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load()) {
      // 10.0.0.0/8 is blocked throughout; the churn happens in 10.1.x.y.
      EXPECT_FALSE(gater->intercept_accept(endpoint("10.200.0.1")));
      (void)gater->intercept_accept(endpoint("10.1.0.1"));
    }
  });
  for (int i = 0; i < 2000; ++i) {
    const std::string net = "10.1." + std::to_string(i % 256) + ".0/24";
    ASSERT_FALSE(gater->allow(net));
    EXPECT_TRUE(gater->disallow(net));
  }
  stop.store(true);
  reader.join();
  EXPECT_EQ(gater->rule_count(), 1u);
}

// --- Persistence -------------------------------------------------------------------------------

TEST_F(GaterFileTest, RoundTripRestoresEveryRuleKindAndBanRemainingTimeInAFreshGater) {
  ASSERT_FALSE(gater->attach_file(path));
  gater->block_peer(peer_id(1));
  gater->allow_peer(peer_id(2));
  gater->ban_peer(peer_id(3), seconds(60));
  ASSERT_FALSE(gater->block("10.1.2.0/24"));
  ASSERT_FALSE(gater->block("2001:db8::/32"));
  ASSERT_FALSE(gater->allow("10.1.2.7"));
  ASSERT_FALSE(gater->allow("2001:db8::1"));
  ASSERT_FALSE(gater->ban("192.0.2.0/24", seconds(120)));
  ASSERT_FALSE(gater->ban("2001:db9::5", seconds(120)));
  EXPECT_EQ(gater->rule_count(), 9u);
  node.advance(seconds(10));
  gater.reset();

  // A restart: steady time starts over, 5 s of wall time pass while the node is down.
  Node later;
  later.wall = node.wall + seconds(5);
  auto fresh = later.make_gater();
  std::string message;
  ASSERT_FALSE(fresh->attach_file(path, &message)) << message;
  EXPECT_EQ(fresh->rule_count(), 9u);
  EXPECT_TRUE(fresh->is_peer_blocked(peer_id(1)));
  EXPECT_TRUE(fresh->is_peer_allowed(peer_id(2)));
  EXPECT_TRUE(fresh->is_peer_blocked(peer_id(3)));
  EXPECT_FALSE(fresh->intercept_accept(endpoint("10.1.2.3")));
  EXPECT_TRUE(fresh->intercept_accept(endpoint("10.1.2.7")));
  EXPECT_FALSE(fresh->intercept_accept(endpoint("2001:db8::2")));
  EXPECT_TRUE(fresh->intercept_accept(endpoint("2001:db8::1")));
  EXPECT_TRUE(fresh->is_allowed(ip("2001:db8::1")));
  EXPECT_FALSE(fresh->intercept_accept(endpoint("192.0.2.200")));
  EXPECT_FALSE(fresh->intercept_accept(endpoint("2001:db9::5")));

  // 60 - 10 - 5 = 45 s of the peer ban are left, 105 s of the address bans.
  EXPECT_EQ(fresh->intercept_peer_dial(peer_id(3)).reason,
            "peer " + peer_id(3).short_string() + " is banned for 45 s more");
  later.advance(milliseconds(44'999));
  EXPECT_TRUE(fresh->is_peer_blocked(peer_id(3)));
  later.advance(milliseconds(1));
  EXPECT_FALSE(fresh->is_peer_blocked(peer_id(3)));
  later.advance(seconds(60) - milliseconds(1));
  EXPECT_FALSE(fresh->intercept_accept(endpoint("192.0.2.200")));
  later.advance(milliseconds(1));
  EXPECT_TRUE(fresh->intercept_accept(endpoint("192.0.2.200")));
  EXPECT_TRUE(fresh->intercept_accept(endpoint("2001:db9::5")));
  EXPECT_EQ(fresh->rule_count(), 6u);
}

TEST_F(GaterFileTest, WrittenFileIsTheVersionedLineFormatSorted) {
  ASSERT_FALSE(gater->attach_file(path));
  ASSERT_FALSE(gater->block("10.1.2.3"));
  gater->block_peer(peer_id(1));
  ASSERT_FALSE(gater->allow("2001:db8::/32"));
  gater->ban_peer(peer_id(2), seconds(2));
  const auto until =
      std::chrono::duration_cast<milliseconds>(node.wall.time_since_epoch()) + seconds(2);
  EXPECT_EQ(read_all(path),
            "dep2p-connmgr-gater 1\n"
            "allow 2001:db8::/32\n"
            "ban-peer " +
                peer_id(2).to_hex() + " " + std::to_string(until.count()) +
                "\n"
                "block 10.1.2.3/32\n"
                "block-peer " +
                peer_id(1).to_hex() + "\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST_F(GaterFileTest, FileMayHoldCommentsBlankLinesAndBareAddresses) {
  write_all(path,
            "dep2p-connmgr-gater 1\n"
            "# operator notes\n"
            "\n"
            "   # indented comment\n"
            "block 10.1.2.3\r\n"
            "allow\t::1\n"
            "block-peer " +
                peer_id(1).to_hex() + "\n");
  std::string message;
  ASSERT_FALSE(gater->attach_file(path, &message)) << message;
  EXPECT_EQ(gater->rule_count(), 3u);
  EXPECT_FALSE(accepts("10.1.2.3"));
  EXPECT_TRUE(gater->is_allowed(ip("::1")));
  EXPECT_TRUE(gater->is_peer_blocked(peer_id(1)));
}

TEST_F(GaterFileTest, ExpiredBansAreDroppedOnLoad) {
  const auto now_ms = std::chrono::duration_cast<milliseconds>(node.wall.time_since_epoch());
  write_all(path,
            "dep2p-connmgr-gater 1\n"
            "ban-peer " +
                peer_id(1).to_hex() + " " + std::to_string(now_ms.count()) +
                "\n"
                "ban 10.0.0.0/8 " +
                std::to_string(now_ms.count() - 1000) +
                "\n"
                "ban 10.1.0.0/16 " +
                std::to_string(now_ms.count() + 1000) + "\n");
  ASSERT_FALSE(gater->attach_file(path));
  EXPECT_EQ(gater->rule_count(), 1u);
  EXPECT_TRUE(gater->intercept_peer_dial(peer_id(1)));
  EXPECT_TRUE(accepts("10.2.0.1"));
  EXPECT_FALSE(accepts("10.1.0.1"));
  node.advance(seconds(1));
  EXPECT_TRUE(accepts("10.1.0.1"));
}

TEST_F(GaterFileTest, CorruptFileIsReportedWithItsLineAndLeftByteForByteUntouched) {
  const std::string good_peer = peer_id(1).to_hex();
  struct Case {
    std::string text;
    int line;
    std::string what;
  };
  const std::vector<Case> cases = {
      {"", 1, "header"},
      {"dep2p-connmgr-gater\nblock 10.0.0.1\n", 1, "header"},
      {"some-other-format 1\n", 1, "header"},
      {"dep2p-connmgr-gater 2\nblock 10.0.0.1\n", 1, "unsupported version"},
      {"dep2p-connmgr-gater 1\nblock 10.0.0.1\nblok 10.0.0.2\n", 3, "unknown keyword"},
      {"dep2p-connmgr-gater 1\n# note\n\nblock-peer 12zz\n", 4, "bad peer id"},
      {"dep2p-connmgr-gater 1\nblock-peer 123\n", 2, "bad peer id"},
      {"dep2p-connmgr-gater 1\nallow-peer " + good_peer + "\nblock 10.1.2.0/33\n", 3,
       "bad address or subnet"},
      {"dep2p-connmgr-gater 1\nallow ::g\n", 2, "bad address or subnet"},
      {"dep2p-connmgr-gater 1\nban 10.0.0.1 soon\n", 2, "bad ban end"},
      {"dep2p-connmgr-gater 1\nban-peer " + good_peer + " -5\n", 2, "bad ban end"},
      {"dep2p-connmgr-gater 1\nban-peer " + good_peer + " 99999999999999999999999\n", 2,
       "bad ban end"},
      {"dep2p-connmgr-gater 1\nban 10.0.0.1\n", 2, "takes 2 fields"},
      {"dep2p-connmgr-gater 1\nblock 10.0.0.1 10.0.0.2\n", 2, "takes 1 field"},
  };
  for (const Case& c : cases) {
    write_all(path, c.text);
    std::string message;
    EXPECT_EQ(gater->attach_file(path, &message), Errc::invalid_argument) << c.text;
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find("line " + std::to_string(c.line) + ":"), std::string::npos) << message;
    EXPECT_NE(message.find(c.what), std::string::npos) << message;
    EXPECT_EQ(gater->rule_count(), 0u) << "nothing loaded: " << c.text;
    EXPECT_EQ(read_all(path), c.text);
  }

  // Nothing was attached, so later changes leave the corrupt file alone.
  gater->block_peer(peer_id(9));
  EXPECT_EQ(read_all(path), cases.back().text);
  EXPECT_EQ(gater->save(), Errc::invalid_argument);
}

TEST_F(GaterFileTest, UnreadableFileReturnsTheOsErrorAndAttachesNothing) {
  std::filesystem::create_directory(path);  // opens, but cannot be read as a file
  std::string message;
  const std::error_code ec = gater->attach_file(path, &message);
  EXPECT_EQ(ec, std::error_code(EISDIR, std::system_category())) << ec.message();
  EXPECT_NE(message.find(path), std::string::npos) << message;
  gater->block_peer(peer_id(1));
  EXPECT_EQ(gater->save(), Errc::invalid_argument) << "not attached";
  EXPECT_TRUE(std::filesystem::is_directory(path));
}

TEST_F(GaterFileTest, MissingFileAttachesAndIsCreatedOnTheFirstChange) {
  std::string message;
  ASSERT_FALSE(gater->attach_file(path, &message)) << message;
  EXPECT_FALSE(std::filesystem::exists(path)) << "attaching creates nothing";
  gater->block_peer(peer_id(1));
  ASSERT_TRUE(std::filesystem::exists(path));
  EXPECT_EQ(read_all(path), "dep2p-connmgr-gater 1\nblock-peer " + peer_id(1).to_hex() + "\n");
}

TEST_F(GaterFileTest, EveryChangeIsWrittenIncludingRemovals) {
  ASSERT_FALSE(gater->attach_file(path));
  ASSERT_FALSE(gater->block("10.1.2.0/24"));
  EXPECT_NE(read_all(path).find("block 10.1.2.0/24"), std::string::npos);
  ASSERT_TRUE(gater->unblock("10.1.2.0/24"));
  EXPECT_EQ(read_all(path), "dep2p-connmgr-gater 1\n");
}

TEST_F(GaterFileTest, RulesMadeBeforeAttachingJoinTheFileRules) {
  write_all(path, "dep2p-connmgr-gater 1\nblock 10.1.2.0/24\n");
  gater->block_peer(peer_id(1));
  ASSERT_FALSE(gater->attach_file(path));
  EXPECT_EQ(gater->rule_count(), 2u);
  EXPECT_EQ(read_all(path),
            "dep2p-connmgr-gater 1\nblock 10.1.2.0/24\nblock-peer " + peer_id(1).to_hex() + "\n");
}

TEST_F(GaterFileTest, FailedWriteLeavesThePreviousFileIntactAndKeepsTheRuleInMemory) {
  ASSERT_FALSE(gater->attach_file(path));
  ASSERT_FALSE(gater->block("10.1.2.0/24"));
  const std::string before = read_all(path);
  ASSERT_EQ(before, "dep2p-connmgr-gater 1\nblock 10.1.2.0/24\n");

  std::filesystem::create_directory(path + ".tmp");  // the temporary file cannot be made
  gater->block_peer(peer_id(1));
  EXPECT_EQ(read_all(path), before);
  EXPECT_TRUE(gater->is_peer_blocked(peer_id(1))) << "the acknowledged rule stays";
  EXPECT_EQ(gater->rule_count(), 2u);
  const std::error_code ec = gater->save();
  EXPECT_EQ(ec, std::error_code(EISDIR, std::system_category())) << ec.message();
  EXPECT_EQ(read_all(path), before);

  std::filesystem::remove(path + ".tmp");
  EXPECT_FALSE(gater->save());
  EXPECT_EQ(read_all(path),
            "dep2p-connmgr-gater 1\nblock 10.1.2.0/24\nblock-peer " + peer_id(1).to_hex() + "\n");
}

TEST_F(GaterFileTest, AttachingAFileWithBlocksFiresOnTightened) {
  write_all(path, "dep2p-connmgr-gater 1\nblock 10.1.2.0/24\n");
  gater = node.make_gater(true);
  int fired = 0;
  Subscription sub = gater->on_tightened([&] { ++fired; });
  ASSERT_FALSE(gater->attach_file(path));
  EXPECT_EQ(fired, 1);
}

// Found by tests/fuzz (fuzz_gater_file): a ban end far in the future overflowed the
// nanosecond clock while it was converted (undefined behaviour; in practice a ban that
// had already ended). It loads as the longest ban, 100 years.
TEST_F(GaterFileTest, BanEndFarInTheFutureLoadsAsTheLongestBan) {
  write_all(path,
            "dep2p-connmgr-gater 1\n"
            "ban-peer " +
                peer_id(1).to_hex() +
                " 18000000000000000\n"
                "ban-peer " +
                peer_id(2).to_hex() +
                " 9223372036854775807\n"
                "ban 10.9.0.0/16 9223372036854775807\n");
  std::string message;
  ASSERT_FALSE(gater->attach_file(path, &message)) << message;
  EXPECT_EQ(gater->rule_count(), 3u);
  node.advance(hours(24 * 365 * 99));
  EXPECT_TRUE(gater->is_peer_blocked(peer_id(1)));
  EXPECT_TRUE(gater->is_peer_blocked(peer_id(2)));
  EXPECT_FALSE(accepts("10.9.1.1"));
  node.advance(hours(24 * 366));
  EXPECT_FALSE(gater->is_peer_blocked(peer_id(1)));
  EXPECT_TRUE(accepts("10.9.1.1"));
}

TEST_F(GaterFileTest, SaveWritesNow) {
  gater->block_peer(peer_id(1));
  ASSERT_FALSE(gater->attach_file(path));  // memory had rules: written at once
  std::filesystem::remove(path);
  EXPECT_FALSE(gater->save());
  EXPECT_EQ(read_all(path), "dep2p-connmgr-gater 1\nblock-peer " + peer_id(1).to_hex() + "\n");
}

}  // namespace
}  // namespace dep2p::connmgr
