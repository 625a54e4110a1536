// The deadline schedules (src/timers/): plain time points in, what is due out, with no
// executor and no manager — the rules the keepalive, idle, redundant-path, handshake and
// temporary-entry timers are driven by.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "timers/connection_schedule.hpp"
#include "timers/deadlines.hpp"
#include "timers/expiry_schedule.hpp"

namespace dep2p::connmgr::detail {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const TimePoint kStart = TimePoint(seconds(1000));

struct Item {
  TimePoint at;
  int n;
};

// --- FifoDeadlines and HeapDeadlines ---------------------------------------------------

TEST(Deadlines, AFifoQueueGivesNothingBeforeItsFirstDeadlineAndThenEachInOrder) {
  FifoDeadlines<Item> q;
  EXPECT_EQ(q.next(), TimePoint::max());
  q.push({kStart + seconds(1), 1});
  q.push({kStart + seconds(1), 2});
  q.push({kStart + seconds(3), 3});
  EXPECT_EQ(q.next(), kStart + seconds(1));
  EXPECT_FALSE(q.pop_due(kStart + milliseconds(999)));
  std::vector<int> due;
  while (auto d = q.pop_due(kStart + seconds(2))) due.push_back(d->n);
  EXPECT_EQ(due, (std::vector<int>{1, 2}));
  EXPECT_EQ(q.next(), kStart + seconds(3));
  EXPECT_EQ(q.size(), 1u);
}

TEST(Deadlines, AHeapGivesDeadlinesPushedOutOfOrderEarliestFirst) {
  HeapDeadlines<Item> q;
  for (int n : {5, 1, 4, 2, 3}) q.push({kStart + seconds(n), n});
  std::vector<int> due;
  while (auto d = q.pop_due(kStart + seconds(4))) due.push_back(d->n);
  EXPECT_EQ(due, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(q.next(), kStart + seconds(5));
}

TEST(Deadlines, EraseIfDropsOnlyTheStaleEntriesAndKeepsTheOrder) {
  FifoDeadlines<Item> fifo;
  HeapDeadlines<Item> heap;
  for (int n = 1; n <= 6; ++n) {
    fifo.push({kStart + seconds(n), n});
    heap.push({kStart + seconds(7 - n), 7 - n});
  }
  auto odd = [](const Item& i) { return i.n % 2 == 1; };
  fifo.erase_if(odd);
  heap.erase_if(odd);
  std::vector<int> from_fifo;
  std::vector<int> from_heap;
  while (auto d = fifo.pop_due(TimePoint::max())) from_fifo.push_back(d->n);
  while (auto d = heap.pop_due(TimePoint::max())) from_heap.push_back(d->n);
  EXPECT_EQ(from_fifo, (std::vector<int>{2, 4, 6}));
  EXPECT_EQ(from_heap, (std::vector<int>{2, 4, 6}));
}

TEST(Deadlines, AWakeTimeIsRoundedUpToTheTickGridAndNeverBeforeNow) {
  const Duration tick = milliseconds(100);
  const TimePoint on_grid = TimePoint(milliseconds(5000));
  EXPECT_EQ(wake_time(on_grid, tick, TimePoint{}), on_grid);
  EXPECT_EQ(wake_time(on_grid + milliseconds(1), tick, TimePoint{}), on_grid + tick);
  EXPECT_EQ(wake_time(on_grid + milliseconds(99), tick, TimePoint{}), on_grid + tick);
  // A deadline already past wakes now, not in the past.
  const TimePoint now = on_grid + seconds(10) + milliseconds(7);
  EXPECT_EQ(wake_time(on_grid, tick, now), now);
}

// --- ConnectionSchedule ----------------------------------------------------------------

ScheduleSettings settings() {
  ScheduleSettings s;
  s.ping_interval = seconds(10);
  s.ping_timeout = seconds(4);
  s.idle_timeout = seconds(60);
  s.redundant_grace = seconds(2);
  s.handshake_timeout = seconds(5);
  return s;
}

TEST(ConnectionSchedule, AnEnrolledConnectionIsPingedOneIntervalLaterAndCheckedForIdleness) {
  ConnectionSchedule schedule(settings());
  schedule.enroll(7, ConnectionId{42}, kStart);
  EXPECT_EQ(schedule.next(), kStart + seconds(10));
  EXPECT_FALSE(schedule.pop_ping(kStart + seconds(9)));
  const auto ping = schedule.pop_ping(kStart + seconds(10));
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->slot, 7u);
  EXPECT_EQ(ping->id, ConnectionId{42});
  EXPECT_EQ(schedule.next(), kStart + seconds(60));  // the idle check
  const auto idle = schedule.pop_idle(kStart + seconds(60));
  ASSERT_TRUE(idle);
  EXPECT_EQ(idle->slot, 7u);
}

TEST(ConnectionSchedule, PingsRecurEveryIntervalFromTheDeadlineNotFromWhenTheyWereServed) {
  ConnectionSchedule schedule(settings());
  schedule.enroll(1, ConnectionId{1}, kStart);
  const auto first = schedule.pop_ping(kStart + seconds(13));  // served 3 s late
  ASSERT_TRUE(first);
  schedule.ping_again(*first);
  EXPECT_FALSE(schedule.pop_ping(kStart + seconds(19)));
  EXPECT_TRUE(schedule.pop_ping(kStart + seconds(20)));
}

TEST(ConnectionSchedule, APingsTimeoutFallsOneTimeoutAfterItWasSentAndNamesThePing) {
  ConnectionSchedule schedule(settings());
  schedule.ping_sent(3, ConnectionId{9}, 17, kStart + seconds(10));
  EXPECT_FALSE(schedule.pop_timeout(kStart + seconds(13)));
  const auto timeout = schedule.pop_timeout(kStart + seconds(14));
  ASSERT_TRUE(timeout);
  EXPECT_EQ(timeout->sequence, 17u);
  EXPECT_EQ(timeout->id, ConnectionId{9});
}

TEST(ConnectionSchedule, IdleChecksComeUpInTimeOrderWhateverTheOrderTheyWereAskedIn) {
  ConnectionSchedule schedule(settings());
  schedule.idle_check(1, ConnectionId{1}, kStart + seconds(30));
  schedule.idle_check(2, ConnectionId{2}, kStart + seconds(10));
  schedule.idle_check(3, ConnectionId{3}, kStart + seconds(20));
  std::vector<std::uint32_t> slots;
  while (auto due = schedule.pop_idle(kStart + seconds(30))) slots.push_back(due->slot);
  EXPECT_EQ(slots, (std::vector<std::uint32_t>{2, 3, 1}));
}

TEST(ConnectionSchedule, RedundantRelaysAndHandshakesFallDueAfterTheirOwnIntervals) {
  ConnectionSchedule schedule(settings());
  schedule.redundant(4, ConnectionId{8}, kStart);
  int key = 0;
  schedule.handshake(reinterpret_cast<const Connection*>(&key), 77, kStart);
  EXPECT_EQ(schedule.next(), kStart + seconds(2));
  EXPECT_FALSE(schedule.pop_handshake(kStart + seconds(2)));
  EXPECT_TRUE(schedule.pop_redundant(kStart + seconds(2)));
  const auto handshake = schedule.pop_handshake(kStart + seconds(5));
  ASSERT_TRUE(handshake);
  EXPECT_EQ(handshake->serial, 77u);
  EXPECT_EQ(schedule.next(), TimePoint::max());
  EXPECT_FALSE(schedule.wake(kStart + seconds(5)));
}

TEST(ConnectionSchedule, TheTimerTicksAtAFiftiethOfTheShortestIntervalInUse) {
  EXPECT_EQ(ConnectionSchedule(settings()).tick(), milliseconds(40));  // 2 s / 50
  ScheduleSettings only_handshake;
  only_handshake.handshake_timeout = seconds(5);
  EXPECT_EQ(ConnectionSchedule(only_handshake).tick(), milliseconds(100));
  ScheduleSettings tiny = settings();
  tiny.redundant_grace = milliseconds(10);
  EXPECT_EQ(ConnectionSchedule(tiny).tick(), milliseconds(1)) << "never below 1 ms";
}

TEST(ConnectionSchedule, TheWakeUpServesThePingsOfManyConnectionsTogether) {
  ConnectionSchedule schedule(settings());  // tick 40 ms
  for (std::uint32_t slot = 0; slot < 10; ++slot) {
    schedule.enroll(slot, ConnectionId{slot + 1}, kStart + milliseconds(1 + 3 * slot));
  }
  // The pings fall 1 to 28 ms past a grid point: the wake-up is the next grid point.
  const auto wake = schedule.wake(kStart);
  ASSERT_TRUE(wake);
  EXPECT_EQ(*wake, kStart + seconds(10) + milliseconds(40));
  std::size_t served = 0;
  while (schedule.pop_ping(*wake)) ++served;
  EXPECT_EQ(served, 10u) << "enrolled within one tick of each other: one wake-up";
}

TEST(ConnectionSchedule, DisabledRulesScheduleNothing) {
  ScheduleSettings off;
  off.handshake_timeout = seconds(5);
  ConnectionSchedule schedule(off);
  EXPECT_FALSE(schedule.keepalive_on());
  EXPECT_FALSE(schedule.idle_on());
  schedule.enroll(1, ConnectionId{1}, kStart);
  EXPECT_EQ(schedule.size(), 0u);
  EXPECT_EQ(schedule.next(), TimePoint::max());
}

TEST(ConnectionSchedule, StaleEntriesAreCompactedOnceTheyOutnumberThePool) {
  ConnectionSchedule schedule(settings());
  // 200 connections came and went; 10 remain (slots 0-9, ids 1-10).
  for (std::uint32_t slot = 0; slot < 200; ++slot) {
    schedule.enroll(slot, ConnectionId{slot + 1}, kStart);
  }
  auto live = [](std::uint32_t slot, ConnectionId id) {
    return slot < 10 && id == ConnectionId{slot + 1};
  };
  schedule.compact_if_stale(150, live);  // bound 2 * 150 + 64 = 364: nothing to do yet
  EXPECT_EQ(schedule.size(), 400u);
  schedule.compact_if_stale(10, live);  // bound 84
  EXPECT_EQ(schedule.size(), 20u) << "a ping and an idle check for each live connection";
  std::size_t pings = 0;
  while (auto due = schedule.pop_ping(kStart + seconds(10))) {
    EXPECT_TRUE(live(due->slot, due->id));
    ++pings;
  }
  EXPECT_EQ(pings, 10u);
}

// --- ExpirySchedule --------------------------------------------------------------------

TEST(ExpirySchedule, AnEntryComesDueAtItsEnd) {
  ExpirySchedule expiries;
  expiries.schedule(3, 1, kStart + seconds(30));
  EXPECT_EQ(expiries.end_of(3), kStart + seconds(30));
  EXPECT_EQ(expiries.next(), kStart + seconds(30));
  EXPECT_FALSE(expiries.pop_due(kStart + seconds(29)));
  const auto due = expiries.pop_due(kStart + seconds(30));
  ASSERT_TRUE(due);
  EXPECT_EQ(due->slot, 3u);
  EXPECT_EQ(due->generation, 1u);
}

TEST(ExpirySchedule, ALaterEndMakesTheEarlierRecordStale) {
  ExpirySchedule expiries;
  expiries.schedule(3, 1, kStart + seconds(30));
  expiries.schedule(3, 1, kStart + seconds(90));  // tagged again: lives longer
  EXPECT_EQ(expiries.scheduled(), 1u);
  EXPECT_FALSE(expiries.pop_due(kStart + seconds(60))) << "the first record is stale";
  EXPECT_TRUE(expiries.pop_due(kStart + seconds(90)));
}

TEST(ExpirySchedule, ACancelledEntryNeverComesDue) {
  ExpirySchedule expiries;
  expiries.schedule(3, 1, kStart + seconds(30));
  expiries.schedule(4, 1, kStart + seconds(30));
  expiries.cancel(3);  // it connected
  EXPECT_EQ(expiries.end_of(3), TimePoint::max());
  std::vector<std::uint32_t> due;
  while (auto d = expiries.pop_due(kStart + seconds(60))) due.push_back(d->slot);
  EXPECT_EQ(due, (std::vector<std::uint32_t>{4}));
}

}  // namespace
}  // namespace dep2p::connmgr::detail
