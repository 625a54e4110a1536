// Relaxed<T>: a plain integer field that one thread may write while another reads it, each
// access a relaxed atomic one (a plain load or store on the targets we build for). For
// fields whose writers are already serialised by a lock and whose concurrent readers need
// each value whole, not in any order with other fields: the manager's trim reads a peer's
// tag sum and stream count while holders of that peer's lock shard change them.
#pragma once

#include <atomic>

namespace dep2p::connmgr::detail {

template <class T>
class Relaxed {
 public:
  constexpr Relaxed(T value = T{}) noexcept : value_(value) {}  // NOLINT: converts like T
  Relaxed(const Relaxed& other) noexcept : value_(other.load()) {}
  Relaxed& operator=(const Relaxed& other) noexcept { return *this = other.load(); }

  T load() const noexcept {
    return std::atomic_ref<T>(const_cast<T&>(value_)).load(std::memory_order_relaxed);
  }
  operator T() const noexcept { return load(); }  // NOLINT: reads like T
  Relaxed& operator=(T value) noexcept {
    std::atomic_ref<T>(value_).store(value, std::memory_order_relaxed);
    return *this;
  }
  // Read, then write: for a single writer at a time (the lock serialises writers).
  Relaxed& operator+=(T delta) noexcept { return *this = static_cast<T>(load() + delta); }
  Relaxed& operator-=(T delta) noexcept { return *this = static_cast<T>(load() - delta); }

 private:
  alignas(std::atomic_ref<T>::required_alignment) T value_;
};

}  // namespace dep2p::connmgr::detail
