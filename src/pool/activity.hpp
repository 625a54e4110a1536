// ActivityAccess: a connection's recorded traffic, kept on the host's handle
// (detail::ActivityCell in connection.hpp) so that ConnectionManager::record_activity takes
// none of the manager's locks: calls for different connections never meet. The cell has
// its own one-word lock; everything here takes it, so the manager may read a cell under its
// own lock while another thread records.
#pragma once

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <thread>

#include "dep2p/connmgr/connection.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr::detail {

struct ActivityAccess {
  struct Activity {
    TimePoint last{};         // the last reported bytes, or when the connection was added
    float download_rate = 0;  // bytes per second, smoothed
    float upload_rate = 0;
  };

  static Activity read(const Connection& c) {
    const CellLock lock(c.activity_);
    return {c.activity_.last, c.activity_.download_rate, c.activity_.upload_rate};
  }
  // A connection just added: no traffic yet, active as of `now`.
  static void start(const Connection& c, TimePoint now) {
    const CellLock lock(c.activity_);
    c.activity_.last = now;
    c.activity_.download_rate = 0;
    c.activity_.upload_rate = 0;
  }
  // Exponentially weighted rates with a 10 s time constant: every byte counts 1/tau at
  // first and fades with its age, so the sum estimates bytes per second without dividing
  // by tiny intervals. Reports that arrive out of time order never move `last` back.
  static void record(const Connection& c, TimePoint now, std::uint64_t bytes_in,
                     std::uint64_t bytes_out) {
    constexpr double kTau = 10.0;
    const CellLock lock(c.activity_);
    ActivityCell& cell = c.activity_;
    const double dt = std::chrono::duration<double>(now - cell.last).count();
    const double fade = dt > 0 ? std::exp(-dt / kTau) : 1.0;
    cell.download_rate =
        static_cast<float>(cell.download_rate * fade + static_cast<double>(bytes_in) / kTau);
    cell.upload_rate =
        static_cast<float>(cell.upload_rate * fade + static_cast<double>(bytes_out) / kTau);
    if (now > cell.last) cell.last = now;
  }

 private:
  // Calls for one connection rarely overlap, so the cell's lock spins, yielding.
  class CellLock {
   public:
    explicit CellLock(ActivityCell& cell) : busy_(cell.busy) {
      while (busy_.exchange(true, std::memory_order_acquire)) {
        while (busy_.load(std::memory_order_relaxed)) std::this_thread::yield();
      }
    }
    ~CellLock() { busy_.store(false, std::memory_order_release); }
    CellLock(const CellLock&) = delete;
    CellLock& operator=(const CellLock&) = delete;

   private:
    std::atomic<bool>& busy_;
  };
};

}  // namespace dep2p::connmgr::detail
