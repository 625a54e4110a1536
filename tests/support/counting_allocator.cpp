// Counting replacements of every form of the global operator new and delete; see
// counting_allocator.hpp. Moved here from tests/unit/memory_churn_test.cpp so that the
// memory tests and the memory benchmark count the same way.
//
// Every block carries its requested size in a header, so the unsized forms of delete know
// what they free. Under AddressSanitizer the replacements still win (ASan only intercepts
// malloc and free, which they call), so the counts are the same in every build.
#include "support/counting_allocator.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace {

// Bytes requested through operator new and not yet given back, and the blocks they are in.
std::atomic<std::int64_t> g_live_bytes{0};
std::atomic<std::int64_t> g_live_blocks{0};

// Every block carries its requested size just before the address handed out, so the
// unsized forms of delete know what they free. The header is a whole alignment unit, so
// the address handed out keeps the alignment asked for.
constexpr std::size_t kDefaultAlignment = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

std::size_t header_size(std::size_t alignment) noexcept {
  return alignment > kDefaultAlignment ? alignment : kDefaultAlignment;
}

void* counted_allocate(std::size_t size, std::size_t alignment) noexcept {
  const std::size_t header = header_size(alignment);
  void* base = nullptr;
  if (alignment > kDefaultAlignment) {
    if (posix_memalign(&base, alignment, header + size) != 0) return nullptr;
  } else {
    base = std::malloc(header + size);
    if (base == nullptr) return nullptr;
  }
  auto* user = static_cast<unsigned char*>(base) + header;
  std::memcpy(user - sizeof(std::size_t), &size, sizeof(std::size_t));
  g_live_bytes.fetch_add(static_cast<std::int64_t>(size), std::memory_order_relaxed);
  g_live_blocks.fetch_add(1, std::memory_order_relaxed);
  return user;
}

void counted_free(void* pointer, std::size_t alignment) noexcept {
  if (pointer == nullptr) return;
  auto* user = static_cast<unsigned char*>(pointer);
  std::size_t size = 0;
  std::memcpy(&size, user - sizeof(std::size_t), sizeof(std::size_t));
  g_live_bytes.fetch_sub(static_cast<std::int64_t>(size), std::memory_order_relaxed);
  g_live_blocks.fetch_sub(1, std::memory_order_relaxed);
  std::free(user - header_size(alignment));
}

void* counted_allocate_or_throw(std::size_t size, std::size_t alignment) {
  for (;;) {
    if (void* p = counted_allocate(size, alignment)) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

std::size_t to_size(std::align_val_t alignment) noexcept {
  return static_cast<std::size_t>(alignment);
}

}  // namespace

void* operator new(std::size_t size) { return counted_allocate_or_throw(size, 0); }
void* operator new[](std::size_t size) { return counted_allocate_or_throw(size, 0); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return counted_allocate(size, 0);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return counted_allocate(size, 0);
}
void* operator new(std::size_t size, std::align_val_t alignment) {
  return counted_allocate_or_throw(size, to_size(alignment));
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
  return counted_allocate_or_throw(size, to_size(alignment));
}
void* operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return counted_allocate(size, to_size(alignment));
}
void* operator new[](std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return counted_allocate(size, to_size(alignment));
}

void operator delete(void* p) noexcept { counted_free(p, 0); }
void operator delete[](void* p) noexcept { counted_free(p, 0); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p, 0); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p, 0); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_free(p, 0); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counted_free(p, 0); }
void operator delete(void* p, std::align_val_t alignment) noexcept {
  counted_free(p, to_size(alignment));
}
void operator delete[](void* p, std::align_val_t alignment) noexcept {
  counted_free(p, to_size(alignment));
}
void operator delete(void* p, std::size_t, std::align_val_t alignment) noexcept {
  counted_free(p, to_size(alignment));
}
void operator delete[](void* p, std::size_t, std::align_val_t alignment) noexcept {
  counted_free(p, to_size(alignment));
}
void operator delete(void* p, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  counted_free(p, to_size(alignment));
}
void operator delete[](void* p, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  counted_free(p, to_size(alignment));
}

namespace dep2p::connmgr::testing {

std::int64_t live_heap_bytes() noexcept { return g_live_bytes.load(std::memory_order_relaxed); }
std::int64_t live_heap_blocks() noexcept { return g_live_blocks.load(std::memory_order_relaxed); }

}  // namespace dep2p::connmgr::testing
