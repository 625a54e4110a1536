// The swarm's scenarios (see swarm.hpp). Each one sets up its part of the swarm, drives the
// io_context until what it waits for happens (or its deadline passes), then compares what
// the nodes observed with what it expected.
#include "swarm.hpp"

#include <algorithm>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <variant>

namespace swarm {
namespace cm = p2p::cm;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kSubnets = 5;  // the mesh's /24s: 127.0.1.0/24 .. 127.0.5.0/24
constexpr std::size_t kReserved = 10;
constexpr std::size_t kSubnetCap = 5;  // connections per /24 at each node
constexpr std::size_t kAttackers = 30;
constexpr std::size_t kReserveHubCap = 6;  // the reserve scenario's node
// The chart's refusal kinds; refusal_kind() maps a refusal's reason to one of them.
const std::vector<std::string> kRefusalKinds = {"rate limit", "address or subnet cap",
                                                "realm limit", "other limit"};

std::size_t refusal_kind(cm::RefusalReason reason) {
  switch (reason) {
    case cm::RefusalReason::rate_limit: return 0;
    case cm::RefusalReason::subnet_cap: return 1;
    case cm::RefusalReason::realm_limit: return 2;
    default: return 3;
  }
}

std::string fixed(double v, int decimals = 1) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", decimals, v);
  return text;
}

}  // namespace

Swarm::Swarm(Options options) : options_(std::move(options)), sampler_(io_) {
  if (options_.nodes < kMinNodes) {
    throw std::invalid_argument("nodes: at least " + std::to_string(kMinNodes) + " are needed");
  }
  if (options_.nodes > kSubnets * 250) throw std::invalid_argument("nodes: at most 1250");
  // Small watermarks so that a few dials per node overflow them; short timers so that
  // every rule shows within seconds.
  config_.low_water = 4;
  config_.high_water = 8;
  config_.grace_period = 0ms;  // a trim may take any unprotected peer at once
  config_.silence_period = 200ms;
  config_.keepalive_interval = 250ms;
  config_.keepalive_timeout = 500ms;
  config_.keepalive_max_missed = 2;
  config_.redundant_grace = 300ms;
  config_.handshake_timeout = 3s;
  config_.limits.system.connections_total = 12;
  config_.limits.subnets.exempt_loopback = false;  // loopback is our whole internet here
  config_.limits.subnets.ipv4_32 = 2;
  config_.limits.subnets.ipv4_24 = kSubnetCap;
  config_.limits.inbound_rate.exempt_loopback = false;
  config_.limits.inbound_rate.ipv4_24 = {3.0, 3.0};  // 3 new connections a second, burst 3
  // Every IPv6 node is ::1, in one /56 and /64: its caps and rates would count the whole
  // swarm as one subnet, so only the flood victim keeps them (subnet_flood()).
  config_.limits.subnets.ipv6_56 = cm::kUnlimited;
  config_.limits.subnets.ipv6_48 = cm::kUnlimited;
  config_.limits.inbound_rate.ipv6_64 = {};
  config_.limits.inbound_rate.ipv6_48 = {};
  cm::Config victim_config = config_;
  if (options_.ipv6) {
    victim_config.limits.subnets.ipv6_56 = kSubnetCap;
    victim_config.limits.inbound_rate.ipv6_64 = config_.limits.inbound_rate.ipv4_24;
  }

  growth_nodes_ = options_.nodes - kReserved;
  start_ = std::chrono::steady_clock::now();
  trims_by_node_.assign(options_.nodes, 0);
  refused_.assign(kRefusalKinds.size(), 0);
  refused_sampled_ = refused_;
  for (std::size_t i = 0; i < options_.nodes; ++i) {
    const auto at = address("127.0." + std::to_string(1 + i % kSubnets) + "." +
                            std::to_string(1 + i / kSubnets));
    nodes_.push_back(p2p::Node::create(io_, {.id = p2p::example_id(0x12, i),
                                             .address = at,
                                             .config = i == growth_nodes_ ? victim_config : config_,
                                             .logger = options_.logger}));
    watch(*nodes_[i], i);
  }
  sample();
}

boost::asio::ip::address Swarm::address(const std::string& v4) const {
  if (options_.ipv6) return boost::asio::ip::address_v6::loopback();
  return boost::asio::ip::make_address_v4(v4);
}

void Swarm::watch(p2p::Node& n, std::optional<std::size_t> index) {
  subscriptions_.push_back(n.manager().subscribe([this, &n, index](const cm::Event& event) {
    if (const auto* refused = std::get_if<cm::RefusedEvent>(&event)) {
      // Admissions only: a dial check that says "already dialing" refuses nothing.
      const cm::Stage stage = refused->refusal.stage;
      if (stage != cm::Stage::dial && stage != cm::Stage::dial_addr) {
        ++refused_[refusal_kind(refused->refusal.reason)];
      }
    }
    if (!index) return;
    if (const auto* trimmed = std::get_if<cm::TrimmedEvent>(&event)) {
      ++trims_;
      ++trims_by_node_[*index];
      max_after_trim_ = std::max(max_after_trim_, trimmed->connections_after);
      if (trimmed->connections_after > config_.high_water) ++trims_over_high_;
      trim_log_.push_back({elapsed(), *index,
                           trimmed->connections_after + trimmed->connections_closed,
                           trimmed->connections_after});
    } else if (std::holds_alternative<cm::ConnectedEvent>(event)) {
      peak_ = std::max(peak_, n.manager().connection_count());
    }
  }));
}

Swarm::~Swarm() {
  sampler_.cancel();
  subscriptions_.clear();
  for (auto& a : attackers_) a->stop();
  if (reserve_hub_) reserve_hub_->stop();
  for (auto& n : nodes_) n->stop();
  // Let the goodbyes go out; what is still pending is dropped with the io_context.
  for (int i = 0; i < 100 && io_.poll() > 0; ++i) {
  }
}

double Swarm::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Swarm::say(const std::string& line) {
  if (options_.progress) options_.progress("[" + fixed(elapsed()) + " s] " + line);
}

void Swarm::mark(const std::string& label) { phases_.push_back({elapsed(), label}); }

void Swarm::sample() {
  chart::Sample s{elapsed(), {}, {}};
  for (auto& n : nodes_) s.counts.push_back(n->manager().connection_count());
  for (std::size_t k = 0; k < refused_.size(); ++k) {
    s.refusals.push_back(refused_[k] - refused_sampled_[k]);
  }
  refused_sampled_ = refused_;
  samples_.push_back(std::move(s));
  sampler_.expires_after(100ms);
  sampler_.async_wait([this](boost::system::error_code ec) {
    if (!ec) sample();
  });
}

bool Swarm::run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (io_.stopped()) io_.restart();
    io_.run_one_for(20ms);
  }
  return true;
}

void Swarm::dial(p2p::Node& from, const p2p::Node& to, cm::PathKind path,
                 std::function<void(std::error_code, const std::string&)> then) {
  ++pending_dials_;
  from.dial(to.id(), to.endpoint(), path,
            [this, then = std::move(then)](std::error_code ec, const std::string& why) {
              --pending_dials_;
              if (then) then(ec, why);
            });
}

std::size_t Swarm::connections_between(std::size_t a, std::size_t b) {
  return node(a).manager().connections(node(b).id()).size();
}

Result Swarm::finish(Result result, std::chrono::steady_clock::time_point started) {
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  say(result.scenario + ": " + (result.pass ? "PASS" : "FAIL") + " — " + result.observed);
  return result;
}

Result Swarm::growth_and_trim() {
  const auto started = std::chrono::steady_clock::now();
  const std::size_t g = growth_nodes_;
  const std::size_t per_node = std::min<std::size_t>(6, g - 1);
  Result result{"growth and trim",
                "the mesh overflows high water (" + std::to_string(config_.high_water) +
                    "); every trim leaves its node at or under it; all settle at or under it",
                "", false, 0};
  mark("growth");
  say("growth: " + std::to_string(g) + " nodes on " +
      (options_.ipv6 ? std::string("::1") : std::to_string(kSubnets) + " /24s") + " dial " +
      std::to_string(per_node) + " peers each; watermarks " + std::to_string(config_.low_water) +
      "/" + std::to_string(config_.high_water) + ", hard cap " +
      std::to_string(config_.limits.system.connections_total));
  // The hub and its bootstrap peers protect each other, then connect first.
  for (std::size_t p = 1; p <= 3; ++p) {
    node(0).manager().protect(node(p).id(), "bootstrap");
    node(p).manager().protect(node(0).id(), "bootstrap");
    dial(node(0), node(p), cm::PathKind::direct);
  }
  bool ok = run_until([&] { return pending_dials_ == 0; }, 5s);
  // Random dials spread over 1.5 s, and eight more nodes dialing the hub.
  std::mt19937 rng(options_.seed);
  std::vector<std::pair<std::size_t, std::size_t>> plan;
  for (std::size_t i = 0; i < g; ++i) {
    std::vector<std::size_t> others;
    for (std::size_t j = 0; j < g; ++j) {
      if (j != i) others.push_back(j);
    }
    std::shuffle(others.begin(), others.end(), rng);
    for (std::size_t k = 0; k < per_node; ++k) plan.emplace_back(i, others[k]);
  }
  for (std::size_t i = 4; i < std::min<std::size_t>(12, g); ++i) plan.emplace_back(i, 0);
  std::uniform_int_distribution<int> when(0, 1500);
  for (const auto& step : plan) {
    // Named copies, not structured bindings: C++20 lambdas may capture bindings, but
    // clang 14 does not implement that yet.
    const std::size_t from = step.first;
    const std::size_t to = step.second;
    ++pending_dials_;
    auto timer =
        std::make_shared<boost::asio::steady_timer>(io_, std::chrono::milliseconds(when(rng)));
    timer->async_wait([this, timer, from, to](boost::system::error_code) {
      --pending_dials_;
      dial(node(from), node(to), cm::PathKind::direct);
    });
  }
  ok = run_until([&] { return pending_dials_ == 0; }, 20s) && ok;
  std::size_t refused = 0;
  for (std::size_t i = 0; i < g; ++i) refused += node(i).refusals().size();
  say("growth: " + std::to_string(plan.size()) + " dials done; peak " + std::to_string(peak_) +
      " connections at one node, " + std::to_string(trims_) + " trims so far, " +
      std::to_string(refused) + " admissions refused by limits");
  auto max_now = [&] {
    std::size_t most = 0;
    for (std::size_t i = 0; i < g; ++i) most = std::max(most, node(i).manager().connection_count());
    return most;
  };
  const bool settled = run_until([&] { return max_now() <= config_.high_water; }, 10s);
  std::size_t trimmed_nodes = 0;
  for (std::size_t i = 0; i < g; ++i) trimmed_nodes += trims_by_node_[i] > 0 ? 1U : 0U;
  grown_ = true;
  result.observed = "peak " + std::to_string(peak_) + "; " + std::to_string(trims_) + " trims on " +
                    std::to_string(trimmed_nodes) + " nodes, max " +
                    std::to_string(max_after_trim_) + " after a trim; max now " +
                    std::to_string(max_now());
  result.pass = ok && settled && trims_ > 0 && trims_over_high_ == 0 && peak_ > config_.high_water;
  return finish(std::move(result), started);
}

Result Swarm::protected_peers() {
  if (!grown_) growth_and_trim();
  const auto started = std::chrono::steady_clock::now();
  Result result{"protected peers", "the hub is trimmed yet keeps its 3 protected peers", "", false,
                0};
  std::size_t kept = 0;
  for (std::size_t p = 1; p <= 3; ++p) kept += connections_between(0, p) > 0 ? 1U : 0U;
  std::size_t trimmed_protected = 0;
  for (const auto& c : node(0).closes()) {
    for (std::size_t p = 1; p <= 3; ++p) {
      if (c.peer == node(p).id() && (c.reason == cm::CloseReason::trimmed)) ++trimmed_protected;
    }
  }
  const auto hub = node(0).manager().stats();
  result.observed = "hub trimmed " + std::to_string(trims_by_node_[0]) + "x (" +
                    std::to_string(hub.closes(cm::CloseReason::trimmed)) + " closed); " +
                    std::to_string(kept) + "/3 protected peers connected";
  result.pass = trims_by_node_[0] > 0 && kept == 3 && trimmed_protected == 0;
  return finish(std::move(result), started);
}

Result Swarm::subnet_flood() {
  const auto started = std::chrono::steady_clock::now();
  p2p::Node& victim = node(growth_nodes_);
  // IPv4: the attackers' /24 is capped and rated. IPv6: they all are ::1, like the rest of
  // the swarm, so the victim alone caps ::1's /56 and rates its /64 (see the constructor).
  const std::string subnet = options_.ipv6 ? "/56" : "/24";
  Result result{"subnet flood",
                "attackers on one " + subnet + " get at most " + std::to_string(kSubnetCap) +
                    " connections; the rest are refused by subnet cap and rate limit",
                "", false, 0};
  mark("flood");
  say("flood: " + std::to_string(kAttackers) + " attackers on " +
      (options_.ipv6 ? "::1" : "127.66.0.0/24") + " dial node " + std::to_string(growth_nodes_) +
      " every 50 ms (cap " + std::to_string(kSubnetCap) + " per " + subnet +
      (options_.ipv6 ? ", 3/s burst 3 per /64)" : ", 3/s burst 3)"));
  // Shared with the handlers, which may outlive this call if a deadline passes.
  struct Seen {
    std::size_t most_open = 0;
    std::string cap_reason, rate_reason;
  };
  auto seen = std::make_shared<Seen>();
  auto watch = victim.manager().subscribe([seen, &victim](const cm::Event& event) {
    if (std::holds_alternative<cm::ConnectedEvent>(event)) {
      seen->most_open = std::max(seen->most_open, victim.manager().connection_count());
    }
  });
  const std::size_t refusals_before = victim.refusals().size();
  for (std::size_t k = 0; k < kAttackers; ++k) {
    attackers_.push_back(
        p2p::Node::create(io_, {.id = p2p::example_id(0x66, k),
                                .address = address("127.66.0." + std::to_string(1 + k)),
                                .config = config_,
                                .logger = options_.logger,
                                .listen = false}));
    ++pending_dials_;
    auto timer = std::make_shared<boost::asio::steady_timer>(io_, k * 50ms);
    timer->async_wait([this, seen, timer, k](boost::system::error_code) {
      --pending_dials_;
      auto told = [this, seen](std::error_code ec, const std::string& why) {
        if (!ec) return;
        auto& first =
            why.find("inbound rate") != std::string::npos ? seen->rate_reason : seen->cap_reason;
        if (first.empty()) say("flood: an attacker is told \"" + (first = why) + "\"");
      };
      dial(*attackers_[k], node(growth_nodes_), cm::PathKind::direct, told);
    });
  }
  const bool ok = run_until([&] { return pending_dials_ == 0; }, 15s);
  std::size_t by_cap = 0;
  std::size_t by_rate = 0;
  for (std::size_t r = refusals_before; r < victim.refusals().size(); ++r) {
    by_cap += victim.refusals()[r].reason == cm::RefusalReason::subnet_cap ? 1U : 0U;
    by_rate += victim.refusals()[r].reason == cm::RefusalReason::rate_limit ? 1U : 0U;
  }
  const std::size_t most_open = seen->most_open;
  result.observed = std::to_string(most_open) + " admitted at most; refused " +
                    std::to_string(by_rate) + " by rate limit, " + std::to_string(by_cap) +
                    " by subnet cap";
  result.pass = ok && most_open > 0 && most_open <= kSubnetCap && by_cap > 0 && by_rate > 0 &&
                !seen->cap_reason.empty() && !seen->rate_reason.empty();
  watch.reset();
  for (auto& a : attackers_) a->stop();
  const bool drained = run_until([&] { return victim.manager().connection_count() == 0; }, 5s);
  result.pass = result.pass && drained;
  return finish(std::move(result), started);
}

Result Swarm::frozen_peer() {
  const auto started = std::chrono::steady_clock::now();
  const std::size_t frozen = growth_nodes_ + 1;
  const std::size_t first = growth_nodes_ + 5;
  Result result{"frozen peer",
                "a node that stops answering pings loses every connection to keepalive, and "
                "sees why",
                "", false, 0};
  mark("frozen");
  for (std::size_t d = first; d < first + 3; ++d) dial(node(d), node(frozen), cm::PathKind::direct);
  auto answered = [&] {
    for (std::size_t d = first; d < first + 3; ++d) {
      auto c = node(d).manager().best_connection(node(frozen).id());
      if (!c || !node(d).manager().rtt(*c)) return false;
    }
    return true;
  };
  bool ok = run_until([&] { return pending_dials_ == 0 && answered(); }, 5s);
  say("frozen: node " + std::to_string(frozen) +
      " answers pings from 3 peers; now it stops answering (keepalive 250 ms, timeout 500 ms, 2 "
      "misses)");
  const std::size_t seen_before = node(frozen).closes().size();
  node(frozen).set_frozen(true);
  const auto frozen_at = std::chrono::steady_clock::now();
  ok = run_until([&] { return node(frozen).manager().connection_count() == 0; }, 6s) && ok;
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - frozen_at).count();
  node(frozen).set_frozen(false);
  std::size_t by_keepalive = 0;
  for (std::size_t d = first; d < first + 3; ++d) {
    for (const auto& c : node(d).closes()) {
      by_keepalive += c.peer == node(frozen).id() && !c.by_remote &&
                              c.reason == cm::CloseReason::keepalive_timeout
                          ? 1U
                          : 0U;
    }
  }
  std::size_t told = 0;
  std::string detail;
  for (std::size_t i = seen_before; i < node(frozen).closes().size(); ++i) {
    const auto& c = node(frozen).closes()[i];
    if (c.by_remote && c.reason == cm::CloseReason::keepalive_timeout) {
      ++told;
      detail = c.detail;
    }
  }
  if (!detail.empty()) say("frozen: the frozen node is told \"keepalive_timeout: " + detail + "\"");
  result.observed = std::to_string(by_keepalive) + "/3 closed by keepalive_timeout in " +
                    fixed(took, 2) + " s; the frozen node got " + std::to_string(told) +
                    " goodbyes saying so";
  result.pass = ok && by_keepalive == 3 && told == 3;
  return finish(std::move(result), started);
}

Result Swarm::realm_hard_max() {
  const auto started = std::chrono::steady_clock::now();
  const std::size_t hub = growth_nodes_ + 4;
  const std::size_t first = growth_nodes_ + 5;
  Result result{"realm hard max",
                "realm \"game\" (hard_max 3) binds 3 of 5 members, refuses 2 at their claims", "",
                false, 0};
  mark("realm");
  say("realm: node " + std::to_string(hub) +
      " hosts realm \"game\" with hard_max 3; 5 members dial it");
  cm::RealmConfig limits;
  limits.hard_max = 3;
  bool ok = !node(hub).join_realm("game", limits);
  auto told = std::make_shared<std::vector<std::string>>();  // outlives a missed deadline
  for (std::size_t d = first; d < first + 5; ++d) {
    ok = !node(d).join_realm("game", {}) && ok;
    dial(node(d), node(hub), cm::PathKind::direct,
         [told](std::error_code ec, const std::string& why) {
           if (ec && why.find("realm") != std::string::npos) told->push_back(why);
         });
  }
  ok = run_until([&] { return pending_dials_ == 0; }, 5s) && ok;
  const std::size_t refused = told->size();
  const std::string reason = refused > 0 ? told->front() : "";
  if (!reason.empty()) say("realm: a member is told \"" + reason + "\"");
  const std::size_t bound = node(hub).realms().realm_connection_count("game");
  const auto stats = node(hub).realms().realm_stats("game");
  const std::uint64_t full = stats ? stats->refused_full : 0;
  result.observed = std::to_string(bound) + " bound; " + std::to_string(full) +
                    " claims refused realm_full, " + std::to_string(refused) + " members told why";
  result.pass = ok && bound == 3 && full == 2 && refused == 2;
  return finish(std::move(result), started);
}

Result Swarm::realm_reserve() {
  const auto started = std::chrono::steady_clock::now();
  const std::size_t member = growth_nodes_ + 1;  // of "ops", whose reserve is short
  const std::size_t vip = growth_nodes_ + 2;     // fills "vip"
  const std::size_t late = growth_nodes_ + 3;    // one "vip" member too many
  // A hub of its own, on its own /24: a small cap, no trim (only the cap decides what it
  // keeps), no inbound rate (the fillers dial it at once).
  cm::Config hub_config = config_;
  hub_config.low_water = 0;
  hub_config.high_water = 0;
  hub_config.limits.system.connections_total = kReserveHubCap;
  hub_config.limits.inbound_rate.ipv4_24 = {};
  hub_config.limits.inbound_rate.ipv4_16 = {};
  reserve_hub_ = p2p::Node::create(io_, {.id = p2p::example_id(0x52, 0),
                                         .address = address("127.0.9.1"),
                                         .config = hub_config,
                                         .logger = options_.logger});
  p2p::Node& hub = *reserve_hub_;
  watch(hub, std::nullopt);
  const std::size_t cap = kReserveHubCap;
  Result result{"realm reserve",
                "at its cap of " + std::to_string(cap) +
                    ", a node admits a member of realm \"ops\" (below its reserve of 2) by "
                    "closing an unbound connection (made_room), and refuses a member of the full "
                    "realm \"vip\" at its claim, before the handshake completes",
                "", false, 0};
  mark("reserve");
  cm::RealmConfig ops;
  ops.low_water = 2;
  ops.min_reserved = 2;
  cm::RealmConfig vip_limits;
  vip_limits.hard_max = 1;
  bool ok = !hub.join_realm("ops", ops) && !hub.join_realm("vip", vip_limits);
  ok = !node(member).join_realm("ops", {}) && ok;
  ok = !node(vip).join_realm("vip", {}) && !node(late).join_realm("vip", {}) && ok;
  dial(node(vip), hub, cm::PathKind::direct);
  ok = run_until([&] { return pending_dials_ == 0; }, 5s) && ok;
  // Fill the hub to its cap from the mesh; each filler protects its side, so that only the
  // hub decides what goes.
  auto connected = [&](std::size_t f) { return !hub.manager().connections(node(f).id()).empty(); };
  std::vector<std::size_t> fillers;
  for (std::size_t f = 4; f < growth_nodes_ && hub.manager().connection_count() < cap; ++f) {
    node(f).manager().protect(hub.id(), "reserve-demo");
    dial(node(f), hub, cm::PathKind::direct);
    ok = run_until([&] { return pending_dials_ == 0; }, 5s) && ok;
    if (connected(f)) fillers.push_back(f);
  }
  const bool full = hub.manager().connection_count() == cap;
  say("reserve: a node holds " + std::to_string(hub.manager().connection_count()) + " of " +
      std::to_string(cap) + " connections (" + std::to_string(fillers.size()) +
      " unbound, 1 in realm \"vip\"); a member of realm \"ops\" (0 of its reserve of 2) dials "
      "it");
  const std::size_t closes_before = hub.closes().size();
  auto member_result = std::make_shared<std::string>();  // outlives a missed deadline
  dial(node(member), hub, cm::PathKind::direct,
       [member_result](std::error_code ec, const std::string& why) {
         *member_result = ec ? why : "connected";
       });
  ok = run_until([&] { return pending_dials_ == 0; }, 5s) && ok;
  std::size_t made_room = 0;
  bool victim_unbound = false;
  std::string detail;
  for (std::size_t i = closes_before; i < hub.closes().size(); ++i) {
    const auto& c = hub.closes()[i];
    if (c.by_remote || c.reason != cm::CloseReason::made_room) continue;
    ++made_room;
    detail = c.detail;
    for (std::size_t f : fillers) victim_unbound = victim_unbound || c.peer == node(f).id();
  }
  if (!detail.empty()) say("reserve: an unbound peer is told \"made_room: " + detail + "\"");
  const std::size_t ops_bound = hub.realms().realm_connection_count("ops");
  // The full realm: refused at its claim, before the hub answers the hello.
  auto told = std::make_shared<std::string>();
  dial(node(late), hub, cm::PathKind::direct, [told](std::error_code ec, const std::string& why) {
    if (ec) *told = why;
  });
  ok = run_until([&] { return pending_dials_ == 0; }, 5s) && ok;
  bool refused_at_claim = false;
  for (const auto& r : hub.refusals()) {
    refused_at_claim = refused_at_claim || (r.stage == cm::Stage::claim && r.scope == "realm vip");
  }
  if (!told->empty()) say("reserve: the late \"vip\" member is told \"" + *told + "\"");
  const std::size_t count = hub.manager().connection_count();
  result.observed =
      std::string(full ? "full" : "not full") + " at " + std::to_string(cap) + "; the ops member " +
      *member_result + ", " + std::to_string(made_room) + " closed with made_room (" +
      (victim_unbound ? "an unbound filler" : "not a filler") + "), ops holds " +
      std::to_string(ops_bound) + "; the late vip member " +
      (told->empty() ? "was not refused" : "was refused") +
      (refused_at_claim ? " at its claim" : "") + "; the node holds " + std::to_string(count);
  result.pass = ok && full && *member_result == "connected" && made_room == 1 && victim_unbound &&
                ops_bound == 1 && refused_at_claim &&
                told->find("realm vip") != std::string::npos && count == cap &&
                hub.manager().connections(node(late).id()).empty();
  return finish(std::move(result), started);
}

Result Swarm::relay_upgrade() {
  const auto started = std::chrono::steady_clock::now();
  const std::size_t a = growth_nodes_ + 2;
  const std::size_t b = a + 1;
  Result result{"relay upgrade",
                "a relay-only peer gets the direct dial its manager asks for, then loses the "
                "relay (redundant_path) on both sides",
                "", false, 0};
  mark("relay");
  const std::uint64_t asked_before =
      node(a).manager().stats().direct_path_dials + node(b).manager().stats().direct_path_dials;
  // Only the relay is dialed here: the direct dial is the managers' idea.
  dial(node(a), node(b), cm::PathKind::relay);
  auto only_path = [&](std::size_t from, std::size_t to, cm::PathKind kind) {
    auto conns = node(from).manager().connections(node(to).id());
    return conns.size() == 1 && conns.front()->path_kind() == kind;
  };
  const auto direct_at = std::chrono::steady_clock::now();
  const bool ok = run_until(
      [&] {
        return pending_dials_ == 0 && only_path(a, b, cm::PathKind::direct) &&
               only_path(b, a, cm::PathKind::direct);
      },
      5s);
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - direct_at).count();
  auto relay_closed = [&](std::size_t at, std::size_t peer) {
    for (const auto& c : node(at).closes()) {
      if (c.peer == node(peer).id() && c.path == cm::PathKind::relay &&
          c.reason == cm::CloseReason::redundant_path) {
        return true;
      }
    }
    return false;
  };
  const bool both = relay_closed(a, b) && relay_closed(b, a);
  const std::uint64_t asked = node(a).manager().stats().direct_path_dials +
                              node(b).manager().stats().direct_path_dials - asked_before;
  say("relay: the managers asked for " + std::to_string(asked) + " direct dial(s)");
  result.observed = std::to_string(asked) + " direct dial(s) asked for by the managers; " +
                    std::string(both ? "relay closed as redundant_path on both sides"
                                     : "relay not closed as redundant_path on both sides") +
                    " " + fixed(took, 2) + " s after the relay dial (grace " +
                    std::to_string(config_.redundant_grace.count()) + " ms)";
  result.pass = ok && both && asked >= 1;
  return finish(std::move(result), started);
}

Result Swarm::reconnect_protected() {
  const auto started = std::chrono::steady_clock::now();
  Result result{"reconnect",
                "a protected peer whose process stops and comes back is dialed again by the "
                "hub's manager until it answers; an unprotected one is not",
                "", false, 0};
  mark("reconnect");
  // Short backoffs, so that the demo sees a few attempts fail while the peer is down.
  cm::Config restart_config = config_;
  restart_config.dial.error_backoff = 250ms;
  restart_config.dial.error_backoff_max = 1s;
  const auto at = [this](int host) { return address("127.0.10." + std::to_string(host)); };
  auto make = [&](std::size_t n, std::uint16_t port) {
    return p2p::Node::create(io_, {.id = p2p::example_id(0x54, n),
                                   .address = at(static_cast<int>(n) + 1),
                                   .config = restart_config,
                                   .logger = options_.logger,
                                   .port = port});
  };
  restart_nodes_ = {make(0, 0), make(1, 0), make(2, 0)};
  p2p::Node& hub = *restart_nodes_[0];
  const cm::NodeId kept = restart_nodes_[1]->id();
  const cm::NodeId other = restart_nodes_[2]->id();
  const std::uint16_t kept_port = restart_nodes_[1]->endpoint().port();
  const std::uint16_t other_port = restart_nodes_[2]->endpoint().port();
  ++pending_dials_;
  hub.dial(kept, restart_nodes_[1]->endpoint(), cm::PathKind::direct,
           [this](std::error_code, const std::string&) { --pending_dials_; });
  ++pending_dials_;
  hub.dial(other, restart_nodes_[2]->endpoint(), cm::PathKind::direct,
           [this](std::error_code, const std::string&) { --pending_dials_; });
  auto connected = [&](const cm::NodeId& peer) { return !hub.manager().connections(peer).empty(); };
  bool ok =
      run_until([&] { return pending_dials_ == 0 && connected(kept) && connected(other); }, 5s);
  hub.manager().protect(kept, "demo");
  say("reconnect: the hub protects one of its two peers; both processes stop");
  // The processes stop: each says goodbye (shutdown), which the hub reports as the
  // remote's close (CloseReason::remote).
  restart_nodes_[1]->stop();
  restart_nodes_[2]->stop();
  restart_nodes_.resize(1);
  const auto failures = [&] {
    return hub.manager().stats().dial_failures[static_cast<std::size_t>(cm::DialFailure::error)];
  };
  ok = run_until([&] { return failures() >= 2; }, 5s) && ok;
  const std::uint64_t failed_while_down = failures();
  // Both come back at their old addresses.
  restart_nodes_.push_back(make(1, kept_port));
  restart_nodes_.push_back(make(2, other_port));
  const auto back_at = std::chrono::steady_clock::now();
  say("reconnect: both processes are back after " + std::to_string(failed_while_down) +
      " failed dial(s) to the protected one");
  const bool back = run_until([&] { return connected(kept); }, 5s);
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - back_at).count();
  // Give the unprotected one the same time again: nobody dials it.
  run_until([] { return false; }, std::chrono::milliseconds(static_cast<long>(took * 1000) + 300));
  const cm::Stats s = hub.manager().stats();
  result.observed =
      std::string(back ? "protected peer reconnected " : "protected peer NOT reconnected ") +
      fixed(took, 2) + " s after it came back (" + std::to_string(s.reconnect_dials) +
      " reconnect dials, " + std::to_string(s.reconnects_succeeded) +
      " succeeded); unprotected peer " +
      (connected(other) ? "reconnected (unexpected)" : "left alone");
  result.pass =
      ok && back && !connected(other) && s.reconnects_succeeded == 1 && failed_while_down >= 2;
  for (auto& n : restart_nodes_) n->stop();
  return finish(std::move(result), started);
}

std::vector<Result> Swarm::run_all() {
  std::vector<Result> results;
  results.push_back(growth_and_trim());
  results.push_back(protected_peers());
  results.push_back(subnet_flood());
  results.push_back(frozen_peer());
  results.push_back(realm_hard_max());
  results.push_back(relay_upgrade());
  results.push_back(realm_reserve());
  results.push_back(reconnect_protected());
  sampler_.cancel();
  sample();  // the final counts
  sampler_.cancel();
  return results;
}

chart::Chart Swarm::chart() const {
  chart::Chart c;
  c.title = "Connections per node, " + std::to_string(nodes_.size()) + " nodes on " +
            (options_.ipv6 ? "::1" : "127.0.0.0/8") + ", seed " + std::to_string(options_.seed);
  c.samples = samples_;
  c.trims = trim_log_;
  c.phases = phases_;
  c.highlights = {{0, "hub"},
                  {growth_nodes_, "flood victim"},
                  {growth_nodes_ + 1, "frozen"},
                  {growth_nodes_ + 2, "relay pair"},
                  {growth_nodes_ + 4, "realm hub"}};
  c.refusal_kinds = kRefusalKinds;
  c.low_water = config_.low_water;
  c.high_water = config_.high_water;
  c.hard_cap = config_.limits.system.connections_total;
  return c;
}

std::string Swarm::svg() const { return chart::render_svg(chart()); }

}  // namespace swarm
