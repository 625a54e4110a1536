#include "dep2p/connmgr/realm_manager.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <tuple>

#include <boost/asio/post.hpp>
#include <boost/unordered/unordered_flat_map.hpp>
#include <boost/unordered/unordered_flat_set.hpp>

#include "base/compact_vector.hpp"
#include "dep2p/connmgr/error.hpp"
#include "observe/observability.hpp"
#include "realm/realm_state.hpp"

namespace dep2p::connmgr {
namespace {

std::string number(std::size_t n) { return n == kUnlimited ? "unlimited" : std::to_string(n); }

ConfigError fail(std::string field, std::string message) {
  return ConfigError{std::move(field), std::move(message)};
}

auto find_tag(detail::Member& member, std::string_view name) {
  return std::find_if(member.tags.begin(), member.tags.end(),
                      [&](const auto& t) { return t.first == name; });
}

}  // namespace

std::optional<ConfigError> RealmConfig::validate() const {
  if (min_reserved > low_water) {
    return fail("min_reserved", "min_reserved (" + number(min_reserved) +
                                    ") must not exceed low_water (" + number(low_water) +
                                    "): the reserve is part of the realm's share");
  }
  if (high_water > 0 && low_water > high_water) {
    return fail("low_water", "low_water (" + number(low_water) + ") must not exceed high_water (" +
                                 number(high_water) + ")");
  }
  if (hard_max > 0) {
    if (high_water > hard_max) {
      return fail("high_water", "high_water (" + number(high_water) +
                                    ") must not exceed hard_max (" + number(hard_max) +
                                    "): the realm could never reach it");
    }
    if (low_water > hard_max) {
      return fail("low_water", "low_water (" + number(low_water) + ") must not exceed hard_max (" +
                                   number(hard_max) + ")");
    }
    if (max_members > hard_max) {
      return fail("max_members", "max_members (" + number(max_members) +
                                     ") must not exceed hard_max (" + number(hard_max) +
                                     "): every member holds at least one bound connection");
    }
  }
  return std::nullopt;
}

using State = RealmConnectionManager::State;

detail::Member* State::find_member(std::string_view realm, const NodeId& peer,
                                   std::error_code& ec) const {
  Realm* entry = find(realm);
  if (entry == nullptr) {
    ec = Errc::unknown_realm;
    return nullptr;
  }
  detail::Member* member = entry->members.find(peer);
  if (member == nullptr) ec = Errc::unknown_peer;
  return member;
}

void State::add(Binding& b, Realm& realm, const NodeId& peer) {
  b.realms.push_back(BoundTo{realm.index, 0});
  try {
    b.realms.back().member = realm.members.acquire(peer);
  } catch (...) {
    b.realms.pop_back();
    throw;
  }
  if (b.realms.size() == 1) ++bound_slots;
  ++realm.members.bound(b.realms.back().member);
  ++realm.connections;
  realm.streams += streams_of(b);
  ++realm.stats.binds;
}

void State::drop(Binding& b, std::size_t k) {
  const BoundTo entry = b.realms[k];
  Realm& realm = *realm_table[entry.realm];
  if (--realm.members.bound(entry.member) == 0) realm.members.retire();
  --realm.connections;
  realm.streams -= std::min<std::size_t>(streams_of(b), realm.streams);
  ++realm.stats.unbinds;
  erase_at(b.realms, k);
  if (b.realms.empty()) {
    b.id = ConnectionId{};
    --bound_slots;
  }
}

std::optional<ConfigError> State::check_against_node(const RealmConfig& config, std::size_t others,
                                                     const Config& node) {
  if (auto error = config.validate()) return error;
  const std::size_t system = node.limits.system.connections_total;
  if (config.hard_max > 0 && system != kUnlimited && config.hard_max > system) {
    return fail("hard_max", "hard_max (" + number(config.hard_max) +
                                ") must not exceed limits.system.connections_total (" +
                                number(system) + ")");
  }
  const std::size_t peer = node.limits.peer.connections_total;
  if (config.hard_max > 0 && peer != kUnlimited && config.hard_max < peer) {
    return fail("hard_max", "hard_max (" + number(config.hard_max) +
                                ") must not be below limits.peer.connections_total (" +
                                number(peer) + "): a realm contains its peers");
  }
  const std::size_t system_streams = node.limits.system.streams_total;
  if (config.max_streams > 0 && system_streams != kUnlimited &&
      config.max_streams > system_streams) {
    return fail("max_streams", "max_streams (" + number(config.max_streams) +
                                   ") must not exceed limits.system.streams_total (" +
                                   number(system_streams) + ")");
  }
  const bool trimming = node.low_water != 0 && node.high_water != 0;
  if (trimming && others + config.min_reserved > node.low_water) {
    return fail("min_reserved", "the realms' min_reserved would sum to " +
                                    number(others + config.min_reserved) +
                                    ", above the global low_water (" + number(node.low_water) +
                                    "): the node's trim could not honour every reserve");
  }
  return std::nullopt;
}

RealmConnectionManager::RealmConnectionManager(executor_type executor, Config config,
                                               Dependencies deps)
    : state_(std::make_shared<State>()) {
  state_->self = state_;
  if (auto error = config.validate()) {
    throw std::invalid_argument("connmgr Config." + error->field + ": " + error->message);
  }
  // The manager's one door to this layer; it holds it weakly (this layer owns it).
  deps.extension = state_;
  state_->manager =
      std::make_unique<ConnectionManager>(std::move(executor), std::move(config), std::move(deps));
}

RealmConnectionManager::~RealmConnectionManager() {
  close();
  state_->manager.reset();  // while this layer is whole (see State::~State)
}

ConnectionManager& RealmConnectionManager::manager() noexcept { return *state_->manager; }
const ConnectionManager& RealmConnectionManager::manager() const noexcept {
  return *state_->manager;
}

std::error_code RealmConnectionManager::create_realm(std::string_view realm,
                                                     const RealmConfig& config,
                                                     ConfigError* error) {
  if (realm.empty()) {
    if (error != nullptr) *error = fail("realm", "a realm needs a name");
    return Errc::invalid_argument;
  }
  const Config node = state_->manager->config();
  const std::error_code ec = [&]() -> std::error_code {
    std::lock_guard lock(state_->mutex);
    if (state_->closed) return Errc::closed;
    if (state_->find(realm) != nullptr) return Errc::realm_exists;
    if (auto bad = State::check_against_node(config, state_->reserved, node)) {
      if (error != nullptr) *error = std::move(*bad);
      return Errc::invalid_argument;
    }
    auto entry = std::make_unique<State::Realm>();
    entry->name = std::string(realm);
    entry->config = config;
    entry->generation = ++state_->realms_created;
    // What may throw comes first, so that a failure leaves no trace.
    state_->realm_table.reserve(state_->realm_table.size() + 1);
    state_->by_name.reserve(state_->by_name.size() + 1);
    State::Realm* added = entry.get();
    state_->realms.emplace(added->name, std::move(entry));
    state_->by_name.emplace(added->name, added);  // keyed by the realm's own name
    if (state_->free_realm_indices.empty()) {
      added->index = static_cast<std::uint32_t>(state_->realm_table.size());
      state_->realm_table.push_back(added);
    } else {
      added->index = state_->free_realm_indices.back();
      state_->free_realm_indices.pop_back();
      state_->realm_table[added->index] = added;
    }
    state_->reserved += config.min_reserved;
    return {};
  }();
  // A realm that limits streams needs every stream open and close told (once).
  if (!ec && config.max_streams > 0) state_->door->watch_streams();
  return ec;
}

std::error_code RealmConnectionManager::remove_realm(std::string_view realm) {
  std::vector<Event> events;
  {
    std::lock_guard lock(state_->mutex);
    auto it = state_->realms.find(realm);
    if (it == state_->realms.end()) return Errc::unknown_realm;
    State::Realm* gone = it->second.get();
    // The bindings do not name peers: find each member's through the realm's index. A
    // walk over all bindings, but removing a realm is rare, and it keeps the members small.
    std::vector<const NodeId*> peer_of(gone->members.slots(), nullptr);
    gone->members.for_each([&](const NodeId& peer, std::uint32_t slot, const detail::Member&) {
      peer_of[slot] = &peer;
    });
    for (State::Binding& b : state_->bindings) {
      const auto k = State::position(b, gone);
      if (!k) continue;
      const NodeId& peer = *peer_of[b.realms[*k].member];
      const ConnectionId id = b.id;
      State::erase_at(b.realms, *k);
      if (b.realms.empty()) {
        b.id = ConnectionId{};
        --state_->bound_slots;
      }
      events.emplace_back(
          RealmUnboundEvent{gone->name, peer, id, RealmUnboundEvent::Cause::realm_removed});
    }
    state_->reserved -= gone->config.min_reserved;
    state_->realm_table[gone->index] = nullptr;  // no binding names it any more
    state_->free_realm_indices.push_back(gone->index);
    state_->by_name.erase(std::string_view(gone->name));
    if (state_->last_claimed == gone) state_->last_claimed = nullptr;
    state_->realms.erase(it);
  }
  for (Event& e : events) state_->door->publish(std::move(e));
  return {};
}

std::error_code RealmConnectionManager::set_realm_limit(std::string_view realm,
                                                        const RealmConfig& config,
                                                        ConfigError* error) {
  const Config node = state_->manager->config();
  const std::error_code ec = [&]() -> std::error_code {
    std::lock_guard lock(state_->mutex);
    if (state_->closed) return Errc::closed;
    State::Realm* entry = state_->find(realm);
    if (entry == nullptr) return Errc::unknown_realm;
    const std::size_t others = state_->reserved - entry->config.min_reserved;
    if (auto bad = State::check_against_node(config, others, node)) {
      if (error != nullptr) *error = std::move(*bad);
      return Errc::invalid_argument;
    }
    state_->reserved = others + config.min_reserved;
    entry->config = config;
    if (config.high_water > 0 && entry->connections >= config.high_water) {
      state_->schedule_trim(*entry);
    }
    return {};
  }();
  // A realm that limits streams needs every stream open and close told (once).
  if (!ec && config.max_streams > 0) state_->door->watch_streams();
  return ec;
}

std::optional<RealmConfig> RealmConnectionManager::realm_config(std::string_view realm) const {
  std::lock_guard lock(state_->mutex);
  const State::Realm* entry = state_->find(realm);
  if (entry == nullptr) return std::nullopt;
  return entry->config;
}

std::vector<std::string> RealmConnectionManager::realms() const {
  std::lock_guard lock(state_->mutex);
  std::vector<std::string> names;
  names.reserve(state_->realms.size());
  for (const auto& [name, realm] : state_->realms) names.push_back(name);
  return names;
}

Admission RealmConnectionManager::bind(const Connection& connection, std::string_view realm) {
  Admission result;
  result.error = bind_checked(connection, realm, &result.refusal);
  return result;
}

std::error_code RealmConnectionManager::bind_checked(const Connection& connection,
                                                     std::string_view realm, Refusal* refusal) {
  ConnectionManager& m = *state_->manager;
  // Counted from before the connection is located until any binding that raced its
  // closure is undone (see State::binds_in_flight).
  struct InFlight {
    std::atomic<std::uint32_t>& count;
    explicit InFlight(std::atomic<std::uint32_t>& c) : count(c) { ++count; }
    ~InFlight() { --count; }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
  } in_flight(state_->binds_in_flight);
  const auto located = state_->door->locate(connection);
  if (!located) return m.is_closed() ? Errc::closed : Errc::unknown_connection;
  const auto [slot, id] = *located;
  const NodeId peer = connection.remote_peer();
  std::optional<std::pair<std::string, std::string>> full;  // limit, message
  {
    std::lock_guard lock(state_->mutex);
    if (state_->closed) return Errc::closed;
    State::Realm* entry = state_->find(realm);
    if (entry == nullptr) return Errc::unknown_realm;
    if (slot >= state_->bindings.size()) state_->bindings.resize(slot + 1);
    State::Binding& b = state_->bindings[slot];
    if (b.id != id) {
      // Left by an earlier connection in this slot whose bind raced its closure (that
      // bind undoes nothing once it sees the slot reused): end those bindings properly.
      while (!b.realms.empty()) state_->drop(b, b.realms.size() - 1);
      b.id = id;
    }
    if (State::position(b, entry)) return {};
    // Claims outstanding hold their places: under hard_max each claim, under max_members
    // each claiming peer that is not a member (a claimant binding here takes its own place).
    const bool member = entry->members.find(peer) != nullptr;
    const RealmConfig& c = entry->config;
    const std::size_t taken = entry->connections + entry->claims;
    const std::size_t members = entry->members.live() + entry->claimants.size();
    const char* claims_note = entry->claims > 0 ? " (claims included)" : "";
    if (c.hard_max > 0 && taken >= c.hard_max) {
      full.emplace("hard_max", "bind refused: realm " + entry->name + " holds " +
                                   std::to_string(taken) + " of " + std::to_string(c.hard_max) +
                                   " connections" + claims_note);
    } else if (c.max_members > 0 && !member && !entry->claimants.contains(peer) &&
               members >= c.max_members) {
      full.emplace("max_members", "bind refused: realm " + entry->name + " has " +
                                      std::to_string(members) + " of " +
                                      std::to_string(c.max_members) + " members" + claims_note);
    }
    if (full) {
      ++entry->stats.refused_full;
      if (b.realms.empty()) b.id = ConnectionId{};
    } else {
      state_->add(b, *entry, peer);
      if (c.high_water > 0 && entry->connections >= c.high_water) {
        state_->schedule_trim(*entry);
      }
    }
  }
  if (full) {
    Refusal r = state_->door->refuse(Stage::bind, RefusalReason::realm_limit,
                                     "realm " + std::string(realm), full->first, full->second);
    if (refusal != nullptr) *refusal = std::move(r);
    return Errc::realm_full;
  }
  // The connection may have left the pool while we bound it, before our binding existed
  // for the detach observer to see: undo it then.
  if (state_->door->locate(connection) != located) {
    std::lock_guard lock(state_->mutex);
    State::Realm* entry = state_->find(realm);
    State::Binding* b = state_->binding_at(slot, id);
    if (b != nullptr && entry != nullptr) {
      if (auto k = State::position(*b, entry)) {
        state_->drop(*b, *k);
        --entry->stats.unbinds;  // not a binding that ever held
        --entry->stats.binds;
      }
    }
    return Errc::unknown_connection;
  }
  state_->door->publish(RealmBoundEvent{std::string(realm), peer, id});
  return {};
}

std::error_code RealmConnectionManager::unbind(const Connection& connection,
                                               std::string_view realm) {
  const auto located = state_->door->locate(connection);
  if (!located) return Errc::unknown_connection;
  const auto [slot, id] = *located;
  {
    std::lock_guard lock(state_->mutex);
    State::Realm* entry = state_->find(realm);
    if (entry == nullptr) return Errc::unknown_realm;
    State::Binding* b = state_->binding_at(slot, id);
    const auto k = b == nullptr ? std::nullopt : State::position(*b, entry);
    if (!k) return Errc::unknown_connection;
    state_->drop(*b, *k);
  }
  state_->door->publish(RealmUnboundEvent{std::string(realm), connection.remote_peer(), id,
                                          RealmUnboundEvent::Cause::unbound});
  return {};
}

std::size_t RealmConnectionManager::realm_connection_count(std::string_view realm) const {
  std::lock_guard lock(state_->mutex);
  const State::Realm* entry = state_->find(realm);
  return entry == nullptr ? 0 : entry->connections;
}

std::vector<std::shared_ptr<Connection>> RealmConnectionManager::realm_connections(
    std::string_view realm) const {
  // The places of the realm's connections under the layer's lock, then their handles
  // under the core's (the lock order forbids holding both this way round).
  std::vector<detail::ConnectionPlace> places;
  {
    std::lock_guard lock(state_->mutex);
    const State::Realm* entry = state_->find(realm);
    if (entry == nullptr) return {};
    places.reserve(entry->connections);
    for (std::uint32_t slot = 0; slot < state_->bindings.size(); ++slot) {
      const State::Binding& b = state_->bindings[slot];
      if (State::position(b, entry)) places.push_back({slot, b.id});
    }
  }
  return state_->door->handles(places);
}

std::vector<NodeId> RealmConnectionManager::members(std::string_view realm) const {
  std::lock_guard lock(state_->mutex);
  std::vector<NodeId> peers;
  if (const State::Realm* entry = state_->find(realm)) {
    peers.reserve(entry->members.live());
    entry->members.for_each(
        [&](const NodeId& peer, std::uint32_t, const detail::Member&) { peers.push_back(peer); });
  }
  return peers;
}

std::vector<std::string> RealmConnectionManager::realms_of(const NodeId& peer) const {
  std::lock_guard lock(state_->mutex);
  std::vector<std::string> names;
  for (const auto& [name, realm] : state_->realms) {
    if (realm->members.find(peer) != nullptr) names.push_back(name);
  }
  return names;
}

std::optional<RealmStats> RealmConnectionManager::realm_stats(std::string_view realm) const {
  std::lock_guard lock(state_->mutex);
  const State::Realm* entry = state_->find(realm);
  if (entry == nullptr) return std::nullopt;
  RealmStats stats = entry->stats;
  stats.connections = entry->connections;
  stats.members = entry->members.live();
  stats.pending = entry->claims;
  stats.streams = entry->streams;
  return stats;
}

std::error_code RealmConnectionManager::tag_peer(std::string_view realm, const NodeId& peer,
                                                 std::string_view name, int value) {
  if (name.empty()) return Errc::invalid_argument;
  std::lock_guard lock(state_->mutex);
  if (state_->closed) return Errc::closed;
  std::error_code ec;
  detail::Member* member = state_->find_member(realm, peer, ec);
  if (member == nullptr) return ec;
  auto tag = find_tag(*member, name);
  if (tag == member->tags.end()) {
    member->tags.emplace_back(std::string(name), value);
  } else {
    member->value -= tag->second;
    tag->second = value;
  }
  member->value += value;
  return {};
}

std::error_code RealmConnectionManager::untag_peer(std::string_view realm, const NodeId& peer,
                                                   std::string_view name) {
  std::lock_guard lock(state_->mutex);
  std::error_code ec;
  detail::Member* member = state_->find_member(realm, peer, ec);
  if (member == nullptr) return ec;
  auto tag = find_tag(*member, name);
  if (tag != member->tags.end()) {
    member->value -= tag->second;
    member->tags.erase(tag);
  }
  return {};
}

std::optional<std::int64_t> RealmConnectionManager::realm_value(std::string_view realm,
                                                                const NodeId& peer) const {
  std::lock_guard lock(state_->mutex);
  std::error_code ec;
  const detail::Member* member = state_->find_member(realm, peer, ec);
  if (member == nullptr) return std::nullopt;
  return member->value;
}

std::error_code RealmConnectionManager::protect(std::string_view realm, const NodeId& peer,
                                                std::string_view tag) {
  if (tag.empty()) return Errc::invalid_argument;
  std::lock_guard lock(state_->mutex);
  if (state_->closed) return Errc::closed;
  std::error_code ec;
  detail::Member* member = state_->find_member(realm, peer, ec);
  if (member == nullptr) return ec;
  auto& tags = member->protections;
  if (std::find(tags.begin(), tags.end(), tag) == tags.end()) tags.emplace_back(tag);
  return {};
}

bool RealmConnectionManager::unprotect(std::string_view realm, const NodeId& peer,
                                       std::string_view tag) {
  std::lock_guard lock(state_->mutex);
  std::error_code ec;
  detail::Member* member = state_->find_member(realm, peer, ec);
  if (member == nullptr) return false;
  auto& tags = member->protections;
  if (auto found = std::find(tags.begin(), tags.end(), tag); found != tags.end()) tags.erase(found);
  return !tags.empty();
}

bool RealmConnectionManager::is_protected(std::string_view realm, const NodeId& peer) const {
  std::lock_guard lock(state_->mutex);
  std::error_code ec;
  const detail::Member* member = state_->find_member(realm, peer, ec);
  return member != nullptr && !member->protections.empty();
}

std::size_t RealmConnectionManager::trim_realm(std::string_view realm) {
  return state_->trim_realm(realm);
}

std::error_code RealmConnectionManager::set_limits(std::size_t low_water, std::size_t high_water,
                                                   ConfigError* error) {
  {
    std::lock_guard lock(state_->mutex);
    if (low_water != 0 && high_water != 0 && state_->reserved > low_water) {
      if (error != nullptr) {
        *error = fail("low_water", "low_water (" + number(low_water) +
                                       ") must not be below the realms' reserves (" +
                                       number(state_->reserved) + " in all)");
      }
      return Errc::invalid_argument;
    }
  }
  return state_->manager->set_limits(low_water, high_water);
}

void RealmConnectionManager::close() {
  {
    std::lock_guard lock(state_->mutex);
    state_->closed = true;
  }
  state_->manager->close();
}

namespace {

// Through the public queries: each realm's figures are consistent, the set of realms is
// the one realms() saw (a realm removed meanwhile is left out).
std::vector<detail::RealmFigures> figures_of(const RealmConnectionManager& node) {
  std::vector<detail::RealmFigures> figures;
  for (std::string& name : node.realms()) {
    auto stats = node.realm_stats(name);
    auto config = node.realm_config(name);
    if (stats && config) figures.push_back({std::move(name), *stats, *config});
  }
  return figures;
}

}  // namespace

void RealmConnectionManager::write_prometheus(std::ostream& out) const {
  manager().write_prometheus(out);
  detail::write_realm_prometheus(out, figures_of(*this));
}

void RealmConnectionManager::for_each_metric(MetricVisitor& visitor) const {
  dep2p::connmgr::for_each_metric(manager().stats(), visitor);
  detail::for_each_realm_metric(figures_of(*this), visitor);
}

}  // namespace dep2p::connmgr
