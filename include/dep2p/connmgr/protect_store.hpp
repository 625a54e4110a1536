// ProtectStore: (peer, protection tag) pairs. A peer is protected while any tag protects
// it; protection is idempotent per (peer, tag), not reference-counted, and independent of
// connection state (docs/design.md, "Protection"). This is the standalone form of the protection
// semantics the ConnectionManager uses.
//
//   dep2p::connmgr::ProtectStore protections;
//   protections.protect(peer, "relay");
//   protections.protect(peer, "dht");
//   bool still = protections.unprotect(peer, "relay");  // true: "dht" remains
//
// Thread safety: every method is thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "dep2p/connmgr/export.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {

class DEP2P_CONNMGR_EXPORT ProtectStore {
 public:
  ProtectStore();
  ~ProtectStore();
  ProtectStore(const ProtectStore&) = delete;
  ProtectStore& operator=(const ProtectStore&) = delete;

  // Errc::invalid_argument for an empty tag. Protecting twice with one tag is a no-op.
  std::error_code protect(const NodeId& peer, std::string_view tag);
  // Removes that one protection; returns whether the peer is still protected by another.
  bool unprotect(const NodeId& peer, std::string_view tag);
  bool is_protected(const NodeId& peer) const;
  bool is_protected(const NodeId& peer, std::string_view tag) const;
  // The tags protecting the peer, in the order they were added.
  std::vector<std::string> protections(const NodeId& peer) const;
  // Number of protected peers.
  std::size_t size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dep2p::connmgr
