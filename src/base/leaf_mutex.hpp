// LeafMutex: a mutex for a leaf lock whose uncontended acquire and release are one atomic
// operation each, inlined (std::mutex goes through the C library's generic mutex: a call,
// its kind checks, the owner's bookkeeping). A waiter spins briefly, then sleeps on the
// word (std::atomic::wait), so a long holder costs the waiters no CPU. Not recursive, no
// owner checks; BasicLockable and Lockable, so std::lock_guard and std::unique_lock work.
#pragma once

#include <atomic>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace dep2p::connmgr::detail {

class LeafMutex {
 public:
  LeafMutex() = default;
  LeafMutex(const LeafMutex&) = delete;
  LeafMutex& operator=(const LeafMutex&) = delete;

  void lock() noexcept {
    std::uint32_t expected = kFree;
    if (word_.compare_exchange_strong(expected, kHeld, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
      return;
    }
    lock_slow();
  }
  bool try_lock() noexcept {
    std::uint32_t expected = kFree;
    return word_.compare_exchange_strong(expected, kHeld, std::memory_order_acquire,
                                         std::memory_order_relaxed);
  }
  void unlock() noexcept {
    // An exchange: a waiter that marked the word before it is woken; one that marks it
    // after finds it free.
    if (word_.exchange(kFree, std::memory_order_release) == kSleepers) word_.notify_one();
  }

 private:
  // Free; held with nobody asleep; held, and somebody may sleep on the word.
  static constexpr std::uint32_t kFree = 0;
  static constexpr std::uint32_t kHeld = 1;
  static constexpr std::uint32_t kSleepers = 2;
  static constexpr unsigned kSpins = 128;

  void lock_slow() noexcept {
    for (unsigned spin = 0; spin < kSpins; ++spin) {
#if defined(__x86_64__) || defined(__i386__)
      _mm_pause();
#endif
      std::uint32_t expected = kFree;
      if (word_.load(std::memory_order_relaxed) == kFree &&
          word_.compare_exchange_weak(expected, kHeld, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        return;
      }
    }
    // From here on the word says kSleepers whenever this thread may sleep, so the holder
    // wakes one waiter; a thread that takes the lock this way keeps the mark, since others
    // may still sleep (at worst one needless wake-up).
    while (word_.exchange(kSleepers, std::memory_order_acquire) != kFree) {
      word_.wait(kSleepers, std::memory_order_relaxed);
    }
  }

  std::atomic<std::uint32_t> word_{kFree};
};

}  // namespace dep2p::connmgr::detail
