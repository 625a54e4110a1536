// How long tags and protections live (docs/design.md, "Pool and tags" and "Protection", issue 3
// acceptance 3), in virtual time: tag_retention after the last connection closes, the bound on
// temporary entries (max_temp_peers), expiry of temporary entries without a trim, protect_for and
// its expiry, the per-tag protection cap, and the configuration fields behind them.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "dep2p/connmgr/config.hpp"
#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/decay.hpp"
#include "dep2p/connmgr/error.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

using Tags = std::vector<std::pair<std::string, int>>;

// Low water 1, the given grace and tag retention, temporary entries living as long as the
// grace (their own setting, set alike so each test names one duration); decay ticks every
// second.
Config lifetime_config(std::chrono::milliseconds grace, std::chrono::milliseconds retention = 0ms) {
  Config config = trim_config(1, 100, grace);
  config.tag_retention = retention;
  if (grace > 0ms) config.temp_peer_lifetime = grace;
  config.decay_resolution = 1s;
  return config;
}

DecayingTag register_score(ConnectionManager& manager) {
  std::error_code ec;
  DecayingTag tag = manager.register_decaying_tag("score", 1s, Decay::none(), Bump::sum(), ec);
  EXPECT_FALSE(ec) << ec.message();
  return tag;
}

// =========================================================================================
// tag_retention
// =========================================================================================

TEST(TagLifetimeRetention, AReconnectInsideTheWindowKeepsTagsAndValue) {
  ManagerHarness h(lifetime_config(20s, 10s));
  auto score = register_score(h.manager);
  auto connection = h.add(1);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 5));
  ASSERT_FALSE(score.bump(peer_id(1), 7));

  ASSERT_FALSE(h.manager.remove_connection(*connection));
  auto info = h.manager.tag_info(peer_id(1));
  ASSERT_TRUE(info.has_value()) << "kept for tag_retention";
  EXPECT_TRUE(info->temporary);
  EXPECT_EQ(info->connections, 0u);
  EXPECT_EQ(info->value, 12);
  EXPECT_EQ(h.manager.stats().temporary_peers, 1u);
  EXPECT_EQ(h.manager.stats().peers, 0u);

  h.time->advance(10s - 1ms);
  const TimePoint reconnect_at = h.time->now();
  h.add(1);
  info = h.manager.tag_info(peer_id(1));
  ASSERT_TRUE(info.has_value());
  EXPECT_FALSE(info->temporary);
  EXPECT_EQ(info->connections, 1u);
  EXPECT_EQ(info->tags, (Tags{{"dht", 5}}));
  EXPECT_EQ(info->decaying_tags, (Tags{{"score", 7}}));
  EXPECT_EQ(info->value, 12);
  EXPECT_EQ(info->first_seen, reconnect_at) << "first_seen restarts on connect";
  EXPECT_EQ(h.manager.stats().temporary_peers, 0u);

  // The old deadline does not cut the reconnected peer off.
  h.time->advance(1min);
  EXPECT_EQ(h.manager.tag_info(peer_id(1))->value, 12);
  EXPECT_EQ(h.manager.stats().temporary_peers_pruned, 0u);
}

TEST(TagLifetimeRetention, TagsGoExactlyWhenTheWindowEnds) {
  ManagerHarness h(lifetime_config(20s, 10s));
  auto score = register_score(h.manager);
  auto connection = h.add(1);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 5));
  ASSERT_FALSE(score.bump(peer_id(1), 7));
  ASSERT_FALSE(h.manager.remove_connection(*connection));

  h.time->advance(10s - 1ms);
  EXPECT_TRUE(h.manager.tag_info(peer_id(1)).has_value());
  h.time->advance(1ms);
  EXPECT_FALSE(h.manager.tag_info(peer_id(1)).has_value());
  const Stats stats = h.manager.stats();
  EXPECT_EQ(stats.temporary_peers, 0u);
  EXPECT_EQ(stats.temporary_peers_pruned, 1u);
  EXPECT_EQ(stats.trims, 0u) << "expiry needs no trim";

  // A reconnect outside the window starts from nothing.
  h.add(1);
  const auto info = h.manager.tag_info(peer_id(1));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->value, 0);
  EXPECT_TRUE(info->tags.empty());
  EXPECT_TRUE(info->decaying_tags.empty());
}

TEST(TagLifetimeRetention, ZeroRetentionDropsTheTagsWithTheLastConnection) {
  ManagerHarness h(lifetime_config(20s, 0ms));
  auto score = register_score(h.manager);
  auto connection = h.add(1);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 5));
  ASSERT_FALSE(score.bump(peer_id(1), 7));

  ASSERT_FALSE(h.manager.remove_connection(*connection));
  EXPECT_FALSE(h.manager.tag_info(peer_id(1)).has_value());
  EXPECT_EQ(h.manager.stats().temporary_peers, 0u);

  h.add(1);
  EXPECT_EQ(h.manager.tag_info(peer_id(1))->value, 0);
}

TEST(TagLifetimeRetention, TheWindowStartsWhenTheLastConnectionCloses) {
  ManagerHarness h(lifetime_config(20s, 10s));
  auto first = h.add(1);
  auto second = h.add(1);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 5));

  ASSERT_FALSE(h.manager.remove_connection(*first));
  h.time->advance(5s);
  ASSERT_FALSE(h.manager.remove_connection(*second));  // window: until T0+15s

  h.time->advance(10s - 1ms);
  EXPECT_TRUE(h.manager.tag_info(peer_id(1)).has_value());
  h.time->advance(1ms);
  EXPECT_FALSE(h.manager.tag_info(peer_id(1)).has_value());
}

TEST(TagLifetimeRetention, DisconnectingAgainAfterAReconnectStartsAFreshWindow) {
  ManagerHarness h(lifetime_config(20s, 10s));
  auto connection = h.add(1);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 5));
  ASSERT_FALSE(h.manager.remove_connection(*connection));  // window until T0+10s

  h.time->advance(5s);
  auto again = h.add(1);
  h.time->advance(1s);
  ASSERT_FALSE(h.manager.remove_connection(*again));  // window until T0+16s

  h.time->advance(4s);  // T0+10s: the first window's deadline is stale
  EXPECT_TRUE(h.manager.tag_info(peer_id(1)).has_value());
  h.time->advance(6s - 1ms);
  EXPECT_TRUE(h.manager.tag_info(peer_id(1)).has_value());
  h.time->advance(1ms);  // T0+16s
  EXPECT_FALSE(h.manager.tag_info(peer_id(1)).has_value());
  EXPECT_EQ(h.manager.stats().temporary_peers_pruned, 1u);
}

TEST(TagLifetimeRetention, APeerWithoutTagsIsNotRetained) {
  ManagerHarness h(lifetime_config(20s, 10s));
  auto connection = h.add(1);
  ASSERT_FALSE(h.manager.remove_connection(*connection));
  EXPECT_FALSE(h.manager.tag_info(peer_id(1)).has_value());
  EXPECT_EQ(h.manager.stats().temporary_peers, 0u);
}

TEST(TagLifetimeRetention, UntaggingARetainedPeersLastTagDropsItsEntry) {
  ManagerHarness h(lifetime_config(20s, 10s));
  auto connection = h.add(1);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 5));
  ASSERT_FALSE(h.manager.remove_connection(*connection));
  ASSERT_EQ(h.manager.stats().temporary_peers, 1u);

  ASSERT_FALSE(h.manager.untag_peer(peer_id(1), "dht"));
  EXPECT_FALSE(h.manager.tag_info(peer_id(1)).has_value());
  EXPECT_EQ(h.manager.stats().temporary_peers, 0u);
}

TEST(TagLifetimeRetention, ARetainedPeerIsNotATrimCandidate) {
  ManagerHarness h(lifetime_config(0ms, 10s));
  auto retained = h.add(1);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 5));
  ASSERT_FALSE(h.manager.remove_connection(*retained));
  h.add_peers(2, 2);  // two connections, low water 1: one goes

  EXPECT_EQ(h.manager.trim(), 1u);
  EXPECT_EQ(h.manager.connection_count(), 1u);
  EXPECT_EQ(h.manager.tag_info(peer_id(1))->value, 5) << "inside its window: kept";
}

// =========================================================================================
// max_temp_peers
// =========================================================================================

TEST(TagLifetimeTempLimit, NewTemporaryEntriesBeyondTheBoundFailAndNothingElseChanges) {
  Config config = lifetime_config(1min);
  config.max_temp_peers = 2;
  ManagerHarness h(config);
  auto score = register_score(h.manager);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 1));
  ASSERT_FALSE(score.bump(peer_id(2), 2));

  EXPECT_EQ(h.manager.tag_peer(peer_id(3), "dht", 3), Errc::temp_peer_limit);
  EXPECT_EQ(h.manager.upsert_tag(peer_id(3), "dht", [](int old) { return old + 3; }),
            Errc::temp_peer_limit);
  EXPECT_EQ(score.bump(peer_id(3), 3), Errc::temp_peer_limit);

  EXPECT_FALSE(h.manager.tag_info(peer_id(3)).has_value());
  const Stats stats = h.manager.stats();
  EXPECT_EQ(stats.temporary_peers, 2u);
  EXPECT_EQ(stats.temporary_peers_pruned, 0u);
  EXPECT_EQ(h.manager.tag_info(peer_id(1))->value, 1);
  EXPECT_EQ(h.manager.tag_info(peer_id(2))->value, 2);
  // Existing entries may still be tagged: they are not new entries.
  EXPECT_FALSE(score.bump(peer_id(1), 10));
  EXPECT_EQ(h.manager.tag_info(peer_id(1))->value, 11);
}

TEST(TagLifetimeTempLimit, RetainedEntriesCountAsTemporary) {
  Config config = lifetime_config(1min, 10s);
  config.max_temp_peers = 2;
  ManagerHarness h(config);
  auto a = h.add(1);
  auto b = h.add(2);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 1));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(2), "dht", 2));
  ASSERT_FALSE(h.manager.remove_connection(*a));
  ASSERT_FALSE(h.manager.remove_connection(*b));
  ASSERT_EQ(h.manager.stats().temporary_peers, 2u);

  EXPECT_EQ(h.manager.tag_peer(peer_id(3), "dht", 3), Errc::temp_peer_limit);
  EXPECT_FALSE(h.manager.tag_info(peer_id(3)).has_value());

  // Their windows end: the places are free again.
  h.time->advance(10s);
  EXPECT_EQ(h.manager.stats().temporary_peers, 0u);
  EXPECT_FALSE(h.manager.tag_peer(peer_id(3), "dht", 3));
}

TEST(TagLifetimeTempLimit, APeerDisconnectingWhileTheBoundIsReachedLosesItsTagsAtOnce) {
  Config config = lifetime_config(1min, 10s);
  config.max_temp_peers = 1;
  ManagerHarness h(config);
  auto a = h.add(1);
  auto b = h.add(2);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 1));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(2), "dht", 2));
  ASSERT_FALSE(h.manager.remove_connection(*a));  // retained: the one temporary place

  ASSERT_FALSE(h.manager.remove_connection(*b));
  EXPECT_FALSE(h.manager.tag_info(peer_id(2)).has_value());
  EXPECT_EQ(h.manager.tag_info(peer_id(1))->value, 1);
  EXPECT_EQ(h.manager.stats().temporary_peers, 1u);
}

TEST(TagLifetimeTempLimit, ConnectingATemporaryPeerFreesItsPlace) {
  Config config = lifetime_config(1min);
  config.max_temp_peers = 1;
  ManagerHarness h(config);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 1));
  ASSERT_EQ(h.manager.tag_peer(peer_id(2), "dht", 2), Errc::temp_peer_limit);

  h.add(1);
  EXPECT_FALSE(h.manager.tag_peer(peer_id(2), "dht", 2));
  EXPECT_EQ(h.manager.stats().temporary_peers, 1u);
}

// =========================================================================================
// Expiry of temporary entries
// =========================================================================================

TEST(TagLifetimeTempExpiry, TemporaryEntriesExpireExactlyAtTheirLifetimeWithoutATrim) {
  ManagerHarness h(lifetime_config(20s));
  auto score = register_score(h.manager);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 1));
  ASSERT_FALSE(score.bump(peer_id(2), 2));
  ASSERT_EQ(h.manager.stats().temporary_peers, 2u);

  h.time->advance(20s - 1ms);
  EXPECT_TRUE(h.manager.tag_info(peer_id(1)).has_value());
  EXPECT_TRUE(h.manager.tag_info(peer_id(2)).has_value());
  EXPECT_EQ(h.manager.stats().temporary_peers_pruned, 0u);

  h.time->advance(1ms);
  EXPECT_FALSE(h.manager.tag_info(peer_id(1)).has_value());
  EXPECT_FALSE(h.manager.tag_info(peer_id(2)).has_value());
  const Stats stats = h.manager.stats();
  EXPECT_EQ(stats.temporary_peers, 0u);
  EXPECT_EQ(stats.temporary_peers_pruned, 2u);
  EXPECT_EQ(stats.trims, 0u);
}

// A temporary entry's lifetime is its own setting: with no grace at all, tags set before a
// dial completes still reach the connection, and a trim ranks by them.
TEST(TagLifetimeTempExpiry, WithNoGraceTagsSetBeforeTheDialCompletesStillCount) {
  Config config = trim_config(1, 100, 0ms);
  ASSERT_EQ(config.temp_peer_lifetime, 1min);  // the documented default
  ManagerHarness h(config);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 50));
  h.time->advance(10s);  // the dial and handshake take a while
  ASSERT_TRUE(h.manager.tag_info(peer_id(1)).has_value());
  auto tagged = h.add(1);
  auto plain = h.add(2);
  EXPECT_EQ(h.manager.tag_info(peer_id(1))->value, 50);
  EXPECT_EQ(h.manager.trim(), 1u);  // low water 1: the untagged peer goes
  EXPECT_FALSE(tagged->closed());
  EXPECT_TRUE(plain->closed());
}

TEST(TagLifetimeTempExpiry, TheLifetimeIsItsOwnSettingNotTheGrace) {
  Config config = trim_config(1, 100, 0ms);
  config.temp_peer_lifetime = 30s;
  ManagerHarness h(config);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 1));
  h.time->advance(30s - 1ms);
  EXPECT_TRUE(h.manager.tag_info(peer_id(1)).has_value());
  h.time->advance(1ms);
  EXPECT_FALSE(h.manager.tag_info(peer_id(1)).has_value());
}

TEST(TagLifetimeTempExpiry, EachEntryExpiresOnItsOwnDeadline) {
  ManagerHarness h(lifetime_config(20s));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 1));  // expires at T0+20s
  h.time->advance(5s);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(2), "dht", 2));  // expires at T0+25s

  h.time->advance(15s);
  EXPECT_FALSE(h.manager.tag_info(peer_id(1)).has_value());
  EXPECT_TRUE(h.manager.tag_info(peer_id(2)).has_value());
  h.time->advance(5s - 1ms);
  EXPECT_TRUE(h.manager.tag_info(peer_id(2)).has_value());
  h.time->advance(1ms);
  EXPECT_FALSE(h.manager.tag_info(peer_id(2)).has_value());
  EXPECT_EQ(h.manager.stats().temporary_peers_pruned, 2u);
}

TEST(TagLifetimeTempExpiry, ATemporaryEntryThatConnectsDoesNotExpire) {
  ManagerHarness h(lifetime_config(20s));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 4));
  h.time->advance(5s);
  h.add(1);

  h.time->advance(1min);
  const auto info = h.manager.tag_info(peer_id(1));
  ASSERT_TRUE(info.has_value());
  EXPECT_FALSE(info->temporary);
  EXPECT_EQ(info->value, 4);
  EXPECT_EQ(h.manager.stats().temporary_peers_pruned, 0u);
}

TEST(TagLifetimeTempExpiry, TheDeadlineOfAnEarlierEntryDoesNotCutANewEntryShort) {
  ManagerHarness h(lifetime_config(20s, 0ms));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 1));  // deadline T0+20s
  h.time->advance(5s);
  auto connection = h.add(1);
  ASSERT_FALSE(h.manager.remove_connection(*connection));  // the entry goes (no retention)
  ASSERT_FALSE(h.manager.tag_info(peer_id(1)).has_value());
  h.time->advance(10s);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 2));  // T0+15s: deadline T0+35s

  h.time->advance(5s);  // T0+20s
  EXPECT_TRUE(h.manager.tag_info(peer_id(1)).has_value());
  h.time->advance(15s - 1ms);
  EXPECT_EQ(h.manager.tag_info(peer_id(1))->value, 2);
  h.time->advance(1ms);  // T0+35s
  EXPECT_FALSE(h.manager.tag_info(peer_id(1)).has_value());
  EXPECT_EQ(h.manager.stats().temporary_peers_pruned, 1u);
}

// A protected peer's temporary entry: protection is independent of connection state, so a
// node that protects and tags its bootstrap peers before dialing them keeps their value
// however slow the dial. The entry still counts toward max_temp_peers.
TEST(TagLifetimeTempExpiry, AProtectedPeersTemporaryEntryNeitherExpiresNorIsPruned) {
  ManagerHarness h(lifetime_config(0ms));
  ASSERT_FALSE(h.manager.protect(peer_id(9), "boot"));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(9), "dht", 5));
  h.time->advance(1h);
  h.add_peers(1, 3);
  EXPECT_EQ(h.manager.trim(), 2u);
  const auto entry = h.manager.tag_info(peer_id(9));
  ASSERT_TRUE(entry.has_value()) << "the bootstrap peer's tags were lost before it connected";
  EXPECT_TRUE(entry->temporary);
  EXPECT_EQ(entry->value, 5);
  EXPECT_EQ(h.manager.stats().temporary_peers, 1u);
  EXPECT_EQ(h.manager.stats().temporary_peers_pruned, 0u);

  h.add(9);  // the slow dial completes: the value is there
  EXPECT_EQ(h.manager.tag_info(peer_id(9))->value, 5);
  EXPECT_FALSE(h.manager.tag_info(peer_id(9))->temporary);
}

TEST(TagLifetimeTempExpiry, AnUnprotectedEntryLivesOneLifetimeFromTheEndOfItsProtection) {
  ManagerHarness h(lifetime_config(20s));
  ASSERT_FALSE(h.manager.protect(peer_id(9), "boot"));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(9), "dht", 5));
  h.time->advance(1min);
  EXPECT_FALSE(h.manager.unprotect(peer_id(9), "boot"));

  h.time->advance(20s - 1ms);
  EXPECT_TRUE(h.manager.tag_info(peer_id(9)).has_value());
  h.time->advance(1ms);
  EXPECT_FALSE(h.manager.tag_info(peer_id(9)).has_value());
  EXPECT_EQ(h.manager.stats().temporary_peers_pruned, 1u);
}

TEST(TagLifetimeTempExpiry, AnEntryWhoseProtectionEndsLivesOneLifetimeFromThen) {
  ManagerHarness h(lifetime_config(20s));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(9), "dht", 5));  // deadline T0+20s
  ASSERT_FALSE(h.manager.protect_for(peer_id(9), "boot", 5s));
  h.time->advance(5s);  // the protection ends: the entry has one lifetime from now, to T0+25s
  EXPECT_FALSE(h.manager.is_protected(peer_id(9)));
  h.time->advance(20s - 1ms);
  EXPECT_TRUE(h.manager.tag_info(peer_id(9)).has_value());
  h.time->advance(1ms);
  EXPECT_FALSE(h.manager.tag_info(peer_id(9)).has_value());
}

TEST(TagLifetimeTempExpiry, ATimedProtectionEndingStartsTheEntrysLifetime) {
  ManagerHarness h(lifetime_config(20s));
  ASSERT_FALSE(h.manager.protect_for(peer_id(9), "boot", 1min));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(9), "dht", 5));
  h.time->advance(1min + 20s - 1ms);  // protected to T0+1min, then 20 s of lifetime
  EXPECT_TRUE(h.manager.tag_info(peer_id(9)).has_value());
  h.time->advance(1ms);
  EXPECT_FALSE(h.manager.tag_info(peer_id(9)).has_value());
}

TEST(TagLifetimeTempExpiry, AnotherProtectionKeepsTheEntryWhenOneEnds) {
  ManagerHarness h(lifetime_config(20s));
  ASSERT_FALSE(h.manager.protect(peer_id(9), "boot"));
  ASSERT_FALSE(h.manager.protect(peer_id(9), "relay"));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(9), "dht", 5));
  EXPECT_TRUE(h.manager.unprotect(peer_id(9), "boot"));
  h.time->advance(1h);
  EXPECT_TRUE(h.manager.tag_info(peer_id(9)).has_value());
}

TEST(TagLifetimeTempExpiry, ProtectedTemporaryEntriesStillCountTowardTheBound) {
  Config config = lifetime_config(0ms);
  config.max_temp_peers = 1;
  ManagerHarness h(config);
  ASSERT_FALSE(h.manager.protect(peer_id(9), "boot"));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(9), "dht", 5));
  h.time->advance(1h);
  EXPECT_EQ(h.manager.tag_peer(peer_id(10), "dht", 1), Errc::temp_peer_limit);
}

// =========================================================================================
// protect_for
// =========================================================================================

TEST(TagLifetimeProtectFor, ProtectedUntilExactlyTheDurationThenNot) {
  ManagerHarness h(lifetime_config(0ms));
  h.add(1);
  ASSERT_FALSE(h.manager.protect_for(peer_id(1), "relay", 10s));
  EXPECT_TRUE(h.manager.is_protected(peer_id(1)));
  EXPECT_EQ(h.manager.stats().protected_peers, 1u);

  h.time->advance(10s - 1ms);
  EXPECT_TRUE(h.manager.is_protected(peer_id(1)));
  EXPECT_TRUE(h.manager.is_protected(peer_id(1), "relay"));
  EXPECT_EQ(h.manager.stats().protections_expired, 0u);

  h.time->advance(1ms);
  EXPECT_FALSE(h.manager.is_protected(peer_id(1)));
  EXPECT_FALSE(h.manager.is_protected(peer_id(1), "relay"));
  const Stats stats = h.manager.stats();
  EXPECT_EQ(stats.protections_expired, 1u);
  EXPECT_EQ(stats.protected_peers, 0u);
}

TEST(TagLifetimeProtectFor, ATrimBeforeExpirySparesThePeerAndOneAfterClosesIt) {
  ManagerHarness h(lifetime_config(0ms));  // low water 1, no grace
  auto timed = h.add(1);
  auto b = h.add(2);
  auto c = h.add(3);
  // Peer 1 has the lowest value: the first to go once unprotected.
  ASSERT_FALSE(h.manager.tag_peer(peer_id(2), "dht", 100));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(3), "dht", 100));
  ASSERT_FALSE(h.manager.protect_for(peer_id(1), "relay", 10s));

  h.time->advance(10s - 1ms);
  EXPECT_EQ(h.manager.trim(), 1u);  // candidates 2 and 3: one goes
  EXPECT_FALSE(timed->closed());
  EXPECT_EQ(static_cast<int>(b->closed()) + static_cast<int>(c->closed()), 1);

  h.time->advance(1ms);
  EXPECT_EQ(h.manager.trim(), 1u);
  EXPECT_TRUE(timed->closed());
  EXPECT_EQ(static_cast<int>(b->closed()) + static_cast<int>(c->closed()), 1);
}

TEST(TagLifetimeProtectFor, AProtectionTakenBeforeConnectingAppliesAndExpires) {
  ManagerHarness h(lifetime_config(0ms));
  ASSERT_FALSE(h.manager.protect_for(peer_id(1), "relay", 10s));
  h.time->advance(2s);
  auto timed = h.add(1);
  h.add_peers(2, 2);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(2), "dht", 100));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(3), "dht", 100));

  EXPECT_EQ(h.manager.trim(), 1u);
  EXPECT_FALSE(timed->closed());
  h.time->advance(8s);
  EXPECT_EQ(h.manager.trim(), 1u);
  EXPECT_TRUE(timed->closed());
}

TEST(TagLifetimeProtectFor, ProtectMakesATimedProtectionPermanent) {
  ManagerHarness h(lifetime_config(0ms));
  ASSERT_FALSE(h.manager.protect_for(peer_id(1), "relay", 10s));
  ASSERT_FALSE(h.manager.protect(peer_id(1), "relay"));

  h.time->advance(1min);
  EXPECT_TRUE(h.manager.is_protected(peer_id(1), "relay"));
  EXPECT_EQ(h.manager.stats().protections_expired, 0u);
}

TEST(TagLifetimeProtectFor, ProtectForOnAPermanentProtectionKeepsItPermanent) {
  ManagerHarness h(lifetime_config(0ms));
  ASSERT_FALSE(h.manager.protect(peer_id(1), "relay"));
  ASSERT_FALSE(h.manager.protect_for(peer_id(1), "relay", 10s));

  h.time->advance(30s);
  EXPECT_TRUE(h.manager.is_protected(peer_id(1), "relay"));
  EXPECT_EQ(h.manager.stats().protections_expired, 0u);
}

TEST(TagLifetimeProtectFor, ProtectForOnATimedProtectionKeepsTheLaterEnd) {
  ManagerHarness h(lifetime_config(0ms));
  ASSERT_FALSE(h.manager.protect_for(peer_id(1), "relay", 10s));  // ends T0+10s
  ASSERT_FALSE(h.manager.protect_for(peer_id(2), "relay", 10s));  // ends T0+10s
  h.time->advance(2s);
  ASSERT_FALSE(h.manager.protect_for(peer_id(1), "relay", 5s));   // T0+7s: earlier, ignored
  ASSERT_FALSE(h.manager.protect_for(peer_id(2), "relay", 20s));  // T0+22s: later, kept

  h.time->advance(8s - 1ms);  // just short of T0+10s
  EXPECT_TRUE(h.manager.is_protected(peer_id(1)));
  EXPECT_TRUE(h.manager.is_protected(peer_id(2)));
  h.time->advance(1ms);  // T0+10s
  EXPECT_FALSE(h.manager.is_protected(peer_id(1)));
  EXPECT_TRUE(h.manager.is_protected(peer_id(2)));
  h.time->advance(12s - 1ms);
  EXPECT_TRUE(h.manager.is_protected(peer_id(2)));
  h.time->advance(1ms);  // T0+22s
  EXPECT_FALSE(h.manager.is_protected(peer_id(2)));
  EXPECT_EQ(h.manager.stats().protections_expired, 2u);
}

TEST(TagLifetimeProtectFor, ATimedProtectionEndingLeavesOtherProtectionsInPlace) {
  ManagerHarness h(lifetime_config(0ms));
  auto kept = h.add(1);
  h.add_peers(2, 2);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(2), "dht", 100));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(3), "dht", 100));
  ASSERT_FALSE(h.manager.protect(peer_id(1), "bootstrap"));
  ASSERT_FALSE(h.manager.protect_for(peer_id(1), "relay", 5s));

  h.time->advance(5s);
  EXPECT_FALSE(h.manager.is_protected(peer_id(1), "relay"));
  EXPECT_TRUE(h.manager.is_protected(peer_id(1), "bootstrap"));
  EXPECT_TRUE(h.manager.is_protected(peer_id(1)));
  EXPECT_EQ(h.manager.stats().protections_expired, 0u) << "the peer is still protected";
  EXPECT_EQ(h.manager.trim(), 1u);
  EXPECT_FALSE(kept->closed());
}

TEST(TagLifetimeProtectFor, UnprotectBeforeExpiryEndsItAndNothingExpiresLater) {
  ManagerHarness h(lifetime_config(0ms));
  ASSERT_FALSE(h.manager.protect_for(peer_id(1), "relay", 10s));
  h.time->advance(5s);
  EXPECT_FALSE(h.manager.unprotect(peer_id(1), "relay"));
  EXPECT_FALSE(h.manager.is_protected(peer_id(1)));

  h.time->advance(10s);
  EXPECT_EQ(h.manager.stats().protections_expired, 0u);
}

TEST(TagLifetimeProtectFor, ZeroOrNegativeDurationIsAnInvalidArgumentAndProtectsNothing) {
  ManagerHarness h(lifetime_config(0ms));
  h.add(1);
  EXPECT_EQ(h.manager.protect_for(peer_id(1), "relay", 0s), Errc::invalid_argument);
  EXPECT_EQ(h.manager.protect_for(peer_id(1), "relay", -1s), Errc::invalid_argument);
  EXPECT_FALSE(h.manager.is_protected(peer_id(1)));
  EXPECT_EQ(h.manager.stats().protected_peers, 0u);
}

TEST(TagLifetimeProtectFor, EmptyTagIsAnInvalidArgument) {
  ManagerHarness h(lifetime_config(0ms));
  EXPECT_EQ(h.manager.protect_for(peer_id(1), "", 10s), Errc::invalid_argument);
  EXPECT_FALSE(h.manager.is_protected(peer_id(1)));
}

// =========================================================================================
// The per-tag protection cap
// =========================================================================================

Config capped_config(std::size_t cap) {
  Config config = lifetime_config(0ms);
  config.max_peers_per_protection_tag = cap;
  return config;
}

TEST(TagLifetimeProtectionCap, ProtectBeyondTheCapFailsAndNothingChanges) {
  ManagerHarness h(capped_config(2));
  h.add_peers(1, 2);
  auto refused = h.add(3);
  h.add(4);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(4), "dht", 100));
  ASSERT_FALSE(h.manager.protect(peer_id(1), "relay"));
  ASSERT_FALSE(h.manager.protect(peer_id(2), "relay"));

  EXPECT_EQ(h.manager.protect(peer_id(3), "relay"), Errc::protection_limit);
  EXPECT_EQ(h.manager.protect_for(peer_id(3), "relay", 10s), Errc::protection_limit);
  EXPECT_FALSE(h.manager.is_protected(peer_id(3)));
  EXPECT_FALSE(h.manager.is_protected(peer_id(3), "relay"));
  EXPECT_EQ(h.manager.stats().protected_peers, 2u);
  EXPECT_TRUE(h.manager.is_protected(peer_id(1), "relay"));
  EXPECT_TRUE(h.manager.is_protected(peer_id(2), "relay"));

  // The refused peer is a trim candidate like any unprotected one (and the cheapest).
  EXPECT_EQ(h.manager.trim(), 1u);
  EXPECT_TRUE(refused->closed());
}

TEST(TagLifetimeProtectionCap, ReprotectingAnAlreadyProtectedPeerIsFineAtTheCap) {
  ManagerHarness h(capped_config(2));
  ASSERT_FALSE(h.manager.protect(peer_id(1), "relay"));
  ASSERT_FALSE(h.manager.protect_for(peer_id(2), "relay", 10s));

  EXPECT_FALSE(h.manager.protect(peer_id(1), "relay"));
  EXPECT_FALSE(h.manager.protect_for(peer_id(1), "relay", 10s));
  EXPECT_FALSE(h.manager.protect_for(peer_id(2), "relay", 20s));
  EXPECT_FALSE(h.manager.protect(peer_id(2), "relay"));
  EXPECT_EQ(h.manager.stats().protected_peers, 2u);
  EXPECT_EQ(h.manager.protect(peer_id(3), "relay"), Errc::protection_limit)
      << "re-protecting did not take a new place";
}

TEST(TagLifetimeProtectionCap, UnprotectFreesAPlace) {
  ManagerHarness h(capped_config(2));
  ASSERT_FALSE(h.manager.protect(peer_id(1), "relay"));
  ASSERT_FALSE(h.manager.protect(peer_id(2), "relay"));
  ASSERT_EQ(h.manager.protect(peer_id(3), "relay"), Errc::protection_limit);

  EXPECT_FALSE(h.manager.unprotect(peer_id(1), "relay"));
  EXPECT_FALSE(h.manager.protect(peer_id(3), "relay"));
  EXPECT_TRUE(h.manager.is_protected(peer_id(3), "relay"));
  EXPECT_EQ(h.manager.protect(peer_id(1), "relay"), Errc::protection_limit);
}

TEST(TagLifetimeProtectionCap, AnExpiredTimedProtectionFreesAPlace) {
  ManagerHarness h(capped_config(1));
  ASSERT_FALSE(h.manager.protect_for(peer_id(1), "relay", 10s));
  EXPECT_EQ(h.manager.protect(peer_id(2), "relay"), Errc::protection_limit);

  h.time->advance(10s);
  EXPECT_FALSE(h.manager.protect(peer_id(2), "relay"));
  EXPECT_TRUE(h.manager.is_protected(peer_id(2)));
}

TEST(TagLifetimeProtectionCap, OtherTagsAreUnaffectedByOneTagsCap) {
  ManagerHarness h(capped_config(1));
  ASSERT_FALSE(h.manager.protect(peer_id(1), "relay"));
  ASSERT_EQ(h.manager.protect(peer_id(2), "relay"), Errc::protection_limit);

  EXPECT_FALSE(h.manager.protect(peer_id(2), "bootstrap")) << "relay's cap is not bootstrap's";
  EXPECT_TRUE(h.manager.is_protected(peer_id(2), "bootstrap"));
  EXPECT_EQ(h.manager.protect(peer_id(3), "bootstrap"), Errc::protection_limit)
      << "bootstrap has its own cap of one";
  EXPECT_FALSE(h.manager.is_protected(peer_id(2), "relay"));

  // A refusal for one tag leaves the peer's other protections as they were.
  EXPECT_EQ(h.manager.protect(peer_id(2), "relay"), Errc::protection_limit);
  EXPECT_TRUE(h.manager.is_protected(peer_id(2)));
  EXPECT_EQ(h.manager.stats().protected_peers, 2u);
}

TEST(TagLifetimeProtectionCap, ZeroMeansNoCap) {
  ManagerHarness h(capped_config(0));
  for (std::uint64_t n = 1; n <= 100; ++n) {
    ASSERT_FALSE(h.manager.protect(peer_id(n), "relay")) << "peer " << n;
  }
  EXPECT_EQ(h.manager.stats().protected_peers, 100u);
}

// =========================================================================================
// Configuration
// =========================================================================================

std::string constructor_error(const Config& config) {
  boost::asio::io_context io;
  try {
    ConnectionManager manager(io, config);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return {};
}

TEST(TagLifetimeConfig, ANonPositiveTemporaryLifetimeIsRejectedNamingTheField) {
  for (const auto lifetime : {0ms, -1ms}) {
    Config config;
    config.temp_peer_lifetime = lifetime;
    const auto error = config.validate();
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(error->field, "temp_peer_lifetime");
    EXPECT_NE(constructor_error(config).find("temp_peer_lifetime"), std::string::npos);
  }
}

TEST(TagLifetimeConfig, ZeroDecayResolutionIsRejectedNamingTheField) {
  Config config;
  config.decay_resolution = 0ms;
  const auto error = config.validate();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "decay_resolution");
  EXPECT_FALSE(error->message.empty());
  EXPECT_NE(constructor_error(config).find("decay_resolution"), std::string::npos);
}

TEST(TagLifetimeConfig, NegativeDecayResolutionIsRejectedNamingTheField) {
  Config config;
  config.decay_resolution = -1ms;
  const auto error = config.validate();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "decay_resolution");
}

TEST(TagLifetimeConfig, NegativeTagRetentionIsRejectedNamingTheField) {
  Config config;
  config.tag_retention = -1ms;
  const auto error = config.validate();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "tag_retention");
  EXPECT_FALSE(error->message.empty());
  EXPECT_NE(constructor_error(config).find("tag_retention"), std::string::npos);
}

TEST(TagLifetimeConfig, DefaultsAreGoLibp2pBehaviour) {
  const Config config;
  EXPECT_EQ(config.tag_retention, 0ms);
  EXPECT_EQ(config.decay_resolution, 1min);
  EXPECT_EQ(config.max_peers_per_protection_tag, 0u);
  EXPECT_GT(config.max_temp_peers, 0u);
  EXPECT_FALSE(config.validate().has_value());
}

TEST(TagLifetimeConfig, PositiveRetentionAndACapAreValid) {
  Config config;
  config.tag_retention = 30s;
  config.max_peers_per_protection_tag = 8;
  config.decay_resolution = 1ms;
  EXPECT_FALSE(config.validate().has_value());
}

}  // namespace
}  // namespace dep2p::connmgr
