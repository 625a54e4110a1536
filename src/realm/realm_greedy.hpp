// The node trim's greedy over realm pools (see RealmConnectionManager::State::rank and
// docs/architecture.md, "Realms"): the types it works on and the step-at-a-time run
// (realm/realm_by_level.hpp holds the level-at-a-time one). Header-only so that tests can
// run both on the same input.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace dep2p::connmgr::detail::realm_greedy {

// A candidate of the node's trim, as the greedy reads it from its pool: everything it needs of
// its peer, so that taking a victim reads no other array at random. 32 bytes: the default
// key's activity (detail::RankKey: has streams, outbound only, then the stream count or, in
// an emergency, its complement) is kept as the low 32 bits of that count and two bits,
// which leaves room for the connections the peer has bound to this pool (a peer in several
// pools has a copy in each, each with its own count).
struct Contender {
  std::uint64_t value;
  std::uint64_t newer;
  std::uint32_t index;  // the candidate's index (a slot, or into snapshot.peers)
  std::uint32_t connections;
  std::uint32_t streams;  // the low 32 bits of the key's stream field
  std::uint32_t bits;     // bit 31: outbound only; bit 30: has streams; the rest: bound here

  static constexpr std::uint32_t kBoundMask = (1U << 30) - 1;
  // The candidate with default key `key` (detail::RankKey's fields), `connections` in all,
  // `bound` of them to this pool. REQUIRES: bound <= kBoundMask (a peer's connections are
  // far fewer), key's stream count below 2^32 (PeerSnapshot::streams is 32 bits), so that
  // the low 32 bits of the stream field order as the whole field does.
  static Contender of(std::uint64_t value, std::uint64_t activity, std::uint64_t newer,
                      std::uint32_t index, std::uint32_t connections, std::uint32_t bound) {
    const auto has_streams = static_cast<std::uint32_t>(activity >> 63);
    const auto outbound_only = static_cast<std::uint32_t>((activity >> 62) & 1);
    return Contender{value,
                     newer,
                     index,
                     connections,
                     static_cast<std::uint32_t>(activity),
                     (outbound_only << 31) | (has_streams << 30) | (bound & kBoundMask)};
  }
  std::uint32_t bound() const { return bits & kBoundMask; }
  // RankKey::activity, rebuilt: the same order.
  std::uint64_t activity() const {
    return (std::uint64_t{(bits >> 30) & 1} << 63) | (std::uint64_t{bits >> 31} << 62) | streams;
  }
  // The default order (detail::RankKey).
  bool operator<(const Contender& o) const {
    if (value != o.value) return value < o.value;
    const std::uint64_t a = activity();
    const std::uint64_t b = o.activity();
    if (a != b) return a < b;
    if (newer != o.newer) return newer < o.newer;
    return index < o.index;
  }
};

// A candidate's realms: its first (pool 0 if it has none) and its connections bound
// there, then its other realms in entries[more, last). Most peers have one realm or none,
// so the greedy reads one entry, fetched ahead, per step. Only stepwise() reads stakes.
struct Stake {
  std::uint32_t pool;
  std::uint32_t bound;
  std::uint32_t more;
  std::uint32_t last;
};

// The unbound connections, or one realm's, in a node trim. Its candidates lie in
// candidates[begin, end); only a prefix [begin, sorted) is in order, grown on demand,
// since the greedy takes only what a pool can give above its floor.
struct Pool {
  std::size_t count = 0;  // bound connections of the realm, candidates or not
  std::size_t share = 0;
  std::size_t reserve = 0;
  std::uint32_t begin = 0;
  std::uint32_t end = 0;
  std::uint32_t sorted = 0;
  std::uint32_t head = 0;  // the next candidate this phase, in [begin, sorted]
  // [sorted, end) is in value order already (counting_sort): only its runs of equal
  // value are left to sort.
  bool by_value = false;
};

// The greedy's order of pool heads: by value, then unbound before bound, then the realm
// with the largest excess over its floor, then the rest of the default order.
struct HeadKey {
  std::uint64_t value;
  std::uint64_t standing;  // 0 unbound; else (1 << 63) | (~excess >> 1)
  std::uint64_t activity;
  std::uint64_t newer;
  std::uint32_t index;
  bool operator<(const HeadKey& o) const {
    if (value != o.value) return value < o.value;
    if (standing != o.standing) return standing < o.standing;
    if (activity != o.activity) return activity < o.activity;
    if (newer != o.newer) return newer < o.newer;
    return index < o.index;
  }
};

// Scratch for the sorts of one ranking.
struct SortScratch {
  std::vector<Contender> spare;
  std::vector<std::uint32_t> counts;
};

// Puts [from, to) in value order by counting, when its values span no more than twice
// its size (tag values usually do); returns whether it did. Ties stay unsorted.
inline bool counting_sort(Contender* from, Contender* to, SortScratch& scratch) {
  constexpr std::size_t kSmall = 64;  // below this, std::sort is as quick
  const auto size = static_cast<std::size_t>(to - from);
  if (size < kSmall) return false;
  const auto [lo, hi] = std::minmax_element(
      from, to, [](const Contender& a, const Contender& b) { return a.value < b.value; });
  const std::uint64_t low = lo->value;
  const std::uint64_t range = hi->value - low;
  if (range > 2 * size) return false;
  auto& counts = scratch.counts;
  counts.assign(range + 2, 0);
  for (const Contender* c = from; c != to; ++c) ++counts[c->value - low + 1];
  for (std::size_t k = 1; k < counts.size(); ++k) counts[k] += counts[k - 1];
  if (scratch.spare.size() < size) scratch.spare.resize(size);
  for (const Contender* c = from; c != to; ++c) scratch.spare[counts[c->value - low]++] = *c;
  std::copy_n(scratch.spare.begin(), size, from);
  return true;
}

// Sorts the next stretch of a pool. On first use a counting sort may put the whole pool
// in value order; then only the run of equal values at `sorted` needs sorting. Otherwise
// (or within a long run) nth_element selects the stretch to sort: first `want` candidates
// (what the pool can likely give), then each time at least as many as are sorted
// already, so that the selections cost O(pool) in all.
inline void sort_more(Pool& pool, Contender* candidates, std::size_t want, SortScratch& scratch) {
  Contender* const from = candidates + pool.sorted;
  Contender* end = candidates + pool.end;
  if (pool.sorted == pool.begin && !pool.by_value) {
    pool.by_value = counting_sort(from, end, scratch);
  }
  if (pool.by_value) {
    Contender* run = from + 1;
    while (run != end && run->value == from->value) ++run;
    end = run;
  }
  const std::size_t done = pool.sorted - pool.begin;
  const std::size_t stretch = done == 0 ? std::max<std::size_t>(want, 16) : done;
  Contender* to = end;
  if (stretch < static_cast<std::size_t>(end - from)) {
    to = from + stretch;
    std::nth_element(from, to, end);
  }
  std::sort(from, to);
  pool.sorted = static_cast<std::uint32_t>(to - candidates);
}

// A peer's realm other than its first (Stake::more .. last), with its connections bound there.
struct StakeEntry {
  std::uint32_t pool;
  std::uint32_t bound;
};

// fate[peer]: 0 while the peer may go, kTaken once it went, else the phase that skipped it.
inline constexpr std::uint8_t kTaken = 0xFF;

// The greedy's input and output. pools[0] holds the unbound connections; every candidate
// is dealt into the pools of its stake, each pool a stretch of `candidates`.
struct Run {
  std::vector<Pool>& pools;
  Contender* candidates;
  const Stake* stakes;  // by index; by_level() needs none
  const std::vector<StakeEntry>& entries;
  std::vector<std::uint8_t>& fate;    // one per peer, all 0 on entry
  std::size_t target;                 // connections to cover
  int phases;                         // 2, or 3 for a forced trim (down to no floor)
  std::vector<std::uint32_t>* order;  // if not null, gets the peers taken, in order
  Contender* last;                    // if not null, gets the last peer taken
};

// Takes `c`: marks it, notes it. Returns its connections.
inline std::size_t note_taken(const Run& run, const Contender& c) {
  run.fate[c.index] = kTaken;
  if (run.order != nullptr) run.order->push_back(c.index);
  if (run.last != nullptr) *run.last = c;
  return c.connections;
}

// The floor a realm's pool keeps in `phase`: its share and reserve, then its reserve, then
// nothing.
inline std::size_t floor_of(const Pool& pool, int phase) {
  return phase == 1 ? std::max(pool.share, pool.reserve) : phase == 2 ? pool.reserve : 0;
}

// HeadKey::standing of a realm's pool holding `count` connections above a floor of
// `floor` (count > floor): the larger the excess, the earlier.
inline std::uint64_t standing_of(std::size_t count, std::size_t floor) {
  return (1ULL << 63) | (~static_cast<std::uint64_t>(count - floor) >> 1);
}

// One step at a time: returns the connections covered. One function on purpose: the
// tournament tree, the pools' heads and their lazy sorting change together at every step,
// and the lambdas below share that state; apart, each would take it all as arguments.
inline std::size_t stepwise(Run run) {
  std::vector<Pool>& pools = run.pools;
  Contender* const candidates = run.candidates;
  const Stake* const stakes = run.stakes;
  const std::vector<StakeEntry>& entries = run.entries;
  std::vector<std::uint8_t>& fate = run.fate;
  const std::size_t target = run.target;
  SortScratch scratch;
  // Greedy: at each step the cheapest head among the pools (HeadKey). The heads are kept
  // in a tournament tree over the pools; a step changes only the pools of the peer it
  // takes or skips (their counts, and their heads if the peer was one), so only their
  // paths are replayed.
  constexpr std::uint32_t kNone = UINT32_MAX;
  const auto leaves = static_cast<std::uint32_t>(std::bit_ceil(pools.size()));
  std::vector<HeadKey> keys(pools.size());
  std::vector<std::uint32_t> tree(2 * std::size_t{leaves}, kNone);  // the winning pool
  auto winner = [&](std::uint32_t a, std::uint32_t b) {
    if (a == kNone) return b;
    if (b == kNone) return a;
    return keys[b] < keys[a] ? b : a;
  };
  std::size_t covered = 0;
  const int phases = run.phases;
  for (int phase = 1; phase <= phases && covered < target; ++phase) {
    auto threshold = [&](const Pool& pool) { return floor_of(pool, phase); };
    // Re-keys pool p; false when it has nothing more to give this phase.
    auto rekey = [&](std::uint32_t p) {
      Pool& pool = pools[p];
      std::uint64_t standing = 0;
      if (p != 0) {
        const std::size_t floor = threshold(pool);
        if (pool.count <= floor) return false;
        standing = standing_of(pool.count, floor);
      }
      for (;; ++pool.head) {
        if (pool.head == pool.sorted) {
          if (pool.sorted == pool.end) return false;
          // A realm's pool gives at most its excess over the floor (fewer candidates if
          // they hold several connections, a few more if some are skipped); the unbound
          // pool at most the target. A little slack saves a second selection.
          const std::size_t can_give = p == 0 ? target : pool.count - threshold(pool);
          sort_more(pool, candidates, can_give + can_give / 16 + 8, scratch);
        }
        const std::uint8_t f = fate[candidates[pool.head].index];
        if (f == 0 || (f != kTaken && f != phase)) break;
      }
      const Contender& c = candidates[pool.head];
      keys[p] = HeadKey{c.value, standing, c.activity(), c.newer, c.index};
      __builtin_prefetch(&stakes[c.index]);
      // The pool's next visit comes only after the other pools' turns, by which time its
      // candidates would have left the cache: fetch the next ones now.
      if (pool.head + 2 < pool.sorted) {
        __builtin_prefetch(&candidates[pool.head + 1]);
        __builtin_prefetch(&candidates[pool.head + 2]);
      }
      return true;
    };
    auto update = [&](std::uint32_t p) {
      std::uint32_t node = leaves + p;
      tree[node] = rekey(p) ? p : kNone;
      for (node /= 2; node > 0; node /= 2) tree[node] = winner(tree[2 * node], tree[2 * node + 1]);
    };
    for (Pool& pool : pools) pool.head = pool.begin;
    for (std::uint32_t p = 0; p < pools.size(); ++p) {
      tree[leaves + p] = rekey(p) ? p : kNone;
    }
    for (std::uint32_t node = leaves - 1; node > 0; --node) {
      tree[node] = winner(tree[2 * node], tree[2 * node + 1]);
    }
    while (covered < target && tree[1] != kNone) {
      const std::uint32_t p = tree[1];
      // Copies: `c` may move when a pool sorts more.
      const Contender c = candidates[pools[p].head];
      const Stake stake = stakes[c.index];
      auto fits = [&](std::uint32_t q, std::uint32_t bound) {
        return pools[q].count >= threshold(pools[q]) + bound;
      };
      bool eligible = stake.pool == 0 || fits(stake.pool, stake.bound);
      for (std::uint32_t e = stake.more; e < stake.last; ++e) {
        eligible = eligible && fits(entries[e].pool, entries[e].bound);
      }
      if (eligible) {
        covered += note_taken(run, c);
        pools[stake.pool].count -= stake.bound;
        for (std::uint32_t e = stake.more; e < stake.last; ++e) {
          pools[entries[e].pool].count -= entries[e].bound;
        }
      } else {
        fate[c.index] = static_cast<std::uint8_t>(phase);
      }
      update(stake.pool);
      for (std::uint32_t e = stake.more; e < stake.last; ++e) update(entries[e].pool);
    }
  }

  return covered;
}

}  // namespace dep2p::connmgr::detail::realm_greedy
