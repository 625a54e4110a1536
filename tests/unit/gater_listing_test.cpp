// BasicGater's listings (rules() and counts()): every kind of rule listed where it belongs,
// bans listed until their end and not after, one consistent listing under concurrent
// changes, and the same listing after a reload from the rule file.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/gater.hpp"
#include "support/fake_connection.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using testing::peer_id;

boost::asio::ip::address ip(const char* text) { return boost::asio::ip::make_address(text); }
Subnet subnet(const char* address, std::uint8_t length) { return Subnet{ip(address), length}; }

class GaterListing : public ::testing::Test {
 protected:
  std::shared_ptr<BasicGater> make_gater() {
    BasicGaterOptions options;
    options.time_source = time;
    options.wall_clock = [this] { return wall; };
    return std::make_shared<BasicGater>(io.get_executor(), std::move(options));
  }
  void advance(Duration by) {
    time->advance(by);
    wall += std::chrono::duration_cast<std::chrono::system_clock::duration>(by);
  }

  boost::asio::io_context io;
  std::shared_ptr<ManualTimeSource> time = std::make_shared<ManualTimeSource>(io);
  std::chrono::system_clock::time_point wall =
      std::chrono::system_clock::time_point{} + std::chrono::hours(24 * 365 * 55);
  std::shared_ptr<BasicGater> gater = make_gater();
};

TEST_F(GaterListing, AnEmptyGaterListsNothing) {
  const GaterRules rules = gater->rules();
  EXPECT_TRUE(rules.blocked_peers.empty());
  EXPECT_TRUE(rules.banned_subnets.empty());
  EXPECT_EQ(gater->counts(), GaterCounts{});
  EXPECT_EQ(rules.at, time->now());
}

TEST_F(GaterListing, EachKindIsListedWhereItBelongs) {
  gater->block_peer(peer_id(2));
  gater->block_peer(peer_id(1));
  gater->allow_peer(peer_id(3));
  gater->ban_peer(peer_id(4), 60s);
  ASSERT_FALSE(gater->block("10.1.2.3"));
  ASSERT_FALSE(gater->block("::ffff:10.9.9.9"));  // IPv4-mapped: an IPv4 rule
  ASSERT_FALSE(gater->block("2001:db8::1"));
  ASSERT_FALSE(gater->block("10.1.2.7/24"));  // host bits cleared
  ASSERT_FALSE(gater->block("2001:db8::/32"));
  ASSERT_FALSE(gater->allow("10.1.2.9"));
  ASSERT_FALSE(gater->allow("192.168.0.0/16"));
  ASSERT_FALSE(gater->ban("192.0.2.1", 30s));
  ASSERT_FALSE(gater->ban("198.51.100.0/24", 90s));
  const TimePoint t0 = time->now();

  const GaterRules rules = gater->rules();
  EXPECT_EQ(rules.blocked_peers, (std::vector<NodeId>{peer_id(1), peer_id(2)}));
  EXPECT_EQ(rules.allowed_peers, (std::vector<NodeId>{peer_id(3)}));
  EXPECT_EQ(rules.banned_peers, (std::vector<PeerBan>{{peer_id(4), t0 + 60s}}));
  EXPECT_EQ(rules.blocked_addresses, (std::vector<boost::asio::ip::address>{
                                         ip("10.1.2.3"), ip("10.9.9.9"), ip("2001:db8::1")}));
  EXPECT_EQ(rules.allowed_addresses, (std::vector<boost::asio::ip::address>{ip("10.1.2.9")}));
  EXPECT_EQ(rules.banned_addresses, (std::vector<AddressBan>{{ip("192.0.2.1"), t0 + 30s}}));
  EXPECT_EQ(rules.blocked_subnets,
            (std::vector<Subnet>{subnet("10.1.2.0", 24), subnet("2001:db8::", 32)}));
  EXPECT_EQ(rules.allowed_subnets, (std::vector<Subnet>{subnet("192.168.0.0", 16)}));
  EXPECT_EQ(rules.banned_subnets, (std::vector<SubnetBan>{{subnet("198.51.100.0", 24), t0 + 90s}}));

  const GaterCounts expected{2, 1, 1, 3, 1, 1, 2, 1, 1};
  EXPECT_EQ(gater->counts(), expected);
  EXPECT_EQ(gater->rule_count(), 13u);
  // The listed subnets are the text block() and unblock() take.
  EXPECT_EQ(rules.blocked_subnets[0].to_string(), "10.1.2.0/24");
  EXPECT_TRUE(gater->unblock(rules.blocked_subnets[1].to_string()));
  EXPECT_EQ(gater->counts().blocked_subnets, 1u);
}

TEST_F(GaterListing, UnblockingAndDisallowingTakeRulesOffTheLists) {
  gater->block_peer(peer_id(1));
  gater->allow_peer(peer_id(1));  // one peer, two rules: listed in both
  ASSERT_FALSE(gater->block("10.0.0.0/8"));
  EXPECT_EQ(gater->counts().blocked_peers, 1u);
  EXPECT_EQ(gater->counts().allowed_peers, 1u);
  EXPECT_TRUE(gater->unblock_peer(peer_id(1)));
  EXPECT_TRUE(gater->unblock("10.0.0.0/8"));
  const GaterRules rules = gater->rules();
  EXPECT_TRUE(rules.blocked_peers.empty());
  EXPECT_EQ(rules.allowed_peers, (std::vector<NodeId>{peer_id(1)}));
  EXPECT_TRUE(rules.blocked_subnets.empty());
  EXPECT_TRUE(gater->disallow_peer(peer_id(1)));
  EXPECT_EQ(gater->counts(), GaterCounts{});
}

TEST_F(GaterListing, ABanIsListedUntilItsEndAndNotAfter) {
  gater->ban_peer(peer_id(1), 10s);
  ASSERT_FALSE(gater->ban("10.1.2.3", 20s));
  ASSERT_FALSE(gater->ban("10.1.3.0/24", 20s));
  advance(10s - 1ms);
  EXPECT_EQ(gater->rules().banned_peers.size(), 1u);
  EXPECT_EQ(gater->counts().banned_peers, 1u);
  advance(1ms);
  EXPECT_TRUE(gater->rules().banned_peers.empty());
  EXPECT_EQ(gater->counts().banned_peers, 0u);
  EXPECT_EQ(gater->counts().banned_addresses, 1u);

  // Ended but not swept yet (time jumped past the end without the sweep running): still
  // neither listed nor counted.
  time->jump(10s);
  const GaterRules rules = gater->rules();
  EXPECT_TRUE(rules.banned_addresses.empty());
  EXPECT_TRUE(rules.banned_subnets.empty());
  EXPECT_EQ(gater->counts(), GaterCounts{});
  EXPECT_EQ(gater->rule_count(), 2u) << "the expired bans are still held until swept";
  time->advance(0ms);  // the sweep runs
  EXPECT_EQ(gater->rule_count(), 0u);
  EXPECT_EQ(gater->counts(), GaterCounts{});
}

TEST_F(GaterListing, ALaterBanMovesTheListedEnd) {
  gater->ban_peer(peer_id(1), 10s);
  gater->ban_peer(peer_id(1), 30s);
  gater->ban_peer(peer_id(1), 5s);  // the later end stays
  const GaterRules rules = gater->rules();
  ASSERT_EQ(rules.banned_peers.size(), 1u);
  EXPECT_EQ(rules.banned_peers[0].until, rules.at + 30s);
  EXPECT_EQ(gater->counts().banned_peers, 1u);
}

TEST_F(GaterListing, BansAreListedSoonestEndFirst) {
  gater->ban_peer(peer_id(1), 30s);
  gater->ban_peer(peer_id(2), 10s);
  gater->ban_peer(peer_id(3), 20s);
  const GaterRules rules = gater->rules();
  ASSERT_EQ(rules.banned_peers.size(), 3u);
  EXPECT_EQ(rules.banned_peers[0].peer, peer_id(2));
  EXPECT_EQ(rules.banned_peers[1].peer, peer_id(3));
  EXPECT_EQ(rules.banned_peers[2].peer, peer_id(1));
}

// A listing is taken under one lock: while another thread swaps a rule from one subnet
// to another, every listing holds exactly one of them, and its counts agree.
TEST_F(GaterListing, AListingIsOneConsistentSnapshot) {
  ASSERT_FALSE(gater->block("10.0.0.0/8"));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 2000 && !stop.load(); ++i) {
      const bool even = i % 2 == 0;
      ASSERT_FALSE(gater->block(even ? "11.0.0.0/8" : "10.0.0.0/8"));
      ASSERT_TRUE(gater->unblock(even ? "10.0.0.0/8" : "11.0.0.0/8"));
    }
  });
  for (int i = 0; i < 2000; ++i) {
    const GaterRules rules = gater->rules();
    ASSERT_LE(rules.blocked_subnets.size(), 2u);
    ASSERT_GE(rules.blocked_subnets.size(), 1u);
  }
  stop.store(true);
  writer.join();
  EXPECT_EQ(gater->counts().blocked_subnets, 1u);
}

class GaterListingFile : public GaterListing {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/gater_listing.XXXXXX";
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

TEST_F(GaterListingFile, AReloadedGaterListsWhatWasSaved) {
  ASSERT_FALSE(gater->attach_file(path));
  gater->block_peer(peer_id(1));
  gater->allow_peer(peer_id(2));
  gater->ban_peer(peer_id(3), 60s);
  ASSERT_FALSE(gater->block("10.1.2.0/24"));
  ASSERT_FALSE(gater->block("2001:db8::7"));
  ASSERT_FALSE(gater->allow("10.1.2.7"));
  ASSERT_FALSE(gater->ban("192.0.2.0/24", 120s));
  ASSERT_FALSE(gater->ban("192.0.2.9", 5s));
  advance(10s);  // the 5 s ban ends and is swept before the restart
  const GaterRules before = gater->rules();
  const GaterCounts counted = gater->counts();
  gater.reset();

  // A restart: a new steady clock, and 5 s of wall time pass while the node is down.
  boost::asio::io_context later_io;
  auto later_time = std::make_shared<ManualTimeSource>(later_io);
  BasicGaterOptions options;
  options.time_source = later_time;
  const auto later_wall = wall + 5s;
  options.wall_clock = [later_wall] { return later_wall; };
  auto fresh = std::make_shared<BasicGater>(later_io.get_executor(), std::move(options));
  std::string message;
  ASSERT_FALSE(fresh->attach_file(path, &message)) << message;

  const GaterRules after = fresh->rules();
  EXPECT_EQ(fresh->counts(), counted);
  EXPECT_EQ(after.blocked_peers, before.blocked_peers);
  EXPECT_EQ(after.allowed_peers, before.allowed_peers);
  EXPECT_EQ(after.blocked_addresses, before.blocked_addresses);
  EXPECT_EQ(after.allowed_addresses, before.allowed_addresses);
  EXPECT_EQ(after.blocked_subnets, before.blocked_subnets);
  EXPECT_EQ(after.allowed_subnets, before.allowed_subnets);
  EXPECT_TRUE(after.banned_addresses.empty()) << "the ban that ended before the restart";
  // Bans keep what was left of them, less the 5 s the node was down.
  ASSERT_EQ(after.banned_peers.size(), 1u);
  EXPECT_EQ(after.banned_peers[0].peer, peer_id(3));
  EXPECT_EQ(after.banned_peers[0].until - after.at, before.banned_peers[0].until - before.at - 5s);
  ASSERT_EQ(after.banned_subnets.size(), 1u);
  EXPECT_EQ(after.banned_subnets[0].subnet, before.banned_subnets[0].subnet);
  EXPECT_EQ(after.banned_subnets[0].until - after.at,
            before.banned_subnets[0].until - before.at - 5s);
  fresh.reset();
}

}  // namespace
}  // namespace dep2p::connmgr
