// Realm stream limits (RealmConfig::max_streams; docs/design.md, "Realms"): the streams
// open on a realm's bound connections are counted exactly through binds, unbinds, claims
// and disconnects, and a stream open beyond the limit is refused naming the realm.
// Virtual time throughout.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <thread>
#include <vector>

#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/realm_manager.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr::testing {
namespace {

struct Node {
  Node() : Node(trim_config(10, 100)) {}
  explicit Node(Config config)
      : time(std::make_shared<ManualTimeSource>(io)),
        node(io, std::move(config), Dependencies{.time_source = time}) {}
  ConnectionManager& manager() { return node.manager(); }
  std::shared_ptr<FakeConnection> add(std::uint64_t n) {
    auto c = reporting_connection(manager(), peer_id(n), Direction::inbound);
    EXPECT_FALSE(manager().add_connection(c));
    return c;
  }
  std::error_code open(const Connection& c, Refusal* refusal = nullptr) {
    return keep_refusal(refusal, manager().stream_opened(c, Direction::inbound));
  }
  std::size_t streams(const char* realm) { return node.realm_stats(realm)->streams; }

  boost::asio::io_context io;
  std::shared_ptr<ManualTimeSource> time;
  RealmConnectionManager node;
};

TEST(RealmStreams, AStreamBeyondTheRealmsLimitIsRefusedNamingTheRealm) {
  Node n;
  ASSERT_FALSE(n.node.create_realm("chat", RealmConfig{.max_streams = 2}));
  auto a = n.add(1);
  auto b = n.add(2);
  auto outside = n.add(3);
  ASSERT_TRUE(n.node.bind(*a, "chat"));
  ASSERT_TRUE(n.node.bind(*b, "chat"));
  ASSERT_FALSE(n.open(*a));
  ASSERT_FALSE(n.open(*a));
  Refusal refusal;
  EXPECT_EQ(n.open(*b, &refusal), Errc::limit_exceeded);
  EXPECT_EQ(refusal.stage, Stage::stream);
  EXPECT_EQ(refusal.reason, RefusalReason::stream_limit);
  EXPECT_EQ(refusal.scope, "realm chat");
  EXPECT_EQ(refusal.limit, "max_streams");
  EXPECT_EQ(refusal.message, "inbound stream refused: realm chat holds 2 of 2 streams");
  EXPECT_EQ(n.manager().stats().streams, 2u);  // the refused one is not counted
  // A connection in no realm is not held by the realm's limit.
  EXPECT_FALSE(n.open(*outside));
  EXPECT_FALSE(n.open(*outside));
  EXPECT_FALSE(n.open(*outside));
  // A close makes room.
  ASSERT_FALSE(n.manager().stream_closed(*a, Direction::inbound));
  EXPECT_FALSE(n.open(*b));
  const RealmStats stats = *n.node.realm_stats("chat");
  EXPECT_EQ(stats.streams, 2u);
  EXPECT_EQ(stats.refused_streams, 1u);
}

TEST(RealmStreams, CountsFollowBindsUnbindsClaimsAndDisconnects) {
  Node n;
  ASSERT_FALSE(n.node.create_realm("chat", RealmConfig{}));
  auto a = n.add(1);
  ASSERT_TRUE(n.node.bind(*a, "chat"));
  for (int i = 0; i < 3; ++i) ASSERT_FALSE(n.open(*a));
  EXPECT_EQ(n.streams("chat"), 0u);  // nobody limits streams yet: not counted

  // The first realm with a limit starts the count, exact from what is open now.
  ASSERT_FALSE(n.node.create_realm("files", RealmConfig{.max_streams = 10}));
  EXPECT_EQ(n.streams("chat"), 3u);
  EXPECT_EQ(n.streams("files"), 0u);
  // A bind brings the connection's open streams, an unbind takes them away.
  ASSERT_TRUE(n.node.bind(*a, "files"));
  EXPECT_EQ(n.streams("files"), 3u);
  ASSERT_FALSE(n.open(*a));
  EXPECT_EQ(n.streams("files"), 4u);
  EXPECT_EQ(n.streams("chat"), 4u);
  ASSERT_FALSE(n.node.unbind(*a, "files"));
  EXPECT_EQ(n.streams("files"), 0u);
  EXPECT_EQ(n.streams("chat"), 4u);

  // A claimed connection is bound at its add, with no stream yet.
  Admission admitted = n.manager().admit_inbound(endpoint("127.0.0.1"));
  ASSERT_TRUE(admitted);
  ASSERT_TRUE(n.node.on_secured(admitted.reservation, peer_id(2), "files"));
  auto b = reporting_connection(n.manager(), peer_id(2), Direction::inbound);
  ASSERT_TRUE(n.manager().add_admitted(b, std::move(admitted.reservation)));
  ASSERT_FALSE(n.open(*b));
  ASSERT_FALSE(n.open(*b));
  EXPECT_EQ(n.streams("files"), 2u);

  // A connection that leaves takes its streams out of every realm it was bound to.
  ASSERT_FALSE(n.manager().remove_connection(*a));
  EXPECT_EQ(n.streams("chat"), 0u);
  ASSERT_FALSE(n.manager().remove_connection(*b));
  EXPECT_EQ(n.streams("files"), 0u);
  // A new connection in a reused slot starts from none.
  auto c = n.add(3);
  ASSERT_TRUE(n.node.bind(*c, "files"));
  EXPECT_EQ(n.streams("files"), 0u);
  ASSERT_FALSE(n.open(*c));
  EXPECT_EQ(n.streams("files"), 1u);
}

TEST(RealmStreams, ALimitSetLaterStartsTheCountAndBites) {
  Node n;
  ASSERT_FALSE(n.node.create_realm("chat", RealmConfig{}));
  auto a = n.add(1);
  ASSERT_TRUE(n.node.bind(*a, "chat"));
  ASSERT_FALSE(n.open(*a));
  ASSERT_FALSE(n.open(*a));
  ASSERT_FALSE(n.node.set_realm_limit("chat", RealmConfig{.max_streams = 2}));
  EXPECT_EQ(n.streams("chat"), 2u);
  EXPECT_EQ(n.open(*a), Errc::limit_exceeded);
}

TEST(RealmStreams, AStreamLimitAboveTheSystemsIsRefused) {
  Config config = trim_config(10, 100);
  config.limits.system.streams_total = 100;
  Node n(config);
  ConfigError error;
  EXPECT_EQ(n.node.create_realm("chat", RealmConfig{.max_streams = 101}, &error),
            Errc::invalid_argument);
  EXPECT_EQ(error.field, "max_streams");
  EXPECT_FALSE(n.node.create_realm("chat", RealmConfig{.max_streams = 100}));
}

TEST(RealmStreams, TheCountStaysExactWhenTheWatchStartsWhileThreadsOpenAndCloseStreams) {
  Node n;
  ASSERT_FALSE(n.node.create_realm("chat", RealmConfig{}));
  std::vector<std::shared_ptr<FakeConnection>> connections;
  for (std::uint64_t p = 1; p <= 2; ++p) {
    connections.push_back(n.add(p));
    ASSERT_TRUE(n.node.bind(*connections.back(), "chat"));
  }
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (auto& c : connections) {
    threads.emplace_back([&n, &go, c] {
      while (!go.load()) std::this_thread::yield();
      // Net: one stream left open per 8 rounds.
      for (int round = 0; round < 4000; ++round) {
        ASSERT_FALSE(n.open(*c));
        if (round % 8 != 0) {
          ASSERT_FALSE(n.manager().stream_closed(*c, Direction::inbound));
        }
      }
    });
  }
  go = true;
  // The watch starts while the threads run (the lanes' path turns off under them).
  ASSERT_FALSE(n.node.create_realm("limits", RealmConfig{.max_streams = 1'000'000}));
  for (auto& t : threads) t.join();
  EXPECT_EQ(n.streams("chat"), 2u * 500u);
  EXPECT_EQ(n.manager().stats().streams, 2u * 500u);
}

}  // namespace
}  // namespace dep2p::connmgr::testing
