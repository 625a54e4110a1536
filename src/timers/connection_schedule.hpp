// ConnectionSchedule: when each connection's time-driven rules fall due — its next
// keepalive ping, the timeout of a ping in flight, its idle check, the close of a relay made
// redundant, the end of a pending handshake — as plain time points (sans-I/O). The manager
// takes what is due at a time, acts on it, and arms its one timer for wake().
//
//   ConnectionSchedule schedule(ScheduleSettings::of(config));
//   schedule.enroll(slot, id, now);                  // a connection joins the pool
//   while (auto due = schedule.pop_ping(now)) ping(*due);
//   timer.wait_until(schedule.wake(now), ...);
//
// Pings, timeouts, redundant closes and handshake ends are `now + a constant interval`, so
// each arrives in time order and sits in a FIFO queue; idle deadlines move with activity
// and sit in a heap, re-checked when they come up. Entries are never searched for: a
// closed connection's entries go stale (the connection id no longer matches its slot) and
// are skipped when they come due, or dropped by compact() once they outnumber the pool.
//
// Thread safety: none; the owner locks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "dep2p/connmgr/config.hpp"
#include "dep2p/connmgr/types.hpp"
#include "timers/deadlines.hpp"

namespace dep2p::connmgr {
class Connection;
}

namespace dep2p::connmgr::detail {

// One connection's deadline.
struct ConnectionDue {
  TimePoint at;
  std::uint32_t slot;      // the connection's slot in the pool
  ConnectionId id;         // tells the connection in the slot now from an earlier one
  std::uint32_t sequence;  // timeouts: the ping they judge
};

// A pending connection's handshake deadline.
struct HandshakeDue {
  TimePoint at;
  const Connection* key;
  std::uint64_t serial;  // tells the pending entry it was made for from a later one
};

// The intervals the schedule keeps; zero disables a rule (but the handshake timeout).
struct ScheduleSettings {
  Duration ping_interval{};
  Duration ping_timeout{};
  Duration idle_timeout{};
  Duration redundant_grace{};
  Duration handshake_timeout{};
  Duration path_idle_timeout{};

  static ScheduleSettings of(const Config& config) {
    return {config.keepalive_interval, config.keepalive_timeout, config.idle_timeout,
            config.redundant_grace,    config.handshake_timeout, config.path_idle_timeout};
  }
};

class ConnectionSchedule {
 public:
  explicit ConnectionSchedule(ScheduleSettings settings) : settings_(settings) {}

  bool keepalive_on() const { return settings_.ping_interval.count() > 0; }
  bool idle_on() const { return settings_.idle_timeout.count() > 0; }
  const ScheduleSettings& settings() const { return settings_; }

  // A connection joins the pool: its first ping and its idle check.
  void enroll(std::uint32_t slot, ConnectionId id, TimePoint now) {
    if (keepalive_on()) pings_.push({now + settings_.ping_interval, slot, id, 0});
    if (idle_on()) idle_.push({now + settings_.idle_timeout, slot, id, 0});
  }
  // The ping of `due` came up: the next one is one interval after it.
  void ping_again(const ConnectionDue& due) {
    pings_.push({due.at + settings_.ping_interval, due.slot, due.id, 0});
  }
  // A ping went out at `now`: its answer is due one timeout later.
  void ping_sent(std::uint32_t slot, ConnectionId id, std::uint32_t sequence, TimePoint now) {
    timeouts_.push({now + settings_.ping_timeout, slot, id, sequence});
  }
  // Look at the connection's idleness again at `at`. A path check (`path`) judges it as
  // one of its peer's several paths (Config::path_idle_timeout); pop_idle() returns both
  // kinds, told apart by ConnectionDue::sequence (kPathCheck).
  static constexpr std::uint32_t kPathCheck = 1;
  void idle_check(std::uint32_t slot, ConnectionId id, TimePoint at, bool path = false) {
    idle_.push({at, slot, id, path ? kPathCheck : 0});
  }
  // A relay made redundant at `now` closes one grace later (unless it still carries
  // streams then: the caller asks again).
  void redundant(std::uint32_t slot, ConnectionId id, TimePoint now) {
    redundant_.push({now + settings_.redundant_grace, slot, id, 0});
  }
  // A pending connection's handshake must end within the timeout.
  void handshake(const Connection* key, std::uint64_t serial, TimePoint now) {
    handshakes_.push({now + settings_.handshake_timeout, key, serial});
  }

  std::optional<ConnectionDue> pop_timeout(TimePoint now) { return timeouts_.pop_due(now); }
  std::optional<ConnectionDue> pop_ping(TimePoint now) { return pings_.pop_due(now); }
  std::optional<ConnectionDue> pop_idle(TimePoint now) { return idle_.pop_due(now); }
  std::optional<ConnectionDue> pop_redundant(TimePoint now) { return redundant_.pop_due(now); }
  std::optional<HandshakeDue> pop_handshake(TimePoint now) { return handshakes_.pop_due(now); }

  // The earliest deadline of any kind; TimePoint::max() when there is none.
  TimePoint next() const {
    return std::min(
        {pings_.next(), timeouts_.next(), idle_.next(), redundant_.next(), handshakes_.next()});
  }
  // The grid the one timer fires on: a fiftieth of the shortest interval in use (at least
  // 1 ms), so that the deadlines of thousands of connections share a wake-up.
  Duration tick() const {
    Duration base = Duration::max();
    if (keepalive_on()) base = std::min(base, settings_.ping_interval);
    if (idle_on()) base = std::min(base, settings_.idle_timeout);
    if (settings_.path_idle_timeout.count() > 0) {
      base = std::min(base, settings_.path_idle_timeout);
    }
    if (settings_.redundant_grace.count() > 0) base = std::min(base, settings_.redundant_grace);
    base = std::min(base, settings_.handshake_timeout);
    if (base == Duration::max()) base = std::chrono::seconds(1);
    return std::max<Duration>(std::chrono::milliseconds(1), base / 50);
  }
  // When the timer should fire next, on the tick grid; nullopt when nothing is scheduled.
  std::optional<TimePoint> wake(TimePoint now) const {
    const TimePoint at = next();
    if (at == TimePoint::max()) return std::nullopt;
    return wake_time(at, tick(), now);
  }

  // Entries of connections, all kinds but handshakes.
  std::size_t size() const {
    return pings_.size() + timeouts_.size() + idle_.size() + redundant_.size();
  }
  // Closed connections leave their entries until they come due; under churn that could be
  // many intervals' worth. When one queue holds more than twice the open connections (plus
  // a margin), its stale entries (live(slot, id) false) are dropped in one pass: amortised
  // O(1) per close, and the schedule stays proportional to the pool.
  template <class Live>
  void compact_if_stale(std::size_t connections, Live&& live) {
    const std::size_t bound = 2 * connections + 64;
    auto stale = [&](const ConnectionDue& d) { return !live(d.slot, d.id); };
    if (pings_.size() > bound) pings_.erase_if(stale);
    if (redundant_.size() > bound) redundant_.erase_if(stale);
    if (timeouts_.size() > bound) timeouts_.erase_if(stale);
    if (idle_.size() > bound) idle_.erase_if(stale);
  }

 private:
  ScheduleSettings settings_;
  FifoDeadlines<ConnectionDue> pings_;      // next ping per connection
  FifoDeadlines<ConnectionDue> timeouts_;   // answers due, per ping in flight
  HeapDeadlines<ConnectionDue> idle_;       // idle checks; they move with activity
  FifoDeadlines<ConnectionDue> redundant_;  // relays closing after a direct path arrived
  FifoDeadlines<HandshakeDue> handshakes_;  // pending connections' deadlines
};

}  // namespace dep2p::connmgr::detail
