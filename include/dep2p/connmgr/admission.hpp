// Admission results: every stage answers with an Admission, true when it admits; a
// refusal explains itself in it (docs/design.md, "Admission"). The move-only Reservation
// of the stages that reserve carries what it knows (direction, remote address) to the
// next stage.
//
//   auto admitted = manager.admit_inbound(remote);          // before any handshake
//   if (!admitted) return reject(admitted.refusal.message);  // "inbound refused: ..."
//   ... handshake ...
//   if (auto secured = manager.on_secured(admitted.reservation, peer); !secured)
//     return reject(secured.refusal.message);  // the reservation releases what it held
//   if (auto added = manager.add_admitted(connection, std::move(admitted.reservation)); !added)
//     return reject(added.refusal.message);
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
  subnet_cap,        // a per-address, per-subnet or per-group connection cap
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
        direction_(other.direction_),
        remote_(std::move(other.remote_)) {}
  Reservation& operator=(Reservation&& other) noexcept {
    if (this != &other) {
      release();
      owner_ = std::move(other.owner_);
      id_ = std::exchange(other.id_, 0);
      direction_ = other.direction_;
      remote_ = std::move(other.remote_);
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
  // The address the connection comes from or goes to (admit_inbound, check_dial_addr);
  // none for reserve_resources().
  const std::optional<Endpoint>& remote() const noexcept { return remote_; }
  std::uint64_t id() const noexcept { return id_; }

  // Library-internal: the manager's constructor and hand-over (a host cannot name the key).
  Reservation(detail::TokenKey key, std::weak_ptr<detail::ReservationOwner> owner, std::uint64_t id,
              Direction direction, std::optional<Endpoint> remote);
  std::uint64_t take(detail::TokenKey key) noexcept;

 private:
  void release_now() noexcept;

  std::weak_ptr<detail::ReservationOwner> owner_;
  std::uint64_t id_ = 0;
  Direction direction_ = Direction::inbound;
  std::optional<Endpoint> remote_;
};

class Connection;

// The outcome of every admission stage (check_dial, check_dial_addr, admit_inbound,
// on_secured, add_admitted, stream_opened, reserve_resources; the realm layer's claim,
// on_secured and bind). True: admitted, go on. False: `error` says what went wrong and,
// when a limit, the gater, a hook or a backoff refused, `refusal` says who and why.
struct Admission {
  std::error_code error;
  Refusal refusal;  // meaningful when error is set by a refusal
  // Held by the stages that reserve (check_dial_addr, admit_inbound, reserve_resources)
  // when they admit; pass it to the next stage.
  Reservation reservation;
  // check_dial: an open connection to reuse instead of dialing (null when the host should
  // dial: the dial is then in flight until the host reports its outcome, a connection to
  // the peer arrives, or DialConfig::dial_timeout passes).
  std::shared_ptr<Connection> existing;
  // Errc::dial_backoff: when the backoff ends; Errc::dial_pending: when the dial in flight
  // lapses if nothing is reported.
  std::optional<TimePoint> retry_at;
  explicit operator bool() const noexcept { return !error; }
};

}  // namespace dep2p::connmgr
