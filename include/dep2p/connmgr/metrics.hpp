// Stats: a consistent snapshot of the manager's counters, taken under its lock.
//
//   auto s = manager.stats();
//   std::cout << s.connections << " open, " << s.trims << " trims\n";
//   manager.write_prometheus(std::cout);  // the same in Prometheus text format
//
// The counts by path and state and the RTT summary are computed when stats() is called,
// in one pass over the pool (O(connections)): call it for monitoring, not per packet.
//
// Thread safety: a plain value.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "dep2p/connmgr/admission.hpp"
#include "dep2p/connmgr/dial.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {

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
  // Smoothed keepalive RTTs of the pooled connections that have one (a ping answered).
  struct RttSummary {
    std::size_t count = 0;  // connections measured; min, mean and max are zero when 0
    Duration min{};
    Duration mean{};
    Duration max{};
  };
  RttSummary rtt;
  // Totals since construction.
  std::uint64_t connections_added = 0;
  std::uint64_t connections_removed = 0;
  std::uint64_t duplicate_reports = 0;  // add/remove reports ignored as duplicate/unknown
  std::uint64_t closure_reports = 0;    // the host's (first) reports of closes the manager made
  std::uint64_t trims = 0;              // trims that ran (joined callers not counted)
  std::uint64_t trims_joined = 0;       // trim() calls that joined a running trim
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

  std::uint64_t refusals(RefusalReason reason) const {
    return refusals_by_reason[static_cast<std::size_t>(reason)];
  }

  std::uint64_t closes(CloseReason reason) const {
    return closes_by_reason[static_cast<std::size_t>(reason)];
  }
};

}  // namespace dep2p::connmgr
