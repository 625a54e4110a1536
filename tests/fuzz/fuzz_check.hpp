// A check for fuzz targets: prints what broke and aborts, which libFuzzer reports as a
// finding (with the input saved as a crash-* file to replay).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#define DEP2P_FUZZ_CHECK(condition, what)                                       \
  do {                                                                          \
    if (!(condition)) {                                                         \
      std::fprintf(stderr, "fuzz check failed: %s (%s) at %s:%d\n", #condition, \
                   std::string(what).c_str(), __FILE__, __LINE__);              \
      std::abort();                                                             \
    }                                                                           \
  } while (false)
