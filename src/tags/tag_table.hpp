// Internal building blocks for tags and protections, shared by the standalone stores
// and the manager's pool. None of this locks: the owner's lock protects it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/container/small_vector.hpp>
#include <boost/unordered/unordered_flat_map.hpp>

#include "base/compact_vector.hpp"
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
    std::uint64_t references = 0;
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

  // Overwrites or adds; returns the previous value if there was one.
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
    names.acquire(name);
    sum_ += value;
    return std::nullopt;
  }
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
  std::int64_t sum_ = 0;        // first: a trim reads the sum, rarely the tags
  CompactVector<Tag, 1> tags_;  // one inline: most peers carry one tag, if any
};

// Which protection tags hold each peer, each until when. Protection is independent of
// connections, so this table is keyed by peer on its own rather than living in the pool's
// peer entries.
class ProtectTable {
 public:
  static constexpr TimePoint kForever = TimePoint::max();

  enum class Outcome { added, extended, unchanged, over_cap };

  // Protects `peer` with `tag` until `until` (kForever: until unprotected). A pair that
  // exists keeps the later of its two ends. A new pair beyond `cap` peers for that tag
  // (0 = no cap) is refused.
  Outcome protect(const NodeId& peer, std::string_view tag, TimePoint until = kForever,
                  std::size_t cap = 0) {
    const std::uint32_t id = names_.intern(tag);
    auto it = peers_.find(peer);
    if (it != peers_.end()) {
      for (Entry& e : it->second) {
        if (e.tag == id) {
          if (until <= e.until) return Outcome::unchanged;
          e.until = until;
          return Outcome::extended;
        }
      }
    }
    if (cap != 0 && id < counts_.size() && counts_[id] >= cap) {
      names_.discard_if_unused(id);
      return Outcome::over_cap;
    }
    if (it == peers_.end()) it = peers_.try_emplace(peer).first;
    it->second.push_back(Entry{id, until});
    names_.acquire(id);
    if (counts_.size() <= id) counts_.resize(id + 1, 0);
    ++counts_[id];
    return Outcome::added;
  }
  // Returns whether the peer is still protected by another tag.
  bool unprotect(const NodeId& peer, std::string_view tag) {
    auto it = peers_.find(peer);
    if (it == peers_.end()) return false;
    if (auto id = names_.find(tag)) {
      auto& entries = it->second;
      for (auto e = entries.begin(); e != entries.end(); ++e) {
        if (e->tag == *id) {
          drop(*e);
          entries.erase(e);
          break;
        }
      }
    }
    if (it->second.empty()) {
      peers_.erase(it);
      return false;
    }
    return true;
  }
  // Removes every pair whose end is at or before `now`; returns the peers left with no
  // protection at all.
  std::vector<NodeId> expire(TimePoint now) {
    std::vector<NodeId> unprotected;
    for (auto& [peer, entries] : peers_) {
      for (auto e = entries.begin(); e != entries.end();) {
        if (e->until <= now) {
          drop(*e);
          e = entries.erase(e);
        } else {
          ++e;
        }
      }
      if (entries.empty()) unprotected.push_back(peer);
    }
    for (const NodeId& peer : unprotected) peers_.erase(peer);
    return unprotected;
  }
  // The earliest end among timed pairs, or kForever.
  TimePoint next_expiry() const {
    TimePoint next = kForever;
    for (const auto& [peer, entries] : peers_) {
      for (const Entry& e : entries) next = std::min(next, e.until);
    }
    return next;
  }
  bool is_protected(const NodeId& peer) const { return peers_.contains(peer); }
  bool is_protected(const NodeId& peer, std::string_view tag) const {
    auto it = peers_.find(peer);
    if (it == peers_.end()) return false;
    auto id = names_.find(tag);
    if (!id) return false;
    for (const Entry& e : it->second) {
      if (e.tag == *id) return true;
    }
    return false;
  }
  std::vector<std::string> protections(const NodeId& peer) const {
    std::vector<std::string> out;
    if (auto it = peers_.find(peer); it != peers_.end()) {
      for (const Entry& e : it->second) out.push_back(names_.name(e.tag));
    }
    return out;
  }
  // The peer's protections with their ends (kForever: until unprotected), for explain().
  std::vector<std::pair<std::string, TimePoint>> protections_until(const NodeId& peer) const {
    std::vector<std::pair<std::string, TimePoint>> out;
    if (auto it = peers_.find(peer); it != peers_.end()) {
      for (const Entry& e : it->second) out.emplace_back(names_.name(e.tag), e.until);
    }
    return out;
  }
  std::size_t size() const { return peers_.size(); }

 private:
  struct Entry {
    std::uint32_t tag;
    TimePoint until;
  };
  void drop(const Entry& e) {
    --counts_[e.tag];
    names_.release(e.tag);
  }
  TagNames names_;
  // Peers with at least one protection; never holds an empty list.
  boost::unordered_flat_map<NodeId, boost::container::small_vector<Entry, 2>, NodeIdHash> peers_;
  std::vector<std::size_t> counts_;  // by tag id: how many peers the tag protects
};

}  // namespace dep2p::connmgr::detail
