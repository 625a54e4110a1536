// The process's own resource use as Linux reports it under /proc/self: open file
// descriptors and resident memory. Header-only, for the examples that check for leaks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace proc_stats {

// Entries of /proc/self/fd (the directory's own descriptor, open while it is read,
// included: every call counts it alike). 0 when /proc is not mounted.
inline std::size_t open_fds() {
  std::error_code ec;
  std::size_t n = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++n;
  }
  return n;
}

// VmRSS of /proc/self/status in KiB; 0 when it cannot be read.
inline std::uint64_t rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      std::uint64_t kib = 0;
      status >> kib;
      return kib;
    }
    status.ignore(4096, '\n');
  }
  return 0;
}

}  // namespace proc_stats
