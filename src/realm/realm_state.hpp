// RealmConnectionManager's state: the realms, the bindings of the node's connections to
// them, and the two things the manager core asks of the layer through its one door
// (manager/extension.hpp): to forget the bindings of connections that left the pool, and
// to rank the node's trims while connections are bound (docs/architecture.md, "Realms").
//
// Lock order: the core's lock, then `mutex` (a leaf): the core calls on_detached() and
// rank() holding its own lock, and they take `mutex` inside. The layer never calls the core
// while holding `mutex`.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>
#include <boost/unordered/unordered_flat_set.hpp>

#include "base/compact_vector.hpp"
#include "base/leaf_mutex.hpp"
#include "dep2p/connmgr/realm_manager.hpp"
#include "manager/extension.hpp"
#include "realm/member_table.hpp"
#include "realm/realm_greedy.hpp"

namespace dep2p::connmgr {

// Hidden (DEP2P_CONNMGR_NO_EXPORT): a nested type of an exported class is exported with it
// unless marked, and this one is the library's own (docs/architecture.md, "Packaging").
struct DEP2P_CONNMGR_NO_EXPORT RealmConnectionManager::State final : detail::PoolExtension {
  struct IdHash {
    std::size_t operator()(ConnectionId id) const noexcept {
      return std::hash<std::uint64_t>{}(static_cast<std::uint64_t>(id));
    }
  };

  struct Realm {
    std::string name;
    RealmConfig config;
    std::size_t connections = 0;  // bound now
    detail::MemberTable members;
    RealmStats stats;
    bool trim_scheduled = false;
    // Connections this realm's own trim is closing (their closure is not "global").
    boost::unordered_flat_set<ConnectionId, IdHash> own_trim;
    std::uint32_t index = 0;  // in realm_table, for as long as the realm exists
    // Tells this realm from an earlier one at the same index (a claim names both).
    std::uint32_t generation = 0;
    // Claims outstanding: places held under hard_max. With max_members set, the peers that
    // were not members when they claimed, with their claims' count: places held under
    // max_members.
    std::size_t claims = 0;
    boost::unordered_flat_map<NodeId, std::uint32_t, NodeIdHash> claimants;
    // Streams open on the bound connections, while streams_watched.
    std::size_t streams = 0;
  };

  // The realms one connection is bound to, at the connection's slot in the pool: the node's
  // trim and on_detached reach it by index, with no lookup. `id` tells the slot's current
  // connection from an earlier one. 24 bytes, one realm inline (the node's trim reads one
  // binding per candidate connection).
  struct BoundTo {
    std::uint32_t realm;   // in realm_table
    std::uint32_t member;  // in that realm's members
  };
  struct Binding {
    ConnectionId id{};
    detail::CompactVector<BoundTo, 1> realms;
  };

  using Contender = detail::realm_greedy::Contender;
  using Stake = detail::realm_greedy::Stake;
  using StakeEntry = detail::realm_greedy::StakeEntry;
  using Pool = detail::realm_greedy::Pool;

  // One node trim's ranking: the candidates dealt into their pools as they come, each pool
  // a stretch of `candidates` as long as its realm's bound connections (no pool can hold
  // more candidates than that), the unbound pool last and as long as there are indices.
  // Stretches a pool does not fill are never written (nor, being fresh memory, mapped).
  struct NodeRanking {
    std::vector<Pool> pools;                   // pools[0] is the unbound connections
    std::vector<std::uint32_t> limit;          // each pool's stretch ends here
    std::vector<std::uint32_t> pool_of_realm;  // by realm index
    std::unique_ptr<Contender[]> candidates;
    // By candidate index; only once a peer turns out to be in two realms (the step-by-step
    // greedy needs them then; the level-at-a-time one reads each candidate's count alone).
    std::unique_ptr<Stake[]> stakes;
    std::vector<StakeEntry> entries;
    std::size_t indices = 0;
    bool single = true;     // no peer in two realms: the greedy can go a value level at a time
    bool overflow = false;  // a pool outgrew its stretch (a broken count): rank nothing
  };

  // --- State (guarded by `mutex` unless said otherwise) ------------------------------
  mutable detail::LeafMutex mutex;
  std::map<std::string, std::unique_ptr<Realm>, std::less<>> realms;
  // The same realms by name, hashed: the lookup every claim and bind makes.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const noexcept {
      return std::hash<std::string_view>{}(name);
    }
  };
  boost::unordered_flat_map<std::string_view, Realm*, NameHash> by_name;
  // The realm the last claim named: a node's admissions mostly claim a few realms, and
  // comparing a name is cheaper than hashing it. Null, or a live realm.
  Realm* last_claimed = nullptr;
  // Every realm at its `index`; null where a removed realm was (free_realm_indices).
  std::vector<Realm*> realm_table;
  std::vector<std::uint32_t> free_realm_indices;
  std::vector<Binding> bindings;  // by the connection's pool slot
  // Once a realm limits streams, the core tells the layer of every stream open and close
  // (streams_watched), and the layer keeps each connection's open streams by slot; `id`
  // tells the slot's connection from an earlier one (whose count no longer applies).
  struct SlotStreams {
    ConnectionId id{};
    std::uint32_t count = 0;
  };
  std::vector<SlotStreams> slot_streams;
  bool streams_watched = false;
  std::uint32_t realms_created = 0;  // the last realm's generation
  std::size_t bound_slots = 0;       // bindings with at least one realm
  std::size_t reserved = 0;          // sum of the realms' min_reserved
  bool closed = false;
  // Calls to bind() under way. While there are none, every binding with a realm belongs to
  // the connection now in its slot (a bind that raced its connection's closure undoes
  // itself before it returns), so a ranking may read the bindings with no id to check;
  // while there are some, it checks each binding's id against the connection's.
  std::atomic<std::uint32_t> binds_in_flight{0};
  // This state, for the trims it posts from calls that hold no reference to it. Set once
  // by the constructor. Not guarded.
  std::weak_ptr<State> self;
  // The core's door: set once by attach(), before any connection exists. Not guarded.
  detail::CoreDoor* door = nullptr;
  // Declared last, destroyed first (see ~State).
  std::unique_ptr<ConnectionManager> manager;

  ~State() override {
    // Close and destroy the manager while this state is whole: nothing it runs may reach
    // a half-destroyed layer.
    manager.reset();
  }

  // --- Lookups (REQUIRES: mutex) -------------------------------------------------------
  Realm* find(std::string_view name) const {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : it->second;
  }
  // find(), through last_claimed first.
  Realm* find_claimed(std::string_view name) {
    if (last_claimed == nullptr || last_claimed->name != name) last_claimed = find(name);
    return last_claimed;
  }
  // The live member entry for `peer`, or null with the error to return.
  detail::Member* find_member(std::string_view realm, const NodeId& peer,
                              std::error_code& ec) const;
  // The binding of the connection now at `slot`, if it is `id` and bound.
  Binding* binding_at(std::uint32_t slot, ConnectionId id) {
    if (slot >= bindings.size()) return nullptr;
    Binding& b = bindings[slot];
    return b.id == id && !b.realms.empty() ? &b : nullptr;
  }
  static std::optional<std::size_t> position(const Binding& b, const Realm* realm) {
    for (std::size_t k = 0; k < b.realms.size(); ++k) {
      if (b.realms[k].realm == realm->index) return k;
    }
    return std::nullopt;
  }
  // Removes element k; the order of a connection's realms does not matter.
  template <typename List>
  static void erase_at(List& list, std::size_t k) {
    list[k] = list.back();
    list.pop_back();
  }

  // --- Claims (realm_claims.cpp; REQUIRES: mutex) -------------------------------------
  // The realm a claim token names, if it still exists, and whether the claim holds a
  // member place; and the token of a claim.
  Realm* claimed_realm(std::uint64_t token, bool& member_place) const;
  static std::uint64_t claim_token(const Realm& realm, bool member_place);

  // --- Bindings (REQUIRES: mutex) ------------------------------------------------------
  // The open streams of the connection of binding `b` (an element of `bindings`, b.id
  // set), while streams are watched; else 0.
  std::uint32_t streams_of(const Binding& b) const {
    if (!streams_watched) return 0;
    const auto slot = static_cast<std::size_t>(&b - bindings.data());
    return slot < slot_streams.size() && slot_streams[slot].id == b.id ? slot_streams[slot].count
                                                                       : 0;
  }
  // Binds the connection of binding `b`, to `peer`, to `realm` (b.id set). What may throw
  // comes first: a failed bind leaves every count as it was.
  void add(Binding& b, Realm& realm, const NodeId& peer);
  // Ends the binding b.realms[k].
  void drop(Binding& b, std::size_t k);

  // The node-level rules of a realm's config: system ⊇ realm ⊇ peer, and the reserves of
  // all realms within the global low water. `others` is the reserve of the other realms.
  static std::optional<ConfigError> check_against_node(const RealmConfig& config,
                                                       std::size_t others, const Config& node);

  // --- The extension (realm_ranking.cpp; claims in realm_claims.cpp; reserves in
  // realm_reserve.cpp) ------------------------------------------------------------
  void attach(detail::CoreDoor& core) override { door = &core; }
  void on_detached(const detail::Locked<>& locked,
                   std::span<const detail::DetachedConnection> batch, std::span<const NodeId> peers,
                   std::vector<Event>* events) override;
  void on_claims_end(const detail::Locked<>& locked, const NodeId& peer,
                     std::span<const std::uint64_t> claims, const detail::ConnectionPlace* added,
                     std::vector<Event>* events) noexcept override;
  std::size_t reserve_shortfall(const detail::Locked<>& locked) override;
  detail::RoomChoice make_room(const detail::Locked<>& locked, const detail::CandidateView& view,
                               std::span<const std::uint64_t> claims, std::uint32_t claimant_slot,
                               std::optional<Direction> direction) override;
  std::optional<detail::VictimSlots> rank(const detail::Locked<>& locked,
                                          const detail::CandidateView& view,
                                          const detail::TrimTarget& rule, std::size_t& target,
                                          std::span<const std::uint64_t> keys) override;
  bool describe_realms(const detail::Locked<>& locked, const detail::Pool& pool,
                       std::span<const std::uint32_t> slots, TrimSnapshot& snapshot) override;
  std::optional<std::size_t> place_of(const detail::Locked<>& locked,
                                      const detail::CandidateView& view,
                                      std::span<const std::uint64_t> keys,
                                      std::uint32_t slot) override;
  // realm_streams.cpp
  std::optional<detail::StreamRefusal> stream_changed(const detail::Locked<>& locked,
                                                      std::uint32_t slot, ConnectionId id,
                                                      bool opened) override;
  void seed_streams(const detail::Locked<>& locked,
                    std::span<const detail::StreamSeed> connections) override;

  // --- A realm's own trim (realm_trim.cpp) ---------------------------------------------
  std::size_t trim_realm(std::string_view name);
  // Posts a trim of the realm on the manager's executor. REQUIRES: mutex.
  void schedule_trim(Realm& realm);
};

}  // namespace dep2p::connmgr
