// KeySlots: a hash table from well-mixed, non-zero 64-bit keys to small values, laid out
// so that a lookup at random over a large table touches as little memory as can be: open
// addressing with linear probing over an array of slots that hold the key and the value's
// hot part side by side (no separate control bytes), and a parallel array of the cold
// parts, read only by the operations that need them. It is kept at most 80% full, so that
// the hot array stays small enough for the cache; at its fullest a hit probes about 3
// slots and a miss about 13, in adjacent lines. Erasing shifts the following slots of the
// probe run back: no tombstones, so lookups stay short under churn.
//
//   KeySlots<Hot, Cold> table;
//   const std::size_t at = table.emplace(key);   // found or default-made
//   table.hot(at).until = ...; table.cold(at).failures = ...;
//   if (const std::size_t at = table.find(key); at != table.npos) ...
//   table.erase(key);
//
// Keys must already be mixed (their low bits pick the home slot) and non-zero (zero marks
// a free slot). A position stays valid until the next emplace or erase.
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

template <class Hot, class Cold>
class KeySlots {
  static_assert(std::is_trivially_destructible_v<Hot> && std::is_trivially_destructible_v<Cold>,
                "slots are freed without destructors");

 public:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  struct Slot {
    std::uint64_t key = 0;  // 0: free
    Hot hot{};
  };

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t capacity() const noexcept { return capacity_; }

  std::size_t find(std::uint64_t key) const noexcept {
    if (size_ == 0) return npos;
    for (std::size_t i = key & mask_;; i = (i + 1) & mask_) {
      const std::uint64_t here = slots_[i].key;
      if (here == key) return i;
      if (here == 0) return npos;
    }
  }
  Hot& hot(std::size_t at) noexcept { return slots_[at].hot; }
  const Hot& hot(std::size_t at) const noexcept { return slots_[at].hot; }
  Cold& cold(std::size_t at) noexcept { return colds_[at]; }
  const Cold& cold(std::size_t at) const noexcept { return colds_[at]; }

  // The position of `key`, made with Hot{} and Cold{} if absent.
  std::size_t emplace(std::uint64_t key) {
    if (5 * (size_ + 1) > 4 * capacity_) grow();
    std::size_t i = key & mask_;
    for (; slots_[i].key != 0; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return i;
    }
    slots_[i] = Slot{key, Hot{}};
    colds_[i] = Cold{};
    ++size_;
    return i;
  }

  // Removes `key` if present; returns whether it was.
  bool erase(std::uint64_t key) noexcept {
    std::size_t hole = find(key);
    if (hole == npos) return false;
    // Backward shift: a later slot of the run moves into the hole unless its home lies
    // cyclically in (hole, at] (it would then be found before the hole anyway).
    for (std::size_t at = (hole + 1) & mask_; slots_[at].key != 0; at = (at + 1) & mask_) {
      const std::size_t home = slots_[at].key & mask_;
      const bool stays = hole <= at ? (hole < home && home <= at) : (hole < home || home <= at);
      if (stays) continue;
      slots_[hole] = slots_[at];
      colds_[hole] = colds_[at];
      hole = at;
    }
    slots_[hole] = Slot{};
    colds_[hole] = Cold{};
    --size_;
    return true;
  }

  // Calls f(key, hot, cold) for every entry, in slot order.
  template <class F>
  void for_each(F&& f) {
    for (std::size_t i = 0; i < capacity_; ++i) {
      if (slots_[i].key != 0) f(slots_[i].key, slots_[i].hot, colds_[i]);
    }
  }
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < capacity_; ++i) {
      if (slots_[i].key != 0) f(slots_[i].key, slots_[i].hot, colds_[i]);
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
  // Each array lives in memory of its own: read at random, an array of a few MB is spared
  // most of its TLB misses by huge pages (asked for before the memory is first touched).
  static constexpr std::size_t kHuge = std::size_t{2} << 20;
  static constexpr std::size_t alignment(std::size_t bytes) noexcept {
    return bytes >= kHuge ? kHuge : alignof(std::max_align_t);
  }
  template <class T>
  struct Free {
    std::size_t bytes = 0;
    void operator()(T* p) const noexcept {
      // Unsized: clang does not enable sized deallocation by default.
      ::operator delete (static_cast<void*>(p), std::align_val_t{alignment(bytes)});
    }
  };
  template <class T>
  using Array = std::unique_ptr<T[], Free<T>>;
  template <class T>
  static Array<T> allocate(std::size_t count) {
    const std::size_t bytes = count * sizeof(T);
    void* raw = ::operator new (bytes, std::align_val_t{alignment(bytes)});
    if (bytes >= kHuge) ::madvise(raw, bytes, MADV_HUGEPAGE);
    T* items = static_cast<T*>(raw);
    for (std::size_t i = 0; i < count; ++i) new (items + i) T{};
    return Array<T>(items, Free<T>{bytes});
  }

  void grow() {
    const std::size_t old_capacity = capacity_;
    capacity_ = capacity_ == 0 ? 16 : 2 * capacity_;
    mask_ = capacity_ - 1;
    Array<Slot> old_slots = std::exchange(slots_, allocate<Slot>(capacity_));
    Array<Cold> old_colds = std::exchange(colds_, allocate<Cold>(capacity_));
    for (std::size_t s = 0; s < old_capacity; ++s) {
      if (old_slots[s].key == 0) continue;
      std::size_t i = old_slots[s].key & mask_;
      while (slots_[i].key != 0) i = (i + 1) & mask_;
      slots_[i] = old_slots[s];
      colds_[i] = old_colds[s];
    }
  }

  Array<Slot> slots_;
  Array<Cold> colds_;
  std::size_t capacity_ = 0;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace dep2p::connmgr::detail
