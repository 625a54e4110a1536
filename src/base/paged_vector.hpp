// A slot table that grows in fixed pages (see PagedVector).
#pragma once

#include <cstddef>
#include <iterator>
#include <memory>
#include <utility>
#include <vector>

namespace dep2p::connmgr::detail {

// A table indexed by slot number that grows in fixed pages of 2^PageBits elements
// instead of doubling one array. The pool's slot tables use it because of what doubling
// costs at scale: up to half of the array unused (31% extra at 100k connections, where
// the capacity is 131,072) and, while it grows, the old and the new array at once. Here
// the spare room is under one page, growth never moves an element except inside the
// first page (which doubles up to a full page so that a small pool stays small), and
// references to elements of other pages stay valid.
//
// Elements are value-initialized when their page is allocated; emplace_back() hands out
// the next one as it is (a slot table resets the slots it recycles itself).
template <class T, std::size_t PageBits = 10>
class PagedVector {
 public:
  static constexpr std::size_t kPageSize = std::size_t{1} << PageBits;
  static constexpr std::size_t kMask = kPageSize - 1;

  PagedVector() = default;
  PagedVector(const PagedVector&) = delete;
  PagedVector& operator=(const PagedVector&) = delete;

  T& operator[](std::size_t i) noexcept { return pages_[i >> PageBits][i & kMask]; }
  const T& operator[](std::size_t i) const noexcept { return pages_[i >> PageBits][i & kMask]; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  // The next element (value-initialized: never handed out before).
  T& emplace_back() {
    if (size_ == capacity_) grow();
    return (*this)[size_++];
  }
  void push_back(T value) { emplace_back() = std::move(value); }

  // Calls f(index, element) for each element in index order, a page at a time so that
  // the inner loop runs on a plain pointer. f must not add elements.
  template <class F>
  void for_each(F&& f) {
    for_each_in(*this, f);
  }
  template <class F>
  void for_each(F&& f) const {
    for_each_in(*this, f);
  }

  template <bool Const>
  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using Table = std::conditional_t<Const, const PagedVector, PagedVector>;
    using reference = std::conditional_t<Const, const T&, T&>;
    using pointer = std::conditional_t<Const, const T*, T*>;

    Iterator() = default;
    Iterator(Table* table, std::size_t i) : table_(table), i_(i) {}
    reference operator*() const { return (*table_)[i_]; }
    pointer operator->() const { return &(*table_)[i_]; }
    Iterator& operator++() {
      ++i_;
      return *this;
    }
    Iterator operator++(int) {
      Iterator old = *this;
      ++i_;
      return old;
    }
    friend bool operator==(const Iterator& a, const Iterator& b) { return a.i_ == b.i_; }

   private:
    Table* table_ = nullptr;
    std::size_t i_ = 0;
  };
  Iterator<false> begin() { return {this, 0}; }
  Iterator<false> end() { return {this, size_}; }
  Iterator<true> begin() const { return {this, 0}; }
  Iterator<true> end() const { return {this, size_}; }

 private:
  static constexpr std::size_t kFirstPage = kPageSize < 16 ? kPageSize : 16;

  template <class Self, class F>
  static void for_each_in(Self& self, F& f) {
    const std::size_t size = self.size_;
    for (std::size_t first = 0; first < size; first += kPageSize) {
      auto* page = self.pages_[first >> PageBits].get();
      const std::size_t count = size - first < kPageSize ? size - first : kPageSize;
      for (std::size_t i = 0; i < count; ++i) f(first + i, page[i]);
    }
  }

  void grow() {
    if (capacity_ < kPageSize) {
      const std::size_t capacity = capacity_ == 0 ? kFirstPage : capacity_ * 2;
      auto page = std::make_unique<T[]>(capacity);
      for (std::size_t i = 0; i < size_; ++i) page[i] = std::move(pages_[0][i]);
      if (pages_.empty()) {
        pages_.push_back(std::move(page));
      } else {
        pages_[0] = std::move(page);
      }
      capacity_ = capacity;
      return;
    }
    pages_.push_back(std::make_unique<T[]>(kPageSize));
    capacity_ += kPageSize;
  }

  std::vector<std::unique_ptr<T[]>> pages_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace dep2p::connmgr::detail
