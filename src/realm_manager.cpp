#include "dep2p/connmgr/realm_manager.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <queue>
#include <stdexcept>
#include <tuple>

#include <boost/asio/post.hpp>
#include <boost/container/small_vector.hpp>
#include <boost/unordered/unordered_flat_map.hpp>
#include <boost/unordered/unordered_flat_set.hpp>

#include "dep2p/connmgr/error.hpp"
#include "detail/manager_access.hpp"
#include "detail/score_key.hpp"

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

struct RealmConnectionManager::State {
  // A peer with at least one connection bound to a realm, and what the realm knows of it.
  struct Member {
    std::uint32_t bound = 0;  // connections.size()
    // The bound connections, as (manager slot, id).
    boost::container::small_vector<std::pair<std::uint32_t, ConnectionId>, 1> connections;
    std::vector<std::pair<std::string, int>> tags;
    std::int64_t value = 0;
    std::vector<std::string> protections;
  };

  // A realm's members: entries in a slab (stable indices, so bindings point at them) found
  // by peer id through an index. An entry whose last binding went is emptied at once but
  // leaves the index lazily, in sweeps, so that closing a connection looks nothing up by
  // peer id. Every method REQUIRES the state's mutex.
  class MemberTable {
   public:
    Member* find(const NodeId& peer) {
      auto it = index_.find(peer);
      return it == index_.end() || slab_[it->second].bound == 0 ? nullptr : &slab_[it->second];
    }
    const Member* find(const NodeId& peer) const {
      auto it = index_.find(peer);
      return it == index_.end() || slab_[it->second].bound == 0 ? nullptr : &slab_[it->second];
    }
    // The entry for `peer`, created or revived.
    std::uint32_t acquire(const NodeId& peer) {
      auto [it, fresh] = index_.try_emplace(peer, 0);
      if (fresh) {
        if (free_.empty()) {
          it->second = static_cast<std::uint32_t>(slab_.size());
          slab_.emplace_back();
        } else {
          it->second = free_.back();
          free_.pop_back();
        }
      } else if (slab_[it->second].bound == 0) {
        --dead_;
      }
      return it->second;
    }
    Member& at(std::uint32_t slot) { return slab_[slot]; }
    // The member's last binding went: its tags and protections go with it.
    void retire(std::uint32_t slot) {
      Member& member = slab_[slot];
      member = Member{};
      if (++dead_ > 64 + live()) sweep();
    }
    std::size_t live() const { return index_.size() - dead_; }
    template <typename F>
    void for_each(F&& f) const {
      for (const auto& [peer, slot] : index_) {
        if (slab_[slot].bound > 0) f(peer, slab_[slot]);
      }
    }

   private:
    void sweep() {
      std::vector<NodeId> gone;
      for (const auto& [peer, slot] : index_) {
        if (slab_[slot].bound == 0) gone.push_back(peer);
      }
      for (const NodeId& peer : gone) {
        auto it = index_.find(peer);
        free_.push_back(it->second);
        index_.erase(it);
      }
      dead_ = 0;
    }

    std::vector<Member> slab_;
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
    std::uint32_t trim_index = 0;  // scratch: the realm's index during a node trim
  };

  // The realms one connection is bound to, at the connection's slot in the manager
  // (ConnectionSnapshot::slot): the node's trim and the detach observer reach it by index,
  // with no lookup. `id` tells the slot's current connection from an earlier one.
  struct BoundTo {
    Realm* realm;
    std::uint32_t member;  // in realm->members
  };
  struct Binding {
    ConnectionId id{};
    boost::container::small_vector<BoundTo, 2> realms;
  };

  // A leaf lock: never held while calling the manager or host code. The manager calls
  // on_detached() under its own lock, so the order is always manager, then this one.
  mutable std::mutex mutex;
  std::map<std::string, std::unique_ptr<Realm>, std::less<>> realms;
  std::vector<Binding> bindings;  // by manager slot
  std::size_t bound_slots = 0;    // bindings with at least one realm
  std::size_t reserved = 0;       // sum of the realms' min_reserved
  bool closed = false;
  // Declared last, destroyed first: its observer points into this State.
  std::unique_ptr<ConnectionManager> manager;

  ~State() {
    if (manager) {
      detail::ManagerAccess::set_detach_observer(*manager, nullptr);
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
      if (b.realms[k].realm == realm) return k;
    }
    return std::nullopt;
  }

  // Removes element k; the order of a connection's realms does not matter.
  template <typename List>
  static void erase_at(List& list, std::size_t k) {
    list[k] = list.back();
    list.pop_back();
  }

  // Binds connection (slot, id) of `peer` to `realm`. REQUIRES: mutex; b.id == id.
  void add(Binding& b, Realm& realm, const NodeId& peer, std::uint32_t slot, ConnectionId id) {
    if (b.realms.empty()) ++bound_slots;
    const std::uint32_t m = realm.members.acquire(peer);
    Member& member = realm.members.at(m);
    member.connections.emplace_back(slot, id);
    ++member.bound;
    b.realms.push_back(BoundTo{&realm, m});
    ++realm.connections;
    ++realm.stats.binds;
  }
  // Ends the binding b.realms[k] of the connection at `slot`. REQUIRES: mutex.
  void drop(Binding& b, std::size_t k, std::uint32_t slot) {
    const BoundTo entry = b.realms[k];
    Realm& realm = *entry.realm;
    Member& member = realm.members.at(entry.member);
    for (std::size_t i = 0; i < member.connections.size(); ++i) {
      if (member.connections[i].first == slot) {
        erase_at(member.connections, i);
        break;
      }
    }
    if (--member.bound == 0) realm.members.retire(entry.member);
    --realm.connections;
    ++realm.stats.unbinds;
    erase_at(b.realms, k);
    if (b.realms.empty()) {
      b.id = ConnectionId{};
      --bound_slots;
    }
  }

  // Under the manager's lock, whenever a connection leaves the pool.
  void on_detached(std::uint32_t slot, ConnectionId id, const NodeId& peer, CloseReason reason,
                   std::vector<Event>* events) {
    std::lock_guard lock(mutex);
    Binding* b = binding_at(slot, id);
    if (b == nullptr) return;
    while (!b->realms.empty()) {
      Realm* realm = b->realms.back().realm;
      drop(*b, b->realms.size() - 1, slot);
      const bool own = !realm->own_trim.empty() && realm->own_trim.erase(id) > 0;
      if (!own && (reason == CloseReason::trimmed || reason == CloseReason::forced_trim)) {
        ++realm->stats.trimmed_globally;
      }
      if (events != nullptr) {
        events->push_back(
            RealmUnboundEvent{realm->name, peer, id, RealmUnboundEvent::Cause::disconnected});
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

  // Fills `order` and returns true, or returns false when no connection is bound (the
  // manager's own trimmer then decides alone).
  bool rank(const TrimSnapshot& snapshot, std::size_t target, std::vector<std::uint32_t>& order) {
    const std::size_t n = snapshot.peers.size();
    struct Pool {
      std::size_t count = 0;  // bound connections of the realm, candidates or not
      std::size_t share = 0;
      std::size_t reserve = 0;
    };
    struct Entry {
      std::uint32_t realm;
      std::uint32_t bound;
    };
    std::vector<Pool> pools;                     // pools[0] is the unbound connections
    std::vector<std::uint32_t> first(n + 1, 0);  // peer i's entries: [first[i], first[i+1])
    std::vector<Entry> entries;
    {
      std::lock_guard lock(mutex);
      if (bound_slots == 0) return false;
      pools.resize(realms.size() + 1);
      std::uint32_t index = 1;
      for (auto& [name, realm] : realms) {
        realm->trim_index = index;
        pools[index] =
            Pool{realm->connections, realm->config.low_water, realm->config.min_reserved};
        ++index;
      }
      for (std::uint32_t i = 0; i < n; ++i) {
        first[i] = static_cast<std::uint32_t>(entries.size());
        for (const ConnectionSnapshot& conn : snapshot.connections_of(snapshot.peers[i])) {
          if (conn.slot >= bindings.size() || bindings[conn.slot].id != conn.id) continue;
          for (const BoundTo& bound : bindings[conn.slot].realms) {
            const Realm* realm = bound.realm;
            auto begin = entries.begin() + first[i];
            auto same = std::find_if(begin, entries.end(),
                                     [&](const Entry& e) { return e.realm == realm->trim_index; });
            if (same != entries.end()) {
              ++same->bound;
            } else {
              entries.push_back(Entry{realm->trim_index, 1});
            }
          }
        }
      }
      first[n] = static_cast<std::uint32_t>(entries.size());
    }

    // Each pool's peers in the default order: keys dealt out, then each pool sorted. An
    // entry carries what the greedy needs of its peer, so that taking a victim reads no
    // other array at random.
    struct Candidate {
      std::uint64_t value;
      std::uint64_t activity;
      std::uint64_t newer;
      std::uint32_t index;  // into snapshot.peers
      std::uint32_t connections;
      std::uint32_t first;  // the peer's realm entries: [first, last)
      std::uint32_t last;
      bool operator<(const Candidate& o) const {
        return std::tie(value, activity, newer, index) <
               std::tie(o.value, o.activity, o.newer, o.index);
      }
    };
    std::vector<std::vector<Candidate>> members(pools.size());
    for (std::size_t p = 1; p < pools.size(); ++p) members[p].reserve(pools[p].count);
    for (std::uint32_t i = 0; i < n; ++i) {
      const detail::RankKey key = detail::key_of(snapshot.peers[i], i);
      const Candidate c{key.value, key.activity, key.newer, i, snapshot.peers[i].connection_count,
                        first[i],  first[i + 1]};
      if (c.first == c.last) {
        members[0].push_back(c);
      } else {
        for (std::uint32_t e = c.first; e < c.last; ++e) members[entries[e].realm].push_back(c);
      }
    }
    for (auto& list : members) std::sort(list.begin(), list.end());

    // Greedy: at each step the cheapest head among the pools, by value, then unbound
    // before bound, then the realm with the largest excess over the phase's threshold,
    // then the rest of the default order. Keys only grow as victims are taken (excesses
    // shrink, heads move down their sorted pools), so stale heap entries are re-keyed
    // lazily when they surface.
    using HeapKey =
        std::tuple<std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint32_t>;
    using HeapEntry = std::pair<HeapKey, std::uint32_t>;
    // Per peer: 0 while it may go, kTaken once it went, else the phase that skipped it.
    constexpr std::uint8_t kTaken = 0xFF;
    std::vector<std::uint8_t> fate(n, 0);
    std::size_t covered = 0;
    const int phases = snapshot.forced ? 3 : 2;
    for (int phase = 1; phase <= phases && covered < target; ++phase) {
      auto threshold = [&](const Pool& pool) {
        return phase == 1 ? std::max(pool.share, pool.reserve) : phase == 2 ? pool.reserve : 0;
      };
      std::vector<std::size_t> head(pools.size(), 0);
      auto key_of_pool = [&](std::uint32_t p) -> std::optional<HeapKey> {
        const auto& list = members[p];
        while (head[p] < list.size() && fate[list[head[p]].index] != 0 &&
               (fate[list[head[p]].index] == kTaken || fate[list[head[p]].index] == phase)) {
          ++head[p];
        }
        if (head[p] == list.size()) return std::nullopt;
        // (bound << 63) | ~excess: unbound first, then the largest excess first.
        std::uint64_t standing = 0;
        if (p != 0) {
          const std::size_t floor = threshold(pools[p]);
          if (pools[p].count <= floor) return std::nullopt;
          standing = (1ULL << 63) | (~static_cast<std::uint64_t>(pools[p].count - floor) >> 1);
        }
        const Candidate& k = list[head[p]];
        return HeapKey{k.value, standing, k.activity, k.newer, k.index};
      };
      std::priority_queue<HeapEntry, std::vector<HeapEntry>, std::greater<>> heap;
      for (std::uint32_t p = 0; p < pools.size(); ++p) {
        if (auto key = key_of_pool(p)) heap.emplace(*key, p);
      }
      while (covered < target && !heap.empty()) {
        const auto [stored, p] = heap.top();
        heap.pop();
        const auto current = key_of_pool(p);
        if (!current) continue;
        if (*current != stored) {
          heap.emplace(*current, p);
          continue;
        }
        const Candidate& c = members[p][head[p]];
        bool eligible = true;
        for (std::uint32_t e = c.first; e < c.last; ++e) {
          const Pool& pool = pools[entries[e].realm];
          if (pool.count < threshold(pool) + entries[e].bound) eligible = false;
        }
        if (eligible) {
          fate[c.index] = kTaken;
          order.push_back(c.index);
          covered += c.connections;
          for (std::uint32_t e = c.first; e < c.last; ++e) {
            pools[entries[e].realm].count -= entries[e].bound;
          }
        } else {
          fate[c.index] = static_cast<std::uint8_t>(phase);
        }
        if (auto key = key_of_pool(p)) heap.emplace(*key, p);
      }
    }
    return true;
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
      realm->members.for_each([&](const NodeId& peer, const Member& member) {
        if (!member.protections.empty()) return;  // protected in the realm
        members.push_back(Candidate{peer, member.value, 0, {}, member.bound});
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
      in.connections = true;  // the realm rules map connections to their bindings
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
  deps.trimmer = std::make_shared<State::RealmTrimmer>(state_, std::move(inner));
  state_->manager =
      std::make_unique<ConnectionManager>(std::move(executor), std::move(config), std::move(deps));
  State* state = state_.get();
  detail::ManagerAccess::set_detach_observer(
      *state_->manager,
      [state](std::uint32_t slot, ConnectionId id, const NodeId& peer, CloseReason reason,
              std::vector<Event>* events) { state->on_detached(slot, id, peer, reason, events); });
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
  state_->reserved += config.min_reserved;
  state_->realms.emplace(entry->name, std::move(entry));
  return {};
}

std::error_code RealmConnectionManager::remove_realm(std::string_view realm) {
  std::vector<Event> events;
  {
    std::lock_guard lock(state_->mutex);
    auto it = state_->realms.find(realm);
    if (it == state_->realms.end()) return Errc::unknown_realm;
    State::Realm* gone = it->second.get();
    gone->members.for_each([&](const NodeId& peer, const State::Member& member) {
      for (const auto& [slot, id] : member.connections) {
        State::Binding* b = state_->binding_at(slot, id);
        if (b == nullptr) continue;
        if (auto k = State::position(*b, gone)) State::erase_at(b->realms, *k);
        if (b->realms.empty()) {
          b->id = ConnectionId{};
          --state_->bound_slots;
        }
        events.emplace_back(
            RealmUnboundEvent{gone->name, peer, id, RealmUnboundEvent::Cause::realm_removed});
      }
    });
    state_->reserved -= gone->config.min_reserved;
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
      while (!b.realms.empty()) state_->drop(b, b.realms.size() - 1, slot);
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
      state_->add(b, *entry, peer, slot, id);
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
        state_->drop(*b, *k, slot);
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
    state_->drop(*b, *k, slot);
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
        [&](const NodeId& peer, const State::Member&) { peers.push_back(peer); });
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
