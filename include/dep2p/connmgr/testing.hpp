// Testing kit: doubles for a host's own unit tests of code that drives a ConnectionManager,
// without sockets and without real time. The library's test suite uses the same ones.
//
//   - FakeConnection: a Connection that records its closes and pings, with configurable
//     streams and ping answers; reporting_connection() makes one whose close() reports the
//     closure back to the manager at once, as most hosts do.
//   - VirtualTime: an io_context and a ManualTimeSource wired to it; time moves only when
//     the test advances it, and the manager's timers fire on the test's thread.
//
//   namespace cm = dep2p::connmgr;  // (not `testing`: GoogleTest owns ::testing)
//   cm::testing::VirtualTime time;
//   cm::ConnectionManager manager(time.io(), config, {.time_source = time.source()});
//   auto c = cm::testing::reporting_connection(manager, peer, cm::Direction::inbound);
//   manager.add_connection(c);
//   time.advance(std::chrono::seconds(5));  // keepalive_interval 5 s: c->pings == 1
//
// Installed and versioned with the library (README.md, "Versioning"); it needs nothing
// beyond the library itself.
//
// Thread safety: FakeConnection's close() and ping() and its observers may be called from
// any thread; its hooks (on_close, on_ping) and initial_streams are set before the
// connection is added to a manager and not changed while it is tracked. VirtualTime's
// advance(), jump() and run_ready() run the io_context on the calling thread: call them
// from one thread at a time; now() may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address_v4.hpp>

#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/connection.hpp"
#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr::testing {

// A Connection that does nothing on the wire: it counts and records what the manager asks
// of it and runs the test's hooks.
class FakeConnection final : public Connection {
 public:
  // `remote` defaults to 127.0.0.1:4001.
  FakeConnection(NodeId peer, Direction direction,
                 Endpoint remote = Endpoint{boost::asio::ip::address_v4::loopback(), 4001},
                 PathKind path = PathKind::direct)
      : peer_(peer), direction_(direction), remote_(std::move(remote)), path_(path) {}

  NodeId remote_peer() const override { return peer_; }
  Direction direction() const override { return direction_; }
  Endpoint remote_endpoint() const override { return remote_; }
  PathKind path_kind() const override { return path_; }
  std::uint32_t stream_count() const override { return initial_streams; }

  // Records the close, then runs on_close (outside the record's lock, so the hook may call
  // the manager).
  void close(CloseReason reason, std::string_view detail) override {
    {
      std::lock_guard lock(mutex_);
      closes_.push_back(reason);
      last_detail_ = std::string(detail);
    }
    ++close_calls;
    if (on_close) on_close(*this, reason);
  }
  // Counts the ping, then hands `done` to on_ping, or answers at once when there is none.
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
  // REQUIRES: closed().
  CloseReason last_reason() const {
    std::lock_guard lock(mutex_);
    return closes_.back();
  }
  // The detail of the last close; empty before the first.
  std::string last_detail() const {
    std::lock_guard lock(mutex_);
    return last_detail_;
  }

  // The streams open when the connection is added (stream_count()).
  std::uint32_t initial_streams = 0;
  // Runs inside close(), e.g. to report the closure back to the manager synchronously.
  std::function<void(FakeConnection&, CloseReason)> on_close;
  // Receives each ping's handler instead of the immediate answer, e.g. to answer later or
  // with an error.
  std::function<void(PingHandler)> on_ping;
  std::atomic<int> close_calls{0};
  std::atomic<int> pings{0};

 private:
  NodeId peer_;
  Direction direction_;
  Endpoint remote_;
  PathKind path_;
  mutable std::mutex mutex_;         // closes_ and last_detail_
  std::vector<CloseReason> closes_;  // every close, in call order
  std::string last_detail_;
};

// A connection whose close() reports the closure to `manager` at once
// (remove_connection), as most hosts do. Not yet added to the manager.
// REQUIRES: `manager` outlives every close() of the connection.
inline std::shared_ptr<FakeConnection> reporting_connection(ConnectionManager& manager, NodeId peer,
                                                            Direction direction) {
  auto connection = std::make_shared<FakeConnection>(peer, direction);
  connection->on_close = [&manager](FakeConnection& self, CloseReason reason) {
    manager.remove_connection(self, reason);
  };
  return connection;
}

// An io_context that only the test runs and a ManualTimeSource on it. Declare it before
// the managers that use it, so that they are destroyed first.
// REQUIRES: the VirtualTime outlives every manager and timer made from source().
class VirtualTime {
 public:
  VirtualTime() : source_(std::make_shared<ManualTimeSource>(io_)) {}
  VirtualTime(const VirtualTime&) = delete;
  VirtualTime& operator=(const VirtualTime&) = delete;

  // The context to construct managers on.
  boost::asio::io_context& io() noexcept { return io_; }
  // The time source to pass as Dependencies::time_source.
  std::shared_ptr<ManualTimeSource> source() const noexcept { return source_; }

  TimePoint now() const { return source_->now(); }
  // Moves time forward by `by`, firing every timer that falls due on the way and running
  // the handlers they post.
  void advance(Duration by) { source_->advance(by); }
  // Moves time forward without firing anything; what fell due fires at the next advance().
  void jump(Duration by) { source_->jump(by); }
  // Runs the handlers that are ready now (posted work, events) without moving time.
  void run_ready() { source_->run_ready(); }

 private:
  boost::asio::io_context io_;  // first, so that it goes last
  std::shared_ptr<ManualTimeSource> source_;
};

}  // namespace dep2p::connmgr::testing
