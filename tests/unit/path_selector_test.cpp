// Unit tests for the default PathSelector (path_selector.hpp, docs/design.md, "Keepalive, idle and
// paths") on hand-built candidate lists: direct before relay at once, same-tier stickiness, the
// IPv6 bias and unmeasured paths.
#include "dep2p/connmgr/path_selector.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace dep2p::connmgr {
namespace {

using std::chrono::milliseconds;

PathCandidate path(PathKind kind, std::optional<milliseconds> rtt, bool ipv6 = false) {
  static std::uint64_t next_connection = 0;
  PathCandidate c;
  c.connection = static_cast<ConnectionId>(++next_connection);
  c.kind = kind;
  c.ipv6 = ipv6;
  if (rtt) c.rtt = *rtt;
  return c;
}
PathCandidate direct_v4(int rtt_ms) { return path(PathKind::direct, milliseconds(rtt_ms)); }
PathCandidate direct_v6(int rtt_ms) { return path(PathKind::direct, milliseconds(rtt_ms), true); }
PathCandidate relay(int rtt_ms) { return path(PathKind::relay, milliseconds(rtt_ms)); }
PathCandidate unmeasured(PathKind kind) { return path(kind, std::nullopt); }

std::size_t select(const std::vector<PathCandidate>& candidates, std::optional<std::size_t> current,
                   PathSelectorOptions options = {}) {
  return make_default_path_selector(options)->select(candidates, current);
}

TEST(PathSelector, WithoutACurrentPathPicksTheFastest) {
  EXPECT_EQ(select({direct_v4(40), direct_v4(12), direct_v4(25)}, std::nullopt), 1u);
}

TEST(PathSelector, SameTierPathFourMsFasterKeepsTheCurrentPath) {
  EXPECT_EQ(select({direct_v4(30), direct_v4(26)}, 0), 0u);
}

TEST(PathSelector, SameTierPathSixMsFasterSwitches) {
  EXPECT_EQ(select({direct_v4(30), direct_v4(24)}, 0), 1u);
}

TEST(PathSelector, SameTierPathExactlyFiveMsFasterSwitches) {
  EXPECT_EQ(select({direct_v4(30), direct_v4(25)}, 0), 1u);
}

TEST(PathSelector, ASwitchGoesToTheFastestPathNotTheFirstThatClearsTheThreshold) {
  EXPECT_EQ(select({direct_v4(30), direct_v4(24), direct_v4(18), direct_v4(22)}, 0), 2u);
}

TEST(PathSelector, DirectBeatsTheCurrentRelayAtOnceEvenIfSlower) {
  EXPECT_EQ(select({relay(10), direct_v4(200)}, 0), 1u);
}

TEST(PathSelector, DirectBeatsRelayEvenWhenTheDirectPathIsUnmeasured) {
  EXPECT_EQ(select({relay(10), unmeasured(PathKind::direct)}, 0), 1u);
  EXPECT_EQ(select({relay(10), unmeasured(PathKind::direct)}, std::nullopt), 1u);
}

TEST(PathSelector, LeavingARelayPicksTheFastestDirectPath) {
  EXPECT_EQ(select({relay(10), direct_v4(50), direct_v4(30), direct_v4(45)}, 0), 2u);
}

TEST(PathSelector, ACurrentDirectPathIsNotLeftForAFasterRelay) {
  EXPECT_EQ(select({direct_v4(100), relay(10)}, 0), 0u);
}

TEST(PathSelector, RelayOnlyPeersFollowTheSameTierRules) {
  EXPECT_EQ(select({relay(30), relay(26)}, 0), 0u);
  EXPECT_EQ(select({relay(30), relay(24)}, 0), 1u);
}

TEST(PathSelector, Ipv6PathTwoMsSlowerIsPreferredWithoutACurrentPath) {
  EXPECT_EQ(select({direct_v4(20), direct_v6(22)}, std::nullopt), 1u);
}

TEST(PathSelector, Ipv6PathMustBeFiveMsFasterAfterBiasToReplaceACurrentIpv4Path) {
  // 19 ms less the 3 ms bias is 4 ms faster than 20 ms: kept; 18 ms is 5 ms: switched.
  EXPECT_EQ(select({direct_v4(20), direct_v6(19)}, 0), 0u);
  EXPECT_EQ(select({direct_v4(20), direct_v6(18)}, 0), 1u);
}

TEST(PathSelector, BiasAlsoProtectsACurrentIpv6Path) {
  // A current IPv6 path at 20 ms counts as 17 ms.
  EXPECT_EQ(select({direct_v6(20), direct_v4(13)}, 0), 0u);
  EXPECT_EQ(select({direct_v6(20), direct_v4(12)}, 0), 1u);
}

TEST(PathSelector, UnmeasuredPathRanksAfterAMeasuredOneHoweverSlow) {
  EXPECT_EQ(select({unmeasured(PathKind::direct), direct_v4(900)}, std::nullopt), 1u);
}

TEST(PathSelector, MeasuredCurrentPathIsKeptOverAnUnmeasuredOne) {
  EXPECT_EQ(select({direct_v4(900), unmeasured(PathKind::direct)}, 0), 0u);
}

TEST(PathSelector, UnmeasuredCurrentPathYieldsToAMeasuredOne) {
  EXPECT_EQ(select({unmeasured(PathKind::direct), direct_v4(900)}, 0), 1u);
}

TEST(PathSelector, AmongUnmeasuredPathsTheCurrentOneThenTheLowestIndexWins) {
  const std::vector<PathCandidate> all_unmeasured{
      unmeasured(PathKind::direct), unmeasured(PathKind::direct), unmeasured(PathKind::direct)};
  EXPECT_EQ(select(all_unmeasured, std::nullopt), 0u);
  EXPECT_EQ(select(all_unmeasured, 2), 2u);
}

TEST(PathSelector, TiesGoToTheCurrentPathThenTheLowerIndex) {
  const std::vector<PathCandidate> tied{direct_v4(25), direct_v4(20), direct_v6(23), direct_v4(20)};
  // Indices 1, 2 (23 ms less the bias) and 3 all count as 20 ms.
  EXPECT_EQ(select(tied, std::nullopt), 1u);
  EXPECT_EQ(select(tied, 3), 3u);
  EXPECT_EQ(select(tied, 2), 2u);
}

TEST(PathSelector, CustomSwitchThresholdDecidesStickiness) {
  PathSelectorOptions options;
  options.switch_threshold = milliseconds(20);
  EXPECT_EQ(select({direct_v4(50), direct_v4(31)}, 0, options), 0u);
  EXPECT_EQ(select({direct_v4(50), direct_v4(30)}, 0, options), 1u);
}

TEST(PathSelector, ZeroThresholdSwitchesToAnyFasterPathButKeepsTheCurrentOnATie) {
  PathSelectorOptions options;
  options.switch_threshold = Duration::zero();
  EXPECT_EQ(select({direct_v4(30), direct_v4(30)}, 0, options), 0u);
  std::vector<PathCandidate> candidates{direct_v4(30), direct_v4(30)};
  candidates[1].rtt = *candidates[1].rtt - Duration(1);
  EXPECT_EQ(select(candidates, 0, options), 1u);
}

TEST(PathSelector, CustomIpv6BiasChangesThePreference) {
  PathSelectorOptions no_bias;
  no_bias.ipv6_bias = Duration::zero();
  EXPECT_EQ(select({direct_v4(20), direct_v6(22)}, std::nullopt, no_bias), 0u);

  PathSelectorOptions large_bias;
  large_bias.ipv6_bias = milliseconds(10);
  // 25 ms less 10 ms is 5 ms faster than the current 20 ms.
  EXPECT_EQ(select({direct_v4(20), direct_v6(25)}, 0, large_bias), 1u);
  EXPECT_EQ(select({direct_v4(20), direct_v6(26)}, 0, large_bias), 0u);
}

TEST(PathSelector, CurrentIndexOutOfRangeCountsAsNoCurrentPath) {
  // The candidates are a prefix of a longer list, so reading the stale index by mistake
  // finds a slow path that stickiness would keep, instead of running off the end.
  const std::vector<PathCandidate> backing{direct_v4(30), direct_v4(27), direct_v4(90),
                                           direct_v4(90), direct_v4(90), direct_v4(30)};
  const auto candidates = std::span<const PathCandidate>(backing).first(2);
  EXPECT_EQ(make_default_path_selector()->select(candidates, 5), 1u);
}

TEST(PathSelector, SelectorKeepsNoStateBetweenCalls) {
  auto selector = make_default_path_selector();
  const std::vector<PathCandidate> first{direct_v4(30), direct_v4(27)};
  const std::vector<PathCandidate> second{direct_v4(27), direct_v4(30)};
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(selector->select(first, std::nullopt), 1u) << "round " << round;
    EXPECT_EQ(selector->select(first, 0), 0u) << "round " << round;
    EXPECT_EQ(selector->select(second, std::nullopt), 0u) << "round " << round;
    EXPECT_EQ(selector->select(second, 1), 1u) << "round " << round;
  }
}

}  // namespace
}  // namespace dep2p::connmgr
