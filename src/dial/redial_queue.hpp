// RedialQueue: the dials the manager asks the host's Dialer for — reconnecting the peers it
// keeps, and direct paths for peers reached only through a relay (docs/design.md,
// "Dialing"). Sans-I/O, with no lock of its own: the core calls it under its lock with the
// time, hands the requests it takes to the Dialer once unlocked, and reports back.
//
//   queue.reconnect(peer, RedialQueue::kProtected, addresses, now);
//   for (RedialQueue::Started& s : queue.take(now, still_wanted)) dialer.dial(s.request, ...);
//   queue.finished(peer, serial, failure, now, backoff_end);
//
// One job per peer: a reconnect (the peer has no connection) or a direct path (it has only
// relayed ones). A job waits until it is due, in the order of its priority, then of when
// it fell due; at most `max_parallel` are in flight. A job in flight whose outcome does not
// come within `dial_timeout` lapses as a timeout, and its late outcome is ignored.
//
// Thread safety: none; the owner locks.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "dep2p/connmgr/dial.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr::detail {

class RedialQueue {
 public:
  // Priorities, most urgent first.
  static constexpr std::uint8_t kProtected = 0;
  static constexpr std::uint8_t kHeld = 1;
  static constexpr std::uint8_t kDirectPath = 2;
  static constexpr std::size_t kPriorities = 3;

  struct Settings {
    std::uint32_t reconnect_attempts = 0;
    std::size_t max_parallel = 1;
    Duration dial_timeout{};
    Duration direct_interval{};  // zero: no direct-path jobs
    Duration direct_interval_max{};
    Duration retry_floor{};  // a failed reconnect with no backoff (offline) waits this long
  };
  static Settings settings_of(const DialConfig& config);

  explicit RedialQueue(const Settings& settings) : settings_(settings) {}

  // A dial the caller is to make now.
  struct Started {
    DialRequest request;
    std::uint64_t serial;  // given back to finished()
  };
  // How a job ended, for the caller's counts and events.
  enum class End : std::uint8_t { retry, done, gave_up };

  // The peer lost its last connection and is kept (`priority` kProtected or kHeld): a
  // reconnect due at once. A job of the peer already there stays (a direct-path job
  // becomes this reconnect). Returns whether a job was added or changed.
  bool reconnect(const NodeId& peer, std::uint8_t priority, std::vector<Endpoint> addresses,
                 TimePoint now);
  // The peer is reached only through relays: a direct-path job due at once, unless it
  // has a job.
  bool want_direct(const NodeId& peer, TimePoint now);
  // The job of `peer` ends (the peer is connected, directly for a direct-path job; the
  // host closed it; it no longer qualifies). A dial in flight finishes unheard. Returns
  // what the job was, if there was one.
  struct Ended {
    DialPurpose purpose;
    bool in_flight;
    std::uint32_t attempts;
  };
  std::optional<Ended> cancel(const NodeId& peer);
  void cancel_direct(const NodeId& peer);
  void clear();

  // The jobs due at `now` that fit under the parallel bound, most urgent first, marked in
  // flight. `admit(peer, purpose)` decides each: `dial` takes it; `later` leaves it
  // waiting until the time it gives; `drop` ends it.
  struct Admit {
    enum What : std::uint8_t { dial, later, drop } what = dial;
    TimePoint until{};
  };
  std::vector<Started> take(TimePoint now,
                            const std::function<Admit(const NodeId&, DialPurpose)>& admit);
  // The dials in flight whose outcome did not come within the dial timeout at `now`
  // (peer and serial): the caller finishes each as a timeout.
  std::vector<std::pair<NodeId, std::uint64_t>> lapsed(TimePoint now) const;
  // The outcome of the dial `serial` of `peer` (nullopt: succeeded). A reconnect that
  // failed waits for `backoff_end` (or the retry floor) and is dropped after its last
  // attempt; a direct-path job is due again one interval on (doubled per failure in a
  // row). Returns nullopt when `serial` is not the peer's dial in flight (a late outcome).
  struct Finished {
    DialPurpose purpose;
    End end;
    std::uint32_t attempt;
  };
  // The purpose of the dial `serial` of `peer` while it is in flight, else nullopt.
  std::optional<DialPurpose> flying(const NodeId& peer, std::uint64_t serial) const;
  std::optional<Finished> finished(const NodeId& peer, std::uint64_t serial,
                                   std::optional<DialFailure> failure, TimePoint now,
                                   std::optional<TimePoint> backoff_end);
  // Every waiting reconnect falls due at `now` (the network came back).
  void all_due(TimePoint now);

  // When take() or lapsed() next has something to do: the earliest lapse of a dial in
  // flight, or (when `dialing`: the caller takes jobs, and a dial may start) the earliest
  // waiting job's due time.
  std::optional<TimePoint> next_wake(bool dialing = true) const;
  std::size_t size() const noexcept { return jobs_.size(); }
  std::size_t in_flight() const noexcept { return in_flight_; }
  bool empty() const noexcept { return jobs_.empty(); }
  std::optional<DialPurpose> job_of(const NodeId& peer) const;

 private:
  struct Job {
    DialPurpose purpose;
    std::uint8_t priority;
    bool in_flight = false;
    std::uint32_t attempts = 0;  // dials made for this job
    std::uint32_t failures = 0;  // in a row
    std::uint64_t serial = 0;    // of the dial in flight, or of the waiting entry
    TimePoint due{};             // waiting: when due; in flight: when it lapses
    std::vector<Endpoint> addresses;
  };
  using WaitKey = std::pair<TimePoint, std::uint64_t>;  // due, serial

  void wait(const NodeId& peer, Job& job, TimePoint due);
  void unwait(const Job& job);

  Settings settings_;
  boost::unordered_flat_map<NodeId, Job, NodeIdHash> jobs_;
  // Waiting jobs by priority, in due order; dials in flight by lapse time.
  std::array<std::map<WaitKey, NodeId>, kPriorities> waiting_;
  std::map<WaitKey, NodeId> flying_;
  std::size_t in_flight_ = 0;
  std::uint64_t next_serial_ = 0;
};

}  // namespace dep2p::connmgr::detail
