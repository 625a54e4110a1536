// ConnectionManager pool semantics (docs/design.md, "Pool and tags", §3.2, §3.5 events): adding and
// removing connections, duplicate and unknown reports, tags and temporary entries, protection,
// stream counts, events, behaviour after close(), and configuration errors.
#include "dep2p/connmgr/connection_manager.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "dep2p/connmgr/error.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using testing::count_closed;
using testing::EventRecorder;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

using Tags = std::vector<std::pair<std::string, int>>;

// --- The pool -----------------------------------------------------------------------------

TEST(ConnectionManager, CountsConnectionsByDirectionAndPeer) {
  ManagerHarness h;
  auto a_in = h.add(1, Direction::inbound);
  auto a_out = h.add(1, Direction::outbound);
  auto b_in = h.add(2, Direction::inbound);

  EXPECT_EQ(h.manager.connection_count(), 3u);
  EXPECT_EQ(h.manager.connection_count(Direction::inbound), 2u);
  EXPECT_EQ(h.manager.connection_count(Direction::outbound), 1u);
  EXPECT_EQ(h.manager.peer_count(), 2u);
  Stats stats = h.manager.stats();
  EXPECT_EQ(stats.connections, 3u);
  EXPECT_EQ(stats.inbound, 2u);
  EXPECT_EQ(stats.outbound, 1u);
  EXPECT_EQ(stats.peers, 2u);
  EXPECT_EQ(stats.connections_added, 3u);

  EXPECT_FALSE(h.manager.remove_connection(*a_in));
  EXPECT_EQ(h.manager.connection_count(), 2u);
  EXPECT_EQ(h.manager.connection_count(Direction::inbound), 1u);
  EXPECT_EQ(h.manager.peer_count(), 2u) << "peer 1 still has its outbound connection";

  EXPECT_FALSE(h.manager.remove_connection(*a_out));
  EXPECT_EQ(h.manager.peer_count(), 1u);
  EXPECT_EQ(h.manager.connection_count(Direction::outbound), 0u);
  stats = h.manager.stats();
  EXPECT_EQ(stats.connections, 1u);
  EXPECT_EQ(stats.connections_removed, 2u);
  EXPECT_EQ(stats.closes(CloseReason::host), 2u);
  EXPECT_EQ(count_closed({a_in, a_out, b_in}), 0u) << "a host report does not call close()";
}

TEST(ConnectionManager, GetConnectionReturnsThePeersOldestConnection) {
  ManagerHarness h;
  auto first = h.add(1, Direction::outbound);
  auto second = h.add(1, Direction::inbound);
  h.add(2);

  EXPECT_EQ(h.manager.get_connection(peer_id(1)), first);
  const auto of_peer = h.manager.connections(peer_id(1));
  ASSERT_EQ(of_peer.size(), 2u);
  EXPECT_TRUE((of_peer[0] == first && of_peer[1] == second) ||
              (of_peer[0] == second && of_peer[1] == first));

  ASSERT_FALSE(h.manager.remove_connection(*first));
  EXPECT_EQ(h.manager.get_connection(peer_id(1)), second);
  EXPECT_EQ(h.manager.connections(peer_id(1)).size(), 1u);

  EXPECT_EQ(h.manager.get_connection(peer_id(99)), nullptr);
  EXPECT_TRUE(h.manager.connections(peer_id(99)).empty());
}

TEST(ConnectionManager, ConnectionIdsAreDistinctNonZeroAndForgottenOnRemoval) {
  ManagerHarness h;
  auto a = h.add(1);
  auto b = h.add(1);
  const auto id_a = h.manager.connection_id(*a);
  const auto id_b = h.manager.connection_id(*b);
  ASSERT_TRUE(id_a.has_value());
  ASSERT_TRUE(id_b.has_value());
  EXPECT_NE(*id_a, *id_b);
  EXPECT_NE(static_cast<std::uint64_t>(*id_a), 0u);
  EXPECT_NE(static_cast<std::uint64_t>(*id_b), 0u);

  ASSERT_FALSE(h.manager.remove_connection(*a));
  EXPECT_FALSE(h.manager.connection_id(*a).has_value());
  FakeConnection never_added(peer_id(3), Direction::inbound);
  EXPECT_FALSE(h.manager.connection_id(never_added).has_value());

  // Ids are never reused: re-adding the same handle gets a new one.
  ASSERT_FALSE(h.manager.add_connection(a));
  const auto id_again = h.manager.connection_id(*a);
  ASSERT_TRUE(id_again.has_value());
  EXPECT_NE(*id_again, *id_a);
  EXPECT_NE(*id_again, *id_b);
}

TEST(ConnectionManager, DuplicateAddIsRefusedAndCountedOnce) {
  ManagerHarness h;
  EventRecorder events(h.manager);
  auto c = h.add(1);
  EXPECT_EQ(h.manager.add_connection(c), Errc::duplicate_connection);

  EXPECT_EQ(h.manager.connection_count(), 1u);
  EXPECT_EQ(h.manager.connections(peer_id(1)).size(), 1u);
  const Stats stats = h.manager.stats();
  EXPECT_EQ(stats.connections, 1u);
  EXPECT_EQ(stats.connections_added, 1u);
  EXPECT_EQ(stats.duplicate_reports, 1u);
  EXPECT_EQ(events.of<ConnectedEvent>().size(), 1u);

  // One removal is enough to forget it.
  EXPECT_FALSE(h.manager.remove_connection(*c));
  EXPECT_EQ(h.manager.connection_count(), 0u);
  EXPECT_EQ(h.manager.peer_count(), 0u);
}

// A host that reports every closure back, also those the manager asked for (as the
// guide's host does), sees no duplicate: the first report of a close the manager made is
// expected. A second report of it is a duplicate.
TEST(ConnectionManager, TheReportOfACloseTheManagerMadeIsExpectedNotADuplicate) {
  ManagerHarness h(trim_config(2, 100, 0ms));
  std::vector<std::shared_ptr<FakeConnection>> all;
  for (std::uint64_t p = 1; p <= 6; ++p) all.push_back(h.add(p));  // reports from close()
  ASSERT_EQ(h.manager.trim(), 4u);
  const auto open =
      std::find_if(all.begin(), all.end(), [](const auto& c) { return !c->closed(); });
  ASSERT_NE(open, all.end());
  ASSERT_FALSE(h.manager.close_peer((*open)->remote_peer()));
  Stats s = h.manager.stats();
  EXPECT_EQ(s.duplicate_reports, 0u);
  EXPECT_EQ(s.closure_reports, 5u);
  EXPECT_EQ(s.connections_removed, 5u);
  EXPECT_EQ(h.manager.connection_count(), 1u);

  // A report that comes after close() returned (a host that reports on its own thread).
  auto late = h.add(7, Direction::inbound, /*reporting=*/false);
  ASSERT_FALSE(h.manager.close_peer(peer_id(7)));
  EXPECT_EQ(h.manager.remove_connection(*late), std::error_code{});
  // Reported again: now it is a duplicate.
  EXPECT_EQ(h.manager.remove_connection(*late), Errc::unknown_connection);
  s = h.manager.stats();
  EXPECT_EQ(s.closure_reports, 6u);
  EXPECT_EQ(s.duplicate_reports, 1u);
}

TEST(ConnectionManager, UnknownRemoveIsRefusedAndChangesNothing) {
  ManagerHarness h;
  EventRecorder events(h.manager);
  auto kept = h.add(1);
  auto removed = h.add(2);
  ASSERT_FALSE(h.manager.remove_connection(*removed));

  FakeConnection stranger(peer_id(1), Direction::inbound);  // same peer, never added
  EXPECT_EQ(h.manager.remove_connection(stranger), Errc::unknown_connection);
  EXPECT_EQ(h.manager.remove_connection(*removed), Errc::unknown_connection);

  EXPECT_EQ(h.manager.connection_count(), 1u);
  EXPECT_EQ(h.manager.peer_count(), 1u);
  EXPECT_EQ(h.manager.get_connection(peer_id(1)), kept);
  const Stats stats = h.manager.stats();
  EXPECT_EQ(stats.connections_removed, 1u);
  EXPECT_EQ(stats.duplicate_reports, 2u);
  EXPECT_EQ(stats.closes(CloseReason::host), 1u);
  EXPECT_EQ(events.of<DisconnectedEvent>().size(), 1u);
}

// A host whose close() does not report back at once may race and report a connection the
// manager closed as connected again: until the host reports the closure, the handle is a
// duplicate, never a new connection with a fresh grace period.
TEST(ConnectionManager, AHandleTheManagerClosedIsADuplicateUntilTheHostReportsTheClosure) {
  ManagerHarness h(testing::trim_config(1, 100));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(0), "a", 10));
  auto c0 = h.add(0, Direction::inbound, /*reporting=*/false);
  auto c1 = h.add(1, Direction::inbound, /*reporting=*/false);
  ASSERT_EQ(h.manager.trim(), 1u);
  ASSERT_TRUE(c1->closed());
  ASSERT_EQ(h.manager.connection_count(), 1u);

  EXPECT_EQ(h.manager.add_connection(c1), Errc::duplicate_connection);
  EXPECT_EQ(h.manager.connection_count(), 1u);
  EXPECT_FALSE(h.manager.tag_info(peer_id(1)).has_value()) << "the entry came back";
  EXPECT_EQ(h.manager.track_pending(c1, ConnectionState::handshaking), Errc::duplicate_connection);
  EXPECT_EQ(h.manager.stats().connections_added, 2u);

  // The host's report ends it (expected: success); after that the handle is the host's to
  // reuse, and a second report is a stranger's.
  EXPECT_EQ(h.manager.remove_connection(*c1), std::error_code{});
  EXPECT_EQ(h.manager.remove_connection(*c1), Errc::unknown_connection);
  EXPECT_FALSE(h.manager.add_connection(c1));
  EXPECT_EQ(h.manager.connection_count(), 2u);
}

TEST(ConnectionManager, ReportingAClosedStateAlsoEndsAClosedHandle) {
  ManagerHarness h(testing::trim_config(1, 100));
  auto c0 = h.add(0, Direction::inbound, /*reporting=*/false);
  ASSERT_FALSE(h.manager.close_connection(*c0));
  EXPECT_EQ(h.manager.add_connection(c0), Errc::duplicate_connection);
  EXPECT_EQ(h.manager.report_state(*c0, ConnectionState::closed), Errc::unknown_connection);
  EXPECT_FALSE(h.manager.add_connection(c0));
}

TEST(ConnectionManager, AHandleAnotherManagerClosedIsNotThisOnesDuplicate) {
  ManagerHarness first;
  ManagerHarness second;
  auto c = first.add(1, Direction::inbound, /*reporting=*/false);
  ASSERT_FALSE(first.manager.close_connection(*c));
  EXPECT_EQ(second.manager.add_connection(c), Errc::invalid_argument)
      << "still the first manager's until its closure is reported there";
  EXPECT_EQ(second.manager.remove_connection(*c), Errc::unknown_connection);
  EXPECT_EQ(first.manager.remove_connection(*c), std::error_code{});
  EXPECT_FALSE(second.manager.add_connection(c));
}

TEST(ConnectionManager, NullHandleIsRejected) {
  ManagerHarness h;
  EXPECT_EQ(h.manager.add_connection(nullptr), Errc::invalid_argument);
  EXPECT_EQ(h.manager.connection_count(), 0u);
  EXPECT_EQ(h.manager.stats().connections_added, 0u);
}

TEST(ConnectionManager, ClosePeerClosesAllOfItsConnectionsWithTheGivenReason) {
  ManagerHarness h;
  EventRecorder events(h.manager);
  auto reporting = h.add(1, Direction::inbound, /*reporting=*/true);
  auto silent = h.add(1, Direction::outbound, /*reporting=*/false);
  auto other = h.add(2);

  EXPECT_FALSE(h.manager.close_peer(peer_id(1), CloseReason::gated, "blocked by the test"));
  for (const auto& c : {reporting, silent}) {
    EXPECT_EQ(c->close_count(), 1);
    EXPECT_EQ(c->last_reason(), CloseReason::gated);
    EXPECT_EQ(c->last_detail(), "blocked by the test");
  }
  EXPECT_FALSE(other->closed());
  EXPECT_EQ(h.manager.connection_count(), 1u);
  EXPECT_EQ(h.manager.peer_count(), 1u);
  EXPECT_TRUE(h.manager.connections(peer_id(1)).empty());
  EXPECT_EQ(h.manager.stats().closes(CloseReason::gated), 2u);
  const auto disconnected = events.of<DisconnectedEvent>();
  ASSERT_EQ(disconnected.size(), 2u);
  for (const auto& d : disconnected) {
    EXPECT_EQ(d.peer, peer_id(1));
    EXPECT_EQ(d.reason, CloseReason::gated);
    EXPECT_EQ(d.detail, "blocked by the test");
  }

  EXPECT_EQ(h.manager.close_peer(peer_id(1)), Errc::unknown_peer);
  EXPECT_EQ(h.manager.close_peer(peer_id(42)), Errc::unknown_peer);
}

// --- Tags ---------------------------------------------------------------------------------

TEST(ConnectionManager, TagPeerOverwritesAndTheValueIsTheSumOfTags) {
  ManagerHarness h;
  h.add(1);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 5));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "relay", 3));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 7));  // overwrites, does not add

  const auto info = h.manager.tag_info(peer_id(1));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->value, 10);
  EXPECT_EQ(info->tags, (Tags{{"dht", 7}, {"relay", 3}}));
  EXPECT_EQ(info->connections, 1u);
  EXPECT_FALSE(info->temporary);
}

TEST(ConnectionManager, TagValuesAreSummedIn64Bits) {
  ManagerHarness h;
  h.add(1);
  constexpr int kBig = 2'000'000'000;
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "a", kBig));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "b", kBig));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "c", -5));
  EXPECT_EQ(h.manager.tag_info(peer_id(1))->value, std::int64_t{2} * kBig - 5);
}

TEST(ConnectionManager, UntagRemovesOnlyThatTag) {
  ManagerHarness h;
  h.add(1);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "a", 5));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "b", 3));
  EXPECT_FALSE(h.manager.untag_peer(peer_id(1), "a"));

  const auto info = h.manager.tag_info(peer_id(1));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->value, 3);
  EXPECT_EQ(info->tags, (Tags{{"b", 3}}));
}

TEST(ConnectionManager, UpsertStartsFromZeroAndThenSeesTheCurrentValue) {
  ManagerHarness h;
  h.add(1);
  std::vector<int> seen;
  const auto add_four = [&seen](int old) {
    seen.push_back(old);
    return old + 4;
  };
  ASSERT_FALSE(h.manager.upsert_tag(peer_id(1), "score", add_four));
  ASSERT_FALSE(h.manager.upsert_tag(peer_id(1), "score", add_four));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "other", 100));
  ASSERT_FALSE(h.manager.upsert_tag(peer_id(1), "score", add_four));

  EXPECT_EQ(seen, (std::vector<int>{0, 4, 8}));
  const auto info = h.manager.tag_info(peer_id(1));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->value, 112);
  EXPECT_EQ(info->tags, (Tags{{"score", 12}, {"other", 100}}));
}

TEST(ConnectionManager, TagInfoOfAnUnknownPeerIsEmpty) {
  ManagerHarness h;
  EXPECT_FALSE(h.manager.tag_info(peer_id(7)).has_value());
}

TEST(ConnectionManager, TaggingAnUnknownPeerCreatesATemporaryEntry) {
  ManagerHarness h;
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "early", 9));

  const auto info = h.manager.tag_info(peer_id(1));
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->temporary);
  EXPECT_EQ(info->connections, 0u);
  EXPECT_EQ(info->value, 9);
  EXPECT_EQ(info->first_seen, h.time->now());
  EXPECT_EQ(h.manager.stats().temporary_peers, 1u);
  EXPECT_EQ(h.manager.stats().peers, 0u);
  EXPECT_EQ(h.manager.peer_count(), 0u) << "a temporary entry is not a connected peer";
  EXPECT_EQ(h.manager.connection_count(), 0u);
}

TEST(ConnectionManager, TemporaryEntryBecomesRealOnConnectKeepingTagsWithFirstSeenRestarted) {
  ManagerHarness h(trim_config(10, 100, 10s));  // the entry lives 10 s unless it connects
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "early", 9));
  const TimePoint tagged_at = h.time->now();
  h.time->advance(5s);
  h.add(1);

  const auto info = h.manager.tag_info(peer_id(1));
  ASSERT_TRUE(info.has_value());
  EXPECT_FALSE(info->temporary);
  EXPECT_EQ(info->connections, 1u);
  EXPECT_EQ(info->value, 9);
  EXPECT_EQ(info->tags, (Tags{{"early", 9}}));
  EXPECT_EQ(info->first_seen, tagged_at + 5s);
  EXPECT_EQ(h.manager.stats().temporary_peers, 0u);
  EXPECT_EQ(h.manager.peer_count(), 1u);
}

TEST(ConnectionManager, EntryAndTagsGoWhenTheLastConnectionCloses) {
  ManagerHarness h;
  auto first = h.add(1);
  auto second = h.add(1);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "dht", 20));

  ASSERT_FALSE(h.manager.remove_connection(*first));
  auto info = h.manager.tag_info(peer_id(1));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->value, 20);
  EXPECT_EQ(info->connections, 1u);

  ASSERT_FALSE(h.manager.remove_connection(*second));
  EXPECT_FALSE(h.manager.tag_info(peer_id(1)).has_value());
  EXPECT_EQ(h.manager.stats().temporary_peers, 0u);

  h.add(1);  // a reconnect starts from nothing
  info = h.manager.tag_info(peer_id(1));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->value, 0);
  EXPECT_TRUE(info->tags.empty());
}

TEST(ConnectionManager, TemporaryEntriesAreBoundedByMaxTempPeers) {
  Config config = trim_config(10, 100);
  config.max_temp_peers = 2;
  ManagerHarness h(config);
  h.add(10);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(1), "t", 1));
  ASSERT_FALSE(h.manager.tag_peer(peer_id(2), "t", 2));

  EXPECT_EQ(h.manager.tag_peer(peer_id(3), "t", 3), Errc::temp_peer_limit);
  EXPECT_EQ(h.manager.upsert_tag(peer_id(3), "t", [](int old) { return old + 1; }),
            Errc::temp_peer_limit);
  EXPECT_FALSE(h.manager.tag_info(peer_id(3)).has_value());
  EXPECT_EQ(h.manager.stats().temporary_peers, 2u);
  EXPECT_EQ(h.manager.tag_info(peer_id(1))->value, 1);
  EXPECT_EQ(h.manager.tag_info(peer_id(2))->value, 2);

  // Existing temporary entries and connected peers are not new entries.
  EXPECT_FALSE(h.manager.tag_peer(peer_id(1), "u", 5));
  EXPECT_FALSE(h.manager.tag_peer(peer_id(10), "t", 5));
  EXPECT_EQ(h.manager.tag_info(peer_id(1))->value, 6);
  EXPECT_EQ(h.manager.tag_info(peer_id(10))->value, 5);

  // Connecting a temporary peer frees its slot.
  h.add(1);
  EXPECT_FALSE(h.manager.tag_peer(peer_id(3), "t", 3));
  EXPECT_EQ(h.manager.stats().temporary_peers, 2u);
}

// --- Protection ---------------------------------------------------------------------------

TEST(ConnectionManager, ProtectIsIdempotentPerTagNotCounted) {
  ManagerHarness h;
  h.add(1);
  ASSERT_FALSE(h.manager.protect(peer_id(1), "relay"));
  ASSERT_FALSE(h.manager.protect(peer_id(1), "relay"));
  EXPECT_TRUE(h.manager.is_protected(peer_id(1)));
  EXPECT_EQ(h.manager.stats().protected_peers, 1u);

  EXPECT_FALSE(h.manager.unprotect(peer_id(1), "relay"));
  EXPECT_FALSE(h.manager.is_protected(peer_id(1))) << "one unprotect undoes any protects";
  EXPECT_EQ(h.manager.stats().protected_peers, 0u);
}

TEST(ConnectionManager, UnprotectReportsWhetherAnotherTagStillProtects) {
  ManagerHarness h;
  h.add(1);
  ASSERT_FALSE(h.manager.protect(peer_id(1), "relay"));
  ASSERT_FALSE(h.manager.protect(peer_id(1), "dht"));

  EXPECT_TRUE(h.manager.unprotect(peer_id(1), "relay"));
  EXPECT_TRUE(h.manager.is_protected(peer_id(1)));
  EXPECT_FALSE(h.manager.is_protected(peer_id(1), "relay"));
  EXPECT_TRUE(h.manager.is_protected(peer_id(1), "dht"));

  EXPECT_FALSE(h.manager.unprotect(peer_id(1), "dht"));
  EXPECT_FALSE(h.manager.is_protected(peer_id(1)));
  EXPECT_FALSE(h.manager.unprotect(peer_id(2), "dht")) << "never protected";
}

TEST(ConnectionManager, ProtectionIsIndependentOfConnectionsAndSurvivesDisconnect) {
  ManagerHarness h;
  ASSERT_FALSE(h.manager.protect(peer_id(2), "bootstrap"));  // never connected
  EXPECT_TRUE(h.manager.is_protected(peer_id(2), "bootstrap"));

  auto c = h.add(1);
  ASSERT_FALSE(h.manager.protect(peer_id(1), "relay"));
  ASSERT_FALSE(h.manager.remove_connection(*c));
  EXPECT_TRUE(h.manager.is_protected(peer_id(1), "relay"));
  EXPECT_EQ(h.manager.stats().protected_peers, 2u);

  h.add(1);
  EXPECT_TRUE(h.manager.is_protected(peer_id(1)));
  EXPECT_EQ(h.manager.stats().temporary_peers, 0u) << "protection creates no tag entry";
}

// --- Streams ------------------------------------------------------------------------------

TEST(ConnectionManager, StreamOpensAndClosesAreCounted) {
  ManagerHarness h;
  auto c = testing::reporting_connection(h.manager, peer_id(1), Direction::inbound);
  c->initial_streams = 2;
  ASSERT_FALSE(h.manager.add_connection(c));
  auto d = h.add(2);
  EXPECT_EQ(h.manager.stats().streams, 2u);

  EXPECT_TRUE(h.manager.stream_opened(*c));
  EXPECT_TRUE(h.manager.stream_opened(*d));
  EXPECT_EQ(h.manager.stats().streams, 4u);
  EXPECT_FALSE(h.manager.stream_closed(*c));
  EXPECT_FALSE(h.manager.stream_closed(*c));
  EXPECT_EQ(h.manager.stats().streams, 2u);

  ASSERT_FALSE(h.manager.remove_connection(*c));  // its last stream goes with it
  EXPECT_EQ(h.manager.stats().streams, 1u);

  FakeConnection stranger(peer_id(3), Direction::inbound);
  EXPECT_EQ(h.manager.stream_opened(stranger).error, Errc::unknown_connection);
  EXPECT_EQ(h.manager.stream_closed(stranger), Errc::unknown_connection);
  EXPECT_EQ(h.manager.stats().streams, 1u);
}

// --- Events -------------------------------------------------------------------------------

TEST(ConnectionManager, EventsAreDeliveredOnceEachInOrder) {
  ManagerHarness h(trim_config(1, 100));
  EventRecorder events(h.manager);
  auto a = h.add(1, Direction::outbound);
  auto b = h.add(2, Direction::inbound);
  ASSERT_FALSE(h.manager.remove_connection(*a));
  auto c = h.add(3, Direction::inbound);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(3), "keep", 10));
  const auto id_b = h.manager.connection_id(*b);
  const auto id_c = h.manager.connection_id(*c);
  ASSERT_EQ(h.manager.trim(), 1u);  // peer 2 (value 0) goes
  h.time->run_ready();

  const auto recorded = events.events();
  ASSERT_EQ(recorded.size(), 6u);
  const auto* connected_a = std::get_if<ConnectedEvent>(&recorded[0]);
  ASSERT_NE(connected_a, nullptr);
  EXPECT_EQ(connected_a->peer, peer_id(1));
  EXPECT_EQ(connected_a->direction, Direction::outbound);
  const auto* connected_b = std::get_if<ConnectedEvent>(&recorded[1]);
  ASSERT_NE(connected_b, nullptr);
  EXPECT_EQ(connected_b->peer, peer_id(2));
  EXPECT_EQ(connected_b->connection, *id_b);
  const auto* disconnected_a = std::get_if<DisconnectedEvent>(&recorded[2]);
  ASSERT_NE(disconnected_a, nullptr);
  EXPECT_EQ(disconnected_a->peer, peer_id(1));
  EXPECT_EQ(disconnected_a->connection, connected_a->connection);
  EXPECT_EQ(disconnected_a->reason, CloseReason::host);
  const auto* connected_c = std::get_if<ConnectedEvent>(&recorded[3]);
  ASSERT_NE(connected_c, nullptr);
  EXPECT_EQ(connected_c->connection, *id_c);
  const auto* trimmed_b = std::get_if<DisconnectedEvent>(&recorded[4]);
  ASSERT_NE(trimmed_b, nullptr);
  EXPECT_EQ(trimmed_b->connection, *id_b);
  EXPECT_EQ(trimmed_b->direction, Direction::inbound);
  EXPECT_EQ(trimmed_b->reason, CloseReason::trimmed);
  EXPECT_FALSE(trimmed_b->detail.empty());
  const auto* trimmed = std::get_if<TrimmedEvent>(&recorded[5]);
  ASSERT_NE(trimmed, nullptr);
  EXPECT_EQ(trimmed->connections_closed, 1u);
}

TEST(ConnectionManager, ResetSubscriptionStopsDelivery) {
  ManagerHarness h;
  EventRecorder events(h.manager);
  EXPECT_TRUE(events.subscription.active());
  auto c = h.add(1);
  h.time->run_ready();
  ASSERT_EQ(events.size(), 1u);

  events.subscription.reset();
  EXPECT_FALSE(events.subscription.active());
  events.subscription.reset();  // idempotent
  h.add(2);
  ASSERT_FALSE(h.manager.remove_connection(*c));
  h.time->run_ready();
  EXPECT_EQ(events.size(), 1u);
}

TEST(ConnectionManager, DestroyedSubscriptionStopsDelivery) {
  ManagerHarness h;
  int delivered = 0;
  {
    Subscription subscription = h.manager.subscribe([&delivered](const Event&) { ++delivered; });
    h.add(1);
    h.time->run_ready();
    EXPECT_EQ(delivered, 1);
  }
  h.add(2);
  h.time->run_ready();
  EXPECT_EQ(delivered, 1);
}

TEST(ConnectionManager, ThrowingSubscriberDoesNotStopOthers) {
  ManagerHarness h;
  int throws = 0;
  Subscription before = h.manager.subscribe([&throws](const Event&) {
    ++throws;
    throw std::runtime_error("subscriber failure");
  });
  EventRecorder events(h.manager);
  Subscription after = h.manager.subscribe(
      [](const Event&) { throw std::logic_error("another subscriber failure"); });

  auto c = h.add(1);
  ASSERT_FALSE(h.manager.remove_connection(*c));
  h.add(2);
  h.time->run_ready();

  EXPECT_EQ(throws, 3);
  EXPECT_EQ(events.of<ConnectedEvent>().size(), 2u);
  EXPECT_EQ(events.of<DisconnectedEvent>().size(), 1u);
  EXPECT_EQ(h.manager.connection_count(), 1u);
}

TEST(ConnectionManager, SubscriberThrowingANonStandardExceptionIsContained) {
  ManagerHarness h;
  Subscription thrower = h.manager.subscribe([](const Event&) { throw 42; });
  EventRecorder events(h.manager);
  auto c = h.add(1);
  ASSERT_FALSE(h.manager.remove_connection(*c));
  h.time->run_ready();
  EXPECT_EQ(events.size(), 2u);
  EXPECT_EQ(h.manager.connection_count(), 0u);
}

// --- close() ------------------------------------------------------------------------------

TEST(ConnectionManager, CallsAfterCloseReturnClosed) {
  ManagerHarness h;
  auto c = h.add(1);
  EXPECT_FALSE(h.manager.is_closed());
  h.manager.close();
  EXPECT_TRUE(h.manager.is_closed());

  auto late = std::make_shared<FakeConnection>(peer_id(2), Direction::inbound);
  EXPECT_EQ(h.manager.add_connection(late), Errc::closed);
  EXPECT_EQ(h.manager.tag_peer(peer_id(1), "t", 1), Errc::closed);
  EXPECT_EQ(h.manager.protect(peer_id(1), "p"), Errc::closed);
  EXPECT_EQ(h.manager.set_limits(1, 2), Errc::closed);
  EXPECT_EQ(h.manager.trim(), 0u);
  EXPECT_EQ(h.manager.force_trim(), 0u);
  EXPECT_FALSE(c->closed()) << "connections are the host's: close() leaves them open";

  h.manager.close();  // idempotent
  EXPECT_TRUE(h.manager.is_closed());
}

TEST(ConnectionManager, NoEventsOrTrimsAfterClose) {
  ManagerHarness h(trim_config(2, 5, 0ms, 10s));
  EventRecorder events(h.manager);
  auto all = h.add_peers(1, 6);
  const std::size_t before = events.size();
  ASSERT_EQ(before, 6u);

  h.manager.close();
  (void)h.manager.remove_connection(*all[0]);
  (void)h.manager.add_connection(std::make_shared<FakeConnection>(peer_id(9), Direction::inbound));
  (void)h.manager.close_peer(peer_id(2));
  h.time->advance(30s);  // the background check would have trimmed 6 >= 5 down to 2

  EXPECT_EQ(events.size(), before);
  EXPECT_EQ(count_closed(all), 0u);
}

TEST(ConnectionManager, CloseFromAnEventHandlerIsSafe) {
  ManagerHarness h;
  Subscription subscription = h.manager.subscribe([&h](const Event& e) {
    if (std::holds_alternative<ConnectedEvent>(e)) h.manager.close();
  });
  EventRecorder events(h.manager);
  h.add(1);
  h.time->run_ready();
  EXPECT_TRUE(h.manager.is_closed());
  auto late = std::make_shared<FakeConnection>(peer_id(2), Direction::inbound);
  EXPECT_EQ(h.manager.add_connection(late), Errc::closed);
  EXPECT_LE(events.size(), 1u);
}

// --- Configuration errors -----------------------------------------------------------------

// The what() of the std::invalid_argument the constructor throws, or "" if it did not.
std::string constructor_error(const Config& config) {
  boost::asio::io_context io;
  try {
    ConnectionManager manager(io, config);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return {};
}

TEST(ConnectionManager, ConstructorRejectsLowWaterAboveHighWaterNamingTheField) {
  Config config;
  config.low_water = 50;
  config.high_water = 10;
  const std::string what = constructor_error(config);
  EXPECT_TRUE(what.find("low_water") != std::string::npos ||
              what.find("high_water") != std::string::npos)
      << "what(): \"" << what << "\"";
}

TEST(ConnectionManager, ConstructorRejectsNegativeGraceNamingTheField) {
  Config config;
  config.grace_period = -1ms;
  EXPECT_NE(constructor_error(config).find("grace_period"), std::string::npos);
}

TEST(ConnectionManager, ConstructorRejectsZeroSilencePeriodNamingTheField) {
  Config config;
  config.silence_period = 0ms;
  EXPECT_NE(constructor_error(config).find("silence_period"), std::string::npos);
}

TEST(ConnectionManager, ConstructorRejectsZeroMaxTempPeersNamingTheField) {
  Config config;
  config.max_temp_peers = 0;
  EXPECT_NE(constructor_error(config).find("max_temp_peers"), std::string::npos);
}

TEST(ConnectionManager, ConstructorAcceptsTheDefaults) {
  EXPECT_EQ(constructor_error(Config{}), "");
  EXPECT_EQ(constructor_error(Config::preset(Preset::server)), "");
}

}  // namespace
}  // namespace dep2p::connmgr
