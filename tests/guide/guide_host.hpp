// The host that docs/guide.md builds step by step: a Connection implementation and the
// admission flow around it. docs/guide.md quotes this file and guide_host.cpp verbatim
// (connmgr_guide_tests checks that every code block of the guide appears here), so a
// change here is a change to the guide: keep the two in step.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <dep2p/connmgr/connmgr.hpp>

namespace guide {

namespace cm = dep2p::connmgr;

// One connection of our transport. A real host keeps its socket and stream multiplexer
// here; this one keeps only what the manager needs.
class MyConnection final : public cm::Connection {
 public:
  MyConnection(cm::ConnectionManager& manager, cm::NodeId peer, cm::Direction direction,
               cm::Endpoint remote)
      : manager_(manager), peer_(std::move(peer)), direction_(direction), remote_(remote) {}

  // Fixed properties, read once when the connection joins the pool.
  cm::NodeId remote_peer() const override { return peer_; }
  cm::Direction direction() const override { return direction_; }
  cm::Endpoint remote_endpoint() const override { return remote_; }
  cm::PathKind path_kind() const override { return cm::PathKind::direct; }
  cm::Transport transport() const override { return cm::Transport::tcp; }

  // The manager wants the connection gone (a trim, a keepalive timeout, ...). Called
  // without any of the manager's locks held, maybe more than once, maybe on its strand.
  void close(cm::CloseReason reason, std::string_view detail) override {
    if (closed_.exchange(true)) return;
    reason_ = reason;
    detail_ = std::string(detail);
    // A real host closes its socket here. Then it reports the closure like any other;
    // the manager has already let the connection go and ignores the report.
    manager_.remove_connection(*this, reason);
  }

  // Keepalive: send a ping frame; `done` is called once, when the pong arrives.
  void ping(PingHandler done) override {
    std::lock_guard lock(mutex_);
    pings_.push_back(std::move(done));  // a real host also writes the ping frame here
  }

  // Our transport read a pong: the oldest ping is answered.
  void on_pong() {
    PingHandler done;
    {
      std::lock_guard lock(mutex_);
      if (pings_.empty()) return;
      done = std::move(pings_.front());
      pings_.pop_front();
    }
    done({});  // outside our own lock: the manager may call us back
  }

  // Our multiplexer opened or accepted a stream. False when a stream limit is full: a
  // real host then resets the stream.
  bool on_stream_opened(cm::Direction direction) {
    return static_cast<bool>(manager_.stream_opened(*this, direction));
  }
  void on_stream_closed(cm::Direction direction) { manager_.stream_closed(*this, direction); }
  // Bytes moved since the last report: activity keeps the connection from counting as
  // idle, and ActivityTrimmer ranks peers by these rates.
  void on_bytes(std::uint64_t received, std::uint64_t sent) {
    manager_.record_activity(*this, received, sent);
  }

  // The remote side closed the connection, or it broke: tell the manager. (When our own
  // protocol closes it, CloseReason::host says so: such a peer is not reconnected.)
  void on_transport_closed() {
    if (closed_.exchange(true)) return;
    manager_.remove_connection(*this, cm::CloseReason::remote);
  }

  bool closed() const { return closed_.load(); }
  // Why the manager closed it; meaningful once closed() by the manager.
  cm::CloseReason close_reason() const { return reason_.load(); }
  const std::string& close_detail() const { return detail_; }
  std::size_t pings_waiting() const {
    std::lock_guard lock(mutex_);
    return pings_.size();
  }

 private:
  cm::ConnectionManager& manager_;
  const cm::NodeId peer_;
  const cm::Direction direction_;
  const cm::Endpoint remote_;
  std::atomic<bool> closed_{false};
  std::atomic<cm::CloseReason> reason_{cm::CloseReason::host};
  std::string detail_;  // written once, by the close() that wins closed_
  mutable std::mutex mutex_;
  std::deque<PingHandler> pings_;  // pings sent, oldest first, waiting for their pong
};

// The host's connection setup: the admission stages around its handshake.
class Host {
 public:
  explicit Host(cm::ConnectionManager& manager) : manager_(manager) {}

  // The listener accepted a socket from `remote`. `authenticated` stands for the peer id
  // the handshake (Noise, TLS, ...) proves. Returns null when a stage refused.
  std::shared_ptr<MyConnection> accept(const cm::Endpoint& remote,
                                       const cm::NodeId& authenticated);
  // The application wants to talk to `peer`, reachable at `address`. Returns the
  // connection to use (maybe one already open), or null when a stage refused.
  std::shared_ptr<cm::Connection> dial(const cm::NodeId& peer, const cm::Endpoint& address);
  // The same dial past check_dial: the admission of one address, the handshake, the add.
  std::shared_ptr<cm::Connection> connect(const cm::NodeId& peer, const cm::Endpoint& address);

  // The last refusal's sentence, e.g. "inbound refused: ...".
  const std::string& last_refusal() const { return last_refusal_; }

 private:
  std::nullptr_t refuse(const cm::Refusal& refusal) {
    last_refusal_ = refusal.message;  // a real host logs it and closes the socket
    return nullptr;
  }

  cm::ConnectionManager& manager_;
  std::string last_refusal_;
};

// The manager's way to ask for a dial: reconnecting a protected peer that dropped, or a
// direct path to a peer reached through a relay. It never opens a socket itself.
class HostDialer final : public cm::Dialer {
 public:
  // The host is made after the manager (which holds this dialer): attached then.
  void attach(Host& host) { host_ = &host; }

  void dial(const cm::DialRequest& request, Done done) override {
    // A real host posts this to its executor and dials asynchronously, adding what its
    // peer store knows to request.addresses; `done` may come from any thread, once. It
    // skips check_dial: the manager's own dial is the one in flight for the peer.
    if (host_ != nullptr) {
      for (const cm::Endpoint& address : request.addresses) {
        if (host_->connect(request.peer, address)) return done(std::nullopt);
      }
    }
    done(cm::DialFailure::error);
  }

 private:
  Host* host_ = nullptr;
};

}  // namespace guide
