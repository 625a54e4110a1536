// The default trim order's key (docs/design.md, "Trimming"), shared by ScoreTrimmer and the realm
// layer.
#pragma once

#include <cstdint>
#include <tuple>

#include "dep2p/connmgr/trimmer.hpp"

namespace dep2p::connmgr::detail {

// The ranking keys of one candidate, computed once before selection so the comparator
// only compares integers (no locks, no pointer chasing inside std::nth_element).
struct RankKey {
  std::uint64_t value;  // tag sum, mapped to unsigned order: lower value first
  // streams? (1 bit), outbound only? (1 bit), then the stream count: fewer first, or in an
  // emergency more first (streams hold memory, and an emergency is about memory)
  std::uint64_t activity;
  std::uint64_t newer;  // later first_seen first
  std::uint32_t index;  // into snapshot.peers; last tie-break, keeps results stable

  friend bool operator<(const RankKey& a, const RankKey& b) {
    return std::tie(a.value, a.activity, a.newer, a.index) <
           std::tie(b.value, b.activity, b.newer, b.index);
  }
};

// `emergency`: the order of force_trim() (TrimSnapshot::forced).
inline RankKey key_of(const PeerSnapshot& peer, std::uint32_t index, bool emergency = false) {
  constexpr std::uint64_t kSignFlip = 1ULL << 63;
  constexpr std::uint64_t kStreamMask = (1ULL << 62) - 1;
  const std::uint64_t has_streams = peer.streams > 0 ? 1 : 0;
  const std::uint64_t outbound_only = peer.has_inbound ? 0 : 1;
  const std::uint64_t streams = emergency ? kStreamMask - peer.streams : peer.streams;
  const auto ticks = static_cast<std::uint64_t>(peer.first_seen.time_since_epoch().count());
  return RankKey{
      static_cast<std::uint64_t>(peer.value) ^ kSignFlip,
      (has_streams << 63) | (outbound_only << 62) | (streams & kStreamMask),
      ~(ticks ^ kSignFlip),
      index,
  };
}

// RankKey::value alone: the tag sum in unsigned order (lower value first).
inline std::uint64_t value_key(std::int64_t value) {
  return static_cast<std::uint64_t>(value) ^ (1ULL << 63);
}

}  // namespace dep2p::connmgr::detail
