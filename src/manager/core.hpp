// ManagerCore: what ConnectionManager is made of — the one lock, the units it guards (the
// pool, tags, protections, schedules, the admission ledger, caps and rates) held by value,
// and the orchestration of every public operation: lock, ask the units, collect Effects,
// unlock, act. It is the only place that calls host code, and it does so only outside its
// lock (docs/design.md, "Threading"; docs/architecture.md has the map and the lock order).
//
// The units hold no lock and decide nothing about threads; what must run under the core's
// lock takes a Locked<> token, which only the core can make. Its operations are spread
// over files by concern (core_pool.cpp, core_admission.cpp, core_tags.cpp, core_trim.cpp,
// core_timers.cpp, core_paths.cpp, core_observe.cpp), each holding the orchestration for
// its part; the logic is in the units.
//
// The lock (core_lock.hpp) is held whole by every operation that changes what peers exist,
// their connections, or state shared by all peers; the per-peer operations on a peer that
// exists (tags of a name already known, streams, reading its connections and tags) enter
// the thread's lane, lock that peer's entry (PeerLock) and touch only that peer's entries
// and their lane's Lane.
//
// Lock order: lock_ (whole, or a lane and then one peer), then (inside the extension's calls) the
// extension's own leaf lock, then the event hub's. The hooks' lock and the refusal
// counters are taken alone.
//
// Thread safety: every public method is thread-safe (see connection_manager.hpp).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/strand.hpp>
#include <boost/unordered/unordered_flat_map.hpp>

#include "admission/hooks.hpp"
#include "admission/ledger.hpp"
#include "admission/limit_checks.hpp"
#include "admission/rate_limiter.hpp"
#include "admission/subnet_counter.hpp"
#include "base/token_owners.hpp"
#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dial/dial_book.hpp"
#include "dial/redial_queue.hpp"
#include "manager/core_lock.hpp"
#include "manager/core_records.hpp"
#include "manager/effects.hpp"
#include "manager/event_hub.hpp"
#include "manager/extension.hpp"
#include "manager/locked.hpp"
#include "pool/pool.hpp"
#include "tags/decay_engine.hpp"
#include "tags/protect_table.hpp"
#include "tags/tag_table.hpp"
#include "timers/connection_schedule.hpp"
#include "timers/expiry_schedule.hpp"
#include "trim/diversity.hpp"
#include "trim/snapshot.hpp"
#include "trim/victims.hpp"

namespace dep2p::connmgr::detail {

class ManagerCore final : public std::enable_shared_from_this<ManagerCore>,
                          public CoreDoor,
                          public DecayingTagOwner,
                          public ReservationOwner,
                          public HoldOwner {
 public:
  using executor_type = ConnectionManager::executor_type;
  enum class TrimKind { background, explicit_trim, forced, exact_count, limits_changed };

  // REQUIRES: config.validate() passed.
  ManagerCore(executor_type executor, Config config, Dependencies deps);
  ~ManagerCore();
  // Arms the timers and attaches the extension; called once, right after construction.
  void start();
  void close();
  bool is_closed() const;
  executor_type executor() const { return env_.executor; }

  // --- The pool (core_pool.cpp) ----------------------------------------------------
  std::error_code add_connection(std::shared_ptr<Connection> handle);
  std::error_code remove_connection(const Connection& connection, CloseReason reason);
  std::error_code close_peer(const NodeId& peer, CloseReason reason, std::string_view detail);
  std::error_code close_connection(const Connection& connection, CloseReason reason,
                                   std::string_view detail);
  std::error_code adjust_streams(const Connection& connection, Direction direction, bool opened,
                                 Refusal* refusal);
  std::optional<ConnectionId> connection_id(const Connection& connection) const;
  std::shared_ptr<Connection> best_connection(const NodeId& peer) const;
  std::vector<std::shared_ptr<Connection>> connections(const NodeId& peer) const;
  std::size_t connection_count(std::optional<Direction> direction) const;
  std::size_t peer_count() const;
  std::size_t temporary_peer_count() const;

  // --- Admission (core_admission.cpp) ----------------------------------------------
  Admission check_dial(const NodeId& peer, bool force_new);
  Admission check_dial_addr(const NodeId& peer, const Endpoint& remote);
  Admission admit_inbound(const Endpoint& remote);
  // --- Dialing (core_dial.cpp) -------------------------------------------------------
  // A success (`why` empty) or a failure of the peer, or of its `address`.
  void dial_outcome(const NodeId& peer, const Endpoint* address, std::optional<DialFailure> why);
  void clear_backoff(const NodeId& peer);
  bool wait_dial(const NodeId& peer, DialBook::Waiter handler);
  void network_changed(bool up);
  std::optional<TimePoint> backoff_until(const NodeId& peer) const;
  // The refusal of a dial to `peer` (to its `address`) that DialBook did not allow: in
  // backoff, or with a dial in flight. Counted and published like every refusal.
  void refuse_dial(const NodeId& peer, const Endpoint* address, const DialBook::Verdict& verdict,
                   TimePoint now, std::error_code& error, Refusal& refusal);
  // Posts the handlers of the dials that ended (DialBook::take_ready) to the strand: they
  // run later, with no lock held. Cheap when there are none.
  void post_dial_waiters(const Locked<>& locked) {
    if (dial_.has_ready()) post_ready_waiters(locked);
  }
  void post_ready_waiters(const Locked<>& locked);
  // The Dialer's outcome of the manager's dial `serial` to `peer` (core_redial.cpp).
  void redial_done(const NodeId& peer, std::uint64_t serial, std::optional<DialFailure> failure);
  // With `claim`, the claim is checked in the same critical section, once the reservation
  // knows its peer (its verdict is the check's to keep).
  std::error_code on_secured(Reservation& reservation, Direction direction, const NodeId& peer,
                             const Endpoint& remote, Refusal* refusal, ClaimCheck* claim = nullptr);
  std::error_code add_reserved(std::shared_ptr<Connection> handle, Reservation reservation,
                               Refusal* refusal);
  Admission reserve_resources(const std::optional<NodeId>& peer, std::uint64_t memory,
                              std::size_t fds);
  Limits effective_limits() const;
  Subscription add_before_connect(ConnectionManager::BeforeConnectHook hook);
  Subscription add_after_handshake(ConnectionManager::AfterHandshakeHook hook);

  // --- Tags and protection (core_tags.cpp) -----------------------------------------
  std::error_code tag_peer(const NodeId& peer, std::string_view name, int value);
  std::error_code untag_peer(const NodeId& peer, std::string_view name);
  std::error_code upsert_tag(const NodeId& peer, std::string_view name,
                             const std::function<int(int)>& fn);
  std::optional<TagInfo> tag_info(const NodeId& peer) const;
  DecayingTag register_decaying_tag(std::string_view name, Duration interval, Decay decay,
                                    Bump bump, std::error_code& ec);
  // `duration` of zero or less means until unprotected.
  std::error_code protect(const NodeId& peer, std::string_view tag, Duration duration);
  bool unprotect(const NodeId& peer, std::string_view tag);
  bool is_protected(const NodeId& peer, std::optional<std::string_view> tag) const;
  std::vector<Protection> protections(const NodeId& peer) const;

  // --- Trimming (core_trim.cpp) ----------------------------------------------------
  std::size_t run_trim(TrimKind kind, std::size_t exact_count);
  std::error_code set_limits(std::size_t low_water, std::size_t high_water);
  Config config() const;
  // trim()'s dry run (core_plan.cpp): ranks as a trim would, closes nothing.
  TrimPlan plan_trim();

  // --- Lifecycle, activity and keepalive (core_timers.cpp) --------------------------
  std::error_code track_pending(std::shared_ptr<Connection> handle, ConnectionState state);
  std::error_code report_state(const Connection& connection, ConnectionState next);
  std::optional<ConnectionState> state(const Connection& connection) const;
  std::error_code record_activity(const Connection& connection, std::uint64_t bytes_in,
                                  std::uint64_t bytes_out);
  std::optional<Duration> rtt(const Connection& connection) const;
  KeepAliveHold keep_alive(const NodeId& peer);

  // --- Observation (core_observe.cpp) ----------------------------------------------
  Stats stats() const;
  std::optional<Explanation> explain(const NodeId& peer) const;
  // Explanation::rank_in_force for a candidate `peer`; runs a host trimmer with no lock
  // held.
  std::optional<std::size_t> rank_in_force(const NodeId& peer,
                                           std::optional<std::size_t> default_rank);
  Subscription subscribe(EventHandler handler) { return hub_.subscribe(std::move(handler)); }
  // Delivers the events queued so far (no lock may be held).
  void deliver_events() { hub_.drain(); }

  // --- For tests (CoreProbe) ---------------------------------------------------------
  enum class TrimPoint { ranked, batch_committed };
  // `probe` runs on the trimming thread after each ranking (the whole lock held, lanes
  // open: only per-peer calls on peers with an entry may be made from it) and after each
  // committed batch but the last (no lock held). Set before any trim runs.
  void set_trim_probe(std::function<void(TrimPoint)> probe, std::size_t batch) {
    trim_probe_ = std::move(probe);
    trim_batch_ = batch;
  }

  // --- CoreDoor: the extension's way in --------------------------------------------
  std::optional<ConnectionPlace> locate(const Connection& connection) const override;
  void publish(Event event) override;
  Refusal refuse(Stage stage, RefusalReason reason, std::string scope, std::string limit,
                 std::string message) override;
  TimePoint now() const override { return env_.time->now(); }
  std::optional<bool> claim(const Reservation& reservation, ClaimCheck& check) override;
  std::error_code secure(Reservation& reservation, Direction direction, const NodeId& peer,
                         const Endpoint& remote, Refusal* refusal, ClaimCheck& check) override;
  std::vector<std::shared_ptr<Connection>> handles(
      std::span<const ConnectionPlace> places) const override;
  std::optional<std::vector<std::uint32_t>> trimmer_order(std::span<const NodeId> peers) override;
  void watch_streams() override;

 private:
  // What a lane holder keeps of its own; whole holders read it.
  struct Lane {
    // Streams opened minus closed by this lane's holders, in each direction, not in the
    // pool's totals (stream_totals() adds them up; modulo 2^64).
    std::uint64_t streams[2] = {0, 0};
    std::uint32_t last_name = UINT32_MAX;  // the tag name id this lane used last
  };
  using Lock = CoreLock<Lane>;

  // The core's plain records (core_records.hpp).
  using Environment = CoreEnvironment;
  using Policies = CorePolicies;
  using Timers = CoreTimers;
  using PendingEntry = detail::PendingEntry;

  // --- Pool mutations under the lock (core_pool.cpp) -------------------------------

  // The slot of a connection this manager tracks, or nullopt. A handle detached but not
  // yet closed still names this manager; its slot's handle tells it apart.
  std::optional<std::uint32_t> tracked_slot(const Locked<>&, const Connection& c) const;
  // Whether the handle is this manager's: tracked, detached for closing, or closed by it
  // with the host's report still to come.
  bool ours(const Connection& c) const;
  std::error_code insert_connection(const Locked<>& locked, std::shared_ptr<Connection> handle,
                                    const ConnectionFacts& facts,
                                    const std::optional<boost::asio::ip::address>& capped);
  // Removes one connection from the pool and returns its handle, for closing or release
  // outside the lock. Every detach is told to the extension: at once, or with the others
  // of its batch at end_detach_batch().
  std::shared_ptr<Connection> detach(const Locked<>& locked, std::uint32_t conn_slot,
                                     CloseReason reason, const std::string& detail);
  void begin_detach_batch(const Locked<>& locked, std::size_t expected = 0);
  void end_detach_batch(const Locked<>& locked);
  // Detaches the connections of victims [begin, end) into `closing`; returns how many. A
  // victim that changed since the trim began ranking (TrimWatch) is skipped.
  std::size_t close_victims(const Locked<>& locked, const VictimSlots& victims, std::size_t begin,
                            std::size_t end, bool allow_protected, CloseReason reason,
                            const std::string& detail,
                            std::vector<std::shared_ptr<Connection>>& closing,
                            std::size_t& peers_closed);
  // A peer whose last connection went: kept as a temporary entry while tag_retention
  // allows, released otherwise. Inline: a trim does this for every victim.
  void retain_or_release(const Locked<>& locked, std::uint32_t slot) {
    if (config_.tag_retention.count() > 0 && holds_tags(pool_.peer(slot)) &&
        pool_.counts().temporary < config_.max_temp_peers) {
      pool_.set_temporary(slot, true);
      schedule_expiry(locked, slot, env_.time->now() + config_.tag_retention);
      return;
    }
    release_peer(locked, slot);
  }
  void release_peer(const Locked<>&, std::uint32_t slot) {
    note_change(slot);
    decay_.drop(pool_.peer(slot).decay);
    expiries_.cancel(slot);
    pool_.release_peer(slot, tag_names_);
  }
  // A temporary entry that no longer holds any tag has no reason to exist.
  void release_if_empty_temporary(const Locked<>& locked, std::uint32_t slot);
  std::optional<ConnectionFacts> read_facts(const Connection& handle);
  std::error_code after_handshake(const Connection& handle, Direction direction, Refusal* refusal);

  // --- Tags under the lock (core_tags.cpp) ------------------------------------------
  std::uint32_t tagging_slot(const Locked<>& locked, const NodeId& peer, std::error_code& ec);
  void set_tag(const Locked<>& locked, std::uint32_t slot, std::string_view name, int value);
  std::int64_t value_of(const PeerSlot& entry) const {
    return entry.tags.sum() + decay_.sum(entry.decay);
  }
  bool holds_tags(const PeerSlot& entry) const {
    return !entry.tags.empty() || entry.decay != kNoDecaySet;
  }
  void schedule_expiry(const Locked<>& locked, std::uint32_t slot, TimePoint at);
  void lose_protection(const Locked<>& locked, const NodeId& peer, TimePoint now);
  Duration temp_lifetime() const { return config_.temp_peer_lifetime; }
  void arm_housekeeping(const Locked<>& locked, TimePoint at);
  void housekeeping();
  void arm_decay_tick();
  void decay_tick();
  void prune_temporary(const Locked<>& locked, TimePoint now);
  // DecayingTagOwner
  std::error_code bump_decaying(std::uint32_t tag, std::uint64_t generation, const NodeId& peer,
                                int delta) override;
  std::error_code remove_decaying(std::uint32_t tag, std::uint64_t generation,
                                  const NodeId& peer) override;
  void close_decaying(std::uint32_t tag, std::uint64_t generation) override;

  // --- Admission under the lock (core_admission.cpp) -------------------------------
  ConnectionCounts system_counts() const;
  ConnectionCounts peer_counts(const NodeId& peer) const;
  Refusal refuse(const LimitBreach& breach, Stage stage, const std::string& prefix);
  template <class F>
  Decision gate(F&& intercept);
  template <class F>
  std::optional<Refusal> ask_gater(Stage stage, const std::string& what, F&& intercept);
  // The gater's word on dialing `peer` (Stage::dial), counted and queued when it refuses.
  std::optional<Refusal> ask_peer_dial(const NodeId& peer);
  // Counts a refusal and queues its RefusedEvent (delivered by the caller, unlocked).
  Refusal count_refusal(Stage stage, RefusalReason reason, std::string scope, std::string limit,
                        std::string message);
  // The same for a refusal already written in place.
  void note_refusal(const Refusal& refusal);
  bool gater_allows(const boost::asio::ip::address& address);
  Reservation open_reservation(const Locked<>& locked, Charge charge,
                               std::optional<Endpoint> remote);
  void release_reservation(std::uint64_t id) noexcept override;  // ReservationOwner
  // Tells the extension that an admission with claims ended (added at `added`, or
  // released) and queues the events it returns.
  void end_claims(const Locked<>& locked, const Charge& charge,
                  const ConnectionPlace* added) noexcept;
  // Whether an admission `breach` refuses may go above the cap instead: the breach is a
  // full connection cap, and the realms are short of their reserves by more than the
  // admissions already above it.
  bool may_overdraw(const Locked<>& locked, const LimitBreach& breach);
  // The connection to close, at the add of an admission above a cap, to make room for it.
  struct Room {
    std::optional<std::uint32_t> victim;  // a connection slot
    std::string detail;
  };
  // Plans the add of an admission above a full cap: nothing when the cap has room again,
  // else the connection to close for the claimed realm below its reserve
  // (PoolExtension::make_room), or a refusal at Stage::add saying why none may close.
  std::error_code plan_room(const Locked<>& locked, const Charge& charge, const NodeId& peer,
                            Room& room, Refusal* refusal);
  // The gater asked for a re-check: close the connections intercept_secured now denies.
  void regate();

  // --- Trimming (core_trim.cpp) ----------------------------------------------------
  struct TrimOutcome {
    ClosingBatch batch;
    std::size_t closed = 0;
    std::size_t peers_closed = 0;
  };
  // While a trim runs, from the start of its ranking: the peers that changed since (their
  // tags or protection, their connections, their entry released), which its commit keeps.
  // Lane holders write the bytes of the peers they hold; whole holders write any.
  struct TrimWatch {
    bool active = false;
    std::vector<std::uint8_t> changed;  // by peer slot; slots taken since are never victims
  };
  void note_change(std::uint32_t slot) {
    if (watch_.active && slot < watch_.changed.size()) [[unlikely]]
      watch_.changed[slot] = 1;
  }
  // The peer's tags changed: its tag stamp moves (TagVersion) and a trim under way notes
  // it. REQUIRES: the whole lock, or the peer's lane and its PeerLock.
  void tags_changed(std::uint32_t slot) {
    ++pool_.cold(slot).tags_stamp;
    note_change(slot);
  }
  bool changed_in_trim(std::uint32_t slot) const {
    return watch_.active && slot < watch_.changed.size() && watch_.changed[slot] != 0;
  }
  // Ranks with the lanes open (per-peer calls go on meanwhile; the whole lock stays held,
  // so no other whole holder changes the pool), then closes them again.
  std::optional<VictimSlots> rank_with_lanes_open(const Locked<>& locked, const CandidateView& view,
                                                  const TrimTarget& rule, bool default_fallback,
                                                  std::size_t& target,
                                                  std::span<const std::uint64_t> keys = {});
  // Commits the victims in batches of trim_batch_, letting go of the lock between two
  // (the victims so far are closed then, and other calls run); adds to `out`.
  // REQUIRES: `lock` holds lock_ whole; it does again on return.
  void commit_victims(std::unique_lock<Lock>& lock, const VictimSlots& victims,
                      bool allow_protected, TrimOutcome& out);
  void arm_background_check();
  // With a trim under way: what this call returns without running (joined or skipped), or
  // nullopt once it may run. REQUIRES: `lock` holds lock_.
  std::optional<std::size_t> wait_for_turn(std::unique_lock<Lock>& lock, TrimKind kind);
  // Whether the pool is past the point where a trim of this kind closes anything.
  bool trim_needed(TrimKind kind, std::size_t exact_count, std::size_t count) const;
  // Plans and ranks (the extension, or the default order in place) under the lock with the
  // lanes open, then commits; false when a host's trimmer must rank instead.
  bool trim_in_place(std::unique_lock<Lock>& lock, TrimKind kind, std::size_t exact_count,
                     std::size_t count, TimePoint now, TrimOutcome& out);
  void trim_with_snapshot(std::unique_lock<Lock>& lock, TrimKind kind, std::size_t exact_count,
                          TimePoint now, std::size_t before, TrimOutcome& out);
  // The extension's ranking of the candidates, or the default order's in place; nullopt
  // when neither applies (a host's trimmer ranks through the snapshot).
  // `default_fallback`: the default order ranks when the extension has no say, even if
  // the host gave a trimmer (which ranks only through a snapshot, unlocked).
  std::optional<VictimSlots> rank_under_lock(const Locked<>& locked, const CandidateView& view,
                                             const TrimTarget& rule, bool default_fallback,
                                             std::size_t& target,
                                             std::span<const std::uint64_t> keys = {});
  // The host's trimmer's order of `plan` for `target` connections; false if it threw.
  bool rank_snapshot(const Plan& plan, std::size_t target, std::vector<std::uint32_t>& order);
  // The realm rules' choice in the trimmer's `order` of `plan`, among the candidates now
  // (REQUIRES: lock_ whole); nullopt when nothing is bound any more.
  // Per peer slot, its place in a host trimmer's `order` of `plan` (peers gone, replaced
  // or new since come after every ranked one). REQUIRES: lock_ whole.
  std::vector<std::uint64_t> keys_of(const Plan& plan,
                                     const std::vector<std::uint32_t>& order) const;
  std::optional<VictimSlots> rank_by_order(TimePoint now, TrimKind kind, std::size_t exact_count,
                                           const Plan& plan,
                                           const std::vector<std::uint32_t>& order);
  void count_trim(const Locked<>& locked, TrimKind kind, std::size_t closed,
                  std::size_t peers_closed);
  std::string describe(TrimKind kind, std::size_t before, std::size_t target) const;

  // --- Lifecycle, activity and keepalive (core_timers.cpp) --------------------------
  void arm_keepalive(const Locked<>& locked, TimePoint now);
  void keepalive_round();
  void on_pong(std::uint32_t slot, ConnectionId id, std::uint32_t sequence, TimePoint sent_at,
               std::error_code ec);
  // Counts a miss; returns the handle to close when it was the last one allowed.
  std::optional<Closing> miss(const Locked<>& locked, std::uint32_t slot);
  void expire_handshakes(const Locked<>& locked, TimePoint now, Effects& effects);
  // The path-idle check of the connection at `slot` came up: the close to make, if the
  // path carried nothing for Config::path_idle_timeout while its peer has another (and
  // it is not the best); else checked again later, or no more once it is the only one.
  std::optional<Closing> check_path_idle(const Locked<>& locked, std::uint32_t slot, TimePoint now);
  bool held(const NodeId& peer) const { return !holds_.empty() && holds_.contains(peer); }
  void release_hold(const NodeId& peer) noexcept override;  // HoldOwner

  // --- Paths (core_paths.cpp) ------------------------------------------------------
  // Rules that run when a connection joins a peer that has others. Returns whether the
  // peer has several paths (then the path selector must be asked).
  bool apply_path_rules(const Locked<>& locked, std::uint32_t added, Effects& effects);
  void close_redundant(const Locked<>& locked, TimePoint now, Effects& effects);
  // Asks the path selector (host code: unlocked) for the peer's best connection.
  void reselect(const NodeId& peer);

  // --- Dials the manager asks for (core_redial.cpp) -----------------------------------
  // Whether the peer is kept through a drop (DialConfig's reconnect rules), and how
  // urgently (RedialQueue's priorities).
  std::optional<std::uint8_t> keep_priority(const NodeId& peer) const;
  // The last connection of the peer at `slot` is leaving for `reason`; `conn_slot` is
  // still in the pool. Queues a reconnect when the remote's side ended it and the peer is
  // kept. REQUIRES: a dialer.
  void last_path_leaving(const Locked<>& locked, std::uint32_t slot, std::uint32_t conn_slot,
                         CloseReason reason);
  // The peer's paths changed (a connection joined or left, some remain): a peer left with
  // relays only wants a direct path, one with a direct path no longer does; one with no
  // connection left wants none. REQUIRES: a dialer.
  void paths_changed(const Locked<>& locked, std::uint32_t slot);
  // Lapses the manager's dials past their timeout, takes the dials due into
  // `effects.dials` and arms housekeeping for the queue's next wake.
  void pump_redials(const Locked<>& locked, TimePoint now, Effects& effects);
  void finish_redial(const Locked<>& locked, const NodeId& peer, std::uint64_t serial,
                     std::optional<DialFailure> failure, TimePoint now);
  // Outside the lock: the gater, then the Dialer, for each dial taken.
  void ask_dialer(std::vector<RedialQueue::Started>& dials);

  // --- Acting (core.cpp) ----------------------------------------------------------
  // Outside the lock: closes, then events, then pings, then path selection.
  void act(Effects& effects) {
    if (effects.empty()) {  // most calls: nothing but the events their commit queued
      hub_.drain();
      return;
    }
    act_on(effects);
  }
  void act_on(Effects& effects);
  // Outside the lock: a trim's victims, then events.
  void act(ClosingBatch& batch);
  void close_handle(Connection& handle, CloseReason reason, const std::string& detail);
  void send_pings(std::vector<Ping>& pings);

  // Victims a trim commits in one hold of the lock: about 100 microseconds of work.
  static constexpr std::size_t kTrimBatch = 2048;

  const std::uint64_t token_;  // this manager's mark in Connection's tracking word
  // No system-wide stream limit: a lane holder counts streams, with the peer locked.
  // No system stream limit and no realm watching streams: stream opens and closes run in a
  // lane. Written under the whole lock; a lane holder reads it again inside its lane.
  std::atomic<bool> streams_unbounded_;
  bool streams_watched_ = false;  // the extension watches streams (guarded by lock_)
  Environment env_;
  Policies policies_;
  Subscription gater_subscription_;            // re-gating on Gater::on_tightened
  std::function<void(TrimPoint)> trim_probe_;  // tests only (set_trim_probe)
  std::size_t trim_batch_ = kTrimBatch;

  // --- Lane holders' helpers (core_tags.cpp, core_pool.cpp) ---------------------------
  class LaneGuard {
   public:
    explicit LaneGuard(const ManagerCore& core) : core_(core), entered_(core.lock_.enter()) {}
    ~LaneGuard() { core_.lock_.leave(entered_.index); }
    LaneGuard(const LaneGuard&) = delete;
    LaneGuard& operator=(const LaneGuard&) = delete;
    Lane& lane() const { return entered_.lane; }

   private:
    const ManagerCore& core_;
    Lock::Entered entered_;
  };
  // A lane holder's hold on one peer's entries (its PeerSlot, PeerCold and connections).
  struct PeerLock : ByteLock {
    explicit PeerLock(const PeerSlot& entry) : ByteLock(entry.busy) {}
  };
  // What upsert_tag compares to tell whether a peer's tags changed: its entry and the
  // entry's stamp. No entry and an entry whose tags never changed read the same.
  struct TagVersion {
    std::uint32_t slot = kNoSlot;
    std::uint32_t generation = 0;
    std::uint64_t stamp = 0;
    bool operator==(const TagVersion& o) const {
      return stamp == o.stamp && (stamp == 0 || (slot == o.slot && generation == o.generation));
    }
  };
  TagVersion tag_version(std::uint32_t slot) const {
    if (slot == kNoSlot) return {};
    return {slot, pool_.peer(slot).generation, pool_.cold(slot).tags_stamp};
  }
  // The id of a tag name known already, or nullopt (interning one needs the whole lock).
  std::optional<std::uint32_t> known_name(const LaneGuard& lane, std::string_view name);
  // Sets a tag of a live peer held by a lane holder; false when it takes the whole lock (a
  // new name).
  bool set_tag_in_lane(const LaneGuard& lane, std::uint32_t slot, std::string_view name, int value);
  // A stream opened or closed by a lane holder; nullopt when the peer's limits refuse it
  // (the whole lock counts and explains the refusal).
  // Tells a watching extension of a stream open (a realm's refusal, if any) or close at
  // `slot`. REQUIRES: lock_ whole.
  std::optional<LimitBreach> watched_stream(const Locked<>& locked, std::uint32_t slot,
                                            ConnectionId id, bool opened);
  std::optional<std::error_code> adjust_streams_in_lane(const LaneGuard& lane,
                                                        const Connection& connection,
                                                        Direction direction, bool opened);
  // Streams opened and closed on the whole pool, the lanes' counts included.
  // REQUIRES: the whole lock.
  std::array<std::size_t, 2> stream_totals(const Locked<>& locked) const;

  // --- Guarded by lock_ (whole) ------------------------------------------------------
  // The lanes' Lane data live in the lock, each beside its lane's lock word.
  mutable Lock lock_;
  Config config_;
  std::optional<DiversityRule> diversity_;  // from config_.diversity; nullopt: off
  bool closed_ = false;
  Pool pool_;
  TagNames tag_names_;
  DecayEngine decay_;
  ProtectTable protections_;
  ExpirySchedule expiries_;      // temporary entries' ends
  ConnectionSchedule schedule_;  // keepalive, idle, redundant paths, handshakes
  Pending pending_;
  boost::unordered_flat_map<NodeId, std::size_t, NodeIdHash> holds_;  // peer -> holds
  AdmissionLedger ledger_;
  SubnetCounter caps_;
  SubnetRateLimiter inbound_rates_;
  OutboundDialLimiter outbound_dials_;
  DialBook dial_;
  RedialQueue redial_;
  Stats stats_;  // the running totals; the counts are filled in by stats()
  TrimGate trim_;
  TrimWatch watch_;
  Timers timers_;
  DetachBatch detached_;

  // --- With their own synchronisation -------------------------------------------------
  Hooks hooks_;  // its own lock, taken alone
  std::array<std::atomic<std::uint64_t>, kRefusalReasonCount> refusals_{};
  std::atomic<std::uint64_t> unknown_reports_{0};      // duplicate or unknown reports
  std::atomic<std::uint64_t> closure_reports_{0};      // reports of closes the manager made
  std::atomic<std::uint64_t> dial_attempts_{0};        // dials check_dial allowed
  EventHub hub_;                                       // its own lock, taken after lock_
  std::weak_ptr<ReservationOwner> reservation_owner_;  // set once by start()
  std::weak_ptr<HoldOwner> hold_owner_;                // set once by start()
};

}  // namespace dep2p::connmgr::detail
