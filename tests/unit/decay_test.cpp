// Decaying tags (docs/design.md, "Pool and tags", issue 3 acceptance 1 and 2), in virtual time:
// every decay and bump preset with exact values, late ticks, values below zero, custom functions
// run outside the manager's lock, the interval raised to the decay resolution, tag_info and the
// trim seeing decaying values, and the lifecycle of a registration (taken names, close, reuse of a
// name, handles of an old registration).
//
// Timing used throughout: decay_resolution 1 s, so the manager's decay timer fires at
// T0 + 1 s, T0 + 2 s, ... where T0 is the harness's start time; tags are registered at T0
// with an interval of 1 s (unless a test says otherwise), so every tick is exactly one
// interval and advancing by 1 s runs exactly one tick.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/decay.hpp"
#include "dep2p/connmgr/error.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

using Tags = std::vector<std::pair<std::string, int>>;

// Low water 1 (so a trim of two single-connection peers closes exactly one), the given
// grace, and decay ticks every second.
Config decay_config(std::chrono::milliseconds grace = 0ms) {
  Config config = trim_config(1, 100, grace);
  config.decay_resolution = 1s;
  return config;
}

DecayingTag must_register(ConnectionManager& manager, std::string_view name, Duration interval,
                          Decay decay, Bump bump) {
  std::error_code ec;
  DecayingTag tag =
      manager.register_decaying_tag(name, interval, std::move(decay), std::move(bump), ec);
  EXPECT_FALSE(ec) << "register_decaying_tag(" << name << "): " << ec.message();
  EXPECT_TRUE(tag.valid());
  return tag;
}

// The value of decaying tag `name` on peer n, or nothing when the peer or the tag is absent.
std::optional<int> decaying_value(const ConnectionManager& manager, std::uint64_t n,
                                  std::string_view name) {
  const auto info = manager.tag_info(peer_id(n));
  if (!info) return std::nullopt;
  for (const auto& [tag_name, tag_value] : info->decaying_tags) {
    if (tag_name == name) return tag_value;
  }
  return std::nullopt;
}

// The peer's total value (plain + decaying), or nothing when it has no entry.
std::optional<std::int64_t> peer_value(const ConnectionManager& manager, std::uint64_t n) {
  const auto info = manager.tag_info(peer_id(n));
  if (!info) return std::nullopt;
  return info->value;
}

// --- Decay presets ------------------------------------------------------------------------

TEST(DecayPreset, FixedSubtractsTheAmountEveryIntervalAndRemovesTheTagOnceAtOrBelowZero) {
  ManagerHarness h(decay_config());
  h.add(1);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "plain", 5));
  auto tag = must_register(h.manager, "score", 1s, Decay::fixed(3), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 10));
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 10);
  EXPECT_EQ(peer_value(h.manager, 1), 15);

  h.time->advance(999ms);  // no tick yet
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 10);

  h.time->advance(1ms);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 7);
  EXPECT_EQ(peer_value(h.manager, 1), 12);
  h.time->advance(1s);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 4);
  EXPECT_EQ(peer_value(h.manager, 1), 9);
  h.time->advance(1s);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 1);
  EXPECT_EQ(peer_value(h.manager, 1), 6);

  h.time->advance(1s);  // 1 - 3 = -2 <= 0: removed, and the value goes with it
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), std::nullopt);
  const auto info = h.manager.tag_info(peer_id(1));
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->decaying_tags.empty());
  EXPECT_EQ(info->value, 5);
  EXPECT_EQ(info->tags, (Tags{{"plain", 5}}));
}

TEST(DecayPreset, FixedRemovesTheTagWhenTheValueReachesExactlyZero) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 1s, Decay::fixed(3), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 6));

  h.time->advance(1s);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 3);
  h.time->advance(1s);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), std::nullopt);
  EXPECT_EQ(peer_value(h.manager, 1), 0);
}

TEST(DecayPreset, LinearMultipliesByTheCoefficientAndRoundsDown) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 1s, Decay::linear(0.75), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 100));

  // 100 * 0.75 = 75; 56.25 -> 56; 42; 31.5 -> 31; 23.25 -> 23; 17.25 -> 17
  for (int expected : {75, 56, 42, 31, 23, 17}) {
    h.time->advance(1s);
    EXPECT_EQ(decaying_value(h.manager, 1, "score"), expected);
    EXPECT_EQ(peer_value(h.manager, 1), expected);
  }
}

TEST(DecayPreset, LinearRemovesTheTagOnceTheFloorReachesZero) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 1s, Decay::linear(0.5), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 5));

  h.time->advance(1s);  // 2.5 -> 2
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 2);
  h.time->advance(1s);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 1);
  h.time->advance(1s);  // 0.5 -> 0: removed
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), std::nullopt);
  EXPECT_EQ(peer_value(h.manager, 1), 0);
}

TEST(DecayPreset, LinearCoefficientOutsideZeroToOneIsRejected) {
  EXPECT_THROW(Decay::linear(0.0), std::invalid_argument);
  EXPECT_THROW(Decay::linear(1.0), std::invalid_argument);
  EXPECT_THROW(Decay::linear(-0.5), std::invalid_argument);
  EXPECT_NO_THROW(Decay::linear(0.5));
}

TEST(DecayPreset, NoneKeepsTheValueOverManyTicks) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 1s, Decay::none(), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 42));
  const auto ticks_before = h.manager.stats().decay_ticks;

  h.time->advance(100s);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 42);
  EXPECT_EQ(peer_value(h.manager, 1), 42);
  // The tag was due at every one of those ticks: it was visited, not skipped.
  EXPECT_EQ(h.manager.stats().decay_ticks - ticks_before, 100u);
}

TEST(DecayPreset, ExpireWhenInactiveRemovesExactlyInactivityAfterTheLastBumpAndNotBefore) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "active", 1s, Decay::expire_when_inactive(3s), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 9));  // at T0

  h.time->advance(2s);  // ticks at T0+1s and T0+2s: 1 s and 2 s of inactivity
  EXPECT_EQ(decaying_value(h.manager, 1, "active"), 9) << "the value does not fade meanwhile";
  h.time->advance(999ms);
  EXPECT_EQ(decaying_value(h.manager, 1, "active"), 9);

  h.time->advance(1ms);  // the tick at T0+3s: now - last_bump == 3 s
  EXPECT_EQ(decaying_value(h.manager, 1, "active"), std::nullopt);
  EXPECT_EQ(peer_value(h.manager, 1), 0);
}

TEST(DecayPreset, ExpireWhenInactiveCountsFromTheLatestBump) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "active", 1s, Decay::expire_when_inactive(3s), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 1));  // at T0
  h.time->advance(2s);
  ASSERT_FALSE(tag.bump(peer_id(1), 1));  // at T0+2s: the wait restarts

  h.time->advance(1s);  // T0+3s: 3 s after the first bump, but only 1 s after the last
  EXPECT_EQ(decaying_value(h.manager, 1, "active"), 2);
  h.time->advance(1s);  // T0+4s: 2 s after the last bump
  EXPECT_EQ(decaying_value(h.manager, 1, "active"), 2);
  h.time->advance(1s);  // T0+5s: 3 s after the last bump
  EXPECT_EQ(decaying_value(h.manager, 1, "active"), std::nullopt);
}

TEST(DecayPreset, ExpireWhenInactiveRejectsANonPositiveInactivity) {
  EXPECT_THROW(Decay::expire_when_inactive(0s), std::invalid_argument);
  EXPECT_THROW(Decay::expire_when_inactive(-1s), std::invalid_argument);
}

// --- Late ticks -----------------------------------------------------------------------------

TEST(DecayLateTick, ALateTickDecaysOnceAndTheFollowingTicksOnceEach) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 1s, Decay::fixed(1), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 100));
  h.time->advance(1s);
  ASSERT_EQ(decaying_value(h.manager, 1, "score"), 99);
  const auto ticks_before = h.manager.stats().decay_ticks;

  // The executor stalls for three intervals: nothing runs while it is stalled.
  h.time->jump(3s);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 99);

  h.time->advance(0s);  // the overdue tick runs late, once: one interval, not three
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 98);
  EXPECT_EQ(h.manager.stats().decay_ticks - ticks_before, 1u);

  for (int expected : {97, 96, 95}) {
    h.time->advance(1s);
    EXPECT_EQ(decaying_value(h.manager, 1, "score"), expected);
  }
  EXPECT_EQ(h.manager.stats().decay_ticks - ticks_before, 4u);
}

TEST(DecayLateTick, LostIntervalsAreCaughtUpOnePerTickWhenTheIntervalSpansSeveralTicks) {
  ManagerHarness h(decay_config());  // ticks every second
  h.add(1);
  auto tag = must_register(h.manager, "score", 3s, Decay::fixed(1), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 100));
  h.time->advance(2s);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 100) << "not due before T0+3s";
  h.time->advance(1s);
  ASSERT_EQ(decaying_value(h.manager, 1, "score"), 99);  // T0+3s

  // Stalled from T0+3s to T0+12s: the intervals due at T0+6s, 9s and 12s were missed.
  h.time->jump(9s);
  h.time->advance(0s);  // T0+12s: one interval (the one due at T0+6s)
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 98);
  h.time->advance(1s);  // T0+13s: the one due at T0+9s
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 97);
  h.time->advance(1s);  // T0+14s: the one due at T0+12s
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 96);
  h.time->advance(1s);  // T0+15s: the one due at T0+15s; caught up
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 95);

  // Back on schedule: one interval every 3 s.
  h.time->advance(2s);  // T0+17s
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 95);
  h.time->advance(1s);  // T0+18s
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 94);
}

// --- Bump presets ---------------------------------------------------------------------------

TEST(DecayBump, SumAddsEachDelta) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 1s, Decay::none(), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 5));
  ASSERT_FALSE(tag.bump(peer_id(1), 3));
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 8);
  ASSERT_FALSE(tag.bump(peer_id(1), -2));
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 6);
  EXPECT_EQ(peer_value(h.manager, 1), 6);
}

TEST(DecayBump, SumSaturatesAtTheIntRange) {
  constexpr int kMax = std::numeric_limits<int>::max();
  constexpr int kMin = std::numeric_limits<int>::min();
  ManagerHarness h(decay_config());
  h.add(1);
  h.add(2);
  auto tag = must_register(h.manager, "score", 1s, Decay::none(), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), kMax));
  ASSERT_FALSE(tag.bump(peer_id(1), 1));
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), kMax);
  EXPECT_EQ(peer_value(h.manager, 1), std::int64_t{kMax});

  ASSERT_FALSE(tag.bump(peer_id(2), kMin));
  ASSERT_FALSE(tag.bump(peer_id(2), -1));
  EXPECT_EQ(decaying_value(h.manager, 2, "score"), kMin);
  EXPECT_EQ(peer_value(h.manager, 2), std::int64_t{kMin});
}

TEST(DecayBump, BoundedSumClampsAtTheUpperBound) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 1s, Decay::none(), Bump::bounded_sum(-5, 10));
  ASSERT_FALSE(tag.bump(peer_id(1), 7));
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 7);
  ASSERT_FALSE(tag.bump(peer_id(1), 7));  // 14 -> 10
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 10);
  ASSERT_FALSE(tag.bump(peer_id(1), 1000));
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 10);
  ASSERT_FALSE(tag.bump(peer_id(1), -3));  // from the clamped value, not from 1014
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 7);
  EXPECT_EQ(peer_value(h.manager, 1), 7);
}

TEST(DecayBump, BoundedSumClampsAtTheLowerBound) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 1s, Decay::none(), Bump::bounded_sum(-5, 10));
  ASSERT_FALSE(tag.bump(peer_id(1), -3));
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), -3);
  ASSERT_FALSE(tag.bump(peer_id(1), -10));  // -13 -> -5
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), -5);
  ASSERT_FALSE(tag.bump(peer_id(1), std::numeric_limits<int>::min()));  // no overflow
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), -5);
  ASSERT_FALSE(tag.bump(peer_id(1), 2));
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), -3);
  EXPECT_EQ(peer_value(h.manager, 1), -3);
}

TEST(DecayBump, BoundedSumClampsTheFirstBumpToo) {
  ManagerHarness h(decay_config());
  h.add(1);
  h.add(2);
  auto tag = must_register(h.manager, "score", 1s, Decay::none(), Bump::bounded_sum(2, 10));
  ASSERT_FALSE(tag.bump(peer_id(1), 50));
  ASSERT_FALSE(tag.bump(peer_id(2), 1));  // 0 + 1 is below the lower bound
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 10);
  EXPECT_EQ(decaying_value(h.manager, 2, "score"), 2);
}

TEST(DecayBump, BoundedSumRejectsMinAboveMax) {
  EXPECT_THROW(Bump::bounded_sum(5, 4), std::invalid_argument);
  EXPECT_NO_THROW(Bump::bounded_sum(4, 4));
}

TEST(DecayBump, OverwriteReplacesTheValue) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 1s, Decay::none(), Bump::overwrite());
  ASSERT_FALSE(tag.bump(peer_id(1), 5));
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 5);
  ASSERT_FALSE(tag.bump(peer_id(1), 2));
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 2);
  ASSERT_FALSE(tag.bump(peer_id(1), -1));
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), -1);
  EXPECT_EQ(peer_value(h.manager, 1), -1);
}

TEST(DecayBump, ABumpAfterDecayStartsFromTheDecayedValue) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 1s, Decay::fixed(2), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 10));
  h.time->advance(2s);  // 10 -> 8 -> 6
  ASSERT_FALSE(tag.bump(peer_id(1), 5));
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 11);
  h.time->advance(1s);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 9);
}

// --- Values below zero ----------------------------------------------------------------------

TEST(DecayNegative, SumWithNegativeDeltasGoesBelowZeroAndNoneKeepsIt) {
  ManagerHarness h(decay_config());
  h.add(1);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "plain", 10));
  auto tag = must_register(h.manager, "penalty", 1s, Decay::none(), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), -4));
  ASSERT_FALSE(tag.bump(peer_id(1), -3));
  EXPECT_EQ(decaying_value(h.manager, 1, "penalty"), -7);

  h.time->advance(5s);  // five ticks: none neither changes nor removes a negative value
  const auto info = h.manager.tag_info(peer_id(1));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->decaying_tags, (Tags{{"penalty", -7}}));
  EXPECT_EQ(info->value, 3) << "10 plain + (-7) decaying";
}

TEST(DecayNegative, APeersValueCanBeNegativeOverall) {
  ManagerHarness h(decay_config());
  h.add(1);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "plain", 2));
  auto tag = must_register(h.manager, "penalty", 1s, Decay::none(), Bump::overwrite());
  ASSERT_FALSE(tag.bump(peer_id(1), -50));
  EXPECT_EQ(peer_value(h.manager, 1), -48);
}

TEST(DecayNegative, FixedDecayRemovesANegativeValueAtTheNextTick) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 1s, Decay::fixed(1), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), -4));
  EXPECT_EQ(peer_value(h.manager, 1), -4) << "counted until the tick";
  h.time->advance(1s);  // -5 <= 0
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), std::nullopt);
  EXPECT_EQ(peer_value(h.manager, 1), 0);
}

TEST(DecayNegative, ExpireWhenInactiveKeepsANegativeValueUntilInactive) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 1s, Decay::expire_when_inactive(2s), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), -6));
  h.time->advance(1s);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), -6);
  EXPECT_EQ(peer_value(h.manager, 1), -6);
  h.time->advance(1s);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), std::nullopt);
}

// --- Custom functions -----------------------------------------------------------------------

TEST(DecayCustom, DecayFunctionSeesValueAndTimesAndItsResultIsApplied) {
  ManagerHarness h(decay_config());
  h.add(1);
  const TimePoint t0 = h.time->now();
  std::vector<DecayingValue> seen;
  auto halve = [&seen](const DecayingValue& v) {
    seen.push_back(v);
    return DecayResult{v.value / 2, v.value / 2 < 2};
  };
  auto tag = must_register(h.manager, "custom", 1s, Decay::custom(halve), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 16));  // at T0

  h.time->advance(1s);
  EXPECT_EQ(decaying_value(h.manager, 1, "custom"), 8);
  h.time->advance(500ms);
  ASSERT_FALSE(tag.bump(peer_id(1), 2));  // at T0+1.5s: 10
  h.time->advance(500ms);
  EXPECT_EQ(decaying_value(h.manager, 1, "custom"), 5);
  h.time->advance(1s);
  EXPECT_EQ(decaying_value(h.manager, 1, "custom"), 2);
  h.time->advance(1s);  // 1 < 2: the function asks for removal
  EXPECT_EQ(decaying_value(h.manager, 1, "custom"), std::nullopt);
  EXPECT_EQ(peer_value(h.manager, 1), 0);

  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].value, 16);
  EXPECT_EQ(seen[0].added, t0);
  EXPECT_EQ(seen[0].last_visit, t0);
  EXPECT_EQ(seen[0].now, t0 + 1s);
  EXPECT_EQ(seen[1].value, 10);
  EXPECT_EQ(seen[1].added, t0) << "added stays at the first bump";
  EXPECT_EQ(seen[1].last_visit, t0 + 1500ms) << "last_visit is the last bump";
  EXPECT_EQ(seen[1].now, t0 + 2s);
  EXPECT_EQ(seen[3].value, 2);
  EXPECT_EQ(seen[3].now, t0 + 4s);
}

TEST(DecayCustom, DecayFunctionRunsOutsideTheLockSoItMayCallTheManager) {
  ManagerHarness h(decay_config());
  h.add(1);
  ConnectionManager& manager = h.manager;
  std::vector<std::int64_t> values_seen;
  // Were the function called under the manager's lock, tag_info() would deadlock here.
  auto minus_one = [&manager, &values_seen](const DecayingValue& v) {
    const auto info = manager.tag_info(peer_id(1));
    values_seen.push_back(info ? info->value : -1);
    return DecayResult{v.value - 1, false};
  };
  auto tag = must_register(h.manager, "custom", 1s, Decay::custom(minus_one), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 10));

  h.time->advance(1s);
  h.time->advance(1s);
  EXPECT_EQ(values_seen, (std::vector<std::int64_t>{10, 9}));
  EXPECT_EQ(decaying_value(h.manager, 1, "custom"), 8);
}

TEST(DecayCustom, DecayResultIsDroppedWhenABumpLandsWhileTheFunctionRuns) {
  ManagerHarness h(decay_config());
  h.add(1);
  DecayingTag tag;
  int calls = 0;
  auto decay = [&tag, &calls](const DecayingValue& v) {
    if (++calls == 1) {
      // A bump from another caller lands while this interval is being computed.
      EXPECT_FALSE(tag.bump(peer_id(1), 10));
    }
    return DecayResult{v.value - 1, false};
  };
  tag = must_register(h.manager, "custom", 1s, Decay::custom(decay), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 5));

  h.time->advance(1s);  // computed 5 - 1 from a stale value: the bump wins this interval
  EXPECT_EQ(decaying_value(h.manager, 1, "custom"), 15);
  h.time->advance(1s);
  EXPECT_EQ(decaying_value(h.manager, 1, "custom"), 14);
  EXPECT_EQ(calls, 2);
}

TEST(DecayCustom, DecayFunctionThatThrowsKeepsTheValue) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto throwing = [](const DecayingValue&) -> DecayResult {
    throw std::runtime_error("decay failure");
  };
  auto tag = must_register(h.manager, "custom", 1s, Decay::custom(throwing), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 7));
  EXPECT_NO_THROW(h.time->advance(2s));
  EXPECT_EQ(decaying_value(h.manager, 1, "custom"), 7);
}

TEST(DecayCustom, BumpFunctionRunsOutsideTheLockSoItMayCallTheManager) {
  ManagerHarness h(decay_config());
  h.add(1);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "plain", 4));
  ConnectionManager& manager = h.manager;
  std::vector<std::int64_t> values_seen;
  auto add_plain_value = [&manager, &values_seen](const DecayingValue& v, int delta) {
    const auto info = manager.tag_info(peer_id(1));  // deadlocks if called under the lock
    values_seen.push_back(info ? info->value : -1);
    return v.value + delta * 2;
  };
  auto tag = must_register(h.manager, "custom", 1s, Decay::none(), Bump::custom(add_plain_value));
  ASSERT_FALSE(tag.bump(peer_id(1), 3));
  ASSERT_FALSE(tag.bump(peer_id(1), 1));
  EXPECT_EQ(values_seen, (std::vector<std::int64_t>{4, 10}));
  EXPECT_EQ(decaying_value(h.manager, 1, "custom"), 8);
  EXPECT_EQ(peer_value(h.manager, 1), 12);
}

TEST(DecayCustom, BumpFunctionIsRetriedWhenTheValueChangedMeanwhile) {
  ManagerHarness h(decay_config());
  h.add(1);
  DecayingTag tag;
  std::vector<std::pair<int, int>> calls;  // (value seen, delta)
  auto bump = [&tag, &calls](const DecayingValue& v, int delta) {
    calls.emplace_back(v.value, delta);
    if (calls.size() == 2) {
      // While the bump of 10 is computed, another bump of 100 lands.
      EXPECT_FALSE(tag.bump(peer_id(1), 100));
    }
    return v.value + delta;
  };
  tag = must_register(h.manager, "custom", 1s, Decay::none(), Bump::custom(bump));
  ASSERT_FALSE(tag.bump(peer_id(1), 1));
  ASSERT_FALSE(tag.bump(peer_id(1), 10));

  // The result computed from 1 (= 11) would lose the concurrent bump; the function runs
  // again from 101.
  EXPECT_EQ(decaying_value(h.manager, 1, "custom"), 111);
  EXPECT_EQ(calls, (std::vector<std::pair<int, int>>{{0, 1}, {1, 10}, {1, 100}, {101, 10}}));
}

TEST(DecayCustom, BumpFunctionIsRetriedWhenThePeerGotTheTagMeanwhile) {
  ManagerHarness h(decay_config());
  h.add(1);
  DecayingTag tag;
  std::vector<std::pair<int, int>> calls;
  auto bump = [&tag, &calls](const DecayingValue& v, int delta) {
    calls.emplace_back(v.value, delta);
    if (calls.size() == 1) {
      EXPECT_FALSE(tag.bump(peer_id(1), 100));
    }
    return v.value + delta;
  };
  tag = must_register(h.manager, "custom", 1s, Decay::none(), Bump::custom(bump));
  ASSERT_FALSE(tag.bump(peer_id(1), 10));
  EXPECT_EQ(decaying_value(h.manager, 1, "custom"), 110);
  EXPECT_EQ(calls, (std::vector<std::pair<int, int>>{{0, 10}, {0, 100}, {100, 10}}));
}

TEST(DecayCustom, BumpFunctionThatThrowsFailsTheBumpAndKeepsTheValue) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "custom", 1s, Decay::none(),
                           Bump::custom([](const DecayingValue& v, int delta) {
                             if (delta < 0) throw std::runtime_error("no negative bumps");
                             return v.value + delta;
                           }));
  ASSERT_FALSE(tag.bump(peer_id(1), 5));
  EXPECT_EQ(tag.bump(peer_id(1), -1), Errc::invalid_argument);
  EXPECT_EQ(decaying_value(h.manager, 1, "custom"), 5);
}

TEST(DecayCustom, EmptyFunctionsAreRejected) {
  EXPECT_THROW(Decay::custom(DecayFn{}), std::invalid_argument);
  EXPECT_THROW(Bump::custom(BumpFn{}), std::invalid_argument);
}

// --- Interval and resolution ----------------------------------------------------------------

TEST(DecayInterval, AnIntervalBelowTheResolutionIsRaisedToIt) {
  ManagerHarness h(decay_config());  // resolution 1 s
  h.add(1);
  auto tag = must_register(h.manager, "score", 100ms, Decay::fixed(1), Bump::sum());
  EXPECT_EQ(tag.interval(), Duration(1s));
  ASSERT_FALSE(tag.bump(peer_id(1), 10));

  h.time->advance(999ms);  // ten requested intervals, no tick
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 10);
  h.time->advance(1ms);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 9);
  h.time->advance(1s);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 8) << "one decay per second, not ten";
}

TEST(DecayInterval, AnIntervalAboveTheResolutionIsKeptAndDecaysOncePerInterval) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 3s, Decay::fixed(1), Bump::sum());
  EXPECT_EQ(tag.interval(), Duration(3s));
  EXPECT_EQ(tag.name(), "score");
  ASSERT_FALSE(tag.bump(peer_id(1), 10));

  h.time->advance(2s);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 10);
  h.time->advance(1s);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 9);
  h.time->advance(3s);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 8);
}

// --- tag_info and the trim ------------------------------------------------------------------

TEST(DecayTagInfo, ListsDecayingTagsByNameWithValuesAndSumsThemWithPlainTags) {
  ManagerHarness h(decay_config());
  h.add(1);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 5));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "relay", -2));
  auto pubsub = must_register(h.manager, "pubsub", 1s, Decay::fixed(1), Bump::sum());
  auto bitswap = must_register(h.manager, "bitswap", 1s, Decay::none(), Bump::sum());
  ASSERT_FALSE(pubsub.bump(peer_id(1), 7));
  ASSERT_FALSE(bitswap.bump(peer_id(1), 11));

  auto info = h.manager.tag_info(peer_id(1));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->tags, (Tags{{"dht", 5}, {"relay", -2}}));
  EXPECT_EQ(info->decaying_tags, (Tags{{"pubsub", 7}, {"bitswap", 11}}));
  EXPECT_EQ(info->value, 5 - 2 + 7 + 11);

  h.time->advance(1s);
  info = h.manager.tag_info(peer_id(1));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->decaying_tags, (Tags{{"pubsub", 6}, {"bitswap", 11}}));
  EXPECT_EQ(info->value, 5 - 2 + 6 + 11);
}

// The default trimmer closes the lowest value first and, among equal values, the newest
// peer first. Each test below makes the decaying value the only thing that reverses the
// order the other rules would give.
TEST(DecayTrim, APeerWithAHighDecayingValueSurvivesATrimOverAPeerWithNone) {
  ManagerHarness h(decay_config());
  auto older = h.add(1);
  h.time->advance(500ms);  // before the first tick
  auto newer = h.add(2);
  auto tag = must_register(h.manager, "score", 1s, Decay::fixed(1), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(2), 50));

  EXPECT_EQ(h.manager.trim(), 1u);
  EXPECT_TRUE(older->closed());
  EXPECT_FALSE(newer->closed()) << "its decaying value of 50 outranks the older peer's 0";
}

TEST(DecayTrim, ANegativeDecayingValueMakesAPeerTheFirstToGo) {
  ManagerHarness h(decay_config());
  auto older = h.add(1);
  h.time->advance(500ms);
  auto newer = h.add(2);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "plain", 5));
  auto tag = must_register(h.manager, "penalty", 1s, Decay::none(), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), -10));  // peer 1: 5 - 10 = -5 < peer 2's 0

  EXPECT_EQ(h.manager.trim(), 1u);
  EXPECT_TRUE(older->closed());
  EXPECT_FALSE(newer->closed());
}

TEST(DecayTrim, TheTrimSeesTheDecayedValue) {
  ManagerHarness h(decay_config());
  auto tag = must_register(h.manager, "score", 1s, Decay::fixed(1), Bump::sum());
  auto older = h.add(1);
  h.time->advance(500ms);
  auto newer = h.add(2);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "plain", 1));
  ASSERT_FALSE(tag.bump(peer_id(2), 2));  // 2 > 1 now, but gone after two ticks

  h.time->advance(2s);
  ASSERT_EQ(decaying_value(h.manager, 2, "score"), std::nullopt);
  EXPECT_EQ(h.manager.trim(), 1u);
  EXPECT_FALSE(older->closed());
  EXPECT_TRUE(newer->closed());
}

// --- Lifecycle of a registration ------------------------------------------------------------

TEST(DecayLifecycle, RegisteringATakenNameFailsWithTagExistsAndKeepsTheFirst) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto first = must_register(h.manager, "dht", 1s, Decay::fixed(1), Bump::sum());

  std::error_code ec;
  auto second = h.manager.register_decaying_tag("dht", 5s, Decay::none(), Bump::overwrite(), ec);
  EXPECT_EQ(ec, Errc::tag_exists);
  EXPECT_FALSE(second.valid());
  EXPECT_EQ(second.bump(peer_id(1), 1), Errc::tag_closed);

  // The first registration keeps its own interval, decay and bump.
  ASSERT_FALSE(first.bump(peer_id(1), 10));
  ASSERT_FALSE(first.bump(peer_id(1), 10));
  EXPECT_EQ(decaying_value(h.manager, 1, "dht"), 20);
  h.time->advance(1s);
  EXPECT_EQ(decaying_value(h.manager, 1, "dht"), 19);
}

TEST(DecayLifecycle, EmptyNameIsAnInvalidArgument) {
  ManagerHarness h(decay_config());
  std::error_code ec;
  auto tag = h.manager.register_decaying_tag("", 1s, Decay::none(), Bump::sum(), ec);
  EXPECT_EQ(ec, Errc::invalid_argument);
  EXPECT_FALSE(tag.valid());
}

TEST(DecayLifecycle, ZeroOrNegativeIntervalIsAnInvalidArgument) {
  ManagerHarness h(decay_config());
  std::error_code ec;
  auto zero = h.manager.register_decaying_tag("zero", 0s, Decay::none(), Bump::sum(), ec);
  EXPECT_EQ(ec, Errc::invalid_argument);
  EXPECT_FALSE(zero.valid());
  auto negative = h.manager.register_decaying_tag("negative", -1s, Decay::none(), Bump::sum(), ec);
  EXPECT_EQ(ec, Errc::invalid_argument);
  EXPECT_FALSE(negative.valid());
  // Neither took its name.
  must_register(h.manager, "zero", 1s, Decay::none(), Bump::sum());
}

TEST(DecayLifecycle, SuccessfulRegistrationClearsTheErrorCode) {
  ManagerHarness h(decay_config());
  std::error_code ec = Errc::tag_exists;
  auto tag = h.manager.register_decaying_tag("score", 1s, Decay::none(), Bump::sum(), ec);
  EXPECT_FALSE(ec);
  EXPECT_TRUE(tag.valid());
}

TEST(DecayLifecycle, ADefaultConstructedHandleIsClosed) {
  DecayingTag tag;
  EXPECT_FALSE(tag.valid());
  EXPECT_EQ(tag.bump(peer_id(1), 1), Errc::tag_closed);
  EXPECT_EQ(tag.remove(peer_id(1)), Errc::tag_closed);
  tag.close();  // harmless
}

TEST(DecayLifecycle, BumpAndRemoveAfterCloseFailWithTagClosedOnEveryCopy) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 1s, Decay::none(), Bump::sum());
  DecayingTag copy = tag;
  ASSERT_FALSE(tag.bump(peer_id(1), 3));

  copy.close();
  EXPECT_EQ(tag.bump(peer_id(1), 1), Errc::tag_closed);
  EXPECT_EQ(tag.remove(peer_id(1)), Errc::tag_closed);
  EXPECT_EQ(copy.bump(peer_id(1), 1), Errc::tag_closed);
  EXPECT_EQ(copy.remove(peer_id(1)), Errc::tag_closed);
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), std::nullopt);
}

TEST(DecayLifecycle, ClosingTwiceIsFine) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 1s, Decay::none(), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 3));
  tag.close();
  tag.close();
  EXPECT_EQ(tag.bump(peer_id(1), 1), Errc::tag_closed);
  EXPECT_EQ(peer_value(h.manager, 1), 0);
}

TEST(DecayLifecycle, ClosingRemovesTheTagFromEveryPeerAndAdjustsTheirValues) {
  ManagerHarness h(decay_config(1min));  // temporary entries live a minute
  h.add(1);
  h.add(2);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "plain", 5));
  auto closing = must_register(h.manager, "closing", 1s, Decay::none(), Bump::sum());
  auto other = must_register(h.manager, "other", 1s, Decay::none(), Bump::sum());
  ASSERT_FALSE(closing.bump(peer_id(1), 10));
  ASSERT_FALSE(closing.bump(peer_id(2), 20));
  ASSERT_FALSE(other.bump(peer_id(2), 7));
  ASSERT_FALSE(closing.bump(peer_id(3), 30));  // peer 3: a temporary entry holding only it
  ASSERT_EQ(peer_value(h.manager, 1), 15);
  ASSERT_EQ(peer_value(h.manager, 2), 27);
  ASSERT_EQ(peer_value(h.manager, 3), 30);
  ASSERT_EQ(h.manager.stats().temporary_peers, 1u);

  closing.close();

  auto info = h.manager.tag_info(peer_id(1));
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->decaying_tags.empty());
  EXPECT_EQ(info->tags, (Tags{{"plain", 5}}));
  EXPECT_EQ(info->value, 5);
  info = h.manager.tag_info(peer_id(2));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->decaying_tags, (Tags{{"other", 7}}));
  EXPECT_EQ(info->value, 7);
  // A temporary entry left without tags has no reason to exist.
  EXPECT_FALSE(h.manager.tag_info(peer_id(3)).has_value());
  EXPECT_EQ(h.manager.stats().temporary_peers, 0u);

  h.time->advance(3s);  // ticks do not bring anything back
  EXPECT_EQ(peer_value(h.manager, 1), 5);
  EXPECT_EQ(peer_value(h.manager, 2), 7);
}

TEST(DecayLifecycle, TheNameIsReusableAfterCloseAndOldHandlesStayClosed) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto first = must_register(h.manager, "score", 1s, Decay::fixed(1), Bump::sum());
  DecayingTag first_copy = first;
  ASSERT_FALSE(first.bump(peer_id(1), 10));
  first.close();

  auto second = must_register(h.manager, "score", 1s, Decay::none(), Bump::sum());
  ASSERT_FALSE(second.bump(peer_id(1), 3));
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 3) << "the old value went with close()";

  EXPECT_EQ(first.bump(peer_id(1), 1), Errc::tag_closed);
  EXPECT_EQ(first_copy.bump(peer_id(1), 1), Errc::tag_closed);
  EXPECT_EQ(first_copy.remove(peer_id(1)), Errc::tag_closed);
  first_copy.close();  // must not close the new registration of the same name
  EXPECT_FALSE(second.bump(peer_id(1), 1));
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 4);

  h.time->advance(2s);  // the new registration's decay (none), not the old one's (fixed)
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 4);
}

TEST(DecayLifecycle, RemoveDropsTheTagFromThePeerAndAdjustsItsValue) {
  ManagerHarness h(decay_config());
  h.add(1);
  h.add(2);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "plain", 2));
  auto tag = must_register(h.manager, "score", 1s, Decay::none(), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 10));
  ASSERT_FALSE(tag.bump(peer_id(2), 20));

  EXPECT_FALSE(tag.remove(peer_id(1)));
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), std::nullopt);
  EXPECT_EQ(peer_value(h.manager, 1), 2);
  EXPECT_EQ(decaying_value(h.manager, 2, "score"), 20) << "other peers keep it";

  // A later bump starts again from zero.
  ASSERT_FALSE(tag.bump(peer_id(1), 1));
  EXPECT_EQ(decaying_value(h.manager, 1, "score"), 1);
}

TEST(DecayLifecycle, RemoveOfAPeerNotHoldingTheTagIsUnknownPeer) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 1s, Decay::none(), Bump::sum());
  auto other = must_register(h.manager, "other", 1s, Decay::none(), Bump::sum());
  ASSERT_FALSE(other.bump(peer_id(1), 4));

  EXPECT_EQ(tag.remove(peer_id(1)), Errc::unknown_peer) << "connected, but without this tag";
  EXPECT_EQ(tag.remove(peer_id(99)), Errc::unknown_peer) << "not known at all";
  EXPECT_EQ(decaying_value(h.manager, 1, "other"), 4);
  EXPECT_FALSE(h.manager.tag_info(peer_id(99)).has_value());
}

TEST(DecayLifecycle, BumpOfAnUnknownPeerCreatesATemporaryEntry) {
  ManagerHarness h(decay_config(1min));
  auto tag = must_register(h.manager, "score", 1s, Decay::none(), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(7), 12));

  auto info = h.manager.tag_info(peer_id(7));
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->temporary);
  EXPECT_EQ(info->connections, 0u);
  EXPECT_EQ(info->value, 12);
  EXPECT_EQ(info->decaying_tags, (Tags{{"score", 12}}));
  EXPECT_EQ(h.manager.stats().temporary_peers, 1u);
  EXPECT_EQ(h.manager.peer_count(), 0u);

  // On connect it becomes real and keeps the value.
  h.add(7);
  info = h.manager.tag_info(peer_id(7));
  ASSERT_TRUE(info.has_value());
  EXPECT_FALSE(info->temporary);
  EXPECT_EQ(info->value, 12);
  EXPECT_EQ(h.manager.stats().temporary_peers, 0u);
}

TEST(DecayLifecycle, RemovingTheOnlyTagOfATemporaryEntryDropsTheEntry) {
  ManagerHarness h(decay_config(1min));
  auto tag = must_register(h.manager, "score", 1s, Decay::none(), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(7), 12));
  ASSERT_EQ(h.manager.stats().temporary_peers, 1u);

  EXPECT_FALSE(tag.remove(peer_id(7)));
  EXPECT_FALSE(h.manager.tag_info(peer_id(7)).has_value());
  EXPECT_EQ(h.manager.stats().temporary_peers, 0u);
}

TEST(DecayLifecycle, DecayRemovingTheOnlyTagOfATemporaryEntryDropsTheEntry) {
  ManagerHarness h(decay_config(1min));
  auto tag = must_register(h.manager, "score", 1s, Decay::fixed(5), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(7), 10));

  h.time->advance(1s);
  EXPECT_EQ(decaying_value(h.manager, 7, "score"), 5);
  h.time->advance(1s);
  EXPECT_FALSE(h.manager.tag_info(peer_id(7)).has_value());
  EXPECT_EQ(h.manager.stats().temporary_peers, 0u);
}

TEST(DecayLifecycle, AfterTheManagerClosesHandlesFailAndNothingRegisters) {
  ManagerHarness h(decay_config());
  h.add(1);
  auto tag = must_register(h.manager, "score", 1s, Decay::none(), Bump::sum());
  ASSERT_FALSE(tag.bump(peer_id(1), 3));

  h.manager.close();
  EXPECT_EQ(tag.bump(peer_id(1), 1), Errc::closed);
  EXPECT_EQ(tag.remove(peer_id(1)), Errc::closed);
  tag.close();  // harmless
  std::error_code ec;
  auto late = h.manager.register_decaying_tag("late", 1s, Decay::none(), Bump::sum(), ec);
  EXPECT_EQ(ec, Errc::closed);
  EXPECT_FALSE(late.valid());
}

TEST(DecayLifecycle, AHandleThatOutlivesItsManagerIsClosed) {
  DecayingTag tag;
  {
    ManagerHarness h(decay_config());
    tag = must_register(h.manager, "score", 1s, Decay::none(), Bump::sum());
  }
  EXPECT_EQ(tag.bump(peer_id(1), 1), Errc::tag_closed);
  EXPECT_EQ(tag.remove(peer_id(1)), Errc::tag_closed);
  tag.close();  // harmless
}

}  // namespace
}  // namespace dep2p::connmgr
