// TagStore: (peer, tag name) -> TagValue, with each peer's value (the sum of its tags)
// kept incrementally so reading it is O(1). This is the standalone form of the tag
// semantics the ConnectionManager applies to its pool (docs/design.md, "Pool and tags"): use it
// directly when you need scores without a pool.
//
//   dep2p::connmgr::TagStore tags;
//   tags.tag(peer, "dht", 10);
//   tags.upsert(peer, "bitswap", [](int old) { return old + 1; });
//   std::int64_t v = tags.value(peer);  // 11
//
// Thread safety: every method is thread-safe. upsert() runs its function without holding
// the store's lock and retries if the tag changed meanwhile, so the function may run more
// than once and may itself call the store.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "dep2p/connmgr/export.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {

class DEP2P_CONNMGR_EXPORT TagStore {
 public:
  TagStore();
  ~TagStore();
  TagStore(const TagStore&) = delete;
  TagStore& operator=(const TagStore&) = delete;

  // Sets (overwrites) the tag. Errc::invalid_argument for an empty name.
  std::error_code tag(const NodeId& peer, std::string_view name, TagValue value);
  // Removes the tag; returns whether it existed. A peer left without tags is forgotten.
  bool untag(const NodeId& peer, std::string_view name);
  // Sets the tag to fn(old value, or 0 when absent) and returns the new value.
  // Errc::invalid_argument for an empty name or an empty function.
  std::error_code upsert(const NodeId& peer, std::string_view name,
                         const std::function<TagValue(TagValue)>& fn,
                         TagValue* new_value = nullptr);

  // The sum of the peer's tags, 0 for an unknown peer.
  PeerValue value(const NodeId& peer) const;
  std::optional<TagValue> tag_value(const NodeId& peer, std::string_view name) const;
  // The peer's tags in the order they were first set.
  std::vector<std::pair<std::string, TagValue>> tags(const NodeId& peer) const;
  // Forgets every tag of the peer; returns whether it had any.
  bool erase(const NodeId& peer);
  // Peers holding at least one tag.
  std::size_t size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dep2p::connmgr
