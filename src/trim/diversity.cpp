#include "trim/diversity.hpp"

#include <algorithm>
#include <queue>
#include <tuple>

#include <boost/unordered/unordered_flat_map.hpp>
#include <boost/unordered/unordered_flat_set.hpp>

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
  NetGroup group;           // its network group
  std::uint64_t salted;     // the group under the node's salt
  Duration rtt;             // its lowest measured keepalive RTT; max() when unmeasured
  TimePoint first_seen;     // when it connected
  std::uint32_t conns = 0;  // its connections
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

// Marks up to `slots` members kept, walking `order`, skipping groups that hold a kept
// member already; stops at `budget` kept members in all.
void keep_first(std::vector<Member>& members, const std::vector<std::uint32_t>& order,
                std::uint32_t slots, std::size_t budget, std::size_t& kept,
                boost::unordered_flat_set<NetGroup, PrefixHash>& kept_groups) {
  std::uint32_t used = 0;
  for (const std::uint32_t i : order) {
    if (used == slots || kept == budget) return;
    Member& m = members[i];
    if (m.kept || !kept_groups.insert(m.group).second) continue;
    m.kept = true;
    ++used;
    ++kept;
  }
}

// The boundary value's members [begin, end) of `tied`: keeps some, then takes victims from
// the most represented groups until `wanted` connections are covered. Reorders the range,
// victims first, and returns how many go.
std::size_t choose_within_value(const CandidateView& view, const DiversityRule& rule,
                                std::vector<RankKey>& tied, std::size_t begin, std::size_t end,
                                std::size_t wanted, const TrimTarget& target, VictimSlots& out) {
  const Pool& pool = view.pool();
  std::vector<Member> members;
  members.reserve(end - begin);
  boost::unordered_flat_map<NetGroup, std::size_t, PrefixHash> counts;
  for (std::size_t i = begin; i < end; ++i) {
    const PeerSlot& entry = pool.peer(tied[i].index);
    Member m;
    m.key = tied[i];
    m.group = peer_group(pool, entry, rule.groups);
    m.salted = keyed_group(m.group, rule.salt);
    m.rtt = lowest_rtt(pool, entry);
    m.first_seen = pool.cold(tied[i].index).first_seen;
    m.conns = static_cast<std::uint32_t>(entry.conns.size());
    counts[m.group] += m.conns;
    members.push_back(m);
  }

  // Each group's connections: those of its members here and of its peers the trim may not
  // take (protected, in their grace period), so that an attacker's fresh connections count
  // against its group. Peers of a higher value are kept by it and not counted.
  pool.for_each_slot([&](std::size_t index, const PeerSlot& entry) {
    const auto slot = static_cast<std::uint32_t>(index);
    if (!entry.live || entry.temporary || entry.conns.empty() || view.is_candidate(slot, entry)) {
      return;
    }
    if (auto it = counts.find(peer_group(pool, entry, rule.groups)); it != counts.end()) {
      it->second += entry.conns.size();
    }
  });

  // The kept slots: at most half the members, at most one per group.
  const std::size_t budget = members.size() / 2;
  std::size_t kept = 0;
  boost::unordered_flat_set<NetGroup, PrefixHash> kept_groups;
  std::vector<std::uint32_t> order(members.size());
  for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  if (rule.group_slots > 0) {
    // Groups in the salted order; within one, the member the default order values most.
    std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
      const Member& x = members[a];
      const Member& y = members[b];
      if (x.salted != y.salted) return x.salted > y.salted;
      if (x.group != y.group) return x.group < y.group;
      return y.key < x.key;
    });
    keep_first(members, order, rule.group_slots, budget, kept, kept_groups);
  }
  if (rule.rtt_slots > 0) {
    std::vector<std::uint32_t> measured;
    for (std::uint32_t i = 0; i < members.size(); ++i) {
      if (members[i].rtt != Duration::max()) measured.push_back(i);
    }
    std::sort(measured.begin(), measured.end(), [&](std::uint32_t a, std::uint32_t b) {
      return std::tie(members[a].rtt, members[a].key) < std::tie(members[b].rtt, members[b].key);
    });
    keep_first(members, measured, rule.rtt_slots, budget, kept, kept_groups);
  }
  if (rule.age_slots > 0) {
    std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
      return std::tie(members[a].first_seen, members[a].key) <
             std::tie(members[b].first_seen, members[b].key);
    });
    keep_first(members, order, rule.age_slots, budget, kept, kept_groups);
  }

  // The others by group, each group's members in the default order.
  std::vector<std::uint32_t> open;
  for (std::uint32_t i = 0; i < members.size(); ++i) {
    if (!members[i].kept) open.push_back(i);
  }
  std::sort(open.begin(), open.end(), [&](std::uint32_t a, std::uint32_t b) {
    return std::tie(members[a].group, members[a].key) < std::tie(members[b].group, members[b].key);
  });
  struct Run {
    std::size_t count;     // the group's connections now
    std::uint64_t salted;  // a tie between equal counts, unpredictable to peers
    std::size_t next;      // into `open`
    std::size_t end;
    bool operator<(const Run& other) const {
      return std::tie(count, salted) < std::tie(other.count, other.salted);
    }
  };
  std::priority_queue<Run> runs;
  for (std::size_t i = 0; i < open.size();) {
    std::size_t j = i;
    while (j < open.size() && members[open[j]].group == members[open[i]].group) ++j;
    const Member& first = members[open[i]];
    runs.push(Run{counts[first.group], first.salted, i, j});
    i = j;
  }

  std::vector<std::uint32_t> victims;  // into `members`, in the order taken
  std::size_t covered = 0;
  auto take = [&](std::uint32_t i) {
    const Member& m = members[i];
    if (target.partial() && covered + m.conns > wanted) {
      out.partial_slot = m.key.index;
      out.partial_count = wanted - covered;
    }
    covered += m.conns;
    victims.push_back(i);
  };
  while (covered < wanted && !runs.empty()) {
    Run run = runs.top();
    runs.pop();
    const std::uint32_t i = open[run.next++];
    take(i);
    run.count -= std::min<std::size_t>(run.count, members[i].conns);
    if (run.next < run.end) runs.push(run);
  }
  if (covered < wanted) {
    // The target reaches into the kept members: they go in the default order.
    std::vector<std::uint32_t> rest;
    for (std::uint32_t i = 0; i < members.size(); ++i) {
      if (members[i].kept) rest.push_back(i);
    }
    std::sort(rest.begin(), rest.end(),
              [&](std::uint32_t a, std::uint32_t b) { return members[a].key < members[b].key; });
    for (std::size_t k = 0; k < rest.size() && covered < wanted; ++k) take(rest[k]);
  }

  // The range rewritten: victims first, in the order taken, then the others.
  std::vector<std::uint8_t> gone(members.size(), 0);
  std::size_t at = begin;
  for (const std::uint32_t i : victims) {
    gone[i] = 1;
    tied[at++] = members[i].key;
  }
  for (std::uint32_t i = 0; i < members.size(); ++i) {
    if (!gone[i]) tied[at++] = members[i].key;
  }
  return victims.size();
}

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
  return rule;
}

NetGroup peer_group(const Pool& pool, const PeerSlot& entry, const GroupRule& rule) {
  return network_group(pool.remote_address(entry.conns[0]), rule);
}

std::size_t take_diverse(const CandidateView& view, const DiversityRule& rule,
                         std::vector<RankKey>& tied, std::size_t wanted, const TrimTarget& target,
                         VictimSlots& out) {
  std::sort(tied.begin(), tied.end());
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
    return begin + choose_within_value(view, rule, tied, begin, end, wanted - covered, target, out);
  }
  return tied.size();
}

}  // namespace dep2p::connmgr::detail
