// KeepAliveHold: an RAII token that keeps a peer's connections from being closed as idle
// (docs/design.md, "Keepalive, idle and paths"), for hosts whose protocol is quiet but wants the
// connection kept — a pending request, a subscription. Keepalive pings still run; a dead connection
// is still closed by them.
//
//   auto hold = manager.keep_alive(peer);   // idle timeout suspended for `peer`
//   ...                                     // the hold ends when `hold` is destroyed
//
// Thread safety: a hold is a movable value used by one thread at a time; destroying it on
// any thread releases it once. Holds of one peer add up.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include "dep2p/connmgr/export.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {

namespace detail {
struct TokenKey;
class HoldOwner;
}  // namespace detail

// Only the manager makes one (ConnectionManager::keep_alive).
class DEP2P_CONNMGR_EXPORT KeepAliveHold {
 public:
  KeepAliveHold() = default;
  ~KeepAliveHold() { release(); }
  KeepAliveHold(KeepAliveHold&& other) noexcept
      : owner_(std::move(other.owner_)), peer_(std::exchange(other.peer_, std::nullopt)) {}
  KeepAliveHold& operator=(KeepAliveHold&& other) noexcept {
    if (this != &other) {
      release();
      owner_ = std::move(other.owner_);
      peer_ = std::exchange(other.peer_, std::nullopt);
    }
    return *this;
  }
  KeepAliveHold(const KeepAliveHold&) = delete;
  KeepAliveHold& operator=(const KeepAliveHold&) = delete;

  void release() noexcept {
    if (peer_) release_now();
  }
  bool active() const noexcept { return peer_.has_value(); }

  // Library-internal: the manager's constructor (a host cannot name the key).
  KeepAliveHold(detail::TokenKey key, std::weak_ptr<detail::HoldOwner> owner, const NodeId& peer);

 private:
  void release_now() noexcept;

  std::weak_ptr<detail::HoldOwner> owner_;
  std::optional<NodeId> peer_;
};

}  // namespace dep2p::connmgr
