// RealmConnectionManager::explain: the node's explanation of a peer, and the peer's
// standing in each of its realms (docs/design.md, "Observability").
#include <algorithm>
#include <string>

#include "dep2p/connmgr/realm_manager.hpp"
#include "realm/realm_state.hpp"

namespace dep2p::connmgr {

namespace {

using Give = RealmStanding::Give;

// How far the realm stands above the line the node's trim takes from first.
std::size_t excess(const RealmStanding& s) {
  const std::size_t line = s.give == Give::above_share ? s.share : s.reserve;
  return s.realm_connections > line ? s.realm_connections - line : 0;
}

std::string describe(const RealmStanding& s) {
  std::string text = s.realm + " (" + std::to_string(s.bound) + " bound, ";
  switch (s.give) {
    case Give::above_share: text += "above share by " + std::to_string(excess(s)); break;
    case Give::above_reserve: text += "above reserve by " + std::to_string(excess(s)); break;
    case Give::at_reserve: text += "at reserve"; break;
  }
  if (s.is_protected) text += ", protected in the realm";
  return text + ")";
}

}  // namespace

std::optional<RealmExplanation> RealmConnectionManager::explain(const NodeId& peer) const {
  // The core's lock and then the layer's, one after the other: never both held.
  std::optional<Explanation> node = manager().explain(peer);
  if (!node) return std::nullopt;
  RealmExplanation out{.node = std::move(*node)};
  {
    std::lock_guard lock(state_->mutex);
    for (const auto& [name, realm] : state_->realms) {  // in name order
      const detail::Member* member = realm->members.find(peer);
      if (member == nullptr) continue;
      RealmStanding s;
      s.realm = name;
      s.bound = realm->members.bound_of(peer);
      s.value = member->value;
      s.is_protected = !member->protections.empty();
      s.realm_connections = realm->connections;
      s.share = realm->config.low_water;
      s.reserve = realm->config.min_reserved;
      s.give = s.realm_connections > s.share     ? Give::above_share
               : s.realm_connections > s.reserve ? Give::above_reserve
                                                 : Give::at_reserve;
      out.realms.push_back(std::move(s));
    }
  }
  const RealmStanding* first = nullptr;
  for (const RealmStanding& s : out.realms) {
    if (s.give == Give::at_reserve) continue;
    if (first == nullptr || s.give < first->give ||
        (s.give == first->give && excess(s) > excess(*first))) {
      first = &s;
    }
  }
  if (first != nullptr) out.gives_up = first->realm;
  out.summary = out.node.summary;
  if (!out.realms.empty()) {
    out.summary += "; realms: ";
    for (std::size_t i = 0; i < out.realms.size(); ++i) {
      if (i > 0) out.summary += ", ";
      out.summary += describe(out.realms[i]);
    }
  }
  return out;
}

}  // namespace dep2p::connmgr
