// RealmConnectionManager: reserves that admit (docs/design.md, "Realms"). While realms are
// short of their min_reserved, the core admits that many handshakes above a full
// connection cap; when one of them is added with a claim on a realm below its reserve, a
// connection is closed to make room for it, chosen here: a peer with no bound connection
// first (among the lowest valued, by the diversity rule when it is on), else the node
// trim's own victim for one connection, which never takes a realm to below its reserve,
// nor a protected peer or one in its grace period (the view's candidates).
#include <algorithm>
#include <vector>

#include "realm/realm_by_level.hpp"
#include "realm/realm_deal.hpp"
#include "trim/diversity.hpp"

namespace dep2p::connmgr {
namespace {

// Of the candidates in [first, last) worth as little as `lowest` (the default order's
// first), the one the diversity rule takes first: from the network group holding the most
// of the node's connections, after the rule's kept slots.
using detail::realm_greedy::Contender;

std::uint32_t diverse_victim(const detail::CandidateView& view, const detail::DiversityRule& rule,
                             const Contender* first, const Contender* last, std::uint32_t lowest) {
  const std::uint64_t value = view.key(lowest).value;
  std::vector<detail::RankKey> tied;
  for (const Contender* c = first; c != last; ++c) {
    const detail::RankKey key = view.key(c->index);
    if (key.value == value) tied.push_back(key);
  }
  if (tied.size() < 2) return lowest;
  detail::TrimTarget target;
  target.kind = detail::TrimTarget::Kind::exact;
  target.count = 1;
  detail::VictimSlots out;
  const std::size_t taken = detail::take_diverse(view, rule, tied, 1, target, /*others=*/true, out);
  return taken > 0 ? tied.front().index : lowest;
}

}  // namespace

using State = RealmConnectionManager::State;

std::size_t State::reserve_shortfall(const detail::Locked<>&) {
  std::lock_guard lock(mutex);
  if (reserved == 0 || closed) return 0;
  std::size_t shortfall = 0;
  for (const auto& [name, realm] : realms) {
    const std::size_t held = realm->connections + realm->claims;
    if (realm->config.min_reserved > held) shortfall += realm->config.min_reserved - held;
  }
  return shortfall;
}

detail::RoomChoice State::make_room(const detail::Locked<>&, const detail::CandidateView& view,
                                    std::span<const std::uint64_t> claims,
                                    std::uint32_t claimant_slot,
                                    std::optional<Direction> direction) {
  detail::RoomChoice choice;
  std::lock_guard lock(mutex);
  if (closed) return choice;
  Realm* short_realm = nullptr;
  for (const std::uint64_t token : claims) {
    bool member_place = false;
    Realm* realm = claimed_realm(token, member_place);
    if (realm != nullptr && realm->connections < realm->config.min_reserved) {
      short_realm = realm;
      break;
    }
  }
  if (short_realm == nullptr) return choice;
  choice.realm = short_realm->name;
  choice.held = short_realm->connections;
  choice.reserve = short_realm->config.min_reserved;

  // Whether the connection in `conn` may close for the room asked: of the direction whose
  // cap is full, when one is.
  auto fits = [&](std::uint32_t conn) {
    return !direction || view.pool().conn(conn).direction == *direction;
  };
  auto keep = [&](std::uint32_t slot, const detail::PeerSlot& entry) {
    if (slot == claimant_slot) return false;
    return std::ranges::any_of(view.connections(entry), fits);
  };
  std::size_t candidate_connections = 0;
  const std::unique_ptr<NodeRanking> ranked = realm_deal::deal(
      *this, view, true, keep, [&](std::uint32_t slot) { return view.key(slot); },
      candidate_connections);
  NodeRanking& r = *ranked;
  if (r.overflow || candidate_connections == 0) {
    ++short_realm->stats.refused_no_room;
    return choice;
  }
  std::optional<std::uint32_t> victim_peer;
  const Pool& unbound = r.pools[0];
  if (unbound.end != unbound.begin) {
    // A peer with no bound connection goes first, in the default order; with the diversity
    // rule, the rule chooses among those of the lowest value.
    const Contender* first = r.candidates.get() + unbound.begin;
    const Contender* last = r.candidates.get() + unbound.end;
    victim_peer = std::min_element(first, last)->index;
    if (const detail::DiversityRule* rule = view.diversity()) {
      victim_peer = diverse_victim(view, *rule, first, last, *victim_peer);
    }
  } else {
    for (Pool& pool : r.pools) pool.sorted = pool.head = pool.begin;
    std::vector<std::uint8_t> fate(r.indices, 0);
    Contender last{};
    const detail::realm_greedy::Run run{
        r.pools, r.candidates.get(), r.stakes.get(), r.entries, fate, 1, 2, nullptr, &last};
    const std::size_t covered =
        r.single ? detail::realm_greedy::by_level(run) : detail::realm_greedy::stepwise(run);
    if (covered > 0) victim_peer = last.index;
  }
  if (!victim_peer) {
    ++short_realm->stats.refused_no_room;
    return choice;
  }
  // Of the peer's connections that may close, the one bound to the fewest realms (the
  // last such, the newest, on a tie).
  std::size_t fewest = SIZE_MAX;
  for (const std::uint32_t conn : view.connections(view.pool().peer(*victim_peer))) {
    if (!fits(conn)) continue;
    std::size_t bound = 0;
    if (conn < bindings.size() && bindings[conn].id == view.connection_id(conn)) {
      bound = bindings[conn].realms.size();
    }
    if (bound <= fewest) {
      fewest = bound;
      choice.victim = conn;
    }
  }
  if (choice.victim) ++short_realm->stats.made_room;
  return choice;
}

}  // namespace dep2p::connmgr
