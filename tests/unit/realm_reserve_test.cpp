// Reserves that admit (docs/design.md, "Realms"): on a node whose connection cap is full,
// a member of a realm below its min_reserved is admitted by closing another connection
// (CloseReason::made_room): a peer with no bound connection first, then the node trim's
// victim, never a protected peer nor a realm below its reserve; where nothing may close,
// the refusal says so. Virtual time throughout.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/realm_manager.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr::testing {
namespace {

constexpr std::size_t kCap = 4;

class ReserveHarness {
 public:
  explicit ReserveHarness(std::size_t inbound_cap = kUnlimited, bool diversity = true)
      : time(std::make_shared<ManualTimeSource>(io)),
        node(io, config(inbound_cap, diversity), Dependencies{.time_source = time}) {}

  ConnectionManager& manager() { return node.manager(); }

  // Admits peer_id(n) inbound from `ip`, secures it and claims `realms`; adds it. Returns
  // the first error, with the refusal in `refusal`.
  std::error_code admit(std::uint64_t n, std::vector<const char*> realms,
                        Refusal* refusal = nullptr, const char* ip = "127.0.0.1",
                        Direction direction = Direction::inbound) {
    Admission admitted = direction == Direction::inbound
                             ? manager().admit_inbound(endpoint(ip))
                             : manager().check_dial_addr(peer_id(n), endpoint(ip));
    if (!admitted) {
      if (refusal != nullptr) *refusal = admitted.refusal;
      return admitted.error;
    }
    if (auto ec = keep_refusal(refusal, manager().on_secured(admitted.reservation, peer_id(n)))) {
      return ec;
    }
    for (const char* realm : realms) {
      if (auto ec = keep_refusal(refusal, node.claim(admitted.reservation, realm))) return ec;
    }
    auto c = std::make_shared<FakeConnection>(peer_id(n), direction, endpoint(ip));
    c->on_close = [this](FakeConnection& self, CloseReason reason) {
      manager().remove_connection(self, reason);
    };
    if (auto ec =
            keep_refusal(refusal, manager().add_admitted(c, std::move(admitted.reservation)))) {
      return ec;
    }
    connections.push_back(c);
    return {};
  }
  std::shared_ptr<FakeConnection> of(std::uint64_t n) const {
    for (const auto& c : connections) {
      if (c->remote_peer() == peer_id(n)) return c;
    }
    return nullptr;
  }

  boost::asio::io_context io;
  std::shared_ptr<ManualTimeSource> time;
  RealmConnectionManager node;
  std::vector<std::shared_ptr<FakeConnection>> connections;

 private:
  static Config config(std::size_t inbound_cap, bool diversity) {
    Config c = trim_config(3, kCap);
    c.diversity.enabled = diversity;
    c.limits.system.connections_total = kCap;
    c.limits.system.connections_inbound = inbound_cap;
    c.limits.system.pending_inbound = 16;
    c.limits.subnets.exempt_loopback = true;
    return c;
  }
};

TEST(RealmReserve, AFullNodeClosesTheUnboundPeerTheDefaultOrderNamesToAdmitAReserveMember) {
  ReserveHarness h;
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.low_water = 2, .min_reserved = 2}));
  ASSERT_FALSE(h.node.create_realm("files", RealmConfig{.low_water = 1}));
  // Full: peer 1 in chat, peer 2 in files, peers 3 and 4 in no realm; 4 is worth less.
  ASSERT_FALSE(h.admit(1, {"chat"}));
  ASSERT_FALSE(h.admit(2, {"files"}));
  ASSERT_FALSE(h.admit(3, {}));
  ASSERT_FALSE(h.admit(4, {}));
  h.manager().tag_peer(peer_id(3), "useful", 10);
  h.manager().tag_peer(peer_id(2), "useful", -50);  // the worst by value, but bound
  EventRecorder events(h.manager());

  // Chat holds 1 of its 2: its member comes in, and the unbound peer 4 makes room.
  Refusal refusal;
  ASSERT_FALSE(h.admit(5, {"chat"}, &refusal)) << refusal.message;
  EXPECT_EQ(h.manager().connection_count(), kCap);
  EXPECT_EQ(h.node.realm_connection_count("chat"), 2u);
  EXPECT_TRUE(h.of(4)->closed());
  EXPECT_EQ(h.of(4)->last_reason(), CloseReason::made_room);
  EXPECT_EQ(h.of(4)->last_detail(), "made room for realm chat below its reserve (1 of 2)");
  EXPECT_FALSE(h.of(2)->closed());
  EXPECT_FALSE(h.of(3)->closed());
  EXPECT_EQ(h.manager().stats().closes(CloseReason::made_room), 1u);
  EXPECT_EQ(h.node.realm_stats("chat")->made_room, 1u);
  const auto gone = events.of<DisconnectedEvent>();
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].peer, peer_id(4));
  EXPECT_EQ(gone[0].reason, CloseReason::made_room);

  // Chat is at its reserve now: the next member is refused at admission, as anyone.
  EXPECT_EQ(h.admit(6, {"chat"}, &refusal), Errc::limit_exceeded);
  EXPECT_EQ(refusal.stage, Stage::accept);
  EXPECT_EQ(h.manager().stats().reservations, 0u);
}

// Among unbound peers of equal value the diversity rule chooses, as in a trim: the victim
// comes from the network group holding the most connections (127/8 is grouped by /24),
// where the default order alone takes the newest.
TEST(RealmReserve, AmongEqualUnboundPeersTheVictimComesFromTheMostRepresentedGroup) {
  for (const bool diversity : {true, false}) {
    SCOPED_TRACE(diversity ? "rule on" : "rule off");
    ReserveHarness h(kUnlimited, diversity);
    ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.low_water = 2, .min_reserved = 2}));
    ASSERT_FALSE(h.admit(1, {"chat"}, nullptr, "127.0.9.1"));
    // One second apart, so the default order's "newest first" names peer 4.
    ASSERT_FALSE(h.admit(2, {}, nullptr, "127.0.1.1"));
    h.time->advance(std::chrono::seconds(1));
    ASSERT_FALSE(h.admit(3, {}, nullptr, "127.0.1.2"));
    h.time->advance(std::chrono::seconds(1));
    ASSERT_FALSE(h.admit(4, {}, nullptr, "127.0.2.1"));  // the newest, alone in its group
    Refusal refusal;
    ASSERT_FALSE(h.admit(5, {"chat"}, &refusal, "127.0.3.1")) << refusal.message;
    EXPECT_EQ(h.manager().connection_count(), kCap);
    if (diversity) {
      EXPECT_FALSE(h.of(4)->closed());
      EXPECT_NE(h.of(2)->closed(), h.of(3)->closed()) << "one of the crowded group's peers";
      const auto victim = h.of(2)->closed() ? h.of(2) : h.of(3);
      EXPECT_EQ(victim->last_reason(), CloseReason::made_room);
    } else {
      EXPECT_TRUE(h.of(4)->closed());
      EXPECT_FALSE(h.of(2)->closed());
      EXPECT_FALSE(h.of(3)->closed());
    }
    EXPECT_FALSE(h.of(1)->closed());
  }
}

TEST(RealmReserve, WithEveryPeerBoundTheVictimComesFromARealmAboveItsShareNeverBelowItsReserve) {
  ReserveHarness h;
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.low_water = 2, .min_reserved = 2}));
  ASSERT_FALSE(h.node.create_realm("files", RealmConfig{.low_water = 1, .min_reserved = 1}));
  ASSERT_FALSE(h.node.create_realm("blocks", RealmConfig{.low_water = 1}));
  ASSERT_FALSE(h.admit(1, {"chat"}));
  ASSERT_FALSE(h.admit(2, {"files"}));  // files at its reserve: kept
  ASSERT_FALSE(h.admit(3, {"blocks"}));
  ASSERT_FALSE(h.admit(4, {"blocks"}));         // blocks above its share of 1
  h.manager().tag_peer(peer_id(2), "v", -100);  // the default order's first, but reserved
  h.manager().tag_peer(peer_id(3), "v", 5);
  h.manager().tag_peer(peer_id(4), "v", 1);
  // The default order within blocks names peer 4 (value 1 before 5).
  ASSERT_FALSE(h.admit(5, {"chat"}));
  EXPECT_EQ(h.of(4)->last_reason(), CloseReason::made_room);
  EXPECT_FALSE(h.of(2)->closed());
  EXPECT_FALSE(h.of(3)->closed());
  EXPECT_EQ(h.node.realm_connection_count("files"), 1u);
  EXPECT_EQ(h.node.realm_connection_count("chat"), 2u);
}

TEST(RealmReserve, NothingEvictableIsARefusalThatSaysWhyAndLeavesEveryCountAsItWas) {
  ReserveHarness h;
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.low_water = 2, .min_reserved = 2}));
  ASSERT_FALSE(h.node.create_realm("files", RealmConfig{.low_water = 1, .min_reserved = 1}));
  ASSERT_FALSE(h.admit(1, {"chat"}));
  ASSERT_FALSE(h.admit(2, {"files"}));  // at its reserve
  ASSERT_FALSE(h.admit(3, {}));
  ASSERT_FALSE(h.admit(4, {}));
  h.manager().protect(peer_id(3), "keep");
  h.manager().protect(peer_id(4), "keep");
  const Stats before = h.manager().stats();
  Refusal refusal;
  EXPECT_EQ(h.admit(5, {"chat"}, &refusal), Errc::limit_exceeded);
  EXPECT_EQ(refusal.stage, Stage::add);
  EXPECT_EQ(refusal.reason, RefusalReason::connection_limit);
  EXPECT_EQ(refusal.limit, "connections_total");
  EXPECT_EQ(refusal.message,
            "inbound refused: system holds 4 of 4 connections; nothing may close to make room "
            "for realm chat below its reserve (1 of 2): every other connection is protected, in "
            "its grace period, or in a realm at its reserve");
  const Stats after = h.manager().stats();
  EXPECT_EQ(after.connections, kCap);
  EXPECT_EQ(after.reservations, 0u);
  EXPECT_EQ(after.pending_inbound, 0u);
  EXPECT_EQ(after.connections_removed, before.connections_removed);
  EXPECT_EQ(h.node.realm_stats("chat")->pending, 0u);
  EXPECT_EQ(h.node.realm_stats("chat")->refused_no_room, 1u);
  for (std::uint64_t n = 1; n <= 4; ++n) EXPECT_FALSE(h.of(n)->closed()) << n;
}

TEST(RealmReserve, AnAdmissionAboveTheCapThatClaimsNoShortRealmIsRefusedAtItsAdd) {
  ReserveHarness h;
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.low_water = 2, .min_reserved = 2}));
  ASSERT_FALSE(h.node.create_realm("files", RealmConfig{.low_water = 1}));
  for (std::uint64_t n = 1; n <= kCap; ++n) ASSERT_FALSE(h.admit(n, {}));
  Refusal refusal;
  EXPECT_EQ(h.admit(5, {"files"}, &refusal), Errc::limit_exceeded);
  EXPECT_EQ(refusal.stage, Stage::add);
  EXPECT_EQ(refusal.message,
            "inbound refused: system holds 4 of 4 connections; admitted above the cap for a "
            "realm below its reserve, it claims none");
  EXPECT_EQ(h.manager().connection_count(), kCap);
  EXPECT_EQ(h.manager().stats().closes(CloseReason::made_room), 0u);
}

TEST(RealmReserve, OnlyAsManyAdmissionsGoAboveTheCapAsTheRealmsAreShortOfTheirReserves) {
  ReserveHarness h;
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.low_water = 2, .min_reserved = 2}));
  for (std::uint64_t n = 1; n <= kCap; ++n) ASSERT_FALSE(h.admit(n, {}));
  // Chat is short of 2: two handshakes may run above the cap, not a third.
  Admission a = h.manager().admit_inbound(endpoint("127.0.0.1"));
  Admission b = h.manager().admit_inbound(endpoint("127.0.0.1"));
  Admission c = h.manager().admit_inbound(endpoint("127.0.0.1"));
  EXPECT_TRUE(a);
  EXPECT_TRUE(b);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.refusal.stage, Stage::accept);
  EXPECT_EQ(c.refusal.limit, "connections_total");
  // A claim counts against the shortfall: with one claimed, only one more may go above.
  ASSERT_TRUE(h.manager().on_secured(a.reservation, peer_id(10)));
  ASSERT_TRUE(h.node.claim(a.reservation, "chat"));
  b.reservation.release();
  Admission d = h.manager().admit_inbound(endpoint("127.0.0.1"));
  EXPECT_FALSE(d);  // a holds the one place above the cap that chat's claim leaves
  a.reservation.release();
  EXPECT_TRUE(h.manager().admit_inbound(endpoint("127.0.0.1")));
}

TEST(RealmReserve, ADirectionCapIsFreedByAConnectionInThatDirection) {
  ReserveHarness h(/*inbound_cap=*/2);
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.low_water = 2, .min_reserved = 2}));
  ASSERT_FALSE(h.admit(1, {}, nullptr, "127.0.0.1", Direction::outbound));
  ASSERT_FALSE(h.admit(2, {}));
  ASSERT_FALSE(h.admit(3, {}));
  h.manager().tag_peer(peer_id(2), "v", 5);
  h.manager().tag_peer(peer_id(3), "v", 3);  // outbound peer 1 (value 0) ranks first overall
  Refusal refusal;
  ASSERT_FALSE(h.admit(4, {"chat"}, &refusal)) << refusal.message;
  EXPECT_FALSE(h.of(1)->closed());
  EXPECT_EQ(h.of(3)->last_reason(), CloseReason::made_room);
  EXPECT_EQ(h.manager().stats().inbound, 2u);
}

TEST(RealmReserve, TheCapFreedMeanwhileNeedsNoVictim) {
  ReserveHarness h;
  ASSERT_FALSE(h.node.create_realm("chat", RealmConfig{.low_water = 2, .min_reserved = 2}));
  for (std::uint64_t n = 1; n <= kCap; ++n) ASSERT_FALSE(h.admit(n, {}));
  Admission a = h.manager().admit_inbound(endpoint("127.0.0.1"));
  ASSERT_TRUE(a);
  ASSERT_TRUE(h.manager().on_secured(a.reservation, peer_id(9)));
  ASSERT_TRUE(h.node.claim(a.reservation, "chat"));
  ASSERT_FALSE(h.manager().remove_connection(*h.of(1)));  // a peer leaves on its own
  auto c = reporting_connection(h.manager(), peer_id(9), Direction::inbound);
  ASSERT_TRUE(h.manager().add_admitted(c, std::move(a.reservation)));
  EXPECT_EQ(h.manager().stats().closes(CloseReason::made_room), 0u);
  EXPECT_EQ(h.manager().connection_count(), kCap);
  EXPECT_EQ(h.node.realm_connection_count("chat"), 1u);
}

}  // namespace
}  // namespace dep2p::connmgr::testing
