#include "dep2p/connmgr/tag_store.hpp"

#include <mutex>

#include "dep2p/connmgr/error.hpp"
#include "detail/tag_table.hpp"

namespace dep2p::connmgr {

struct TagStore::Impl {
  mutable std::mutex mutex;
  detail::TagNames names;
  // Peers with at least one tag; a peer whose last tag goes is erased.
  boost::unordered_flat_map<NodeId, detail::PeerTags, NodeIdHash> peers;
  // Bumped on every change; upsert compares it to detect a concurrent change.
  std::uint64_t version = 0;
};

TagStore::TagStore() : impl_(std::make_unique<Impl>()) {}
TagStore::~TagStore() = default;

std::error_code TagStore::tag(const NodeId& peer, std::string_view name, int value) {
  if (name.empty()) return Errc::invalid_argument;
  std::lock_guard lock(impl_->mutex);
  impl_->peers[peer].set(impl_->names, impl_->names.intern(name), value);
  ++impl_->version;
  return {};
}

bool TagStore::untag(const NodeId& peer, std::string_view name) {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->peers.find(peer);
  if (it == impl_->peers.end()) return false;
  auto id = impl_->names.find(name);
  if (!id || !it->second.remove(impl_->names, *id)) return false;
  if (it->second.empty()) impl_->peers.erase(it);
  ++impl_->version;
  return true;
}

std::error_code TagStore::upsert(const NodeId& peer, std::string_view name,
                                 const std::function<int(int)>& fn, int* new_value) {
  if (name.empty() || !fn) return Errc::invalid_argument;
  // Read, compute outside the lock, then write only if nothing changed meanwhile.
  for (;;) {
    int old = 0;
    std::uint64_t seen;
    {
      std::lock_guard lock(impl_->mutex);
      seen = impl_->version;
      if (auto it = impl_->peers.find(peer); it != impl_->peers.end()) {
        if (auto id = impl_->names.find(name)) old = it->second.get(*id).value_or(0);
      }
    }
    const int value = fn(old);
    std::lock_guard lock(impl_->mutex);
    if (impl_->version != seen) continue;
    impl_->peers[peer].set(impl_->names, impl_->names.intern(name), value);
    ++impl_->version;
    if (new_value != nullptr) *new_value = value;
    return {};
  }
}

std::int64_t TagStore::value(const NodeId& peer) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->peers.find(peer);
  return it == impl_->peers.end() ? 0 : it->second.sum();
}

std::optional<int> TagStore::tag_value(const NodeId& peer, std::string_view name) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->peers.find(peer);
  if (it == impl_->peers.end()) return std::nullopt;
  auto id = impl_->names.find(name);
  return id ? it->second.get(*id) : std::nullopt;
}

std::vector<std::pair<std::string, int>> TagStore::tags(const NodeId& peer) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->peers.find(peer);
  if (it == impl_->peers.end()) return {};
  return it->second.list(impl_->names);
}

bool TagStore::erase(const NodeId& peer) {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->peers.find(peer);
  if (it == impl_->peers.end()) return false;
  it->second.clear(impl_->names);
  impl_->peers.erase(it);
  ++impl_->version;
  return true;
}

std::size_t TagStore::size() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->peers.size();
}

}  // namespace dep2p::connmgr
