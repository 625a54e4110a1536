// The flood (examples/flood) at CI size: 20 /24s of loopback flood one node with
// connections for about 5 s while 10 honest peers on other /24s keep dialing it, over real
// TCP. The victim admits at least 95% of the honest dials; the flood was real (the victim
// refused connections by its subnet caps or its inbound rates); and once everything has
// stopped, the victim's manager holds no connection, reservation or cap entry and the
// process no more descriptors than before. Only counts and shares are asserted, never
// times: sanitizer builds and slow machines run it too.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "flood.hpp"

namespace {

namespace cm = dep2p::connmgr;

TEST(Flood, HonestPeersGetInWhileTwentySubnetsFlood) {
  flood::FloodOptions options;
  options.seconds = 5;
  options.honest = 10;
  options.subnets = 20;
  options.in_flight = 500;  // lowered further if the descriptor limit requires
  const flood::FloodResult r = flood::run_flood(options);
  for (const std::string& line : flood::describe(r)) std::printf("%s\n", line.c_str());
  RecordProperty("honest_dials", std::to_string(r.honest_dials));
  RecordProperty("honest_admitted", std::to_string(r.honest_admitted));
  RecordProperty("flood_attempts", std::to_string(r.flood_attempts));
  RecordProperty("victim_refusals", std::to_string(r.victim_refusals()));

  // Every honest peer dialed, and the victim let in at least 95% of the dials.
  EXPECT_GE(r.honest_dials, options.honest);
  EXPECT_GE(r.honest_share(), flood::FloodResult::kHonestTarget)
      << r.honest_admitted << " of " << r.honest_dials << " honest dials admitted";

  // The flood was real: the victim accepted flood connections and refused some of them by
  // its per-address or per-subnet caps or by its inbound rates.
  EXPECT_GT(r.flood_answered, 0U);
  const std::uint64_t by_caps_or_rates =
      r.refusals_by_reason[static_cast<std::size_t>(cm::RefusalReason::subnet_cap)] +
      r.refusals_by_reason[static_cast<std::size_t>(cm::RefusalReason::rate_limit)];
  EXPECT_GT(by_caps_or_rates, 0U);
  EXPECT_GT(r.flood_refused_at_accept, 0U);

  // Nothing leaked.
  EXPECT_TRUE(r.drained);
  EXPECT_EQ(r.connections_after, 0U);
  EXPECT_EQ(r.reservations_after, 0U);
  EXPECT_EQ(r.capped_after, 0U);
  EXPECT_EQ(r.pending_inbound_after, 0U);
  EXPECT_EQ(r.fds_after, r.fds_before);
  EXPECT_TRUE(r.ok());
}

}  // namespace
