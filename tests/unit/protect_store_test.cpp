// Unit tests for ProtectStore (docs/design.md, "Protection" protection semantics without the pool).
#include "dep2p/connmgr/protect_store.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "dep2p/connmgr/error.hpp"
#include "support/fake_connection.hpp"

namespace dep2p::connmgr {
namespace {

using testing::peer_id;
using Names = std::vector<std::string>;

TEST(ProtectStore, UnknownPeerIsNotProtected) {
  ProtectStore store;
  EXPECT_FALSE(store.is_protected(peer_id(1)));
  EXPECT_FALSE(store.is_protected(peer_id(1), "relay"));
  EXPECT_TRUE(store.protections(peer_id(1)).empty());
  EXPECT_EQ(store.size(), std::size_t{0});
}

TEST(ProtectStore, ProtectMakesThePeerProtectedByThatTag) {
  ProtectStore store;
  EXPECT_FALSE(store.protect(peer_id(1), "relay"));
  EXPECT_TRUE(store.is_protected(peer_id(1)));
  EXPECT_TRUE(store.is_protected(peer_id(1), "relay"));
  EXPECT_FALSE(store.is_protected(peer_id(1), "dht"));
  EXPECT_FALSE(store.is_protected(peer_id(2)));
}

TEST(ProtectStore, ProtectIsIdempotentPerTagNotReferenceCounted) {
  ProtectStore store;
  const NodeId peer = peer_id(1);
  EXPECT_FALSE(store.protect(peer, "relay"));
  EXPECT_FALSE(store.protect(peer, "relay"));
  EXPECT_EQ(store.protections(peer), (Names{"relay"}));
  EXPECT_FALSE(store.unprotect(peer, "relay"));
  EXPECT_FALSE(store.is_protected(peer)) << "one unprotect undoes any number of protects";
  EXPECT_FALSE(store.is_protected(peer, "relay"));
  EXPECT_EQ(store.size(), std::size_t{0});
}

TEST(ProtectStore, UnprotectReturnsWhetherAnotherTagStillProtects) {
  ProtectStore store;
  const NodeId peer = peer_id(1);
  store.protect(peer, "relay");
  store.protect(peer, "dht");
  EXPECT_TRUE(store.unprotect(peer, "relay"));
  EXPECT_TRUE(store.is_protected(peer));
  EXPECT_FALSE(store.is_protected(peer, "relay"));
  EXPECT_TRUE(store.is_protected(peer, "dht"));
  EXPECT_FALSE(store.unprotect(peer, "dht"));
  EXPECT_FALSE(store.is_protected(peer));
}

TEST(ProtectStore, UnprotectOfUnknownPeerOrTagReturnsFalseAndChangesNothing) {
  ProtectStore store;
  store.protect(peer_id(1), "relay");
  EXPECT_FALSE(store.unprotect(peer_id(2), "relay"));
  EXPECT_FALSE(store.is_protected(peer_id(2)));
  EXPECT_EQ(store.size(), std::size_t{1});
  EXPECT_TRUE(store.is_protected(peer_id(1), "relay"));
  EXPECT_EQ(store.protections(peer_id(1)), (Names{"relay"}));
}

TEST(ProtectStore, UnprotectOfAnotherTagReportsTheRemainingProtection) {
  ProtectStore store;
  store.protect(peer_id(1), "relay");
  // The peer is still protected (by "relay"), and "dht" never protected it.
  const bool still = store.unprotect(peer_id(1), "dht");
  EXPECT_TRUE(still);
  EXPECT_TRUE(store.is_protected(peer_id(1), "relay"));
  EXPECT_EQ(store.protections(peer_id(1)), (Names{"relay"}));
  EXPECT_EQ(store.size(), std::size_t{1});
}

TEST(ProtectStore, EmptyTagIsInvalidAndProtectsNothing) {
  ProtectStore store;
  EXPECT_EQ(store.protect(peer_id(1), ""), Errc::invalid_argument);
  EXPECT_FALSE(store.is_protected(peer_id(1)));
  EXPECT_FALSE(store.is_protected(peer_id(1), ""));
  EXPECT_EQ(store.size(), std::size_t{0});
  EXPECT_FALSE(store.unprotect(peer_id(1), ""));
}

TEST(ProtectStore, ProtectionsAreListedInTheOrderAdded) {
  ProtectStore store;
  const NodeId peer = peer_id(1);
  store.protect(peer, "zeta");
  store.protect(peer, "alpha");
  store.protect(peer, "mid");
  store.protect(peer, "zeta");  // already there: keeps its place
  EXPECT_EQ(store.protections(peer), (Names{"zeta", "alpha", "mid"}));
  store.unprotect(peer, "alpha");
  EXPECT_EQ(store.protections(peer), (Names{"zeta", "mid"}));
}

TEST(ProtectStore, SizeCountsProtectedPeersNotTags) {
  ProtectStore store;
  store.protect(peer_id(1), "a");
  store.protect(peer_id(1), "b");
  store.protect(peer_id(2), "a");
  store.protect(peer_id(3), "c");
  EXPECT_EQ(store.size(), std::size_t{3});
  store.unprotect(peer_id(1), "a");
  EXPECT_EQ(store.size(), std::size_t{3});
  store.unprotect(peer_id(1), "b");
  EXPECT_EQ(store.size(), std::size_t{2});
  EXPECT_TRUE(store.protections(peer_id(1)).empty());
}

TEST(ProtectStore, ReprotectingAfterFullUnprotectWorks) {
  ProtectStore store;
  store.protect(peer_id(1), "a");
  store.unprotect(peer_id(1), "a");
  EXPECT_FALSE(store.protect(peer_id(1), "a"));
  EXPECT_TRUE(store.is_protected(peer_id(1), "a"));
  EXPECT_EQ(store.size(), std::size_t{1});
}

TEST(ProtectStore, ConcurrentProtectAndUnprotectGiveExactState) {
  ProtectStore store;
  constexpr int kPeers = 200;
  constexpr int kRounds = 50;
  auto worker = [&store](int which) {
    const std::string tag = "t" + std::to_string(which);
    for (int round = 0; round < kRounds; ++round) {
      for (int i = 0; i < kPeers; ++i) {
        store.protect(peer_id(static_cast<std::uint64_t>(i)), tag);
      }
      // Churn: drop this thread's protection from the peers of its parity.
      for (int i = which; i < kPeers; i += 2) {
        store.unprotect(peer_id(static_cast<std::uint64_t>(i)), tag);
      }
      (void)store.is_protected(peer_id(static_cast<std::uint64_t>(round)));
      (void)store.size();
    }
  };
  std::thread a(worker, 0);
  std::thread b(worker, 1);
  a.join();
  b.join();

  // Peer i keeps only the protection of the thread whose parity differs from i.
  for (int i = 0; i < kPeers; ++i) {
    const NodeId peer = peer_id(static_cast<std::uint64_t>(i));
    const std::string keeper = "t" + std::to_string(1 - (i % 2));
    const std::string dropped = "t" + std::to_string(i % 2);
    EXPECT_TRUE(store.is_protected(peer, keeper)) << "peer " << i;
    EXPECT_FALSE(store.is_protected(peer, dropped)) << "peer " << i;
    EXPECT_EQ(store.protections(peer), (Names{keeper})) << "peer " << i;
  }
  EXPECT_EQ(store.size(), static_cast<std::size_t>(kPeers));

  std::thread c([&] {
    for (int i = 0; i < kPeers; i += 2)
      store.unprotect(peer_id(static_cast<std::uint64_t>(i)), "t1");
  });
  std::thread d([&] {
    for (int i = 1; i < kPeers; i += 2)
      store.unprotect(peer_id(static_cast<std::uint64_t>(i)), "t0");
  });
  c.join();
  d.join();
  EXPECT_EQ(store.size(), std::size_t{0});
}

}  // namespace
}  // namespace dep2p::connmgr
