// ManagerCore: the dials the manager asks the host's Dialer for — reconnecting the peers it
// keeps, and direct paths for peers reached only through a relay (docs/design.md,
// "Dialing"). The queue's rules are RedialQueue's, the backoff is DialBook's; this file
// locks, feeds them what the pool sees, and calls the Dialer once unlocked.
#include <algorithm>
#include <exception>

#include <spdlog/spdlog.h>

#include "manager/core.hpp"

namespace dep2p::connmgr::detail {

std::optional<std::uint8_t> ManagerCore::keep_priority(const NodeId& peer) const {
  const DialConfig& dial = config_.dial;
  if (dial.reconnect_protected && protections_.size() != 0) {
    if (dial.reconnect_tags.empty()) {
      if (protections_.is_protected(peer)) return RedialQueue::kProtected;
    } else {
      for (const std::string& tag : dial.reconnect_tags) {
        if (protections_.is_protected(peer, tag)) return RedialQueue::kProtected;
      }
    }
  }
  if (dial.reconnect_held && held(peer)) return RedialQueue::kHeld;
  return std::nullopt;
}

void ManagerCore::last_path_leaving(const Locked<>& locked, std::uint32_t slot,
                                    std::uint32_t conn_slot, CloseReason reason) {
  // Only a drop the remote's side caused is repaired: what the host or the manager closed
  // was meant to close.
  const bool dropped = reason == CloseReason::remote || reason == CloseReason::keepalive_timeout;
  if (!dropped && redial_.empty()) return;  // a trim's victims, mostly
  const NodeId peer = pool_.id_of(slot);
  if (!dropped) {
    redial_.cancel(peer);
    return;
  }
  const std::optional<std::uint8_t> priority = keep_priority(peer);
  if (!priority) {
    redial_.cancel(peer);
    return;
  }
  // An address the node dialed is one it can dial again; an inbound connection's remote
  // port is the peer's ephemeral one.
  std::vector<Endpoint> addresses;
  const ConnEntry& conn = pool_.conn(conn_slot);
  if (conn.direction == Direction::outbound && conn.path == PathKind::direct) {
    addresses.push_back(pool_.remote_of(conn_slot));
  }
  const TimePoint now = env_.time->now();
  if (redial_.reconnect(peer, *priority, std::move(addresses), now)) {
    arm_housekeeping(locked, now);  // the first dial goes at once, from the strand
  }
}

void ManagerCore::paths_changed(const Locked<>& locked, std::uint32_t slot) {
  const PeerSlot& entry = pool_.peer(slot);
  const NodeId peer = pool_.id_of(slot);
  if (entry.conns.empty()) {
    redial_.cancel_direct(peer);
    return;
  }
  bool direct = false;
  for (const std::uint32_t c : entry.conns)
    direct = direct || pool_.conn(c).path == PathKind::direct;
  // Connected: a reconnect is over, and succeeded (whoever dialed); a direct path ends a
  // direct-path job too.
  if (redial_.job_of(peer) == DialPurpose::reconnect || direct) {
    const auto ended = redial_.cancel(peer);
    if (ended && ended->purpose == DialPurpose::reconnect) {
      ++stats_.reconnects_succeeded;
      if (hub_.has_subscribers()) {
        hub_.enqueue(DialEvent{peer, DialPurpose::reconnect, std::max(ended->attempts, 1u),
                               DialOutcome::succeeded, std::nullopt, false});
      }
    }
  }
  if (direct) return;
  const TimePoint now = env_.time->now();
  if (redial_.want_direct(peer, now)) arm_housekeeping(locked, now);
}

void ManagerCore::pump_redials(const Locked<>& locked, TimePoint now, Effects& effects) {
  if (!policies_.dialer || redial_.empty()) return;
  for (const auto& [peer, serial] : redial_.lapsed(now)) {
    finish_redial(locked, peer, serial, DialFailure::timeout, now);
  }
  // While the host says the network is down nothing is dialed; network_changed(true)
  // makes every reconnect due.
  if (!dial_.reported_down()) {
    auto admit = [&](const NodeId& peer, DialPurpose purpose) -> RedialQueue::Admit {
      const std::uint32_t slot = pool_.find(peer);
      const bool connected = slot != kNoSlot && !pool_.peer(slot).conns.empty();
      if (purpose == DialPurpose::direct_path) {
        return {connected ? RedialQueue::Admit::dial : RedialQueue::Admit::drop, {}};
      }
      if (connected || !keep_priority(peer)) return {RedialQueue::Admit::drop, {}};
      if (auto backoff = dial_.in_backoff(peer, now)) {
        return {RedialQueue::Admit::later, backoff->until};
      }
      // Marked in flight like a dial check_dial allows: the host's own check_dial of the
      // peer is told dial_pending meanwhile.
      const DialBook::Verdict verdict = dial_.begin(peer, now);
      if (verdict.what != DialBook::Verdict::dial) {
        return {RedialQueue::Admit::later, verdict.until};
      }
      return {RedialQueue::Admit::dial, {}};
    };
    std::vector<RedialQueue::Started> started = redial_.take(now, admit);
    post_dial_waiters(locked);
    for (RedialQueue::Started& s : started) {
      if (s.request.purpose == DialPurpose::reconnect) {
        ++stats_.reconnect_dials;
      } else {
        ++stats_.direct_path_dials;
      }
      if (hub_.has_subscribers()) {
        hub_.enqueue(DialEvent{s.request.peer, s.request.purpose, s.request.attempt, {}, {}});
      }
      effects.dials.push_back(std::move(s));
    }
  }
  if (auto wake = redial_.next_wake(!dial_.reported_down())) arm_housekeeping(locked, *wake);
}

void ManagerCore::finish_redial(const Locked<>& locked, const NodeId& peer, std::uint64_t serial,
                                std::optional<DialFailure> failure, TimePoint now) {
  const std::optional<DialPurpose> purpose = redial_.flying(peer, serial);
  if (!purpose) return;  // late, or the job ended meanwhile
  std::optional<TimePoint> backoff_end;
  if (failure) {
    ++stats_.dial_failures[static_cast<std::size_t>(*failure)];
  } else {
    ++stats_.dial_successes;
  }
  if (*purpose == DialPurpose::reconnect) {
    // The dial's outcome, as if the host had reported it: it ends the peer's dial in
    // flight and grows its backoff.
    if (failure) {
      backoff_end = dial_.failed(peer, nullptr, *failure, now, pool_.counts().connections);
    } else {
      dial_.succeeded(peer, now);
    }
    post_dial_waiters(locked);
  }
  const auto finished = redial_.finished(peer, serial, failure, now, backoff_end);
  if (!finished) return;
  const bool given_up = finished->end == RedialQueue::End::gave_up;
  if (given_up) ++stats_.reconnects_given_up;
  if (*purpose == DialPurpose::reconnect && !failure)
    ++stats_.reconnects_succeeded;  // not yet connected
  if (hub_.has_subscribers()) {
    hub_.enqueue(DialEvent{peer, *purpose, finished->attempt,
                           failure ? DialOutcome::failed : DialOutcome::succeeded, failure,
                           given_up});
  }
}

void ManagerCore::redial_done(const NodeId& peer, std::uint64_t serial,
                              std::optional<DialFailure> failure) {
  const TimePoint now = env_.time->now();
  Effects effects;
  {
    std::lock_guard lock(lock_);
    const Locked<> locked;
    if (closed_) return;
    finish_redial(locked, peer, serial, failure, now);
    pump_redials(locked, now, effects);
  }
  act(effects);
}

void ManagerCore::ask_dialer(std::vector<RedialQueue::Started>& dials) {
  // Taken out first: a Dialer that answers from inside dial() comes back here.
  std::vector<RedialQueue::Started> batch;
  batch.swap(dials);
  for (RedialQueue::Started& s : batch) {
    const NodeId peer = s.request.peer;
    const std::uint64_t serial = s.serial;
    if (ask_peer_dial(peer)) {
      hub_.drain();
      redial_done(peer, serial, DialFailure::refused);
      continue;
    }
    auto done = [weak = weak_from_this(), peer, serial](std::optional<DialFailure> failure) {
      if (auto self = weak.lock()) self->redial_done(peer, serial, failure);
    };
    try {
      policies_.dialer->dial(s.request, std::move(done));
    } catch (const std::exception& e) {
      env_.logger->warn("connmgr: Dialer::dial threw (counted as a dial error): {}", e.what());
      redial_done(peer, serial, DialFailure::error);
    } catch (...) {
      env_.logger->warn("connmgr: Dialer::dial threw a non-standard exception (a dial error)");
      redial_done(peer, serial, DialFailure::error);
    }
  }
}

}  // namespace dep2p::connmgr::detail
