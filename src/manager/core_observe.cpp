// ManagerCore: read-only views of the pool (docs/design.md, "Observability"), each taken in
// one short critical section; the text is built after the lock is released.
#include "manager/core.hpp"

namespace dep2p::connmgr::detail {

Stats ManagerCore::stats() const {
  std::lock_guard lock(lock_);
  const Locked<> locked;
  Stats s = stats_;
  for (std::size_t r = 0; r < kRefusalReasonCount; ++r) {
    s.refusals_by_reason[r] = refusals_[r].load(std::memory_order_relaxed);
  }
  const PoolCounts& counts = pool_.counts();
  s.duplicate_reports = unknown_reports_.load(std::memory_order_relaxed);
  s.connections = counts.connections;
  s.inbound = counts.inbound;
  s.outbound = counts.outbound;
  s.peers = pool_.peers() - counts.temporary;
  s.temporary_peers = counts.temporary;
  s.protected_peers = protections_.size();
  const std::array<std::size_t, 2> streams = stream_totals(locked);
  s.streams = streams[0] + streams[1];
  s.pending_inbound = ledger_.pending(Direction::inbound);
  s.pending_outbound = ledger_.pending(Direction::outbound);
  s.reservations = ledger_.reservations();
  s.memory_reserved = ledger_.memory();
  s.fds_reserved = ledger_.fds();
  s.capped_addresses = caps_.tracked();
  // Counts by path and state and the RTT summary: one pass, only when asked.
  Duration rtt_sum{};
  for (std::uint32_t slot = 0; slot < pool_.conn_slots(); ++slot) {
    const ConnEntry& conn = pool_.conn(slot);
    if (!conn.handle) continue;  // a free slot
    ++(conn.path == PathKind::relay ? s.relay : s.direct);
    ++(conn.closing ? s.closing : s.established);
    if (conn.srtt == Duration::zero()) continue;  // no ping answered yet
    s.rtt.min = s.rtt.count == 0 ? conn.srtt : std::min(s.rtt.min, conn.srtt);
    s.rtt.max = std::max(s.rtt.max, conn.srtt);
    rtt_sum += conn.srtt;
    ++s.rtt.count;
  }
  if (s.rtt.count > 0) s.rtt.mean = rtt_sum / static_cast<Duration::rep>(s.rtt.count);
  for (const auto& [key, pending] : pending_.entries) {
    ++(pending.state == ConnectionState::dialing ? s.dialing : s.handshaking);
  }
  return s;
}

// explain() without its summary (built by the caller, unlocked). The rank counts the
// candidates ahead of the peer under the default key; a trim indexes candidates in slot
// order, so the slot is an equivalent last tie-break. O(peers) under the lock.
std::optional<Explanation> ManagerCore::explain(const NodeId& peer) const {
  const TimePoint now = env_.time->now();
  std::lock_guard lock(lock_);
  const std::uint32_t entry_slot = pool_.find(peer);
  if (entry_slot == kNoSlot) return std::nullopt;
  const PeerSlot& entry = pool_.peer(entry_slot);
  const CandidateView view(pool_, decay_, now, config_.grace_period, CandidateView::Mode::normal);
  Explanation e{.peer = peer};
  e.at = now;
  e.temporary = entry.temporary;
  for (std::uint32_t c : entry.conns) {
    const ConnEntry& conn = pool_.conn(c);
    ConnectionExplanation& out = e.connections.emplace_back();
    out.id = conn.id;
    out.direction = conn.direction;
    out.path = conn.path;
    out.state = conn.closing ? ConnectionState::closing : ConnectionState::established;
    out.streams = conn.streams();
    if (conn.srtt != Duration::zero()) out.rtt = conn.srtt;
    out.best = entry.best == c;
  }
  for (auto& [tag, until] : protections_.protections_until(peer)) {
    ProtectionExplanation& out = e.protections.emplace_back();
    out.tag = std::move(tag);
    if (until != ProtectTable::kForever) out.until = until;
  }
  if (entry.temporary) {
    // A protected entry has no end until its protection ends.
    if (!entry.is_protected) e.expires_at = expiries_.end_of(entry_slot);
  } else if (!view.out_of_grace(entry_slot)) {
    e.grace_until = pool_.cold(entry_slot).first_seen + config_.grace_period;
  }
  e.value = value_of(entry);
  e.tags = entry.tags.list(tag_names_);
  e.decaying_tags = decay_.list(entry.decay);
  const bool candidate = view.is_candidate(entry_slot, entry);
  if (!candidate) {
    e.not_candidate = entry.temporary      ? NotCandidateReason::temporary
                      : entry.is_protected ? NotCandidateReason::protection
                                           : NotCandidateReason::in_grace;
  }
  const RankKey key = view.key(entry_slot);
  std::size_t ahead = 0;
  view.for_each([&](std::uint32_t slot, const PeerSlot&) {
    ++e.candidates;
    if (candidate && view.key(slot) < key) ++ahead;
  });
  if (candidate) e.rank = ahead + 1;
  return e;
}

}  // namespace dep2p::connmgr::detail
