// Admission results: the move-only Reservation a successful stage returns, and the
// Refusal an unsuccessful one explains itself with (docs/design.md, "Admission").
//
//   auto admitted = manager.admit_inbound(remote);          // before any handshake
//   if (!admitted) return reject(admitted.refusal.message);  // "inbound refused: ..."
//   ... handshake ...
//   if (auto ec = manager.on_secured(admitted.reservation, Direction::inbound, peer, remote))
//     return;  // the reservation releases what it held when it goes out of scope
//   manager.add_connection(connection, std::move(admitted.reservation));
//
// Thread safety: a Reservation is used by one thread at a time (like any movable value);
// dropping it on any thread releases exactly what it held, once.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "dep2p/connmgr/export.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {

// The admission stages, cheapest first.
// `claim`: RealmConnectionManager::claim, between on_secured and add_connection.
enum class Stage : std::uint8_t {
  dial,
  dial_addr,
  accept,
  secured,
  add,
  stream,
  resources,
  bind,
  claim
};
DEP2P_CONNMGR_EXPORT std::string_view to_string(Stage stage) noexcept;

// What refused: counted separately in Stats::refusals_by_reason.
enum class RefusalReason : std::uint8_t {
  gater,             // a gater intercept denied
  connection_limit,  // a scope's connection limit
  pending_limit,     // a scope's pending-handshake limit
  stream_limit,      // a scope's stream limit
  memory_limit,      // a scope's memory limit
  fd_limit,          // a scope's file-descriptor limit
  subnet_cap,        // a per-address or per-subnet connection cap
  rate_limit,        // a token bucket was empty
  hook,              // a before_connect / after_handshake hook rejected
  realm_limit,       // a realm's hard_max or max_members (RealmConnectionManager claim, bind)
  backoff,           // the peer or address is in dial backoff (check_dial, check_dial_addr)
  dial_pending,      // a dial to the peer is in flight (check_dial)
};
inline constexpr std::size_t kRefusalReasonCount = 12;
DEP2P_CONNMGR_EXPORT std::string_view to_string(RefusalReason reason) noexcept;

struct Refusal {
  Stage stage = Stage::accept;
  RefusalReason reason = RefusalReason::gater;
  std::string scope;  // "system", "peer 12*X3p9Vb", "subnet 10.1.2.0/24", "gater", ...
  std::string limit;  // the limit's name, e.g. "connections_inbound", or the gater's reason
  std::string
      message;  // one sentence: "inbound refused: subnet 10.1.2.0/24 holds 8 of 8 connections"
};

namespace detail {
struct TokenKey;
class ReservationOwner;
}  // namespace detail

// Held resources of one admission in progress: pending-handshake slots, a place under the
// per-address caps, reserved memory or descriptors. Dropping it releases exactly those;
// add_connection() consumes it, moving what the connection keeps to the connection. Only
// the manager makes one.
class DEP2P_CONNMGR_EXPORT Reservation {
 public:
  Reservation() = default;
  ~Reservation() { release(); }
  Reservation(Reservation&& other) noexcept
      : owner_(std::move(other.owner_)),
        id_(std::exchange(other.id_, 0)),
        direction_(other.direction_) {}
  Reservation& operator=(Reservation&& other) noexcept {
    if (this != &other) {
      release();
      owner_ = std::move(other.owner_);
      id_ = std::exchange(other.id_, 0);
      direction_ = other.direction_;
    }
    return *this;
  }
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;

  // Releases what it holds now; idempotent.
  void release() noexcept {
    if (id_ != 0) release_now();
  }
  bool valid() const noexcept { return id_ != 0; }
  Direction direction() const noexcept { return direction_; }
  std::uint64_t id() const noexcept { return id_; }

  // Library-internal: the manager's constructor and hand-over (a host cannot name the key).
  Reservation(detail::TokenKey key, std::weak_ptr<detail::ReservationOwner> owner, std::uint64_t id,
              Direction direction);
  std::uint64_t take(detail::TokenKey key) noexcept;

 private:
  void release_now() noexcept;

  std::weak_ptr<detail::ReservationOwner> owner_;
  std::uint64_t id_ = 0;
  Direction direction_ = Direction::inbound;
};

class Connection;

// The outcome of check_dial(): an error and a refusal, or an open connection to reuse
// (null when the host should dial: the dial is then in flight until the host reports its
// outcome, a connection to the peer arrives, or DialConfig::dial_timeout passes).
// Errc::dial_backoff: retry_at is when the backoff ends; Errc::dial_pending: another dial
// is in flight, and retry_at is when it lapses if nothing is reported.
struct DialCheck {
  std::error_code error;
  Refusal refusal;
  std::shared_ptr<Connection> existing;
  std::optional<TimePoint> retry_at;
  explicit operator bool() const { return !error; }
};

// The outcome of a stage that reserves: a valid reservation, or an error and a refusal.
struct Admission {
  std::error_code error;
  Refusal refusal;  // meaningful when error is set by a refusal
  Reservation reservation;
  std::optional<TimePoint> retry_at;  // Errc::dial_backoff: when the address's backoff ends
  explicit operator bool() const { return !error; }
};

}  // namespace dep2p::connmgr
