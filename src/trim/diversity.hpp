// The diversity rule (docs/eclipse.md): which of the candidates a trim must choose between
// go, when the default order cannot tell them apart by value. An attacker that holds many
// addresses of few networks and keeps its connections busy would otherwise keep every slot
// it takes; here, among peers of equal tag value, a few are kept for coming from distinct
// network groups (in an order salted with the node's secret), for the lowest keepalive
// RTT and for the longest connection, at most one per group and at most half of them, and
// the victims are then taken one at a time from the group that holds the most
// connections, each group's own members in the default order. A group's connections are
// counted over the equally valued candidates and the peers the trim may not take
// (protected, in their grace period: an attacker's fresh connections count against it);
// peers of a higher value are kept by their value and not counted. Values still decide first: a
// lower value goes before any diversity is considered, and protected or in-grace peers are never
// candidates.
//
//   const auto rule = DiversityRule::from(config.diversity, random_salt);  // nullopt: off
//   const std::size_t taken = take_diverse(view, *rule, tied, wanted, target, out);
//
// Thread safety: DiversityRule is a plain value; take_diverse() reads the pool under its
// owner's lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "base/siphash.hpp"
#include "dep2p/connmgr/config.hpp"
#include "net/netgroup.hpp"
#include "trim/candidates.hpp"
#include "trim/score_key.hpp"
#include "trim/victims.hpp"

namespace dep2p::connmgr::detail {

struct DiversityRule {
  GroupRule groups;
  SipKey salt;
  std::uint32_t group_slots = 0;
  std::uint32_t rtt_slots = 0;
  std::uint32_t age_slots = 0;
  std::uint32_t grace_per_group = 0;  // 0: no limit

  // The rule `config` asks for, or nullopt when it is off; `fallback_salt` is used when
  // the configuration gives none (the caller draws it from a random source).
  static std::optional<DiversityRule> from(const DiversityConfig& config,
                                           std::uint64_t fallback_salt);
};

// The network group of a connected peer: its first connection's remote address's.
// REQUIRES: !entry.conns.empty().
NetGroup peer_group(const Pool& pool, const PeerSlot& entry, const GroupRule& rule);

// The peers in their grace period that the rule's grace limit leaves unsheltered, flagged
// by slot: of each network group's unprotected connected peers in grace, all but the
// `grace_per_group` first connected (ties by id). Empty when none is, or there is no limit.
std::vector<std::uint8_t> unsheltered_in_grace(const Pool& pool, TimePoint now, Duration grace,
                                               const DiversityRule& rule);

// Orders `tied` (candidates of the trim's boundary, in any order) so that the ones that go
// come first, and returns how many go: every peer of a value below the value at which
// `wanted` connections are covered, then, among the peers of that value, the ones the rule
// chooses until `wanted` is covered (the last in part when `target.partial()`, noted in
// `out`). `others` says whether any connected peer is not a candidate (protected, in
// grace): only then is the pool walked to count them. REQUIRES: the pool's owner holds its
// lock.
std::size_t take_diverse(const CandidateView& view, const DiversityRule& rule,
                         std::vector<RankKey>& tied, std::size_t wanted, const TrimTarget& target,
                         bool others, VictimSlots& out);

}  // namespace dep2p::connmgr::detail
