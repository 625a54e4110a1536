// ManagerCore: tags, decaying tags, protections and the lifetime of temporary entries
// (docs/design.md, "Pool and tags" and "Protection"). Host functions (upsert functions,
// custom decays and bumps) run unlocked; their results are applied where the value did
// not move meanwhile.
#include <exception>

#include <spdlog/spdlog.h>

#include "manager/core.hpp"

namespace dep2p::connmgr::detail {

// The slot for tagging `peer`, creating a temporary entry if needed; kNoSlot, with `ec`
// set, when no entry can be created. The clock is read only when an entry is created.
std::uint32_t ManagerCore::tagging_slot(const Locked<>& locked, const NodeId& peer,
                                        std::error_code& ec) {
  if (const std::uint32_t slot = pool_.find(peer); slot != kNoSlot) return slot;
  if (pool_.counts().temporary >= config_.max_temp_peers) {
    ec = Errc::temp_peer_limit;
    return kNoSlot;
  }
  const TimePoint now = env_.time->now();
  const bool is_protected = protections_.size() != 0 && protections_.is_protected(peer);
  const std::uint32_t slot = pool_.add_peer(peer, now, true, is_protected);
  schedule_expiry(locked, slot, now + temp_lifetime());
  return slot;
}

// Sets a plain tag and stamps the change (see TagVersion).
void ManagerCore::set_tag(const Locked<>&, std::uint32_t slot, std::string_view name, int value) {
  pool_.peer(slot).tags.set(tag_names_, tag_names_.intern(name), value);
  tags_changed(slot);
}

std::optional<std::uint32_t> ManagerCore::known_name(const LaneGuard& lane, std::string_view name) {
  // Hosts use a handful of names over and over: the lane's last one skips the string hash.
  // An id forgotten since names nothing (an empty name, never asked for) or another name.
  std::uint32_t& last = lane.lane().last_name;
  if (last != UINT32_MAX && tag_names_.name(last) == name) return last;
  const std::optional<std::uint32_t> id = tag_names_.find(name);
  if (id) last = *id;
  return id;
}

bool ManagerCore::set_tag_in_lane(const LaneGuard& lane, std::uint32_t slot, std::string_view name,
                                  int value) {
  const std::optional<std::uint32_t> id = known_name(lane, name);
  if (!id) return false;
  const PeerLock peer(pool_.peer(slot));
  pool_.peer(slot).tags.set<true>(tag_names_, *id, value);
  tags_changed(slot);
  return true;
}

std::error_code ManagerCore::tag_peer(const NodeId& peer, std::string_view name, int value) {
  if (name.empty()) return Errc::invalid_argument;
  {
    const LaneGuard lane(*this);
    if (closed_) return Errc::closed;
    const std::uint32_t slot = pool_.find(peer);
    if (slot != kNoSlot && set_tag_in_lane(lane, slot, name, value)) return {};
  }
  // A peer without an entry, or a name not known yet.
  std::lock_guard lock(lock_);
  const Locked<> locked;
  if (closed_) return Errc::closed;
  std::error_code ec;
  const std::uint32_t slot = tagging_slot(locked, peer, ec);
  if (slot == kNoSlot) return ec;
  set_tag(locked, slot, name, value);
  return {};
}

std::error_code ManagerCore::untag_peer(const NodeId& peer, std::string_view name) {
  {
    const LaneGuard lane(*this);
    if (closed_) return Errc::closed;
    const std::uint32_t slot = pool_.find(peer);
    if (slot == kNoSlot) return Errc::unknown_peer;
    const std::optional<std::uint32_t> id = known_name(lane, name);
    if (!id) return {};
    PeerSlot& entry = pool_.peer(slot);
    const PeerLock locked_peer(entry);
    // A temporary entry left without tags goes, which takes the whole lock.
    const bool may_empty = entry.temporary && entry.decay == kNoDecaySet && entry.tags.size() <= 1;
    if (!may_empty) {
      switch (entry.tags.remove_shared(tag_names_, *id)) {
        case PeerTags::Removal::absent: return {};
        case PeerTags::Removal::removed: tags_changed(slot); return {};
        case PeerTags::Removal::needs_whole: break;
      }
    }
  }
  std::lock_guard lock(lock_);
  const Locked<> locked;
  if (closed_) return Errc::closed;
  const std::uint32_t slot = pool_.find(peer);
  if (slot == kNoSlot) return Errc::unknown_peer;
  if (auto id = tag_names_.find(name)) {
    if (pool_.peer(slot).tags.remove(tag_names_, *id)) {
      tags_changed(slot);
    }
  }
  release_if_empty_temporary(locked, slot);
  return {};
}

std::error_code ManagerCore::upsert_tag(const NodeId& peer, std::string_view name,
                                        const std::function<int(int)>& fn) {
  if (name.empty() || !fn) return Errc::invalid_argument;
  for (;;) {
    int old = 0;
    TagVersion seen;
    {
      const LaneGuard lane(*this);
      if (closed_) return Errc::closed;
      if (const std::uint32_t slot = pool_.find(peer); slot != kNoSlot) {
        const PeerLock locked_peer(pool_.peer(slot));
        seen = tag_version(slot);
        if (auto id = known_name(lane, name)) old = pool_.peer(slot).tags.get(*id).value_or(0);
      }
    }
    const int value = fn(old);  // host code: unlocked
    {
      const LaneGuard lane(*this);
      if (closed_) return Errc::closed;
      const std::uint32_t slot = pool_.find(peer);
      if (slot != kNoSlot) {
        if (const std::optional<std::uint32_t> id = known_name(lane, name)) {
          const PeerLock locked_peer(pool_.peer(slot));
          if (!(tag_version(slot) == seen)) continue;  // changed meanwhile: recompute
          pool_.peer(slot).tags.set<true>(tag_names_, *id, value);
          tags_changed(slot);
          return {};
        }
      }
    }
    std::lock_guard lock(lock_);
    const Locked<> locked;
    if (closed_) return Errc::closed;
    if (!(tag_version(pool_.find(peer)) == seen)) {
      continue;  // this peer's tags changed meanwhile: recompute from the new value
    }
    std::error_code ec;
    const std::uint32_t slot = tagging_slot(locked, peer, ec);
    if (slot == kNoSlot) return ec;
    set_tag(locked, slot, name, value);
    return {};
  }
}

std::optional<TagInfo> ManagerCore::tag_info(const NodeId& peer) const {
  const LaneGuard lane(*this);
  const std::uint32_t slot = pool_.find(peer);
  if (slot == kNoSlot) return std::nullopt;
  const PeerSlot& entry = pool_.peer(slot);
  const PeerLock locked_peer(entry);
  return TagInfo{pool_.cold(slot).first_seen, value_of(entry),    entry.tags.list(tag_names_),
                 decay_.list(entry.decay),    entry.conns.size(), entry.temporary};
}

// --- Decaying tags ----------------------------------------------------------------------

DecayingTag ManagerCore::register_decaying_tag(std::string_view name, Duration interval,
                                               Decay decay, Bump bump, std::error_code& ec) {
  ec.clear();
  if (name.empty() || interval.count() <= 0) {
    ec = Errc::invalid_argument;
    return {};
  }
  const TimePoint now = env_.time->now();
  std::lock_guard lock(lock_);
  if (closed_) {
    ec = Errc::closed;
    return {};
  }
  const Duration final_interval = std::max<Duration>(interval, config_.decay_resolution);
  const auto registered =
      decay_.register_tag(name, final_interval, std::move(decay), std::move(bump), now);
  if (!registered) {
    ec = Errc::tag_exists;
    return {};
  }
  return DecayingTag(TokenKey{}, std::weak_ptr<DecayingTagOwner>(shared_from_this()),
                     registered->id, registered->generation, std::string(name), final_interval);
}

std::error_code ManagerCore::bump_decaying(std::uint32_t tag, std::uint64_t generation,
                                           const NodeId& peer, int delta) {
  for (;;) {
    DecayingValue current;
    std::optional<std::uint32_t> seen;  // the entry's version, if the peer holds the tag
    Bump bump = Bump::sum();
    {
      std::lock_guard lock(lock_);
      const Locked<> locked;
      if (closed_) return Errc::closed;
      const DecayEngine::Definition* def = decay_.open(tag, generation);
      if (def == nullptr) return Errc::tag_closed;
      const TimePoint now = env_.time->now();
      current = DecayingValue{0, now, now, now};
      std::uint32_t slot = pool_.find(peer);
      if (const auto* d = slot != kNoSlot ? decay_.find(pool_.peer(slot).decay, tag) : nullptr) {
        current = DecayingValue{d->value, d->added, d->last_visit, now};
        seen = d->version;
      }
      if (!def->bump.is_custom()) {
        // Built-in arithmetic: apply it here, under the lock.
        std::error_code ec;
        if (slot == kNoSlot) slot = tagging_slot(locked, peer, ec);
        if (slot == kNoSlot) return ec;
        decay_.set(pool_.peer(slot).decay, tag, def->bump.apply(current, delta), now);
        note_change(slot);
        return {};
      }
      bump = def->bump;
    }
    int value;
    try {
      value = bump.apply(current, delta);  // the host's function: unlocked
    } catch (const std::exception& e) {
      env_.logger->warn("connmgr: bump function of a decaying tag threw: {}", e.what());
      return Errc::invalid_argument;
    } catch (...) {
      env_.logger->warn("connmgr: bump function of a decaying tag threw");
      return Errc::invalid_argument;
    }
    std::lock_guard lock(lock_);
    const Locked<> locked;
    if (closed_) return Errc::closed;
    if (decay_.open(tag, generation) == nullptr) return Errc::tag_closed;
    std::uint32_t slot = pool_.find(peer);
    const auto* d = slot != kNoSlot ? decay_.find(pool_.peer(slot).decay, tag) : nullptr;
    const std::optional<std::uint32_t> now_seen =
        d != nullptr ? std::optional<std::uint32_t>(d->version) : std::nullopt;
    if (now_seen != seen) continue;  // bumped meanwhile: apply the function again
    std::error_code ec;
    if (slot == kNoSlot) slot = tagging_slot(locked, peer, ec);
    if (slot == kNoSlot) return ec;
    decay_.set(pool_.peer(slot).decay, tag, value, env_.time->now());
    note_change(slot);
    return {};
  }
}

std::error_code ManagerCore::remove_decaying(std::uint32_t tag, std::uint64_t generation,
                                             const NodeId& peer) {
  std::lock_guard lock(lock_);
  const Locked<> locked;
  if (closed_) return Errc::closed;
  if (decay_.open(tag, generation) == nullptr) return Errc::tag_closed;
  const std::uint32_t slot = pool_.find(peer);
  if (slot == kNoSlot || !decay_.erase(pool_.peer(slot).decay, tag)) return Errc::unknown_peer;
  note_change(slot);
  release_if_empty_temporary(locked, slot);
  return {};
}

void ManagerCore::close_decaying(std::uint32_t tag, std::uint64_t generation) {
  std::lock_guard lock(lock_);
  const Locked<> locked;
  if (!decay_.close(tag, generation)) return;  // closed already: fine
  for (std::uint32_t slot = 0; slot < pool_.peer_slots(); ++slot) {
    PeerSlot& entry = pool_.peer(slot);
    if (!entry.live || entry.decay == kNoDecaySet) continue;
    decay_.erase(entry.decay, tag);
    release_if_empty_temporary(locked, slot);
  }
}

void ManagerCore::arm_decay_tick() {
  Duration resolution;
  {
    std::lock_guard lock(lock_);
    if (closed_) return;
    resolution = config_.decay_resolution;
  }
  timers_.decay->wait_until(env_.time->now() + resolution, [weak = weak_from_this()] {
    if (auto self = weak.lock()) {
      self->decay_tick();
      self->arm_decay_tick();
    }
  });
}

// One tick: every tag whose interval has come decays once on every peer holding it.
// Custom decay functions are host code: they run unlocked, and each result is applied
// only where the value did not move meanwhile (a concurrent bump wins that interval).
void ManagerCore::decay_tick() {
  const TimePoint now = env_.time->now();
  std::vector<DecayEngine::CustomWork> custom;
  std::vector<Decay> custom_decay;  // by tag, for the custom ones
  {
    std::lock_guard lock(lock_);
    const Locked<> locked;
    if (closed_) return;
    DecayEngine::DueTags due;
    if (!decay_.begin_tick(now, due)) return;
    ++stats_.decay_ticks;
    for (std::uint32_t slot = 0; slot < pool_.peer_slots(); ++slot) {
      PeerSlot& entry = pool_.peer(slot);
      if (!entry.live || entry.decay == kNoDecaySet) continue;
      decay_.tick_set(entry.decay, due, now, slot, entry.generation, custom);
      release_if_empty_temporary(locked, slot);
    }
    if (custom.empty()) return;
    custom_decay = decay_.decays();
  }
  for (DecayEngine::CustomWork& work : custom) {
    try {
      work.result = custom_decay[work.tag].apply(work.value);
    } catch (const std::exception& e) {
      env_.logger->warn("connmgr: decay function threw, value kept: {}", e.what());
      work.result = DecayResult{work.value.value, false};
    } catch (...) {
      env_.logger->warn("connmgr: decay function threw, value kept");
      work.result = DecayResult{work.value.value, false};
    }
  }
  std::lock_guard lock(lock_);
  const Locked<> locked;
  if (closed_) return;
  for (const DecayEngine::CustomWork& work : custom) {
    PeerSlot& entry = pool_.peer(work.slot);
    if (!entry.live || entry.generation != work.generation || entry.decay == kNoDecaySet) {
      continue;
    }
    decay_.apply_custom(entry.decay, work);
    release_if_empty_temporary(locked, work.slot);
  }
}

// --- Protection -------------------------------------------------------------------------

std::error_code ManagerCore::protect(const NodeId& peer, std::string_view tag, Duration duration) {
  if (tag.empty()) return Errc::invalid_argument;
  const bool timed = duration.count() > 0;
  std::lock_guard lock(lock_);
  const Locked<> locked;
  if (closed_) return Errc::closed;
  const TimePoint until = timed ? env_.time->now() + duration : ProtectTable::kForever;
  const auto outcome = protections_.protect(peer, tag, until, config_.max_peers_per_protection_tag);
  if (outcome == ProtectTable::Outcome::over_cap) return Errc::protection_limit;
  if (const std::uint32_t slot = pool_.find(peer); slot != kNoSlot) {
    pool_.peer(slot).is_protected = true;
    note_change(slot);
  }
  if (timed) arm_housekeeping(locked, until);
  return {};
}

bool ManagerCore::unprotect(const NodeId& peer, std::string_view tag) {
  std::lock_guard lock(lock_);
  const Locked<> locked;
  const bool still = protections_.unprotect(peer, tag);
  if (!still) lose_protection(locked, peer, env_.time->now());
  return still;
}

bool ManagerCore::is_protected(const NodeId& peer, std::optional<std::string_view> tag) const {
  // The protection table changes only under the whole lock: a lane holder reads it.
  const LaneGuard lane(*this);
  return tag ? protections_.is_protected(peer, *tag) : protections_.is_protected(peer);
}

std::vector<Protection> ManagerCore::protections(const NodeId& peer) const {
  const LaneGuard lane(*this);
  std::vector<Protection> out;
  for (auto& [tag, until] : protections_.protections_until(peer)) {
    Protection& p = out.emplace_back();
    p.tag = std::move(tag);
    if (until != ProtectTable::kForever) p.until = until;
  }
  return out;
}

// The peer's last protection ended. A temporary entry of it, which could not expire while
// protected, lives one more temporary lifetime from now (or to its own end, if later).
void ManagerCore::lose_protection(const Locked<>& locked, const NodeId& peer, TimePoint now) {
  const std::uint32_t slot = pool_.find(peer);
  if (slot == kNoSlot) return;
  PeerSlot& entry = pool_.peer(slot);
  if (!entry.is_protected) return;  // was not protected (an unprotect of nothing)
  entry.is_protected = false;
  if (entry.temporary) {
    schedule_expiry(locked, slot, std::max(expiries_.end_of(slot), now + temp_lifetime()));
  }
}

// --- Expiry of temporary entries and timed protections --------------------------------

void ManagerCore::schedule_expiry(const Locked<>& locked, std::uint32_t slot, TimePoint at) {
  expiries_.schedule(slot, pool_.peer(slot).generation, at);
  arm_housekeeping(locked, at);
}

// Arms the housekeeping timer for `at` unless it is already due earlier.
void ManagerCore::arm_housekeeping(const Locked<>&, TimePoint at) {
  if (closed_ || (timers_.housekeeping_armed && timers_.housekeeping_at <= at)) return;
  timers_.housekeeping_armed = true;
  timers_.housekeeping_at = at;
  timers_.housekeeping->wait_until(at, [weak = weak_from_this()] {
    if (auto self = weak.lock()) self->housekeeping();
  });
}

void ManagerCore::housekeeping() {
  const TimePoint now = env_.time->now();
  Effects effects;
  {
    std::lock_guard lock(lock_);
    const Locked<> locked;
    timers_.housekeeping_armed = false;
    if (closed_) return;
    while (auto due = expiries_.pop_due(now)) {
      const PeerSlot& entry = pool_.peer(due->slot);
      // A protected entry does not expire: its lifetime starts again when its protection
      // ends (lose_protection).
      if (entry.live && entry.temporary && !entry.is_protected &&
          entry.generation == due->generation) {
        release_peer(locked, due->slot);
        ++stats_.temporary_peers_pruned;
      }
    }
    for (const NodeId& peer : protections_.expire(now)) {
      ++stats_.protections_expired;
      lose_protection(locked, peer, now);
    }
    TimePoint next = std::min(protections_.next_expiry(), expiries_.next());
    // Dials in flight that somebody waits on lapse here too.
    if (auto lapse = dial_.lapse_waited(now)) next = std::min(next, *lapse);
    post_dial_waiters(locked);
    if (next != ProtectTable::kForever) arm_housekeeping(locked, next);
    pump_redials(locked, now, effects);  // arms housekeeping for its own next wake
  }
  act(effects);
}

// Deletes the temporary entries that are past their end and not protected (a forced trim
// too: an entry holds no connection, so deleting one frees nothing an emergency needs, and
// loses tags set before a dial completed).
void ManagerCore::prune_temporary(const Locked<>& locked, TimePoint now) {
  if (pool_.counts().temporary == 0) return;
  for (std::uint32_t slot = 0; slot < pool_.peer_slots(); ++slot) {
    const PeerSlot& entry = pool_.peer(slot);
    if (entry.live && entry.temporary && !entry.is_protected && now >= expiries_.end_of(slot)) {
      release_peer(locked, slot);
      ++stats_.temporary_peers_pruned;
    }
  }
}

}  // namespace dep2p::connmgr::detail
