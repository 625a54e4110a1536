#include "dep2p/connmgr/connection_manager.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <queue>
#include <stdexcept>
#include <thread>
#include <tuple>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/container/small_vector.hpp>
#include <boost/unordered/unordered_flat_set.hpp>

#include "admission/rate_limiter.hpp"
#include "admission/subnet_counter.hpp"
#include "base/logging.hpp"
#include "base/paged_vector.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/gater.hpp"
#include "manager/event_hub.hpp"
#include "observe/observability.hpp"
#include "pool/peer_id_table.hpp"
#include "realm/manager_access.hpp"
#include "tags/tag_table.hpp"
#include "trim/score_key.hpp"

namespace dep2p::connmgr {

namespace detail {
// The manager's access to the tracking word every Connection carries. A manager's token is
// even and never reused in the process; token | 1 marks a connection that manager closed
// and whose closure the host has not reported yet.
struct ConnectionAccess {
  static std::uint64_t new_token() {
    static std::atomic<std::uint64_t> last{0};
    return (last.fetch_add(1, std::memory_order_relaxed) + 1) * 2;
  }
  static bool claim(Connection& c, std::uint64_t token) {
    std::uint64_t expected = 0;
    return c.owner_.compare_exchange_strong(expected, token, std::memory_order_acq_rel);
  }
  static void release(const Connection& c) { c.owner_.store(0, std::memory_order_release); }
  // The manager asked the host to close it: held as closed until the host's report, unless
  // that report came first (the word no longer holds the token then).
  static void mark_closed(const Connection& c, std::uint64_t token) {
    std::uint64_t expected = token;
    c.owner_.compare_exchange_strong(expected, token | 1, std::memory_order_acq_rel);
  }
  // The host's report of a closure the manager asked for: the handle is the host's again.
  static void end_closed(const Connection& c, std::uint64_t token) {
    std::uint64_t expected = token | 1;
    c.owner_.compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
  }
  // The same for a connection the manager detached and is about to close (or has just
  // closed: mark_closed may run meanwhile, so the plain token is tried first).
  // REQUIRES: the manager's lock held, so that no claim of the token can interleave.
  static void end_detached(const Connection& c, std::uint64_t token) {
    std::uint64_t expected = token;
    if (c.owner_.compare_exchange_strong(expected, 0, std::memory_order_acq_rel)) return;
    end_closed(c, token);
  }
  static std::uint64_t owner(const Connection& c) {
    return c.owner_.load(std::memory_order_acquire);
  }
  static std::uint32_t slot(const Connection& c) { return c.slot_; }
  static void set_slot(Connection& c, std::uint32_t slot) { c.slot_ = slot; }
};
}  // namespace detail

namespace {

using detail::ConnectionAccess;

// A connection the manager has decided to close, kept until the act phase so that
// Connection::close() and the handle's destructor run outside the lock.
struct Closing {
  std::shared_ptr<Connection> handle;
  CloseReason reason;
  std::string own_detail;  // when empty, the detail shared by the whole batch
};

}  // namespace

struct ConnectionManager::Impl : std::enable_shared_from_this<Impl>,
                                 DecayingTag::Owner,
                                 Reservation::Owner,
                                 KeepAliveHold::Owner {
  // One tracked connection, at index Connection::slot_ of conn_slots_. A free slot has a
  // null handle and sits in the free list (free_conn_head_). Packed to 96 bytes
  // (docs/performance.md, "Memory per connection"): the remote endpoint as raw bytes
  // (remote_of() rebuilds it), flags as bits, the rare extras (an IPv6 scope id, a capped
  // address other than the remote one) in side maps keyed by the slot, a ping's send time
  // in its answer's callback.
  struct alignas(32) ConnEntry {
    // What detach() reads and writes comes first: 32 bytes, aligned, so they lie in one
    // cache line and a trim touches one line of each entry it detaches. (The id follows:
    // detach() reads it only for event subscribers and the realm layer.)
    std::shared_ptr<Connection> handle;
    std::uint32_t peer_slot = 0;  // in a free entry: the next free entry (kNoSlot: none)
    std::uint32_t streams_in = 0;
    std::uint32_t streams_out = 0;
    Direction direction = Direction::inbound;
    PathKind path = PathKind::direct;
    Transport transport = Transport::tcp;
    bool address_v6 : 1 = false;  // `address` is IPv6
    bool has_scope : 1 = false;   // its scope id is in scope_ids_
    bool ipv6 : 1 = false;        // reached over IPv6 proper (not v4-mapped)
    bool redundant : 1 = false;   // a relay scheduled to close after a direct path arrived
    bool closing : 1 = false;     // the host reported ConnectionState::closing
    bool ping_in_flight : 1 = false;
    // Holds a place under the per-address caps (released with it): at the remote
    // address, or with cap_elsewhere at the one in odd_caps_.
    bool capped : 1 = false;
    bool cap_elsewhere : 1 = false;
    ConnectionId id{};
    TimePoint opened_at{};
    // Activity: the last reported bytes, and exponentially smoothed rates (bytes/s;
    // estimates, so a float's 24-bit mantissa is plenty).
    TimePoint last_activity{};
    // Keepalive: the ping in flight (if any) by sequence number, misses in a row, and the
    // smoothed RTT (zero until the first answer).
    Duration srtt{};
    float download_rate = 0;
    float upload_rate = 0;
    std::uint32_t ping_sequence = 0;
    std::uint16_t missed = 0;                // saturates at 65535
    std::uint16_t port = 0;                  // of the remote endpoint
    std::array<std::uint8_t, 16> address{};  // the remote address (IPv4: the first 4)

    std::uint32_t streams() const { return streams_in + streams_out; }
  };

  // What one admission in progress holds; see Reservation. Keyed by reservation id.
  struct Charge {
    Direction direction = Direction::inbound;
    bool pending = false;        // a pending-handshake slot, system (and peer)
    std::optional<NodeId> peer;  // the peer scope, once known
    std::optional<boost::asio::ip::address> capped_address;  // a place under the caps
    std::uint64_t memory = 0;  // reserved bytes (system, and peer if known)
    std::size_t fds = 0;       // reserved descriptors
  };

  // Admission counters of one peer, for the peer scope (connections and streams are in
  // its PeerSlot). Erased when all are zero.
  struct PeerCharges {
    std::size_t pending[2] = {0, 0};
    std::uint64_t memory = 0;
    std::size_t fds = 0;
    bool empty() const { return pending[0] == 0 && pending[1] == 0 && memory == 0 && fds == 0; }
  };

  static constexpr std::uint32_t kNoSlot = UINT32_MAX;

  // One decaying tag's value on one peer. `version` changes with every bump, so work done
  // outside the lock (custom functions) can tell whether the value moved meanwhile.
  struct DecayEntry {
    std::uint32_t tag;  // index into decay_defs_
    std::uint32_t version = 0;
    int value = 0;
    TimePoint added{};
    TimePoint last_visit{};
  };
  // The decaying tags of one peer, at PeerSlot::decay in decay_sets_. Only peers that
  // hold decaying tags have one, so the rest do not pay for the list.
  struct DecaySet {
    std::int64_t sum = 0;  // of the entries' values
    boost::container::small_vector<DecayEntry, 1> entries;
  };

  // A registered decaying tag, at its id's index in decay_defs_. Closed ones are reused
  // for later registrations; `generation` tells the handles of the old one apart.
  struct DecayDef {
    std::string name;
    Duration interval{};
    TimePoint next_tick{};
    Decay decay = Decay::none();
    Bump bump = Bump::sum();
    std::uint64_t generation = 0;
    bool open = false;
  };

  // When a temporary entry is due to expire (see expiry_of_).
  struct Expiry {
    TimePoint at;
    std::uint32_t slot;
    std::uint32_t generation;
    friend bool operator>(const Expiry& a, const Expiry& b) { return a.at > b.at; }
  };

  // One peer entry: connected (conns non-empty) or temporary (tagged, no connections;
  // either never connected or kept for tag_retention after its last connection).
  // Slots are recycled through a free list (free_peer_head_); `generation` changes on each
  // release so a trim plan can tell a slot that was reused since it looked.
  //
  // One cache line (64 bytes, aligned): what a trim reads and what releasing the slot
  // writes. The rest of a peer's state is in PeerCold at the same index of peer_cold_, the
  // id in peer_ids_, decaying tags in decay_sets_, a temporary entry's end in expiry_of_.
  // A trim's commit then touches one line of each victim's peer entry instead of two or
  // three (docs/performance.md, "Fifth pass").
  struct alignas(64) PeerSlot {
    bool live = false;
    bool temporary = false;
    bool is_protected = false;  // mirrors protections_ for a live slot
    std::uint32_t generation = 0;
    std::uint32_t streams = 0;
    std::uint32_t inbound = 0;
    std::uint32_t best = kNoSlot;   // conn slot of the chosen path; free slot: next free
    std::uint32_t decay = kNoSlot;  // index into decay_sets_, if any decaying tag
    detail::PeerTags tags;
    detail::CompactVector<std::uint32_t, 2> conns;  // conn_slots_ indices
  };
  // The part of a peer entry a trim does not touch. Written whole when a slot is taken
  // (create_peer), so releasing a slot need not touch it.
  struct PeerCold {
    TimePoint first_seen{};        // read by a trim only with a grace period
    std::uint64_t tags_stamp = 0;  // tag_clock_ at the last tag change; 0 when none
    ConnectionId last_best{};      // the chosen path's id, kept after it closes
    std::uint32_t streams_in = 0;
    // Bumped when a connection comes, or goes and others remain (a peer's last one going
    // leaves it without paths, or releases the slot: reselect() checks both).
    std::uint32_t paths_version = 0;
  };

  // The sizes docs/performance.md counts (LP64): a change that grows them shows here.
  static_assert(sizeof(void*) != 8 || sizeof(ConnEntry) == 96);
  static_assert(sizeof(void*) != 8 || sizeof(PeerSlot) == 64);
  static_assert(sizeof(void*) != 8 || sizeof(PeerCold) == 32);

  // The peer index stores only slot numbers (4 bytes each, so it stays cache-resident at
  // 100k peers) and looks ids up through the slots; NodeId keys work transparently.
  struct SlotHash {
    using is_transparent = void;
    using is_avalanching = void;  // NodeId::hash already mixes every byte
    const detail::PeerIdTable* ids;
    std::size_t operator()(std::uint32_t slot) const noexcept { return ids->hash(slot); }
    std::size_t operator()(const NodeId& id) const noexcept { return id.hash(); }
  };
  struct SlotEqual {
    using is_transparent = void;
    const detail::PeerIdTable* ids;
    bool operator()(std::uint32_t a, std::uint32_t b) const noexcept { return a == b; }
    bool operator()(const NodeId& id, std::uint32_t slot) const noexcept {
      return ids->equals(slot, id);
    }
    bool operator()(std::uint32_t slot, const NodeId& id) const noexcept {
      return ids->equals(slot, id);
    }
  };

  enum class TrimKind { background, explicit_trim, forced, exact_count, limits_changed };

  Impl(executor_type executor, Config config, Dependencies deps)
      : executor_(std::move(executor)),
        strand_(boost::asio::make_strand(executor_)),
        time_(deps.time_source ? std::move(deps.time_source)
                               : std::make_shared<SteadyTimeSource>()),
        logger_(deps.logger ? std::move(deps.logger) : detail::make_default_logger()),
        trimmer_(deps.trimmer ? std::move(deps.trimmer) : make_score_trimmer()),
        trim_inputs_(trimmer_->inputs()),
        score_in_place_(detail::is_score_trimmer(*trimmer_)),
        gater_(std::move(deps.gater)),
        path_selector_(deps.path_selector ? std::move(deps.path_selector)
                                          : make_default_path_selector()),
        config_(std::move(config)),
        peer_index_(0, SlotHash{&peer_ids_}, SlotEqual{&peer_ids_}),
        subnets_(config_.limits.subnets),
        inbound_rates_(config_.limits.inbound_rate),
        outbound_dials_(config_.limits.outbound_dials),
        hub_(logger_) {}

  ~Impl() {
    // Let go of the handles so that they can be tracked by another manager. (Handles
    // detached but not yet closed are released by the act phase that holds them.)
    for (ConnEntry& conn : conn_slots_) {
      if (conn.handle) ConnectionAccess::release(*conn.handle);
    }
  }

  void start() {
    reservation_owner_ = std::weak_ptr<Reservation::Owner>(shared_from_this());
    hold_owner_ = std::weak_ptr<KeepAliveHold::Owner>(shared_from_this());
    logger_->info("connmgr: effective settings: {}", config_.describe());
    background_timer_ = time_->make_timer(strand_);
    decay_timer_ = time_->make_timer(strand_);
    housekeeping_timer_ = time_->make_timer(strand_);
    keepalive_timer_ = time_->make_timer(strand_);
    arm_background_check();
    arm_decay_tick();
    if (gater_) {
      gater_subscription_ = gater_->on_tightened([weak = weak_from_this()] {
        if (auto self = weak.lock()) {
          boost::asio::post(self->strand_, [weak] {
            if (auto again = weak.lock()) again->regate();
          });
        }
      });
    }
  }

  // --- Timers ---------------------------------------------------------------------

  void arm_background_check() {
    std::chrono::milliseconds period;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      period = config_.silence_period;
    }
    background_timer_->wait_until(time_->now() + period, [weak = weak_from_this()] {
      if (auto self = weak.lock()) {
        self->run_trim(TrimKind::background, 0);
        self->arm_background_check();
      }
    });
  }

  // --- Pool -----------------------------------------------------------------------

  // The live slot of `peer`, or nullptr. REQUIRES: mutex_ held (for all helpers below).
  PeerSlot* find_peer(const NodeId& peer) {
    const std::uint32_t slot = find_slot(peer);
    return slot == kNoSlot ? nullptr : &peers_[slot];
  }
  const PeerSlot* find_peer(const NodeId& peer) const {
    const std::uint32_t slot = find_slot(peer);
    return slot == kNoSlot ? nullptr : &peers_[slot];
  }
  std::int64_t value_of(const PeerSlot& entry) const {
    return entry.tags.sum() + (entry.decay == kNoSlot ? 0 : decay_sets_[entry.decay].sum);
  }
  bool holds_tags(const PeerSlot& entry) const {
    return !entry.tags.empty() || entry.decay != kNoSlot;  // a set exists while non-empty
  }
  // A temporary entry's end (see schedule_expiry).
  TimePoint expiry_at(std::uint32_t slot) const {
    auto it = expiry_of_.find(slot);
    return it == expiry_of_.end() ? TimePoint::max() : it->second;
  }

  // The remote endpoint of a connection, packed into its entry and rebuilt on demand.
  void pack_remote(ConnEntry& conn, std::uint32_t conn_slot, const Endpoint& remote) {
    conn.port = remote.port;
    if (remote.address.is_v6()) {
      const boost::asio::ip::address_v6 v6 = remote.address.to_v6();
      const auto bytes = v6.to_bytes();
      std::copy(bytes.begin(), bytes.end(), conn.address.begin());
      conn.address_v6 = true;
      if (v6.scope_id() != 0) {
        conn.has_scope = true;
        scope_ids_.insert_or_assign(conn_slot, v6.scope_id());
      }
    } else {
      const auto bytes = remote.address.to_v4().to_bytes();
      std::copy(bytes.begin(), bytes.end(), conn.address.begin());
    }
  }
  boost::asio::ip::address remote_address(const ConnEntry& conn, std::uint32_t conn_slot) const {
    if (!conn.address_v6) {
      boost::asio::ip::address_v4::bytes_type bytes;
      std::copy_n(conn.address.begin(), bytes.size(), bytes.begin());
      return boost::asio::ip::address_v4(bytes);
    }
    boost::asio::ip::address_v6::bytes_type bytes;
    std::copy_n(conn.address.begin(), bytes.size(), bytes.begin());
    return boost::asio::ip::address_v6(bytes,
                                       conn.has_scope ? scope_ids_.find(conn_slot)->second : 0);
  }
  Endpoint remote_of(std::uint32_t conn_slot) const {
    const ConnEntry& conn = conn_slots_[conn_slot];
    return Endpoint{remote_address(conn, conn_slot), conn.port};
  }

  // The live slot of `peer`, or kNoSlot.
  std::uint32_t find_slot(const NodeId& peer) const {
    auto it = peer_index_.find(peer);
    return it == peer_index_.end() ? kNoSlot : *it;
  }

  // Whether the handle is this manager's: tracked, detached for closing, or closed by it with
  // the host's report still to come.
  bool ours(const Connection& c) const { return (ConnectionAccess::owner(c) | 1) == (token_ | 1); }

  // The conn_slots_ index of a connection this manager tracks, or nullopt.
  // A handle the manager has detached but not yet closed still names this manager; the
  // slot's handle tells it apart (the slot is free or reused).
  std::optional<std::uint32_t> tracked_slot(const Connection& c) const {
    if (ConnectionAccess::owner(c) != token_) return std::nullopt;
    const std::uint32_t slot = ConnectionAccess::slot(c);
    if (slot >= conn_slots_.size() || conn_slots_[slot].handle.get() != &c) return std::nullopt;
    return slot;
  }

  std::uint32_t create_peer(const NodeId& peer, TimePoint now, bool temporary) {
    std::uint32_t slot;
    if (free_peer_head_ != kNoSlot) {
      slot = free_peer_head_;
      free_peer_head_ = peers_[slot].best;
      peers_[slot].best = kNoSlot;
    } else {
      slot = static_cast<std::uint32_t>(peers_.size());
      peers_.emplace_back();
      peer_cold_.emplace_back();
    }
    peer_ids_.assign(slot, peer);
    PeerSlot& entry = peers_[slot];
    peer_cold_[slot] = PeerCold{.first_seen = now};
    entry.live = true;
    entry.temporary = temporary;
    entry.is_protected = protections_.size() != 0 && protections_.is_protected(peer);
    peer_index_.insert(slot);
    if (temporary) ++temp_peers_;
    return slot;
  }

  void release_peer(std::uint32_t slot) {
    PeerSlot& entry = peers_[slot];
    if (entry.temporary) --temp_peers_;
    entry.tags.clear(tag_names_);
    entry.best = kNoSlot;
    drop_decay_set(entry);
    if (!expiry_of_.empty()) expiry_of_.erase(slot);
    entry.conns.clear();
    entry.streams = 0;
    entry.inbound = 0;
    entry.live = false;
    entry.temporary = false;
    ++entry.generation;
    if (batch_unindex_) {
      unindexed_[slot] = true;  // leaves peer_index_ in end_batch_unindex()
      ++unindexed_count_;
    } else {
      peer_index_.erase(slot);
    }
    entry.best = free_peer_head_;  // a free slot links to the next free one
    free_peer_head_ = slot;
  }

  // A commit that releases a large share of the peers takes their slots out of
  // peer_index_ in one pass over the index at the end, instead of one hashed erase each
  // (a cache miss into the index and one into peer_ids_ per victim). In between, the
  // released slots are still indexed: nothing may look peers up by id or add peers.
  // REQUIRES: mutex_ held, from begin to end.
  void begin_batch_unindex(std::size_t releases_expected) {
    batch_unindex_ = releases_expected >= 1024 && releases_expected >= peer_index_.size() / 8;
    if (batch_unindex_) unindexed_.assign(peers_.size(), false);
  }
  void end_batch_unindex() {
    if (!batch_unindex_) return;
    batch_unindex_ = false;
    if (unindexed_count_ > 0) {
      boost::unordered::erase_if(peer_index_, [&](std::uint32_t slot) { return unindexed_[slot]; });
    }
    unindexed_count_ = 0;
    unindexed_ = {};
  }

  // Removes one connection from the pool and returns its handle, for closing or release
  // outside the lock.
  std::shared_ptr<Connection> detach(std::uint32_t conn_slot, CloseReason reason,
                                     const std::string& detail) {
    ConnEntry& conn = conn_slots_[conn_slot];
    const std::uint32_t slot = conn.peer_slot;
    PeerSlot& peer = peers_[slot];
    peer.conns.erase(std::find(peer.conns.begin(), peer.conns.end(), conn_slot));
    // The cold part only when it changes: a trim of single-path peers without streams
    // touches none of it.
    if (!peer.conns.empty()) ++peer_cold_[slot].paths_version;
    if (peer.best == conn_slot) peer.best = kNoSlot;
    peer.streams -= conn.streams();
    if (conn.streams_in != 0) peer_cold_[slot].streams_in -= conn.streams_in;
    streams_by_direction_[0] -= conn.streams_in;
    streams_by_direction_[1] -= conn.streams_out;
    if (conn.capped) {
      if (conn.cap_elsewhere) {
        auto it = odd_caps_.find(conn_slot);
        subnets_.remove(it->second);
        odd_caps_.erase(it);
      } else {
        subnets_.remove(remote_address(conn, conn_slot));
      }
    }
    if (conn.has_scope) scope_ids_.erase(conn_slot);
    if (conn.direction == Direction::inbound) {
      --peer.inbound;
      --inbound_;
    } else {
      --outbound_;
    }
    --connections_;
    ++stats_.connections_removed;
    ++stats_.closes_by_reason[static_cast<std::size_t>(reason)];
    if (hub_.has_subscribers()) {
      const NodeId peer_id = peer_ids_.get(slot);  // rebuilt from the packed table once
      hub_.enqueue(DisconnectedEvent{peer_id, conn.id, conn.direction, reason, detail});
      if (observer_ != nullptr)
        observer_->on_detached(conn_slot, conn.id, &peer_id, reason, &observer_events_);
    } else if (observer_ != nullptr) {
      observer_->on_detached(conn_slot, conn.id, nullptr, reason, nullptr);
    }
    if (!observer_events_.empty()) {
      for (Event& e : observer_events_) hub_.enqueue(std::move(e));
      observer_events_.clear();
    }
    // The handle's owner word is cleared by the caller: at once for a reported closure,
    // in the act phase (next to close(), on the same cache line) for the manager's own.
    std::shared_ptr<Connection> handle = std::move(conn.handle);
    conn.peer_slot = free_conn_head_;  // a free entry links to the next free one
    free_conn_head_ = conn_slot;
    compact_schedules_if_stale();
    if (peer.conns.empty()) retain_or_release(slot);
    return handle;
  }

  // A peer whose last connection went: with tag_retention its tags stay that long as a
  // temporary entry (if the temporary bound allows), otherwise the entry goes.
  void retain_or_release(std::uint32_t slot) {
    PeerSlot& entry = peers_[slot];
    if (config_.tag_retention.count() > 0 && holds_tags(entry) &&
        temp_peers_ < config_.max_temp_peers) {
      entry.temporary = true;
      ++temp_peers_;
      entry.streams = 0;  // already zero: every connection's streams were subtracted
      entry.inbound = 0;
      schedule_expiry(slot, time_->now() + config_.tag_retention);
      return;
    }
    release_peer(slot);
  }

  // A temporary entry that no longer holds any tag has no reason to exist.
  void release_if_empty_temporary(std::uint32_t slot) {
    const PeerSlot& entry = peers_[slot];
    if (entry.live && entry.temporary && !holds_tags(entry)) release_peer(slot);
  }

  // What add_connection reads from the host's handle, outside the lock.
  struct HandleFacts {
    NodeId peer;
    Direction direction;
    PathKind path;
    std::uint32_t streams;
    Endpoint remote;
    Transport transport;
  };
  std::optional<HandleFacts> read_facts(const Connection& handle) {
    try {
      return HandleFacts{handle.remote_peer(),  handle.direction(),       handle.path_kind(),
                         handle.stream_count(), handle.remote_endpoint(), handle.transport()};
    } catch (const std::exception& e) {
      logger_->warn("connmgr: add_connection: the connection's properties threw: {}", e.what());
      return std::nullopt;
    } catch (...) {
      logger_->warn("connmgr: add_connection: the connection's properties threw");
      return std::nullopt;
    }
  }

  // after_handshake hooks; a rejection is counted and published.
  std::error_code after_handshake(const Connection& handle, Direction direction, Refusal* refusal) {
    Decision decision = run_hooks(after_handshake_, handle);
    if (decision) return {};
    auto r = refuse(
        Stage::add, RefusalReason::hook, "hook", decision.reason,
        direction_word(direction) + " refused by an after_handshake hook: " + decision.reason);
    if (refusal != nullptr) *refusal = std::move(r);
    return Errc::connection_denied;
  }

  std::error_code add_connection(std::shared_ptr<Connection> handle) {
    if (!handle) return Errc::invalid_argument;
    auto facts = read_facts(*handle);
    if (!facts) return Errc::invalid_argument;
    if (auto ec = after_handshake(*handle, facts->direction, nullptr)) {
      hub_.drain();
      return ec;
    }
    std::vector<Closing> closing;
    bool multipath = false;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return Errc::closed;
      const Connection* key = handle.get();
      if (auto ec = insert_connection(std::move(handle), *facts, std::nullopt)) return ec;
      multipath = apply_path_rules(*key, closing);
    }
    if (!multipath) {
      hub_.drain();
      return {};
    }
    act(closing, "multipath");
    reselect(facts->peer);
    return {};
  }

  // The staged path's last step: the reservation's charges turn into the connection's.
  std::error_code add_reserved(std::shared_ptr<Connection> handle, Reservation reservation,
                               Refusal* refusal) {
    std::vector<Closing> closing;
    bool multipath = false;
    if (!handle || !reservation.valid()) return Errc::invalid_argument;
    auto facts = read_facts(*handle);
    if (!facts) return Errc::invalid_argument;
    if (auto r = ask_gater(Stage::add, direction_word(facts->direction),
                           [&] { return gater_->intercept_upgraded(*handle); })) {
      if (refusal != nullptr) *refusal = std::move(*r);
      return Errc::connection_denied;  // `reservation` releases its charges
    }
    if (auto ec = after_handshake(*handle, facts->direction, refusal)) return ec;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return Errc::closed;
      auto it = reservations_.find(reservation.id());
      if (it == reservations_.end() || it->second.direction != facts->direction ||
          (it->second.peer && !(*it->second.peer == facts->peer))) {
        return Errc::invalid_argument;  // not this connection's reservation
      }
      Charge charge = it->second;
      const Connection* key = handle.get();
      if (auto ec = insert_connection(std::move(handle), *facts, charge.capped_address)) {
        return ec;  // the reservation (still registered) releases everything
      }
      multipath = apply_path_rules(*key, closing);
      // The connection now holds the address's place; the pending slot ends.
      it->second.capped_address.reset();
      release_charge(it->second);
      reservations_.erase(it);
      reservation.take();
    }
    act(closing, "multipath");
    if (multipath) reselect(facts->peer);
    return {};
  }

  // REQUIRES: mutex_ held, not closed.
  std::error_code insert_connection(std::shared_ptr<Connection> handle, const HandleFacts& facts,
                                    std::optional<boost::asio::ip::address> capped_address) {
    const TimePoint now = time_->now();
    if (!ConnectionAccess::claim(*handle, token_)) {
      // Already ours (a duplicate report, or one we closed whose closure the host has not
      // reported yet) or tracked by another manager.
      unknown_reports_.fetch_add(1, std::memory_order_relaxed);
      return ours(*handle) ? Errc::duplicate_connection : Errc::invalid_argument;
    }
    std::uint32_t slot;
    if (auto index = peer_index_.find(facts.peer); index != peer_index_.end()) {
      slot = *index;
      PeerSlot& existing = peers_[slot];
      if (existing.temporary) {
        // A temporary entry becomes real on connect, keeping its tags; its grace
        // period starts now.
        existing.temporary = false;
        peer_cold_[slot].first_seen = now;
        expiry_of_.erase(slot);
        --temp_peers_;
      }
    } else {
      slot = create_peer(facts.peer, now, false);
    }
    std::uint32_t conn_slot;
    if (free_conn_head_ != kNoSlot) {
      conn_slot = free_conn_head_;
      free_conn_head_ = conn_slots_[conn_slot].peer_slot;
    } else {
      conn_slot = static_cast<std::uint32_t>(conn_slots_.size());
      conn_slots_.emplace_back();
    }
    ConnectionAccess::set_slot(*handle, conn_slot);
    const auto id = static_cast<ConnectionId>(++next_connection_id_);
    // Streams open at add time count in the connection's own direction.
    const bool in = facts.direction == Direction::inbound;
    ConnEntry& fresh = conn_slots_[conn_slot];
    fresh = ConnEntry{};
    fresh.handle = std::move(handle);
    fresh.id = id;
    fresh.peer_slot = slot;
    fresh.direction = facts.direction;
    fresh.path = facts.path;
    fresh.streams_in = in ? facts.streams : 0;
    fresh.streams_out = in ? 0 : facts.streams;
    fresh.opened_at = now;
    pack_remote(fresh, conn_slot, facts.remote);
    if (capped_address) {
      fresh.capped = true;
      if (*capped_address != facts.remote.address) {
        fresh.cap_elsewhere = true;
        odd_caps_.insert_or_assign(conn_slot, *capped_address);
      }
    }
    PeerSlot& entry = peers_[slot];
    entry.conns.push_back(conn_slot);
    entry.streams += facts.streams;
    PeerCold& cold = peer_cold_[slot];
    if (in) cold.streams_in += facts.streams;
    streams_by_direction_[in ? 0 : 1] += facts.streams;
    if (in) {
      ++entry.inbound;
      ++inbound_;
    } else {
      ++outbound_;
    }
    ++connections_;
    ++stats_.connections_added;
    conn_slots_[conn_slot].last_activity = now;
    conn_slots_[conn_slot].transport = facts.transport;
    conn_slots_[conn_slot].ipv6 =
        facts.remote.address.is_v6() && !facts.remote.address.to_v6().is_v4_mapped();
    ++cold.paths_version;
    if (entry.conns.size() == 1) {
      // A single path is the best one; the selector is asked once there are several.
      entry.best = conn_slot;
      cold.last_best = id;
    }
    enroll(conn_slot, id, now);
    if (hub_.has_subscribers()) hub_.enqueue(ConnectedEvent{facts.peer, id, facts.direction});
    return {};
  }

  std::error_code remove_connection(const Connection& connection, CloseReason reason) {
    // A report for a connection this manager does not hold (typically one it closed
    // itself, reported back from close()) needs no lock: only this manager ever sets
    // the owner word to its token, and only under its lock.
    if (ConnectionAccess::owner(connection) != token_) {
      ConnectionAccess::end_closed(connection, token_);  // the report of our close, if it is
      unknown_reports_.fetch_add(1, std::memory_order_relaxed);
      return Errc::unknown_connection;
    }
    std::shared_ptr<Connection> released;
    std::optional<NodeId> reselect_peer;
    {
      std::lock_guard lock(mutex_);
      auto slot = tracked_slot(connection);
      if (!slot) {
        // Another thread removed it meanwhile, or detached it to close it: then this
        // report is the one that close would have brought.
        ConnectionAccess::end_detached(connection, token_);
        unknown_reports_.fetch_add(1, std::memory_order_relaxed);
        return Errc::unknown_connection;
      }
      static const std::string kReported = "closure reported by the host";
      const std::uint32_t peer_slot = conn_slots_[*slot].peer_slot;
      released = detach(*slot, reason, kReported);
      ConnectionAccess::release(*released);
      if (peers_[peer_slot].live && !peers_[peer_slot].conns.empty() &&
          peers_[peer_slot].best == kNoSlot) {
        reselect_peer = peer_ids_.get(peer_slot);
      }
    }
    hub_.drain();
    if (reselect_peer) reselect(*reselect_peer);
    // `released` (possibly the last reference to the host's object) goes here, unlocked.
    return {};
  }

  std::error_code close_peer(const NodeId& peer, CloseReason reason, std::string_view detail) {
    std::vector<Closing> closing;
    const std::string text(detail);
    {
      std::lock_guard lock(mutex_);
      if (closed_) return Errc::closed;
      PeerSlot* entry = find_peer(peer);
      if (entry == nullptr || entry->conns.empty()) return Errc::unknown_peer;
      const auto victims = entry->conns;  // detach() edits the slot
      for (std::uint32_t c : victims) closing.push_back({detach(c, reason, text), reason});
    }
    act(closing, text);
    return {};
  }

  std::error_code close_connection(const Connection& connection, CloseReason reason,
                                   std::string_view detail) {
    std::vector<Closing> closing;
    const std::string text(detail);
    {
      std::lock_guard lock(mutex_);
      if (closed_) return Errc::closed;
      auto slot = tracked_slot(connection);
      if (!slot) return Errc::unknown_connection;
      closing.push_back({detach(*slot, reason, text), reason});
    }
    act(closing, text);
    return {};
  }

  std::error_code adjust_streams(const Connection& connection, Direction direction, bool opened,
                                 Refusal* refusal) {
    std::optional<Refusal> refused;
    {
      std::lock_guard lock(mutex_);
      auto slot = tracked_slot(connection);
      if (!slot) return Errc::unknown_connection;
      ConnEntry& conn = conn_slots_[*slot];
      PeerSlot& peer = peers_[conn.peer_slot];
      const bool in = direction == Direction::inbound;
      std::uint32_t& mine = in ? conn.streams_in : conn.streams_out;
      if (opened) {
        refused = check_streams(conn.peer_slot, direction);
        if (!refused) {
          if (hub_.has_subscribers()) {
            hub_.enqueue(StreamOpenedEvent{peer_ids_.get(conn.peer_slot), conn.id, direction});
          }
          ++mine;
          ++peer.streams;
          if (in) ++peer_cold_[conn.peer_slot].streams_in;
          ++streams_by_direction_[in ? 0 : 1];
        }
      } else if (mine > 0) {
        if (hub_.has_subscribers()) {
          hub_.enqueue(StreamClosedEvent{peer_ids_.get(conn.peer_slot), conn.id, direction});
        }
        --mine;
        --peer.streams;
        if (in) --peer_cold_[conn.peer_slot].streams_in;
        --streams_by_direction_[in ? 0 : 1];
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

  // Calls close() on each handle and delivers the queued events; no lock held.
  void act(std::vector<Closing>& closing, const std::string& detail) {
    for (std::size_t i = 0; i < closing.size(); ++i) {
      // A trim closes thousands of handles: fetch the host's objects (whose tracking word
      // is written here and read again when close() reports back) a few ahead.
      if (i + 8 < closing.size()) __builtin_prefetch(closing[i + 8].handle.get(), 1);
      Closing& c = closing[i];
      close_handle(*c.handle, c.reason, c.own_detail.empty() ? detail : c.own_detail);
    }
    hub_.drain();
    closing.clear();  // releases the handles, still unlocked
  }

  // act() for a batch that shares its reason and detail (a trim's): 16 bytes per handle
  // instead of a Closing's 56, which at 50k victims is 2 MB less memory touched for the
  // first time inside the trim.
  void act(std::vector<std::shared_ptr<Connection>>& handles, CloseReason reason,
           const std::string& detail) {
    for (std::size_t i = 0; i < handles.size(); ++i) {
      if (i + 16 < handles.size()) __builtin_prefetch(handles[i + 16].get(), 1);
      close_handle(*handles[i], reason, detail);
      handles[i].reset();  // while the object's lines are still in cache
    }
    hub_.drain();
    handles.clear();
  }

  void close_handle(Connection& handle, CloseReason reason, const std::string& detail) {
    ConnectionAccess::mark_closed(handle, token_);
    try {
      handle.close(reason, detail);
    } catch (const std::exception& e) {
      logger_->warn("connmgr: Connection::close threw: {}", e.what());
    } catch (...) {
      logger_->warn("connmgr: Connection::close threw a non-standard exception");
    }
  }

  // --- Tags -------------------------------------------------------------------------

  // The slot for tagging `peer`, creating a temporary entry if needed.
  // REQUIRES: mutex_ held.
  // The clock is read only when an entry is created, under the lock (TimeSource::now()
  // must not call the manager; see clock.hpp).
  // Returns kNoSlot, with `ec` set, when no entry can be created.
  std::uint32_t tagging_slot(const NodeId& peer, std::error_code& ec) {
    if (const std::uint32_t slot = find_slot(peer); slot != kNoSlot) return slot;
    if (temp_peers_ >= config_.max_temp_peers) {
      ec = Errc::temp_peer_limit;
      return kNoSlot;
    }
    const TimePoint now = time_->now();
    const std::uint32_t slot = create_peer(peer, now, true);
    schedule_expiry(slot, now + temp_lifetime());
    return slot;
  }
  PeerSlot* slot_for_tagging(const NodeId& peer, std::error_code& ec) {
    const std::uint32_t slot = tagging_slot(peer, ec);
    return slot == kNoSlot ? nullptr : &peers_[slot];
  }

  // Sets a plain tag and stamps the change (see tag_clock_).
  void set_tag(std::uint32_t slot, std::string_view name, int value) {
    peers_[slot].tags.set(tag_names_, tag_names_.intern(name), value);
    peer_cold_[slot].tags_stamp = ++tag_clock_;
  }

  std::error_code tag_peer(const NodeId& peer, std::string_view name, int value) {
    if (name.empty()) return Errc::invalid_argument;
    std::lock_guard lock(mutex_);
    if (closed_) return Errc::closed;
    std::error_code ec;
    const std::uint32_t slot = tagging_slot(peer, ec);
    if (slot == kNoSlot) return ec;
    set_tag(slot, name, value);
    return {};
  }

  std::error_code untag_peer(const NodeId& peer, std::string_view name) {
    std::lock_guard lock(mutex_);
    if (closed_) return Errc::closed;
    const std::uint32_t slot = find_slot(peer);
    if (slot == kNoSlot) return Errc::unknown_peer;
    PeerSlot* entry = &peers_[slot];
    if (auto id = tag_names_.find(name)) {
      if (entry->tags.remove(tag_names_, *id)) peer_cold_[slot].tags_stamp = ++tag_clock_;
    }
    release_if_empty_temporary(slot);
    return {};
  }

  std::error_code upsert_tag(const NodeId& peer, std::string_view name,
                             const std::function<int(int)>& fn) {
    if (name.empty() || !fn) return Errc::invalid_argument;
    for (;;) {
      int old = 0;
      std::uint64_t seen = 0;
      {
        std::lock_guard lock(mutex_);
        if (closed_) return Errc::closed;
        if (const std::uint32_t slot = find_slot(peer); slot != kNoSlot) {
          seen = peer_cold_[slot].tags_stamp;
          if (auto id = tag_names_.find(name)) old = peers_[slot].tags.get(*id).value_or(0);
        }
      }
      const int value = fn(old);  // host code: unlocked
      std::lock_guard lock(mutex_);
      if (closed_) return Errc::closed;
      // A peer's entry created since starts with no stamp, as an absent one reads: then
      // neither held a tag changed meanwhile, and `old` (zero) is right for both.
      const std::uint32_t now_slot = find_slot(peer);
      if ((now_slot != kNoSlot ? peer_cold_[now_slot].tags_stamp : 0) != seen) {
        continue;  // this peer's tags changed meanwhile: recompute from the new value
      }
      std::error_code ec;
      const std::uint32_t slot = tagging_slot(peer, ec);
      if (slot == kNoSlot) return ec;
      set_tag(slot, name, value);
      return {};
    }
  }

  std::optional<TagInfo> tag_info(const NodeId& peer) const {
    std::lock_guard lock(mutex_);
    const std::uint32_t slot = find_slot(peer);
    if (slot == kNoSlot) return std::nullopt;
    const PeerSlot* entry = &peers_[slot];
    TagInfo info{peer_cold_[slot].first_seen, value_of(*entry), entry->tags.list(tag_names_), {},
                 entry->conns.size(),         entry->temporary};
    if (const DecaySet* set = decay_set(*entry)) {
      for (const DecayEntry& d : set->entries) {
        info.decaying_tags.emplace_back(decay_defs_[d.tag].name, d.value);
      }
    }
    return info;
  }

  // --- Protection -------------------------------------------------------------------

  // `duration` of zero or less means until unprotected.
  std::error_code protect(const NodeId& peer, std::string_view tag, Duration duration) {
    if (tag.empty()) return Errc::invalid_argument;
    const bool timed = duration.count() > 0;
    std::lock_guard lock(mutex_);
    if (closed_) return Errc::closed;
    const TimePoint until = timed ? time_->now() + duration : detail::ProtectTable::kForever;
    const auto outcome =
        protections_.protect(peer, tag, until, config_.max_peers_per_protection_tag);
    if (outcome == detail::ProtectTable::Outcome::over_cap) return Errc::protection_limit;
    if (PeerSlot* entry = find_peer(peer)) entry->is_protected = true;
    if (timed) arm_housekeeping(until);
    return {};
  }

  bool unprotect(const NodeId& peer, std::string_view tag) {
    std::lock_guard lock(mutex_);
    const bool still = protections_.unprotect(peer, tag);
    if (!still) lose_protection(peer, time_->now());
    return still;
  }

  // The peer's last protection ended. A temporary entry of it, which could not expire
  // while protected, lives one more temporary lifetime from now (or to its own end, if
  // later). REQUIRES: mutex_ held.
  void lose_protection(const NodeId& peer, TimePoint now) {
    const std::uint32_t slot = find_slot(peer);
    if (slot == kNoSlot) return;
    PeerSlot& entry = peers_[slot];
    if (!entry.is_protected) return;  // was not protected (an unprotect of nothing)
    entry.is_protected = false;
    if (entry.temporary) schedule_expiry(slot, std::max(expiry_at(slot), now + temp_lifetime()));
  }

  // How long a temporary entry made by tagging lives.
  Duration temp_lifetime() const { return config_.grace_period; }

  // --- Expiry of temporary entries and timed protections --------------------------

  void schedule_expiry(std::uint32_t slot, TimePoint at) {
    expiry_of_.insert_or_assign(slot, at);
    expiries_.push(Expiry{at, slot, peers_[slot].generation});
    arm_housekeeping(at);
  }

  // Arms the housekeeping timer for `at` unless it is already due earlier.
  void arm_housekeeping(TimePoint at) {
    if (closed_ || (housekeeping_armed_ && housekeeping_at_ <= at)) return;
    housekeeping_armed_ = true;
    housekeeping_at_ = at;
    housekeeping_timer_->wait_until(at, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->housekeeping();
    });
  }

  void housekeeping() {
    const TimePoint now = time_->now();
    std::lock_guard lock(mutex_);
    housekeeping_armed_ = false;
    if (closed_) return;
    while (!expiries_.empty() && expiries_.top().at <= now) {
      const Expiry due = expiries_.top();
      expiries_.pop();
      const PeerSlot& entry = peers_[due.slot];
      // Stale records (the peer connected, was released, or got a later expiry) are
      // skipped here rather than searched for when they go stale. A protected entry does
      // not expire: its lifetime starts again when its protection ends (lose_protection).
      if (entry.live && entry.temporary && !entry.is_protected &&
          entry.generation == due.generation && expiry_at(due.slot) <= now) {
        release_peer(due.slot);
        ++stats_.temporary_peers_pruned;
      }
    }
    for (const NodeId& peer : protections_.expire(now)) {
      ++stats_.protections_expired;
      lose_protection(peer, now);
    }
    TimePoint next = protections_.next_expiry();
    if (!expiries_.empty()) next = std::min(next, expiries_.top().at);
    if (next != detail::ProtectTable::kForever) arm_housekeeping(next);
  }

  // --- Decaying tags ----------------------------------------------------------------

  void arm_decay_tick() {
    Duration resolution;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      resolution = config_.decay_resolution;
    }
    decay_timer_->wait_until(time_->now() + resolution, [weak = weak_from_this()] {
      if (auto self = weak.lock()) {
        self->decay_tick();
        self->arm_decay_tick();
      }
    });
  }

  DecayingTag register_decaying_tag(std::string_view name, Duration interval, Decay decay,
                                    Bump bump, std::error_code& ec) {
    ec.clear();
    if (name.empty() || interval.count() <= 0) {
      ec = Errc::invalid_argument;
      return {};
    }
    const TimePoint now = time_->now();
    std::lock_guard lock(mutex_);
    if (closed_) {
      ec = Errc::closed;
      return {};
    }
    std::uint32_t free_id = static_cast<std::uint32_t>(decay_defs_.size());
    for (std::uint32_t id = 0; id < decay_defs_.size(); ++id) {
      if (decay_defs_[id].open && decay_defs_[id].name == name) {
        ec = Errc::tag_exists;
        return {};
      }
      if (!decay_defs_[id].open && free_id == decay_defs_.size()) free_id = id;
    }
    if (free_id == decay_defs_.size()) decay_defs_.emplace_back();
    DecayDef& def = decay_defs_[free_id];
    def.name = std::string(name);
    def.interval = std::max<Duration>(interval, config_.decay_resolution);
    def.next_tick = now + def.interval;
    def.decay = std::move(decay);
    def.bump = std::move(bump);
    def.generation = ++decay_generation_;
    def.open = true;
    return DecayingTag(std::weak_ptr<DecayingTag::Owner>(shared_from_this()), free_id,
                       def.generation, def.name, def.interval);
  }

  const DecayDef* open_def(std::uint32_t tag, std::uint64_t generation) const {
    if (tag >= decay_defs_.size()) return nullptr;
    const DecayDef& def = decay_defs_[tag];
    return def.open && def.generation == generation ? &def : nullptr;
  }

  DecaySet* decay_set(const PeerSlot& entry) {
    return entry.decay == kNoSlot ? nullptr : &decay_sets_[entry.decay];
  }
  const DecaySet* decay_set(const PeerSlot& entry) const {
    return entry.decay == kNoSlot ? nullptr : &decay_sets_[entry.decay];
  }
  // Gives the set back once its last entry went (holds_tags relies on it).
  void settle_decay_set(PeerSlot& entry) {
    if (entry.decay == kNoSlot || !decay_sets_[entry.decay].entries.empty()) return;
    drop_decay_set(entry);
  }
  void drop_decay_set(PeerSlot& entry) {
    if (entry.decay == kNoSlot) return;
    decay_sets_[entry.decay] = DecaySet{};
    free_decay_sets_.push_back(entry.decay);
    entry.decay = kNoSlot;
  }

  DecayEntry* find_decaying(const PeerSlot& entry, std::uint32_t tag) {
    if (DecaySet* set = decay_set(entry)) {
      for (DecayEntry& d : set->entries) {
        if (d.tag == tag) return &d;
      }
    }
    return nullptr;
  }

  void set_decaying(PeerSlot& entry, std::uint32_t tag, int value, TimePoint now) {
    if (DecayEntry* d = find_decaying(entry, tag)) {
      decay_sets_[entry.decay].sum += static_cast<std::int64_t>(value) - d->value;
      d->value = value;
      d->last_visit = now;
      ++d->version;
      return;
    }
    if (entry.decay == kNoSlot) {
      if (free_decay_sets_.empty()) {
        entry.decay = static_cast<std::uint32_t>(decay_sets_.size());
        decay_sets_.emplace_back();
      } else {
        entry.decay = free_decay_sets_.back();
        free_decay_sets_.pop_back();
      }
    }
    DecaySet& set = decay_sets_[entry.decay];
    set.entries.push_back(DecayEntry{tag, 1, value, now, now});
    set.sum += value;
  }

  void erase_decaying(PeerSlot& entry, std::uint32_t tag) {
    DecaySet* set = decay_set(entry);
    if (set == nullptr) return;
    for (auto it = set->entries.begin(); it != set->entries.end(); ++it) {
      if (it->tag == tag) {
        set->sum -= it->value;
        set->entries.erase(it);
        settle_decay_set(entry);
        return;
      }
    }
  }

  std::error_code bump_decaying(std::uint32_t tag, std::uint64_t generation, const NodeId& peer,
                                int delta) override {
    for (;;) {
      DecayingValue current;
      std::optional<std::uint32_t> seen;  // the entry's version, if the peer holds the tag
      Bump bump = Bump::sum();
      {
        std::lock_guard lock(mutex_);
        if (closed_) return Errc::closed;
        const DecayDef* def = open_def(tag, generation);
        if (def == nullptr) return Errc::tag_closed;
        const TimePoint now = time_->now();
        current = DecayingValue{0, now, now, now};
        PeerSlot* entry = find_peer(peer);
        if (DecayEntry* d = entry != nullptr ? find_decaying(*entry, tag) : nullptr) {
          current = DecayingValue{d->value, d->added, d->last_visit, now};
          seen = d->version;
        }
        if (!def->bump.is_custom()) {
          // Built-in arithmetic: apply it here, under the lock.
          std::error_code ec;
          if (entry == nullptr) entry = slot_for_tagging(peer, ec);
          if (entry == nullptr) return ec;
          set_decaying(*entry, tag, def->bump.apply(current, delta), now);
          return {};
        }
        bump = def->bump;
      }
      int value;
      try {
        value = bump.apply(current, delta);  // the host's function: unlocked
      } catch (const std::exception& e) {
        logger_->warn("connmgr: bump function of a decaying tag threw: {}", e.what());
        return Errc::invalid_argument;
      } catch (...) {
        logger_->warn("connmgr: bump function of a decaying tag threw");
        return Errc::invalid_argument;
      }
      std::lock_guard lock(mutex_);
      if (closed_) return Errc::closed;
      if (open_def(tag, generation) == nullptr) return Errc::tag_closed;
      PeerSlot* entry = find_peer(peer);
      DecayEntry* d = entry != nullptr ? find_decaying(*entry, tag) : nullptr;
      const std::optional<std::uint32_t> now_seen =
          d != nullptr ? std::optional<std::uint32_t>(d->version) : std::nullopt;
      if (now_seen != seen) continue;  // bumped meanwhile: apply the function again
      std::error_code ec;
      if (entry == nullptr) entry = slot_for_tagging(peer, ec);
      if (entry == nullptr) return ec;
      set_decaying(*entry, tag, value, time_->now());
      return {};
    }
  }

  std::error_code remove_decaying(std::uint32_t tag, std::uint64_t generation,
                                  const NodeId& peer) override {
    std::lock_guard lock(mutex_);
    if (closed_) return Errc::closed;
    if (open_def(tag, generation) == nullptr) return Errc::tag_closed;
    const std::uint32_t slot = find_slot(peer);
    if (slot == kNoSlot || find_decaying(peers_[slot], tag) == nullptr) return Errc::unknown_peer;
    erase_decaying(peers_[slot], tag);
    release_if_empty_temporary(slot);
    return {};
  }

  void close_decaying(std::uint32_t tag, std::uint64_t generation) override {
    std::lock_guard lock(mutex_);
    if (open_def(tag, generation) == nullptr) return;  // closed already: fine
    decay_defs_[tag].open = false;
    for (std::uint32_t slot = 0; slot < peers_.size(); ++slot) {
      PeerSlot& entry = peers_[slot];
      if (!entry.live || entry.decay == kNoSlot) continue;
      erase_decaying(entry, tag);
      release_if_empty_temporary(slot);
    }
  }

  // Applies one decay result to the entry at `index` of a peer's set (the caller
  // settles the set afterwards).
  static void apply_decay(DecaySet& set, std::size_t index, const DecayResult& result) {
    DecayEntry& d = set.entries[index];
    if (result.remove) {
      set.sum -= d.value;
      set.entries.erase(set.entries.begin() + static_cast<std::ptrdiff_t>(index));
    } else {
      set.sum += static_cast<std::int64_t>(result.value) - d.value;
      d.value = result.value;
    }
  }

  // One tick: every tag whose interval has come decays once on every peer holding it. A
  // late tick still decays once and moves the tag's next tick on by one interval, so
  // lost time is caught up one interval per tick, never applied twice in one.
  void decay_tick() {
    struct CustomWork {
      std::uint32_t slot;
      std::uint32_t generation;
      std::uint32_t tag;
      std::uint32_t version;
      DecayingValue value;
      DecayResult result;
    };
    const TimePoint now = time_->now();
    std::vector<CustomWork> custom;
    std::vector<Decay> custom_decay;  // by tag, for the custom ones
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      std::vector<char> due(decay_defs_.size(), 0);
      bool any = false;
      for (std::uint32_t id = 0; id < decay_defs_.size(); ++id) {
        DecayDef& def = decay_defs_[id];
        if (!def.open || def.next_tick > now) continue;
        due[id] = def.decay.is_custom() ? 2 : 1;
        def.next_tick += def.interval;
        any = true;
      }
      if (!any) return;
      ++stats_.decay_ticks;
      for (std::uint32_t slot = 0; slot < peers_.size(); ++slot) {
        PeerSlot& entry = peers_[slot];
        if (!entry.live || entry.decay == kNoSlot) continue;
        DecaySet& set = decay_sets_[entry.decay];
        for (std::size_t i = 0; i < set.entries.size();) {
          const DecayEntry& d = set.entries[i];
          const DecayingValue value{d.value, d.added, d.last_visit, now};
          if (due[d.tag] == 2) {
            custom.push_back({slot, entry.generation, d.tag, d.version, value, {}});
          } else if (due[d.tag] == 1) {
            const DecayResult result = decay_defs_[d.tag].decay.apply(value);
            apply_decay(set, i, result);
            if (result.remove) continue;  // the next entry moved into position i
          }
          ++i;
        }
        settle_decay_set(entry);
        release_if_empty_temporary(slot);
      }
      if (custom.empty()) return;
      custom_decay.reserve(decay_defs_.size());
      for (const DecayDef& def : decay_defs_) custom_decay.push_back(def.decay);
    }
    // Custom decay functions are host code: run them unlocked, then apply each result
    // only where the value did not move meanwhile (a concurrent bump wins that interval).
    for (CustomWork& work : custom) {
      try {
        work.result = custom_decay[work.tag].apply(work.value);
      } catch (const std::exception& e) {
        logger_->warn("connmgr: decay function threw, value kept: {}", e.what());
        work.result = DecayResult{work.value.value, false};
      } catch (...) {
        logger_->warn("connmgr: decay function threw, value kept");
        work.result = DecayResult{work.value.value, false};
      }
    }
    std::lock_guard lock(mutex_);
    if (closed_) return;
    for (const CustomWork& work : custom) {
      PeerSlot& entry = peers_[work.slot];
      if (!entry.live || entry.generation != work.generation || entry.decay == kNoSlot) continue;
      DecaySet& set = decay_sets_[entry.decay];
      for (std::size_t i = 0; i < set.entries.size(); ++i) {
        if (set.entries[i].tag == work.tag) {
          if (set.entries[i].version == work.version) apply_decay(set, i, work.result);
          break;
        }
      }
      settle_decay_set(entry);
      release_if_empty_temporary(work.slot);
    }
  }

  // --- Activity, keepalive and idle (docs/design.md, "Keepalive, idle and paths") ----------------
  //
  // One timer serves every connection. Pings fall due every keepalive_interval and their
  // answers every keepalive_timeout after sending: both intervals are constant, so each
  // kind of deadline is appended in time order and a FIFO queue stands in for a wheel.
  // Idle deadlines move with activity, so they sit in a heap and are re-checked lazily
  // when they come up. Entries of closed connections go stale and are skipped (the
  // ConnectionId in the entry no longer matches the slot). The timer fires on a grid of
  // `keepalive_tick()` so that thousands of deadlines are served per wake-up.

  struct Due {
    TimePoint at;
    std::uint32_t slot;
    ConnectionId id;
    std::uint32_t sequence;  // timeouts: the ping they judge
    friend bool operator>(const Due& a, const Due& b) { return a.at > b.at; }
  };

  bool keepalive_on() const { return config_.keepalive_interval.count() > 0; }
  bool idle_on() const { return config_.idle_timeout.count() > 0; }

  Duration keepalive_tick() const {
    Duration base = Duration::max();
    if (keepalive_on()) base = std::min<Duration>(base, config_.keepalive_interval);
    if (idle_on()) base = std::min<Duration>(base, config_.idle_timeout);
    if (config_.redundant_grace.count() > 0) {
      base = std::min<Duration>(base, config_.redundant_grace);
    }
    base = std::min<Duration>(base, config_.handshake_timeout);
    if (base == Duration::max()) base = std::chrono::seconds(1);
    return std::max<Duration>(std::chrono::milliseconds(1), base / 50);
  }

  // A new connection joins the schedules. REQUIRES: mutex_ held.
  void enroll(std::uint32_t slot, ConnectionId id, TimePoint now) {
    if (keepalive_on()) ping_due_.push_back({now + config_.keepalive_interval, slot, id, 0});
    if (idle_on()) idle_due_.push({now + config_.idle_timeout, slot, id, 0});
    if (!ping_due_.empty() || !idle_due_.empty()) arm_keepalive(now);
  }

  // Closed connections leave their entries in the schedules until they come due; under
  // churn that could be many intervals' worth. When the entries outnumber the open
  // connections twice over, the stale ones are dropped in one pass (amortised O(1) per
  // close), so the schedules stay proportional to the pool. REQUIRES: mutex_ held.
  void compact_schedules_if_stale() {
    const std::size_t bound = 2 * connections_ + 64;
    auto stale = [this](const Due& d) { return live_entry(d.slot, d.id) == nullptr; };
    if (ping_due_.size() > bound) std::erase_if(ping_due_, stale);
    if (redundant_due_.size() > bound) std::erase_if(redundant_due_, stale);
    if (timeout_due_.size() > bound) std::erase_if(timeout_due_, stale);
    if (idle_due_.size() > bound) {
      std::vector<Due> kept;
      kept.reserve(connections_);
      while (!idle_due_.empty()) {
        if (!stale(idle_due_.top())) kept.push_back(idle_due_.top());
        idle_due_.pop();
      }
      idle_due_ = decltype(idle_due_)(std::greater<>{}, std::move(kept));
    }
  }

  const ConnEntry* live_entry(std::uint32_t slot, ConnectionId id) const {
    if (slot >= conn_slots_.size()) return nullptr;
    const ConnEntry& conn = conn_slots_[slot];
    return conn.handle && conn.id == id ? &conn : nullptr;
  }
  ConnEntry* live_entry(std::uint32_t slot, ConnectionId id) {
    return const_cast<ConnEntry*>(std::as_const(*this).live_entry(slot, id));
  }

  // Arms the keepalive timer for the earliest deadline, rounded up to the tick grid.
  // REQUIRES: mutex_ held.
  void arm_keepalive(TimePoint now) {
    if (closed_) return;
    TimePoint next = TimePoint::max();
    if (!ping_due_.empty()) next = std::min(next, ping_due_.front().at);
    if (!timeout_due_.empty()) next = std::min(next, timeout_due_.front().at);
    if (!idle_due_.empty()) next = std::min(next, idle_due_.top().at);
    if (!redundant_due_.empty()) next = std::min(next, redundant_due_.front().at);
    if (!handshake_due_.empty()) next = std::min(next, handshake_due_.front().at);
    if (next == TimePoint::max()) return;
    const Duration tick = keepalive_tick();
    const auto since = next.time_since_epoch();
    TimePoint at = TimePoint((since + tick - Duration(1)) / tick * tick);
    at = std::max(at, now);
    if (keepalive_armed_ && keepalive_at_ <= at) return;
    keepalive_armed_ = true;
    keepalive_at_ = at;
    keepalive_timer_->wait_until(at, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->keepalive_round();
    });
  }

  struct Ping {
    std::shared_ptr<Connection> handle;
    std::uint32_t slot;
    ConnectionId id;
    std::uint32_t sequence;
    TimePoint sent_at;  // carried to the answer, which measures the RTT from it
  };

  // Counts a miss; returns the handle to close when it was the last one allowed.
  // REQUIRES: mutex_ held.
  std::optional<Closing> miss(std::uint32_t slot, std::string& detail) {
    ConnEntry& conn = conn_slots_[slot];
    conn.ping_in_flight = false;
    if (conn.missed < UINT16_MAX) ++conn.missed;
    ++stats_.keepalive_misses;
    if (conn.missed < std::min<std::uint32_t>(config_.keepalive_max_missed, UINT16_MAX)) {
      return std::nullopt;
    }
    detail = "keepalive: " + std::to_string(conn.missed) + " pings in a row unanswered within " +
             std::to_string(config_.keepalive_timeout.count()) + " ms";
    return Closing{detach(slot, CloseReason::keepalive_timeout, detail),
                   CloseReason::keepalive_timeout, detail};
  }

  void keepalive_round() {
    const TimePoint now = time_->now();
    std::vector<Ping> pings;
    std::vector<Closing> closing;
    {
      std::lock_guard lock(mutex_);
      keepalive_armed_ = false;
      if (closed_) return;
      // Answers not in time.
      while (!timeout_due_.empty() && timeout_due_.front().at <= now) {
        const Due due = timeout_due_.front();
        timeout_due_.pop_front();
        ConnEntry* conn = live_entry(due.slot, due.id);
        if (conn == nullptr || !conn->ping_in_flight || conn->ping_sequence != due.sequence) {
          continue;
        }
        std::string detail;
        if (auto c = miss(due.slot, detail)) closing.push_back(std::move(*c));
      }
      // Pings due. One still in flight is not doubled; its timeout judges it.
      while (!ping_due_.empty() && ping_due_.front().at <= now) {
        const Due due = ping_due_.front();
        ping_due_.pop_front();
        ConnEntry* conn = live_entry(due.slot, due.id);
        if (conn == nullptr) continue;
        ping_due_.push_back({due.at + config_.keepalive_interval, due.slot, due.id, 0});
        if (conn->ping_in_flight) continue;
        conn->ping_in_flight = true;
        const std::uint32_t sequence = ++conn->ping_sequence;
        timeout_due_.push_back({now + config_.keepalive_timeout, due.slot, due.id, sequence});
        pings.push_back({conn->handle, due.slot, due.id, sequence, now});
        ++stats_.pings_sent;
      }
      // Idle connections: re-checked against their latest activity when they come up.
      while (!idle_due_.empty() && idle_due_.top().at <= now) {
        const Due due = idle_due_.top();
        idle_due_.pop();
        ConnEntry* conn = live_entry(due.slot, due.id);
        if (conn == nullptr) continue;
        const TimePoint idle_at = conn->last_activity + config_.idle_timeout;
        const PeerSlot& peer = peers_[conn->peer_slot];
        if (idle_at > now) {
          idle_due_.push({idle_at, due.slot, due.id, 0});
        } else if (conn->streams() > 0 || peer.is_protected ||
                   held(peer_ids_.get(conn->peer_slot))) {
          idle_due_.push({now + config_.idle_timeout, due.slot, due.id, 0});
        } else {
          std::string detail = "idle: no streams and no activity for " +
                               std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  now - conn->last_activity)
                                                  .count()) +
                               " ms";
          closing.push_back(Closing{detach(due.slot, CloseReason::idle_timeout, detail),
                                    CloseReason::idle_timeout, detail});
        }
      }
      close_redundant(now, closing);
      expire_handshakes(now, closing);
      arm_keepalive(now);
    }
    act(closing, "keepalive");
    // Pings are host calls: unlocked. An answer may come back at once, from inside ping().
    for (Ping& ping : pings) {
      try {
        ping.handle->ping([weak = weak_from_this(), slot = ping.slot, id = ping.id,
                           sequence = ping.sequence, sent_at = ping.sent_at](std::error_code ec) {
          if (auto self = weak.lock()) self->on_pong(slot, id, sequence, sent_at, ec);
        });
      } catch (const std::exception& e) {
        logger_->warn("connmgr: Connection::ping threw (counted as a miss): {}", e.what());
        on_pong(ping.slot, ping.id, ping.sequence, ping.sent_at,
                make_error_code(Errc::invalid_argument));
      } catch (...) {
        logger_->warn("connmgr: Connection::ping threw a non-standard exception (a miss)");
        on_pong(ping.slot, ping.id, ping.sequence, ping.sent_at,
                make_error_code(Errc::invalid_argument));
      }
    }
  }

  void on_pong(std::uint32_t slot, ConnectionId id, std::uint32_t sequence, TimePoint sent_at,
               std::error_code ec) {
    const TimePoint now = time_->now();
    std::vector<Closing> closing;
    std::optional<NodeId> reselect_peer;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      ConnEntry* conn = live_entry(slot, id);
      // Late answers (after their timeout) and answers to older pings are ignored.
      if (conn == nullptr || !conn->ping_in_flight || conn->ping_sequence != sequence) return;
      if (ec) {
        std::string detail;
        if (auto c = miss(slot, detail)) closing.push_back(std::move(*c));
      } else {
        conn->ping_in_flight = false;
        conn->missed = 0;
        const Duration sample = now - sent_at;
        conn->srtt = conn->srtt == Duration::zero() ? sample : (conn->srtt * 7 + sample) / 8;
        if (peers_[conn->peer_slot].conns.size() > 1) {
          reselect_peer = peer_ids_.get(conn->peer_slot);
        }
      }
    }
    act(closing, "keepalive");
    if (reselect_peer) reselect(*reselect_peer);
  }

  std::error_code record_activity(const Connection& connection, std::uint64_t bytes_in,
                                  std::uint64_t bytes_out) {
    const TimePoint now = time_->now();
    std::lock_guard lock(mutex_);
    auto slot = tracked_slot(connection);
    if (!slot) return Errc::unknown_connection;
    ConnEntry& conn = conn_slots_[*slot];
    // Exponentially weighted rate with a 10 s time constant: every byte counts 1/tau at
    // first and fades with its age, so the sum estimates bytes per second without
    // dividing by tiny intervals.
    constexpr double kTau = 10.0;
    const double dt = std::chrono::duration<double>(now - conn.last_activity).count();
    const double fade = dt > 0 ? std::exp(-dt / kTau) : 1.0;
    conn.download_rate =
        static_cast<float>(conn.download_rate * fade + static_cast<double>(bytes_in) / kTau);
    conn.upload_rate =
        static_cast<float>(conn.upload_rate * fade + static_cast<double>(bytes_out) / kTau);
    conn.last_activity = now;
    return {};
  }

  std::optional<Duration> rtt(const Connection& connection) const {
    std::lock_guard lock(mutex_);
    auto slot = tracked_slot(connection);
    if (!slot || conn_slots_[*slot].srtt == Duration::zero()) return std::nullopt;
    return conn_slots_[*slot].srtt;
  }

  bool held(const NodeId& peer) const { return !holds_.empty() && holds_.contains(peer); }

  KeepAliveHold keep_alive(const NodeId& peer) {
    std::lock_guard lock(mutex_);
    if (closed_) return {};
    ++holds_[peer];
    return KeepAliveHold(hold_owner_, peer);
  }

  void release_hold(const NodeId& peer) noexcept override {
    std::lock_guard lock(mutex_);
    auto it = holds_.find(peer);
    if (it == holds_.end()) return;
    if (--it->second == 0) holds_.erase(it);
  }

  // --- Lifecycle: pending connections and reported states (docs/design.md, "Lifecycle, hooks and
  // events")

  struct PendingEntry {
    std::shared_ptr<Connection> handle;
    ConnectionState state;
    std::uint64_t serial;  // matches its handshake deadline in handshake_due_
  };
  struct HandshakeDue {
    TimePoint at;
    const Connection* key;
    std::uint64_t serial;
  };

  std::error_code track_pending(std::shared_ptr<Connection> handle, ConnectionState state) {
    if (!handle) return Errc::invalid_argument;
    if (state != ConnectionState::dialing && state != ConnectionState::handshaking) {
      return Errc::illegal_transition;
    }
    const TimePoint now = time_->now();
    std::lock_guard lock(mutex_);
    if (closed_) return Errc::closed;
    const Connection* key = handle.get();
    if (handshakes_.contains(key) || ours(*handle)) return Errc::duplicate_connection;
    const std::uint64_t serial = ++next_pending_serial_;
    handshakes_.emplace(key, PendingEntry{std::move(handle), state, serial});
    // The timeout is constant, so deadlines are appended in time order.
    handshake_due_.push_back({now + config_.handshake_timeout, key, serial});
    arm_keepalive(now);
    return {};
  }

  std::error_code report_state(const Connection& connection, ConnectionState next) {
    // What to do once unlocked: a pending connection joins the pool (as add_connection),
    // a pooled one leaves it (as remove_connection), or a dropped pending handle is
    // released.
    enum class After { nothing, add, remove } after = After::nothing;
    std::shared_ptr<Connection> handle;
    {
      std::lock_guard lock(mutex_);
      if (auto it = handshakes_.find(&connection); it != handshakes_.end()) {
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
        handshakes_.erase(it);
      } else if (auto slot = tracked_slot(connection)) {
        ConnEntry& conn = conn_slots_[*slot];
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

  std::optional<ConnectionState> state(const Connection& connection) const {
    std::lock_guard lock(mutex_);
    if (auto it = handshakes_.find(&connection); it != handshakes_.end()) return it->second.state;
    if (auto slot = tracked_slot(connection)) {
      return conn_slots_[*slot].closing ? ConnectionState::closing : ConnectionState::established;
    }
    return std::nullopt;
  }

  // Pending connections whose handshake ran out of time. REQUIRES: mutex_ held.
  void expire_handshakes(TimePoint now, std::vector<Closing>& closing) {
    while (!handshake_due_.empty() && handshake_due_.front().at <= now) {
      const HandshakeDue due = handshake_due_.front();
      handshake_due_.pop_front();
      auto it = handshakes_.find(due.key);
      if (it == handshakes_.end() || it->second.serial != due.serial) continue;
      std::string detail = "handshake not finished within " +
                           std::to_string(config_.handshake_timeout.count()) + " ms (" +
                           std::string(to_string(it->second.state)) + ")";
      closing.push_back({std::move(it->second.handle), CloseReason::handshake_timeout, detail});
      handshakes_.erase(it);
      ++stats_.closes_by_reason[static_cast<std::size_t>(CloseReason::handshake_timeout)];
    }
  }

  // --- Multipath (docs/design.md, "Keepalive, idle and paths") -----------------------------------

  // How bad a path is, for the per-peer cap: relay before direct, unmeasured before
  // measured, slower before faster, newer before older. Larger is worse.
  std::tuple<int, int, Duration, std::uint64_t> badness(std::uint32_t c) const {
    const ConnEntry& conn = conn_slots_[c];
    return {conn.path == PathKind::relay ? 1 : 0, conn.srtt == Duration::zero() ? 1 : 0, conn.srtt,
            static_cast<std::uint64_t>(conn.id)};
  }

  // Rules that run when a connection joins a peer that has others: simultaneous open,
  // automatic upgrade, the per-peer cap. Returns whether the peer has several paths (then
  // the path selector must be asked). REQUIRES: mutex_ held; `added` was just inserted.
  bool apply_path_rules(const Connection& added, std::vector<Closing>& closing) {
    auto added_slot = tracked_slot(added);
    if (!added_slot) return false;
    const std::uint32_t peer_slot = conn_slots_[*added_slot].peer_slot;
    if (peers_[peer_slot].conns.size() < 2) return false;
    const NodeId peer_id = peer_ids_.get(peer_slot);
    const TimePoint now = time_->now();
    auto close_conn = [&](std::uint32_t c, CloseReason reason, std::string detail) {
      closing.push_back({detach(c, reason, detail), reason, std::move(detail)});
    };
    // Simultaneous open: both sides keep the connection dialed by the higher NodeId.
    if (config_.local_node_id && peers_[peer_slot].conns.size() > 1) {
      const Direction keep =
          *config_.local_node_id > peer_id ? Direction::outbound : Direction::inbound;
      const std::vector<std::uint32_t> others(peers_[peer_slot].conns.begin(),
                                              peers_[peer_slot].conns.end());
      for (std::uint32_t other : others) {
        if (other == *added_slot) continue;
        const ConnEntry& fresh = conn_slots_[*added_slot];
        const ConnEntry& old = conn_slots_[other];
        if (!old.handle || old.path != fresh.path || old.direction == fresh.direction) continue;
        const std::uint32_t loser = fresh.direction == keep ? other : *added_slot;
        close_conn(loser, CloseReason::duplicate,
                   "simultaneous open: both sides keep the connection dialed by the higher "
                   "node id");
        if (loser == *added_slot) return true;  // the new one went: nothing more to decide
        break;
      }
    }
    if (!peers_[peer_slot].live) return false;
    // Automatic upgrade: a direct path makes the peer's relayed ones redundant.
    if (conn_slots_[*added_slot].path == PathKind::direct) {
      bool scheduled = false;
      for (std::uint32_t c : peers_[peer_slot].conns) {
        ConnEntry& conn = conn_slots_[c];
        if (conn.path == PathKind::relay && !conn.redundant) {
          conn.redundant = true;
          redundant_due_.push_back({now + config_.redundant_grace, c, conn.id, 0});
          scheduled = true;
        }
      }
      if (scheduled) arm_keepalive(now);
    }
    // The per-peer cap: the worst paths go.
    const std::size_t cap = config_.max_connections_per_peer;
    while (cap != 0 && peers_[peer_slot].live && peers_[peer_slot].conns.size() > cap) {
      const auto& conns = peers_[peer_slot].conns;
      const std::uint32_t worst = *std::max_element(
          conns.begin(), conns.end(),
          [&](std::uint32_t a, std::uint32_t b) { return badness(a) < badness(b); });
      close_conn(worst, CloseReason::redundant_path,
                 "over max_connections_per_peer (" + std::to_string(cap) + "): worst path");
    }
    return true;
  }

  // Closes redundant relays whose grace is over (from the keepalive round).
  // REQUIRES: mutex_ held.
  void close_redundant(TimePoint now, std::vector<Closing>& closing) {
    while (!redundant_due_.empty() && redundant_due_.front().at <= now) {
      const Due due = redundant_due_.front();
      redundant_due_.pop_front();
      ConnEntry* conn = live_entry(due.slot, due.id);
      if (conn == nullptr) continue;
      const PeerSlot& peer = peers_[conn->peer_slot];
      const bool direct_left = std::any_of(peer.conns.begin(), peer.conns.end(), [&](auto c) {
        return conn_slots_[c].path == PathKind::direct;
      });
      if (!direct_left) {  // the direct path went meanwhile: the relay is needed again
        conn->redundant = false;
        continue;
      }
      if (conn->streams() > 0) {  // still in use: look again one grace later
        redundant_due_.push_back({now + config_.redundant_grace, due.slot, due.id, 0});
        continue;
      }
      std::string detail = "relay path redundant: a direct path has served for " +
                           std::to_string(config_.redundant_grace.count()) + " ms";
      closing.push_back({detach(due.slot, CloseReason::redundant_path, detail),
                         CloseReason::redundant_path, detail});
    }
  }

  // Asks the path selector (host-pluggable: unlocked) for the peer's best connection and
  // publishes a PathChangedEvent when it changes. If the peer's paths changed meanwhile
  // the answer is dropped; the change that did it asks again.
  void reselect(const NodeId& peer) {
    std::vector<PathCandidate> candidates;
    std::vector<std::uint32_t> slots;
    std::optional<std::size_t> current;
    std::uint32_t slot;
    std::uint32_t generation;
    std::uint32_t version;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      slot = find_slot(peer);
      if (slot == kNoSlot || peers_[slot].conns.empty()) return;
      const PeerSlot* entry = &peers_[slot];
      generation = entry->generation;
      version = peer_cold_[slot].paths_version;
      for (std::uint32_t c : entry->conns) {
        const ConnEntry& conn = conn_slots_[c];
        std::optional<Duration> rtt;
        if (conn.srtt != Duration::zero()) rtt = conn.srtt;
        if (c == entry->best) current = candidates.size();
        candidates.push_back({conn.id, conn.path, conn.transport, conn.ipv6, rtt});
        slots.push_back(c);
      }
    }
    std::size_t choice = current.value_or(0);
    try {
      choice = path_selector_->select(candidates, current);
    } catch (const std::exception& e) {
      logger_->warn("connmgr: path selector threw, keeping the current path: {}", e.what());
    } catch (...) {
      logger_->warn("connmgr: path selector threw a non-standard exception, keeping the path");
    }
    if (choice >= candidates.size()) choice = current.value_or(0);
    {
      std::lock_guard lock(mutex_);
      // The same entry (not released and taken again), with paths, none come or gone.
      // A peer's last connection going does not bump paths_version: it leaves the entry
      // without paths or releases it, and the first two checks see that.
      if (find_slot(peer) != slot) return;
      PeerSlot* entry = &peers_[slot];
      PeerCold& cold = peer_cold_[slot];
      if (entry->generation != generation || entry->conns.empty() ||
          cold.paths_version != version) {
        return;
      }
      const std::uint32_t chosen = slots[choice];
      if (entry->best == chosen) return;
      // A peer's first path is not a change; a new choice after the old path closed is.
      const ConnectionId from = cold.last_best;
      entry->best = chosen;
      cold.last_best = conn_slots_[chosen].id;
      if (from != ConnectionId{} && hub_.has_subscribers()) {
        hub_.enqueue(PathChangedEvent{peer, from, conn_slots_[chosen].id});
      }
    }
    hub_.drain();
  }

  std::shared_ptr<Connection> best_connection(const NodeId& peer) const {
    std::lock_guard lock(mutex_);
    const PeerSlot* entry = find_peer(peer);
    if (entry == nullptr || entry->conns.empty()) return nullptr;
    const std::uint32_t c = entry->best != kNoSlot ? entry->best : entry->conns.front();
    return conn_slots_[c].handle;
  }

  // --- Hooks -------------------------------------------------------------------------

  template <typename Hook>
  struct HookList {
    std::vector<std::pair<std::uint64_t, Hook>> hooks;  // in the order added
    std::atomic<std::size_t> count{0};  // hooks.size(), read without the lock on hot paths
  };

  template <typename Hook>
  Subscription add_hook(HookList<Hook>& list, Hook hook) {
    if (!hook) return {};
    std::lock_guard lock(hooks_mutex_);
    const std::uint64_t id = ++next_hook_;
    list.hooks.emplace_back(id, std::move(hook));
    list.count.store(list.hooks.size(), std::memory_order_release);
    return Subscription([weak = weak_from_this(), &list, id] {
      if (auto self = weak.lock()) {
        std::lock_guard inner(self->hooks_mutex_);
        std::erase_if(list.hooks, [id](const auto& h) { return h.first == id; });
        list.count.store(list.hooks.size(), std::memory_order_release);
      }
    });
  }

  // Runs the hooks in order until one rejects. No lock is held while a hook runs.
  template <typename Hook, typename... Args>
  Decision run_hooks(HookList<Hook>& list, const Args&... args) {
    if (list.count.load(std::memory_order_acquire) == 0) return Decision::allow();
    std::vector<Hook> hooks;
    {
      std::lock_guard lock(hooks_mutex_);
      if (list.hooks.empty()) return Decision::allow();
      for (const auto& [id, hook] : list.hooks) hooks.push_back(hook);
    }
    for (const Hook& hook : hooks) {
      Decision decision = gate([&] { return hook(args...); });
      if (!decision) return decision;
    }
    return Decision::allow();
  }

  void publish(Event event) {
    if (!hub_.has_subscribers()) return;
    hub_.enqueue(std::move(event));
    hub_.drain();
  }

  // --- Admission (docs/design.md, "Admission") ---------------------------------------------------

  static std::string direction_word(Direction d) {
    return d == Direction::inbound ? "inbound" : "outbound";
  }

  // Counts and builds a refusal. Logged at debug level only: refusals can come by the
  // thousand under attack, and the caller gets the text anyway.
  Refusal refuse(Stage stage, RefusalReason reason, std::string scope, std::string limit,
                 std::string message) {
    {
      std::lock_guard lock(refusal_mutex_);
      ++refusals_by_reason_[static_cast<std::size_t>(reason)];
    }
    logger_->debug("connmgr: {}", message);
    Refusal refusal{stage, reason, std::move(scope), std::move(limit), std::move(message)};
    if (hub_.has_subscribers()) hub_.enqueue(RefusedEvent{refusal});
    return refusal;
  }

  // Runs a gater intercept (host code: no lock held); an exception denies.
  template <typename F>
  Decision gate(F&& intercept) {
    try {
      return intercept();
    } catch (const std::exception& e) {
      logger_->warn("connmgr: gater threw, denying: {}", e.what());
      return Decision::deny(std::string("gater failed: ") + e.what());
    } catch (...) {
      logger_->warn("connmgr: gater threw a non-standard exception, denying");
      return Decision::deny("gater failed");
    }
  }

  // Runs one gater intercept (if there is a gater); a denial becomes a counted and
  // published refusal: "<what> refused by the gater: <reason>".
  template <typename F>
  std::optional<Refusal> ask_gater(Stage stage, const std::string& what, F&& intercept) {
    if (!gater_) return std::nullopt;
    Decision decision = gate(std::forward<F>(intercept));
    if (decision) return std::nullopt;
    return refuse(stage, RefusalReason::gater, "gater", decision.reason,
                  what + " refused by the gater: " + decision.reason);
  }

  struct Check {
    RefusalReason reason;
    std::string scope;
    std::string limit;
    std::string text;  // "system holds 8 of 8 inbound connections"
  };

  static std::optional<Check> over(std::size_t used, std::size_t limit, RefusalReason reason,
                                   std::string scope, const char* limit_name, const char* what) {
    if (limit == kUnlimited || used < limit) return std::nullopt;
    std::string text =
        scope + " holds " + std::to_string(used) + " of " + std::to_string(limit) + " " + what;
    return Check{reason, std::move(scope), limit_name, std::move(text)};
  }

  PeerCharges* peer_charges(const NodeId& peer) {
    auto it = peer_charges_.find(peer);
    return it == peer_charges_.end() ? nullptr : &it->second;
  }

  // Room for one more connection in `direction` in the system scope, counting pending ones.
  // REQUIRES: mutex_ held (as for all checks below).
  std::optional<Check> check_system_connection(Direction direction) const {
    const ScopeLimits& l = config_.limits.system;
    const bool in = direction == Direction::inbound;
    const std::size_t open = in ? inbound_ : outbound_;
    const std::size_t pending = pending_[in ? 0 : 1];
    if (auto c =
            over(pending, in ? l.pending_inbound : l.pending_outbound, RefusalReason::pending_limit,
                 "system", in ? "pending_inbound" : "pending_outbound",
                 in ? "pending inbound handshakes" : "pending outbound handshakes")) {
      return c;
    }
    if (auto c = over(open + pending, in ? l.connections_inbound : l.connections_outbound,
                      RefusalReason::connection_limit, "system",
                      in ? "connections_inbound" : "connections_outbound",
                      in ? "inbound connections" : "outbound connections")) {
      return c;
    }
    return over(connections_ + pending_[0] + pending_[1], l.connections_total,
                RefusalReason::connection_limit, "system", "connections_total", "connections");
  }

  std::optional<Check> check_peer_connection(const NodeId& peer, Direction direction) {
    const ScopeLimits& l = config_.limits.peer;
    const bool in = direction == Direction::inbound;
    const PeerSlot* entry = find_peer(peer);
    const std::size_t inbound = entry != nullptr ? entry->inbound : 0;
    const std::size_t total = entry != nullptr ? entry->conns.size() : 0;
    const PeerCharges* charges = peer_charges(peer);
    const std::size_t pending_in = charges != nullptr ? charges->pending[0] : 0;
    const std::size_t pending_out = charges != nullptr ? charges->pending[1] : 0;
    const std::string scope = "peer " + peer.short_hex();
    if (auto c =
            over(in ? pending_in : pending_out, in ? l.pending_inbound : l.pending_outbound,
                 RefusalReason::pending_limit, scope, in ? "pending_inbound" : "pending_outbound",
                 in ? "pending inbound handshakes" : "pending outbound handshakes")) {
      return c;
    }
    const std::size_t open = in ? inbound : total - inbound;
    if (auto c = over(open + (in ? pending_in : pending_out),
                      in ? l.connections_inbound : l.connections_outbound,
                      RefusalReason::connection_limit, scope,
                      in ? "connections_inbound" : "connections_outbound",
                      in ? "inbound connections" : "outbound connections")) {
      return c;
    }
    return over(total + pending_in + pending_out, l.connections_total,
                RefusalReason::connection_limit, scope, "connections_total", "connections");
  }

  std::optional<Refusal> check_streams(std::uint32_t slot, Direction direction) {
    const PeerSlot& peer = peers_[slot];
    const bool in = direction == Direction::inbound;
    const char* dir_name = in ? "streams_inbound" : "streams_outbound";
    const char* what = in ? "inbound streams" : "outbound streams";
    const ScopeLimits& sys = config_.limits.system;
    const ScopeLimits& per = config_.limits.peer;
    const std::size_t sys_dir = streams_by_direction_[in ? 0 : 1];
    const std::uint32_t peer_in = peer_cold_[slot].streams_in;
    const std::size_t peer_dir = in ? peer_in : peer.streams - peer_in;
    const std::string peer_scope = "peer " + peer_ids_.get(slot).short_hex();
    std::optional<Check> c = over(sys_dir, in ? sys.streams_inbound : sys.streams_outbound,
                                  RefusalReason::stream_limit, "system", dir_name, what);
    if (!c) {
      c = over(streams_by_direction_[0] + streams_by_direction_[1], sys.streams_total,
               RefusalReason::stream_limit, "system", "streams_total", "streams");
    }
    if (!c) {
      c = over(peer_dir, in ? per.streams_inbound : per.streams_outbound,
               RefusalReason::stream_limit, peer_scope, dir_name, what);
    }
    if (!c) {
      c = over(peer.streams, per.streams_total, RefusalReason::stream_limit, peer_scope,
               "streams_total", "streams");
    }
    if (!c) return std::nullopt;
    return refuse(Stage::stream, c->reason, c->scope, c->limit,
                  direction_word(direction) + " stream refused: " + c->text);
  }

  // Registers a charge and returns the reservation that owns it. REQUIRES: mutex_ held.
  Reservation open_reservation(Charge charge) {
    const std::uint64_t id = ++next_reservation_;
    const Direction direction = charge.direction;
    if (charge.pending) ++pending_[direction == Direction::inbound ? 0 : 1];
    reservations_.emplace(id, std::move(charge));
    return Reservation(reservation_owner_, id, direction);
  }

  // Undoes a charge's counters (not its registration). REQUIRES: mutex_ held.
  void release_charge(Charge& charge) {
    const int d = charge.direction == Direction::inbound ? 0 : 1;
    if (charge.pending) {
      --pending_[d];
      if (charge.peer) {
        if (PeerCharges* pc = peer_charges(*charge.peer)) --pc->pending[d];
      }
      charge.pending = false;
    }
    if (charge.capped_address) {
      subnets_.remove(*charge.capped_address);
      charge.capped_address.reset();
    }
    if (charge.memory != 0 || charge.fds != 0) {
      memory_reserved_ -= charge.memory;
      fds_reserved_ -= charge.fds;
      if (charge.peer) {
        if (PeerCharges* pc = peer_charges(*charge.peer)) {
          pc->memory -= charge.memory;
          pc->fds -= charge.fds;
        }
      }
      charge.memory = 0;
      charge.fds = 0;
    }
    if (charge.peer) {
      if (auto it = peer_charges_.find(*charge.peer);
          it != peer_charges_.end() && it->second.empty()) {
        peer_charges_.erase(it);
      }
    }
  }

  void release_reservation(std::uint64_t id) noexcept override {
    std::lock_guard lock(mutex_);
    auto it = reservations_.find(id);
    if (it == reservations_.end()) return;
    release_charge(it->second);
    reservations_.erase(it);
  }

  DialCheck check_dial(const NodeId& peer, bool force_new) {
    DialCheck result;
    {
      std::lock_guard lock(mutex_);
      if (closed_) {
        result.error = Errc::closed;
        return result;
      }
      if (!force_new) {
        if (const PeerSlot* entry = find_peer(peer); entry != nullptr && !entry->conns.empty()) {
          // Reuse: the best path.
          result.existing =
              conn_slots_[entry->best != kNoSlot ? entry->best : entry->conns.front()].handle;
          return result;
        }
      }
    }
    if (auto r =
            ask_gater(Stage::dial, "dial", [&] { return gater_->intercept_peer_dial(peer); })) {
      result.error = Errc::peer_blocked;
      result.refusal = std::move(*r);
    }
    return result;
  }

  Admission check_dial_addr(const NodeId& peer, const Endpoint& remote) {
    Admission result;
    if (auto r = ask_gater(Stage::dial_addr, "dial",
                           [&] { return gater_->intercept_addr_dial(peer, remote); })) {
      result.error = Errc::connection_denied;
      result.refusal = std::move(*r);
      return result;
    }
    if (Decision decision = run_hooks(before_connect_, peer, remote); !decision) {
      result.error = Errc::connection_denied;
      result.refusal = refuse(Stage::dial_addr, RefusalReason::hook, "hook", decision.reason,
                              "dial refused by a before_connect hook: " + decision.reason);
      return result;
    }
    const TimePoint now = time_->now();
    std::lock_guard lock(mutex_);
    if (closed_) {
      result.error = Errc::closed;
      return result;
    }
    std::optional<Check> c = check_system_connection(Direction::outbound);
    if (!c) c = check_peer_connection(peer, Direction::outbound);
    if (!c) {
      if (auto text = outbound_dials_.admit(now)) {
        c = Check{RefusalReason::rate_limit, "system", "outbound_dials", std::move(*text)};
      }
    }
    if (c) {
      result.error = Errc::limit_exceeded;
      result.refusal =
          refuse(Stage::dial_addr, c->reason, c->scope, c->limit, "outbound refused: " + c->text);
      return result;
    }
    Charge charge;
    charge.direction = Direction::outbound;
    charge.pending = true;
    charge.peer = peer;
    ++peer_charges_[peer].pending[1];
    result.reservation = open_reservation(std::move(charge));
    return result;
  }

  Admission admit_inbound(const Endpoint& remote) {
    Admission result;
    if (auto r =
            ask_gater(Stage::accept, "inbound", [&] { return gater_->intercept_accept(remote); })) {
      result.error = Errc::connection_denied;
      result.refusal = std::move(*r);
      return result;
    }
    const bool allowlisted = gater_allows(remote.address);
    const TimePoint now = time_->now();
    std::lock_guard lock(mutex_);
    if (closed_) {
      result.error = Errc::closed;
      return result;
    }
    std::optional<Check> c = check_system_connection(Direction::inbound);
    if (!c) {
      if (auto text = subnets_.try_add(remote.address, allowlisted)) {
        c = Check{RefusalReason::subnet_cap, subnet_scope(*text), "subnet cap", std::move(*text)};
      }
    }
    if (!c) {
      if (auto text = inbound_rates_.admit(remote.address, now)) {
        subnets_.remove(remote.address);  // undo the place taken just above
        c = Check{RefusalReason::rate_limit, subnet_scope(*text), "inbound rate", std::move(*text)};
      }
    }
    if (c) {
      result.error = Errc::limit_exceeded;
      result.refusal =
          refuse(Stage::accept, c->reason, c->scope, c->limit, "inbound refused: " + c->text);
      return result;
    }
    Charge charge;
    charge.direction = Direction::inbound;
    charge.pending = true;
    charge.capped_address = remote.address;
    result.reservation = open_reservation(std::move(charge));
    return result;
  }

  // The scope named at the start of a subnet or rate refusal text ("subnet 10.1.2.0/24
  // holds ..." -> "subnet 10.1.2.0/24").
  static std::string subnet_scope(const std::string& text) {
    const auto holds = text.find(" holds ");
    if (holds != std::string::npos) return text.substr(0, holds);
    const auto over_at = text.find(" over ");
    if (over_at != std::string::npos) {
      const auto start = text.find("subnet ");
      if (start != std::string::npos && start < over_at) return text.substr(start, over_at - start);
    }
    return "subnet";
  }

  // An address the gater's allow list holds bypasses the per-address caps.
  bool gater_allows(const boost::asio::ip::address& address) {
    if (!gater_) return false;
    try {
      return gater_->bypasses_caps(address);
    } catch (...) {
      return false;
    }
  }

  std::error_code on_secured(Reservation& reservation, Direction direction, const NodeId& peer,
                             const Endpoint& remote, Refusal* refusal) {
    if (!reservation.valid() || reservation.direction() != direction) {
      return Errc::invalid_argument;
    }
    if (auto r = ask_gater(Stage::secured, direction_word(direction),
                           [&] { return gater_->intercept_secured(direction, peer, remote); })) {
      if (refusal != nullptr) *refusal = std::move(*r);
      return Errc::peer_blocked;
    }
    std::lock_guard lock(mutex_);
    if (closed_) return Errc::closed;
    auto it = reservations_.find(reservation.id());
    if (it == reservations_.end()) return Errc::invalid_argument;
    Charge& charge = it->second;
    if (charge.peer) {
      // Outbound reservations know their peer from the dial; it must be the same one.
      return *charge.peer == peer ? std::error_code{} : Errc::invalid_argument;
    }
    if (auto c = check_peer_connection(peer, direction)) {
      auto r = refuse(Stage::secured, c->reason, c->scope, c->limit,
                      direction_word(direction) + " refused: " + c->text);
      if (refusal != nullptr) *refusal = std::move(r);
      return Errc::limit_exceeded;
    }
    charge.peer = peer;
    ++peer_charges_[peer].pending[direction == Direction::inbound ? 0 : 1];
    return {};
  }

  Admission reserve_resources(const std::optional<NodeId>& peer, std::uint64_t memory,
                              std::size_t fds) {
    Admission result;
    std::lock_guard lock(mutex_);
    if (closed_) {
      result.error = Errc::closed;
      return result;
    }
    const ScopeLimits& sys = config_.limits.system;
    const ScopeLimits& per = config_.limits.peer;
    std::optional<Check> c;
    auto memory_over = [&](std::uint64_t used, std::uint64_t limit,
                           const std::string& scope) -> std::optional<Check> {
      if (limit == std::numeric_limits<std::uint64_t>::max() || used + memory <= limit) {
        return std::nullopt;
      }
      return Check{RefusalReason::memory_limit, scope, "memory_bytes",
                   scope + " holds " + std::to_string(used) + " of " + std::to_string(limit) +
                       " bytes, " + std::to_string(memory) + " more asked"};
    };
    auto fds_over = [&](std::size_t used, std::size_t limit,
                        const std::string& scope) -> std::optional<Check> {
      if (limit == kUnlimited || used + fds <= limit) return std::nullopt;
      return Check{RefusalReason::fd_limit, scope, "file_descriptors",
                   scope + " holds " + std::to_string(used) + " of " + std::to_string(limit) +
                       " file descriptors, " + std::to_string(fds) + " more asked"};
    };
    c = memory_over(memory_reserved_, sys.memory_bytes, "system");
    if (!c) c = fds_over(fds_reserved_, sys.file_descriptors, "system");
    if (!c && peer) {
      const PeerCharges* pc = peer_charges(*peer);
      const std::string scope = "peer " + peer->short_hex();
      c = memory_over(pc != nullptr ? pc->memory : 0, per.memory_bytes, scope);
      if (!c) c = fds_over(pc != nullptr ? pc->fds : 0, per.file_descriptors, scope);
    }
    if (c) {
      result.error = Errc::limit_exceeded;
      result.refusal = refuse(Stage::resources, c->reason, c->scope, c->limit,
                              "reservation refused: " + c->text);
      return result;
    }
    Charge charge;
    charge.peer = peer;
    charge.memory = memory;
    charge.fds = fds;
    memory_reserved_ += memory;
    fds_reserved_ += fds;
    if (peer) {
      PeerCharges& pc = peer_charges_[*peer];
      pc.memory += memory;
      pc.fds += fds;
    }
    result.reservation = open_reservation(std::move(charge));
    return result;
  }

  // The gater asked for a re-check: close the connections intercept_secured now denies.
  void regate() {
    if (!gater_) return;
    struct Open {
      std::shared_ptr<Connection> handle;
      NodeId peer;
      Direction direction;
      Endpoint remote;
    };
    std::vector<Open> open;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      open.reserve(connections_);
      for (std::uint32_t slot = 0; slot < conn_slots_.size(); ++slot) {
        const ConnEntry& conn = conn_slots_[slot];
        if (conn.handle) {
          open.push_back(
              {conn.handle, peer_ids_.get(conn.peer_slot), conn.direction, remote_of(slot)});
        }
      }
    }
    std::vector<std::pair<std::shared_ptr<Connection>, std::string>> denied;
    for (Open& o : open) {
      Decision d = gate([&] { return gater_->intercept_secured(o.direction, o.peer, o.remote); });
      if (!d) denied.emplace_back(std::move(o.handle), std::move(d.reason));
    }
    open.clear();  // drops our extra references before closing, unlocked
    if (denied.empty()) return;
    std::vector<Closing> closing;
    std::string detail = "no longer allowed by the gater";
    {
      std::lock_guard lock(mutex_);
      for (auto& [handle, reason] : denied) {
        if (auto slot = tracked_slot(*handle)) {
          std::string text = "gated: " + reason;
          closing.push_back(
              {detach(*slot, CloseReason::gated, text), CloseReason::gated, std::move(text)});
        }
      }
    }
    act(closing, detail);
  }

  // --- Trimming ---------------------------------------------------------------------

  // A trim's view of the pool, taken under the lock and ranked outside it.
  struct Plan {
    TrimSnapshot snapshot;
    // For snapshot.peers[i]: its slot and that slot's generation when the plan was made.
    std::vector<std::uint32_t> slots;
    std::vector<std::uint32_t> generations;
    std::size_t target = 0;
  };

  void add_candidate(Plan& plan, std::uint32_t slot, const PeerSlot& entry) const {
    PeerSnapshot peer;
    peer.value = value_of(entry);
    peer.first_seen = peer_cold_[slot].first_seen;
    peer.streams = entry.streams;
    peer.has_inbound = entry.inbound > 0;
    peer.is_protected = entry.is_protected;
    peer.connection_count = static_cast<std::uint32_t>(entry.conns.size());
    if (trim_inputs_.connections) {
      peer.first_connection = static_cast<std::uint32_t>(plan.snapshot.connections.size());
      for (std::uint32_t c : entry.conns) {
        const ConnEntry& conn = conn_slots_[c];
        plan.snapshot.connections.push_back(
            ConnectionSnapshot{conn.id, conn.direction, conn.path, conn.streams(), conn.opened_at,
                               true, conn.last_activity, conn.download_rate, conn.upload_rate, c});
      }
    }
    if (trim_inputs_.connection_refs) {
      peer.first_connection = static_cast<std::uint32_t>(plan.snapshot.connection_refs.size());
      for (std::uint32_t c : entry.conns) {
        plan.snapshot.connection_refs.push_back(ConnectionRef{conn_slots_[c].id, c});
      }
    }
    if (trim_inputs_.peer_ids) plan.snapshot.peer_ids.push_back(peer_ids_.get(slot));
    plan.snapshot.peers.push_back(peer);
    plan.slots.push_back(slot);
    plan.generations.push_back(entry.generation);
  }

  void reserve(Plan& plan, std::size_t peers) const {
    plan.snapshot.peers.reserve(peers);
    plan.slots.reserve(peers);
    plan.generations.reserve(peers);
    if (trim_inputs_.peer_ids) plan.snapshot.peer_ids.reserve(peers);
    if (trim_inputs_.connections) plan.snapshot.connections.reserve(connections_);
    if (trim_inputs_.connection_refs) plan.snapshot.connection_refs.reserve(connections_);
  }

  // Asks the trimmer for an order; an exception aborts the trim (nothing closed).
  bool rank(const Plan& plan, std::vector<std::uint32_t>& order) {
    if (plan.snapshot.peers.empty() || plan.target == 0) return true;
    try {
      trimmer_->rank(plan.snapshot, plan.target, order);
      return true;
    } catch (const std::exception& e) {
      logger_->error("connmgr: trimmer threw, trim aborted: {}", e.what());
    } catch (...) {
      logger_->error("connmgr: trimmer threw a non-standard exception, trim aborted");
    }
    return false;
  }

  // The victims of a plan: peers taken in `order` (bad and repeated indices skipped)
  // until they hold `target` connections. With `partial` the last one may give up only
  // some connections: `last_partial` says how many (0 = all).
  struct Victims {
    std::vector<std::uint32_t> peers;  // indices into the plan
    std::size_t last_partial = 0;
  };
  static Victims select(const Plan& plan, const std::vector<std::uint32_t>& order,
                        std::size_t target, bool partial) {
    Victims victims;
    std::vector<bool> seen(plan.snapshot.peers.size(), false);
    std::size_t covered = 0;
    for (std::uint32_t index : order) {
      if (covered >= target) break;
      if (index >= plan.snapshot.peers.size() || seen[index]) continue;
      seen[index] = true;
      const std::size_t count = plan.snapshot.peers[index].connection_count;
      victims.peers.push_back(index);
      if (partial && covered + count > target) victims.last_partial = target - covered;
      covered += count;
    }
    return victims;
  }

  // Closes the victims of a plan (whole peers; the partial one in part, newest
  // connections first), skipping peers that went, were replaced or became protected since
  // the plan. Victims are visited in plan order, which is slot order: the walk goes forward
  // through the pool's memory instead of jumping around it in rank order.
  std::size_t commit(const Plan& plan, const Victims& victims, bool allow_protected,
                     CloseReason reason, const std::string& detail,
                     std::vector<std::shared_ptr<Connection>>& closing, std::size_t& peers_closed) {
    if (victims.peers.empty()) return 0;
    const std::uint32_t partial_index =
        victims.last_partial != 0 ? victims.peers.back() : UINT32_MAX;
    std::vector<bool> chosen(plan.snapshot.peers.size(), false);
    for (std::uint32_t index : victims.peers) chosen[index] = true;
    VictimSlots in_slot_order;
    in_slot_order.slots.reserve(victims.peers.size());
    in_slot_order.generations.reserve(victims.peers.size());
    for (std::uint32_t index = 0; index < chosen.size(); ++index) {
      if (!chosen[index]) continue;
      if (index == partial_index) {
        in_slot_order.partial_slot = plan.slots[index];
        in_slot_order.partial_count = victims.last_partial;
      }
      in_slot_order.slots.push_back(plan.slots[index]);
      in_slot_order.generations.push_back(plan.generations[index]);
    }
    return close_peers(in_slot_order, allow_protected, reason, detail, closing, peers_closed);
  }

  // Peers to close, by slot in ascending order. `generations`, when not empty, holds each
  // slot's generation when it was chosen: a slot released or reused since is skipped.
  struct VictimSlots {
    std::vector<std::uint32_t> slots;
    std::vector<std::uint32_t> generations;
    std::uint32_t partial_slot = kNoSlot;  // gives up only partial_count connections
    std::size_t partial_count = 0;
  };

  // Detaches the victims' connections into `closing` (REQUIRES: mutex_ held).
  std::size_t close_peers(const VictimSlots& victims, bool allow_protected, CloseReason reason,
                          const std::string& detail,
                          std::vector<std::shared_ptr<Connection>>& closing,
                          std::size_t& peers_closed) {
    const std::vector<std::uint32_t>& slots = victims.slots;
    const bool check_generation = !victims.generations.empty();
    closing.reserve(closing.size() + slots.size());
    std::size_t closed = 0;
    const std::size_t n = slots.size();
    begin_batch_unindex(n);
    // The observer's batch ends however this one does.
    struct BatchGuard {
      detail::PoolObserver* observer;
      explicit BatchGuard(detail::PoolObserver* o) : observer(o) {
        if (observer != nullptr) observer->on_batch(true);
      }
      ~BatchGuard() {
        if (observer != nullptr) observer->on_batch(false);
      }
      BatchGuard(const BatchGuard&) = delete;
      BatchGuard& operator=(const BatchGuard&) = delete;
    } guard(observer_);
    for (std::size_t k = 0; k < n; ++k) {
      // The victims are scattered over the pool: fetch the peer entries a few victims
      // ahead, then their first connection entries, so the loads overlap. Every line the
      // commit touches is fetched (prefetching only the first line of each entry left
      // the commit waiting on the others: 5.3 -> 4.6 ms and 7.4 -> 5.8 ms at 100k).
      if (k + 16 < n) __builtin_prefetch(&peers_[slots[k + 16]], 1);  // one line
      if (k + 8 < n) {
        const PeerSlot& ahead = peers_[slots[k + 8]];
        if (!ahead.conns.empty()) {
          // detach() touches the entry's first 32 bytes, one line (more only for a capped
          // one, or with event subscribers or realms, which read the id).
          __builtin_prefetch(&conn_slots_[ahead.conns.front()], 1);
          if (observer_ != nullptr) observer_->prefetch(ahead.conns.back());
        }
      }
      PeerSlot& entry = peers_[slots[k]];
      if (!entry.live || entry.temporary) continue;
      if (check_generation && entry.generation != victims.generations[k]) continue;
      if (entry.is_protected && !allow_protected) continue;
      std::size_t count = entry.conns.size();
      if (slots[k] == victims.partial_slot) count = std::min(count, victims.partial_count);
      for (std::size_t i = 0; i < count; ++i) {
        const bool last = entry.conns.size() == 1;
        closing.push_back(detach(entry.conns.back(), reason, detail));
        ++closed;
        if (last) ++peers_closed;  // detach() released the slot with its last connection
      }
    }
    end_batch_unindex();
    return closed;
  }

  // The default trimmer's choice, made on the pool itself (REQUIRES: mutex_ held, and
  // held on until the victims are detached, so no generation check is needed).
  //
  // ScoreTrimmer is library code, so the manager need not hand it a snapshot: copying
  // every candidate out (32 bytes each, plus the trimmer's own arrays) means several
  // megabytes written in each trim, much of it memory touched for the first time. Instead
  // one pass over the pool notes each slot's value key and connection count (5 bytes a
  // slot), and the rest works on those:
  //  1. connections per bucket of values find the bucket where the target is reached
  //     (tag sums usually span a small range: then each value is a bucket of its own);
  //  2. every candidate below that bucket is a victim (their slots are written over the
  //     keys, in place); the ones in it are ordered by their full key (docs/design.md, "Trimming")
  //     and taken until the target is covered.
  // The victims are exactly those ScoreTrimmer and select() would choose from a
  // snapshot, in slot order; tests compare the two on random pools.
  VictimSlots score_victims(TimePoint now, bool exact, std::size_t exact_count,
                            std::size_t& target) const {
    VictimSlots out;
    const std::size_t slots = peers_.size();
    // weight[slot]: the candidate's connections, saturated at 255 (0: not a candidate;
    // a candidate is connected, so it holds at least one).
    std::vector<std::uint8_t> weight(slots, 0);
    // keys[slot]: the candidate's value key as an offset from `base` (the first
    // candidate's key less 2^31). When some key lies further than that from the first
    // (tag sums spread over more than 2^31: `wide`), keys are read from the pool instead.
    std::vector<std::uint32_t> keys(slots);
    std::uint64_t base = 0;
    bool wide = false;
    std::uint64_t lo = UINT64_MAX;
    std::uint64_t hi = 0;
    std::size_t candidates = 0;
    std::size_t candidate_connections = 0;
    bool saturated = false;
    peers_.for_each([&](std::size_t index, const PeerSlot& entry) {
      // The pass is bound by its stream of peer entries: ask for them 16 lines ahead (an
      // address past the page's end is harmless to a prefetch).
      __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(&entry) +
                                                       16 * sizeof(PeerSlot)));
      if (!is_candidate(entry, static_cast<std::uint32_t>(index), now) || entry.conns.empty())
        return;
      const std::uint64_t key = detail::value_key(value_of(entry));
      if (candidates == 0) base = key - (1ULL << 31);
      const std::uint64_t offset = key - base;  // modulo 2^64: exact when it fits
      wide = wide || offset > UINT32_MAX;
      keys[index] = static_cast<std::uint32_t>(offset);
      lo = std::min(lo, key);
      hi = std::max(hi, key);
      ++candidates;
      const std::size_t count = entry.conns.size();
      candidate_connections += count;
      weight[index] = static_cast<std::uint8_t>(std::min<std::size_t>(count, 255));
      saturated = saturated || count >= 255;
    });
    auto connections_of = [&](std::size_t slot) -> std::size_t {
      return weight[slot] == 255 ? peers_[slot].conns.size() : weight[slot];
    };
    target = unforced_target(exact, exact_count, candidate_connections);
    if (candidates == 0 || target == 0) return out;
    std::size_t victims = 0;                // written over keys[0, victims)
    if (target >= candidate_connections) {  // every candidate goes, whole
      for (std::size_t slot = 0; slot < slots; ++slot) {
        keys[victims] = static_cast<std::uint32_t>(slot);
        victims += static_cast<std::size_t>(weight[slot] != 0);
      }
      keys.resize(victims);
      out.slots = std::move(keys);
      return out;
    }
    // Bucket of a candidate's key: keys relative to the lowest, shifted so that there are
    // at most 2^16 buckets, and no more than about one per candidate.
    const std::uint64_t range = hi - lo;
    const int bits = std::min(16, static_cast<int>(std::bit_width(candidates)));
    const int shift = std::max(0, static_cast<int>(std::bit_width(range)) - bits);
    const std::uint64_t lowest = lo - base;  // as an offset (when not wide)
    auto bucket_of = [&](std::size_t slot) {
      const std::uint64_t above =
          wide ? detail::value_key(value_of(peers_[slot])) - lo : keys[slot] - lowest;
      return static_cast<std::size_t>(above >> shift);
    };
    std::vector<std::size_t> counts(static_cast<std::size_t>(range >> shift) + 1, 0);
    for (std::size_t slot = 0; slot < slots; ++slot) {
      if (weight[slot] != 0)
        counts[bucket_of(slot)] += saturated ? connections_of(slot) : weight[slot];
    }
    std::size_t below = 0;  // connections in the buckets before `boundary`
    std::size_t boundary = 0;
    while (below + counts[boundary] < target) below += counts[boundary++];

    // Values are in random order, so the victims are written without a branch (one that
    // fails half the time costs more than the store). A slot is read before it can be
    // overwritten: victims <= slot. The bucket's own peers are few.
    std::vector<std::uint32_t> tied_slots;
    bool tied_multi = false;
    for (std::size_t slot = 0; slot < slots; ++slot) {
      const bool candidate = weight[slot] != 0;
      const std::size_t bucket = candidate ? bucket_of(slot) : boundary + 1;
      keys[victims] = static_cast<std::uint32_t>(slot);
      victims += static_cast<std::size_t>(bucket < boundary);
      if (bucket == boundary) {
        tied_slots.push_back(static_cast<std::uint32_t>(slot));
        tied_multi = tied_multi || weight[slot] > 1;
      }
    }
    keys.resize(victims);
    out.slots = std::move(keys);  // its capacity holds every candidate: no reallocation below

    // The bucket's peers by full key, their entries fetched a few ahead.
    std::vector<detail::RankKey> tied;
    tied.reserve(tied_slots.size());
    for (std::size_t k = 0; k < tied_slots.size(); ++k) {
      if (k + 8 < tied_slots.size()) {
        __builtin_prefetch(&peers_[tied_slots[k + 8]]);
        __builtin_prefetch(&peer_cold_[tied_slots[k + 8]]);  // first_seen
      }
      tied.push_back(detail::key_of(rank_view(tied_slots[k]), tied_slots[k]));
    }
    // The first of them, until they hold `wanted` connections.
    const std::size_t wanted = target - below;  // 1 <= wanted <= counts[boundary]
    std::size_t taken = 0;
    if (!tied_multi) {
      // One connection each: exactly `wanted` of them go, in any order.
      taken = std::min(wanted, tied.size());
      if (taken < tied.size()) {
        std::nth_element(tied.begin(), tied.begin() + static_cast<std::ptrdiff_t>(taken),
                         tied.end());
      }
    } else {
      std::sort(tied.begin(), tied.end());
      std::size_t covered = 0;
      while (taken < tied.size() && covered < wanted) {
        const std::size_t count = connections_of(tied[taken].index);
        if (exact && covered + count > wanted) {
          out.partial_slot = tied[taken].index;
          out.partial_count = wanted - covered;
        }
        covered += count;
        ++taken;
      }
    }
    // Merge them into the slot-ordered list, from the back, in place.
    std::sort(tied.begin(), tied.begin() + static_cast<std::ptrdiff_t>(taken),
              [](const detail::RankKey& a, const detail::RankKey& b) { return a.index < b.index; });
    std::size_t from = out.slots.size();
    std::size_t to = from + taken;
    out.slots.resize(to);
    while (taken > 0) {
      const std::uint32_t next = tied[taken - 1].index;
      if (from > 0 && out.slots[from - 1] > next) {
        out.slots[--to] = out.slots[--from];
      } else {
        out.slots[--to] = next;
        --taken;
      }
    }
    return out;
  }

  // The realm layer's choice, made on the pool itself like score_victims (REQUIRES:
  // mutex_ held, and held on until the victims are detached). The observer gets each
  // candidate's default key and connections; nullopt when it chose to rank through the
  // snapshot after all.
  std::optional<VictimSlots> observer_victims(TimePoint now, bool exact, std::size_t exact_count,
                                              std::size_t& target) {
    struct End {
      detail::PoolObserver* observer;
      ~End() { observer->end_ranking(); }
    } end{observer_};
    std::size_t candidate_connections = 0;
    peers_.for_each([&](std::size_t index, const PeerSlot& entry) {
      __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(&entry) +
                                                       16 * sizeof(PeerSlot)));
      const auto slot = static_cast<std::uint32_t>(index);
      if (!is_candidate(entry, slot, now) || entry.conns.empty()) return;
      const auto count = static_cast<std::uint32_t>(entry.conns.size());
      candidate_connections += count;
      observer_->rank_candidate(slot, detail::key_of(rank_view(slot), slot), count,
                                {entry.conns.data(), count});
    });
    target = unforced_target(exact, exact_count, candidate_connections);
    detail::PoolObserver::Choice choice;
    if (target > 0 && candidate_connections > 0 && !observer_->choose(target, exact, choice)) {
      return std::nullopt;
    }
    VictimSlots victims;
    victims.slots = std::move(choice.slots);
    victims.partial_slot = choice.partial_slot;
    victims.partial_count = choice.partial_count;
    return victims;
  }

  // The connections a trim that is not forced closes: `exact_count` for an exact one, else
  // the candidates' connections above low water (protected and in-grace connections do not
  // count toward the target).
  std::size_t unforced_target(bool exact, std::size_t exact_count,
                              std::size_t candidate_connections) const {
    if (exact) return exact_count;
    return candidate_connections >= config_.low_water ? candidate_connections - config_.low_water
                                                      : 0;
  }

  // Deletes the temporary entries that are past their end and not protected (a forced
  // trim too: an entry holds no connection, so deleting one frees nothing an emergency
  // needs, and loses tags set before a dial completed).
  void prune_temporary(TimePoint now) {
    if (temp_peers_ == 0) return;
    for (std::uint32_t slot = 0; slot < peers_.size(); ++slot) {
      const PeerSlot& entry = peers_[slot];
      if (entry.live && entry.temporary && !entry.is_protected && now >= expiry_at(slot)) {
        release_peer(slot);
        ++stats_.temporary_peers_pruned;
      }
    }
  }

  bool out_of_grace(std::uint32_t slot, TimePoint now) const {
    return config_.grace_period.count() == 0 ||
           now - peer_cold_[slot].first_seen >= config_.grace_period;
  }

  // A trim through the trimmer's snapshot: plan under the lock, rank outside it (the
  // trimmer may be host code), commit under it again. Returns the detail text; `lock` is
  // held on entry and on return.
  std::string trim_with_snapshot(std::unique_lock<std::mutex>& lock, TrimKind kind,
                                 std::size_t exact_count, TimePoint now, std::size_t before,
                                 CloseReason reason,
                                 std::vector<std::shared_ptr<Connection>>& closing,
                                 std::size_t& closed, std::size_t& peers_closed) {
    const bool forced = kind == TrimKind::forced;
    const bool exact = kind == TrimKind::exact_count;
    Plan unprotected;
    Plan protected_plan;
    std::size_t candidate_connections = 0;
    unprotected.snapshot.now = now;
    protected_plan.snapshot.now = now;
    unprotected.snapshot.forced = forced;
    protected_plan.snapshot.forced = forced;
    reserve(unprotected, peer_index_.size());
    peers_.for_each([&](std::size_t index, const PeerSlot& entry) {
      if (!entry.live || entry.temporary) return;
      const auto slot = static_cast<std::uint32_t>(index);
      if (forced) {
        add_candidate(entry.is_protected ? protected_plan : unprotected, slot, entry);
        return;
      }
      if (entry.is_protected || !out_of_grace(slot, now)) return;
      add_candidate(unprotected, slot, entry);
      candidate_connections += entry.conns.size();
    });
    if (forced) {
      unprotected.target = connections_ - config_.low_water;
      // Protected peers go only for what the unprotected ones cannot cover in the plan,
      // ranked for that shortfall alone: the trimmer's order need only be right within
      // the target it is given (the least valuable protected peers, not any of them).
      // Unprotected victims that change meanwhile, or connections added while the
      // trimmer runs, are never a reason to close a protected peer.
      std::size_t unprotected_held = 0;
      for (const PeerSnapshot& p : unprotected.snapshot.peers) {
        unprotected_held += p.connection_count;
      }
      protected_plan.target =
          unprotected.target > unprotected_held ? unprotected.target - unprotected_held : 0;
    } else {
      unprotected.target = unforced_target(exact, exact_count, candidate_connections);
    }
    std::string detail = describe(kind, before, unprotected.target);
    lock.unlock();

    // Rank outside the lock: the trimmer is pluggable host code.
    std::vector<std::uint32_t> order;
    std::vector<std::uint32_t> protected_order;
    bool ok = rank(unprotected, order);
    if (ok && forced) ok = rank(protected_plan, protected_order);
    Victims victims;
    if (ok) victims = select(unprotected, order, unprotected.target, exact);

    // Commit: apply the decisions to the pool.
    lock.lock();
    if (!ok || closed_) return detail;
    closed = commit(unprotected, victims, false, reason, detail, closing, peers_closed);
    // The protected phase closes no more than the pool still holds above low water (less
    // than planned only if connections went meanwhile).
    if (protected_plan.target > 0 && connections_ > config_.low_water) {
      closed +=
          commit(protected_plan,
                 select(protected_plan, protected_order,
                        std::min(protected_plan.target, connections_ - config_.low_water), false),
                 true, reason, detail, closing, peers_closed);
    }
    ++stats_.trims;
    if (closed > 0 && hub_.has_subscribers()) {
      hub_.enqueue(TrimmedEvent{event_kind(kind), peers_closed, closed, connections_});
    }
    return detail;
  }

  std::size_t run_trim(TrimKind kind, std::size_t exact_count) {
    const TimePoint now = time_->now();
    std::unique_lock lock(mutex_);
    if (closed_) return 0;
    if (trim_running_) {
      if (kind == TrimKind::background || kind == TrimKind::limits_changed) return 0;
      if (trim_thread_ == std::this_thread::get_id()) return 0;  // called from inside a trim
      if (kind == TrimKind::explicit_trim) {
        ++stats_.trims_joined;
        const std::uint64_t generation = trim_generation_;
        trim_done_.wait(lock, [&] { return trim_generation_ != generation || closed_; });
        return closed_ ? 0 : last_trim_closed_;
      }
      trim_done_.wait(lock, [&] { return !trim_running_ || closed_; });
      if (closed_) return 0;
    }

    const bool watermarks_on = config_.low_water != 0 && config_.high_water != 0;
    switch (kind) {
      case TrimKind::background:
      case TrimKind::limits_changed:
        if (!watermarks_on || connections_ < config_.high_water) return 0;
        break;
      case TrimKind::explicit_trim:
      case TrimKind::forced:
        if (!watermarks_on || connections_ <= config_.low_water) return 0;
        break;
      case TrimKind::exact_count:
        if (exact_count == 0) return 0;
        break;
    }
    trim_running_ = true;
    trim_thread_ = std::this_thread::get_id();
    const std::size_t before = connections_;
    const bool forced = kind == TrimKind::forced;
    const bool exact = kind == TrimKind::exact_count;
    const CloseReason reason = forced || exact ? CloseReason::forced_trim : CloseReason::trimmed;
    if (!exact) prune_temporary(now);

    std::vector<std::shared_ptr<Connection>> closing;
    std::size_t closed = 0;
    std::size_t peers_closed = 0;
    std::string detail;
    // How this trim ranks: the realm layer may rank the pool in place, or leave it to the
    // default order or to the trimmer's snapshot.
    using Ranking = detail::PoolObserver::Ranking;
    Ranking ranking = score_in_place_ && !forced ? Ranking::score : Ranking::snapshot;
    if (observer_ != nullptr && !forced) ranking = observer_->begin_ranking(peers_.size());
    std::size_t target = 0;
    std::optional<VictimSlots> in_place;
    if (ranking == Ranking::in_place) {
      in_place = observer_victims(now, exact, exact_count, target);
    } else if (ranking == Ranking::score) {
      in_place = score_victims(now, exact, exact_count, target);
    }
    if (in_place) {
      // Plan, rank and commit in one hold of the lock (see score_victims). No host code
      // runs in between.
      const VictimSlots& victims = *in_place;
      detail = describe(kind, before, target);
      closed = close_peers(victims, false, reason, detail, closing, peers_closed);
      ++stats_.trims;
      if (closed > 0 && hub_.has_subscribers()) {
        hub_.enqueue(TrimmedEvent{event_kind(kind), peers_closed, closed, connections_});
      }
    } else {
      detail = trim_with_snapshot(lock, kind, exact_count, now, before, reason, closing, closed,
                                  peers_closed);
    }
    lock.unlock();

    // Act: close the victims, deliver events — all unlocked.
    act(closing, reason, detail);

    lock.lock();
    trim_running_ = false;
    trim_thread_ = {};
    last_trim_closed_ = closed;
    ++trim_generation_;
    lock.unlock();
    trim_done_.notify_all();
    if (closed > 0) {
      logger_->debug("connmgr: trim closed {} connections of {} peers", closed, peers_closed);
    }
    return closed;
  }

  std::string describe(TrimKind kind, std::size_t before, std::size_t target) const {
    const std::string pool =
        std::to_string(before) + " connections, low water " + std::to_string(config_.low_water);
    switch (kind) {
      case TrimKind::background:
        return "trimmed by the background check: " + pool + ", high water " +
               std::to_string(config_.high_water);
      case TrimKind::explicit_trim: return "trimmed on request: " + pool;
      case TrimKind::forced: return "force_trim: " + pool + ", grace ignored";
      case TrimKind::exact_count:
        return "trim_connections(" + std::to_string(target) + "): " + pool;
      case TrimKind::limits_changed:
        return "trimmed after the limits were lowered: " + pool + ", high water " +
               std::to_string(config_.high_water);
    }
    return pool;
  }

  static TrimmedEvent::Kind event_kind(TrimKind kind) {
    switch (kind) {
      case TrimKind::background: return TrimmedEvent::Kind::background;
      case TrimKind::explicit_trim: return TrimmedEvent::Kind::explicit_trim;
      case TrimKind::forced: return TrimmedEvent::Kind::forced;
      case TrimKind::exact_count: return TrimmedEvent::Kind::exact_count;
      case TrimKind::limits_changed: return TrimmedEvent::Kind::limits_changed;
    }
    return TrimmedEvent::Kind::explicit_trim;
  }

  std::error_code set_limits(std::size_t low_water, std::size_t high_water) {
    bool schedule = false;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return Errc::closed;
      Config candidate = config_;
      candidate.low_water = low_water;
      candidate.high_water = high_water;
      if (auto error = candidate.validate()) return Errc::invalid_argument;
      config_ = candidate;
      schedule = high_water != 0 && low_water != 0 && connections_ >= high_water;
    }
    if (schedule) {
      boost::asio::post(strand_, [weak = weak_from_this()] {
        if (auto self = weak.lock()) self->run_trim(TrimKind::limits_changed, 0);
      });
    }
    return {};
  }

  Stats stats() const {
    std::lock_guard lock(mutex_);
    Stats s = stats_;
    {
      std::lock_guard refusals(refusal_mutex_);
      s.refusals_by_reason = refusals_by_reason_;
    }
    s.duplicate_reports = unknown_reports_.load(std::memory_order_relaxed);
    s.connections = connections_;
    s.inbound = inbound_;
    s.outbound = outbound_;
    s.peers = peer_index_.size() - temp_peers_;
    s.temporary_peers = temp_peers_;
    s.protected_peers = protections_.size();
    s.streams = streams_by_direction_[0] + streams_by_direction_[1];
    s.pending_inbound = pending_[0];
    s.pending_outbound = pending_[1];
    s.reservations = reservations_.size();
    s.memory_reserved = memory_reserved_;
    s.fds_reserved = fds_reserved_;
    s.capped_addresses = subnets_.tracked();
    // Counts by path and state and the RTT summary: one pass, only when asked.
    Duration rtt_sum{};
    for (const ConnEntry& conn : conn_slots_) {
      if (!conn.handle) continue;  // a free slot
      ++(conn.path == PathKind::relay ? s.relay : s.direct);
      ++(conn.closing ? s.closing : s.established);
      if (conn.srtt == Duration::zero()) continue;  // no ping answered yet
      s.rtt.min = s.rtt.count == 0 ? conn.srtt : std::min(s.rtt.min, conn.srtt);
      s.rtt.max = std::max(s.rtt.max, conn.srtt);
      rtt_sum += conn.srtt;
      ++s.rtt.count;
    }
    if (s.rtt.count > 0) s.rtt.mean = rtt_sum / static_cast<Duration::rep>(s.rtt.count);
    for (const auto& [key, pending] : handshakes_) {
      ++(pending.state == ConnectionState::dialing ? s.dialing : s.handshaking);
    }
    return s;
  }

  void close() {
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      closed_ = true;
    }
    trim_done_.notify_all();
    hub_.close();
    gater_subscription_.reset();
    if (background_timer_) background_timer_->cancel();
    if (decay_timer_) decay_timer_->cancel();
    if (housekeeping_timer_) housekeeping_timer_->cancel();
    if (keepalive_timer_) keepalive_timer_->cancel();
  }

  // Immutable after construction.
  const std::uint64_t token_ = ConnectionAccess::new_token();  // see ConnectionAccess
  executor_type executor_;
  boost::asio::strand<executor_type> strand_;
  std::shared_ptr<TimeSource> time_;
  std::shared_ptr<spdlog::logger> logger_;
  std::shared_ptr<Trimmer> trimmer_;
  TrimInputs trim_inputs_;
  bool score_in_place_;           // the trimmer is ScoreTrimmer: trims rank the pool in place
  std::shared_ptr<Gater> gater_;  // null: every intercept allows
  std::shared_ptr<PathSelector> path_selector_;
  Subscription gater_subscription_;  // re-gating on Gater::on_tightened

  mutable std::mutex mutex_;  // guards everything below, unless noted
  Config config_;
  bool closed_ = false;
  // Peer entries by slot; peer_index_ holds the slot of every live peer. A slot is live
  // iff it is in peer_index_ (or, during a batch release, not marked in unindexed_).
  detail::PagedVector<PeerSlot> peers_;
  detail::PagedVector<PeerCold> peer_cold_;  // alongside peers_, same indices
  detail::PeerIdTable peer_ids_;             // the id of the peer in each slot
  // A temporary entry's end, by slot (see schedule_expiry); erased with the entry.
  boost::unordered_flat_map<std::uint32_t, TimePoint> expiry_of_;
  // Decaying tags of the peers that hold any (PeerSlot::decay); free ones are listed.
  std::vector<DecaySet> decay_sets_;
  std::vector<std::uint32_t> free_decay_sets_;
  boost::unordered_flat_set<std::uint32_t, SlotHash, SlotEqual> peer_index_;
  // The free slots of peers_, a stack linked through PeerSlot::best (kNoSlot ends it).
  std::uint32_t free_peer_head_ = kNoSlot;
  // Slots released during a batch (see begin_batch_unindex), still in peer_index_.
  bool batch_unindex_ = false;
  std::vector<bool> unindexed_;
  std::size_t unindexed_count_ = 0;
  // Every tracked connection at its Connection::slot_.
  detail::PagedVector<ConnEntry> conn_slots_;
  // The free entries of conn_slots_, a stack linked through ConnEntry::peer_slot.
  std::uint32_t free_conn_head_ = kNoSlot;
  // The rare per-connection extras, by conn slot: IPv6 scope ids (link-local remotes)
  // and capped addresses other than the remote one (ConnEntry::cap_elsewhere).
  boost::unordered_flat_map<std::uint32_t, boost::asio::ip::scope_id_type> scope_ids_;
  boost::unordered_flat_map<std::uint32_t, boost::asio::ip::address> odd_caps_;
  detail::TagNames tag_names_;
  detail::ProtectTable protections_;
  // Source of PeerSlot::tags_stamp values: every tag change of a peer stamps it with a
  // fresh number, so upsert_tag sees whether that peer's tags changed while its function ran.
  std::uint64_t tag_clock_ = 0;
  std::size_t connections_ = 0;
  std::size_t inbound_ = 0;
  std::size_t outbound_ = 0;
  std::size_t streams_by_direction_[2] = {0, 0};  // [inbound, outbound]
  std::size_t temp_peers_ = 0;
  std::uint64_t next_connection_id_ = 0;
  Stats stats_;  // the running totals; counts are filled in by stats()
  std::atomic<std::uint64_t> unknown_reports_{0};  // duplicate/unknown reports; no lock
  // One trim at a time: trim_running_ is set by the trimming thread (trim_thread_);
  // each finished trim bumps trim_generation_ and wakes the callers that joined it.
  bool trim_running_ = false;
  std::thread::id trim_thread_;
  std::uint64_t trim_generation_ = 0;
  std::size_t last_trim_closed_ = 0;
  std::condition_variable trim_done_;

  // Admission: counters of pending handshakes [inbound, outbound] and reserved resources
  // (system scope), per-peer charges, the charges of live reservations by id, the caps and
  // rate limits. Refusal counts have their own lock: refuse() runs with or without mutex_.
  std::size_t pending_[2] = {0, 0};
  std::uint64_t memory_reserved_ = 0;
  std::size_t fds_reserved_ = 0;
  boost::unordered_flat_map<NodeId, PeerCharges, NodeIdHash> peer_charges_;
  boost::unordered_flat_map<std::uint64_t, Charge> reservations_;
  std::uint64_t next_reservation_ = 0;
  std::weak_ptr<Reservation::Owner> reservation_owner_;  // set once by start()
  std::weak_ptr<KeepAliveHold::Owner> hold_owner_;       // set once by start()
  // Keepalive and idle schedules (see "Activity, keepalive and idle").
  std::deque<Due> ping_due_;
  std::deque<Due> timeout_due_;
  std::deque<Due> redundant_due_;
  // Connections not established yet (track_pending) and their handshake deadlines.
  boost::unordered_flat_map<const Connection*, PendingEntry> handshakes_;
  std::deque<HandshakeDue> handshake_due_;
  std::uint64_t next_pending_serial_ = 0;  // relays made redundant, closing after redundant_grace
  std::priority_queue<Due, std::vector<Due>, std::greater<>> idle_due_;
  bool keepalive_armed_ = false;
  TimePoint keepalive_at_{};
  boost::unordered_flat_map<NodeId, std::size_t, NodeIdHash> holds_;  // peer -> holds
  detail::SubnetCounter subnets_;
  detail::SubnetRateLimiter inbound_rates_;
  detail::OutboundDialLimiter outbound_dials_;
  mutable std::mutex refusal_mutex_;
  // Hooks, with their own lock (taken alone, never with mutex_).
  std::mutex hooks_mutex_;
  std::uint64_t next_hook_ = 0;
  HookList<BeforeConnectHook> before_connect_;
  HookList<AfterHandshakeHook> after_handshake_;
  std::array<std::uint64_t, kRefusalReasonCount> refusals_by_reason_{};

  // Decaying tags by id; see DecayDef.
  std::vector<DecayDef> decay_defs_;
  std::uint64_t decay_generation_ = 0;
  // Deadlines of temporary entries, earliest first; records go stale and are skipped.
  std::priority_queue<Expiry, std::vector<Expiry>, std::greater<>> expiries_;
  bool housekeeping_armed_ = false;
  TimePoint housekeeping_at_{};  // when the armed housekeeping timer fires

  // Set by the realm layer (detail::ManagerAccess); called by detach() under mutex_. It
  // is library code, not the host's: it takes only its own leaf lock.
  detail::PoolObserver* observer_ = nullptr;  // the realm layer, if any
  std::vector<Event> observer_events_;

  detail::EventHub hub_;  // its own lock, taken after mutex_ when both are held
  // Armed and fired on strand_; armed under mutex_ (Timer methods never call us back).
  std::unique_ptr<Timer> background_timer_;
  std::unique_ptr<Timer> decay_timer_;
  std::unique_ptr<Timer> housekeeping_timer_;
  std::unique_ptr<Timer> keepalive_timer_;

  // --- Observability (docs/design.md, "Observability") -------------------------------------------

  // The peer as the default trimmer sees it (the fields detail::key_of reads).
  PeerSnapshot rank_view(std::uint32_t slot) const {
    const PeerSlot& entry = peers_[slot];
    PeerSnapshot peer;
    peer.value = value_of(entry);
    peer.first_seen = peer_cold_[slot].first_seen;
    peer.streams = entry.streams;
    peer.has_inbound = entry.inbound > 0;
    peer.connection_count = static_cast<std::uint32_t>(entry.conns.size());
    return peer;
  }

  // A trim candidate, by run_trim's rule (REQUIRES: mutex_ held).
  bool is_candidate(const PeerSlot& entry, std::uint32_t slot, TimePoint now) const {
    return entry.live && !entry.temporary && !entry.is_protected && out_of_grace(slot, now);
  }

  // explain() without its summary (built by the caller, unlocked). The rank counts the
  // candidates ahead of the peer under the default key; run_trim indexes candidates in
  // slot order, so the slot is an equivalent last tie-break. O(peers) under the lock.
  std::optional<Explanation> explain(const NodeId& peer) const {
    const TimePoint now = time_->now();
    std::lock_guard lock(mutex_);
    const std::uint32_t entry_slot = find_slot(peer);
    if (entry_slot == kNoSlot) return std::nullopt;
    const PeerSlot* entry = &peers_[entry_slot];
    Explanation e{.peer = peer};
    e.at = now;
    e.temporary = entry->temporary;
    for (std::uint32_t c : entry->conns) {
      const ConnEntry& conn = conn_slots_[c];
      ConnectionExplanation& out = e.connections.emplace_back();
      out.id = conn.id;
      out.direction = conn.direction;
      out.path = conn.path;
      out.state = conn.closing ? ConnectionState::closing : ConnectionState::established;
      out.streams = conn.streams();
      if (conn.srtt != Duration::zero()) out.rtt = conn.srtt;
      out.best = entry->best == c;
    }
    for (auto& [tag, until] : protections_.protections_until(peer)) {
      ProtectionExplanation& out = e.protections.emplace_back();
      out.tag = std::move(tag);
      if (until != detail::ProtectTable::kForever) out.until = until;
    }
    if (entry->temporary) {
      // A protected entry has no end until its protection ends.
      if (!entry->is_protected) e.expires_at = expiry_at(entry_slot);
    } else if (!out_of_grace(entry_slot, now)) {
      e.grace_until = peer_cold_[entry_slot].first_seen + config_.grace_period;
    }
    e.value = value_of(*entry);
    e.tags = entry->tags.list(tag_names_);
    if (const DecaySet* set = decay_set(*entry)) {
      for (const DecayEntry& d : set->entries) {
        e.decaying_tags.emplace_back(decay_defs_[d.tag].name, d.value);
      }
    }
    const bool candidate = is_candidate(*entry, entry_slot, now);
    if (!candidate) {
      e.not_candidate = entry->temporary      ? NotCandidateReason::temporary
                        : entry->is_protected ? NotCandidateReason::protection
                                              : NotCandidateReason::in_grace;
    }
    const detail::RankKey key = detail::key_of(rank_view(entry_slot), entry_slot);
    std::size_t ahead = 0;
    for (std::uint32_t slot = 0; slot < peers_.size(); ++slot) {
      const PeerSlot& other = peers_[slot];
      if (!is_candidate(other, slot, now)) continue;
      ++e.candidates;
      if (candidate && detail::key_of(rank_view(slot), slot) < key) ++ahead;
    }
    if (candidate) e.rank = ahead + 1;
    return e;
  }
};

ConnectionManager::ConnectionManager(executor_type executor, Config config, Dependencies deps) {
  if (auto error = config.validate()) {
    throw std::invalid_argument("connmgr Config." + error->field + ": " + error->message);
  }
  impl_ = std::make_shared<Impl>(std::move(executor), std::move(config), std::move(deps));
  impl_->start();
}

ConnectionManager::~ConnectionManager() { impl_->close(); }

void detail::ManagerAccess::set_observer(ConnectionManager& manager, PoolObserver* observer) {
  std::lock_guard lock(manager.impl_->mutex_);
  manager.impl_->observer_ = observer;
}
void detail::ManagerAccess::publish(ConnectionManager& manager, Event event) {
  manager.impl_->publish(std::move(event));
}
std::optional<std::pair<std::uint32_t, ConnectionId>> detail::ManagerAccess::locate(
    const ConnectionManager& manager, const Connection& connection) {
  std::lock_guard lock(manager.impl_->mutex_);
  auto slot = manager.impl_->tracked_slot(connection);
  if (!slot) return std::nullopt;
  return std::pair{*slot, manager.impl_->conn_slots_[*slot].id};
}
Refusal detail::ManagerAccess::refuse(ConnectionManager& manager, Stage stage, RefusalReason reason,
                                      std::string scope, std::string limit, std::string message) {
  Refusal refusal =
      manager.impl_->refuse(stage, reason, std::move(scope), std::move(limit), std::move(message));
  manager.impl_->hub_.drain();
  return refusal;
}
TimePoint detail::ManagerAccess::now(const ConnectionManager& manager) {
  return manager.impl_->time_->now();
}
spdlog::logger& detail::ManagerAccess::logger(const ConnectionManager& manager) {
  return *manager.impl_->logger_;
}

ConnectionManager::executor_type ConnectionManager::get_executor() const noexcept {
  return impl_->executor_;
}

std::error_code ConnectionManager::add_connection(std::shared_ptr<Connection> connection) {
  return impl_->add_connection(std::move(connection));
}
std::error_code ConnectionManager::remove_connection(const Connection& connection,
                                                     CloseReason reason) {
  return impl_->remove_connection(connection, reason);
}
std::error_code ConnectionManager::close_peer(const NodeId& peer, CloseReason reason,
                                              std::string_view detail) {
  return impl_->close_peer(peer, reason, detail);
}
std::error_code ConnectionManager::close_connection(const Connection& connection,
                                                    CloseReason reason, std::string_view detail) {
  return impl_->close_connection(connection, reason, detail);
}
std::error_code ConnectionManager::stream_opened(const Connection& connection, Direction direction,
                                                 Refusal* refusal) {
  return impl_->adjust_streams(connection, direction, true, refusal);
}
std::error_code ConnectionManager::stream_closed(const Connection& connection,
                                                 Direction direction) {
  return impl_->adjust_streams(connection, direction, false, nullptr);
}
// Refusals queue RefusedEvents; each stage delivers them before returning.
DialCheck ConnectionManager::check_dial(const NodeId& peer, bool force_new) {
  DialCheck result = impl_->check_dial(peer, force_new);
  impl_->hub_.drain();
  return result;
}
Admission ConnectionManager::check_dial_addr(const NodeId& peer, const Endpoint& remote) {
  Admission result = impl_->check_dial_addr(peer, remote);
  impl_->hub_.drain();
  return result;
}
Admission ConnectionManager::admit_inbound(const Endpoint& remote) {
  Admission result = impl_->admit_inbound(remote);
  impl_->hub_.drain();
  return result;
}
std::error_code ConnectionManager::on_secured(Reservation& reservation, Direction direction,
                                              const NodeId& peer, const Endpoint& remote,
                                              Refusal* refusal) {
  auto ec = impl_->on_secured(reservation, direction, peer, remote, refusal);
  impl_->hub_.drain();
  return ec;
}
std::error_code ConnectionManager::add_connection(std::shared_ptr<Connection> connection,
                                                  Reservation&& reservation, Refusal* refusal) {
  auto ec = impl_->add_reserved(std::move(connection), std::move(reservation), refusal);
  impl_->hub_.drain();
  return ec;
}
Admission ConnectionManager::reserve_resources(const std::optional<NodeId>& peer,
                                               std::uint64_t memory_bytes,
                                               std::size_t file_descriptors) {
  Admission result = impl_->reserve_resources(peer, memory_bytes, file_descriptors);
  impl_->hub_.drain();
  return result;
}
Subscription ConnectionManager::add_before_connect(BeforeConnectHook hook) {
  return impl_->add_hook(impl_->before_connect_, std::move(hook));
}
Subscription ConnectionManager::add_after_handshake(AfterHandshakeHook hook) {
  return impl_->add_hook(impl_->after_handshake_, std::move(hook));
}
void ConnectionManager::listen(const Endpoint& address) {
  if (!is_closed()) impl_->publish(ListenEvent{address});
}
void ConnectionManager::listen_close(const Endpoint& address) {
  if (!is_closed()) impl_->publish(ListenCloseEvent{address});
}
std::error_code ConnectionManager::record_activity(const Connection& connection,
                                                   std::uint64_t bytes_in,
                                                   std::uint64_t bytes_out) {
  return impl_->record_activity(connection, bytes_in, bytes_out);
}
std::optional<Duration> ConnectionManager::rtt(const Connection& connection) const {
  return impl_->rtt(connection);
}
KeepAliveHold ConnectionManager::keep_alive(const NodeId& peer) { return impl_->keep_alive(peer); }
Limits ConnectionManager::effective_limits() const {
  std::lock_guard lock(impl_->mutex_);
  return impl_->config_.limits;
}

std::error_code ConnectionManager::track_pending(std::shared_ptr<Connection> connection,
                                                 ConnectionState state) {
  return impl_->track_pending(std::move(connection), state);
}
std::error_code ConnectionManager::report_state(const Connection& connection,
                                                ConnectionState next) {
  return impl_->report_state(connection, next);
}
std::optional<ConnectionState> ConnectionManager::state(const Connection& connection) const {
  return impl_->state(connection);
}

std::optional<ConnectionId> ConnectionManager::connection_id(const Connection& connection) const {
  std::lock_guard lock(impl_->mutex_);
  auto slot = impl_->tracked_slot(connection);
  if (!slot) return std::nullopt;
  return impl_->conn_slots_[*slot].id;
}

std::shared_ptr<Connection> ConnectionManager::best_connection(const NodeId& peer) const {
  return impl_->best_connection(peer);
}
std::shared_ptr<Connection> ConnectionManager::get_connection(const NodeId& peer) const {
  return impl_->best_connection(peer);
}

std::vector<std::shared_ptr<Connection>> ConnectionManager::connections(const NodeId& peer) const {
  std::vector<std::shared_ptr<Connection>> out;
  std::lock_guard lock(impl_->mutex_);
  if (const auto* entry = impl_->find_peer(peer)) {
    for (std::uint32_t c : entry->conns) out.push_back(impl_->conn_slots_[c].handle);
  }
  return out;
}

std::size_t ConnectionManager::connection_count() const {
  std::lock_guard lock(impl_->mutex_);
  return impl_->connections_;
}
std::size_t ConnectionManager::connection_count(Direction direction) const {
  std::lock_guard lock(impl_->mutex_);
  return direction == Direction::inbound ? impl_->inbound_ : impl_->outbound_;
}
std::size_t ConnectionManager::peer_count() const {
  std::lock_guard lock(impl_->mutex_);
  return impl_->peer_index_.size() - impl_->temp_peers_;
}

std::error_code ConnectionManager::tag_peer(const NodeId& peer, std::string_view name, int value) {
  return impl_->tag_peer(peer, name, value);
}
std::error_code ConnectionManager::untag_peer(const NodeId& peer, std::string_view name) {
  return impl_->untag_peer(peer, name);
}
std::error_code ConnectionManager::upsert_tag(const NodeId& peer, std::string_view name,
                                              const std::function<int(int)>& fn) {
  return impl_->upsert_tag(peer, name, fn);
}
std::optional<TagInfo> ConnectionManager::tag_info(const NodeId& peer) const {
  return impl_->tag_info(peer);
}

std::error_code ConnectionManager::protect(const NodeId& peer, std::string_view tag) {
  return impl_->protect(peer, tag, Duration::zero());
}
std::error_code ConnectionManager::protect_for(const NodeId& peer, std::string_view tag,
                                               Duration duration) {
  if (duration.count() <= 0) return Errc::invalid_argument;
  return impl_->protect(peer, tag, duration);
}
DecayingTag ConnectionManager::register_decaying_tag(std::string_view name, Duration interval,
                                                     Decay decay, Bump bump, std::error_code& ec) {
  return impl_->register_decaying_tag(name, interval, std::move(decay), std::move(bump), ec);
}
bool ConnectionManager::unprotect(const NodeId& peer, std::string_view tag) {
  return impl_->unprotect(peer, tag);
}
bool ConnectionManager::is_protected(const NodeId& peer) const {
  std::lock_guard lock(impl_->mutex_);
  return impl_->protections_.is_protected(peer);
}
bool ConnectionManager::is_protected(const NodeId& peer, std::string_view tag) const {
  std::lock_guard lock(impl_->mutex_);
  return impl_->protections_.is_protected(peer, tag);
}

std::size_t ConnectionManager::trim() { return impl_->run_trim(Impl::TrimKind::explicit_trim, 0); }
std::size_t ConnectionManager::force_trim() { return impl_->run_trim(Impl::TrimKind::forced, 0); }
std::size_t ConnectionManager::trim_connections(std::size_t count) {
  return impl_->run_trim(Impl::TrimKind::exact_count, count);
}
std::error_code ConnectionManager::set_limits(std::size_t low_water, std::size_t high_water) {
  return impl_->set_limits(low_water, high_water);
}
Config ConnectionManager::config() const {
  std::lock_guard lock(impl_->mutex_);
  return impl_->config_;
}

Stats ConnectionManager::stats() const { return impl_->stats(); }
Subscription ConnectionManager::subscribe(EventHandler handler) {
  return impl_->hub_.subscribe(std::move(handler));
}

void ConnectionManager::close() { impl_->close(); }
bool ConnectionManager::is_closed() const {
  std::lock_guard lock(impl_->mutex_);
  return impl_->closed_;
}

std::optional<Explanation> ConnectionManager::explain(const NodeId& peer) const {
  std::optional<Explanation> explanation = impl_->explain(peer);
  if (explanation) explanation->summary = detail::explain_summary(*explanation);
  return explanation;
}

}  // namespace dep2p::connmgr
