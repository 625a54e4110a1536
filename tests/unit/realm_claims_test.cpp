// Realm claims at admission (RealmConnectionManager::claim; docs/design.md, "Realms"): the
// realm's limits are checked between on_secured and add_connection, a refused connection
// never enters the pool and leaves every count as it was, and the add binds the claimed
// realms in the step that adds the connection. Virtual time throughout.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/realm_manager.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr::testing {
namespace {

class ClaimHarness {
 public:
  ClaimHarness()
      : time(std::make_shared<ManualTimeSource>(io)),
        node(io, config(), Dependencies{.time_source = time}) {}

  ConnectionManager& manager() { return node.manager(); }

  // An inbound admission of peer_id(n), secured: ready to claim.
  Reservation secured(std::uint64_t n) {
    auto admitted = manager().admit_inbound(endpoint("127.0.0.1"));
    EXPECT_TRUE(admitted) << admitted.refusal.message;
    EXPECT_TRUE(manager().on_secured(admitted.reservation, peer_id(n)));
    return std::move(admitted.reservation);
  }
  // Adds peer_id(n)'s connection with the reservation.
  std::shared_ptr<FakeConnection> add(std::uint64_t n, Reservation&& reservation) {
    auto c = reporting_connection(manager(), peer_id(n), Direction::inbound);
    EXPECT_TRUE(manager().add_admitted(c, std::move(reservation)));
    connections.push_back(c);
    return c;
  }
  // Admits, claims `realm` and adds peer_id(n): the claim's result.
  std::error_code admit(std::uint64_t n, const char* realm, Refusal* refusal = nullptr) {
    Reservation r = secured(n);
    if (auto ec = keep_refusal(refusal, node.claim(r, realm))) return ec;
    add(n, std::move(r));
    return {};
  }

  boost::asio::io_context io;
  std::shared_ptr<ManualTimeSource> time;
  RealmConnectionManager node;
  std::vector<std::shared_ptr<FakeConnection>> connections;

 private:
  static Config config() {
    Config c = trim_config(100, 1000);
    c.limits.system.pending_inbound = 64;
    return c;
  }
};

TEST(RealmClaim, TheAddBindsEveryClaimedRealmInTheStepThatAddsTheConnection) {
  ClaimHarness h;
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.hard_max = 4}));
  ASSERT_FALSE(h.node.create_realm("files", RealmConfig{.hard_max = 4}));
  EventRecorder events(h.manager());
  Reservation r = h.secured(1);
  ASSERT_TRUE(h.node.claim(r, "chat"));
  ASSERT_TRUE(h.node.claim(r, "files"));
  ASSERT_TRUE(h.node.claim(r, "chat"));  // twice: a no-op
  EXPECT_EQ(h.node.realm_stats("chat")->pending, 1u);
  EXPECT_EQ(h.node.realm_connection_count("chat"), 0u);
  auto c = h.add(1, std::move(r));
  EXPECT_EQ(h.node.realm_connection_count("chat"), 1u);
  EXPECT_EQ(h.node.realm_connection_count("files"), 1u);
  EXPECT_EQ(h.node.realms_of(peer_id(1)), (std::vector<std::string>{"chat", "files"}));
  const RealmStats chat = *h.node.realm_stats("chat");
  EXPECT_EQ(chat.pending, 0u);
  EXPECT_EQ(chat.claims, 1u);
  EXPECT_EQ(chat.binds, 1u);
  // Connected first, then one RealmBoundEvent per realm, for this connection.
  const auto all = events.events();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_TRUE(std::holds_alternative<ConnectedEvent>(all[0]));
  const auto bound = events.of<RealmBoundEvent>();
  ASSERT_EQ(bound.size(), 2u);
  EXPECT_EQ(bound[0].peer, peer_id(1));
  EXPECT_EQ(bound[0].connection, std::get<ConnectedEvent>(all[0]).connection);
  // The binding is an ordinary one: it ends when the connection leaves.
  EXPECT_FALSE(h.manager().remove_connection(*c));
  EXPECT_EQ(h.node.realm_connection_count("chat"), 0u);
  EXPECT_EQ(h.node.realm_connection_count("files"), 0u);
}

TEST(RealmClaim, AFullRealmRefusesAtTheClaimAndNothingEntersThePool) {
  ClaimHarness h;
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.hard_max = 2}));
  ASSERT_FALSE(h.admit(1, "chat"));
  // A claim holds its place before its add: the second claim fills the realm.
  Reservation second = h.secured(2);
  ASSERT_TRUE(h.node.claim(second, "chat"));
  const Stats before = h.manager().stats();
  Reservation third = h.secured(3);
  EXPECT_EQ(h.manager().stats().pending_inbound, before.pending_inbound + 1);
  Refusal refusal;
  EXPECT_EQ(keep_refusal(refusal, h.node.claim(third, "chat")), Errc::realm_full);
  EXPECT_EQ(refusal.stage, Stage::claim);
  EXPECT_EQ(refusal.reason, RefusalReason::realm_limit);
  EXPECT_EQ(refusal.scope, "realm chat");
  EXPECT_EQ(refusal.limit, "hard_max");
  EXPECT_EQ(refusal.message,
            "claim refused: realm chat holds 2 of 2 connections (claims included)");
  // The host drops the refused admission: every count is back, nothing was added.
  third.release();
  const Stats after = h.manager().stats();
  EXPECT_EQ(after.pending_inbound, before.pending_inbound);
  EXPECT_EQ(after.reservations, before.reservations);
  EXPECT_EQ(after.connections, 1u);
  EXPECT_EQ(after.connections_added, 1u);
  EXPECT_EQ(after.refusals(RefusalReason::realm_limit), 1u);
  EXPECT_EQ(h.node.realm_stats("chat")->refused_full, 1u);
  EXPECT_EQ(h.node.realm_stats("chat")->pending, 1u);  // the second claim's
  // The second claim's admission fails: its place comes back and a new claim fits.
  second.release();
  EXPECT_EQ(h.node.realm_stats("chat")->pending, 0u);
  EXPECT_FALSE(h.admit(4, "chat"));
  EXPECT_EQ(h.node.realm_connection_count("chat"), 2u);
  EXPECT_EQ(h.node.members("chat"), (std::vector<NodeId>{peer_id(1), peer_id(4)}));
}

TEST(RealmClaim, MaxMembersCountsClaimingPeersOnceAndMembersNotAgain) {
  ClaimHarness h;
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.max_members = 2, .hard_max = 8}));
  ASSERT_FALSE(h.admit(1, "chat"));
  // A member's second connection needs no new member place.
  ASSERT_FALSE(h.admit(1, "chat"));
  // Two claims of one new peer take one member place, which fills the realm.
  Reservation a = h.secured(2);
  Reservation b = h.secured(2);
  ASSERT_TRUE(h.node.claim(a, "chat"));
  ASSERT_TRUE(h.node.claim(b, "chat"));
  Refusal refusal;
  EXPECT_EQ(h.admit(3, "chat", &refusal), Errc::realm_full);
  EXPECT_EQ(refusal.limit, "max_members");
  EXPECT_EQ(refusal.message, "claim refused: realm chat has 2 of 2 members (claims included)");
  EXPECT_FALSE(h.admit(1, "chat"));  // a member still may
  // One of peer 2's claims ends; its other still holds the place.
  a.release();
  EXPECT_EQ(h.admit(3, "chat"), Errc::realm_full);
  h.add(2, std::move(b));
  EXPECT_EQ(h.node.members("chat"), (std::vector<NodeId>{peer_id(1), peer_id(2)}));
  EXPECT_EQ(h.node.realm_connection_count("chat"), 4u);
}

// A bind of a connection already in the pool counts the claims outstanding too: were it
// to take a claim's place, the claim's add would take the realm past its limits.
TEST(RealmClaim, ABindCountsTheClaimsOutstandingUnderHardMaxAndMaxMembers) {
  ClaimHarness h;
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.hard_max = 1}));
  Reservation claimed = h.secured(1);
  ASSERT_TRUE(h.node.claim(claimed, "chat"));
  auto other = reporting_connection(h.manager(), peer_id(2), Direction::inbound);
  ASSERT_FALSE(h.manager().add_connection(other));
  Refusal refusal;
  EXPECT_EQ(keep_refusal(refusal, h.node.bind(*other, "chat")), Errc::realm_full);
  EXPECT_EQ(refusal.stage, Stage::bind);
  EXPECT_EQ(refusal.limit, "hard_max");
  EXPECT_EQ(refusal.message, "bind refused: realm chat holds 1 of 1 connections (claims included)");
  h.add(1, std::move(claimed));
  EXPECT_EQ(h.node.realm_connection_count("chat"), 1u);

  // max_members: a claiming peer holds a member place; the claimant itself may bind.
  ASSERT_FALSE(h.node.create_realm("files", RealmConfig{.max_members = 1, .hard_max = 8}));
  Reservation member = h.secured(3);
  ASSERT_TRUE(h.node.claim(member, "files"));
  EXPECT_EQ(keep_refusal(refusal, h.node.bind(*other, "files")), Errc::realm_full);
  EXPECT_EQ(refusal.limit, "max_members");
  EXPECT_EQ(refusal.message, "bind refused: realm files has 1 of 1 members (claims included)");
  auto own = reporting_connection(h.manager(), peer_id(3), Direction::inbound);
  ASSERT_FALSE(h.manager().add_connection(own));
  EXPECT_TRUE(h.node.bind(*own, "files"));
  h.add(3, std::move(member));
  EXPECT_EQ(h.node.members("files"), (std::vector<NodeId>{peer_id(3)}));
  EXPECT_EQ(h.node.realm_connection_count("files"), 2u);
  // With the claims ended, the bind refusal reads as before.
  EXPECT_EQ(keep_refusal(refusal, h.node.bind(*other, "chat")), Errc::realm_full);
  EXPECT_EQ(refusal.message, "bind refused: realm chat holds 1 of 1 connections");
}

TEST(RealmClaim, MaxPendingBoundsTheClaimsOutstanding) {
  ClaimHarness h;
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.max_pending = 2}));
  Reservation a = h.secured(1);
  Reservation b = h.secured(2);
  Reservation c = h.secured(3);
  ASSERT_TRUE(h.node.claim(a, "chat"));
  ASSERT_TRUE(h.node.claim(b, "chat"));
  Refusal refusal;
  EXPECT_EQ(keep_refusal(refusal, h.node.claim(c, "chat")), Errc::limit_exceeded);
  EXPECT_EQ(refusal.stage, Stage::claim);
  EXPECT_EQ(refusal.reason, RefusalReason::pending_limit);
  EXPECT_EQ(refusal.limit, "max_pending");
  EXPECT_EQ(h.node.realm_stats("chat")->refused_pending, 1u);
  // An add ends a claim: the next one fits.
  h.add(1, std::move(a));
  EXPECT_TRUE(h.node.claim(c, "chat"));
  EXPECT_EQ(h.node.realm_stats("chat")->pending, 2u);
}

TEST(RealmClaim, ABadReservationOrRealmIsAClearError) {
  ClaimHarness h;
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.hard_max = 4}));
  Reservation empty;
  EXPECT_EQ(h.node.claim(empty, "chat").error, Errc::invalid_argument);
  // Before on_secured the peer is not known.
  auto admitted = h.manager().admit_inbound(endpoint("127.0.0.1"));
  ASSERT_TRUE(admitted);
  EXPECT_EQ(h.node.claim(admitted.reservation, "chat").error, Errc::invalid_argument);
  Reservation r = h.secured(1);
  EXPECT_EQ(h.node.claim(r, "nope").error, Errc::unknown_realm);
  EXPECT_EQ(h.node.realm_stats("chat")->pending, 0u);
}

TEST(RealmClaim, AFailedAddGivesTheClaimBackAndBindsNothing) {
  ClaimHarness h;
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.hard_max = 1}));
  Reservation r = h.secured(1);
  ASSERT_TRUE(h.node.claim(r, "chat"));
  // The connection is not the reservation's peer: the add fails, the reservation is
  // dropped with it.
  auto wrong = reporting_connection(h.manager(), peer_id(2), Direction::inbound);
  EXPECT_EQ(h.manager().add_admitted(wrong, std::move(r)).error, Errc::invalid_argument);
  EXPECT_EQ(h.manager().stats().connections, 0u);
  EXPECT_EQ(h.node.realm_stats("chat")->pending, 0u);
  EXPECT_EQ(h.node.realm_connection_count("chat"), 0u);
  EXPECT_FALSE(h.admit(3, "chat"));  // the place is free again
}

TEST(RealmClaim, ARealmRemovedBeforeTheAddIsNotBound) {
  ClaimHarness h;
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.hard_max = 4}));
  ASSERT_FALSE(h.node.create_realm("files", RealmConfig{.hard_max = 4}));
  Reservation r = h.secured(1);
  ASSERT_TRUE(h.node.claim(r, "chat"));
  ASSERT_TRUE(h.node.claim(r, "files"));
  ASSERT_FALSE(h.node.remove_realm("chat"));
  // A new realm may take the removed one's index: the claim must not bind it.
  ASSERT_FALSE(h.node.create_realm("games", RealmConfig{.hard_max = 4}));
  h.add(1, std::move(r));
  EXPECT_EQ(h.node.realms_of(peer_id(1)), (std::vector<std::string>{"files"}));
  EXPECT_EQ(h.node.realm_connection_count("games"), 0u);
  EXPECT_EQ(h.node.realm_stats("games")->pending, 0u);
}

TEST(RealmClaim, ClaimsAfterCloseAreRefused) {
  ClaimHarness h;
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.hard_max = 4}));
  Reservation r = h.secured(1);
  h.node.close();
  EXPECT_EQ(h.node.claim(r, "chat").error, Errc::closed);
}

// Threads admitting their own peers with claims, adding or dropping the admissions and
// closing connections, while another removes and recreates a realm: the claimed realm
// never goes over hard_max, max_members or max_pending, and at the end every claim is
// gone and the realm counts exactly the connections bound to it that are still open.
TEST(RealmClaim, ClaimsFromSeveralThreadsNeverTakeARealmOverItsLimits) {
  ClaimHarness h;
  const RealmConfig chat{.max_members = 40, .hard_max = 48, .max_pending = 2};
  ASSERT_FALSE(h.node.create_realm("chat", chat));
  ASSERT_FALSE(h.node.create_realm("files", RealmConfig{.hard_max = 30}));
  constexpr int kThreads = 3;
  constexpr std::uint64_t kPeersEach = 20;
  std::vector<std::vector<std::shared_ptr<FakeConnection>>> bound(kThreads);
  std::atomic<bool> stop{false};
  std::atomic<int> over_limits{0};
  auto worker = [&](int t) {
    std::mt19937 random(static_cast<std::uint32_t>(t) + 1);
    auto& mine = bound[static_cast<std::size_t>(t)];
    for (int round = 0; round < 1500; ++round) {
      const std::uint64_t n = 1000 * static_cast<std::uint64_t>(t + 1) + random() % kPeersEach;
      if (!mine.empty() && random() % 3 == 0) {
        const std::size_t k = random() % mine.size();
        (void)h.manager().remove_connection(*mine[k]);
        mine[k] = mine.back();
        mine.pop_back();
        continue;
      }
      auto admitted = h.manager().admit_inbound(endpoint("127.0.0.1"));
      if (!admitted) continue;
      if (!h.manager().on_secured(admitted.reservation, peer_id(n))) {
        continue;
      }
      if (random() % 4 == 0) (void)h.node.claim(admitted.reservation, "files");
      if (!h.node.claim(admitted.reservation, "chat")) continue;  // refused: dropped
      if (random() % 5 == 0) continue;  // the handshake failed after all: dropped
      auto c = std::make_shared<FakeConnection>(peer_id(n), Direction::inbound);
      if (h.manager().add_admitted(c, std::move(admitted.reservation))) mine.push_back(c);
    }
  };
  auto realm_churn = [&] {
    while (!stop.load()) {
      (void)h.node.remove_realm("files");
      (void)h.node.create_realm("files", RealmConfig{.hard_max = 30});
    }
  };
  auto watch = [&] {
    while (!stop.load()) {
      const auto stats = h.node.realm_stats("chat");
      if (stats->connections > chat.hard_max || stats->members > chat.max_members ||
          stats->pending > chat.max_pending) {
        ++over_limits;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  std::thread churn(realm_churn);
  std::thread watcher(watch);
  for (std::thread& t : threads) t.join();
  stop = true;
  churn.join();
  watcher.join();

  EXPECT_EQ(over_limits.load(), 0);
  const RealmStats stats = *h.node.realm_stats("chat");
  EXPECT_EQ(stats.pending, 0u);
  EXPECT_GT(stats.claims, 0u);
  EXPECT_GT(stats.refused_full, 0u) << "the threads never reached hard_max or max_members";
  std::size_t open = 0;
  for (const auto& mine : bound) open += mine.size();
  EXPECT_EQ(stats.connections, open);  // every connection added was bound to chat
  EXPECT_EQ(h.node.realm_connections("chat").size(), open);
  EXPECT_EQ(h.manager().stats().reservations, 0u);
  EXPECT_EQ(h.manager().stats().pending_inbound, 0u);
}

TEST(RealmClaim, OnSecuredWithARealmSecuresAndClaimsInOneStep) {
  ClaimHarness h;
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.hard_max = 1}));
  Admission first = h.manager().admit_inbound(endpoint("127.0.0.1"));
  ASSERT_TRUE(first);
  ASSERT_TRUE(h.node.on_secured(first.reservation, peer_id(1), "chat"));
  EXPECT_EQ(h.node.realm_stats("chat")->pending, 1u);
  auto c = h.add(1, std::move(first.reservation));
  EXPECT_EQ(h.node.realms_of(peer_id(1)), (std::vector<std::string>{"chat"}));

  // The realm is full: the claim's refusal, after a secured step that held.
  Admission second = h.manager().admit_inbound(endpoint("127.0.0.1"));
  Refusal refusal;
  EXPECT_EQ(keep_refusal(refusal, h.node.on_secured(second.reservation, peer_id(2), "chat")),
            Errc::realm_full);
  EXPECT_EQ(refusal.stage, Stage::claim);
  EXPECT_EQ(refusal.scope, "realm chat");
  EXPECT_EQ(h.node.realm_stats("chat")->refused_full, 1u);
  second.reservation.release();
  EXPECT_EQ(h.manager().stats().reservations, 0u);

  // on_secured's own errors come first, and no claim is made.
  Admission held = h.manager().reserve_resources(std::nullopt, 1024);
  ASSERT_TRUE(held);
  EXPECT_EQ(h.node.on_secured(held.reservation, peer_id(3), "chat").error,
            Errc::invalid_argument);  // not an admission's reservation: no address
  held.reservation.release();
  Admission third = h.manager().admit_inbound(endpoint("127.0.0.1"));
  EXPECT_EQ(h.node.on_secured(third.reservation, peer_id(3), "nowhere").error, Errc::unknown_realm);
  EXPECT_EQ(h.node.realm_stats("chat")->pending, 0u);
  Reservation none;
  EXPECT_EQ(h.node.on_secured(none, peer_id(4), "chat").error, Errc::invalid_argument);
}

}  // namespace
}  // namespace dep2p::connmgr::testing
