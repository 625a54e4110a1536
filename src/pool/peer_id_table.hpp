// The ids of the pool's peers, by peer slot, packed.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include <boost/unordered/unordered_flat_map.hpp>

#include "base/paged_vector.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr::detail {

// A NodeId reserves 64 bytes inline, but real ids are shorter: libp2p's are 34 to 38
// bytes, a bare public key 32. The table keeps ids of up to kInline bytes in 40 bytes
// each (a length byte and the bytes) and the rare longer ones in a side map, instead of
// 72 bytes of NodeId per peer. A slot's id stays until the slot is assigned again; the
// pool's index hashes and compares through it.
class PeerIdTable {
 public:
  static constexpr std::size_t kInline = 39;

  std::size_t size() const noexcept { return ids_.size(); }

  // Gives `slot` the id `id`; `slot` is an existing slot or the next one (size()).
  void assign(std::uint32_t slot, const NodeId& id) {
    Packed& packed = slot == ids_.size() ? ids_.emplace_back() : ids_[slot];
    if (packed.size > kInline) long_.erase(slot);
    packed.size = static_cast<std::uint8_t>(id.size());
    if (id.size() <= kInline) {
      // With the zeros after a short id: equals() compares all kInline bytes.
      std::memcpy(packed.bytes, id.padded_bytes().data(), kInline);
    } else {
      long_.insert_or_assign(slot, id);
    }
  }

  NodeId get(std::uint32_t slot) const {
    const Packed& packed = ids_[slot];
    if (packed.size > kInline) return long_.find(slot)->second;
    return NodeId(std::span<const std::uint8_t>(packed.bytes, packed.size));
  }

  bool equals(std::uint32_t slot, const NodeId& id) const noexcept {
    const Packed& packed = ids_[slot];
    if (packed.size != id.size()) return false;
    if (packed.size > kInline) return long_.find(slot)->second == id;
    // Both sides are zero after the id's bytes, so comparing all 39 bytes is exact: five
    // 8-byte words, the last one without its eighth byte (the packed side's size).
    const auto* a = reinterpret_cast<const std::uint8_t*>(&packed);  // 40 bytes, bytes first
    const std::uint8_t* b = id.padded_bytes().data();
    std::uint64_t diff = (word(a + 32) ^ word(b + 32)) & kFirstSevenBytes;
    for (std::size_t at = 0; at < 32; at += 8) diff |= word(a + at) ^ word(b + at);
    return diff == 0;
  }

  // The last byte of the slot's id.
  std::uint8_t last_byte(std::uint32_t slot) const noexcept {
    const Packed& packed = ids_[slot];
    if (packed.size > kInline) return long_.find(slot)->second.bytes().back();
    return packed.bytes[packed.size - 1];
  }

  // NodeId::hash() of the slot's id.
  std::size_t hash(std::uint32_t slot) const noexcept {
    const Packed& packed = ids_[slot];
    if (packed.size > kInline) return long_.find(slot)->second.hash();
    return NodeId::hash_bytes(std::span<const std::uint8_t>(packed.bytes, packed.size));
  }

  std::size_t long_ids() const noexcept { return long_.size(); }

 private:
  static std::uint64_t word(const std::uint8_t* p) noexcept {
    std::uint64_t w;
    std::memcpy(&w, p, sizeof w);
    return w;
  }
  static constexpr std::uint64_t kFirstSevenBytes = std::bit_cast<std::uint64_t>(
      std::array<std::uint8_t, 8>{255, 255, 255, 255, 255, 255, 255, 0});

  struct Packed {
    std::uint8_t bytes[kInline];  // the id, then zeros; unused when size > kInline
    std::uint8_t size = 0;
  };
  static_assert(sizeof(Packed) == 40 && offsetof(Packed, size) == kInline);

  PagedVector<Packed> ids_;
  boost::unordered_flat_map<std::uint32_t, NodeId> long_;
};

}  // namespace dep2p::connmgr::detail
