// Swarm: N p2p_node instances in one process on loopback, spread over several /24s of
// 127.0.0.0/8, with small watermarks, and the scenarios the demo and the integration test
// check on real sockets. Each scenario returns what it expected, what it observed and
// whether that matched.
//
//   swarm::Swarm s({.nodes = 40, .progress = [](const std::string& line) { puts(...); }});
//   for (const swarm::Result& r : s.run_all()) std::cout << r.scenario << (r.pass ? " PASS" : "");
//   std::ofstream("swarm.svg") << s.svg();
//
// Roles: nodes 0..N-11 grow a mesh (node 0 is the hub with three protected peers, 1..3);
// the last ten are kept out of it so that each later scenario starts from a known state:
// the flood victim, the frozen node, the relay pair, the realm hub and five realm members
// (the reserve scenario reuses the frozen node and the relay pair as realm members of an
// extra node on 127.0.9.0/24, which it fills from the mesh; the reconnect scenario has
// three nodes of its own on 127.0.10.0/24).
// Attackers are extra dial-only nodes on 127.66.0.0/24.
//
// With Options::ipv6 every node listens and dials on ::1 instead, each on its own port.
// ::1 is one address in one /56, the narrowest prefix the library caps for IPv6, so the
// swarm lifts the IPv6 caps and rates for every node but the flood victim: the flood then
// shows the /56 cap and the /64 rate at one node, where IPv4 shows the /24 ones.
//
// Waiting is never a fixed sleep: the io_context runs until a condition holds or a
// deadline passes, and a missed deadline is reported as the scenario's failure.
//
// Thread safety: none; one thread drives the swarm's io_context.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "p2p_node.hpp"
#include "svg_chart.hpp"

namespace swarm {

struct Options {
  std::size_t nodes = 40;  // at least kMinNodes
  std::uint32_t seed = 7;
  bool ipv6 = false;  // every node on ::1 (distinct ports) instead of 127.x.y.z
  // Progress lines while the scenarios run; null for none.
  std::function<void(const std::string&)> progress;
  // Passed to every node and its manager; null: warnings to stderr.
  std::shared_ptr<spdlog::logger> logger;
};
inline constexpr std::size_t kMinNodes = 20;

struct Result {
  std::string scenario;
  std::string expectation;
  std::string observed;
  bool pass = false;
  double seconds = 0;
};

class Swarm {
 public:
  // Throws std::invalid_argument for fewer than kMinNodes nodes.
  explicit Swarm(Options options);
  ~Swarm();
  Swarm(const Swarm&) = delete;
  Swarm& operator=(const Swarm&) = delete;

  // The scenarios, in the demo's order. protected_peers() runs the growth first if it has
  // not run; the others need nothing before them.
  Result growth_and_trim();
  Result protected_peers();
  Result subnet_flood();
  Result frozen_peer();
  Result realm_hard_max();
  Result relay_upgrade();
  Result realm_reserve();
  Result reconnect_protected();
  std::vector<Result> run_all();

  // Connection counts of every node over time against the watermarks, trims and
  // refusals, as an SVG document (svg_chart.hpp draws it).
  std::string svg() const;
  chart::Chart chart() const;
  std::size_t low_water() const { return config_.low_water; }
  std::size_t high_water() const { return config_.high_water; }
  double elapsed() const;

 private:
  p2p::Node& node(std::size_t i) { return *nodes_[i]; }
  // `v4` with IPv4; ::1 with Options::ipv6.
  boost::asio::ip::address address(const std::string& v4) const;
  // Counts the node's trims (when it is nodes_[index]) and admission refusals for the chart.
  void watch(p2p::Node& n, std::optional<std::size_t> index);
  void say(const std::string& line);
  void mark(const std::string& label);
  // Runs the io_context until `done` holds; false when `timeout` passed first.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);
  // Dials node `to` from node `from`; `pending` counts dials not yet finished.
  void dial(p2p::Node& from, const p2p::Node& to, p2p::cm::PathKind path,
            std::function<void(std::error_code, const std::string&)> then = {});
  std::size_t connections_between(std::size_t a, std::size_t b);
  void sample();
  Result finish(Result result, std::chrono::steady_clock::time_point started);

  Options options_;
  p2p::cm::Config config_;
  boost::asio::io_context io_;
  std::chrono::steady_clock::time_point start_;
  std::vector<std::shared_ptr<p2p::Node>> nodes_;
  std::vector<std::shared_ptr<p2p::Node>> attackers_;
  std::shared_ptr<p2p::Node> reserve_hub_;  // the reserve scenario's node, on 127.0.9.0/24
  // The reconnect scenario's nodes, on 127.0.10.0/24: a hub and the two peers that restart.
  std::vector<std::shared_ptr<p2p::Node>> restart_nodes_;
  std::vector<p2p::cm::Subscription> subscriptions_;
  boost::asio::steady_timer sampler_;
  std::vector<chart::Sample> samples_;
  std::vector<chart::Phase> phases_;
  std::vector<chart::Trim> trim_log_;  // every trim of a node in nodes_, in time order
  // Admission refusals (not dial checks) at every listening node since the start, by the
  // kinds of kRefusalKinds in swarm.cpp, and the totals at the last sample.
  std::vector<std::size_t> refused_, refused_sampled_;
  std::size_t growth_nodes_ = 0;
  bool grown_ = false;
  std::size_t pending_dials_ = 0;
  // Observed through the managers' events.
  std::size_t trims_ = 0;
  std::size_t trims_over_high_ = 0;  // trims that left a node above high water
  std::size_t max_after_trim_ = 0;
  std::size_t peak_ = 0;
  std::vector<std::size_t> trims_by_node_;
};

}  // namespace swarm
