// Test doubles for the host side: a Connection whose close() can report the closure back
// to the manager synchronously, and helpers to make peers and endpoints.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dep2p/connmgr/connection.hpp"
#include "dep2p/connmgr/connection_manager.hpp"

namespace dep2p::connmgr::testing {

// A peer id made of a number: 32 bytes, the number big-endian in the last 8.
inline NodeId peer_id(std::uint64_t n) {
  std::array<std::uint8_t, 32> bytes{};
  bytes[0] = 0x12;
  for (int i = 0; i < 8; ++i) {
    bytes[31 - static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  }
  return NodeId(bytes);
}

inline Endpoint endpoint(const char* address, std::uint16_t port = 4001) {
  return Endpoint{boost::asio::ip::make_address(address), port};
}

class FakeConnection final : public Connection {
 public:
  FakeConnection(NodeId peer, Direction direction, Endpoint remote = endpoint("127.0.0.1"),
                 PathKind path = PathKind::direct)
      : peer_(std::move(peer)), direction_(direction), remote_(std::move(remote)), path_(path) {}

  NodeId remote_peer() const override { return peer_; }
  Direction direction() const override { return direction_; }
  Endpoint remote_endpoint() const override { return remote_; }
  PathKind path_kind() const override { return path_; }
  std::uint32_t stream_count() const override { return initial_streams; }

  void close(CloseReason reason, std::string_view detail) override {
    {
      std::lock_guard lock(mutex_);
      closes_.push_back(reason);
      last_detail_ = std::string(detail);
    }
    ++close_calls;
    if (on_close) on_close(*this, reason);
  }
  void ping(PingHandler done) override {
    ++pings;
    if (on_ping) {
      on_ping(std::move(done));
    } else {
      done({});
    }
  }

  int close_count() const { return close_calls.load(); }
  bool closed() const { return close_calls.load() > 0; }
  CloseReason last_reason() const {
    std::lock_guard lock(mutex_);
    return closes_.back();
  }
  std::string last_detail() const {
    std::lock_guard lock(mutex_);
    return last_detail_;
  }

  std::uint32_t initial_streams = 0;
  // Runs inside close(), e.g. to report the closure back to the manager synchronously.
  std::function<void(FakeConnection&, CloseReason)> on_close;
  std::function<void(PingHandler)> on_ping;
  std::atomic<int> close_calls{0};
  std::atomic<int> pings{0};

 private:
  NodeId peer_;
  Direction direction_;
  Endpoint remote_;
  PathKind path_;
  mutable std::mutex mutex_;
  std::vector<CloseReason> closes_;
  std::string last_detail_;
};

// Makes a connection whose close() reports the closure to `manager` at once, as most
// hosts do.
inline std::shared_ptr<FakeConnection> reporting_connection(ConnectionManager& manager, NodeId peer,
                                                            Direction direction) {
  auto c = std::make_shared<FakeConnection>(std::move(peer), direction);
  c->on_close = [&manager](FakeConnection& self, CloseReason reason) {
    manager.remove_connection(self, reason);
  };
  return c;
}

}  // namespace dep2p::connmgr::testing
