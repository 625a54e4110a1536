// RealmConnectionManager: per-application pools ("realms") inside one node's pool, each
// with its own limits, tags, protections and trimming (docs/design.md, "Realms").
//
// A connection enters the node's pool as usual (add_connection on manager()). When the
// host knows the realms a peer authenticated into before the connection is added, it
// claims them on the admission's reservation: the realm's limits are checked then, and
// the add binds the connection to them in the same step, so a connection its realm
// refuses never enters the pool. Otherwise the host binds an added connection later. One
// connection may be bound to several realms and then counts once globally and once in
// each of them. Bindings end with unbind(), remove_realm(), or by themselves when the
// connection leaves the pool for any reason.
//
//   dep2p::connmgr::RealmConnectionManager node(io, config);
//   dep2p::connmgr::RealmConfig chat;
//   chat.hard_max = 64; chat.low_water = 16; chat.high_water = 48; chat.min_reserved = 8;
//   node.create_realm("chat", chat);
//   auto admitted = node.manager().admit_inbound(remote);
//   ... handshake ...
//   // on_secured and the claim of "chat" in one step (or manager().on_secured, then claim):
//   if (!node.on_secured(admitted.reservation, peer, "chat")) {
//     return;  // refused: never in the pool
//   }
//   node.manager().add_admitted(connection, std::move(admitted.reservation));  // bound
//
//   node.manager().add_connection(other);                   // or: in the pool first,
//   if (auto bound = node.bind(*other, "chat"); !bound) ...  // then bound (or refused)
//
// Trimming, in short (docs/architecture.md, "Realms", has the full rules and why):
// - A realm holding high_water bound connections is trimmed among its own members down
//   to low_water; only the connections bound to it are closed.
// - The node's trim (manager().trim(), the background check) ranks peers by value as
//   usual but takes victims first from unbound connections and from realms above their
//   share (their low_water), largest excess first; then from realms above their
//   min_reserved; it never takes a realm below min_reserved. At equal value an unbound
//   peer goes before a bound one. Only force_trim() may go below the reserves.
// - Realm tags and protections are namespaced: they count in their own realm's trim only.
//   In the node's trim a realm defends its members with its share and its reserve.
//
// Thread safety: as ConnectionManager; every method may be called from any thread, and
// no host code runs under the realm layer's lock or the manager's.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "dep2p/connmgr/admission.hpp"
#include "dep2p/connmgr/config.hpp"
#include "dep2p/connmgr/connection.hpp"
#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/explain.hpp"
#include "dep2p/connmgr/export.hpp"
#include "dep2p/connmgr/metrics_description.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {

// The limits of one realm. Counts are of bound connections unless said otherwise; 0
// disables a limit (high_water 0: no realm trim).
struct DEP2P_CONNMGR_EXPORT RealmConfig {
  // Distinct peers with at least one connection bound to the realm; a bind that would
  // add one more is refused with Errc::realm_full.
  std::size_t max_members = 0;
  // Bound connections; a bind beyond it is refused with Errc::realm_full.
  std::size_t hard_max = 0;
  // The realm trim starts at high_water bound connections and brings the realm down to
  // low_water. low_water is also the realm's share in the node's trim.
  std::size_t low_water = 0;
  std::size_t high_water = 0;
  // Bound connections the node's trim leaves alone (force_trim excepted). While the realm
  // holds fewer, a member that claims it at admission may pass a full connection cap: its
  // add closes another connection to make room (CloseReason::made_room; docs/design.md,
  // "Realms").
  std::size_t min_reserved = 0;
  // Claims outstanding (claimed reservations not yet added or dropped); a claim beyond it
  // is refused with Errc::limit_exceeded. Claims count towards hard_max and max_members
  // from the claim on.
  std::size_t max_pending = 0;
  // Streams open on connections bound to the realm; a stream_opened on such a connection
  // beyond it is refused (Errc::limit_exceeded, Stage::stream, scope "realm <name>", limit
  // "max_streams"). Once any realm has one, every stream open and close of the node takes
  // the manager's whole lock, as a system stream limit makes it do.
  std::size_t max_streams = 0;

  // The first rule broken: min_reserved <= low_water <= high_water <= hard_max (where
  // set), max_members <= hard_max.
  std::optional<ConfigError> validate() const;
};

struct RealmStats {
  std::size_t connections = 0;  // bound now
  std::size_t members = 0;      // distinct peers bound now
  std::uint64_t binds = 0;
  std::uint64_t unbinds = 0;          // explicit, by disconnect, or by remove_realm
  std::size_t pending = 0;            // claims outstanding now
  std::uint64_t claims = 0;           // claims accepted (each became a binding or ended)
  std::uint64_t refused_full = 0;     // binds and claims refused with realm_full
  std::uint64_t refused_pending = 0;  // claims refused at max_pending
  // Admissions above a full connection cap for this realm below its reserve: added by
  // closing another connection (CloseReason::made_room), or refused with nothing to close.
  std::uint64_t made_room = 0;
  std::uint64_t refused_no_room = 0;
  // Streams open on the bound connections, counted once any realm has max_streams (0
  // before), and streams refused at this realm's max_streams.
  std::size_t streams = 0;
  std::uint64_t refused_streams = 0;
  std::uint64_t trims = 0;             // realm trims that ran
  std::uint64_t trimmed = 0;           // connections closed by realm trims
  std::uint64_t trimmed_globally = 0;  // bound connections closed by the node's trims
};

// A peer's standing in one realm it is a member of (RealmConnectionManager::explain).
struct RealmStanding {
  std::string realm;
  std::size_t bound = 0;      // the peer's connections bound to the realm
  std::int64_t value = 0;     // its value in the realm (the realm's own tags)
  bool is_protected = false;  // protected in the realm (counts in the realm's trim only)
  // The realm now: its bound connections, its share (low_water) and its reserve.
  std::size_t realm_connections = 0;
  std::size_t share = 0;
  std::size_t reserve = 0;
  // What the node's trim may take from the realm now: from its excess over its share
  // first, then from what it holds above its reserve; nothing at or below its reserve
  // (force_trim excepted).
  enum class Give : std::uint8_t { above_share, above_reserve, at_reserve };
  Give give = Give::at_reserve;
};

// Why the node keeps a peer, with its realms (RealmConnectionManager::explain).
struct RealmExplanation {
  Explanation node;                   // manager().explain(peer)
  std::vector<RealmStanding> realms;  // the realms it is a member of, by name
  // The realm whose rules let the node's trim take this peer's bound connections first:
  // the one furthest above its share, else furthest above its reserve; none when every
  // realm of the peer is at its reserve, or the peer is in none.
  std::optional<std::string> gives_up;
  // node.summary, then the realms: "...; realms: chat (2 bound, above share by 3), ..."
  std::string summary;
};

class DEP2P_CONNMGR_EXPORT RealmConnectionManager {
 public:
  using executor_type = ConnectionManager::executor_type;

  // Builds the node's ConnectionManager. While connections are bound, the realm rules rank
  // its trims; otherwise deps.trimmer (or the default order) decides alone.
  // Throws std::invalid_argument naming the field when config.validate() fails.
  RealmConnectionManager(executor_type executor, Config config = {}, Dependencies deps = {});
  template <typename ExecutionContext>
  requires std::convertible_to<ExecutionContext&, boost::asio::execution_context&>
  RealmConnectionManager(ExecutionContext& context, Config config = {}, Dependencies deps = {})
      : RealmConnectionManager(executor_type(context.get_executor()), std::move(config),
                               std::move(deps)) {}
  ~RealmConnectionManager();
  RealmConnectionManager(const RealmConnectionManager&) = delete;
  RealmConnectionManager& operator=(const RealmConnectionManager&) = delete;

  // The node's pool: connections, admission, global tags and protections, trims. Change
  // the global watermarks through set_limits() below, which checks them against the
  // realms' reserves.
  ConnectionManager& manager() noexcept;
  const ConnectionManager& manager() const noexcept;

  // --- Realms -----------------------------------------------------------------------
  // Errc::invalid_argument for an empty name or a config that fails validate() or
  // contradicts the node (hard_max above the system connection cap, the reserves summing
  // above the global low water); `error`, if given, names the field. Errc::realm_exists.
  std::error_code create_realm(std::string_view realm, const RealmConfig& config,
                               ConfigError* error = nullptr);
  // Unbinds every connection of the realm (they stay open) and drops its tags and
  // protections. Errc::unknown_realm.
  std::error_code remove_realm(std::string_view realm);
  // Changes a realm's limits, validated as in create_realm. Lowering high_water to or
  // below the realm's bound connections schedules a trim of the realm on the executor.
  std::error_code set_realm_limit(std::string_view realm, const RealmConfig& config,
                                  ConfigError* error = nullptr);
  std::optional<RealmConfig> realm_config(std::string_view realm) const;
  std::vector<std::string> realms() const;

  // --- Claims -----------------------------------------------------------------------
  // Claims the realm for the connection an admission will add: call it after
  // manager().on_secured() (the reservation knows its peer), before add_admitted. The
  // realm's hard_max and max_members count its bound connections and its outstanding
  // claims; max_pending its outstanding claims. On success the claim holds its place
  // until the reservation ends: add_admitted(connection, reservation) binds the
  // connection to every realm claimed, in the step that adds it (a RealmBoundEvent each),
  // and dropping the reservation gives the places back.
  // Errc::realm_full (hard_max, max_members) and Errc::limit_exceeded (max_pending) with
  // a refusal at Stage::claim naming the realm and the limit; Errc::invalid_argument for
  // a reservation that is not open in manager() or before on_secured; Errc::unknown_realm.
  // Claiming a realm twice on one reservation is a no-op. A peer that is a member when it
  // claims is counted as one; should it leave the realm before the add, the add may take
  // the realm one member over max_members (so may claims made while max_members was 0).
  Admission claim(const Reservation& reservation, std::string_view realm);
  // manager().on_secured() and claim() of `realm` in one step (one pass through the
  // manager's lock): the errors of on_secured first (its refusal at Stage::secured), then
  // those of the claim (at Stage::claim). Further realms are claimed with claim().
  Admission on_secured(Reservation& reservation, const NodeId& peer, std::string_view realm);

  // --- Binding ----------------------------------------------------------------------
  // Binds a connection tracked by manager() to the realm. Errc::realm_full when the realm
  // is at hard_max or max_members (refusal says which, with Stage::bind),
  // Errc::unknown_connection for a connection not in the pool, Errc::unknown_realm.
  // Binding twice is a no-op. Reaching high_water schedules a trim of the realm.
  Admission bind(const Connection& connection, std::string_view realm);
  // Errc::unknown_connection when the connection is not bound to the realm.
  std::error_code unbind(const Connection& connection, std::string_view realm);

  // --- Queries ----------------------------------------------------------------------
  // The connections bound to the realm now (empty if unknown), in no particular order; a
  // connection that leaves the pool meanwhile is not listed.
  std::vector<std::shared_ptr<Connection>> realm_connections(std::string_view realm) const;
  std::size_t realm_connection_count(std::string_view realm) const;  // bound now; 0 if unknown
  std::vector<NodeId> members(std::string_view realm) const;
  std::vector<std::string> realms_of(const NodeId& peer) const;  // sorted
  std::optional<RealmStats> realm_stats(std::string_view realm) const;
  // manager().explain(peer) and the peer's standing in each of its realms; nullopt when
  // the manager knows nothing of the peer. The node's rank in it is under the default
  // order, not the realm rules' reordering. O(peers), for diagnosis.
  std::optional<RealmExplanation> explain(const NodeId& peer) const;
  // manager().write_prometheus(out), then per-realm metrics labelled by realm name
  // (dep2p_connmgr_realm_connections{realm="chat"} 5, ...), realms in name order. No lock
  // is held while writing to `out`.
  void write_prometheus(std::ostream& out) const;
  // The walk write_prometheus() writes: for_each_metric(manager().stats(), visitor), then
  // the per-realm families (metrics_description.hpp), for a host that feeds its own
  // registry. No lock is held while the visitor runs.
  void for_each_metric(MetricVisitor& visitor) const;

  // --- Realm tags and protections (namespaced) --------------------------------------
  // Only for members (Errc::unknown_peer otherwise); they go when the peer's last bound
  // connection leaves the realm.
  std::error_code tag_peer(std::string_view realm, const NodeId& peer, std::string_view name,
                           int value);
  std::error_code untag_peer(std::string_view realm, const NodeId& peer, std::string_view name);
  std::optional<std::int64_t> realm_value(std::string_view realm, const NodeId& peer) const;
  std::error_code protect(std::string_view realm, const NodeId& peer, std::string_view tag);
  // Returns whether the peer is still protected in the realm by another tag.
  bool unprotect(std::string_view realm, const NodeId& peer, std::string_view tag);
  bool is_protected(std::string_view realm, const NodeId& peer) const;

  // --- Trimming ---------------------------------------------------------------------
  // Trims the realm down to its low_water if it holds more (grace and global or realm
  // protections respected). Returns connections closed.
  std::size_t trim_realm(std::string_view realm);
  // The global watermarks (ConnectionManager::set_limits), refused with
  // Errc::invalid_argument when the realms' reserves would sum above low_water.
  std::error_code set_limits(std::size_t low_water, std::size_t high_water,
                             ConfigError* error = nullptr);

  // Closes manager() and stops realm trims. Idempotent.
  void close();

  // The layer's internal state (src/realm/); an incomplete type outside the library.
  struct State;

 private:
  std::error_code claim_checked(const Reservation& reservation, std::string_view realm,
                                Refusal* refusal);
  std::error_code secure_checked(Reservation& reservation, const NodeId& peer,
                                 std::string_view realm, Refusal* refusal);
  std::error_code bind_checked(const Connection& connection, std::string_view realm,
                               Refusal* refusal);
  std::shared_ptr<State> state_;
};

}  // namespace dep2p::connmgr
