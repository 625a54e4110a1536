// Error codes of the connection manager, in the `connmgr` std::error_category.
//
//   std::error_code ec = manager.tag_peer(peer, "dht", 10);
//   if (ec == dep2p::connmgr::Errc::closed) { ... }
//
// Runtime outcomes (a refusal, an unknown peer, a closed manager) are reported as
// std::error_code; exceptions are kept for programmer and configuration errors.
// Thread safety: the category is a stateless singleton; everything here is thread-safe.
#pragma once

#include <string>
#include <system_error>

#include "dep2p/connmgr/export.hpp"

namespace dep2p::connmgr {

// Values start at 1 so that a default std::error_code (0) always means success.
enum class Errc : int {
  connection_denied = 1,  // admission refused the connection (seed: ErrConnectionDenied)
  peer_blocked,           // the peer is on a block list (seed: ErrPeerBlocked)
  limit_exceeded,         // a hard limit would be exceeded
  unknown_peer,           // the peer is not tracked
  unknown_connection,     // the connection handle is not tracked
  duplicate_connection,   // the connection handle is already tracked
  realm_full,             // the realm is at its hard maximum
  closed,                 // the manager (or the handle) is closed
  invalid_argument,       // an argument is malformed (empty name, null handle, ...)
  temp_peer_limit,        // tagging would exceed max_temp_peers
  protection_limit,       // protecting would exceed the per-tag protection cap
  tag_exists,             // a decaying tag of that name is already registered
  tag_closed,             // the decaying tag handle was closed
  illegal_transition,     // a reported connection state cannot follow the current one
  unknown_realm,          // no realm of that name
  realm_exists,           // a realm of that name already exists
  dial_backoff,           // the peer or address is in dial backoff (Admission::retry_at)
  dial_pending,           // a dial to the peer is in flight already
};

DEP2P_CONNMGR_EXPORT const std::error_category& connmgr_category() noexcept;

// Found by argument-dependent lookup, so `std::error_code ec = Errc::closed;` works.
DEP2P_CONNMGR_EXPORT std::error_code make_error_code(Errc e) noexcept;

}  // namespace dep2p::connmgr

template <>
struct std::is_error_code_enum<dep2p::connmgr::Errc> : std::true_type {};
