#include "dep2p/connmgr/trimmer.hpp"

#include <algorithm>
#include <tuple>

namespace dep2p::connmgr {
namespace {

// The ranking keys of one candidate, computed once before selection so the comparator
// only compares integers (no locks, no pointer chasing inside std::nth_element).
struct RankKey {
  std::uint64_t value;     // tag sum, mapped to unsigned order: lower value first
  std::uint64_t activity;  // streams? (1 bit), outbound only? (1 bit), stream count
  std::uint64_t newer;     // later first_seen first
  std::uint32_t index;     // into snapshot.peers; last tie-break, keeps results stable

  friend bool operator<(const RankKey& a, const RankKey& b) {
    return std::tie(a.value, a.activity, a.newer, a.index) <
           std::tie(b.value, b.activity, b.newer, b.index);
  }
};

RankKey key_of(const PeerSnapshot& peer, std::uint32_t index) {
  constexpr std::uint64_t kSignFlip = 1ULL << 63;
  constexpr std::uint64_t kStreamMask = (1ULL << 62) - 1;
  const std::uint64_t has_streams = peer.streams > 0 ? 1 : 0;
  const std::uint64_t outbound_only = peer.has_inbound ? 0 : 1;
  const auto ticks = static_cast<std::uint64_t>(peer.first_seen.time_since_epoch().count());
  return RankKey{
      static_cast<std::uint64_t>(peer.value) ^ kSignFlip,
      (has_streams << 63) | (outbound_only << 62) | (peer.streams & kStreamMask),
      ~(ticks ^ kSignFlip),
      index,
  };
}

class ScoreTrimmer final : public Trimmer {
 public:
  TrimInputs inputs() const override { return {.peer_ids = false, .connections = false}; }

  void rank(const TrimSnapshot& snapshot, std::size_t target_connections,
            std::vector<std::uint32_t>& order) override {
    const std::size_t n = snapshot.peers.size();
    if (n == 0 || target_connections == 0) return;
    std::vector<RankKey> keys;
    keys.reserve(n);
    for (std::uint32_t i = 0; i < n; ++i) keys.push_back(key_of(snapshot.peers[i], i));

    // Every peer holds at least one connection, so the victims are among the first
    // `target_connections` peers in rank order: select those in O(n).
    const std::size_t k = std::min(target_connections, n);
    if (k < n) {
      std::nth_element(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(k), keys.end());
    }
    const auto prefix_end = keys.begin() + static_cast<std::ptrdiff_t>(k);
    // With one connection each, exactly those k peers go whatever their order. With
    // several, the manager stops part-way, so the order within the prefix matters.
    const bool multi = std::any_of(keys.begin(), prefix_end, [&](const RankKey& key) {
      return snapshot.peers[key.index].connection_count > 1;
    });
    if (multi) std::sort(keys.begin(), prefix_end);
    order.reserve(order.size() + k);
    for (auto it = keys.begin(); it != prefix_end; ++it) order.push_back(it->index);
  }
};

}  // namespace

std::shared_ptr<Trimmer> make_score_trimmer() { return std::make_shared<ScoreTrimmer>(); }

}  // namespace dep2p::connmgr
