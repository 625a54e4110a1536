// Stats: a consistent snapshot of the manager's counters, taken under its lock.
//
//   auto s = manager.stats();
//   std::cout << s.connections << " open, " << s.trims << " trims\n";
//   manager.write_prometheus(std::cout);  // the same in Prometheus text format
//
// The counts by path and state, the RTT summary and the RTT histogram are computed when
// stats() is called, in one pass over the pool (O(connections)): call it for monitoring,
// not per packet. metrics_description.hpp names each metric a Stats yields.
//
// Thread safety: plain values.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "dep2p/connmgr/admission.hpp"
#include "dep2p/connmgr/dial.hpp"
#include "dep2p/connmgr/limits.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {

// The upper bounds (inclusive) of the buckets of every duration histogram: 100 µs to 10 s
// in a 1-2.5-5 series. Fixed, so that the series of different nodes and versions can be
// summed and compared.
inline constexpr std::array<Duration, 16> kDurationBuckets = {
    std::chrono::microseconds(100), std::chrono::microseconds(250),  std::chrono::microseconds(500),
    std::chrono::milliseconds(1),   std::chrono::microseconds(2500), std::chrono::milliseconds(5),
    std::chrono::milliseconds(10),  std::chrono::milliseconds(25),   std::chrono::milliseconds(50),
    std::chrono::milliseconds(100), std::chrono::milliseconds(250),  std::chrono::milliseconds(500),
    std::chrono::seconds(1),        std::chrono::milliseconds(2500), std::chrono::seconds(5),
    std::chrono::seconds(10)};

// Durations counted in the kDurationBuckets: buckets[i] holds the observations d with
// kDurationBuckets[i - 1] < d <= kDurationBuckets[i], buckets.back() those above 10 s (per
// bucket, not cumulative; the Prometheus text accumulates them).
struct DurationHistogram {
  std::array<std::uint64_t, kDurationBuckets.size() + 1> buckets{};
  std::uint64_t count = 0;  // the observations: the sum of the buckets
  Duration sum{};           // of the observations

  void observe(Duration d) noexcept {
    std::size_t i = 0;
    while (i < kDurationBuckets.size() && d > kDurationBuckets[i]) ++i;
    ++buckets[i];
    ++count;
    sum += d;
  }
};

struct Stats {
  // The pool now.
  std::size_t connections = 0;
  std::size_t inbound = 0;
  std::size_t outbound = 0;
  std::size_t peers = 0;            // peers with at least one connection
  std::size_t temporary_peers = 0;  // tagged, not connected (never, or kept by tag_retention)
  std::size_t protected_peers = 0;  // peers with at least one protection (connected or not)
  std::size_t streams = 0;
  // Pooled connections by path kind (direct + relay == connections).
  std::size_t direct = 0;
  std::size_t relay = 0;
  // Connections by lifecycle state: pending ones (track_pending) not yet established, and
  // pooled ones (established + closing == connections; closing: reported by the host).
  std::size_t dialing = 0;
  std::size_t handshaking = 0;
  std::size_t established = 0;
  std::size_t closing = 0;
  // Pooled connections by direction, path kind and state (established or closing) at
  // once, read through pooled(); the three breakdowns above are its sums.
  std::array<std::size_t, 8> pooled_by_kind{};
  // Smoothed keepalive RTTs of the pooled connections that have one (a ping answered).
  struct RttSummary {
    std::size_t count = 0;  // connections measured; min, mean and max are zero when 0
    Duration min{};
    Duration mean{};
    Duration max{};
  };
  RttSummary rtt;
  // The same RTTs as a histogram (its count is rtt.count).
  DurationHistogram rtts;
  // Totals since construction.
  std::uint64_t connections_added = 0;
  std::uint64_t connections_removed = 0;
  std::uint64_t duplicate_reports = 0;  // add/remove reports ignored as duplicate/unknown
  std::uint64_t closure_reports = 0;    // the host's (first) reports of closes the manager made
  std::uint64_t trims = 0;              // trims that ran (joined callers not counted)
  std::uint64_t trims_joined = 0;       // trim() calls that joined a running trim
  // How long each counted trim took, from its start to its last close, on the manager's
  // TimeSource (a ManualTimeSource that nobody advances reads 0).
  DurationHistogram trim_durations;
  std::uint64_t temporary_peers_pruned = 0;  // by a trim or on expiry
  std::uint64_t protections_expired = 0;     // peers whose last timed protection ended
  std::uint64_t decay_ticks = 0;             // ticks that decayed at least one tag
  std::uint64_t pings_sent = 0;              // keepalive pings handed to the host
  std::uint64_t keepalive_misses = 0;        // pings unanswered in time or failed
                                             // (closes: CloseReason::keepalive_timeout)
  // Connections closed by the manager or reported closed by the host, by reason.
  std::array<std::uint64_t, kCloseReasonCount> closes_by_reason{};
  // Admission now: reservations alive and what they hold.
  std::size_t pending_inbound = 0;
  std::size_t pending_outbound = 0;
  std::size_t reservations = 0;
  std::uint64_t memory_reserved = 0;
  std::size_t fds_reserved = 0;
  std::size_t capped_addresses = 0;  // entries in the per-address/subnet cap tables
  // Refusals since construction, by reason.
  std::array<std::uint64_t, kRefusalReasonCount> refusals_by_reason{};
  // Dialing: dials allowed and outcomes the host reported since construction (failures by
  // DialFailure; those reported while offline grew no backoff), and now: the backoff table's
  // entries, the peers in backoff, the dials in flight, whether the node is taken for offline.
  std::uint64_t dial_attempts = 0;  // dials check_dial allowed (the gater included)
  std::uint64_t dial_successes = 0;
  std::array<std::uint64_t, kDialFailureCount> dial_failures{};
  std::uint64_t dial_failures_offline = 0;
  std::size_t backoff_entries = 0;
  std::size_t peers_in_backoff = 0;
  std::size_t dials_in_flight = 0;
  bool offline = false;
  // Dials the manager asked the Dialer for since construction, and how reconnects ended;
  // and now: the reconnects and direct-path jobs waiting or in flight.
  std::uint64_t reconnect_dials = 0;
  std::uint64_t reconnects_succeeded = 0;
  std::uint64_t reconnects_given_up = 0;
  std::uint64_t direct_path_dials = 0;
  std::size_t redials_queued = 0;

  // The configuration in force when the snapshot was taken (set_limits() changes the
  // watermarks at run time): the watermarks, and the system scope's hard limits
  // (kUnlimited: none).
  std::size_t low_water = 0;
  std::size_t high_water = 0;
  ScopeLimits system_limits;

  std::uint64_t refusals(RefusalReason reason) const {
    return refusals_by_reason[static_cast<std::size_t>(reason)];
  }

  std::uint64_t closes(CloseReason reason) const {
    return closes_by_reason[static_cast<std::size_t>(reason)];
  }

  // Pooled connections of that direction, path kind and state; 0 for a state a pooled
  // connection is never in (dialing, handshaking, closed).
  std::size_t pooled(Direction direction, PathKind path, ConnectionState state) const {
    if (state != ConnectionState::established && state != ConnectionState::closing) return 0;
    return pooled_by_kind[pooled_index(direction, path, state == ConnectionState::closing)];
  }
  static constexpr std::size_t pooled_index(Direction direction, PathKind path,
                                            bool closing) noexcept {
    return static_cast<std::size_t>(direction) * 4 + static_cast<std::size_t>(path) * 2 +
           (closing ? 1u : 0u);
  }
};

}  // namespace dep2p::connmgr
