// basic_usage: the smallest host. It hands the manager a few in-memory connections, tags
// and protects peers, and shows a trim closing the lowest-value peers down to low water.
//
//   ./dev.sh demo
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <memory>
#include <vector>

#include "dep2p/connmgr/connmgr.hpp"

namespace cm = dep2p::connmgr;

namespace {

// A stand-in for a host's transport connection: it reports its own closure.
class DemoConnection final : public cm::Connection {
 public:
  DemoConnection(cm::ConnectionManager& manager, cm::NodeId peer, cm::Direction direction)
      : manager_(manager), peer_(std::move(peer)), direction_(direction) {}
  cm::NodeId remote_peer() const override { return peer_; }
  cm::Direction direction() const override { return direction_; }
  cm::Endpoint remote_endpoint() const override {
    return {boost::asio::ip::make_address("127.0.0.1"), 4001};
  }
  void close(cm::CloseReason reason, std::string_view detail) override {
    std::printf("  close %s: %s (%.*s)\n", peer_.short_string().c_str(),
                std::string(cm::to_string(reason)).c_str(), static_cast<int>(detail.size()),
                detail.data());
    manager_.remove_connection(*this, reason);  // a real host would close its socket here
  }
  void ping(PingHandler done) override { done({}); }

 private:
  cm::ConnectionManager& manager_;
  cm::NodeId peer_;
  cm::Direction direction_;
};

cm::NodeId make_peer(std::uint8_t n) {
  std::vector<std::uint8_t> bytes(32, 0);
  bytes[0] = 0x12;
  bytes[1] = n;
  return cm::NodeId(bytes);
}

}  // namespace

int main() {
  boost::asio::io_context io;
  cm::Config config = cm::Config::preset(cm::Preset::minimal);  // low 10, high 50
  config.low_water = 4;
  config.high_water = 8;
  config.grace_period = std::chrono::milliseconds(0);
  cm::ConnectionManager manager(io, config);

  auto subscription = manager.subscribe([](const cm::Event& event) {
    if (const auto* trimmed = std::get_if<cm::TrimmedEvent>(&event)) {
      std::printf("trimmed %zu connections of %zu peers; %zu remain\n", trimmed->connections_closed,
                  trimmed->peers_closed, trimmed->connections_after);
    }
  });

  std::printf("adding 10 connections (low water 4, high water 8)\n");
  for (std::uint8_t i = 0; i < 10; ++i) {
    auto peer = make_peer(i);
    manager.add_connection(std::make_shared<DemoConnection>(
        manager, peer, i % 2 == 0 ? cm::Direction::inbound : cm::Direction::outbound));
    manager.tag_peer(peer, "score", i);  // higher i, higher value
  }
  manager.protect(make_peer(0), "bootstrap");  // lowest value, but protected
  std::printf("pool: %zu connections; trimming\n", manager.connection_count());
  manager.trim();

  const auto stats = manager.stats();
  std::printf("pool: %zu connections, %llu trimmed; peer 0 %s\n", stats.connections,
              static_cast<unsigned long long>(stats.closes(cm::CloseReason::trimmed)),
              manager.connections(make_peer(0)).empty() ? "closed" : "kept (protected)");
  // Protected connections do not count toward the target: 9 candidates - low water 4 = 5
  // closed, leaving 4 candidates plus the protected peer.
  return stats.connections == 5 ? 0 : 1;
}
