// PeerIndex: the pool's map from a peer's id to its slot, and the deferred removal a
// large trim uses (docs/architecture.md, "Trims and concurrent calls").
//
//   PeerIndex index(ids);
//   index.forget_stale(slot, id);     // then ids.assign(slot, id)
//   index.insert(slot, id);
//   const std::uint32_t at = index.find(id);
//   index.begin_batch(victims);       // a trim's commit: erase() only marks
//   index.erase(slot); ...
//   while (!index.sweep_step()) { /* let the lock go and take it again */ }
//
// The index stores slot numbers only (4 bytes each, so it stays cache-resident at 100k
// peers) and hashes and compares ids through the id table. It is split into kParts hash
// tables by the id's last byte, so that a batch's removals can be swept one part at a
// time, each sweep a short step, instead of one pass over the whole index. The last byte,
// not the hash, chooses the part so that a lookup loads its table while it hashes the id.
// Ids are hashes or public keys, so their last bytes spread evenly; ids made to share one
// only make that part's sweep longer, never a lookup wrong.
//
// Thread safety: none; the owner locks.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include <boost/unordered/unordered_flat_set.hpp>

#include "dep2p/connmgr/types.hpp"
#include "pool/peer_id_table.hpp"

namespace dep2p::connmgr::detail {

inline constexpr std::uint32_t kNoSlot = UINT32_MAX;

class PeerIndex {
 public:
  static constexpr std::size_t kParts = 32;

  explicit PeerIndex(const PeerIdTable& ids) : ids_(&ids), parts_(make_parts(ids)) {}
  PeerIndex(const PeerIndex&) = delete;
  PeerIndex& operator=(const PeerIndex&) = delete;

  // The live slot of `id`, or kNoSlot.
  std::uint32_t find(const NodeId& id) const {
    const Set& part = parts_[part_of(id)];
    auto it = part.find(id);
    if (it == part.end()) return kNoSlot;
    // During a batch, a removed slot stays in its part until that part is swept.
    if (batch_ && marked(*it)) [[unlikely]]
      return kNoSlot;
    return *it;
  }

  // Live entries.
  std::size_t size() const { return size_ - marked_count_; }

  // Before the id table gives `slot` the id `id`: during a batch, the id's removed entry
  // and the slot's removed entry (under the id it still has) leave their parts now, so
  // the index keeps one entry per id and one per slot.
  void forget_stale(std::uint32_t slot, const NodeId& id) {
    if (!batch_) [[likely]]
      return;
    const Set& part = parts_[part_of(id)];
    if (auto it = part.find(id); it != part.end() && marked(*it)) erase_now(*it);
    if (marked(slot)) erase_now(slot);
  }

  // Indexes `slot` under `id`, which the id table now holds for it. REQUIRES: `id` is
  // not in the index (forget_stale() first during a batch).
  void insert(std::uint32_t slot, const NodeId& id) {
    parts_[part_of(id)].insert(slot);
    ++size_;
  }

  // Removes `slot` (its id still in the id table): at once, or at the batch's sweep.
  void erase(std::uint32_t slot) {
    if (batch_ && sweep_next_ == 0) {
      if (slot >= marks_.size()) marks_.resize(slot + 1, false);
      marks_[slot] = true;
      ++marked_count_;
      return;
    }
    remove(slot);
  }

  // A batch of removals: while it lasts, erase() marks the slot instead of hashing its id
  // and probing a table per slot, and sweep_step() takes the marked slots out, one part
  // per call. Worth it only when the batch removes a large share of the index.
  void begin_batch(std::size_t removals_expected, std::size_t slots) {
    batch_ = removals_expected >= 1024 && removals_expected >= size() / 8;
    if (batch_) marks_.assign(slots, false);
    sweep_next_ = 0;
  }
  // Sweeps the next part; true when the batch is over (also when there was none). Once
  // sweeping has begun, erase() removes at once.
  bool sweep_step() {
    if (!batch_) return true;
    if (marked_count_ > 0) {
      const std::size_t swept = boost::unordered::erase_if(
          parts_[sweep_next_], [this](std::uint32_t slot) { return marked(slot); });
      size_ -= swept;
      marked_count_ -= swept;
    }
    if (++sweep_next_ < kParts && marked_count_ > 0) return false;
    batch_ = false;
    sweep_next_ = 0;
    marks_ = {};
    return true;
  }

 private:
  struct SlotHash {
    using is_transparent = void;
    using is_avalanching = void;  // NodeId::hash already mixes every byte
    const PeerIdTable* ids;
    std::size_t operator()(std::uint32_t slot) const noexcept { return ids->hash(slot); }
    std::size_t operator()(const NodeId& id) const noexcept { return id.hash(); }
  };
  struct SlotEqual {
    using is_transparent = void;
    const PeerIdTable* ids;
    bool operator()(std::uint32_t a, std::uint32_t b) const noexcept { return a == b; }
    bool operator()(const NodeId& id, std::uint32_t slot) const noexcept {
      return ids->equals(slot, id);
    }
    bool operator()(std::uint32_t slot, const NodeId& id) const noexcept {
      return ids->equals(slot, id);
    }
  };
  using Set = boost::unordered_flat_set<std::uint32_t, SlotHash, SlotEqual>;

  static std::size_t part_of(const NodeId& id) {
    return id.padded_bytes()[id.size() - 1] & (kParts - 1);
  }
  std::size_t part_of(std::uint32_t slot) const { return ids_->last_byte(slot) & (kParts - 1); }

  static std::array<Set, kParts> make_parts(const PeerIdTable& ids) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return std::array<Set, kParts>{((void)I, Set(0, SlotHash{&ids}, SlotEqual{&ids}))...};
    }
    (std::make_index_sequence<kParts>{});
  }

  bool marked(std::uint32_t slot) const { return slot < marks_.size() && marks_[slot]; }

  // Takes a marked slot out at once.
  void erase_now(std::uint32_t slot) {
    marks_[slot] = false;
    --marked_count_;
    remove(slot);
  }
  void remove(std::uint32_t slot) {
    parts_[part_of(slot)].erase(slot);
    --size_;
  }

  const PeerIdTable* ids_;
  std::array<Set, kParts> parts_;
  std::size_t size_ = 0;  // entries in the parts, marked ones included
  // The batch (begin_batch): slots removed and not yet swept, and the next part to sweep.
  bool batch_ = false;
  std::vector<bool> marks_;
  std::size_t marked_count_ = 0;
  std::size_t sweep_next_ = 0;
};

}  // namespace dep2p::connmgr::detail
