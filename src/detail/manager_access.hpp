// Library-internal access to a ConnectionManager, for the realm layer built on it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/events.hpp"

namespace dep2p::connmgr::detail {

struct ManagerAccess {
  // Called under the manager's lock each time a connection leaves the pool, for whatever
  // reason. It must not call the manager or host code. Events it appends to `events` are
  // published right after the connection's DisconnectedEvent, in the same order; `events`
  // and `peer` are null when nobody subscribes (so nothing need be built).
  // `slot` is the connection's index in the manager (ConnectionSnapshot::slot).
  using DetachObserver = std::function<void(std::uint32_t slot, ConnectionId id, const NodeId* peer,
                                            CloseReason reason, std::vector<Event>* events)>;
  // Called under the manager's lock with true before a trim detaches its victims and with
  // false after: the observer may take its own lock once for the whole batch instead of
  // once per connection. Every call with true is followed by one with false.
  using BatchObserver = std::function<void(bool begin)>;
  // Set once, before connections are added (and cleared with nulls before the observer's
  // owner goes).
  static void set_detach_observer(ConnectionManager& manager, DetachObserver observer,
                                  BatchObserver batch);
  // Queues an event in commit order and delivers it (the caller holds no lock).
  static void publish(ConnectionManager& manager, Event event);
  // The connection's index in the manager and its id, if it is in the pool.
  static std::optional<std::pair<std::uint32_t, ConnectionId>> locate(
      const ConnectionManager& manager, const Connection& connection);
  // Counts a refusal in the manager's stats, publishes its RefusedEvent and returns it.
  static Refusal refuse(ConnectionManager& manager, Stage stage, RefusalReason reason,
                        std::string scope, std::string limit, std::string message);
  static TimePoint now(const ConnectionManager& manager);
  static spdlog::logger& logger(const ConnectionManager& manager);
};

}  // namespace dep2p::connmgr::detail
