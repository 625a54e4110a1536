// The pool every benchmark builds (see connmgr_bench.cpp): N connections to N distinct
// peers, alternating direction, no streams, random tag values 0-99, grace 0, and a
// connection whose close() reports the closure back to the manager synchronously.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address_v4.hpp>
#include <memory>
#include <random>
#include <string_view>
#include <vector>

#include "dep2p/connmgr/connmgr.hpp"
#include "support/fake_connection.hpp"

namespace dep2p::connmgr::bench {

namespace cm = dep2p::connmgr;
using cm::testing::peer_id;

// Reports its closure back at once, as a host that closes synchronously would.
class BenchConnection final : public cm::Connection {
 public:
  BenchConnection(cm::ConnectionManager& manager, cm::NodeId peer, cm::Direction direction,
                  cm::Endpoint remote = {})
      : manager_(&manager),
        peer_(std::move(peer)),
        direction_(direction),
        remote_(std::move(remote)) {}
  cm::NodeId remote_peer() const override { return peer_; }
  cm::Direction direction() const override { return direction_; }
  cm::Endpoint remote_endpoint() const override { return remote_; }
  void close(cm::CloseReason reason, std::string_view) override {
    manager_->remove_connection(*this, reason);
  }
  void ping(PingHandler done) override { done({}); }

 private:
  cm::ConnectionManager* manager_;
  cm::NodeId peer_;
  cm::Direction direction_;
  cm::Endpoint remote_;
};

// How a Pool's peers differ: by default one address for all and tag values 0-99.
struct PoolShape {
  // Peer i at 10.0.0.0/8 + i spread over 4,096 /16s (i's low 12 bits pick the /16).
  bool spread_addresses = false;
  bool tagged = true;  // false: no tags, every peer of value 0
};

inline cm::Config bench_config(std::size_t n) {
  cm::Config config;
  config.low_water = n / 2;
  config.high_water = n;
  config.grace_period = std::chrono::milliseconds(0);
  config.silence_period = std::chrono::hours(24);  // keep the background check out of it
  config.decay_resolution = std::chrono::seconds(60);
  // Keepalive and idle timers have their own benchmark; they stay out of the others.
  config.keepalive_interval = std::chrono::milliseconds(0);
  config.idle_timeout = std::chrono::milliseconds(0);
  config.max_temp_peers = n + 1;
  return config;
}

struct Pool {
  explicit Pool(std::size_t n, cm::Config config, std::shared_ptr<cm::Gater> gater = nullptr,
                PoolShape shape = {})
      : time(std::make_shared<cm::ManualTimeSource>(io)),
        manager(io, std::move(config),
                cm::Dependencies{.time_source = time, .gater = std::move(gater)}) {
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> value(0, 99);
    peers.reserve(n);
    connections.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      peers.push_back(peer_id(i));
      cm::Endpoint remote;
      if (shape.spread_addresses) {
        const auto k = static_cast<std::uint32_t>(i);
        remote.address = boost::asio::ip::address_v4(((10U + ((k & 0xfffU) >> 8)) << 24) |
                                                     ((k & 0xffU) << 16) | ((k >> 12) & 0xffffU));
        remote.port = 4001;
      }
      auto c = std::make_shared<BenchConnection>(
          manager, peers.back(), i % 2 == 0 ? cm::Direction::inbound : cm::Direction::outbound,
          remote);
      manager.add_connection(c);
      if (shape.tagged) manager.tag_peer(peers.back(), "score", value(rng));
      connections.push_back(std::move(c));
    }
  }
  explicit Pool(std::size_t n) : Pool(n, bench_config(n)) {}
  boost::asio::io_context io;
  std::shared_ptr<cm::ManualTimeSource> time;
  cm::ConnectionManager manager;
  std::vector<cm::NodeId> peers;
  std::vector<std::shared_ptr<BenchConnection>> connections;
};

}  // namespace dep2p::connmgr::bench
