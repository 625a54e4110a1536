// Time sources: where the manager reads the time and arms its timers. Production code
// uses SteadyTimeSource (std::chrono::steady_clock and Asio timers); tests use
// ManualTimeSource, whose time moves only when the test advances it.
//
//   boost::asio::io_context io;
//   auto time = std::make_shared<dep2p::connmgr::ManualTimeSource>(io);
//   ConnectionManager manager(io.get_executor(), config, {.time_source = time});
//   time->advance(std::chrono::seconds(10));  // fires due timers, runs their handlers
//
// Thread safety: now() and make_timer() may be called from any thread. The manager may
// call now() while holding its lock, so an implementation must not call the manager. A Timer object
// is used by one owner (the manager uses it from its strand); its handler runs on the executor
// given to make_timer().
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include <boost/asio/any_io_executor.hpp>

#include "dep2p/connmgr/export.hpp"
#include "dep2p/connmgr/types.hpp"

namespace boost::asio {
class io_context;
}

namespace dep2p::connmgr {

// A one-shot timer. Arming it again replaces the pending wait. The handler is never
// called after cancel() or destruction has returned on the owner's strand.
class DEP2P_CONNMGR_EXPORT Timer {
 public:
  virtual ~Timer() = default;
  virtual void wait_until(TimePoint deadline, std::function<void()> handler) = 0;
  virtual void cancel() = 0;
};

class DEP2P_CONNMGR_EXPORT TimeSource {
 public:
  virtual ~TimeSource() = default;
  virtual TimePoint now() const = 0;
  // The timer's handler is dispatched through `executor` (the manager passes its strand).
  virtual std::unique_ptr<Timer> make_timer(boost::asio::any_io_executor executor) = 0;
};

// Real time: std::chrono::steady_clock and boost::asio::steady_timer.
class DEP2P_CONNMGR_EXPORT SteadyTimeSource final : public TimeSource {
 public:
  TimePoint now() const override;
  std::unique_ptr<Timer> make_timer(boost::asio::any_io_executor executor) override;
};

// Virtual time for tests. Time starts at an arbitrary fixed point and moves only through
// advance(), which steps from one due deadline to the next, posting each due handler to its
// executor and running the io_context's ready handlers before the next step, so a handler
// that re-arms its timer sees the virtual time of the deadline that fired it.
class DEP2P_CONNMGR_EXPORT ManualTimeSource final : public TimeSource {
 public:
  explicit ManualTimeSource(boost::asio::io_context& io);
  ~ManualTimeSource() override;
  ManualTimeSource(const ManualTimeSource&) = delete;
  ManualTimeSource& operator=(const ManualTimeSource&) = delete;

  TimePoint now() const override;
  std::unique_ptr<Timer> make_timer(boost::asio::any_io_executor executor) override;

  // Moves time forward by `by`, firing every timer that falls due on the way.
  void advance(Duration by);
  // Moves time forward by `by` without firing anything, as a stalled executor would see
  // it: timers that fell due fire late, once each, at the next advance() (even advance(0)).
  void jump(Duration by);
  // Runs handlers that are ready now without moving time (e.g. posted work).
  void run_ready();
  // Number of armed timers (for tests of the manager's own timer hygiene).
  std::size_t pending_timers() const;

 private:
  class ManualTimer;
  struct Pending {
    boost::asio::any_io_executor executor;
    std::function<void()> handler;
    ManualTimer* owner;
  };
  void arm(ManualTimer* timer, TimePoint deadline, boost::asio::any_io_executor executor,
           std::function<void()> handler);
  void disarm(ManualTimer* timer);

  boost::asio::io_context& io_;
  mutable std::mutex mutex_;  // the timers; now_ is written under it and read without
  std::atomic<TimePoint> now_;
  std::uint64_t next_sequence_ = 0;
  // Armed timers by (deadline, arming order): fired in that order.
  std::map<std::pair<TimePoint, std::uint64_t>, Pending> pending_;
};

}  // namespace dep2p::connmgr
