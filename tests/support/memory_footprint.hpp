// Heap bytes per tracked connection (issue #8): builds the benchmarks' pool — N connections
// to N distinct peers, alternating direction, each peer with one tag of value 0-99 — and
// counts what the manager holds for it with tests/support/counting_allocator.cpp.
//
//   const auto plain = dep2p::connmgr::testing::measure_plain_pool(100'000);
//   plain.bytes_per_connection();  // the manager's bytes, host handles excluded
//
// The host's handles (the Connection objects and their shared_ptr control blocks) are
// allocated before the baseline is taken, so only what the manager allocates while the
// connections are added and tagged (or bound) is counted; the manager's fixed cost of
// construction is reported apart. The counts are requested sizes and include the spare
// capacity of growing tables, so they step with N rather than staying flat. Allocation is
// deterministic: the same N gives the same figures in every build type.
//
// Only for programs that link counting_allocator.cpp. Not thread-safe: one measurement at
// a time, and nothing else in the program allocating meanwhile.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "dep2p/connmgr/connmgr.hpp"
#include "support/counting_allocator.hpp"
#include "support/fake_connection.hpp"

namespace dep2p::connmgr::testing {

// What one measurement found. Bytes and blocks are deltas of the live counters.
struct Footprint {
  std::size_t connections = 0;
  std::int64_t construction_bytes = 0;  // the manager (and realms) before any connection
  std::int64_t handle_bytes = 0;        // the host's handles, excluded from `bytes`
  std::int64_t bytes = 0;               // what adding (and tagging, binding) the N took
  std::int64_t blocks = 0;              // in how many heap blocks
  std::int64_t binding_bytes = 0;       // realms only: the part that bind() added
  std::size_t failures = 0;             // calls that returned an error; 0 when sound

  double bytes_per_connection() const { return per_connection(bytes); }
  double blocks_per_connection() const { return per_connection(blocks); }
  double handle_bytes_per_connection() const { return per_connection(handle_bytes); }
  double binding_bytes_per_connection() const { return per_connection(binding_bytes); }

 private:
  double per_connection(std::int64_t total) const {
    return connections == 0 ? 0.0 : static_cast<double>(total) / static_cast<double>(connections);
  }
};

// The benchmarks' configuration (tests/bench/connmgr_bench.cpp, bench_config): no trim
// before N, no background work.
inline Config footprint_config(std::size_t n) {
  Config config;
  config.low_water = n / 2;
  config.high_water = n;
  config.grace_period = std::chrono::milliseconds(0);
  config.silence_period = std::chrono::hours(24);
  config.decay_resolution = std::chrono::seconds(60);
  config.keepalive_interval = std::chrono::milliseconds(0);
  config.idle_timeout = std::chrono::milliseconds(0);
  config.max_temp_peers = n + 1;
  return config;
}

// A host handle as small as the interface allows: the peer id and the direction.
class FootprintConnection final : public Connection {
 public:
  FootprintConnection(NodeId peer, Direction direction)
      : peer_(std::move(peer)), direction_(direction) {}
  NodeId remote_peer() const override { return peer_; }
  Direction direction() const override { return direction_; }
  Endpoint remote_endpoint() const override { return {}; }
  void close(CloseReason, std::string_view) override {}
  void ping(PingHandler done) override { done({}); }

 private:
  NodeId peer_;
  Direction direction_;
};

inline std::vector<std::shared_ptr<FootprintConnection>> make_footprint_handles(std::size_t n) {
  std::vector<std::shared_ptr<FootprintConnection>> handles;
  handles.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    handles.push_back(std::make_shared<FootprintConnection>(
        peer_id(i), i % 2 == 0 ? Direction::inbound : Direction::outbound));
  }
  return handles;
}

// The plain ConnectionManager.
inline Footprint measure_plain_pool(std::size_t n) {
  Footprint result;
  result.connections = n;
  boost::asio::io_context io;
  auto time = std::make_shared<ManualTimeSource>(io);

  const std::int64_t before_manager = live_heap_bytes();
  ConnectionManager manager(io, footprint_config(n), Dependencies{.time_source = time});
  result.construction_bytes = live_heap_bytes() - before_manager;

  const std::int64_t before_handles = live_heap_bytes();
  const auto handles = make_footprint_handles(n);
  result.handle_bytes = live_heap_bytes() - before_handles;

  std::mt19937 rng(42);
  std::uniform_int_distribution<int> value(0, 99);
  const std::int64_t bytes = live_heap_bytes();
  const std::int64_t blocks = live_heap_blocks();
  for (const auto& handle : handles) {
    if (manager.add_connection(handle)) ++result.failures;
    if (manager.tag_peer(handle->remote_peer(), "score", value(rng))) ++result.failures;
  }
  result.bytes = live_heap_bytes() - bytes;
  result.blocks = live_heap_blocks() - blocks;
  return result;
}

// RealmConnectionManager with `realm_count` realms (named "realm-0", ...; short enough
// for the string's inline buffer), connection i bound to realm i % realm_count, as in
// BM_RealmTrim. `bytes` counts adding, tagging and binding; `binding_bytes` the binding.
inline Footprint measure_realm_pool(std::size_t n, std::size_t realm_count = 100) {
  Footprint result;
  result.connections = n;
  boost::asio::io_context io;
  auto time = std::make_shared<ManualTimeSource>(io);

  const std::int64_t before_node = live_heap_bytes();
  RealmConnectionManager node(io, footprint_config(n), Dependencies{.time_source = time});
  RealmConfig realm;
  realm.low_water = n / realm_count / 2;
  realm.min_reserved = n / realm_count / 4;
  std::vector<std::string> names;
  names.reserve(realm_count);
  for (std::size_t r = 0; r < realm_count; ++r) {
    names.push_back("realm-" + std::to_string(r));
    if (node.create_realm(names.back(), realm)) ++result.failures;
  }
  result.construction_bytes = live_heap_bytes() - before_node;

  const std::int64_t before_handles = live_heap_bytes();
  const auto handles = make_footprint_handles(n);
  result.handle_bytes = live_heap_bytes() - before_handles;

  ConnectionManager& manager = node.manager();
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> value(0, 99);
  const std::int64_t bytes = live_heap_bytes();
  const std::int64_t blocks = live_heap_blocks();
  for (const auto& handle : handles) {
    if (manager.add_connection(handle)) ++result.failures;
    if (manager.tag_peer(handle->remote_peer(), "score", value(rng))) ++result.failures;
  }
  const std::int64_t before_binding = live_heap_bytes();
  for (std::size_t i = 0; i < n; ++i) {
    if (node.bind(*handles[i], names[i % realm_count])) ++result.failures;
  }
  result.binding_bytes = live_heap_bytes() - before_binding;
  result.bytes = live_heap_bytes() - bytes;
  result.blocks = live_heap_blocks() - blocks;
  return result;
}

}  // namespace dep2p::connmgr::testing
