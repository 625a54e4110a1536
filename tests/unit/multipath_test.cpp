// Multipath (docs/design.md, "Keepalive, idle and paths"): the best path, automatic upgrade from
// relay to direct, the per-peer cap, and simultaneous open converging on both sides.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <variant>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using testing::endpoint;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

Config upgrade_config() {
  Config config = trim_config(0, 0);
  config.max_connections_per_peer = 2;
  config.redundant_grace = 30s;
  config.keepalive_interval = 0ms;  // these tests are about paths, not pings
  config.idle_timeout = 0ms;
  return config;
}

Config multipath_config() {
  Config config = trim_config(0, 0);
  config.max_connections_per_peer = 2;
  config.redundant_grace = 30s;
  config.keepalive_interval = 5s;
  config.keepalive_timeout = 5s;
  config.idle_timeout = 0ms;
  return config;
}

// A connection whose pings the test answers by hand, after the delay it chooses.
struct Path {
  Path(ManagerHarness& h, std::uint64_t peer, PathKind kind, const char* address = "10.0.0.1",
       Direction direction = Direction::outbound)
      : connection(
            std::make_shared<FakeConnection>(peer_id(peer), direction, endpoint(address), kind)) {
    connection->on_ping = [this](Connection::PingHandler done) { pending = std::move(done); };
    connection->on_close = [&h](FakeConnection& self, CloseReason reason) {
      h.manager.remove_connection(self, reason);
    };
    EXPECT_FALSE(h.manager.add_connection(connection));
  }
  void answer() {
    if (pending) std::exchange(pending, nullptr)({});
  }
  std::shared_ptr<FakeConnection> connection;
  Connection::PingHandler pending;
};

// Measures `current` first (so it is the chosen, measured path), then both: `current`
// answers every ping after rtt_current; `other` answers only the second round's, after
// rtt_other (its first ping times out: one miss, below max_missed).
void measure(ManagerHarness& h, Path& current, Duration rtt_current, Path& other,
             Duration rtt_other) {
  h.time->advance(5s);
  h.time->advance(rtt_current);
  current.answer();
  h.time->advance(5s - rtt_current);  // 10 s: the other's ping is late; both pinged again
  const Duration first = std::min(rtt_current, rtt_other);
  h.time->advance(first);
  (rtt_current <= rtt_other ? current : other).answer();
  h.time->advance(std::max(rtt_current, rtt_other) - first);
  (rtt_current <= rtt_other ? other : current).answer();
}

TEST(Multipath, ADirectPathReplacesARelayAtOnceAndTheRelayClosesAfterItsGrace) {
  ManagerHarness h(upgrade_config());
  std::vector<PathChangedEvent> changes;
  Subscription sub = h.manager.subscribe([&](const Event& e) {
    if (auto* c = std::get_if<PathChangedEvent>(&e)) changes.push_back(*c);
  });
  Path relay(h, 1, PathKind::relay);
  EXPECT_EQ(h.manager.best_connection(peer_id(1)), relay.connection);
  Path direct(h, 1, PathKind::direct, "10.0.0.2");
  EXPECT_EQ(h.manager.best_connection(peer_id(1)), direct.connection);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].to, *h.manager.connection_id(*direct.connection));
  h.time->advance(30s - 100ms);
  EXPECT_FALSE(relay.connection->closed()) << "the relay lives out its grace";
  h.time->advance(100ms);
  ASSERT_TRUE(relay.connection->closed());
  EXPECT_EQ(relay.connection->last_reason(), CloseReason::redundant_path);
  EXPECT_FALSE(direct.connection->closed());
  EXPECT_EQ(h.manager.connection_count(), 1u);
}

TEST(Multipath, ARedundantRelayWithStreamsIsKeptUntilTheyClose) {
  ManagerHarness h(upgrade_config());
  Path relay(h, 1, PathKind::relay);
  ASSERT_TRUE(h.manager.stream_opened(*relay.connection));
  Path direct(h, 1, PathKind::direct, "10.0.0.2");
  h.time->advance(31s);
  EXPECT_FALSE(relay.connection->closed());
  ASSERT_FALSE(h.manager.stream_closed(*relay.connection));
  h.time->advance(30s);
  EXPECT_TRUE(relay.connection->closed());
}

TEST(Multipath, ARelayIsNotClosedIfTheDirectPathWentFirst) {
  ManagerHarness h(upgrade_config());
  Path relay(h, 1, PathKind::relay);
  Path direct(h, 1, PathKind::direct, "10.0.0.2");
  ASSERT_FALSE(h.manager.remove_connection(*direct.connection));
  EXPECT_EQ(h.manager.best_connection(peer_id(1)), relay.connection);
  h.time->advance(1min);
  EXPECT_FALSE(relay.connection->closed());
}

TEST(Multipath, SameTierPathFourMsFasterKeepsTheCurrentSixMsFasterSwitches) {
  {
    ManagerHarness h(multipath_config());
    Path a(h, 1, PathKind::direct, "10.0.0.1");
    Path b(h, 1, PathKind::direct, "10.0.0.2");
    measure(h, a, 20ms, b, 16ms);
    EXPECT_EQ(h.manager.rtt(*b.connection), Duration(16ms));
    EXPECT_EQ(h.manager.best_connection(peer_id(1)), a.connection) << "4 ms: sticky";
  }
  {
    ManagerHarness h(multipath_config());
    Path a(h, 1, PathKind::direct, "10.0.0.1");
    Path b(h, 1, PathKind::direct, "10.0.0.2");
    measure(h, a, 20ms, b, 14ms);
    EXPECT_EQ(h.manager.best_connection(peer_id(1)), b.connection) << "6 ms: switch";
  }
}

TEST(Multipath, IPv6GetsAThreeMsBias) {
  ManagerHarness h(multipath_config());
  Path v4(h, 1, PathKind::direct, "10.0.0.1");
  Path v6(h, 1, PathKind::direct, "2001:db8::1");
  measure(h, v4, 20ms, v6, 18ms);  // 18 - 3 = 15: 5 ms better after the bias
  EXPECT_EQ(h.manager.best_connection(peer_id(1)), v6.connection);
}

TEST(Multipath, OverThePerPeerCapTheWorstPathCloses) {
  Config config = multipath_config();
  config.redundant_grace = 1h;
  ManagerHarness h(config);
  Path relay(h, 1, PathKind::relay, "10.0.0.9");
  Path direct(h, 1, PathKind::direct, "10.0.0.1");
  Path another(h, 1, PathKind::direct, "10.0.0.2");
  EXPECT_TRUE(relay.connection->closed()) << "the relay is the worst of three";
  EXPECT_EQ(relay.connection->last_reason(), CloseReason::redundant_path);
  EXPECT_NE(relay.connection->last_detail().find("max_connections_per_peer"), std::string::npos);
  EXPECT_EQ(h.manager.connections(peer_id(1)).size(), 2u);
}

TEST(Multipath, AmongDirectPathsTheSlowestClosesOverTheCap) {
  ManagerHarness h(multipath_config());
  Path a(h, 1, PathKind::direct, "10.0.0.1");
  Path b(h, 1, PathKind::direct, "10.0.0.2");
  measure(h, a, 10ms, b, 40ms);
  Path c(h, 1, PathKind::direct, "10.0.0.3");  // unmeasured: worse than both measured
  EXPECT_TRUE(c.connection->closed());
  EXPECT_FALSE(a.connection->closed());
  EXPECT_FALSE(b.connection->closed());
}

// Two nodes, each with its manager; a link's two ends close each other, as a real
// transport's would.
struct Node {
  explicit Node(std::uint64_t n) : id(peer_id(n)), h(config(peer_id(n))) {}
  static Config config(const NodeId& self) {
    Config c = multipath_config();
    c.local_node_id = self;
    return c;
  }
  NodeId id;
  ManagerHarness h;
};

struct Link {
  Link(Node& dialer, Node& listener)
      : out(std::make_shared<FakeConnection>(listener.id, Direction::outbound)),
        in(std::make_shared<FakeConnection>(dialer.id, Direction::inbound)) {
    auto* d = &dialer.h.manager;
    auto* l = &listener.h.manager;
    out->on_close = [this, d, l](FakeConnection& self, CloseReason reason) {
      d->remove_connection(self, reason);
      if (!in->closed()) in->close(CloseReason::host, "the other end closed");
      l->remove_connection(*in, CloseReason::host);
    };
    in->on_close = [this, d, l](FakeConnection& self, CloseReason reason) {
      l->remove_connection(self, reason);
      if (!out->closed()) out->close(CloseReason::host, "the other end closed");
      d->remove_connection(*out, CloseReason::host);
    };
  }
  std::shared_ptr<FakeConnection> out;  // at the dialer
  std::shared_ptr<FakeConnection> in;   // at the listener
};

TEST(Multipath, SimultaneousOpenConvergesOnTheConnectionDialedByTheHigherNodeId) {
  Node high(9);
  Node low(2);
  Link from_high(high, low);
  Link from_low(low, high);
  // Both dials complete; each side learns of both connections, in crossing order.
  ASSERT_FALSE(high.h.manager.add_connection(from_high.out));
  ASSERT_FALSE(low.h.manager.add_connection(from_low.out));
  (void)high.h.manager.add_connection(from_low.in);
  (void)low.h.manager.add_connection(from_high.in);

  EXPECT_EQ(high.h.manager.connection_count(), 1u);
  EXPECT_EQ(low.h.manager.connection_count(), 1u);
  EXPECT_EQ(high.h.manager.best_connection(low.id), from_high.out);
  EXPECT_EQ(low.h.manager.best_connection(high.id), from_high.in);
  EXPECT_TRUE(from_low.out->closed());
  EXPECT_TRUE(from_low.in->closed());
  EXPECT_FALSE(from_high.out->closed());
  EXPECT_EQ(high.h.manager.stats().closes(CloseReason::duplicate) +
                low.h.manager.stats().closes(CloseReason::duplicate),
            1u)
      << "one side decided; the other saw its end close";
}

TEST(Multipath, WithoutALocalIdBothDirectionsAreKept) {
  ManagerHarness h(multipath_config());
  auto out = std::make_shared<FakeConnection>(peer_id(1), Direction::outbound);
  auto in = std::make_shared<FakeConnection>(peer_id(1), Direction::inbound);
  ASSERT_FALSE(h.manager.add_connection(out));
  ASSERT_FALSE(h.manager.add_connection(in));
  EXPECT_EQ(h.manager.connection_count(), 2u);
}

// A selector that, on its first call, runs `during` (host code calling back into the
// manager) before it answers with the last candidate.
class ReentrantSelector final : public PathSelector {
 public:
  std::size_t select(std::span<const PathCandidate> candidates,
                     std::optional<std::size_t>) override {
    if (++calls == 1 && during) during();
    return candidates.size() - 1;
  }
  std::function<void()> during;
  int calls = 0;
};

// While the selector runs (unlocked), the host closes every path of the peer, which
// releases its entry, and the peer connects again twice: the new entry takes the same
// slot, and its paths' version comes back to the value the first call saw. The first
// call's answer names paths that are gone, so it is dropped; the second call's stands.
TEST(Multipath, AnAnswerForPathsThatAllClosedMeanwhileIsDropped) {
  auto selector = std::make_shared<ReentrantSelector>();
  Dependencies deps;
  deps.path_selector = selector;
  Config config = trim_config(0, 0);
  config.max_connections_per_peer = 3;
  ManagerHarness h(config, deps);
  auto first = h.add(1, Direction::inbound);
  std::shared_ptr<FakeConnection> second;
  std::shared_ptr<FakeConnection> third;
  std::shared_ptr<FakeConnection> fourth;
  selector->during = [&] {
    EXPECT_FALSE(h.manager.remove_connection(*first));
    EXPECT_FALSE(h.manager.remove_connection(*second));
    EXPECT_EQ(h.manager.peer_count(), 0u);
    third = h.add(1, Direction::outbound);
    fourth = h.add(1, Direction::outbound);  // asks the selector again: the last, `fourth`
  };
  second = testing::reporting_connection(h.manager, peer_id(1), Direction::outbound);
  EXPECT_FALSE(h.manager.add_connection(second));  // two paths: the selector is asked
  EXPECT_GE(selector->calls, 2);
  ASSERT_NE(fourth, nullptr);
  EXPECT_EQ(h.manager.best_connection(peer_id(1)), fourth);
  EXPECT_EQ(h.manager.connection_count(), 2u);
}

}  // namespace
}  // namespace dep2p::connmgr
