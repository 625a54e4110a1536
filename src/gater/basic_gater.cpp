// Gater defaults (Gater::bypasses_caps lives with the admission code, its caller),
// CompositeGater and BasicGater.
//
// BasicGater keeps one rule record per peer and per subnet, holding its block, allow and
// ban flags together, so an intercept costs one hash probe for the peer and one per prefix
// length in use for the address (detail::PrefixMap). Intercepts take the rule lock shared;
// changes take it exclusively, commit, and only after releasing it write the file and run
// the on_tightened handlers (plan, commit, act), so a handler may call the gater.
#include "dep2p/connmgr/gater.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <stdexcept>
#include <tuple>
#include <utility>
#include <variant>

#include <spdlog/spdlog.h>
#include <boost/asio/strand.hpp>
#include <boost/unordered/unordered_flat_map.hpp>

#include "base/logging.hpp"
#include "dep2p/connmgr/connection.hpp"
#include "dep2p/connmgr/error.hpp"
#include "net/prefix_map.hpp"

namespace dep2p::connmgr {

// --- Gater defaults -------------------------------------------------------------------

Decision Gater::intercept_peer_dial(const NodeId&) { return Decision::allow(); }
Decision Gater::intercept_addr_dial(const NodeId&, const Endpoint&) { return Decision::allow(); }
Decision Gater::intercept_accept(const Endpoint&) { return Decision::allow(); }
Decision Gater::intercept_secured(Direction, const NodeId&, const Endpoint&) {
  return Decision::allow();
}
Decision Gater::intercept_upgraded(const Connection&) { return Decision::allow(); }
Subscription Gater::on_tightened(std::function<void()>) { return Subscription{}; }

// --- CompositeGater -------------------------------------------------------------------

namespace {

template <class Ask>
Decision first_denial(const std::vector<std::shared_ptr<Gater>>& gaters, Ask&& ask) {
  for (const auto& gater : gaters) {
    Decision decision = ask(*gater);
    if (!decision) return decision;
  }
  return Decision::allow();
}

}  // namespace

CompositeGater::CompositeGater(std::vector<std::shared_ptr<Gater>> gaters)
    : gaters_(std::move(gaters)) {
  for (std::size_t i = 0; i < gaters_.size(); ++i) {
    if (!gaters_[i]) {
      throw std::invalid_argument("CompositeGater: gaters[" + std::to_string(i) + "] is null");
    }
  }
}

Decision CompositeGater::intercept_peer_dial(const NodeId& peer) {
  return first_denial(gaters_, [&](Gater& g) { return g.intercept_peer_dial(peer); });
}
Decision CompositeGater::intercept_addr_dial(const NodeId& peer, const Endpoint& remote) {
  return first_denial(gaters_, [&](Gater& g) { return g.intercept_addr_dial(peer, remote); });
}
Decision CompositeGater::intercept_accept(const Endpoint& remote) {
  return first_denial(gaters_, [&](Gater& g) { return g.intercept_accept(remote); });
}
Decision CompositeGater::intercept_secured(Direction direction, const NodeId& peer,
                                           const Endpoint& remote) {
  return first_denial(gaters_,
                      [&](Gater& g) { return g.intercept_secured(direction, peer, remote); });
}
Decision CompositeGater::intercept_upgraded(const Connection& connection) {
  return first_denial(gaters_, [&](Gater& g) { return g.intercept_upgraded(connection); });
}

Subscription CompositeGater::on_tightened(std::function<void()> handler) {
  if (!handler) return Subscription{};
  // One copy of the handler shared by every child; Subscription is move-only, so the
  // children's handles live in a shared vector that the returned handle's cancel clears.
  auto shared = std::make_shared<std::function<void()>>(std::move(handler));
  auto children = std::make_shared<std::vector<Subscription>>();
  for (const auto& gater : gaters_) {
    Subscription sub = gater->on_tightened([shared] { (*shared)(); });
    if (sub.active()) children->push_back(std::move(sub));
  }
  if (children->empty()) return Subscription{};
  return Subscription([children] { children->clear(); });
}

bool CompositeGater::bypasses_caps(const boost::asio::ip::address& address) {
  return std::any_of(gaters_.begin(), gaters_.end(),
                     [&](const auto& gater) { return gater->bypasses_caps(address); });
}

// --- BasicGater -----------------------------------------------------------------------

namespace {

constexpr std::string_view kFileMagic = "dep2p-connmgr-gater";
constexpr std::string_view kFileVersion = "1";
// Longer bans are cut to this, so that `now + duration` cannot overflow the clock.
constexpr Duration kMaxBan = std::chrono::hours(24 * 365 * 100);
constexpr std::int64_t kMaxBanMs =
    std::chrono::duration_cast<std::chrono::milliseconds>(kMaxBan).count();

// Everything the gater knows about one peer or one subnet. An entry with no flag set is
// removed, so the tables hold only live rules.
struct Rule {
  bool blocked = false;
  bool allowed = false;
  bool banned = false;
  TimePoint ban_until{};  // meaningful while `banned`

  bool empty() const { return !blocked && !allowed && !banned; }
};

using PeerTable = boost::unordered_flat_map<NodeId, Rule, NodeIdHash>;
using NetTable = detail::PrefixMap<Rule>;
using BanKey = std::variant<NodeId, detail::Prefix>;

Rule* find_rule(PeerTable& table, const NodeId& peer) {
  auto it = table.find(peer);
  return it == table.end() ? nullptr : &it->second;
}
Rule* find_rule(NetTable& table, const detail::Prefix& net) { return table.find(net); }

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

// Why a lookup denies: a block (permanent) or a ban with its end, and on which subnet.
struct Denial {
  bool banned = false;
  TimePoint until{};
  detail::Prefix net{};
};

// Appends " for N s more", rounded up: a ban in force never reads "0 s more".
void append_remaining(std::string& out, TimePoint until, TimePoint now) {
  out += " for ";
  out += std::to_string(std::chrono::ceil<std::chrono::seconds>(until - now).count());
  out += " s more";
}

std::string peer_reason(const NodeId& peer, const Denial& denial, LazyNow& now) {
  std::string text = "peer " + peer.short_hex();
  if (!denial.banned) return text + " is blocked";
  text += " is banned";
  append_remaining(text, denial.until, now());
  return text;
}

// Built in one buffer: denials are answered on the accept path, often in floods.
std::string address_reason(const detail::Prefix& host, const Denial& denial, LazyNow& now) {
  std::string text;
  text.reserve(96);
  text += "address ";
  detail::append_address(text, host);
  const char* what = denial.banned ? "banned" : "blocked";
  if (denial.net.is_host()) {
    text += " is ";
    text += what;
  } else {
    text += " is in ";
    text += what;
    text += " subnet ";
    detail::append(text, denial.net);
  }
  if (denial.banned) append_remaining(text, denial.until, now());
  return text;
}

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// One rule read from the file, before it is applied.
struct FileRule {
  enum class Kind { block, allow, ban } kind;
  BanKey key;
  std::int64_t until_ms = 0;  // bans only
};

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

// Parses the whole file; on failure returns nullopt and sets `error` to "line N: what".
std::optional<std::vector<FileRule>> parse_rules(std::string_view text, std::string& error) {
  std::vector<FileRule> rules;
  std::size_t line_number = 0;
  bool header_seen = false;
  auto fail = [&](const std::string& what) {
    error = "line " + std::to_string(line_number) + ": " + what;
    return std::nullopt;
  };
  while (!text.empty() || !header_seen) {
    ++line_number;
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::vector<std::string_view> fields = split_fields(line);

    if (!header_seen) {
      if (fields.size() == 2 && fields[0] == kFileMagic && fields[1] != kFileVersion) {
        return fail("unsupported version \"" + std::string(fields[1]) + "\" (this build reads " +
                    std::string(kFileVersion) + ")");
      }
      if (fields.size() != 2 || fields[0] != kFileMagic) {
        return fail("expected the header \"" + std::string(kFileMagic) + " " +
                    std::string(kFileVersion) + "\"");
      }
      header_seen = true;
      continue;
    }
    if (fields.empty() || fields[0].front() == '#') continue;

    const std::string_view keyword = fields[0];
    const bool peer = keyword.ends_with("-peer");
    const std::string_view verb = peer ? keyword.substr(0, keyword.size() - 5) : keyword;
    FileRule::Kind kind;
    if (verb == "block") {
      kind = FileRule::Kind::block;
    } else if (verb == "allow") {
      kind = FileRule::Kind::allow;
    } else if (verb == "ban") {
      kind = FileRule::Kind::ban;
    } else {
      return fail("unknown keyword \"" + std::string(keyword) + "\"");
    }
    const std::size_t expected = kind == FileRule::Kind::ban ? 3 : 2;
    if (fields.size() != expected) {
      return fail("\"" + std::string(keyword) + "\" takes " + std::to_string(expected - 1) +
                  (expected == 2 ? " field" : " fields") + ", found " +
                  std::to_string(fields.size() - 1));
    }
    std::optional<BanKey> key;
    if (peer) {
      if (auto id = NodeId::try_from_hex(fields[1])) key.emplace(*id);
    } else if (auto net = detail::parse_prefix(fields[1])) {
      key.emplace(*net);
    }
    if (!key) {
      return fail(std::string(peer ? "bad peer id" : "bad address or subnet") + " \"" +
                  std::string(fields[1]) + "\"");
    }
    std::int64_t until_ms = 0;
    if (kind == FileRule::Kind::ban) {
      const std::string_view number = fields[2];
      const auto [ptr, ec] =
          std::from_chars(number.data(), number.data() + number.size(), until_ms);
      if (ec != std::errc{} || ptr != number.data() + number.size() || until_ms < 0) {
        return fail("bad ban end \"" + std::string(number) + "\" (unix milliseconds)");
      }
    }
    rules.push_back(FileRule{kind, std::move(*key), until_ms});
  }
  return rules;
}

std::error_code os_error(int error) { return {error != 0 ? error : EIO, std::system_category()}; }

}  // namespace

struct BasicGater::Impl : std::enable_shared_from_this<Impl> {
  // An on_tightened registration. `active` turns false when its Subscription goes, so a
  // delivery that copied the list before still skips it.
  struct HandlerSlot {
    std::uint64_t id;
    std::function<void()> handler;
    std::atomic<bool> active{true};
  };

  Impl(boost::asio::any_io_executor executor, BasicGaterOptions options)
      : strand_(boost::asio::make_strand(std::move(executor))),
        time_(options.time_source ? std::move(options.time_source)
                                  : std::make_shared<SteadyTimeSource>()),
        logger_(options.logger ? std::move(options.logger) : detail::make_default_logger()),
        close_existing_(options.close_existing),
        wall_clock_(options.wall_clock ? std::move(options.wall_clock)
                                       : [] { return std::chrono::system_clock::now(); }),
        sweep_timer_(time_->make_timer(strand_)) {}

  // --- Rules (REQUIRES: mutex_ held exclusively) ------------------------------------

  // The rule counts by what a rule is on and what it does (see GaterCounts).
  enum Kind { kPeer, kAddress, kSubnet };
  enum Flag { kBlocked, kAllowed, kBanned };
  static Kind kind_of(const NodeId&) { return kPeer; }
  static Kind kind_of(const detail::Prefix& net) { return net.is_host() ? kAddress : kSubnet; }
  static Flag flag_of(bool Rule::*flag) { return flag == &Rule::blocked ? kBlocked : kAllowed; }
  template <class Key>
  void count(const Key& key, Flag flag, int delta) {
    counts_[kind_of(key)][flag] += static_cast<std::size_t>(delta);  // modulo: -1 subtracts
    rule_count_ += static_cast<std::size_t>(delta);
  }

  template <class Table, class Key>
  bool set_flag(Table& table, const Key& key, bool Rule::*flag) {
    Rule& rule = table[key];
    if (rule.*flag) return false;
    rule.*flag = true;
    count(key, flag_of(flag), +1);
    return true;
  }

  template <class Table, class Key>
  bool clear_flag(Table& table, const Key& key, bool Rule::*flag) {
    Rule* rule = find_rule(table, key);
    if (rule == nullptr || !(rule->*flag)) return false;
    rule->*flag = false;
    count(key, flag_of(flag), -1);
    if (rule->empty()) table.erase(key);
    return true;
  }

  // Bans `key` until `until`, or keeps its later end. Returns whether anything changed.
  template <class Table, class Key>
  bool set_ban(Table& table, const Key& key, TimePoint until) {
    Rule& rule = table[key];
    if (rule.banned) {
      if (rule.ban_until >= until) return false;
      ban_ends_.erase({rule.ban_until, BanKey{key}});
    } else {
      rule.banned = true;
      count(key, kBanned, +1);
    }
    rule.ban_until = until;
    ban_ends_.emplace(until, BanKey{key});
    arm_sweep(until);
    return true;
  }

  template <class Table, class Key>
  bool clear_ban(Table& table, const Key& key) {
    Rule* rule = find_rule(table, key);
    if (rule == nullptr || !rule->banned) return false;
    ban_ends_.erase({rule->ban_until, BanKey{key}});
    rule->banned = false;
    count(key, kBanned, -1);
    if (rule->empty()) table.erase(key);
    return true;
  }

  bool set_net_allow(const detail::Prefix& net) {
    const bool changed = set_flag(nets_, net, &Rule::allowed);
    if (changed) ++net_allows_;
    return changed;
  }
  bool clear_net_allow(const detail::Prefix& net) {
    const bool changed = clear_flag(nets_, net, &Rule::allowed);
    if (changed) --net_allows_;
    return changed;
  }

  // --- Lookups (REQUIRES: mutex_ held, shared is enough) ----------------------------

  std::optional<Denial> peer_denial(const NodeId& peer, LazyNow& now) const {
    if (peers_.empty()) return std::nullopt;
    auto it = peers_.find(peer);
    if (it == peers_.end()) return std::nullopt;
    const Rule& rule = it->second;
    if (rule.allowed) return std::nullopt;
    if (rule.blocked) return Denial{};
    if (rule.banned && rule.ban_until > now()) return Denial{true, rule.ban_until, {}};
    return std::nullopt;
  }

  // The most specific block or live ban containing `host`, unless an allow rule contains
  // it (an allow at any length wins, so the walk goes on past a denial while allow rules
  // exist).
  std::optional<Denial> address_denial(const detail::Prefix& host, LazyNow& now) const {
    std::optional<Denial> denial;
    bool allowed = false;
    const bool allows_exist = net_allows_ != 0;
    nets_.visit_matches(host, [&](const detail::Prefix& net, const Rule& rule) {
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

  bool address_allowed(const detail::Prefix& host) const {
    if (net_allows_ == 0) return false;
    return nets_.visit_matches(
        host, [](const detail::Prefix&, const Rule& rule) { return rule.allowed; });
  }

  Decision decide(const NodeId* peer, const Endpoint* remote) const {
    std::shared_lock lock(mutex_);
    LazyNow now(*time_);
    if (peer != nullptr) {
      if (auto denial = peer_denial(*peer, now)) {
        return Decision::deny(peer_reason(*peer, *denial, now));
      }
    }
    if (remote != nullptr && !nets_.empty()) {
      const detail::Prefix host = detail::host_prefix(remote->address);
      if (auto denial = address_denial(host, now)) {
        return Decision::deny(address_reason(host, *denial, now));
      }
    }
    return Decision::allow();
  }

  // --- Listing -----------------------------------------------------------------------

  GaterCounts counts() const {
    const TimePoint now = time_->now();
    std::shared_lock lock(mutex_);
    auto banned = counts_;
    // Bans that ended wait for the sweep: they are not counted (nor listed) any more.
    for (auto it = ban_ends_.begin(); it != ban_ends_.end() && it->first <= now; ++it) {
      const auto* peer = std::get_if<NodeId>(&it->second);
      --banned[peer ? kPeer : kind_of(std::get<detail::Prefix>(it->second))][kBanned];
    }
    return GaterCounts{
        banned[kPeer][kBlocked],    banned[kPeer][kAllowed],    banned[kPeer][kBanned],
        banned[kAddress][kBlocked], banned[kAddress][kAllowed], banned[kAddress][kBanned],
        banned[kSubnet][kBlocked],  banned[kSubnet][kAllowed],  banned[kSubnet][kBanned]};
  }

  GaterRules rules() const {
    GaterRules out;
    out.at = time_->now();
    std::shared_lock lock(mutex_);
    for (const auto& [peer, rule] : peers_) {
      if (rule.blocked) out.blocked_peers.push_back(peer);
      if (rule.allowed) out.allowed_peers.push_back(peer);
      if (rule.banned && rule.ban_until > out.at)
        out.banned_peers.push_back({peer, rule.ban_until});
    }
    nets_.for_each([&](const detail::Prefix& net, const Rule& rule) {
      const bool host = net.is_host();
      const boost::asio::ip::address address = detail::to_address(net);
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
    lock.unlock();
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
    std::sort(out.banned_subnets.begin(), out.banned_subnets.end(),
              [](const auto& a, const auto& b) {
                if (a.until != b.until) return a.until < b.until;
                return a.subnet < b.subnet;
              });
    return out;
  }

  // --- Sweeping expired bans ---------------------------------------------------------

  // Arms the sweep for `at` unless it is due earlier already. REQUIRES: mutex_ exclusive.
  void arm_sweep(TimePoint at) {
    if (closed_ || (sweep_armed_ && sweep_at_ <= at)) return;
    sweep_armed_ = true;
    sweep_at_ = at;
    sweep_timer_->wait_until(at, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->sweep();
    });
  }

  // Runs on the strand. The file is not rewritten: an expired ban in it is dropped on
  // load, and the next change writes the file without it.
  void sweep() {
    const TimePoint now = time_->now();
    std::unique_lock lock(mutex_);
    sweep_armed_ = false;
    if (closed_) return;
    std::size_t removed = 0;
    while (!ban_ends_.empty() && ban_ends_.begin()->first <= now) {
      const auto [until, key] = *ban_ends_.begin();
      if (const auto* peer = std::get_if<NodeId>(&key)) {
        clear_ban(peers_, *peer);
      } else {
        clear_ban(nets_, std::get<detail::Prefix>(key));
      }
      ban_ends_.erase({until, key});  // already gone unless the tables disagree
      ++removed;
    }
    if (!ban_ends_.empty()) arm_sweep(ban_ends_.begin()->first);
    lock.unlock();
    if (removed != 0) logger_->debug("connmgr: gater: {} expired ban(s) swept", removed);
  }

  TimePoint ban_end(Duration duration) const { return time_->now() + std::min(duration, kMaxBan); }

  // --- After a change (no lock held) -------------------------------------------------

  void after_change(bool tightened) {
    persist();
    if (tightened && close_existing_) fire_tightened();
  }

  void fire_tightened() {
    std::vector<std::shared_ptr<HandlerSlot>> slots;
    {
      std::lock_guard lock(handlers_mutex_);
      slots = handlers_;
    }
    for (const auto& slot : slots) {
      if (!slot->active.load()) continue;
      try {
        slot->handler();
      } catch (const std::exception& e) {
        logger_->warn("connmgr: gater: on_tightened handler threw: {}", e.what());
      } catch (...) {
        logger_->warn("connmgr: gater: on_tightened handler threw a non-standard exception");
      }
    }
  }

  Subscription subscribe(std::function<void()> handler) {
    if (!handler) return Subscription{};
    auto slot = std::make_shared<HandlerSlot>();
    slot->handler = std::move(handler);
    {
      std::lock_guard lock(handlers_mutex_);
      slot->id = next_handler_id_++;
      handlers_.push_back(slot);
    }
    return Subscription([weak = weak_from_this(), id = slot->id] {
      auto self = weak.lock();
      if (!self) return;
      std::lock_guard lock(self->handlers_mutex_);
      auto& handlers = self->handlers_;
      auto it = std::find_if(handlers.begin(), handlers.end(),
                             [id](const auto& s) { return s->id == id; });
      if (it != handlers.end()) {
        (*it)->active.store(false);
        handlers.erase(it);
      }
    });
  }

  // --- Persistence -------------------------------------------------------------------

  // The file's text for the rules in force at `now` (steady) = `wall_ms` (wall clock).
  // REQUIRES: mutex_ held (shared).
  std::string serialize(TimePoint now, std::int64_t wall_ms) const {
    auto until_ms = [&](TimePoint until) {
      // Rounded up, so a reloaded ban never ends before the one written.
      return std::to_string(wall_ms +
                            std::chrono::ceil<std::chrono::milliseconds>(until - now).count());
    };
    std::vector<std::string> lines;
    lines.reserve(rule_count_);
    auto add = [&](const std::string& name, const Rule& rule, const char* suffix) {
      if (rule.blocked) lines.push_back(std::string("block") + suffix + " " + name);
      if (rule.allowed) lines.push_back(std::string("allow") + suffix + " " + name);
      if (rule.banned && rule.ban_until > now) {
        lines.push_back(std::string("ban") + suffix + " " + name + " " + until_ms(rule.ban_until));
      }
    };
    for (const auto& [peer, rule] : peers_) add(peer.to_hex(), rule, "-peer");
    nets_.for_each([&](const detail::Prefix& net, const Rule& rule) {
      add(detail::to_string(net), rule, "");
    });
    // Sorted, so that the same rules always give the same file (diffs, tests).
    std::sort(lines.begin(), lines.end());
    std::string text;
    text.reserve(32 + lines.size() * 48);
    text.append(kFileMagic).append(" ").append(kFileVersion).append("\n");
    for (const std::string& line : lines) text.append(line).append("\n");
    return text;
  }

  // Writes the rules to path_ through path_ + ".tmp", fsync and rename, then fsyncs the
  // directory so the rename itself survives a crash. REQUIRES: file_mutex_ held.
  std::error_code write_file() {
    if (path_.empty()) return {};
    // The clocks are read before the lock: wall_clock_ is the host's code.
    const TimePoint now = time_->now();
    const std::int64_t wall_ms = unix_ms(wall_clock_());
    std::string text;
    {
      std::shared_lock lock(mutex_);
      text = serialize(now, wall_ms);
    }
    const std::string temp = path_ + ".tmp";
    auto fail = [&](int error, const char* step, const std::string& file) {
      const std::error_code ec = os_error(error);
      logger_->error("connmgr: gater: cannot save rules to {}: {} {}: {}", path_, step, file,
                     ec.message());
      return ec;
    };
    std::FILE* out = std::fopen(temp.c_str(), "wbe");
    if (out == nullptr) return fail(errno, "create", temp);
    const bool written = std::fwrite(text.data(), 1, text.size(), out) == text.size() &&
                         std::fflush(out) == 0 && ::fsync(::fileno(out)) == 0;
    const int write_error = errno;
    if (std::fclose(out) != 0 || !written) {
      const int error = written ? errno : write_error;
      ::unlink(temp.c_str());
      return fail(error, "write", temp);
    }
    if (std::rename(temp.c_str(), path_.c_str()) != 0) {
      const int error = errno;
      ::unlink(temp.c_str());
      return fail(error, "rename over", path_);
    }
    std::string directory = std::filesystem::path(path_).parent_path().string();
    if (directory.empty()) directory = ".";
    const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return fail(errno, "open directory", directory);
    const bool synced = ::fsync(dir) == 0;
    const int sync_error = errno;
    ::close(dir);
    if (!synced) return fail(sync_error, "fsync directory", directory);
    return {};
  }

  void persist() {
    std::lock_guard lock(file_mutex_);
    write_file();  // a failure is logged there and reported by the next save()
  }

  // Reads a whole file. Returns false with errno-style `error` when it cannot; a missing
  // file is reported as ENOENT.
  static bool read_file(const std::string& path, std::string& text, int& error) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      error = errno;
      return false;
    }
    char buffer[16384];
    for (;;) {
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n == 0) break;
      if (n < 0) {
        if (errno == EINTR) continue;
        error = errno;
        ::close(fd);
        return false;
      }
      text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return true;
  }

  // Adds the file's rules to those in memory, ban ends converted from the wall clock
  // (`wall_ms`) to the steady one (`now`). Returns whether any denies something.
  // REQUIRES: mutex_ held exclusively.
  bool apply(const std::vector<FileRule>& rules, TimePoint now, std::int64_t wall_ms) {
    bool tightened = false;
    for (const FileRule& rule : rules) {
      const auto* peer = std::get_if<NodeId>(&rule.key);
      const auto* net = std::get_if<detail::Prefix>(&rule.key);
      switch (rule.kind) {
        case FileRule::Kind::block:
          tightened |= peer ? set_flag(peers_, *peer, &Rule::blocked)
                            : set_flag(nets_, *net, &Rule::blocked);
          break;
        case FileRule::Kind::allow:
          if (peer) {
            set_flag(peers_, *peer, &Rule::allowed);
          } else {
            set_net_allow(*net);
          }
          break;
        case FileRule::Kind::ban: {
          // Clamped in milliseconds: a far-off end from the file (up to INT64_MAX ms)
          // would overflow the nanosecond Duration before min() could clamp it.
          constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
          const std::int64_t left_ms = wall_ms < 0 && rule.until_ms > kInt64Max + wall_ms
                                           ? kInt64Max
                                           : rule.until_ms - wall_ms;
          if (left_ms <= 0) break;  // ended while the node was down
          const Duration left =
              left_ms >= kMaxBanMs ? kMaxBan : Duration(std::chrono::milliseconds(left_ms));
          tightened |= peer ? set_ban(peers_, *peer, now + left) : set_ban(nets_, *net, now + left);
          break;
        }
      }
    }
    return tightened;
  }

  std::error_code attach(const std::string& path, std::string* message, bool& tightened) {
    std::lock_guard file_lock(file_mutex_);
    auto report = [&](std::error_code ec, const std::string& text) {
      logger_->error("connmgr: gater: {}", text);
      if (message != nullptr) *message = text;
      return ec;
    };
    if (path.empty()) return report(Errc::invalid_argument, "gater file: empty path");
    std::string text;
    int error = 0;
    std::vector<FileRule> rules;
    if (read_file(path, text, error)) {
      std::string what;
      auto parsed = parse_rules(text, what);
      if (!parsed) return report(Errc::invalid_argument, "gater file " + path + ", " + what);
      rules = std::move(*parsed);
    } else if (error != ENOENT) {
      const std::error_code ec = os_error(error);
      return report(ec, "cannot read gater file " + path + ": " + ec.message());
    }
    const TimePoint now = time_->now();
    const std::int64_t wall_ms = unix_ms(wall_clock_());
    bool had_rules;
    {
      std::unique_lock lock(mutex_);
      had_rules = rule_count_ != 0;
      tightened = apply(rules, now, wall_ms);
    }
    path_ = path;
    logger_->info("connmgr: gater: attached {} ({} rules read)", path, rules.size());
    // Rules made before attaching are not in the file yet.
    if (had_rules) {
      if (auto ec = write_file()) {
        return report(ec, "attached " + path + " but cannot write it: " + ec.message());
      }
    }
    return {};
  }

  // Immutable after construction.
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  std::shared_ptr<TimeSource> time_;
  std::shared_ptr<spdlog::logger> logger_;
  bool close_existing_;
  std::function<std::chrono::system_clock::time_point()> wall_clock_;

  mutable std::shared_mutex mutex_;  // guards everything down to closed_
  PeerTable peers_;                  // rules per peer; no entry has every flag clear
  NetTable nets_;                    // rules per canonical subnet (hosts are /32, /128)
  std::size_t rule_count_ = 0;       // flags set across both tables, expired bans included
  // The same flags by Kind and Flag (rule_count_ is their sum).
  std::array<std::array<std::size_t, 3>, 3> counts_{};
  std::size_t net_allows_ = 0;  // entries of nets_ with `allowed` set
  // Every ban by end time; exactly one record per `banned` rule, at its ban_until.
  std::set<std::pair<TimePoint, BanKey>> ban_ends_;
  std::unique_ptr<Timer> sweep_timer_;
  bool sweep_armed_ = false;
  TimePoint sweep_at_{};
  bool closed_ = false;

  std::mutex handlers_mutex_;  // guards handlers_ and next_handler_id_
  std::vector<std::shared_ptr<HandlerSlot>> handlers_;
  std::uint64_t next_handler_id_ = 1;

  // Taken before mutex_ when both are needed. Serialises attaching and writing, so each
  // write snapshots the rules after every change acknowledged before it.
  std::mutex file_mutex_;
  std::string path_;  // the attached file; empty when none
};

BasicGater::BasicGater(boost::asio::any_io_executor executor, BasicGaterOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {}

BasicGater::~BasicGater() {
  std::unique_lock lock(impl_->mutex_);
  impl_->closed_ = true;
  impl_->sweep_timer_->cancel();
}

void BasicGater::block_peer(const NodeId& peer) {
  bool changed;
  {
    std::unique_lock lock(impl_->mutex_);
    changed = impl_->set_flag(impl_->peers_, peer, &Rule::blocked);
  }
  if (!changed) return;
  impl_->logger_->info("connmgr: gater: blocked peer {}", peer.short_hex());
  impl_->after_change(true);
}

bool BasicGater::unblock_peer(const NodeId& peer) {
  bool changed;
  {
    std::unique_lock lock(impl_->mutex_);
    const bool block = impl_->clear_flag(impl_->peers_, peer, &Rule::blocked);
    const bool ban = impl_->clear_ban(impl_->peers_, peer);
    changed = block || ban;
  }
  if (!changed) return false;
  impl_->logger_->info("connmgr: gater: unblocked peer {}", peer.short_hex());
  impl_->after_change(false);
  return true;
}

void BasicGater::allow_peer(const NodeId& peer) {
  bool changed;
  {
    std::unique_lock lock(impl_->mutex_);
    changed = impl_->set_flag(impl_->peers_, peer, &Rule::allowed);
  }
  if (!changed) return;
  impl_->logger_->info("connmgr: gater: allowed peer {}", peer.short_hex());
  impl_->after_change(false);
}

bool BasicGater::disallow_peer(const NodeId& peer) {
  bool changed;
  {
    std::unique_lock lock(impl_->mutex_);
    changed = impl_->clear_flag(impl_->peers_, peer, &Rule::allowed);
  }
  if (!changed) return false;
  impl_->logger_->info("connmgr: gater: peer {} no longer allowed", peer.short_hex());
  impl_->after_change(true);  // its blocks and bans apply again
  return true;
}

std::error_code BasicGater::block(std::string_view address_or_subnet) {
  const auto net = detail::parse_prefix(address_or_subnet);
  if (!net) return Errc::invalid_argument;
  bool changed;
  {
    std::unique_lock lock(impl_->mutex_);
    changed = impl_->set_flag(impl_->nets_, *net, &Rule::blocked);
  }
  if (changed) {
    impl_->logger_->info("connmgr: gater: blocked {}", detail::to_string(*net));
    impl_->after_change(true);
  }
  return {};
}

bool BasicGater::unblock(std::string_view address_or_subnet) {
  const auto net = detail::parse_prefix(address_or_subnet);
  if (!net) return false;
  bool changed;
  {
    std::unique_lock lock(impl_->mutex_);
    const bool block = impl_->clear_flag(impl_->nets_, *net, &Rule::blocked);
    const bool ban = impl_->clear_ban(impl_->nets_, *net);
    changed = block || ban;
  }
  if (!changed) return false;
  impl_->logger_->info("connmgr: gater: unblocked {}", detail::to_string(*net));
  impl_->after_change(false);
  return true;
}

std::error_code BasicGater::allow(std::string_view address_or_subnet) {
  const auto net = detail::parse_prefix(address_or_subnet);
  if (!net) return Errc::invalid_argument;
  bool changed;
  {
    std::unique_lock lock(impl_->mutex_);
    changed = impl_->set_net_allow(*net);
  }
  if (changed) {
    impl_->logger_->info("connmgr: gater: allowed {}", detail::to_string(*net));
    impl_->after_change(false);
  }
  return {};
}

bool BasicGater::disallow(std::string_view address_or_subnet) {
  const auto net = detail::parse_prefix(address_or_subnet);
  if (!net) return false;
  bool changed;
  {
    std::unique_lock lock(impl_->mutex_);
    changed = impl_->clear_net_allow(*net);
  }
  if (!changed) return false;
  impl_->logger_->info("connmgr: gater: {} no longer allowed", detail::to_string(*net));
  impl_->after_change(true);
  return true;
}

void BasicGater::ban_peer(const NodeId& peer, Duration duration) {
  if (duration <= Duration::zero()) {
    impl_->logger_->warn("connmgr: gater: ban of peer {} ignored: the duration is not positive",
                         peer.short_hex());
    return;
  }
  const TimePoint until = impl_->ban_end(duration);
  bool changed;
  {
    std::unique_lock lock(impl_->mutex_);
    changed = impl_->set_ban(impl_->peers_, peer, until);
  }
  if (!changed) return;
  impl_->logger_->info("connmgr: gater: banned peer {} for {} ms", peer.short_hex(),
                       std::chrono::duration_cast<std::chrono::milliseconds>(duration).count());
  impl_->after_change(true);
}

std::error_code BasicGater::ban(std::string_view address_or_subnet, Duration duration) {
  const auto net = detail::parse_prefix(address_or_subnet);
  if (!net || duration <= Duration::zero()) return Errc::invalid_argument;
  const TimePoint until = impl_->ban_end(duration);
  bool changed;
  {
    std::unique_lock lock(impl_->mutex_);
    changed = impl_->set_ban(impl_->nets_, *net, until);
  }
  if (changed) {
    impl_->logger_->info("connmgr: gater: banned {} for {} ms", detail::to_string(*net),
                         std::chrono::duration_cast<std::chrono::milliseconds>(duration).count());
    impl_->after_change(true);
  }
  return {};
}

bool BasicGater::is_peer_blocked(const NodeId& peer) const {
  std::shared_lock lock(impl_->mutex_);
  LazyNow now(*impl_->time_);
  return impl_->peer_denial(peer, now).has_value();
}

bool BasicGater::is_address_blocked(const boost::asio::ip::address& address) const {
  std::shared_lock lock(impl_->mutex_);
  LazyNow now(*impl_->time_);
  return impl_->address_denial(detail::host_prefix(address), now).has_value();
}

bool BasicGater::is_allowed(const boost::asio::ip::address& address) const {
  std::shared_lock lock(impl_->mutex_);
  return impl_->address_allowed(detail::host_prefix(address));
}

bool BasicGater::is_peer_allowed(const NodeId& peer) const {
  std::shared_lock lock(impl_->mutex_);
  auto it = impl_->peers_.find(peer);
  return it != impl_->peers_.end() && it->second.allowed;
}

GaterRules BasicGater::rules() const { return impl_->rules(); }
GaterCounts BasicGater::counts() const { return impl_->counts(); }

std::size_t BasicGater::rule_count() const {
  std::shared_lock lock(impl_->mutex_);
  return impl_->rule_count_;
}

std::error_code BasicGater::attach_file(const std::string& path, std::string* message) {
  bool tightened = false;
  const std::error_code ec = impl_->attach(path, message, tightened);
  // Loaded blocks and bans may deny connections opened before the file was attached.
  if (tightened && impl_->close_existing_) impl_->fire_tightened();
  return ec;
}

std::error_code BasicGater::save() {
  std::lock_guard lock(impl_->file_mutex_);
  if (impl_->path_.empty()) return Errc::invalid_argument;
  return impl_->write_file();
}

Decision BasicGater::intercept_peer_dial(const NodeId& peer) {
  return impl_->decide(&peer, nullptr);
}
Decision BasicGater::intercept_addr_dial(const NodeId& peer, const Endpoint& remote) {
  return impl_->decide(&peer, &remote);
}
Decision BasicGater::intercept_accept(const Endpoint& remote) {
  return impl_->decide(nullptr, &remote);
}
Decision BasicGater::intercept_secured(Direction, const NodeId& peer, const Endpoint& remote) {
  return impl_->decide(&peer, &remote);
}
Subscription BasicGater::on_tightened(std::function<void()> handler) {
  return impl_->subscribe(std::move(handler));
}
bool BasicGater::bypasses_caps(const boost::asio::ip::address& address) {
  return is_allowed(address);
}

}  // namespace dep2p::connmgr
