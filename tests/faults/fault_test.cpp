// Fault injection (issue #8): host code and disks that misbehave. Each test injects one
// fault — a Connection::close() that throws, re-enters the manager or never reports the
// closure; a ping that never completes; a subscriber, trimmer, gater or path selector that
// throws; a persistence write that fails midway — and checks that nothing is lost or
// leaked: counts and stats stay exact, reservations are released, every handle the
// manager let go of is released (checked through weak_ptr), and later work still runs.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/gater.hpp"
#include "dep2p/connmgr/path_selector.hpp"
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
using testing::ThrowingTrimmer;
using testing::trim_config;

using Connections = std::vector<std::shared_ptr<FakeConnection>>;
using Weak = std::vector<std::weak_ptr<FakeConnection>>;

// Drops the test's references to the closed connections and returns how many handles
// are still held elsewhere (by the manager, if it leaked them).
std::size_t leaked_after_dropping_closed(Connections& connections) {
  Weak closed;
  for (auto& c : connections) {
    if (c->closed()) {
      closed.push_back(c);
      c.reset();
    }
  }
  std::erase(connections, nullptr);
  std::size_t leaked = 0;
  for (const auto& w : closed)
    if (!w.expired()) ++leaked;
  return leaked;
}

// The counts the manager keeps agree with each other and with `open`.
void expect_consistent(const ConnectionManager& manager, std::size_t open) {
  const Stats s = manager.stats();
  EXPECT_EQ(manager.connection_count(), open);
  EXPECT_EQ(s.connections, open);
  EXPECT_EQ(s.inbound + s.outbound, open);
  EXPECT_EQ(s.connections_added - s.connections_removed, open);
  std::uint64_t closes = 0;
  for (std::uint64_t n : s.closes_by_reason) closes += n;
  EXPECT_EQ(closes, s.connections_removed);
  EXPECT_EQ(s.reservations, 0u);
  EXPECT_EQ(s.pending_inbound, 0u);
  EXPECT_EQ(s.pending_outbound, 0u);
}

struct NonStandardFailure {};

// --- Connection::close() ------------------------------------------------------------------

TEST(HostCloseFault, CloseThatThrowsLosesNothingAndTheTrimFinishes) {
  ManagerHarness h(trim_config(4, 100));
  EventRecorder events(h.manager);
  Connections all = h.add_peers(1, 12, Direction::inbound, /*reporting=*/false);
  int calls = 0;
  for (auto& c : all) {
    c->on_close = [&calls](FakeConnection&, CloseReason) {
      // Every other close throws something that is not a std::exception.
      if (++calls % 2 == 0) throw NonStandardFailure{};
      throw std::runtime_error("socket already gone");
    };
  }

  EXPECT_EQ(h.manager.trim(), 8u);  // every victim is still closed
  EXPECT_EQ(calls, 8);
  expect_consistent(h.manager, 4);
  EXPECT_EQ(h.manager.stats().closes(CloseReason::trimmed), 8u);
  EXPECT_EQ(events.of<DisconnectedEvent>().size(), 8u);
  EXPECT_EQ(events.of<TrimmedEvent>().size(), 1u);
  EXPECT_EQ(leaked_after_dropping_closed(all), 0u);

  // The manager still works: force_trim and close_peer with throwing closes too.
  for (std::uint64_t n = 100; n < 104; ++n)
    h.add(n, Direction::outbound, false)->on_close = [](FakeConnection&, CloseReason) {
      throw std::logic_error("again");
    };
  EXPECT_EQ(h.manager.force_trim(), 4u);
  expect_consistent(h.manager, 4);
}

TEST(HostCloseFault, CloseThatThrowsFromKeepaliveDoesNotEscapeTheTimer) {
  Config config = trim_config(0, 0);
  config.keepalive_interval = 1s;
  config.keepalive_timeout = 1s;
  config.keepalive_max_missed = 1;
  ManagerHarness h(config);
  auto c = h.add(1, Direction::inbound, false);
  c->on_ping = [](Connection::PingHandler done) { done(make_error_code(Errc::closed)); };
  c->on_close = [](FakeConnection&, CloseReason) { throw NonStandardFailure{}; };
  std::weak_ptr<FakeConnection> weak = c;

  EXPECT_NO_THROW(h.time->advance(3s));
  EXPECT_TRUE(c->closed());
  EXPECT_EQ(c->last_reason(), CloseReason::keepalive_timeout);
  expect_consistent(h.manager, 0);
  c.reset();
  EXPECT_TRUE(weak.expired());
}

TEST(HostCloseFault, CloseThatReentersTheManagerLosesNothing) {
  ManagerHarness h(trim_config(5, 100));
  EventRecorder events(h.manager);
  Connections all = h.add_peers(1, 15, Direction::inbound, false);
  Connections added_in_close;
  std::uint64_t next = 1000;
  for (auto& c : all) {
    c->on_close = [&](FakeConnection& self, CloseReason reason) {
      // Report the closure (expected: already detached), report it twice (a duplicate),
      // add a new connection, start nested trims and tag peers: all from inside close().
      EXPECT_EQ(h.manager.remove_connection(self, reason), std::error_code{});
      EXPECT_EQ(h.manager.remove_connection(self, reason), Errc::unknown_connection);
      added_in_close.push_back(h.add(next++, Direction::outbound, true));
      (void)h.manager.trim();
      (void)h.manager.trim_connections(1);
      EXPECT_FALSE(h.manager.tag_peer(self.remote_peer(), "after close", 1));
    };
  }

  const std::size_t closed = h.manager.trim();
  EXPECT_GE(closed, 10u);
  const std::size_t open = h.manager.connection_count();
  std::size_t still_open = 0;
  for (const auto& c : all)
    if (!c->closed()) ++still_open;
  for (const auto& c : added_in_close)
    if (!c->closed()) ++still_open;
  EXPECT_EQ(open, still_open);
  for (const auto& c : all) EXPECT_LE(c->close_count(), 1);
  expect_consistent(h.manager, open);
  const Stats s = h.manager.stats();
  const auto closed_count = static_cast<std::size_t>(
      std::count_if(all.begin(), all.end(), [](const auto& c) { return c->closed(); }));
  EXPECT_EQ(s.closure_reports, closed_count);
  EXPECT_EQ(s.duplicate_reports, closed_count);
  EXPECT_EQ(events.of<ConnectedEvent>().size(), s.connections_added);
  EXPECT_EQ(events.of<DisconnectedEvent>().size(), s.connections_removed);
  EXPECT_EQ(leaked_after_dropping_closed(all), 0u);
  EXPECT_EQ(leaked_after_dropping_closed(added_in_close), 0u);
}

// The manager detaches a connection from its pool before it calls close(), so a host that
// never reports the closure leaves nothing behind: the connection is no longer tracked or
// counted and the manager holds no reference to it. (Nothing waits for a report, so no
// drain timeout is needed.)
TEST(HostCloseFault, CloseThatNeverReportsTheClosureLeavesNothingTracked) {
  ManagerHarness h(trim_config(3, 100));
  Connections all = h.add_peers(1, 10, Direction::inbound, /*reporting=*/false);
  Connections of_peer = {h.add(50, Direction::inbound, false),
                         h.add(50, Direction::outbound, false)};

  EXPECT_EQ(h.manager.trim(), 9u);  // 12 candidates - low water 3
  ASSERT_FALSE(h.manager.close_peer(peer_id(50)));
  EXPECT_TRUE(of_peer[0]->closed());
  EXPECT_TRUE(of_peer[1]->closed());
  // Nothing was reported back, yet nothing is tracked any more.
  for (const auto& c : all) {
    if (!c->closed()) continue;
    EXPECT_FALSE(h.manager.state(*c).has_value());
    EXPECT_FALSE(h.manager.connection_id(*c).has_value());
  }
  EXPECT_TRUE(h.manager.connections(peer_id(50)).empty());
  EXPECT_FALSE(h.manager.tag_info(peer_id(50)).has_value());
  const std::size_t open = static_cast<std::size_t>(
      std::count_if(all.begin(), all.end(), [](const auto& c) { return !c->closed(); }));
  expect_consistent(h.manager, open);
  const Stats s = h.manager.stats();
  EXPECT_EQ(s.closes(CloseReason::trimmed), 9u);
  EXPECT_EQ(s.closes(CloseReason::host), 2u);
  EXPECT_EQ(s.duplicate_reports, 0u);
  EXPECT_EQ(leaked_after_dropping_closed(all), 0u);
  EXPECT_EQ(leaked_after_dropping_closed(of_peer), 0u);
  // A very late report is answered without harm.
  auto late = std::make_shared<FakeConnection>(peer_id(50), Direction::inbound);
  EXPECT_EQ(h.manager.remove_connection(*late), Errc::unknown_connection);
}

// --- Keepalive: a ping that never completes -----------------------------------------------

Config keepalive_config() {
  Config config = trim_config(0, 0);
  config.keepalive_interval = 5s;
  config.keepalive_timeout = 5s;
  config.keepalive_max_missed = 2;
  config.idle_timeout = 0ms;
  return config;
}

TEST(KeepaliveFault, PingThatNeverCompletesClosesTheConnectionAndReleasesIt) {
  ManagerHarness h(keepalive_config());
  auto healthy = h.add(1);
  auto silent = h.add(2, Direction::inbound, /*reporting=*/true);
  std::vector<Connection::PingHandler> never_called;
  silent->on_ping = [&](Connection::PingHandler done) { never_called.push_back(std::move(done)); };
  std::weak_ptr<FakeConnection> weak = silent;

  h.time->advance(14s);
  EXPECT_FALSE(silent->closed());
  h.time->advance(2s);  // two pings unanswered within 5 s each: closed by 15 s (+ grid)
  EXPECT_TRUE(silent->closed());
  EXPECT_EQ(silent->last_reason(), CloseReason::keepalive_timeout);
  EXPECT_FALSE(healthy->closed());
  EXPECT_GE(never_called.size(), 2u);
  expect_consistent(h.manager, 1);
  EXPECT_EQ(h.manager.stats().keepalive_misses, 2u);

  // The manager kept no reference; the pending ping callbacks hold none either.
  silent.reset();
  EXPECT_TRUE(weak.expired());
  // Answers that come after all (late, after the close) change nothing.
  for (auto& done : never_called) done({});
  for (auto& done : never_called) done(make_error_code(Errc::closed));
  expect_consistent(h.manager, 1);
  EXPECT_EQ(h.manager.stats().keepalive_misses, 2u);
  h.time->advance(60s);
  EXPECT_FALSE(healthy->closed());
}

TEST(KeepaliveFault, PingCallbackOutlivingTheManagerIsHarmless) {
  std::vector<Connection::PingHandler> never_called;
  {
    ManagerHarness h(keepalive_config());
    auto c = h.add(1);
    c->on_ping = [&](Connection::PingHandler done) { never_called.push_back(std::move(done)); };
    h.time->advance(6s);
    ASSERT_EQ(never_called.size(), 1u);
  }
  // The manager is gone: the callback holds only a weak reference.
  EXPECT_NO_THROW(never_called.front()({}));
}

TEST(KeepaliveFault, PingThatThrowsCountsAsAMiss) {
  ManagerHarness h(keepalive_config());
  auto c = h.add(1);
  c->on_ping = [](Connection::PingHandler) { throw std::runtime_error("no route"); };
  EXPECT_NO_THROW(h.time->advance(11s));
  EXPECT_TRUE(c->closed());
  EXPECT_EQ(c->last_reason(), CloseReason::keepalive_timeout);
  expect_consistent(h.manager, 0);
}

// A ping() that throws something that is not a std::exception stays inside the timer
// handler (CONVENTIONS: nothing throws out of a timer handler) and counts as a miss.
TEST(KeepaliveFault, PingThatThrowsANonStandardExceptionStaysInTheManager) {
  ManagerHarness h(keepalive_config());
  auto c = h.add(1);
  c->on_ping = [](Connection::PingHandler) { throw NonStandardFailure{}; };
  EXPECT_NO_THROW(h.time->advance(11s));
  EXPECT_TRUE(c->closed());
  expect_consistent(h.manager, 0);
}

// --- Policies that throw ------------------------------------------------------------------

TEST(PolicyFault, ThrowingSubscriberDoesNotStopOtherSubscribersOrTheManager) {
  ManagerHarness h(trim_config(2, 100));
  int thrown = 0;
  Subscription bad = h.manager.subscribe([&](const Event& e) {
    ++thrown;
    if (std::holds_alternative<ConnectedEvent>(e)) throw std::runtime_error("subscriber bug");
    throw NonStandardFailure{};
  });
  EventRecorder good(h.manager);
  Connections all = h.add_peers(1, 6);
  EXPECT_EQ(h.manager.trim(), 4u);
  ASSERT_FALSE(h.manager.remove_connection(*all[5]));
  EXPECT_EQ(good.of<ConnectedEvent>().size(), 6u);
  EXPECT_EQ(good.of<DisconnectedEvent>().size(), 5u);
  EXPECT_EQ(good.of<TrimmedEvent>().size(), 1u);
  EXPECT_EQ(static_cast<std::size_t>(thrown), good.size());
  expect_consistent(h.manager, 1);
  EXPECT_EQ(leaked_after_dropping_closed(all), 0u);
}

TEST(PolicyFault, ThrowingTrimmerAbortsTheTrimAndClosesNothing) {
  auto trimmer = std::make_shared<ThrowingTrimmer>();
  ManagerHarness h(trim_config(2, 5, 0ms, 10s), trimmer);
  Connections all = h.add_peers(1, 8);
  EXPECT_EQ(h.manager.trim(), 0u);
  EXPECT_EQ(h.manager.force_trim(), 0u);
  EXPECT_EQ(h.manager.trim_connections(3), 0u);
  EXPECT_NO_THROW(h.time->advance(30s));  // background checks: the trimmer throws there too
  EXPECT_GE(trimmer->calls.load(), 6);
  EXPECT_EQ(testing::count_closed(all), 0u);
  expect_consistent(h.manager, 8);
  // A trim that aborted released its hold: the next one is not stuck behind it.
  EXPECT_EQ(h.manager.trim(), 0u);
  EXPECT_EQ(h.manager.stats().trims_joined, 0u);
}

// Throws at the stage it is told to, with a std::exception or something else.
class ThrowingGater final : public Gater {
 public:
  Decision intercept_peer_dial(const NodeId&) override { return fail(Stage::dial); }
  Decision intercept_addr_dial(const NodeId&, const Endpoint&) override {
    return fail(Stage::dial_addr);
  }
  Decision intercept_accept(const Endpoint&) override { return fail(Stage::accept); }
  Decision intercept_secured(Direction, const NodeId&, const Endpoint&) override {
    return fail(Stage::secured);
  }
  Decision intercept_upgraded(const Connection&) override { return fail(Stage::add); }
  Subscription on_tightened(std::function<void()> handler) override {
    tightened = std::move(handler);
    return Subscription([this] { tightened = nullptr; });
  }
  bool bypasses_caps(const boost::asio::ip::address&) override {
    if (throw_in_bypass) throw NonStandardFailure{};
    return false;
  }

  std::optional<Stage> throw_at;
  bool non_standard = false;
  bool throw_in_bypass = false;
  std::function<void()> tightened;

 private:
  Decision fail(Stage stage) {
    if (throw_at != stage) return Decision::allow();
    if (non_standard) throw NonStandardFailure{};
    throw std::runtime_error("gater bug");
  }
};

TEST(PolicyFault, ThrowingGaterDeniesAtEachStageAndLeaksNoReservation) {
  auto gater = std::make_shared<ThrowingGater>();
  Dependencies deps;
  deps.gater = gater;
  ManagerHarness h(trim_config(0, 0), deps);
  const Endpoint remote = endpoint("10.0.0.1");
  for (bool non_standard : {false, true}) {
    gater->non_standard = non_standard;

    gater->throw_at = Stage::dial;
    EXPECT_EQ(h.manager.check_dial(peer_id(1)).error, Errc::peer_blocked);
    gater->throw_at = Stage::dial_addr;
    EXPECT_EQ(h.manager.check_dial_addr(peer_id(1), remote).error, Errc::connection_denied);
    gater->throw_at = Stage::accept;
    EXPECT_EQ(h.manager.admit_inbound(remote).error, Errc::connection_denied);
    expect_consistent(h.manager, 0);

    gater->throw_at = Stage::secured;
    {
      Admission a = h.manager.admit_inbound(remote);
      ASSERT_TRUE(a);
      EXPECT_EQ(h.manager.on_secured(a.reservation, peer_id(1)).error, Errc::peer_blocked);
      EXPECT_EQ(h.manager.stats().reservations, 1u);  // the host still holds it
    }
    expect_consistent(h.manager, 0);  // dropped: released

    gater->throw_at = Stage::add;
    {
      Admission a = h.manager.check_dial_addr(peer_id(2), remote);
      ASSERT_TRUE(a);
      ASSERT_TRUE(h.manager.on_secured(a.reservation, peer_id(2)));
      auto c = std::make_shared<FakeConnection>(peer_id(2), Direction::outbound, remote);
      std::weak_ptr<FakeConnection> weak = c;
      EXPECT_EQ(h.manager.add_admitted(c, std::move(a.reservation)).error, Errc::connection_denied);
      c.reset();
      EXPECT_TRUE(weak.expired());
    }
    expect_consistent(h.manager, 0);
  }
  gater->throw_at.reset();
  gater->throw_in_bypass = true;  // the allow-list question throws: no bypass, no leak
  Admission a = h.manager.admit_inbound(remote);
  EXPECT_TRUE(a);
  a.reservation.release();
  expect_consistent(h.manager, 0);
  EXPECT_EQ(h.manager.stats().capped_addresses, 0u);
  EXPECT_EQ(h.manager.stats().refusals(RefusalReason::gater), 10u);
}

// A gater that throws while the manager re-checks its open connections denies them (the
// manager fails closed): they are closed with CloseReason::gated, counted and released.
TEST(PolicyFault, ThrowingGaterDuringARecheckClosesCleanly) {
  auto gater = std::make_shared<ThrowingGater>();
  Dependencies deps;
  deps.gater = gater;
  ManagerHarness h(trim_config(0, 0), deps);
  Connections all = h.add_peers(1, 4);
  ASSERT_TRUE(gater->tightened);
  gater->throw_at = Stage::secured;
  gater->non_standard = true;
  gater->tightened();
  EXPECT_NO_THROW(h.time->run_ready());
  EXPECT_EQ(testing::count_closed(all), 4u);
  testing::expect_closes_carry(all, CloseReason::gated);
  expect_consistent(h.manager, 0);
  EXPECT_EQ(leaked_after_dropping_closed(all), 0u);
}

class ThrowingSelector final : public PathSelector {
 public:
  explicit ThrowingSelector(bool non_standard) : non_standard_(non_standard) {}
  std::size_t select(std::span<const PathCandidate>, std::optional<std::size_t>) override {
    ++calls;
    if (non_standard_) throw NonStandardFailure{};
    throw std::runtime_error("selector bug");
  }
  int calls = 0;

 private:
  bool non_standard_;
};

void expect_selector_fault_contained(bool non_standard) {
  auto selector = std::make_shared<ThrowingSelector>(non_standard);
  Dependencies deps;
  deps.path_selector = selector;
  Config config = trim_config(0, 0);
  config.max_connections_per_peer = 3;
  ManagerHarness h(config, deps);
  auto first = h.add(1);
  Connections more;
  EXPECT_NO_THROW(more.push_back(h.add(1, Direction::outbound)));
  EXPECT_NO_THROW(more.push_back(h.add(1, Direction::outbound)));
  EXPECT_GE(selector->calls, 1);
  EXPECT_EQ(h.manager.best_connection(peer_id(1)), first);  // the current path is kept
  EXPECT_NO_THROW((void)h.manager.remove_connection(*first));
  EXPECT_NE(h.manager.best_connection(peer_id(1)), nullptr);
  expect_consistent(h.manager, 2);
}

TEST(PolicyFault, ThrowingPathSelectorKeepsTheCurrentPath) {
  expect_selector_fault_contained(false);
}

// Likewise a selector throwing something that is not a std::exception: it escapes neither
// add_connection / remove_connection nor on_pong (a timer handler).
TEST(PolicyFault, PathSelectorThrowingANonStandardExceptionIsContained) {
  expect_selector_fault_contained(true);
}

// --- Persistence: a write that fails midway ----------------------------------------------

// Limits the size of files this process may write, as a full disk would, with SIGXFSZ
// ignored so that write() fails with EFBIG instead of killing the process. Restores both.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    previous_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limited = saved_;
    limited.rlim_cur = bytes;
    ok_ = setrlimit(RLIMIT_FSIZE, &limited) == 0;
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, previous_handler_);
  }
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  void (*previous_handler_)(int) = nullptr;
  bool ok_ = false;
};

std::string read_whole(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(PersistenceFault, WriteFailingMidwayKeepsTheOldFileAndEveryAcknowledgedBan) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / ("dep2p_fault_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "gater.rules").string();

  boost::asio::io_context io;
  auto time = std::make_shared<ManualTimeSource>(io);
  BasicGaterOptions options;
  options.time_source = time;
  options.wall_clock = [] { return std::chrono::system_clock::time_point(1'700'000'000s); };
  auto gater = std::make_shared<BasicGater>(io.get_executor(), options);
  ASSERT_FALSE(gater->attach_file(path));
  gater->ban_peer(peer_id(1), 1h);
  ASSERT_FALSE(gater->block("10.1.0.0/16"));
  ASSERT_FALSE(gater->save());
  const std::string before = read_whole(path);
  ASSERT_FALSE(before.empty());

  {
    // The disk "fills" just past the old file's size: the next write stops midway.
    FileSizeLimit full(static_cast<rlim_t>(before.size() + 40));
    ASSERT_TRUE(full.ok());
    for (std::uint64_t n = 2; n <= 30; ++n) gater->ban_peer(peer_id(n), 1h);  // each rewrites
    EXPECT_TRUE(gater->save()) << "the write must fail under the limit";
    // The old file is intact and no partial temporary file is left behind.
    EXPECT_EQ(read_whole(path), before);
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  }
  // In memory nothing is lost: every acknowledged ban still denies.
  for (std::uint64_t n = 1; n <= 30; ++n) EXPECT_TRUE(gater->is_peer_blocked(peer_id(n))) << n;

  // The old file is still a valid file: a fresh gater loads it.
  {
    auto reloaded = std::make_shared<BasicGater>(io.get_executor(), options);
    std::string message;
    ASSERT_FALSE(reloaded->attach_file(path, &message)) << message;
    EXPECT_EQ(reloaded->rule_count(), 2u);
    EXPECT_TRUE(reloaded->is_peer_blocked(peer_id(1)));
  }
  // Once space is back, the next save writes every ban acknowledged meanwhile.
  ASSERT_FALSE(gater->save());
  auto restored = std::make_shared<BasicGater>(io.get_executor(), options);
  std::string message;
  ASSERT_FALSE(restored->attach_file(path, &message)) << message;
  EXPECT_EQ(restored->rule_count(), 31u);
  for (std::uint64_t n = 1; n <= 30; ++n) EXPECT_TRUE(restored->is_peer_blocked(peer_id(n))) << n;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dep2p::connmgr
