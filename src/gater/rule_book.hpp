// RuleBook: BasicGater's rules — block, allow and ban flags per peer and per address or
// subnet — and the decisions and listings made from them (docs/design.md, "Admission"). One
// record per peer and per prefix holds all three flags, so a decision costs one hash probe
// for the peer and one per prefix length in use for the address (PrefixMap). An allow wins
// over any block or ban; a ban denies until its end.
//
//   RuleBook book;
//   book.set(peer, RuleBook::Flag::blocked);
//   LazyNow now(time);
//   if (auto denial = book.peer_denial(peer, now)) ...
//
// Thread safety: none; BasicGater's lock guards it (shared for decisions and listings).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/gater.hpp"
#include "dep2p/connmgr/types.hpp"
#include "gater/gater_file.hpp"
#include "net/prefix.hpp"
#include "net/prefix_map.hpp"

namespace dep2p::connmgr::detail {

// Reads now() at most once, and only when a ban has to be compared with it: most
// decisions touch no ban and so never read the clock.
class LazyNow {
 public:
  explicit LazyNow(const TimeSource& time) : time_(time) {}
  TimePoint operator()() {
    if (!now_) now_ = time_.now();
    return *now_;
  }

 private:
  const TimeSource& time_;
  std::optional<TimePoint> now_;
};

// Why a lookup denies: a block (permanent) or a ban with its end, and on which prefix.
struct Denial {
  bool banned = false;
  TimePoint until{};
  Prefix net{};
};

// "peer 12*X3p9Vb is banned for 30 s more".
std::string peer_reason(const NodeId& peer, const Denial& denial, LazyNow& now);
// "address 10.1.2.3 is in blocked subnet 10.1.2.0/24", built in one buffer: denials are
// answered on the accept path, often in floods.
std::string address_reason(const Prefix& host, const Denial& denial, LazyNow& now);

// Longer bans are cut to this, so that `now + duration` cannot overflow the clock.
inline constexpr Duration kMaxBan = std::chrono::hours(24 * 365 * 100);

class RuleBook {
 public:
  enum class Flag : std::uint8_t { blocked, allowed };

  // --- Changes: each returns whether anything changed ---------------------------------
  bool set(const NodeId& peer, Flag flag);
  bool set(const Prefix& net, Flag flag);
  bool clear(const NodeId& peer, Flag flag);
  bool clear(const Prefix& net, Flag flag);
  // Bans until `until`, or keeps a later end already set.
  bool ban(const NodeId& peer, TimePoint until);
  bool ban(const Prefix& net, TimePoint until);
  bool lift_ban(const NodeId& peer);
  bool lift_ban(const Prefix& net);
  // Removes the bans that ended at `now`; returns how many.
  std::size_t sweep(TimePoint now);
  // The earliest ban end, if any ban is held.
  std::optional<TimePoint> next_ban_end() const {
    if (ban_ends_.empty()) return std::nullopt;
    return ban_ends_.begin()->first;
  }

  // --- Decisions ----------------------------------------------------------------------
  std::optional<Denial> peer_denial(const NodeId& peer, LazyNow& now) const;
  // The most specific block or live ban containing `host`, unless an allow rule contains
  // it (an allow at any length wins, so the walk goes on past a denial while allow rules
  // exist).
  std::optional<Denial> address_denial(const Prefix& host, LazyNow& now) const;
  bool address_allowed(const Prefix& host) const;
  bool peer_allowed(const NodeId& peer) const {
    auto it = peers_.find(peer);
    return it != peers_.end() && it->second.allowed;
  }
  // The gater's answer for a peer and/or an address.
  Decision decide(const NodeId* peer, const Endpoint* remote, LazyNow& now) const;

  // --- Listings -----------------------------------------------------------------------
  std::size_t rule_count() const { return rule_count_; }  // expired bans included
  GaterCounts counts(TimePoint now) const;
  // Everything in force at rules.at, unsorted (see sort_listing).
  void list(GaterRules& rules) const;

  // --- The file -----------------------------------------------------------------------
  // The rules in force at `now` (steady) = `wall_ms` (wall clock), ban ends in unix ms,
  // rounded up so that a reloaded ban never ends before the one written.
  std::vector<FileRule> to_file(TimePoint now, std::int64_t wall_ms) const;
  // Adds the file's rules, ban ends converted from the wall clock to the steady one (a
  // ban already over is dropped). Returns whether any of them denies something.
  bool apply(const std::vector<FileRule>& rules, TimePoint now, std::int64_t wall_ms);

 private:
  // Everything the book knows about one peer or one prefix. A record with no flag set is
  // removed, so the tables hold only live rules.
  struct Rule {
    bool blocked = false;
    bool allowed = false;
    bool banned = false;
    TimePoint ban_until{};  // meaningful while `banned`
    bool empty() const { return !blocked && !allowed && !banned; }
  };
  using PeerTable = boost::unordered_flat_map<NodeId, Rule, NodeIdHash>;
  using NetTable = PrefixMap<Rule>;

  // The counts by what a rule is on and what it does (see GaterCounts).
  enum Kind { kPeer, kAddress, kSubnet };
  enum Count { kBlocked, kAllowed, kBanned };
  static Kind kind_of(const NodeId&) { return kPeer; }
  static Kind kind_of(const Prefix& net) { return net.is_host() ? kAddress : kSubnet; }
  static bool Rule::*member(Flag flag) {
    return flag == Flag::blocked ? &Rule::blocked : &Rule::allowed;
  }
  static Rule* find(PeerTable& table, const NodeId& peer) {
    auto it = table.find(peer);
    return it == table.end() ? nullptr : &it->second;
  }
  static Rule* find(NetTable& table, const Prefix& net) { return table.find(net); }

  template <class Key>
  void count(const Key& key, Count what, int delta) {
    counts_[kind_of(key)][what] += static_cast<std::size_t>(delta);  // modulo: -1 subtracts
    rule_count_ += static_cast<std::size_t>(delta);
  }
  template <class Table, class Key>
  bool set_flag(Table& table, const Key& key, Flag flag);
  template <class Table, class Key>
  bool clear_flag(Table& table, const Key& key, Flag flag);
  template <class Table, class Key>
  bool set_ban(Table& table, const Key& key, TimePoint until);
  template <class Table, class Key>
  bool clear_ban(Table& table, const Key& key);

  PeerTable peers_;             // rules per peer; no record has every flag clear
  NetTable nets_;               // rules per canonical prefix (addresses are /32, /128)
  std::size_t rule_count_ = 0;  // flags set across both tables, expired bans included
  std::array<std::array<std::size_t, 3>, 3> counts_{};  // the same by Kind and Count
  std::size_t net_allows_ = 0;                          // records of nets_ with `allowed` set
  // Every ban by end time; exactly one record per banned rule, at its ban_until.
  std::set<std::pair<TimePoint, RuleKey>> ban_ends_;
};

// Sorts a listing: peers by id, addresses and subnets by address (IPv4 first), bans by
// their end, then by what they ban.
void sort_listing(GaterRules& rules);

}  // namespace dep2p::connmgr::detail
