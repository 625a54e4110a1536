// ManagerCore: a trim's dry run (ConnectionManager::plan_trim()). It ranks the candidates
// exactly as trim() would now (the default order in place, the realm rules, or the host's
// trimmer through a snapshot ranked with no lock held) and reports the victims in the order
// the trim takes them, closing nothing and changing nothing: expired temporary entries are
// not pruned, no trim is counted, no event is published.
#include <algorithm>
#include <string>
#include <vector>

#include "manager/core.hpp"
#include "observe/observability.hpp"

namespace dep2p::connmgr::detail {
namespace {

// The texts, built with no lock held.
void describe_plan(TrimPlan& plan) {
  const std::string pool = std::to_string(plan.connections) + " connections, low water " +
                           std::to_string(plan.low_water);
  std::size_t closing = 0;
  for (PlannedVictim& v : plan.victims) {
    closing += v.connections;
    v.why = "rank " + std::to_string(v.rank) + " of " + std::to_string(plan.candidates) + ": " +
            describe_value(v.value, v.tags, v.decaying_tags) + ", " + std::to_string(v.streams) +
            (v.streams == 1 ? " stream" : " streams");
  }
  if (!plan.summary.empty()) return;  // why nothing would be closed, said already
  if (plan.victims.empty()) {
    plan.summary = "trim would close nothing: " + pool +
                   (plan.candidates == 0 ? ", no candidates" : ", the candidates are kept");
    return;
  }
  plan.summary = "trim would close " + std::to_string(closing) + " connections of " +
                 std::to_string(plan.victims.size()) + " peers: " + pool;
}

}  // namespace

TrimPlan ManagerCore::plan_trim() {
  TrimPlan out;
  const TimePoint now = env_.time->now();
  using Mode = CandidateView::Mode;
  const TrimTarget rule{TrimTarget::Kind::watermark, 0, config_.low_water};
  // The host's trimmer, when one is installed, ranks a snapshot with no lock held.
  Plan plan;
  std::vector<std::uint32_t> order;
  bool realm_rules = false;
  std::size_t candidate_connections = 0;
  std::unique_lock lock(lock_);
  out.at = now;
  out.connections = pool_.counts().connections;
  out.low_water = config_.low_water;
  if (closed_) {
    out.summary = "trim would close nothing: the manager is closed";
    return out;
  }
  if (!trim_needed(TrimKind::explicit_trim, 0, out.connections)) {
    out.summary = config_.low_water == 0 || config_.high_water == 0
                      ? "trim would close nothing: trimming is off (a watermark is 0)"
                      : "trim would close nothing: " + std::to_string(out.connections) +
                            " connections, at or below low water " +
                            std::to_string(config_.low_water);
    return out;
  }
  if (!policies_.default_order) {
    const TrimInputs& inputs = policies_.trim_inputs;
    plan.snapshot.now = now;
    reserve(plan, pool_.peers(), pool_.counts().connections, inputs);
    {
      const CandidateView view(pool_, decay_, now, config_.grace_period, Mode::normal);
      view.for_each([&](std::uint32_t slot, const PeerSlot& entry) {
        add_candidate(plan, view, slot, entry, inputs);
        candidate_connections += entry.conns.size();
      });
    }
    const std::shared_ptr<PoolExtension> extension = policies_.extension.lock();
    realm_rules =
        extension && extension->describe_realms(Locked<>{}, pool_, plan.slots, plan.snapshot);
    plan.snapshot.ordered = realm_rules;
    plan.target = rule.of(candidate_connections);
    lock.unlock();
    const bool ranked = rank_snapshot(
        plan, realm_rules && plan.target > 0 ? candidate_connections : plan.target, order);
    lock.lock();
    if (!ranked || closed_) {
      out.summary = closed_ ? "trim would close nothing: the manager is closed"
                            : "trim would close nothing: the trimmer threw";
      return out;
    }
  }

  // The victims' slots in the order the trim takes them.
  std::vector<std::uint32_t> chosen;
  const CandidateView view(pool_, decay_, now, config_.grace_period, Mode::normal);
  view.for_each([&](std::uint32_t, const PeerSlot&) { ++out.candidates; });
  if (policies_.default_order || realm_rules) {
    std::vector<std::uint64_t> keys;
    if (realm_rules) keys = keys_of(plan, order);
    std::size_t target = 0;
    const std::optional<VictimSlots> victims =
        policies_.default_order ? rank_under_lock(Locked<>{}, view, rule, true, target)
                                : rank_under_lock(Locked<>{}, view, rule, false, target, keys);
    out.target = target;
    if (victims) chosen = victims->slots;
    // The realm rules take victims in the trimmer's order, the default order in its keys'.
    if (realm_rules) {
      std::stable_sort(chosen.begin(), chosen.end(),
                       [&](std::uint32_t a, std::uint32_t b) { return keys[a] < keys[b]; });
    } else {
      std::stable_sort(chosen.begin(), chosen.end(),
                       [&](std::uint32_t a, std::uint32_t b) { return view.key(a) < view.key(b); });
    }
  } else {
    out.target = plan.target;
    for (const std::uint32_t index : select(plan, order, plan.target, false).peers) {
      const std::uint32_t slot = plan.slots[index];
      // A peer that went or was replaced while the trimmer ranked is not a victim now.
      const PeerSlot& entry = pool_.peer(slot);
      if (entry.live && entry.generation == plan.generations[index] && !entry.conns.empty()) {
        chosen.push_back(slot);
      }
    }
  }

  for (const std::uint32_t slot : chosen) {
    const PeerSlot& entry = pool_.peer(slot);
    PlannedVictim& v = out.victims.emplace_back(PlannedVictim{.peer = pool_.id_of(slot)});
    v.rank = out.victims.size();
    v.connections = entry.conns.size();
    for (const std::uint32_t c : entry.conns) v.streams += pool_.conn(c).streams();
    v.value = value_of(entry);
    v.tags = entry.tags.list(tag_names_);
    v.decaying_tags = decay_.list(entry.decay);
  }
  lock.unlock();
  describe_plan(out);
  return out;
}

}  // namespace dep2p::connmgr::detail
