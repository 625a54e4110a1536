#include "admission/limit_checks.hpp"

#include <limits>

namespace dep2p::connmgr::detail {
namespace {

// `used` of `limit` is full: one more does not fit.
std::optional<LimitBreach> over(std::size_t used, std::size_t limit, RefusalReason reason,
                                const std::function<std::string()>& scope, const char* limit_name,
                                const char* what) {
  if (limit == kUnlimited || used < limit) return std::nullopt;
  std::string name = scope();
  std::string text =
      name + " holds " + std::to_string(used) + " of " + std::to_string(limit) + " " + what;
  return LimitBreach{reason, std::move(name), limit_name, std::move(text)};
}

}  // namespace

std::optional<LimitBreach> connection_breach(const ScopeLimits& limits,
                                             const ConnectionCounts& counts, Direction direction,
                                             const std::function<std::string()>& scope) {
  const bool in = direction == Direction::inbound;
  const std::size_t d = in ? 0 : 1;
  if (auto breach =
          over(counts.pending[d], in ? limits.pending_inbound : limits.pending_outbound,
               RefusalReason::pending_limit, scope, in ? "pending_inbound" : "pending_outbound",
               in ? "pending inbound handshakes" : "pending outbound handshakes")) {
    return breach;
  }
  if (auto breach = over(counts.open[d] + counts.pending[d],
                         in ? limits.connections_inbound : limits.connections_outbound,
                         RefusalReason::connection_limit, scope,
                         in ? "connections_inbound" : "connections_outbound",
                         in ? "inbound connections" : "outbound connections")) {
    return breach;
  }
  return over(counts.total_open() + counts.pending[0] + counts.pending[1], limits.connections_total,
              RefusalReason::connection_limit, scope, "connections_total", "connections");
}

std::optional<LimitBreach> stream_breach(const ScopeLimits& system,
                                         const StreamCounts& system_counts, const ScopeLimits& peer,
                                         const StreamCounts& peer_counts, Direction direction,
                                         const std::function<std::string()>& peer_scope) {
  const bool in = direction == Direction::inbound;
  const char* dir_name = in ? "streams_inbound" : "streams_outbound";
  const char* what = in ? "inbound streams" : "outbound streams";
  const std::function<std::string()> system_scope = [] { return std::string("system"); };
  if (auto breach = over(in ? system_counts.in : system_counts.out,
                         in ? system.streams_inbound : system.streams_outbound,
                         RefusalReason::stream_limit, system_scope, dir_name, what)) {
    return breach;
  }
  if (auto breach = over(system_counts.in + system_counts.out, system.streams_total,
                         RefusalReason::stream_limit, system_scope, "streams_total", "streams")) {
    return breach;
  }
  if (auto breach = over(in ? peer_counts.in : peer_counts.out,
                         in ? peer.streams_inbound : peer.streams_outbound,
                         RefusalReason::stream_limit, peer_scope, dir_name, what)) {
    return breach;
  }
  return over(peer_counts.in + peer_counts.out, peer.streams_total, RefusalReason::stream_limit,
              peer_scope, "streams_total", "streams");
}

std::optional<LimitBreach> resource_breach(const ScopeLimits& limits, std::uint64_t memory_held,
                                           std::size_t fds_held, std::uint64_t memory,
                                           std::size_t fds, const std::string& scope) {
  constexpr std::uint64_t kNoMemoryLimit = std::numeric_limits<std::uint64_t>::max();
  // Written so that a huge request cannot wrap the sum around and fit.
  if (limits.memory_bytes != kNoMemoryLimit &&
      (memory > limits.memory_bytes || memory_held > limits.memory_bytes - memory)) {
    return LimitBreach{RefusalReason::memory_limit, scope, "memory_bytes",
                       scope + " holds " + std::to_string(memory_held) + " of " +
                           std::to_string(limits.memory_bytes) + " bytes, " +
                           std::to_string(memory) + " more asked"};
  }
  if (limits.file_descriptors != kUnlimited &&
      (fds > limits.file_descriptors || fds_held > limits.file_descriptors - fds)) {
    return LimitBreach{RefusalReason::fd_limit, scope, "file_descriptors",
                       scope + " holds " + std::to_string(fds_held) + " of " +
                           std::to_string(limits.file_descriptors) + " file descriptors, " +
                           std::to_string(fds) + " more asked"};
  }
  return std::nullopt;
}

}  // namespace dep2p::connmgr::detail
