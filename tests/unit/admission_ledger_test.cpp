// The admission ledger (src/admission/ledger.hpp) and the limit checks
// (src/admission/limit_checks.hpp) on their own: counts kept exact through every way a
// reservation ends, and breaches as pure functions of counts.
#include <gtest/gtest.h>

#include <boost/asio/ip/address.hpp>

#include "admission/ledger.hpp"
#include "admission/limit_checks.hpp"
#include "admission/subnet_counter.hpp"
#include "support/fake_connection.hpp"

namespace dep2p::connmgr::detail {
namespace {

using boost::asio::ip::make_address;
using testing::peer_id;

Charge pending_charge(Direction direction) {
  Charge c;
  c.direction = direction;
  c.pending = true;
  return c;
}

// --- AdmissionLedger -------------------------------------------------------------------

TEST(AdmissionLedger, APendingChargeCountsInItsDirectionUntilItIsClosed) {
  AdmissionLedger ledger;
  SubnetCounter caps;
  const auto in = ledger.open(pending_charge(Direction::inbound));
  const auto out = ledger.open(pending_charge(Direction::outbound));
  EXPECT_NE(in, out);
  EXPECT_EQ(ledger.pending(Direction::inbound), 1u);
  EXPECT_EQ(ledger.pending(Direction::outbound), 1u);
  EXPECT_EQ(ledger.reservations(), 2u);
  EXPECT_TRUE(ledger.close(in, caps));
  EXPECT_EQ(ledger.pending(Direction::inbound), 0u);
  EXPECT_EQ(ledger.pending(Direction::outbound), 1u);
  EXPECT_FALSE(ledger.close(in, caps)) << "a reservation ends once";
  EXPECT_EQ(ledger.pending(Direction::inbound), 0u) << "and is undone once";
}

TEST(AdmissionLedger, APeerLearnedLaterCountsItsPendingSlotAndLeavesNoEntryBehind) {
  AdmissionLedger ledger;
  SubnetCounter caps;
  const auto id = ledger.open(pending_charge(Direction::inbound));
  EXPECT_EQ(ledger.peer(peer_id(1)), nullptr);
  ledger.assign_peer(*ledger.find(id), peer_id(1));
  ASSERT_NE(ledger.peer(peer_id(1)), nullptr);
  EXPECT_EQ(ledger.peer(peer_id(1))->pending[0], 1u);
  EXPECT_TRUE(ledger.close(id, caps));
  EXPECT_EQ(ledger.peer(peer_id(1)), nullptr) << "no entry whose counts are all zero";
  EXPECT_EQ(ledger.pending(Direction::inbound), 0u);
}

TEST(AdmissionLedger, ResourcesCountForTheSystemAndThePeerAndAreGivenBackExactly) {
  AdmissionLedger ledger;
  SubnetCounter caps;
  Charge a;
  a.peer = peer_id(2);
  a.memory = 1000;
  a.fds = 2;
  Charge b = a;
  b.memory = 500;
  b.fds = 1;
  const auto first = ledger.open(a);
  const auto second = ledger.open(b);
  EXPECT_EQ(ledger.memory(), 1500u);
  EXPECT_EQ(ledger.fds(), 3u);
  ASSERT_NE(ledger.peer(peer_id(2)), nullptr);
  EXPECT_EQ(ledger.peer(peer_id(2))->memory, 1500u);
  EXPECT_TRUE(ledger.consume(first));  // the connection it admitted took over
  EXPECT_EQ(ledger.memory(), 500u);
  EXPECT_EQ(ledger.peer(peer_id(2))->fds, 1u);
  EXPECT_TRUE(ledger.close(second, caps));
  EXPECT_EQ(ledger.memory(), 0u);
  EXPECT_EQ(ledger.fds(), 0u);
  EXPECT_EQ(ledger.peer(peer_id(2)), nullptr);
  EXPECT_EQ(ledger.reservations(), 0u);
}

TEST(AdmissionLedger, ClosingGivesThePlaceUnderTheCapsBackButConsumingPassesItOn) {
  AdmissionLedger ledger;
  SubnetCounter caps;
  const auto address = make_address("10.1.2.3");
  ASSERT_FALSE(caps.try_add(address, false));
  ASSERT_FALSE(caps.try_add(address, false));
  Charge closed = pending_charge(Direction::inbound);
  closed.capped_address = address;
  Charge consumed = closed;
  const auto first = ledger.open(closed);
  const auto second = ledger.open(consumed);
  EXPECT_EQ(caps.connections(address), 2u);
  EXPECT_TRUE(ledger.close(first, caps));
  EXPECT_EQ(caps.connections(address), 1u);
  EXPECT_TRUE(ledger.consume(second));
  EXPECT_EQ(caps.connections(address), 1u) << "now the connection's, given back when it leaves";
  EXPECT_FALSE(ledger.consume(second));
}

// --- Limit checks ----------------------------------------------------------------------

std::function<std::string()> named(const char* name, int* calls) {
  return [name, calls] {
    ++*calls;
    return std::string(name);
  };
}

TEST(LimitChecks, ThePendingLimitIsCheckedBeforeTheDirectionsCapAndTheTotal) {
  ScopeLimits limits;
  limits.pending_inbound = 2;
  limits.connections_inbound = 2;
  limits.connections_total = 2;
  ConnectionCounts counts;
  counts.pending[0] = 2;
  int calls = 0;
  auto breach = connection_breach(limits, counts, Direction::inbound, named("system", &calls));
  ASSERT_TRUE(breach);
  EXPECT_EQ(breach->reason, RefusalReason::pending_limit);
  EXPECT_EQ(breach->limit, "pending_inbound");
  EXPECT_EQ(breach->text, "system holds 2 of 2 pending inbound handshakes");

  counts = {};
  counts.open[0] = 1;
  counts.pending[0] = 1;
  breach = connection_breach(limits, counts, Direction::inbound, named("system", &calls));
  ASSERT_TRUE(breach);
  EXPECT_EQ(breach->limit, "connections_inbound") << "pending ones count toward the cap";
  EXPECT_EQ(breach->reason, RefusalReason::connection_limit);

  counts = {};
  counts.open[1] = 2;
  breach = connection_breach(limits, counts, Direction::inbound, named("peer x", &calls));
  ASSERT_TRUE(breach);
  EXPECT_EQ(breach->limit, "connections_total");
  EXPECT_EQ(breach->scope, "peer x");
  EXPECT_EQ(breach->text, "peer x holds 2 of 2 connections");
}

TEST(LimitChecks, RoomLeftIsNoBreachAndTheScopeIsNamedOnlyOnABreach) {
  ScopeLimits limits;
  limits.connections_outbound = 3;
  ConnectionCounts counts;
  counts.open[1] = 2;
  int calls = 0;
  EXPECT_FALSE(connection_breach(limits, counts, Direction::outbound, named("system", &calls)));
  EXPECT_FALSE(connection_breach(ScopeLimits{}, counts, Direction::inbound, named("s", &calls)));
  EXPECT_EQ(calls, 0) << "building a peer's name costs: only for a refusal";
  counts.open[1] = 3;
  EXPECT_TRUE(connection_breach(limits, counts, Direction::outbound, named("system", &calls)));
  EXPECT_EQ(calls, 1);
}

TEST(LimitChecks, StreamsAreCheckedForTheSystemFirstThenThePeer) {
  ScopeLimits system;
  system.streams_total = 10;
  ScopeLimits peer;
  peer.streams_inbound = 1;
  int calls = 0;
  auto breach =
      stream_breach(system, {5, 5}, peer, {1, 0}, Direction::inbound, named("peer p", &calls));
  ASSERT_TRUE(breach);
  EXPECT_EQ(breach->scope, "system");
  EXPECT_EQ(breach->limit, "streams_total");
  breach = stream_breach(system, {1, 1}, peer, {1, 0}, Direction::inbound, named("peer p", &calls));
  ASSERT_TRUE(breach);
  EXPECT_EQ(breach->scope, "peer p");
  EXPECT_EQ(breach->limit, "streams_inbound");
  EXPECT_EQ(breach->reason, RefusalReason::stream_limit);
  EXPECT_FALSE(
      stream_breach(system, {1, 1}, peer, {1, 0}, Direction::outbound, named("peer p", &calls)));
}

TEST(LimitChecks, AResourceRequestThatWouldWrapAroundStillBreaches) {
  ScopeLimits limits;
  limits.memory_bytes = 1000;
  limits.file_descriptors = 4;
  EXPECT_FALSE(resource_breach(limits, 600, 2, 400, 2, "system"));
  auto breach = resource_breach(limits, 600, 0, 401, 0, "system");
  ASSERT_TRUE(breach);
  EXPECT_EQ(breach->reason, RefusalReason::memory_limit);
  EXPECT_EQ(breach->text, "system holds 600 of 1000 bytes, 401 more asked");
  breach = resource_breach(limits, 600, 0, UINT64_MAX - 100, 0, "system");
  ASSERT_TRUE(breach) << "600 + (2^64 - 101) wraps to 499, which must not fit";
  EXPECT_EQ(breach->limit, "memory_bytes");
  breach = resource_breach(limits, 0, 3, 0, 2, "peer q");
  ASSERT_TRUE(breach);
  EXPECT_EQ(breach->reason, RefusalReason::fd_limit);
  EXPECT_EQ(breach->scope, "peer q");
}

}  // namespace
}  // namespace dep2p::connmgr::detail
