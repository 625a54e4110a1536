// Network groups: which network an address comes from, for rules that keep a node's peers
// spread over many networks (an attacker usually holds addresses in few of them). An
// address's group is a prefix of it: by default an IPv4 /16 or an IPv6 /32, the ranges one
// operator commonly holds. Loopback is grouped finer (127/8 by /24 by default), so that
// tests and the demo, which stand in other /24s of 127/8 for other networks, see them as
// distinct; ::1 is one group. IPv4-mapped IPv6 addresses group as the IPv4 they are.
//
//   const NetGroup group = network_group(remote.address, GroupRule{});  // 10.1.0.0/16
//   std::uint64_t key = keyed_group(group, salt);  // a per-node secret order of groups
//
// keyed_group() hashes a group with the node's secret salt (SipHash-2-4), so the order of
// groups it gives is the same for one node and unpredictable to others: a peer cannot
// choose addresses that a node will rank first.
//
// Thread safety: pure functions and plain values.
#pragma once

#include <array>
#include <cstdint>

#include <boost/asio/ip/address.hpp>

#include "base/siphash.hpp"
#include "net/prefix.hpp"

namespace dep2p::connmgr::detail {

// How finely addresses are grouped; prefix lengths in bits.
struct GroupRule {
  std::uint8_t ipv4_prefix = 16;         // 1..32
  std::uint8_t ipv6_prefix = 32;         // 1..128
  std::uint8_t loopback_v4_prefix = 24;  // 8..32, within 127.0.0.0/8
};

using NetGroup = Prefix;

inline NetGroup network_group(const boost::asio::ip::address& address, const GroupRule& rule) {
  const Prefix host = host_prefix(address);  // normalized: mapped IPv6 is IPv4
  unsigned length = host.family == Family::v4 ? rule.ipv4_prefix : rule.ipv6_prefix;
  if (is_loopback(address)) length = host.family == Family::v4 ? rule.loopback_v4_prefix : 128U;
  return prefix_of(host, length < host.max_length() ? length : host.max_length());
}

// The group under the node's secret `salt`: its family, length and bits, hashed.
inline std::uint64_t keyed_group(const NetGroup& group, const SipKey& salt) noexcept {
  std::array<std::uint8_t, 18> bytes{};
  for (int i = 0; i < 8; ++i) {
    bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(group.high >> (8 * i));
    bytes[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>(group.low >> (8 * i));
  }
  bytes[16] = group.length;
  bytes[17] = group.family == Family::v6 ? 6 : 4;
  return siphash24(salt, bytes);
}

}  // namespace dep2p::connmgr::detail
