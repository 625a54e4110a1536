// A 16-byte small vector for the pool's per-peer lists.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>

namespace dep2p::connmgr::detail {

// A vector of trivially copyable elements that keeps up to N of them inline in the
// space of the heap pointer, in 16 bytes in all (boost's small_vector takes 32 for two
// 4-byte elements). Every peer entry holds two of these (its connections and its tags),
// nearly always short, so the size is paid per peer. clear() gives a heap block back,
// so that a recycled slot holds nothing.
template <class T, std::size_t N>
class CompactVector {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_default_constructible_v<T>);
  static_assert(N >= 1 && sizeof(T) * N <= sizeof(T*));

 public:
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;

  CompactVector() noexcept = default;
  ~CompactVector() { free(); }
  CompactVector(const CompactVector& other) { assign(other); }
  CompactVector& operator=(const CompactVector& other) {
    if (this != &other) {
      clear();
      assign(other);
    }
    return *this;
  }
  CompactVector(CompactVector&& other) noexcept { steal(other); }
  CompactVector& operator=(CompactVector&& other) noexcept {
    if (this != &other) {
      free();
      steal(other);
    }
    return *this;
  }

  T* data() noexcept { return on_heap() ? heap_ : inline_; }
  const T* data() const noexcept { return on_heap() ? heap_ : inline_; }
  T* begin() noexcept { return data(); }
  T* end() noexcept { return data() + size_; }
  const T* begin() const noexcept { return data(); }
  const T* end() const noexcept { return data() + size_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  T& operator[](std::size_t i) noexcept { return data()[i]; }
  const T& operator[](std::size_t i) const noexcept { return data()[i]; }
  T& front() noexcept { return data()[0]; }
  const T& front() const noexcept { return data()[0]; }
  T& back() noexcept { return data()[size_ - 1]; }
  const T& back() const noexcept { return data()[size_ - 1]; }

  void push_back(const T& value) {
    if (size_ == capacity_) grow();
    data()[size_++] = value;
  }
  void pop_back() noexcept { --size_; }
  // Removes the element at `it` (order kept); returns the position after it.
  T* erase(T* it) noexcept {
    T* last = end();
    std::memmove(static_cast<void*>(it), it + 1,
                 static_cast<std::size_t>(last - it - 1) * sizeof(T));
    --size_;
    return it;
  }
  void clear() noexcept {
    free();
    size_ = 0;
    capacity_ = N;
  }

 private:
  bool on_heap() const noexcept { return capacity_ > N; }
  void free() noexcept {
    if (on_heap()) std::allocator<T>().deallocate(heap_, capacity_);
  }
  void grow() {
    const std::uint32_t capacity = capacity_ * 2;
    T* block = std::allocator<T>().allocate(capacity);
    std::memcpy(static_cast<void*>(block), data(), size_ * sizeof(T));
    free();
    heap_ = block;
    capacity_ = capacity;
  }
  void assign(const CompactVector& other) {
    if (other.size_ > N) {
      heap_ = std::allocator<T>().allocate(other.size_);
      capacity_ = other.size_;
    }
    std::memcpy(static_cast<void*>(data()), other.data(), other.size_ * sizeof(T));
    size_ = other.size_;
  }
  void steal(CompactVector& other) noexcept {
    std::memcpy(static_cast<void*>(&heap_), static_cast<const void*>(&other.heap_), sizeof(T*));
    size_ = other.size_;
    capacity_ = other.capacity_;
    other.size_ = 0;
    other.capacity_ = N;
  }

  union {
    T inline_[N];
    T* heap_;
  };
  std::uint32_t size_ = 0;
  std::uint32_t capacity_ = N;
};

}  // namespace dep2p::connmgr::detail
