// Pool: the packed tables of a manager's peers and connections, with the counts kept as
// they change (docs/architecture.md, "Data layout"). It holds data and keeps it
// consistent; it decides nothing (no limits, no trims, no events) and calls no one.
//
//   const std::uint32_t peer = pool.add_peer(id, now, /*temporary=*/false, protected_now);
//   const std::uint32_t conn = pool.add_connection(peer, handle, id, facts, now);
//   ...
//   std::shared_ptr<Connection> handle = pool.detach(conn);  // counts follow
//   if (pool.peer(peer).conns.empty()) pool.release_peer(peer, tag_names);
//
// Peers and connections live in slot tables indexed by small numbers (a connection's slot
// is in its handle's tracking word, so reports cost no lookup); released slots are reused
// through free lists, and a peer slot's generation changes on release, so a plan made
// earlier can tell a reused slot. Hot accessors are inline, and the mutations a trim makes
// per victim (detach, release_peer) always are: the manager's trim walks these tables
// under its lock, and a call per victim would cost more than the work.
//
// Thread safety: none; the owner locks.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/unordered/unordered_flat_map.hpp>

#include "base/compact_vector.hpp"
#include "base/paged_vector.hpp"
#include "base/relaxed.hpp"
#include "dep2p/connmgr/connection.hpp"
#include "dep2p/connmgr/types.hpp"
#include "pool/peer_id_table.hpp"
#include "pool/peer_index.hpp"
#include "tags/tag_table.hpp"

namespace dep2p::connmgr::detail {

// One tracked connection. A free entry has a null handle and sits in the free list. 96
// bytes: the remote endpoint as raw bytes (Pool::remote_of rebuilds it), flags as bits,
// the rare extras (an IPv6 scope id, a capped address other than the remote one) in side
// maps keyed by the slot.
struct alignas(32) ConnEntry {
  // What detach() reads and writes comes first: 32 bytes, aligned, so they lie in one
  // cache line and a trim touches one line of each entry it detaches.
  std::shared_ptr<Connection> handle;
  std::uint32_t peer_slot = 0;  // in a free entry: the next free entry (kNoSlot: none)
  std::uint32_t streams_in = 0;
  std::uint32_t streams_out = 0;
  Direction direction = Direction::inbound;
  PathKind path = PathKind::direct;
  Transport transport = Transport::tcp;
  bool address_v6 : 1 = false;  // `address` is IPv6
  bool has_scope : 1 = false;   // its scope id is in the pool's side map
  bool ipv6 : 1 = false;        // reached over IPv6 proper (not v4-mapped)
  bool redundant : 1 = false;   // a relay scheduled to close after a direct path arrived
  bool closing : 1 = false;     // the host reported ConnectionState::closing
  bool ping_in_flight : 1 = false;
  // Holds a place under the per-address caps (given back when it leaves): at the remote
  // address, or with cap_elsewhere at the one in the pool's side map (cap_address()).
  bool capped : 1 = false;
  bool cap_elsewhere : 1 = false;
  bool path_watched : 1 = false;  // has a path-idle check in the schedule
  ConnectionId id{};
  TimePoint opened_at{};
  // The traffic (last activity, rates) is on the handle: pool/activity.hpp.
  Duration srtt{};  // smoothed keepalive RTT; zero until the first answer
  std::uint32_t ping_sequence = 0;
  std::uint16_t missed = 0;                // pings missed in a row; saturates at 65535
  std::uint16_t port = 0;                  // of the remote endpoint
  std::array<std::uint8_t, 16> address{};  // the remote address (IPv4: the first 4)

  std::uint32_t streams() const { return streams_in + streams_out; }
};

// One peer entry: connected (conns non-empty) or temporary (tagged, no connections). One
// aligned cache line: what a trim reads and what releasing the slot writes. The rest of
// the entry is in PeerCold at the same index, the id in the id table.
struct alignas(64) PeerSlot {
  bool live = false;
  bool temporary = false;
  bool is_protected = false;  // mirrors the protection table while live
  // A lock of this entry alone, for callers that hold it among others (the manager's lane
  // holders): 1 while held. Accessed only through std::atomic_ref.
  alignas(std::atomic_ref<std::uint8_t>::required_alignment) mutable std::uint8_t busy = 0;
  std::uint32_t generation = 0;        // changes on every release
  Relaxed<std::uint32_t> streams = 0;  // read by a trim while lane holders change it
  std::uint32_t inbound = 0;           // inbound connections
  std::uint32_t best = kNoSlot;        // conn slot of the chosen path; in a free slot: next free
  std::uint32_t decay = kNoSlot;       // the peer's decaying tags (DecayEngine), if any
  PeerTags tags;
  CompactVector<std::uint32_t, 2> conns;  // connection slots
};

// The part of a peer entry a trim does not touch. Written whole when a slot is taken, so
// releasing a slot need not touch it.
struct PeerCold {
  TimePoint first_seen{};        // read by a trim only with a grace period
  std::uint64_t tags_stamp = 0;  // the tag clock at the last tag change; 0 when none
  ConnectionId last_best{};      // the chosen path's id, kept after it closes
  std::uint32_t streams_in = 0;
  // Bumped when a connection comes, or goes and others remain (a peer's last one going
  // leaves it without paths, or releases the slot).
  std::uint32_t paths_version = 0;
};

// The sizes docs/performance.md counts (LP64): a change that grows them shows here.
static_assert(sizeof(void*) != 8 || sizeof(ConnEntry) == 96);
static_assert(sizeof(void*) != 8 || sizeof(PeerSlot) == 64);
static_assert(sizeof(void*) != 8 || sizeof(PeerCold) == 32);

// The pool's totals, kept as connections come and go.
struct PoolCounts {
  std::size_t connections = 0;
  std::size_t inbound = 0;
  std::size_t outbound = 0;
  std::size_t streams[2] = {0, 0};  // [inbound, outbound]
  std::size_t temporary = 0;        // temporary peer entries
};

// What a connection brings when it joins: read from its handle once.
struct ConnectionFacts {
  NodeId peer;
  Direction direction;
  PathKind path;
  std::uint32_t streams;  // open when it is added; they count in its own direction
  Endpoint remote;
  Transport transport;
};

class Pool {
 public:
  Pool() : index_(ids_) {}
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  const PoolCounts& counts() const { return counts_; }

  // --- Peers -----------------------------------------------------------------------

  // The live slot of `peer`, or kNoSlot.
  std::uint32_t find(const NodeId& peer) const { return index_.find(peer); }
  PeerSlot& peer(std::uint32_t slot) { return peers_[slot]; }
  const PeerSlot& peer(std::uint32_t slot) const { return peers_[slot]; }
  PeerCold& cold(std::uint32_t slot) { return cold_[slot]; }
  const PeerCold& cold(std::uint32_t slot) const { return cold_[slot]; }
  NodeId id_of(std::uint32_t slot) const { return ids_.get(slot); }
  // Slots in the peer table, live or free: slot numbers are below it.
  std::size_t peer_slots() const { return peers_.size(); }
  // Live entries, temporary ones included.
  std::size_t peers() const { return index_.size(); }
  // f(slot, entry) for every slot, live or free, in slot order.
  template <class F>
  void for_each_slot(F&& f) const {
    peers_.for_each(f);
  }
  template <class F>
  void for_each_slot(F&& f) {
    peers_.for_each(f);
  }
  // The address of the entry `ahead` slots after `entry`, for prefetching while walking.
  static const void* ahead_of(const PeerSlot& entry, std::size_t ahead) {
    return reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(&entry) +
                                         ahead * sizeof(PeerSlot));
  }

  // Takes a slot for `id` (not yet in the pool).
  std::uint32_t add_peer(const NodeId& id, TimePoint now, bool temporary, bool is_protected) {
    std::uint32_t slot;
    if (free_peer_ != kNoSlot) {
      slot = free_peer_;
      free_peer_ = peers_[slot].best;
      peers_[slot].best = kNoSlot;
    } else {
      slot = static_cast<std::uint32_t>(peers_.size());
      peers_.emplace_back();
      cold_.emplace_back();
    }
    index_.forget_stale(slot, id);
    ids_.assign(slot, id);
    PeerSlot& entry = peers_[slot];
    cold_[slot] = PeerCold{.first_seen = now};
    entry.live = true;
    entry.temporary = temporary;
    entry.is_protected = is_protected;
    index_.insert(slot, id);
    if (temporary) ++counts_.temporary;
    return slot;
  }
  // A temporary entry becomes real (it connected) or a real one temporary (kept after
  // its last connection); the count of temporary entries follows.
  void set_temporary(std::uint32_t slot, bool temporary) {
    PeerSlot& entry = peers_[slot];
    if (entry.temporary == temporary) return;
    entry.temporary = temporary;
    if (temporary) {
      ++counts_.temporary;
    } else {
      --counts_.temporary;
    }
  }
  // Gives the slot back: its tags are cleared (their names released in `names`). The
  // caller drops first what it keeps elsewhere for the slot (decaying tags, an expiry).
  // REQUIRES: the peer holds no connection.
  [[gnu::always_inline]] void release_peer(std::uint32_t slot, TagNames& names) {
    PeerSlot& entry = peers_[slot];
    if (entry.temporary) --counts_.temporary;
    entry.tags.clear(names);
    entry.best = kNoSlot;
    entry.decay = kNoSlot;
    entry.conns.clear();
    entry.streams = 0;
    entry.inbound = 0;
    entry.live = false;
    entry.temporary = false;
    ++entry.generation;
    index_.erase(slot);
    entry.best = free_peer_;  // a free slot links to the next free one
    free_peer_ = slot;
  }

  // A commit that releases a large share of the peers takes their slots out of the index
  // in a sweep after it, instead of one hashed erase each (a cache miss into the index
  // and one into the id table per victim). The sweep goes one part of the index per
  // end_batch_step(), so the owner can let its lock go between steps. The batch may last
  // across several critical sections: until it ends, find() skips released entries
  // still indexed, and add_peer() takes out of the index what it would otherwise
  // duplicate.
  void begin_batch(std::size_t releases_expected) {
    index_.begin_batch(releases_expected, peers_.size());
  }
  // True when the batch is over.
  bool end_batch_step() { return index_.sweep_step(); }
  void end_batch() {
    while (!end_batch_step()) {
    }
  }

  // --- Connections -----------------------------------------------------------------

  ConnEntry& conn(std::uint32_t slot) { return conns_[slot]; }
  const ConnEntry& conn(std::uint32_t slot) const { return conns_[slot]; }
  std::size_t conn_slots() const { return conns_.size(); }
  // The entry at `slot` if it holds connection `id` now, or null.
  const ConnEntry* live_conn(std::uint32_t slot, ConnectionId id) const {
    if (slot >= conns_.size()) return nullptr;
    const ConnEntry& c = conns_[slot];
    return c.handle && c.id == id ? &c : nullptr;
  }
  ConnEntry* live_conn(std::uint32_t slot, ConnectionId id) {
    return const_cast<ConnEntry*>(std::as_const(*this).live_conn(slot, id));
  }

  // Adds a connection of the peer at `peer_slot`, holding a place under the caps at
  // `capped` if given. The peer's only connection is its best path. Returns its slot.
  std::uint32_t add_connection(std::uint32_t peer_slot, std::shared_ptr<Connection> handle,
                               ConnectionId id, const ConnectionFacts& facts, TimePoint now,
                               const std::optional<boost::asio::ip::address>& capped);
  // Removes a connection: the peer's lists and the totals follow, the slot is freed. The
  // peer's entry stays (empty when this was its last connection) for the caller to keep
  // or release. Its place under the caps, if any, is the caller's to give back first
  // (cap_address()). Returns the handle.
  [[gnu::always_inline]] std::shared_ptr<Connection> detach(std::uint32_t conn_slot) {
    ConnEntry& c = conns_[conn_slot];
    const std::uint32_t slot = c.peer_slot;
    PeerSlot& entry = peers_[slot];
    entry.conns.erase(std::find(entry.conns.begin(), entry.conns.end(), conn_slot));
    // The cold part only when it changes: a trim of single-path peers without streams
    // touches none of it.
    if (!entry.conns.empty()) ++cold_[slot].paths_version;
    if (entry.best == conn_slot) entry.best = kNoSlot;
    entry.streams -= c.streams();
    if (c.streams_in != 0) cold_[slot].streams_in -= c.streams_in;
    counts_.streams[0] -= c.streams_in;
    counts_.streams[1] -= c.streams_out;
    if (c.cap_elsewhere) odd_caps_.erase(conn_slot);
    if (c.has_scope) scope_ids_.erase(conn_slot);
    if (c.direction == Direction::inbound) {
      --entry.inbound;
      --counts_.inbound;
    } else {
      --counts_.outbound;
    }
    --counts_.connections;
    std::shared_ptr<Connection> handle = std::move(c.handle);
    c.peer_slot = free_conn_;  // a free entry links to the next free one
    free_conn_ = conn_slot;
    return handle;
  }

  // A stream opened (+1) or closed (-1) on the connection. REQUIRES: a close has an open
  // stream to close in that direction.
  void count_stream(std::uint32_t conn_slot, Direction direction, int delta) {
    count_peer_stream(conn_slot, direction, delta);
    counts_.streams[direction == Direction::inbound ? 0 : 1] +=
        static_cast<std::size_t>(static_cast<std::ptrdiff_t>(delta));
  }

  // The same, leaving the pool's totals to the caller: a caller holding only the peer's
  // lane keeps its own count of the difference (the manager's Lane).
  void count_peer_stream(std::uint32_t conn_slot, Direction direction, int delta) {
    ConnEntry& c = conns_[conn_slot];
    const bool in = direction == Direction::inbound;
    const auto step = static_cast<std::uint32_t>(delta);  // modulo 2^32: -1 subtracts
    (in ? c.streams_in : c.streams_out) += step;
    peers_[c.peer_slot].streams += step;
    if (in) cold_[c.peer_slot].streams_in += step;
  }

  // The remote endpoint, rebuilt from the packed entry.
  Endpoint remote_of(std::uint32_t conn_slot) const {
    return Endpoint{remote_address(conn_slot), conns_[conn_slot].port};
  }
  boost::asio::ip::address remote_address(std::uint32_t conn_slot) const;
  // Where the connection holds its place under the caps. REQUIRES: conn(slot).capped.
  boost::asio::ip::address cap_address(std::uint32_t conn_slot) const {
    const ConnEntry& c = conns_[conn_slot];
    return c.cap_elsewhere ? odd_caps_.find(conn_slot)->second : remote_address(conn_slot);
  }

 private:
  void pack_remote(ConnEntry& c, std::uint32_t conn_slot, const Endpoint& remote);

  PoolCounts counts_;
  // Peer entries by slot, with their cold parts and ids at the same index. A slot is live
  // iff index_ finds it under its id.
  PagedVector<PeerSlot> peers_;
  PagedVector<PeerCold> cold_;
  PeerIdTable ids_;
  PeerIndex index_;
  std::uint32_t free_peer_ = kNoSlot;  // free peer slots, linked through PeerSlot::best
  // Every tracked connection at its Connection slot; free ones linked through peer_slot.
  PagedVector<ConnEntry> conns_;
  std::uint32_t free_conn_ = kNoSlot;
  // The rare per-connection extras, by connection slot: IPv6 scope ids (link-local
  // remotes) and capped addresses other than the remote one (ConnEntry::cap_elsewhere).
  boost::unordered_flat_map<std::uint32_t, boost::asio::ip::scope_id_type> scope_ids_;
  boost::unordered_flat_map<std::uint32_t, boost::asio::ip::address> odd_caps_;
};

}  // namespace dep2p::connmgr::detail
