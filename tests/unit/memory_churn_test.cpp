// Memory stays bounded under churn (issue 3, acceptance 5): a million peers connect, get
// plain and decaying tags, disconnect and are retained for tag_retention, and afterwards
// the manager holds as many heap bytes as after a warm-up wave of the same shape, within
// the few KB by which the peer index's parts move as they rehash (kIndexSlack).
//
// The measure is the number of live bytes obtained through operator new, counted by the
// replacements in tests/support/counting_allocator.cpp. This file is in its own executable
// because replacing the global operator new and delete applies to the whole program.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/decay.hpp"
#include "dep2p/connmgr/error.hpp"
#include "support/counting_allocator.hpp"
#include "support/fake_connection.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using testing::FakeConnection;
using testing::peer_id;

std::int64_t live_bytes() { return testing::live_heap_bytes(); }

// The counter sees every form the program allocates with. The allocation functions are
// called directly: new-expressions whose result is unused may be optimised away.
TEST(MemoryCounter, CountsLiveBytesOfEveryFormOfNewAndDelete) {
  const std::int64_t before = live_bytes();
  void* single = ::operator new(8);
  void* array = ::operator new[](40);
  void* quiet = ::operator new(24, std::nothrow);
  void* wide = ::operator new (64, std::align_val_t{64});
  void* wide_array = ::operator new[](128, std::align_val_t{128});
  EXPECT_EQ(live_bytes() - before, 8 + 40 + 24 + 64 + 128);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(wide) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(wide_array) % 128, 0u);

  ::operator delete(single, 8);
  ::operator delete[](array);
  ::operator delete(quiet, std::nothrow);
  ::operator delete (wide, 64, std::align_val_t{64});
  ::operator delete[](wide_array, std::align_val_t{128});
  EXPECT_EQ(live_bytes(), before);
}

// One wave: `count` peers connect, get a plain tag and a decaying tag, and disconnect;
// tag_retention keeps their tags, then time passes until the retained entries expire.
// Returns the number of calls that failed (no assertion inside: a failure message would
// allocate in the middle of the measurement).
std::size_t churn_wave(ConnectionManager& manager, ManualTimeSource& time, DecayingTag& tag,
                       std::uint64_t first_peer, std::size_t count,
                       std::vector<std::shared_ptr<FakeConnection>>& connections,
                       const Endpoint& remote, std::chrono::milliseconds retention) {
  std::size_t failures = 0;
  connections.clear();
  for (std::size_t i = 0; i < count; ++i) {
    const NodeId peer = peer_id(first_peer + i);
    connections.push_back(std::make_shared<FakeConnection>(peer, Direction::inbound, remote));
    if (manager.add_connection(connections.back())) ++failures;
    if (manager.tag_peer(peer, "churn", 5)) ++failures;
    if (tag.bump(peer, 3)) ++failures;
  }
  for (const auto& connection : connections) {
    if (manager.remove_connection(*connection)) ++failures;
  }
  connections.clear();            // keeps its capacity: the same every wave
  time.advance(retention + 1ms);  // past the retention window of every peer of the wave
  return failures;
}

TEST(MemoryChurn, AMillionPeersLeaveTheManagersHeapAtItsBaseline) {
  constexpr std::size_t kWave = 1000;
  constexpr std::size_t kWaves = 1000;  // 1,000,000 peers after the warm-up
  constexpr auto kRetention = 1s;

  boost::asio::io_context io;
  auto time = std::make_shared<ManualTimeSource>(io);
  Config config;
  config.grace_period = 0ms;
  config.high_water = 0;  // no trimming: every entry must go by itself
  config.tag_retention = kRetention;
  config.decay_resolution = 1s;
  config.max_temp_peers = kWave;
  Dependencies deps;
  deps.time_source = time;
  ConnectionManager manager(io, config, deps);
  std::error_code ec;
  DecayingTag tag = manager.register_decaying_tag("score", 1s, Decay::fixed(1), Bump::sum(), ec);
  ASSERT_FALSE(ec) << ec.message();
  const Endpoint remote = testing::endpoint("127.0.0.1");
  std::vector<std::shared_ptr<FakeConnection>> connections;
  connections.reserve(kWave);

  // Warm-up: one wave grows every table to the size a wave needs.
  ASSERT_EQ(churn_wave(manager, *time, tag, 1, kWave, connections, remote, kRetention), 0u);
  ASSERT_EQ(manager.stats().temporary_peers, 0u);
  const std::int64_t baseline = live_bytes();

  // The peer index is split in parts by hash (src/pool/peer_index.hpp); each part's
  // table rehashes by its own load, so its capacity follows its share of a wave, which
  // varies from wave to wave. That moves the heap by a few KB either way; a leak of one
  // byte per peer would hold 1 MB by the end.
  constexpr std::int64_t kIndexSlack = 16 * 1024;
  std::size_t failures = 0;
  std::int64_t highest = baseline;
  for (std::size_t wave = 1; wave <= kWaves; ++wave) {
    failures +=
        churn_wave(manager, *time, tag, 1 + wave * kWave, kWave, connections, remote, kRetention);
    highest = std::max(highest, live_bytes());
  }
  const std::int64_t after = live_bytes();

  EXPECT_EQ(failures, 0u);
  EXPECT_LE(after, baseline + kIndexSlack)
      << "bytes still held after 1M peers: " << (after - baseline);
  EXPECT_LE(highest, baseline + kIndexSlack)
      << "bytes held after the worst wave: " << (highest - baseline);
  const Stats stats = manager.stats();
  EXPECT_EQ(stats.connections, 0u);
  EXPECT_EQ(stats.peers, 0u);
  EXPECT_EQ(stats.temporary_peers, 0u);
  EXPECT_EQ(stats.connections_added, (kWaves + 1) * kWave);
  // Every peer was retained (it held tags) and its entry expired on time.
  EXPECT_EQ(stats.temporary_peers_pruned, (kWaves + 1) * kWave);
  EXPECT_EQ(manager.peer_count(), 0u);
  EXPECT_FALSE(manager.tag_info(peer_id(kWaves * kWave + 1)).has_value());
}

// The dial backoff table stays at its bound (DialConfig::max_backoff_peers) however many
// distinct peers fail: a million peers are checked, fail their dial (one in four also on
// one of its addresses) and are never heard of again. After a first wave fills the table,
// the heap stays where that wave left it: each new failure pushes the oldest out.
// A dialing loop asks about many peers in backoff: each answer holds no heap memory (its
// texts fit std::string's inline buffer), and a dial in flight's likewise.
TEST(MemoryChurn, ACheckDialRefusedForBackoffHoldsNoHeapMemory) {
  boost::asio::io_context io;
  auto time = std::make_shared<ManualTimeSource>(io);
  ConnectionManager manager(io, Config{}, Dependencies{.time_source = time});
  manager.dial_failed(peer_id(1), DialFailure::error);
  ASSERT_FALSE(manager.check_dial(peer_id(2)).error);
  (void)manager.check_dial(peer_id(1));  // the first refusal may set up what later ones reuse
  const std::int64_t before = testing::live_heap_blocks();
  {
    const Admission backoff = manager.check_dial(peer_id(1));
    const Admission pending = manager.check_dial(peer_id(2));
    const std::int64_t during = testing::live_heap_blocks();
    EXPECT_EQ(backoff.error, Errc::dial_backoff);
    EXPECT_EQ(pending.error, Errc::dial_pending);
    EXPECT_EQ(during, before) << "blocks held by two refusals";
  }
}

TEST(MemoryChurn, AMillionPeersFailingDialsKeepTheBackoffTableAtItsBound) {
  boost::asio::io_context io;
  auto time = std::make_shared<ManualTimeSource>(io);
  Config config;
  config.dial.max_backoff_peers = 10'000;
  config.dial.offline_after_failures = 0;  // no connection is open: stay online
  ConnectionManager manager(io, config, Dependencies{.time_source = time});
  const Endpoint remote{boost::asio::ip::make_address("10.1.2.3"), 4001};
  constexpr std::size_t kWave = 100'000;
  constexpr std::size_t kWaves = 10;
  // Returns the calls that did not answer as expected (no assertion inside: a failure
  // message would allocate in the middle of the measurement).
  const auto wave = [&](std::uint64_t first) {
    std::size_t wrong = 0;
    for (std::uint64_t p = first; p < first + kWave; ++p) {
      const NodeId peer = peer_id(p);
      if (manager.check_dial(peer).error) ++wrong;
      if (p % 4 == 0) manager.dial_failed(peer, remote, DialFailure::timeout);
      manager.dial_failed(peer, DialFailure::error);
      time->advance(1ms);
    }
    return wrong;
  };
  std::size_t wrong = wave(0);
  const std::int64_t filled = live_bytes();
  std::int64_t highest = filled;
  for (std::size_t w = 1; w < kWaves; ++w) {
    wrong += wave(w * kWave);
    highest = std::max(highest, live_bytes());
  }
  EXPECT_EQ(wrong, 0u);
  const Stats stats = manager.stats();
  EXPECT_EQ(stats.backoff_entries, 10'000u);
  EXPECT_EQ(stats.dial_failures[static_cast<std::size_t>(DialFailure::error)], kWave * kWaves);
  EXPECT_EQ(stats.dials_in_flight, 0u);
  // The table's parts (its hash table, the failure order, the address lists) are at their
  // working size after the first wave; what moves after is their fill, a few KB.
  constexpr std::int64_t kSlack = 64 * 1024;
  EXPECT_LE(highest, filled + kSlack) << "bytes beyond the first wave: " << (highest - filled);
  EXPECT_TRUE(manager.backoff_until(peer_id(kWave * kWaves - 1)));
  EXPECT_FALSE(manager.backoff_until(peer_id(kWave * kWaves - 10'001)))
      << "the oldest failures made way";
}

}  // namespace
}  // namespace dep2p::connmgr
