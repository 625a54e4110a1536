#include "trim/in_place.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "trim/value_buckets.hpp"

namespace dep2p::connmgr::detail {

VictimSlots rank_in_place(const CandidateView& view, const TrimTarget& rule, std::size_t& target) {
  VictimSlots out;
  const Pool& pool = view.pool();
  const std::size_t slots = view.peer_slots();
  // weight[slot]: the candidate's connections, saturated at 255 (0: not a candidate; a
  // candidate is connected, so it holds at least one).
  std::vector<std::uint8_t> weight(slots, 0);
  // keys[slot]: the candidate's value key as an offset from `base` (the first candidate's
  // key less 2^31). When some key lies further than that from the first (tag sums spread
  // over more than 2^31: `wide`), keys are read from the pool instead.
  std::vector<std::uint32_t> keys(slots);
  std::uint64_t base = 0;
  bool wide = false;
  std::uint64_t lo = UINT64_MAX;
  std::uint64_t hi = 0;
  std::size_t candidates = 0;
  std::size_t candidate_connections = 0;
  bool saturated = false;
  view.for_each([&](std::uint32_t slot, const PeerSlot& entry) {
    const std::uint64_t key = value_key(view.value(entry));
    if (candidates == 0) base = key - (1ULL << 31);
    const std::uint64_t offset = key - base;  // modulo 2^64: exact when it fits
    wide = wide || offset > UINT32_MAX;
    keys[slot] = static_cast<std::uint32_t>(offset);
    lo = std::min(lo, key);
    hi = std::max(hi, key);
    ++candidates;
    const std::size_t count = entry.conns.size();
    candidate_connections += count;
    weight[slot] = static_cast<std::uint8_t>(std::min<std::size_t>(count, 255));
    saturated = saturated || count >= 255;
  });
  auto connections_of = [&](std::size_t slot) -> std::size_t {
    return weight[slot] == 255 ? pool.peer(static_cast<std::uint32_t>(slot)).conns.size()
                               : weight[slot];
  };
  target = rule.of(candidate_connections);
  if (candidates == 0 || target == 0) return out;
  std::size_t victims = 0;                // written over keys[0, victims)
  if (target >= candidate_connections) {  // every candidate goes, whole
    for (std::size_t slot = 0; slot < slots; ++slot) {
      keys[victims] = static_cast<std::uint32_t>(slot);
      victims += static_cast<std::size_t>(weight[slot] != 0);
    }
    keys.resize(victims);
    out.slots = std::move(keys);
    return out;
  }
  auto key_at = [&](std::size_t slot) {
    return wide ? value_key(view.value(pool.peer(static_cast<std::uint32_t>(slot))))
                : base + keys[slot];
  };
  ValueBuckets counted(lo, hi, candidates);
  const ValueBuckets::Index bucket_of = counted.index();
  for (std::size_t slot = 0; slot < slots; ++slot) {
    if (weight[slot] != 0)
      counted.add(key_at(slot), saturated ? connections_of(slot) : weight[slot]);
  }
  const auto [boundary, below] = counted.boundary(target);

  // Values are in random order, so the victims are written without a branch (one that
  // fails half the time costs more than the store). A slot is read before it can be
  // overwritten: victims <= slot. The boundary bucket's own peers are few.
  std::vector<std::uint32_t> tied_slots;
  bool tied_multi = false;
  for (std::size_t slot = 0; slot < slots; ++slot) {
    const bool candidate = weight[slot] != 0;
    const std::size_t bucket = candidate ? bucket_of(key_at(slot)) : boundary + 1;
    keys[victims] = static_cast<std::uint32_t>(slot);
    victims += static_cast<std::size_t>(bucket < boundary);
    if (bucket == boundary) {
      tied_slots.push_back(static_cast<std::uint32_t>(slot));
      tied_multi = tied_multi || weight[slot] > 1;
    }
  }
  keys.resize(victims);
  out.slots = std::move(keys);  // its capacity holds every candidate: no reallocation below

  // The boundary bucket's peers by full key, their entries fetched a few ahead.
  std::vector<RankKey> tied;
  tied.reserve(tied_slots.size());
  for (std::size_t k = 0; k < tied_slots.size(); ++k) {
    if (k + 8 < tied_slots.size()) {
      __builtin_prefetch(&pool.peer(tied_slots[k + 8]));
      __builtin_prefetch(&pool.cold(tied_slots[k + 8]));  // first_seen
    }
    tied.push_back(view.key(tied_slots[k]));
  }
  // The first of them, until they hold `wanted` connections.
  const std::size_t wanted = target - below;  // 1 <= wanted <= the bucket's weight
  std::size_t taken = 0;
  if (!tied_multi) {
    // One connection each: exactly `wanted` of them go, in any order.
    taken = std::min(wanted, tied.size());
    if (taken < tied.size()) {
      std::nth_element(tied.begin(), tied.begin() + static_cast<std::ptrdiff_t>(taken), tied.end());
    }
  } else {
    std::sort(tied.begin(), tied.end());
    std::size_t covered = 0;
    while (taken < tied.size() && covered < wanted) {
      const std::size_t count = connections_of(tied[taken].index);
      if (rule.partial() && covered + count > wanted) {
        out.partial_slot = tied[taken].index;
        out.partial_count = wanted - covered;
      }
      covered += count;
      ++taken;
    }
  }
  // Merge them into the slot-ordered list, from the back, in place.
  std::sort(tied.begin(), tied.begin() + static_cast<std::ptrdiff_t>(taken),
            [](const RankKey& a, const RankKey& b) { return a.index < b.index; });
  std::size_t from = out.slots.size();
  std::size_t to = from + taken;
  out.slots.resize(to);
  while (taken > 0) {
    const std::uint32_t next = tied[taken - 1].index;
    if (from > 0 && out.slots[from - 1] > next) {
      out.slots[--to] = out.slots[--from];
    } else {
      out.slots[--to] = next;
      --taken;
    }
  }
  return out;
}

}  // namespace dep2p::connmgr::detail
