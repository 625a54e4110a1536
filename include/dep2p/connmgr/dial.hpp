// Dialing: why a dial failed, and the settings of the backoff the manager keeps per peer
// and per address (docs/design.md, "Dialing"). The host dials; the manager advises
// (check_dial, check_dial_addr) and remembers what the host reports (dial_succeeded,
// dial_failed).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dep2p::connmgr {

// Why a dial failed, as the host reports it. The kind chooses the backoff's rule.
enum class DialFailure : std::uint8_t {
  error,    // unreachable, reset, refused by the remote's OS: the peer may be gone
  timeout,  // no answer in time: often a slow or lossy path, retried sooner
  refused,  // the remote's limits or gater turned us away (or its realm was full)
};
inline constexpr std::size_t kDialFailureCount = 3;
std::string_view to_string(DialFailure failure) noexcept;

// How a dial in flight ended, for a handler waiting on it (ConnectionManager::wait_dial).
enum class DialOutcome : std::uint8_t {
  succeeded,  // dial_succeeded, or a connection to the peer was added
  failed,     // dial_failed for the peer (or the gater refused the dial after all)
  lapsed,     // no outcome within DialConfig::dial_timeout
  canceled,   // the manager closed
};
std::string_view to_string(DialOutcome outcome) noexcept;

// The backoff: after the n-th failure in a row of a peer (or of one of its addresses) the
// next dial waits base * factor^(n-1), at most max, moved by a random fraction of at most
// ±jitter (so that peers that failed together do not come back together). The rule is the
// last failure's kind's. A peer whose last connection closed for missed keepalives counts
// a dial error; other closes leave no backoff.
struct DialConfig {
  std::chrono::milliseconds error_backoff = std::chrono::seconds(5);
  std::chrono::milliseconds error_backoff_max = std::chrono::minutes(5);
  std::chrono::milliseconds timeout_backoff = std::chrono::seconds(2);
  std::chrono::milliseconds timeout_backoff_max = std::chrono::minutes(1);
  std::chrono::milliseconds refused_backoff = std::chrono::minutes(1);
  std::chrono::milliseconds refused_backoff_max = std::chrono::minutes(30);
  // Growth per failure in a row (>= 1) and the jitter's bound (a fraction in [0, 1)).
  double backoff_factor = 2.0;
  double backoff_jitter = 0.1;
  // An entry whose backoff ended this long ago is forgotten: the next failure starts the
  // sequence again. Must be > 0.
  std::chrono::milliseconds backoff_memory = std::chrono::minutes(10);
  // Peers the backoff table holds at most (the oldest failure goes first when it is
  // full), and addresses per peer (likewise). Both > 0.
  std::size_t max_backoff_peers = 10'000;
  std::size_t max_backoff_addresses = 8;
  // How long a dial check_dial allowed counts as in flight when the host reports no
  // outcome (dial_succeeded, dial_failed, or a connection to the peer). Must be > 0.
  std::chrono::milliseconds dial_timeout = std::chrono::seconds(30);
  // The manager takes the node for offline after this many dial failures in a row with
  // no connection open (as after network_changed(false)): failures then grow nobody's
  // backoff. 0: only network_changed() says so.
  std::uint32_t offline_after_failures = 3;
};

}  // namespace dep2p::connmgr
