// PathSelector: which of a peer's connections to use (docs/design.md, "Keepalive, idle and paths").
// A peer may be reached by several connections — direct or through a relay, over TCP or QUIC, IPv4
// or IPv6 — and the selector picks the best one from a snapshot of their paths. The default rules
// are iroh's: a direct path beats a relayed one at once; within a tier the current path
// is kept unless another is at least 5 ms faster; IPv6 gets a 3 ms bias.
//
//   auto selector = dep2p::connmgr::make_default_path_selector();
//   std::size_t best = selector->select(candidates, current);
//
// Thread safety: select() is called without any of the manager's locks held; a selector
// shared by several managers must be thread-safe itself (the default one is stateless).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>

#include "dep2p/connmgr/export.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {

// One usable path to the peer.
struct PathCandidate {
  ConnectionId connection{};
  PathKind kind = PathKind::direct;
  Transport transport = Transport::tcp;
  bool ipv6 = false;
  // Smoothed round-trip time; nullopt until measured (an unmeasured path is ranked after
  // measured ones of its tier, but a direct path still beats any relayed one).
  std::optional<Duration> rtt;
};

struct PathSelectorOptions {
  Duration switch_threshold =
      std::chrono::milliseconds(5);                   // same tier: switch only if this much faster
  Duration ipv6_bias = std::chrono::milliseconds(3);  // subtracted from IPv6 paths' RTT
};

class DEP2P_CONNMGR_EXPORT PathSelector {
 public:
  virtual ~PathSelector() = default;
  // Returns the index into `candidates` of the path to use. `current` is the index of the
  // path in use now, if any, so a selector can be sticky. REQUIRES: !candidates.empty().
  virtual std::size_t select(std::span<const PathCandidate> candidates,
                             std::optional<std::size_t> current) = 0;
};

// The default rules, deterministic and stateless: if any path is direct, the best direct
// path wins, even over a faster current relay. Within that tier paths rank by RTT minus
// `ipv6_bias` for IPv6, unmeasured ones last. A measured current path in the tier is kept
// unless another is faster by at least `switch_threshold`; an unmeasured one yields to any
// measured path. Ties go to the current path, then the lower index. A `current` out of
// range counts as none.
DEP2P_CONNMGR_EXPORT std::shared_ptr<PathSelector> make_default_path_selector(
    PathSelectorOptions options = {});

}  // namespace dep2p::connmgr
