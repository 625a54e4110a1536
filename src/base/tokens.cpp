// The out-of-line parts of the tokens the manager hands out (admission.hpp, keepalive.hpp):
// they reach the manager through interfaces a host never sees (base/token_owners.hpp).
#include "base/token_owners.hpp"
#include "dep2p/connmgr/admission.hpp"
#include "dep2p/connmgr/keepalive.hpp"

namespace dep2p::connmgr {

Reservation::Reservation(detail::TokenKey, std::weak_ptr<detail::ReservationOwner> owner,
                         std::uint64_t id, Direction direction, std::optional<Endpoint> remote)
    : owner_(std::move(owner)), id_(id), direction_(direction), remote_(std::move(remote)) {}

std::uint64_t Reservation::take(detail::TokenKey) noexcept { return std::exchange(id_, 0); }

void Reservation::release_now() noexcept {
  if (auto owner = owner_.lock()) owner->release_reservation(id_);
  id_ = 0;
}

KeepAliveHold::KeepAliveHold(detail::TokenKey, std::weak_ptr<detail::HoldOwner> owner,
                             const NodeId& peer)
    : owner_(std::move(owner)), peer_(peer) {}

void KeepAliveHold::release_now() noexcept {
  if (auto owner = owner_.lock()) owner->release_hold(*peer_);
  peer_.reset();
}

}  // namespace dep2p::connmgr
