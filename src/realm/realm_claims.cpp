// RealmConnectionManager: realm claims at admission (docs/architecture.md, "Realms"). A
// claim is checked and recorded under the core's lock, on the admission's own charge, and
// holds its place in the realm until the admission ends: the add that consumes it turns
// it into a binding in the same critical section, so the connection is bound from the
// moment it is in the pool; a dropped admission gives the place back.
#include <optional>
#include <string>

#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/realm_manager.hpp"
#include "realm/realm_state.hpp"

namespace dep2p::connmgr {

using State = RealmConnectionManager::State;

namespace {

// A claim token: the realm's generation (high half), its index (low 31 bits), and whether
// the claim holds a member place (bit 31).
constexpr std::uint64_t kMemberPlace = std::uint64_t{1} << 31;
constexpr std::uint64_t kIndexBits = kMemberPlace - 1;

// The check run under the core's lock (CoreDoor::claim).
struct ClaimCheck final : detail::ClaimCheck {
  State& state;
  std::string_view realm;
  Errc error{};  // zero, closed or unknown_realm
  // A refusal: its reason, limit and message, and the realm's name.
  struct Refused {
    RefusalReason reason;
    std::string limit;
    std::string message;
    std::string realm;
  };
  std::optional<Refused> refused;
  bool ran = false;

  ClaimCheck(State& s, std::string_view r) : state(s), realm(r) {}

  bool check(const detail::Locked<>&, const NodeId& peer, detail::ClaimTokens& tokens) override {
    ran = true;
    std::lock_guard lock(state.mutex);
    if (state.closed) {
      error = Errc::closed;
      return false;
    }
    State::Realm* entry = state.find_claimed(realm);
    if (entry == nullptr) {
      error = Errc::unknown_realm;
      return false;
    }
    for (const std::uint64_t token : tokens) {
      bool member_place = false;
      if (state.claimed_realm(token, member_place) == entry) return true;  // claimed before
    }
    const RealmConfig& c = entry->config;
    const std::size_t taken = entry->connections + entry->claims;
    // Member places are counted only where max_members is set.
    const bool member_place = c.max_members > 0 && entry->members.find(peer) == nullptr;
    const bool new_member = member_place && !entry->claimants.contains(peer);
    if (c.hard_max > 0 && taken >= c.hard_max) {
      refuse(*entry, RefusalReason::realm_limit, "hard_max",
             "holds " + std::to_string(taken) + " of " + std::to_string(c.hard_max) +
                 " connections (claims included)");
      return false;
    }
    if (new_member) {
      const std::size_t members = entry->members.live() + entry->claimants.size();
      if (members >= c.max_members) {
        refuse(*entry, RefusalReason::realm_limit, "max_members",
               "has " + std::to_string(members) + " of " + std::to_string(c.max_members) +
                   " members (claims included)");
        return false;
      }
    }
    if (c.max_pending > 0 && entry->claims >= c.max_pending) {
      refuse(*entry, RefusalReason::pending_limit, "max_pending",
             "has " + std::to_string(entry->claims) + " of " + std::to_string(c.max_pending) +
                 " claims pending");
      return false;
    }
    tokens.push_back(State::claim_token(*entry, member_place));
    if (member_place) ++entry->claimants[peer];
    ++entry->claims;
    ++entry->stats.claims;
    return true;
  }

  void refuse(State::Realm& entry, RefusalReason reason, const char* limit, std::string what) {
    if (reason == RefusalReason::pending_limit) {
      ++entry.stats.refused_pending;
    } else {
      ++entry.stats.refused_full;
    }
    refused.emplace(Refused{
        reason, limit, "claim refused: realm " + entry.name + " " + std::move(what), entry.name});
  }
};

}  // namespace

std::uint64_t State::claim_token(const Realm& realm, bool member_place) {
  return (std::uint64_t{realm.generation} << 32) | (member_place ? kMemberPlace : 0) | realm.index;
}

State::Realm* State::claimed_realm(std::uint64_t token, bool& member_place) const {
  const auto index = static_cast<std::uint32_t>(token & kIndexBits);
  const auto generation = static_cast<std::uint32_t>(token >> 32);
  member_place = (token & kMemberPlace) != 0;
  if (index >= realm_table.size()) return nullptr;
  Realm* realm = realm_table[index];
  // A realm removed since the claim, or another one at its index, is not the claimed one.
  return realm != nullptr && realm->generation == generation ? realm : nullptr;
}

namespace {

// The result of a check that ran: success, its error, or its refusal (counted and
// published through the door).
std::error_code verdict(detail::CoreDoor& door, ClaimCheck& check, Refusal* refusal) {
  if (!check.refused) {
    return check.error == Errc{} ? std::error_code{} : make_error_code(check.error);
  }
  ClaimCheck::Refused& refused = *check.refused;
  Refusal r = door.refuse(Stage::claim, refused.reason, "realm " + refused.realm,
                          std::move(refused.limit), std::move(refused.message));
  if (refusal != nullptr) *refusal = std::move(r);
  return refused.reason == RefusalReason::pending_limit ? make_error_code(Errc::limit_exceeded)
                                                        : make_error_code(Errc::realm_full);
}

}  // namespace

Admission RealmConnectionManager::claim(const Reservation& reservation, std::string_view realm) {
  Admission result;
  result.error = claim_checked(reservation, realm, &result.refusal);
  return result;
}

Admission RealmConnectionManager::on_secured(Reservation& reservation, const NodeId& peer,
                                             std::string_view realm) {
  Admission result;
  result.error = secure_checked(reservation, peer, realm, &result.refusal);
  return result;
}

std::error_code RealmConnectionManager::claim_checked(const Reservation& reservation,
                                                      std::string_view realm, Refusal* refusal) {
  if (!reservation.valid()) return Errc::invalid_argument;
  ClaimCheck check(*state_, realm);
  const std::optional<bool> accepted = state_->door->claim(reservation, check);
  if (!accepted) return state_->manager->is_closed() ? Errc::closed : Errc::invalid_argument;
  return verdict(*state_->door, check, refusal);
}

std::error_code RealmConnectionManager::secure_checked(Reservation& reservation, const NodeId& peer,
                                                       std::string_view realm, Refusal* refusal) {
  if (!reservation.remote()) return Errc::invalid_argument;  // not an admission's reservation
  ClaimCheck check(*state_, realm);
  if (auto ec = state_->door->secure(reservation, reservation.direction(), peer,
                                     *reservation.remote(), refusal, check)) {
    return ec;
  }
  if (!check.ran) return Errc::invalid_argument;
  return verdict(*state_->door, check, refusal);
}

void State::on_claims_end(const detail::Locked<>&, const NodeId& peer,
                          std::span<const std::uint64_t> claims,
                          const detail::ConnectionPlace* added,
                          std::vector<Event>* events) noexcept {
  std::lock_guard lock(mutex);
  for (const std::uint64_t token : claims) {
    bool member_place = false;
    Realm* realm = claimed_realm(token, member_place);
    if (realm == nullptr) continue;
    --realm->claims;
    if (member_place) {
      if (auto it = realm->claimants.find(peer);
          it != realm->claimants.end() && --it->second == 0) {
        realm->claimants.erase(it);
      }
    }
  }
  if (added == nullptr || closed) return;
  if (added->slot >= bindings.size()) bindings.resize(added->slot + 1);
  Binding& b = bindings[added->slot];
  if (b.id != added->id) {
    // Left by an earlier connection in this slot whose bind raced its closure.
    while (!b.realms.empty()) drop(b, b.realms.size() - 1);
    b.id = added->id;
  }
  for (const std::uint64_t token : claims) {
    bool member_place = false;
    Realm* realm = claimed_realm(token, member_place);
    if (realm == nullptr || position(b, realm)) continue;
    try {
      add(b, *realm, peer);
    } catch (...) {
      continue;  // out of memory: the connection stays in the pool, unbound from this realm
    }
    if (realm->config.high_water > 0 && realm->connections >= realm->config.high_water) {
      schedule_trim(*realm);
    }
    if (events != nullptr) events->emplace_back(RealmBoundEvent{realm->name, peer, added->id});
  }
  if (b.realms.empty()) b.id = ConnectionId{};
}

}  // namespace dep2p::connmgr
