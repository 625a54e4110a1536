// Tag tables: interned tag names and one peer's plain tags with their sum, shared by the
// standalone TagStore and the manager's pool (docs/design.md, "Pool and tags").
//
// Thread safety: none; the owner locks. The manager also lets holders of different lock
// shards (which exclude every writer of the name maps) count references at once: the
// *_shared functions.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/container/small_vector.hpp>
#include <boost/unordered/unordered_flat_map.hpp>

#include "base/compact_vector.hpp"
#include "base/relaxed.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr::detail {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
struct StringEqual {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
};

// Interns tag names into small integer ids so a peer's tags are a few bytes each and a
// lookup compares integers. Ids are reference-counted by the tags that use them and
// recycled at zero, so hosts that build names dynamically ("conn-<id>") leak nothing.
class TagNames {
 public:
  // The id of `name`, created on first use. A new id has no references: the caller
  // acquires it when it stores it.
  std::uint32_t intern(std::string_view name) {
    // Hosts use a handful of names over and over: remembering the last one skips the
    // string hash on the hot path.
    if (last_ != kNone && entries_[last_].name == name) return last_;
    if (auto it = ids_.find(name); it != ids_.end()) return last_ = it->second;
    std::uint32_t id;
    if (!free_.empty()) {
      id = free_.back();
      free_.pop_back();
      entries_[id] = Entry{std::string(name), 0};
    } else {
      id = static_cast<std::uint32_t>(entries_.size());
      entries_.push_back(Entry{std::string(name), 0});
    }
    ids_.emplace(entries_[id].name, id);
    return last_ = id;
  }
  std::optional<std::uint32_t> find(std::string_view name) const {
    if (auto it = ids_.find(name); it != ids_.end()) return it->second;
    return std::nullopt;
  }
  void acquire(std::uint32_t id) { ++entries_[id].references; }
  // The same for callers that run alongside one another, with the name maps only read
  // meanwhile (the manager's shard holders); every call that runs alongside them must be
  // one of these two.
  void acquire_shared(std::uint32_t id) {
    std::atomic_ref(entries_[id].references).fetch_add(1, std::memory_order_relaxed);
  }
  // Drops a reference unless it is the last one (forgetting the name changes the maps):
  // returns false, changing nothing, in that case.
  bool release_shared(std::uint32_t id) {
    std::atomic_ref references(entries_[id].references);
    std::uint64_t seen = references.load(std::memory_order_relaxed);
    while (seen > 1) {
      if (references.compare_exchange_weak(seen, seen - 1, std::memory_order_relaxed)) return true;
    }
    return false;
  }
  void release(std::uint32_t id) {
    if (--entries_[id].references == 0) forget(id);
  }
  // Drops an interned id that nothing references (e.g. interned for a lookup that then
  // stored nothing).
  void discard_if_unused(std::uint32_t id) {
    if (entries_[id].references == 0) forget(id);
  }
  const std::string& name(std::uint32_t id) const { return entries_[id].name; }
  std::size_t size() const { return ids_.size(); }

 private:
  struct Entry {
    std::string name;
    alignas(std::atomic_ref<std::uint64_t>::required_alignment) std::uint64_t references = 0;
  };
  static constexpr std::uint32_t kNone = UINT32_MAX;
  void forget(std::uint32_t id) {
    if (last_ == id) last_ = kNone;
    ids_.erase(std::string_view(entries_[id].name));
    entries_[id].name.clear();
    entries_[id].name.shrink_to_fit();
    free_.push_back(id);
  }
  // name -> id; entries_[id] holds the name and how many stored tags use it; free_ lists
  // ids whose count reached zero, ready for reuse.
  boost::unordered_flat_map<std::string, std::uint32_t, StringHash, StringEqual> ids_;
  std::vector<Entry> entries_;
  std::vector<std::uint32_t> free_;
  std::uint32_t last_ = kNone;  // the id intern() returned last, while it lives
};

// One peer's plain tags and their sum. The sum is updated on every change, so reading a
// peer's value never walks its tags.
class PeerTags {
 public:
  struct Tag {
    std::uint32_t name;
    int value;
  };

  // Overwrites or adds; returns the previous value if there was one. `Shared`: a new name's
  // reference is counted with TagNames::acquire_shared.
  template <bool Shared = false>
  std::optional<int> set(TagNames& names, std::uint32_t name, int value) {
    for (Tag& tag : tags_) {
      if (tag.name == name) {
        const int old = tag.value;
        sum_ += static_cast<std::int64_t>(value) - old;
        tag.value = value;
        return old;
      }
    }
    tags_.push_back(Tag{name, value});
    if constexpr (Shared) {
      names.acquire_shared(name);
    } else {
      names.acquire(name);
    }
    sum_ += value;
    return std::nullopt;
  }
  enum class Removal { absent, removed, needs_whole };
  // remove() for callers of the *_shared functions: a tag holding its name's last
  // reference stays (needs_whole).
  Removal remove_shared(TagNames& names, std::uint32_t name) {
    for (auto it = tags_.begin(); it != tags_.end(); ++it) {
      if (it->name == name) {
        if (!names.release_shared(name)) return Removal::needs_whole;
        sum_ -= it->value;
        tags_.erase(it);
        return Removal::removed;
      }
    }
    return Removal::absent;
  }
  bool contains(std::uint32_t name) const {
    return std::any_of(tags_.begin(), tags_.end(), [&](const Tag& t) { return t.name == name; });
  }
  std::size_t size() const { return tags_.size(); }
  bool remove(TagNames& names, std::uint32_t name) {
    for (auto it = tags_.begin(); it != tags_.end(); ++it) {
      if (it->name == name) {
        sum_ -= it->value;
        tags_.erase(it);
        names.release(name);
        return true;
      }
    }
    return false;
  }
  std::optional<int> get(std::uint32_t name) const {
    for (const Tag& tag : tags_) {
      if (tag.name == name) return tag.value;
    }
    return std::nullopt;
  }
  void clear(TagNames& names) {
    for (const Tag& tag : tags_) names.release(tag.name);
    tags_.clear();
    sum_ = 0;
  }
  std::vector<std::pair<std::string, int>> list(const TagNames& names) const {
    std::vector<std::pair<std::string, int>> out;
    out.reserve(tags_.size());
    for (const Tag& tag : tags_) out.emplace_back(names.name(tag.name), tag.value);
    return out;
  }
  std::int64_t sum() const { return sum_; }
  bool empty() const { return tags_.empty(); }

 private:
  // First: a trim reads the sum, rarely the tags. Relaxed: a trim ranks while lane holders
  // change it (the manager's CoreLock).
  Relaxed<std::int64_t> sum_ = 0;
  CompactVector<Tag, 1> tags_;  // one inline: most peers carry one tag, if any
};

}  // namespace dep2p::connmgr::detail
