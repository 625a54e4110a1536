#include "dial/backoff_table.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace dep2p::connmgr::detail {

namespace {

// splitmix64: a small, well-mixed generator for the jitter.
std::uint64_t next_random(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

BackoffTable::Rules BackoffTable::rules_of(const DialConfig& c) {
  Rules rules;
  rules.by_kind[static_cast<std::size_t>(BackoffKind::error)] = {c.error_backoff,
                                                                 c.error_backoff_max};
  rules.by_kind[static_cast<std::size_t>(BackoffKind::timeout)] = {c.timeout_backoff,
                                                                   c.timeout_backoff_max};
  rules.by_kind[static_cast<std::size_t>(BackoffKind::refused)] = {c.refused_backoff,
                                                                   c.refused_backoff_max};
  rules.factor = c.backoff_factor;
  rules.jitter = c.backoff_jitter;
  rules.memory = c.backoff_memory;
  rules.max_peers = std::max<std::size_t>(c.max_backoff_peers, 1);
  rules.max_addresses = std::max<std::size_t>(c.max_backoff_addresses, 1);
  return rules;
}

BackoffTable::BackoffTable(const Rules& rules, std::uint64_t seed) : rules_(rules), rng_(seed) {
  salt_ = next_random(rng_);
}

BackoffTable::Identity BackoffTable::identity(const NodeId& peer) const noexcept {
  const std::uint64_t check = peer.hash();
  // The salted key: the id's bytes mixed again from a per-table start, so that which ids
  // share a key cannot be worked out from outside.
  std::uint64_t key = salt_;
  const auto bytes = peer.bytes();
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, bytes.data() + i, 8);
    key = (key ^ word) * 0x9e3779b97f4a7c15ULL;
    key ^= key >> 29;
  }
  if (i < bytes.size()) {
    std::uint64_t word = 0;
    std::memcpy(&word, bytes.data() + i, bytes.size() - i);
    key = (key ^ word) * 0xbf58476d1ce4e5b9ULL;
  }
  key ^= bytes.size();
  key = (key ^ (key >> 30)) * 0xbf58476d1ce4e5b9ULL;
  key = (key ^ (key >> 27)) * 0x94d049bb133111ebULL;
  return Identity{key ^ (key >> 31), check};
}

const BackoffTable::Entry* BackoffTable::find(const NodeId& peer) const {
  if (entries_.empty()) return nullptr;
  const Identity id = identity(peer);
  auto it = entries_.find(id.key);
  return it == entries_.end() || it->second.check != id.check ? nullptr : &it->second;
}

std::vector<BackoffTable::Address>& BackoffTable::own_addresses(Entry& entry) {
  if (entry.addresses == kNoAddresses) {
    if (!free_lists_.empty()) {
      entry.addresses = free_lists_.back();
      free_lists_.pop_back();
    } else {
      entry.addresses = static_cast<std::uint32_t>(address_lists_.size());
      address_lists_.emplace_back();
    }
  }
  return address_lists_[entry.addresses];
}

void BackoffTable::erase(Entries::iterator it) {
  if (it->second.addresses != kNoAddresses) {
    std::vector<Address>& list = address_lists_[it->second.addresses];
    list.clear();
    list.shrink_to_fit();
    free_lists_.push_back(it->second.addresses);
  }
  entries_.erase(it);
}

bool BackoffTable::forgotten(const Wait& wait, TimePoint now) const {
  return wait.failures == 0 || now >= wait.until + rules_.memory;
}

bool BackoffTable::forgotten(const Entry& entry, TimePoint now) const {
  if (!forgotten(entry.peer, now)) return false;
  const std::vector<Address>* list = addresses_of(entry);
  return list == nullptr ||
         std::ranges::all_of(*list, [&](const Address& a) { return forgotten(a.wait, now); });
}

std::optional<TimePoint> BackoffTable::peer_until(const NodeId& peer, TimePoint now,
                                                  std::uint32_t* failures) const {
  const Entry* entry = find(peer);
  if (entry == nullptr || entry->peer.until <= now) return std::nullopt;
  if (failures != nullptr) *failures = entry->peer.failures;
  return entry->peer.until;
}

std::optional<TimePoint> BackoffTable::address_until(const NodeId& peer, const Endpoint& address,
                                                     TimePoint now) const {
  const Entry* entry = find(peer);
  const std::vector<Address>* list = entry != nullptr ? addresses_of(*entry) : nullptr;
  if (list == nullptr) return std::nullopt;
  for (const Address& a : *list) {
    if (a.endpoint == address) {
      return a.wait.until > now ? std::optional<TimePoint>(a.wait.until) : std::nullopt;
    }
  }
  return std::nullopt;
}

std::uint32_t BackoffTable::failures(const NodeId& peer, TimePoint now) const {
  const Entry* entry = find(peer);
  return entry == nullptr || forgotten(entry->peer, now) ? 0 : entry->peer.failures;
}

std::uint32_t BackoffTable::failures(const NodeId& peer, const Endpoint& address,
                                     TimePoint now) const {
  const Entry* entry = find(peer);
  const std::vector<Address>* list = entry != nullptr ? addresses_of(*entry) : nullptr;
  if (list == nullptr) return 0;
  for (const Address& a : *list) {
    if (a.endpoint == address) return forgotten(a.wait, now) ? 0 : a.wait.failures;
  }
  return 0;
}

Duration BackoffTable::wait_for(BackoffKind kind, std::uint32_t failures) {
  const Rule& rule = rules_.by_kind[static_cast<std::size_t>(kind)];
  const double base = std::chrono::duration<double>(rule.base).count();
  const double cap = std::chrono::duration<double>(rule.max).count();
  // base * factor^(failures - 1), at most the cap (the power stops growing once past it).
  double seconds = base;
  for (std::uint32_t n = 1; n < failures && seconds < cap; ++n) seconds *= rules_.factor;
  seconds = std::min(seconds, cap);
  if (rules_.jitter > 0) {
    // A uniform fraction in [-jitter, +jitter].
    const double unit = static_cast<double>(next_random(rng_) >> 11) * 0x1.0p-53;
    seconds *= 1.0 + rules_.jitter * (2.0 * unit - 1.0);
  }
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds));
}

TimePoint BackoffTable::fail(const NodeId& peer, const Endpoint* address, BackoffKind kind,
                             TimePoint now) {
  const Identity id = identity(peer);
  auto it = entries_.find(id.key);
  if (it != entries_.end() && (it->second.check != id.check || forgotten(it->second, now))) {
    erase(it);  // another peer's entry under this key (both hashes collided), or forgotten
    it = entries_.end();
  }
  if (it == entries_.end()) {
    if (entries_.size() >= rules_.max_peers) make_room();
    it = entries_.try_emplace(id.key).first;
    it->second.check = id.check;
  }
  Entry& entry = it->second;
  Wait* wait = &entry.peer;
  if (address != nullptr) {
    std::vector<Address>& list = own_addresses(entry);
    auto a = std::ranges::find_if(list, [&](const Address& x) { return x.endpoint == *address; });
    if (a == list.end()) {
      if (list.size() >= rules_.max_addresses) {
        // The address whose backoff ends first makes way.
        list.erase(
            std::ranges::min_element(list, {}, [](const Address& x) { return x.wait.until; }));
      }
      list.push_back(Address{*address, Wait{}});
      a = list.end() - 1;
    }
    wait = &a->wait;
  }
  if (forgotten(*wait, now)) *wait = Wait{};
  ++wait->failures;
  wait->until = now + wait_for(kind, wait->failures);
  entry.stamp = next_stamp_++;
  order_.push_back(Record{id.key, entry.stamp});
  if (order_.size() > 2 * entries_.size() + 64) compact();
  return wait->until;
}

void BackoffTable::make_room() {
  // The oldest record still current names the entry whose last failure is oldest.
  while (!order_.empty()) {
    const Record record = order_.front();
    order_.pop_front();
    auto it = entries_.find(record.key);
    if (it == entries_.end() || it->second.stamp != record.stamp) continue;
    erase(it);
    return;
  }
  // No record (cannot happen while every entry has one): any entry makes way.
  if (!entries_.empty()) erase(entries_.begin());
}

void BackoffTable::compact() {
  std::erase_if(order_, [&](const Record& record) {
    auto it = entries_.find(record.key);
    return it == entries_.end() || it->second.stamp != record.stamp;
  });
}

void BackoffTable::clear(const NodeId& peer) {
  if (entries_.empty()) return;
  const Identity id = identity(peer);
  auto it = entries_.find(id.key);
  if (it != entries_.end() && it->second.check == id.check) erase(it);
}

void BackoffTable::clear(const NodeId& peer, const Endpoint& address) {
  if (entries_.empty()) return;
  const Identity id = identity(peer);
  auto it = entries_.find(id.key);
  if (it == entries_.end() || it->second.check != id.check) return;
  if (it->second.addresses != kNoAddresses) {
    std::erase_if(address_lists_[it->second.addresses],
                  [&](const Address& a) { return a.endpoint == address; });
  }
  const std::vector<Address>* list = addresses_of(it->second);
  if ((list == nullptr || list->empty()) && it->second.peer.failures == 0) erase(it);
}

void BackoffTable::lift_all(TimePoint now) {
  for (auto& [key, entry] : entries_) entry.peer.until = std::min(entry.peer.until, now);
  for (auto& list : address_lists_) {
    for (Address& a : list) a.wait.until = std::min(a.wait.until, now);
  }
}

std::size_t BackoffTable::in_backoff(TimePoint now) const {
  std::size_t n = 0;
  for (const auto& [key, entry] : entries_) {
    const std::vector<Address>* list = addresses_of(entry);
    const auto lasts = [&](const Address& a) { return a.wait.until > now; };
    if (entry.peer.until > now || (list != nullptr && std::ranges::any_of(*list, lasts))) ++n;
  }
  return n;
}

}  // namespace dep2p::connmgr::detail
