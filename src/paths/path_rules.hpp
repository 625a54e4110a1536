// The rules that decide between a peer's paths (docs/design.md, "Keepalive, idle and
// paths"), as pure functions of the paths' facts: which path the per-peer cap closes first,
// and which connection a simultaneous open keeps.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <tuple>

#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr::detail {

// What the rules read of one path.
struct PathFacts {
  PathKind path;
  Duration srtt;  // zero: not measured yet
  ConnectionId id;
  Direction direction;
};

// How bad a path is, for the per-peer cap: relay before direct, unmeasured before
// measured, slower before faster, newer before older. Larger is worse.
inline std::tuple<int, int, Duration, std::uint64_t> badness(const PathFacts& p) {
  return {p.path == PathKind::relay ? 1 : 0, p.srtt == Duration::zero() ? 1 : 0, p.srtt,
          static_cast<std::uint64_t>(p.id)};
}

// A simultaneous open: of two connections of the same path kind in opposite directions,
// both sides keep the one dialed by the higher NodeId. Returns the direction kept here.
inline Direction simultaneous_open_keeps(const NodeId& local, const NodeId& remote) {
  return local > remote ? Direction::outbound : Direction::inbound;
}

// Whether `fresh` and `old` are the two halves of a simultaneous open.
inline bool simultaneous_open(const PathFacts& fresh, const PathFacts& old) {
  return old.path == fresh.path && old.direction != fresh.direction;
}

}  // namespace dep2p::connmgr::detail
