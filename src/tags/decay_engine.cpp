#include "tags/decay_engine.hpp"

namespace dep2p::connmgr::detail {

std::optional<DecayEngine::Registered> DecayEngine::register_tag(std::string_view name,
                                                                 Duration interval, Decay decay,
                                                                 Bump bump, TimePoint now) {
  auto free_id = static_cast<std::uint32_t>(defs_.size());
  for (std::uint32_t id = 0; id < defs_.size(); ++id) {
    if (defs_[id].open && defs_[id].name == name) return std::nullopt;
    if (!defs_[id].open && free_id == defs_.size()) free_id = id;
  }
  if (free_id == defs_.size()) defs_.emplace_back();
  Definition& def = defs_[free_id];
  def.name = std::string(name);
  def.interval = interval;
  def.next_tick = now + interval;
  def.decay = std::move(decay);
  def.bump = std::move(bump);
  def.generation = ++last_generation_;
  def.open = true;
  return Registered{free_id, def.generation};
}

bool DecayEngine::close(std::uint32_t tag, std::uint64_t generation) {
  if (open(tag, generation) == nullptr) return false;
  defs_[tag].open = false;
  return true;
}

void DecayEngine::set(std::uint32_t& set, std::uint32_t tag, int value, TimePoint now) {
  if (Entry* e = find(set, tag)) {
    sets_[set].sum += static_cast<std::int64_t>(value) - e->value;
    e->value = value;
    e->last_visit = now;
    ++e->version;
    return;
  }
  if (set == kNoDecaySet) {
    if (free_sets_.empty()) {
      set = static_cast<std::uint32_t>(sets_.size());
      sets_.emplace_back();
    } else {
      set = free_sets_.back();
      free_sets_.pop_back();
    }
  }
  Set& s = sets_[set];
  s.entries.push_back(Entry{tag, 1, value, now, now});
  s.sum += value;
}

bool DecayEngine::erase(std::uint32_t& set, std::uint32_t tag) {
  if (set == kNoDecaySet) return false;
  Set& s = sets_[set];
  for (auto it = s.entries.begin(); it != s.entries.end(); ++it) {
    if (it->tag == tag) {
      s.sum -= it->value;
      s.entries.erase(it);
      settle(set);
      return true;
    }
  }
  return false;
}

void DecayEngine::drop_set(std::uint32_t& set) {
  sets_[set] = Set{};
  free_sets_.push_back(set);
  set = kNoDecaySet;
}

void DecayEngine::settle(std::uint32_t& set) {
  if (set != kNoDecaySet && sets_[set].entries.empty()) drop(set);
}

std::vector<std::pair<std::string, int>> DecayEngine::list(std::uint32_t set) const {
  std::vector<std::pair<std::string, int>> out;
  if (set == kNoDecaySet) return out;
  for (const Entry& e : sets_[set].entries) out.emplace_back(defs_[e.tag].name, e.value);
  return out;
}

bool DecayEngine::begin_tick(TimePoint now, DueTags& due) {
  due.assign(defs_.size(), 0);
  bool any = false;
  for (std::uint32_t id = 0; id < defs_.size(); ++id) {
    Definition& def = defs_[id];
    if (!def.open || def.next_tick > now) continue;
    due[id] = def.decay.is_custom() ? 2 : 1;
    def.next_tick += def.interval;
    any = true;
  }
  return any;
}

void DecayEngine::apply(Set& set, std::size_t index, const DecayResult& result) {
  Entry& e = set.entries[index];
  if (result.remove) {
    set.sum -= e.value;
    set.entries.erase(set.entries.begin() + static_cast<std::ptrdiff_t>(index));
  } else {
    set.sum += static_cast<std::int64_t>(result.value) - e.value;
    e.value = result.value;
  }
}

void DecayEngine::tick_set(std::uint32_t& set, const DueTags& due, TimePoint now,
                           std::uint32_t slot, std::uint32_t generation,
                           std::vector<CustomWork>& work) {
  if (set == kNoDecaySet) return;
  Set& s = sets_[set];
  for (std::size_t i = 0; i < s.entries.size();) {
    const Entry& e = s.entries[i];
    const DecayingValue value{e.value, e.added, e.last_visit, now};
    if (due[e.tag] == 2) {
      work.push_back({slot, generation, e.tag, e.version, value, {}});
    } else if (due[e.tag] == 1) {
      const DecayResult result = defs_[e.tag].decay.apply(value);
      apply(s, i, result);
      if (result.remove) continue;  // the next entry moved into position i
    }
    ++i;
  }
  settle(set);
}

void DecayEngine::apply_custom(std::uint32_t& set, const CustomWork& work) {
  if (set == kNoDecaySet) return;
  Set& s = sets_[set];
  for (std::size_t i = 0; i < s.entries.size(); ++i) {
    if (s.entries[i].tag == work.tag) {
      if (s.entries[i].version == work.version) apply(s, i, work.result);
      break;
    }
  }
  settle(set);
}

std::vector<Decay> DecayEngine::decays() const {
  std::vector<Decay> out;
  out.reserve(defs_.size());
  for (const Definition& def : defs_) out.push_back(def.decay);
  return out;
}

}  // namespace dep2p::connmgr::detail
