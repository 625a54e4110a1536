// Fuzz target: operation sequences. The fuzzer's bytes choose the configuration and every
// operation of a model run (tests/model/model.hpp); any disagreement between the library
// and the reference model, or a broken invariant, is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "model/model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  dep2p::connmgr::model::ByteChoices choices(data, size);
  dep2p::connmgr::model::Run run(choices);
  // Bounded, so that one input cannot run for long: 400 steps cover what 4 KiB can say.
  while (!choices.exhausted() && run.steps() < 400) {
    if (!run.step()) {
      std::fprintf(stderr, "model disagreement: %s\n%s\n", run.failure().c_str(),
                   run.context().c_str());
      std::abort();
    }
  }
  return 0;
}
