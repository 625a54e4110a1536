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
// - With a group cap (GroupCap::max > 0), every capped connection outside the overrides,
//   inbound or outbound, is also charged to its network group (net/netgroup.hpp), which
//   holds at most `max`. Outbound connections are charged to their group only: the other
//   caps are inbound ones. A refusal names the narrowest full scope, the group last.
// - Loopback (when caps.exempt_loopback) and bypassed (allow-listed) connections are not
//   capped and do not count against anyone's cap: an allowed host must not crowd out its
//   neighbours (go-libp2p's allow list likewise skips its IP limiter). They are still
//   recorded per address so that remove() stays exact.
// Counts are exact: remove() undoes one try_add() of the same address and direction,
// never underflows and returns false for an address with nothing counted. Every entry that
// drops to zero is erased, so memory follows the connections held, not the addresses ever
// seen.
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
#include "dep2p/connmgr/types.hpp"
#include "net/netgroup.hpp"
#include "net/prefix.hpp"

namespace dep2p::connmgr::detail {

// Connections one network group may hold, both directions together (DiversityConfig::
// max_per_group); max 0: no cap.
struct GroupCap {
  GroupRule rule;
  std::size_t max = 0;
};

class SubnetCounter {
 public:
  // Throws std::invalid_argument with the message of validate() when it finds an error.
  explicit SubnetCounter(SubnetCaps caps = {}, GroupCap group = {})
      : caps_(std::move(caps)), group_(group) {
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
  // connections", "subnet 10.0.0.0/8 (override) holds 100 of 100 connections" or "group
  // 10.1.0.0/16 holds 2 of 2 connections". `bypass` (the address is allow-listed) skips the
  // caps. An outbound connection is charged to its group only, and only under a group cap
  // (has_group_cap(); without one the caller need not count outbound connections at all).
  std::optional<std::string> try_add(const boost::asio::ip::address& address, bool bypass,
                                     Direction direction = Direction::inbound) {
    const Prefix host = host_prefix(address);
    const bool exempt = bypass || (caps_.exempt_loopback && is_loopback(host));
    if (direction == Direction::outbound) {
      if (exempt || !has_group_cap() || find_override(host)) {
        ++outbound_[host].uncapped;
        return std::nullopt;
      }
      const NetGroup group = network_group(address, group_.rule);
      if (auto refusal = group_full(group)) return refusal;
      ++groups_[group];
      ++outbound_[host].capped;
      return std::nullopt;
    }
    if (exempt) {
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
    if (has_group_cap()) {
      const NetGroup group = network_group(address, group_.rule);
      if (auto refusal = group_full(group)) return refusal;
      ++groups_[group];
    }
    for (std::size_t i = 0; i < levels.size; ++i) ++prefixes_[prefix_of(host, levels.length[i])];
    ++addresses_[host].capped;
    return std::nullopt;
  }

  // Undoes one successful try_add() of `address` (compared after normalization) in
  // `direction`: inbound and outbound charges are kept apart, so a removal touches only
  // its direction's. Returns false, changing nothing, when nothing of that direction is
  // counted for it. When an address holds both uncapped and capped connections of one
  // direction (its allow-list status changed in between), the uncapped ones are released
  // first: that keeps the caps' counts high, the safe side, and totals stay exact either
  // way.
  bool remove(const boost::asio::ip::address& address, Direction direction = Direction::inbound) {
    const Prefix host = host_prefix(address);
    if (direction == Direction::outbound) {
      const auto it = outbound_.find(host);
      if (it == outbound_.end()) return false;
      AddressCount& n = it->second;
      if (n.uncapped > 0) {
        --n.uncapped;
      } else {
        --n.capped;
        release_group(network_group(address, group_.rule));
      }
      if (n.capped == 0 && n.uncapped == 0) outbound_.erase(it);
      return true;
    }
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
        if (has_group_cap()) release_group(network_group(address, group_.rule));
      }
    }
    if (n.capped == 0 && n.uncapped == 0) addresses_.erase(it);
    return true;
  }

  // Connections counted from this address, capped or not.
  std::size_t connections(const boost::asio::ip::address& address) const {
    const Prefix host = host_prefix(address);
    const auto it = addresses_.find(host);
    std::size_t n =
        it == addresses_.end() ? 0 : std::size_t{it->second.capped} + it->second.uncapped;
    if (const auto o = outbound_.find(host); o != outbound_.end()) {
      n += std::size_t{o->second.capped} + o->second.uncapped;
    }
    return n;
  }
  // Connections charged to a subnet (IPv4 /24, IPv6 /56 or /48) or to an override prefix.
  std::size_t count(const Prefix& prefix) const {
    const auto it = prefixes_.find(prefix);
    return it == prefixes_.end() ? 0 : it->second;
  }
  // Connections charged to a network group (under a group cap).
  std::size_t group_count(const NetGroup& group) const {
    const auto it = groups_.find(group);
    return it == groups_.end() ? 0 : it->second;
  }
  // Table entries (addresses, prefixes and groups) in use: zero when nothing is counted.
  std::size_t tracked() const {
    return addresses_.size() + prefixes_.size() + groups_.size() + outbound_.size();
  }
  const SubnetCaps& caps() const { return caps_; }
  bool has_group_cap() const { return group_.max > 0; }

 private:
  struct AddressCount {
    // Inbound: charged to its subnets and group, or to its override prefix. Outbound:
    // charged to its group.
    std::uint32_t capped = 0;
    std::uint32_t uncapped = 0;  // charged nowhere else (bypassed, loopback, ...)
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

  std::optional<std::string> group_full(const NetGroup& group) const {
    const std::size_t held = group_count(group);
    if (held < group_.max) return std::nullopt;
    return holds("group " + to_string(group), held, group_.max);
  }

  void release_group(const NetGroup& group) {
    const auto it = groups_.find(group);
    assert(it != groups_.end() && it->second > 0);
    if (it == groups_.end()) return;
    if (--it->second == 0) groups_.erase(it);
  }

  static std::string holds(const std::string& scope, std::size_t held, std::size_t cap) {
    return scope + " holds " + std::to_string(held) + " of " + std::to_string(cap) + " connections";
  }

  SubnetCaps caps_;
  GroupCap group_;
  // Override prefix -> its cap; override_lengths_[family] lists the distinct lengths in
  // use, longest first, so the first hit is the longest match.
  boost::unordered_flat_map<Prefix, std::size_t, PrefixHash> override_caps_;
  std::array<std::vector<std::uint8_t>, 2> override_lengths_;
  // Every address with at least one counted inbound connection (host keys, normalized).
  boost::unordered_flat_map<Prefix, AddressCount, PrefixHash> addresses_;
  // Subnet and override prefix -> capped connections inside it; never holds a zero. One
  // table serves both because their keys cannot meet: a subnet key is only charged by
  // addresses outside every override, so it never equals an override prefix.
  boost::unordered_flat_map<Prefix, std::size_t, PrefixHash> prefixes_;
  // Network group -> capped connections from it, both directions; never holds a zero.
  // Apart from prefixes_ because a group's prefix may equal a subnet's.
  boost::unordered_flat_map<NetGroup, std::size_t, PrefixHash> groups_;
  // Every address with at least one counted outbound connection (only under a group cap,
  // whose caller counts outbound connections at all).
  boost::unordered_flat_map<Prefix, AddressCount, PrefixHash> outbound_;
};

}  // namespace dep2p::connmgr::detail
