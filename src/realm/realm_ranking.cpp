// The realm layer's side of the manager core's door: bindings forgotten when their
// connections leave the pool, and the node's trim ranked by the realm rules
// (docs/architecture.md, "Realms"): candidates dealt into a pool per realm (and one for the
// unbound), then the greedy of realm_greedy.hpp draws victims from above the realms' shares,
// then from above their reserves, and in an emergency from anywhere.
#include <algorithm>
#include <stdexcept>

#include "realm/realm_by_level.hpp"
#include "realm/realm_deal.hpp"

namespace dep2p::connmgr {
namespace {

using State = RealmConnectionManager::State;
using Contender = State::Contender;
using NodeRanking = State::NodeRanking;

// Every candidate of the view dealt into a ranking, keyed by `keys` (by slot; a host
// trimmer's places: its place decides alone, the unranked share one after every ranked
// one, the slot breaking that tie) or, without them, by the default order. Null when
// nothing is bound. REQUIRES: the state's mutex.
std::unique_ptr<NodeRanking> deal_all(State& state, const detail::CandidateView& view,
                                      std::span<const std::uint64_t> keys,
                                      std::size_t& candidate_connections) {
  auto all = [](std::uint32_t, const detail::PeerSlot&) { return true; };
  if (keys.empty()) {
    return realm_deal::deal(
        state, view, false, all, [&](std::uint32_t slot) { return view.key(slot); },
        candidate_connections);
  }
  return realm_deal::deal(
      state, view, false, all,
      [&](std::uint32_t slot) {
        return detail::RankKey{slot < keys.size() ? keys[slot] : UINT64_MAX, 0, 0, slot};
      },
      candidate_connections);
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
    if (Binding* b = binding_at(gone.slot, gone.id)) {
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
    // Its streams went with it (its bindings gave them back above): a bind that raced its
    // closure then adds and takes back none.
    if (gone.slot < slot_streams.size() && slot_streams[gone.slot].id == gone.id) {
      slot_streams[gone.slot].count = 0;
    }
  }
}

std::optional<detail::VictimSlots> State::rank(const detail::Locked<>&,
                                               const detail::CandidateView& view,
                                               const detail::TrimTarget& rule, std::size_t& target,
                                               std::span<const std::uint64_t> keys) {
  std::unique_ptr<NodeRanking> ranked;
  std::size_t candidate_connections = 0;
  {
    std::lock_guard lock(mutex);
    ranked = deal_all(*this, view, keys, candidate_connections);
    if (!ranked) return std::nullopt;  // nothing bound: the core's own order decides
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

std::optional<std::size_t> State::place_of(const detail::Locked<>&,
                                           const detail::CandidateView& view,
                                           std::span<const std::uint64_t> keys,
                                           std::uint32_t slot) {
  std::unique_ptr<NodeRanking> ranked;
  std::size_t candidate_connections = 0;
  {
    std::lock_guard lock(mutex);
    ranked = deal_all(*this, view, keys, candidate_connections);
  }
  if (!ranked || ranked->overflow) return std::nullopt;
  NodeRanking& r = *ranked;
  if (r.single) {
    // The step-by-step greedy (whose order is exact step by step) reads every stake.
    r.stakes = std::make_unique_for_overwrite<Stake[]>(r.indices);
    for (std::uint32_t p = 0; p < r.pools.size(); ++p) {
      for (std::uint32_t k = r.pools[p].begin; k < r.pools[p].end; ++k) {
        const Contender& c = r.candidates[k];
        r.stakes[c.index] = Stake{p, c.bound(), 0, 0};
      }
    }
  }
  for (Pool& pool : r.pools) pool.sorted = pool.head = pool.begin;
  std::vector<std::uint8_t> fate(r.indices, 0);
  std::vector<std::uint32_t> order;
  detail::realm_greedy::stepwise(
      detail::realm_greedy::Run{r.pools, r.candidates.get(), r.stakes.get(), r.entries, fate,
                                candidate_connections, 2, &order, nullptr});
  const auto it = std::find(order.begin(), order.end(), slot);
  return it == order.end() ? 0 : static_cast<std::size_t>(it - order.begin()) + 1;
}

bool State::describe_realms(const detail::Locked<>&, const detail::Pool& pool,
                            std::span<const std::uint32_t> slots, TrimSnapshot& snapshot) {
  std::lock_guard lock(mutex);
  if (bound_slots == 0) return false;
  // Realm indices may have gaps (removed realms): number the live ones densely.
  std::vector<std::uint32_t> column(realm_table.size(), UINT32_MAX);
  snapshot.realm_names.clear();
  for (std::uint32_t k = 0; k < realm_table.size(); ++k) {
    if (realm_table[k] == nullptr) continue;
    column[k] = static_cast<std::uint32_t>(snapshot.realm_names.size());
    snapshot.realm_names.push_back(realm_table[k]->name);
  }
  const bool check_ids = binds_in_flight.load() != 0;
  for (std::size_t i = 0; i < slots.size() && i < snapshot.peers.size(); ++i) {
    PeerSnapshot& peer = snapshot.peers[i];
    peer.first_realm = static_cast<std::uint32_t>(snapshot.peer_realms.size());
    for (const std::uint32_t c : pool.peer(slots[i]).conns) {
      if (c >= bindings.size()) continue;
      const Binding& b = bindings[c];
      if (check_ids && b.id != pool.conn(c).id) continue;
      for (const BoundTo& bound : b.realms) {
        const std::uint32_t realm = column[bound.realm];
        const auto first = snapshot.peer_realms.begin() + peer.first_realm;
        if (std::find(first, snapshot.peer_realms.end(), realm) == snapshot.peer_realms.end()) {
          snapshot.peer_realms.push_back(realm);
        }
      }
    }
    peer.realm_count = static_cast<std::uint32_t>(snapshot.peer_realms.size()) - peer.first_realm;
  }
  return true;
}

}  // namespace dep2p::connmgr
