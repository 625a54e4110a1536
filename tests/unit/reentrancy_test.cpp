// Acceptance 6: no host code runs under one of the manager's locks (docs/design.md, "Threading",
// threading contract). Host code here — Connection::close(), a Trimmer's rank(), an event handler,
// an upsert function — calls back into the manager on the same thread, which would
// deadlock on a non-recursive lock, and from a second thread joined before returning,
// which would deadlock even on a recursive one. Counts must stay exact throughout.
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <variant>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using testing::count_closed;
using testing::EventRecorder;
using testing::expect_closes_carry;
using testing::FakeConnection;
using testing::HookTrimmer;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

using Connections = std::vector<std::shared_ptr<FakeConnection>>;

// Reads the manager from a second thread and waits for it: deadlocks if the calling
// thread holds the manager's lock, recursive or not.
std::size_t count_from_another_thread(ConnectionManager& manager) {
  std::size_t count = 0;
  std::thread reader([&] {
    const Stats stats = manager.stats();
    count = manager.connection_count();
    EXPECT_EQ(stats.connections, count);
  });
  reader.join();
  return count;
}

// Makes every connection's close() report back synchronously and then run `extra`.
void on_close(const Connections& connections, ConnectionManager& manager,
              const std::function<void(FakeConnection&)>& extra) {
  for (const auto& c : connections) {
    c->on_close = [&manager, extra](FakeConnection& self, CloseReason reason) {
      (void)manager.remove_connection(self, reason);
      if (extra) extra(self);
    };
  }
}

// --- Connection::close() calling back -----------------------------------------------------

TEST(Reentrancy, CloseDuringTrimSeesTheCommittedPoolAndMayQueryIt) {
  ManagerHarness h(trim_config(10, 100));
  Connections all = h.add_peers(1, 20);
  std::vector<std::size_t> counts_seen;
  std::vector<std::size_t> counts_seen_elsewhere;
  int entries_still_there = 0;
  on_close(all, h.manager, [&](FakeConnection& self) {
    counts_seen.push_back(h.manager.connection_count());
    counts_seen.push_back(h.manager.stats().connections);
    counts_seen_elsewhere.push_back(count_from_another_thread(h.manager));
    if (h.manager.tag_info(self.remote_peer()).has_value()) ++entries_still_there;
    if (h.manager.connection_id(self).has_value()) ++entries_still_there;
  });

  EXPECT_EQ(h.manager.trim(), 10u);
  EXPECT_EQ(count_closed(all), 10u);
  // Plan, commit, act: every victim is gone from the pool before the first close().
  EXPECT_EQ(counts_seen, std::vector<std::size_t>(20, 10u));
  EXPECT_EQ(counts_seen_elsewhere, std::vector<std::size_t>(10, 10u));
  EXPECT_EQ(entries_still_there, 0);

  const Stats stats = h.manager.stats();
  EXPECT_EQ(stats.connections, 10u);
  EXPECT_EQ(stats.peers, 10u);
  EXPECT_EQ(stats.connections_removed, 10u);
  EXPECT_EQ(stats.closes(CloseReason::trimmed), 10u);
  EXPECT_EQ(stats.closes(CloseReason::host), 0u);
  expect_closes_carry(all, CloseReason::trimmed);
}

TEST(Reentrancy, CloseDuringTrimMayTagAndAddConnections) {
  ManagerHarness h(trim_config(10, 100));
  EventRecorder events(h.manager);
  Connections survivors = h.add_peers(1000, 1);
  ASSERT_FALSE(h.manager.protect(peer_id(1000), "keep"));
  Connections all = h.add_peers(1, 20);
  Connections added_in_close;
  std::uint64_t next_peer = 500;
  int tag_value = 0;
  on_close(all, h.manager, [&](FakeConnection&) {
    ++tag_value;
    EXPECT_FALSE(h.manager.tag_peer(peer_id(1000), "closes seen", tag_value));
    added_in_close.push_back(h.add(next_peer++));
  });

  // 20 candidates (the protected peer is not one): 10 close, each adding a connection.
  EXPECT_EQ(h.manager.trim(), 10u);
  EXPECT_EQ(count_closed(all), 10u);
  EXPECT_EQ(added_in_close.size(), 10u);
  EXPECT_EQ(count_closed(added_in_close), 0u);
  EXPECT_EQ(h.manager.connection_count(), 21u);
  EXPECT_EQ(h.manager.peer_count(), 21u);
  EXPECT_EQ(h.manager.tag_info(peer_id(1000))->value, 10);
  const Stats stats = h.manager.stats();
  EXPECT_EQ(stats.connections_added, 31u);
  EXPECT_EQ(stats.connections_removed, 10u);
  EXPECT_EQ(stats.connections, 21u);
  EXPECT_EQ(events.of<ConnectedEvent>().size(), 31u);
  EXPECT_EQ(events.of<DisconnectedEvent>().size(), 10u);
}

TEST(Reentrancy, CloseDuringTrimMayCallTrimAgain) {
  ManagerHarness h(trim_config(10, 100));
  Connections all = h.add_peers(1, 20);
  int nested_calls = 0;
  std::size_t nested_closed = 0;
  on_close(all, h.manager, [&](FakeConnection&) {
    ++nested_calls;
    nested_closed += h.manager.trim();
    nested_closed += h.manager.trim_connections(1);  // other kinds must not wait either
  });

  const std::size_t closed = h.manager.trim();
  EXPECT_GE(nested_calls, 10);
  EXPECT_EQ(closed + nested_closed, static_cast<std::size_t>(count_closed(all)));
  EXPECT_EQ(h.manager.connection_count(), 20u - count_closed(all));
  EXPECT_EQ(h.manager.stats().connections, h.manager.connection_count());
  for (const auto& c : all) EXPECT_LE(c->close_count(), 1);
}

TEST(Reentrancy, CloseDuringTrimMayReportAnotherConnectionClosed) {
  ManagerHarness h(trim_config(10, 100));
  Connections protected_connections = h.add_peers(100, 2);
  for (std::uint64_t n = 100; n <= 101; ++n) ASSERT_FALSE(h.manager.protect(peer_id(n), "p"));
  Connections all = h.add_peers(1, 12);
  std::size_t next = 0;
  on_close(all, h.manager, [&](FakeConnection&) {
    // The host learns that a connection the trim kept has closed too.
    ASSERT_LT(next, protected_connections.size());
    EXPECT_FALSE(h.manager.remove_connection(*protected_connections[next++]));
  });

  // 12 candidates - low water 10 = 2 trimmed; each close removes a protected connection.
  EXPECT_EQ(h.manager.trim(), 2u);
  EXPECT_EQ(count_closed(all), 2u);
  EXPECT_EQ(h.manager.connection_count(), 10u);
  const Stats stats = h.manager.stats();
  EXPECT_EQ(stats.connections, 10u);
  EXPECT_EQ(stats.connections_removed, 4u);
  EXPECT_EQ(stats.closes(CloseReason::trimmed), 2u);
  EXPECT_EQ(stats.closes(CloseReason::host), 2u);
  EXPECT_EQ(h.manager.peer_count(), 10u);
}

TEST(Reentrancy, CloseDuringForceTrimMayReportBack) {
  ManagerHarness h(trim_config(5, 100, 1h));
  Connections all = h.add_peers(1, 12);
  ASSERT_FALSE(h.manager.protect(peer_id(1), "p"));
  std::vector<std::size_t> counts_elsewhere;
  on_close(all, h.manager, [&](FakeConnection&) {
    counts_elsewhere.push_back(count_from_another_thread(h.manager));
    EXPECT_FALSE(h.manager.tag_peer(peer_id(1), "t", 1));
  });

  EXPECT_EQ(h.manager.force_trim(), 7u);
  EXPECT_EQ(count_closed(all), 7u);
  EXPECT_FALSE(all[0]->closed());
  EXPECT_EQ(counts_elsewhere, std::vector<std::size_t>(7, 5u));
  EXPECT_EQ(h.manager.connection_count(), 5u);
  EXPECT_EQ(h.manager.stats().closes(CloseReason::forced_trim), 7u);
  expect_closes_carry(all, CloseReason::forced_trim);
}

TEST(Reentrancy, CloseDuringTrimConnectionsMayReportBack) {
  ManagerHarness h(trim_config(5, 100));
  Connections all;
  for (int i = 0; i < 3; ++i) all.push_back(h.add(1));
  for (const auto& c : h.add_peers(2, 3)) all.push_back(c);
  ASSERT_FALSE(h.manager.tag_peer(peer_id(2), "v", 1));  // peer 1 (value 0) goes first
  on_close(all, h.manager, [&](FakeConnection&) { (void)count_from_another_thread(h.manager); });

  EXPECT_EQ(h.manager.trim_connections(2), 2u);
  EXPECT_EQ(h.manager.connections(peer_id(1)).size(), 1u);
  EXPECT_EQ(h.manager.connection_count(), 4u);
  EXPECT_EQ(h.manager.stats().connections, 4u);
}

TEST(Reentrancy, CloseDuringClosePeerMayReportBackAndQuery) {
  ManagerHarness h;
  Connections of_peer;
  for (int i = 0; i < 3; ++i) of_peer.push_back(h.add(1));
  Connections others = h.add_peers(2, 2);
  std::vector<std::size_t> left_seen;
  on_close(of_peer, h.manager, [&](FakeConnection&) {
    left_seen.push_back(h.manager.connections(peer_id(1)).size());
    left_seen.push_back(count_from_another_thread(h.manager));
  });

  EXPECT_FALSE(h.manager.close_peer(peer_id(1), CloseReason::gated, "gated"));
  EXPECT_EQ(count_closed(of_peer), 3u);
  EXPECT_EQ(left_seen, (std::vector<std::size_t>{0, 2, 0, 2, 0, 2}));
  EXPECT_EQ(h.manager.connection_count(), 2u);
  EXPECT_EQ(h.manager.peer_count(), 2u);
  EXPECT_EQ(h.manager.stats().closes(CloseReason::gated), 3u);
  EXPECT_EQ(h.manager.stats().connections_removed, 3u);
}

TEST(Reentrancy, CloseDuringBackgroundTrimMayCallTheManager) {
  ManagerHarness h(trim_config(5, 10, 0ms, 10s));
  auto kept = h.add(99);
  ASSERT_FALSE(h.manager.protect(peer_id(99), "p"));
  Connections all = h.add_peers(1, 12);
  int nested = 0;
  on_close(all, h.manager, [&](FakeConnection&) {
    ++nested;
    (void)h.manager.trim();
    (void)count_from_another_thread(h.manager);
    EXPECT_FALSE(h.manager.tag_peer(peer_id(99), "t", nested));
  });

  // 13 connections >= high water; 12 candidates - low water 5 = 7 close.
  h.time->advance(10s);  // the check runs on the manager's strand, on this thread
  EXPECT_EQ(count_closed(all), 7u);
  EXPECT_FALSE(kept->closed());
  EXPECT_EQ(nested, 7);
  EXPECT_EQ(h.manager.connection_count(), 6u);
  EXPECT_EQ(h.manager.stats().connections, 6u);
  EXPECT_EQ(h.manager.tag_info(peer_id(99))->value, 7);
}

// --- Trimmer, event handler, upsert function calling back ---------------------------------

TEST(Reentrancy, TrimmerMayCallTheManager) {
  ManagerHarness* harness = nullptr;
  std::size_t count_in_rank = 0;
  std::size_t count_elsewhere = 0;
  std::size_t nested_trim = 99;
  auto trimmer = std::make_shared<HookTrimmer>([&] {
    ConnectionManager& manager = harness->manager;
    count_in_rank = manager.connection_count();
    count_elsewhere = count_from_another_thread(manager);
    nested_trim = manager.trim();  // from inside the running trim: must not wait for it
    EXPECT_FALSE(manager.tag_peer(peer_id(1000), "ranked", 1));
    EXPECT_FALSE(manager.add_connection(
        std::make_shared<FakeConnection>(peer_id(2000), Direction::inbound)));
  });
  ManagerHarness h(trim_config(10, 100), trimmer);
  harness = &h;
  Connections all = h.add_peers(1, 20);

  EXPECT_EQ(h.manager.trim(), 10u);
  EXPECT_EQ(trimmer->calls.load(), 1);
  EXPECT_EQ(count_in_rank, 20u);
  EXPECT_EQ(count_elsewhere, 20u);
  EXPECT_EQ(nested_trim, 0u);
  EXPECT_EQ(count_closed(all), 10u);
  // The connection added during rank() was not in the snapshot and stays.
  EXPECT_EQ(h.manager.connections(peer_id(2000)).size(), 1u);
  EXPECT_EQ(h.manager.connection_count(), 11u);
  EXPECT_EQ(h.manager.stats().connections, 11u);
}

TEST(Reentrancy, EventHandlersMayCallTheManager) {
  ManagerHarness h(trim_config(3, 100));
  std::vector<std::size_t> counts;
  int nested_trims = 0;
  Subscription subscription = h.manager.subscribe([&](const Event& e) {
    counts.push_back(count_from_another_thread(h.manager));
    if (const auto* c = std::get_if<ConnectedEvent>(&e)) {
      EXPECT_FALSE(h.manager.tag_peer(c->peer, "seen", 1));
      counts.push_back(h.manager.connection_count());
    } else if (const auto* d = std::get_if<DisconnectedEvent>(&e)) {
      EXPECT_FALSE(h.manager.tag_info(d->peer).has_value()) << "the entry went first";
    } else {
      ++nested_trims;
      (void)h.manager.trim();
    }
  });
  Connections all = h.add_peers(1, 5);
  EXPECT_EQ(counts, (std::vector<std::size_t>{1, 1, 2, 2, 3, 3, 4, 4, 5, 5}));
  EXPECT_EQ(h.manager.tag_info(peer_id(3))->value, 1);

  EXPECT_EQ(h.manager.trim(), 2u);
  EXPECT_EQ(nested_trims, 1);
  EXPECT_EQ(h.manager.connection_count(), 3u);
  EXPECT_EQ(h.manager.stats().connections, 3u);
}

TEST(Reentrancy, EventHandlerMayAddAndRemoveConnections) {
  ManagerHarness h;
  Connections cascade;
  Subscription subscription = h.manager.subscribe([&](const Event& e) {
    if (const auto* c = std::get_if<ConnectedEvent>(&e)) {
      // Each connection of a low-numbered peer brings another peer's connection.
      if (c->peer == peer_id(1)) cascade.push_back(h.add(2));
      if (c->peer == peer_id(2)) cascade.push_back(h.add(3));
    } else if (const auto* d = std::get_if<DisconnectedEvent>(&e)) {
      if (d->peer == peer_id(3)) {
        EXPECT_FALSE(h.manager.remove_connection(*cascade[0]));
      }
    }
  });
  auto first = h.add(1);
  h.time->run_ready();
  ASSERT_EQ(cascade.size(), 2u);
  EXPECT_EQ(h.manager.connection_count(), 3u);

  ASSERT_FALSE(h.manager.remove_connection(*cascade[1]));  // peer 3 goes, then peer 2
  h.time->run_ready();
  EXPECT_EQ(h.manager.connection_count(), 1u);
  EXPECT_EQ(h.manager.get_connection(peer_id(1)), first);
  EXPECT_EQ(h.manager.stats().connections_removed, 2u);
}

TEST(Reentrancy, UpsertFunctionMayCallTheManager) {
  ManagerHarness h;
  h.add(1);
  int calls = 0;
  std::size_t count_elsewhere = 0;
  ASSERT_FALSE(h.manager.upsert_tag(peer_id(1), "score", [&](int old) {
    ++calls;
    count_elsewhere = count_from_another_thread(h.manager);
    // Tagging another peer leaves peer 1's tags alone: no reason to run again. (Bounded,
    // so that a manager that reruns anyway fails this test instead of spinning forever.)
    if (calls <= 100) {
      EXPECT_FALSE(h.manager.tag_peer(peer_id(2), "other", 3 + calls));
    }
    return old + 1;
  }));
  EXPECT_EQ(calls, 1) << "upsert_tag reran although the peer's tags did not change";
  EXPECT_EQ(count_elsewhere, 1u);
  EXPECT_EQ(h.manager.tag_info(peer_id(1))->value, 1);
  EXPECT_TRUE(h.manager.tag_info(peer_id(2)).has_value());
}

TEST(Reentrancy, UpsertRerunsWhenItsFunctionChangedThePeersTags) {
  ManagerHarness h;
  h.add(1);
  int outer_calls = 0;
  std::vector<int> seen;
  ASSERT_FALSE(h.manager.upsert_tag(peer_id(1), "score", [&](int old) {
    seen.push_back(old);
    if (++outer_calls == 1) {
      // A concurrent update lands while the function runs; it must not be lost.
      EXPECT_FALSE(h.manager.upsert_tag(peer_id(1), "score", [](int o) { return o + 5; }));
    }
    return old + 1;
  }));
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen.front(), 0);
  EXPECT_EQ(seen.back(), 5);
  EXPECT_EQ(h.manager.tag_info(peer_id(1))->value, 6);
}

}  // namespace
}  // namespace dep2p::connmgr
