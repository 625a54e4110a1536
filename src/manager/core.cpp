// ManagerCore: construction, start, close, the extension's door, and acting on effects.
#include "manager/core.hpp"

#include <exception>
#include <random>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include "base/logging.hpp"
#include "manager/connection_access.hpp"

namespace dep2p::connmgr::detail {

std::uint64_t ConnectionAccess::new_token() {
  static std::atomic<std::uint64_t> last{0};
  return (last.fetch_add(1, std::memory_order_relaxed) + 1) * 2;
}

namespace {
// A node's secret group order when the configuration gives none.
std::uint64_t random_salt() {
  std::random_device source;
  return (static_cast<std::uint64_t>(source()) << 32) ^ source();
}
}  // namespace

ManagerCore::ManagerCore(executor_type executor, Config config, Dependencies deps)
    : token_(ConnectionAccess::new_token()),
      streams_unbounded_(config.limits.system.streams_inbound == kUnlimited &&
                         config.limits.system.streams_outbound == kUnlimited &&
                         config.limits.system.streams_total == kUnlimited),
      env_{executor, boost::asio::make_strand(executor),
           deps.time_source ? std::move(deps.time_source) : std::make_shared<SteadyTimeSource>(),
           deps.logger ? std::move(deps.logger) : make_default_logger()},
      config_(std::move(config)),
      diversity_(DiversityRule::from(
          config_.diversity,
          config_.diversity.enabled && !config_.diversity.salt ? random_salt() : 0)),
      schedule_(ScheduleSettings::of(config_)),
      caps_(config_.limits.subnets,
            GroupCap{GroupRule{config_.diversity.ipv4_prefix, config_.diversity.ipv6_prefix,
                               config_.diversity.loopback_v4_prefix},
                     config_.diversity.max_per_group}),
      inbound_rates_(config_.limits.inbound_rate),
      outbound_dials_(config_.limits.outbound_dials),
      dial_(config_.dial, std::random_device{}()),
      redial_(RedialQueue::settings_of(config_.dial)),
      hub_(env_.logger) {
  policies_.default_order = !deps.trimmer;
  policies_.trimmer = deps.trimmer ? std::move(deps.trimmer) : make_score_trimmer();
  policies_.trim_inputs = policies_.trimmer->inputs();
  policies_.gater = std::move(deps.gater);
  policies_.path_selector =
      deps.path_selector ? std::move(deps.path_selector) : make_default_path_selector();
  policies_.dialer = std::move(deps.dialer);
  policies_.has_extension = deps.extension != nullptr;
  policies_.extension = deps.extension;
  policies_.open_extension = deps.extension.get();
}

ManagerCore::~ManagerCore() {
  // Let go of the handles so that they can be tracked by another manager. (Handles
  // detached but not yet closed are released by the act phase that holds them.)
  for (std::uint32_t slot = 0; slot < pool_.conn_slots(); ++slot) {
    const ConnEntry& conn = pool_.conn(slot);
    if (conn.handle) ConnectionAccess::release(*conn.handle);
  }
}

void ManagerCore::start() {
  reservation_owner_ = std::weak_ptr<ReservationOwner>(shared_from_this());
  hold_owner_ = std::weak_ptr<HoldOwner>(shared_from_this());
  env_.logger->info("connmgr: effective settings: {}", config_.describe());
  timers_.background = env_.time->make_timer(env_.strand);
  timers_.decay = env_.time->make_timer(env_.strand);
  timers_.housekeeping = env_.time->make_timer(env_.strand);
  timers_.keepalive = env_.time->make_timer(env_.strand);
  if (auto extension = policies_.extension.lock()) extension->attach(*this);
  arm_background_check();
  arm_decay_tick();
  if (policies_.gater) {
    gater_subscription_ = policies_.gater->on_tightened([weak = weak_from_this()] {
      if (auto self = weak.lock()) {
        boost::asio::post(self->env_.strand, [weak] {
          if (auto again = weak.lock()) again->regate();
        });
      }
    });
  }
}

void ManagerCore::close() {
  {
    std::lock_guard lock(lock_);
    if (closed_) return;
    closed_ = true;
    dial_.cancel_waiters();
    post_dial_waiters(Locked<>{});
    redial_.clear();
  }
  trim_.done.notify_all();
  hub_.close();
  gater_subscription_.reset();
  if (timers_.background) timers_.background->cancel();
  if (timers_.decay) timers_.decay->cancel();
  if (timers_.housekeeping) timers_.housekeeping->cancel();
  if (timers_.keepalive) timers_.keepalive->cancel();
}

bool ManagerCore::is_closed() const {
  std::lock_guard lock(lock_);
  return closed_;
}

// --- The extension's door ------------------------------------------------------------

std::optional<ConnectionPlace> ManagerCore::locate(const Connection& connection) const {
  std::lock_guard lock(lock_);
  const Locked<> locked;
  auto slot = tracked_slot(locked, connection);
  if (!slot) return std::nullopt;
  return ConnectionPlace{*slot, pool_.conn(*slot).id};
}

std::vector<std::shared_ptr<Connection>> ManagerCore::handles(
    std::span<const ConnectionPlace> places) const {
  std::vector<std::shared_ptr<Connection>> found;
  found.reserve(places.size());
  std::lock_guard lock(lock_);
  for (const ConnectionPlace& place : places) {
    if (place.slot >= pool_.conn_slots()) continue;
    const ConnEntry& entry = pool_.conn(place.slot);
    if (entry.handle && entry.id == place.id) found.push_back(entry.handle);
  }
  return found;
}

void ManagerCore::watch_streams() {
  std::lock_guard lock(lock_);
  if (closed_ || streams_watched_ || policies_.open_extension == nullptr) return;
  std::vector<StreamSeed> seeds;
  seeds.reserve(pool_.counts().connections);
  for (std::uint32_t slot = 0; slot < pool_.conn_slots(); ++slot) {
    const ConnEntry& conn = pool_.conn(slot);
    if (conn.handle) seeds.push_back(StreamSeed{slot, conn.id, conn.streams()});
  }
  streams_watched_ = true;
  streams_unbounded_.store(false, std::memory_order_relaxed);
  policies_.open_extension->seed_streams(Locked<>{}, seeds);
}

std::optional<std::vector<std::uint32_t>> ManagerCore::trimmer_order(
    std::span<const NodeId> peers) {
  if (policies_.default_order) return std::nullopt;
  Plan plan;
  std::vector<std::uint32_t> asked;  // by plan index: the index in `peers`
  std::size_t connections = 0;
  {
    std::lock_guard lock(lock_);
    if (closed_) return std::nullopt;
    const TrimInputs& inputs = policies_.trim_inputs;
    const TimePoint now = env_.time->now();
    plan.snapshot.now = now;
    plan.snapshot.ordered = true;
    reserve(plan, peers.size(), peers.size(), inputs);
    const CandidateView view(pool_, decay_, now, config_.grace_period, CandidateView::Mode::normal);
    for (std::uint32_t i = 0; i < peers.size(); ++i) {
      const std::uint32_t slot = pool_.find(peers[i]);
      if (slot == kNoSlot) continue;
      const PeerSlot& entry = pool_.peer(slot);
      if (!entry.live || entry.temporary || entry.conns.empty()) continue;
      add_candidate(plan, view, slot, entry, inputs);
      asked.push_back(i);
      connections += entry.conns.size();
    }
    if (auto extension = policies_.extension.lock()) {
      extension->describe_realms(Locked<>{}, pool_, plan.slots, plan.snapshot);
    }
  }
  std::vector<std::uint32_t> order;
  if (!rank_snapshot(plan, connections, order)) return std::nullopt;
  std::vector<std::uint32_t> places(peers.size(), UINT32_MAX);
  std::uint32_t place = 0;
  for (const std::uint32_t index : order) {
    if (index < asked.size() && places[asked[index]] == UINT32_MAX) places[asked[index]] = place++;
  }
  return places;
}

void ManagerCore::publish(Event event) {
  if (!hub_.has_subscribers()) return;
  hub_.enqueue(std::move(event));
  hub_.drain();
}

std::optional<bool> ManagerCore::claim(const Reservation& reservation, ClaimCheck& check) {
  std::lock_guard lock(lock_);
  if (closed_ || !reservation.valid()) return std::nullopt;
  Charge* charge = ledger_.find(reservation.id());
  if (charge == nullptr || !charge->peer) return std::nullopt;
  return check.check(Locked<>{}, *charge->peer, charge->claims);
}

std::error_code ManagerCore::secure(Reservation& reservation, Direction direction,
                                    const NodeId& peer, const Endpoint& remote, Refusal* refusal,
                                    ClaimCheck& check) {
  std::error_code ec = on_secured(reservation, direction, peer, remote, refusal, &check);
  hub_.drain();
  return ec;
}

void ManagerCore::end_claims(const Locked<>& locked, const Charge& charge,
                             const ConnectionPlace* added) noexcept {
  PoolExtension* extension = policies_.open_extension;
  std::shared_ptr<PoolExtension> held;  // once closed, the layer may be going
  if (closed_) extension = (held = policies_.extension.lock()).get();
  if (extension == nullptr || !charge.peer) return;
  std::vector<Event> events;
  extension->on_claims_end(
      locked, *charge.peer,
      std::span<const std::uint64_t>(charge.claims.data(), charge.claims.size()), added,
      hub_.has_subscribers() ? &events : nullptr);
  for (Event& event : events) hub_.enqueue(std::move(event));
}

Refusal ManagerCore::refuse(Stage stage, RefusalReason reason, std::string scope, std::string limit,
                            std::string message) {
  Refusal refusal =
      count_refusal(stage, reason, std::move(scope), std::move(limit), std::move(message));
  hub_.drain();
  return refusal;
}

Refusal ManagerCore::count_refusal(Stage stage, RefusalReason reason, std::string scope,
                                   std::string limit, std::string message) {
  Refusal refusal{stage, reason, std::move(scope), std::move(limit), std::move(message)};
  note_refusal(refusal);
  return refusal;
}

void ManagerCore::note_refusal(const Refusal& refusal) {
  refusals_[static_cast<std::size_t>(refusal.reason)].fetch_add(1, std::memory_order_relaxed);
  // Logged at debug level only: refusals can come by the thousand under attack, and the
  // caller gets the text anyway.
  env_.logger->debug("connmgr: {}", refusal.message);
  if (hub_.has_subscribers()) hub_.enqueue(RefusedEvent{refusal});
}

// --- Acting ------------------------------------------------------------------------------

void ManagerCore::close_handle(Connection& handle, CloseReason reason, const std::string& detail) {
  ConnectionAccess::mark_closed(handle, token_);
  try {
    handle.close(reason, detail);
  } catch (const std::exception& e) {
    env_.logger->warn("connmgr: Connection::close threw: {}", e.what());
  } catch (...) {
    env_.logger->warn("connmgr: Connection::close threw a non-standard exception");
  }
}

void ManagerCore::act_on(Effects& effects) {
  for (std::size_t i = 0; i < effects.closes.size(); ++i) {
    // Fetch the host's objects (whose tracking word is written here and read again when
    // close() reports back) a few ahead.
    if (i + 8 < effects.closes.size()) __builtin_prefetch(effects.closes[i + 8].handle.get(), 1);
    Closing& c = effects.closes[i];
    close_handle(*c.handle, c.reason, c.detail);
  }
  hub_.drain();
  effects.closes.clear();  // releases the handles, still unlocked
  if (!effects.pings.empty()) send_pings(effects.pings);
  for (const NodeId& peer : effects.reselect) reselect(peer);
  effects.reselect.clear();
  if (!effects.dials.empty()) ask_dialer(effects.dials);
}

void ManagerCore::act(ClosingBatch& batch) {
  std::vector<std::shared_ptr<Connection>>& handles = batch.handles;
  for (std::size_t i = 0; i < handles.size(); ++i) {
    // A trim closes thousands of handles: fetch the host's objects a few ahead.
    if (i + 16 < handles.size()) __builtin_prefetch(handles[i + 16].get(), 1);
    close_handle(*handles[i], batch.reason, batch.detail);
    handles[i].reset();  // while the object's lines are still in cache
  }
  hub_.drain();
  handles.clear();
}

}  // namespace dep2p::connmgr::detail
