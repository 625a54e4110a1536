#include "gater/rule_book.hpp"

#include <algorithm>
#include <limits>
#include <tuple>
#include <type_traits>

namespace dep2p::connmgr::detail {
namespace {

constexpr std::int64_t kMaxBanMs =
    std::chrono::duration_cast<std::chrono::milliseconds>(kMaxBan).count();

// Appends " for N s more", rounded up: a ban in force never reads "0 s more".
void append_remaining(std::string& out, TimePoint until, TimePoint now) {
  out += " for ";
  out += std::to_string(std::chrono::ceil<std::chrono::seconds>(until - now).count());
  out += " s more";
}

}  // namespace

std::string peer_reason(const NodeId& peer, const Denial& denial, LazyNow& now) {
  std::string text = "peer " + peer.short_string();
  if (!denial.banned) return text + " is blocked";
  text += " is banned";
  append_remaining(text, denial.until, now());
  return text;
}

std::string address_reason(const Prefix& host, const Denial& denial, LazyNow& now) {
  std::string text;
  text.reserve(96);
  text += "address ";
  append_address(text, host);
  const char* what = denial.banned ? "banned" : "blocked";
  if (denial.net.is_host()) {
    text += " is ";
    text += what;
  } else {
    text += " is in ";
    text += what;
    text += " subnet ";
    append(text, denial.net);
  }
  if (denial.banned) append_remaining(text, denial.until, now());
  return text;
}

// --- Changes -----------------------------------------------------------------------------

template <class Table, class Key>
bool RuleBook::set_flag(Table& table, const Key& key, Flag flag) {
  Rule& rule = table[key];
  if (rule.*member(flag)) return false;
  rule.*member(flag) = true;
  count(key, flag == Flag::blocked ? kBlocked : kAllowed, +1);
  if constexpr (std::is_same_v<Key, Prefix>) {
    if (flag == Flag::allowed) ++net_allows_;
  }
  return true;
}

template <class Table, class Key>
bool RuleBook::clear_flag(Table& table, const Key& key, Flag flag) {
  Rule* rule = find(table, key);
  if (rule == nullptr || !(rule->*member(flag))) return false;
  rule->*member(flag) = false;
  count(key, flag == Flag::blocked ? kBlocked : kAllowed, -1);
  if constexpr (std::is_same_v<Key, Prefix>) {
    if (flag == Flag::allowed) --net_allows_;
  }
  if (rule->empty()) table.erase(key);
  return true;
}

template <class Table, class Key>
bool RuleBook::set_ban(Table& table, const Key& key, TimePoint until) {
  Rule& rule = table[key];
  if (rule.banned) {
    if (rule.ban_until >= until) return false;
    ban_ends_.erase({rule.ban_until, RuleKey{key}});
  } else {
    rule.banned = true;
    count(key, kBanned, +1);
  }
  rule.ban_until = until;
  ban_ends_.emplace(until, RuleKey{key});
  return true;
}

template <class Table, class Key>
bool RuleBook::clear_ban(Table& table, const Key& key) {
  Rule* rule = find(table, key);
  if (rule == nullptr || !rule->banned) return false;
  ban_ends_.erase({rule->ban_until, RuleKey{key}});
  rule->banned = false;
  count(key, kBanned, -1);
  if (rule->empty()) table.erase(key);
  return true;
}

bool RuleBook::set(const NodeId& peer, Flag flag) { return set_flag(peers_, peer, flag); }
bool RuleBook::set(const Prefix& net, Flag flag) { return set_flag(nets_, net, flag); }
bool RuleBook::clear(const NodeId& peer, Flag flag) { return clear_flag(peers_, peer, flag); }
bool RuleBook::clear(const Prefix& net, Flag flag) { return clear_flag(nets_, net, flag); }
bool RuleBook::ban(const NodeId& peer, TimePoint until) { return set_ban(peers_, peer, until); }
bool RuleBook::ban(const Prefix& net, TimePoint until) { return set_ban(nets_, net, until); }
bool RuleBook::lift_ban(const NodeId& peer) { return clear_ban(peers_, peer); }
bool RuleBook::lift_ban(const Prefix& net) { return clear_ban(nets_, net); }

std::size_t RuleBook::sweep(TimePoint now) {
  std::size_t removed = 0;
  while (!ban_ends_.empty() && ban_ends_.begin()->first <= now) {
    const auto [until, key] = *ban_ends_.begin();
    if (const auto* peer = std::get_if<NodeId>(&key)) {
      clear_ban(peers_, *peer);
    } else {
      clear_ban(nets_, std::get<Prefix>(key));
    }
    ban_ends_.erase({until, key});  // already gone unless the tables disagree
    ++removed;
  }
  return removed;
}

// --- Decisions ---------------------------------------------------------------------------

std::optional<Denial> RuleBook::peer_denial(const NodeId& peer, LazyNow& now) const {
  if (peers_.empty()) return std::nullopt;
  auto it = peers_.find(peer);
  if (it == peers_.end()) return std::nullopt;
  const Rule& rule = it->second;
  if (rule.allowed) return std::nullopt;
  if (rule.blocked) return Denial{};
  if (rule.banned && rule.ban_until > now()) return Denial{true, rule.ban_until, {}};
  return std::nullopt;
}

std::optional<Denial> RuleBook::address_denial(const Prefix& host, LazyNow& now) const {
  std::optional<Denial> denial;
  bool allowed = false;
  const bool allows_exist = net_allows_ != 0;
  nets_.visit_matches(host, [&](const Prefix& net, const Rule& rule) {
    if (rule.allowed) {
      allowed = true;
      return true;
    }
    if (!denial) {
      if (rule.blocked) {
        denial = Denial{false, {}, net};
      } else if (rule.banned && rule.ban_until > now()) {
        denial = Denial{true, rule.ban_until, net};
      }
    }
    return denial.has_value() && !allows_exist;
  });
  if (allowed) return std::nullopt;
  return denial;
}

bool RuleBook::address_allowed(const Prefix& host) const {
  if (net_allows_ == 0) return false;
  return nets_.visit_matches(host, [](const Prefix&, const Rule& rule) { return rule.allowed; });
}

Decision RuleBook::decide(const NodeId* peer, const Endpoint* remote, LazyNow& now) const {
  if (peer != nullptr) {
    if (auto denial = peer_denial(*peer, now)) {
      return Decision::deny(peer_reason(*peer, *denial, now));
    }
  }
  if (remote != nullptr && !nets_.empty()) {
    const Prefix host = host_prefix(remote->address);
    if (auto denial = address_denial(host, now)) {
      return Decision::deny(address_reason(host, *denial, now));
    }
  }
  return Decision::allow();
}

// --- Listings ----------------------------------------------------------------------------

GaterCounts RuleBook::counts(TimePoint now) const {
  auto held = counts_;
  // Bans that ended wait for the sweep: they are not counted (nor listed) any more.
  for (auto it = ban_ends_.begin(); it != ban_ends_.end() && it->first <= now; ++it) {
    const auto* peer = std::get_if<NodeId>(&it->second);
    --held[peer ? kPeer : kind_of(std::get<Prefix>(it->second))][kBanned];
  }
  return GaterCounts{held[kPeer][kBlocked],    held[kPeer][kAllowed],    held[kPeer][kBanned],
                     held[kAddress][kBlocked], held[kAddress][kAllowed], held[kAddress][kBanned],
                     held[kSubnet][kBlocked],  held[kSubnet][kAllowed],  held[kSubnet][kBanned]};
}

void RuleBook::list(GaterRules& out) const {
  for (const auto& [peer, rule] : peers_) {
    if (rule.blocked) out.blocked_peers.push_back(peer);
    if (rule.allowed) out.allowed_peers.push_back(peer);
    if (rule.banned && rule.ban_until > out.at) out.banned_peers.push_back({peer, rule.ban_until});
  }
  nets_.for_each([&](const Prefix& net, const Rule& rule) {
    const bool host = net.is_host();
    const boost::asio::ip::address address = to_address(net);
    if (rule.blocked) {
      if (host) {
        out.blocked_addresses.push_back(address);
      } else {
        out.blocked_subnets.push_back({address, net.length});
      }
    }
    if (rule.allowed) {
      if (host) {
        out.allowed_addresses.push_back(address);
      } else {
        out.allowed_subnets.push_back({address, net.length});
      }
    }
    if (rule.banned && rule.ban_until > out.at) {
      if (host) {
        out.banned_addresses.push_back({address, rule.ban_until});
      } else {
        out.banned_subnets.push_back({{address, net.length}, rule.ban_until});
      }
    }
  });
}

void sort_listing(GaterRules& out) {
  auto by_address = [](const boost::asio::ip::address& a, const boost::asio::ip::address& b) {
    return Subnet{a, 0} < Subnet{b, 0};
  };
  std::sort(out.blocked_peers.begin(), out.blocked_peers.end());
  std::sort(out.allowed_peers.begin(), out.allowed_peers.end());
  std::sort(out.blocked_addresses.begin(), out.blocked_addresses.end(), by_address);
  std::sort(out.allowed_addresses.begin(), out.allowed_addresses.end(), by_address);
  std::sort(out.blocked_subnets.begin(), out.blocked_subnets.end());
  std::sort(out.allowed_subnets.begin(), out.allowed_subnets.end());
  std::sort(out.banned_peers.begin(), out.banned_peers.end(), [](const auto& a, const auto& b) {
    return std::tie(a.until, a.peer) < std::tie(b.until, b.peer);
  });
  std::sort(out.banned_addresses.begin(), out.banned_addresses.end(),
            [&](const auto& a, const auto& b) {
              if (a.until != b.until) return a.until < b.until;
              return by_address(a.address, b.address);
            });
  std::sort(out.banned_subnets.begin(), out.banned_subnets.end(), [](const auto& a, const auto& b) {
    if (a.until != b.until) return a.until < b.until;
    return a.subnet < b.subnet;
  });
}

// --- The file ----------------------------------------------------------------------------

std::vector<FileRule> RuleBook::to_file(TimePoint now, std::int64_t wall_ms) const {
  std::vector<FileRule> out;
  out.reserve(rule_count_);
  auto add = [&](const RuleKey& key, const Rule& rule) {
    if (rule.blocked) out.push_back({FileRule::Kind::block, key, 0});
    if (rule.allowed) out.push_back({FileRule::Kind::allow, key, 0});
    if (rule.banned && rule.ban_until > now) {
      // Rounded up, so a reloaded ban never ends before the one written.
      const std::int64_t until =
          wall_ms + std::chrono::ceil<std::chrono::milliseconds>(rule.ban_until - now).count();
      out.push_back({FileRule::Kind::ban, key, until});
    }
  };
  for (const auto& [peer, rule] : peers_) add(peer, rule);
  nets_.for_each([&](const Prefix& net, const Rule& rule) { add(net, rule); });
  return out;
}

bool RuleBook::apply(const std::vector<FileRule>& rules, TimePoint now, std::int64_t wall_ms) {
  bool tightened = false;
  for (const FileRule& rule : rules) {
    const auto* peer = std::get_if<NodeId>(&rule.key);
    const auto* net = std::get_if<Prefix>(&rule.key);
    switch (rule.kind) {
      case FileRule::Kind::block:
        tightened |= peer ? set(*peer, Flag::blocked) : set(*net, Flag::blocked);
        break;
      case FileRule::Kind::allow:
        if (peer) {
          set(*peer, Flag::allowed);
        } else {
          set(*net, Flag::allowed);
        }
        break;
      case FileRule::Kind::ban: {
        // Clamped in milliseconds: a far-off end from the file (up to INT64_MAX ms) would
        // overflow the nanosecond Duration before min() could clamp it.
        constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
        const std::int64_t left_ms = wall_ms < 0 && rule.until_ms > kInt64Max + wall_ms
                                         ? kInt64Max
                                         : rule.until_ms - wall_ms;
        if (left_ms <= 0) break;  // ended while the node was down
        const Duration left =
            left_ms >= kMaxBanMs ? kMaxBan : Duration(std::chrono::milliseconds(left_ms));
        tightened |= peer ? ban(*peer, now + left) : ban(*net, now + left);
        break;
      }
    }
  }
  return tightened;
}

}  // namespace dep2p::connmgr::detail
