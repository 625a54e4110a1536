// ValueBuckets: the selection step the default order's rankings share — find the value at
// which a target is reached without sorting. Keys (tag sums in unsigned order) are counted
// into buckets over their range, at most 2^16 and about one per item; tag sums usually span
// a small range, and then each value has a bucket of its own and nothing is left to order.
//
//   ValueBuckets buckets(lowest_key, highest_key, candidates);
//   for (...) buckets.add(key, connections);
//   const auto [bucket, below] = buckets.boundary(target);  // below: weight before it
//
// Thread safety: a plain value.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace dep2p::connmgr::detail {

class ValueBuckets {
 public:
  // Keys in [lo, hi], about `items` of them. REQUIRES: lo <= hi.
  ValueBuckets(std::uint64_t lo, std::uint64_t hi, std::size_t items) : lo_(lo) {
    const std::uint64_t range = hi - lo;
    const int bits = std::min(16, static_cast<int>(std::bit_width(items)));
    shift_ = std::max(0, static_cast<int>(std::bit_width(range)) - bits);
    counts_.assign(static_cast<std::size_t>(range >> shift_) + 1, 0);
  }

  std::size_t bucket_of(std::uint64_t key) const {
    return static_cast<std::size_t>((key - lo_) >> shift_);
  }
  // bucket_of() as a value, for hot loops: its two fields stay in registers where the
  // buckets' own stores could otherwise make the compiler reload them.
  struct Index {
    std::uint64_t lo;
    int shift;
    std::size_t operator()(std::uint64_t key) const {
      return static_cast<std::size_t>((key - lo) >> shift);
    }
  };
  Index index() const { return {lo_, shift_}; }
  void add(std::uint64_t key, std::size_t weight) { counts_[bucket_of(key)] += weight; }
  // Whether each bucket holds one key value only (then a bucket is a value).
  bool exact() const { return shift_ == 0; }
  // The lowest key of a bucket (its only one when exact()).
  std::uint64_t key_of(std::size_t bucket) const {
    return lo_ + (static_cast<std::uint64_t>(bucket) << shift_);
  }

  struct Boundary {
    std::size_t bucket;  // where the running weight reaches the target
    std::size_t below;   // the weight in the buckets before it
  };
  // REQUIRES: 1 <= target <= the weight added.
  Boundary boundary(std::size_t target) const {
    Boundary b{0, 0};
    while (b.below + counts_[b.bucket] < target) b.below += counts_[b.bucket++];
    return b;
  }
  std::size_t weight(std::size_t bucket) const { return counts_[bucket]; }

 private:
  std::uint64_t lo_;
  int shift_ = 0;
  std::vector<std::size_t> counts_;
};

}  // namespace dep2p::connmgr::detail
