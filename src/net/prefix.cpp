#include "net/prefix.hpp"

#include <boost/unordered/unordered_flat_map.hpp>

namespace dep2p::connmgr::detail {

boost::asio::ip::address to_address(const Prefix& key) {
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

void append_address(std::string& out, const Prefix& key) {
  if (key.family == Family::v6) {
    out += to_address(key).to_string();
    return;
  }
  for (int shift = 24; shift >= 0; shift -= 8) {
    const auto octet = static_cast<unsigned>((key.low >> shift) & 0xff);
    if (octet >= 100) out.push_back(static_cast<char>('0' + octet / 100));
    if (octet >= 10) out.push_back(static_cast<char>('0' + octet / 10 % 10));
    out.push_back(static_cast<char>('0' + octet % 10));
    if (shift != 0) out.push_back('.');
  }
}

void append(std::string& out, const Prefix& key) {
  append_address(out, key);
  out += '/';
  out += std::to_string(unsigned{key.length});
}

std::optional<Prefix> parse_prefix(std::string_view text, std::string* error) {
  const auto fail = [&](std::string_view why) -> std::optional<Prefix> {
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
  // The address parser reads a C string: a NUL or a stray character would end or bend it.
  // Only hex digits, dots and colons can form an address (this also refuses zone ids).
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
  Prefix key = host_prefix(address);  // a mapped address becomes IPv4
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

std::optional<ConfigError> check_overrides(const SubnetCaps& caps) {
  boost::unordered_flat_map<Prefix, std::size_t, PrefixHash> seen;
  for (std::size_t i = 0; i < caps.overrides.size(); ++i) {
    std::string field = "limits.subnets.overrides[" + std::to_string(i) + "].subnet";
    std::string error;
    const std::optional<Prefix> prefix = parse_prefix(caps.overrides[i].subnet, &error);
    if (!prefix) {
      std::string message = field + ": " + error;
      return ConfigError{std::move(field), std::move(message)};
    }
    if (const auto [it, added] = seen.try_emplace(*prefix, i); !added) {
      std::string message = field + ": " + to_string(*prefix) + " repeats overrides[" +
                            std::to_string(it->second) + "]";
      return ConfigError{std::move(field), std::move(message)};
    }
  }
  return std::nullopt;
}

}  // namespace dep2p::connmgr::detail
