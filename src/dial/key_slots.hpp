// KeySlots: a hash table from well-mixed, non-zero 64-bit keys to small values, laid out
// so that a lookup at random over a large table touches one cache line: open addressing
// with linear probing over one array of slots (key and value side by side, no separate
// control bytes), kept at most 80% full: the table stays small enough for the cache,
// and at its fullest a hit probes about 3 slots and a miss about 13, in adjacent lines. Erasing shifts the following
// slots of the probe run back, so there are no tombstones and lookups stay short under churn.
//
//   KeySlots<Entry> table;
//   Entry& e = table.emplace(key);          // found or default-made
//   if (Entry* found = table.find(key)) ...
//   table.erase(key);
//
// Keys must already be mixed (their low bits pick the home slot) and non-zero (zero marks
// a free slot). A pointer to a value stays valid until the next emplace or erase.
// Thread safety: none; the owner locks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include <sys/mman.h>

namespace dep2p::connmgr::detail {

template <class Value>
class KeySlots {
  static_assert(std::is_trivially_destructible_v<Value>, "slots are freed without destructors");

 public:
  struct Slot {
    std::uint64_t key = 0;  // 0: free
    Value value{};
  };

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t capacity() const noexcept { return capacity_; }

  const Value* find(std::uint64_t key) const noexcept {
    if (size_ == 0) return nullptr;
    for (std::size_t i = key & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.key == key) return &slot.value;
      if (slot.key == 0) return nullptr;
    }
  }
  Value* find(std::uint64_t key) noexcept {
    return const_cast<Value*>(static_cast<const KeySlots*>(this)->find(key));
  }

  // The value under `key`, made with Value{} if absent.
  Value& emplace(std::uint64_t key) {
    if (5 * (size_ + 1) > 4 * capacity_) grow();
    std::size_t i = key & mask_;
    for (; slots_[i].key != 0; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return slots_[i].value;
    }
    slots_[i].key = key;
    slots_[i].value = Value{};
    ++size_;
    return slots_[i].value;
  }

  // Removes `key` if present; returns whether it was.
  bool erase(std::uint64_t key) noexcept {
    if (size_ == 0) return false;
    std::size_t hole = key & mask_;
    while (slots_[hole].key != key) {
      if (slots_[hole].key == 0) return false;
      hole = (hole + 1) & mask_;
    }
    // Backward shift: a later slot of the run moves into the hole unless its home lies
    // cyclically in (hole, at] (it would then be found before the hole anyway).
    for (std::size_t at = (hole + 1) & mask_; slots_[at].key != 0; at = (at + 1) & mask_) {
      const std::size_t home = slots_[at].key & mask_;
      const bool stays = hole <= at ? (hole < home && home <= at) : (hole < home || home <= at);
      if (stays) continue;
      slots_[hole] = std::move(slots_[at]);
      hole = at;
    }
    slots_[hole].key = 0;
    slots_[hole].value = Value{};
    --size_;
    return true;
  }

  // Calls f(key, value) for every entry, in slot order.
  template <class F>
  void for_each(F&& f) {
    for (std::size_t i = 0; i < capacity_; ++i) {
      if (slots_[i].key != 0) f(slots_[i].key, slots_[i].value);
    }
  }
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < capacity_; ++i) {
      if (slots_[i].key != 0) f(slots_[i].key, slots_[i].value);
    }
  }
  // Some entry's key (the first in slot order), or 0 when empty.
  std::uint64_t any_key() const noexcept {
    for (std::size_t i = 0; i < capacity_; ++i) {
      if (slots_[i].key != 0) return slots_[i].key;
    }
    return 0;
  }

 private:
  // Slots live in memory of their own: a table of a few MB is read at random, and huge
  // pages (asked for before the memory is first touched) spare most of its TLB misses.
  static constexpr std::size_t kHuge = std::size_t{2} << 20;
  struct Free {
    std::size_t bytes;
    void operator()(Slot* p) const noexcept {
      ::operator delete (static_cast<void*>(p), bytes, std::align_val_t{alignment(bytes)});
    }
  };
  static constexpr std::size_t alignment(std::size_t bytes) noexcept {
    return bytes >= kHuge ? kHuge : alignof(Slot);
  }
  static std::unique_ptr<Slot[], Free> allocate(std::size_t count) {
    const std::size_t bytes = count * sizeof(Slot);
    void* raw = ::operator new (bytes, std::align_val_t{alignment(bytes)});
    if (bytes >= kHuge) ::madvise(raw, bytes, MADV_HUGEPAGE);
    Slot* slots = static_cast<Slot*>(raw);
    for (std::size_t i = 0; i < count; ++i) new (slots + i) Slot{};
    return std::unique_ptr<Slot[], Free>(slots, Free{bytes});
  }

  void grow() {
    const std::size_t old_capacity = capacity_;
    auto old = std::exchange(slots_, allocate(capacity_ == 0 ? 16 : 2 * capacity_));
    capacity_ = capacity_ == 0 ? 16 : 2 * capacity_;
    mask_ = capacity_ - 1;
    for (std::size_t s = 0; s < old_capacity; ++s) {
      Slot& slot = old[s];
      if (slot.key == 0) continue;
      std::size_t i = slot.key & mask_;
      while (slots_[i].key != 0) i = (i + 1) & mask_;
      slots_[i] = std::move(slot);
    }
  }

  std::unique_ptr<Slot[], Free> slots_{nullptr, Free{0}};
  std::size_t capacity_ = 0;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace dep2p::connmgr::detail
