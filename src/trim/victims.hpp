// VictimSlots: the peers a trim closes, as the pool's slots in ascending order (the commit
// then walks the pool's memory forward instead of jumping around it in rank order).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dep2p::connmgr::detail {

struct VictimSlots {
  std::vector<std::uint32_t> slots;  // ascending
  // When not empty, each slot's generation when it was chosen: a slot released or reused
  // since is skipped.
  std::vector<std::uint32_t> generations;
  std::uint32_t partial_slot = UINT32_MAX;  // gives up only partial_count connections
  std::size_t partial_count = 0;
};

// How many connections a trim closes, and whether its last peer may give up only some.
struct TrimTarget {
  enum class Kind : std::uint8_t {
    watermark,  // the candidates' connections above low water (protected and in-grace
                // connections do not count toward the target)
    exact,      // trim_connections(): `count`, the last peer possibly in part
    fixed,      // force_trim(): `count`, whole peers
  };
  Kind kind = Kind::watermark;
  std::size_t count = 0;
  std::size_t low_water = 0;

  std::size_t of(std::size_t candidate_connections) const {
    if (kind != Kind::watermark) return count;
    return candidate_connections >= low_water ? candidate_connections - low_water : 0;
  }
  bool partial() const { return kind == Kind::exact; }
};

}  // namespace dep2p::connmgr::detail
