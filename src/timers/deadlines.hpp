// Deadline queues: plain time points, no executor (sans-I/O). The manager keeps its
// time-driven rules in them, asks what is due at a given time, and arms one timer for the
// earliest deadline; tests drive them with time points alone.
//
//   FifoDeadlines<Due> pings;            // constant interval: appended in time order
//   pings.push({now + interval, ...});
//   while (auto due = pings.pop_due(now)) fire(*due);
//
// Entries are never searched for: one that went stale (its connection closed, its answer
// came) stays until it comes due or is compacted, and the caller skips it then.
//
// Thread safety: none; the owner locks.
#pragma once

#include <algorithm>
#include <deque>
#include <functional>
#include <optional>
#include <queue>
#include <utility>
#include <vector>

#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr::detail {

// Deadlines that arrive in time order (every one is `now + a constant`): a FIFO queue.
// T has a member `TimePoint at`. REQUIRES: each push is at or after the last one pushed.
template <class T>
class FifoDeadlines {
 public:
  void push(T entry) { queue_.push_back(std::move(entry)); }
  // The earliest entry if it is due at `now`, removed.
  std::optional<T> pop_due(TimePoint now) {
    if (queue_.empty() || queue_.front().at > now) return std::nullopt;
    T entry = std::move(queue_.front());
    queue_.pop_front();
    return entry;
  }
  TimePoint next() const { return queue_.empty() ? TimePoint::max() : queue_.front().at; }
  std::size_t size() const { return queue_.size(); }
  bool empty() const { return queue_.empty(); }
  // Drops the entries for which stale(entry) holds.
  template <class Stale>
  void erase_if(Stale&& stale) {
    std::erase_if(queue_, stale);
  }

 private:
  std::deque<T> queue_;  // in deadline order
};

// Deadlines in any order (ones that move with activity): a min-heap.
template <class T>
class HeapDeadlines {
 public:
  void push(T entry) { heap_.push(std::move(entry)); }
  std::optional<T> pop_due(TimePoint now) {
    if (heap_.empty() || heap_.top().at > now) return std::nullopt;
    T entry = heap_.top();
    heap_.pop();
    return entry;
  }
  TimePoint next() const { return heap_.empty() ? TimePoint::max() : heap_.top().at; }
  std::size_t size() const { return heap_.size(); }
  bool empty() const { return heap_.empty(); }
  template <class Stale>
  void erase_if(Stale&& stale) {
    std::vector<T> kept;
    kept.reserve(heap_.size());
    while (!heap_.empty()) {
      if (!stale(heap_.top())) kept.push_back(heap_.top());
      heap_.pop();
    }
    heap_ = Heap(Later{}, std::move(kept));
  }

 private:
  struct Later {
    bool operator()(const T& a, const T& b) const { return a.at > b.at; }
  };
  using Heap = std::priority_queue<T, std::vector<T>, Later>;
  Heap heap_;  // earliest deadline on top
};

// The time a timer serving many deadlines fires for `next`: rounded up to a grid of
// `tick`, so that deadlines close together are served by one wake-up, and never before
// `now`. REQUIRES: tick > 0.
inline TimePoint wake_time(TimePoint next, Duration tick, TimePoint now) {
  const auto since = next.time_since_epoch();
  const TimePoint at = TimePoint((since + tick - Duration(1)) / tick * tick);
  return std::max(at, now);
}

}  // namespace dep2p::connmgr::detail
