#include "dep2p/connmgr/trimmer.hpp"

#include <algorithm>
#include <bit>
#include <optional>
#include <tuple>

#include "trim/score_key.hpp"
#include "trim/value_buckets.hpp"

namespace dep2p::connmgr {
namespace {

using detail::key_of;
using detail::RankKey;

// RankKey::value alone (the first field of detail::key_of): the tag sum in unsigned order.
std::uint64_t value_key(const PeerSnapshot& peer) { return detail::value_key(peer.value); }

// The k-th smallest (1-based) of `values`, 1 <= k <= values.size(), in O(n): the buckets
// over the values' range (one pass) find the one holding it, and only that bucket's values
// are selected among (none when each value has a bucket of its own, as tag sums do).
std::uint64_t kth_smallest(const std::vector<std::uint64_t>& values, std::size_t k) {
  const auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
  detail::ValueBuckets buckets(*lo_it, *hi_it, values.size());
  for (const std::uint64_t v : values) buckets.add(v, 1);
  const auto [bucket, below] = buckets.boundary(k);
  if (buckets.exact()) return buckets.key_of(bucket);
  std::vector<std::uint64_t> inside;
  inside.reserve(buckets.weight(bucket));
  for (const std::uint64_t v : values) {
    if (buckets.bucket_of(v) == bucket) inside.push_back(v);
  }
  const auto kth = inside.begin() + static_cast<std::ptrdiff_t>(k - 1 - below);
  std::nth_element(inside.begin(), kth, inside.end());
  return *kth;
}

class ScoreTrimmer final : public Trimmer {
 public:
  TrimInputs inputs() const override { return {.peer_ids = false, .connections = false}; }

  // Every peer holds at least one connection, so the victims are among the first
  // `target_connections` peers in rank order. The value decides almost every place in that
  // order, so the k-th smallest value is found first on 8-byte keys; the full keys are
  // built only for the peers tied on that value (to pick which of them fall within the
  // target) and, when some peer holds several connections, for the k victims (whose
  // order then matters, since the manager stops part-way). The set chosen is exactly the
  // first k by full key, as if all n full keys had been selected.
  void rank(const TrimSnapshot& snapshot, std::size_t target_connections,
            std::vector<std::uint32_t>& order) override {
    const std::size_t n = snapshot.peers.size();
    if (n == 0 || target_connections == 0) return;
    const std::size_t k = std::min(target_connections, n);

    std::vector<std::uint32_t> prefix;  // indices of the k peers first in rank order
    prefix.reserve(k);
    bool some_multi = false;  // whether any peer at all holds several connections
    if (k == n) {
      for (std::uint32_t i = 0; i < n; ++i) prefix.push_back(i);
      some_multi = true;  // not looked at: the prefix is checked below
    } else {
      std::vector<std::uint64_t> values(n);
      for (std::size_t i = 0; i < n; ++i) {
        values[i] = value_key(snapshot.peers[i]);
        some_multi = some_multi || snapshot.peers[i].connection_count > 1;
      }
      const std::uint64_t boundary = kth_smallest(values, k);
      // Fewer than k values lie below the boundary. Values are in random order, so the
      // prefix is written without a branch (an unpredictable one costs more than the store).
      std::vector<RankKey> tied;
      prefix.resize(k);
      std::size_t below = 0;
      for (std::uint32_t i = 0; i < n; ++i) {
        prefix[below] = i;
        below += static_cast<std::size_t>(values[i] < boundary);
        if (values[i] == boundary) tied.push_back(key_of(snapshot.peers[i], i, snapshot.forced));
      }
      prefix.resize(below);
      // k - prefix.size() >= 1 of the tied peers fall within the target.
      const auto wanted = static_cast<std::ptrdiff_t>(k - prefix.size());
      if (wanted < static_cast<std::ptrdiff_t>(tied.size())) {
        std::nth_element(tied.begin(), tied.begin() + wanted, tied.end());
      }
      for (auto it = tied.begin(); it != tied.begin() + wanted; ++it) prefix.push_back(it->index);
    }

    // With one connection each, exactly those k peers go whatever their order. With
    // several, the manager stops part-way, so the order within the prefix matters; and
    // all of it when the snapshot asks for the whole order.
    const bool multi =
        snapshot.ordered ||
        (some_multi && std::any_of(prefix.begin(), prefix.end(), [&](std::uint32_t i) {
           return snapshot.peers[i].connection_count > 1;
         }));
    order.reserve(order.size() + k);
    if (!multi) {
      order.insert(order.end(), prefix.begin(), prefix.end());
      return;
    }
    std::vector<RankKey> keys;
    keys.reserve(k);
    for (std::uint32_t i : prefix) keys.push_back(key_of(snapshot.peers[i], i, snapshot.forced));
    std::sort(keys.begin(), keys.end());
    for (const RankKey& key : keys) order.push_back(key.index);
  }
};

// The ActivityTrimmer's keys, in the same spirit: everything the order depends on is
// folded out of the peer's connections once, so the comparator never walks connections.
struct ActivityKey {
  std::uint64_t standing;     // bit 1: not all in the surplus direction; bit 0: established
  std::uint64_t last_active;  // most recent activity, oldest first
  std::uint64_t download;     // summed rate as ordered bits, lowest first
  std::uint64_t upload;       // likewise
  std::uint64_t newer;        // later first_seen first
  std::uint32_t index;

  friend bool operator<(const ActivityKey& a, const ActivityKey& b) {
    return std::tie(a.standing, a.last_active, a.download, a.upload, a.newer, a.index) <
           std::tie(b.standing, b.last_active, b.download, b.upload, b.newer, b.index);
  }
};

// Keys compare as unsigned integers; flipping the sign bit keeps the order of signed ticks.
std::uint64_t ascending_ticks(TimePoint t) {
  return static_cast<std::uint64_t>(t.time_since_epoch().count()) ^ (1ULL << 63);
}

// Rates come from the host's byte counts through a smoother; a NaN or negative one is a
// host bug, and counting it as no traffic keeps the order a strict weak ordering.
double usable_rate(double rate) { return rate > 0 ? rate : 0.0; }

// For non-negative doubles (+inf included) the IEEE bit pattern orders like the value.
std::uint64_t ascending_rate(double non_negative) {
  return std::bit_cast<std::uint64_t>(non_negative);
}

// ScoreTrimmer's selection step for any key type: every peer holds at least one
// connection, so the victims are among the first `target_connections` peers in rank order;
// select those in O(n), and sort them only when the manager may stop part-way through.
template <typename Key>
void append_victims(const TrimSnapshot& snapshot, std::size_t target_connections,
                    std::vector<Key>& keys, std::vector<std::uint32_t>& order) {
  const std::size_t k = std::min(target_connections, keys.size());
  const auto prefix_end = keys.begin() + static_cast<std::ptrdiff_t>(k);
  if (k < keys.size()) std::nth_element(keys.begin(), prefix_end, keys.end());
  const bool multi = std::any_of(keys.begin(), prefix_end, [&](const Key& key) {
    return snapshot.peers[key.index].connection_count > 1;
  });
  if (multi || snapshot.ordered) std::sort(keys.begin(), prefix_end);
  order.reserve(order.size() + k);
  for (auto it = keys.begin(); it != prefix_end; ++it) order.push_back(it->index);
}

class ActivityTrimmer final : public Trimmer {
 public:
  explicit ActivityTrimmer(ActivityTrimmerOptions options) : options_(options) {}

  TrimInputs inputs() const override { return {.peer_ids = false, .connections = true}; }

  void rank(const TrimSnapshot& snapshot, std::size_t target_connections,
            std::vector<std::uint32_t>& order) override {
    const std::size_t n = snapshot.peers.size();
    if (n == 0 || target_connections == 0) return;
    const std::optional<Direction> surplus =
        options_.balance_directions ? surplus_direction(snapshot) : std::nullopt;

    std::vector<ActivityKey> keys;
    keys.reserve(n);
    for (std::uint32_t i = 0; i < n; ++i) keys.push_back(key_of(snapshot, i, surplus));
    append_victims(snapshot, target_connections, keys, order);
  }

 private:
  static std::optional<Direction> surplus_direction(const TrimSnapshot& snapshot) {
    std::size_t inbound = 0;
    for (const ConnectionSnapshot& c : snapshot.connections) {
      if (c.direction == Direction::inbound) ++inbound;
    }
    const std::size_t outbound = snapshot.connections.size() - inbound;
    if (inbound == outbound) return std::nullopt;
    return inbound > outbound ? Direction::inbound : Direction::outbound;
  }

  static ActivityKey key_of(const TrimSnapshot& snapshot, std::uint32_t index,
                            std::optional<Direction> surplus) {
    const PeerSnapshot& peer = snapshot.peers[index];
    bool established = false;
    bool all_surplus = true;
    TimePoint last_active = TimePoint::min();
    double download = 0;
    double upload = 0;
    // Guards against a snapshot built without the connections column: its peers then
    // rank as ones we know nothing about, instead of reading past the column.
    const bool visible =
        std::size_t{peer.first_connection} + peer.connection_count <= snapshot.connections.size();
    if (visible) {
      for (const ConnectionSnapshot& c : snapshot.connections_of(peer)) {
        established = established || c.established;
        all_surplus = all_surplus && c.direction == surplus;
        last_active = std::max(last_active, c.last_activity);
        download += usable_rate(c.download_rate);
        upload += usable_rate(c.upload_rate);
      }
    }
    const std::uint64_t spared = surplus && all_surplus ? 0 : 1;
    return ActivityKey{
        (spared << 1) | (established ? 1 : 0),
        ascending_ticks(last_active),
        ascending_rate(download),
        ascending_rate(upload),
        ~ascending_ticks(peer.first_seen),
        index,
    };
  }

  const ActivityTrimmerOptions options_;
};

}  // namespace

std::shared_ptr<Trimmer> make_score_trimmer() { return std::make_shared<ScoreTrimmer>(); }

std::shared_ptr<Trimmer> make_activity_trimmer(ActivityTrimmerOptions options) {
  return std::make_shared<ActivityTrimmer>(options);
}

}  // namespace dep2p::connmgr
