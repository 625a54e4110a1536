#include "trim/snapshot.hpp"

#include "pool/activity.hpp"

namespace dep2p::connmgr::detail {

void reserve(Plan& plan, std::size_t peers, std::size_t connections, const TrimInputs& inputs) {
  plan.snapshot.peers.reserve(peers);
  plan.slots.reserve(peers);
  plan.generations.reserve(peers);
  if (inputs.peer_ids) plan.snapshot.peer_ids.reserve(peers);
  if (inputs.connections) plan.snapshot.connections.reserve(connections);
}

void add_candidate(Plan& plan, const CandidateView& view, std::uint32_t slot, const PeerSlot& entry,
                   const TrimInputs& inputs) {
  PeerSnapshot peer = view.snapshot_of(slot);
  if (inputs.connections) {
    peer.first_connection = static_cast<std::uint32_t>(plan.snapshot.connections.size());
    for (std::uint32_t c : entry.conns) {
      const ConnEntry& conn = view.pool().conn(c);
      const ActivityAccess::Activity activity = ActivityAccess::read(*conn.handle);
      plan.snapshot.connections.push_back(
          ConnectionSnapshot{conn.id, conn.direction, conn.path, conn.streams(), conn.opened_at,
                             true, activity.last, activity.download_rate, activity.upload_rate});
    }
  }
  if (inputs.peer_ids) plan.snapshot.peer_ids.push_back(view.pool().id_of(slot));
  plan.snapshot.peers.push_back(peer);
  plan.slots.push_back(slot);
  plan.generations.push_back(entry.generation);
}

Victims select(const Plan& plan, const std::vector<std::uint32_t>& order, std::size_t target,
               bool partial) {
  Victims victims;
  std::vector<bool> seen(plan.snapshot.peers.size(), false);
  std::size_t covered = 0;
  for (std::uint32_t index : order) {
    if (covered >= target) break;
    if (index >= plan.snapshot.peers.size() || seen[index]) continue;
    seen[index] = true;
    const std::size_t count = plan.snapshot.peers[index].connection_count;
    victims.peers.push_back(index);
    if (partial && covered + count > target) victims.last_partial = target - covered;
    covered += count;
  }
  return victims;
}

VictimSlots in_slot_order(const Plan& plan, const Victims& victims) {
  VictimSlots out;
  if (victims.peers.empty()) return out;
  const std::uint32_t partial_index = victims.last_partial != 0 ? victims.peers.back() : UINT32_MAX;
  // The plan lists candidates in slot order: marking the chosen ones and walking the plan
  // gives them in that order without sorting.
  std::vector<bool> chosen(plan.snapshot.peers.size(), false);
  for (std::uint32_t index : victims.peers) chosen[index] = true;
  out.slots.reserve(victims.peers.size());
  out.generations.reserve(victims.peers.size());
  for (std::uint32_t index = 0; index < chosen.size(); ++index) {
    if (!chosen[index]) continue;
    if (index == partial_index) {
      out.partial_slot = plan.slots[index];
      out.partial_count = victims.last_partial;
    }
    out.slots.push_back(plan.slots[index]);
    out.generations.push_back(plan.generations[index]);
  }
  return out;
}

}  // namespace dep2p::connmgr::detail
