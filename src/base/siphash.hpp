// SipHash-2-4 (Aumasson and Bernstein): a keyed 64-bit hash of a byte string. Keyed with a
// secret a remote party does not know, its values cannot be predicted or steered by choosing
// the input, which is what a node needs to order peers an attacker should not be able to
// rank (a salted network group).
//
//   const SipKey key{0x0706050403020100, 0x0f0e0d0c0b0a0908};
//   std::uint64_t h = siphash24(key, bytes);
//
// Thread safety: a pure function.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

namespace dep2p::connmgr::detail {

// The 128-bit key as two little-endian words (k0: key bytes 0..7, k1: bytes 8..15).
struct SipKey {
  std::uint64_t k0 = 0;
  std::uint64_t k1 = 0;
};

namespace sip {
inline std::uint64_t rotl(std::uint64_t x, int b) noexcept { return (x << b) | (x >> (64 - b)); }
inline void round(std::uint64_t& v0, std::uint64_t& v1, std::uint64_t& v2,
                  std::uint64_t& v3) noexcept {
  v0 += v1;
  v1 = rotl(v1, 13);
  v1 ^= v0;
  v0 = rotl(v0, 32);
  v2 += v3;
  v3 = rotl(v3, 16);
  v3 ^= v2;
  v0 += v3;
  v3 = rotl(v3, 21);
  v3 ^= v0;
  v2 += v1;
  v1 = rotl(v1, 17);
  v1 ^= v2;
  v2 = rotl(v2, 32);
}
// Little-endian load of up to 8 bytes.
inline std::uint64_t load(const std::uint8_t* p, std::size_t n) noexcept {
  std::uint64_t word = 0;
  for (std::size_t i = 0; i < n; ++i) word |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return word;
}
}  // namespace sip

inline std::uint64_t siphash24(const SipKey& key, std::span<const std::uint8_t> bytes) noexcept {
  std::uint64_t v0 = 0x736f6d6570736575ULL ^ key.k0;
  std::uint64_t v1 = 0x646f72616e646f6dULL ^ key.k1;
  std::uint64_t v2 = 0x6c7967656e657261ULL ^ key.k0;
  std::uint64_t v3 = 0x7465646279746573ULL ^ key.k1;
  const std::size_t size = bytes.size();
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    const std::uint64_t m = sip::load(bytes.data() + i, 8);
    v3 ^= m;
    sip::round(v0, v1, v2, v3);
    sip::round(v0, v1, v2, v3);
    v0 ^= m;
  }
  // The last block: the remaining bytes and the length's low byte on top.
  const std::uint64_t last =
      sip::load(bytes.data() + i, size - i) | (static_cast<std::uint64_t>(size) << 56);
  v3 ^= last;
  sip::round(v0, v1, v2, v3);
  sip::round(v0, v1, v2, v3);
  v0 ^= last;
  v2 ^= 0xff;
  for (int r = 0; r < 4; ++r) sip::round(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

}  // namespace dep2p::connmgr::detail
