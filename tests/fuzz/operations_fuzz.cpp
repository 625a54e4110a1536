// Fuzz target: operation sequences. The fuzzer's bytes choose the configuration and every
// operation of a model run (tests/model/model.hpp); any disagreement between the library
// and the reference model, or a broken invariant, is a finding.
//
// A step reads about 4 bytes and costs about 25 us under the fuzz preset (ASan, UBSan,
// coverage), most of it the library's own work and the comparison of every peer after the
// step. A run stops after kMaxSteps steps: enough to fill the pool past high water, trim
// and bind realms in most configurations, and short enough that libFuzzer runs several
// hundred inputs a second. The fuzz scripts run this target with -max_len=192, about what
// 48 steps read, so that no mutation lands past the last step; and with -use_counters=0:
// every step compares every peer, so hit counts mostly measure a run's length, and as
// features they fill the corpus with inputs that differ only in length (edge coverage
// still guides the search). The standard library's and Boost's code in this file is left
// out of coverage (operations_coverage_ignorelist.txt): the model's containers are not
// what the search should explore.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "model/model.hpp"

namespace {
constexpr std::size_t kMaxSteps = 48;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  dep2p::connmgr::model::ByteChoices choices(data, size);
  dep2p::connmgr::model::Run run(choices);
  while (!choices.exhausted() && run.steps() < kMaxSteps) {
    if (!run.step()) {
      std::fprintf(stderr, "model disagreement: %s\n%s\n", run.failure().c_str(),
                   run.context().c_str());
      std::abort();
    }
  }
  return 0;
}
