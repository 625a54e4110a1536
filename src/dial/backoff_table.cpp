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

std::vector<BackoffTable::Address>& BackoffTable::own_addresses(Cold& cold) {
  if (cold.addresses == kNoAddresses) {
    if (!free_lists_.empty()) {
      cold.addresses = free_lists_.back();
      free_lists_.pop_back();
    } else {
      cold.addresses = static_cast<std::uint32_t>(address_lists_.size());
      address_lists_.emplace_back();
    }
  }
  return address_lists_[cold.addresses];
}

void BackoffTable::erase(std::uint64_t key, std::size_t at) {
  const std::uint32_t addresses = entries_.cold(at).addresses;
  if (addresses != kNoAddresses) {
    std::vector<Address>& list = address_lists_[addresses];
    list.clear();
    list.shrink_to_fit();
    free_lists_.push_back(addresses);
  }
  entries_.erase(key);
}

bool BackoffTable::forgotten(TimePoint until, std::uint32_t failures, TimePoint now) const {
  return failures == 0 || now >= until + rules_.memory;
}

bool BackoffTable::forgotten(std::size_t at, TimePoint now) const {
  if (!forgotten(entries_.hot(at).until, entries_.cold(at).failures, now)) return false;
  const std::vector<Address>* list = addresses_of(entries_.cold(at));
  return list == nullptr ||
         std::ranges::all_of(*list, [&](const Address& a) { return forgotten(a.wait, now); });
}

std::optional<TimePoint> BackoffTable::address_until(const NodeId& peer, const Endpoint& address,
                                                     TimePoint now) const {
  const std::size_t at = find(peer);
  const std::vector<Address>* list = at != npos ? addresses_of(entries_.cold(at)) : nullptr;
  if (list == nullptr) return std::nullopt;
  for (const Address& a : *list) {
    if (a.endpoint == address) {
      return a.wait.until > now ? std::optional<TimePoint>(a.wait.until) : std::nullopt;
    }
  }
  return std::nullopt;
}

std::uint32_t BackoffTable::failures(const NodeId& peer, TimePoint now) const {
  const std::size_t at = find(peer);
  if (at == npos) return 0;
  const std::uint32_t failures = entries_.cold(at).failures;
  return forgotten(entries_.hot(at).until, failures, now) ? 0 : failures;
}

std::uint32_t BackoffTable::failures(const NodeId& peer, const Endpoint& address,
                                     TimePoint now) const {
  const std::size_t at = find(peer);
  const std::vector<Address>* list = at != npos ? addresses_of(entries_.cold(at)) : nullptr;
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
  const std::uint64_t key = key_of(peer);
  std::size_t at = entries_.find(key);
  if (at != npos && forgotten(at, now)) {
    erase(key, at);  // forgotten: its sequence starts again
    at = npos;
  }
  if (at == npos) {
    if (entries_.size() >= rules_.max_peers) make_room();
    at = entries_.emplace(key);
  }
  Cold& cold = entries_.cold(at);
  TimePoint* until = &entries_.hot(at).until;
  std::uint32_t* failures = &cold.failures;
  if (address != nullptr) {
    std::vector<Address>& list = own_addresses(cold);
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
    until = &a->wait.until;
    failures = &a->wait.failures;
  }
  if (forgotten(*until, *failures, now)) *failures = 0;
  ++*failures;
  *until = now + wait_for(kind, *failures);
  cold.stamp = next_stamp_++;
  order_.push_back(Record{key, cold.stamp});
  if (order_.size() > 2 * entries_.size() + 64) compact();
  return *until;
}

void BackoffTable::make_room() {
  // The oldest record still current names the entry whose last failure is oldest.
  while (!order_.empty()) {
    const Record record = order_.front();
    order_.pop_front();
    const std::size_t at = entries_.find(record.key);
    if (at == npos || entries_.cold(at).stamp != record.stamp) continue;
    erase(record.key, at);
    return;
  }
  // No record (cannot happen while every entry has one): any entry makes way.
  if (const std::uint64_t key = entries_.any_key(); key != 0) erase(key, entries_.find(key));
}

void BackoffTable::compact() {
  std::erase_if(order_, [&](const Record& record) {
    const std::size_t at = entries_.find(record.key);
    return at == npos || entries_.cold(at).stamp != record.stamp;
  });
}

void BackoffTable::clear(const NodeId& peer) {
  if (entries_.empty()) return;
  const std::uint64_t key = key_of(peer);
  if (const std::size_t at = entries_.find(key); at != npos) erase(key, at);
}

void BackoffTable::clear(const NodeId& peer, const Endpoint& address) {
  if (entries_.empty()) return;
  const std::uint64_t key = key_of(peer);
  const std::size_t at = entries_.find(key);
  if (at == npos) return;
  const Cold& cold = entries_.cold(at);
  if (cold.addresses != kNoAddresses) {
    std::erase_if(address_lists_[cold.addresses],
                  [&](const Address& a) { return a.endpoint == address; });
  }
  const std::vector<Address>* list = addresses_of(cold);
  if ((list == nullptr || list->empty()) && cold.failures == 0) erase(key, at);
}

void BackoffTable::lift_all(TimePoint now) {
  entries_.for_each([&](std::uint64_t, Hot& hot, Cold&) { hot.until = std::min(hot.until, now); });
  for (auto& list : address_lists_) {
    for (Address& a : list) a.wait.until = std::min(a.wait.until, now);
  }
}

std::size_t BackoffTable::in_backoff(TimePoint now) const {
  std::size_t n = 0;
  entries_.for_each([&](std::uint64_t, const Hot& hot, const Cold& cold) {
    const std::vector<Address>* list = addresses_of(cold);
    const auto lasts = [&](const Address& a) { return a.wait.until > now; };
    if (hot.until > now || (list != nullptr && std::ranges::any_of(*list, lasts))) ++n;
  });
  return n;
}

}  // namespace dep2p::connmgr::detail
