// CoreLock: the manager core's lock, in two grains (docs/architecture.md, "Locks and
// their order"). Held whole (lock()/unlock(), BasicLockable), it guards all of the core's
// state. Entered in a lane (enter()/leave()), it lets the holder read, but not change, the
// state only whole holders change (the index of peers, the slot tables, the
// configuration), and change one peer's own entries after locking that peer (the core's
// PeerLock, a byte in the peer's entry). Threads in different lanes run in parallel.
//
//   std::lock_guard whole(lock);         // add a connection, trim, ...
//   const auto lane = lock.enter(); ...; lock.leave(lane.index);  // tag one peer
//
// A thread has its own lane (ThreadLane: kLanes of them, shared only by more live threads
// than that), so a thread entering touches only its lane's cache line and the
// peer's own; two threads working on different peers share no line that either writes.
//
// A whole holder may open the lanes for a while (open_lanes()/close_lanes()): it keeps
// every other whole holder out, and lane holders run meanwhile. A trim ranks that way.
//
// How: a whole holder sets the state word (held, lanes closed) and waits until no lane is
// held; a thread entering takes its lane's word and backs off while the lanes are closed.
// Both sides write their own word before they read the other's (sequentially consistent),
// so they never both proceed. A lane holder that had to back off is let in before the lanes
// close again (`waiting_`), so a long sequence of whole sections cannot starve it; a whole
// holder that unlocks and locks again in a loop lets waiting whole holders in first
// (lock_after_waiters()). Waiters spin, then sleep on the state word (std::atomic::wait).
//
// Lock order: whole before lane before one peer; a lane holder never takes the whole lock,
// a whole holder never enters a lane, and a thread holds at most one lane and one peer.
#pragma once

#include <array>
#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace dep2p::connmgr::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Eight: a whole holder reads every lane's word, and eight loads cost what the mutex they
// replace costs; more threads than that share lanes (and wait for one another).
inline constexpr std::size_t kLanes = 8;

// The lane of the calling thread: the least used one when the thread first asks, held
// until the thread ends. Lanes are the process's, shared by every lock: up to kLanes live
// threads each have their own.
class ThreadLane {
 public:
  static std::size_t get() noexcept { return mine().index; }

 private:
  struct Users {
    std::array<std::atomic<std::uint32_t>, kLanes> count{};
  };
  static Users& users() noexcept {
    static Users u;
    return u;
  }
  struct Held {
    std::size_t index;
    Held() noexcept : index(pick()) {}
    ~Held() { users().count[index].fetch_sub(1, std::memory_order_relaxed); }
    static std::size_t pick() noexcept {
      Users& u = users();
      std::size_t best = 0;
      for (std::size_t i = 1; i < kLanes; ++i) {
        if (u.count[i].load(std::memory_order_relaxed) <
            u.count[best].load(std::memory_order_relaxed)) {
          best = i;
        }
      }
      u.count[best].fetch_add(1, std::memory_order_relaxed);
      return best;
    }
  };
  static Held& mine() noexcept {
    thread_local Held held;
    return held;
  }
};

// A lock in one byte of the locked object, for lane holders that work on one entry of a
// table (the pool's PeerSlot::busy): held for a few hundred nanoseconds at most.
class ByteLock {
 public:
  explicit ByteLock(std::uint8_t& byte) noexcept : byte_(byte) {
    std::atomic_ref word(byte_);
    for (unsigned spins = 0;; ++spins) {
      std::uint8_t expected = 0;
      if (word.load(std::memory_order_relaxed) == 0 &&
          word.compare_exchange_weak(expected, 1, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
        return;
      }
      if (spins < 256) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
  }
  ~ByteLock() { std::atomic_ref(byte_).store(0, std::memory_order_release); }
  ByteLock(const ByteLock&) = delete;
  ByteLock& operator=(const ByteLock&) = delete;

 private:
  std::uint8_t& byte_;
};

// `Lane` is what a lane holder keeps of its own (counts it adds up for the whole holders to
// read): it shares the cache line of the lane's lock word.
template <class Lane>
class CoreLock {
 public:
  static constexpr std::size_t kLanes = detail::kLanes;
  struct Entered {
    std::size_t index;
    Lane& lane;
  };

  CoreLock() = default;
  CoreLock(const CoreLock&) = delete;
  CoreLock& operator=(const CoreLock&) = delete;

  // --- Whole --------------------------------------------------------------------------
  void lock() noexcept { acquire(false); }
  void unlock() noexcept {
    assert(held_by_me());
#ifndef NDEBUG
    holder_.store(std::thread::id(), std::memory_order_relaxed);
#endif
    // An exchange, not a store: a waiter that set kSleepers before it is woken, one that
    // tries after it finds the state changed and does not sleep.
    if ((state_.exchange(0, std::memory_order_release) & kSleepers) != 0) state_.notify_all();
  }
  // The whole lock again after letting the threads that wait for it (whole or lane) in
  // first: a holder that unlocks and locks again in a loop (a trim's batches) does not
  // starve them.
  void lock_after_waiters() noexcept { acquire(true); }
  // REQUIRES: the whole lock held, lanes closed. Lets lane holders in; other whole
  // holders stay out.
  void open_lanes() noexcept {
    assert(held_by_me());
    if ((state_.exchange(kHeld, std::memory_order_release) & kSleepers) != 0) {
      state_.notify_all();
    }
  }
  // REQUIRES: the whole lock held, lanes open. Returns once no lane is held.
  void close_lanes() noexcept {
    assert(held_by_me());
    wait_for_backed_off();
    state_.fetch_or(kClosed, std::memory_order_seq_cst);
    wait_for_lanes();
  }

  // --- A lane -------------------------------------------------------------------------
  // Enters the calling thread's lane; its Lane is the caller's until leave(index).
  Entered enter() noexcept {
    const std::size_t index = ThreadLane::get();
    Line& line = lines_[index];
    bool counted = false;
    for (;;) {
      take(line);
      if ((state_.load(std::memory_order_seq_cst) & kClosed) == 0) {
        if (counted) waiting_.fetch_sub(1, std::memory_order_release);
        return Entered{index, line.lane};
      }
      line.word.store(0, std::memory_order_release);
      if (!counted) {
        waiting_.fetch_add(1, std::memory_order_acq_rel);
        counted = true;
      }
      wait_until([](std::uint32_t state) { return (state & kClosed) == 0; });
    }
  }
  void leave(std::size_t index) noexcept { lines_[index].word.store(0, std::memory_order_release); }
  // REQUIRES: the whole lock held (lanes closed).
  const Lane& lane(std::size_t index) const noexcept { return lines_[index].lane; }

 private:
  // The state word: a whole holder (kHeld) with the lanes closed (kClosed),
  // and whether somebody sleeps on the word (kSleepers).
  static constexpr std::uint32_t kClosed = 1;
  static constexpr std::uint32_t kHeld = 2;
  static constexpr std::uint32_t kSleepers = 4;
  // How long a waiter spins before it yields (a lane) or sleeps (the state word): lane
  // holders hold for well under a microsecond, a whole holder longer.
  static constexpr unsigned kSpins = 256;
  static constexpr unsigned kSpinsBeforeSleep = 16384;

  struct alignas(64) Line {
    std::atomic<std::uint32_t> word{0};  // 1 while the lane is held
    Lane lane{};
  };
  static_assert(sizeof(Line) == 64, "a lane's data must fit its lock word's cache line");

  static void backoff(unsigned spins) noexcept {
    if (spins < kSpins) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  static void take(Line& line) noexcept {
    for (unsigned spins = 0;; ++spins) {
      std::uint32_t expected = 0;
      if (line.word.load(std::memory_order_relaxed) == 0 &&
          line.word.compare_exchange_weak(expected, 1, std::memory_order_seq_cst,
                                          std::memory_order_relaxed)) {
        return;
      }
      backoff(spins);
    }
  }
  void acquire(bool after_waiters) noexcept {
    bool counted = false;
    for (unsigned spins = 0;; ++spins) {
      // Others waiting: not counting this thread, once it counts itself.
      if (after_waiters && whole_waiting_.load(std::memory_order_acquire) > (counted ? 1u : 0u)) {
        backoff(spins);
        continue;
      }
      std::uint32_t seen = state_.load(std::memory_order_relaxed);
      if ((seen & kHeld) == 0) {
        wait_for_backed_off();
        if (state_.compare_exchange_weak(seen, kHeld | kClosed, std::memory_order_seq_cst,
                                         std::memory_order_relaxed)) {
          break;
        }
        continue;
      }
      if (!counted) {
        whole_waiting_.fetch_add(1, std::memory_order_acq_rel);
        counted = true;
      }
      wait_until([](std::uint32_t state) { return (state & kHeld) == 0; });
    }
    if (counted) whole_waiting_.fetch_sub(1, std::memory_order_release);
#ifndef NDEBUG
    holder_.store(std::this_thread::get_id(), std::memory_order_relaxed);
#endif
    wait_for_lanes();
  }
#ifndef NDEBUG
  bool held_by_me() const noexcept {
    return holder_.load(std::memory_order_relaxed) == std::this_thread::get_id() &&
           (state_.load(std::memory_order_relaxed) & kHeld) != 0;
  }
#endif
  // Lane holders that backed off go before the lanes close again.
  void wait_for_backed_off() noexcept {
    for (unsigned spins = 0; waiting_.load(std::memory_order_acquire) != 0; ++spins) {
      backoff(spins);
    }
  }
  void wait_for_lanes() noexcept {
    // One pass without a branch per lane first: a whole section costs as much as a mutex
    // only while the loads overlap.
    std::uint32_t any = 0;
    for (const Line& line : lines_) any |= line.word.load(std::memory_order_seq_cst);
    if (any == 0) return;
    for (Line& line : lines_) {
      for (unsigned spins = 0; line.word.load(std::memory_order_seq_cst) != 0; ++spins) {
        backoff(spins);
      }
    }
  }
  // Until `ready(state)`: spins a while (a batch of a trim is short), then sleeps.
  template <class Ready>
  void wait_until(Ready ready) noexcept {
    for (unsigned spins = 0;; ++spins) {
      std::uint32_t seen = state_.load(std::memory_order_acquire);
      if (ready(seen)) return;
      if (spins < kSpinsBeforeSleep) {
        cpu_relax();
        continue;
      }
      if ((seen & kSleepers) == 0 &&
          !state_.compare_exchange_weak(seen, seen | kSleepers, std::memory_order_acq_rel)) {
        continue;
      }
      state_.wait(seen | kSleepers, std::memory_order_acquire);
    }
  }

  alignas(64) std::atomic<std::uint32_t> state_{0};
  std::atomic<std::uint32_t> waiting_{0};        // lane holders that backed off, not yet in
  std::atomic<std::uint32_t> whole_waiting_{0};  // threads waiting for the whole lock
  std::array<Line, kLanes> lines_{};
#ifndef NDEBUG
  std::atomic<std::thread::id> holder_{};  // the whole holder, for assertions
#endif
};

}  // namespace dep2p::connmgr::detail
