// The node trim's greedy a whole value level at a time (realm/realm_greedy.hpp holds the
// types and the step-at-a-time run it must agree with). Header-only so that tests can run
// both on the same input.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <queue>
#include <utility>
#include <vector>

#include "realm/realm_greedy.hpp"

namespace dep2p::connmgr::detail::realm_greedy {

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
// whole, pool by pool.
class ByLevel {
 public:
  explicit ByLevel(const Run& run)
      : run_(run),
        pools_(run.pools),
        candidates_(run.candidates),
        fate_(run.fate),
        pool_count_(static_cast<std::uint32_t>(run.pools.size())),
        sorted_to_(pool_count_),
        pos_(pool_count_),
        stop_(pool_count_),
        floors_(pool_count_, 0),
        whole_(pool_count_, 0) {}

  // Returns the connections covered.
  std::size_t play() {
    if (!sort_pools()) return 0;  // no candidate
    LevelQueue next(lo_, hi_, pool_count_, candidate_count_ + 1024);
    for (int phase = 1; phase <= run_.phases && covered_ < run_.target; ++phase) {
      for (std::uint32_t p = 0; p < pool_count_; ++p) {
        pos_[p] = pools_[p].begin;
        floors_[p] = p == 0 ? 0 : floor_of(pools_[p], phase);
        if (active(p)) next.push(candidates_[pos_[p]].value, p);
      }
      while (covered_ < run_.target && !next.empty()) {
        next.pop_level(level_);
        for (std::uint32_t p : level_) stop_[p] = run_end(p, pos_[p]);
        if (covered_ + level_gives() < run_.target) {
          take_level(phase, next);
        } else {
          play_last_level(phase, next);
        }
      }
      next.clear();
    }
    return covered_;
  }

 private:
  // Each pool in value order; a run of equal values is put in full order only when the
  // order decides something: when the pool reaches its floor within it, or at the level
  // where the target is reached. False when there is no candidate.
  bool sort_pools() {
    for (std::uint32_t p = 0; p < pool_count_; ++p) {
      Pool& pool = pools_[p];
      Contender* from = candidates_ + pool.begin;
      Contender* to = candidates_ + pool.end;
      if (!counting_sort(from, to, scratch_)) {
        std::sort(from, to,
                  [](const Contender& a, const Contender& b) { return a.value < b.value; });
      }
      sorted_to_[p] = pool.begin;
      if (from != to) {
        lo_ = std::min(lo_, from->value);
        hi_ = std::max(hi_, (to - 1)->value);
        candidate_count_ += pool.end - pool.begin;
      }
    }
    return lo_ <= hi_;
  }
  // The end of the run of equal values starting at `at` in pool p.
  std::uint32_t run_end(std::uint32_t p, std::uint32_t at) const {
    const std::uint32_t end = pools_[p].end;
    const std::uint64_t value = candidates_[at].value;
    std::uint32_t stop = at + 1;
    while (stop != end && candidates_[stop].value == value) ++stop;
    return stop;
  }
  // Puts the rest of a run, [at, stop), in full order (the peers taken from its start
  // in an earlier phase were in order already).
  void order_run(std::uint32_t p, std::uint32_t at, std::uint32_t stop) {
    if (stop > sorted_to_[p]) {
      std::sort(candidates_ + at, candidates_ + stop);
      sorted_to_[p] = stop;
    }
  }
  // Whether pool p can give more this phase; moves pos_[p] past taken peers.
  bool active(std::uint32_t p) {
    const Pool& pool = pools_[p];
    if (p != 0 && pool.count <= floors_[p]) return false;
    while (pos_[p] != pool.end && fate_[candidates_[pos_[p]].index] == kTaken) ++pos_[p];
    return pos_[p] != pool.end;
  }
  // Whether candidate `c` of pool p fits with the pool at `count`; 0: the pool is done
  // this phase.
  int fits(std::uint32_t p, std::size_t count, const Contender& c) const {
    if (p == 0) return 1;
    if (count <= floors_[p]) return 0;
    return count >= floors_[p] + c.bound() ? 1 : -1;
  }
  // Walks pool p's run from `at` in order, with the pool at `count` connections: f(c,
  // true) for each peer that fits (count falls by its bound), f(c, false) for each that
  // does not, until the run ends or the pool is at its floor. Returns where it stopped.
  template <class F>
  std::uint32_t walk(std::uint32_t p, std::uint32_t at, std::size_t& count, F&& f) const {
    for (; at != stop_[p]; ++at) {
      const Contender& c = candidates_[at];
      if (fate_[c.index] == kTaken) continue;
      const int fit = fits(p, count, c);
      if (fit == 0) break;
      if (fit > 0) count -= c.bound();
      f(c, fit > 0);
    }
    return at;
  }
  void take(std::uint32_t p, const Contender& c) {
    covered_ += note_taken(run_, c);
    pools_[p].count -= c.bound();
  }

  // What the whole level would cover. A run whose bound connections all fit above the
  // floor goes whole, in any order (each of its peers fits when its turn comes: the count
  // only falls to what it is after the last); only the others are ordered and walked.
  std::size_t level_gives() {
    std::size_t gives = 0;
    for (std::uint32_t p : level_) {
      std::size_t count = pools_[p].count;
      std::size_t run_bound = 0;
      std::size_t run_connections = 0;
      for (std::uint32_t at = pos_[p]; at != stop_[p]; ++at) {
        const Contender& c = candidates_[at];
        if (fate_[c.index] == kTaken) continue;
        run_bound += c.bound();
        run_connections += c.connections;
      }
      whole_[p] = p == 0 || count >= floors_[p] + run_bound;
      if (whole_[p]) {
        gives += run_connections;
        continue;
      }
      order_run(p, pos_[p], stop_[p]);
      walk(p, pos_[p], count, [&](const Contender& c, bool taken) {
        if (taken) gives += c.connections;
      });
    }
    return gives;
  }

  // A level the target does not exhaust: pool by pool, each run as level_gives() counted.
  void take_level(int phase, LevelQueue& next) {
    for (std::uint32_t p : level_) {
      if (whole_[p]) {
        for (std::uint32_t& at = pos_[p]; at != stop_[p]; ++at) {
          const Contender& c = candidates_[at];
          if (fate_[c.index] != kTaken) take(p, c);
        }
      } else {
        std::size_t count = pools_[p].count;
        pos_[p] = walk(p, pos_[p], count, [&](const Contender& c, bool taken) {
          if (taken) {
            take(p, c);
          } else {
            fate_[c.index] = static_cast<std::uint8_t>(phase);
          }
        });
      }
      if (active(p)) next.push(candidates_[pos_[p]].value, p);
    }
  }

  // The level where the target is reached: one step at a time, the cheapest head first
  // (HeadKey: the unbound pool, then the largest excess over the floor, then the rest of
  // the default order).
  void play_last_level(int phase, LevelQueue& next) {
    auto head_key = [&](std::uint32_t p) {
      const Contender& c = candidates_[pos_[p]];
      const std::uint64_t standing = p == 0 ? 0 : standing_of(pools_[p].count, floors_[p]);
      return HeadKey{c.value, standing, c.activity(), c.newer, c.index};
    };
    // Drops pools with nothing more at this level; skips taken peers.
    auto settle = [&](std::uint32_t p) {
      while (pos_[p] != stop_[p] && fate_[candidates_[pos_[p]].index] == kTaken) ++pos_[p];
      return pos_[p] != stop_[p] && (p == 0 || pools_[p].count > floors_[p]);
    };
    for (std::uint32_t p : level_) order_run(p, pos_[p], stop_[p]);
    const std::vector<std::uint32_t> at_level = level_;
    std::erase_if(level_, [&](std::uint32_t p) { return !settle(p); });
    while (covered_ < run_.target && !level_.empty()) {
      std::size_t best = 0;
      HeadKey best_key = head_key(level_[0]);
      for (std::size_t k = 1; k < level_.size(); ++k) {
        const HeadKey key = head_key(level_[k]);
        if (key < best_key) {
          best = k;
          best_key = key;
        }
      }
      const std::uint32_t p = level_[best];
      const Contender& c = candidates_[pos_[p]];
      if (fits(p, pools_[p].count, c) > 0) {
        take(p, c);
      } else {
        fate_[c.index] = static_cast<std::uint8_t>(phase);
      }
      ++pos_[p];
      if (!settle(p)) {
        level_[best] = level_.back();
        level_.pop_back();
      }
    }
    // The level gives what was counted, so the target is reached. Should it not be, the
    // pools go on to their next levels.
    if (covered_ < run_.target) {
      for (std::uint32_t p : at_level) {
        if (pos_[p] == stop_[p] && active(p)) next.push(candidates_[pos_[p]].value, p);
      }
    }
  }

  const Run& run_;
  std::vector<Pool>& pools_;
  Contender* const candidates_;
  std::vector<std::uint8_t>& fate_;
  const std::uint32_t pool_count_;
  SortScratch scratch_;
  std::vector<std::uint32_t> sorted_to_;  // by pool: the end of the last run put in order
  std::uint64_t lo_ = UINT64_MAX;         // the lowest and highest values of all candidates
  std::uint64_t hi_ = 0;
  std::size_t candidate_count_ = 0;
  std::size_t covered_ = 0;
  std::vector<std::uint32_t> pos_;    // by pool: its next candidate
  std::vector<std::uint32_t> stop_;   // by pool: the end of its run at this level
  std::vector<std::size_t> floors_;   // by pool: its floor this phase
  std::vector<std::uint8_t> whole_;   // by pool: its run at this level fits whole
  std::vector<std::uint32_t> level_;  // the pools with candidates at this level
};

inline std::size_t by_level(Run run) { return ByLevel(run).play(); }

}  // namespace dep2p::connmgr::detail::realm_greedy
