// CidrMap: rules keyed by IPv4 and IPv6 subnets, with a lookup that finds every rule
// containing an address without scanning the rules.
//
//   detail::CidrMap<int> rules;
//   rules[*detail::parse_cidr("10.1.2.0/24")] = 1;
//   rules.visit_matches(detail::host_cidr(address), [](const Cidr& net, const int& v) {
//     return true;  // stop at the most specific match
//   });
//
// Why a hand-written structure: a matching rule for an address can sit at any prefix
// length, and boost::asio::ip::network_v4/v6 only test one subnet at a time. The map keeps
// one hash table of canonical networks (host bits zero) and, per family, the set of prefix
// lengths in use, so a lookup masks the address once per length in use and probes the
// table: at most 33 probes for IPv4 and 129 for IPv6, whatever the number of rules. A trie
// would cost a pointer chase per bit; with a handful of distinct lengths the probes win.
// Most addresses on an accept path match nothing, so a coarse filter goes first: one bit
// per IPv4 /16 (and per hash bucket of the IPv6 /32) that holds a rule at least that long;
// a clear bit skips all those lengths at once, leaving only the short prefixes to probe.
//
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are IPv4 here, both as rules and as
// lookups, so one rule covers a peer whichever socket family it arrived on. An IPv6 rule
// shorter than /96 therefore does not cover mapped addresses.
//
// Thread safety: none; the owner locks.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <boost/unordered/unordered_flat_map.hpp>

namespace dep2p::connmgr::detail {

// A canonical subnet: the network with its host bits zero, and its prefix length. An
// address is the subnet of its full length (/32, /128). IPv4 keeps its 32 bits in the low
// half of `hi`; IPv6 keeps its 128 bits big-endian across `hi` and `lo`.
struct Cidr {
  bool v6 = false;
  std::uint8_t prefix = 0;
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;

  bool is_host() const noexcept { return prefix == (v6 ? 128 : 32); }

  // The network of `prefix` bits containing this address or subnet.
  // REQUIRES: prefix <= this->prefix.
  Cidr masked(std::uint8_t length) const noexcept {
    Cidr out = *this;
    out.prefix = length;
    if (!v6) {
      out.hi = length == 0 ? 0 : hi & ((~std::uint64_t{0} << (32 - length)) & 0xffff'ffffu);
      return out;
    }
    const std::uint64_t all = ~std::uint64_t{0};
    out.hi = length >= 64 ? hi : length == 0 ? 0 : hi & (all << (64 - length));
    out.lo = length <= 64 ? 0 : length == 128 ? lo : lo & (all << (128 - length));
    return out;
  }

  // The network address ("10.1.2.0" as an address_v4).
  boost::asio::ip::address address() const {
    if (!v6) return boost::asio::ip::address_v4(static_cast<std::uint32_t>(hi));
    boost::asio::ip::address_v6::bytes_type bytes;
    for (std::size_t i = 0; i < 8; ++i) {
      bytes[i] = static_cast<unsigned char>(hi >> (56 - 8 * i));
      bytes[8 + i] = static_cast<unsigned char>(lo >> (56 - 8 * i));
    }
    return boost::asio::ip::address_v6(bytes);
  }

  // Appends the network address alone, without the prefix ("10.1.2.0", "2001:db8::").
  // IPv4 is written by hand: denial reasons are built on the accept path, and inet_ntop
  // behind address_v4::to_string costs more than the lookup itself.
  void append_address(std::string& out) const {
    if (!v6) {
      for (int shift = 24; shift >= 0; shift -= 8) {
        const auto octet = static_cast<unsigned>((hi >> shift) & 0xff);
        if (octet >= 100) out.push_back(static_cast<char>('0' + octet / 100));
        if (octet >= 10) out.push_back(static_cast<char>('0' + octet / 10 % 10));
        out.push_back(static_cast<char>('0' + octet % 10));
        if (shift != 0) out.push_back('.');
      }
      return;
    }
    out += address().to_string();
  }
  // "10.1.2.0/24"; a host is written with its full length too ("10.1.2.3/32").
  void append(std::string& out) const {
    append_address(out);
    out += '/';
    out += std::to_string(unsigned{prefix});
  }
  std::string address_string() const {
    std::string out;
    append_address(out);
    return out;
  }
  std::string to_string() const {
    std::string out;
    append(out);
    return out;
  }

  friend bool operator==(const Cidr&, const Cidr&) = default;
  friend auto operator<=>(const Cidr&, const Cidr&) = default;
};

// The lookup key of an address: its host subnet, IPv4-mapped IPv6 as IPv4. The zone id of
// a link-local IPv6 address is ignored.
inline Cidr host_cidr(const boost::asio::ip::address& address) noexcept {
  Cidr out;
  if (address.is_v4()) {
    out.prefix = 32;
    out.hi = address.to_v4().to_uint();
    return out;
  }
  const boost::asio::ip::address_v6 v6 = address.to_v6();
  if (v6.is_v4_mapped()) {
    out.prefix = 32;
    out.hi = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_uint();
    return out;
  }
  const auto bytes = v6.to_bytes();
  out.v6 = true;
  out.prefix = 128;
  for (std::size_t i = 0; i < 8; ++i) {
    out.hi = (out.hi << 8) | bytes[i];
    out.lo = (out.lo << 8) | bytes[8 + i];
  }
  return out;
}

// Parses "10.1.2.3", "10.1.2.0/24", "2001:db8::1", "2001:db8::/32". Host bits set below
// the prefix are cleared ("10.1.2.3/24" is 10.1.2.0/24): the rule then means what the
// writer evidently meant, and unblocking the same text finds it again. Returns nullopt for
// anything else: empty text, a bad address, a prefix beyond 32 / 128 or not a decimal of
// one to three digits, a zone id ("fe80::1%eth0", which a rule has no use for).
// IPv4-mapped subnets of /96 or longer become IPv4 subnets (see the file comment).
inline std::optional<Cidr> parse_cidr(std::string_view text) {
  const std::size_t slash = text.find('/');
  const std::string_view address_text = text.substr(0, slash);
  // make_address reads a C string: a NUL would cut "10.1.2.3\0junk" short and accept it.
  // Only hex digits, dots and colons can form an address (this also refuses zone ids).
  if (address_text.empty() ||
      address_text.find_first_not_of("0123456789abcdefABCDEF.:") != std::string_view::npos) {
    return std::nullopt;
  }
  boost::system::error_code ec;
  const boost::asio::ip::address address =
      boost::asio::ip::make_address(std::string(address_text), ec);
  if (ec) return std::nullopt;
  if (slash == std::string_view::npos) return host_cidr(address);

  const std::string_view prefix_text = text.substr(slash + 1);
  // make_network_v4/v6 read the prefix with atoi; a bounded digit string keeps it exact.
  if (prefix_text.empty() || prefix_text.size() > 3 ||
      prefix_text.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  const std::string whole(text);
  if (address.is_v4()) {
    const auto network = boost::asio::ip::make_network_v4(whole, ec);
    if (ec) return std::nullopt;
    Cidr out = host_cidr(network.address());
    return out.masked(static_cast<std::uint8_t>(network.prefix_length()));
  }
  const auto network = boost::asio::ip::make_network_v6(whole, ec);
  if (ec) return std::nullopt;
  const auto length = static_cast<std::uint8_t>(network.prefix_length());
  const Cidr host = host_cidr(network.address());
  if (!host.v6) {  // IPv4-mapped
    if (length >= 96) return host.masked(static_cast<std::uint8_t>(length - 96));
    // Shorter than /96: keep it as the IPv6 subnet it is.
    Cidr raw;
    raw.v6 = true;
    raw.prefix = 128;
    const auto bytes = network.address().to_bytes();
    for (std::size_t i = 0; i < 8; ++i) {
      raw.hi = (raw.hi << 8) | bytes[i];
      raw.lo = (raw.lo << 8) | bytes[8 + i];
    }
    return raw.masked(length);
  }
  return host.masked(length);
}

struct CidrHash {
  std::size_t operator()(const Cidr& c) const noexcept {
    std::uint64_t h = c.hi * 0x9e3779b97f4a7c15ULL;
    h ^= (c.lo + (std::uint64_t{c.prefix} << 1) + (c.v6 ? 1u : 0u)) * 0xc2b2ae3d27d4eb4fULL;
    h ^= h >> 29;
    return static_cast<std::size_t>(h);
  }
};

// One bit per bucket of addresses, set while some rule at least as long as the bucket's
// prefix (/16 for IPv4, /32 for IPv6) lies in it. IPv4 buckets are exact /16s; IPv6 /32s are hashed
// into 65,536 buckets (a collision costs only the probes the filter would have saved).
class CoarseFilter {
 public:
  bool test(std::uint16_t bucket) const noexcept {
    return (bits_[bucket >> 6] >> (bucket & 63)) & 1;
  }
  void add(std::uint16_t bucket) {
    if (counts_[bucket]++ == 0) bits_[bucket >> 6] |= std::uint64_t{1} << (bucket & 63);
  }
  void remove(std::uint16_t bucket) {
    auto it = counts_.find(bucket);
    if (it == counts_.end() || --it->second != 0) return;
    counts_.erase(it);
    bits_[bucket >> 6] &= ~(std::uint64_t{1} << (bucket & 63));
  }

 private:
  std::array<std::uint64_t, 1024> bits_{};
  // Rules per non-empty bucket; a bucket's bit clears when its last rule goes.
  boost::unordered_flat_map<std::uint16_t, std::uint32_t> counts_;
};

template <class Value>
class CidrMap {
 public:
  bool empty() const noexcept { return map_.empty(); }
  std::size_t size() const noexcept { return map_.size(); }

  // REQUIRES: `net` is canonical (from parse_cidr, host_cidr or Cidr::masked).
  Value& operator[](const Cidr& net) {
    auto [it, inserted] = map_.try_emplace(net);
    if (inserted) count(net, true);
    return it->second;
  }
  Value* find(const Cidr& net) {
    auto it = map_.find(net);
    return it == map_.end() ? nullptr : &it->second;
  }
  const Value* find(const Cidr& net) const {
    auto it = map_.find(net);
    return it == map_.end() ? nullptr : &it->second;
  }
  bool erase(const Cidr& net) {
    if (map_.erase(net) == 0) return false;
    count(net, false);
    return true;
  }

  // Calls fn(const Cidr&, const Value&) for every entry, in no particular order.
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const auto& [net, value] : map_) fn(net, value);
  }

  // Calls fn(const Cidr& net, const Value&) for each entry whose subnet contains `host`
  // (from host_cidr), most specific first, until fn returns true. Returns whether it did.
  template <class Fn>
  bool visit_matches(const Cidr& host, Fn&& fn) const {
    if (map_.empty()) return false;
    if (!host.v6) {
      std::uint64_t lengths = v4_lengths_;
      if (!v4_filter_.test(v4_bucket(host))) lengths &= (std::uint64_t{1} << kV4FilterLength) - 1;
      for (std::uint64_t bits = lengths; bits != 0;) {
        const int length = 63 - std::countl_zero(bits);
        bits &= ~(std::uint64_t{1} << length);
        if (probe(host, static_cast<std::uint8_t>(length), fn)) return true;
      }
      return false;
    }
    std::array<std::uint64_t, 3> lengths = v6_lengths_;
    if (!v6_filter_.test(v6_bucket(host))) {
      static_assert(kV6FilterLength == 32);
      lengths = {lengths[0] & 0xffff'ffffu, 0, 0};
    }
    for (int word = 2; word >= 0; --word) {
      for (std::uint64_t bits = lengths[static_cast<std::size_t>(word)]; bits != 0;) {
        const int bit = 63 - std::countl_zero(bits);
        bits &= ~(std::uint64_t{1} << bit);
        if (probe(host, static_cast<std::uint8_t>(word * 64 + bit), fn)) return true;
      }
    }
    return false;
  }

 private:
  static constexpr std::uint8_t kV4FilterLength = 16;
  static constexpr std::uint8_t kV6FilterLength = 32;
  static std::uint16_t v4_bucket(const Cidr& c) noexcept {
    return static_cast<std::uint16_t>(c.hi >> 16);
  }
  static std::uint16_t v6_bucket(const Cidr& c) noexcept {
    return static_cast<std::uint16_t>((static_cast<std::uint32_t>(c.hi >> 32) * 0x9e37'79b1u) >>
                                      16);
  }

  template <class Fn>
  bool probe(const Cidr& host, std::uint8_t length, Fn& fn) const {
    const Cidr net = host.masked(length);
    auto it = map_.find(net);
    return it != map_.end() && fn(it->first, it->second);
  }

  void count(const Cidr& net, bool added) {
    const std::size_t length = net.prefix;
    std::uint32_t& n = net.v6 ? v6_counts_[length] : v4_counts_[length];
    n = added ? n + 1 : n - 1;
    set_bit(net.v6 ? v6_lengths_[length / 64] : v4_lengths_, length % 64, n != 0);
    if (net.prefix < (net.v6 ? kV6FilterLength : kV4FilterLength)) return;
    CoarseFilter& filter = net.v6 ? v6_filter_ : v4_filter_;
    const std::uint16_t bucket = net.v6 ? v6_bucket(net) : v4_bucket(net);
    if (added) {
      filter.add(bucket);
    } else {
      filter.remove(bucket);
    }
  }
  static void set_bit(std::uint64_t& word, std::size_t bit, bool on) {
    if (on) {
      word |= std::uint64_t{1} << bit;
    } else {
      word &= ~(std::uint64_t{1} << bit);
    }
  }

  // Every rule, keyed by its canonical subnet.
  boost::unordered_flat_map<Cidr, Value, CidrHash> map_;
  // How many entries of each prefix length; bit n of the mask is set iff count n > 0.
  std::array<std::uint32_t, 33> v4_counts_{};
  std::array<std::uint32_t, 129> v6_counts_{};
  std::uint64_t v4_lengths_ = 0;
  std::array<std::uint64_t, 3> v6_lengths_{};
  CoarseFilter v4_filter_;  // over rules of /16 and longer
  CoarseFilter v6_filter_;  // over rules of /32 and longer
};

}  // namespace dep2p::connmgr::detail
