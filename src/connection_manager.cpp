#include "dep2p/connmgr/connection_manager.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/container/small_vector.hpp>
#include <boost/unordered/unordered_flat_set.hpp>

#include "dep2p/connmgr/error.hpp"
#include "detail/event_hub.hpp"
#include "detail/logging.hpp"
#include "detail/tag_table.hpp"

namespace dep2p::connmgr {

namespace detail {
// The manager's access to the tracking word every Connection carries.
struct ConnectionAccess {
  static bool claim(Connection& c, const void* owner) {
    const void* expected = nullptr;
    return c.owner_.compare_exchange_strong(expected, owner, std::memory_order_acq_rel);
  }
  static void release(Connection& c) { c.owner_.store(nullptr, std::memory_order_release); }
  static const void* owner(const Connection& c) { return c.owner_.load(std::memory_order_acquire); }
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
};

}  // namespace

struct ConnectionManager::Impl : std::enable_shared_from_this<Impl> {
  // One tracked connection, at index Connection::slot_ of conn_slots_. A free slot has a
  // null handle and sits in free_conn_slots_.
  struct ConnEntry {
    std::shared_ptr<Connection> handle;
    ConnectionId id{};
    std::uint32_t peer_slot = 0;
    Direction direction = Direction::inbound;
    PathKind path = PathKind::direct;
    std::uint32_t streams = 0;
    TimePoint opened_at{};
  };

  // One peer entry: connected (conns non-empty) or temporary (tagged, no connections).
  // Slots are recycled through free_peer_slots_; `generation` changes on each release so
  // a trim plan can tell a slot that was reused since it looked.
  struct PeerSlot {
    // What a trim reads comes first and ids live apart (peer_keys_), so the plan's scan
    // and the commit's visits touch as few cache lines and pages as possible.
    bool live = false;
    bool temporary = false;
    bool is_protected = false;  // mirrors protections_ for a live slot
    std::uint32_t generation = 0;
    std::uint32_t streams = 0;
    std::uint32_t inbound = 0;
    TimePoint first_seen{};
    boost::container::small_vector<std::uint32_t, 2> conns;  // conn_slots_ indices
    detail::PeerTags tags;
    std::uint64_t tags_stamp = 0;  // tag_clock_ at the last tag change; 0 when none
  };
  // The identity of the peer in the slot of the same index.
  struct PeerKey {
    NodeId id;
    std::size_t hash;  // id.hash(), cached: the index rehashes through it
  };

  // The peer index stores only slot numbers (4 bytes each, so it stays cache-resident at
  // 100k peers) and looks ids up through the slots; NodeId keys work transparently.
  struct SlotHash {
    using is_transparent = void;
    using is_avalanching = void;  // NodeId::hash already mixes every byte
    const std::vector<PeerKey>* keys;
    std::size_t operator()(std::uint32_t slot) const noexcept { return (*keys)[slot].hash; }
    std::size_t operator()(const NodeId& id) const noexcept { return id.hash(); }
  };
  struct SlotEqual {
    using is_transparent = void;
    const std::vector<PeerKey>* keys;
    bool operator()(std::uint32_t a, std::uint32_t b) const noexcept { return a == b; }
    bool operator()(const NodeId& id, std::uint32_t slot) const noexcept {
      return (*keys)[slot].id == id;
    }
    bool operator()(std::uint32_t slot, const NodeId& id) const noexcept {
      return (*keys)[slot].id == id;
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
        config_(std::move(config)),
        peer_index_(0, SlotHash{&peer_keys_}, SlotEqual{&peer_keys_}),
        hub_(logger_) {}

  ~Impl() {
    // Let go of the handles so that they can be tracked by another manager. (Handles
    // detached but not yet closed are released by the act phase that holds them.)
    for (ConnEntry& conn : conn_slots_) {
      if (conn.handle) ConnectionAccess::release(*conn.handle);
    }
  }

  void start() {
    logger_->info(
        "connmgr: effective limits: low_water={} high_water={} grace_period={}ms "
        "silence_period={}ms max_temp_peers={}",
        config_.low_water, config_.high_water, config_.grace_period.count(),
        config_.silence_period.count(), config_.max_temp_peers);
    background_timer_ = time_->make_timer(strand_);
    arm_background_check();
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
    auto it = peer_index_.find(peer);
    return it == peer_index_.end() ? nullptr : &peers_[*it];
  }
  const PeerSlot* find_peer(const NodeId& peer) const {
    auto it = peer_index_.find(peer);
    return it == peer_index_.end() ? nullptr : &peers_[*it];
  }
  std::uint32_t slot_of(const PeerSlot& entry) const {
    return static_cast<std::uint32_t>(&entry - peers_.data());
  }

  // The conn_slots_ index of a connection this manager tracks, or nullopt.
  // A handle the manager has detached but not yet closed still names this manager; the
  // slot's handle tells it apart (the slot is free or reused).
  std::optional<std::uint32_t> tracked_slot(const Connection& c) const {
    if (ConnectionAccess::owner(c) != this) return std::nullopt;
    const std::uint32_t slot = ConnectionAccess::slot(c);
    if (slot >= conn_slots_.size() || conn_slots_[slot].handle.get() != &c) return std::nullopt;
    return slot;
  }

  std::uint32_t create_peer(const NodeId& peer, TimePoint now, bool temporary) {
    std::uint32_t slot;
    if (!free_peer_slots_.empty()) {
      slot = free_peer_slots_.back();
      free_peer_slots_.pop_back();
      peer_keys_[slot] = PeerKey{peer, peer.hash()};
    } else {
      slot = static_cast<std::uint32_t>(peers_.size());
      peers_.emplace_back();
      peer_keys_.push_back(PeerKey{peer, peer.hash()});
    }
    PeerSlot& entry = peers_[slot];
    entry.first_seen = now;
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
    entry.conns.clear();
    entry.streams = 0;
    entry.inbound = 0;
    entry.live = false;
    entry.temporary = false;
    ++entry.generation;
    entry.tags_stamp = 0;
    peer_index_.erase(slot);
    free_peer_slots_.push_back(slot);
  }

  // Removes one connection from the pool and returns its handle, for closing or release
  // outside the lock.
  std::shared_ptr<Connection> detach(std::uint32_t conn_slot, CloseReason reason,
                                     const std::string& detail) {
    ConnEntry& conn = conn_slots_[conn_slot];
    const std::uint32_t slot = conn.peer_slot;
    PeerSlot& peer = peers_[slot];
    peer.conns.erase(std::find(peer.conns.begin(), peer.conns.end(), conn_slot));
    peer.streams -= conn.streams;
    streams_ -= conn.streams;
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
      hub_.enqueue(DisconnectedEvent{peer_keys_[slot].id, conn.id, conn.direction, reason, detail});
    }
    // The handle's owner word is cleared by the caller: at once for a reported closure,
    // in the act phase (next to close(), on the same cache line) for the manager's own.
    std::shared_ptr<Connection> handle = std::move(conn.handle);
    free_conn_slots_.push_back(conn_slot);
    if (peer.conns.empty()) release_peer(slot);
    return handle;
  }

  std::error_code add_connection(std::shared_ptr<Connection> handle) {
    if (!handle) return Errc::invalid_argument;
    std::optional<NodeId> peer;
    Direction direction;
    PathKind path;
    std::uint32_t streams;
    try {
      peer.emplace(handle->remote_peer());
      direction = handle->direction();
      path = handle->path_kind();
      streams = handle->stream_count();
    } catch (const std::exception& e) {
      logger_->warn("connmgr: add_connection: the connection's properties threw: {}", e.what());
      return Errc::invalid_argument;
    }
    const TimePoint now = time_->now();
    {
      std::lock_guard lock(mutex_);
      if (closed_) return Errc::closed;
      if (!ConnectionAccess::claim(*handle, this)) {
        // Already ours (a duplicate report) or tracked by another manager.
        unknown_reports_.fetch_add(1, std::memory_order_relaxed);
        return ConnectionAccess::owner(*handle) == this ? Errc::duplicate_connection
                                                        : Errc::invalid_argument;
      }
      std::uint32_t slot;
      if (auto index = peer_index_.find(*peer); index != peer_index_.end()) {
        slot = *index;
        PeerSlot& existing = peers_[slot];
        if (existing.temporary) {
          // A temporary entry becomes real on connect, keeping its tags; its grace
          // period starts now.
          existing.temporary = false;
          existing.first_seen = now;
          --temp_peers_;
        }
      } else {
        slot = create_peer(*peer, now, false);
      }
      std::uint32_t conn_slot;
      if (!free_conn_slots_.empty()) {
        conn_slot = free_conn_slots_.back();
        free_conn_slots_.pop_back();
      } else {
        conn_slot = static_cast<std::uint32_t>(conn_slots_.size());
        conn_slots_.emplace_back();
      }
      ConnectionAccess::set_slot(*handle, conn_slot);
      const auto id = static_cast<ConnectionId>(++next_connection_id_);
      conn_slots_[conn_slot] =
          ConnEntry{std::move(handle), id, slot, direction, path, streams, now};
      PeerSlot& entry = peers_[slot];
      entry.conns.push_back(conn_slot);
      entry.streams += streams;
      streams_ += streams;
      if (direction == Direction::inbound) {
        ++entry.inbound;
        ++inbound_;
      } else {
        ++outbound_;
      }
      ++connections_;
      ++stats_.connections_added;
      if (hub_.has_subscribers()) hub_.enqueue(ConnectedEvent{*peer, id, direction});
    }
    hub_.drain();
    return {};
  }

  std::error_code remove_connection(const Connection& connection, CloseReason reason) {
    // A report for a connection this manager does not hold (typically one it closed
    // itself, reported back from close()) needs no lock: only this manager ever sets
    // the owner word to itself, and only under its lock.
    if (ConnectionAccess::owner(connection) != this) {
      unknown_reports_.fetch_add(1, std::memory_order_relaxed);
      return Errc::unknown_connection;
    }
    std::shared_ptr<Connection> released;
    {
      std::lock_guard lock(mutex_);
      auto slot = tracked_slot(connection);
      if (!slot) {  // another thread removed it meanwhile
        unknown_reports_.fetch_add(1, std::memory_order_relaxed);
        return Errc::unknown_connection;
      }
      static const std::string kReported = "closure reported by the host";
      released = detach(*slot, reason, kReported);
      ConnectionAccess::release(*released);
    }
    hub_.drain();
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

  std::error_code adjust_streams(const Connection& connection, bool opened) {
    std::lock_guard lock(mutex_);
    auto slot = tracked_slot(connection);
    if (!slot) return Errc::unknown_connection;
    ConnEntry& conn = conn_slots_[*slot];
    PeerSlot& peer = peers_[conn.peer_slot];
    if (opened) {
      ++conn.streams;
      ++peer.streams;
      ++streams_;
    } else if (conn.streams > 0) {
      --conn.streams;
      --peer.streams;
      --streams_;
    } else {
      return Errc::invalid_argument;  // more closes than opens
    }
    return {};
  }

  // Calls close() on each handle and delivers the queued events; no lock held.
  void act(std::vector<Closing>& closing, const std::string& detail) {
    for (Closing& c : closing) {
      ConnectionAccess::release(*c.handle);
      try {
        c.handle->close(c.reason, detail);
      } catch (const std::exception& e) {
        logger_->warn("connmgr: Connection::close threw: {}", e.what());
      } catch (...) {
        logger_->warn("connmgr: Connection::close threw a non-standard exception");
      }
    }
    hub_.drain();
    closing.clear();  // releases the handles, still unlocked
  }

  // --- Tags -------------------------------------------------------------------------

  // The slot for tagging `peer`, creating a temporary entry if needed.
  // REQUIRES: mutex_ held.
  // The clock is read only when an entry is created, under the lock (TimeSource::now()
  // must not call the manager; see clock.hpp).
  PeerSlot* slot_for_tagging(const NodeId& peer, std::error_code& ec) {
    if (PeerSlot* entry = find_peer(peer)) return entry;
    if (temp_peers_ >= config_.max_temp_peers) {
      ec = Errc::temp_peer_limit;
      return nullptr;
    }
    return &peers_[create_peer(peer, time_->now(), true)];
  }

  std::error_code tag_peer(const NodeId& peer, std::string_view name, int value) {
    if (name.empty()) return Errc::invalid_argument;
    std::lock_guard lock(mutex_);
    if (closed_) return Errc::closed;
    std::error_code ec;
    PeerSlot* entry = slot_for_tagging(peer, ec);
    if (entry == nullptr) return ec;
    entry->tags.set(tag_names_, tag_names_.intern(name), value);
    entry->tags_stamp = ++tag_clock_;
    return {};
  }

  std::error_code untag_peer(const NodeId& peer, std::string_view name) {
    std::lock_guard lock(mutex_);
    if (closed_) return Errc::closed;
    PeerSlot* entry = find_peer(peer);
    if (entry == nullptr) return Errc::unknown_peer;
    if (auto id = tag_names_.find(name)) {
      if (entry->tags.remove(tag_names_, *id)) entry->tags_stamp = ++tag_clock_;
    }
    // A temporary entry exists only to hold tags.
    if (entry->temporary && entry->tags.empty()) release_peer(slot_of(*entry));
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
        if (const PeerSlot* entry = find_peer(peer)) {
          seen = entry->tags_stamp;
          if (auto id = tag_names_.find(name)) old = entry->tags.get(*id).value_or(0);
        }
      }
      const int value = fn(old);  // host code: unlocked
      std::lock_guard lock(mutex_);
      if (closed_) return Errc::closed;
      const PeerSlot* now_entry = find_peer(peer);
      if ((now_entry != nullptr ? now_entry->tags_stamp : 0) != seen) {
        continue;  // this peer's tags changed meanwhile: recompute from the new value
      }
      std::error_code ec;
      PeerSlot* entry = slot_for_tagging(peer, ec);
      if (entry == nullptr) return ec;
      entry->tags.set(tag_names_, tag_names_.intern(name), value);
      entry->tags_stamp = ++tag_clock_;
      return {};
    }
  }

  std::optional<TagInfo> tag_info(const NodeId& peer) const {
    std::lock_guard lock(mutex_);
    const PeerSlot* entry = find_peer(peer);
    if (entry == nullptr) return std::nullopt;
    return TagInfo{entry->first_seen, entry->tags.sum(), entry->tags.list(tag_names_),
                   entry->conns.size(), entry->temporary};
  }

  // --- Protection -------------------------------------------------------------------

  std::error_code protect(const NodeId& peer, std::string_view tag) {
    if (tag.empty()) return Errc::invalid_argument;
    std::lock_guard lock(mutex_);
    if (closed_) return Errc::closed;
    protections_.protect(peer, tag);
    if (PeerSlot* entry = find_peer(peer)) entry->is_protected = true;
    return {};
  }

  bool unprotect(const NodeId& peer, std::string_view tag) {
    std::lock_guard lock(mutex_);
    const bool still = protections_.unprotect(peer, tag);
    if (PeerSlot* entry = find_peer(peer)) entry->is_protected = still;
    return still;
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

  void add_candidate(Plan& plan, std::uint32_t slot) const {
    const PeerSlot& entry = peers_[slot];
    PeerSnapshot peer;
    peer.value = entry.tags.sum();
    peer.first_seen = entry.first_seen;
    peer.streams = entry.streams;
    peer.has_inbound = entry.inbound > 0;
    peer.is_protected = entry.is_protected;
    peer.connection_count = static_cast<std::uint32_t>(entry.conns.size());
    if (trim_inputs_.connections) {
      peer.first_connection = static_cast<std::uint32_t>(plan.snapshot.connections.size());
      for (std::uint32_t c : entry.conns) {
        const ConnEntry& conn = conn_slots_[c];
        plan.snapshot.connections.push_back(
            ConnectionSnapshot{conn.id, conn.direction, conn.path, conn.streams, conn.opened_at});
      }
    }
    if (trim_inputs_.peer_ids) plan.snapshot.peer_ids.push_back(peer_keys_[slot].id);
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

  // Closes the victims (whole peers; the partial one in part, newest connections first),
  // skipping peers that went, were replaced or became protected since the plan.
  // Victims are visited in plan order, which is slot order: the walk goes forward through
  // the pool's memory instead of jumping around it in rank order.
  std::size_t commit(const Plan& plan, const Victims& victims, bool allow_protected,
                     CloseReason reason, const std::string& detail, std::vector<Closing>& closing,
                     std::size_t& peers_closed) {
    if (victims.peers.empty()) return 0;
    const std::uint32_t partial_peer =
        victims.last_partial != 0 ? victims.peers.back() : UINT32_MAX;
    std::vector<bool> chosen(plan.snapshot.peers.size(), false);
    for (std::uint32_t index : victims.peers) chosen[index] = true;
    std::vector<std::uint32_t> in_slot_order;
    in_slot_order.reserve(victims.peers.size());
    for (std::uint32_t index = 0; index < chosen.size(); ++index) {
      if (chosen[index]) in_slot_order.push_back(index);
    }
    closing.reserve(closing.size() + victims.peers.size());
    std::size_t closed = 0;
    const std::size_t n = in_slot_order.size();
    for (std::size_t k = 0; k < n; ++k) {
      // The victims are scattered over the pool: fetch the peer entries a few victims
      // ahead, then their first connection entries, so the loads overlap.
      if (k + 16 < n) __builtin_prefetch(&peers_[plan.slots[in_slot_order[k + 16]]]);
      if (k + 8 < n) {
        const PeerSlot& ahead = peers_[plan.slots[in_slot_order[k + 8]]];
        if (!ahead.conns.empty()) __builtin_prefetch(&conn_slots_[ahead.conns.front()]);
      }
      const std::uint32_t index = in_slot_order[k];
      PeerSlot& entry = peers_[plan.slots[index]];
      if (!entry.live || entry.temporary || entry.generation != plan.generations[index]) continue;
      if (entry.is_protected && !allow_protected) continue;
      std::size_t count = entry.conns.size();
      if (index == partial_peer) count = std::min(count, victims.last_partial);
      for (std::size_t i = 0; i < count; ++i) {
        const bool last = entry.conns.size() == 1;
        closing.push_back({detach(entry.conns.back(), reason, detail), reason});
        ++closed;
        if (last) ++peers_closed;  // detach() released the slot with its last connection
      }
    }
    return closed;
  }

  // Deletes temporary entries whose grace has passed.
  void prune_temporary(TimePoint now, bool ignore_grace) {
    if (temp_peers_ == 0) return;
    for (std::uint32_t slot = 0; slot < peers_.size(); ++slot) {
      const PeerSlot& entry = peers_[slot];
      if (entry.live && entry.temporary &&
          (ignore_grace || now - entry.first_seen >= config_.grace_period)) {
        release_peer(slot);
        ++stats_.temporary_peers_pruned;
      }
    }
  }

  bool out_of_grace(const PeerSlot& entry, TimePoint now) const {
    return config_.grace_period.count() == 0 || now - entry.first_seen >= config_.grace_period;
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

    // Plan: snapshot the candidates under the lock.
    Plan unprotected;
    Plan protected_plan;
    std::size_t candidate_connections = 0;
    if (!exact) prune_temporary(now, forced);
    unprotected.snapshot.now = now;
    protected_plan.snapshot.now = now;
    reserve(unprotected, peer_index_.size());
    for (std::uint32_t slot = 0; slot < peers_.size(); ++slot) {
      const PeerSlot& entry = peers_[slot];
      if (!entry.live || entry.temporary) continue;
      if (forced) {
        add_candidate(entry.is_protected ? protected_plan : unprotected, slot);
        continue;
      }
      if (entry.is_protected || !out_of_grace(entry, now)) continue;
      add_candidate(unprotected, slot);
      candidate_connections += entry.conns.size();
    }
    if (exact) {
      unprotected.target = exact_count;
    } else if (forced) {
      unprotected.target = connections_ - config_.low_water;
      protected_plan.target = unprotected.target;
    } else {
      // Protected and in-grace connections do not count toward the target.
      unprotected.target = candidate_connections >= config_.low_water
                               ? candidate_connections - config_.low_water
                               : 0;
    }
    const CloseReason reason = forced || exact ? CloseReason::forced_trim : CloseReason::trimmed;
    const std::string detail = describe(kind, before, unprotected.target);
    lock.unlock();

    // Rank outside the lock: the trimmer is pluggable host code.
    std::vector<std::uint32_t> order;
    std::vector<std::uint32_t> protected_order;
    bool ok = rank(unprotected, order);
    if (ok && forced) ok = rank(protected_plan, protected_order);
    Victims victims;
    if (ok) victims = select(unprotected, order, unprotected.target, exact);

    // Commit: apply the decisions to the pool.
    std::vector<Closing> closing;
    std::size_t closed = 0;
    std::size_t peers_closed = 0;
    lock.lock();
    if (ok && !closed_) {
      closed = commit(unprotected, victims, false, reason, detail, closing, peers_closed);
      // Protected peers go only for what the unprotected ones could not cover even in
      // the plan: unprotected victims that changed meanwhile, or connections added while
      // the trimmer ran, are never a reason to close a protected peer.
      std::size_t shortfall = 0;
      if (forced) {
        std::size_t unprotected_held = 0;
        for (const PeerSnapshot& p : unprotected.snapshot.peers) {
          unprotected_held += p.connection_count;
        }
        if (unprotected.target > unprotected_held) {
          shortfall = unprotected.target - unprotected_held;
        }
      }
      if (shortfall > 0 && connections_ > config_.low_water) {
        closed += commit(protected_plan,
                         select(protected_plan, protected_order,
                                std::min(shortfall, connections_ - config_.low_water), false),
                         true, reason, detail, closing, peers_closed);
      }
      ++stats_.trims;
      if (closed > 0 && hub_.has_subscribers()) {
        hub_.enqueue(TrimmedEvent{event_kind(kind), peers_closed, closed, connections_});
      }
    }
    lock.unlock();

    // Act: close the victims, deliver events — all unlocked.
    act(closing, detail);

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
    s.duplicate_reports = unknown_reports_.load(std::memory_order_relaxed);
    s.connections = connections_;
    s.inbound = inbound_;
    s.outbound = outbound_;
    s.peers = peer_index_.size() - temp_peers_;
    s.temporary_peers = temp_peers_;
    s.protected_peers = protections_.size();
    s.streams = streams_;
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
    if (background_timer_) background_timer_->cancel();
  }

  // Immutable after construction.
  executor_type executor_;
  boost::asio::strand<executor_type> strand_;
  std::shared_ptr<TimeSource> time_;
  std::shared_ptr<spdlog::logger> logger_;
  std::shared_ptr<Trimmer> trimmer_;
  TrimInputs trim_inputs_;

  mutable std::mutex mutex_;  // guards everything below, unless noted
  Config config_;
  bool closed_ = false;
  // Peer entries by slot; peer_index_ holds the slot of every live peer; free_peer_slots_
  // lists slots to reuse. A slot is live iff it is in peer_index_.
  std::vector<PeerSlot> peers_;
  std::vector<PeerKey> peer_keys_;  // parallel to peers_
  boost::unordered_flat_set<std::uint32_t, SlotHash, SlotEqual> peer_index_;
  std::vector<std::uint32_t> free_peer_slots_;
  // Every tracked connection at its Connection::slot_; free_conn_slots_ lists free ones.
  std::vector<ConnEntry> conn_slots_;
  std::vector<std::uint32_t> free_conn_slots_;
  detail::TagNames tag_names_;
  detail::ProtectTable protections_;
  // Source of PeerSlot::tags_stamp values: every tag change of a peer stamps it with a
  // fresh number, so upsert_tag sees whether that peer's tags changed while its function ran.
  std::uint64_t tag_clock_ = 0;
  std::size_t connections_ = 0;
  std::size_t inbound_ = 0;
  std::size_t outbound_ = 0;
  std::size_t streams_ = 0;
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

  detail::EventHub hub_;                     // its own lock, taken after mutex_ when both are held
  std::unique_ptr<Timer> background_timer_;  // armed and fired on strand_
};

ConnectionManager::ConnectionManager(executor_type executor, Config config, Dependencies deps) {
  if (auto error = config.validate()) {
    throw std::invalid_argument("connmgr Config." + error->field + ": " + error->message);
  }
  impl_ = std::make_shared<Impl>(std::move(executor), std::move(config), std::move(deps));
  impl_->start();
}

ConnectionManager::~ConnectionManager() { impl_->close(); }

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
std::error_code ConnectionManager::stream_opened(const Connection& connection) {
  return impl_->adjust_streams(connection, true);
}
std::error_code ConnectionManager::stream_closed(const Connection& connection) {
  return impl_->adjust_streams(connection, false);
}

std::optional<ConnectionId> ConnectionManager::connection_id(const Connection& connection) const {
  std::lock_guard lock(impl_->mutex_);
  auto slot = impl_->tracked_slot(connection);
  if (!slot) return std::nullopt;
  return impl_->conn_slots_[*slot].id;
}

std::shared_ptr<Connection> ConnectionManager::get_connection(const NodeId& peer) const {
  std::lock_guard lock(impl_->mutex_);
  const auto* entry = impl_->find_peer(peer);
  if (entry == nullptr || entry->conns.empty()) return nullptr;
  return impl_->conn_slots_[entry->conns.front()].handle;
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
  return impl_->protect(peer, tag);
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

}  // namespace dep2p::connmgr
