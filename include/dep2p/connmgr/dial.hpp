// Dialing: why a dial failed, and the settings of the backoff the manager keeps per peer
// and per address (docs/design.md, "Dialing"). The host dials; the manager advises
// (check_dial, check_dial_addr) and remembers what the host reports (dial_succeeded,
// dial_failed).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dep2p/connmgr/export.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {

// Why a dial failed, as the host reports it. The kind chooses the backoff's rule.
enum class DialFailure : std::uint8_t {
  error,    // unreachable, reset, refused by the remote's OS: the peer may be gone
  timeout,  // no answer in time: often a slow or lossy path, retried sooner
  refused,  // the remote's limits or gater turned us away (or its realm was full)
};
inline constexpr std::size_t kDialFailureCount = 3;
DEP2P_CONNMGR_EXPORT std::string_view to_string(DialFailure failure) noexcept;

// How a dial in flight ended, for a handler waiting on it (ConnectionManager::wait_dial).
enum class DialOutcome : std::uint8_t {
  succeeded,  // dial_succeeded, or a connection to the peer was added
  failed,     // dial_failed for the peer (or the gater refused the dial after all)
  lapsed,     // no outcome within DialConfig::dial_timeout
  canceled,   // the manager closed
};
DEP2P_CONNMGR_EXPORT std::string_view to_string(DialOutcome outcome) noexcept;

// Why the manager asks the host's Dialer for a dial.
enum class DialPurpose : std::uint8_t {
  reconnect,    // a peer the node keeps (protected, or held) lost its last connection
  direct_path,  // a peer reached only through a relay: try for a direct connection
};
DEP2P_CONNMGR_EXPORT std::string_view to_string(DialPurpose purpose) noexcept;

// What the manager asks the Dialer for.
struct DialRequest {
  NodeId peer;
  DialPurpose purpose = DialPurpose::reconnect;
  // Where the node last reached the peer by dialing it directly, newest first (may be
  // empty: the host's peer store knows more).
  std::vector<Endpoint> addresses;
  std::uint32_t attempt = 1;  // 1 for the first dial of this reconnect or upgrade
};

// The host's dialer (Dependencies::dialer). The library never opens a socket: it asks the
// Dialer, which dials as the host always does (check_dial_addr, the handshake, the staged
// add) and then calls `done` exactly once, from any thread, at any time (inside dial()
// too): with nothing when a connection to the peer was established (and handed to the
// manager), or with why it failed. A dial whose `done` has not come within
// DialConfig::dial_timeout counts as a timeout; its late `done` is ignored. An exception
// from dial() counts as DialFailure::error.
class DEP2P_CONNMGR_EXPORT Dialer {
 public:
  using Done = std::function<void(std::optional<DialFailure> failure)>;
  virtual ~Dialer() = default;
  virtual void dial(const DialRequest& request, Done done) = 0;
};

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

  // --- With a Dialer (Dependencies::dialer); none of this runs without one. ---
  // Reconnecting: a peer that loses its last connection to the remote's side
  // (CloseReason::remote, or keepalive_timeout) while protected — by any tag, or only by
  // one of `reconnect_tags` when that list is not empty — or held (keep_alive(), with
  // `reconnect_held`) is dialed again at once, then after each failure once its backoff
  // ends, at most `reconnect_attempts` times (0: never reconnect). A peer the host or
  // the manager closed itself is not. Protected peers are dialed before held ones.
  bool reconnect_protected = true;
  std::vector<std::string> reconnect_tags;
  bool reconnect_held = true;
  std::uint32_t reconnect_attempts = 8;
  // Dials the manager has in flight at most (reconnects and direct paths). > 0.
  std::size_t max_parallel_dials = 8;
  // Direct paths: for a peer whose connections all go through a relay, a direct dial is
  // asked for when the first relay connection is added, then after each attempt every
  // `direct_path_interval`, doubled after each failure up to `direct_path_interval_max`,
  // until a direct connection exists. 0: never.
  std::chrono::milliseconds direct_path_interval = std::chrono::seconds(60);
  std::chrono::milliseconds direct_path_interval_max = std::chrono::minutes(10);
};

}  // namespace dep2p::connmgr
