// Unit tests for the time sources (clock.hpp): ManualTimeSource in virtual time, and a
// short, bounded check of SteadyTimeSource over real time.
#include "dep2p/connmgr/clock.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

namespace dep2p::connmgr {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class ManualTimeSourceTest : public ::testing::Test {
 protected:
  boost::asio::io_context io_;
  ManualTimeSource time_{io_};

  std::unique_ptr<Timer> make_timer() { return time_.make_timer(io_.get_executor()); }
};

TEST_F(ManualTimeSourceTest, NowMovesOnlyOnAdvance) {
  const TimePoint start = time_.now();
  EXPECT_EQ(time_.now(), start);
  time_.run_ready();
  EXPECT_EQ(time_.now(), start);
  time_.advance(seconds(5));
  EXPECT_EQ(time_.now(), start + seconds(5));
  time_.advance(milliseconds(1));
  EXPECT_EQ(time_.now(), start + seconds(5) + milliseconds(1));
  time_.advance(Duration::zero());
  EXPECT_EQ(time_.now(), start + seconds(5) + milliseconds(1));
}

TEST_F(ManualTimeSourceTest, TimerFiresExactlyAtItsDeadline) {
  const TimePoint deadline = time_.now() + seconds(10);
  int fired = 0;
  TimePoint fired_at{};
  auto timer = make_timer();
  timer->wait_until(deadline, [&] {
    ++fired;
    fired_at = time_.now();
  });

  time_.advance(seconds(10) - milliseconds(1));
  EXPECT_EQ(fired, 0);
  time_.advance(milliseconds(1));
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(fired_at, deadline);
  time_.advance(seconds(60));
  EXPECT_EQ(fired, 1) << "a one-shot timer fires once";
}

TEST_F(ManualTimeSourceTest, AdvancingPastTheDeadlineFiresWithNowAtTheDeadline) {
  const TimePoint deadline = time_.now() + milliseconds(300);
  TimePoint fired_at{};
  auto timer = make_timer();
  timer->wait_until(deadline, [&] { fired_at = time_.now(); });
  time_.advance(seconds(1));
  EXPECT_EQ(fired_at, deadline);
  EXPECT_EQ(time_.now(), deadline - milliseconds(300) + seconds(1));
}

TEST_F(ManualTimeSourceTest, TimerArmedForNowFiresOnZeroAdvance) {
  bool fired = false;
  auto timer = make_timer();
  timer->wait_until(time_.now(), [&] { fired = true; });
  time_.advance(Duration::zero());
  EXPECT_TRUE(fired);
}

TEST_F(ManualTimeSourceTest, TimersFireInDeadlineOrder) {
  const TimePoint start = time_.now();
  std::vector<int> order;
  auto t30 = make_timer();
  auto t10 = make_timer();
  auto t20 = make_timer();
  t30->wait_until(start + milliseconds(30), [&] { order.push_back(30); });
  t10->wait_until(start + milliseconds(10), [&] { order.push_back(10); });
  t20->wait_until(start + milliseconds(20), [&] { order.push_back(20); });
  time_.advance(milliseconds(30));
  EXPECT_EQ(order, (std::vector<int>{10, 20, 30}));
}

TEST_F(ManualTimeSourceTest, TimersWithTheSameDeadlineFireInArmingOrder) {
  const TimePoint deadline = time_.now() + seconds(1);
  std::vector<int> order;
  std::vector<std::unique_ptr<Timer>> timers;
  for (int i = 0; i < 5; ++i) {
    timers.push_back(make_timer());
    timers.back()->wait_until(deadline, [&order, i] { order.push_back(i); });
  }
  time_.advance(seconds(1));
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST_F(ManualTimeSourceTest, PeriodicRearmSeesItsDeadlineAndFiresOncePerPeriod) {
  const Duration period = seconds(10);
  const TimePoint start = time_.now();
  auto timer = make_timer();
  std::vector<TimePoint> seen;
  std::function<void()> tick;
  TimePoint next = start + period;
  tick = [&] {
    seen.push_back(time_.now());
    next = time_.now() + period;
    timer->wait_until(next, tick);
  };
  timer->wait_until(next, tick);

  time_.advance(10 * period);
  ASSERT_EQ(seen.size(), std::size_t{10});
  for (std::size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i], start + static_cast<int>(i + 1) * period) << "tick " << i;
  }
  EXPECT_EQ(time_.now(), start + 10 * period);
  EXPECT_EQ(time_.pending_timers(), std::size_t{1});

  time_.advance(period - milliseconds(1));
  EXPECT_EQ(seen.size(), std::size_t{10});
  time_.advance(milliseconds(1));
  EXPECT_EQ(seen.size(), std::size_t{11});
  timer->cancel();
}

TEST_F(ManualTimeSourceTest, CancelPreventsFiring) {
  bool fired = false;
  auto timer = make_timer();
  timer->wait_until(time_.now() + seconds(1), [&] { fired = true; });
  EXPECT_EQ(time_.pending_timers(), std::size_t{1});
  timer->cancel();
  EXPECT_EQ(time_.pending_timers(), std::size_t{0});
  time_.advance(seconds(5));
  EXPECT_FALSE(fired);
}

TEST_F(ManualTimeSourceTest, CancelledTimerCanBeArmedAgain) {
  int fired = 0;
  auto timer = make_timer();
  timer->wait_until(time_.now() + seconds(1), [&] { fired += 100; });
  timer->cancel();
  timer->wait_until(time_.now() + seconds(2), [&] { fired += 1; });
  time_.advance(seconds(2));
  EXPECT_EQ(fired, 1);
}

TEST_F(ManualTimeSourceTest, CancelOfAnIdleTimerIsHarmless) {
  auto timer = make_timer();
  timer->cancel();
  timer->cancel();
  EXPECT_EQ(time_.pending_timers(), std::size_t{0});
}

TEST_F(ManualTimeSourceTest, DestroyingTheTimerPreventsFiring) {
  bool fired = false;
  auto timer = make_timer();
  timer->wait_until(time_.now() + seconds(1), [&] { fired = true; });
  timer.reset();
  EXPECT_EQ(time_.pending_timers(), std::size_t{0});
  time_.advance(seconds(5));
  EXPECT_FALSE(fired);
}

TEST_F(ManualTimeSourceTest, RearmingReplacesThePreviousWait) {
  const TimePoint start = time_.now();
  int first = 0;
  int second = 0;
  auto timer = make_timer();
  timer->wait_until(start + seconds(1), [&] { ++first; });
  timer->wait_until(start + seconds(2), [&] { ++second; });
  EXPECT_EQ(time_.pending_timers(), std::size_t{1});

  time_.advance(seconds(1));
  EXPECT_EQ(first, 0);
  EXPECT_EQ(second, 0);
  time_.advance(seconds(1));
  EXPECT_EQ(first, 0);
  EXPECT_EQ(second, 1);
  time_.advance(seconds(10));
  EXPECT_EQ(first, 0);
  EXPECT_EQ(second, 1);
}

TEST_F(ManualTimeSourceTest, RearmingForAnEarlierDeadlineFiresEarlier) {
  const TimePoint start = time_.now();
  int fired = 0;
  auto timer = make_timer();
  timer->wait_until(start + seconds(10), [&] { fired += 100; });
  timer->wait_until(start + seconds(1), [&] { fired += 1; });
  time_.advance(seconds(1));
  EXPECT_EQ(fired, 1);
  time_.advance(seconds(20));
  EXPECT_EQ(fired, 1);
}

TEST_F(ManualTimeSourceTest, PendingTimersCountsArmedTimers) {
  const TimePoint start = time_.now();
  EXPECT_EQ(time_.pending_timers(), std::size_t{0});
  auto a = make_timer();
  auto b = make_timer();
  auto c = make_timer();
  EXPECT_EQ(time_.pending_timers(), std::size_t{0}) << "made but not armed";
  a->wait_until(start + seconds(1), [] {});
  b->wait_until(start + seconds(2), [] {});
  c->wait_until(start + seconds(3), [] {});
  EXPECT_EQ(time_.pending_timers(), std::size_t{3});
  time_.advance(seconds(1));
  EXPECT_EQ(time_.pending_timers(), std::size_t{2}) << "a fired";
  b->cancel();
  EXPECT_EQ(time_.pending_timers(), std::size_t{1});
  time_.advance(seconds(5));
  EXPECT_EQ(time_.pending_timers(), std::size_t{0});
}

TEST_F(ManualTimeSourceTest, RunReadyRunsPostedWorkWithoutMovingTime) {
  const TimePoint start = time_.now();
  bool due = false;
  auto timer = make_timer();
  timer->wait_until(start + milliseconds(1), [&] { due = true; });

  int ran = 0;
  TimePoint ran_at{};
  boost::asio::post(io_, [&] {
    ++ran;
    ran_at = time_.now();
  });
  time_.run_ready();
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(ran_at, start);
  EXPECT_EQ(time_.now(), start);
  EXPECT_FALSE(due);

  boost::asio::post(io_, [&] { ++ran; });
  time_.run_ready();
  EXPECT_EQ(ran, 2) << "run_ready works more than once";
}

TEST_F(ManualTimeSourceTest, AdvanceAlsoRunsPostedWork) {
  bool ran = false;
  boost::asio::post(io_, [&] { ran = true; });
  time_.advance(milliseconds(1));
  EXPECT_TRUE(ran);
}

TEST_F(ManualTimeSourceTest, WorkPostedByAHandlerRunsBeforeTheNextDeadline) {
  const TimePoint start = time_.now();
  std::vector<int> order;
  auto first = make_timer();
  auto second = make_timer();
  first->wait_until(start + seconds(1), [&] {
    order.push_back(1);
    boost::asio::post(io_, [&] { order.push_back(2); });
  });
  second->wait_until(start + seconds(2), [&] { order.push_back(3); });
  time_.advance(seconds(2));
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

// --- SteadyTimeSource: real time, bounded waits --------------------------------------

TEST(SteadyTimeSource, NowIsMonotonicAndFollowsSteadyClock) {
  SteadyTimeSource time;
  const TimePoint before = Clock::now();
  const TimePoint a = time.now();
  const TimePoint b = time.now();
  const TimePoint after = Clock::now();
  EXPECT_LE(before, a);
  EXPECT_LE(a, b);
  EXPECT_LE(b, after);
}

TEST(SteadyTimeSource, TimerFiresWhenTheIoContextRuns) {
  boost::asio::io_context io;
  SteadyTimeSource time;
  auto timer = time.make_timer(io.get_executor());
  bool fired = false;
  const TimePoint deadline = time.now() + milliseconds(1);
  timer->wait_until(deadline, [&] { fired = true; });
  io.run_for(seconds(2));
  EXPECT_TRUE(fired);
  EXPECT_GE(Clock::now(), deadline);
}

TEST(SteadyTimeSource, CancelPreventsFiring) {
  boost::asio::io_context io;
  SteadyTimeSource time;
  auto timer = time.make_timer(io.get_executor());
  bool fired = false;
  timer->wait_until(time.now() + milliseconds(1), [&] { fired = true; });
  timer->cancel();
  io.run_for(milliseconds(200));
  EXPECT_FALSE(fired);
}

TEST(SteadyTimeSource, DestroyingTheTimerPreventsFiring) {
  boost::asio::io_context io;
  SteadyTimeSource time;
  bool fired = false;
  {
    auto timer = time.make_timer(io.get_executor());
    timer->wait_until(time.now() + milliseconds(1), [&] { fired = true; });
  }
  io.run_for(milliseconds(200));
  EXPECT_FALSE(fired);
}

TEST(SteadyTimeSource, RearmingReplacesThePreviousWait) {
  boost::asio::io_context io;
  SteadyTimeSource time;
  auto timer = time.make_timer(io.get_executor());
  int first = 0;
  int second = 0;
  timer->wait_until(time.now() + milliseconds(1), [&] { ++first; });
  timer->wait_until(time.now() + milliseconds(2), [&] { ++second; });
  io.run_for(seconds(2));
  EXPECT_EQ(first, 0);
  EXPECT_EQ(second, 1);
}

}  // namespace
}  // namespace dep2p::connmgr
