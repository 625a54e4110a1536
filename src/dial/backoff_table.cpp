#include "dial/backoff_table.hpp"

#include <algorithm>
#include <cmath>

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

BackoffTable::BackoffTable(const Rules& rules, std::uint64_t seed) : rules_(rules), rng_(seed) {}

void BackoffTable::set_rules(const Rules& rules) {
  rules_ = rules;
  while (entries_.size() > rules_.max_peers) make_room();
}

bool BackoffTable::forgotten(const Wait& wait, TimePoint now) const {
  return wait.failures == 0 || now >= wait.until + rules_.memory;
}

bool BackoffTable::forgotten(const Entry& entry, TimePoint now) const {
  if (!forgotten(entry.peer, now)) return false;
  return std::ranges::all_of(entry.addresses,
                             [&](const Address& a) { return forgotten(a.wait, now); });
}

const BackoffTable::Entry* BackoffTable::live(const NodeId& peer, TimePoint now) const {
  auto it = entries_.find(peer);
  return it == entries_.end() || forgotten(it->second, now) ? nullptr : &it->second;
}

std::optional<TimePoint> BackoffTable::peer_until(const NodeId& peer, TimePoint now,
                                                  std::uint32_t* failures) const {
  if (entries_.empty()) return std::nullopt;
  auto it = entries_.find(peer);
  if (it == entries_.end() || it->second.peer.until <= now) return std::nullopt;
  if (failures != nullptr) *failures = it->second.peer.failures;
  return it->second.peer.until;
}

std::optional<TimePoint> BackoffTable::address_until(const NodeId& peer, const Endpoint& address,
                                                     TimePoint now) const {
  if (entries_.empty()) return std::nullopt;
  auto it = entries_.find(peer);
  if (it == entries_.end()) return std::nullopt;
  for (const Address& a : it->second.addresses) {
    if (a.endpoint == address) {
      return a.wait.until > now ? std::optional<TimePoint>(a.wait.until) : std::nullopt;
    }
  }
  return std::nullopt;
}

std::uint32_t BackoffTable::failures(const NodeId& peer, TimePoint now) const {
  const Entry* entry = live(peer, now);
  return entry == nullptr || forgotten(entry->peer, now) ? 0 : entry->peer.failures;
}

std::uint32_t BackoffTable::failures(const NodeId& peer, const Endpoint& address,
                                     TimePoint now) const {
  const Entry* entry = live(peer, now);
  if (entry == nullptr) return 0;
  for (const Address& a : entry->addresses) {
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
  auto it = entries_.find(peer);
  if (it == entries_.end()) {
    if (entries_.size() >= rules_.max_peers) make_room();
    it = entries_.try_emplace(peer).first;
  } else if (forgotten(it->second, now)) {
    it->second = Entry{};
  }
  Entry& entry = it->second;
  Wait* wait = &entry.peer;
  if (address != nullptr) {
    auto a = std::ranges::find_if(entry.addresses,
                                  [&](const Address& x) { return x.endpoint == *address; });
    if (a == entry.addresses.end()) {
      if (entry.addresses.size() >= rules_.max_addresses) {
        // The address whose backoff ends first makes way.
        entry.addresses.erase(std::ranges::min_element(
            entry.addresses, {}, [](const Address& x) { return x.wait.until; }));
      }
      entry.addresses.push_back(Address{*address, Wait{}});
      a = entry.addresses.end() - 1;
    }
    wait = &a->wait;
  }
  if (forgotten(*wait, now)) *wait = Wait{};
  ++wait->failures;
  wait->until = now + wait_for(kind, wait->failures);
  entry.last_failure = now;
  entry.stamp = next_stamp_++;
  order_.push_back(Record{peer, entry.stamp});
  if (order_.size() > 2 * entries_.size() + 64) compact();
  return wait->until;
}

void BackoffTable::make_room() {
  // The oldest record still current names the entry whose last failure is oldest.
  while (!order_.empty()) {
    const Record record = order_.front();
    order_.pop_front();
    auto it = entries_.find(record.peer);
    if (it == entries_.end() || it->second.stamp != record.stamp) continue;
    entries_.erase(it);
    return;
  }
  // No record (cannot happen while every entry has one): any entry makes way.
  if (!entries_.empty()) entries_.erase(entries_.begin());
}

void BackoffTable::compact() {
  std::erase_if(order_, [&](const Record& record) {
    auto it = entries_.find(record.peer);
    return it == entries_.end() || it->second.stamp != record.stamp;
  });
}

void BackoffTable::clear(const NodeId& peer) {
  if (!entries_.empty()) entries_.erase(peer);
}

void BackoffTable::clear(const NodeId& peer, const Endpoint& address) {
  auto it = entries_.find(peer);
  if (it == entries_.end()) return;
  std::erase_if(it->second.addresses, [&](const Address& a) { return a.endpoint == address; });
  if (it->second.addresses.empty() && it->second.peer.failures == 0) entries_.erase(it);
}

void BackoffTable::lift_all(TimePoint now) {
  for (auto& [peer, entry] : entries_) {
    entry.peer.until = std::min(entry.peer.until, now);
    for (Address& a : entry.addresses) a.wait.until = std::min(a.wait.until, now);
  }
}

std::size_t BackoffTable::in_backoff(TimePoint now) const {
  std::size_t n = 0;
  for (const auto& [peer, entry] : entries_) {
    if (entry.peer.until > now || std::ranges::any_of(entry.addresses, [&](const Address& a) {
          return a.wait.until > now;
        })) {
      ++n;
    }
  }
  return n;
}

}  // namespace dep2p::connmgr::detail
