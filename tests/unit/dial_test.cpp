// Dialing (docs/design.md, "Dialing"), in virtual time: the backoff table on its own
// (DialBackoff), and the manager's dial advice and outcomes (Dialing).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/gater.hpp"
#include "dial/backoff_table.hpp"
#include "dial/key_slots.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using detail::BackoffTable;
using testing::endpoint;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

DialConfig exact() {
  DialConfig d;
  d.backoff_jitter = 0;
  return d;
}

BackoffTable::Rules rules(DialConfig d = exact()) { return BackoffTable::rules_of(d); }

// --- The table's slots --------------------------------------------------------------

// Random inserts, updates and erases against std::map: every key is found with its value,
// no erased key is, and the size agrees. Keys are drawn from a small range with their low
// bits crowded, so that probe runs are long, wrap around the end, and erasing from their
// middle must shift the rest back.
TEST(KeySlots, AgreesWithAMapUnderRandomChurnWithLongProbeRuns) {
  struct Cold {
    std::uint64_t copy = 0;  // the value again, to show the cold part moves with its slot
  };
  detail::KeySlots<std::uint64_t, Cold> slots;
  std::map<std::uint64_t, std::uint64_t> reference;
  std::mt19937_64 rng(11);
  for (int step = 0; step < 200'000; ++step) {
    // Keys 1..600, most of them multiples of 64 (same home slot while the table is small).
    const std::uint64_t key = rng() % 4 == 0 ? 1 + rng() % 600 : 64 * (1 + rng() % 9) + 1;
    switch (rng() % 3) {
      case 0:
      case 1: {
        const std::uint64_t value = rng();
        const std::size_t at = slots.emplace(key);
        slots.hot(at) = value;
        slots.cold(at).copy = value;
        reference[key] = value;
        break;
      }
      default: EXPECT_EQ(slots.erase(key), reference.erase(key) == 1) << "step " << step;
    }
    if (step % 997 == 0) {
      ASSERT_EQ(slots.size(), reference.size()) << "step " << step;
      for (std::uint64_t k = 1; k <= 600; ++k) {
        const std::size_t at = slots.find(k);
        const auto it = reference.find(k);
        ASSERT_EQ(at != slots.npos, it != reference.end()) << "key " << k << ", step " << step;
        if (at != slots.npos) {
          ASSERT_EQ(slots.hot(at), it->second) << "key " << k;
          ASSERT_EQ(slots.cold(at).copy, it->second) << "key " << k;
        }
      }
      std::size_t walked = 0;
      slots.for_each([&](std::uint64_t, std::uint64_t, const Cold&) { ++walked; });
      ASSERT_EQ(walked, reference.size());
    }
  }
  EXPECT_LE(5 * slots.size(), 4 * slots.capacity()) << "kept at most 80% full";
}

// --- The table ---------------------------------------------------------------------

TEST(DialBackoff, EachKindFollowsItsOwnSequenceUpToItsCap) {
  const TimePoint t0{};
  const struct {
    DialFailure kind;
    std::vector<Duration> waits;
  } cases[] = {
      {DialFailure::error, {5s, 10s, 20s, 40s, 80s, 160s, 300s, 300s}},
      {DialFailure::timeout, {2s, 4s, 8s, 16s, 32s, 60s, 60s}},
      {DialFailure::refused, {1min, 2min, 4min, 8min, 16min, 30min, 30min}},
  };
  for (const auto& c : cases) {
    BackoffTable table(rules(), 1);
    TimePoint now = t0;
    for (std::size_t n = 0; n < c.waits.size(); ++n) {
      const TimePoint until = table.fail(peer_id(1), nullptr, c.kind, now);
      EXPECT_EQ(until - now, c.waits[n]) << to_string(c.kind) << " failure " << n + 1;
      EXPECT_EQ(table.peer_until(peer_id(1), now), until);
      EXPECT_EQ(table.peer_until(peer_id(1), until), std::nullopt) << "a wait ends at its end";
      EXPECT_EQ(table.failures(peer_id(1), until), n + 1);
      now = until;  // the next dial fails as soon as it is allowed
    }
  }
}

TEST(DialBackoff, JitterStaysWithinItsBoundAndSpreadsPeersThatFailedTogether) {
  DialConfig d;
  d.backoff_jitter = 0.1;
  BackoffTable table(rules(d), 42);
  const TimePoint now{};
  Duration low = Duration::max();
  Duration high = Duration::min();
  for (std::uint64_t p = 0; p < 1000; ++p) {
    const Duration wait = table.fail(peer_id(p), nullptr, DialFailure::error, now) - now;
    EXPECT_GE(wait, 4500ms);
    EXPECT_LE(wait, 5500ms);
    low = std::min(low, wait);
    high = std::max(high, wait);
  }
  // A thousand uniform draws over ±10% reach past ±8% on both sides.
  EXPECT_LT(low, 4600ms);
  EXPECT_GT(high, 5400ms);
}

TEST(DialBackoff, TheSameSeedJittersAlikeAndAnotherDoesNot) {
  DialConfig d;
  d.backoff_jitter = 0.1;
  auto waits = [&](std::uint64_t seed) {
    BackoffTable table(rules(d), seed);
    std::vector<Duration> out;
    for (std::uint64_t p = 0; p < 16; ++p) {
      out.push_back(table.fail(peer_id(p), nullptr, DialFailure::timeout, TimePoint{}) -
                    TimePoint{});
    }
    return out;
  };
  EXPECT_EQ(waits(7), waits(7));
  EXPECT_NE(waits(7), waits(8));
}

TEST(DialBackoff, AnAddressBacksOffAloneAndThePeerAlone) {
  BackoffTable table(rules(), 1);
  const TimePoint now{};
  const Endpoint a = endpoint("10.0.0.1");
  const Endpoint b = endpoint("10.0.0.2");
  EXPECT_EQ(table.fail(peer_id(1), &a, DialFailure::timeout, now), now + 2s);
  EXPECT_EQ(table.address_until(peer_id(1), a, now), now + 2s);
  EXPECT_EQ(table.address_until(peer_id(1), b, now), std::nullopt);
  EXPECT_EQ(table.peer_until(peer_id(1), now), std::nullopt) << "one address is not the peer";
  EXPECT_EQ(table.fail(peer_id(1), nullptr, DialFailure::error, now), now + 5s);
  EXPECT_EQ(table.fail(peer_id(1), &a, DialFailure::timeout, now), now + 4s)
      << "the address counts its own failures";
  EXPECT_EQ(table.failures(peer_id(1), now), 1u);
  EXPECT_EQ(table.failures(peer_id(1), a, now), 2u);
  table.clear(peer_id(1), a);
  EXPECT_EQ(table.address_until(peer_id(1), a, now), std::nullopt);
  EXPECT_EQ(table.peer_until(peer_id(1), now), now + 5s);
  table.clear(peer_id(1));
  EXPECT_EQ(table.peer_until(peer_id(1), now), std::nullopt);
  EXPECT_TRUE(table.empty());
}

TEST(DialBackoff, AnEntryIsForgottenItsMemoryAfterItsLastWaitEnded) {
  BackoffTable table(rules(), 1);  // memory 10 min
  TimePoint now{};
  TimePoint until = table.fail(peer_id(1), nullptr, DialFailure::error, now);  // 5 s
  until = table.fail(peer_id(1), nullptr, DialFailure::error, until);          // 10 s
  EXPECT_EQ(table.failures(peer_id(1), until + 10min - 1ms), 2u);
  EXPECT_EQ(table.fail(peer_id(1), nullptr, DialFailure::error, until + 10min - 1ms) -
                (until + 10min - 1ms),
            20s)
      << "still remembered: the sequence goes on";
  now = table.peer_until(peer_id(1), until + 10min).value() + 10min;
  EXPECT_EQ(table.failures(peer_id(1), now), 0u);
  EXPECT_EQ(table.fail(peer_id(1), nullptr, DialFailure::error, now) - now, 5s)
      << "forgotten: the sequence starts again";
}

TEST(DialBackoff, AFullTableLetsThePeerWhoseLastFailureIsOldestGo) {
  DialConfig d = exact();
  d.max_backoff_peers = 3;
  BackoffTable table(rules(d), 1);
  TimePoint now{};
  for (std::uint64_t p : {1u, 2u, 3u})
    table.fail(peer_id(p), nullptr, DialFailure::error, now += 1s);
  table.fail(peer_id(1), nullptr, DialFailure::error, now += 1s);  // 1 failed last now
  table.fail(peer_id(4), nullptr, DialFailure::error, now += 1s);
  EXPECT_EQ(table.size(), 3u);
  EXPECT_EQ(table.peer_until(peer_id(2), now), std::nullopt) << "2's failure was the oldest";
  for (std::uint64_t p : {1u, 3u, 4u}) EXPECT_TRUE(table.peer_until(peer_id(p), now)) << p;
}

TEST(DialBackoff, APeerKeepsAtMostItsBoundOfAddressesTheFirstToEndGoes) {
  DialConfig d = exact();
  d.max_backoff_addresses = 2;
  BackoffTable table(rules(d), 1);
  const TimePoint now{};
  const Endpoint a = endpoint("10.0.0.1"), b = endpoint("10.0.0.2"), c = endpoint("10.0.0.3");
  table.fail(peer_id(1), &a, DialFailure::refused, now);  // 1 min
  table.fail(peer_id(1), &b, DialFailure::timeout, now);  // 2 s: ends first
  table.fail(peer_id(1), &c, DialFailure::error, now);
  EXPECT_TRUE(table.address_until(peer_id(1), a, now));
  EXPECT_FALSE(table.address_until(peer_id(1), b, now));
  EXPECT_TRUE(table.address_until(peer_id(1), c, now));
}

TEST(DialBackoff, LiftingEndsEveryWaitAndKeepsTheCounts) {
  BackoffTable table(rules(), 1);
  const TimePoint now{};
  const Endpoint a = endpoint("10.0.0.1");
  table.fail(peer_id(1), nullptr, DialFailure::error, now);
  table.fail(peer_id(2), &a, DialFailure::error, now);
  EXPECT_EQ(table.in_backoff(now), 2u);
  table.lift_all(now + 1s);
  EXPECT_EQ(table.in_backoff(now + 1s), 0u);
  EXPECT_EQ(table.fail(peer_id(1), nullptr, DialFailure::error, now + 1s) - (now + 1s), 10s);
}

TEST(DialBackoff, ChurnOfDistinctPeersKeepsTheTableAtItsBound) {
  DialConfig d = exact();
  d.max_backoff_peers = 100;
  BackoffTable table(rules(d), 1);
  TimePoint now{};
  for (std::uint64_t p = 0; p < 20'000; ++p) {
    table.fail(peer_id(p), nullptr, DialFailure::error, now += 1ms);
    ASSERT_LE(table.size(), 100u);
  }
  EXPECT_EQ(table.size(), 100u);
  EXPECT_TRUE(table.peer_until(peer_id(19'999), now));
  EXPECT_FALSE(table.peer_until(peer_id(19'899), now)) << "the 101st newest made way";
}

// --- The manager -------------------------------------------------------------------

Config dial_config(DialConfig dial = exact()) {
  Config config = trim_config(0, 0);
  config.dial = dial;
  return config;
}

TEST(Dialing, APeerInBackoffIsRefusedWithTheTimeItEndsAndAllowedThen) {
  ManagerHarness h(dial_config());
  const TimePoint t0 = h.time->now();
  ASSERT_FALSE(h.manager.check_dial(peer_id(1)).error);
  h.manager.dial_failed(peer_id(1), DialFailure::timeout);
  Admission check = h.manager.check_dial(peer_id(1));
  EXPECT_EQ(check.error, Errc::dial_backoff);
  EXPECT_EQ(check.retry_at, t0 + 2s);
  EXPECT_EQ(check.refusal.stage, Stage::dial);
  EXPECT_EQ(check.refusal.reason, RefusalReason::backoff);
  // check_dial's own bookkeeping answers in short texts (no allocation: see
  // MemoryChurn.ACheckDialRefusedForBackoffHoldsNoHeapMemory).
  EXPECT_EQ(check.refusal.scope, "peer");
  EXPECT_EQ(check.refusal.limit, "backoff");
  EXPECT_EQ(check.refusal.message, "in dial backoff");
  EXPECT_EQ(h.manager.backoff_until(peer_id(1)), t0 + 2s);
  EXPECT_EQ(h.manager.stats().refusals(RefusalReason::backoff), 1u);
  h.time->advance(2s - 1ms);
  EXPECT_EQ(h.manager.check_dial(peer_id(1)).error, Errc::dial_backoff);
  h.time->advance(1ms);
  EXPECT_FALSE(h.manager.check_dial(peer_id(1)).error);
  h.manager.dial_failed(peer_id(1), DialFailure::timeout);
  EXPECT_EQ(h.manager.check_dial(peer_id(1)).retry_at, h.time->now() + 4s) << "the second: 4 s";
}

TEST(Dialing, ASecondCheckIsToldADialIsInFlightUntilItsOutcome) {
  ManagerHarness h(dial_config());
  ASSERT_FALSE(h.manager.check_dial(peer_id(1)).error);
  Admission second = h.manager.check_dial(peer_id(1));
  EXPECT_EQ(second.error, Errc::dial_pending);
  EXPECT_EQ(second.refusal.reason, RefusalReason::dial_pending);
  EXPECT_EQ(second.retry_at, h.time->now() + 30s) << "the mark lapses after dial_timeout";
  EXPECT_FALSE(h.manager.check_dial(peer_id(2)).error) << "another peer is not held up";
  EXPECT_EQ(h.manager.stats().dials_in_flight, 2u);
  h.manager.dial_succeeded(peer_id(1));
  EXPECT_FALSE(h.manager.check_dial(peer_id(1)).error) << "the outcome ends the dial";
  // Unreported, the mark lapses.
  h.time->advance(30s - 1ms);
  EXPECT_EQ(h.manager.check_dial(peer_id(1)).error, Errc::dial_pending);
  h.time->advance(1ms);
  EXPECT_FALSE(h.manager.check_dial(peer_id(1)).error);
}

TEST(Dialing, AnAddressFailureLeavesThePeersDialInFlight) {
  ManagerHarness h(dial_config());
  const Endpoint a = endpoint("10.0.0.1");
  ASSERT_FALSE(h.manager.check_dial(peer_id(1)).error);
  h.manager.dial_failed(peer_id(1), a, DialFailure::error);
  EXPECT_EQ(h.manager.check_dial(peer_id(1)).error, Errc::dial_pending);
  Admission refused = h.manager.check_dial_addr(peer_id(1), a);
  EXPECT_EQ(refused.error, Errc::dial_backoff);
  EXPECT_EQ(refused.retry_at, h.time->now() + 5s);
  EXPECT_EQ(refused.refusal.stage, Stage::dial_addr);
  EXPECT_NE(
      refused.refusal.message.find("address 10.0.0.1:4001 of peer " + peer_id(1).short_string() +
                                   " is in backoff for 5.0 s more, after 1 failure in a row"),
      std::string::npos)
      << refused.refusal.message;
  EXPECT_FALSE(refused.reservation.valid());
  EXPECT_TRUE(h.manager.check_dial_addr(peer_id(1), endpoint("10.0.0.2")).reservation.valid());
}

TEST(Dialing, TwoThreadsCheckingOnePeerGetOneDial) {
  ManagerHarness h(dial_config());
  constexpr std::uint64_t kPeers = 2000;
  std::atomic<std::uint64_t> dials{0};
  std::atomic<std::uint64_t> pending{0};
  auto run = [&] {
    for (std::uint64_t p = 0; p < kPeers; ++p) {
      const Admission check = h.manager.check_dial(peer_id(p));
      if (!check.error) {
        dials.fetch_add(1);
      } else if (check.error == Errc::dial_pending) {
        pending.fetch_add(1);
      }
    }
  };
  std::thread a(run);
  std::thread b(run);
  a.join();
  b.join();
  EXPECT_EQ(dials.load(), kPeers) << "exactly one dial per peer";
  EXPECT_EQ(pending.load(), kPeers);
}

TEST(Dialing, AConnectionToThePeerEndsItsDialAndItsBackoff) {
  ManagerHarness h(dial_config());
  ASSERT_FALSE(h.manager.check_dial(peer_id(1)).error);
  h.manager.dial_failed(peer_id(1), DialFailure::refused);
  ASSERT_EQ(h.manager.check_dial(peer_id(1)).error, Errc::dial_backoff);
  ASSERT_FALSE(h.manager.check_dial(peer_id(2)).error);
  auto one = h.add(1);  // it dialed us
  auto two = h.add(2);
  EXPECT_EQ(h.manager.backoff_until(peer_id(1)), std::nullopt);
  h.manager.remove_connection(*one);
  h.manager.remove_connection(*two);
  EXPECT_FALSE(h.manager.check_dial(peer_id(1)).error);
  EXPECT_FALSE(h.manager.check_dial(peer_id(2)).error) << "its dial ended with the connection";
}

TEST(Dialing, AFailedDialOfAConnectedPeerGrowsNoBackoffAndItsConnectionIsOffered) {
  ManagerHarness h(dial_config());
  auto open = h.add(1);
  ASSERT_FALSE(h.manager.check_dial(peer_id(1), /*force_new=*/true).error);
  h.manager.dial_failed(peer_id(1), DialFailure::error);  // the second path failed
  EXPECT_EQ(h.manager.backoff_until(peer_id(1)), std::nullopt);
  Admission check = h.manager.check_dial(peer_id(1));
  EXPECT_FALSE(check.error);
  EXPECT_EQ(check.existing, open);
  EXPECT_FALSE(h.manager.check_dial(peer_id(1), /*force_new=*/true).error)
      << "the failure ended the dial in flight";
}

TEST(Dialing, ClearingForgetsThePeersBackoff) {
  ManagerHarness h(dial_config());
  h.manager.dial_failed(peer_id(1), DialFailure::refused);
  ASSERT_TRUE(h.manager.backoff_until(peer_id(1)));
  h.manager.clear_backoff(peer_id(1));
  EXPECT_FALSE(h.manager.check_dial(peer_id(1)).error);
}

TEST(Dialing, WhileTheNetworkIsDownFailuresGrowNoBackoffAndItsReturnEndsEveryWait) {
  ManagerHarness h(dial_config());
  h.manager.dial_failed(peer_id(1), DialFailure::error);  // online: 5 s
  h.manager.network_changed(false);
  h.manager.dial_failed(peer_id(2), DialFailure::error);
  h.manager.dial_failed(peer_id(1), DialFailure::error);
  EXPECT_EQ(h.manager.backoff_until(peer_id(2)), std::nullopt);
  EXPECT_EQ(h.manager.backoff_until(peer_id(1)), h.time->now() + 5s) << "not grown to 10 s";
  Stats s = h.manager.stats();
  EXPECT_TRUE(s.offline);
  EXPECT_EQ(s.dial_failures_offline, 2u);
  EXPECT_EQ(s.dial_failures[static_cast<std::size_t>(DialFailure::error)], 3u);
  h.time->advance(1s);
  h.manager.network_changed(true);
  EXPECT_FALSE(h.manager.stats().offline);
  EXPECT_FALSE(h.manager.check_dial(peer_id(1)).error) << "back up: the wait ended";
  h.manager.dial_failed(peer_id(1), DialFailure::error);
  EXPECT_EQ(h.manager.backoff_until(peer_id(1)), h.time->now() + 10s) << "the count was kept";
}

TEST(Dialing, FailuresInARowWithNoConnectionOpenMeanOfflineUntilASuccess) {
  ManagerHarness h(dial_config());  // offline after 3
  for (std::uint64_t p = 1; p <= 3; ++p) h.manager.dial_failed(peer_id(p), DialFailure::timeout);
  EXPECT_TRUE(h.manager.backoff_until(peer_id(1)));
  EXPECT_TRUE(h.manager.backoff_until(peer_id(2)));
  EXPECT_FALSE(h.manager.backoff_until(peer_id(3))) << "the third failure found us offline";
  EXPECT_TRUE(h.manager.stats().offline);
  h.manager.dial_failed(peer_id(4), DialFailure::timeout);
  EXPECT_FALSE(h.manager.backoff_until(peer_id(4)));
  h.manager.dial_succeeded(peer_id(5));
  EXPECT_FALSE(h.manager.stats().offline);
  EXPECT_FALSE(h.manager.backoff_until(peer_id(1))) << "back online: every wait ended";
  h.manager.dial_failed(peer_id(4), DialFailure::timeout);
  EXPECT_TRUE(h.manager.backoff_until(peer_id(4)));
}

TEST(Dialing, WithAConnectionOpenFailuresNeverMeanOffline) {
  ManagerHarness h(dial_config());
  auto open = h.add(100);
  for (std::uint64_t p = 1; p <= 10; ++p) h.manager.dial_failed(peer_id(p), DialFailure::error);
  EXPECT_FALSE(h.manager.stats().offline);
  EXPECT_EQ(h.manager.stats().peers_in_backoff, 10u);
}

TEST(Dialing, AFailureWhileAConnectionIsOpenEndsTheStreakTowardsOffline) {
  ManagerHarness h(dial_config());  // offline after 3
  h.manager.dial_failed(peer_id(1), DialFailure::error);
  h.manager.dial_failed(peer_id(2), DialFailure::error);
  auto open = h.add(100);
  h.manager.dial_failed(peer_id(3), DialFailure::error);  // online, evidently
  h.manager.remove_connection(*open);
  h.manager.dial_failed(peer_id(4), DialFailure::error);
  h.manager.dial_failed(peer_id(5), DialFailure::error);
  EXPECT_FALSE(h.manager.stats().offline) << "two in a row since the last one online";
  EXPECT_TRUE(h.manager.backoff_until(peer_id(5)));
  h.manager.dial_failed(peer_id(6), DialFailure::error);
  EXPECT_TRUE(h.manager.stats().offline);
}

TEST(Dialing, MissedKeepalivesPutThePeerInBackoffAndAnIdleCloseDoesNot) {
  Config config = dial_config();
  config.keepalive_interval = 5s;
  config.keepalive_timeout = 5s;
  config.keepalive_max_missed = 2;
  config.idle_timeout = 0ms;
  ManagerHarness h(config);
  auto keep = h.add(100);  // answers: keeps the node online
  auto silent = std::make_shared<FakeConnection>(peer_id(1), Direction::outbound);
  std::vector<Connection::PingHandler> unanswered;
  silent->on_ping = [&](Connection::PingHandler done) { unanswered.push_back(std::move(done)); };
  ASSERT_FALSE(h.manager.add_connection(silent));
  h.time->advance(15s);
  ASSERT_TRUE(silent->closed());
  EXPECT_EQ(h.manager.check_dial(peer_id(1)).error, Errc::dial_backoff);
  EXPECT_EQ(h.manager.backoff_until(peer_id(1)), h.time->now() + 5s);
  h.manager.remove_connection(*keep);
  EXPECT_FALSE(h.manager.check_dial(peer_id(100)).error) << "a host close leaves no backoff";

  Config idle = dial_config();
  idle.keepalive_interval = 0ms;
  idle.idle_timeout = 60s;
  ManagerHarness i(idle);
  auto quiet = i.add(1);
  i.time->advance(61s);
  ASSERT_TRUE(quiet->closed());
  EXPECT_FALSE(i.manager.check_dial(peer_id(1)).error);
}

TEST(Dialing, AWaiterLearnsHowTheDialInFlightEnded) {
  ManagerHarness h(dial_config());
  std::vector<std::pair<std::uint64_t, DialOutcome>> heard;
  const auto waiter = [&](std::uint64_t p) {
    return [&heard, p](DialOutcome outcome) { heard.emplace_back(p, outcome); };
  };
  EXPECT_FALSE(h.manager.wait_dial(peer_id(1), waiter(1))) << "no dial in flight: kept nothing";
  for (std::uint64_t p = 1; p <= 3; ++p) ASSERT_FALSE(h.manager.check_dial(peer_id(p)).error);
  for (std::uint64_t p = 1; p <= 3; ++p) EXPECT_TRUE(h.manager.wait_dial(peer_id(p), waiter(p)));
  EXPECT_TRUE(h.manager.wait_dial(peer_id(1), waiter(1)));  // two waiters on one dial
  h.manager.dial_failed(peer_id(1), DialFailure::timeout);
  auto two = h.add(2);  // peer 2's dial ended with its connection
  EXPECT_TRUE(heard.empty()) << "handlers run on the executor, never inside the call";
  h.io.poll();
  ASSERT_EQ(heard.size(), 3u);
  EXPECT_EQ(
      std::count(heard.begin(), heard.end(), std::pair{std::uint64_t{1}, DialOutcome::failed}), 2);
  EXPECT_EQ(
      std::count(heard.begin(), heard.end(), std::pair{std::uint64_t{2}, DialOutcome::succeeded}),
      1);
  heard.clear();
  // Peer 3's dial is never reported: it lapses at dial_timeout, and its waiter hears so.
  h.time->advance(30s - 1ms);
  h.io.poll();
  EXPECT_TRUE(heard.empty());
  h.time->advance(1ms);
  h.io.poll();
  ASSERT_EQ(heard.size(), 1u);
  EXPECT_EQ(heard[0], (std::pair{std::uint64_t{3}, DialOutcome::lapsed}));
  EXPECT_FALSE(h.manager.check_dial(peer_id(3)).error) << "the lapsed dial is gone";
}

TEST(Dialing, WaitersAreCanceledWhenTheManagerCloses) {
  ManagerHarness h(dial_config());
  std::vector<DialOutcome> heard;
  ASSERT_FALSE(h.manager.check_dial(peer_id(1)).error);
  ASSERT_TRUE(h.manager.wait_dial(peer_id(1), [&](DialOutcome o) { heard.push_back(o); }));
  h.manager.close();
  h.io.poll();
  EXPECT_EQ(heard, std::vector<DialOutcome>{DialOutcome::canceled});
  EXPECT_FALSE(h.manager.wait_dial(peer_id(1), [&](DialOutcome o) { heard.push_back(o); }));
}

struct DenyPeer final : Gater {
  NodeId denied;
  explicit DenyPeer(NodeId peer) : denied(peer) {}
  Decision intercept_peer_dial(const NodeId& peer) override {
    return peer == denied ? Decision::deny("test") : Decision::allow();
  }
};

TEST(Dialing, AGatedDialLeavesNoDialInFlight) {
  ManagerHarness h(dial_config(), Dependencies{.gater = std::make_shared<DenyPeer>(peer_id(1))});
  EXPECT_EQ(h.manager.check_dial(peer_id(1)).error, Errc::peer_blocked);
  EXPECT_EQ(h.manager.check_dial(peer_id(1)).error, Errc::peer_blocked) << "not dial_pending";
  EXPECT_EQ(h.manager.stats().dials_in_flight, 0u);
  EXPECT_EQ(h.manager.stats().dial_attempts, 0u) << "a gated dial is no attempt";
}

TEST(Dialing, TheDialMetricsAreWritten) {
  ManagerHarness h(dial_config());
  auto open = h.add(100);
  h.manager.dial_failed(peer_id(1), DialFailure::refused);
  h.manager.dial_succeeded(peer_id(2));
  ASSERT_FALSE(h.manager.check_dial(peer_id(3)).error);
  EXPECT_EQ(h.manager.check_dial(peer_id(3)).error, Errc::dial_pending) << "not an attempt";
  EXPECT_EQ(h.manager.check_dial(peer_id(1)).error, Errc::dial_backoff) << "nor this";
  std::ostringstream out;
  h.manager.write_prometheus(out);
  const std::string text = out.str();
  for (const char* line :
       {"dep2p_connmgr_dial_attempts_total 1\n",
        "dep2p_connmgr_dial_failures_total{kind=\"refused\"} 1\n",
        "dep2p_connmgr_dial_successes_total 1\n", "dep2p_connmgr_peers_in_backoff 1\n",
        "dep2p_connmgr_dials_in_flight 1\n", "dep2p_connmgr_offline 0\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
}

TEST(Dialing, ContradictorySettingsAreRefusedByName) {
  const auto error_of = [](auto change) {
    Config config;
    change(config.dial);
    auto error = config.validate();
    return error ? error->field : std::string();
  };
  EXPECT_EQ(error_of([](DialConfig& d) { d.backoff_factor = 0.5; }), "dial.backoff_factor");
  EXPECT_EQ(error_of([](DialConfig& d) { d.backoff_jitter = 1.0; }), "dial.backoff_jitter");
  EXPECT_EQ(error_of([](DialConfig& d) { d.timeout_backoff_max = 1s; }),
            "dial.timeout_backoff_max");
  EXPECT_EQ(error_of([](DialConfig& d) { d.max_backoff_peers = 0; }), "dial.max_backoff_peers");
  EXPECT_EQ(error_of([](DialConfig& d) { d.dial_timeout = 0ms; }), "dial.dial_timeout");
  EXPECT_EQ(error_of([](DialConfig&) {}), "");
}

}  // namespace
}  // namespace dep2p::connmgr
