// Configuration of a ConnectionManager: watermarks, timing, bounds. A plain value with
// documented defaults (docs/configuration.md) and presets; validate() names the first
// field that is wrong.
//
//   auto config = dep2p::connmgr::Config::preset(dep2p::connmgr::Preset::server);
//   config.grace_period = std::chrono::seconds(30);
//   if (auto error = config.validate()) std::cerr << error->message;
//
// Thread safety: a plain value; copy it freely.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "dep2p/connmgr/dial.hpp"
#include "dep2p/connmgr/export.hpp"
#include "dep2p/connmgr/limits.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {

enum class Preset {
  minimal,  // 10 / 50: embedded devices, tests
  mobile,   // 20 / 100
  desktop,  // 100 / 400: the default
  server,   // 500 / 2000
};

// The diversity rule of a trim (docs/eclipse.md): among the candidates the trim must choose
// between because they are worth the same (equal tag value), a few are kept for coming
// from distinct network groups, for the lowest RTT and for the longest connection, at most
// one per group and at most half of them; the victims are then taken from the network
// group that holds the most of the node's connections. A group is an IPv4 /16 or an IPv6
// /32 by default; 127.0.0.0/8 is grouped by /24 (other /24s of it stand in for other
// networks in tests), ::1 is a group of its own, and an IPv4-mapped address groups as its
// IPv4 address.
struct DiversityConfig {
  bool enabled = true;
  std::uint8_t ipv4_prefix = 16;         // bits of an IPv4 group: 1..32
  std::uint8_t ipv6_prefix = 32;         // bits of an IPv6 group: 1..128
  std::uint8_t loopback_v4_prefix = 24;  // bits of a group within 127.0.0.0/8: 8..32
  // Peers kept for each reason before any victim is chosen; each may be 0.
  std::uint32_t group_slots = 4;  // from the distinct groups first in the node's salted order
  std::uint32_t rtt_slots = 4;    // the lowest keepalive RTT (measured peers only)
  std::uint32_t age_slots = 4;    // the longest connected
  // Of one group's unprotected peers in their grace period, only this many (the first
  // connected) are sheltered by it: the others are candidates of the trims the rule
  // chooses in, like peers out of grace. 0: grace shelters every new peer.
  std::uint32_t grace_per_group = 0;
  // The secret that orders groups for this node (SipHash-2-4 key). None: drawn from
  // std::random_device when the manager starts. Set it only to make runs reproducible
  // (tests, simulations): a peer that knows it can choose addresses this node keeps.
  std::optional<std::uint64_t> salt;
  // Admission, not trimming: connections one network group may hold, inbound and outbound,
  // open and pending together (counted from admit_inbound and check_dial_addr, like the
  // subnet caps); more are refused with RefusalReason::subnet_cap. It applies whether or
  // not `enabled` is set; loopback (when limits.subnets.exempt_loopback), allow-listed
  // addresses and override prefixes are not charged. 0: no cap.
  std::size_t max_per_group = 0;
};

// The first invalid field found by Config::validate().
struct ConfigError {
  std::string field;    // the field's name as spelled in Config, e.g. "low_water"
  std::string message;  // a sentence naming the field, its value and the rule broken
};

struct DEP2P_CONNMGR_EXPORT Config {
  // Trimming starts when the pool holds high_water connections and brings it down to
  // low_water. Either watermark 0 disables trimming.
  std::size_t low_water = 100;
  std::size_t high_water = 400;
  // A peer is not trimmed within this long of its first connection. 0 means no grace.
  std::chrono::milliseconds grace_period = std::chrono::seconds(20);
  // How often the background check compares the pool against high_water. Must be > 0.
  std::chrono::milliseconds silence_period = std::chrono::seconds(10);
  // Upper bound on temporary entries (peers tagged but not connected: never connected,
  // or kept by tag_retention). Must be > 0.
  std::size_t max_temp_peers = 10'000;
  // How long a temporary entry made by tagging a peer with no connection lives (tags set
  // before a dial completes), and how long an entry lives after its last protection ends.
  // Independent of grace_period. Must be > 0.
  std::chrono::milliseconds temp_peer_lifetime = std::chrono::minutes(1);
  // Decaying tags tick this often; shorter intervals are raised to it. Must be > 0.
  std::chrono::milliseconds decay_resolution = std::chrono::minutes(1);
  // A peer whose last connection closed keeps its tags this long, so a quick reconnect
  // keeps its value. 0 (go-libp2p's behaviour): tags go with the last connection.
  std::chrono::milliseconds tag_retention = std::chrono::milliseconds(0);
  // How many peers one protection tag may protect at once; 0 means no cap.
  std::size_t max_peers_per_protection_tag = 0;
  // Keepalive: every established connection is pinged (Connection::ping) this often; a
  // ping unanswered within keepalive_timeout, or answered with an error, is a miss, and
  // keepalive_max_missed misses in a row close the connection (CloseReason::
  // keepalive_timeout). A dead peer is found within max_missed * interval + timeout.
  // keepalive_interval 0 disables keepalive.
  std::chrono::milliseconds keepalive_interval = std::chrono::seconds(5);
  std::chrono::milliseconds keepalive_timeout = std::chrono::seconds(5);
  std::uint32_t keepalive_max_missed = 2;
  // A connection with no streams and no reported activity for this long is closed
  // (CloseReason::idle_timeout) unless its peer is protected or held (keep_alive()).
  // 0 disables the idle check.
  std::chrono::milliseconds idle_timeout = std::chrono::minutes(5);
  // A path that carried nothing (no streams, no activity) this long while its peer has
  // another connection, and is not the peer's best path, is closed
  // (CloseReason::idle_timeout) whatever protects or holds the peer: the peer keeps its
  // other path. 0 disables it.
  std::chrono::milliseconds path_idle_timeout = std::chrono::seconds(15);
  // A connection tracked as pending (track_pending) that is not established within this
  // long is closed (CloseReason::handshake_timeout). Must be > 0.
  std::chrono::milliseconds handshake_timeout = std::chrono::seconds(10);
  // Multipath: connections kept per peer; 0 means no cap. A connection beyond the cap
  // closes the peer's worst path (relay before direct, then the slowest), with
  // CloseReason::redundant_path.
  std::size_t max_connections_per_peer = 2;
  // Automatic upgrade: when a direct connection joins a peer's relayed ones, those become
  // redundant and are closed this long after (CloseReason::redundant_path), unless they
  // still carry streams then (checked again one grace later).
  std::chrono::milliseconds redundant_grace = std::chrono::seconds(30);
  // This node's id. With it, a simultaneous open converges: of two connections of the
  // same path kind in opposite directions, both sides keep the one dialed by the higher
  // NodeId and close the other (CloseReason::duplicate).
  std::optional<NodeId> local_node_id;
  // Hard limits enforced by admission (limits.hpp). Validated against the watermarks.
  Limits limits;
  // Dial backoff, dials in flight, offline (dial.hpp).
  DialConfig dial;
  // Which of equally valued peers a trim takes (docs/eclipse.md).
  DiversityConfig diversity;

  static Config preset(Preset preset);

  // Returns the first rule broken, or nothing when the configuration is usable. Beyond
  // each field's own range it rejects settings that contradict each other: high_water
  // above the system connection cap, a scope's inbound or outbound cap above its total,
  // a peer limit above the system one, an address cap above its subnet's, a rate whose
  // burst cannot admit one connection, a malformed override prefix.
  std::optional<ConfigError> validate() const;
  // One line listing the settings in force, for the log at start.
  std::string describe() const;

 private:
  std::optional<ConfigError> validate_limits() const;
  std::optional<ConfigError> validate_dial() const;
  std::optional<ConfigError> validate_diversity() const;
};

}  // namespace dep2p::connmgr
