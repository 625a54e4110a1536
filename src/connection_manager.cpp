#include "dep2p/connmgr/connection_manager.hpp"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/container/small_vector.hpp>
#include <boost/unordered/unordered_flat_map.hpp>
#include <spdlog/spdlog.h>

#include "dep2p/connmgr/error.hpp"
#include "detail/event_hub.hpp"
#include "detail/logging.hpp"
#include "detail/tag_table.hpp"

namespace dep2p::connmgr {
namespace {

struct PointerHash {
  std::size_t operator()(const Connection* c) const noexcept {
    return std::hash<const Connection*>{}(c);
  }
};

// A connection the manager has decided to close, kept until the act phase so that
// Connection::close() and the handle's destructor run outside the lock.
struct Closing {
  std::shared_ptr<Connection> handle;
  CloseReason reason;
};

}  // namespace

struct ConnectionManager::Impl : std::enable_shared_from_this<Impl> {
  // One tracked connection. `peer_slot` indexes peers_.
  struct ConnEntry {
    std::shared_ptr<Connection> handle;
    ConnectionId id;
    std::uint32_t peer_slot;
    Direction direction;
    PathKind path;
    std::uint32_t streams;
    TimePoint opened_at;
  };

  // One peer entry: connected (conns non-empty) or temporary (tagged, no connections).
  // Slots are recycled through free_slots_; `live` is false for a free slot.
  struct PeerSlot {
    explicit PeerSlot(NodeId peer) : id(std::move(peer)) {}
    NodeId id;
    TimePoint first_seen{};
    boost::container::small_vector<const Connection*, 2> conns;
    detail::PeerTags tags;
    std::uint32_t streams = 0;
    std::uint32_t inbound = 0;
    bool live = false;
    bool temporary = false;
    bool is_protected = false;  // mirrors protections_ for a live slot
  };

  enum class TrimKind { background, explicit_trim, forced, exact_count, limits_changed };

  Impl(executor_type executor, Config config, Dependencies deps)
      : executor_(std::move(executor)),
        strand_(boost::asio::make_strand(executor_)),
        time_(deps.time_source ? std::move(deps.time_source)
                               : std::make_shared<SteadyTimeSource>()),
        logger_(deps.logger ? std::move(deps.logger) : detail::make_default_logger()),
        trimmer_(deps.trimmer ? std::move(deps.trimmer) : make_score_trimmer()),
        config_(std::move(config)),
        hub_(logger_) {}

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

  // Finds the live slot of `peer`, or nullptr.
  PeerSlot* find_peer(const NodeId& peer) {
    auto it = peer_index_.find(peer);
    return it == peer_index_.end() ? nullptr : &peers_[it->second];
  }
  const PeerSlot* find_peer(const NodeId& peer) const {
    auto it = peer_index_.find(peer);
    return it == peer_index_.end() ? nullptr : &peers_[it->second];
  }

  std::uint32_t create_peer(const NodeId& peer, TimePoint now, bool temporary) {
    std::uint32_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
      peers_[slot].id = peer;
    } else {
      slot = static_cast<std::uint32_t>(peers_.size());
      peers_.emplace_back(peer);
    }
    PeerSlot& entry = peers_[slot];
    entry.first_seen = now;
    entry.live = true;
    entry.temporary = temporary;
    entry.is_protected = protections_.size() != 0 && protections_.is_protected(peer);
    peer_index_.emplace(peer, slot);
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
    peer_index_.erase(entry.id);
    free_slots_.push_back(slot);
    ++tag_version_;
  }

  // Removes one connection from the pool; returns its handle for closing or release
  // outside the lock. REQUIRES: mutex_ held, `it` valid.
  template <typename Iterator>
  std::shared_ptr<Connection> detach(Iterator it, CloseReason reason, const std::string& detail) {
    ConnEntry& conn = it->second;
    PeerSlot& peer = peers_[conn.peer_slot];
    peer.conns.erase(std::find(peer.conns.begin(), peer.conns.end(), it->first));
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
      hub_.enqueue(DisconnectedEvent{peer.id, conn.id, conn.direction, reason, detail});
    }
    std::shared_ptr<Connection> handle = std::move(conn.handle);
    const std::uint32_t slot = conn.peer_slot;
    conns_.erase(it);
    if (peers_[slot].conns.empty()) release_peer(slot);
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
    const Connection* key = handle.get();
    {
      std::lock_guard lock(mutex_);
      if (closed_) return Errc::closed;
      auto [it, inserted] = conns_.try_emplace(key);
      if (!inserted) {
        ++stats_.duplicate_reports;
        return Errc::duplicate_connection;
      }
      std::uint32_t slot;
      if (auto index = peer_index_.find(*peer); index != peer_index_.end()) {
        slot = index->second;
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
      const auto id = static_cast<ConnectionId>(++next_connection_id_);
      it->second = ConnEntry{std::move(handle), id, slot, direction, path, streams, now};
      PeerSlot& entry = peers_[slot];
      entry.conns.push_back(key);
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
    std::shared_ptr<Connection> released;
    {
      std::lock_guard lock(mutex_);
      auto it = conns_.find(&connection);
      if (it == conns_.end()) {
        ++stats_.duplicate_reports;
        return Errc::unknown_connection;
      }
      static const std::string kReported = "closure reported by the host";
      released = detach(it, reason, kReported);
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
      for (const Connection* c : victims) {
        closing.push_back({detach(conns_.find(c), reason, text), reason});
      }
    }
    act(closing, text);
    return {};
  }

  std::error_code adjust_streams(const Connection& connection, bool opened) {
    std::lock_guard lock(mutex_);
    auto it = conns_.find(&connection);
    if (it == conns_.end()) return Errc::unknown_connection;
    ConnEntry& conn = it->second;
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
  PeerSlot* slot_for_tagging(const NodeId& peer, TimePoint now, std::error_code& ec) {
    if (PeerSlot* entry = find_peer(peer)) return entry;
    if (temp_peers_ >= config_.max_temp_peers) {
      ec = Errc::temp_peer_limit;
      return nullptr;
    }
    return &peers_[create_peer(peer, now, true)];
  }

  std::error_code tag_peer(const NodeId& peer, std::string_view name, int value) {
    if (name.empty()) return Errc::invalid_argument;
    const TimePoint now = time_->now();
    std::lock_guard lock(mutex_);
    if (closed_) return Errc::closed;
    std::error_code ec;
    PeerSlot* entry = slot_for_tagging(peer, now, ec);
    if (entry == nullptr) return ec;
    entry->tags.set(tag_names_, tag_names_.intern(name), value);
    ++tag_version_;
    return {};
  }

  std::error_code untag_peer(const NodeId& peer, std::string_view name) {
    std::lock_guard lock(mutex_);
    if (closed_) return Errc::closed;
    PeerSlot* entry = find_peer(peer);
    if (entry == nullptr) return Errc::unknown_peer;
    if (auto id = tag_names_.find(name)) {
      if (entry->tags.remove(tag_names_, *id)) ++tag_version_;
    }
    // A temporary entry exists only to hold tags.
    if (entry->temporary && entry->tags.empty()) release_peer(peer_index_.find(peer)->second);
    return {};
  }

  std::error_code upsert_tag(const NodeId& peer, std::string_view name,
                             const std::function<int(int)>& fn) {
    if (name.empty() || !fn) return Errc::invalid_argument;
    for (;;) {
      int old = 0;
      std::uint64_t seen;
      {
        std::lock_guard lock(mutex_);
        if (closed_) return Errc::closed;
        seen = tag_version_;
        if (const PeerSlot* entry = find_peer(peer)) {
          if (auto id = tag_names_.find(name)) old = entry->tags.get(*id).value_or(0);
        }
      }
      const int value = fn(old);  // host code: unlocked
      const TimePoint now = time_->now();
      std::lock_guard lock(mutex_);
      if (closed_) return Errc::closed;
      if (tag_version_ != seen) continue;  // changed meanwhile: recompute from the new value
      std::error_code ec;
      PeerSlot* entry = slot_for_tagging(peer, now, ec);
      if (entry == nullptr) return ec;
      entry->tags.set(tag_names_, tag_names_.intern(name), value);
      ++tag_version_;
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

  struct Plan {
    TrimSnapshot snapshot;
    std::vector<std::uint32_t> slots;  // slots[i] is the slot of snapshot.peers[i]
    std::size_t target = 0;
  };

  // Adds the slot to the plan. REQUIRES: mutex_ held.
  void add_candidate(Plan& plan, std::uint32_t slot) const {
    const PeerSlot& entry = peers_[slot];
    PeerSnapshot peer{entry.id};
    peer.value = entry.tags.sum();
    peer.first_seen = entry.first_seen;
    peer.streams = entry.streams;
    peer.has_inbound = entry.inbound > 0;
    peer.is_protected = entry.is_protected;
    peer.first_connection = static_cast<std::uint32_t>(plan.snapshot.connections.size());
    peer.connection_count = static_cast<std::uint32_t>(entry.conns.size());
    for (const Connection* c : entry.conns) {
      const ConnEntry& conn = conns_.find(c)->second;
      plan.snapshot.connections.push_back(
          ConnectionSnapshot{conn.id, conn.direction, conn.path, conn.streams, conn.opened_at});
    }
    plan.snapshot.peers.push_back(std::move(peer));
    plan.slots.push_back(slot);
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

  // Closes peers of `plan` in `order` until `target` connections are gone (exactly that
  // many when `partial`), skipping peers that changed meanwhile. REQUIRES: mutex_ held.
  std::size_t commit(const Plan& plan, const std::vector<std::uint32_t>& order,
                     std::size_t target, bool allow_protected, bool partial, CloseReason reason,
                     const std::string& detail, std::vector<Closing>& closing,
                     std::size_t& peers_closed) {
    std::size_t closed = 0;
    std::vector<bool> seen(plan.snapshot.peers.size(), false);
    for (std::uint32_t index : order) {
      if (closed >= target) break;
      if (index >= plan.snapshot.peers.size() || seen[index]) continue;
      seen[index] = true;
      const std::uint32_t slot = plan.slots[index];
      PeerSlot& entry = peers_[slot];
      if (!entry.live || entry.temporary || !(entry.id == plan.snapshot.peers[index].peer)) {
        continue;  // gone or replaced since the snapshot
      }
      if (entry.is_protected && !allow_protected) continue;  // protected since the snapshot
      // A whole peer at a time, past the target if need be; only trim_connections()
      // stops inside a peer, closing its newest connections first.
      while (!entry.conns.empty() && (!partial || closed < target)) {
        const bool last = entry.conns.size() == 1;
        closing.push_back({detach(conns_.find(entry.conns.back()), reason, detail), reason});
        ++closed;
        if (last) ++peers_closed;  // detach() released the slot with its last connection
      }
    }
    return closed;
  }

  // Deletes temporary entries whose grace has passed. REQUIRES: mutex_ held.
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

    // Plan: snapshot the candidates under the lock.
    Plan unprotected;
    Plan protected_plan;
    std::size_t candidate_connections = 0;
    if (kind != TrimKind::exact_count) prune_temporary(now, kind == TrimKind::forced);
    unprotected.snapshot.now = now;
    protected_plan.snapshot.now = now;
    for (std::uint32_t slot = 0; slot < peers_.size(); ++slot) {
      const PeerSlot& entry = peers_[slot];
      if (!entry.live || entry.temporary) continue;
      if (kind == TrimKind::forced) {
        add_candidate(entry.is_protected ? protected_plan : unprotected, slot);
        continue;
      }
      if (entry.is_protected || !out_of_grace(entry, now)) continue;
      add_candidate(unprotected, slot);
      candidate_connections += entry.conns.size();
    }
    switch (kind) {
      case TrimKind::exact_count:
        unprotected.target = exact_count;
        break;
      case TrimKind::forced:
        unprotected.target = connections_ - config_.low_water;
        protected_plan.target = unprotected.target;
        break;
      default:
        // Protected and in-grace connections do not count toward the target.
        unprotected.target = candidate_connections >= config_.low_water
                                 ? candidate_connections - config_.low_water
                                 : 0;
        break;
    }
    const CloseReason reason = (kind == TrimKind::forced || kind == TrimKind::exact_count)
                                   ? CloseReason::forced_trim
                                   : CloseReason::trimmed;
    const std::string detail = describe(kind, before, unprotected.target);
    lock.unlock();

    // Rank outside the lock: the trimmer is pluggable host code.
    std::vector<std::uint32_t> order;
    std::vector<std::uint32_t> protected_order;
    bool ok = rank(unprotected, order);
    if (ok && kind == TrimKind::forced) ok = rank(protected_plan, protected_order);

    // Commit: apply the decisions to the pool.
    std::vector<Closing> closing;
    std::size_t closed = 0;
    std::size_t peers_closed = 0;
    lock.lock();
    if (ok && !closed_) {
      closed = commit(unprotected, order, unprotected.target, kind == TrimKind::forced,
                      kind == TrimKind::exact_count, reason, detail, closing, peers_closed);
      if (kind == TrimKind::forced && connections_ > config_.low_water) {
        closed += commit(protected_plan, protected_order, connections_ - config_.low_water,
                         true, false, reason, detail, closing, peers_closed);
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
    const std::string pool = std::to_string(before) + " connections, low water " +
                             std::to_string(config_.low_water);
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

  mutable std::mutex mutex_;  // guards everything below, unless noted
  Config config_;
  bool closed_ = false;
  // Peer entries by slot; peer_index_ maps each live peer to its slot; free_slots_ lists
  // slots to reuse. A slot is live iff its peer is in peer_index_.
  std::vector<PeerSlot> peers_;
  boost::unordered_flat_map<NodeId, std::uint32_t, NodeIdHash> peer_index_;
  std::vector<std::uint32_t> free_slots_;
  // Every tracked connection, keyed by the host's handle address (stable while we hold
  // the handle).
  boost::unordered_flat_map<const Connection*, ConnEntry, PointerHash> conns_;
  detail::TagNames tag_names_;
  detail::ProtectTable protections_;
  // Incremented on every tag change and peer release; upsert_tag detects races with it.
  std::uint64_t tag_version_ = 0;
  std::size_t connections_ = 0;
  std::size_t inbound_ = 0;
  std::size_t outbound_ = 0;
  std::size_t streams_ = 0;
  std::size_t temp_peers_ = 0;
  std::uint64_t next_connection_id_ = 0;
  Stats stats_;  // the running totals; counts are filled in by stats()
  // One trim at a time: trim_running_ is set by the trimming thread (trim_thread_);
  // each finished trim bumps trim_generation_ and wakes the callers that joined it.
  bool trim_running_ = false;
  std::thread::id trim_thread_;
  std::uint64_t trim_generation_ = 0;
  std::size_t last_trim_closed_ = 0;
  std::condition_variable trim_done_;

  detail::EventHub hub_;  // its own lock, taken after mutex_ when both are held
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
  auto it = impl_->conns_.find(&connection);
  if (it == impl_->conns_.end()) return std::nullopt;
  return it->second.id;
}

std::shared_ptr<Connection> ConnectionManager::get_connection(const NodeId& peer) const {
  std::lock_guard lock(impl_->mutex_);
  const auto* entry = impl_->find_peer(peer);
  if (entry == nullptr || entry->conns.empty()) return nullptr;
  return impl_->conns_.find(entry->conns.front())->second.handle;
}

std::vector<std::shared_ptr<Connection>> ConnectionManager::connections(const NodeId& peer) const {
  std::vector<std::shared_ptr<Connection>> out;
  std::lock_guard lock(impl_->mutex_);
  if (const auto* entry = impl_->find_peer(peer)) {
    for (const Connection* c : entry->conns) out.push_back(impl_->conns_.find(c)->second.handle);
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

std::error_code ConnectionManager::tag_peer(const NodeId& peer, std::string_view name,
                                            int value) {
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
