// Library-internal access to a ConnectionManager, for the realm layer built on it.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/events.hpp"
#include "trim/score_key.hpp"

namespace dep2p::connmgr::detail {

// What the realm layer sees of the manager's pool, under the manager's lock. None of these
// may call the manager or host code.
class PoolObserver {
 public:
  // Each time a connection leaves the pool, for whatever reason. Events it appends to
  // `events` are published right after the connection's DisconnectedEvent, in the same
  // order; `events` and `peer` are null when nobody subscribes (so nothing need be built).
  // `slot` is the connection's index in the manager (ConnectionSnapshot::slot).
  virtual void on_detached(std::uint32_t slot, ConnectionId id, const NodeId* peer,
                           CloseReason reason, std::vector<Event>* events) = 0;
  // With true before a trim detaches its victims and with false after: the observer may
  // take its own lock once for the whole batch instead of once per connection. Every call
  // with true is followed by one with false.
  virtual void on_batch(bool begin) = 0;
  // Within a batch: the connection at `slot` will be detached soon, some victims ahead.
  // Only a hint, to fetch what on_detached will read.
  virtual void prefetch(std::uint32_t slot) = 0;

  // A trim that ranks the pool in place, with no snapshot (not a forced one):
  //  1. begin_ranking() says how: `in_place` (the observer then holds its lock until
  //     end_ranking()), `score` (the default order alone, as ScoreTrimmer would), or
  //     `snapshot` (through the trimmer);
  //  2. with `in_place`, rank_candidate() for each candidate peer in slot order, then
  //     choose() once if there is anything to trim, then end_ranking() (always, even if
  //     something threw).
  enum class Ranking { snapshot, score, in_place };
  virtual Ranking begin_ranking(std::size_t peer_slots) = 0;
  virtual void rank_candidate(std::uint32_t peer_slot, const RankKey& key,
                              std::uint32_t connections,
                              std::span<const std::uint32_t> connection_slots) = 0;
  // The peers to close to cover `target` connections, by slot in ascending order; with
  // `exact`, `partial_slot` (if not UINT32_MAX) gives up only `partial_count` of its
  // connections. False: rank through the snapshot after all (nothing is chosen).
  struct Choice {
    std::vector<std::uint32_t> slots;
    std::uint32_t partial_slot = UINT32_MAX;
    std::size_t partial_count = 0;
  };
  virtual bool choose(std::size_t target, bool exact, Choice& choice) = 0;
  virtual void end_ranking() = 0;

 protected:
  ~PoolObserver() = default;
};

struct ManagerAccess {
  // Set once, before connections are added, and cleared with null before the observer goes.
  static void set_observer(ConnectionManager& manager, PoolObserver* observer);
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
