// Crash safety of the gater's rule file (src/gater/gater_file.hpp): a child process
// rewrites the file in a loop, each version a different rule set, and is killed with
// SIGKILL at an arbitrary instant, 200 times. After each kill the file must load through
// the public loader (BasicGater::attach_file) and hold exactly the rules of the last
// version the child finished or of the one it was writing: never a mix, never an error.
//
// The kill instant is set by the child's progress, not by a clock: the parent waits (by
// yielding) until the child has started a write (the first or the second of the round),
// then spins a random number of iterations before the kill, so kills land at every step
// of a write (writing the new file, fsync, rename, directory fsync) or just after it. At
// least 200 rounds run, and more (up to 2000) until ten kills have landed inside a write,
// so that the test shows what it claims however fast this machine and build are.
#include <gtest/gtest.h>

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <new>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>

#include "dep2p/connmgr/gater.hpp"
#include "gater/gater_file.hpp"
#include "net/prefix.hpp"

namespace dep2p::connmgr {
namespace {

// Version k's rules: 1 + k % 37 blocked addresses of 10.(k % 251).0.0/16, so that no two
// consecutive versions share a rule or a length.
std::vector<detail::FileRule> version(std::uint64_t k) {
  std::vector<detail::FileRule> rules;
  const std::size_t n = 1 + k % 37;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string address = "10." + std::to_string(k % 251) + "." + std::to_string(i) + ".1";
    rules.push_back(detail::FileRule{detail::FileRule::Kind::block,
                                     detail::host_prefix(boost::asio::ip::make_address(address)),
                                     0});
  }
  return rules;
}

// The blocked addresses the public loader finds in `path`, as text; an error as "error: ...".
std::vector<std::string> load(const std::string& path, std::string& problem) {
  boost::asio::io_context io;
  BasicGater gater(io.get_executor());
  std::string message;
  if (auto error = gater.attach_file(path, &message)) {
    problem = error.message() + ": " + message;
    return {};
  }
  std::vector<std::string> out;
  for (const auto& a : gater.rules().blocked_addresses) out.push_back(a.to_string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> addresses_of(std::uint64_t k) {
  std::vector<std::string> out;
  for (const detail::FileRule& rule : version(k)) {
    const auto& p = std::get<detail::Prefix>(rule.key);
    out.push_back(boost::asio::ip::make_address_v4(static_cast<std::uint32_t>(p.low)).to_string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(GaterFileCrash, AKillAtAnyInstantLeavesTheOldOrTheNewRulesNeverAMix) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("gater_crash_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "rules").string();
  ASSERT_FALSE(detail::write_atomically(path, detail::format_rules(version(0))));

  // The child's progress, shared across fork(): the version it began writing last and the
  // one it finished last.
  struct Progress {
    std::atomic<std::uint64_t> started{0};
    std::atomic<std::uint64_t> finished{0};
  };
  void* shared =
      ::mmap(nullptr, sizeof(Progress), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shared, MAP_FAILED);
  auto* progress = new (shared) Progress;
  std::atomic<std::uint64_t>* const finished = &progress->finished;

  std::mt19937_64 rng(22);
  std::uint64_t next = 1;
  std::size_t landed_mid_write = 0;  // the file held the version being written
  std::size_t cut_mid_write = 0;     // a kill left the temporary file of a write
  int round = 0;
  for (; round < 200 || (cut_mid_write < 10 && round < 2000); ++round) {
    const std::uint64_t first = next;
    finished->store(first - 1, std::memory_order_release);  // the version the file holds
    progress->started.store(first - 1, std::memory_order_release);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      for (std::uint64_t k = first;; ++k) {
        progress->started.store(k, std::memory_order_release);
        if (detail::write_atomically(path, detail::format_rules(version(k)))) ::_exit(3);
        finished->store(k, std::memory_order_release);
      }
    }
    // Let the child begin the first or second write of this round, spin a little, kill it.
    const std::uint64_t wait_for = first + rng() % 2;
    while (progress->started.load(std::memory_order_acquire) < wait_for) ::sched_yield();
    for (std::uint64_t spin = rng() % 20'000; spin > 0; --spin) {
      std::atomic_signal_fence(std::memory_order_seq_cst);
    }
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child stopped by itself, status " << status;

    const std::uint64_t done = finished->load(std::memory_order_acquire);
    // A write cut short leaves its temporary file beside the rules (the next write
    // replaces it); the loader never reads it.
    if (std::filesystem::exists(path + ".tmp")) ++cut_mid_write;
    std::string problem;
    const std::vector<std::string> loaded = load(path, problem);
    ASSERT_EQ(problem, "") << "round " << round;
    const bool old_version = loaded == addresses_of(done);
    const bool new_version = loaded == addresses_of(done + 1);
    ASSERT_TRUE(old_version || new_version)
        << "round " << round << ": the file holds " << loaded.size() << " rules, neither version "
        << done << " nor " << done + 1;
    if (new_version) ++landed_mid_write;
    next = (new_version ? done + 1 : done) + 1;
  }
  RecordProperty("kills_after_the_rename_before_the_count", std::to_string(landed_mid_write));
  RecordProperty("kills_during_a_write", std::to_string(cut_mid_write));
  RecordProperty("rounds", std::to_string(round));
  // The kills did reach into writes: a test whose every kill fell between writes would
  // show nothing.
  EXPECT_GE(cut_mid_write, 10U);
  progress->~Progress();
  ::munmap(shared, sizeof(Progress));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dep2p::connmgr
