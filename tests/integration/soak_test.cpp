// The soak (examples/soak) at CI size: 16 nodes on loopback under random churn for
// kSoakSeconds of real time, over real TCP. Every check held (each manager's count equals
// the connections its node holds, no reservation without a handshake, descriptors and RSS
// within their bounds after the warm-up); every kind of action happened; trims and
// keepalive closed connections; and once every node stopped, nothing was left: no
// connection, reservation or realm binding, no extra descriptor. Only counts are asserted,
// never times: sanitizer builds and slow machines run it too.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdio>
#include <string>

#include "soak.hpp"

namespace {

namespace cm = dep2p::connmgr;

// The churn's duration; the whole test takes this plus the stop and drain.
constexpr double kSoakSeconds = 60;

std::uint64_t closes(const soak::SoakResult& r, cm::CloseReason reason) {
  return r.closes_by_reason[static_cast<std::size_t>(reason)];
}

TEST(Soak, SixteenNodesUnderChurnKeepTheirCountsAndLeakNothing) {
  soak::SoakOptions options;
  options.seconds = kSoakSeconds;
  options.nodes = 16;
  options.seed = 1;
  const soak::SoakResult r = soak::run_soak(options);
  for (const std::string& line : soak::describe(r)) std::printf("%s\n", line.c_str());
  RecordProperty("checks", std::to_string(r.checks));
  RecordProperty("connections_opened", std::to_string(r.connections_opened));
  RecordProperty("fds_peak", std::to_string(r.fds_peak));
  RecordProperty("rss_peak_kib", std::to_string(r.rss_peak));

  EXPECT_EQ(r.violations, 0U);
  EXPECT_TRUE(r.ok());
  EXPECT_GT(r.checks, 1U);
  EXPECT_GT(r.node_checks, 0U);

  // Every kind of action happened.
  for (std::size_t k = 0; k < soak::kActionCount; ++k) {
    EXPECT_GT(r.actions[k], 0U) << soak::to_string(static_cast<soak::Action>(k));
  }
  // The churn did what it is for: connections came and went, bound to realms, were
  // trimmed, closed by keepalive (frozen nodes) and by shutdowns (stopped nodes).
  EXPECT_GT(r.connections_opened, 0U);
  EXPECT_GT(r.realm_binds, 0U);
  EXPECT_GT(r.trims, 0U);
  EXPECT_GT(closes(r, cm::CloseReason::trimmed), 0U);
  EXPECT_GT(closes(r, cm::CloseReason::keepalive_timeout), 0U);
  EXPECT_GT(closes(r, cm::CloseReason::shutdown), 0U);

  // Nothing left once every node stopped.
  EXPECT_TRUE(r.drained);
  EXPECT_EQ(r.connections_after, 0U);
  EXPECT_EQ(r.reservations_after, 0U);
  EXPECT_EQ(r.bindings_after, 0U);
  EXPECT_EQ(r.fds_end, r.fds_start);
}

}  // namespace
