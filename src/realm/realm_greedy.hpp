// The node trim's greedy over realm pools (see RealmConnectionManager::State::rank and
// docs/architecture.md, "Realms"): the types it works on and two ways to run it. Header-only
// so that tests can run both on the same input.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <queue>
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

// One step at a time: returns the connections covered.
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

// The pools' next values for by_level(), lowest first: a pool is queued at most once at a
// time. Where the values span little (tag sums usually do: 100 pools over 100 values make
// 10,000 levels' worth of queueing per phase), a bucket per value, each a list linked
// through the pools; otherwise a binary heap.
class LevelQueue {
 public:
  // Values in [lo, hi], `pools` pools. Buckets only if the span is at most `bucket_limit`.
  LevelQueue(std::uint64_t lo, std::uint64_t hi, std::size_t pools, std::size_t bucket_limit)
      : lo_(lo), buckets_(hi - lo <= bucket_limit) {
    if (buckets_) {
      head_.assign(static_cast<std::size_t>(hi - lo) + 1, kNone);
      link_.assign(pools, kNone);
    }
  }
  bool empty() const { return buckets_ ? queued_ == 0 : heap_.empty(); }
  // REQUIRES: in bucket mode, `value` not below the last level popped since clear().
  void push(std::uint64_t value, std::uint32_t pool) {
    if (!buckets_) {
      heap_.emplace(value, pool);
      return;
    }
    const auto bucket = static_cast<std::size_t>(value - lo_);
    link_[pool] = head_[bucket];
    head_[bucket] = pool;
    ++queued_;
  }
  // Moves the pools queued at the lowest value into `out` (cleared first), in no
  // particular order. REQUIRES: !empty().
  void pop_level(std::vector<std::uint32_t>& out) {
    out.clear();
    if (!buckets_) {
      const std::uint64_t value = heap_.top().first;
      while (!heap_.empty() && heap_.top().first == value) {
        out.push_back(heap_.top().second);
        heap_.pop();
      }
      return;
    }
    while (head_[cursor_] == kNone) ++cursor_;
    for (std::uint32_t p = head_[cursor_]; p != kNone; p = link_[p]) out.push_back(p);
    head_[cursor_] = kNone;
    queued_ -= out.size();
  }
  void clear() {
    if (!buckets_) {
      heap_ = {};
      return;
    }
    for (; queued_ > 0; ++cursor_) {
      for (std::uint32_t p = head_[cursor_]; p != kNone; p = link_[p]) --queued_;
      head_[cursor_] = kNone;
    }
    cursor_ = 0;
  }

 private:
  static constexpr std::uint32_t kNone = UINT32_MAX;
  using Entry = std::pair<std::uint64_t, std::uint32_t>;  // a pool's next value, the pool
  std::uint64_t lo_;
  bool buckets_;
  std::vector<std::uint32_t> head_;  // by value - lo: the first pool queued there
  std::vector<std::uint32_t> link_;  // by pool: the next pool in its bucket
  std::size_t cursor_ = 0;           // no pool is queued below it
  std::size_t queued_ = 0;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_;
};

// The same choice as stepwise(), a whole value level at a time, when every candidate is
// in one pool only (REQUIRES: each peer is dealt once; stakes are not read). Then a pool's
// takes and skips depend on its own count alone, so a level that the target does not
// exhaust is taken pool by pool, in any order; only the level where the target is reached
// is played step by step, in HeadKey order. `order` holds the same peers as stepwise()'s,
// with the same last one (the one an exact trim may take in part); within a level taken
// whole, pool by pool. Returns the connections covered.
inline std::size_t by_level(Run run) {
  std::vector<Pool>& pools = run.pools;
  Contender* const candidates = run.candidates;
  std::vector<std::uint8_t>& fate = run.fate;
  const std::size_t target = run.target;
  const auto pool_count = static_cast<std::uint32_t>(pools.size());

  // Each pool in value order; a run of equal values is put in full order only when the
  // order decides something: when the pool reaches its floor within it, or at the level
  // where the target is reached. sorted_to[p]: the end of the last run put in order.
  SortScratch scratch;
  std::vector<std::uint32_t> sorted_to(pool_count);
  std::uint64_t lo = UINT64_MAX;  // the lowest and highest values of all candidates
  std::uint64_t hi = 0;
  std::size_t candidate_count = 0;
  for (std::uint32_t p = 0; p < pool_count; ++p) {
    Pool& pool = pools[p];
    Contender* from = candidates + pool.begin;
    Contender* to = candidates + pool.end;
    if (!counting_sort(from, to, scratch)) {
      std::sort(from, to, [](const Contender& a, const Contender& b) { return a.value < b.value; });
    }
    sorted_to[p] = pool.begin;
    if (from != to) {
      lo = std::min(lo, from->value);
      hi = std::max(hi, (to - 1)->value);
      candidate_count += pool.end - pool.begin;
    }
  }
  if (lo > hi) return 0;  // no candidate
  auto run_end = [&](std::uint32_t p, std::uint32_t at) {
    const std::uint32_t end = pools[p].end;
    const std::uint64_t value = candidates[at].value;
    std::uint32_t stop = at + 1;
    while (stop != end && candidates[stop].value == value) ++stop;
    return stop;
  };
  // Puts the rest of a run, [at, stop), in full order (the peers taken from its start
  // in an earlier phase were in order already).
  auto order_run = [&](std::uint32_t p, std::uint32_t at, std::uint32_t stop) {
    if (stop > sorted_to[p]) {
      std::sort(candidates + at, candidates + stop);
      sorted_to[p] = stop;
    }
  };

  std::size_t covered = 0;
  std::vector<std::uint32_t> pos(pool_count);
  std::vector<std::uint32_t> stop(pool_count);
  std::vector<std::size_t> floors(pool_count, 0);
  std::vector<std::uint8_t> whole(pool_count, 0);  // the pool's run fits whole
  std::vector<std::uint32_t> level;                // the pools with candidates at this level
  LevelQueue next(lo, hi, pool_count, candidate_count + 1024);
  for (int phase = 1; phase <= run.phases && covered < target; ++phase) {
    // Whether pool p can give more this phase; moves pos[p] past taken peers.
    auto active = [&](std::uint32_t p) {
      const Pool& pool = pools[p];
      if (p != 0 && pool.count <= floors[p]) return false;
      while (pos[p] != pool.end && fate[candidates[pos[p]].index] == kTaken) ++pos[p];
      return pos[p] != pool.end;
    };
    for (std::uint32_t p = 0; p < pool_count; ++p) {
      pos[p] = pools[p].begin;
      floors[p] = p == 0 ? 0 : floor_of(pools[p], phase);
      if (active(p)) next.push(candidates[pos[p]].value, p);
    }
    while (covered < target && !next.empty()) {
      next.pop_level(level);
      for (std::uint32_t p : level) stop[p] = run_end(p, pos[p]);
      // Whether the candidate at `at` in pool p fits now; 0: the pool is done this phase.
      auto fits = [&](std::uint32_t p, std::size_t count, const Contender& c) {
        if (p == 0) return 1;
        if (count <= floors[p]) return 0;
        return count >= floors[p] + c.bound() ? 1 : -1;
      };
      // Walks pool p's run from `at` in order, with the pool at `count` connections: f(c,
      // true) for each peer that fits (count falls by its bound), f(c, false) for each that
      // does not, until the run ends or the pool is at its floor. Returns where it stopped.
      auto walk = [&](std::uint32_t p, std::uint32_t at, std::size_t& count, auto&& f) {
        for (; at != stop[p]; ++at) {
          const Contender& c = candidates[at];
          if (fate[c.index] == kTaken) continue;
          const int fit = fits(p, count, c);
          if (fit == 0) break;
          if (fit > 0) count -= c.bound();
          f(c, fit > 0);
        }
        return at;
      };
      // What the whole level would cover. A run whose bound connections all fit above
      // the floor goes whole, in any order (each of its peers fits when its turn comes:
      // the count only falls to what it is after the last); only the others are ordered
      // and walked.
      std::size_t gives = 0;
      for (std::uint32_t p : level) {
        std::size_t count = pools[p].count;
        std::size_t run_bound = 0;
        std::size_t run_connections = 0;
        for (std::uint32_t at = pos[p]; at != stop[p]; ++at) {
          const Contender& c = candidates[at];
          if (fate[c.index] == kTaken) continue;
          run_bound += c.bound();
          run_connections += c.connections;
        }
        whole[p] = p == 0 || count >= floors[p] + run_bound;
        if (whole[p]) {
          gives += run_connections;
          continue;
        }
        order_run(p, pos[p], stop[p]);
        walk(p, pos[p], count, [&](const Contender& c, bool taken) {
          if (taken) gives += c.connections;
        });
      }
      auto take = [&](std::uint32_t p, const Contender& c) {
        covered += note_taken(run, c);
        pools[p].count -= c.bound();
      };
      if (covered + gives < target) {
        for (std::uint32_t p : level) {
          if (whole[p]) {
            for (std::uint32_t& at = pos[p]; at != stop[p]; ++at) {
              const Contender& c = candidates[at];
              if (fate[c.index] != kTaken) take(p, c);
            }
            if (active(p)) next.push(candidates[pos[p]].value, p);
            continue;
          }
          std::size_t count = pools[p].count;
          pos[p] = walk(p, pos[p], count, [&](const Contender& c, bool taken) {
            if (taken) {
              take(p, c);
            } else {
              fate[c.index] = static_cast<std::uint8_t>(phase);
            }
          });
          if (active(p)) next.push(candidates[pos[p]].value, p);
        }
        continue;
      }
      // The level where the target is reached: one step at a time, the cheapest head first
      // (HeadKey: the unbound pool, then the largest excess over the floor, then the rest
      // of the default order).
      auto head_key = [&](std::uint32_t p) {
        const Contender& c = candidates[pos[p]];
        const std::uint64_t standing = p == 0 ? 0 : standing_of(pools[p].count, floors[p]);
        return HeadKey{c.value, standing, c.activity(), c.newer, c.index};
      };
      // Drops pools with nothing more at this level; skips taken peers.
      auto settle = [&](std::uint32_t p) {
        while (pos[p] != stop[p] && fate[candidates[pos[p]].index] == kTaken) ++pos[p];
        return pos[p] != stop[p] && (p == 0 || pools[p].count > floors[p]);
      };
      for (std::uint32_t p : level) order_run(p, pos[p], stop[p]);
      const std::vector<std::uint32_t> at_level = level;
      std::erase_if(level, [&](std::uint32_t p) { return !settle(p); });
      while (covered < target && !level.empty()) {
        std::size_t best = 0;
        HeadKey best_key = head_key(level[0]);
        for (std::size_t k = 1; k < level.size(); ++k) {
          const HeadKey key = head_key(level[k]);
          if (key < best_key) {
            best = k;
            best_key = key;
          }
        }
        const std::uint32_t p = level[best];
        const Contender& c = candidates[pos[p]];
        if (fits(p, pools[p].count, c) > 0) {
          take(p, c);
        } else {
          fate[c.index] = static_cast<std::uint8_t>(phase);
        }
        ++pos[p];
        if (!settle(p)) {
          level[best] = level.back();
          level.pop_back();
        }
      }
      // The level gives what was counted, so the target is reached. Should it not be,
      // the pools go on to their next levels.
      if (covered < target) {
        for (std::uint32_t p : at_level) {
          if (pos[p] == stop[p] && active(p)) next.push(candidates[pos[p]].value, p);
        }
      }
    }
    next.clear();
  }
  return covered;
}

}  // namespace dep2p::connmgr::detail::realm_greedy
