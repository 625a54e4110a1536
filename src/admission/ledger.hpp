// AdmissionLedger: the books of admission — what every reservation in progress holds
// (pending-handshake slots, a place under the per-address caps, reserved memory and file
// descriptors), by reservation id, and the totals per scope (system, and per peer). The
// limits themselves are checked by the pure functions of limit_checks.hpp on these counts;
// the ledger only keeps them exact: every charge opened is undone exactly once.
//
//   const std::uint64_t id = ledger.open(charge);   // a stage admitted
//   ...
//   ledger.close(id, caps);                         // the reservation was dropped
//
// Thread safety: none; the owner locks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include <boost/asio/ip/address.hpp>
#include <boost/unordered/unordered_flat_map.hpp>

#include "admission/subnet_counter.hpp"
#include "base/compact_vector.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr::detail {

// What one admission in progress holds.
struct Charge {
  Direction direction = Direction::inbound;
  bool pending = false;        // a pending-handshake slot, system (and peer, once known)
  std::optional<NodeId> peer;  // the peer scope, once known
  std::optional<boost::asio::ip::address> capped_address;  // a place under the caps
  std::uint64_t memory = 0;                                // reserved bytes
  std::size_t fds = 0;                                     // reserved descriptors
  // Admitted above a full connection cap while realms were short of their reserves: its
  // add must make room (PoolExtension::make_room) or is refused.
  bool over_cap = false;
  // Claims the extension (the realm layer) made on this admission: tokens only it reads,
  // handed back to it when the admission ends, added or not (PoolExtension::on_claims_end).
  CompactVector<std::uint64_t, 1> claims;
};

// A peer's admission counts (its open connections and streams are the pool's).
struct PeerCharges {
  std::size_t pending[2] = {0, 0};  // [inbound, outbound]
  std::uint64_t memory = 0;
  std::size_t fds = 0;
  bool empty() const { return pending[0] == 0 && pending[1] == 0 && memory == 0 && fds == 0; }
};

class AdmissionLedger {
 public:
  // Registers `charge` and counts what it holds: its pending slot (system, and the peer's
  // if known) and its resources. The place under the caps is taken by the caller (it is
  // the caps' own decision) and given back by close(). Returns the reservation's id.
  std::uint64_t open(Charge charge) {
    const std::uint64_t id = ++next_id_;
    count(charge, +1);
    reservations_.emplace(id, std::move(charge));
    return id;
  }
  // The charge of a live reservation, or null.
  Charge* find(std::uint64_t id) {
    auto it = reservations_.find(id);
    return it == reservations_.end() ? nullptr : &it->second;
  }
  // The peer became known (on_secured): its pending slot now counts in its scope too.
  void assign_peer(Charge& charge, const NodeId& peer) {
    charge.peer = peer;
    if (charge.pending) ++peers_[peer].pending[index(charge.direction)];
  }
  // Ends a reservation: every count it holds is undone and its place under the caps given
  // back; `last_look(charge)` runs first. Returns false for an id that is not live.
  bool close(std::uint64_t id, SubnetCounter& caps) {
    return close(id, caps, [](const Charge&) {});
  }
  template <class F>
  bool close(std::uint64_t id, SubnetCounter& caps, F&& last_look) {
    auto it = reservations_.find(id);
    if (it == reservations_.end()) return false;
    Charge& charge = it->second;
    last_look(static_cast<const Charge&>(charge));
    if (charge.capped_address) caps.remove(*charge.capped_address, charge.direction);
    count(charge, -1);
    reservations_.erase(it);
    return true;
  }
  // Ends a reservation whose place under the caps passes to the connection it admitted:
  // the rest is undone as by close().
  bool consume(std::uint64_t id) {
    auto it = reservations_.find(id);
    if (it == reservations_.end()) return false;
    count(it->second, -1);
    reservations_.erase(it);
    return true;
  }

  std::size_t pending(Direction direction) const { return pending_[index(direction)]; }
  std::uint64_t memory() const { return memory_; }
  std::size_t fds() const { return fds_; }
  // Live reservations admitted above a full connection cap.
  std::size_t over_cap() const { return over_cap_; }
  std::size_t reservations() const { return reservations_.size(); }
  // The peer's counts, or null when it holds none.
  const PeerCharges* peer(const NodeId& peer) const {
    auto it = peers_.find(peer);
    return it == peers_.end() ? nullptr : &it->second;
  }

 private:
  static std::size_t index(Direction d) { return d == Direction::inbound ? 0 : 1; }

  // Adds (+1) or removes (-1) the counts of `charge`; a peer left with none is erased.
  void count(const Charge& charge, int sign) {
    const std::size_t d = index(charge.direction);
    const auto step = static_cast<std::size_t>(sign);  // modulo 2^n: -1 subtracts
    PeerCharges* peer = nullptr;
    if (charge.peer && (charge.pending || charge.memory != 0 || charge.fds != 0)) {
      peer = sign > 0 ? &peers_[*charge.peer] : find_peer(*charge.peer);
    }
    if (charge.over_cap) over_cap_ += step;
    if (charge.pending) {
      pending_[d] += step;
      if (peer != nullptr) peer->pending[d] += step;
    }
    memory_ += sign > 0 ? charge.memory : -charge.memory;
    fds_ += sign > 0 ? charge.fds : -charge.fds;
    if (peer != nullptr) {
      peer->memory += sign > 0 ? charge.memory : -charge.memory;
      peer->fds += sign > 0 ? charge.fds : -charge.fds;
      if (sign < 0 && peer->empty()) peers_.erase(*charge.peer);
    }
  }
  PeerCharges* find_peer(const NodeId& id) {
    auto it = peers_.find(id);
    return it == peers_.end() ? nullptr : &it->second;
  }

  std::size_t pending_[2] = {0, 0};  // pending-handshake slots, [inbound, outbound]
  std::uint64_t memory_ = 0;         // reserved bytes, system scope
  std::size_t fds_ = 0;              // reserved descriptors, system scope
  std::size_t over_cap_ = 0;         // live charges with over_cap
  // Peers holding any charge; never an entry whose counts are all zero.
  boost::unordered_flat_map<NodeId, PeerCharges, NodeIdHash> peers_;
  // Every live reservation by id; ids are never reused.
  boost::unordered_flat_map<std::uint64_t, Charge> reservations_;
  std::uint64_t next_id_ = 0;
};

}  // namespace dep2p::connmgr::detail
