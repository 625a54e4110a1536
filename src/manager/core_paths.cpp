// ManagerCore: a peer's several paths (docs/design.md, "Keepalive, idle and paths"): the
// rules that run when one joins (simultaneous open, automatic upgrade, the per-peer cap),
// redundant relays closing, and asking the PathSelector for the best path, unlocked.
#include <algorithm>
#include <exception>

#include <spdlog/spdlog.h>

#include "manager/core.hpp"
#include "paths/path_rules.hpp"

namespace dep2p::connmgr::detail {
namespace {

PathFacts facts_of(const ConnEntry& conn) {
  return PathFacts{conn.path, conn.srtt, conn.id, conn.direction};
}

}  // namespace

bool ManagerCore::apply_path_rules(const Locked<>& locked, std::uint32_t added, Effects& effects) {
  const std::uint32_t peer_slot = pool_.conn(added).peer_slot;
  if (pool_.peer(peer_slot).conns.size() < 2) return false;
  const NodeId peer_id = pool_.id_of(peer_slot);
  const TimePoint now = env_.time->now();
  begin_detach_batch(locked);
  auto close_conn = [&](std::uint32_t c, CloseReason reason, std::string detail) {
    effects.closes.push_back({detach(locked, c, reason, detail), reason, std::move(detail)});
  };
  bool several = true;
  // Simultaneous open: both sides keep the connection dialed by the higher NodeId.
  if (config_.local_node_id) {
    const Direction keep = simultaneous_open_keeps(*config_.local_node_id, peer_id);
    const std::vector<std::uint32_t> others(pool_.peer(peer_slot).conns.begin(),
                                            pool_.peer(peer_slot).conns.end());
    for (std::uint32_t other : others) {
      if (other == added) continue;
      const ConnEntry& fresh = pool_.conn(added);
      const ConnEntry& old = pool_.conn(other);
      if (!old.handle || !simultaneous_open(facts_of(fresh), facts_of(old))) continue;
      const std::uint32_t loser = fresh.direction == keep ? other : added;
      close_conn(loser, CloseReason::duplicate,
                 "simultaneous open: both sides keep the connection dialed by the higher "
                 "node id");
      if (loser == added) {
        end_detach_batch(locked);
        return true;  // the new one went: nothing more to decide
      }
      break;
    }
  }
  if (!pool_.peer(peer_slot).live) several = false;
  // Automatic upgrade: a direct path makes the peer's relayed ones redundant.
  if (several && pool_.conn(added).path == PathKind::direct) {
    bool scheduled = false;
    for (std::uint32_t c : pool_.peer(peer_slot).conns) {
      ConnEntry& conn = pool_.conn(c);
      if (conn.path == PathKind::relay && !conn.redundant) {
        conn.redundant = true;
        schedule_.redundant(c, conn.id, now);
        scheduled = true;
      }
    }
    if (scheduled) arm_keepalive(locked, now);
  }
  // The per-peer cap: the worst paths go.
  const std::size_t cap = config_.max_connections_per_peer;
  while (several && cap != 0 && pool_.peer(peer_slot).live &&
         pool_.peer(peer_slot).conns.size() > cap) {
    const auto& conns = pool_.peer(peer_slot).conns;
    const std::uint32_t worst =
        *std::max_element(conns.begin(), conns.end(), [&](std::uint32_t a, std::uint32_t b) {
          return badness(facts_of(pool_.conn(a))) < badness(facts_of(pool_.conn(b)));
        });
    close_conn(worst, CloseReason::redundant_path,
               "over max_connections_per_peer (" + std::to_string(cap) + "): worst path");
  }
  // Several paths: each is watched for carrying nothing (Config::path_idle_timeout).
  const Duration path_idle = config_.path_idle_timeout;
  if (several && path_idle.count() > 0 && pool_.peer(peer_slot).live &&
      pool_.peer(peer_slot).conns.size() > 1) {
    bool watched = false;
    for (std::uint32_t c : pool_.peer(peer_slot).conns) {
      ConnEntry& conn = pool_.conn(c);
      if (conn.path_watched) continue;
      conn.path_watched = true;
      schedule_.idle_check(c, conn.id, now + path_idle, /*path=*/true);
      watched = true;
    }
    if (watched) arm_keepalive(locked, now);
  }
  end_detach_batch(locked);
  return several;
}

// Closes redundant relays whose grace is over (from the keepalive round).
void ManagerCore::close_redundant(const Locked<>& locked, TimePoint now, Effects& effects) {
  while (auto due = schedule_.pop_redundant(now)) {
    ConnEntry* conn = pool_.live_conn(due->slot, due->id);
    if (conn == nullptr) continue;
    const PeerSlot& peer = pool_.peer(conn->peer_slot);
    const bool direct_left = std::any_of(peer.conns.begin(), peer.conns.end(), [&](auto c) {
      return pool_.conn(c).path == PathKind::direct;
    });
    if (!direct_left) {  // the direct path went meanwhile: the relay is needed again
      conn->redundant = false;
      continue;
    }
    if (conn->streams() > 0) {  // still in use: look again one grace later
      schedule_.redundant(due->slot, due->id, now);
      continue;
    }
    std::string detail = "relay path redundant: a direct path has served for " +
                         std::to_string(config_.redundant_grace.count()) + " ms";
    auto handle = detach(locked, due->slot, CloseReason::redundant_path, detail);
    effects.closes.push_back({std::move(handle), CloseReason::redundant_path, std::move(detail)});
  }
}

// Publishes a PathChangedEvent when the choice changes. If the peer's paths changed while
// the selector ran, its answer is dropped; the change that did it asks again.
void ManagerCore::reselect(const NodeId& peer) {
  std::vector<PathCandidate> candidates;
  std::vector<std::uint32_t> slots;
  std::optional<std::size_t> current;
  std::uint32_t slot;
  std::uint32_t generation;
  std::uint32_t version;
  {
    std::lock_guard lock(lock_);
    if (closed_) return;
    slot = pool_.find(peer);
    if (slot == kNoSlot || pool_.peer(slot).conns.empty()) return;
    const PeerSlot& entry = pool_.peer(slot);
    generation = entry.generation;
    version = pool_.cold(slot).paths_version;
    for (std::uint32_t c : entry.conns) {
      const ConnEntry& conn = pool_.conn(c);
      std::optional<Duration> rtt;
      if (conn.srtt != Duration::zero()) rtt = conn.srtt;
      if (c == entry.best) current = candidates.size();
      candidates.push_back({conn.id, conn.path, conn.transport, conn.ipv6, rtt});
      slots.push_back(c);
    }
  }
  std::size_t choice = current.value_or(0);
  try {
    choice = policies_.path_selector->select(candidates, current);
  } catch (const std::exception& e) {
    env_.logger->warn("connmgr: path selector threw, keeping the current path: {}", e.what());
  } catch (...) {
    env_.logger->warn("connmgr: path selector threw a non-standard exception, keeping the path");
  }
  if (choice >= candidates.size()) choice = current.value_or(0);
  {
    std::lock_guard lock(lock_);
    // The same entry (not released and taken again), with paths, none come or gone. A
    // peer's last connection going does not bump paths_version: it leaves the entry without
    // paths or releases it, and the first two checks see that.
    if (pool_.find(peer) != slot) return;
    PeerSlot& entry = pool_.peer(slot);
    PeerCold& cold = pool_.cold(slot);
    if (entry.generation != generation || entry.conns.empty() || cold.paths_version != version) {
      return;
    }
    const std::uint32_t chosen = slots[choice];
    if (entry.best == chosen) return;
    // A peer's first path is not a change; a new choice after the old path closed is.
    const ConnectionId from = cold.last_best;
    entry.best = chosen;
    cold.last_best = pool_.conn(chosen).id;
    if (from != ConnectionId{} && hub_.has_subscribers()) {
      hub_.enqueue(PathChangedEvent{peer, from, pool_.conn(chosen).id});
    }
  }
  hub_.drain();
}

}  // namespace dep2p::connmgr::detail
