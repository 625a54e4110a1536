#include "dep2p/connmgr/tag_store.hpp"

#include <mutex>

#include "dep2p/connmgr/error.hpp"
#include "tags/tag_table.hpp"

namespace dep2p::connmgr {

struct TagStore::Impl {
  mutable std::mutex mutex;
  detail::TagNames names;
  struct Entry {
    detail::PeerTags tags;
    std::uint64_t stamp = 0;  // `clock` at the entry's last change
  };
  // Peers with at least one tag; a peer whose last tag goes is erased.
  boost::unordered_flat_map<NodeId, Entry, NodeIdHash> peers;
  // Every change stamps its peer with a fresh number, so upsert can tell whether that
  // peer changed while its function ran (an erased peer reads as stamp 0).
  std::uint64_t clock = 0;
  std::uint64_t stamp_of(const NodeId& peer) const {
    auto it = peers.find(peer);
    return it == peers.end() ? 0 : it->second.stamp;
  }
};

TagStore::TagStore() : impl_(std::make_unique<Impl>()) {}
TagStore::~TagStore() = default;

std::error_code TagStore::tag(const NodeId& peer, std::string_view name, int value) {
  if (name.empty()) return Errc::invalid_argument;
  std::lock_guard lock(impl_->mutex);
  auto& entry = impl_->peers[peer];
  entry.tags.set(impl_->names, impl_->names.intern(name), value);
  entry.stamp = ++impl_->clock;
  return {};
}

bool TagStore::untag(const NodeId& peer, std::string_view name) {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->peers.find(peer);
  if (it == impl_->peers.end()) return false;
  auto id = impl_->names.find(name);
  if (!id || !it->second.tags.remove(impl_->names, *id)) return false;
  if (it->second.tags.empty()) {
    impl_->peers.erase(it);
  } else {
    it->second.stamp = ++impl_->clock;
  }
  return true;
}

std::error_code TagStore::upsert(const NodeId& peer, std::string_view name,
                                 const std::function<int(int)>& fn, int* new_value) {
  if (name.empty() || !fn) return Errc::invalid_argument;
  // Read, compute outside the lock, then write only if the peer did not change meanwhile.
  for (;;) {
    int old = 0;
    std::uint64_t seen;
    {
      std::lock_guard lock(impl_->mutex);
      seen = impl_->stamp_of(peer);
      if (auto it = impl_->peers.find(peer); it != impl_->peers.end()) {
        if (auto id = impl_->names.find(name)) old = it->second.tags.get(*id).value_or(0);
      }
    }
    const int value = fn(old);
    std::lock_guard lock(impl_->mutex);
    if (impl_->stamp_of(peer) != seen) continue;  // that peer changed: recompute
    auto& entry = impl_->peers[peer];
    entry.tags.set(impl_->names, impl_->names.intern(name), value);
    entry.stamp = ++impl_->clock;
    if (new_value != nullptr) *new_value = value;
    return {};
  }
}

std::int64_t TagStore::value(const NodeId& peer) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->peers.find(peer);
  return it == impl_->peers.end() ? 0 : it->second.tags.sum();
}

std::optional<int> TagStore::tag_value(const NodeId& peer, std::string_view name) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->peers.find(peer);
  if (it == impl_->peers.end()) return std::nullopt;
  auto id = impl_->names.find(name);
  return id ? it->second.tags.get(*id) : std::nullopt;
}

std::vector<std::pair<std::string, int>> TagStore::tags(const NodeId& peer) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->peers.find(peer);
  if (it == impl_->peers.end()) return {};
  return it->second.tags.list(impl_->names);
}

bool TagStore::erase(const NodeId& peer) {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->peers.find(peer);
  if (it == impl_->peers.end()) return false;
  it->second.tags.clear(impl_->names);
  impl_->peers.erase(it);
  return true;
}

std::size_t TagStore::size() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->peers.size();
}

}  // namespace dep2p::connmgr
