// Hard limits (docs/design.md, "Admission"): what the node can afford, per scope (system ⊇ peer;
// realms join later), per IP address and subnet, and per unit of time. Admission refuses what would
// exceed them, naming the scope and the limit; the soft watermarks of Config are validated against
// them so the two can never contradict each other.
//
//   Limits limits;
//   limits.system.connections_total = 1000;
//   limits.subnets.ipv4_24 = 32;
//   limits.inbound_rate.ipv4_24 = {5.0, 20.0};
//
// Thread safety: plain values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace dep2p::connmgr {

inline constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();

// The limits of one scope. kUnlimited means no limit.
struct ScopeLimits {
  std::size_t connections_inbound = kUnlimited;
  std::size_t connections_outbound = kUnlimited;
  std::size_t connections_total = kUnlimited;
  std::size_t streams_inbound = kUnlimited;
  std::size_t streams_outbound = kUnlimited;
  std::size_t streams_total = kUnlimited;
  // Connections admitted but not yet added (handshakes in progress).
  std::size_t pending_inbound = kUnlimited;
  std::size_t pending_outbound = kUnlimited;
  // Bytes the host reserves through the manager, and file descriptors.
  std::uint64_t memory_bytes = std::numeric_limits<std::uint64_t>::max();
  std::size_t file_descriptors = kUnlimited;
};

// A different connection cap for one prefix, e.g. {"10.0.0.0/8", 1000} for a trusted LAN.
struct PrefixOverride {
  std::string subnet;  // CIDR text
  std::size_t max_connections = 0;
};

// Connections (open and pending) per IP address and per subnet.
struct SubnetCaps {
  std::size_t ipv4_32 = 8;   // per IPv4 address
  std::size_t ipv4_24 = 64;  // per IPv4 /24
  std::size_t ipv6_56 = 8;   // per IPv6 /56
  std::size_t ipv6_48 = 64;  // per IPv6 /48
  bool exempt_loopback = true;
  std::vector<PrefixOverride> overrides;  // the longest matching prefix applies
};

// A token bucket: `per_second` tokens a second, holding at most `burst`. per_second 0
// disables the limit.
struct Rate {
  double per_second = 0;
  double burst = 0;
};

// New inbound connections per subnet (each address is charged against both of its
// prefixes), before any handshake.
struct InboundRates {
  Rate ipv4_24{10, 50};
  Rate ipv4_16{100, 500};
  Rate ipv6_64{10, 50};
  Rate ipv6_48{100, 500};
  bool exempt_loopback = true;
  // Buckets kept at most; when full, buckets that refilled completely are dropped first
  // (they are indistinguishable from absent ones).
  std::size_t max_buckets = 65'536;
};

struct Limits {
  ScopeLimits system;
  ScopeLimits peer;
  SubnetCaps subnets;
  InboundRates inbound_rate;
  Rate outbound_dials{0, 0};  // all outbound dials together; disabled by default
};

}  // namespace dep2p::connmgr
