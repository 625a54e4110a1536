// ManagerCore: trims (docs/design.md, "Trimming"): what starts one, who ranks it (the
// extension, the default order in place, or the host's trimmer through a snapshot), and
// the commit; the victims are closed by act() with no lock held.
#include <exception>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include "manager/core.hpp"
#include "trim/in_place.hpp"

namespace dep2p::connmgr::detail {
namespace {

TrimmedEvent::Kind event_kind(ManagerCore::TrimKind kind) {
  using TrimKind = ManagerCore::TrimKind;
  switch (kind) {
    case TrimKind::background: return TrimmedEvent::Kind::background;
    case TrimKind::explicit_trim: return TrimmedEvent::Kind::explicit_trim;
    case TrimKind::forced: return TrimmedEvent::Kind::forced;
    case TrimKind::exact_count: return TrimmedEvent::Kind::exact_count;
    case TrimKind::limits_changed: return TrimmedEvent::Kind::limits_changed;
  }
  return TrimmedEvent::Kind::explicit_trim;
}

// Takes the core's lock back, after the callers that waited for it while `lock` was let
// go (unlocked, still associated).
template <class Lockable>
void retake_after_waiters(std::unique_lock<Lockable>& lock) {
  Lockable& core = *lock.release();
  core.lock_after_waiters();
  lock = std::unique_lock<Lockable>(core, std::adopt_lock);
}

}  // namespace

void ManagerCore::arm_background_check() {
  std::chrono::milliseconds period;
  {
    std::lock_guard lock(lock_);
    if (closed_) return;
    period = config_.silence_period;
  }
  timers_.background->wait_until(env_.time->now() + period, [weak = weak_from_this()] {
    if (auto self = weak.lock()) {
      self->run_trim(TrimKind::background, 0);
      self->arm_background_check();
    }
  });
}

std::optional<VictimSlots> ManagerCore::rank_under_lock(const Locked<>& locked,
                                                        const CandidateView& view,
                                                        const TrimTarget& rule,
                                                        bool default_fallback, std::size_t& target,
                                                        std::span<const std::uint64_t> keys) {
  if (auto extension = policies_.extension.lock()) {
    // The extension ranks only when it has a say (connections bound to realms).
    if (auto victims = extension->rank(locked, view, rule, target, keys)) return victims;
  }
  if (!policies_.default_order && !default_fallback) return std::nullopt;
  // The diversity rule chooses among equals in the trims that keep the pool healthy; the
  // emergency trim sheds whole peers in its own order (docs/eclipse.md). Its grace limit
  // widens the candidates to the new peers their groups' grace does not shelter.
  if (!diversity_ || view.forced()) return rank_in_place(view, rule, target);
  const std::vector<std::uint8_t> exposed =
      unsheltered_in_grace(pool_, view.now(), config_.grace_period, *diversity_);
  if (exposed.empty()) return rank_in_place(view, rule, target, &*diversity_);
  return rank_in_place(view.exposing(exposed), rule, target, &*diversity_);
}

bool ManagerCore::rank_snapshot(const Plan& plan, std::size_t target,
                                std::vector<std::uint32_t>& order) {
  if (plan.snapshot.peers.empty() || target == 0) return true;
  try {
    policies_.trimmer->rank(plan.snapshot, target, order);
    return true;
  } catch (const std::exception& e) {
    env_.logger->error("connmgr: trimmer threw, trim aborted: {}", e.what());
  } catch (...) {
    env_.logger->error("connmgr: trimmer threw a non-standard exception, trim aborted");
  }
  return false;
}

// A trim through the trimmer's snapshot: plan under the lock, rank outside it (the
// trimmer may be host code), commit under it again. `lock` is held on entry and on return.
void ManagerCore::trim_with_snapshot(std::unique_lock<Lock>& lock, TrimKind kind,
                                     std::size_t exact_count, TimePoint now, std::size_t before,
                                     TrimOutcome& out) {
  const bool forced = kind == TrimKind::forced;
  const bool exact = kind == TrimKind::exact_count;
  const TrimInputs& inputs = policies_.trim_inputs;
  Plan unprotected;
  Plan protected_plan;
  unprotected.snapshot.now = now;
  protected_plan.snapshot.now = now;
  unprotected.snapshot.forced = forced;
  protected_plan.snapshot.forced = forced;
  reserve(unprotected, pool_.peers(), pool_.counts().connections, inputs);
  const Duration grace = config_.grace_period;
  std::size_t candidate_connections = 0;
  {
    using Mode = CandidateView::Mode;
    const CandidateView view(pool_, decay_, now, grace,
                             forced ? Mode::forced_unprotected : Mode::normal);
    view.for_each([&](std::uint32_t slot, const PeerSlot& entry) {
      add_candidate(unprotected, view, slot, entry, inputs);
      candidate_connections += entry.conns.size();
    });
    if (forced) {
      const CandidateView protected_view(pool_, decay_, now, grace, Mode::forced_protected);
      protected_view.for_each([&](std::uint32_t slot, const PeerSlot& entry) {
        add_candidate(protected_plan, protected_view, slot, entry, inputs);
      });
    }
  }
  // With connections bound to realms, the realm rules choose the victims, in the
  // trimmer's order: it sees the candidates' realms and is asked for the whole order.
  const std::shared_ptr<PoolExtension> extension = policies_.extension.lock();
  const bool realm_rules =
      extension &&
      extension->describe_realms(Locked<>{}, pool_, unprotected.slots, unprotected.snapshot);
  if (realm_rules && forced) {
    extension->describe_realms(Locked<>{}, pool_, protected_plan.slots, protected_plan.snapshot);
  }
  unprotected.snapshot.ordered = realm_rules;
  if (forced) {
    unprotected.target = pool_.counts().connections - config_.low_water;
    // Protected peers go only for what the unprotected ones cannot cover in the plan,
    // ranked for that shortfall alone: the trimmer's order need only be right within the
    // target it is given (the least valuable protected peers, not any of them).
    // Unprotected victims that change meanwhile, or connections added while the trimmer
    // runs, are never a reason to close a protected peer.
    protected_plan.target =
        unprotected.target > candidate_connections ? unprotected.target - candidate_connections : 0;
  } else {
    using Kind = TrimTarget::Kind;
    unprotected.target =
        TrimTarget{exact ? Kind::exact : Kind::watermark, exact_count, config_.low_water}.of(
            candidate_connections);
  }
  out.batch.detail = describe(kind, before, unprotected.target);
  lock.unlock();

  // Rank outside the lock: the trimmer is pluggable host code.
  std::vector<std::uint32_t> order;
  std::vector<std::uint32_t> protected_order;
  bool ok = rank_snapshot(
      unprotected,
      realm_rules && unprotected.target > 0 ? candidate_connections : unprotected.target, order);
  if (ok && forced) ok = rank_snapshot(protected_plan, protected_plan.target, protected_order);

  // Commit: apply the decisions to the pool (each victim checked against its generation).
  lock.lock();
  if (!ok || closed_) return;
  std::optional<VictimSlots> ruled;
  if (realm_rules && unprotected.target > 0)
    ruled = rank_by_order(now, kind, exact_count, unprotected, order);
  if (ruled) {
    commit_victims(lock, *ruled, false, out);
  } else {
    commit_victims(
        lock, in_slot_order(unprotected, select(unprotected, order, unprotected.target, exact)),
        false, out);
  }
  // The protected phase closes no more than the pool still holds above low water (less
  // than planned only if connections went meanwhile).
  const std::size_t count = pool_.counts().connections;
  if (!closed_ && protected_plan.target > 0 && count > config_.low_water) {
    const Victims more = select(protected_plan, protected_order,
                                std::min(protected_plan.target, count - config_.low_water), false);
    commit_victims(lock, in_slot_order(protected_plan, more), true, out);
  }
  count_trim(Locked<>{}, kind, out.closed, out.peers_closed);
}

// The realm rules' choice among the current candidates, ordered by the trimmer's `order`
// of the plan's (a peer gone or replaced since, or new, comes after every ranked one);
// nullopt when nothing is bound any more.
std::vector<std::uint64_t> ManagerCore::keys_of(const Plan& plan,
                                                const std::vector<std::uint32_t>& order) const {
  constexpr std::uint64_t kUnranked = UINT64_MAX;
  std::vector<std::uint64_t> keys(pool_.peer_slots(), kUnranked);
  for (std::size_t place = 0; place < order.size(); ++place) {
    const std::uint32_t index = order[place];
    if (index >= plan.slots.size()) continue;
    const std::uint32_t slot = plan.slots[index];
    if (slot < keys.size() && keys[slot] == kUnranked &&
        pool_.peer(slot).generation == plan.generations[index]) {
      keys[slot] = place;
    }
  }
  return keys;
}

std::optional<VictimSlots> ManagerCore::rank_by_order(TimePoint now, TrimKind kind,
                                                      std::size_t exact_count, const Plan& plan,
                                                      const std::vector<std::uint32_t>& order) {
  const std::vector<std::uint64_t> keys = keys_of(plan, order);
  using Mode = CandidateView::Mode;
  using Kind = TrimTarget::Kind;
  const std::size_t count = pool_.counts().connections;
  const TrimTarget rule =
      kind == TrimKind::forced
          ? TrimTarget{Kind::fixed, count > config_.low_water ? count - config_.low_water : 0, 0}
      : kind == TrimKind::exact_count ? TrimTarget{Kind::exact, exact_count, 0}
                                      : TrimTarget{Kind::watermark, 0, config_.low_water};
  const CandidateView view(pool_, decay_, now, config_.grace_period,
                           kind == TrimKind::forced ? Mode::forced_unprotected : Mode::normal);
  std::size_t target = 0;
  return rank_with_lanes_open(Locked<>{}, view, rule, false, target, keys);
}

// A trim that ran to its commit (not one whose trimmer threw) is counted, and announced
// after the DisconnectedEvents of its connections.
void ManagerCore::count_trim(const Locked<>&, TrimKind kind, std::size_t closed,
                             std::size_t peers_closed) {
  ++stats_.trims;
  if (closed > 0 && hub_.has_subscribers()) {
    hub_.enqueue(TrimmedEvent{event_kind(kind), peers_closed, closed, pool_.counts().connections});
  }
}

std::optional<std::size_t> ManagerCore::wait_for_turn(std::unique_lock<Lock>& lock, TrimKind kind) {
  if (closed_) return 0;
  if (!trim_.running) return std::nullopt;
  if (kind == TrimKind::background || kind == TrimKind::limits_changed) return 0;
  if (trim_.thread == std::this_thread::get_id()) return 0;  // called from inside a trim
  if (kind == TrimKind::explicit_trim) {
    // trim() joins the trim under way and reports what it closed.
    ++stats_.trims_joined;
    const std::uint64_t generation = trim_.generation;
    trim_.done.wait(lock, [&] { return trim_.generation != generation || closed_; });
    return closed_ ? 0 : trim_.last_closed;
  }
  // force_trim() and trim_connections() run after it, on the pool it left.
  trim_.done.wait(lock, [&] { return !trim_.running || closed_; });
  if (closed_) return 0;
  return std::nullopt;
}

bool ManagerCore::trim_needed(TrimKind kind, std::size_t exact_count, std::size_t count) const {
  const bool watermarks_on = config_.low_water != 0 && config_.high_water != 0;
  switch (kind) {
    case TrimKind::background:
    case TrimKind::limits_changed: return watermarks_on && count >= config_.high_water;
    case TrimKind::explicit_trim:
    case TrimKind::forced: return watermarks_on && count > config_.low_water;
    case TrimKind::exact_count: return exact_count != 0;
  }
  return false;
}

std::size_t ManagerCore::run_trim(TrimKind kind, std::size_t exact_count) {
  const TimePoint now = env_.time->now();
  std::unique_lock lock(lock_);
  if (auto result = wait_for_turn(lock, kind)) return *result;
  const std::size_t count = pool_.counts().connections;
  if (!trim_needed(kind, exact_count, count)) return 0;
  trim_.running = true;
  trim_.thread = std::this_thread::get_id();
  // The trim's duration, for Stats::trim_durations: from here to its last close. Only a
  // trim that ran to its commit (count_trim) is observed; trims never overlap, so the count
  // of trims tells.
  const TimePoint started = env_.time->now();
  const std::uint64_t trims_before = stats_.trims;
  // However the trim ends, the next one may run and the callers that joined wake up.
  struct Finish {
    ManagerCore& core;
    std::unique_lock<Lock>& lock;
    std::size_t closed = 0;
    std::optional<Duration> took;  // set once a counted trim has closed its victims
    ~Finish() {
      if (!lock.owns_lock()) lock.lock();
      if (took) core.stats_.trim_durations.observe(*took);
      core.trim_.running = false;
      core.trim_.thread = {};
      core.trim_.last_closed = closed;
      ++core.trim_.generation;
      lock.unlock();
      core.trim_.done.notify_all();
    }
  } finish{*this, lock, 0, std::nullopt};

  TrimOutcome outcome;
  outcome.batch.reason = kind == TrimKind::forced || kind == TrimKind::exact_count
                             ? CloseReason::forced_trim
                             : CloseReason::trimmed;
  // From the start of the ranking to the end of the commit, changes to peers are noted:
  // the commit keeps a peer that changed (docs/architecture.md, "Trims and concurrent
  // calls").
  watch_.active = true;
  watch_.changed.assign(pool_.peer_slots(), 0);
  if (!trim_in_place(lock, kind, exact_count, count, now, outcome)) {
    trim_with_snapshot(lock, kind, exact_count, now, count, outcome);
  }
  watch_.active = false;
  watch_.changed = {};
  const bool counted = stats_.trims != trims_before;
  lock.unlock();

  // Act: close the last victims, deliver events — all unlocked.
  act(outcome.batch);
  finish.closed = outcome.closed;
  if (counted) finish.took = env_.time->now() - started;
  if (outcome.closed > 0) {
    env_.logger->debug("connmgr: trim closed {} connections of {} peers", outcome.closed,
                       outcome.peers_closed);
  }
  return outcome.closed;
}

std::optional<VictimSlots> ManagerCore::rank_with_lanes_open(
    const Locked<>& locked, const CandidateView& view, const TrimTarget& rule,
    bool default_fallback, std::size_t& target, std::span<const std::uint64_t> keys) {
  lock_.open_lanes();
  std::optional<VictimSlots> victims =
      rank_under_lock(locked, view, rule, default_fallback, target, keys);
  if (trim_probe_) trim_probe_(TrimPoint::ranked);
  lock_.close_lanes();
  return victims;
}

void ManagerCore::commit_victims(std::unique_lock<Lock>& lock, const VictimSlots& victims,
                                 bool allow_protected, TrimOutcome& out) {
  const std::size_t n = victims.slots.size();
  // Released entries leave the peer index in one pass at the end (Pool::begin_batch),
  // however many times the lock is let go in between.
  pool_.begin_batch(n);
  for (std::size_t begin = 0; begin < n && !closed_;) {
    const std::size_t end = std::min(n, begin + trim_batch_);
    out.closed += close_victims(Locked<>{}, victims, begin, end, allow_protected, out.batch.reason,
                                out.batch.detail, out.batch.handles, out.peers_closed);
    begin = end;
    if (begin == n) break;
    // Let the node in: the calls waiting for the lock go first, and the victims so far
    // are closed now rather than at the end.
    lock.unlock();
    act(out.batch);
    if (trim_probe_) trim_probe_(TrimPoint::batch_committed);
    retake_after_waiters(lock);
  }
  // The released entries leave the peer index one part per critical section.
  while (!pool_.end_batch_step()) {
    lock.unlock();
    retake_after_waiters(lock);
  }
}

bool ManagerCore::trim_in_place(std::unique_lock<Lock>& lock, TrimKind kind,
                                std::size_t exact_count, std::size_t count, TimePoint now,
                                TrimOutcome& out) {
  const Locked<> locked;
  const bool forced = kind == TrimKind::forced;
  const bool exact = kind == TrimKind::exact_count;
  if (!exact) prune_temporary(locked, now);
  // A host's trimmer ranks through a snapshot, realms or not.
  if (!policies_.default_order) return false;
  using Mode = CandidateView::Mode;
  using Kind = TrimTarget::Kind;
  const TrimTarget rule = forced  ? TrimTarget{Kind::fixed, count - config_.low_water, 0}
                          : exact ? TrimTarget{Kind::exact, exact_count, 0}
                                  : TrimTarget{Kind::watermark, 0, config_.low_water};
  std::size_t target = 0;
  std::optional<VictimSlots> victims;
  {
    const CandidateView view(pool_, decay_, now, config_.grace_period,
                             forced ? Mode::forced_unprotected : Mode::normal);
    victims = rank_with_lanes_open(locked, view, rule, false, target);
  }
  if (!victims) return false;
  out.batch.detail = describe(kind, count, target);
  // What the unprotected victims cannot cover, as ranked: the protected phase's share.
  // Victims kept because they changed meanwhile, or connections added while the commit
  // lets go of the lock, are never a reason to close a protected peer.
  std::size_t shortfall = 0;
  if (forced) {
    std::size_t planned = 0;
    for (const std::uint32_t slot : victims->slots) planned += pool_.peer(slot).conns.size();
    shortfall = rule.count > planned ? rule.count - planned : 0;
  }
  commit_victims(lock, *victims, false, out);
  if (shortfall > 0 && !closed_ && pool_.counts().connections > config_.low_water) {
    // Protected peers, ranked among themselves for what the others could not cover.
    const CandidateView protected_view(pool_, decay_, now, config_.grace_period,
                                       Mode::forced_protected);
    const TrimTarget protected_rule{
        Kind::fixed, std::min(shortfall, pool_.counts().connections - config_.low_water), 0};
    std::size_t ignored = 0;
    if (auto more = rank_with_lanes_open(locked, protected_view, protected_rule, true, ignored)) {
      commit_victims(lock, *more, true, out);
    }
  }
  count_trim(locked, kind, out.closed, out.peers_closed);
  return true;
}

std::string ManagerCore::describe(TrimKind kind, std::size_t before, std::size_t target) const {
  const std::string pool =
      std::to_string(before) + " connections, low water " + std::to_string(config_.low_water);
  switch (kind) {
    case TrimKind::background:
      return "trimmed by the background check: " + pool + ", high water " +
             std::to_string(config_.high_water);
    case TrimKind::explicit_trim: return "trimmed on request: " + pool;
    case TrimKind::forced: return "force_trim: " + pool + ", grace ignored";
    case TrimKind::exact_count: return "trim_connections(" + std::to_string(target) + "): " + pool;
    case TrimKind::limits_changed:
      return "trimmed after the limits were lowered: " + pool + ", high water " +
             std::to_string(config_.high_water);
  }
  return pool;
}

std::error_code ManagerCore::set_limits(std::size_t low_water, std::size_t high_water) {
  bool schedule = false;
  {
    std::lock_guard lock(lock_);
    if (closed_) return Errc::closed;
    Config candidate = config_;
    candidate.low_water = low_water;
    candidate.high_water = high_water;
    if (auto error = candidate.validate()) return Errc::invalid_argument;
    config_ = candidate;
    schedule = high_water != 0 && low_water != 0 && pool_.counts().connections >= high_water;
  }
  if (schedule) {
    boost::asio::post(env_.strand, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->run_trim(TrimKind::limits_changed, 0);
    });
  }
  return {};
}

Config ManagerCore::config() const {
  std::lock_guard lock(lock_);
  return config_;
}

}  // namespace dep2p::connmgr::detail
