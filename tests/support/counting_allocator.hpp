// Counts the heap: live bytes and blocks obtained through the global operator new and not
// yet given back, for tests and benchmarks that measure memory.
//
//   const std::int64_t before = dep2p::connmgr::testing::live_heap_bytes();
//   ... build something ...
//   const std::int64_t held = dep2p::connmgr::testing::live_heap_bytes() - before;
//
// The counters exist only in a program that links tests/support/counting_allocator.cpp,
// which replaces every form of the global operator new and delete. A replacement applies
// to the whole program, so link that file into an executable of its own, never into one
// whose timings matter. The figures are requested sizes: malloc's own per-block overhead
// is not in them. Thread safety: the counters are atomic; reading them while other threads
// allocate gives some value between the states before and after.
#pragma once

#include <cstdint>

namespace dep2p::connmgr::testing {

// Bytes requested through operator new and not yet deleted.
std::int64_t live_heap_bytes() noexcept;
// Blocks obtained through operator new and not yet deleted.
std::int64_t live_heap_blocks() noexcept;

}  // namespace dep2p::connmgr::testing
