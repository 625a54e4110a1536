// The manager core's plain records: what it runs on, its pluggable parts, its timers, the
// trim gate, pending connections and the batch of detached connections. Data only, guarded
// as ManagerCore (core.hpp) says; kept apart so that core.hpp holds the orchestration.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/strand.hpp>
#include <boost/unordered/unordered_flat_map.hpp>

#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/connection.hpp"
#include "dep2p/connmgr/dial.hpp"
#include "dep2p/connmgr/gater.hpp"
#include "dep2p/connmgr/path_selector.hpp"
#include "dep2p/connmgr/trimmer.hpp"
#include "dep2p/connmgr/types.hpp"
#include "manager/extension.hpp"

namespace spdlog {
class logger;
}

namespace dep2p::connmgr::detail {

// What the core runs on; immutable after construction.
struct CoreEnvironment {
  boost::asio::any_io_executor executor;
  boost::asio::strand<boost::asio::any_io_executor> strand;
  std::shared_ptr<TimeSource> time;
  std::shared_ptr<spdlog::logger> logger;
};
// The pluggable parts; immutable after construction.
struct CorePolicies {
  std::shared_ptr<Trimmer> trimmer;
  TrimInputs trim_inputs;
  // No trimmer was given: the default order, which the core may apply to the pool in
  // place instead of through a snapshot.
  bool default_order = true;
  std::shared_ptr<Gater> gater;  // null: every intercept allows
  std::shared_ptr<PathSelector> path_selector;
  std::shared_ptr<Dialer> dialer;  // null: the manager never asks for a dial
  // The layer built on this manager (the realm layer), if any. Held weakly: the layer
  // owns the manager, and a layer being destroyed is not called any more.
  std::weak_ptr<PoolExtension> extension;
  bool has_extension = false;
  // The same layer, for the calls made under lock_ while the core is open: the layer
  // closes the core (under lock_) before it is destroyed, so a holder of lock_ that
  // sees !closed_ may use it without the weak pointer's atomics.
  PoolExtension* open_extension = nullptr;
};
// One trim at a time: `running` is set by the trimming thread; each finished trim bumps
// `generation` and wakes the callers that joined it.
struct TrimGate {
  bool running = false;
  std::thread::id thread;
  std::uint64_t generation = 0;
  std::size_t last_closed = 0;
  std::condition_variable_any done;
};
// The core's timers, armed and fired on the strand; armed under lock_ (Timer methods
// never call back).
struct CoreTimers {
  std::unique_ptr<Timer> background;
  std::unique_ptr<Timer> decay;
  std::unique_ptr<Timer> housekeeping;
  std::unique_ptr<Timer> keepalive;
  bool housekeeping_armed = false;
  TimePoint housekeeping_at{};
  bool keepalive_armed = false;
  TimePoint keepalive_at{};
};
// Connections not established yet (track_pending), by handle.
struct PendingEntry {
  std::shared_ptr<Connection> handle;
  ConnectionState state;
  std::uint64_t serial;  // matches its handshake deadline in the schedule
};
struct Pending {
  boost::unordered_flat_map<const Connection*, PendingEntry> entries;
  std::uint64_t next_serial = 0;
};
// The connections detached in the current batch, for the extension (see detach()).
struct DetachBatch {
  bool open = false;
  std::vector<DetachedConnection> connections;
  std::vector<NodeId> peers;  // only while somebody subscribes to events
};

}  // namespace dep2p::connmgr::detail
