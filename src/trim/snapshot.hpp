// A trim through a Trimmer's snapshot (docs/architecture.md, "A trim: plan, commit, act"):
// the plan copies the candidates out under the pool's lock, the trimmer ranks them with no
// lock held (it may be host code), and select() reads its order back into the peers to
// close, in slot order and with each slot's generation, so that the commit can skip a peer
// that went or was replaced meanwhile.
//
//   Plan plan;
//   view.for_each([&](auto slot, auto& entry) { add_candidate(plan, view, slot, entry, inputs); });
//   ... unlock; trimmer.rank(plan.snapshot, plan.target, order); lock ...
//   VictimSlots victims = in_slot_order(plan, select(plan, order, plan.target, exact));
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dep2p/connmgr/trimmer.hpp"
#include "trim/candidates.hpp"
#include "trim/victims.hpp"

namespace dep2p::connmgr::detail {

// A trim's view of the pool, taken under the lock and ranked outside it.
struct Plan {
  TrimSnapshot snapshot;
  // For snapshot.peers[i]: its slot and that slot's generation when the plan was made.
  std::vector<std::uint32_t> slots;
  std::vector<std::uint32_t> generations;
  std::size_t target = 0;
};

// Room for `peers` candidates holding `connections`, in the columns `inputs` asks for.
void reserve(Plan& plan, std::size_t peers, std::size_t connections, const TrimInputs& inputs);
// Copies candidate `slot` into the plan: its PeerSnapshot and the columns `inputs` asks for.
void add_candidate(Plan& plan, const CandidateView& view, std::uint32_t slot, const PeerSlot& entry,
                   const TrimInputs& inputs);

// The peers a trimmer's order chooses: taken in `order` (indices out of range or repeated
// are skipped) until they hold `target` connections. With `partial` the last one may give
// up only some: `last_partial` says how many (0: all).
struct Victims {
  std::vector<std::uint32_t> peers;  // indices into the plan
  std::size_t last_partial = 0;
};
Victims select(const Plan& plan, const std::vector<std::uint32_t>& order, std::size_t target,
               bool partial);
// The same peers as pool slots in ascending order, with the generations they had.
VictimSlots in_slot_order(const Plan& plan, const Victims& victims);

}  // namespace dep2p::connmgr::detail
