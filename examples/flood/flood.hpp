// Flood: one node (the victim, a p2p::Node) under a connection flood from many /24s of
// 127.0.0.0/8 while honest peers on other /24s keep dialing it, all over real TCP on
// loopback in one process. It measures what share of the honest dials the victim admits,
// how long an honest dial takes to be admitted, what the victim refuses and why, and the
// victim thread's CPU; then, with everything stopped and closed, that the victim's manager
// holds no connection, reservation or cap entry and that the process holds no more file
// descriptors than before.
//
//   flood::FloodResult r = flood::run_flood({.seconds = 20, .honest = 50, .subnets = 20});
//   if (!r.ok()) return 1;  // an honest share under 95%, or a leak
//
// The victim listens on 127.1.0.1 with the library's default limits, except that loopback
// is not exempt from the per-address and per-subnet caps and the inbound rates
// (limits.subnets.exempt_loopback and limits.inbound_rate.exempt_loopback are false): the
// other /24s of 127/8 stand in for other subnets, so the caps and rates apply as they
// would to real ones.
//
// Threads: the victim runs on one thread with its own io_context, the honest peers on a
// second, the flooders on a third; each node is called only from its own thread (the
// others ask through posted calls).
//   - Honest peer i is a dial-only p2p::Node on 127.(10+i).1.1 (its own /24 and /16): it
//     dials the victim, stays connected for a random 100-400 ms, closes, waits up to
//     100 ms and dials again; after a refused or failed dial it waits 100-300 ms.
//   - Flooder subnet k is 127.(100+k).0.0/24 with `flooders_per_subnet` source addresses
//     (.1, .2, ...). Its sockets (`in_flight` over all subnets) each loop as fast as they
//     can: bind to a source address, connect, then either send a malformed hello or send
//     nothing and hold the socket, read until the victim closes it, close, reconnect.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "dep2p/connmgr/connmgr.hpp"

namespace flood {

namespace cm = dep2p::connmgr;

struct FloodOptions {
  double seconds = 20;                  // how long the flood runs
  std::size_t honest = 50;              // honest peers, at most 90
  std::size_t subnets = 20;             // flooding /24s, at most 100; 0: no flood (a baseline)
  std::size_t flooders_per_subnet = 4;  // source addresses per flooding /24, at most 250
  // Flood sockets open at once over all subnets (spread evenly); lowered to what the
  // process's descriptor limit allows (each can hold a descriptor at both ends).
  std::size_t in_flight = 2000;
  // After `seconds`, the honest dials still in flight get this long, the flood still on,
  // to finish; those that do not count as failed.
  double honest_grace_seconds = 5;
  std::uint32_t seed = 1;
  // A line a second while the flood runs, and one per phase; null for none.
  std::function<void(const std::string&)> progress;
};

// One second of the run (counters are totals since the flood started).
struct Sample {
  double t = 0;  // seconds since the flood started
  std::uint64_t honest_dials = 0, honest_admitted = 0;
  std::uint64_t flood_attempts = 0, flood_connected = 0, flood_answered = 0;
  std::uint64_t victim_refusals = 0;  // all reasons
  std::size_t victim_connections = 0, victim_pending_inbound = 0;
};

struct FloodResult {
  FloodOptions options;      // as run (in_flight after the descriptor limit)
  double flood_seconds = 0;  // wall time from the flood's start to its stop
  // The descriptor limit: the soft limit found, and the one in force (raised to the hard).
  std::uint64_t fd_soft_limit_before = 0, fd_soft_limit = 0;

  // Honest dials that reached the victim's admission (started before the flood stopped;
  // dials their own node refused before connecting are counted apart).
  std::uint64_t honest_dials = 0;
  std::uint64_t honest_admitted = 0;
  std::uint64_t honest_refused = 0;         // the victim's goodbye turned the dial away
  std::uint64_t honest_failed = 0;          // connect errors, and dials unfinished in time
  std::uint64_t honest_local_refusals = 0;  // the honest node's own check_dial refused
  std::map<std::string, std::uint64_t> honest_failures;  // why (digits elided) -> count
  double honest_share() const {
    return honest_dials == 0
               ? 0.0
               : static_cast<double>(honest_admitted) / static_cast<double>(honest_dials);
  }
  // From dial() to its `done` for the admitted honest dials, in milliseconds.
  double latency_p50_ms = 0, latency_p99_ms = 0, latency_max_ms = 0;

  // The flood, as the flooders saw it: sockets that tried to connect, connects that
  // completed, and connections the victim answered (it accepted them: its goodbye or its
  // close came back), of those refused at accept (goodbye: limit_exceeded or gated) and
  // admitted then dropped (for the malformed hello, or no hello in time).
  std::uint64_t flood_attempts = 0;
  std::uint64_t flood_connect_errors = 0;
  std::uint64_t flood_connected = 0;
  std::uint64_t flood_answered = 0;
  std::uint64_t flood_refused_at_accept = 0;
  std::uint64_t flood_admitted_then_dropped = 0;

  // The victim's manager: refusals by reason over the whole run, and its peak pool.
  std::array<std::uint64_t, cm::kRefusalReasonCount> refusals_by_reason{};
  std::uint64_t victim_refusals() const;
  // The victim thread's CPU time over the flood (CLOCK_THREAD_CPUTIME_ID), and as a share
  // of the flood's wall time (1.0: one core busy all along).
  double victim_cpu_seconds = 0;
  double victim_cpu_share() const {
    return flood_seconds > 0 ? victim_cpu_seconds / flood_seconds : 0.0;
  }
  double process_cpu_seconds = 0;  // the whole process (every thread) over the flood

  // After the flooders and honest peers closed everything (before the victim stopped):
  // the victim's pool, live reservations and cap-table entries; all must be 0. `drained`:
  // they reached 0 before the deadline.
  std::size_t connections_after = 0, reservations_after = 0, capped_after = 0;
  std::size_t pending_inbound_after = 0;
  bool drained = false;
  // Open descriptors (/proc/self/fd) at the start and after everything was destroyed.
  std::size_t fds_before = 0, fds_after = 0;

  std::vector<Sample> samples;  // one a second

  bool leaked() const {
    return !drained || connections_after != 0 || reservations_after != 0 || capped_after != 0 ||
           pending_inbound_after != 0 || fds_after != fds_before;
  }
  static constexpr double kHonestTarget = 0.95;
  bool ok() const { return honest_share() >= kHonestTarget && !leaked(); }
};

// Runs the flood; throws std::invalid_argument for options out of range and
// std::runtime_error when the victim cannot listen.
FloodResult run_flood(const FloodOptions& options);

// The result as a table of text lines (what the program prints).
std::vector<std::string> describe(const FloodResult& result);
// The samples as CSV, a header line first.
std::string samples_csv(const FloodResult& result);

}  // namespace flood
