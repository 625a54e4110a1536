// A realm's own trim (docs/design.md, "Realms"): a realm at its high water closes
// connections bound to it, and only those, until it holds its low water. It works through
// the manager's public queries and its door, never under the manager's lock.
#include <algorithm>
#include <tuple>

#include <boost/asio/post.hpp>

#include "realm/realm_state.hpp"

namespace dep2p::connmgr {

using State = RealmConnectionManager::State;

std::size_t State::trim_realm(std::string_view name) {
  ConnectionManager& m = *manager;
  struct Candidate {
    NodeId peer;
    std::int64_t realm_value = 0;
    std::int64_t value = 0;
    TimePoint first_seen{};
    std::uint32_t bound = 0;
    std::uint32_t place = 0;  // in the host trimmer's order, when one is in force
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
    realm->members.for_each(
        [&](const NodeId& peer, std::uint32_t slot, const detail::Member& member) {
          if (!member.protections.empty()) return;  // protected in the realm
          members.push_back(Candidate{peer, member.value, 0, {}, realm->members.bound(slot)});
        });
  }
  // Global facts, asked outside our lock: grace and the node's protections.
  const TimePoint now = door->now();
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
  // The realm's own value first; then the host's trimmer's order when it gave one, else
  // the node's value and the later first_seen.
  std::vector<NodeId> ids;
  ids.reserve(candidates.size());
  for (const Candidate& c : candidates) ids.push_back(c.peer);
  if (auto places = door->trimmer_order(ids)) {
    for (std::size_t i = 0; i < candidates.size(); ++i) candidates[i].place = (*places)[i];
    std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
      return std::tie(a.realm_value, a.place) < std::tie(b.realm_value, b.place);
    });
  } else {
    std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
      return std::tie(a.realm_value, a.value, b.first_seen) <
             std::tie(b.realm_value, b.value, a.first_seen);
    });
  }
  const std::string detail = "realm " + std::string(name) + " over its high water: trimmed to " +
                             std::to_string(low) + " bound connections";
  std::size_t closed_count = 0;
  for (const Candidate& c : candidates) {
    if (closed_count >= target) break;
    for (const auto& handle : m.connections(c.peer)) {
      if (closed_count >= target) break;
      const auto located = door->locate(*handle);
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

void State::schedule_trim(Realm& realm) {
  if (realm.trim_scheduled || closed) return;
  realm.trim_scheduled = true;
  boost::asio::post(manager->get_executor(), [weak = self, name = realm.name] {
    if (auto state = weak.lock()) state->trim_realm(name);
  });
}

}  // namespace dep2p::connmgr
