// ConnectionManager: the pool of a node's connections, by peer, with tags, protections
// and low/high-water trimming (docs/design.md, "Pool and tags" to "Trimming"). The host hands it
// each established connection and reports each closure; the manager decides which connections to
// close when the pool grows too large and calls Connection::close() on them.
//
//   boost::asio::io_context io;
//   dep2p::connmgr::ConnectionManager manager(io, dep2p::connmgr::Config{});
//   manager.add_connection(connection);           // host: a connection is established
//   manager.tag_peer(peer, "dht", 20);            // raises the peer's value
//   manager.protect(peer, "relay");               // never trimmed while protected
//   manager.remove_connection(*connection);       // host: the connection has closed
//
// Thread safety: every public method is thread-safe and may be called from any thread.
// Timers (the background trim check) run on a strand of the executor given to the
// constructor. The manager never calls host code (Connection methods, trimmers, event
// handlers, upsert functions) while holding its lock, so host code may call back in; a
// Connection::close() that reports the closure synchronously is expected.
// After close() (or destruction) mutating calls return Errc::closed and timers stop.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>

#include "dep2p/connmgr/admission.hpp"
#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/config.hpp"
#include "dep2p/connmgr/connection.hpp"
#include "dep2p/connmgr/decay.hpp"
#include "dep2p/connmgr/events.hpp"
#include "dep2p/connmgr/explain.hpp"
#include "dep2p/connmgr/export.hpp"
#include "dep2p/connmgr/gater.hpp"
#include "dep2p/connmgr/keepalive.hpp"
#include "dep2p/connmgr/limits.hpp"
#include "dep2p/connmgr/metrics.hpp"
#include "dep2p/connmgr/path_selector.hpp"
#include "dep2p/connmgr/trimmer.hpp"
#include "dep2p/connmgr/types.hpp"

namespace spdlog {
class logger;
}

namespace dep2p::connmgr {

namespace detail {
class ManagerCore;
class PoolExtension;
struct CoreProbe;
}  // namespace detail

// What the manager uses from its environment; every member is optional.
struct Dependencies {
  // Defaults to a private logger named "connmgr" writing warnings and above to stderr
  // (never registered in spdlog's registry, never the default logger).
  std::shared_ptr<spdlog::logger> logger;
  // Defaults to SteadyTimeSource.
  std::shared_ptr<TimeSource> time_source;
  // Defaults to the library's own default order (make_score_trimmer()'s), which the
  // manager then applies to its pool directly instead of through a snapshot.
  std::shared_ptr<Trimmer> trimmer;
  // Defaults to make_default_path_selector().
  std::shared_ptr<PathSelector> path_selector;
  // Asked at every admission stage; null allows everything. Its on_tightened() is
  // subscribed to, and connections it then denies are closed with CloseReason::gated.
  std::shared_ptr<Gater> gater;
  // Dials for the manager: reconnecting the peers it keeps and asking for direct paths
  // (DialConfig). Null: the manager only advises (check_dial) and never asks for a dial.
  std::shared_ptr<Dialer> dialer;
  // Library-internal: the layer built on this manager (RealmConnectionManager sets it).
  // A host leaves it empty; the type is not part of the public interface.
  std::shared_ptr<detail::PoolExtension> extension;
};

struct TagInfo {
  TimePoint first_seen{};
  PeerValue value = 0;                                          // plain and decaying tags together
  std::vector<std::pair<std::string, TagValue>> tags;           // in the order first set
  std::vector<std::pair<std::string, TagValue>> decaying_tags;  // name, current value
  std::size_t connections = 0;
  bool temporary = false;  // tagged but not connected
};

class DEP2P_CONNMGR_EXPORT ConnectionManager {
 public:
  using executor_type = boost::asio::any_io_executor;

  // Throws std::invalid_argument naming the field when config.validate() fails.
  ConnectionManager(executor_type executor, Config config = {}, Dependencies deps = {});
  template <typename ExecutionContext>
  requires std::convertible_to<ExecutionContext&, boost::asio::execution_context&>
  ConnectionManager(ExecutionContext& context, Config config = {}, Dependencies deps = {})
      : ConnectionManager(executor_type(context.get_executor()), std::move(config),
                          std::move(deps)) {}
  // Calls close().
  ~ConnectionManager();
  ConnectionManager(const ConnectionManager&) = delete;
  ConnectionManager& operator=(const ConnectionManager&) = delete;

  executor_type get_executor() const noexcept;

  // --- The pool ---------------------------------------------------------------------
  // Tracks an established connection. Errc::invalid_argument for a null handle,
  // Errc::duplicate_connection if already tracked (ignored, counted), Errc::closed.
  std::error_code add_connection(std::shared_ptr<Connection> connection);
  // The host reports that a connection closed. The first report of a connection the
  // manager itself closed (from inside Connection::close or later) is expected: success,
  // counted in Stats::closure_reports. Errc::unknown_connection for any other handle that
  // is not tracked (a second report, a stranger), counted in Stats::duplicate_reports.
  std::error_code remove_connection(const Connection& connection,
                                    CloseReason reason = CloseReason::host);
  // Closes every connection to the peer (calls Connection::close) and forgets them.
  // Errc::unknown_peer when none is open.
  std::error_code close_peer(const NodeId& peer, CloseReason reason = CloseReason::host,
                             std::string_view detail = "closed by the host");
  // Closes one connection (calls Connection::close) and forgets it.
  // Errc::unknown_connection for a handle that is not tracked.
  std::error_code close_connection(const Connection& connection,
                                   CloseReason reason = CloseReason::host,
                                   std::string_view detail = "closed by the host");
  // The host reports stream opens and closes (trimming prefers idle peers; stream limits
  // apply). stream_opened is the stream stage of admission: false with
  // Errc::limit_exceeded, counting nothing, when a system or peer stream limit is full
  // (the refusal says which); Errc::unknown_connection for a connection not tracked.
  Admission stream_opened(const Connection& connection, Direction direction = Direction::inbound);
  std::error_code stream_closed(const Connection& connection,
                                Direction direction = Direction::inbound);

  // --- Admission (docs/design.md, "Admission"), cheapest stage first -----------------------------
  // Before dialing: an open connection to reuse (unless `force_new`); else the peer's
  // backoff (Errc::dial_backoff, with retry_at), a dial already in flight
  // (Errc::dial_pending), or the gater's refusal (Errc::peer_blocked); else "dial", and the
  // dial is in flight until its outcome is reported (below), a connection to the peer is
  // added, or DialConfig::dial_timeout passes. The backoff and in-flight refusals allocate
  // nothing: their Refusal texts are short (scope "peer", message "in dial backoff" or
  // "dial in flight"); retry_at says when to ask again.
  Admission check_dial(const NodeId& peer, bool force_new = false);
  // Before dialing an address: gater, the address's backoff (Errc::dial_backoff), system
  // and peer outbound limits (pending included), the outbound dial rate. Holds a pending
  // outbound slot while the reservation lives.
  Admission check_dial_addr(const NodeId& peer, const Endpoint& remote);

  // --- Dial outcomes (docs/design.md, "Dialing") -----------------------------------------------
  // The host reports how a dial ended. A success ends the peer's dial in flight and its
  // backoff (adding a connection to the peer does the same). A failure of the peer (every
  // address tried) ends its dial in flight and grows its backoff under `why`'s rule; a
  // failure of one address grows that address's backoff only. While the node is offline
  // (network_changed(false), or DialConfig::offline_after_failures failures in a row with
  // no connection open) failures grow no backoff.
  void dial_succeeded(const NodeId& peer);
  void dial_failed(const NodeId& peer, DialFailure why);
  void dial_failed(const NodeId& peer, const Endpoint& address, DialFailure why);
  // While a dial to `peer` is in flight (check_dial said "dial", or answers dial_pending),
  // runs `handler` on the manager's executor once it ends, with how; returns false, and
  // keeps nothing, when no dial is in flight.
  bool wait_dial(const NodeId& peer, std::function<void(DialOutcome)> handler);
  // Forgets the peer's backoff and its addresses'.
  void clear_backoff(const NodeId& peer);
  // The network went down (false) or came back (true). Coming back ends every backoff at
  // once (counts kept: a peer that fails again waits longer).
  void network_changed(bool up);
  // When the peer's own backoff ends, if it is in one.
  std::optional<TimePoint> backoff_until(const NodeId& peer) const;
  // An inbound connection arrived, before any handshake: gater, system inbound limits,
  // the per-address and per-subnet caps, the per-subnet rate. Never waits.
  Admission admit_inbound(const Endpoint& remote);
  // The handshake authenticated `peer` on the connection `reservation` was admitted for
  // (by admit_inbound or check_dial_addr: it carries the direction and the address):
  // gater, then the peer's connection limits. When admitted, the reservation also holds
  // the peer's pending slot. Errc::invalid_argument for a reservation that is not open,
  // not from one of those stages, or outbound to another peer.
  Admission on_secured(Reservation& reservation, const NodeId& peer);
  // The staged add: consumes the reservation (its pending slots end, its place under the
  // caps passes to the connection). Errc::invalid_argument for a reservation that is not
  // this connection's (direction or peer differ, already used, another manager's). Not
  // admitted (gater, an after_handshake hook, a cap no room could be made under): the
  // connection is not added and the reservation is released.
  Admission add_admitted(std::shared_ptr<Connection> connection, Reservation&& reservation);
  // Memory and file descriptors the host sets aside, in the system scope and, if given,
  // the peer's; released when the reservation goes.
  Admission reserve_resources(const std::optional<NodeId>& peer, std::uint64_t memory_bytes,
                              std::size_t file_descriptors = 0);
  // The hard limits in force (Config::limits as validated).
  Limits effective_limits() const;

  // --- Lifecycle (docs/design.md, "Lifecycle, hooks and events") ---------------------------------
  // Tracks a connection that is not established yet, in state `dialing` or
  // `handshaking`; it is closed with CloseReason::handshake_timeout unless it reaches
  // `established` within config().handshake_timeout. Errc::illegal_transition for another
  // starting state, Errc::duplicate_connection if already tracked.
  std::error_code track_pending(std::shared_ptr<Connection> connection, ConnectionState state);
  // The host reports the next state: dialing -> handshaking -> established (the pending
  // connection joins the pool, as add_connection) -> closing -> closed (it leaves, as
  // remove_connection). Any state but closed may go straight to closed. Anything else is
  // Errc::illegal_transition and changes nothing; Errc::unknown_connection for a handle
  // never tracked.
  std::error_code report_state(const Connection& connection, ConnectionState next);
  // The state of a tracked connection; nullopt once closed or never tracked.
  std::optional<ConnectionState> state(const Connection& connection) const;

  std::optional<ConnectionId> connection_id(const Connection& connection) const;
  // The peer's best connection (chosen by the PathSelector as paths come, go and their
  // RTTs change), or null.
  std::shared_ptr<Connection> best_connection(const NodeId& peer) const;
  // The same as best_connection() (the seed design's name).
  std::shared_ptr<Connection> get_connection(const NodeId& peer) const;
  std::vector<std::shared_ptr<Connection>> connections(const NodeId& peer) const;
  std::size_t connection_count() const;
  std::size_t connection_count(Direction direction) const;
  // Peers with at least one pooled connection. Temporary entries (peers tagged or kept by
  // tag_retention but not connected) are not among them: temporary_peer_count() counts
  // those.
  std::size_t peer_count() const;
  std::size_t temporary_peer_count() const;

  // --- Activity, keepalive, idle (docs/design.md, "Keepalive, idle and paths") -------------------
  // The host reports bytes moved on a connection: its last activity and smoothed rates
  // (what ActivityTrimmer ranks by), and a reason not to close it as idle. Takes none of
  // the manager's locks (the figures live on the handle), so calls for different
  // connections from different threads never wait for each other or for a trim.
  std::error_code record_activity(const Connection& connection, std::uint64_t bytes_in,
                                  std::uint64_t bytes_out);
  // The connection's smoothed round-trip time from keepalive pings (RFC 6298's 7/8
  // weighting); nullopt before its first answered ping or for an unknown connection.
  std::optional<Duration> rtt(const Connection& connection) const;
  // Suspends the idle timeout for the peer's connections while the hold lives.
  KeepAliveHold keep_alive(const NodeId& peer);

  // --- Tags (docs/design.md, "Pool and tags") ----------------------------------------------------
  // Tagging a peer without connections creates a temporary entry (bounded by
  // max_temp_peers: Errc::temp_peer_limit beyond it, nothing changed).
  std::error_code tag_peer(const NodeId& peer, std::string_view name, TagValue value);
  std::error_code untag_peer(const NodeId& peer, std::string_view name);
  // Sets the tag to fn(old value or 0). fn runs without the lock held (it may call the
  // manager) and runs again if the peer's tags changed meanwhile.
  std::error_code upsert_tag(const NodeId& peer, std::string_view name,
                             const std::function<TagValue(TagValue)>& fn);
  std::optional<TagInfo> tag_info(const NodeId& peer) const;

  // Registers a decaying tag (see decay.hpp). `interval` below config().decay_resolution
  // is raised to it. On error returns an invalid handle and sets `ec`:
  // Errc::tag_exists for a name in use, Errc::invalid_argument for an empty name or a
  // non-positive interval, Errc::closed.
  DecayingTag register_decaying_tag(std::string_view name, Duration interval, Decay decay,
                                    Bump bump, std::error_code& ec);

  // --- Protection (docs/design.md, "Protection") -------------------------------------------------
  // Errc::protection_limit when the tag already protects
  // config().max_peers_per_protection_tag peers (0 = no cap); nothing changes then.
  std::error_code protect(const NodeId& peer, std::string_view tag);
  // Protects for `duration` (> 0), after which this one protection ends by itself. On a
  // pair that exists the later end wins; protect() makes it permanent.
  std::error_code protect_for(const NodeId& peer, std::string_view tag, Duration duration);
  // Returns whether the peer is still protected by another tag.
  bool unprotect(const NodeId& peer, std::string_view tag);
  bool is_protected(const NodeId& peer) const;
  bool is_protected(const NodeId& peer, std::string_view tag) const;
  // The peer's protections in the order first set, each with its end (protect_for) or
  // none (until unprotected); empty for a peer no tag protects.
  std::vector<Protection> protections(const NodeId& peer) const;

  // --- Trimming (docs/design.md, "Trimming") -----------------------------------------------------
  // Trims if the pool holds more than low_water connections. Coalescing: a call made
  // while a trim runs waits for it and returns its result instead of starting another.
  // Returns the number of connections the trim closed.
  std::size_t trim();
  // Emergency trim down to low_water ignoring grace: unprotected peers first, then, only
  // if still above low water, protected ones. Returns connections closed.
  std::size_t force_trim();
  // Closes exactly `count` connections of eligible peers (unprotected, out of grace) in
  // the trimmer's order, fewer if fewer are eligible; the last peer may be closed only in
  // part. Returns connections closed.
  std::size_t trim_connections(std::size_t count);
  // trim()'s dry run: the victims a trim would close if it ran now, in the order it would
  // take them, each with its value, streams and a line saying why; closes nothing and
  // changes nothing (expired temporary entries are not pruned, no event is published).
  // Ranks as the trim would: the default order, the realm rules, or the host's trimmer
  // (asked with no lock held, like explain()'s rank in force). For diagnosis: O(peers log
  // peers) under the manager's lock.
  TrimPlan plan_trim() const;
  // Changes the watermarks at run time (validated like Config). Lowering high_water to
  // or below the current count schedules a trim on the manager's strand.
  std::error_code set_limits(std::size_t low_water, std::size_t high_water);
  Config config() const;

  // --- Hooks (docs/design.md, "Lifecycle, hooks and events") -------------------------------------
  // Run in the order added, without the manager's lock; the first rejection wins, is
  // counted (RefusalReason::hook), published (RefusedEvent) and returned. An exception
  // rejects. before_connect runs in check_dial_addr (after the gater); after_handshake
  // in both add_connection forms (Errc::connection_denied when it rejects).
  using BeforeConnectHook = std::function<Decision(const NodeId& peer, const Endpoint& remote)>;
  using AfterHandshakeHook = std::function<Decision(const Connection& connection)>;
  Subscription add_before_connect(BeforeConnectHook hook);
  Subscription add_after_handshake(AfterHandshakeHook hook);

  // The host reports its listening addresses; subscribers get ListenEvent / ListenCloseEvent.
  void listen(const Endpoint& address);
  void listen_close(const Endpoint& address);

  // --- Observation ------------------------------------------------------------------
  // A consistent snapshot of counts and totals (see metrics.hpp); O(connections).
  Stats stats() const;
  // stats() in the Prometheus text exposition format 0.0.4, metrics named
  // dep2p_connmgr_*; no lock is held while writing to `out`.
  void write_prometheus(std::ostream& out) const;
  // Why the peer is kept or how soon it would be trimmed (see explain.hpp); nullopt for
  // a peer with neither connections nor a temporary entry. For diagnosis only: O(peers)
  // under the manager's lock.
  std::optional<Explanation> explain(const NodeId& peer) const;
  Subscription subscribe(EventHandler handler);

  // Stops timers and event delivery and refuses further changes; connections stay open
  // (they are the host's). Idempotent; safe to call from an event handler or close().
  void close();
  bool is_closed() const;

 private:
  friend struct detail::CoreProbe;  // the library's own tests
  std::shared_ptr<detail::ManagerCore> core_;
};

}  // namespace dep2p::connmgr
