#include "trim/diversity.hpp"

#include <algorithm>
#include <tuple>

#include <boost/unordered/unordered_flat_map.hpp>

namespace dep2p::connmgr::detail {

namespace {

// splitmix64: spreads one 64-bit secret over the two words of a SipHash key.
std::uint64_t mix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// One peer of the boundary value, as the rule reads it.
struct Member {
  RankKey key;              // the default order's: lower goes first
  std::uint32_t group = 0;  // into the groups' table
  std::uint32_t conns = 0;  // its connections
  bool kept = false;
};

// One network group of the boundary value's peers. A group keeps at most one peer, so for
// each reason only its best member for that reason can be the one kept: the kept slots
// are chosen by walking groups, not peers.
struct Group {
  std::uint64_t salted = 0;  // the group under the node's salt
  std::size_t count = 0;     // connections: its members' and its peers the trim may not take
  std::uint32_t valued = 0;  // the member the default order values most
  std::uint32_t fastest = UINT32_MAX;  // the member of the lowest measured RTT, if any
  std::uint32_t oldest = 0;            // the member connected first
  Duration rtt = Duration::max();      // the fastest's
  TimePoint first_seen = TimePoint::max();
  bool kept = false;
};

Duration lowest_rtt(const Pool& pool, const PeerSlot& entry) {
  Duration best = Duration::max();
  for (const std::uint32_t c : entry.conns) {
    const Duration rtt = pool.conn(c).srtt;
    if (rtt.count() > 0) best = std::min(best, rtt);
  }
  return best;
}

class Chooser {
 public:
  Chooser(const CandidateView& view, const DiversityRule& rule, bool others)
      : view_(view), rule_(rule), others_(others) {}

  // The boundary value's members [begin, end) of `tied`: keeps some, then takes victims
  // from the most represented groups until `wanted` connections are covered. Reorders the
  // range, victims first, and returns how many go.
  std::size_t choose(std::vector<RankKey>& tied, std::size_t begin, std::size_t end,
                     std::size_t wanted, const TrimTarget& target, VictimSlots& out) {
    describe(tied, begin, end);
    if (others_) count_others();
    keep();
    take(wanted, target, out);
    // The range rewritten: victims first, in the order taken, then the others.
    std::vector<std::uint8_t> gone(members_.size(), 0);
    std::size_t at = begin;
    for (const std::uint32_t i : victims_) {
      gone[i] = 1;
      tied[at++] = members_[i].key;
    }
    for (std::uint32_t i = 0; i < members_.size(); ++i) {
      if (!gone[i]) tied[at++] = members_[i].key;
    }
    return victims_.size();
  }

 private:
  void describe(const std::vector<RankKey>& tied, std::size_t begin, std::size_t end) {
    const Pool& pool = view_.pool();
    members_.reserve(end - begin);
    for (std::size_t k = begin; k < end; ++k) {
      const std::uint32_t slot = tied[k].index;
      const PeerSlot& entry = pool.peer(slot);
      const auto i = static_cast<std::uint32_t>(members_.size());
      const auto [it, added] = index_.try_emplace(peer_group(pool, entry, rule_.groups),
                                                  static_cast<std::uint32_t>(groups_.size()));
      if (added) {
        groups_.push_back(
            Group{.salted = keyed_group(it->first, rule_.salt), .valued = i, .oldest = i});
      }
      Group& g = groups_[it->second];
      Member m{tied[k], it->second, static_cast<std::uint32_t>(entry.conns.size()), false};
      g.count += m.conns;
      if (added || members_[g.valued].key < m.key) g.valued = i;
      const Duration rtt = lowest_rtt(pool, entry);
      if (rtt != Duration::max() &&
          (g.fastest == UINT32_MAX ||
           std::tie(rtt, m.key) < std::tie(g.rtt, members_[g.fastest].key))) {
        g.fastest = i;
        g.rtt = rtt;
      }
      const TimePoint first_seen = pool.cold(slot).first_seen;
      if (added || std::tie(first_seen, m.key) < std::tie(g.first_seen, members_[g.oldest].key)) {
        g.oldest = i;
        g.first_seen = first_seen;
      }
      members_.push_back(m);
    }
  }

  // Adds the connections of the groups' peers the trim may not take (protected, in their
  // grace period), so that an attacker's fresh connections count against its group.
  // Peers of a higher value are kept by it and not counted.
  void count_others() {
    const Pool& pool = view_.pool();
    pool.for_each_slot([&](std::size_t index, const PeerSlot& entry) {
      const auto slot = static_cast<std::uint32_t>(index);
      if (!entry.live || entry.temporary || entry.conns.empty() ||
          view_.is_candidate(slot, entry)) {
        return;
      }
      if (auto it = index_.find(peer_group(pool, entry, rule_.groups)); it != index_.end()) {
        groups_[it->second].count += entry.conns.size();
      }
    });
  }

  // The kept slots: at most half the members, at most one per group.
  void keep() {
    budget_ = members_.size() / 2;
    std::vector<std::uint32_t> order(groups_.size());
    for (std::uint32_t g = 0; g < order.size(); ++g) order[g] = g;
    if (rule_.group_slots > 0) {
      // Groups in the salted order (a tie, improbable, by the valued member's key).
      std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
        const Group& x = groups_[a];
        const Group& y = groups_[b];
        return x.salted != y.salted ? x.salted > y.salted
                                    : members_[y.valued].key < members_[x.valued].key;
      });
      keep_first(order, rule_.group_slots, [](const Group& g) { return g.valued; });
    }
    if (rule_.rtt_slots > 0) {
      std::vector<std::uint32_t> measured;
      for (std::uint32_t g = 0; g < groups_.size(); ++g) {
        if (groups_[g].fastest != UINT32_MAX) measured.push_back(g);
      }
      std::sort(measured.begin(), measured.end(), [&](std::uint32_t a, std::uint32_t b) {
        const Group& x = groups_[a];
        const Group& y = groups_[b];
        return std::tie(x.rtt, members_[x.fastest].key) < std::tie(y.rtt, members_[y.fastest].key);
      });
      keep_first(measured, rule_.rtt_slots, [](const Group& g) { return g.fastest; });
    }
    if (rule_.age_slots > 0) {
      std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
        const Group& x = groups_[a];
        const Group& y = groups_[b];
        return std::tie(x.first_seen, members_[x.oldest].key) <
               std::tie(y.first_seen, members_[y.oldest].key);
      });
      keep_first(order, rule_.age_slots, [](const Group& g) { return g.oldest; });
    }
  }

  // Keeps the `pick` member of up to `slots` groups of `order` that keep none yet.
  template <class Pick>
  void keep_first(const std::vector<std::uint32_t>& order, std::uint32_t slots, Pick pick) {
    std::uint32_t used = 0;
    for (const std::uint32_t g : order) {
      if (used == slots || kept_ == budget_) return;
      Group& group = groups_[g];
      if (group.kept) continue;
      group.kept = true;
      members_[pick(group)].kept = true;
      ++used;
      ++kept_;
    }
  }

  void take_member(std::uint32_t i, std::size_t wanted, const TrimTarget& target,
                   VictimSlots& out) {
    const Member& m = members_[i];
    if (target.partial() && covered_ + m.conns > wanted) {
      out.partial_slot = m.key.index;
      out.partial_count = wanted - covered_;
    }
    covered_ += m.conns;
    victims_.push_back(i);
  }

  // Victims one at a time from the group of the most connections (a tie by the salted
  // order), each group's members in the default order; then, if the target reaches into
  // them, the kept members in the default order.
  void take(std::size_t wanted, const TrimTarget& target, VictimSlots& out) {
    // The open members by group: a counting sort, then each group's run by key.
    std::vector<std::uint32_t> start(groups_.size() + 1, 0);
    for (const Member& m : members_) start[m.group + 1] += m.kept ? 0 : 1;
    for (std::size_t g = 0; g < groups_.size(); ++g) start[g + 1] += start[g];
    std::vector<std::uint32_t> open(start.back());
    std::vector<std::uint32_t> fill(start.begin(), start.end() - 1);
    for (std::uint32_t i = 0; i < members_.size(); ++i) {
      if (!members_[i].kept) open[fill[members_[i].group]++] = i;
    }
    struct Run {
      std::size_t count;
      std::uint64_t salted;
      std::uint32_t group;
      bool operator<(const Run& other) const {
        return std::tie(count, salted) < std::tie(other.count, other.salted);
      }
    };
    std::vector<Run> heap;
    for (std::uint32_t g = 0; g < groups_.size(); ++g) {
      if (start[g] == start[g + 1]) continue;
      std::sort(
          open.begin() + start[g], open.begin() + start[g + 1],
          [&](std::uint32_t a, std::uint32_t b) { return members_[a].key < members_[b].key; });
      heap.push_back(Run{groups_[g].count, groups_[g].salted, g});
    }
    std::make_heap(heap.begin(), heap.end());
    std::vector<std::uint32_t> next(start.begin(), start.end() - 1);  // each run's next member
    while (covered_ < wanted && !heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      Run& run = heap.back();
      const std::uint32_t i = open[next[run.group]++];
      take_member(i, wanted, target, out);
      run.count -= std::min<std::size_t>(run.count, members_[i].conns);
      if (next[run.group] < start[run.group + 1]) {
        std::push_heap(heap.begin(), heap.end());
      } else {
        heap.pop_back();
      }
    }
    if (covered_ < wanted) {
      std::vector<std::uint32_t> rest;
      for (std::uint32_t i = 0; i < members_.size(); ++i) {
        if (members_[i].kept) rest.push_back(i);
      }
      std::sort(rest.begin(), rest.end(), [&](std::uint32_t a, std::uint32_t b) {
        return members_[a].key < members_[b].key;
      });
      for (std::size_t k = 0; k < rest.size() && covered_ < wanted; ++k) {
        take_member(rest[k], wanted, target, out);
      }
    }
  }

  const CandidateView& view_;
  const DiversityRule& rule_;
  bool others_;  // some connected peer is not a candidate
  std::vector<Member> members_;
  std::vector<Group> groups_;
  boost::unordered_flat_map<NetGroup, std::uint32_t, PrefixHash> index_;
  std::size_t budget_ = 0;
  std::size_t kept_ = 0;
  std::size_t covered_ = 0;
  std::vector<std::uint32_t> victims_;  // into members_, in the order taken
};

}  // namespace

std::optional<DiversityRule> DiversityRule::from(const DiversityConfig& config,
                                                 std::uint64_t fallback_salt) {
  if (!config.enabled) return std::nullopt;
  DiversityRule rule;
  rule.groups = GroupRule{config.ipv4_prefix, config.ipv6_prefix, config.loopback_v4_prefix};
  std::uint64_t state = config.salt.value_or(fallback_salt);
  rule.salt.k0 = mix(state);
  rule.salt.k1 = mix(state);
  rule.group_slots = config.group_slots;
  rule.rtt_slots = config.rtt_slots;
  rule.age_slots = config.age_slots;
  rule.grace_per_group = config.grace_per_group;
  return rule;
}

NetGroup peer_group(const Pool& pool, const PeerSlot& entry, const GroupRule& rule) {
  return network_group(pool.remote_address(entry.conns[0]), rule);
}

std::vector<std::uint8_t> unsheltered_in_grace(const Pool& pool, TimePoint now, Duration grace,
                                               const DiversityRule& rule) {
  std::vector<std::uint8_t> exposed;
  if (rule.grace_per_group == 0 || grace.count() == 0) return exposed;
  struct Young {
    NetGroup group;
    TimePoint first_seen;
    NodeId id;
    std::uint32_t slot;
  };
  std::vector<Young> young;
  pool.for_each_slot([&](std::size_t index, const PeerSlot& entry) {
    const auto slot = static_cast<std::uint32_t>(index);
    if (!entry.live || entry.temporary || entry.conns.empty() || entry.is_protected) return;
    const TimePoint first_seen = pool.cold(slot).first_seen;
    if (now - first_seen >= grace) return;
    young.push_back(
        Young{peer_group(pool, entry, rule.groups), first_seen, pool.id_of(slot), slot});
  });
  std::sort(young.begin(), young.end(), [](const Young& a, const Young& b) {
    return std::tie(a.group, a.first_seen, a.id) < std::tie(b.group, b.first_seen, b.id);
  });
  std::size_t in_group = 0;
  for (std::size_t k = 0; k < young.size(); ++k) {
    in_group = k > 0 && young[k].group == young[k - 1].group ? in_group + 1 : 0;
    if (in_group < rule.grace_per_group) continue;
    if (exposed.empty()) exposed.assign(pool.peer_slots(), 0);
    exposed[young[k].slot] = 1;
  }
  return exposed;
}

std::size_t take_diverse(const CandidateView& view, const DiversityRule& rule,
                         std::vector<RankKey>& tied, std::size_t wanted, const TrimTarget& target,
                         bool others, VictimSlots& out) {
  // By value only: the values below the boundary go whole, and the boundary's peers are
  // ordered by the rule. Usually they are one value already (the value buckets are exact).
  const bool one_value = std::all_of(
      tied.begin(), tied.end(), [&](const RankKey& k) { return k.value == tied.front().value; });
  if (!one_value) {
    std::sort(tied.begin(), tied.end(),
              [](const RankKey& a, const RankKey& b) { return a.value < b.value; });
  }
  const Pool& pool = view.pool();
  std::size_t covered = 0;
  for (std::size_t begin = 0; begin < tied.size();) {
    std::size_t end = begin;
    std::size_t weight = 0;
    while (end < tied.size() && tied[end].value == tied[begin].value) {
      weight += pool.peer(tied[end++].index).conns.size();
    }
    if (covered + weight <= wanted) {
      // A value wholly within the target goes whole: nothing to choose.
      covered += weight;
      begin = end;
      if (covered == wanted) return begin;
      continue;
    }
    return begin +
           Chooser(view, rule, others).choose(tied, begin, end, wanted - covered, target, out);
  }
  return tied.size();
}

}  // namespace dep2p::connmgr::detail
