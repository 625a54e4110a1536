#include "trim/in_place.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "trim/value_buckets.hpp"

namespace dep2p::connmgr::detail {

namespace {

// One pass over the candidates, noting per slot what the ranking reads again.
struct Noted {
  // weight[slot]: the candidate's connections, saturated at 255 (0: not a candidate; a
  // candidate is connected, so it holds at least one).
  std::vector<std::uint8_t> weight;
  // keys[slot]: the candidate's value key as an offset from `base` (the first candidate's
  // key less 2^31). When some key lies further than that from the first (tag sums spread
  // over more than 2^31: `wide`), keys are read from the pool instead.
  std::vector<std::uint32_t> keys;
  std::uint64_t base = 0;
  bool wide = false;
  bool saturated = false;  // some candidate holds 255 connections or more
  std::uint64_t lo = UINT64_MAX;
  std::uint64_t hi = 0;
  std::size_t candidates = 0;
  std::size_t connections = 0;

  std::size_t connections_of(const Pool& pool, std::size_t slot) const {
    return weight[slot] == 255 ? pool.peer(static_cast<std::uint32_t>(slot)).conns.size()
                               : weight[slot];
  }
};

Noted note_candidates(const CandidateView& view) {
  const std::size_t slots = view.peer_slots();
  Noted n;
  n.weight.assign(slots, 0);
  n.keys.resize(slots);
  // The walk keeps its running figures in locals: stores through the one-byte weights may
  // alias any memory, so fields of `n` would be reloaded and stored at every candidate.
  std::uint8_t* const weight = n.weight.data();
  std::uint32_t* const keys = n.keys.data();
  std::uint64_t base = 0;
  bool wide = false;
  bool saturated = false;
  std::uint64_t lo = UINT64_MAX;
  std::uint64_t hi = 0;
  std::size_t candidates = 0;
  std::size_t connections = 0;
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
    connections += count;
    weight[slot] = static_cast<std::uint8_t>(std::min<std::size_t>(count, 255));
    saturated = saturated || count >= 255;
  });
  n.base = base;
  n.wide = wide;
  n.saturated = saturated;
  n.lo = lo;
  n.hi = hi;
  n.candidates = candidates;
  n.connections = connections;
  return n;
}

// Orders the boundary bucket's peers and returns how many of them go, the first `wanted`
// connections' worth (the last one in part when the rule allows it). `tied` is left with
// the ones taken first.
std::size_t take_tied(const CandidateView& view, const Noted& n, std::vector<RankKey>& tied,
                      bool multi, std::size_t wanted, const TrimTarget& rule, VictimSlots& out) {
  std::size_t taken = 0;
  if (!multi) {
    // One connection each: exactly `wanted` of them go, in any order.
    taken = std::min(wanted, tied.size());
    if (taken < tied.size()) {
      std::nth_element(tied.begin(), tied.begin() + static_cast<std::ptrdiff_t>(taken), tied.end());
    }
    return taken;
  }
  std::sort(tied.begin(), tied.end());
  std::size_t covered = 0;
  while (taken < tied.size() && covered < wanted) {
    const std::size_t count = n.connections_of(view.pool(), tied[taken].index);
    if (rule.partial() && covered + count > wanted) {
      out.partial_slot = tied[taken].index;
      out.partial_count = wanted - covered;
    }
    covered += count;
    ++taken;
  }
  return taken;
}

// Merges the first `taken` of `tied` into the slot-ordered `slots`, from the back, in place.
void merge_by_slot(std::vector<std::uint32_t>& slots, std::vector<RankKey>& tied,
                   std::size_t taken) {
  std::sort(tied.begin(), tied.begin() + static_cast<std::ptrdiff_t>(taken),
            [](const RankKey& a, const RankKey& b) { return a.index < b.index; });
  std::size_t from = slots.size();
  std::size_t to = from + taken;
  slots.resize(to);
  while (taken > 0) {
    const std::uint32_t next = tied[taken - 1].index;
    if (from > 0 && slots[from - 1] > next) {
      slots[--to] = slots[--from];
    } else {
      slots[--to] = next;
      --taken;
    }
  }
}

}  // namespace

VictimSlots rank_in_place(const CandidateView& view, const TrimTarget& rule, std::size_t& target,
                          const DiversityRule* diversity) {
  VictimSlots out;
  const Pool& pool = view.pool();
  const std::size_t slots = view.peer_slots();
  Noted n = note_candidates(view);
  const std::vector<std::uint8_t>& weight = n.weight;
  std::vector<std::uint32_t>& keys = n.keys;
  // The loops below read keys through these locals rather than through `n` (see
  // note_candidates()).
  const bool wide = n.wide;
  const std::uint64_t base = n.base;
  const std::uint32_t* const offsets = keys.data();
  auto key_at = [&](std::size_t slot) {
    return wide ? value_key(view.value(pool.peer(static_cast<std::uint32_t>(slot))))
                : base + offsets[slot];
  };
  target = rule.of(n.connections);
  if (n.candidates == 0 || target == 0) return out;
  std::size_t victims = 0;        // written over keys[0, victims)
  if (target >= n.connections) {  // every candidate goes, whole
    for (std::size_t slot = 0; slot < slots; ++slot) {
      keys[victims] = static_cast<std::uint32_t>(slot);
      victims += static_cast<std::size_t>(weight[slot] != 0);
    }
    keys.resize(victims);
    out.slots = std::move(keys);
    return out;
  }
  ValueBuckets counted(n.lo, n.hi, n.candidates);
  const ValueBuckets::Index bucket_of = counted.index();
  for (std::size_t slot = 0; slot < slots; ++slot) {
    if (weight[slot] != 0) {
      counted.add(key_at(slot), n.saturated ? n.connections_of(pool, slot) : weight[slot]);
    }
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
  const std::size_t wanted = target - below;  // 1 <= wanted <= the bucket's weight
  const std::size_t taken = diversity != nullptr
                                ? take_diverse(view, *diversity, tied, wanted, rule,
                                               pool.counts().connections > n.connections, out)
                                : take_tied(view, n, tied, tied_multi, wanted, rule, out);
  merge_by_slot(out.slots, tied, taken);
  return out;
}

}  // namespace dep2p::connmgr::detail
