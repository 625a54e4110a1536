// Events the manager publishes to subscribers, and the RAII Subscription that keeps a
// handler registered.
//
//   auto sub = manager.subscribe([](const dep2p::connmgr::Event& e) {
//     if (auto* d = std::get_if<dep2p::connmgr::DisconnectedEvent>(&e)) log(d->reason);
//   });
//   // the handler stays registered while `sub` lives
//
// Delivery: events are queued in the order the manager commits the changes they describe
// and delivered outside every lock, exactly once each, by whichever thread is draining the
// queue (usually the one whose call produced them). So events of one peer arrive in order,
// a handler may call the manager, and none arrives after close(). A handler that throws is
// logged and skipped; the others still receive the event.
// Thread safety: Subscription may be destroyed on any thread; after its destructor
// returns no new delivery to its handler starts.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "dep2p/connmgr/admission.hpp"
#include "dep2p/connmgr/dial.hpp"
#include "dep2p/connmgr/export.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {

struct ConnectedEvent {
  NodeId peer;
  ConnectionId connection{};
  Direction direction = Direction::inbound;
};

struct DisconnectedEvent {
  NodeId peer;
  ConnectionId connection{};
  Direction direction = Direction::inbound;
  // CloseReason::host when the host reported the closure itself.
  CloseReason reason = CloseReason::host;
  std::string detail;
};

// One per trim that closed something, after its connections' DisconnectedEvents.
struct TrimmedEvent {
  enum class Kind { background, explicit_trim, forced, exact_count, limits_changed };
  Kind kind = Kind::explicit_trim;
  std::size_t peers_closed = 0;
  std::size_t connections_closed = 0;
  std::size_t connections_after = 0;
};

// The host started or stopped listening on an address (ConnectionManager::listen).
struct ListenEvent {
  Endpoint address;
};
struct ListenCloseEvent {
  Endpoint address;
};

// A stream the host reported (stream_opened / stream_closed) on a tracked connection.
struct StreamOpenedEvent {
  NodeId peer;
  ConnectionId connection{};
  Direction direction = Direction::inbound;
};
struct StreamClosedEvent {
  NodeId peer;
  ConnectionId connection{};
  Direction direction = Direction::inbound;
};

// The peer's best connection (ConnectionManager::best_connection) changed: another path
// became better, or the chosen one closed. A peer's first path is not announced.
struct PathChangedEvent {
  NodeId peer;
  ConnectionId from{};  // the path used before (it may have closed)
  ConnectionId to{};
};

// An admission stage, a stream limit or a hook refused something.
struct RefusedEvent {
  Refusal refusal;
};

// A connection was bound to a realm, or its binding ended (RealmConnectionManager).
struct RealmBoundEvent {
  std::string realm;
  NodeId peer;
  ConnectionId connection{};
};
struct RealmUnboundEvent {
  enum class Cause { unbound, disconnected, realm_removed };
  std::string realm;
  NodeId peer;
  ConnectionId connection{};
  Cause cause = Cause::unbound;
};

// The manager asked the host's Dialer for a dial (reconnect or direct path), or the dial
// ended: `outcome` is empty when asked; `failure` says why one failed (a lapsed dial
// counts as DialFailure::timeout). `given_up`: it was the reconnect's last attempt.
struct DialEvent {
  NodeId peer;
  DialPurpose purpose = DialPurpose::reconnect;
  std::uint32_t attempt = 1;
  std::optional<DialOutcome> outcome;
  std::optional<DialFailure> failure;
  bool given_up = false;
};

using Event = std::variant<ConnectedEvent, DisconnectedEvent, TrimmedEvent, ListenEvent,
                           ListenCloseEvent, StreamOpenedEvent, StreamClosedEvent, RefusedEvent,
                           PathChangedEvent, RealmBoundEvent, RealmUnboundEvent, DialEvent>;
using EventHandler = std::function<void(const Event&)>;

class DEP2P_CONNMGR_EXPORT Subscription {
 public:
  Subscription() = default;
  ~Subscription();
  Subscription(Subscription&& other) noexcept;
  Subscription& operator=(Subscription&& other) noexcept;
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // Stops deliveries now; idempotent.
  void reset();
  bool active() const noexcept { return static_cast<bool>(cancel_); }

  // Used by publishers: `cancel` runs once, on reset() or destruction.
  explicit Subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}

 private:
  std::function<void()> cancel_;
};

}  // namespace dep2p::connmgr
