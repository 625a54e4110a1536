// Model-based random testing (issue #8): thousands of seeded random operation sequences,
// each checked step by step against the reference model in model.hpp.
//
// Every seed in [0, kCases * kSeedsPerCase) runs by default, split into kCases tests so
// that ctest -j runs them in parallel. A failure names the seed and the step; to replay
// one seed alone:
//
//   DEP2P_MODEL_SEED=1234 ./build/dev/tests/model/connmgr_model_tests
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "model/model.hpp"

namespace dep2p::connmgr {
namespace {

constexpr int kCases = 10;
constexpr std::uint64_t kSeedsPerCase = 200;  // 2,000 seeds in all
constexpr std::size_t kStepsPerSeed = 80;

// Runs one seed; on failure reports it with everything needed to replay it.
bool run_seed(std::uint64_t seed, std::size_t steps = kStepsPerSeed) {
  model::SeededChoices choices(seed);
  model::Run run(choices);
  while (run.steps() < steps) {
    if (!run.step()) {
      ADD_FAILURE() << "seed " << seed << ", " << run.failure() << "\n"
                    << run.context() << "\nreplay: DEP2P_MODEL_SEED=" << seed
                    << " connmgr_model_tests";
      return false;
    }
  }
  return true;
}

std::optional<std::uint64_t> replay_seed() {
  const char* text = std::getenv("DEP2P_MODEL_SEED");
  if (text == nullptr || *text == '\0') return std::nullopt;
  return std::strtoull(text, nullptr, 10);
}

class ModelSeeds : public ::testing::TestWithParam<int> {};

TEST_P(ModelSeeds, LibraryAgreesWithTheReferenceModel) {
  if (auto seed = replay_seed()) {
    if (GetParam() != 0) GTEST_SKIP() << "replaying seed " << *seed << " in case 0";
    run_seed(*seed);
    return;
  }
  const auto first = static_cast<std::uint64_t>(GetParam()) * kSeedsPerCase;
  for (std::uint64_t seed = first; seed < first + kSeedsPerCase; ++seed) {
    if (!run_seed(seed)) return;  // one failure is enough to read; the seed replays it
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, ModelSeeds, ::testing::Range(0, kCases));

// The model must notice when the library and it disagree: a connection added behind its
// back shows up at the next step's comparison.
TEST(Model, NoticesALibraryThatDisagrees) {
  model::SeededChoices choices(7);
  model::Run run(choices);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(run.step()) << run.failure();
  auto stray = std::make_shared<testing::FakeConnection>(testing::peer_id(999), Direction::inbound);
  ASSERT_FALSE(run.manager().add_connection(stray));
  EXPECT_FALSE(run.step());
  EXPECT_NE(run.failure().find("connection"), std::string::npos) << run.failure();
}

// A seed replays exactly: the same choices give the same operations.
TEST(Model, ASeedReplaysTheSameOperations) {
  model::SeededChoices a(42);
  model::SeededChoices b(42);
  model::Run first(a);
  model::Run second(b);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(first.step()) << first.failure();
    ASSERT_TRUE(second.step()) << second.failure();
  }
  EXPECT_EQ(first.context(), second.context());
}

// The generator stays meaningful: over a few hundred seeds the manager closes connections
// for every reason the model drives (so each rule of process_closes is exercised), and
// admission refuses for the caps, the gater and the realms' limits, and reserves make room.
TEST(Model, SeedsReachEveryCloseReasonTheModelDrives) {
  std::array<std::uint64_t, kCloseReasonCount> closes{};
  std::uint64_t cap_refusals = 0;
  std::uint64_t gater_refusals = 0;
  std::uint64_t realm_refusals = 0;
  std::uint64_t claims_accepted = 0;
  std::uint64_t claims_refused = 0;
  std::uint64_t connection_refusals = 0;
  std::uint64_t rooms_made = 0;
  std::uint64_t over_cap = 0;
  std::uint64_t claims_no_room = 0;
  std::uint64_t dial_pending = 0;
  std::uint64_t dial_backoff = 0;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    model::SeededChoices choices(seed);
    model::Run run(choices);
    while (run.steps() < kStepsPerSeed)
      ASSERT_TRUE(run.step()) << "seed " << seed << ", " << run.failure();
    const Stats s = run.manager().stats();
    for (std::size_t r = 0; r < kCloseReasonCount; ++r) closes[r] += s.closes_by_reason[r];
    cap_refusals += s.refusals(RefusalReason::subnet_cap);
    gater_refusals += s.refusals(RefusalReason::gater);
    realm_refusals += s.refusals(RefusalReason::realm_limit);
    claims_accepted += run.claims_accepted();
    claims_refused += run.claims_refused();
    connection_refusals += s.refusals(RefusalReason::connection_limit);
    rooms_made += run.rooms_made();
    over_cap += run.over_cap_admissions();
    claims_no_room += run.claims_no_room();
    dial_pending += s.refusals(RefusalReason::dial_pending);
    dial_backoff += s.refusals(RefusalReason::backoff);
  }
  for (CloseReason reason :
       {CloseReason::trimmed, CloseReason::forced_trim, CloseReason::keepalive_timeout,
        CloseReason::idle_timeout, CloseReason::gated, CloseReason::redundant_path,
        CloseReason::host, CloseReason::made_room}) {
    EXPECT_GT(closes[static_cast<std::size_t>(reason)], 0u) << to_string(reason);
  }
  EXPECT_GT(cap_refusals, 0u);
  EXPECT_GT(gater_refusals, 0u);
  EXPECT_GT(realm_refusals, 0u) << "binds never reached a realm's hard_max or max_members";
  EXPECT_GT(claims_accepted, 0u);
  EXPECT_GT(claims_refused, 0u) << "claims never met a full realm";
  EXPECT_GT(connection_refusals, 0u) << "admissions never met the system cap";
  EXPECT_GT(over_cap, 0u) << "no admission went above the cap";
  EXPECT_GT(rooms_made, 0u) << "no admission above the cap made room for a reserve";
  EXPECT_GT(claims_no_room, 0u) << "no admission above the cap found nothing to close";
  EXPECT_GT(dial_pending, 0u) << "check_dial never met a dial in flight";
  EXPECT_GT(dial_backoff, 0u) << "check_dial never met a peer in backoff after missed keepalives";
}

}  // namespace
}  // namespace dep2p::connmgr
