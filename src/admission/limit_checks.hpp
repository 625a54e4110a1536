// The hard limits of docs/design.md, "Admission", as pure functions of counts: each says
// whether one more (connection, stream, reservation) fits a scope, and if not, which
// limit it breaks, in words. No state, no lock, no clock: the caller gathers the counts
// under its lock and turns a breach into a counted, published refusal.
//
//   if (auto breach = system_connection_breach(limits.system, counts, Direction::inbound))
//     return refuse(*breach);  // "system holds 8 of 8 inbound connections"
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "dep2p/connmgr/admission.hpp"
#include "dep2p/connmgr/limits.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr::detail {

// A limit that one more would break.
struct LimitBreach {
  RefusalReason reason;
  std::string scope;  // "system", "peer 12*X3p9Vb"
  std::string limit;  // the ScopeLimits field, e.g. "connections_inbound"
  std::string text;   // "system holds 8 of 8 inbound connections"
};

// Connections of one scope, open and pending, by direction ([0] inbound, [1] outbound).
struct ConnectionCounts {
  std::size_t open[2] = {0, 0};
  std::size_t pending[2] = {0, 0};
  std::size_t total_open() const { return open[0] + open[1]; }
};

// Streams of one scope by direction.
struct StreamCounts {
  std::size_t in = 0;
  std::size_t out = 0;
};

// Room for one more connection in `direction` in one scope, pending ones counted: the
// pending limit, then the direction's cap, then the total. `scope` names the scope
// ("system", "peer 12*X3p9Vb") and is called only when a limit is broken.
std::optional<LimitBreach> connection_breach(const ScopeLimits& limits,
                                             const ConnectionCounts& counts, Direction direction,
                                             const std::function<std::string()>& scope);
// Room for one more stream in `direction`: the system's direction cap and total, then the
// peer's.
std::optional<LimitBreach> stream_breach(const ScopeLimits& system,
                                         const StreamCounts& system_counts, const ScopeLimits& peer,
                                         const StreamCounts& peer_counts, Direction direction,
                                         const std::function<std::string()>& peer_scope);
// Room for `memory` more bytes and `fds` more descriptors in one scope, named `scope`.
std::optional<LimitBreach> resource_breach(const ScopeLimits& limits, std::uint64_t memory_held,
                                           std::size_t fds_held, std::uint64_t memory,
                                           std::size_t fds, const std::string& scope);

}  // namespace dep2p::connmgr::detail
