// Keepalive, RTT and idle timeout (docs/design.md, "Keepalive, idle and paths"), in virtual time.
// The keepalive timer fires on a grid of min(interval, idle timeout) / 50; the deadlines used here
// fall on it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

Config keepalive_config(std::chrono::milliseconds idle = 0ms) {
  Config config = trim_config(0, 0);
  config.keepalive_interval = 5s;
  config.keepalive_timeout = 5s;
  config.keepalive_max_missed = 2;
  config.idle_timeout = idle;
  return config;
}

// A connection whose pings are answered only when the test says so.
struct Silent {
  explicit Silent(ManagerHarness& h, std::uint64_t peer = 1)
      : connection(std::make_shared<FakeConnection>(peer_id(peer), Direction::outbound)) {
    connection->on_ping = [this](Connection::PingHandler done) {
      pending.push_back(std::move(done));
    };
    EXPECT_FALSE(h.manager.add_connection(connection));
  }
  void answer_all(std::error_code ec = {}) {
    auto handlers = std::move(pending);
    pending.clear();
    for (auto& done : handlers) done(ec);
  }
  std::shared_ptr<FakeConnection> connection;
  std::vector<Connection::PingHandler> pending;
};

TEST(Keepalive, APeerThatStopsAnsweringIsClosedAfterMaxMissedIntervalsPlusTheTimeout) {
  ManagerHarness h(keepalive_config());
  Silent silent(h);
  h.time->advance(5s);
  EXPECT_EQ(silent.connection->pings.load(), 1);
  h.time->advance(10s - 1ms);  // 15 s - 1 ms: two pings out, the second not yet late
  EXPECT_FALSE(silent.connection->closed());
  EXPECT_EQ(silent.connection->pings.load(), 2);
  h.time->advance(1ms);  // 2 intervals + the timeout
  ASSERT_TRUE(silent.connection->closed());
  EXPECT_EQ(silent.connection->last_reason(), CloseReason::keepalive_timeout);
  EXPECT_NE(silent.connection->last_detail().find("2 pings in a row"), std::string::npos)
      << silent.connection->last_detail();
  EXPECT_EQ(h.manager.connection_count(), 0u);
  const Stats stats = h.manager.stats();
  EXPECT_EQ(stats.keepalive_misses, 2u);
  EXPECT_EQ(stats.closes(CloseReason::keepalive_timeout), 1u);
}

TEST(Keepalive, ASlowButAnsweringPeerIsKept) {
  ManagerHarness h(keepalive_config());
  Silent slow(h);
  for (int round = 0; round < 20; ++round) {
    h.time->advance(5s - 100ms);  // answered 4.9 s after each ping: inside the timeout
    slow.answer_all();
    h.time->advance(100ms);
  }
  EXPECT_FALSE(slow.connection->closed());
  EXPECT_EQ(h.manager.stats().keepalive_misses, 0u);
  EXPECT_EQ(slow.connection->pings.load(), 20);
}

TEST(Keepalive, OneMissThenAnAnswerStartsTheCountAgain) {
  ManagerHarness h(keepalive_config());
  Silent flaky(h);
  h.time->advance(10s);  // ping 1 (sent at 5 s) is late at 10 s: one miss; ping 2 goes out
  EXPECT_EQ(h.manager.stats().keepalive_misses, 1u);
  flaky.answer_all();   // answers ping 1 (ignored: too late) and ping 2 (in time)
  h.time->advance(5s);  // 15 s: ping 3 goes out
  EXPECT_EQ(h.manager.stats().keepalive_misses, 1u);
  h.time->advance(5s);  // 20 s: ping 3 is late: one miss in a row, not two
  EXPECT_FALSE(flaky.connection->closed());
  EXPECT_EQ(h.manager.stats().keepalive_misses, 2u);
  h.time->advance(5s);  // 25 s: ping 4 late too: two in a row
  EXPECT_TRUE(flaky.connection->closed());
}

TEST(Keepalive, AFailedPingCountsAsAMissAtOnce) {
  ManagerHarness h(keepalive_config());
  Silent failing(h);
  h.time->advance(5s);
  failing.answer_all(make_error_code(Errc::closed));
  EXPECT_EQ(h.manager.stats().keepalive_misses, 1u);
  h.time->advance(5s);
  failing.answer_all(make_error_code(Errc::closed));
  EXPECT_TRUE(failing.connection->closed()) << "two failures in a row, before any timeout";
  EXPECT_EQ(failing.connection->last_reason(), CloseReason::keepalive_timeout);
}

TEST(Keepalive, RttIsSmoothedOverAnsweredPings) {
  ManagerHarness h(keepalive_config());
  Silent peer(h);
  EXPECT_EQ(h.manager.rtt(*peer.connection), std::nullopt);
  h.time->advance(5s);
  h.time->advance(80ms);
  peer.answer_all();
  EXPECT_EQ(h.manager.rtt(*peer.connection), Duration(80ms)) << "the first sample is taken as is";
  h.time->advance(5s - 80ms);
  h.time->advance(160ms);
  peer.answer_all();
  // 7/8 * 80 + 1/8 * 160 = 90 ms
  EXPECT_EQ(h.manager.rtt(*peer.connection), Duration(90ms));
}

TEST(Keepalive, ZeroIntervalDisablesPings) {
  Config config = keepalive_config();
  config.keepalive_interval = 0ms;
  ManagerHarness h(config);
  Silent peer(h);
  h.time->advance(1h);
  EXPECT_EQ(peer.connection->pings.load(), 0);
  EXPECT_FALSE(peer.connection->closed());
}

TEST(Keepalive, AThrowingPingIsAMissAndNotACrash) {
  ManagerHarness h(keepalive_config());
  auto c = std::make_shared<FakeConnection>(peer_id(1), Direction::outbound);
  c->on_ping = [](Connection::PingHandler) { throw std::runtime_error("socket gone"); };
  ASSERT_FALSE(h.manager.add_connection(c));
  h.time->advance(10s);
  EXPECT_TRUE(c->closed());
  EXPECT_EQ(c->last_reason(), CloseReason::keepalive_timeout);
}

TEST(IdleTimeout, AQuietConnectionIsClosedAtTheIdleTimeout) {
  ManagerHarness h(keepalive_config(/*idle=*/60s));
  auto c = h.add(1);
  h.time->advance(60s - 1200ms);  // the last tick before the deadline (1.2 s grid)
  EXPECT_FALSE(c->closed());
  h.time->advance(1200ms);
  ASSERT_TRUE(c->closed());
  EXPECT_EQ(c->last_reason(), CloseReason::idle_timeout);
  EXPECT_EQ(h.manager.stats().closes(CloseReason::idle_timeout), 1u);
}

TEST(IdleTimeout, ActivityPostponesIt) {
  ManagerHarness h(keepalive_config(60s));
  auto c = h.add(1);
  h.time->advance(30s);
  ASSERT_FALSE(h.manager.record_activity(*c, 100, 0));
  h.time->advance(59s);
  EXPECT_FALSE(c->closed()) << "89 s after connecting, 59 s after the activity";
  h.time->advance(2s);
  EXPECT_TRUE(c->closed());
}

TEST(IdleTimeout, AStreamKeepsTheConnection) {
  ManagerHarness h(keepalive_config(60s));
  auto c = h.add(1);
  ASSERT_TRUE(h.manager.stream_opened(*c));
  h.time->advance(10min);
  EXPECT_FALSE(c->closed());
  ASSERT_FALSE(h.manager.stream_closed(*c));
  h.time->advance(61s);
  EXPECT_TRUE(c->closed());
}

TEST(IdleTimeout, ProtectionKeepsTheConnection) {
  ManagerHarness h(keepalive_config(60s));
  auto c = h.add(1);
  ASSERT_FALSE(h.manager.protect(peer_id(1), "relay"));
  h.time->advance(10min);
  EXPECT_FALSE(c->closed());
}

TEST(IdleTimeout, AHoldKeepsTheConnectionUntilReleased) {
  ManagerHarness h(keepalive_config(60s));
  auto c = h.add(1);
  auto other = h.add(2);
  KeepAliveHold hold = h.manager.keep_alive(peer_id(1));
  EXPECT_TRUE(hold.active());
  h.time->advance(10min);
  EXPECT_FALSE(c->closed());
  EXPECT_TRUE(other->closed()) << "holds are per peer";
  hold.release();
  h.time->advance(61s);
  EXPECT_TRUE(c->closed());
}

TEST(IdleTimeout, ZeroDisablesIt) {
  ManagerHarness h(keepalive_config(0ms));
  auto c = h.add(1);
  h.time->advance(1h);
  EXPECT_FALSE(c->closed());
}

// Keeps the connections column of the last snapshot it was asked to rank.
class CapturingTrimmer final : public Trimmer {
 public:
  void rank(const TrimSnapshot& snapshot, std::size_t, std::vector<std::uint32_t>&) override {
    seen = snapshot.connections;
  }
  std::vector<ConnectionSnapshot> seen;
};

// record_activity takes none of the manager's locks (the figures live on each handle):
// two threads recording on their own connections while a third ranks trims (reading every
// connection's figures) end exactly where one thread making the same calls ends. The
// clock stands still, so each rate is the plain sum of its bytes over the time constant.
TEST(Activity, ThreadsRecordingOnTheirOwnConnectionsEndWhereASequentialRunEnds) {
  constexpr std::size_t kPerThread = 100;
  constexpr int kRounds = 300;
  auto record = [](ConnectionManager& manager,
                   const std::vector<std::shared_ptr<FakeConnection>>& connections,
                   std::size_t first, std::size_t count) {
    for (int round = 0; round < kRounds; ++round) {
      for (std::size_t i = first; i < first + count; ++i) {
        const auto bytes =
            static_cast<std::uint64_t>((round * 31 + static_cast<int>(i) * 7) % 1000);
        EXPECT_FALSE(manager.record_activity(*connections[i], bytes, 2 * bytes));
      }
    }
  };
  Config config = keepalive_config();
  config.low_water = 1;
  config.high_water = 10'000;
  auto concurrent_trimmer = std::make_shared<CapturingTrimmer>();
  auto sequential_trimmer = std::make_shared<CapturingTrimmer>();
  ManagerHarness concurrent(config, concurrent_trimmer);
  ManagerHarness sequential(config, sequential_trimmer);
  const auto a = concurrent.add_peers(1, 2 * kPerThread);
  const auto b = sequential.add_peers(1, 2 * kPerThread);

  std::atomic<int> running{2};
  std::thread first([&] {
    record(concurrent.manager, a, 0, kPerThread);
    --running;
  });
  std::thread second([&] {
    record(concurrent.manager, a, kPerThread, kPerThread);
    --running;
  });
  // The trimmer ranks nothing (it leaves the order empty): each trim only reads.
  while (running.load() > 0) EXPECT_EQ(concurrent.manager.trim(), 0u);
  first.join();
  second.join();
  record(sequential.manager, b, 0, 2 * kPerThread);

  concurrent.manager.trim();
  sequential.manager.trim();
  ASSERT_EQ(concurrent_trimmer->seen.size(), 2 * kPerThread);
  ASSERT_EQ(sequential_trimmer->seen.size(), 2 * kPerThread);
  for (std::size_t i = 0; i < 2 * kPerThread; ++i) {
    const ConnectionSnapshot& x = concurrent_trimmer->seen[i];
    const ConnectionSnapshot& y = sequential_trimmer->seen[i];
    EXPECT_GT(x.download_rate, 0.0) << i;
    EXPECT_EQ(x.download_rate, y.download_rate) << i;
    EXPECT_EQ(x.upload_rate, y.upload_rate) << i;
    EXPECT_EQ(x.last_activity, y.last_activity) << i;
  }
}

TEST(Activity, RatesAreSmoothedAndShowInTheTrimSnapshot) {
  auto trimmer = std::make_shared<CapturingTrimmer>();
  Config config = keepalive_config();
  config.low_water = 1;
  config.high_water = 10;
  ManagerHarness h(config, trimmer);
  auto c = h.add(1);
  h.add(2);
  const TimePoint start = h.time->now();
  ASSERT_FALSE(h.manager.record_activity(*c, 10'000, 1'000));  // 1000 B/s and 100 B/s
  h.time->advance(10s);
  ASSERT_FALSE(h.manager.record_activity(*c, 0, 0));  // one time constant later: * 1/e
  h.manager.trim();
  ASSERT_EQ(trimmer->seen.size(), 2u);
  const auto& snapshot = trimmer->seen[0].download_rate > 0 ? trimmer->seen[0] : trimmer->seen[1];
  // Rates are kept as floats (estimates; docs/performance.md, memory per connection):
  // exact to a relative 1e-7, so the bound is relative.
  EXPECT_NEAR(snapshot.download_rate, 1000.0 / std::exp(1.0), 1000.0 * 1e-6);
  EXPECT_NEAR(snapshot.upload_rate, 100.0 / std::exp(1.0), 100.0 * 1e-6);
  EXPECT_EQ(snapshot.last_activity, start + 10s);
  EXPECT_EQ(h.manager.record_activity(FakeConnection(peer_id(9), Direction::inbound), 1, 1),
            Errc::unknown_connection);
}

TEST(Config, KeepaliveAndIdleSettingsAreValidated) {
  Config config;
  config.keepalive_timeout = 0ms;
  ASSERT_TRUE(config.validate().has_value());
  EXPECT_EQ(config.validate()->field, "keepalive_timeout");
  config = Config{};
  config.keepalive_max_missed = 0;
  EXPECT_EQ(config.validate()->field, "keepalive_max_missed");
  config = Config{};
  config.idle_timeout = -1ms;
  EXPECT_EQ(config.validate()->field, "idle_timeout");
  config = Config{};
  config.keepalive_interval = 0ms;
  config.keepalive_max_missed = 0;
  EXPECT_FALSE(config.validate().has_value()) << "keepalive off: its other settings do not matter";
  EXPECT_EQ(Config::preset(Preset::mobile).keepalive_interval, std::chrono::milliseconds(30s));
}

}  // namespace
}  // namespace dep2p::connmgr
