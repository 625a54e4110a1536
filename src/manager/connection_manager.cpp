// ConnectionManager: the public facade. Every call forwards to the ManagerCore
// (manager/core.hpp); the stages that may refuse deliver the RefusedEvents they queued
// before returning.
#include <stdexcept>

#include "dep2p/connmgr/connection_manager.hpp"

#include <ostream>

#include "dep2p/connmgr/error.hpp"
#include "manager/core.hpp"
#include "observe/observability.hpp"

namespace dep2p::connmgr {

using detail::ManagerCore;

ConnectionManager::ConnectionManager(executor_type executor, Config config, Dependencies deps) {
  if (auto error = config.validate()) {
    throw std::invalid_argument("connmgr Config." + error->field + ": " + error->message);
  }
  core_ = std::make_shared<ManagerCore>(std::move(executor), std::move(config), std::move(deps));
  core_->start();
}

ConnectionManager::~ConnectionManager() { core_->close(); }

ConnectionManager::executor_type ConnectionManager::get_executor() const noexcept {
  return core_->executor();
}

// --- The pool ---------------------------------------------------------------------------

std::error_code ConnectionManager::add_connection(std::shared_ptr<Connection> connection) {
  return core_->add_connection(std::move(connection));
}
std::error_code ConnectionManager::remove_connection(const Connection& connection,
                                                     CloseReason reason) {
  return core_->remove_connection(connection, reason);
}
std::error_code ConnectionManager::close_peer(const NodeId& peer, CloseReason reason,
                                              std::string_view detail) {
  return core_->close_peer(peer, reason, detail);
}
std::error_code ConnectionManager::close_connection(const Connection& connection,
                                                    CloseReason reason, std::string_view detail) {
  return core_->close_connection(connection, reason, detail);
}
Admission ConnectionManager::stream_opened(const Connection& connection, Direction direction) {
  Admission result;
  result.error = core_->adjust_streams(connection, direction, true, &result.refusal);
  return result;
}
std::error_code ConnectionManager::stream_closed(const Connection& connection,
                                                 Direction direction) {
  return core_->adjust_streams(connection, direction, false, nullptr);
}
std::optional<ConnectionId> ConnectionManager::connection_id(const Connection& connection) const {
  return core_->connection_id(connection);
}
std::shared_ptr<Connection> ConnectionManager::best_connection(const NodeId& peer) const {
  return core_->best_connection(peer);
}
std::shared_ptr<Connection> ConnectionManager::get_connection(const NodeId& peer) const {
  return core_->best_connection(peer);
}
std::vector<std::shared_ptr<Connection>> ConnectionManager::connections(const NodeId& peer) const {
  return core_->connections(peer);
}
std::size_t ConnectionManager::connection_count() const {
  return core_->connection_count(std::nullopt);
}
std::size_t ConnectionManager::connection_count(Direction direction) const {
  return core_->connection_count(direction);
}
std::size_t ConnectionManager::peer_count() const { return core_->peer_count(); }
std::size_t ConnectionManager::temporary_peer_count() const {
  return core_->temporary_peer_count();
}

// --- Admission: refusals queue RefusedEvents; each stage delivers them before returning --

Admission ConnectionManager::check_dial(const NodeId& peer, bool force_new) {
  Admission result = core_->check_dial(peer, force_new);
  core_->deliver_events();
  return result;
}
Admission ConnectionManager::check_dial_addr(const NodeId& peer, const Endpoint& remote) {
  Admission result = core_->check_dial_addr(peer, remote);
  core_->deliver_events();
  return result;
}
void ConnectionManager::dial_succeeded(const NodeId& peer) {
  core_->dial_outcome(peer, nullptr, std::nullopt);
}
void ConnectionManager::dial_failed(const NodeId& peer, DialFailure why) {
  core_->dial_outcome(peer, nullptr, why);
}
void ConnectionManager::dial_failed(const NodeId& peer, const Endpoint& address, DialFailure why) {
  core_->dial_outcome(peer, &address, why);
}
void ConnectionManager::clear_backoff(const NodeId& peer) { core_->clear_backoff(peer); }
bool ConnectionManager::wait_dial(const NodeId& peer, std::function<void(DialOutcome)> handler) {
  return core_->wait_dial(peer, std::move(handler));
}
void ConnectionManager::network_changed(bool up) { core_->network_changed(up); }
std::optional<TimePoint> ConnectionManager::backoff_until(const NodeId& peer) const {
  return core_->backoff_until(peer);
}
Admission ConnectionManager::admit_inbound(const Endpoint& remote) {
  Admission result = core_->admit_inbound(remote);
  core_->deliver_events();
  return result;
}
Admission ConnectionManager::on_secured(Reservation& reservation, const NodeId& peer) {
  Admission result;
  if (!reservation.remote()) {
    result.error = Errc::invalid_argument;  // not an admission's reservation
    return result;
  }
  result.error = core_->on_secured(reservation, reservation.direction(), peer,
                                   *reservation.remote(), &result.refusal);
  core_->deliver_events();
  return result;
}
Admission ConnectionManager::add_admitted(std::shared_ptr<Connection> connection,
                                          Reservation&& reservation) {
  Admission result;
  result.error =
      core_->add_reserved(std::move(connection), std::move(reservation), &result.refusal);
  core_->deliver_events();
  return result;
}
Admission ConnectionManager::reserve_resources(const std::optional<NodeId>& peer,
                                               std::uint64_t memory_bytes,
                                               std::size_t file_descriptors) {
  Admission result = core_->reserve_resources(peer, memory_bytes, file_descriptors);
  core_->deliver_events();
  return result;
}
Limits ConnectionManager::effective_limits() const { return core_->effective_limits(); }

// --- Lifecycle, activity, keepalive -------------------------------------------------------

std::error_code ConnectionManager::track_pending(std::shared_ptr<Connection> connection,
                                                 ConnectionState state) {
  return core_->track_pending(std::move(connection), state);
}
std::error_code ConnectionManager::report_state(const Connection& connection,
                                                ConnectionState next) {
  return core_->report_state(connection, next);
}
std::optional<ConnectionState> ConnectionManager::state(const Connection& connection) const {
  return core_->state(connection);
}
std::error_code ConnectionManager::record_activity(const Connection& connection,
                                                   std::uint64_t bytes_in,
                                                   std::uint64_t bytes_out) {
  return core_->record_activity(connection, bytes_in, bytes_out);
}
std::optional<Duration> ConnectionManager::rtt(const Connection& connection) const {
  return core_->rtt(connection);
}
KeepAliveHold ConnectionManager::keep_alive(const NodeId& peer) { return core_->keep_alive(peer); }

// --- Tags and protection ----------------------------------------------------------------

std::error_code ConnectionManager::tag_peer(const NodeId& peer, std::string_view name, int value) {
  return core_->tag_peer(peer, name, value);
}
std::error_code ConnectionManager::untag_peer(const NodeId& peer, std::string_view name) {
  return core_->untag_peer(peer, name);
}
std::error_code ConnectionManager::upsert_tag(const NodeId& peer, std::string_view name,
                                              const std::function<int(int)>& fn) {
  return core_->upsert_tag(peer, name, fn);
}
std::optional<TagInfo> ConnectionManager::tag_info(const NodeId& peer) const {
  return core_->tag_info(peer);
}
DecayingTag ConnectionManager::register_decaying_tag(std::string_view name, Duration interval,
                                                     Decay decay, Bump bump, std::error_code& ec) {
  return core_->register_decaying_tag(name, interval, std::move(decay), std::move(bump), ec);
}
std::error_code ConnectionManager::protect(const NodeId& peer, std::string_view tag) {
  return core_->protect(peer, tag, Duration::zero());
}
std::error_code ConnectionManager::protect_for(const NodeId& peer, std::string_view tag,
                                               Duration duration) {
  if (duration.count() <= 0) return Errc::invalid_argument;
  return core_->protect(peer, tag, duration);
}
bool ConnectionManager::unprotect(const NodeId& peer, std::string_view tag) {
  return core_->unprotect(peer, tag);
}
bool ConnectionManager::is_protected(const NodeId& peer) const {
  return core_->is_protected(peer, std::nullopt);
}
bool ConnectionManager::is_protected(const NodeId& peer, std::string_view tag) const {
  return core_->is_protected(peer, tag);
}
std::vector<Protection> ConnectionManager::protections(const NodeId& peer) const {
  return core_->protections(peer);
}

// --- Trimming ---------------------------------------------------------------------------

std::size_t ConnectionManager::trim() {
  return core_->run_trim(ManagerCore::TrimKind::explicit_trim, 0);
}
std::size_t ConnectionManager::force_trim() {
  return core_->run_trim(ManagerCore::TrimKind::forced, 0);
}
std::size_t ConnectionManager::trim_connections(std::size_t count) {
  return core_->run_trim(ManagerCore::TrimKind::exact_count, count);
}
std::error_code ConnectionManager::set_limits(std::size_t low_water, std::size_t high_water) {
  return core_->set_limits(low_water, high_water);
}
Config ConnectionManager::config() const { return core_->config(); }

// --- Hooks and listening ----------------------------------------------------------------

Subscription ConnectionManager::add_before_connect(BeforeConnectHook hook) {
  return core_->add_before_connect(std::move(hook));
}
Subscription ConnectionManager::add_after_handshake(AfterHandshakeHook hook) {
  return core_->add_after_handshake(std::move(hook));
}
void ConnectionManager::listen(const Endpoint& address) {
  if (!is_closed()) core_->publish(ListenEvent{address});
}
void ConnectionManager::listen_close(const Endpoint& address) {
  if (!is_closed()) core_->publish(ListenCloseEvent{address});
}

// --- Observation ------------------------------------------------------------------------

Stats ConnectionManager::stats() const { return core_->stats(); }
TrimPlan ConnectionManager::plan_trim() const { return core_->plan_trim(); }
void ConnectionManager::write_prometheus(std::ostream& out) const {
  detail::write_prometheus(out, stats());
}
std::optional<Explanation> ConnectionManager::explain(const NodeId& peer) const {
  std::optional<Explanation> explanation = core_->explain(peer);
  if (explanation) {
    if (explanation->rank) {
      explanation->rank_in_force = core_->rank_in_force(peer, explanation->rank);
    }
    explanation->summary = detail::explain_summary(*explanation);
  }
  return explanation;
}
Subscription ConnectionManager::subscribe(EventHandler handler) {
  return core_->subscribe(std::move(handler));
}

void ConnectionManager::close() { core_->close(); }
bool ConnectionManager::is_closed() const { return core_->is_closed(); }

}  // namespace dep2p::connmgr
