// PrefixMap: values keyed by IPv4 and IPv6 prefixes, with a lookup that finds every entry
// whose prefix contains an address without scanning the entries. BasicGater keeps its rules
// in one.
//
//   detail::PrefixMap<int> rules;
//   rules[*detail::parse_prefix("10.1.2.0/24")] = 1;
//   rules.visit_matches(detail::host_prefix(address), [](const Prefix& net, const int& v) {
//     return true;  // stop at the most specific match
//   });
//
// Why a hand-written structure: a matching rule for an address can sit at any prefix
// length, and boost::asio::ip::network_v4/v6 only test one subnet at a time. The map keeps
// one hash table of canonical prefixes (host bits zero) and, per family, the set of prefix
// lengths in use, so a lookup masks the address once per length in use and probes the
// table: at most 33 probes for IPv4 and 129 for IPv6, whatever the number of entries. A trie
// would cost a pointer chase per bit; with a handful of distinct lengths the probes win.
// Most addresses on an accept path match nothing, so a coarse filter goes first: one bit
// per IPv4 /16 (and per hash bucket of the IPv6 /32) that holds an entry at least that
// long; a clear bit skips all those lengths at once, leaving only the short prefixes to
// probe. IPv4-mapped IPv6 addresses are IPv4 here (see prefix.hpp), so an IPv6 entry
// shorter than /96 does not cover mapped addresses.
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
#include <boost/unordered/unordered_flat_map.hpp>

#include "net/prefix.hpp"

namespace dep2p::connmgr::detail {

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
class PrefixMap {
 public:
  bool empty() const noexcept { return map_.empty(); }
  std::size_t size() const noexcept { return map_.size(); }

  // REQUIRES: `net` is canonical (from parse_prefix, host_prefix or prefix_of).
  Value& operator[](const Prefix& net) {
    auto [it, inserted] = map_.try_emplace(net);
    if (inserted) count(net, true);
    return it->second;
  }
  Value* find(const Prefix& net) {
    auto it = map_.find(net);
    return it == map_.end() ? nullptr : &it->second;
  }
  const Value* find(const Prefix& net) const {
    auto it = map_.find(net);
    return it == map_.end() ? nullptr : &it->second;
  }
  bool erase(const Prefix& net) {
    if (map_.erase(net) == 0) return false;
    count(net, false);
    return true;
  }

  // Calls fn(const Prefix&, const Value&) for every entry, in no particular order.
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const auto& [net, value] : map_) fn(net, value);
  }

  // Calls fn(const Prefix& net, const Value&) for each entry whose subnet contains `host`
  // (from host_prefix), most specific first, until fn returns true. Returns whether it did.
  template <class Fn>
  bool visit_matches(const Prefix& host, Fn&& fn) const {
    if (map_.empty()) return false;
    if (host.family == Family::v4) {
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
  static std::uint16_t v4_bucket(const Prefix& c) noexcept {
    return static_cast<std::uint16_t>(c.low >> 16);
  }
  static std::uint16_t v6_bucket(const Prefix& c) noexcept {
    return static_cast<std::uint16_t>((static_cast<std::uint32_t>(c.high >> 32) * 0x9e37'79b1u) >>
                                      16);
  }

  template <class Fn>
  bool probe(const Prefix& host, std::uint8_t length, Fn& fn) const {
    const Prefix net = prefix_of(host, length);
    auto it = map_.find(net);
    return it != map_.end() && fn(it->first, it->second);
  }

  void count(const Prefix& net, bool added) {
    const std::size_t length = net.length;
    const bool v6 = net.family == Family::v6;
    std::uint32_t& n = v6 ? v6_counts_[length] : v4_counts_[length];
    n = added ? n + 1 : n - 1;
    set_bit(v6 ? v6_lengths_[length / 64] : v4_lengths_, length % 64, n != 0);
    if (net.length < (v6 ? kV6FilterLength : kV4FilterLength)) return;
    CoarseFilter& filter = v6 ? v6_filter_ : v4_filter_;
    const std::uint16_t bucket = v6 ? v6_bucket(net) : v4_bucket(net);
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

  // Every entry, keyed by its canonical prefix.
  boost::unordered_flat_map<Prefix, Value, PrefixHash> map_;
  // How many entries of each prefix length; bit n of the mask is set iff count n > 0.
  std::array<std::uint32_t, 33> v4_counts_{};
  std::array<std::uint32_t, 129> v6_counts_{};
  std::uint64_t v4_lengths_ = 0;
  std::array<std::uint64_t, 3> v6_lengths_{};
  CoarseFilter v4_filter_;  // over rules of /16 and longer
  CoarseFilter v6_filter_;  // over rules of /32 and longer
};

}  // namespace dep2p::connmgr::detail
