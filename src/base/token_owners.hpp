// The manager's side of the tokens it hands to the host — Reservation, KeepAliveHold,
// DecayingTag — and the key that makes them. The public headers name these types without
// defining them, so a host can hold, move and drop a token but cannot make one, nor reach
// the manager through it: only the library constructs a TokenKey.
#pragma once

#include <cstdint>
#include <system_error>

#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr::detail {

// Passed by value to the tokens' constructors (and to Reservation::take): it needs this
// complete type, which only the library sees.
struct TokenKey {};

// Gives back what a reservation held (Reservation).
class ReservationOwner {
 public:
  virtual void release_reservation(std::uint64_t id) noexcept = 0;

 protected:
  ~ReservationOwner() = default;
};

// Ends a keep-alive hold (KeepAliveHold).
class HoldOwner {
 public:
  virtual void release_hold(const NodeId& peer) noexcept = 0;

 protected:
  ~HoldOwner() = default;
};

// A registered decaying tag's operations (DecayingTag).
class DecayingTagOwner {
 public:
  virtual std::error_code bump_decaying(std::uint32_t tag, std::uint64_t generation,
                                        const NodeId& peer, int delta) = 0;
  virtual std::error_code remove_decaying(std::uint32_t tag, std::uint64_t generation,
                                          const NodeId& peer) = 0;
  virtual void close_decaying(std::uint32_t tag, std::uint64_t generation) = 0;

 protected:
  ~DecayingTagOwner() = default;
};

}  // namespace dep2p::connmgr::detail
