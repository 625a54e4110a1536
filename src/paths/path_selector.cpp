// The default PathSelector (docs/design.md, "Keepalive, idle and paths", iroh's rules). Stateless:
// the stickiness comes from the `current` index the caller passes, so one selector can serve every
// peer.
#include "dep2p/connmgr/path_selector.hpp"

#include <algorithm>
#include <tuple>

namespace dep2p::connmgr {
namespace {

class DefaultPathSelector final : public PathSelector {
 public:
  explicit DefaultPathSelector(PathSelectorOptions options) : options_(options) {}

  std::size_t select(std::span<const PathCandidate> candidates,
                     std::optional<std::size_t> current) override {
    // REQUIRES violated: answer an index the caller can see is out of range rather than
    // reading past the span.
    if (candidates.empty()) return 0;
    const std::size_t none = candidates.size();
    // A stale index (the path closed since) must not make a vanished path sticky. A plain
    // index from here on: g++ -O2 misreports a std::optional read as uninitialized.
    const std::size_t in_use = current && *current < none ? *current : none;

    // Direct beats relay at once: no threshold, no measurement needed.
    const bool any_direct = std::any_of(candidates.begin(), candidates.end(),
                                        [](const auto& c) { return c.kind == PathKind::direct; });
    const PathKind tier = any_direct ? PathKind::direct : PathKind::relay;

    // The fastest in the tier; on a tie the current path, then the lower index (the scan
    // only replaces on strictly better).
    std::size_t best = none;
    Rank best_rank{};
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      if (candidates[i].kind != tier) continue;
      const Rank r = rank(candidates[i], i == in_use);
      if (best == none || r < best_rank) {
        best = i;
        best_rank = r;
      }
    }

    if (in_use == none || in_use == best || candidates[in_use].kind != tier) return best;
    // Measured paths rank first, so a measured current path implies a measured best; an
    // unmeasured current one has no RTT to be sticky with.
    if (!candidates[in_use].rtt) return best;
    const Duration gain = effective_rtt(candidates[in_use]) - effective_rtt(candidates[best]);
    return gain >= options_.switch_threshold ? best : in_use;
  }

 private:
  Duration effective_rtt(const PathCandidate& c) const {
    return c.ipv6 ? *c.rtt - options_.ipv6_bias : *c.rtt;
  }

  // Lower is better: measured before unmeasured, then effective RTT, then the current path.
  using Rank = std::tuple<bool, Duration, bool>;
  Rank rank(const PathCandidate& c, bool is_current) const {
    const bool unmeasured = !c.rtt.has_value();
    return {unmeasured, unmeasured ? Duration::zero() : effective_rtt(c), !is_current};
  }

  const PathSelectorOptions options_;
};

}  // namespace

std::shared_ptr<PathSelector> make_default_path_selector(PathSelectorOptions options) {
  return std::make_shared<DefaultPathSelector>(options);
}

}  // namespace dep2p::connmgr
