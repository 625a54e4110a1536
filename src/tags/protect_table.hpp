// ProtectTable: which protection tags hold each peer, each until when (docs/design.md,
// "Protection"), shared by the standalone ProtectStore and the manager. Protection is
// independent of connections, so the table is keyed by peer on its own rather than living
// in the pool's peer entries.
//
//   table.protect(peer, "relay");                      // until unprotected
//   table.protect(peer, "boot", now + 30s, /*cap=*/8);  // timed; at most 8 peers per tag
//   for (const NodeId& p : table.expire(now)) ...      // peers left unprotected
//
// Thread safety: none; the owner locks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/container/small_vector.hpp>
#include <boost/unordered/unordered_flat_map.hpp>

#include "dep2p/connmgr/types.hpp"
#include "tags/tag_table.hpp"

namespace dep2p::connmgr::detail {

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
