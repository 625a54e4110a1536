#include "dep2p/connmgr/protect_store.hpp"

#include <mutex>

#include "dep2p/connmgr/error.hpp"
#include "tags/protect_table.hpp"

namespace dep2p::connmgr {

struct ProtectStore::Impl {
  mutable std::mutex mutex;
  detail::ProtectTable table;
};

ProtectStore::ProtectStore() : impl_(std::make_unique<Impl>()) {}
ProtectStore::~ProtectStore() = default;

std::error_code ProtectStore::protect(const NodeId& peer, std::string_view tag) {
  if (tag.empty()) return Errc::invalid_argument;
  std::lock_guard lock(impl_->mutex);
  impl_->table.protect(peer, tag);
  return {};
}

bool ProtectStore::unprotect(const NodeId& peer, std::string_view tag) {
  std::lock_guard lock(impl_->mutex);
  return impl_->table.unprotect(peer, tag);
}

bool ProtectStore::is_protected(const NodeId& peer) const {
  std::lock_guard lock(impl_->mutex);
  return impl_->table.is_protected(peer);
}

bool ProtectStore::is_protected(const NodeId& peer, std::string_view tag) const {
  std::lock_guard lock(impl_->mutex);
  return impl_->table.is_protected(peer, tag);
}

std::vector<std::string> ProtectStore::protections(const NodeId& peer) const {
  std::lock_guard lock(impl_->mutex);
  return impl_->table.protections(peer);
}

std::size_t ProtectStore::size() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->table.size();
}

}  // namespace dep2p::connmgr
