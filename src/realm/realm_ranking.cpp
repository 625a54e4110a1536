// The realm layer's side of the manager core's door: bindings forgotten when their
// connections leave the pool, and the node's trim ranked by the realm rules
// (docs/architecture.md, "Realms"): candidates dealt into a pool per realm (and one for the
// unbound), then the greedy of realm_greedy.hpp draws victims from above the realms' shares,
// then from above their reserves, and in an emergency from anywhere.
#include <stdexcept>

#include "realm/realm_by_level.hpp"
#include "realm/realm_state.hpp"

namespace dep2p::connmgr {
namespace {

using State = RealmConnectionManager::State;
using Contender = State::Contender;
using NodeRanking = State::NodeRanking;

// Prepares a ranking of candidates indexed below `indices`; null when no connection is
// bound. REQUIRES: the state's mutex.
std::unique_ptr<NodeRanking> start_ranking(const State& state, std::size_t indices) {
  if (state.bound_slots == 0) return nullptr;
  auto r = std::make_unique<NodeRanking>();
  r->indices = indices;
  r->pools.resize(state.realms.size() + 1);
  r->limit.resize(state.realms.size() + 1);
  r->pool_of_realm.assign(state.realm_table.size(), 0);
  std::uint32_t offset = 0;
  std::uint32_t index = 1;
  for (const auto& [name, realm] : state.realms) {
    State::Pool& pool = r->pools[index];
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
  return r;
}

// Deals candidate `index` into the pools of its realms: `bound_to(f)` calls f(BoundTo) for
// each binding of each of its connections.
template <typename BoundToEach>
void add_contender(NodeRanking& r, std::uint32_t index, const detail::RankKey& key,
                   std::uint32_t connections, BoundToEach&& bound_to) {
  // Its first realm (most peers have one, or none) stays out of `entries`.
  State::StakeEntry first{0, 0};
  std::vector<State::StakeEntry>& entries = r.entries;
  const auto start = static_cast<std::uint32_t>(entries.size());
  bound_to([&](const State::BoundTo& bound) {
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
    entries.push_back(State::StakeEntry{p, 1});
  });
  const auto stop = static_cast<std::uint32_t>(entries.size());
  if (start != stop && r.single) {
    // The first peer in two realms: every one before it was in one (or none).
    r.single = false;
    r.stakes = std::make_unique_for_overwrite<State::Stake[]>(r.indices);
    for (std::uint32_t p = 0; p < r.pools.size(); ++p) {
      for (std::uint32_t k = r.pools[p].begin; k < r.pools[p].end; ++k) {
        const Contender& earlier = r.candidates[k];
        r.stakes[earlier.index] = State::Stake{p, earlier.bound(), 0, 0};
      }
    }
  }
  if (!r.single) r.stakes[index] = State::Stake{first.pool, first.bound, start, stop};
  auto deal = [&](std::uint32_t p, std::uint32_t bound) {
    State::Pool& pool = r.pools[p];
    if (pool.end == r.limit[p] || bound > Contender::kBoundMask) {
      r.overflow = true;
      return;
    }
    // The pool's next line is written only after the other pools' turns: ask for it now
    // (the deal writes as many streams at once as there are realms, too many for the
    // hardware to follow).
    if (pool.end + 2 < r.limit[p]) __builtin_prefetch(&r.candidates[pool.end + 2], 1);
    r.candidates[pool.end++] =
        Contender::of(key.value, key.activity, key.newer, index, connections, bound);
  };
  deal(first.pool, first.bound);  // pool 0 (bound 0) when it has no realm
  for (std::uint32_t e = start; e < stop; ++e) deal(entries[e].pool, entries[e].bound);
}

}  // namespace

void State::on_detached(const detail::Locked<>&, std::span<const detail::DetachedConnection> batch,
                        std::span<const NodeId> peers, std::vector<Event>* events) {
  std::lock_guard lock(mutex);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    // The bindings of a trim's victims are scattered: fetch them a few ahead.
    if (i + 8 < batch.size() && batch[i + 8].slot < bindings.size()) {
      const auto* binding = reinterpret_cast<const char*>(&bindings[batch[i + 8].slot]);
      __builtin_prefetch(binding);
      __builtin_prefetch(binding + sizeof(Binding) - 1);
    }
    const detail::DetachedConnection& gone = batch[i];
    Binding* b = binding_at(gone.slot, gone.id);
    if (b == nullptr) continue;
    while (!b->realms.empty()) {
      Realm* realm = realm_table[b->realms.back().realm];
      drop(*b, b->realms.size() - 1);
      const bool own = !realm->own_trim.empty() && realm->own_trim.erase(gone.id) > 0;
      if (!own &&
          (gone.reason == CloseReason::trimmed || gone.reason == CloseReason::forced_trim)) {
        ++realm->stats.trimmed_globally;
      }
      if (events != nullptr) {
        events->push_back(RealmUnboundEvent{realm->name, peers[i], gone.id,
                                            RealmUnboundEvent::Cause::disconnected});
      }
    }
  }
}

std::optional<detail::VictimSlots> State::rank(const detail::Locked<>&,
                                               const detail::CandidateView& view,
                                               const detail::TrimTarget& rule,
                                               std::size_t& target) {
  std::unique_ptr<NodeRanking> ranked;
  std::size_t candidate_connections = 0;
  {
    std::lock_guard lock(mutex);
    ranked = start_ranking(*this, view.peer_slots());
    if (!ranked) return std::nullopt;  // nothing bound: the core's own order decides
    // While a bind is under way a binding may belong to a connection that closed: check
    // each one's id against the connection's (see binds_in_flight).
    const bool check_ids = binds_in_flight.load() != 0;
    view.for_each([&](std::uint32_t slot, const detail::PeerSlot& entry) {
      const auto conns = view.connections(entry);
      candidate_connections += conns.size();
      add_contender(*ranked, slot, view.key(slot), static_cast<std::uint32_t>(conns.size()),
                    [&](auto&& f) {
                      for (std::uint32_t c : conns) {
                        if (c >= bindings.size()) continue;
                        const Binding& b = bindings[c];
                        if (check_ids && b.id != view.connection_id(c)) continue;
                        for (const BoundTo& bound : b.realms) f(bound);
                      }
                    });
    });
  }
  detail::VictimSlots choice;
  target = rule.of(candidate_connections);
  if (target == 0) return choice;
  // A pool that outgrew its stretch means a realm's count fell below its bindings: an
  // invariant broken. Nothing is closed then rather than closing by a broken count.
  if (ranked->overflow) return choice;
  const NodeRanking& r = *ranked;
  for (Pool& pool : ranked->pools) pool.sorted = pool.head = pool.begin;
  std::vector<std::uint8_t> fate(r.indices, 0);
  Contender last{};
  const detail::realm_greedy::Run run{ranked->pools,
                                      ranked->candidates.get(),
                                      ranked->stakes.get(),
                                      ranked->entries,
                                      fate,
                                      target,
                                      view.forced() ? 3 : 2,
                                      nullptr,
                                      &last};
  const std::size_t covered =
      r.single ? detail::realm_greedy::by_level(run) : detail::realm_greedy::stepwise(run);
  // Each peer taken covers at least one connection, and the greedy stops at the target:
  // there are at most that many. Written without a branch (half the candidates may go, at
  // random), one slot past the last victim at most.
  std::vector<std::uint32_t>& slots = choice.slots;
  slots.resize(std::min(target, fate.size()) + 1);
  std::size_t taken = 0;
  for (std::uint32_t slot = 0; slot < fate.size(); ++slot) {
    slots[taken] = slot;
    taken += static_cast<std::size_t>(fate[slot] == detail::realm_greedy::kTaken);
  }
  slots.resize(taken);
  if (rule.partial() && covered > target) {
    // The last peer taken gives up only what the target still needed.
    choice.partial_slot = last.index;
    choice.partial_count = last.connections - (covered - target);
  }
  return choice;
}

}  // namespace dep2p::connmgr
