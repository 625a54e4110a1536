// ManagerCore: connections joining and leaving the pool, and the commit of a trim's
// victims (docs/design.md, "Pool and tags").
#include <algorithm>
#include <exception>

#include <spdlog/spdlog.h>

#include "manager/connection_access.hpp"
#include "manager/core.hpp"
#include "pool/activity.hpp"

namespace dep2p::connmgr::detail {

std::optional<std::uint32_t> ManagerCore::tracked_slot(const Locked<>&, const Connection& c) const {
  if (ConnectionAccess::owner(c) != token_) return std::nullopt;
  const std::uint32_t slot = ConnectionAccess::slot(c);
  if (slot >= pool_.conn_slots() || pool_.conn(slot).handle.get() != &c) return std::nullopt;
  return slot;
}

bool ManagerCore::ours(const Connection& c) const {
  return (ConnectionAccess::owner(c) | 1) == (token_ | 1);
}

std::optional<ConnectionFacts> ManagerCore::read_facts(const Connection& handle) {
  try {
    return ConnectionFacts{handle.remote_peer(),  handle.direction(),       handle.path_kind(),
                           handle.stream_count(), handle.remote_endpoint(), handle.transport()};
  } catch (const std::exception& e) {
    env_.logger->warn("connmgr: add_connection: the connection's properties threw: {}", e.what());
    return std::nullopt;
  } catch (...) {
    env_.logger->warn("connmgr: add_connection: the connection's properties threw");
    return std::nullopt;
  }
}

std::error_code ManagerCore::after_handshake(const Connection& handle, Direction direction,
                                             Refusal* refusal) {
  Decision decision = hooks_.run(hooks_.after_handshake(), *env_.logger, handle);
  if (decision) return {};
  auto r = count_refusal(Stage::add, RefusalReason::hook, "hook", decision.reason,
                         std::string(to_string(direction)) +
                             " refused by an after_handshake hook: " + decision.reason);
  if (refusal != nullptr) *refusal = std::move(r);
  return Errc::connection_denied;
}

std::error_code ManagerCore::add_connection(std::shared_ptr<Connection> handle) {
  if (!handle) return Errc::invalid_argument;
  auto facts = read_facts(*handle);
  if (!facts) return Errc::invalid_argument;
  if (auto ec = after_handshake(*handle, facts->direction, nullptr)) {
    hub_.drain();
    return ec;
  }
  Effects effects;
  {
    std::lock_guard lock(lock_);
    const Locked<> locked;
    if (closed_) return Errc::closed;
    const Connection* key = handle.get();
    if (auto ec = insert_connection(locked, std::move(handle), *facts, std::nullopt)) return ec;
    if (apply_path_rules(locked, ConnectionAccess::slot(*key), effects)) {
      effects.reselect.push_back(facts->peer);
    }
  }
  act(effects);
  return {};
}

std::error_code ManagerCore::insert_connection(
    const Locked<>& locked, std::shared_ptr<Connection> handle, const ConnectionFacts& facts,
    const std::optional<boost::asio::ip::address>& capped) {
  const TimePoint now = env_.time->now();
  if (!ConnectionAccess::claim(*handle, token_)) {
    // Already ours (a duplicate report, or one we closed whose closure the host has not
    // reported yet) or tracked by another manager.
    unknown_reports_.fetch_add(1, std::memory_order_relaxed);
    return ours(*handle) ? Errc::duplicate_connection : Errc::invalid_argument;
  }
  std::uint32_t slot = pool_.find(facts.peer);
  if (slot != kNoSlot) {
    note_change(slot);
    if (pool_.peer(slot).temporary) {
      // A temporary entry becomes real on connect, keeping its tags; its grace period
      // starts now.
      pool_.set_temporary(slot, false);
      pool_.cold(slot).first_seen = now;
      expiries_.cancel(slot);
    }
  } else {
    const bool is_protected = protections_.size() != 0 && protections_.is_protected(facts.peer);
    slot = pool_.add_peer(facts.peer, now, false, is_protected);
  }
  Connection& added = *handle;
  ActivityAccess::start(added, now);
  // The nth connection added gets id n: ids are never zero and never reused.
  const auto id = static_cast<ConnectionId>(++stats_.connections_added);
  const std::uint32_t conn_slot =
      pool_.add_connection(slot, std::move(handle), id, facts, now, capped);
  ConnectionAccess::set_slot(added, conn_slot);
  schedule_.enroll(conn_slot, id, now);
  if (schedule_.keepalive_on() || schedule_.idle_on()) arm_keepalive(locked, now);
  if (hub_.has_subscribers()) hub_.enqueue(ConnectedEvent{facts.peer, id, facts.direction});
  dial_.connected(facts.peer, now);  // the peer is reachable: its dial and backoff end
  post_dial_waiters(locked);
  if (policies_.dialer) paths_changed(locked, slot);
  return {};
}

std::error_code ManagerCore::remove_connection(const Connection& connection, CloseReason reason) {
  // A report for a connection this manager does not hold (typically one it closed itself,
  // reported back from close()) needs no lock: only this manager ever sets the owner word
  // to its token, and only under its lock. The first report of a close the manager made is
  // expected; any other is a duplicate or a stranger.
  if (ConnectionAccess::owner(connection) != token_) {
    if (ConnectionAccess::end_closed(connection, token_)) {
      closure_reports_.fetch_add(1, std::memory_order_relaxed);
      return {};
    }
    unknown_reports_.fetch_add(1, std::memory_order_relaxed);
    return Errc::unknown_connection;
  }
  std::shared_ptr<Connection> released;
  std::optional<NodeId> reselect_peer;
  {
    std::lock_guard lock(lock_);
    const Locked<> locked;
    auto slot = tracked_slot(locked, connection);
    if (!slot) {
      // Another thread removed it meanwhile, or detached it to close it: then this report
      // is the one that close would have brought.
      if (ConnectionAccess::end_detached(connection, token_)) {
        closure_reports_.fetch_add(1, std::memory_order_relaxed);
        return {};
      }
      unknown_reports_.fetch_add(1, std::memory_order_relaxed);
      return Errc::unknown_connection;
    }
    static const std::string kReported = "closure reported by the host";
    const std::uint32_t peer_slot = pool_.conn(*slot).peer_slot;
    released = detach(locked, *slot, reason, kReported);
    ConnectionAccess::release(*released);
    const PeerSlot& peer = pool_.peer(peer_slot);
    if (peer.live && !peer.conns.empty() && peer.best == kNoSlot) {
      reselect_peer = pool_.id_of(peer_slot);
    }
  }
  hub_.drain();
  if (reselect_peer) reselect(*reselect_peer);
  // `released` (possibly the last reference to the host's object) goes here, unlocked.
  return {};
}

std::error_code ManagerCore::close_peer(const NodeId& peer, CloseReason reason,
                                        std::string_view detail) {
  Effects effects;
  const std::string text(detail);
  {
    std::lock_guard lock(lock_);
    const Locked<> locked;
    if (closed_) return Errc::closed;
    const std::uint32_t slot = pool_.find(peer);
    if (slot == kNoSlot || pool_.peer(slot).conns.empty()) {
      redial_.cancel(peer);  // a reconnect under way is the host's to stop
      return Errc::unknown_peer;
    }
    const auto victims = pool_.peer(slot).conns;  // detach() edits the entry
    begin_detach_batch(locked);
    for (std::uint32_t c : victims) {
      effects.closes.push_back({detach(locked, c, reason, text), reason, text});
    }
    end_detach_batch(locked);
  }
  act(effects);
  return {};
}

std::error_code ManagerCore::close_connection(const Connection& connection, CloseReason reason,
                                              std::string_view detail) {
  Effects effects;
  const std::string text(detail);
  {
    std::lock_guard lock(lock_);
    const Locked<> locked;
    if (closed_) return Errc::closed;
    auto slot = tracked_slot(locked, connection);
    if (!slot) return Errc::unknown_connection;
    effects.closes.push_back({detach(locked, *slot, reason, text), reason, text});
  }
  act(effects);
  return {};
}

std::error_code ManagerCore::adjust_streams(const Connection& connection, Direction direction,
                                            bool opened, Refusal* refusal) {
  if (ConnectionAccess::owner(connection) != token_) return Errc::unknown_connection;
  // Without a system-wide stream limit, a stream is the peer's business: a lane and the
  // peer's lock are enough.
  if (streams_unbounded_.load(std::memory_order_relaxed)) {
    std::optional<std::error_code> done;  // nullopt: a refusal, which the whole lock explains
    {
      const LaneGuard lane(*this);
      done = adjust_streams_in_lane(lane, connection, direction, opened);
    }
    if (done) {
      hub_.drain();
      return *done;
    }
  }
  std::optional<Refusal> refused;
  {
    std::lock_guard lock(lock_);
    const Locked<> locked;
    auto slot = tracked_slot(locked, connection);
    if (!slot) return Errc::unknown_connection;
    const ConnEntry& conn = pool_.conn(*slot);
    const bool in = direction == Direction::inbound;
    if (opened) {
      const std::uint32_t peer_slot = conn.peer_slot;
      const PeerSlot& peer = pool_.peer(peer_slot);
      const std::uint32_t peer_in = pool_.cold(peer_slot).streams_in;
      const std::array<std::size_t, 2> totals = stream_totals(locked);
      std::optional<LimitBreach> breach =
          stream_breach(config_.limits.system, StreamCounts{totals[0], totals[1]},
                        config_.limits.peer, StreamCounts{peer_in, peer.streams - peer_in},
                        direction, [&] { return "peer " + pool_.id_of(peer_slot).short_string(); });
      if (!breach) breach = watched_stream(locked, *slot, conn.id, true);
      if (breach) {
        refused =
            refuse(*breach, Stage::stream, std::string(to_string(direction)) + " stream refused: ");
      } else {
        if (hub_.has_subscribers()) {
          hub_.enqueue(StreamOpenedEvent{pool_.id_of(peer_slot), conn.id, direction});
        }
        pool_.count_stream(*slot, direction, +1);
      }
    } else if ((in ? conn.streams_in : conn.streams_out) > 0) {
      watched_stream(locked, *slot, conn.id, false);
      if (hub_.has_subscribers()) {
        hub_.enqueue(StreamClosedEvent{pool_.id_of(conn.peer_slot), conn.id, direction});
      }
      pool_.count_stream(*slot, direction, -1);
    } else {
      return Errc::invalid_argument;  // more closes than opens
    }
  }
  hub_.drain();
  if (refused) {
    if (refusal != nullptr) *refusal = std::move(*refused);
    return Errc::limit_exceeded;
  }
  return {};
}

std::optional<std::error_code> ManagerCore::adjust_streams_in_lane(const LaneGuard& lane,
                                                                   const Connection& connection,
                                                                   Direction direction,
                                                                   bool opened) {
  // Watching may have started since the caller looked (under the whole lock, which no lane
  // overlaps): the whole lock's path then.
  if (!streams_unbounded_.load(std::memory_order_relaxed)) return std::nullopt;
  // In a lane the slot word, the entry and its peer are stable (only whole holders change
  // them); the counts are the peer's, under its lock.
  const std::uint32_t slot = ConnectionAccess::slot(connection);
  if (ConnectionAccess::owner(connection) != token_ || slot >= pool_.conn_slots() ||
      pool_.conn(slot).handle.get() != &connection) {
    return Errc::unknown_connection;
  }
  const ConnEntry& conn = pool_.conn(slot);
  const PeerLock locked_peer(pool_.peer(conn.peer_slot));
  const bool in = direction == Direction::inbound;
  const std::size_t d = in ? 0 : 1;
  if (opened) {
    const std::uint32_t peer_slot = conn.peer_slot;
    const PeerSlot& peer = pool_.peer(peer_slot);
    const std::uint32_t peer_in = pool_.cold(peer_slot).streams_in;
    if (stream_breach(ScopeLimits{}, StreamCounts{0, 0}, config_.limits.peer,
                      StreamCounts{peer_in, peer.streams - peer_in}, direction,
                      [] { return std::string(); })) {
      return std::nullopt;
    }
    if (hub_.has_subscribers()) {
      hub_.enqueue(StreamOpenedEvent{pool_.id_of(peer_slot), conn.id, direction});
    }
    pool_.count_peer_stream(slot, direction, +1);
    ++lane.lane().streams[d];
    return std::error_code{};
  }
  if ((in ? conn.streams_in : conn.streams_out) == 0) {
    return Errc::invalid_argument;  // more closes than opens
  }
  if (hub_.has_subscribers()) {
    hub_.enqueue(StreamClosedEvent{pool_.id_of(conn.peer_slot), conn.id, direction});
  }
  pool_.count_peer_stream(slot, direction, -1);
  --lane.lane().streams[d];
  return std::error_code{};
}

std::optional<LimitBreach> ManagerCore::watched_stream(const Locked<>& locked, std::uint32_t slot,
                                                       ConnectionId id, bool opened) {
  if (!streams_watched_ || closed_ || policies_.open_extension == nullptr) return std::nullopt;
  std::optional<StreamRefusal> full =
      policies_.open_extension->stream_changed(locked, slot, id, opened);
  if (!full) return std::nullopt;
  std::string scope = "realm " + full->realm;
  std::string text = scope + " holds " + std::to_string(full->held) + " of " +
                     std::to_string(full->limit) + " streams";
  return LimitBreach{RefusalReason::stream_limit, std::move(scope), "max_streams", std::move(text)};
}

std::array<std::size_t, 2> ManagerCore::stream_totals(const Locked<>&) const {
  std::array<std::size_t, 2> totals{pool_.counts().streams[0], pool_.counts().streams[1]};
  for (std::size_t index = 0; index < Lock::kLanes; ++index) {
    const Lane& lane = lock_.lane(index);
    totals[0] += lane.streams[0];
    totals[1] += lane.streams[1];
  }
  return totals;
}

std::optional<ConnectionId> ManagerCore::connection_id(const Connection& connection) const {
  std::lock_guard lock(lock_);
  const Locked<> locked;
  auto slot = tracked_slot(locked, connection);
  if (!slot) return std::nullopt;
  return pool_.conn(*slot).id;
}

std::shared_ptr<Connection> ManagerCore::best_connection(const NodeId& peer) const {
  const LaneGuard lane(*this);
  const std::uint32_t slot = pool_.find(peer);
  if (slot == kNoSlot || pool_.peer(slot).conns.empty()) return nullptr;
  const PeerSlot& entry = pool_.peer(slot);
  return pool_.conn(entry.best != kNoSlot ? entry.best : entry.conns.front()).handle;
}

std::vector<std::shared_ptr<Connection>> ManagerCore::connections(const NodeId& peer) const {
  std::vector<std::shared_ptr<Connection>> out;
  const LaneGuard lane(*this);
  if (const std::uint32_t slot = pool_.find(peer); slot != kNoSlot) {
    for (std::uint32_t c : pool_.peer(slot).conns) out.push_back(pool_.conn(c).handle);
  }
  return out;
}

std::size_t ManagerCore::connection_count(std::optional<Direction> direction) const {
  std::lock_guard lock(lock_);
  const PoolCounts& counts = pool_.counts();
  if (!direction) return counts.connections;
  return *direction == Direction::inbound ? counts.inbound : counts.outbound;
}

std::size_t ManagerCore::peer_count() const {
  std::lock_guard lock(lock_);
  return pool_.peers() - pool_.counts().temporary;
}

std::size_t ManagerCore::temporary_peer_count() const {
  std::lock_guard lock(lock_);
  return pool_.counts().temporary;
}

// --- Leaving the pool ---------------------------------------------------------------------

std::shared_ptr<Connection> ManagerCore::detach(const Locked<>& locked, std::uint32_t conn_slot,
                                                CloseReason reason, const std::string& detail) {
  const ConnEntry& conn = pool_.conn(conn_slot);
  const std::uint32_t slot = conn.peer_slot;
  // conn.id lies past the entry's first 32 bytes, often on a second cache line: read only
  // for event subscribers and the extension.
  if (conn.capped) caps_.remove(pool_.cap_address(conn_slot), conn.direction);
  ++stats_.connections_removed;
  ++stats_.closes_by_reason[static_cast<std::size_t>(reason)];
  const bool extension = policies_.has_extension;
  if (hub_.has_subscribers()) {
    const NodeId peer_id = pool_.id_of(slot);  // rebuilt from the packed table once
    hub_.enqueue(DisconnectedEvent{peer_id, conn.id, conn.direction, reason, detail});
    if (extension) detached_.peers.push_back(peer_id);
  }
  if (extension) detached_.connections.push_back({conn_slot, conn.id, reason});
  const bool dialer = policies_.dialer != nullptr;
  if (dialer && pool_.peer(slot).conns.size() == 1)
    last_path_leaving(locked, slot, conn_slot, reason);
  // The handle's owner word is cleared by the caller: at once for a reported closure, in
  // the act phase (next to close(), on the same cache line) for the manager's own.
  std::shared_ptr<Connection> handle = pool_.detach(conn_slot);
  schedule_.compact_if_stale(pool_.counts().connections, [this](std::uint32_t s, ConnectionId i) {
    return pool_.live_conn(s, i) != nullptr;
  });
  if (pool_.peer(slot).conns.empty()) {
    // A peer that stopped answering pings counts as a failed dial: it is not dialed
    // again at once (DialConfig).
    if (reason == CloseReason::keepalive_timeout) {
      dial_.failed(pool_.id_of(slot), nullptr, DialFailure::error, env_.time->now(),
                   pool_.counts().connections);
      post_dial_waiters(locked);
    }
    retain_or_release(locked, slot);
  } else if (dialer) {
    paths_changed(locked, slot);
  }
  if (extension && !detached_.open) end_detach_batch(locked);
  return handle;
}

void ManagerCore::begin_detach_batch(const Locked<>&, std::size_t expected) {
  detached_.open = true;
  if (policies_.has_extension) detached_.connections.reserve(expected);
}

void ManagerCore::end_detach_batch(const Locked<>& locked) {
  detached_.open = false;
  if (detached_.connections.empty()) return;
  // Taken out first, so that the next batch starts empty whatever the extension does.
  std::vector<DetachedConnection> batch;
  std::vector<NodeId> peers;
  batch.swap(detached_.connections);
  peers.swap(detached_.peers);
  // Peer ids were noted only while somebody subscribed; a subscription made during the
  // batch leaves them short, and then no event is built.
  const bool events = hub_.has_subscribers() && peers.size() == batch.size();
  std::vector<Event> appended;
  if (auto extension = policies_.extension.lock()) {
    extension->on_detached(locked, batch,
                           events ? std::span<const NodeId>(peers) : std::span<const NodeId>(),
                           events ? &appended : nullptr);
  }
  for (Event& e : appended) hub_.enqueue(std::move(e));
  // The buffers go back for the next batch (their capacity is kept).
  batch.clear();
  peers.clear();
  detached_.connections.swap(batch);
  detached_.peers.swap(peers);
}

std::size_t ManagerCore::close_victims(const Locked<>& locked, const VictimSlots& victims,
                                       std::size_t begin, std::size_t end, bool allow_protected,
                                       CloseReason reason, const std::string& detail,
                                       std::vector<std::shared_ptr<Connection>>& closing,
                                       std::size_t& peers_closed) {
  const std::vector<std::uint32_t>& slots = victims.slots;
  const bool check_generation = !victims.generations.empty();
  closing.reserve(closing.size() + (end - begin));
  std::size_t closed = 0;
  begin_detach_batch(locked, end - begin);
  for (std::size_t k = begin; k < end; ++k) {
    // The victims are scattered over the pool: fetch the peer entries a few victims ahead,
    // then their first connection entries, so the loads overlap. Every line the commit
    // touches is fetched.
    if (k + 16 < end) __builtin_prefetch(&pool_.peer(slots[k + 16]), 1);  // one line
    if (k + 8 < end) {
      const PeerSlot& ahead = pool_.peer(slots[k + 8]);
      // detach() touches the entry's first 32 bytes, one line (more only for a capped one,
      // or with event subscribers or an extension, which read the id).
      if (!ahead.conns.empty()) __builtin_prefetch(&pool_.conn(ahead.conns.front()), 1);
    }
    PeerSlot& entry = pool_.peer(slots[k]);
    if (!entry.live || entry.temporary) continue;
    if (check_generation && entry.generation != victims.generations[k]) continue;
    if (entry.is_protected && !allow_protected) continue;
    if (changed_in_trim(slots[k])) continue;
    std::size_t count = entry.conns.size();
    if (slots[k] == victims.partial_slot) count = std::min(count, victims.partial_count);
    for (std::size_t i = 0; i < count; ++i) {
      const bool last = entry.conns.size() == 1;
      closing.push_back(detach(locked, entry.conns.back(), reason, detail));
      ++closed;
      if (last) ++peers_closed;  // detach() released the slot with its last connection
    }
  }
  end_detach_batch(locked);
  return closed;
}

void ManagerCore::release_if_empty_temporary(const Locked<>& locked, std::uint32_t slot) {
  const PeerSlot& entry = pool_.peer(slot);
  if (entry.live && entry.temporary && !holds_tags(entry)) release_peer(locked, slot);
}

}  // namespace dep2p::connmgr::detail
