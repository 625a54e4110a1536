// DecayEngine: the registered decaying tags and the values peers hold of them
// (docs/design.md, "Pool and tags"). A peer's decaying tags are one set, referred to by the
// index its peer entry keeps (PeerSlot::decay, kNoSlot when it holds none); only peers that
// hold decaying tags have a set, so the others do not pay for the list.
//
//   auto tag = engine.register_tag("score", interval, Decay::fixed(1), Bump::sum(), now);
//   engine.set(entry.decay, tag->id, 10, now);      // the peer now holds score 10
//   std::int64_t value = engine.sum(entry.decay);   // part of the peer's value
//
// A tick (begin_tick, then tick_set per peer) decays each tag whose interval has come once,
// applying built-in decays in place and listing custom ones for the caller to run unlocked
// and apply with apply_custom, where the value did not move meanwhile.
//
// Thread safety: none; the owner locks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "dep2p/connmgr/decay.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr::detail {

inline constexpr std::uint32_t kNoDecaySet = UINT32_MAX;

class DecayEngine {
 public:
  // One decaying tag's value on one peer. `version` changes with every bump, so work done
  // outside the lock (custom functions) can tell whether the value moved meanwhile.
  struct Entry {
    std::uint32_t tag;  // the tag's id
    std::uint32_t version = 0;
    int value = 0;
    TimePoint added{};
    TimePoint last_visit{};
  };
  // A registered tag, at its id. Closed ones are reused for later registrations;
  // `generation` tells the handles of the old one apart.
  struct Definition {
    std::string name;
    Duration interval{};
    TimePoint next_tick{};
    Decay decay = Decay::none();
    Bump bump = Bump::sum();
    std::uint64_t generation = 0;
    bool open = false;
  };
  struct Registered {
    std::uint32_t id;
    std::uint64_t generation;
  };

  // A new tag; nullopt when an open tag has the name. `interval` is final (already raised
  // to the resolution); its first tick is one interval from `now`.
  std::optional<Registered> register_tag(std::string_view name, Duration interval, Decay decay,
                                         Bump bump, TimePoint now);
  // The open definition of (tag, generation), or null when it was closed.
  const Definition* open(std::uint32_t tag, std::uint64_t generation) const {
    if (tag >= defs_.size()) return nullptr;
    const Definition& def = defs_[tag];
    return def.open && def.generation == generation ? &def : nullptr;
  }
  // Closes the tag (its name can be registered again). The caller then erases it from
  // every set. Returns false when it was closed already.
  bool close(std::uint32_t tag, std::uint64_t generation);
  const std::string& name(std::uint32_t tag) const { return defs_[tag].name; }

  // --- A peer's set (REQUIRES: `set` is a peer's index, kNoDecaySet for none) ------------

  std::int64_t sum(std::uint32_t set) const { return set == kNoDecaySet ? 0 : sets_[set].sum; }
  Entry* find(std::uint32_t set, std::uint32_t tag) {
    if (set == kNoDecaySet) return nullptr;
    for (Entry& e : sets_[set].entries) {
      if (e.tag == tag) return &e;
    }
    return nullptr;
  }
  // Sets the peer's value of `tag` (added at `now` if new; a new version either way),
  // creating its set if needed.
  void set(std::uint32_t& set, std::uint32_t tag, int value, TimePoint now);
  // Drops `tag` from the set (and the set once empty). Returns whether it was there.
  bool erase(std::uint32_t& set, std::uint32_t tag);
  // Gives the whole set back.
  void drop(std::uint32_t& set) {
    if (set != kNoDecaySet) drop_set(set);  // most peers hold no decaying tag
  }
  // The set's tags by name and current value.
  std::vector<std::pair<std::string, int>> list(std::uint32_t set) const;

  // --- Ticks ------------------------------------------------------------------------

  // What is due in this tick, by tag id: 0 nothing, 1 a built-in decay, 2 a custom one.
  using DueTags = std::vector<char>;
  // Marks the tags whose interval has come at `now` and moves each one's next tick on by one
  // interval (a late tick decays once: lost intervals are caught up one per tick). Returns
  // whether any tag is due.
  bool begin_tick(TimePoint now, DueTags& due);
  // A custom decay the caller runs unlocked for one peer's value.
  struct CustomWork {
    std::uint32_t slot;  // the peer, as the caller identifies it
    std::uint32_t generation;
    std::uint32_t tag;
    std::uint32_t version;
    DecayingValue value;
    DecayResult result;
  };
  // Decays one peer's set: built-in decays applied here, custom ones appended to `work`
  // (for the peer at `slot` of `generation`). The set goes once it is empty.
  void tick_set(std::uint32_t& set, const DueTags& due, TimePoint now, std::uint32_t slot,
                std::uint32_t generation, std::vector<CustomWork>& work);
  // Applies a custom decay's result to the set, if the value's version is still the one
  // the function saw (a bump meanwhile wins that interval).
  void apply_custom(std::uint32_t& set, const CustomWork& work);
  // The tags' decay rules by id, copied to run custom ones unlocked.
  std::vector<Decay> decays() const;

 private:
  struct Set {
    std::int64_t sum = 0;  // of the entries' values
    boost::container::small_vector<Entry, 1> entries;
  };
  static void apply(Set& set, std::size_t index, const DecayResult& result);
  void drop_set(std::uint32_t& set);
  void settle(std::uint32_t& set);

  std::vector<Definition> defs_;  // by tag id
  std::uint64_t last_generation_ = 0;
  std::vector<Set> sets_;  // by set index; free ones are empty and listed
  std::vector<std::uint32_t> free_sets_;
};

}  // namespace dep2p::connmgr::detail
