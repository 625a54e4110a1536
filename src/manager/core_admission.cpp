// ManagerCore: the admission stages, cheapest first (docs/design.md, "Admission"). Host
// code (gater intercepts, hooks) runs before the lock is taken; the limit checks are the
// pure functions of admission/limit_checks.hpp on counts read under it, and the ledger
// keeps what each reservation holds.
#include <spdlog/spdlog.h>

#include "manager/connection_access.hpp"
#include "manager/core.hpp"

namespace dep2p::connmgr::detail {
namespace {

// The scope named at the start of a subnet or rate refusal text ("subnet 10.1.2.0/24
// holds ..." -> "subnet 10.1.2.0/24").
std::string subnet_scope(const std::string& text) {
  const auto holds = text.find(" holds ");
  if (holds != std::string::npos) return text.substr(0, holds);
  const auto over_at = text.find(" over ");
  if (over_at != std::string::npos) {
    const auto start = text.find("subnet ");
    if (start != std::string::npos && start < over_at) return text.substr(start, over_at - start);
  }
  return "subnet";
}

std::string direction_word(Direction d) { return std::string(to_string(d)); }

}  // namespace

Refusal ManagerCore::refuse(const LimitBreach& breach, Stage stage, const std::string& prefix) {
  return count_refusal(stage, breach.reason, breach.scope, breach.limit, prefix + breach.text);
}

template <class F>
Decision ManagerCore::gate(F&& intercept) {
  return run_guarded(*env_.logger, "gater", std::forward<F>(intercept));
}

// Runs one gater intercept (if there is a gater); a denial becomes a counted and published
// refusal: "<what> refused by the gater: <reason>".
template <class F>
std::optional<Refusal> ManagerCore::ask_gater(Stage stage, const std::string& what, F&& intercept) {
  if (!policies_.gater) return std::nullopt;
  Decision decision = gate(std::forward<F>(intercept));
  if (decision) return std::nullopt;
  return count_refusal(stage, RefusalReason::gater, "gater", decision.reason,
                       what + " refused by the gater: " + decision.reason);
}

// An address the gater's allow list holds bypasses the per-address caps.
bool ManagerCore::gater_allows(const boost::asio::ip::address& address) {
  if (!policies_.gater) return false;
  try {
    return policies_.gater->bypasses_caps(address);
  } catch (...) {
    return false;
  }
}

ConnectionCounts ManagerCore::system_counts() const {
  const PoolCounts& pool = pool_.counts();
  return ConnectionCounts{
      {pool.inbound, pool.outbound},
      {ledger_.pending(Direction::inbound), ledger_.pending(Direction::outbound)}};
}

ConnectionCounts ManagerCore::peer_counts(const NodeId& peer) const {
  ConnectionCounts counts;
  if (const std::uint32_t slot = pool_.find(peer); slot != kNoSlot) {
    const PeerSlot& entry = pool_.peer(slot);
    counts.open[0] = entry.inbound;
    counts.open[1] = entry.conns.size() - entry.inbound;
  }
  if (const PeerCharges* charges = ledger_.peer(peer)) {
    counts.pending[0] = charges->pending[0];
    counts.pending[1] = charges->pending[1];
  }
  return counts;
}

Reservation ManagerCore::open_reservation(const Locked<>&, Charge charge,
                                          std::optional<Endpoint> remote) {
  const Direction direction = charge.direction;
  return Reservation(TokenKey{}, reservation_owner_, ledger_.open(std::move(charge)), direction,
                     std::move(remote));
}

void ManagerCore::release_reservation(std::uint64_t id) noexcept {
  std::lock_guard lock(lock_);
  ledger_.close(id, caps_, [this](const Charge& charge) {
    if (!charge.claims.empty()) end_claims(Locked<>{}, charge, nullptr);
  });
}

std::optional<Refusal> ManagerCore::ask_peer_dial(const NodeId& peer) {
  return ask_gater(Stage::dial, "dial", [&] { return policies_.gater->intercept_peer_dial(peer); });
}

Admission ManagerCore::check_dial(const NodeId& peer, bool force_new) {
  Admission result;
  const TimePoint now = env_.time->now();
  DialBook::Verdict verdict;
  {
    std::lock_guard lock(lock_);
    if (closed_) {
      result.error = Errc::closed;
      return result;
    }
    // A peer in backoff has no connection to reuse (DialBook::failed): asked first, it
    // spares the pool's lookup.
    if (auto backoff = dial_.in_backoff(peer, now)) {
      verdict = *backoff;
    } else {
      if (!force_new) {
        if (const std::uint32_t slot = pool_.find(peer); slot != kNoSlot) {
          const PeerSlot& entry = pool_.peer(slot);
          if (!entry.conns.empty()) {
            // Reuse: the best path.
            result.existing =
                pool_.conn(entry.best != kNoSlot ? entry.best : entry.conns.front()).handle;
            return result;
          }
        }
      }
      verdict = dial_.begin(peer, now);
      post_dial_waiters(Locked<>{});  // the waiters of a lapsed dial this one replaces
    }
  }
  if (verdict.what != DialBook::Verdict::dial) {
    refuse_dial(peer, nullptr, verdict, now, result.error, result.refusal);
    result.retry_at = verdict.until;
    return result;
  }
  if (auto r = ask_peer_dial(peer)) {
    result.error = Errc::peer_blocked;
    result.refusal = std::move(*r);
    std::lock_guard lock(lock_);
    dial_.abandon(peer);  // no dial is made
    post_dial_waiters(Locked<>{});
    return result;
  }
  dial_attempts_.fetch_add(1, std::memory_order_relaxed);
  return result;
}

Admission ManagerCore::check_dial_addr(const NodeId& peer, const Endpoint& remote) {
  Admission result;
  if (auto r = ask_gater(Stage::dial_addr, "dial",
                         [&] { return policies_.gater->intercept_addr_dial(peer, remote); })) {
    result.error = Errc::connection_denied;
    result.refusal = std::move(*r);
    return result;
  }
  if (Decision decision = hooks_.run(hooks_.before_connect(), *env_.logger, peer, remote);
      !decision) {
    result.error = Errc::connection_denied;
    result.refusal = count_refusal(Stage::dial_addr, RefusalReason::hook, "hook", decision.reason,
                                   "dial refused by a before_connect hook: " + decision.reason);
    return result;
  }
  // Outbound connections are charged only under a group cap (SubnetCounter::try_add).
  const bool grouped = caps_.has_group_cap();
  const bool allowlisted = grouped && gater_allows(remote.address);
  const TimePoint now = env_.time->now();
  std::lock_guard lock(lock_);
  const Locked<> locked;
  if (closed_) {
    result.error = Errc::closed;
    return result;
  }
  if (auto until = dial_.address_backoff(peer, remote, now)) {
    DialBook::Verdict verdict{DialBook::Verdict::backoff, *until,
                              dial_.address_failures(peer, remote, now)};
    refuse_dial(peer, &remote, verdict, now, result.error, result.refusal);
    result.retry_at = *until;
    return result;
  }
  std::optional<LimitBreach> breach =
      connection_breach(config_.limits.system, system_counts(), Direction::outbound,
                        [] { return std::string("system"); });
  const bool over_cap = breach && may_overdraw(locked, *breach);
  if (over_cap) breach.reset();
  if (!breach) {
    breach = connection_breach(config_.limits.peer, peer_counts(peer), Direction::outbound,
                               [&] { return "peer " + peer.short_string(); });
  }
  if (!breach && grouped) {
    if (auto text = caps_.try_add(remote.address, allowlisted, Direction::outbound)) {
      breach = LimitBreach{RefusalReason::subnet_cap, subnet_scope(*text), "group cap",
                           std::move(*text)};
    }
  }
  if (!breach) {
    if (auto text = outbound_dials_.admit(now)) {
      if (grouped) caps_.remove(remote.address, Direction::outbound);  // undo the place taken
      breach = LimitBreach{RefusalReason::rate_limit, "system", "outbound_dials", std::move(*text)};
    }
  }
  if (breach) {
    result.error = Errc::limit_exceeded;
    result.refusal = refuse(*breach, Stage::dial_addr, "outbound refused: ");
    return result;
  }
  Charge charge;
  charge.direction = Direction::outbound;
  charge.pending = true;
  charge.peer = peer;
  if (grouped) charge.capped_address = remote.address;
  charge.over_cap = over_cap;
  result.reservation = open_reservation(locked, std::move(charge), remote);
  return result;
}

Admission ManagerCore::admit_inbound(const Endpoint& remote) {
  Admission result;
  if (auto r = ask_gater(Stage::accept, "inbound",
                         [&] { return policies_.gater->intercept_accept(remote); })) {
    result.error = Errc::connection_denied;
    result.refusal = std::move(*r);
    return result;
  }
  const bool allowlisted = gater_allows(remote.address);
  const TimePoint now = env_.time->now();
  std::lock_guard lock(lock_);
  const Locked<> locked;
  if (closed_) {
    result.error = Errc::closed;
    return result;
  }
  std::optional<LimitBreach> breach =
      connection_breach(config_.limits.system, system_counts(), Direction::inbound,
                        [] { return std::string("system"); });
  const bool over_cap = breach && may_overdraw(locked, *breach);
  if (over_cap) breach.reset();
  if (!breach) {
    if (auto text = caps_.try_add(remote.address, allowlisted)) {
      const char* limit = text->starts_with("group ") ? "group cap" : "subnet cap";
      breach = LimitBreach{RefusalReason::subnet_cap, subnet_scope(*text), limit, std::move(*text)};
    }
  }
  if (!breach) {
    if (auto text = inbound_rates_.admit(remote.address, now)) {
      caps_.remove(remote.address);  // undo the place taken just above
      breach = LimitBreach{RefusalReason::rate_limit, subnet_scope(*text), "inbound rate",
                           std::move(*text)};
    }
  }
  if (breach) {
    result.error = Errc::limit_exceeded;
    result.refusal = refuse(*breach, Stage::accept, "inbound refused: ");
    return result;
  }
  Charge charge;
  charge.direction = Direction::inbound;
  charge.pending = true;
  charge.capped_address = remote.address;
  charge.over_cap = over_cap;
  result.reservation = open_reservation(locked, std::move(charge), remote);
  return result;
}

std::error_code ManagerCore::on_secured(Reservation& reservation, Direction direction,
                                        const NodeId& peer, const Endpoint& remote,
                                        Refusal* refusal, ClaimCheck* claim) {
  if (!reservation.valid() || reservation.direction() != direction) {
    return Errc::invalid_argument;
  }
  if (auto r = ask_gater(Stage::secured, direction_word(direction), [&] {
        return policies_.gater->intercept_secured(direction, peer, remote);
      })) {
    if (refusal != nullptr) *refusal = std::move(*r);
    return Errc::peer_blocked;
  }
  std::lock_guard lock(lock_);
  const Locked<> locked;
  if (closed_) return Errc::closed;
  Charge* charge = ledger_.find(reservation.id());
  if (charge == nullptr) return Errc::invalid_argument;
  if (charge->peer) {
    // Outbound reservations know their peer from the dial; it must be the same one.
    if (!(*charge->peer == peer)) return Errc::invalid_argument;
    if (claim != nullptr) claim->check(locked, peer, charge->claims);
    return {};
  }
  if (auto breach = connection_breach(config_.limits.peer, peer_counts(peer), direction,
                                      [&] { return "peer " + peer.short_string(); })) {
    auto r = refuse(*breach, Stage::secured, direction_word(direction) + " refused: ");
    if (refusal != nullptr) *refusal = std::move(r);
    return Errc::limit_exceeded;
  }
  ledger_.assign_peer(*charge, peer);
  if (claim != nullptr) claim->check(locked, peer, charge->claims);
  return {};
}

std::error_code ManagerCore::add_reserved(std::shared_ptr<Connection> handle,
                                          Reservation reservation, Refusal* refusal) {
  if (!handle || !reservation.valid()) return Errc::invalid_argument;
  auto facts = read_facts(*handle);
  if (!facts) return Errc::invalid_argument;
  if (auto r = ask_gater(Stage::add, direction_word(facts->direction),
                         [&] { return policies_.gater->intercept_upgraded(*handle); })) {
    if (refusal != nullptr) *refusal = std::move(*r);
    return Errc::connection_denied;  // `reservation` releases its charges
  }
  if (auto ec = after_handshake(*handle, facts->direction, refusal)) return ec;
  Effects effects;
  {
    std::lock_guard lock(lock_);
    const Locked<> locked;
    if (closed_) return Errc::closed;
    const Charge* charge = ledger_.find(reservation.id());
    if (charge == nullptr || charge->direction != facts->direction ||
        (charge->peer && !(*charge->peer == facts->peer))) {
      return Errc::invalid_argument;  // not this connection's reservation
    }
    const Connection* key = handle.get();
    const bool claimed = !charge->claims.empty();
    Room room;
    if (charge->over_cap) {
      if (auto ec = plan_room(locked, *charge, facts->peer, room, refusal)) return ec;
    }
    if (auto ec = insert_connection(locked, std::move(handle), *facts, charge->capped_address)) {
      return ec;  // the reservation (still registered) releases everything
    }
    const std::uint32_t slot = ConnectionAccess::slot(*key);
    if (claimed) {
      // The claims become bindings before anyone else sees the connection.
      const ConnectionPlace place{slot, pool_.conn(slot).id};
      end_claims(locked, *ledger_.find(reservation.id()), &place);
    }
    if (room.victim) {
      // Planned in this critical section: the victim is still there.
      effects.closes.push_back({detach(locked, *room.victim, CloseReason::made_room, room.detail),
                                CloseReason::made_room, room.detail});
    }
    if (apply_path_rules(locked, slot, effects)) effects.reselect.push_back(facts->peer);
    // The connection now holds the address's place; the pending slot ends.
    ledger_.consume(reservation.take(TokenKey{}));
  }
  act(effects);
  return {};
}

bool ManagerCore::may_overdraw(const Locked<>& locked, const LimitBreach& breach) {
  if (breach.reason != RefusalReason::connection_limit) return false;
  const std::shared_ptr<PoolExtension> extension = policies_.extension.lock();
  return extension && ledger_.over_cap() < extension->reserve_shortfall(locked);
}

std::error_code ManagerCore::plan_room(const Locked<>& locked, const Charge& charge,
                                       const NodeId& peer, Room& room, Refusal* refusal) {
  ConnectionCounts counts = system_counts();
  // This admission's pending place becomes its connection: the cap is overdrawn if the
  // others alone fill it.
  --counts.pending[charge.direction == Direction::inbound ? 0 : 1];
  const std::optional<LimitBreach> breach = connection_breach(
      config_.limits.system, counts, charge.direction, [] { return std::string("system"); });
  if (!breach || breach->reason != RefusalReason::connection_limit) return {};
  RoomChoice choice;
  if (const std::shared_ptr<PoolExtension> extension = policies_.extension.lock()) {
    const CandidateView view = CandidateView(pool_, decay_, env_.time->now(), config_.grace_period,
                                             CandidateView::Mode::normal)
                                   .with_diversity(diversity_ ? &*diversity_ : nullptr);
    // A direction's cap is freed only by a connection in that direction.
    const bool total = breach->limit == "connections_total";
    choice = extension->make_room(locked, view, charge.claims, pool_.find(peer),
                                  total ? std::nullopt : std::optional{charge.direction});
  }
  std::string why;
  if (choice.realm.empty()) {
    why = "; admitted above the cap for a realm below its reserve, it claims none";
  } else if (!choice.victim) {
    why = "; nothing may close to make room for realm " + choice.realm + " below its reserve (" +
          std::to_string(choice.held) + " of " + std::to_string(choice.reserve) +
          "): every other connection is protected, in its grace period, or in a realm at its "
          "reserve";
  } else {
    room.victim = choice.victim;
    room.detail = "made room for realm " + choice.realm + " below its reserve (" +
                  std::to_string(choice.held) + " of " + std::to_string(choice.reserve) + ")";
    return {};
  }
  Refusal r = count_refusal(Stage::add, breach->reason, breach->scope, breach->limit,
                            direction_word(charge.direction) + " refused: " + breach->text + why);
  if (refusal != nullptr) *refusal = std::move(r);
  return Errc::limit_exceeded;
}

Admission ManagerCore::reserve_resources(const std::optional<NodeId>& peer, std::uint64_t memory,
                                         std::size_t fds) {
  Admission result;
  std::lock_guard lock(lock_);
  const Locked<> locked;
  if (closed_) {
    result.error = Errc::closed;
    return result;
  }
  std::optional<LimitBreach> breach = resource_breach(config_.limits.system, ledger_.memory(),
                                                      ledger_.fds(), memory, fds, "system");
  if (!breach && peer) {
    const PeerCharges* held = ledger_.peer(*peer);
    breach = resource_breach(config_.limits.peer, held != nullptr ? held->memory : 0,
                             held != nullptr ? held->fds : 0, memory, fds,
                             "peer " + peer->short_string());
  }
  if (breach) {
    result.error = Errc::limit_exceeded;
    result.refusal = refuse(*breach, Stage::resources, "reservation refused: ");
    return result;
  }
  Charge charge;
  charge.peer = peer;
  charge.memory = memory;
  charge.fds = fds;
  result.reservation = open_reservation(locked, std::move(charge), std::nullopt);
  return result;
}

Limits ManagerCore::effective_limits() const {
  std::lock_guard lock(lock_);
  return config_.limits;
}

Subscription ManagerCore::add_before_connect(ConnectionManager::BeforeConnectHook hook) {
  return hooks_.add(hooks_.before_connect(), std::move(hook));
}

Subscription ManagerCore::add_after_handshake(ConnectionManager::AfterHandshakeHook hook) {
  return hooks_.add(hooks_.after_handshake(), std::move(hook));
}

void ManagerCore::regate() {
  if (!policies_.gater) return;
  struct Open {
    std::shared_ptr<Connection> handle;
    NodeId peer;
    Direction direction;
    Endpoint remote;
  };
  std::vector<Open> open;
  {
    std::lock_guard lock(lock_);
    if (closed_) return;
    open.reserve(pool_.counts().connections);
    for (std::uint32_t slot = 0; slot < pool_.conn_slots(); ++slot) {
      const ConnEntry& conn = pool_.conn(slot);
      if (conn.handle) {
        open.push_back(
            {conn.handle, pool_.id_of(conn.peer_slot), conn.direction, pool_.remote_of(slot)});
      }
    }
  }
  std::vector<std::pair<std::shared_ptr<Connection>, std::string>> denied;
  for (Open& o : open) {
    Decision d =
        gate([&] { return policies_.gater->intercept_secured(o.direction, o.peer, o.remote); });
    if (!d) denied.emplace_back(std::move(o.handle), std::move(d.reason));
  }
  open.clear();  // drops our extra references before closing, unlocked
  if (denied.empty()) return;
  Effects effects;
  {
    std::lock_guard lock(lock_);
    const Locked<> locked;
    begin_detach_batch(locked);
    for (auto& [handle, reason] : denied) {
      if (auto slot = tracked_slot(locked, *handle)) {
        std::string text = "gated: " + reason;
        effects.closes.push_back(
            {detach(locked, *slot, CloseReason::gated, text), CloseReason::gated, text});
      }
    }
    end_detach_batch(locked);
  }
  act(effects);
}

}  // namespace dep2p::connmgr::detail
