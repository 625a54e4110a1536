// The dials the manager asks the host's Dialer for (docs/design.md, "Dialing"), in virtual
// time: reconnecting the peers it keeps (Reconnect), asking for a direct path for peers
// reached only through relays (DirectPath), and closing a path that carries nothing while
// its peer has another (PathIdle).
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/gater.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using testing::endpoint;
using testing::EventRecorder;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

// Keeps every request and its `done`, for the test to answer when it likes.
class RecordingDialer final : public Dialer {
 public:
  struct Call {
    DialRequest request;
    Done done;
  };
  void dial(const DialRequest& request, Done done) override {
    if (throws) throw std::runtime_error("no sockets today");
    std::lock_guard lock(mutex_);
    calls_.push_back({request, std::move(done)});
  }
  std::vector<Call> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return calls_.size();
  }
  // Answers call `i` (copying `done` out first: the answer may start another dial).
  void answer(std::size_t i, std::optional<DialFailure> failure) {
    Done done;
    {
      std::lock_guard lock(mutex_);
      done = calls_.at(i).done;
    }
    done(failure);
  }
  bool throws = false;

 private:
  mutable std::mutex mutex_;
  std::vector<Call> calls_;
};

Config redial_config() {
  Config config = trim_config(0, 0);
  config.dial.backoff_jitter = 0;
  config.keepalive_interval = 0ms;
  config.idle_timeout = 0ms;
  config.path_idle_timeout = 0ms;
  config.max_connections_per_peer = 4;
  return config;
}

struct Node {
  explicit Node(Config config = redial_config(), std::shared_ptr<Gater> gater = nullptr)
      : dialer(std::make_shared<RecordingDialer>()), h(std::move(config), deps(dialer, gater)) {}

  static Dependencies deps(std::shared_ptr<Dialer> dialer, std::shared_ptr<Gater> gater) {
    Dependencies d;
    d.dialer = std::move(dialer);
    d.gater = std::move(gater);
    return d;
  }
  // An outbound direct connection to peer n at 127.0.0.n:4001 (or a relayed one).
  std::shared_ptr<FakeConnection> connect(std::uint64_t n, PathKind path = PathKind::direct,
                                          Direction direction = Direction::outbound) {
    auto c = std::make_shared<FakeConnection>(
        peer_id(n), direction, endpoint(("127.0.0." + std::to_string(n)).c_str()), path);
    EXPECT_FALSE(h.manager.add_connection(c));
    return c;
  }
  void settle() { h.time->advance(0ms); }

  std::shared_ptr<RecordingDialer> dialer;
  ManagerHarness h;
};

// --- Reconnect -----------------------------------------------------------------------

TEST(Reconnect, AProtectedPeerThatDropsIsDialedAgainAtOnceAndAnUnprotectedOneIsNot) {
  Node n;
  EventRecorder events(n.h.manager);
  auto kept = n.connect(1);
  auto other = n.connect(2);
  ASSERT_FALSE(n.h.manager.protect(peer_id(1), "core"));
  n.h.manager.remove_connection(*kept, CloseReason::remote);
  n.h.manager.remove_connection(*other, CloseReason::remote);
  EXPECT_EQ(n.dialer->size(), 0u) << "the Dialer is called from the strand, not the report";
  n.settle();
  const auto calls = n.dialer->calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].request.peer, peer_id(1));
  EXPECT_EQ(calls[0].request.purpose, DialPurpose::reconnect);
  EXPECT_EQ(calls[0].request.attempt, 1u);
  ASSERT_EQ(calls[0].request.addresses.size(), 1u);
  EXPECT_EQ(calls[0].request.addresses[0], endpoint("127.0.0.1"))
      << "the address the node dialed it at";
  EXPECT_EQ(n.h.manager.check_dial(peer_id(1)).error, Errc::dial_pending)
      << "the host's own dial waits for the manager's";
  EXPECT_EQ(n.h.manager.stats().redials_queued, 1u);
  // The Dialer connects and says so.
  n.connect(1);
  n.dialer->answer(0, std::nullopt);
  const Stats s = n.h.manager.stats();
  EXPECT_EQ(s.reconnect_dials, 1u);
  EXPECT_EQ(s.redials_queued, 0u);
  EXPECT_EQ(n.h.manager.connection_count(), 1u);
  n.h.time->advance(1h);
  EXPECT_EQ(n.dialer->size(), 1u) << "the unprotected peer is never dialed";
  const auto dial_events = events.of<DialEvent>();
  ASSERT_GE(dial_events.size(), 1u);
  EXPECT_EQ(dial_events[0].peer, peer_id(1));
  EXPECT_FALSE(dial_events[0].outcome) << "the first event says the dial was asked for";
}

TEST(Reconnect, RetriesWaitForTheBackoffAndStopAfterTheLastAttempt) {
  Config config = redial_config();
  config.dial.reconnect_attempts = 3;
  Node n(config);
  EventRecorder events(n.h.manager);
  auto c = n.connect(1);
  n.h.manager.protect(peer_id(1), "core");
  const TimePoint t0 = n.h.time->now();
  n.h.manager.remove_connection(*c, CloseReason::remote);
  n.settle();
  ASSERT_EQ(n.dialer->size(), 1u);
  n.dialer->answer(0, DialFailure::error);
  EXPECT_EQ(n.h.manager.backoff_until(peer_id(1)), t0 + 5s);
  n.h.time->advance(5s - 1ms);
  EXPECT_EQ(n.dialer->size(), 1u) << "not before the backoff ends";
  n.h.time->advance(1ms);
  ASSERT_EQ(n.dialer->size(), 2u);
  EXPECT_EQ(n.dialer->calls()[1].request.attempt, 2u);
  n.dialer->answer(1, DialFailure::error);
  n.h.time->advance(10s);  // the second error waits twice as long
  ASSERT_EQ(n.dialer->size(), 3u);
  n.dialer->answer(2, DialFailure::error);
  n.h.time->advance(1h);
  EXPECT_EQ(n.dialer->size(), 3u) << "three attempts, then it gives up";
  const Stats s = n.h.manager.stats();
  EXPECT_EQ(s.reconnect_dials, 3u);
  EXPECT_EQ(s.reconnects_given_up, 1u);
  EXPECT_EQ(s.dial_failures[static_cast<std::size_t>(DialFailure::error)], 3u);
  EXPECT_EQ(s.redials_queued, 0u);
  const auto dial_events = events.of<DialEvent>();
  ASSERT_EQ(dial_events.size(), 6u);  // asked and failed, three times
  EXPECT_TRUE(dial_events.back().given_up);
  EXPECT_EQ(dial_events.back().failure, DialFailure::error);
  EXPECT_EQ(dial_events.back().attempt, 3u);
}

TEST(Reconnect, ProtectedPeersGoBeforeHeldOnesAndNoMoreThanTheBoundAtOnce) {
  Config config = redial_config();
  config.dial.max_parallel_dials = 2;
  Node n(config);
  std::vector<std::shared_ptr<FakeConnection>> conns;
  std::vector<KeepAliveHold> holds;
  for (std::uint64_t p = 1; p <= 6; ++p) conns.push_back(n.connect(p));
  for (std::uint64_t p = 1; p <= 3; ++p) holds.push_back(n.h.manager.keep_alive(peer_id(p)));
  for (std::uint64_t p = 4; p <= 6; ++p) n.h.manager.protect(peer_id(p), "core");
  // The held peers drop first; the protected ones still go first.
  for (auto& c : conns) n.h.manager.remove_connection(*c, CloseReason::remote);
  n.settle();
  auto calls = n.dialer->calls();
  ASSERT_EQ(calls.size(), 2u) << "max_parallel_dials";
  EXPECT_EQ(calls[0].request.peer, peer_id(4));
  EXPECT_EQ(calls[1].request.peer, peer_id(5));
  EXPECT_EQ(n.h.manager.stats().redials_queued, 6u);
  n.dialer->answer(0, std::nullopt);  // one ends: one more starts
  calls = n.dialer->calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[2].request.peer, peer_id(6));
  n.dialer->answer(1, std::nullopt);
  n.dialer->answer(2, std::nullopt);
  calls = n.dialer->calls();
  ASSERT_EQ(calls.size(), 5u);
  EXPECT_EQ(calls[3].request.peer, peer_id(1)) << "then the held ones, in the order they fell due";
  EXPECT_EQ(calls[4].request.peer, peer_id(2));
}

TEST(Reconnect, NoneAfterTheHostOrTheManagerClosedThePeer) {
  Config config = redial_config();
  config.idle_timeout = 1min;
  Node n(config);
  auto a = n.connect(1);
  auto b = n.connect(2);
  auto c = n.connect(3);
  for (std::uint64_t p = 1; p <= 3; ++p) n.h.manager.protect(peer_id(p), "core");
  n.h.manager.remove_connection(*a, CloseReason::host);  // the host closed it itself
  ASSERT_FALSE(n.h.manager.close_peer(peer_id(2)));
  n.h.manager.remove_connection(*c, CloseReason::trimmed);
  n.h.time->advance(1h);
  EXPECT_EQ(n.dialer->size(), 0u);

  // A reconnect under way ends when the host closes the peer.
  auto d = n.connect(4);
  n.h.manager.protect(peer_id(4), "core");
  n.h.manager.remove_connection(*d, CloseReason::remote);
  n.settle();
  ASSERT_EQ(n.dialer->size(), 1u);
  n.dialer->answer(0, DialFailure::timeout);
  EXPECT_EQ(n.h.manager.stats().redials_queued, 1u);
  EXPECT_EQ(n.h.manager.close_peer(peer_id(4)), Errc::unknown_peer);
  EXPECT_EQ(n.h.manager.stats().redials_queued, 0u);
  n.h.time->advance(1h);
  EXPECT_EQ(n.dialer->size(), 1u);
}

TEST(Reconnect, MissedKeepalivesCountAsADropAndAPeerNoLongerKeptIsLeft) {
  Config config = redial_config();
  config.keepalive_interval = 10s;
  config.keepalive_timeout = 5s;
  config.keepalive_max_missed = 1;
  Node n(config);
  auto silent = n.connect(1);
  silent->on_ping = [](Connection::PingHandler) {};  // never answers
  auto dropped = n.connect(2);
  n.h.manager.protect(peer_id(1), "core");
  n.h.manager.protect(peer_id(2), "core");
  n.h.time->advance(15s);
  ASSERT_TRUE(silent->closed());
  EXPECT_EQ(silent->last_reason(), CloseReason::keepalive_timeout);
  // Missed keepalives count as a dial error: the reconnect waits out that backoff first.
  EXPECT_EQ(n.dialer->size(), 0u);
  n.h.time->advance(5s);
  auto calls = n.dialer->calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].request.peer, peer_id(1));
  n.dialer->answer(0, DialFailure::error);
  // Unprotected meanwhile: its next attempt is dropped instead of made.
  n.h.manager.unprotect(peer_id(1), "core");
  n.h.time->advance(1h);
  EXPECT_EQ(n.dialer->size(), 1u);
  EXPECT_EQ(n.h.manager.stats().redials_queued, 0u);
}

TEST(Reconnect, OnlyTheNamedProtectionTagsWhenSomeAreGiven) {
  Config config = redial_config();
  config.dial.reconnect_tags = {"bootstrap"};
  config.dial.reconnect_held = false;
  Node n(config);
  auto a = n.connect(1);
  auto b = n.connect(2);
  auto c = n.connect(3);
  n.h.manager.protect(peer_id(1), "dht");
  n.h.manager.protect(peer_id(2), "bootstrap");
  KeepAliveHold hold = n.h.manager.keep_alive(peer_id(3));
  for (auto* conn : {a.get(), b.get(), c.get()}) {
    n.h.manager.remove_connection(*conn, CloseReason::remote);
  }
  n.settle();
  const auto calls = n.dialer->calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].request.peer, peer_id(2));
}

TEST(Reconnect, NothingIsDialedWhileTheNetworkIsDownAndItsReturnDialsAtOnce) {
  Node n;
  auto a = n.connect(1);
  auto b = n.connect(2);
  n.h.manager.protect(peer_id(1), "core");
  n.h.manager.protect(peer_id(2), "core");
  // Peer 2 drops first and fails: it waits out a backoff.
  n.h.manager.remove_connection(*b, CloseReason::remote);
  n.settle();
  ASSERT_EQ(n.dialer->size(), 1u);
  n.dialer->answer(0, DialFailure::error);
  n.h.manager.network_changed(false);
  n.h.manager.remove_connection(*a, CloseReason::remote);
  n.h.time->advance(1min);
  EXPECT_EQ(n.dialer->size(), 1u) << "nothing while down";
  n.h.manager.network_changed(true);
  n.settle();
  const auto calls = n.dialer->calls();
  ASSERT_EQ(calls.size(), 3u) << "both at once when the network returns";
  // In the order they fell due: peer 1 at once when it dropped, peer 2 when its backoff
  // would have ended (the network's return ended it early).
  EXPECT_EQ(calls[1].request.peer, peer_id(1));
  EXPECT_EQ(calls[2].request.peer, peer_id(2));
}

TEST(Reconnect, ADialWithNoAnswerLapsesAsATimeoutAndItsLateAnswerIsIgnored) {
  Node n;
  EventRecorder events(n.h.manager);
  auto a = n.connect(1);
  n.h.manager.protect(peer_id(1), "core");
  n.h.manager.remove_connection(*a, CloseReason::remote);
  n.settle();
  ASSERT_EQ(n.dialer->size(), 1u);
  n.h.time->advance(30s);  // dial_timeout
  const auto dial_events = events.of<DialEvent>();
  ASSERT_EQ(dial_events.size(), 2u);
  EXPECT_EQ(dial_events[1].failure, DialFailure::timeout);
  n.h.time->advance(2s);  // the timeout rule's first wait
  ASSERT_EQ(n.dialer->size(), 2u);
  n.dialer->answer(0, std::nullopt);  // the first dial's answer, too late
  EXPECT_EQ(n.h.manager.stats().reconnects_succeeded, 0u);
  EXPECT_EQ(n.h.manager.check_dial(peer_id(1)).error, Errc::dial_pending)
      << "the second dial is still in flight";
}

class RefusePeer final : public Gater {
 public:
  Decision intercept_peer_dial(const NodeId& peer) override {
    return peer == peer_id(1) ? Decision::deny("blocked") : Decision::allow();
  }
};

TEST(Reconnect, TheGaterStillDecidesAndAThrowingDialerCountsAsAnError) {
  Node n(redial_config(), std::make_shared<RefusePeer>());
  auto a = n.connect(1);
  auto b = n.connect(2);
  n.h.manager.protect(peer_id(1), "core");
  n.h.manager.protect(peer_id(2), "core");
  n.dialer->throws = true;
  n.h.manager.remove_connection(*a, CloseReason::remote);
  n.h.manager.remove_connection(*b, CloseReason::remote);
  n.settle();
  const Stats s = n.h.manager.stats();
  EXPECT_EQ(s.refusals(RefusalReason::gater), 1u);
  EXPECT_EQ(s.dial_failures[static_cast<std::size_t>(DialFailure::refused)], 1u);
  EXPECT_EQ(s.dial_failures[static_cast<std::size_t>(DialFailure::error)], 1u);
  EXPECT_EQ(n.h.manager.backoff_until(peer_id(1)), n.h.time->now() + 1min);
  EXPECT_EQ(n.h.manager.backoff_until(peer_id(2)), n.h.time->now() + 5s);
}

// --- Direct paths ----------------------------------------------------------------------

TEST(DirectPath, ARelayOnlyPeerIsAskedForADirectPathAtOnceThenPeriodically) {
  Node n;
  n.connect(1, PathKind::relay);
  n.settle();
  ASSERT_EQ(n.dialer->size(), 1u);
  EXPECT_EQ(n.dialer->calls()[0].request.purpose, DialPurpose::direct_path);
  EXPECT_EQ(n.dialer->calls()[0].request.peer, peer_id(1));
  n.dialer->answer(0, DialFailure::error);
  n.h.time->advance(60s - 1ms);
  EXPECT_EQ(n.dialer->size(), 1u);
  n.h.time->advance(1ms);
  ASSERT_EQ(n.dialer->size(), 2u) << "again one interval on";
  n.dialer->answer(1, DialFailure::timeout);
  n.h.time->advance(120s - 1ms);
  EXPECT_EQ(n.dialer->size(), 2u) << "the second failure in a row doubles the interval";
  n.h.time->advance(1ms);
  ASSERT_EQ(n.dialer->size(), 3u);
  EXPECT_EQ(n.dialer->calls()[2].request.attempt, 3u);
  EXPECT_EQ(n.h.manager.stats().direct_path_dials, 3u);
  // A peer with a direct path is never asked for.
  n.connect(2);
  n.h.time->advance(10min);
  for (const auto& call : n.dialer->calls()) EXPECT_EQ(call.request.peer, peer_id(1));
}

TEST(DirectPath, NoneOnceADirectPathExistsAndAgainWhenItGoes) {
  Config config = redial_config();
  config.redundant_grace = 1h;  // the relay stays while this test runs
  Node n(config);
  n.connect(1, PathKind::relay);
  n.settle();
  ASSERT_EQ(n.dialer->size(), 1u);
  auto direct = n.connect(1);  // the Dialer got through
  n.dialer->answer(0, std::nullopt);
  n.h.time->advance(10min);
  EXPECT_EQ(n.dialer->size(), 1u);
  EXPECT_EQ(n.h.manager.stats().redials_queued, 0u);
  // The direct path drops; the relay stays: a direct path is wanted again.
  n.h.manager.remove_connection(*direct, CloseReason::remote);
  n.settle();
  ASSERT_EQ(n.dialer->size(), 2u);
  EXPECT_EQ(n.dialer->calls()[1].request.purpose, DialPurpose::direct_path);
}

TEST(DirectPath, AProtectedRelayOnlyPeerThatDropsIsReconnectedNotUpgraded) {
  Node n;
  auto relay = n.connect(1, PathKind::relay);
  n.h.manager.protect(peer_id(1), "core");
  n.settle();
  ASSERT_EQ(n.dialer->size(), 1u);
  n.h.manager.remove_connection(*relay, CloseReason::remote);
  n.settle();
  const auto calls = n.dialer->calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1].request.purpose, DialPurpose::reconnect);
  n.dialer->answer(0, std::nullopt);  // the upgrade's answer: no longer heard
  EXPECT_EQ(n.h.manager.stats().redials_queued, 1u);
}

TEST(DirectPath, AnUnkeptPeerThatDropsLeavesNoJob) {
  Node n;
  auto relay = n.connect(1, PathKind::relay);
  n.settle();
  n.h.manager.remove_connection(*relay, CloseReason::remote);
  EXPECT_EQ(n.h.manager.stats().redials_queued, 0u);
  n.h.time->advance(10min);
  EXPECT_EQ(n.dialer->size(), 1u);
}

// --- Path idle ---------------------------------------------------------------------------

TEST(PathIdle, APathThatCarriesNothingClosesWhileThePeerKeepsItsBestOne) {
  Config config = redial_config();
  config.path_idle_timeout = 15s;
  Node n(config);
  auto first = n.connect(1);
  auto second = n.connect(1, PathKind::direct, Direction::inbound);
  n.h.manager.protect(peer_id(1), "core");  // protection does not keep a second path
  const auto chosen = n.h.manager.best_connection(peer_id(1));
  ASSERT_TRUE(chosen);
  FakeConnection* best = chosen.get() == first.get() ? first.get() : second.get();
  FakeConnection* other = chosen.get() == first.get() ? second.get() : first.get();
  // Both carry traffic for 20 s; then only the best one does.
  for (int i = 0; i < 4; ++i) {
    n.h.time->advance(5s);
    n.h.manager.record_activity(*first, 100, 100);
    n.h.manager.record_activity(*second, 100, 100);
  }
  EXPECT_FALSE(first->closed());
  EXPECT_FALSE(second->closed());
  for (int i = 0; i < 2; ++i) {
    n.h.time->advance(5s);
    n.h.manager.record_activity(*best, 100, 100);
  }
  EXPECT_FALSE(other->closed()) << "quiet for 10 s only";
  for (int i = 0; i < 2; ++i) {
    n.h.time->advance(5s);
    n.h.manager.record_activity(*best, 100, 100);
  }
  ASSERT_TRUE(other->closed()) << "quiet past 15 s while the peer has another path";
  EXPECT_EQ(other->last_reason(), CloseReason::idle_timeout);
  EXPECT_NE(other->last_detail().find("path idle"), std::string::npos) << other->last_detail();
  EXPECT_FALSE(best->closed());
  // The best one, now alone, is never closed for being a quiet path.
  n.h.time->advance(1h);
  EXPECT_FALSE(best->closed());
}

TEST(PathIdle, ASoleConnectionAndAPathWithStreamsStay) {
  Config config = redial_config();
  config.path_idle_timeout = 15s;
  Node n(config);
  auto alone = n.connect(2);
  auto a = n.connect(1);
  auto b = n.connect(1, PathKind::direct, Direction::inbound);
  const auto chosen = n.h.manager.best_connection(peer_id(1));
  ASSERT_TRUE(chosen);
  FakeConnection* best = chosen.get() == a.get() ? a.get() : b.get();
  FakeConnection* other = chosen.get() == a.get() ? b.get() : a.get();
  ASSERT_TRUE(n.h.manager.stream_opened(*other));
  n.h.time->advance(1h);
  EXPECT_FALSE(alone->closed());
  EXPECT_FALSE(other->closed()) << "a stream is traffic to come";
  EXPECT_FALSE(best->closed());
  ASSERT_FALSE(n.h.manager.stream_closed(*other));
  n.h.time->advance(15s);
  EXPECT_TRUE(other->closed());
}

TEST(Redial, SettingsThatContradictAreRefusedByName) {
  const auto refused = [](auto edit) {
    Config config;
    edit(config);
    auto error = config.validate();
    return error ? error->field : std::string("accepted");
  };
  EXPECT_EQ(refused([](Config& c) { c.dial.max_parallel_dials = 0; }), "dial.max_parallel_dials");
  EXPECT_EQ(refused([](Config& c) { c.dial.reconnect_tags = {""}; }), "dial.reconnect_tags");
  EXPECT_EQ(refused([](Config& c) { c.dial.direct_path_interval = -1ms; }),
            "dial.direct_path_interval");
  EXPECT_EQ(refused([](Config& c) { c.dial.direct_path_interval_max = 1s; }),
            "dial.direct_path_interval_max");
  EXPECT_EQ(refused([](Config& c) { c.path_idle_timeout = -1ms; }), "path_idle_timeout");
  EXPECT_EQ(refused([](Config& c) { c.dial.direct_path_interval = 0ms; }), "accepted");
}

}  // namespace
}  // namespace dep2p::connmgr
