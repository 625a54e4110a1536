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
  s.closure_reports = closure_reports_.load(std::memory_order_relaxed);
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
  const TimePoint now = env_.time->now();
  s.dial_attempts = dial_attempts_.load(std::memory_order_relaxed);
  s.dial_failures_offline = dial_.failures_offline();
  s.backoff_entries = dial_.table_size();
  s.peers_in_backoff = dial_.in_backoff(now);
  s.dials_in_flight = dial_.dials_in_flight(now);
  s.offline = dial_.offline();
  s.redials_queued = redial_.size();
  s.low_water = config_.low_water;
  s.high_water = config_.high_water;
  s.system_limits = config_.limits.system;
  // Counts by path and state, the RTT summary and histogram: one pass, only when asked.
  for (std::uint32_t slot = 0; slot < pool_.conn_slots(); ++slot) {
    const ConnEntry& conn = pool_.conn(slot);
    if (!conn.handle) continue;  // a free slot
    ++(conn.path == PathKind::relay ? s.relay : s.direct);
    ++(conn.closing ? s.closing : s.established);
    ++s.pooled_by_kind[Stats::pooled_index(conn.direction, conn.path, conn.closing)];
    if (conn.srtt == Duration::zero()) continue;  // no ping answered yet
    s.rtt.min = s.rtt.count == 0 ? conn.srtt : std::min(s.rtt.min, conn.srtt);
    s.rtt.max = std::max(s.rtt.max, conn.srtt);
    ++s.rtt.count;
    s.rtts.observe(conn.srtt);
  }
  if (s.rtt.count > 0) s.rtt.mean = s.rtts.sum / static_cast<Duration::rep>(s.rtt.count);
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
    Protection& out = e.protections.emplace_back();
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

// A host trimmer ranks a snapshot of every candidate with no lock held, as in a trim;
// with connections bound, the realm layer places the peer under the realm rules in that
// order (or the default one).
std::optional<std::size_t> ManagerCore::rank_in_force(const NodeId& peer,
                                                      std::optional<std::size_t> default_rank) {
  Plan plan;
  std::vector<std::uint32_t> order;
  std::optional<std::size_t> host_rank;
  if (!policies_.default_order) {
    std::size_t connections = 0;
    std::uint32_t peer_index = UINT32_MAX;
    bool realm_rules = false;
    {
      std::lock_guard lock(lock_);
      if (closed_) return std::nullopt;
      const TrimInputs& inputs = policies_.trim_inputs;
      plan.snapshot.now = env_.time->now();
      plan.snapshot.ordered = true;
      reserve(plan, pool_.peers(), pool_.counts().connections, inputs);
      const CandidateView view(pool_, decay_, plan.snapshot.now, config_.grace_period,
                               CandidateView::Mode::normal);
      const std::uint32_t peer_slot = pool_.find(peer);
      view.for_each([&](std::uint32_t slot, const PeerSlot& entry) {
        if (slot == peer_slot) peer_index = static_cast<std::uint32_t>(plan.slots.size());
        add_candidate(plan, view, slot, entry, inputs);
        connections += entry.conns.size();
      });
      if (policies_.open_extension != nullptr) {
        realm_rules =
            policies_.open_extension->describe_realms(Locked<>{}, pool_, plan.slots, plan.snapshot);
      }
    }
    if (peer_index == UINT32_MAX || !rank_snapshot(plan, connections, order)) return std::nullopt;
    std::vector<bool> seen(plan.slots.size(), false);
    std::size_t place = 0;
    for (const std::uint32_t index : order) {
      if (index >= plan.slots.size() || seen[index]) continue;
      seen[index] = true;
      ++place;
      if (index == peer_index) {
        host_rank = place;
        break;
      }
    }
    if (!realm_rules) return host_rank;
  }
  const std::optional<std::size_t> alone = policies_.default_order ? default_rank : host_rank;
  std::lock_guard lock(lock_);
  if (closed_) return std::nullopt;
  const std::uint32_t slot = pool_.find(peer);
  if (policies_.open_extension == nullptr || slot == kNoSlot) return alone;
  const std::vector<std::uint64_t> keys =
      policies_.default_order ? std::vector<std::uint64_t>{} : keys_of(plan, order);
  const CandidateView view(pool_, decay_, env_.time->now(), config_.grace_period,
                           CandidateView::Mode::normal);
  const std::optional<std::size_t> place =
      policies_.open_extension->place_of(Locked<>{}, view, keys, slot);
  if (!place) return alone;
  return *place == 0 ? std::nullopt : place;
}

}  // namespace dep2p::connmgr::detail
