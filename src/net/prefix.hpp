// Prefix: an IPv4 or IPv6 address prefix (an address is its own /32 or /128) as a small
// hashable value, and the one parser of prefix text. The gater's rules, the per-address and
// per-subnet caps, the rate limits and Config::validate() all read prefixes through it, so
// one string means one prefix everywhere. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, what
// a dual-stack socket reports for IPv4 peers) are the IPv4 addresses they are, so one peer
// cannot count under two families and one rule covers it on either socket.
//
//   Prefix host = host_prefix(remote.address);      // 10.1.2.3/32
//   Prefix net = prefix_of(host, 24);               // 10.1.2.0/24
//   std::string text = to_string(net);              // "10.1.2.0/24"
//   auto lan = parse_prefix("10.0.0.0/8", &error);  // nullopt and a message if malformed
//
// Thread safety: pure functions and plain values.
#pragma once

#include <cassert>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/ip/address.hpp>

#include "dep2p/connmgr/config.hpp"
#include "dep2p/connmgr/limits.hpp"

namespace dep2p::connmgr::detail {

enum class Family : std::uint8_t { v4, v6 };

// The address bits with everything past `length` zeroed: equal prefixes compare equal
// whatever address they were taken from. IPv6 bits are held big endian in high:low; IPv4
// bits sit in the low 32 bits of `low`, with `high` zero.
struct Prefix {
  std::uint64_t high = 0;
  std::uint64_t low = 0;
  std::uint8_t length = 0;  // 0..32 for IPv4, 0..128 for IPv6
  Family family = Family::v4;

  unsigned max_length() const noexcept { return family == Family::v4 ? 32U : 128U; }
  bool is_host() const noexcept { return length == max_length(); }
  friend bool operator==(const Prefix&, const Prefix&) = default;
  friend auto operator<=>(const Prefix&, const Prefix&) = default;
};

// Keys that share their high bits (every /24 of one /16, every /64 of one /48) must still
// spread over a table, so all fields are mixed, then mixed again as a whole.
struct PrefixHash {
  std::size_t operator()(const Prefix& key) const noexcept {
    const std::uint64_t shape =
        (static_cast<std::uint64_t>(key.length) << 1) | (key.family == Family::v6 ? 1U : 0U);
    std::uint64_t h = (key.high ^ (shape << 56)) * 0x9e3779b97f4a7c15ULL;
    h = (h ^ (h >> 32) ^ key.low) * 0xff51afd7ed558ccdULL;
    h = (h ^ (h >> 29)) * 0xc4ceb9fe1a85ec53ULL;
    return static_cast<std::size_t>(h ^ (h >> 32));
  }
};

// The address as the family it really belongs to: IPv4-mapped IPv6 becomes IPv4.
inline boost::asio::ip::address normalize(const boost::asio::ip::address& address) {
  if (address.is_v6()) {
    const boost::asio::ip::address_v6 v6 = address.to_v6();
    if (v6.is_v4_mapped()) return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6);
  }
  return address;
}

// 127.0.0.0/8 and ::1, including their IPv4-mapped forms.
inline bool is_loopback(const boost::asio::ip::address& address) {
  return normalize(address).is_loopback();
}

// The address (normalized) as a full-length prefix: /32 or /128. The IPv6 scope id is not
// part of it: a subnet is the same subnet on every interface.
inline Prefix host_prefix(const boost::asio::ip::address& address) {
  Prefix key;
  if (address.is_v4()) {
    key.low = address.to_v4().to_uint();
    key.length = 32;
    return key;
  }
  const boost::asio::ip::address_v6 v6 = address.to_v6();
  if (v6.is_v4_mapped()) {
    key.low = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_uint();
    key.length = 32;
    return key;
  }
  const boost::asio::ip::address_v6::bytes_type bytes = v6.to_bytes();
  for (std::size_t i = 0; i < 8; ++i) {
    key.high = (key.high << 8) | bytes[i];
    key.low = (key.low << 8) | bytes[i + 8];
  }
  key.length = 128;
  key.family = Family::v6;
  return key;
}

// The first `bits` bits set, in a 64-bit word (0 and 64 included).
inline std::uint64_t leading_ones(unsigned bits) noexcept {
  return bits == 0 ? 0 : ~std::uint64_t{0} << (64 - bits);
}

// The prefix of `key` that is `length` bits long: prefix_of(10.1.2.3/32, 24) is
// 10.1.2.0/24. REQUIRES: length <= key.length.
inline Prefix prefix_of(const Prefix& key, unsigned length) noexcept {
  assert(length <= key.length);
  Prefix out = key;
  out.length = static_cast<std::uint8_t>(length);
  if (key.family == Family::v4) {
    out.low &= leading_ones(length) >> 32;
  } else {
    out.high &= leading_ones(length < 64 ? length : 64);
    out.low &= leading_ones(length > 64 ? length - 64 : 0);
  }
  return out;
}

// The `length`-bit prefix of an address, in the address's (normalized) family.
// REQUIRES: length <= 32 for IPv4 addresses, <= 128 for IPv6.
inline Prefix prefix_of(const boost::asio::ip::address& address, unsigned length) {
  return prefix_of(host_prefix(address), length);
}

// Loopback test on a prefix from host_prefix(), which is already normalized.
inline bool is_loopback(const Prefix& host) noexcept {
  if (host.family == Family::v4) return (host.low >> 24) == 127;
  return host.high == 0 && host.low == 1;
}

// Whether `inner` (an address or a longer prefix) lies inside `prefix`.
inline bool contains(const Prefix& prefix, const Prefix& inner) noexcept {
  return prefix.family == inner.family && prefix.length <= inner.length &&
         prefix_of(inner, prefix.length) == prefix;
}

// The prefix's first address: 10.1.2.0 for 10.1.2.0/24.
boost::asio::ip::address to_address(const Prefix& key);

// Appends the address part alone ("10.1.2.0", "2001:db8::"). IPv4 is written by hand: the
// gater's denial reasons are built on the accept path, often in floods, and inet_ntop
// behind address_v4::to_string costs more than the rule lookup itself.
void append_address(std::string& out, const Prefix& key);
// Appends "10.1.2.0/24" ("2001:db8:1::/48", IPv6 in its RFC 5952 short form); an address
// is written with its full length ("10.1.2.3/32").
void append(std::string& out, const Prefix& key);

// "10.1.2.3" or "2001:db8::1": the address part only, for per-address messages.
inline std::string address_text(const Prefix& key) {
  std::string out;
  append_address(out, key);
  return out;
}
inline std::string to_string(const Prefix& key) {
  std::string out;
  append(out, key);
  return out;
}

// Parses CIDR text ("10.0.0.0/8", "2001:db8::/32") or a bare address (a /32 or /128).
// The address must be plain (no IPv6 zone id, no spaces, no NUL) and the length one to
// three decimal digits within the family. Bits past the length are cleared ("10.1.2.3/24"
// is 10.1.2.0/24): the text then means what its writer evidently meant, and unblocking the
// same text finds the rule again. An IPv4-mapped IPv6 prefix of length 96 or more is the
// IPv4 prefix it maps; a shorter one stays the IPv6 prefix it is (it covers more than the
// mapped range). On failure returns nullopt and, when `error` is given, a sentence saying
// what is wrong.
std::optional<Prefix> parse_prefix(std::string_view text, std::string* error = nullptr);

// The first per-prefix cap override that cannot be used: a prefix that does not parse, or
// one that repeats an earlier one (which cap would apply?). The error names the field
// ("limits.subnets.overrides[2].subnet").
std::optional<ConfigError> check_overrides(const SubnetCaps& caps);

}  // namespace dep2p::connmgr::detail
