// LeafMutex (src/base/leaf_mutex.hpp): mutual exclusion under contention, try_lock, and
// waiters that outlast their spinning (the sleeping path).
#include "base/leaf_mutex.hpp"

#include <atomic>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace {

using dep2p::connmgr::detail::LeafMutex;

TEST(LeafMutex, ContendedIncrementsAreNeverLost) {
  LeafMutex mutex;
  std::size_t counter = 0;  // guarded by mutex; a lost update shows in the total
  constexpr std::size_t kThreads = 4;
  constexpr std::size_t kEach = 50'000;
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (std::size_t i = 0; i < kEach; ++i) {
        std::lock_guard lock(mutex);
        const std::size_t seen = counter;
        counter = seen + 1;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(counter, kThreads * kEach);
}

TEST(LeafMutex, TryLockFailsWhileHeldAndSucceedsOnceReleased) {
  LeafMutex mutex;
  ASSERT_TRUE(mutex.try_lock());
  bool other = true;
  std::thread([&] { other = mutex.try_lock(); }).join();
  EXPECT_FALSE(other);
  mutex.unlock();
  std::thread([&] {
    other = mutex.try_lock();
    if (other) mutex.unlock();
  }).join();
  EXPECT_TRUE(other);
}

// Waiters queued behind a holder that keeps the lock until all of them have started:
// they exhaust their spins and sleep, and each unlock must wake one, or the test hangs.
TEST(LeafMutex, WaitersThatSleepAreAllWokenInTurn) {
  LeafMutex mutex;
  std::atomic<std::size_t> started{0};
  std::size_t entered = 0;  // guarded by mutex
  constexpr std::size_t kWaiters = 3;
  mutex.lock();
  std::vector<std::thread> waiters;
  for (std::size_t t = 0; t < kWaiters; ++t) {
    waiters.emplace_back([&] {
      started.fetch_add(1);
      std::lock_guard lock(mutex);
      ++entered;
    });
  }
  while (started.load() < kWaiters) std::this_thread::yield();
  // Long enough for every waiter to pass its spins (each yield gives them the CPU).
  for (int i = 0; i < 1000; ++i) std::this_thread::yield();
  EXPECT_EQ(entered, 0u);
  mutex.unlock();
  for (auto& thread : waiters) thread.join();
  std::lock_guard lock(mutex);
  EXPECT_EQ(entered, kWaiters);
}

}  // namespace
