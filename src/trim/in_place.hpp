// The default order's victims, chosen on the pool itself rather than from a snapshot
// (docs/architecture.md, "A trim: plan, commit, act"). ScoreTrimmer is library code, so a
// trim with it need not copy the candidates out: one pass over the pool notes each slot's
// value key and connection count (5 bytes a slot), the value buckets find the value at
// which the target is reached, every candidate below it goes, and the ones at it are
// ordered by their full key and taken until the target is covered. The victims are exactly
// those ScoreTrimmer would rank from a snapshot; tests compare the two on random pools.
#pragma once

#include <cstddef>

#include "trim/candidates.hpp"
#include "trim/diversity.hpp"
#include "trim/victims.hpp"

namespace dep2p::connmgr::detail {

// The victims among `view`'s candidates, in slot order; `target` is set to the connections
// the rule asks for (the last peer may be taken in part only when `rule.partial()`). With
// `diversity`, the peers of the boundary value are chosen between by that rule
// (trim/diversity.hpp) instead of by their keys.
// REQUIRES: the pool's owner holds its lock until the victims are detached.
VictimSlots rank_in_place(const CandidateView& view, const TrimTarget& rule, std::size_t& target,
                          const DiversityRule* diversity = nullptr);

}  // namespace dep2p::connmgr::detail
