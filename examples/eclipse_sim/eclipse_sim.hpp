// eclipse_sim: a deterministic simulation of a P2P network under an eclipse attempt, in
// virtual time, to compare trim policies (issue 22). Every node is a host of the library
// with its own ConnectionManager; honest nodes sit in hundreds of IPv4 /16s, attackers in
// two /16s, dial ten times as often and keep a stream open on every connection. The
// simulation measures, after every trim of every honest node, the share of that node's
// remaining connections that go to attackers; whether an honest node is ever eclipsed (all
// of its connections to attackers); whether the honest overlay stays one component.
//
//   eclipse_sim::SimOptions options;
//   options.policy = eclipse_sim::Policy::diversity;
//   eclipse_sim::SimResult r = eclipse_sim::run_simulation(options);
//   std::cout << r.max_share << ' ' << r.eclipsed_nodes << '\n';
//
// The same options (seed included) give the same result, on every standard library.
//
// Thread safety: run_simulation() uses nothing shared; runs on different threads are
// independent.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace eclipse_sim {

// How the honest nodes' managers choose the peers a trim closes.
enum class Policy {
  default_order,    // the library's default order, diversity rule off
  diversity,        // the library's default order with the diversity rule (Config::diversity)
  diversity_grace,  // the same with its grace limit: one new peer per network group sheltered
  go,               // go-libp2p's basic connmgr order, as a host Trimmer; diversity rule off
  // The diversity rule, and admission caps each network group at SimOptions::group_cap
  // connections (DiversityConfig::max_per_group): honest nodes admit every connection
  // through the staged calls (check_dial_addr or admit_inbound, on_secured, add_admitted).
  diversity_capped,
};
std::string_view to_string(Policy policy) noexcept;
// "default", "diversity", "diversity-grace", "go", "diversity-capped"; nullopt for anything
// else.
std::optional<Policy> parse_policy(std::string_view text) noexcept;

struct SimOptions {
  std::size_t nodes = 1000;        // honest and attacker nodes together
  double attacker_fraction = 0.1;  // of `nodes`, rounded
  std::size_t minutes = 30;        // simulated
  std::uint64_t seed = 1;
  double churn_per_minute = 0.10;  // of the online honest nodes leave (and as many join)
  Policy policy = Policy::diversity;

  // The honest nodes' managers.
  std::size_t low_water = 40;
  std::size_t high_water = 64;
  std::chrono::milliseconds grace_period = std::chrono::seconds(20);
  std::chrono::milliseconds silence_period = std::chrono::seconds(10);
  // Keepalive pings, answered after each pair's RTT (20-200 ms between honest nodes, 2 ms
  // to attackers); 0: none. Only the diversity rule reads RTT; the default order and go's
  // never do, and no ping is ever missed here, so under those policies pings change no
  // figure (the same results either way) but cost two thirds of the run: they are sent
  // only under Policy::diversity unless ping_under_every_policy.
  std::chrono::milliseconds keepalive_interval = std::chrono::seconds(60);
  bool ping_under_every_policy = false;
  // Under Policy::diversity_capped: connections one network group may hold at an honest
  // node. With the attackers in attacker_groups groups and trims that stop at low water,
  // group_cap * attacker_groups / low_water bounds their share after a trim (2 * 2 / 40).
  std::size_t group_cap = 2;

  // The network.
  std::size_t honest_groups = 256;  // distinct IPv4 /16s the honest nodes spread over
  std::size_t attacker_groups = 2;  // IPv4 /16s of the attackers
  std::size_t known_peers = 50;     // each node's discovery sample, refreshed each minute
  std::size_t bootstrap_dials = 8;  // dials an honest node makes at once when it starts
  // An honest node keeps dialing (one known peer per honest_dial_interval) while it holds
  // fewer than this many outbound connections, or fewer than low water in all, and fewer
  // than high water: as a node keeps its own outbound peers (Bitcoin Core's outbound
  // slots, a DHT's routing table) however many peers dial it.
  std::size_t outbound_target = 24;
  double honest_stream_probability = 0.5;
  std::chrono::milliseconds honest_dial_interval = std::chrono::seconds(10);
  std::chrono::milliseconds attacker_dial_interval = std::chrono::seconds(1);
  std::chrono::milliseconds start_spread = std::chrono::minutes(1);  // nodes start within
  // Eclipse and connectivity checks start once every node has started (trims are measured
  // from the first one on).
  std::chrono::milliseconds warmup = std::chrono::minutes(1);
  std::chrono::milliseconds eclipse_check_interval = std::chrono::seconds(10);
  std::chrono::milliseconds connectivity_check_interval = std::chrono::minutes(1);
};

// What happened within one simulated minute (index = minute since the start).
struct MinuteStats {
  std::uint64_t trims = 0;            // trims of honest nodes that closed something
  double max_share = 0;               // attacker share right after a trim: the maximum
  double share_sum = 0;               // and the sum (mean = share_sum / trims)
  double max_share_out_of_grace = 0;  // the same over the connections out of grace
  double max_floor_share = 0;         // the best any trim order could have left, at most
  std::size_t eclipsed_max = 0;       // honest nodes eclipsed at one check, at most
  bool connectivity_checked = false;  // a connectivity check ran in this minute
  bool connected = true;              // and found the honest overlay one component
  std::size_t components = 0;         // at that check
  std::size_t online_honest = 0;      // at the last check of the minute
  double mean_connections = 0;        // per online honest node, at the last check
  double attacker_share_all = 0;      // attacker connections / all, online honest nodes
  double mean_share() const { return trims == 0 ? 0 : share_sum / static_cast<double>(trims); }
};

struct SimResult {
  Policy policy = Policy::diversity;
  std::size_t honest_nodes = 0;
  std::size_t attacker_nodes = 0;
  // After every trim of an honest node: attacker connections / the node's connections.
  std::uint64_t trims = 0;
  double max_share = 0;
  double mean_share = 0;
  // The same counting only connections older than the grace period (what a trim could
  // have closed).
  double max_share_out_of_grace = 0;
  double mean_share_out_of_grace = 0;
  std::uint64_t trims_above_10_percent = 0;
  // The best share any trim order could have left, given the same pool: had it closed an
  // out-of-grace attacker instead of each honest peer it closed. A trim closes only what
  // its candidates hold above low water, so when attackers arrive faster than trims remove
  // them, no order reaches a bound that this floor exceeds.
  double max_floor_share = 0;
  double mean_floor_share = 0;
  std::uint64_t trims_floor_above_10_percent = 0;
  // Out-of-grace attacker connections a trim kept while it closed an honest peer (the
  // diversity rule keeps at most one peer per network group for diversity's sake, so at
  // most attacker_groups): the largest such count, and how many trims kept any.
  std::size_t max_kept_over_honest = 0;
  std::uint64_t trims_keeping_attackers_over_honest = 0;
  // Honest nodes found eclipsed (at least one connection, every one to an attacker) at a
  // check (every eclipse_check_interval from warmup on) or right after one of their trims.
  std::size_t eclipsed_nodes = 0;
  std::uint64_t eclipse_checks = 0;
  // The honest overlay (honest-honest connections between online honest nodes) was one
  // component at every connectivity check.
  bool always_connected = true;
  std::uint64_t connectivity_checks = 0;
  std::size_t max_components = 0;
  // Traffic.
  std::uint64_t connections_opened = 0;
  std::uint64_t honest_dials = 0;
  std::uint64_t honest_dials_failed = 0;  // the target was offline
  std::uint64_t attacker_dials = 0;       // that reached an honest node
  std::uint64_t add_refusals = 0;         // add_connection errors at either side
  // Connections an honest node's staged admission refused (Policy::diversity_capped):
  // between two honest nodes (what the cap costs them), and with an attacker at one end.
  std::uint64_t admission_refusals_honest = 0;
  std::uint64_t admission_refusals_attacker = 0;
  std::uint64_t pings_answered = 0;
  std::uint64_t leaves = 0;
  std::uint64_t joins = 0;
  // Consistency: trims after which the manager's count differed from the simulation's.
  std::uint64_t trim_count_mismatches = 0;
  // At the end, over the online honest nodes.
  double final_mean_connections = 0;
  double final_attacker_share = 0;
  std::vector<MinuteStats> minutes;
  double wall_seconds = 0;  // std::chrono::steady_clock, run_simulation's own
};

SimResult run_simulation(const SimOptions& options);

}  // namespace eclipse_sim
