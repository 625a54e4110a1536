// Dealing a trim's candidates into the realm layer's pools (docs/architecture.md,
// "Realms"): each candidate goes into the pool of every realm one of its connections is
// bound to (the unbound pool when none is), as a realm_greedy::Contender under the key the
// caller gives. Shared by the node's trim ranking (realm_ranking.cpp) and the choice of a
// connection to close to make room for a reserve (realm_reserve.cpp).
#pragma once

#include <memory>

#include "realm/realm_state.hpp"
#include "trim/candidates.hpp"

namespace dep2p::connmgr::realm_deal {

using State = RealmConnectionManager::State;
using Contender = State::Contender;
using NodeRanking = State::NodeRanking;

// Prepares a ranking of candidates indexed below `indices`; null when no connection is
// bound, unless `always`. REQUIRES: the state's mutex.
inline std::unique_ptr<NodeRanking> start_ranking(const State& state, std::size_t indices,
                                                  bool always = false) {
  if (state.bound_slots == 0 && !always) return nullptr;
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
inline void add_contender(NodeRanking& r, std::uint32_t index, const detail::RankKey& key,
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

// Deals every candidate of `view` that `keep(slot, entry)` admits into a ranking, keyed by
// `key(slot)` (a detail::RankKey), and counts their connections. Null when nothing is
// bound, unless `always`. REQUIRES: the state's mutex.
template <class Keep, class Key>
std::unique_ptr<NodeRanking> deal(State& state, const detail::CandidateView& view, bool always,
                                  Keep&& keep, Key&& key, std::size_t& candidate_connections) {
  std::unique_ptr<NodeRanking> ranked = start_ranking(state, view.peer_slots(), always);
  if (!ranked) return nullptr;
  // While a bind is under way a binding may belong to a connection that closed: check
  // each one's id against the connection's (see binds_in_flight).
  const bool check_ids = state.binds_in_flight.load() != 0;
  view.for_each([&](std::uint32_t slot, const detail::PeerSlot& entry) {
    if (!keep(slot, entry)) return;
    const auto conns = view.connections(entry);
    candidate_connections += conns.size();
    add_contender(*ranked, slot, key(slot), static_cast<std::uint32_t>(conns.size()),
                  [&](auto&& f) {
                    for (std::uint32_t c : conns) {
                      if (c >= state.bindings.size()) continue;
                      const State::Binding& b = state.bindings[c];
                      if (check_ids && b.id != view.connection_id(c)) continue;
                      for (const State::BoundTo& bound : b.realms) f(bound);
                    }
                  });
  });
  return ranked;
}

}  // namespace dep2p::connmgr::realm_deal
