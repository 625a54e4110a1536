// Address classification for admission: a PrefixKey names an IPv4 or IPv6 prefix (an
// address is its own /32 or /128) as a small hashable value, so per-address and
// per-subnet tables are plain hash maps and every lookup is one probe. IPv4-mapped IPv6
// addresses (::ffff:a.b.c.d, what a dual-stack socket reports for IPv4 peers) are treated
// as the IPv4 addresses they are, so one peer cannot count under two families.
//
//   PrefixKey host = host_key(remote.address);       // 10.1.2.3/32
//   PrefixKey net = prefix_of(host, 24);             // 10.1.2.0/24
//   std::string text = to_string(net);               // "10.1.2.0/24"
//   auto lan = parse_prefix("10.0.0.0/8", &error);   // nullopt and a message if malformed
//
// Thread safety: pure functions and plain values.
#pragma once

#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/ip/address.hpp>

namespace dep2p::connmgr::detail {

enum class Family : std::uint8_t { v4, v6 };

// A prefix of an address: the address bits with everything past `length` zeroed. Equal
// prefixes compare equal whatever address they were taken from. IPv6 bits are held big
// endian in high:low; IPv4 bits sit in the low 32 bits of `low` with `high` zero.
struct PrefixKey {
  std::uint64_t high = 0;
  std::uint64_t low = 0;
  std::uint8_t length = 0;  // 0..32 for IPv4, 0..128 for IPv6
  Family family = Family::v4;

  unsigned max_length() const noexcept { return family == Family::v4 ? 32U : 128U; }
  bool is_host() const noexcept { return length == max_length(); }
  friend bool operator==(const PrefixKey&, const PrefixKey&) = default;
};

// Keys that share their high bits (every /24 of one /16, every /64 of one /48) must still
// spread over the table, so all fields are mixed, then mixed again as a whole.
struct PrefixKeyHash {
  std::size_t operator()(const PrefixKey& key) const noexcept {
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

// The address (normalized) as a full-length key: /32 or /128. The IPv6 scope id is not
// part of the key: a subnet is the same subnet on every interface.
inline PrefixKey host_key(const boost::asio::ip::address& address) {
  const boost::asio::ip::address a = normalize(address);
  PrefixKey key;
  if (a.is_v4()) {
    key.low = a.to_v4().to_uint();
    key.length = 32;
    key.family = Family::v4;
    return key;
  }
  const boost::asio::ip::address_v6::bytes_type bytes = a.to_v6().to_bytes();
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
inline PrefixKey prefix_of(const PrefixKey& key, unsigned length) noexcept {
  assert(length <= key.length);
  PrefixKey out = key;
  out.length = static_cast<std::uint8_t>(length);
  if (key.family == Family::v4) {
    out.low &= leading_ones(length) >> 32;
  } else {
    out.high &= leading_ones(length < 64 ? length : 64);
    out.low &= leading_ones(length > 64 ? length - 64 : 0);
  }
  return out;
}

// Loopback test on a key from host_key(), which is already normalized.
inline bool is_loopback(const PrefixKey& host) noexcept {
  if (host.family == Family::v4) return (host.low >> 24) == 127;
  return host.high == 0 && host.low == 1;
}

// The `length`-bit prefix of an address, in the address's (normalized) family.
// REQUIRES: length <= 32 for IPv4 addresses, <= 128 for IPv6.
inline PrefixKey prefix_of(const boost::asio::ip::address& address, unsigned length) {
  return prefix_of(host_key(address), length);
}

// Whether `inner` (an address or a longer prefix) lies inside `prefix`.
inline bool contains(const PrefixKey& prefix, const PrefixKey& inner) noexcept {
  return prefix.family == inner.family && prefix.length <= inner.length &&
         prefix_of(inner, prefix.length) == prefix;
}

// The prefix's first address: 10.1.2.0 for 10.1.2.0/24.
inline boost::asio::ip::address to_address(const PrefixKey& key) {
  if (key.family == Family::v4) {
    return boost::asio::ip::address_v4(
        static_cast<boost::asio::ip::address_v4::uint_type>(key.low));
  }
  boost::asio::ip::address_v6::bytes_type bytes{};
  for (std::size_t i = 0; i < 8; ++i) {
    const unsigned shift = static_cast<unsigned>(56 - 8 * i);
    bytes[i] = static_cast<unsigned char>(key.high >> shift);
    bytes[i + 8] = static_cast<unsigned char>(key.low >> shift);
  }
  return boost::asio::ip::address_v6(bytes);
}

// "10.1.2.3" or "2001:db8::1": the address part only, for per-address messages.
inline std::string address_text(const PrefixKey& key) { return to_address(key).to_string(); }

// "10.1.2.0/24", "2001:db8:1::/48" (IPv6 in its RFC 5952 short form).
inline std::string to_string(const PrefixKey& key) {
  return address_text(key) + "/" + std::to_string(key.length);
}

// Parses CIDR text ("10.0.0.0/8", "2001:db8::/32") or a bare address (a /32 or /128).
// The address must be plain (no IPv6 zone, no spaces) and the length a decimal within the
// family. Bits past the length are cleared ("10.1.2.3/24" is 10.1.2.0/24), as
// Config::validate() (asio's make_network_v4/v6) and the gater's parse_cidr() read the same
// text: one string must mean one prefix everywhere. An IPv4-mapped IPv6 prefix of length
// 96 or more is the IPv4 prefix it maps, as addresses are normalized the same way.
// On failure returns nullopt and, when `error` is given, a sentence saying what is wrong.
inline std::optional<PrefixKey> parse_prefix(std::string_view text, std::string* error = nullptr) {
  const auto fail = [&](std::string_view why) -> std::optional<PrefixKey> {
    if (error != nullptr) {
      *error = "malformed CIDR \"";
      *error += text;
      *error += "\": ";
      *error += why;
    }
    return std::nullopt;
  };
  const std::size_t slash = text.find('/');
  const std::string_view address_part = text.substr(0, slash);
  if (address_part.empty()) return fail("no address");
  // The parser below reads a C string: a NUL or stray character would end or bend it.
  for (const char c : address_part) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex && c != '.' && c != ':') return fail("not an IP address");
  }
  boost::system::error_code ec;
  const boost::asio::ip::address address =
      boost::asio::ip::make_address(std::string(address_part), ec);
  if (ec) return fail("not an IP address");
  const unsigned family_bits = address.is_v4() ? 32U : 128U;
  unsigned length = family_bits;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return fail("the prefix length is not a number");
    length = 0;
    for (const char c : digits) {
      if (c < '0' || c > '9') return fail("the prefix length is not a number");
      length = length * 10 + static_cast<unsigned>(c - '0');
    }
    if (length > family_bits) {
      return fail("prefix length " + std::to_string(length) + " exceeds " +
                  std::to_string(family_bits) + " for " + (address.is_v4() ? "IPv4" : "IPv6"));
    }
  }
  PrefixKey key = host_key(address);  // normalizes a mapped address to IPv4
  if (address.is_v6() && key.family == Family::v4) {
    if (length < 96) {
      // A prefix this short covers more than the mapped range: keep it as IPv6 bits.
      key.family = Family::v6;
      key.high = 0;
      key.low |= std::uint64_t{0xffff} << 32;
      key.length = 128;
    } else {
      length -= 96;
    }
  }
  return prefix_of(key, length);
}

}  // namespace dep2p::connmgr::detail
