// The one door between the manager core and a layer built on it (the realm layer): what
// the core tells the layer, under its lock and once per batch or ranking, and what the
// layer may ask of the core, without holding any lock of its own.
//
//   class Realms final : public PoolExtension { ... };
//   Dependencies deps;
//   deps.extension = realms;          // the core calls realms->attach(door) once
//
// Lock order: the core's lock, then the layer's own (a leaf): the core calls on_detached()
// and rank() holding its lock, and the layer takes its own inside and lets it go before
// returning. The layer never calls the door while holding its own lock, and never keeps
// a lock across calls.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/compact_vector.hpp"
#include "dep2p/connmgr/admission.hpp"
#include "dep2p/connmgr/connection.hpp"
#include "dep2p/connmgr/events.hpp"
#include "dep2p/connmgr/types.hpp"
#include "manager/locked.hpp"
#include "trim/candidates.hpp"
#include "trim/victims.hpp"

namespace dep2p::connmgr::detail {

// A connection in the pool, as the core finds it: its slot (stable while it is open,
// reused after) and its id (never reused).
struct ConnectionPlace {
  std::uint32_t slot;
  ConnectionId id;
  friend bool operator==(const ConnectionPlace&, const ConnectionPlace&) = default;
};

// A connection that left the pool.
struct DetachedConnection {
  std::uint32_t slot;
  ConnectionId id;
  CloseReason reason;
};

// The claims of one admission: tokens the layer writes and reads, kept on the admission.
using ClaimTokens = CompactVector<std::uint64_t, 1>;

// What PoolExtension::make_room found for an admission above a full connection cap.
struct RoomChoice {
  std::string realm;     // the first claimed realm below its reserve; empty when none is
  std::size_t held = 0;  // that realm's bound connections
  std::size_t reserve = 0;
  // The slot of the connection to close for it; none when nothing may go.
  std::optional<std::uint32_t> victim;
};

// A connection's open streams, when the layer starts watching streams.
struct StreamSeed {
  std::uint32_t slot;
  ConnectionId id;
  std::uint32_t streams;
};

// A stream open the layer refuses: the realm at its max_streams.
struct StreamRefusal {
  std::string realm;
  std::size_t held = 0;
  std::size_t limit = 0;
};

// The layer's check of one claim (CoreDoor::claim), run under the core's lock.
class ClaimCheck {
 public:
  // Checks a claim by `peer` and, when it is accepted, records it in `tokens`; the
  // layer's own lock is taken inside (the lock order holds).
  virtual bool check(const Locked<>& locked, const NodeId& peer, ClaimTokens& tokens) = 0;

 protected:
  ~ClaimCheck() = default;
};

// What the core offers the layer. Every call takes the core's lock itself: the caller
// holds none.
class CoreDoor {
 public:
  // Where the connection sits in the pool, if it is there.
  virtual std::optional<ConnectionPlace> locate(const Connection& connection) const = 0;
  // Queues an event in commit order and delivers it.
  virtual void publish(Event event) = 0;
  // Counts a refusal in the manager's stats, publishes its RefusedEvent and returns it.
  virtual Refusal refuse(Stage stage, RefusalReason reason, std::string scope, std::string limit,
                         std::string message) = 0;
  // The manager's time.
  virtual TimePoint now() const = 0;
  // The handles of the connections at `places` that are still there.
  virtual std::vector<std::shared_ptr<Connection>> handles(
      std::span<const ConnectionPlace> places) const = 0;
  // Runs `check` on an open reservation of this manager that knows its peer (after
  // on_secured), under the core's lock, and returns its verdict; nullopt when the
  // reservation is not open here, does not know its peer yet, or the core is closed.
  virtual std::optional<bool> claim(const Reservation& reservation, ClaimCheck& check) = 0;
  // on_secured() (ConnectionManager::on_secured) with `check` run in its critical section
  // once the reservation knows its peer; the check keeps its own verdict. Delivers the
  // events it queued.
  virtual std::error_code secure(Reservation& reservation, Direction direction, const NodeId& peer,
                                 const Endpoint& remote, Refusal* refusal, ClaimCheck& check) = 0;
  // From now on, tells the layer of every stream open and close
  // (PoolExtension::stream_changed), after seeding it with every connection's open
  // streams (seed_streams), in one critical section; stream opens and closes take the
  // whole lock from then on. Idempotent; there is no way back.
  virtual void watch_streams() = 0;
  // The host's trimmer's order of `peers` (those connected now; in a snapshot with their
  // realms, asked for the whole order), as each one's place, first evicted first, or
  // UINT32_MAX for one it left out or that is not connected; nullopt when the default order
  // is in force, or the trimmer threw. The trimmer runs with no lock held.
  virtual std::optional<std::vector<std::uint32_t>> trimmer_order(
      std::span<const NodeId> peers) = 0;

 protected:
  ~CoreDoor() = default;
};

class PoolExtension {
 public:
  virtual ~PoolExtension() = default;
  // Once, when the core is built, before any connection is added. `door` lives as long as
  // the core; the layer must not call it after the core is closed.
  virtual void attach(CoreDoor& door) = 0;
  // Once per batch of connections that left the pool (one for a single close; all of a
  // trim's victims), after their DisconnectedEvents were queued. `peers` holds each one's
  // peer id, and `events` is not null, only when somebody subscribes to events; events
  // appended there are published right after.
  virtual void on_detached(const Locked<>& locked, std::span<const DetachedConnection> batch,
                           std::span<const NodeId> peers, std::vector<Event>* events) = 0;
  // Once when an admission with claims ends: consumed by the add of `peer`'s connection
  // now at `added`, in the same critical section as the add, or released without one
  // (`added` null). `events` as in on_detached.
  virtual void on_claims_end(const Locked<>& locked, const NodeId& peer,
                             std::span<const std::uint64_t> claims, const ConnectionPlace* added,
                             std::vector<Event>* events) noexcept = 0;
  // Connections the realms are short of their reserves (bound plus claimed, against
  // min_reserved), summed: how many admissions may go above a full connection cap to
  // refill them.
  virtual std::size_t reserve_shortfall(const Locked<>& locked) = 0;
  // For the add of an admission above a full cap holding `claims`: the claimed realm below
  // its reserve, and the connection to close to make room for it, chosen among the view's
  // candidates (never the claimant's own, at `claimant_slot`; with `direction`, only a
  // connection in that direction): a peer with no bound connection first, else the node
  // trim's victim for one connection, which never takes a realm below its reserve.
  virtual RoomChoice make_room(const Locked<>& locked, const CandidateView& view,
                               std::span<const std::uint64_t> claims, std::uint32_t claimant_slot,
                               std::optional<Direction> direction) = 0;
  // Once the layer watches streams (CoreDoor::watch_streams): each stream open and close
  // on the connection at `slot` (`id`), under the core's whole lock, before the core
  // counts it. An open the layer refuses is not counted, and the core refuses it.
  virtual std::optional<StreamRefusal> stream_changed(const Locked<>& locked, std::uint32_t slot,
                                                      ConnectionId id, bool opened) = 0;
  // Once, when the watch starts: every connection in the pool with its open streams.
  virtual void seed_streams(const Locked<>& locked, std::span<const StreamSeed> connections) = 0;
  // Once per trim ranking: the victims among the view's candidates covering `rule`'s
  // target, which follows from the candidates' connections the layer counts on its one
  // walk over the view (returned in `target`); or nullopt to leave the choice to the
  // core's own order (the layer has no say in it). A forced view is an emergency, where
  // reserves may go. With `keys` (by peer slot), the candidates are ordered by them, lowest
  // first, instead of by the default order: a host trimmer's order.
  virtual std::optional<VictimSlots> rank(const Locked<>& locked, const CandidateView& view,
                                          const TrimTarget& rule, std::size_t& target,
                                          std::span<const std::uint64_t> keys) = 0;
  // The place (1 = first) of the candidate at `slot` among the victims the realm rules
  // would take one after another if the target were every candidate (share, then reserve
  // phase), keyed as in rank(); 0 when they keep it; nullopt when the layer has no say
  // (nothing bound). For explain(): O(candidates log candidates).
  virtual std::optional<std::size_t> place_of(const Locked<>& locked, const CandidateView& view,
                                              std::span<const std::uint64_t> keys,
                                              std::uint32_t slot) = 0;
  // Fills `snapshot`'s realm columns for the candidates at `slots` (pool peer slots, in
  // snapshot.peers' order) when any connection is bound; returns whether one is (whether
  // the layer has a say in the trim).
  virtual bool describe_realms(const Locked<>& locked, const Pool& pool,
                               std::span<const std::uint32_t> slots, TrimSnapshot& snapshot) = 0;
};

}  // namespace dep2p::connmgr::detail
