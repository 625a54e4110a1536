#include "dep2p/connmgr/realm_manager.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <tuple>

#include <boost/asio/post.hpp>
#include <boost/unordered/unordered_flat_map.hpp>
#include <boost/unordered/unordered_flat_set.hpp>

#include "base/compact_vector.hpp"
#include "dep2p/connmgr/error.hpp"
#include "realm/manager_access.hpp"
#include "realm/realm_greedy.hpp"
#include "trim/score_key.hpp"

namespace dep2p::connmgr {
namespace {

std::string number(std::size_t n) { return n == kUnlimited ? "unlimited" : std::to_string(n); }

ConfigError fail(std::string field, std::string message) {
  return ConfigError{std::move(field), std::move(message)};
}

struct IdHash {
  std::size_t operator()(ConnectionId id) const noexcept {
    return std::hash<std::uint64_t>{}(static_cast<std::uint64_t>(id));
  }
};

}  // namespace

std::optional<ConfigError> RealmConfig::validate() const {
  if (min_reserved > low_water) {
    return fail("min_reserved", "min_reserved (" + number(min_reserved) +
                                    ") must not exceed low_water (" + number(low_water) +
                                    "): the reserve is part of the realm's share");
  }
  if (high_water > 0 && low_water > high_water) {
    return fail("low_water", "low_water (" + number(low_water) + ") must not exceed high_water (" +
                                 number(high_water) + ")");
  }
  if (hard_max > 0) {
    if (high_water > hard_max) {
      return fail("high_water", "high_water (" + number(high_water) +
                                    ") must not exceed hard_max (" + number(hard_max) +
                                    "): the realm could never reach it");
    }
    if (low_water > hard_max) {
      return fail("low_water", "low_water (" + number(low_water) + ") must not exceed hard_max (" +
                                   number(hard_max) + ")");
    }
    if (max_members > hard_max) {
      return fail("max_members", "max_members (" + number(max_members) +
                                     ") must not exceed hard_max (" + number(hard_max) +
                                     "): every member holds at least one bound connection");
    }
  }
  return std::nullopt;
}

struct RealmConnectionManager::State final : detail::PoolObserver {
  // What a realm knows of a member: its tags (their sum in `value`) and protections.
  struct Member {
    std::int64_t value = 0;
    std::vector<std::pair<std::string, int>> tags;
    std::vector<std::string> protections;
    void clear() {
      value = 0;
      // Most members never held either: their empty vectors are left as they are.
      if (tags.capacity() != 0) std::vector<std::pair<std::string, int>>().swap(tags);
      if (protections.capacity() != 0) std::vector<std::string>().swap(protections);
    }
  };

  // A realm's members: entries in a slab (stable indices, so bindings point at them) found
  // by peer id through an index, with each entry's bound connections in a dense array of
  // its own. Closing a connection touches only that count (4 bytes; a realm of 1,000
  // members keeps them in 4 KB), and looks nothing up by peer id: an entry whose last
  // binding went is dead at once, but keeps its tags until it is revived (which clears
  // them) or swept out of the index (which frees them). Every method REQUIRES the state's
  // mutex.
  class MemberTable {
   public:
    Member* find(const NodeId& peer) {
      auto it = index_.find(peer);
      return it == index_.end() || bound_[it->second] == 0 ? nullptr : &slab_[it->second];
    }
    const Member* find(const NodeId& peer) const {
      auto it = index_.find(peer);
      return it == index_.end() || bound_[it->second] == 0 ? nullptr : &slab_[it->second];
    }
    // The entry for `peer`, created or revived, its tags and protections cleared.
    std::uint32_t acquire(const NodeId& peer) {
      auto [it, fresh] = index_.try_emplace(peer, 0);
      if (fresh) {
        if (free_.empty()) {
          it->second = static_cast<std::uint32_t>(slab_.size());
          try {
            slab_.emplace_back();
            bound_.resize(slab_.size(), 0);
          } catch (...) {
            index_.erase(it);  // an entry the slab does not hold would be read as a member
            throw;
          }
        } else {
          it->second = free_.back();
          free_.pop_back();
        }
      } else if (bound_[it->second] == 0) {
        --dead_;
        slab_[it->second].clear();
      }
      return it->second;
    }
    // The entry's bound connections.
    std::uint32_t& bound(std::uint32_t slot) { return bound_[slot]; }
    std::uint32_t bound(std::uint32_t slot) const { return bound_[slot]; }
    // The entry's last binding went (its bound count is 0): it is dead.
    void retire() {
      if (++dead_ > 64 + live()) sweep();
    }
    std::size_t live() const { return index_.size() - dead_; }
    std::size_t slots() const { return slab_.size(); }
    // f(peer, slot, member) for each live member.
    template <typename F>
    void for_each(F&& f) const {
      for (const auto& [peer, slot] : index_) {
        if (bound_[slot] > 0) f(peer, slot, slab_[slot]);
      }
    }

   private:
    void sweep() {
      std::vector<NodeId> gone;
      for (const auto& [peer, slot] : index_) {
        if (bound_[slot] == 0) gone.push_back(peer);
      }
      for (const NodeId& peer : gone) {
        auto it = index_.find(peer);
        slab_[it->second].clear();
        free_.push_back(it->second);
        index_.erase(it);
      }
      dead_ = 0;
    }

    std::vector<Member> slab_;
    std::vector<std::uint32_t> bound_;  // by slot, as slab_
    std::vector<std::uint32_t> free_;
    boost::unordered_flat_map<NodeId, std::uint32_t, NodeIdHash> index_;
    std::size_t dead_ = 0;
  };

  struct Realm {
    std::string name;
    RealmConfig config;
    std::size_t connections = 0;  // bound now
    MemberTable members;
    RealmStats stats;
    bool trim_scheduled = false;
    // Connections this realm's own trim is closing (their closure is not "global").
    boost::unordered_flat_set<ConnectionId, IdHash> own_trim;
    std::uint32_t index = 0;  // in realm_table, for as long as the realm exists
  };

  // The realms one connection is bound to, at the connection's slot in the manager
  // (ConnectionSnapshot::slot): the node's trim and the detach observer reach it by index,
  // with no lookup. `id` tells the slot's current connection from an earlier one. 24 bytes,
  // one realm inline (the node's trim reads one binding per candidate connection: 2.4 MB
  // at 100k connections, where the 64-byte binding with a pointer per realm read 6.4 MB).
  struct BoundTo {
    std::uint32_t realm;   // in realm_table
    std::uint32_t member;  // in that realm's members
  };
  struct Binding {
    ConnectionId id{};
    detail::CompactVector<BoundTo, 1> realms;
  };

  // A leaf lock: never held while calling the manager or host code. The manager calls
  // on_detached() under its own lock, so the order is always manager, then this one.
  mutable std::mutex mutex;
  std::map<std::string, std::unique_ptr<Realm>, std::less<>> realms;
  // Every realm at its `index`; null where a removed realm was (free_realm_indices).
  std::vector<Realm*> realm_table;
  std::vector<std::uint32_t> free_realm_indices;
  std::vector<Binding> bindings;  // by manager slot
  std::size_t bound_slots = 0;    // bindings with at least one realm
  std::size_t reserved = 0;       // sum of the realms' min_reserved
  bool closed = false;
  // Calls to bind() under way. While there are none, every binding with a realm belongs to
  // the connection now in its slot (a bind that raced its connection's closure undoes
  // itself before it returns), so a trim under the manager's lock may read the bindings
  // with no id to check; while there are some, it ranks through the snapshot, which has
  // the ids.
  std::atomic<std::uint32_t> binds_in_flight{0};
  bool inner_is_score = false;  // the wrapped trimmer is ScoreTrimmer
  // Whether on_batch holds `mutex` for the manager's commit (read and written only under
  // the manager's lock).
  bool in_batch = false;
  // Declared last, destroyed first: its observer points into this State.
  std::unique_ptr<ConnectionManager> manager;

  ~State() {
    if (manager) {
      detail::ManagerAccess::set_observer(*manager, nullptr);
      manager.reset();
    }
  }

  Realm* find(std::string_view name) const {
    auto it = realms.find(name);
    return it == realms.end() ? nullptr : it->second.get();
  }

  // The live member entry for `peer`, or null with the error to return. REQUIRES: mutex.
  Member* find_member(std::string_view realm, const NodeId& peer, std::error_code& ec) const {
    Realm* entry = find(realm);
    if (entry == nullptr) {
      ec = Errc::unknown_realm;
      return nullptr;
    }
    Member* member = entry->members.find(peer);
    if (member == nullptr) ec = Errc::unknown_peer;
    return member;
  }

  static auto find_tag(Member& member, std::string_view name) {
    return std::find_if(member.tags.begin(), member.tags.end(),
                        [&](const auto& t) { return t.first == name; });
  }

  // The binding of the connection now at `slot`, if it is `id` and bound. REQUIRES: mutex.
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

  // Binds the connection of binding `b`, to `peer`, to `realm`. REQUIRES: mutex; b.id set.
  // What may throw (growing the binding, a new member) comes first: a failed bind leaves
  // every count as it was.
  void add(Binding& b, Realm& realm, const NodeId& peer) {
    b.realms.push_back(BoundTo{realm.index, 0});
    try {
      b.realms.back().member = realm.members.acquire(peer);
    } catch (...) {
      b.realms.pop_back();
      throw;
    }
    if (b.realms.size() == 1) ++bound_slots;
    ++realm.members.bound(b.realms.back().member);
    ++realm.connections;
    ++realm.stats.binds;
  }
  // Ends the binding b.realms[k]. REQUIRES: mutex.
  void drop(Binding& b, std::size_t k) {
    const BoundTo entry = b.realms[k];
    Realm& realm = *realm_table[entry.realm];
    if (--realm.members.bound(entry.member) == 0) realm.members.retire();
    --realm.connections;
    ++realm.stats.unbinds;
    erase_at(b.realms, k);
    if (b.realms.empty()) {
      b.id = ConnectionId{};
      --bound_slots;
    }
  }

  // The manager's commit will detach the connection at `slot` soon (some eight victims
  // ahead): fetch its binding, and the bound counts of the binding hinted four calls ago,
  // loaded by now. REQUIRES: mutex (the commit's batch holds it).
  void prefetch(std::uint32_t slot) override {
    const std::uint32_t earlier = hinted[hint_next % kHinted];
    hinted[hint_next++ % kHinted] = slot;
    if (slot < bindings.size()) {
      const auto* binding = reinterpret_cast<const char*>(&bindings[slot]);
      __builtin_prefetch(binding);
      __builtin_prefetch(binding + sizeof(Binding) - 1);
    }
    if (earlier < bindings.size()) {
      for (const BoundTo& to : bindings[earlier].realms) {
        __builtin_prefetch(&realm_table[to.realm]->members.bound(to.member), 1);
      }
    }
  }
  static constexpr std::size_t kHinted = 4;
  std::array<std::uint32_t, kHinted> hinted{UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX};
  std::size_t hint_next = 0;

  // Under the manager's lock, around a trim's detaches: the mutex is taken once for all of
  // them (50k lock and unlock pairs cost a millisecond at 100k connections).
  void on_batch(bool begin) override {
    if (begin) {
      mutex.lock();
      in_batch = true;
    } else {
      in_batch = false;
      mutex.unlock();
    }
  }

  // Under the manager's lock, whenever a connection leaves the pool. `peer` and `events`
  // are null when nobody subscribes to events.
  void on_detached(std::uint32_t slot, ConnectionId id, const NodeId* peer, CloseReason reason,
                   std::vector<Event>* events) override {
    std::unique_lock lock(mutex, std::defer_lock);
    if (!in_batch) lock.lock();  // in a batch, on_batch holds it
    Binding* b = binding_at(slot, id);
    if (b == nullptr) return;
    while (!b->realms.empty()) {
      Realm* realm = realm_table[b->realms.back().realm];
      drop(*b, b->realms.size() - 1);
      const bool own = !realm->own_trim.empty() && realm->own_trim.erase(id) > 0;
      if (!own && (reason == CloseReason::trimmed || reason == CloseReason::forced_trim)) {
        ++realm->stats.trimmed_globally;
      }
      if (events != nullptr) {
        events->push_back(
            RealmUnboundEvent{realm->name, *peer, id, RealmUnboundEvent::Cause::disconnected});
      }
    }
  }

  // The node-level rules of a realm's config: system ⊇ realm ⊇ peer, and the reserves of
  // all realms within the global low water. `others` is the reserve of the other realms.
  static std::optional<ConfigError> check_against_node(const RealmConfig& config,
                                                       std::size_t others, const Config& node) {
    if (auto error = config.validate()) return error;
    const std::size_t system = node.limits.system.connections_total;
    if (config.hard_max > 0 && system != kUnlimited && config.hard_max > system) {
      return fail("hard_max", "hard_max (" + number(config.hard_max) +
                                  ") must not exceed limits.system.connections_total (" +
                                  number(system) + ")");
    }
    const std::size_t peer = node.limits.peer.connections_total;
    if (config.hard_max > 0 && peer != kUnlimited && config.hard_max < peer) {
      return fail("hard_max", "hard_max (" + number(config.hard_max) +
                                  ") must not be below limits.peer.connections_total (" +
                                  number(peer) + "): a realm contains its peers");
    }
    const bool trimming = node.low_water != 0 && node.high_water != 0;
    if (trimming && others + config.min_reserved > node.low_water) {
      return fail("min_reserved", "the realms' min_reserved would sum to " +
                                      number(others + config.min_reserved) +
                                      ", above the global low_water (" + number(node.low_water) +
                                      "): the node's trim could not honour every reserve");
    }
    return std::nullopt;
  }

  // --- The node's trim, realm-aware (see realm_manager.hpp and docs/architecture.md) ---

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
    bool overflow = false;  // a pool outgrew its stretch (a broken count): rank otherwise
  };
  std::unique_ptr<NodeRanking> ranking;  // while a node trim ranks
  std::unique_lock<std::mutex> ranking_lock;

  // Prepares a ranking of candidates indexed below `indices`; false (and none) when no
  // connection is bound. REQUIRES: mutex.
  bool start_ranking(std::size_t indices) {
    if (bound_slots == 0) return false;
    auto r = std::make_unique<NodeRanking>();
    r->indices = indices;
    r->pools.resize(realms.size() + 1);
    r->limit.resize(realms.size() + 1);
    r->pool_of_realm.assign(realm_table.size(), 0);
    std::uint32_t offset = 0;
    std::uint32_t index = 1;
    for (auto& [name, realm] : realms) {
      Pool& pool = r->pools[index];
      pool.count = realm->connections;
      pool.share = realm->config.low_water;
      pool.reserve = realm->config.min_reserved;
      pool.begin = pool.end = offset;
      offset += static_cast<std::uint32_t>(realm->connections);
      r->limit[index] = offset;
      r->pool_of_realm[realm->index] = index;
      ++index;
    }
    r->pools[0].begin = r->pools[0].end = offset;
    offset += static_cast<std::uint32_t>(indices);
    r->limit[0] = offset;
    r->candidates = std::make_unique_for_overwrite<Contender[]>(offset);
    ranking = std::move(r);
    return true;
  }

  // Deals candidate `index` into the pools of its realms: `bound_to(f)` calls f(BoundTo)
  // for each binding of each of its connections. REQUIRES: mutex, a ranking.
  template <typename BoundToEach>
  void add_contender(std::uint32_t index, const detail::RankKey& key, std::uint32_t connections,
                     BoundToEach&& bound_to) {
    NodeRanking& r = *ranking;
    // Its first realm (most peers have one, or none) stays out of `entries`.
    StakeEntry first{0, 0};
    std::vector<StakeEntry>& entries = r.entries;
    const auto start = static_cast<std::uint32_t>(entries.size());
    bound_to([&](const BoundTo& bound) {
      const std::uint32_t p = r.pool_of_realm[bound.realm];
      if (first.bound == 0 || first.pool == p) {
        first.pool = p;
        ++first.bound;
        return;
      }
      for (auto e = entries.begin() + start; e != entries.end(); ++e) {
        if (e->pool == p) {
          ++e->bound;
          return;
        }
      }
      entries.push_back(StakeEntry{p, 1});
    });
    const auto stop = static_cast<std::uint32_t>(entries.size());
    if (start != stop && r.single) {
      // The first peer in two realms: every one before it was in one (or none).
      r.single = false;
      r.stakes = std::make_unique_for_overwrite<Stake[]>(r.indices);
      for (std::uint32_t p = 0; p < r.pools.size(); ++p) {
        for (std::uint32_t k = r.pools[p].begin; k < r.pools[p].end; ++k) {
          const Contender& earlier = r.candidates[k];
          r.stakes[earlier.index] = Stake{p, earlier.bound(), 0, 0};
        }
      }
    }
    if (!r.single) r.stakes[index] = Stake{first.pool, first.bound, start, stop};
    auto deal = [&](std::uint32_t p, std::uint32_t bound) {
      Pool& pool = r.pools[p];
      if (pool.end == r.limit[p] || bound > Contender::kBoundMask) {
        r.overflow = true;
        return;
      }
      // The pool's next line is written only after the other pools' turns: ask for it now
      // (the deal writes 100 streams at once at 100 realms, too many for the hardware to
      // follow).
      if (pool.end + 2 < r.limit[p]) __builtin_prefetch(&r.candidates[pool.end + 2], 1);
      r.candidates[pool.end++] =
          Contender::of(key.value, key.activity, key.newer, index, connections, bound);
    };
    deal(first.pool, first.bound);  // pool 0 (bound 0) when it has no realm
    for (std::uint32_t e = start; e < stop; ++e) deal(entries[e].pool, entries[e].bound);
  }

  // Runs the greedy over a finished ranking's pools: `fate` (one per index) marks the peers
  // taken, `order` (if not null) lists them, `last` gets the last (the one an exact trim may
  // take in part). Returns the connections covered. Needs no lock: the ranking is the
  // caller's, taken out of `ranking` under the mutex.
  static std::size_t choose_victims(NodeRanking& r, std::size_t target, bool forced,
                                    std::vector<std::uint8_t>& fate,
                                    std::vector<std::uint32_t>* order, Contender& last) {
    for (Pool& pool : r.pools) pool.sorted = pool.head = pool.begin;
    fate.assign(r.indices, 0);
    const detail::realm_greedy::Run run{
        r.pools, r.candidates.get(), r.stakes.get(), r.entries, fate,
        target,  forced ? 3 : 2,     order,          &last};
    return r.single ? detail::realm_greedy::by_level(run) : detail::realm_greedy::stepwise(run);
  }

  // The trimmer's path (a snapshot): fills `order` and returns true, or returns false when
  // no connection is bound (the manager's own trimmer then decides alone).
  bool rank(const TrimSnapshot& snapshot, std::size_t target, std::vector<std::uint32_t>& order) {
    const auto n = static_cast<std::uint32_t>(snapshot.peers.size());
    std::unique_ptr<NodeRanking> ranked;
    {
      std::lock_guard lock(mutex);
      if (!start_ranking(n)) return false;
      for (std::uint32_t i = 0; i < n; ++i) {
        const PeerSnapshot& peer = snapshot.peers[i];
        add_contender(i, detail::key_of(peer, i, snapshot.forced), peer.connection_count,
                      [&](auto&& f) {
                        for (const ConnectionRef& conn : snapshot.connection_refs_of(peer)) {
                          if (conn.slot >= bindings.size() || bindings[conn.slot].id != conn.id)
                            continue;
                          for (const BoundTo& bound : bindings[conn.slot].realms) f(bound);
                        }
                      });
      }
      ranked = std::move(ranking);
    }
    if (ranked->overflow)
      throw std::logic_error("realm trim: a realm's count is below its bindings");
    std::vector<std::uint8_t> fate;
    Contender last{};
    choose_victims(*ranked, target, snapshot.forced, fate, &order, last);
    return true;
  }

  // The in-place path (PoolObserver): the manager hands over its candidates under its
  // lock, with no snapshot.
  Ranking begin_ranking(std::size_t peer_slots) override {
    std::unique_lock lock(mutex);
    if (binds_in_flight.load() == 0 && start_ranking(peer_slots)) {
      ranking_lock = std::move(lock);
      return Ranking::in_place;
    }
    if (bound_slots == 0 && inner_is_score) return Ranking::score;
    return Ranking::snapshot;
  }
  void rank_candidate(std::uint32_t peer_slot, const detail::RankKey& key,
                      std::uint32_t connections,
                      std::span<const std::uint32_t> connection_slots) override {
    add_contender(peer_slot, key, connections, [&](auto&& f) {
      for (std::uint32_t slot : connection_slots) {
        if (slot >= bindings.size()) continue;
        for (const BoundTo& bound : bindings[slot].realms) f(bound);
      }
    });
  }
  bool choose(std::size_t target, bool exact, Choice& choice) override {
    if (ranking->overflow) return false;
    std::vector<std::uint8_t> fate;
    Contender last{};
    const std::unique_ptr<NodeRanking> ranked = std::move(ranking);
    const std::size_t covered = choose_victims(*ranked, target, false, fate, nullptr, last);
    // Each peer taken covers at least one connection, and the greedy stops at the target:
    // there are at most that many. Written without a branch (half the candidates may go,
    // at random), one slot past the last victim at most.
    std::vector<std::uint32_t>& slots = choice.slots;
    slots.resize(std::min(target, fate.size()) + 1);
    std::size_t taken = 0;
    for (std::uint32_t slot = 0; slot < fate.size(); ++slot) {
      slots[taken] = slot;
      taken += static_cast<std::size_t>(fate[slot] == detail::realm_greedy::kTaken);
    }
    slots.resize(taken);
    if (exact && covered > target) {
      // The last peer taken gives up only what the target still needed.
      choice.partial_slot = last.index;
      choice.partial_count = last.connections - (covered - target);
    }
    return true;
  }
  void end_ranking() override {
    ranking.reset();
    if (ranking_lock.owns_lock()) ranking_lock.unlock();
  }

  // --- A realm's own trim ------------------------------------------------------------

  std::size_t trim_realm(std::string_view name) {
    ConnectionManager& m = *manager;
    struct Candidate {
      NodeId peer;
      std::int64_t realm_value = 0;
      std::int64_t value = 0;
      TimePoint first_seen{};
      std::uint32_t bound = 0;
    };
    std::vector<Candidate> members;
    std::size_t low = 0;
    {
      std::lock_guard lock(mutex);
      Realm* realm = find(name);
      if (realm == nullptr || closed) return 0;
      realm->trim_scheduled = false;
      low = realm->config.low_water;
      if (low == 0 || realm->config.high_water == 0 || realm->connections <= low) return 0;
      members.reserve(realm->members.live());
      realm->members.for_each([&](const NodeId& peer, std::uint32_t slot, const Member& member) {
        if (!member.protections.empty()) return;  // protected in the realm
        members.push_back(Candidate{peer, member.value, 0, {}, realm->members.bound(slot)});
      });
    }
    // Global facts, asked outside our lock: grace and the node's protections.
    const TimePoint now = detail::ManagerAccess::now(m);
    const Duration grace = m.config().grace_period;
    std::vector<Candidate> candidates;
    std::size_t candidate_connections = 0;
    for (Candidate& c : members) {
      if (m.is_protected(c.peer)) continue;
      auto info = m.tag_info(c.peer);
      if (!info || (grace.count() > 0 && now - info->first_seen < grace)) continue;
      c.value = info->value;
      c.first_seen = info->first_seen;
      candidate_connections += c.bound;
      candidates.push_back(std::move(c));
    }
    // As in the node's trim, protected and in-grace members do not count toward the target.
    const std::size_t target = candidate_connections > low ? candidate_connections - low : 0;
    if (target == 0) return 0;
    std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
      return std::tie(a.realm_value, a.value, b.first_seen) <
             std::tie(b.realm_value, b.value, a.first_seen);
    });
    const std::string detail = "realm " + std::string(name) + " over its high water: trimmed to " +
                               std::to_string(low) + " bound connections";
    std::size_t closed_count = 0;
    for (const Candidate& c : candidates) {
      if (closed_count >= target) break;
      for (const auto& handle : m.connections(c.peer)) {
        if (closed_count >= target) break;
        const auto located = detail::ManagerAccess::locate(m, *handle);
        if (!located) continue;
        const auto [slot, connection] = *located;
        {
          std::lock_guard lock(mutex);
          Realm* realm = find(name);
          if (realm == nullptr) return closed_count;
          Binding* b = binding_at(slot, connection);
          if (b == nullptr || !position(*b, realm)) continue;
          realm->own_trim.insert(connection);
        }
        if (!m.close_connection(*handle, CloseReason::trimmed, detail)) {
          ++closed_count;
        } else {
          std::lock_guard lock(mutex);
          if (Realm* realm = find(name)) realm->own_trim.erase(connection);
        }
      }
    }
    std::lock_guard lock(mutex);
    if (Realm* realm = find(name)) {
      ++realm->stats.trims;
      realm->stats.trimmed += closed_count;
    }
    return closed_count;
  }

  // Wraps the manager's trimmer: with no bound connection it decides alone; otherwise the
  // realm rules decide (ranking within pools by the default score order).
  class RealmTrimmer final : public Trimmer {
   public:
    RealmTrimmer(std::weak_ptr<State> state, std::shared_ptr<Trimmer> inner)
        : state_(std::move(state)), inner_(std::move(inner)) {}

    TrimInputs inputs() const override {
      TrimInputs in = inner_->inputs();
      in.connection_refs = true;  // the realm rules map connections to their bindings
      return in;
    }
    void rank(const TrimSnapshot& snapshot, std::size_t target,
              std::vector<std::uint32_t>& order) override {
      auto state = state_.lock();
      if (!state || !state->rank(snapshot, target, order)) inner_->rank(snapshot, target, order);
    }

   private:
    std::weak_ptr<State> state_;
    std::shared_ptr<Trimmer> inner_;
  };

  // Posts a trim of the realm on the manager's executor (REQUIRES: mutex held).
  void schedule_trim(Realm& realm, const std::shared_ptr<State>& self) {
    if (realm.trim_scheduled || closed) return;
    realm.trim_scheduled = true;
    boost::asio::post(manager->get_executor(),
                      [weak = std::weak_ptr<State>(self), name = realm.name] {
                        if (auto state = weak.lock()) state->trim_realm(name);
                      });
  }
};

RealmConnectionManager::RealmConnectionManager(executor_type executor, Config config,
                                               Dependencies deps)
    : state_(std::make_shared<State>()) {
  if (auto error = config.validate()) {
    throw std::invalid_argument("connmgr Config." + error->field + ": " + error->message);
  }
  std::shared_ptr<Trimmer> inner = deps.trimmer ? std::move(deps.trimmer) : make_score_trimmer();
  state_->inner_is_score = detail::is_score_trimmer(*inner);
  deps.trimmer = std::make_shared<State::RealmTrimmer>(state_, std::move(inner));
  state_->manager =
      std::make_unique<ConnectionManager>(std::move(executor), std::move(config), std::move(deps));
  detail::ManagerAccess::set_observer(*state_->manager, state_.get());
}

RealmConnectionManager::~RealmConnectionManager() { close(); }

ConnectionManager& RealmConnectionManager::manager() noexcept { return *state_->manager; }
const ConnectionManager& RealmConnectionManager::manager() const noexcept {
  return *state_->manager;
}

std::error_code RealmConnectionManager::create_realm(std::string_view realm,
                                                     const RealmConfig& config,
                                                     ConfigError* error) {
  if (realm.empty()) {
    if (error != nullptr) *error = fail("realm", "a realm needs a name");
    return Errc::invalid_argument;
  }
  const Config node = state_->manager->config();
  std::lock_guard lock(state_->mutex);
  if (state_->closed) return Errc::closed;
  if (state_->find(realm) != nullptr) return Errc::realm_exists;
  if (auto bad = State::check_against_node(config, state_->reserved, node)) {
    if (error != nullptr) *error = std::move(*bad);
    return Errc::invalid_argument;
  }
  auto entry = std::make_unique<State::Realm>();
  entry->name = std::string(realm);
  entry->config = config;
  // What may throw comes first, so that a failure leaves no trace.
  state_->realm_table.reserve(state_->realm_table.size() + 1);
  State::Realm* added = entry.get();
  state_->realms.emplace(added->name, std::move(entry));
  if (state_->free_realm_indices.empty()) {
    added->index = static_cast<std::uint32_t>(state_->realm_table.size());
    state_->realm_table.push_back(added);
  } else {
    added->index = state_->free_realm_indices.back();
    state_->free_realm_indices.pop_back();
    state_->realm_table[added->index] = added;
  }
  state_->reserved += config.min_reserved;
  return {};
}

std::error_code RealmConnectionManager::remove_realm(std::string_view realm) {
  std::vector<Event> events;
  {
    std::lock_guard lock(state_->mutex);
    auto it = state_->realms.find(realm);
    if (it == state_->realms.end()) return Errc::unknown_realm;
    State::Realm* gone = it->second.get();
    // The bindings do not name peers: find each member's through the realm's index. A
    // walk over all bindings, but removing a realm is rare, and it keeps the members small.
    std::vector<const NodeId*> peer_of(gone->members.slots(), nullptr);
    gone->members.for_each([&](const NodeId& peer, std::uint32_t slot, const State::Member&) {
      peer_of[slot] = &peer;
    });
    for (State::Binding& b : state_->bindings) {
      const auto k = State::position(b, gone);
      if (!k) continue;
      const NodeId& peer = *peer_of[b.realms[*k].member];
      const ConnectionId id = b.id;
      State::erase_at(b.realms, *k);
      if (b.realms.empty()) {
        b.id = ConnectionId{};
        --state_->bound_slots;
      }
      events.emplace_back(
          RealmUnboundEvent{gone->name, peer, id, RealmUnboundEvent::Cause::realm_removed});
    }
    state_->reserved -= gone->config.min_reserved;
    state_->realm_table[gone->index] = nullptr;  // no binding names it any more
    state_->free_realm_indices.push_back(gone->index);
    state_->realms.erase(it);
  }
  for (Event& e : events) detail::ManagerAccess::publish(*state_->manager, std::move(e));
  return {};
}

std::error_code RealmConnectionManager::set_realm_limit(std::string_view realm,
                                                        const RealmConfig& config,
                                                        ConfigError* error) {
  const Config node = state_->manager->config();
  std::lock_guard lock(state_->mutex);
  if (state_->closed) return Errc::closed;
  State::Realm* entry = state_->find(realm);
  if (entry == nullptr) return Errc::unknown_realm;
  const std::size_t others = state_->reserved - entry->config.min_reserved;
  if (auto bad = State::check_against_node(config, others, node)) {
    if (error != nullptr) *error = std::move(*bad);
    return Errc::invalid_argument;
  }
  state_->reserved = others + config.min_reserved;
  entry->config = config;
  if (config.high_water > 0 && entry->connections >= config.high_water) {
    state_->schedule_trim(*entry, state_);
  }
  return {};
}

std::optional<RealmConfig> RealmConnectionManager::realm_config(std::string_view realm) const {
  std::lock_guard lock(state_->mutex);
  const State::Realm* entry = state_->find(realm);
  if (entry == nullptr) return std::nullopt;
  return entry->config;
}

std::vector<std::string> RealmConnectionManager::realms() const {
  std::lock_guard lock(state_->mutex);
  std::vector<std::string> names;
  names.reserve(state_->realms.size());
  for (const auto& [name, realm] : state_->realms) names.push_back(name);
  return names;
}

std::error_code RealmConnectionManager::bind(const Connection& connection, std::string_view realm,
                                             Refusal* refusal) {
  ConnectionManager& m = *state_->manager;
  // Counted from before the connection is located until any binding that raced its
  // closure is undone (see State::binds_in_flight).
  struct InFlight {
    std::atomic<std::uint32_t>& count;
    explicit InFlight(std::atomic<std::uint32_t>& c) : count(c) { ++count; }
    ~InFlight() { --count; }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
  } in_flight(state_->binds_in_flight);
  const auto located = detail::ManagerAccess::locate(m, connection);
  if (!located) return m.is_closed() ? Errc::closed : Errc::unknown_connection;
  const auto [slot, id] = *located;
  const NodeId peer = connection.remote_peer();
  std::optional<std::pair<std::string, std::string>> full;  // limit, message
  {
    std::lock_guard lock(state_->mutex);
    if (state_->closed) return Errc::closed;
    State::Realm* entry = state_->find(realm);
    if (entry == nullptr) return Errc::unknown_realm;
    if (slot >= state_->bindings.size()) state_->bindings.resize(slot + 1);
    State::Binding& b = state_->bindings[slot];
    if (b.id != id) {
      // Left by an earlier connection in this slot whose bind raced its closure (that
      // bind undoes nothing once it sees the slot reused): end those bindings properly.
      while (!b.realms.empty()) state_->drop(b, b.realms.size() - 1);
      b.id = id;
    }
    if (State::position(b, entry)) return {};
    const bool member = entry->members.find(peer) != nullptr;
    const RealmConfig& c = entry->config;
    if (c.hard_max > 0 && entry->connections >= c.hard_max) {
      full.emplace("hard_max", "bind refused: realm " + entry->name + " holds " +
                                   std::to_string(entry->connections) + " of " +
                                   std::to_string(c.hard_max) + " connections");
    } else if (c.max_members > 0 && !member && entry->members.live() >= c.max_members) {
      full.emplace("max_members", "bind refused: realm " + entry->name + " has " +
                                      std::to_string(entry->members.live()) + " of " +
                                      std::to_string(c.max_members) + " members");
    }
    if (full) {
      ++entry->stats.refused_full;
      if (b.realms.empty()) b.id = ConnectionId{};
    } else {
      state_->add(b, *entry, peer);
      if (c.high_water > 0 && entry->connections >= c.high_water) {
        state_->schedule_trim(*entry, state_);
      }
    }
  }
  if (full) {
    Refusal r =
        detail::ManagerAccess::refuse(m, Stage::bind, RefusalReason::realm_limit,
                                      "realm " + std::string(realm), full->first, full->second);
    if (refusal != nullptr) *refusal = std::move(r);
    return Errc::realm_full;
  }
  // The connection may have left the pool while we bound it, before our binding existed
  // for the detach observer to see: undo it then.
  if (detail::ManagerAccess::locate(m, connection) != located) {
    std::lock_guard lock(state_->mutex);
    State::Realm* entry = state_->find(realm);
    State::Binding* b = state_->binding_at(slot, id);
    if (b != nullptr && entry != nullptr) {
      if (auto k = State::position(*b, entry)) {
        state_->drop(*b, *k);
        --entry->stats.unbinds;  // not a binding that ever held
        --entry->stats.binds;
      }
    }
    return Errc::unknown_connection;
  }
  detail::ManagerAccess::publish(m, RealmBoundEvent{std::string(realm), peer, id});
  return {};
}

std::error_code RealmConnectionManager::unbind(const Connection& connection,
                                               std::string_view realm) {
  ConnectionManager& m = *state_->manager;
  const auto located = detail::ManagerAccess::locate(m, connection);
  if (!located) return Errc::unknown_connection;
  const auto [slot, id] = *located;
  {
    std::lock_guard lock(state_->mutex);
    State::Realm* entry = state_->find(realm);
    if (entry == nullptr) return Errc::unknown_realm;
    State::Binding* b = state_->binding_at(slot, id);
    const auto k = b == nullptr ? std::nullopt : State::position(*b, entry);
    if (!k) return Errc::unknown_connection;
    state_->drop(*b, *k);
  }
  detail::ManagerAccess::publish(m, RealmUnboundEvent{std::string(realm), connection.remote_peer(),
                                                      id, RealmUnboundEvent::Cause::unbound});
  return {};
}

std::size_t RealmConnectionManager::realm_connections(std::string_view realm) const {
  std::lock_guard lock(state_->mutex);
  const State::Realm* entry = state_->find(realm);
  return entry == nullptr ? 0 : entry->connections;
}

std::vector<NodeId> RealmConnectionManager::members(std::string_view realm) const {
  std::lock_guard lock(state_->mutex);
  std::vector<NodeId> peers;
  if (const State::Realm* entry = state_->find(realm)) {
    peers.reserve(entry->members.live());
    entry->members.for_each(
        [&](const NodeId& peer, std::uint32_t, const State::Member&) { peers.push_back(peer); });
  }
  return peers;
}

std::vector<std::string> RealmConnectionManager::realms_of(const NodeId& peer) const {
  std::lock_guard lock(state_->mutex);
  std::vector<std::string> names;
  for (const auto& [name, realm] : state_->realms) {
    if (realm->members.find(peer) != nullptr) names.push_back(name);
  }
  return names;
}

std::optional<RealmStats> RealmConnectionManager::realm_stats(std::string_view realm) const {
  std::lock_guard lock(state_->mutex);
  const State::Realm* entry = state_->find(realm);
  if (entry == nullptr) return std::nullopt;
  RealmStats stats = entry->stats;
  stats.connections = entry->connections;
  stats.members = entry->members.live();
  return stats;
}

std::error_code RealmConnectionManager::tag_peer(std::string_view realm, const NodeId& peer,
                                                 std::string_view name, int value) {
  if (name.empty()) return Errc::invalid_argument;
  std::lock_guard lock(state_->mutex);
  if (state_->closed) return Errc::closed;
  std::error_code ec;
  State::Member* member = state_->find_member(realm, peer, ec);
  if (member == nullptr) return ec;
  auto tag = State::find_tag(*member, name);
  if (tag == member->tags.end()) {
    member->tags.emplace_back(std::string(name), value);
  } else {
    member->value -= tag->second;
    tag->second = value;
  }
  member->value += value;
  return {};
}

std::error_code RealmConnectionManager::untag_peer(std::string_view realm, const NodeId& peer,
                                                   std::string_view name) {
  std::lock_guard lock(state_->mutex);
  std::error_code ec;
  State::Member* member = state_->find_member(realm, peer, ec);
  if (member == nullptr) return ec;
  auto tag = State::find_tag(*member, name);
  if (tag != member->tags.end()) {
    member->value -= tag->second;
    member->tags.erase(tag);
  }
  return {};
}

std::optional<std::int64_t> RealmConnectionManager::realm_value(std::string_view realm,
                                                                const NodeId& peer) const {
  std::lock_guard lock(state_->mutex);
  std::error_code ec;
  const State::Member* member = state_->find_member(realm, peer, ec);
  if (member == nullptr) return std::nullopt;
  return member->value;
}

std::error_code RealmConnectionManager::protect(std::string_view realm, const NodeId& peer,
                                                std::string_view tag) {
  if (tag.empty()) return Errc::invalid_argument;
  std::lock_guard lock(state_->mutex);
  if (state_->closed) return Errc::closed;
  std::error_code ec;
  State::Member* member = state_->find_member(realm, peer, ec);
  if (member == nullptr) return ec;
  auto& tags = member->protections;
  if (std::find(tags.begin(), tags.end(), tag) == tags.end()) tags.emplace_back(tag);
  return {};
}

bool RealmConnectionManager::unprotect(std::string_view realm, const NodeId& peer,
                                       std::string_view tag) {
  std::lock_guard lock(state_->mutex);
  std::error_code ec;
  State::Member* member = state_->find_member(realm, peer, ec);
  if (member == nullptr) return false;
  auto& tags = member->protections;
  if (auto found = std::find(tags.begin(), tags.end(), tag); found != tags.end()) tags.erase(found);
  return !tags.empty();
}

bool RealmConnectionManager::is_protected(std::string_view realm, const NodeId& peer) const {
  std::lock_guard lock(state_->mutex);
  std::error_code ec;
  const State::Member* member = state_->find_member(realm, peer, ec);
  return member != nullptr && !member->protections.empty();
}

std::size_t RealmConnectionManager::trim_realm(std::string_view realm) {
  return state_->trim_realm(realm);
}

std::error_code RealmConnectionManager::set_limits(std::size_t low_water, std::size_t high_water,
                                                   ConfigError* error) {
  {
    std::lock_guard lock(state_->mutex);
    if (low_water != 0 && high_water != 0 && state_->reserved > low_water) {
      if (error != nullptr) {
        *error = fail("low_water", "low_water (" + number(low_water) +
                                       ") must not be below the realms' reserves (" +
                                       number(state_->reserved) + " in all)");
      }
      return Errc::invalid_argument;
    }
  }
  return state_->manager->set_limits(low_water, high_water);
}

void RealmConnectionManager::close() {
  {
    std::lock_guard lock(state_->mutex);
    state_->closed = true;
  }
  state_->manager->close();
}

}  // namespace dep2p::connmgr
