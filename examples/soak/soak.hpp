// Soak: N real p2p::Node instances on loopback, in one process on one io_context, under
// random churn for a bounded time, with the invariants a node operator relies on checked
// every few seconds: each manager's counts equal the connections its node holds, every
// reservation belongs to a connection still in its handshake, and the process's open
// descriptors and resident memory stay within a bound after a warm-up. At the end every
// node stops, the io_context drains, and nothing may be left: no connection, reservation
// or realm binding, and no more descriptors than before the first node started.
//
//   soak::SoakResult r = soak::run_soak({.seconds = 60, .nodes = 16});
//   for (const std::string& line : soak::describe(r)) std::cout << line << "\n";
//   return r.ok() ? 0 : 1;
//
// The nodes: node i listens and dials on 127.40.(i+1).1, its own /24, with small
// watermarks (low 4, high 8, at most 12 connections) so that trims happen, keepalive every
// 250 ms (two misses of 500 ms close a connection) so that a frozen node's connections
// close by keepalive, and realms: "chat" joined by the even nodes, "game" (at most 3
// bound) by every third node, so that connections between members bind to them.
//
// The churn: a timer fires every `action_interval` and does one random action (weights in
// soak.cpp): a running node dials a random other node (a stopped one refuses the connect);
// a node stops, saying goodbye on every connection, and restarts 1-3 s later on its old
// address and port (a new manager); a node freezes (stops answering pings) for 3 s; a
// node tags or untags, protects or unprotects a peer through its manager; a node trims.
// A protected peer that drops is dialed again by the manager (its reconnect).
//
// The checks, every `check_interval`, between two handlers of the io_context:
//   - every running node: manager().connection_count() == session_counts().pooled,
//     stats().reservations <= session_counts().handshaking, and each realm's bound
//     connections <= connection_count();
//   - a node just stopped: its manager holds no connection, reservation or binding;
//   - after the warm-up: open descriptors <= the descriptors at the end of the warm-up +
//     nodes x high_water, and RSS <= the RSS at the end of the warm-up + rss_margin_kib.
// A failed check is a violation (its text kept); the run goes on.
//
// Waiting is never a sleep: the io_context runs with deadlines.
// Thread safety: run_soak() runs everything on the calling thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "dep2p/connmgr/connmgr.hpp"

namespace soak {

namespace cm = dep2p::connmgr;

enum class Action : std::uint8_t {
  dial,
  stop,
  restart,
  freeze,
  unfreeze,
  tag,
  untag,
  protect,
  unprotect,
  trim,
};
inline constexpr std::size_t kActionCount = 10;
std::string_view to_string(Action action);

struct SoakOptions {
  double seconds = 60;         // how long the churn runs
  std::size_t nodes = 16;      // 4..250
  std::uint32_t seed = 1;      // the churn's random choices
  double warmup_seconds = 10;  // no descriptor or memory bound before this
  std::uint32_t check_interval_ms = 2000;
  std::uint32_t action_interval_ms = 30;
  // The RSS allowed above the warm-up value; 0: 32 MiB, or 1 GiB in a sanitizer build
  // (AddressSanitizer's quarantine alone holds up to 256 MiB of freed memory).
  std::uint64_t rss_margin_kib = 0;
  // A line per progress_every_checks checks, and one per phase; null for none.
  std::function<void(const std::string&)> progress;
  std::size_t progress_every_checks = 5;
};

struct SoakResult {
  SoakOptions options;            // as run (rss_margin_kib resolved)
  double seconds = 0;             // wall time of the churn
  std::uint64_t checks = 0;       // check rounds
  std::uint64_t node_checks = 0;  // per-node checks over all rounds
  std::array<std::uint64_t, kActionCount> actions{};
  std::uint64_t dials_connected = 0, dials_failed = 0;

  // Over every manager of the run (a restarted node has a new one), from their stats().
  std::uint64_t connections_opened = 0;  // connections_added
  std::array<std::uint64_t, cm::kCloseReasonCount> closes_by_reason{};
  std::array<std::uint64_t, cm::kRefusalReasonCount> refusals_by_reason{};
  std::uint64_t trims = 0;
  std::uint64_t realm_binds = 0;
  std::uint64_t reconnect_dials = 0;
  std::size_t peak_connections = 0;  // at one node, at a check

  // Open descriptors and RSS (KiB): before the first node, at the end of the warm-up (the
  // bounds' base), the bounds, the highest seen at a check, and after everything ended.
  std::size_t fds_start = 0, fds_warm = 0, fds_bound = 0, fds_peak = 0, fds_end = 0;
  std::uint64_t rss_start = 0, rss_warm = 0, rss_bound = 0, rss_peak = 0, rss_end = 0;

  // After every node stopped and the io_context drained (`drained`: it ran out of work
  // before its deadline): what the managers still held, summed over the nodes.
  bool drained = false;
  std::size_t connections_after = 0, reservations_after = 0, bindings_after = 0;

  std::uint64_t violations = 0;
  std::vector<std::string> violation_texts;  // the first 20

  bool ok() const { return violations == 0; }
};

// Runs the soak; throws std::invalid_argument for options out of range and
// std::runtime_error when a node cannot listen at the start.
SoakResult run_soak(const SoakOptions& options);

// The result as text lines (what the program prints).
std::vector<std::string> describe(const SoakResult& result);

}  // namespace soak
