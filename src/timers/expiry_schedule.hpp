// ExpirySchedule: when each temporary peer entry (tags of a peer with no connection) ends,
// as plain time points (sans-I/O). The manager takes the entries due at a time and deletes
// them; its housekeeping timer is armed for next().
//
//   expiries.schedule(slot, generation, now + lifetime);
//   while (auto due = expiries.pop_due(now)) if (still_temporary(*due)) release(due->slot);
//
// An entry's end is kept by slot (end_of), and every scheduling also queues a record. A
// record goes stale when its slot is released (the generation moves on), connects, or is
// given a later end; stale records are skipped when they come due rather than searched
// for when they go stale.
//
// Thread safety: none; the owner locks.
#pragma once

#include <cstdint>
#include <optional>

#include <boost/unordered/unordered_flat_map.hpp>

#include "dep2p/connmgr/types.hpp"
#include "timers/deadlines.hpp"

namespace dep2p::connmgr::detail {

class ExpirySchedule {
 public:
  struct Record {
    TimePoint at;
    std::uint32_t slot;
    std::uint32_t generation;  // the slot's generation when it was scheduled
  };

  // The entry at `slot` ends at `at` (replacing any earlier end).
  void schedule(std::uint32_t slot, std::uint32_t generation, TimePoint at) {
    end_of_.insert_or_assign(slot, at);
    records_.push({at, slot, generation});
  }
  // The entry at `slot` no longer ends (it connected or was released).
  void cancel(std::uint32_t slot) {
    if (!end_of_.empty()) end_of_.erase(slot);
  }
  // The end of the entry at `slot`; TimePoint::max() when it has none.
  TimePoint end_of(std::uint32_t slot) const {
    auto it = end_of_.find(slot);
    return it == end_of_.end() ? TimePoint::max() : it->second;
  }
  // The next record due at `now` whose end is still due (a later end, or none, makes it
  // stale); the caller checks the generation and whether the entry is still temporary.
  std::optional<Record> pop_due(TimePoint now) {
    while (auto record = records_.pop_due(now)) {
      if (end_of(record->slot) <= now) return record;
    }
    return std::nullopt;
  }
  TimePoint next() const { return records_.next(); }
  std::size_t scheduled() const { return end_of_.size(); }

 private:
  boost::unordered_flat_map<std::uint32_t, TimePoint> end_of_;  // by slot; erased with the entry
  HeapDeadlines<Record> records_;                               // every scheduling, stale or not
};

}  // namespace dep2p::connmgr::detail
