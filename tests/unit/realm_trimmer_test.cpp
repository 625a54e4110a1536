// A host's Trimmer with realms (docs/design.md, "Realms"): the realm rules (shares,
// reserves) decide which candidates may go, the trimmer's order decides among them; the
// trimmer sees each candidate's realms, and a realm's own trim follows its order too.
// Virtual time throughout.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/realm_manager.hpp"
#include "dep2p/connmgr/trimmer.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr::testing {
namespace {

// The opposite of the default order's first key: the most valuable peer goes first. It
// records what it was shown.
class MostValuableFirst final : public Trimmer {
 public:
  TrimInputs inputs() const override { return {.peer_ids = true, .connections = false}; }
  void rank(const TrimSnapshot& s, std::size_t target, std::vector<std::uint32_t>& order) override {
    for (std::uint32_t i = 0; i < s.peers.size(); ++i) order.push_back(i);
    std::ranges::sort(order, [&](auto a, auto b) { return s.peers[a].value > s.peers[b].value; });
    ++calls;
    last_target = target;
    ordered = s.ordered;
    realms.clear();
    for (std::size_t i = 0; i < s.peers.size(); ++i) {
      std::set<std::string> names;
      for (std::uint32_t r : s.realms_of(s.peers[i])) names.insert(s.realm_names.at(r));
      realms[s.peer_ids[i]] = names;
    }
  }
  int calls = 0;
  std::size_t last_target = 0;
  bool ordered = false;
  std::map<NodeId, std::set<std::string>> realms;
};

struct Node {
  explicit Node(std::shared_ptr<Trimmer> trimmer, std::size_t low_water = 3)
      : time(std::make_shared<ManualTimeSource>(io)),
        node(io, trim_config(low_water, 100),
             Dependencies{.time_source = time, .trimmer = std::move(trimmer)}) {}
  // Peer n with one connection, tagged `value`, bound to `realm` unless empty.
  void add(std::uint64_t n, int value, const char* realm) {
    auto c = reporting_connection(node.manager(), peer_id(n), Direction::inbound);
    ASSERT_FALSE(node.manager().add_connection(c));
    node.manager().tag_peer(peer_id(n), "v", value);
    if (realm[0] != '\0') {
      ASSERT_TRUE(node.bind(*c, realm));
    }
    connections[n] = c;
  }
  std::set<std::uint64_t> closed() const {
    std::set<std::uint64_t> out;
    for (const auto& [n, c] : connections) {
      if (c->closed()) out.insert(n);
    }
    return out;
  }
  boost::asio::io_context io;
  std::shared_ptr<ManualTimeSource> time;
  RealmConnectionManager node;
  std::map<std::uint64_t, std::shared_ptr<FakeConnection>> connections;
};

// Peers 1-4 in chat (values 10-40), which keeps 3 (share and reserve); peers 5 and 6
// unbound (values 5 and 50). Six connections, low water 3: the trim takes three.
void populate(Node& n) {
  ASSERT_FALSE(n.node.create_realm("chat", RealmConfig{.low_water = 3, .min_reserved = 3}));
  for (std::uint64_t p = 1; p <= 4; ++p) n.add(p, static_cast<int>(10 * p), "chat");
  n.add(5, 5, "");
  n.add(6, 50, "");
}

TEST(RealmTrimmer, TheHostsOrderDecidesWithinTheRealmRules) {
  auto trimmer = std::make_shared<MostValuableFirst>();
  Node custom(trimmer);
  populate(custom);
  EXPECT_EQ(custom.node.manager().trim(), 3u);
  // Its order: 6, 4, 3, 2, 1, 5. Chat gives one (4 above its 3); 3, 2 and 1 are kept.
  EXPECT_EQ(custom.closed(), (std::set<std::uint64_t>{4, 5, 6}));
  EXPECT_EQ(custom.node.realm_connection_count("chat"), 3u);
  // It was asked for the whole order, and saw the realms.
  EXPECT_TRUE(trimmer->ordered);
  EXPECT_EQ(trimmer->last_target, 6u);
  EXPECT_EQ(trimmer->realms[peer_id(1)], (std::set<std::string>{"chat"}));
  EXPECT_TRUE(trimmer->realms[peer_id(6)].empty());

  // The default order under the same rules: lowest value first (5, 1, then 6).
  Node plain(nullptr);
  populate(plain);
  EXPECT_EQ(plain.node.manager().trim(), 3u);
  EXPECT_EQ(plain.closed(), (std::set<std::uint64_t>{1, 5, 6}));
}

TEST(RealmTrimmer, ForceTrimFollowsTheHostsOrderThroughTheShareAndReservePhases) {
  // Chat: share 3, reserve 1. Node low water 1: force_trim closes 5 of 6.
  auto populate_forced = [](Node& n) {
    ASSERT_FALSE(n.node.create_realm("chat", RealmConfig{.low_water = 3, .min_reserved = 1}));
    for (std::uint64_t p = 1; p <= 4; ++p) n.add(p, static_cast<int>(10 * p), "chat");
    n.add(5, 5, "");
    n.add(6, 50, "");
  };
  Node custom(std::make_shared<MostValuableFirst>(), 1);
  populate_forced(custom);
  EXPECT_EQ(custom.node.manager().force_trim(), 5u);
  // Share phase in its order: 6, 4 (chat to 3), 5; reserve phase: 3, 2 (chat to 1).
  EXPECT_EQ(custom.closed(), (std::set<std::uint64_t>{2, 3, 4, 5, 6}));

  Node plain(nullptr, 1);
  populate_forced(plain);
  EXPECT_EQ(plain.node.manager().force_trim(), 5u);
  // Default order: 5, 1 (chat to 3), 6; then 2, 3.
  EXPECT_EQ(plain.closed(), (std::set<std::uint64_t>{1, 2, 3, 5, 6}));
}

TEST(RealmTrimmer, WithNothingBoundTheTrimmerAloneDecidesAndIsAskedOnlyForTheTarget) {
  auto trimmer = std::make_shared<MostValuableFirst>();
  Node n(trimmer);
  ASSERT_FALSE(n.node.create_realm("chat", RealmConfig{.low_water = 3, .min_reserved = 3}));
  for (std::uint64_t p = 1; p <= 6; ++p) n.add(p, static_cast<int>(10 * p), "");
  EXPECT_EQ(n.node.manager().trim(), 3u);
  EXPECT_EQ(n.closed(), (std::set<std::uint64_t>{4, 5, 6}));
  EXPECT_FALSE(trimmer->ordered);
  EXPECT_EQ(trimmer->last_target, 3u);
}

TEST(RealmTrimmer, ARealmsOwnTrimFollowsTheHostsOrder) {
  auto trimmer = std::make_shared<MostValuableFirst>();
  Node custom(trimmer);
  ASSERT_FALSE(custom.node.create_realm("chat", RealmConfig{.low_water = 2, .high_water = 10}));
  for (std::uint64_t p = 1; p <= 4; ++p) custom.add(p, static_cast<int>(10 * p), "chat");
  EXPECT_EQ(custom.node.trim_realm("chat"), 2u);
  EXPECT_EQ(custom.closed(), (std::set<std::uint64_t>{3, 4}));
  EXPECT_GE(trimmer->calls, 1);

  Node plain(nullptr);
  ASSERT_FALSE(plain.node.create_realm("chat", RealmConfig{.low_water = 2, .high_water = 10}));
  for (std::uint64_t p = 1; p <= 4; ++p) plain.add(p, static_cast<int>(10 * p), "chat");
  EXPECT_EQ(plain.node.trim_realm("chat"), 2u);
  EXPECT_EQ(plain.closed(), (std::set<std::uint64_t>{1, 2}));
}

TEST(RealmTrimmer, TheRealmTagsStillComeFirstInARealmsOwnTrim) {
  Node custom(std::make_shared<MostValuableFirst>());
  ASSERT_FALSE(custom.node.create_realm("chat", RealmConfig{.low_water = 2, .high_water = 10}));
  for (std::uint64_t p = 1; p <= 4; ++p) custom.add(p, static_cast<int>(10 * p), "chat");
  // Peer 4, the trimmer's first, is worth more in the realm than the others.
  ASSERT_FALSE(custom.node.tag_peer("chat", peer_id(4), "helper", 100));
  EXPECT_EQ(custom.node.trim_realm("chat"), 2u);
  EXPECT_EQ(custom.closed(), (std::set<std::uint64_t>{2, 3}));
}

TEST(RealmTrimmer, ExplainRanksUnderTheOrderInForce) {
  // A host order with realms: 6, 4 (chat to its reserve of 3), then 5; chat keeps 1-3.
  Node custom(std::make_shared<MostValuableFirst>());
  populate(custom);
  auto five = custom.node.explain(peer_id(5));
  ASSERT_TRUE(five);
  EXPECT_EQ(five->node.rank, 1u);  // the default order's first
  EXPECT_EQ(five->node.rank_in_force, 3u);
  EXPECT_EQ(custom.node.explain(peer_id(6))->node.rank_in_force, 1u);
  auto three = custom.node.explain(peer_id(3));
  EXPECT_EQ(three->node.rank, 4u);
  EXPECT_FALSE(three->node.rank_in_force);
  EXPECT_NE(three->summary.find("kept under the order in force"), std::string::npos)
      << three->summary;

  // The default order with realms: 5, 1 (chat to 3), then 6.
  Node plain(nullptr);
  populate(plain);
  auto six = plain.node.explain(peer_id(6));
  EXPECT_EQ(six->node.rank, 6u);
  EXPECT_EQ(six->node.rank_in_force, 3u);
  EXPECT_NE(six->summary.find("rank 3 under the order in force"), std::string::npos)
      << six->summary;
  EXPECT_FALSE(plain.node.explain(peer_id(2))->node.rank_in_force);

  // A host order and nothing bound: its order alone.
  Node alone(std::make_shared<MostValuableFirst>());
  for (std::uint64_t p = 1; p <= 6; ++p) alone.add(p, static_cast<int>(10 * p), "");
  auto top = alone.node.manager().explain(peer_id(6));
  EXPECT_EQ(top->rank, 6u);
  EXPECT_EQ(top->rank_in_force, 1u);
  // Without a host trimmer or realms the two ranks agree, and the summary says it once.
  Node simple(nullptr);
  for (std::uint64_t p = 1; p <= 3; ++p) simple.add(p, static_cast<int>(10 * p), "");
  auto first = simple.node.manager().explain(peer_id(1));
  EXPECT_EQ(first->rank, 1u);
  EXPECT_EQ(first->rank_in_force, 1u);
  EXPECT_EQ(first->summary.find("under the order in force"), std::string::npos);
}

}  // namespace
}  // namespace dep2p::connmgr::testing
