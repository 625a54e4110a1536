// Hooks (before_connect, after_handshake) and the events of docs/design.md, "Lifecycle, hooks and
// events".
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using testing::endpoint;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

TEST(Hooks, RunInOrderAndTheFirstRejectionWins) {
  ManagerHarness h(trim_config(0, 0));
  std::vector<std::string> calls;
  Subscription first = h.manager.add_before_connect([&](const NodeId&, const Endpoint&) {
    calls.push_back("first");
    return Decision::allow();
  });
  Subscription second = h.manager.add_before_connect([&](const NodeId& peer, const Endpoint&) {
    calls.push_back("second");
    return peer == peer_id(2) ? Decision::deny("peer 2 is not welcome") : Decision::allow();
  });
  Subscription third = h.manager.add_before_connect([&](const NodeId&, const Endpoint&) {
    calls.push_back("third");
    return Decision::deny("third says no");
  });
  Admission refused = h.manager.check_dial_addr(peer_id(2), endpoint("10.0.0.1"));
  EXPECT_EQ(refused.error, Errc::connection_denied);
  EXPECT_EQ(refused.refusal.reason, RefusalReason::hook);
  EXPECT_EQ(refused.refusal.stage, Stage::dial_addr);
  EXPECT_EQ(refused.refusal.message,
            "dial refused by a before_connect hook: peer 2 is not welcome");
  EXPECT_EQ(calls, (std::vector<std::string>{"first", "second"}));
  calls.clear();
  third.reset();
  EXPECT_TRUE(h.manager.check_dial_addr(peer_id(3), endpoint("10.0.0.1")));
  EXPECT_EQ(calls, (std::vector<std::string>{"first", "second"})) << "a reset hook is gone";
  EXPECT_EQ(h.manager.stats().refusals(RefusalReason::hook), 1u);
}

TEST(Hooks, AfterHandshakeRejectsBothAddPathsAndNothingIsAdded) {
  ManagerHarness h(trim_config(0, 0));
  Subscription hook = h.manager.add_after_handshake([](const Connection& c) {
    return c.remote_peer() == peer_id(1) ? Decision::deny("handshake said no") : Decision::allow();
  });
  auto plain = std::make_shared<FakeConnection>(peer_id(1), Direction::inbound);
  EXPECT_EQ(h.manager.add_connection(plain), Errc::connection_denied);
  Admission admitted = h.manager.admit_inbound(endpoint("10.0.0.1"));
  ASSERT_TRUE(admitted);
  Refusal refusal;
  auto staged = std::make_shared<FakeConnection>(peer_id(1), Direction::inbound);
  EXPECT_EQ(keep_refusal(refusal, h.manager.add_admitted(staged, std::move(admitted.reservation))),
            Errc::connection_denied);
  EXPECT_EQ(refusal.stage, Stage::add);
  EXPECT_EQ(refusal.limit, "handshake said no");
  EXPECT_EQ(h.manager.connection_count(), 0u);
  EXPECT_EQ(h.manager.stats().reservations, 0u);
  EXPECT_FALSE(
      h.manager.add_connection(std::make_shared<FakeConnection>(peer_id(2), Direction::inbound)));
}

TEST(Hooks, AThrowingHookRejectsAndAHookMayCallTheManager) {
  ManagerHarness h(trim_config(0, 0));
  Subscription hook = h.manager.add_before_connect([&](const NodeId&, const Endpoint&) -> Decision {
    (void)h.manager.stats();  // no lock is held: this must not deadlock
    throw std::runtime_error("hook broke");
  });
  Admission refused = h.manager.check_dial_addr(peer_id(1), endpoint("10.0.0.1"));
  EXPECT_EQ(refused.error, Errc::connection_denied);
  EXPECT_NE(refused.refusal.message.find("hook broke"), std::string::npos);
}

TEST(Events, ListenStreamAndRefusalEventsArePublished) {
  Config config = trim_config(0, 0);
  config.limits.system.pending_inbound = 0;
  ManagerHarness h(config);
  std::vector<Event> events;
  Subscription sub = h.manager.subscribe([&](const Event& e) { events.push_back(e); });
  h.manager.listen(endpoint("127.0.0.1", 4001));
  auto c = h.add(1);
  ASSERT_TRUE(h.manager.stream_opened(*c, Direction::outbound));
  ASSERT_FALSE(h.manager.stream_closed(*c, Direction::outbound));
  EXPECT_FALSE(h.manager.admit_inbound(endpoint("10.0.0.1")));
  h.manager.listen_close(endpoint("127.0.0.1", 4001));
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(std::get<ListenEvent>(events[0]).address.port, 4001);
  EXPECT_TRUE(std::holds_alternative<ConnectedEvent>(events[1]));
  EXPECT_EQ(std::get<StreamOpenedEvent>(events[2]).direction, Direction::outbound);
  EXPECT_EQ(std::get<StreamClosedEvent>(events[3]).peer, peer_id(1));
  EXPECT_EQ(std::get<RefusedEvent>(events[4]).refusal.reason, RefusalReason::pending_limit);
  EXPECT_TRUE(std::holds_alternative<ListenCloseEvent>(events[5]));
}

// Two threads connect and disconnect their own peers as fast as they can; every event is
// delivered exactly once and each peer's events alternate connected, disconnected.
TEST(Events, ABurstFromTwoThreadsIsDeliveredOnceEachInOrderPerPeer) {
  ManagerHarness h(trim_config(0, 0));
  std::mutex mutex;
  std::map<std::string, std::vector<char>> by_peer;
  std::atomic<int> delivered{0};
  Subscription sub = h.manager.subscribe([&](const Event& e) {
    std::lock_guard lock(mutex);
    if (const auto* c = std::get_if<ConnectedEvent>(&e)) by_peer[c->peer.to_hex()].push_back('c');
    if (const auto* d = std::get_if<DisconnectedEvent>(&e)) {
      by_peer[d->peer.to_hex()].push_back('d');
    }
    ++delivered;
  });
  constexpr int kRounds = 2000;
  auto churn = [&](std::uint64_t base) {
    for (int i = 0; i < kRounds; ++i) {
      auto c = std::make_shared<FakeConnection>(peer_id(base + static_cast<std::uint64_t>(i % 8)),
                                                Direction::inbound);
      EXPECT_FALSE(h.manager.add_connection(c));
      EXPECT_FALSE(h.manager.remove_connection(*c));
    }
  };
  std::thread a(churn, 100);
  std::thread b(churn, 200);
  a.join();
  b.join();
  EXPECT_EQ(delivered.load(), 4 * kRounds);
  ASSERT_EQ(by_peer.size(), 16u);
  for (const auto& [peer, sequence] : by_peer) {
    ASSERT_EQ(sequence.size(), 2u * kRounds / 8) << peer;
    for (std::size_t i = 0; i < sequence.size(); ++i) {
      ASSERT_EQ(sequence[i], i % 2 == 0 ? 'c' : 'd') << peer << " event " << i;
    }
  }
}

}  // namespace
}  // namespace dep2p::connmgr
