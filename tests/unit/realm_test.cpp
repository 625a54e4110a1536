// RealmConnectionManager (docs/design.md, "Realms"): binding, limits, namespaced tags and
// protections, the realm's own trim, the node's realm-aware trim and its fairness, validation.
// Virtual time throughout; connections report their closure back synchronously, as hosts do.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <initializer_list>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/realm_manager.hpp"
#include "dep2p/connmgr/trimmer.hpp"
#include "realm/realm_greedy.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"
#include "trim/score_key.hpp"

namespace dep2p::connmgr::testing {
namespace {

using namespace std::chrono_literals;

RealmConfig realm(std::size_t low, std::size_t high, std::size_t hard_max = 0,
                  std::size_t min_reserved = 0, std::size_t max_members = 0) {
  RealmConfig c;
  c.low_water = low;
  c.high_water = high;
  c.hard_max = hard_max;
  c.min_reserved = min_reserved;
  c.max_members = max_members;
  return c;
}

class RealmHarness {
 public:
  explicit RealmHarness(Config config = trim_config(100, 1000))
      : time(std::make_shared<ManualTimeSource>(io)), node(io, std::move(config), deps(time)) {}

  ConnectionManager& manager() { return node.manager(); }

  // A connection to peer_id(n), added to the pool and bound to each realm given.
  std::shared_ptr<FakeConnection> add(std::uint64_t n,
                                      std::initializer_list<const char*> realms = {}) {
    auto c = reporting_connection(manager(), peer_id(n),
                                  n % 2 ? Direction::inbound : Direction::outbound);
    EXPECT_FALSE(manager().add_connection(c));
    for (const char* r : realms) EXPECT_TRUE(node.bind(*c, r)) << "bind " << n << " to " << r;
    return c;
  }
  std::vector<std::shared_ptr<FakeConnection>> add_range(
      std::uint64_t first, std::size_t count, std::initializer_list<const char*> realms = {}) {
    std::vector<std::shared_ptr<FakeConnection>> added;
    for (std::size_t i = 0; i < count; ++i) added.push_back(add(first + i, realms));
    return added;
  }
  void create(const char* name, const RealmConfig& config) {
    ConfigError error;
    ASSERT_FALSE(node.create_realm(name, config, &error)) << error.message;
  }

  boost::asio::io_context io;
  std::shared_ptr<ManualTimeSource> time;
  RealmConnectionManager node;

 private:
  static Dependencies deps(std::shared_ptr<ManualTimeSource> t) {
    Dependencies d;
    d.time_source = std::move(t);
    return d;
  }
};

// --- Binding and queries ---------------------------------------------------------------

TEST(RealmBinding, ASharedConnectionCountsOnceGloballyAndOnceInEachRealm) {
  RealmHarness h;
  h.create("chat", realm(0, 0));
  h.create("files", realm(0, 0));
  auto shared = h.add(1, {"chat", "files"});
  auto only_chat = h.add(2, {"chat"});
  EXPECT_EQ(h.manager().connection_count(), 2u);
  EXPECT_EQ(h.node.realm_connection_count("chat"), 2u);
  EXPECT_EQ(h.node.realm_connection_count("files"), 1u);
  EXPECT_EQ(h.node.realms_of(peer_id(1)), (std::vector<std::string>{"chat", "files"}));
  EXPECT_EQ(h.node.realms_of(peer_id(2)), (std::vector<std::string>{"chat"}));
  EXPECT_EQ(h.node.members("files"), (std::vector<NodeId>{peer_id(1)}));
  EXPECT_EQ(h.node.members("chat").size(), 2u);
  // Binding twice is a no-op.
  EXPECT_TRUE(h.node.bind(*shared, "chat"));
  EXPECT_EQ(h.node.realm_connection_count("chat"), 2u);
}

TEST(RealmBinding, ADisconnectUnbindsFromEveryRealmAndIsAnnounced) {
  RealmHarness h;
  h.create("chat", realm(0, 0));
  h.create("files", realm(0, 0));
  EventRecorder events(h.manager());
  auto c = h.add(7, {"chat", "files"});
  ASSERT_EQ(events.of<RealmBoundEvent>().size(), 2u);
  EXPECT_FALSE(h.manager().remove_connection(*c));
  EXPECT_EQ(h.node.realm_connection_count("chat"), 0u);
  EXPECT_EQ(h.node.realm_connection_count("files"), 0u);
  EXPECT_TRUE(h.node.realms_of(peer_id(7)).empty());
  EXPECT_TRUE(h.node.members("chat").empty());
  const auto unbound = events.of<RealmUnboundEvent>();
  ASSERT_EQ(unbound.size(), 2u);
  for (const auto& e : unbound) {
    EXPECT_EQ(e.cause, RealmUnboundEvent::Cause::disconnected);
    EXPECT_EQ(e.peer, peer_id(7));
  }
  EXPECT_EQ(h.node.realm_stats("chat")->unbinds, 1u);
  // The disconnected event comes first, then the unbinds, in commit order.
  const auto all = events.events();
  auto disconnected = std::find_if(all.begin(), all.end(), [](const Event& e) {
    return std::holds_alternative<DisconnectedEvent>(e);
  });
  auto first_unbound = std::find_if(all.begin(), all.end(), [](const Event& e) {
    return std::holds_alternative<RealmUnboundEvent>(e);
  });
  EXPECT_LT(disconnected, first_unbound);
}

TEST(RealmBinding, UnbindEndsOneBindingAndTheRealmTagsGoWithTheLastOne) {
  RealmHarness h;
  h.create("chat", realm(0, 0));
  auto a = h.add(3, {"chat"});
  auto b = std::make_shared<FakeConnection>(peer_id(3), Direction::outbound);
  ASSERT_FALSE(h.manager().add_connection(b));
  ASSERT_TRUE(h.node.bind(*b, "chat"));
  ASSERT_FALSE(h.node.tag_peer("chat", peer_id(3), "score", 40));
  EXPECT_EQ(h.node.realm_value("chat", peer_id(3)), 40);
  EXPECT_FALSE(h.node.unbind(*a, "chat"));
  EXPECT_EQ(h.node.unbind(*a, "chat"), Errc::unknown_connection);
  EXPECT_EQ(h.node.realm_connection_count("chat"), 1u);
  EXPECT_EQ(h.node.realm_value("chat", peer_id(3)), 40);  // still a member through b
  EXPECT_FALSE(h.node.unbind(*b, "chat"));
  EXPECT_EQ(h.node.realm_value("chat", peer_id(3)), std::nullopt);
  EXPECT_EQ(h.node.tag_peer("chat", peer_id(3), "score", 1), Errc::unknown_peer);
  EXPECT_EQ(h.manager().connection_count(), 2u);  // unbinding closes nothing
}

// A member whose last binding went keeps nothing: bound again, it starts with no realm tags
// and no realm protections, whether its entry was revived or swept and reused.
TEST(RealmBinding, ABoundAgainMemberStartsWithoutItsOldTagsAndProtections) {
  RealmHarness h;
  h.create("chat", realm(0, 0));
  std::vector<std::shared_ptr<FakeConnection>> first;
  for (std::uint64_t n = 1; n <= 200; ++n) {
    first.push_back(h.add(n, {"chat"}));
    ASSERT_FALSE(h.node.tag_peer("chat", peer_id(n), "score", 7));
    ASSERT_FALSE(h.node.protect("chat", peer_id(n), "keep"));
  }
  // All of them leave (more than enough for the departed entries to be swept), then come
  // back through new connections.
  for (const auto& c : first) ASSERT_FALSE(h.manager().remove_connection(*c));
  EXPECT_TRUE(h.node.members("chat").empty());
  auto again = h.add_range(1, 200, {"chat"});
  for (std::uint64_t n = 1; n <= 200; ++n) {
    EXPECT_EQ(h.node.realm_value("chat", peer_id(n)), 0) << n;
    EXPECT_FALSE(h.node.is_protected("chat", peer_id(n))) << n;
  }
  // One that leaves while few others do is revived in place.
  ASSERT_FALSE(h.node.tag_peer("chat", peer_id(5), "score", 9));
  ASSERT_FALSE(h.node.protect("chat", peer_id(5), "keep"));
  ASSERT_FALSE(h.node.unbind(*again[4], "chat"));
  EXPECT_EQ(h.node.realm_value("chat", peer_id(5)), std::nullopt);
  ASSERT_TRUE(h.node.bind(*again[4], "chat"));
  EXPECT_EQ(h.node.realm_value("chat", peer_id(5)), 0);
  EXPECT_FALSE(h.node.is_protected("chat", peer_id(5)));
  EXPECT_EQ(h.node.members("chat").size(), 200u);
}

TEST(RealmBinding, BadCallsGetClearErrors) {
  RealmHarness h;
  h.create("chat", realm(0, 0));
  auto stranger = std::make_shared<FakeConnection>(peer_id(1), Direction::inbound);
  EXPECT_EQ(h.node.bind(*stranger, "chat").error, Errc::unknown_connection);
  auto c = h.add(2);
  EXPECT_EQ(h.node.bind(*c, "nowhere").error, Errc::unknown_realm);
  EXPECT_EQ(h.node.unbind(*c, "nowhere"), Errc::unknown_realm);
  EXPECT_EQ(h.node.create_realm("chat", realm(0, 0)), Errc::realm_exists);
  EXPECT_EQ(h.node.create_realm("", realm(0, 0)), Errc::invalid_argument);
  EXPECT_EQ(h.node.remove_realm("nowhere"), Errc::unknown_realm);
  EXPECT_EQ(h.node.tag_peer("chat", peer_id(2), "", 1), Errc::invalid_argument);
  EXPECT_EQ(h.node.protect("nowhere", peer_id(2), "x"), Errc::unknown_realm);
  EXPECT_EQ(h.node.realm_stats("nowhere"), std::nullopt);
  h.node.close();
  EXPECT_EQ(h.node.bind(*c, "chat").error, Errc::closed);
  EXPECT_EQ(h.node.create_realm("late", realm(0, 0)), Errc::closed);
}

TEST(RealmBinding, RemovingARealmUnbindsItsConnectionsAndKeepsThemOpen) {
  RealmHarness h;
  h.create("chat", realm(0, 0));
  h.create("files", realm(0, 0));
  EventRecorder events(h.manager());
  auto cs = h.add_range(1, 4, {"chat", "files"});
  ASSERT_FALSE(h.node.remove_realm("chat"));
  EXPECT_EQ(h.node.realms(), (std::vector<std::string>{"files"}));
  EXPECT_EQ(h.node.realm_connection_count("files"), 4u);
  EXPECT_EQ(count_closed(cs), 0u);
  EXPECT_EQ(h.node.realms_of(peer_id(1)), (std::vector<std::string>{"files"}));
  EXPECT_EQ(events.of<RealmUnboundEvent>().size(), 4u);
  EXPECT_FALSE(h.node.create_realm("chat", realm(0, 0)));  // the name is free again
}

// A removed realm's place is reused by the next one created; nothing of the old realm may
// carry over to it, and the realms still there keep their own counts.
TEST(RealmBinding, ARealmCreatedAfterARemovalStartsEmptyAndCountsOnlyItsOwn) {
  RealmHarness h;
  h.create("chat", realm(0, 0));
  h.create("files", realm(0, 0));
  auto cs = h.add_range(1, 4, {"chat", "files"});
  ASSERT_FALSE(h.node.remove_realm("chat"));
  h.create("games", realm(0, 0));
  EXPECT_EQ(h.node.realm_connection_count("games"), 0u);
  EXPECT_TRUE(h.node.members("games").empty());
  EXPECT_TRUE(h.node.bind(*cs[0], "games"));
  EXPECT_TRUE(h.node.bind(*cs[1], "games"));
  EXPECT_EQ(h.node.realm_connection_count("games"), 2u);
  EXPECT_EQ(h.node.realm_connection_count("files"), 4u);
  EXPECT_EQ(h.node.realms_of(peer_id(2)), (std::vector<std::string>{"files", "games"}));
  EXPECT_EQ(h.node.realms_of(peer_id(3)), (std::vector<std::string>{"files"}));
  // A disconnect unbinds from the new realm and the old one it shares, and only those.
  EXPECT_FALSE(h.manager().remove_connection(*cs[0]));
  EXPECT_EQ(h.node.realm_connection_count("games"), 1u);
  EXPECT_EQ(h.node.realm_connection_count("files"), 3u);
  EXPECT_EQ(h.node.members("games"), (std::vector<NodeId>{peer_id(2)}));
  // Removing the new realm leaves "files" whole.
  ASSERT_FALSE(h.node.remove_realm("games"));
  EXPECT_EQ(h.node.realm_connection_count("files"), 3u);
  EXPECT_EQ(h.node.realms_of(peer_id(2)), (std::vector<std::string>{"files"}));
}

TEST(RealmQueries, RealmConnectionsListsTheBoundConnectionsAndOnlyThem) {
  RealmHarness h;
  h.create("chat", realm(0, 0));
  h.create("files", realm(0, 0));
  auto a = h.add(1, {"chat"});
  auto b = h.add(2, {"chat", "files"});
  h.add(3, {"files"});
  h.add(4);  // unbound
  std::vector<const Connection*> got;
  for (const auto& handle : h.node.realm_connections("chat")) got.push_back(handle.get());
  std::sort(got.begin(), got.end());
  std::vector<const Connection*> want{a.get(), b.get()};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  EXPECT_EQ(h.node.realm_connection_count("chat"), 2u);
  // A connection that leaves is no longer listed; an unknown realm lists nothing.
  EXPECT_FALSE(h.manager().remove_connection(*b));
  ASSERT_EQ(h.node.realm_connections("chat").size(), 1u);
  EXPECT_EQ(h.node.realm_connections("chat")[0].get(), a.get());
  EXPECT_EQ(h.node.realm_connections("files").size(), 1u);
  EXPECT_TRUE(h.node.realm_connections("nope").empty());
}

TEST(RealmQueries, ExplainNamesThePeersRealmsAndTheRealmThatGivesItUpFirst) {
  RealmHarness h;
  h.create("chat", realm(/*low=*/2, 0, 0, /*min_reserved=*/1));
  h.create("files", realm(/*low=*/5, 0, 0, /*min_reserved=*/2));
  h.create("games", realm(/*low=*/1, 0, 0, /*min_reserved=*/1));
  h.add(1, {"chat", "files"});
  h.add_range(2, 3, {"chat"});   // chat: 4 bound, share 2
  h.add_range(5, 2, {"files"});  // files: 3 bound, share 5, reserve 2
  h.add(8, {"games"});           // games: 1 bound, at its reserve
  ASSERT_FALSE(h.node.protect("files", peer_id(1), "keep"));

  const auto why = h.node.explain(peer_id(1));
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(why->node.peer, peer_id(1));
  ASSERT_EQ(why->realms.size(), 2u);
  const RealmStanding& chat = why->realms[0];
  EXPECT_EQ(chat.realm, "chat");
  EXPECT_EQ(chat.bound, 1u);
  EXPECT_EQ(chat.realm_connections, 4u);
  EXPECT_EQ(chat.give, RealmStanding::Give::above_share);
  const RealmStanding& files = why->realms[1];
  EXPECT_EQ(files.give, RealmStanding::Give::above_reserve);
  EXPECT_TRUE(files.is_protected);
  EXPECT_EQ(why->gives_up, "chat");  // above its share goes before above its reserve
  EXPECT_TRUE(why->summary.starts_with(why->node.summary));
  EXPECT_NE(why->summary.find("realms: chat (1 bound, above share by 2), files (1 bound, "
                              "above reserve by 1, protected in the realm)"),
            std::string::npos)
      << why->summary;

  // A peer whose only realm is at its reserve is given up by none.
  const auto kept = h.node.explain(peer_id(8));
  ASSERT_TRUE(kept.has_value());
  ASSERT_EQ(kept->realms.size(), 1u);
  EXPECT_EQ(kept->realms[0].give, RealmStanding::Give::at_reserve);
  EXPECT_FALSE(kept->gives_up.has_value());
  // An unbound peer has no realms; an unknown one no explanation.
  h.add(9);
  const auto unbound = h.node.explain(peer_id(9));
  ASSERT_TRUE(unbound.has_value());
  EXPECT_TRUE(unbound->realms.empty());
  EXPECT_EQ(unbound->summary, unbound->node.summary);
  EXPECT_FALSE(h.node.explain(peer_id(99)).has_value());
}

// --- Limits ----------------------------------------------------------------------------

TEST(RealmFull, ABindBeyondHardMaxIsRefusedWithTheRealmAndTheLimit) {
  RealmHarness h;
  h.create("chat", realm(0, 0, /*hard_max=*/3));
  EventRecorder events(h.manager());
  h.add_range(1, 3, {"chat"});
  auto fourth = h.add(4);
  Refusal refusal;
  EXPECT_EQ(keep_refusal(refusal, h.node.bind(*fourth, "chat")), Errc::realm_full);
  EXPECT_EQ(refusal.stage, Stage::bind);
  EXPECT_EQ(refusal.reason, RefusalReason::realm_limit);
  EXPECT_EQ(refusal.scope, "realm chat");
  EXPECT_EQ(refusal.limit, "hard_max");
  EXPECT_EQ(refusal.message, "bind refused: realm chat holds 3 of 3 connections");
  EXPECT_EQ(h.node.realm_connection_count("chat"), 3u);
  EXPECT_FALSE(fourth->closed());  // it stays in the node's pool, unbound
  EXPECT_TRUE(h.node.realms_of(peer_id(4)).empty());
  EXPECT_EQ(h.node.realm_stats("chat")->refused_full, 1u);
  EXPECT_EQ(h.manager().stats().refusals(RefusalReason::realm_limit), 1u);
  ASSERT_EQ(events.of<RefusedEvent>().size(), 1u);
  // Room again after one leaves.
  ASSERT_FALSE(h.manager().close_peer(peer_id(1)));
  EXPECT_TRUE(h.node.bind(*fourth, "chat"));
}

TEST(RealmFull, MaxMembersCountsPeersNotConnections) {
  RealmHarness h;
  h.create("chat", realm(0, 0, /*hard_max=*/10, 0, /*max_members=*/2));
  h.add(1, {"chat"});
  auto second_path = std::make_shared<FakeConnection>(peer_id(1), Direction::outbound);
  ASSERT_FALSE(h.manager().add_connection(second_path));
  EXPECT_TRUE(h.node.bind(*second_path, "chat"));  // same member
  h.add(2, {"chat"});
  auto third = h.add(3);
  Refusal refusal;
  EXPECT_EQ(keep_refusal(refusal, h.node.bind(*third, "chat")), Errc::realm_full);
  EXPECT_EQ(refusal.limit, "max_members");
  EXPECT_EQ(h.node.realm_stats("chat")->members, 2u);
  EXPECT_EQ(h.node.realm_connection_count("chat"), 3u);
}

// --- The realm's own trim --------------------------------------------------------------

TEST(RealmTrim, ARealmAtItsHighWaterTrimsOnlyItsOwnMembersToItsLowWater) {
  RealmHarness h;  // node: low 100, high 1000: the node's trim stays out of it
  h.create("chat", realm(/*low=*/5, /*high=*/10));
  h.create("files", realm(5, 10));
  auto unbound = h.add_range(1, 20);
  auto files = h.add_range(21, 8, {"files"});
  auto chat = h.add_range(101, 9, {"chat"});
  for (std::uint64_t n = 101; n <= 105; ++n)
    ASSERT_FALSE(h.node.tag_peer("chat", peer_id(n), "useful", 10));
  chat.push_back(h.add(110, {"chat"}));  // the tenth: high water
  EXPECT_EQ(count_closed(chat), 0u) << "the trim runs on the executor, not inside bind()";
  h.time->run_ready();
  EXPECT_EQ(h.node.realm_connection_count("chat"), 5u);
  EXPECT_EQ(count_closed(chat), 5u);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_FALSE(chat[i]->closed()) << "tagged member " << i;
  EXPECT_EQ(count_closed(unbound), 0u);
  EXPECT_EQ(count_closed(files), 0u);
  expect_closes_carry(chat, CloseReason::trimmed);
  EXPECT_EQ(h.manager().connection_count(), 20u + 8u + 5u);
  const auto stats = h.node.realm_stats("chat");
  EXPECT_EQ(stats->trims, 1u);
  EXPECT_EQ(stats->trimmed, 5u);
  EXPECT_EQ(stats->trimmed_globally, 0u);
}

TEST(RealmTrim, RealmProtectionIsNamespaced) {
  RealmHarness h;
  h.create("a", realm(0, 0));
  h.create("b", realm(1, 3));
  // Peer 1's connection is in both realms; realm a protects it, realm b does not.
  auto x = h.add(1, {"a", "b"});
  auto y = h.add(2, {"b"});
  ASSERT_FALSE(h.node.protect("a", peer_id(1), "core"));
  ASSERT_FALSE(h.node.tag_peer("b", peer_id(2), "useful", 5));
  EXPECT_TRUE(h.node.is_protected("a", peer_id(1)));
  EXPECT_FALSE(h.node.is_protected("b", peer_id(1)));
  EXPECT_FALSE(h.manager().is_protected(peer_id(1)));
  auto z = h.add(3);
  ASSERT_TRUE(h.node.bind(*z, "b"));
  ASSERT_FALSE(h.node.protect("b", peer_id(3), "core"));
  h.time->run_ready();
  // b: 3 bound, z protected in b; candidates x, y: 2 - low 1 = 1 to close, the cheaper.
  EXPECT_TRUE(x->closed()) << "a's protection does not shield from b's trim";
  EXPECT_FALSE(y->closed());
  EXPECT_FALSE(z->closed()) << "b's own protection does";
  EXPECT_EQ(h.node.realm_connection_count("b"), 2u);
  EXPECT_EQ(h.node.realm_connection_count("a"), 0u);
  EXPECT_FALSE(h.node.unprotect("b", peer_id(3), "core"));
}

TEST(RealmTrim, GraceAndTheNodesProtectionShieldMembersAndDoNotCountTowardTheTarget) {
  RealmHarness h(trim_config(100, 1000, /*grace=*/10s));
  h.create("chat", realm(2, 100));
  auto old_members = h.add_range(1, 4, {"chat"});
  h.time->advance(10s);
  auto newcomers = h.add_range(11, 3, {"chat"});  // in grace
  ASSERT_FALSE(h.manager().protect(peer_id(1), "relay"));
  // 7 bound: 3 in grace and 1 protected are left alone; 3 candidates - low 2 = 1 closed.
  EXPECT_EQ(h.node.trim_realm("chat"), 1u);
  EXPECT_EQ(count_closed(newcomers), 0u);
  EXPECT_FALSE(old_members[0]->closed());
  EXPECT_EQ(count_closed(old_members), 1u);
}

TEST(RealmTrim, ShrinkingARealmAtRunTimeTrimsIt) {
  RealmHarness h;
  h.create("chat", realm(10, 20));
  auto chat = h.add_range(1, 15, {"chat"});
  h.time->run_ready();
  EXPECT_EQ(count_closed(chat), 0u);
  ConfigError error;
  EXPECT_EQ(h.node.set_realm_limit("chat", realm(9, 5), &error), Errc::invalid_argument);
  EXPECT_EQ(error.field, "low_water");
  EXPECT_EQ(h.node.realm_config("chat")->high_water, 20u);  // unchanged
  ASSERT_FALSE(h.node.set_realm_limit("chat", realm(5, 8)));
  EXPECT_EQ(count_closed(chat), 0u);
  h.time->run_ready();
  EXPECT_EQ(count_closed(chat), 10u);
  EXPECT_EQ(h.node.realm_connection_count("chat"), 5u);
  EXPECT_EQ(h.manager().connection_count(), 5u);
  EXPECT_EQ(h.node.set_realm_limit("nowhere", realm(1, 2)), Errc::unknown_realm);
}

// --- The node's trim -------------------------------------------------------------------

TEST(RealmGlobalTrim, AtEqualValueUnboundConnectionsGoFirst) {
  RealmHarness h(trim_config(10, 1000));
  h.create("chat", realm(0, 0));
  auto bound = h.add_range(1, 10, {"chat"});
  auto unbound = h.add_range(101, 10);
  EXPECT_EQ(h.manager().trim(), 10u);
  EXPECT_EQ(count_closed(unbound), 10u);
  EXPECT_EQ(count_closed(bound), 0u);
}

TEST(RealmGlobalTrim, ValueStillComesFirst) {
  RealmHarness h(trim_config(10, 1000));
  h.create("chat", realm(0, 0));
  auto bound = h.add_range(1, 10, {"chat"});
  auto unbound = h.add_range(101, 10);
  for (std::uint64_t n = 101; n <= 110; ++n)
    ASSERT_FALSE(h.manager().tag_peer(peer_id(n), "dht", 50));
  EXPECT_EQ(h.manager().trim(), 10u);
  EXPECT_EQ(count_closed(bound), 10u);
  EXPECT_EQ(count_closed(unbound), 0u);
  EXPECT_EQ(h.node.realm_stats("chat")->trimmed_globally, 10u);
}

// With connections bound, force_trim's order is still the emergency order within each
// pool: a peer without streams first, then the one with more streams.
TEST(RealmGlobalTrim, AForcedTrimKeepsTheEmergencyOrderWithinAPool) {
  RealmHarness h(trim_config(1, 1000));
  h.create("chat", realm(0, 0));
  std::vector<std::shared_ptr<FakeConnection>> by_streams;
  for (std::uint32_t streams : {0u, 1u, 2u, 3u}) {
    auto c = reporting_connection(h.manager(), peer_id(streams + 1), Direction::outbound);
    c->initial_streams = streams;
    ASSERT_FALSE(h.manager().add_connection(c));
    ASSERT_TRUE(h.node.bind(*c, "chat"));
    by_streams.push_back(std::move(c));
  }
  EXPECT_EQ(h.manager().force_trim(), 3u);
  EXPECT_TRUE(by_streams[0]->closed()) << "no streams: first";
  EXPECT_TRUE(by_streams[3]->closed());
  EXPECT_TRUE(by_streams[2]->closed());
  EXPECT_FALSE(by_streams[1]->closed()) << "the fewest streams stay in an emergency";
}

TEST(RealmGlobalTrim, EveryRealmStaysAtOrAboveItsReserve) {
  RealmHarness h(trim_config(10, 1000));
  h.create("a", realm(/*low=*/8, 0, 0, /*min_reserved=*/6));
  h.create("b", realm(4, 0, 0, 4));
  auto a = h.add_range(1, 20, {"a"});
  auto b = h.add_range(101, 10, {"b"});
  for (std::uint64_t n = 1; n <= 20; ++n) ASSERT_FALSE(h.manager().tag_peer(peer_id(n), "dht", 50));
  // 30 connections down to 10. First the realms' excess over their share, cheapest value
  // first: b's 6, then a's 12; then 2 more from a's excess over its reserve.
  EXPECT_EQ(h.manager().trim(), 20u);
  EXPECT_EQ(h.node.realm_connection_count("a"), 6u);
  EXPECT_EQ(h.node.realm_connection_count("b"), 4u);
  EXPECT_EQ(h.manager().connection_count(), 10u);
}

TEST(RealmGlobalTrim, ATrimThatWouldBreakAReserveStopsShort) {
  RealmHarness h(trim_config(10, 1000, /*grace=*/10s));
  h.create("a", realm(10, 0, 0, 10));
  auto a = h.add_range(1, 12, {"a"});
  h.time->advance(10s);
  auto young = h.add_range(101, 5);  // in grace: not candidates, yet above low water
  // Candidates: a's 12; the target is 12 - 10 = 2, which a can give above its reserve.
  EXPECT_EQ(h.manager().trim(), 2u);
  EXPECT_EQ(h.node.realm_connection_count("a"), 10u);
  // Out of grace, the unbound ones go and a, at its reserve, gives nothing more.
  h.add_range(201, 3);
  h.time->advance(10s);
  EXPECT_EQ(h.manager().trim(), 8u);
  EXPECT_EQ(h.node.realm_connection_count("a"), 10u);
  EXPECT_EQ(h.manager().connection_count(), 10u);
  EXPECT_EQ(count_closed(young), 5u);
}

// In an emergency a reserve yields before a protection does: force_trim takes unprotected
// peers first, realm members included, and protected ones only for what remains.
TEST(RealmGlobalTrim, ForceTrimMayGoBelowTheReserves) {
  RealmHarness h(trim_config(4, 1000));
  h.create("a", realm(4, 0, 0, 4));
  auto a = h.add_range(1, 8, {"a"});
  auto guarded = h.add_range(101, 6);
  for (std::uint64_t n = 101; n <= 106; ++n) ASSERT_FALSE(h.manager().protect(peer_id(n), "keep"));
  // 14 down to 4: a's 8 unprotected members (reserve or not), then 2 protected peers.
  EXPECT_EQ(h.manager().force_trim(), 10u);
  EXPECT_EQ(h.node.realm_connection_count("a"), 0u);
  EXPECT_EQ(count_closed(guarded), 2u);
  expect_closes_carry(a, CloseReason::forced_trim);
}

// The design's share: a global trim first takes each realm's excess over its low water,
// levelling the excesses (largest first) so that every realm keeps low_water + e, where
// the common excess e is what the target leaves; a realm whose demand is below its share
// keeps all of it. Here: a (50, low 20), b (30, low 20), c (10, low 20), 10 unbound and
// global low water 60: 100 - 60 = 40 to close: the 10 unbound, then 30 levelled over a
// (excess 30) and b (excess 10): e = 5, so a = 25, b = 25, c = 10.
TEST(RealmFairness, ThreeRealmsWithUnequalDemandEndAtTheirShares) {
  RealmHarness h(trim_config(60, 1000));
  h.create("a", realm(20, 0));
  h.create("b", realm(20, 0));
  h.create("c", realm(20, 0, 0, 10));
  auto a = h.add_range(1, 50, {"a"});
  auto b = h.add_range(1001, 30, {"b"});
  auto c = h.add_range(2001, 10, {"c"});
  auto unbound = h.add_range(3001, 10);
  EXPECT_EQ(h.manager().trim(), 40u);
  EXPECT_EQ(count_closed(unbound), 10u);
  EXPECT_NEAR(static_cast<double>(h.node.realm_connection_count("a")), 25.0, 1.0);
  EXPECT_NEAR(static_cast<double>(h.node.realm_connection_count("b")), 25.0, 1.0);
  EXPECT_EQ(h.node.realm_connection_count("c"), 10u);
  EXPECT_EQ(h.manager().connection_count(), 60u);
}

TEST(RealmFairness, ASharedConnectionIsTakenOnlyWhenBothRealmsCanGiveIt) {
  RealmHarness h(trim_config(4, 1000));
  h.create("a", realm(2, 0));
  h.create("b", realm(3, 0));
  // Three connections in both realms, two only in a.
  auto both = h.add_range(1, 3, {"a", "b"});
  auto only_a = h.add_range(11, 2, {"a"});
  // 5 -> 4: a has excess 3 but b only 0, so the shared ones stay; one of a's own goes.
  EXPECT_EQ(h.manager().trim(), 1u);
  EXPECT_EQ(count_closed(both), 0u);
  EXPECT_EQ(count_closed(only_a), 1u);
}

// The ranking learns that a peer is in two realms only when it reaches it: the peers
// before it, each in one realm, must keep their realms' floors all the same.
TEST(RealmGlobalTrim, FloorsHoldWhenAPeerInTwoRealmsFollowsPeersInOne) {
  RealmHarness h(trim_config(2, 1000));
  h.create("a", realm(2, 0));
  h.create("b", realm(0, 0));
  auto first = h.add(1, {"a"});
  auto second = h.add(2, {"a"});
  auto both = h.add(3, {"a", "b"});
  auto only_b = h.add(4, {"b"});
  ASSERT_FALSE(h.manager().tag_peer(peer_id(3), "v", 5));
  ASSERT_FALSE(h.manager().tag_peer(peer_id(4), "v", 5));
  // 4 -> 2. Value 0 first: a (3 bound, low water 2) gives one, peer 1 (inbound, so before
  // the outbound-only peer 2). Then value 5: peer 3 would take a below its low water; peer
  // 4 goes.
  EXPECT_EQ(h.manager().trim(), 2u);
  EXPECT_TRUE(first->closed());
  EXPECT_FALSE(second->closed());
  EXPECT_FALSE(both->closed());
  EXPECT_TRUE(only_b->closed());
  EXPECT_EQ(h.node.realm_connection_count("a"), 2u);
  EXPECT_EQ(h.node.realm_connection_count("b"), 1u);
}

TEST(RealmGlobalTrim, WithoutBindingsTheManagersOwnTrimmerDecides) {
  auto hook = std::make_shared<HookTrimmer>(nullptr);
  boost::asio::io_context io;
  auto time = std::make_shared<ManualTimeSource>(io);
  Dependencies deps;
  deps.time_source = time;
  deps.trimmer = hook;
  RealmConnectionManager node(io, trim_config(2, 100), deps);
  std::vector<std::shared_ptr<FakeConnection>> cs;
  for (std::uint64_t n = 1; n <= 5; ++n) {
    cs.push_back(reporting_connection(node.manager(), peer_id(n), Direction::inbound));
    ASSERT_FALSE(node.manager().add_connection(cs.back()));
  }
  EXPECT_EQ(node.manager().trim(), 3u);
  EXPECT_EQ(hook->calls.load(), 1);
}

TEST(RealmGlobalTrim, WithoutBindingsTheDefaultOrderTrims) {
  RealmHarness h(trim_config(2, 100));
  h.create("chat", realm(0, 0));
  auto cs = h.add_range(1, 5);
  for (std::uint64_t n = 1; n <= 5; ++n) {
    ASSERT_FALSE(h.manager().tag_peer(peer_id(n), "v", static_cast<int>(10 * (6 - n))));
  }
  // Values 50, 40, 30, 20, 10: the three lowest (peers 3, 4, 5) go.
  EXPECT_EQ(h.manager().trim(), 3u);
  EXPECT_FALSE(cs[0]->closed());
  EXPECT_FALSE(cs[1]->closed());
  EXPECT_EQ(count_closed({cs[2], cs[3], cs[4]}), 3u);
}

// trim_connections() closes exactly the count asked, on realm nodes too: the last peer
// the realm rules take gives up only what is still needed, newest connection first.
TEST(RealmGlobalTrim, AnExactTrimTakesItsLastPeerInPart) {
  RealmHarness h(trim_config(1, 1000));
  h.create("a", realm(0, 0));
  std::vector<std::shared_ptr<FakeConnection>> cheap;
  std::vector<std::shared_ptr<FakeConnection>> dear;
  for (int i = 0; i < 3; ++i) cheap.push_back(h.add(1, {"a"}));
  for (int i = 0; i < 3; ++i) {
    dear.push_back(h.add(2, {"a"}));
    h.time->advance(1s);
  }
  ASSERT_FALSE(h.manager().tag_peer(peer_id(2), "v", 10));
  EXPECT_EQ(h.manager().trim_connections(4), 4u);
  EXPECT_EQ(count_closed(cheap), 3u);
  EXPECT_EQ(count_closed(dear), 1u);
  EXPECT_TRUE(dear.back()->closed());  // the newest
  EXPECT_EQ(h.node.realm_connection_count("a"), 2u);
}

// The realm rules applied to the trimmer's snapshot: what the node's trim must close,
// worked out apart from the manager. A plain manager with the same connections and tags
// hands its snapshot to a trimmer that keeps it (and closes nothing); the candidates are
// dealt into pools from the bindings the test made, and the step-by-step greedy chooses.
// Returns the peers (snapshot indices) it takes.
struct SnapshotKeeper final : Trimmer {
  TrimInputs inputs() const override { return {false, false}; }
  void rank(const TrimSnapshot& snapshot, std::size_t target,
            std::vector<std::uint32_t>&) override {
    kept = snapshot;
    kept_target = target;
  }
  TrimSnapshot kept;
  std::size_t kept_target = 0;
};

struct BoundPlan {
  std::uint64_t peer;  // peers are numbered 1.. in the order they first connect
  int value;
  std::vector<int> realms;
};

std::vector<bool> realm_rules_on_snapshot(const TrimSnapshot& snapshot, std::size_t target,
                                          const std::vector<BoundPlan>& connections,
                                          const std::vector<RealmConfig>& configs) {
  namespace greedy = detail::realm_greedy;
  const std::size_t peers = snapshot.peers.size();
  // bound[i][r]: connections of peer i bound to realm r, in the order first bound.
  std::vector<std::vector<std::pair<int, std::uint32_t>>> bound(peers);
  std::vector<greedy::Pool> pools(configs.size() + 1);
  for (const BoundPlan& plan : connections) {
    auto& of_peer = bound[plan.peer - 1];
    for (int r : plan.realms) {
      ++pools[static_cast<std::size_t>(r) + 1].count;
      auto it =
          std::find_if(of_peer.begin(), of_peer.end(), [r](const auto& b) { return b.first == r; });
      if (it == of_peer.end()) {
        of_peer.emplace_back(r, 1);
      } else {
        ++it->second;
      }
    }
  }
  for (std::size_t r = 0; r < configs.size(); ++r) {
    pools[r + 1].share = configs[r].low_water;
    pools[r + 1].reserve = configs[r].min_reserved;
  }
  std::vector<std::vector<greedy::Contender>> dealt(pools.size());
  std::vector<greedy::Stake> stakes(peers);
  std::vector<greedy::StakeEntry> entries;
  for (std::uint32_t i = 0; i < peers; ++i) {
    const PeerSnapshot& peer = snapshot.peers[i];
    const detail::RankKey key = detail::key_of(peer, i, snapshot.forced);
    auto deal = [&](std::uint32_t pool, std::uint32_t count) {
      dealt[pool].push_back(greedy::Contender::of(key.value, key.activity, key.newer, i,
                                                  peer.connection_count, count));
    };
    if (bound[i].empty()) {
      stakes[i] = greedy::Stake{0, 0, 0, 0};
      deal(0, 0);
      continue;
    }
    const auto first_pool = static_cast<std::uint32_t>(bound[i][0].first + 1);
    const auto start = static_cast<std::uint32_t>(entries.size());
    for (std::size_t k = 1; k < bound[i].size(); ++k) {
      entries.push_back({static_cast<std::uint32_t>(bound[i][k].first + 1), bound[i][k].second});
    }
    stakes[i] = greedy::Stake{first_pool, bound[i][0].second, start,
                              static_cast<std::uint32_t>(entries.size())};
    for (const auto& [r, count] : bound[i]) deal(static_cast<std::uint32_t>(r + 1), count);
  }
  std::vector<greedy::Contender> candidates;
  for (std::size_t p = 0; p < pools.size(); ++p) {
    pools[p].begin = pools[p].sorted = pools[p].head =
        static_cast<std::uint32_t>(candidates.size());
    candidates.insert(candidates.end(), dealt[p].begin(), dealt[p].end());
    pools[p].end = static_cast<std::uint32_t>(candidates.size());
  }
  std::vector<std::uint8_t> fate(peers, 0);
  greedy::stepwise(greedy::Run{pools, candidates.data(), stakes.data(), entries, fate, target,
                               snapshot.forced ? 3 : 2, nullptr, nullptr});
  std::vector<bool> taken(peers);
  for (std::size_t i = 0; i < peers; ++i) taken[i] = fate[i] == greedy::kTaken;
  return taken;
}

// The node's trim ranks the pool in place, through the realm layer's extension; the realm
// rules applied to the trimmer's snapshot of the same node (above) must close the same
// peers. Random nodes: realms with shares and reserves, peers with several connections,
// bound to none, one or two realms, tag values with many ties; trim() and force_trim().
TEST(RealmGlobalTrim, RankingInPlaceClosesWhatTheSnapshotCloses) {
  int compared = 0;
  int with_shared = 0;
  int forced = 0;
  int short_of_target = 0;
  for (unsigned seed = 1; seed <= 150; ++seed) {
    std::mt19937 rng(seed);
    auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    const int realms = pick(1, 5);
    const bool shared = seed % 2 == 0;  // some peers in two realms (the stepwise greedy)
    const bool force = seed % 3 == 0;
    std::vector<BoundPlan> connections;
    const int peers = pick(10, 40);
    for (std::uint64_t p = 1; p <= static_cast<std::uint64_t>(peers); ++p) {
      const int value = pick(0, 4);
      const int count = pick(1, 3);
      for (int k = 0; k < count; ++k) {
        BoundPlan plan{p, value, {}};
        const int roll = pick(0, 99);
        if (roll >= 30) plan.realms.push_back(pick(0, realms - 1));
        if (shared && roll >= 80) {
          const int other = pick(0, realms - 1);
          if (other != plan.realms[0]) plan.realms.push_back(other);
        }
        connections.push_back(plan);
      }
    }
    const auto total = static_cast<int>(connections.size());
    const int low = pick(total / 4, total * 3 / 4);
    std::vector<RealmConfig> configs;
    int reserves = 0;
    for (int r = 0; r < realms; ++r) {
      const int share = pick(0, total / realms);
      const int reserve = std::min(pick(0, share), std::max(0, low - reserves));
      reserves += reserve;
      configs.push_back(
          realm(static_cast<std::size_t>(share), 0, 0, static_cast<std::size_t>(reserve)));
    }
    RealmHarness node(trim_config(static_cast<std::size_t>(low), 100'000));
    auto keeper = std::make_shared<SnapshotKeeper>();
    ManagerHarness mirror(trim_config(static_cast<std::size_t>(low), 100'000), keeper);
    for (std::size_t r = 0; r < configs.size(); ++r) {
      node.create(("r" + std::to_string(r)).c_str(), configs[r]);
    }
    std::vector<std::shared_ptr<FakeConnection>> open;
    for (const BoundPlan& plan : connections) {
      auto c = reporting_connection(node.manager(), peer_id(plan.peer), Direction::inbound);
      ASSERT_FALSE(node.manager().add_connection(c));
      for (int r : plan.realms) ASSERT_TRUE(node.node.bind(*c, "r" + std::to_string(r)));
      ASSERT_FALSE(node.manager().tag_peer(peer_id(plan.peer), "v", plan.value));
      open.push_back(std::move(c));
      mirror.add(plan.peer, Direction::inbound);
      ASSERT_FALSE(mirror.manager.tag_peer(peer_id(plan.peer), "v", plan.value));
    }
    const std::size_t closed = force ? node.manager().force_trim() : node.manager().trim();
    EXPECT_EQ(force ? mirror.manager.force_trim() : mirror.manager.trim(), 0u);
    ASSERT_EQ(keeper->kept.peers.size(), static_cast<std::size_t>(peers)) << "seed " << seed;
    const std::vector<bool> taken =
        realm_rules_on_snapshot(keeper->kept, keeper->kept_target, connections, configs);
    std::size_t expected = 0;
    for (std::size_t k = 0; k < connections.size(); ++k) {
      const bool gone = taken[connections[k].peer - 1];
      expected += gone ? 1 : 0;
      EXPECT_EQ(open[k]->closed(), gone) << "seed " << seed << ", connection " << k;
    }
    EXPECT_EQ(closed, expected) << "seed " << seed;
    ++compared;
    with_shared += shared ? 1 : 0;
    forced += force ? 1 : 0;
    short_of_target += closed < keeper->kept_target ? 1 : 0;
  }
  EXPECT_EQ(compared, 150);
  EXPECT_GE(with_shared, 70);
  EXPECT_GE(forced, 45);
  EXPECT_GT(short_of_target, 0) << "some trims stop at the realms' floors";
}

// --- Concurrency -----------------------------------------------------------------------

// One thread connects, binds and disconnects while another trims the node and the realms;
// afterwards every realm's count equals the connections still open that were bound to it.
TEST(RealmConcurrency, BindsTrimsAndDisconnectsFromTwoThreadsKeepCountsExact) {
  RealmHarness h(trim_config(40, 100'000));
  h.create("a", realm(20, 0, 0, 10));
  h.create("b", realm(10, 0));
  struct Added {
    std::shared_ptr<FakeConnection> connection;
    bool in_a = false;
    bool in_b = false;
  };
  std::vector<Added> added;
  std::atomic<bool> done{false};
  std::thread trimmer([&] {
    while (!done.load()) {
      h.manager().trim();
      h.node.trim_realm("a");
      (void)h.node.realm_connection_count("b");
      (void)h.node.members("a");
    }
  });
  for (std::uint64_t n = 1; n <= 3000; ++n) {
    auto c = reporting_connection(h.manager(), peer_id(n % 700), Direction::inbound);
    ASSERT_FALSE(h.manager().add_connection(c));
    Added entry{c, !h.node.bind(*c, "a").error, n % 2 == 0 && !h.node.bind(*c, "b").error};
    if (n % 5 == 0) {
      (void)h.manager().remove_connection(*c);
    } else if (n % 7 == 0 && entry.in_b && !h.node.unbind(*c, "b")) {
      entry.in_b = false;
    }
    added.push_back(std::move(entry));
  }
  done = true;
  trimmer.join();
  std::size_t in_a = 0;
  std::size_t in_b = 0;
  for (const Added& e : added) {
    if (!h.manager().connection_id(*e.connection)) continue;
    in_a += e.in_a ? 1 : 0;
    in_b += e.in_b ? 1 : 0;
  }
  EXPECT_EQ(h.node.realm_connection_count("a"), in_a);
  EXPECT_EQ(h.node.realm_connection_count("b"), in_b);
  EXPECT_LE(h.manager().connection_count(), 3000u);
  const auto stats = h.node.realm_stats("a");
  EXPECT_EQ(stats->binds - stats->unbinds, in_a);
}

// --- Validation ------------------------------------------------------------------------

struct Contradiction {
  const char* name;
  RealmConfig config;
  const char* field;
};

class RealmContradiction : public ::testing::TestWithParam<Contradiction> {};

TEST_P(RealmContradiction, IsRejectedNamingTheField) {
  Config node = trim_config(20, 100);
  node.limits.system.connections_total = 500;
  node.limits.peer.connections_total = 4;
  RealmHarness h(node);
  ConfigError error;
  EXPECT_EQ(h.node.create_realm("r", GetParam().config, &error), Errc::invalid_argument);
  EXPECT_EQ(error.field, GetParam().field) << error.message;
  EXPECT_FALSE(error.message.empty());
  EXPECT_TRUE(h.node.realms().empty());
  // RealmConfig::validate alone catches the realm's own rules.
  if (std::string(GetParam().name).rfind("node_", 0) != 0) {
    ASSERT_TRUE(GetParam().config.validate());
    EXPECT_EQ(GetParam().config.validate()->field, GetParam().field);
  } else {
    EXPECT_FALSE(GetParam().config.validate());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Realm, RealmContradiction,
    ::testing::Values(
        Contradiction{"reserve_above_low", realm(5, 10, 0, 6), "min_reserved"},
        Contradiction{"reserve_without_low", realm(0, 0, 0, 1), "min_reserved"},
        Contradiction{"low_above_high", realm(11, 10), "low_water"},
        Contradiction{"high_above_hard_max", realm(5, 30, 20), "high_water"},
        Contradiction{"low_above_hard_max", realm(25, 0, 20), "low_water"},
        Contradiction{"members_above_hard_max", realm(0, 0, 20, 0, 21), "max_members"},
        Contradiction{"node_hard_max_above_system", realm(0, 0, 501), "hard_max"},
        Contradiction{"node_hard_max_below_peer", realm(0, 0, 3), "hard_max"},
        Contradiction{"node_reserve_above_global_low", realm(21, 0, 0, 21), "min_reserved"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(RealmValidation, TheReservesOfAllRealmsMustFitTheGlobalLowWater) {
  RealmHarness h(trim_config(20, 100));
  h.create("a", realm(12, 0, 0, 12));
  ConfigError error;
  EXPECT_EQ(h.node.create_realm("b", realm(10, 0, 0, 9), &error), Errc::invalid_argument);
  EXPECT_EQ(error.field, "min_reserved");
  EXPECT_NE(error.message.find("21"), std::string::npos) << error.message;
  EXPECT_FALSE(h.node.create_realm("b", realm(10, 0, 0, 8)));
  // Raising a reserve at run time is checked the same way, against the others.
  EXPECT_EQ(h.node.set_realm_limit("a", realm(13, 0, 0, 13), &error), Errc::invalid_argument);
  EXPECT_FALSE(h.node.set_realm_limit("a", realm(12, 0, 0, 11)));
  // And the global low water may not drop below the reserves (11 + 8).
  EXPECT_EQ(h.node.set_limits(18, 100, &error), Errc::invalid_argument);
  EXPECT_EQ(error.field, "low_water");
  EXPECT_EQ(h.manager().config().low_water, 20u);
  EXPECT_FALSE(h.node.set_limits(19, 100));
  EXPECT_EQ(h.manager().config().low_water, 19u);
  // Removing a realm gives its reserve back.
  ASSERT_FALSE(h.node.remove_realm("a"));
  EXPECT_FALSE(h.node.set_limits(8, 100));
}

TEST(RealmValidation, ABadNodeConfigIsRefusedAtConstruction) {
  boost::asio::io_context io;
  EXPECT_THROW(RealmConnectionManager(io, trim_config(50, 10)), std::invalid_argument);
}

}  // namespace
}  // namespace dep2p::connmgr::testing
