// MemberTable: the peers one realm holds, with the realm's own tags and protections of
// each (docs/design.md, "Realms"). Entries sit in a slab (stable indices, so bindings point
// at them) found by peer id through an index, with each entry's bound connections in a
// dense array of its own: closing a connection touches only that count (4 bytes; a realm of
// 1,000 members keeps them in 4 KB) and looks nothing up by id. An entry whose last binding
// went is dead at once, but keeps its tags until it is revived (which clears them) or swept
// out of the index (which frees them).
//
// Thread safety: none; the realm layer's lock protects it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr::detail {

// What a realm knows of a member: its tags (their sum in `value`) and protections.
struct Member {
  std::int64_t value = 0;
  std::vector<std::pair<std::string, int>> tags;
  std::vector<std::string> protections;
  void clear() {
    value = 0;
    // Most members never held either: their empty vectors are left as they are.
    if (tags.capacity() != 0) std::vector<std::pair<std::string, int>>().swap(tags);
    if (protections.capacity() != 0) std::vector<std::string>().swap(protections);
  }
};

class MemberTable {
 public:
  Member* find(const NodeId& peer) {
    auto it = index_.find(peer);
    return it == index_.end() || bound_[it->second] == 0 ? nullptr : &slab_[it->second];
  }
  const Member* find(const NodeId& peer) const {
    auto it = index_.find(peer);
    return it == index_.end() || bound_[it->second] == 0 ? nullptr : &slab_[it->second];
  }
  // The entry for `peer`, created or revived, its tags and protections cleared.
  std::uint32_t acquire(const NodeId& peer) {
    auto [it, fresh] = index_.try_emplace(peer, 0);
    if (fresh) {
      if (free_.empty()) {
        it->second = static_cast<std::uint32_t>(slab_.size());
        try {
          slab_.emplace_back();
          bound_.resize(slab_.size(), 0);
        } catch (...) {
          index_.erase(it);  // an entry the slab does not hold would be read as a member
          throw;
        }
      } else {
        it->second = free_.back();
        free_.pop_back();
      }
    } else if (bound_[it->second] == 0) {
      --dead_;
      slab_[it->second].clear();
    }
    return it->second;
  }
  // The peer's bound connections; 0 when it is not a member.
  std::uint32_t bound_of(const NodeId& peer) const {
    auto it = index_.find(peer);
    return it == index_.end() ? 0 : bound_[it->second];
  }
  // The entry's bound connections.
  std::uint32_t& bound(std::uint32_t slot) { return bound_[slot]; }
  std::uint32_t bound(std::uint32_t slot) const { return bound_[slot]; }
  // The entry's last binding went (its bound count is 0): it is dead.
  void retire() {
    if (++dead_ > 64 + live()) sweep();
  }
  std::size_t live() const { return index_.size() - dead_; }
  std::size_t slots() const { return slab_.size(); }
  // f(peer, slot, member) for each live member.
  template <typename F>
  void for_each(F&& f) const {
    for (const auto& [peer, slot] : index_) {
      if (bound_[slot] > 0) f(peer, slot, slab_[slot]);
    }
  }

 private:
  void sweep() {
    std::vector<NodeId> gone;
    for (const auto& [peer, slot] : index_) {
      if (bound_[slot] == 0) gone.push_back(peer);
    }
    for (const NodeId& peer : gone) {
      auto it = index_.find(peer);
      slab_[it->second].clear();
      free_.push_back(it->second);
      index_.erase(it);
    }
    dead_ = 0;
  }

  std::vector<Member> slab_;
  std::vector<std::uint32_t> bound_;  // by slot, as slab_
  std::vector<std::uint32_t> free_;
  boost::unordered_flat_map<NodeId, std::uint32_t, NodeIdHash> index_;
  std::size_t dead_ = 0;
};

}  // namespace dep2p::connmgr::detail
