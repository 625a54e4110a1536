// The soak (see soak.hpp): the nodes, the churn driver, the periodic checks and the final
// drain, all on one io_context run by the calling thread.
#include "soak.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "p2p_node.hpp"
#include "proc_stats.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SOAK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SOAK_SANITIZED 1
#endif
#endif

namespace soak {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using boost::asio::ip::tcp;

constexpr std::size_t kMaxViolationTexts = 20;
constexpr std::size_t kMaxProtectedPerNode = 3;
// The default RSS margin (SoakOptions::rss_margin_kib).
#ifdef SOAK_SANITIZED
constexpr std::uint64_t kRssMarginKib = 1024 * 1024;
#else
constexpr std::uint64_t kRssMarginKib = 32 * 1024;
#endif
constexpr auto kFreezeFor = 3s;  // keepalive closes a connection after about 1.25 s
constexpr auto kDrainLimit = 10s;

// The churn's weights, by Action; restart and unfreeze are the timers' (weight 0).
constexpr std::array<double, kActionCount> kWeights = {40, 3, 0, 4, 0, 12, 8, 6, 4, 5};
constexpr std::array<std::string_view, kActionCount> kActionNames = {
    "dial", "stop",  "restart", "freeze",    "unfreeze",
    "tag",  "untag", "protect", "unprotect", "trim"};

constexpr std::string_view kChat = "chat";  // even nodes
constexpr std::string_view kGame = "game";  // every third node; at most 3 bound
constexpr std::size_t kGameHardMax = 3;

cm::Config node_config() {
  cm::Config c;
  c.low_water = 4;
  c.high_water = 8;
  c.grace_period = 0ms;  // a trim may take any unprotected peer at once
  c.silence_period = 200ms;
  c.keepalive_interval = 250ms;
  c.keepalive_timeout = 500ms;
  c.keepalive_max_missed = 2;
  c.redundant_grace = 300ms;
  c.handshake_timeout = 3s;
  c.limits.system.connections_total = 12;
  // Short backoffs: a stopped node is back within seconds, and its protectors' reconnects
  // should find it.
  c.dial.error_backoff = 250ms;
  c.dial.error_backoff_max = 2s;
  return c;
}

std::string fixed(double v, int decimals) {
  char text[48];
  std::snprintf(text, sizeof text, "%.*f", decimals, v);
  return text;
}

std::string mib(std::uint64_t kib) { return fixed(static_cast<double>(kib) / 1024.0, 1); }

struct Slot {
  Slot(boost::asio::io_context& io, cm::NodeId node_id) : id(node_id), timer(io) {}
  cm::NodeId id;
  boost::asio::ip::address address;
  std::uint16_t port = 0;  // 0 until the first start; a restart reuses it
  std::vector<std::string> realms;
  std::shared_ptr<p2p::Node> node;  // null while stopped
  bool frozen = false;
  std::set<std::size_t> tagged, protected_peers;  // slots, by this node's manager
  boost::asio::steady_timer timer;                // the restart while stopped, else the unfreeze
};

class Soak {
 public:
  explicit Soak(const SoakOptions& options)
      : config_(node_config()), rng_(options.seed), churn_(io_), checker_(io_) {
    result_.options = options;
    if (options.nodes < 4 || options.nodes > 250) {
      throw std::invalid_argument("nodes: 4..250");
    }
    if (!(options.seconds > 0) || options.warmup_seconds < 0 || options.check_interval_ms == 0 ||
        options.action_interval_ms == 0) {
      throw std::invalid_argument("seconds, intervals: must be positive");
    }
    if (result_.options.rss_margin_kib == 0) result_.options.rss_margin_kib = kRssMarginKib;
    for (std::size_t i = 0; i < options.nodes; ++i) {
      auto slot = std::make_unique<Slot>(io_, p2p::example_id(0x50, i));
      slot->address = boost::asio::ip::make_address_v4("127.40." + std::to_string(i + 1) + ".1");
      if (i % 2 == 0) slot->realms.emplace_back(kChat);
      if (i % 3 == 0) slot->realms.emplace_back(kGame);
      slots_.push_back(std::move(slot));
    }
  }

  SoakResult run() {
    // The io_context's reactor (epoll, its eventfd and timerfd) exists since the timers
    // above were made: the start value counts it, and the end value must equal it.
    result_.fds_start = proc_stats::open_fds();
    result_.rss_start = proc_stats::rss_kib();
    for (std::size_t i = 0; i < slots_.size(); ++i) start(i);
    say("soak: " + std::to_string(slots_.size()) + " nodes on 127.40.1-" +
        std::to_string(slots_.size()) + ".1, " + fixed(result_.options.seconds, 0) +
        " s of churn, warm-up " + fixed(result_.options.warmup_seconds, 0) + " s");

    started_ = Clock::now();
    churning_ = true;
    schedule_churn();
    schedule_check();
    io_.run_until(started_ + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(result_.options.seconds)));
    churning_ = false;
    churn_.cancel();
    checker_.cancel();
    result_.seconds = elapsed();
    check();  // the last round, with the churn over
    say("churn over after " + fixed(result_.seconds, 1) + " s; stopping every node");
    finish();
    return std::move(result_);
  }

 private:
  double elapsed() const { return std::chrono::duration<double>(Clock::now() - started_).count(); }
  void say(const std::string& line) {
    if (result_.options.progress) result_.options.progress(line);
  }
  void violation(const std::string& text) {
    ++result_.violations;
    const std::string line = "[" + fixed(elapsed(), 1) + " s] " + text;
    if (result_.violation_texts.size() < kMaxViolationTexts) {
      result_.violation_texts.push_back(line);
    }
    say("VIOLATION " + line);
  }
  std::size_t random_below(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }
  std::optional<std::size_t> pick(const std::function<bool(const Slot&)>& fits) {
    std::vector<std::size_t> candidates;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i]->node && fits(*slots_[i])) candidates.push_back(i);
    }
    if (candidates.empty()) return std::nullopt;
    return candidates[random_below(candidates.size())];
  }
  std::size_t other_than(std::size_t i) {
    const std::size_t j = random_below(slots_.size() - 1);
    return j >= i ? j + 1 : j;
  }
  void count(Action action) { ++result_.actions[static_cast<std::size_t>(action)]; }

  // Creates slot i's node on its address (and old port); joins its realms.
  void start(std::size_t i) {
    Slot& slot = *slots_[i];
    slot.node = p2p::Node::create(
        io_, {.id = slot.id, .address = slot.address, .config = config_, .port = slot.port});
    slot.port = slot.node->endpoint().port();
    for (const auto& realm : slot.realms) {
      cm::RealmConfig limits;
      if (realm == kGame) limits.hard_max = kGameHardMax;
      if (auto ec = slot.node->join_realm(realm, limits)) {
        violation("node " + std::to_string(i) + ": join_realm " + realm + ": " + ec.message());
      }
    }
  }

  // Adds a manager's totals to the result (when its node stops for good).
  void harvest(Slot& slot, p2p::Node& node) {
    const cm::Stats s = node.manager().stats();
    result_.connections_opened += s.connections_added;
    for (std::size_t k = 0; k < s.closes_by_reason.size(); ++k) {
      result_.closes_by_reason[k] += s.closes_by_reason[k];
    }
    for (std::size_t k = 0; k < s.refusals_by_reason.size(); ++k) {
      result_.refusals_by_reason[k] += s.refusals_by_reason[k];
    }
    result_.trims += s.trims;
    result_.reconnect_dials += s.reconnect_dials;
    for (const auto& realm : slot.realms) {
      if (auto rs = node.realms().realm_stats(realm)) result_.realm_binds += rs->binds;
    }
  }

  // What a stopped node's manager still holds: connections, reservations, bindings.
  struct Residue {
    std::size_t connections = 0, reservations = 0, bindings = 0;
  };
  static Residue residue(const Slot& slot, p2p::Node& node) {
    Residue r{node.manager().connection_count(), node.manager().stats().reservations, 0};
    for (const auto& realm : slot.realms) r.bindings += node.realms().realm_connection_count(realm);
    return r;
  }

  // Stops slot i's node: goodbyes on every connection, its manager closed. Its manager
  // must hold nothing afterwards.
  void stop(std::size_t i) {
    Slot& slot = *slots_[i];
    std::shared_ptr<p2p::Node> node = std::move(slot.node);
    slot.timer.cancel();  // a pending unfreeze
    slot.frozen = false;
    slot.tagged.clear();
    slot.protected_peers.clear();
    node->stop();
    const Residue r = residue(slot, *node);
    if (r.connections != 0 || r.reservations != 0 || r.bindings != 0) {
      violation("node " + std::to_string(i) + " stopped: its manager holds " +
                std::to_string(r.connections) + " connections, " + std::to_string(r.reservations) +
                " reservations, " + std::to_string(r.bindings) + " realm bindings");
    }
    harvest(slot, *node);
  }

  void restart_later(std::size_t i, std::chrono::milliseconds after) {
    Slot& slot = *slots_[i];
    slot.timer.expires_after(after);
    slot.timer.async_wait([this, i](boost::system::error_code ec) {
      if (ec || !churning_) return;
      try {
        start(i);
        count(Action::restart);
      } catch (const std::exception&) {  // the old port not free yet: try again
        ++restart_retries_;
        slots_[i]->node.reset();
        restart_later(i, 500ms);
      }
    });
  }

  void schedule_churn() {
    churn_.expires_after(std::chrono::milliseconds(result_.options.action_interval_ms));
    churn_.async_wait([this](boost::system::error_code ec) {
      if (ec || !churning_) return;
      act();
      schedule_churn();
    });
  }

  // One random action; one that does not apply now (nothing to untag, enough nodes
  // stopped) becomes a dial.
  void act() {
    std::discrete_distribution<std::size_t> kinds(kWeights.begin(), kWeights.end());
    const auto action = static_cast<Action>(kinds(rng_));
    if (!try_act(action)) try_act(Action::dial);
  }

  bool try_act(Action action) {
    const std::size_t n = slots_.size();
    const std::size_t quarter = std::max<std::size_t>(1, n / 4);
    switch (action) {
      case Action::dial: {
        auto from = pick([](const Slot&) { return true; });
        if (!from) return false;
        const Slot& to = *slots_[other_than(*from)];
        slots_[*from]->node->dial(to.id, tcp::endpoint(to.address, to.port), cm::PathKind::direct,
                                  [this](std::error_code ec, const std::string&) {
                                    ++(ec ? result_.dials_failed : result_.dials_connected);
                                  });
        break;
      }
      case Action::stop: {
        std::size_t stopped = 0;
        for (const auto& slot : slots_) stopped += slot->node ? 0U : 1U;
        if (stopped >= quarter) return false;
        auto i = pick([](const Slot&) { return true; });
        if (!i) return false;
        stop(*i);
        restart_later(*i, std::chrono::milliseconds(1000 + random_below(2001)));
        break;
      }
      case Action::freeze: {
        std::size_t frozen = 0;
        for (const auto& slot : slots_) frozen += slot->frozen ? 1U : 0U;
        if (frozen >= quarter) return false;
        auto i = pick([](const Slot& s) { return !s.frozen; });
        if (!i) return false;
        Slot& slot = *slots_[*i];
        slot.frozen = true;
        slot.node->set_frozen(true);
        slot.timer.expires_after(kFreezeFor);
        slot.timer.async_wait([this, &slot](boost::system::error_code ec) {
          if (ec || !slot.node || !slot.frozen) return;
          slot.frozen = false;
          slot.node->set_frozen(false);
          count(Action::unfreeze);
        });
        break;
      }
      case Action::tag: {
        auto i = pick([](const Slot&) { return true; });
        if (!i) return false;
        const std::size_t peer = other_than(*i);
        const auto value = static_cast<cm::TagValue>(1 + random_below(100));
        if (slots_[*i]->node->manager().tag_peer(slots_[peer]->id, "soak", value)) return false;
        slots_[*i]->tagged.insert(peer);
        break;
      }
      case Action::untag: {
        auto i = pick([](const Slot& s) { return !s.tagged.empty(); });
        if (!i) return false;
        Slot& slot = *slots_[*i];
        auto it = std::next(slot.tagged.begin(),
                            static_cast<std::ptrdiff_t>(random_below(slot.tagged.size())));
        slot.node->manager().untag_peer(slots_[*it]->id, "soak");
        slot.tagged.erase(it);
        break;
      }
      case Action::protect: {
        auto i =
            pick([](const Slot& s) { return s.protected_peers.size() < kMaxProtectedPerNode; });
        if (!i) return false;
        const std::size_t peer = other_than(*i);
        if (slots_[*i]->node->manager().protect(slots_[peer]->id, "soak")) return false;
        slots_[*i]->protected_peers.insert(peer);
        break;
      }
      case Action::unprotect: {
        auto i = pick([](const Slot& s) { return !s.protected_peers.empty(); });
        if (!i) return false;
        Slot& slot = *slots_[*i];
        auto it = std::next(slot.protected_peers.begin(),
                            static_cast<std::ptrdiff_t>(random_below(slot.protected_peers.size())));
        slot.node->manager().unprotect(slots_[*it]->id, "soak");
        slot.protected_peers.erase(it);
        break;
      }
      case Action::trim: {
        auto i = pick([](const Slot&) { return true; });
        if (!i) return false;
        slots_[*i]->node->manager().trim();
        break;
      }
      case Action::restart:
      case Action::unfreeze: return false;  // the timers'
    }
    count(action);
    return true;
  }

  void schedule_check() {
    checker_.expires_after(std::chrono::milliseconds(result_.options.check_interval_ms));
    checker_.async_wait([this](boost::system::error_code ec) {
      if (ec || !churning_) return;
      check();
      schedule_check();
    });
  }

  void check() {
    ++result_.checks;
    std::size_t pooled = 0;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      Slot& slot = *slots_[i];
      if (!slot.node) continue;
      ++result_.node_checks;
      const cm::ConnectionManager& manager = slot.node->manager();
      const p2p::Node::SessionCounts held = slot.node->session_counts();
      const std::size_t count = manager.connection_count();
      const std::size_t reservations = manager.stats().reservations;
      pooled += count;
      result_.peak_connections = std::max(result_.peak_connections, count);
      const std::string who = "node " + std::to_string(i) + ": ";
      if (count != held.pooled) {
        violation(who + "its manager counts " + std::to_string(count) +
                  " connections, the node holds " + std::to_string(held.pooled));
      }
      if (reservations > held.handshaking) {
        violation(who + std::to_string(reservations) + " reservations alive for " +
                  std::to_string(held.handshaking) + " connections in their handshake");
      }
      for (const auto& realm : slot.realms) {
        const std::size_t bound = slot.node->realms().realm_connection_count(realm);
        if (bound > count) {
          violation(who + "realm " + realm + " binds " + std::to_string(bound) + " of " +
                    std::to_string(count) + " connections");
        }
      }
    }
    const std::size_t fds = proc_stats::open_fds();
    const std::uint64_t rss = proc_stats::rss_kib();
    result_.fds_peak = std::max(result_.fds_peak, fds);
    result_.rss_peak = std::max(result_.rss_peak, rss);
    if (elapsed() >= result_.options.warmup_seconds) {
      if (!warm_) {
        warm_ = true;
        result_.fds_warm = fds;
        result_.rss_warm = rss;
        result_.fds_bound = fds + slots_.size() * config_.high_water;
        result_.rss_bound = rss + result_.options.rss_margin_kib;
        say("[" + fixed(elapsed(), 1) + " s] warm: bounds " + std::to_string(result_.fds_bound) +
            " descriptors, " + mib(result_.rss_bound) + " MiB RSS");
      }
      if (fds > result_.fds_bound) {
        violation(std::to_string(fds) + " open descriptors, above the bound of " +
                  std::to_string(result_.fds_bound));
      }
      if (rss > result_.rss_bound) {
        violation("RSS " + mib(rss) + " MiB, above the bound of " + mib(result_.rss_bound) +
                  " MiB");
      }
    }
    const std::size_t every = std::max<std::size_t>(1, result_.options.progress_every_checks);
    if (result_.checks % every == 0) {
      std::uint64_t actions = 0;
      for (auto a : result_.actions) actions += a;
      say("[" + fixed(elapsed(), 1) + " s] check " + std::to_string(result_.checks) + ": " +
          std::to_string(pooled) + " connections pooled, " + std::to_string(actions) +
          " actions, " + std::to_string(fds) + " descriptors, RSS " + mib(rss) + " MiB, " +
          std::to_string(result_.violations) + " violations");
    }
  }

  // Stops every node, drains the io_context, checks that nothing is left.
  void finish() {
    std::vector<std::pair<std::size_t, std::shared_ptr<p2p::Node>>> last;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      Slot& slot = *slots_[i];
      slot.timer.cancel();  // a pending restart or unfreeze
      if (!slot.node) continue;
      slot.node->stop();
      last.emplace_back(i, std::move(slot.node));
    }
    const auto limit = Clock::now() + kDrainLimit;
    io_.restart();
    while (!io_.stopped() && Clock::now() < limit) io_.run_for(100ms);
    result_.drained = io_.stopped();
    if (!result_.drained) violation("the io_context still had work after the drain limit");
    for (auto& [i, node] : last) {
      const Residue r = residue(*slots_[i], *node);
      result_.connections_after += r.connections;
      result_.reservations_after += r.reservations;
      result_.bindings_after += r.bindings;
      harvest(*slots_[i], *node);
    }
    if (result_.connections_after + result_.reservations_after + result_.bindings_after != 0) {
      violation("after the stop: " + std::to_string(result_.connections_after) + " connections, " +
                std::to_string(result_.reservations_after) + " reservations, " +
                std::to_string(result_.bindings_after) + " realm bindings");
    }
    last.clear();
    io_.restart();
    io_.poll();
    result_.fds_end = proc_stats::open_fds();
    result_.rss_end = proc_stats::rss_kib();
    if (result_.fds_end != result_.fds_start) {
      violation(std::to_string(result_.fds_end) + " open descriptors at the end, " +
                std::to_string(result_.fds_start) + " at the start");
    }
    if (restart_retries_ > 0) {
      say(std::to_string(restart_retries_) + " restarts retried (the old port not yet free)");
    }
  }

  // Destroyed last: the slots' timers and nodes use it.
  boost::asio::io_context io_;
  cm::Config config_;
  std::mt19937 rng_;
  boost::asio::steady_timer churn_, checker_;
  std::vector<std::unique_ptr<Slot>> slots_;
  SoakResult result_;
  Clock::time_point started_;
  bool churning_ = false;
  bool warm_ = false;
  std::uint64_t restart_retries_ = 0;
};

}  // namespace

std::string_view to_string(Action action) {
  const auto k = static_cast<std::size_t>(action);
  return k < kActionNames.size() ? kActionNames[k] : "unknown";
}

SoakResult run_soak(const SoakOptions& options) { return Soak(options).run(); }

std::vector<std::string> describe(const SoakResult& r) {
  const auto& o = r.options;
  auto n = [](std::uint64_t v) { return std::to_string(v); };
  const cm::Config c = node_config();
  std::vector<std::string> out;
  out.push_back("soak: " + fixed(r.seconds, 1) + " s of churn, " + n(o.nodes) +
                " nodes on 127.40.1-" + n(o.nodes) + ".1 (one /24 each), seed " + n(o.seed) +
                "; watermarks " + n(c.low_water) + "/" + n(c.high_water) + ", at most " +
                n(c.limits.system.connections_total) + " connections, keepalive every " +
                n(static_cast<std::uint64_t>(c.keepalive_interval.count())) + " ms");
  out.push_back("checks              " + n(r.checks) + " rounds every " + n(o.check_interval_ms) +
                " ms, " + n(r.node_checks) + " node checks; violations " + n(r.violations));
  std::string actions;
  std::uint64_t total = 0;
  for (std::size_t k = 0; k < kActionCount; ++k) {
    actions += (k ? ", " : "") + std::string(kActionNames[k]) + " " + n(r.actions[k]);
    total += r.actions[k];
  }
  out.push_back("actions             " + n(total) + ": " + actions);
  out.push_back("dials               " + n(r.dials_connected) + " connected (or reused), " +
                n(r.dials_failed) + " failed or refused");
  out.push_back("connections         " + n(r.connections_opened) + " opened; peak " +
                n(r.peak_connections) + " at one node; " + n(r.trims) + " trims; " +
                n(r.realm_binds) + " realm bindings; " + n(r.reconnect_dials) + " reconnect dials");
  std::string closes;
  for (std::size_t k = 0; k < r.closes_by_reason.size(); ++k) {
    if (r.closes_by_reason[k] == 0) continue;
    closes += (closes.empty() ? "" : ", ") +
              std::string(cm::to_string(static_cast<cm::CloseReason>(k))) + " " +
              n(r.closes_by_reason[k]);
  }
  out.push_back("closes by reason    " + (closes.empty() ? std::string("none") : closes));
  std::string refusals;
  for (std::size_t k = 0; k < r.refusals_by_reason.size(); ++k) {
    if (r.refusals_by_reason[k] == 0) continue;
    refusals += (refusals.empty() ? "" : ", ") +
                std::string(cm::to_string(static_cast<cm::RefusalReason>(k))) + " " +
                n(r.refusals_by_reason[k]);
  }
  out.push_back("refusals by reason  " + (refusals.empty() ? std::string("none") : refusals));
  out.push_back("descriptors         start " + n(r.fds_start) + ", after warm-up " + n(r.fds_warm) +
                ", bound " + n(r.fds_bound) + " (warm-up + " + n(o.nodes) + " nodes x high water " +
                n(c.high_water) + "), peak " + n(r.fds_peak) + ", end " + n(r.fds_end));
  out.push_back("RSS (MiB)           start " + mib(r.rss_start) + ", after warm-up " +
                mib(r.rss_warm) + ", bound " + mib(r.rss_bound) + " (warm-up + " +
                mib(o.rss_margin_kib) + "), peak " + mib(r.rss_peak) + ", end " + mib(r.rss_end));
  out.push_back("after               " + std::string(r.drained ? "drained" : "NOT drained") +
                "; connections " + n(r.connections_after) + ", reservations " +
                n(r.reservations_after) + ", realm bindings " + n(r.bindings_after));
  out.push_back("verdict             " +
                (r.ok() ? std::string("PASS") : "FAIL: " + n(r.violations) + " violations"));
  for (const auto& v : r.violation_texts) out.push_back("  " + v);
  return out;
}

}  // namespace soak
