// What the stats and Prometheus tests share: a quiet configuration, connections whose
// pings the test answers, and a known pool built in virtual time.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "dep2p/connmgr/config.hpp"
#include "dep2p/connmgr/connection_manager.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr::testing {

using namespace std::chrono_literals;

// Watermarks 2/100, the given grace, no keepalive and no idle timeout unless a test
// turns them on: explain() tests need nothing but the pool.
inline Config quiet_config(std::chrono::milliseconds grace = 10s) {
  Config config = trim_config(2, 100, grace);
  config.keepalive_interval = 0ms;
  config.idle_timeout = 0ms;
  return config;
}

// A connection whose pings wait for the test to answer them.
inline std::shared_ptr<FakeConnection> answerable(ConnectionManager& manager, std::uint64_t peer,
                                                  Direction direction, PathKind path,
                                                  std::vector<Connection::PingHandler>& pings) {
  auto c = std::make_shared<FakeConnection>(peer_id(peer), direction, endpoint("127.0.0.1"), path);
  c->on_close = [&manager](FakeConnection& self, CloseReason reason) {
    manager.remove_connection(self, reason);
  };
  c->on_ping = [&pings](Connection::PingHandler done) { pings.push_back(std::move(done)); };
  EXPECT_FALSE(manager.add_connection(c));
  return c;
}

// A known pool, used by the stats and Prometheus tests:
//   peer 1: inbound direct, 2 streams, protected, RTT 40 ms
//   peer 2: outbound direct, reported closing, ping unanswered
//   peer 3: inbound relay, RTT 80 ms
//   two pending connections (one dialing, one handshaking), one temporary peer (tagged),
//   one connection added then closed by the host, one before_connect refusal.
struct KnownPool {
  KnownPool() : h(config()) {
    peer1 = answerable(h.manager, 1, Direction::inbound, PathKind::direct, pings1);
    peer2 = answerable(h.manager, 2, Direction::outbound, PathKind::direct, pings2);
    peer3 = answerable(h.manager, 3, Direction::inbound, PathKind::relay, pings3);
    gone = h.add(6);
    EXPECT_FALSE(h.manager.close_peer(peer_id(6)));
    EXPECT_FALSE(h.manager.track_pending(dialing, ConnectionState::dialing));
    EXPECT_FALSE(h.manager.track_pending(handshaking, ConnectionState::handshaking));
    EXPECT_TRUE(h.manager.stream_opened(*peer1, Direction::inbound));
    EXPECT_TRUE(h.manager.stream_opened(*peer1, Direction::inbound));
    EXPECT_FALSE(h.manager.report_state(*peer2, ConnectionState::closing));
    EXPECT_FALSE(h.manager.protect(peer_id(1), "relay"));
    EXPECT_FALSE(h.manager.tag_peer(peer_id(7), "dht", 5));
    auto hook = h.manager.add_before_connect(
        [](const NodeId&, const Endpoint&) { return Decision::deny("not today"); });
    EXPECT_FALSE(h.manager.check_dial_addr(peer_id(8), endpoint("10.0.0.8")));
    h.time->advance(5s);  // keepalive round: pings out
    h.time->advance(40ms);
    for (auto& done : pings1) done(std::error_code{});
    h.time->advance(40ms);
    for (auto& done : pings3) done(std::error_code{});
  }
  static Config config() {
    Config c = quiet_config(60s);  // the temporary entry lives as long as the grace
    c.keepalive_interval = 5s;
    c.keepalive_timeout = 5s;
    return c;
  }

  ManagerHarness h;
  std::vector<Connection::PingHandler> pings1, pings2, pings3;
  std::shared_ptr<FakeConnection> peer1, peer2, peer3, gone;
  std::shared_ptr<FakeConnection> dialing =
      std::make_shared<FakeConnection>(peer_id(4), Direction::outbound);
  std::shared_ptr<FakeConnection> handshaking =
      std::make_shared<FakeConnection>(peer_id(5), Direction::inbound);
};

}  // namespace dep2p::connmgr::testing
