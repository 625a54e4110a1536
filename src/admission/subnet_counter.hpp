// SubnetCounter: the per-address and per-subnet connection caps of docs/design.md, "Admission"
// (defaults: 8 per IPv4 address, 64 per IPv4 /24, 8 per IPv6 /56, 64 per IPv6 /48). It counts
// connections, open and pending alike, so that one host or one network cannot take the
// whole pool however its connections are spread over time.
//
//   SubnetCounter counter(limits.subnets);
//   if (auto refusal = counter.try_add(remote.address, gater.is_allowed(remote.address)))
//     return refuse(*refusal);  // "subnet 10.1.2.0/24 holds 64 of 64 connections"
//   ...
//   counter.remove(remote.address);  // once per successful try_add, when it closes
//
// Rules, decided once at construction (the caps cannot change afterwards, which is what
// lets remove() work out from the address alone what try_add() counted):
// - An address inside an override prefix (the longest matching one) is capped only by
//   that override: all connections inside the prefix together, at most max_connections.
// - Any other address is capped per address (IPv4 only: an IPv6 host usually owns a whole
//   /64, so a per-address cap would mean nothing) and per subnet (IPv4 /24, IPv6 /56 and
//   /48); a refusal names the narrowest full scope.
// - Loopback (when caps.exempt_loopback) and bypassed (allow-listed) connections are not
//   capped and do not count against anyone's cap: an allowed host must not crowd out its
//   neighbours (go-libp2p's allow list likewise skips its IP limiter). They are still
//   recorded per address so that remove() stays exact.
// Counts are exact: remove() undoes one try_add() of the same address, never underflows
// and returns false for an address with nothing counted. Every entry that drops to zero is
// erased, so memory follows the connections held, not the addresses ever seen.
//
// Thread safety: none inside. The owner's lock protects it.
#pragma once

#include <algorithm>
#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/unordered/unordered_flat_map.hpp>

#include "dep2p/connmgr/config.hpp"
#include "dep2p/connmgr/limits.hpp"
#include "net/prefix.hpp"

namespace dep2p::connmgr::detail {

class SubnetCounter {
 public:
  // Throws std::invalid_argument with the message of validate() when it finds an error.
  explicit SubnetCounter(SubnetCaps caps = {}) : caps_(std::move(caps)) {
    if (auto error = validate(caps_)) throw std::invalid_argument(error->message);
    for (const PrefixOverride& o : caps_.overrides) {
      const Prefix prefix = *parse_prefix(o.subnet);
      override_caps_.emplace(prefix, o.max_connections);
      std::vector<std::uint8_t>& lengths = override_lengths_[family_index(prefix.family)];
      if (std::find(lengths.begin(), lengths.end(), prefix.length) == lengths.end()) {
        lengths.push_back(prefix.length);
      }
    }
    for (auto& lengths : override_lengths_) {
      std::sort(lengths.begin(), lengths.end(), std::greater<>());
    }
  }

  // The first override the constructor would refuse (see check_overrides in
  // net/prefix.hpp): every configuration Config::validate() accepts constructs.
  static std::optional<ConfigError> validate(const SubnetCaps& caps) {
    return check_overrides(caps);
  }

  // Counts one connection from `address` if every cap that applies has room; otherwise
  // changes nothing and returns the refusal, e.g. "address 10.1.2.3 holds 8 of 8
  // connections" or "subnet 10.0.0.0/8 (override) holds 100 of 100 connections".
  // `bypass` (the address is allow-listed) skips the caps.
  std::optional<std::string> try_add(const boost::asio::ip::address& address, bool bypass) {
    const Prefix host = host_prefix(address);
    if (bypass || (caps_.exempt_loopback && is_loopback(host))) {
      ++addresses_[host].uncapped;
      return std::nullopt;
    }
    if (const auto o = find_override(host)) {
      const std::size_t held = count(o->first);
      if (held >= o->second)
        return holds("subnet " + to_string(o->first) + " (override)", held, o->second);
      ++prefixes_[o->first];
      ++addresses_[host].capped;
      return std::nullopt;
    }
    if (host.family == Family::v4) {
      const auto it = addresses_.find(host);
      const std::size_t held = it == addresses_.end() ? 0 : it->second.capped;
      if (held >= caps_.ipv4_32) return holds("address " + address_text(host), held, caps_.ipv4_32);
    }
    const Levels levels = subnet_levels(host.family);
    for (std::size_t i = 0; i < levels.size; ++i) {
      const Prefix subnet = prefix_of(host, levels.length[i]);
      const std::size_t held = count(subnet);
      if (held >= levels.cap[i]) return holds("subnet " + to_string(subnet), held, levels.cap[i]);
    }
    for (std::size_t i = 0; i < levels.size; ++i) ++prefixes_[prefix_of(host, levels.length[i])];
    ++addresses_[host].capped;
    return std::nullopt;
  }

  // Undoes one successful try_add() of `address` (compared after normalization). Returns
  // false, changing nothing, when nothing is counted for it. When an address holds both
  // uncapped and capped connections (its allow-list status changed in between), the
  // uncapped ones are released first: that keeps the caps' counts high, the safe side,
  // and totals stay exact either way.
  bool remove(const boost::asio::ip::address& address) {
    const Prefix host = host_prefix(address);
    const auto it = addresses_.find(host);
    if (it == addresses_.end()) return false;
    AddressCount& n = it->second;
    if (n.uncapped > 0) {
      --n.uncapped;
    } else {
      --n.capped;
      if (const auto o = find_override(host)) {
        release(o->first);
      } else {
        const Levels levels = subnet_levels(host.family);
        for (std::size_t i = 0; i < levels.size; ++i) release(prefix_of(host, levels.length[i]));
      }
    }
    if (n.capped == 0 && n.uncapped == 0) addresses_.erase(it);
    return true;
  }

  // Connections counted from this address, capped or not.
  std::size_t connections(const boost::asio::ip::address& address) const {
    const auto it = addresses_.find(host_prefix(address));
    return it == addresses_.end() ? 0 : std::size_t{it->second.capped} + it->second.uncapped;
  }
  // Connections charged to a subnet (IPv4 /24, IPv6 /56 or /48) or to an override prefix.
  std::size_t count(const Prefix& prefix) const {
    const auto it = prefixes_.find(prefix);
    return it == prefixes_.end() ? 0 : it->second;
  }
  // Table entries (addresses and prefixes) in use: zero when nothing is counted.
  std::size_t tracked() const { return addresses_.size() + prefixes_.size(); }
  const SubnetCaps& caps() const { return caps_; }

 private:
  struct AddressCount {
    std::uint32_t capped = 0;    // also charged to its subnets, or to its override prefix
    std::uint32_t uncapped = 0;  // bypassed or loopback: charged nowhere else
  };
  // The subnets a capped address of one family is charged to, narrowest first.
  struct Levels {
    std::size_t size;
    std::array<unsigned, 2> length;
    std::array<std::size_t, 2> cap;
  };

  static std::size_t family_index(Family family) { return family == Family::v4 ? 0 : 1; }

  Levels subnet_levels(Family family) const {
    if (family == Family::v4) return Levels{1, {24, 0}, {caps_.ipv4_24, 0}};
    return Levels{2, {56, 48}, {caps_.ipv6_56, caps_.ipv6_48}};
  }

  // The longest override prefix holding `host` and its cap: one probe per distinct
  // override length of the family, so a few lengths cost a few probes however many
  // overrides share them.
  std::optional<std::pair<Prefix, std::size_t>> find_override(const Prefix& host) const {
    for (const std::uint8_t length : override_lengths_[family_index(host.family)]) {
      const Prefix prefix = prefix_of(host, length);
      if (const auto it = override_caps_.find(prefix); it != override_caps_.end()) {
        return std::pair{prefix, it->second};
      }
    }
    return std::nullopt;
  }

  void release(const Prefix& prefix) {
    const auto it = prefixes_.find(prefix);
    assert(it != prefixes_.end() && it->second > 0);
    if (it == prefixes_.end()) return;
    if (--it->second == 0) prefixes_.erase(it);
  }

  static std::string holds(const std::string& scope, std::size_t held, std::size_t cap) {
    return scope + " holds " + std::to_string(held) + " of " + std::to_string(cap) + " connections";
  }

  SubnetCaps caps_;
  // Override prefix -> its cap; override_lengths_[family] lists the distinct lengths in
  // use, longest first, so the first hit is the longest match.
  boost::unordered_flat_map<Prefix, std::size_t, PrefixHash> override_caps_;
  std::array<std::vector<std::uint8_t>, 2> override_lengths_;
  // Every address with at least one counted connection (host keys, normalized).
  boost::unordered_flat_map<Prefix, AddressCount, PrefixHash> addresses_;
  // Subnet and override prefix -> capped connections inside it; never holds a zero. One
  // table serves both because their keys cannot meet: a subnet key is only charged by
  // addresses outside every override, so it never equals an override prefix.
  boost::unordered_flat_map<Prefix, std::size_t, PrefixHash> prefixes_;
};

}  // namespace dep2p::connmgr::detail
