// ManagerCore: the time-driven rules of connections — keepalive pings, idle closes,
// handshake deadlines, redundant relays — on one timer over the ConnectionSchedule, and
// the lifecycle states the host reports (docs/design.md, "Lifecycle, hooks and events" and
// "Keepalive, idle and paths").
#include <cmath>
#include <exception>

#include <spdlog/spdlog.h>

#include "manager/connection_access.hpp"
#include "manager/core.hpp"
#include "pool/activity.hpp"

namespace dep2p::connmgr::detail {

// Arms the keepalive timer for the earliest deadline, on the schedule's tick grid.
void ManagerCore::arm_keepalive(const Locked<>&, TimePoint now) {
  if (closed_) return;
  const std::optional<TimePoint> at = schedule_.wake(now);
  if (!at) return;
  if (timers_.keepalive_armed && timers_.keepalive_at <= *at) return;
  timers_.keepalive_armed = true;
  timers_.keepalive_at = *at;
  timers_.keepalive->wait_until(*at, [weak = weak_from_this()] {
    if (auto self = weak.lock()) self->keepalive_round();
  });
}

std::optional<Closing> ManagerCore::miss(const Locked<>& locked, std::uint32_t slot) {
  ConnEntry& conn = pool_.conn(slot);
  conn.ping_in_flight = false;
  if (conn.missed < UINT16_MAX) ++conn.missed;
  ++stats_.keepalive_misses;
  if (conn.missed < std::min<std::uint32_t>(config_.keepalive_max_missed, UINT16_MAX)) {
    return std::nullopt;
  }
  std::string detail = "keepalive: " + std::to_string(conn.missed) +
                       " pings in a row unanswered within " +
                       std::to_string(config_.keepalive_timeout.count()) + " ms";
  auto handle = detach(locked, slot, CloseReason::keepalive_timeout, detail);
  return Closing{std::move(handle), CloseReason::keepalive_timeout, std::move(detail)};
}

std::optional<Closing> ManagerCore::check_path_idle(const Locked<>& locked, std::uint32_t slot,
                                                    TimePoint now) {
  ConnEntry& conn = pool_.conn(slot);
  const PeerSlot& peer = pool_.peer(conn.peer_slot);
  if (peer.conns.size() < 2 || conn.redundant) {
    // The only path: the idle timeout judges it alone. A relay made redundant closes at
    // the end of its own grace.
    conn.path_watched = false;
    return std::nullopt;
  }
  const Duration path_idle = config_.path_idle_timeout;
  const TimePoint last_activity = ActivityAccess::read(*conn.handle).last;
  const TimePoint idle_at = last_activity + path_idle;
  // The best path carries the peer's traffic; one with streams is in use.
  if (idle_at > now || peer.best == slot || conn.streams() > 0) {
    schedule_.idle_check(slot, conn.id, idle_at > now ? idle_at : now + path_idle / 2,
                         /*path=*/true);
    return std::nullopt;
  }
  std::string detail =
      "path idle: nothing carried for " +
      std::to_string(
          std::chrono::duration_cast<std::chrono::milliseconds>(now - last_activity).count()) +
      " ms while the peer has " + std::to_string(peer.conns.size() - 1) + " other path(s)";
  auto handle = detach(locked, slot, CloseReason::idle_timeout, detail);
  return Closing{std::move(handle), CloseReason::idle_timeout, std::move(detail)};
}

void ManagerCore::keepalive_round() {
  const TimePoint now = env_.time->now();
  Effects effects;
  {
    std::lock_guard lock(lock_);
    const Locked<> locked;
    timers_.keepalive_armed = false;
    if (closed_) return;
    begin_detach_batch(locked);
    // Answers not in time.
    while (auto due = schedule_.pop_timeout(now)) {
      ConnEntry* conn = pool_.live_conn(due->slot, due->id);
      if (conn == nullptr || !conn->ping_in_flight || conn->ping_sequence != due->sequence) {
        continue;
      }
      if (auto c = miss(locked, due->slot)) effects.closes.push_back(std::move(*c));
    }
    // Pings due. One still in flight is not doubled; its timeout judges it.
    while (auto due = schedule_.pop_ping(now)) {
      ConnEntry* conn = pool_.live_conn(due->slot, due->id);
      if (conn == nullptr) continue;
      schedule_.ping_again(*due);
      if (conn->ping_in_flight) continue;
      conn->ping_in_flight = true;
      const std::uint32_t sequence = ++conn->ping_sequence;
      schedule_.ping_sent(due->slot, due->id, sequence, now);
      effects.pings.push_back({conn->handle, due->slot, due->id, sequence, now});
      ++stats_.pings_sent;
    }
    // Idle connections: re-checked against their latest activity when they come up.
    const Duration idle_timeout = config_.idle_timeout;
    while (auto due = schedule_.pop_idle(now)) {
      ConnEntry* conn = pool_.live_conn(due->slot, due->id);
      if (conn == nullptr) continue;
      if (due->sequence == ConnectionSchedule::kPathCheck) {
        if (auto c = check_path_idle(locked, due->slot, now))
          effects.closes.push_back(std::move(*c));
        continue;
      }
      const TimePoint last_activity = ActivityAccess::read(*conn->handle).last;
      const TimePoint idle_at = last_activity + idle_timeout;
      const PeerSlot& peer = pool_.peer(conn->peer_slot);
      if (idle_at > now) {
        schedule_.idle_check(due->slot, due->id, idle_at);
      } else if (conn->streams() > 0 || peer.is_protected || held(pool_.id_of(conn->peer_slot))) {
        schedule_.idle_check(due->slot, due->id, now + idle_timeout);
      } else {
        std::string detail = "idle: no streams and no activity for " +
                             std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                now - last_activity)
                                                .count()) +
                             " ms";
        auto handle = detach(locked, due->slot, CloseReason::idle_timeout, detail);
        effects.closes.push_back({std::move(handle), CloseReason::idle_timeout, std::move(detail)});
      }
    }
    close_redundant(locked, now, effects);
    expire_handshakes(locked, now, effects);
    end_detach_batch(locked);
    arm_keepalive(locked, now);
  }
  act(effects);  // closes, events, then the pings
}

void ManagerCore::send_pings(std::vector<Ping>& pings) {
  // Pings are host calls: unlocked. An answer may come back at once, from inside ping().
  for (Ping& ping : pings) {
    try {
      ping.handle->ping([weak = weak_from_this(), slot = ping.slot, id = ping.id,
                         sequence = ping.sequence, sent_at = ping.sent_at](std::error_code ec) {
        if (auto self = weak.lock()) self->on_pong(slot, id, sequence, sent_at, ec);
      });
    } catch (const std::exception& e) {
      env_.logger->warn("connmgr: Connection::ping threw (counted as a miss): {}", e.what());
      on_pong(ping.slot, ping.id, ping.sequence, ping.sent_at,
              make_error_code(Errc::invalid_argument));
    } catch (...) {
      env_.logger->warn("connmgr: Connection::ping threw a non-standard exception (a miss)");
      on_pong(ping.slot, ping.id, ping.sequence, ping.sent_at,
              make_error_code(Errc::invalid_argument));
    }
  }
  pings.clear();
}

void ManagerCore::on_pong(std::uint32_t slot, ConnectionId id, std::uint32_t sequence,
                          TimePoint sent_at, std::error_code ec) {
  const TimePoint now = env_.time->now();
  Effects effects;
  {
    std::lock_guard lock(lock_);
    const Locked<> locked;
    if (closed_) return;
    ConnEntry* conn = pool_.live_conn(slot, id);
    // Late answers (after their timeout) and answers to older pings are ignored.
    if (conn == nullptr || !conn->ping_in_flight || conn->ping_sequence != sequence) return;
    if (ec) {
      if (auto c = miss(locked, slot)) effects.closes.push_back(std::move(*c));
    } else {
      conn->ping_in_flight = false;
      conn->missed = 0;
      const Duration sample = now - sent_at;
      conn->srtt = conn->srtt == Duration::zero() ? sample : (conn->srtt * 7 + sample) / 8;
      if (pool_.peer(conn->peer_slot).conns.size() > 1) {
        effects.reselect.push_back(pool_.id_of(conn->peer_slot));
      }
    }
  }
  act(effects);
}

// No lock: the traffic is recorded on the handle (pool/activity.hpp). Only this manager
// sets the owner word to its token; a handle detached for closing still holds it until its
// closure is marked, and recording on it then is harmless (nobody reads it any more).
std::error_code ManagerCore::record_activity(const Connection& connection, std::uint64_t bytes_in,
                                             std::uint64_t bytes_out) {
  if (ConnectionAccess::owner(connection) != token_) return Errc::unknown_connection;
  ActivityAccess::record(connection, env_.time->now(), bytes_in, bytes_out);
  return {};
}

std::optional<Duration> ManagerCore::rtt(const Connection& connection) const {
  std::lock_guard lock(lock_);
  const Locked<> locked;
  auto slot = tracked_slot(locked, connection);
  if (!slot || pool_.conn(*slot).srtt == Duration::zero()) return std::nullopt;
  return pool_.conn(*slot).srtt;
}

KeepAliveHold ManagerCore::keep_alive(const NodeId& peer) {
  std::lock_guard lock(lock_);
  if (closed_) return {};
  ++holds_[peer];
  return KeepAliveHold(TokenKey{}, hold_owner_, peer);
}

void ManagerCore::release_hold(const NodeId& peer) noexcept {
  std::lock_guard lock(lock_);
  auto it = holds_.find(peer);
  if (it == holds_.end()) return;
  if (--it->second == 0) holds_.erase(it);
}

// --- Pending connections and reported states ----------------------------------------------

std::error_code ManagerCore::track_pending(std::shared_ptr<Connection> handle,
                                           ConnectionState state) {
  if (!handle) return Errc::invalid_argument;
  if (state != ConnectionState::dialing && state != ConnectionState::handshaking) {
    return Errc::illegal_transition;
  }
  const TimePoint now = env_.time->now();
  std::lock_guard lock(lock_);
  const Locked<> locked;
  if (closed_) return Errc::closed;
  const Connection* key = handle.get();
  if (pending_.entries.contains(key) || ours(*handle)) return Errc::duplicate_connection;
  const std::uint64_t serial = ++pending_.next_serial;
  pending_.entries.emplace(key, PendingEntry{std::move(handle), state, serial});
  schedule_.handshake(key, serial, now);
  arm_keepalive(locked, now);
  return {};
}

std::error_code ManagerCore::report_state(const Connection& connection, ConnectionState next) {
  // What to do once unlocked: a pending connection joins the pool (as add_connection), a
  // pooled one leaves it (as remove_connection), or a dropped pending handle is released.
  enum class After { nothing, add, remove } after = After::nothing;
  std::shared_ptr<Connection> handle;
  {
    std::lock_guard lock(lock_);
    const Locked<> locked;
    if (auto it = pending_.entries.find(&connection); it != pending_.entries.end()) {
      const ConnectionState current = it->second.state;
      if (next == ConnectionState::handshaking && current == ConnectionState::dialing) {
        it->second.state = next;
        return {};
      }
      if (next == ConnectionState::established && current == ConnectionState::handshaking) {
        after = After::add;
      } else if (next == ConnectionState::closed) {
        ++stats_.closes_by_reason[static_cast<std::size_t>(CloseReason::host)];
      } else {
        return Errc::illegal_transition;
      }
      handle = std::move(it->second.handle);
      pending_.entries.erase(it);
    } else if (auto slot = tracked_slot(locked, connection)) {
      ConnEntry& conn = pool_.conn(*slot);
      if (next == ConnectionState::closing && !conn.closing) {
        conn.closing = true;
        return {};
      }
      if (next != ConnectionState::closed) return Errc::illegal_transition;
      after = After::remove;
    } else {
      // The closure of a connection the manager closed: the handle is the host's again.
      if (next == ConnectionState::closed) ConnectionAccess::end_detached(connection, token_);
      return Errc::unknown_connection;
    }
  }
  switch (after) {
    case After::add: return add_connection(std::move(handle));
    case After::remove: return remove_connection(connection, CloseReason::host);
    case After::nothing: break;
  }
  return {};  // `handle` of a dropped pending connection goes here, unlocked
}

std::optional<ConnectionState> ManagerCore::state(const Connection& connection) const {
  std::lock_guard lock(lock_);
  const Locked<> locked;
  if (auto it = pending_.entries.find(&connection); it != pending_.entries.end()) {
    return it->second.state;
  }
  if (auto slot = tracked_slot(locked, connection)) {
    return pool_.conn(*slot).closing ? ConnectionState::closing : ConnectionState::established;
  }
  return std::nullopt;
}

// Pending connections whose handshake ran out of time.
void ManagerCore::expire_handshakes(const Locked<>&, TimePoint now, Effects& effects) {
  while (auto due = schedule_.pop_handshake(now)) {
    auto it = pending_.entries.find(due->key);
    if (it == pending_.entries.end() || it->second.serial != due->serial) continue;
    std::string detail = "handshake not finished within " +
                         std::to_string(config_.handshake_timeout.count()) + " ms (" +
                         std::string(to_string(it->second.state)) + ")";
    effects.closes.push_back(
        {std::move(it->second.handle), CloseReason::handshake_timeout, std::move(detail)});
    pending_.entries.erase(it);
    ++stats_.closes_by_reason[static_cast<std::size_t>(CloseReason::handshake_timeout)];
  }
}

}  // namespace dep2p::connmgr::detail
