// eclipse_sim: runs the eclipse simulation (eclipse_sim.hpp) for one policy or all three
// and prints a table per policy; optionally a CSV of the per-minute figures and an SVG
// chart of the attacker share over simulated time. The exit code is non-zero only for a
// usage error: judging the figures is the test's job (tests/integration/eclipse_sim_test.cpp).
//
//   eclipse_sim --nodes 1000 --minutes 30 --seed 1 --policy all --svg share.svg
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli_number.hpp"
#include "eclipse_sim.hpp"
#include "share_chart.hpp"

namespace {

constexpr const char* kUsage =
    "usage: eclipse_sim [--nodes N] [--minutes M] [--seed S]\n"
    "                   [--policy default|diversity|diversity-grace|go|diversity-capped|all]\n"
    "                   [--csv FILE] [--svg FILE]\n"
    "  --nodes N     nodes, honest and attackers (10% attackers); default 1000\n"
    "  --minutes M   simulated minutes; default 30\n"
    "  --seed S      the run's seed; default 1\n"
    "  --policy P    the honest nodes' trim policy, or all five; default all\n"
    "  --csv FILE    per policy and simulated minute: trims, shares, eclipses, connectivity\n"
    "  --svg FILE    a chart of the attacker share after trims over simulated time\n"
    "the model's knobs (defaults in eclipse_sim.hpp):\n"
    "  --attackers F         fraction of the nodes that attack; default 0.1\n"
    "  --churn F             fraction of online honest nodes that leave (and join) a minute; 0.1\n"
    "  --attacker-dial-ms N  each attacker dials a random honest node every N ms; 1000\n"
    "  --keepalive-ms N      the honest managers' keepalive interval, 0 for none; 60000\n"
    "  --outbound N          outbound connections an honest node keeps dialing for; default 24\n"
    "  --group-cap N         diversity-capped: connections per network group; default 2\n"
    "  --ping-all            ping under every policy, not only diversity (same figures, slower)\n";

using cli::parse_number;

// A fraction within [0, 1], as decimal text ("0.1").
std::optional<double> parse_fraction(std::string_view text) {
  const auto value = cli::parse_decimal(text);
  if (!value || !(*value >= 0.0 && *value <= 1.0)) return std::nullopt;
  return value;
}

// The process's peak resident set (VmHWM) in KiB; 0 when unknown.
std::uint64_t peak_rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::uint64_t kib = 0;
      for (char c : line) {
        if (c >= '0' && c <= '9') kib = kib * 10 + static_cast<std::uint64_t>(c - '0');
      }
      return kib;
    }
  }
  return 0;
}

struct Row {
  eclipse_sim::SimResult result;
  std::uint64_t rss_kib = 0;
};

std::string fixed(double v, int digits) {
  char out[64];
  std::snprintf(out, sizeof out, "%.*f", digits, v);
  return out;
}

std::string pct(double share) { return fixed(share * 100.0, 1) + "%"; }

void print_table(const std::vector<Row>& rows, const eclipse_sim::SimOptions& options) {
  std::printf(
      "eclipse_sim: %zu nodes (%zu attackers in 2 /16s), %zu simulated minutes, seed %llu\n",
      options.nodes, rows.empty() ? std::size_t{0} : rows.front().result.attacker_nodes,
      options.minutes, static_cast<unsigned long long>(options.seed));
  std::printf("%-15s %7s %9s %9s %9s %9s %8s %9s %10s %8s %10s\n", "policy", "trims", "max share",
              "mean", "floor max", "floor mean", "kept>hon", "eclipsed", "connected", "wall s",
              "peak RSS");
  for (const Row& row : rows) {
    const auto& r = row.result;
    std::printf("%-15s %7llu %9s %9s %9s %9s %8zu %9zu %10s %8s %6s MiB\n",
                std::string(eclipse_sim::to_string(r.policy)).c_str(),
                static_cast<unsigned long long>(r.trims), pct(r.max_share).c_str(),
                pct(r.mean_share).c_str(), pct(r.max_floor_share).c_str(),
                pct(r.mean_floor_share).c_str(), r.max_kept_over_honest, r.eclipsed_nodes,
                r.always_connected ? "yes" : "NO", fixed(r.wall_seconds, 2).c_str(),
                fixed(static_cast<double>(row.rss_kib) / 1024.0, 1).c_str());
  }
  std::printf(
      "  max share / mean: attacker connections / all of an honest node's, right after each of\n"
      "    its trims, over every honest node and trim.\n"
      "  floor: the share the best possible trim order would have left in the same pool (an\n"
      "    out-of-grace attacker closed instead of each honest victim); no order can do better.\n"
      "  kept>hon: the most out-of-grace attacker connections a trim kept while closing an\n"
      "    honest peer. eclipsed: honest nodes ever found with only attacker connections.\n"
      "  connected: the honest overlay was one component at every check. peak RSS: the\n"
      "    process's (VmHWM) so far, so it includes the runs above.\n");
  for (const Row& row : rows) {
    const auto& r = row.result;
    std::printf(
        "  %s: trims above 10%% %llu (floor above 10%%: %llu); trims keeping attackers over honest "
        "%llu; out of grace only: max %s, mean %s; connections %llu (%llu from attackers); honest "
        "dials %llu (%llu to offline nodes); refused %llu; refused by admission %llu between "
        "honest "
        "nodes, %llu with attackers; pings answered %llu; churn %llu out, "
        "%llu in; at the end %s connections per honest node, %s to attackers; components at most "
        "%zu; count mismatches %llu\n",
        std::string(eclipse_sim::to_string(r.policy)).c_str(),
        static_cast<unsigned long long>(r.trims_above_10_percent),
        static_cast<unsigned long long>(r.trims_floor_above_10_percent),
        static_cast<unsigned long long>(r.trims_keeping_attackers_over_honest),
        pct(r.max_share_out_of_grace).c_str(), pct(r.mean_share_out_of_grace).c_str(),
        static_cast<unsigned long long>(r.connections_opened),
        static_cast<unsigned long long>(r.attacker_dials),
        static_cast<unsigned long long>(r.honest_dials),
        static_cast<unsigned long long>(r.honest_dials_failed),
        static_cast<unsigned long long>(r.add_refusals),
        static_cast<unsigned long long>(r.admission_refusals_honest),
        static_cast<unsigned long long>(r.admission_refusals_attacker),
        static_cast<unsigned long long>(r.pings_answered),
        static_cast<unsigned long long>(r.leaves), static_cast<unsigned long long>(r.joins),
        fixed(r.final_mean_connections, 1).c_str(), pct(r.final_attacker_share).c_str(),
        r.max_components, static_cast<unsigned long long>(r.trim_count_mismatches));
  }
}

bool write_csv(const std::string& path, const std::vector<Row>& rows) {
  std::ofstream out(path);
  if (!out) return false;
  out << "policy,minute,trims,max_share,mean_share,max_share_out_of_grace,max_floor_share,"
         "eclipsed_max,"
         "connectivity_checked,connected,components,online_honest,mean_connections,"
         "attacker_share_all\n";
  for (const Row& row : rows) {
    const auto& r = row.result;
    for (std::size_t m = 0; m < r.minutes.size(); ++m) {
      const auto& b = r.minutes[m];
      out << eclipse_sim::to_string(r.policy) << ',' << m << ',' << b.trims << ','
          << fixed(b.max_share, 4) << ',' << fixed(b.mean_share(), 4) << ','
          << fixed(b.max_share_out_of_grace, 4) << ',' << fixed(b.max_floor_share, 4) << ','
          << b.eclipsed_max << ',' << (b.connectivity_checked ? 1 : 0) << ','
          << (b.connected ? 1 : 0) << ',' << b.components << ',' << b.online_honest << ','
          << fixed(b.mean_connections, 2) << ',' << fixed(b.attacker_share_all, 4) << '\n';
    }
  }
  return static_cast<bool>(out);
}

eclipse_sim::chart::ShareChart chart_of(const std::vector<Row>& rows,
                                        const eclipse_sim::SimOptions& options) {
  eclipse_sim::chart::ShareChart chart;
  chart.title = "Attacker share after honest nodes' trims (" + std::to_string(options.nodes) +
                " nodes, 10% attackers in two /16s)";
  for (const Row& row : rows) {
    eclipse_sim::chart::Series series;
    series.name = std::string(eclipse_sim::to_string(row.result.policy));
    for (const auto& b : row.result.minutes) {
      if (b.trims == 0) {
        series.max_share.emplace_back();
        series.mean_share.emplace_back();
      } else {
        series.max_share.emplace_back(b.max_share);
        series.mean_share.emplace_back(b.mean_share());
      }
    }
    chart.series.push_back(std::move(series));
  }
  return chart;
}

}  // namespace

int main(int argc, char** argv) {
  eclipse_sim::SimOptions options;
  const std::vector<eclipse_sim::Policy> all = {
      eclipse_sim::Policy::default_order, eclipse_sim::Policy::diversity,
      eclipse_sim::Policy::diversity_grace, eclipse_sim::Policy::go,
      eclipse_sim::Policy::diversity_capped};
  std::vector<eclipse_sim::Policy> policies = all;
  std::string csv, svg;
  const auto usage_error = [](const std::string& message) {
    std::cerr << "eclipse_sim: " << message << "\n" << kUsage;
    return 2;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (arg == "--ping-all") {
      options.ping_under_every_policy = true;
      continue;
    }
    if (i + 1 >= argc) return usage_error("missing value for " + std::string(arg));
    const std::string_view value = argv[++i];
    if (arg == "--nodes") {
      const auto n = parse_number<std::size_t>(value);
      if (!n || *n < 10) return usage_error("--nodes needs a number of at least 10");
      options.nodes = *n;
    } else if (arg == "--minutes") {
      const auto n = parse_number<std::size_t>(value);
      if (!n || *n < 1) return usage_error("--minutes needs a number of at least 1");
      options.minutes = *n;
    } else if (arg == "--seed") {
      const auto n = parse_number<std::uint64_t>(value);
      if (!n) return usage_error("--seed needs a number");
      options.seed = *n;
    } else if (arg == "--policy") {
      if (value == "all") {
        policies = all;
        continue;
      }
      const auto p = eclipse_sim::parse_policy(value);
      if (!p) return usage_error("unknown policy '" + std::string(value) + "'");
      policies = {*p};
    } else if (arg == "--attackers" || arg == "--churn") {
      const auto f = parse_fraction(value);
      if (!f) return usage_error(std::string(arg) + " needs a fraction within 0..1");
      (arg == "--churn" ? options.churn_per_minute : options.attacker_fraction) = *f;
    } else if (arg == "--attacker-dial-ms" || arg == "--keepalive-ms") {
      const auto n = parse_number<std::uint32_t>(value);
      if (!n || (*n == 0 && arg == "--attacker-dial-ms")) {
        return usage_error(std::string(arg) + " needs a number of milliseconds");
      }
      (arg == "--keepalive-ms" ? options.keepalive_interval : options.attacker_dial_interval) =
          std::chrono::milliseconds(*n);
    } else if (arg == "--outbound") {
      const auto n = parse_number<std::size_t>(value);
      if (!n) return usage_error("--outbound needs a number of connections");
      options.outbound_target = *n;
    } else if (arg == "--group-cap") {
      const auto n = parse_number<std::size_t>(value);
      if (!n || *n < 1) return usage_error("--group-cap needs a number of at least 1");
      options.group_cap = *n;
    } else if (arg == "--csv") {
      csv = value;
    } else if (arg == "--svg") {
      svg = value;
    } else {
      return usage_error("unknown option " + std::string(arg));
    }
  }

  std::vector<Row> rows;
  for (const auto policy : policies) {
    options.policy = policy;
    std::fprintf(stderr, "running %s ...\n", std::string(eclipse_sim::to_string(policy)).c_str());
    Row row;
    row.result = eclipse_sim::run_simulation(options);
    row.rss_kib = peak_rss_kib();
    rows.push_back(std::move(row));
  }
  print_table(rows, options);
  if (!csv.empty()) {
    if (write_csv(csv, rows)) {
      std::printf("wrote %s\n", csv.c_str());
    } else {
      std::fprintf(stderr, "eclipse_sim: cannot write %s\n", csv.c_str());
    }
  }
  if (!svg.empty()) {
    std::ofstream out(svg);
    out << eclipse_sim::chart::render_share_svg(chart_of(rows, options));
    if (out) {
      std::printf("wrote %s\n", svg.c_str());
    } else {
      std::fprintf(stderr, "eclipse_sim: cannot write %s\n", svg.c_str());
    }
  }
  return 0;
}
