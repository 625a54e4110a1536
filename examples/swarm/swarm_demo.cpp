// swarm_demo: starts N p2p nodes (default 40) on loopback, runs the scenarios of
// swarm.hpp on real sockets, prints each against its expectation, writes an SVG chart of
// the connection counts, and exits non-zero if any scenario failed.
//
//   ./dev.sh demo                      # or: swarm_demo --nodes 40 --svg swarm.svg
//   swarm_demo --verbose               # the nodes' and the library's info logs on stderr
//   swarm_demo --ipv6                  # every node on ::1 (see usage() for the flood)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <string>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "swarm.hpp"

namespace {

// Prints the usage to `out`; returns the exit code for it.
int usage(std::FILE* out, int code) {
  std::fprintf(
      out,
      "usage: swarm_demo [--nodes N (>= %zu)] [--svg PATH] [--seed S] [--ipv6] [--verbose]\n"
      "  --nodes N    nodes in the swarm (default 40)\n"
      "  --svg PATH   where to write the chart (default swarm.svg)\n"
      "  --seed S     the growth's random dials (default 7)\n"
      "  --ipv6       every node listens and dials on ::1, each on its own port, instead of\n"
      "               127.0.1-5.x. ::1 is one address, so the /24s that stand for subnets\n"
      "               cannot be shown: the subnet flood becomes its IPv6 variant (the\n"
      "               attackers, all ::1, meet the victim's /56 cap and /64 rate, which\n"
      "               the other nodes lift); every scenario runs and is checked\n"
      "  --verbose    the nodes' and the library's info logs on stderr\n",
      swarm::kMinNodes);
  return code;
}

void print_table(const std::vector<swarm::Result>& results) {
  std::size_t w[3] = {8, 11, 8};
  for (const auto& r : results) {
    w[0] = std::max(w[0], r.scenario.size());
    w[1] = std::max(w[1], r.expectation.size());
    w[2] = std::max(w[2], r.observed.size());
  }
  auto row = [&](const std::string& a, const std::string& b, const std::string& c,
                 const std::string& d) {
    std::printf("%-*s  %-*s  %-*s  %s\n", static_cast<int>(w[0]), a.c_str(), static_cast<int>(w[1]),
                b.c_str(), static_cast<int>(w[2]), c.c_str(), d.c_str());
  };
  row("scenario", "expectation", "observed", "result");
  row(std::string(w[0], '-'), std::string(w[1], '-'), std::string(w[2], '-'), "------");
  for (const auto& r : results)
    row(r.scenario, r.expectation, r.observed, r.pass ? "PASS" : "FAIL");
}

}  // namespace

int main(int argc, char** argv) {
  swarm::Options options;
  std::string svg_path = "swarm.svg";
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (std::strcmp(argv[i], "--nodes") == 0 && has_value) {
      options.nodes = std::strtoul(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--svg") == 0 && has_value) {
      svg_path = argv[++i];
    } else if (std::strcmp(argv[i], "--seed") == 0 && has_value) {
      options.seed = static_cast<std::uint32_t>(std::strtoul(argv[++i], nullptr, 10));
    } else if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      return usage(stdout, EXIT_SUCCESS);
    } else if (std::strcmp(argv[i], "--ipv6") == 0) {
      options.ipv6 = true;
    } else if (std::strcmp(argv[i], "--verbose") == 0) {
      verbose = true;
    } else {
      return usage(stderr, 2);
    }
  }
  if (options.nodes < swarm::kMinNodes) return usage(stderr, 2);
  options.logger =
      std::make_shared<spdlog::logger>("swarm", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  options.logger->set_level(verbose ? spdlog::level::info : spdlog::level::warn);
  options.progress = [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };

  try {
    std::printf(options.ipv6 ? "swarm demo: %zu nodes on ::1, attackers on ::1\n"
                             : "swarm demo: %zu nodes on 127.0.1-5.x, attackers on 127.66.0.0/24\n",
                options.nodes);
    swarm::Swarm swarm(options);
    const auto results = swarm.run_all();
    const double seconds = swarm.elapsed();
    std::printf("\n");
    print_table(results);
    std::ofstream(svg_path) << swarm.svg();
    std::size_t failed = 0;
    for (const auto& r : results) failed += r.pass ? 0 : 1;
    std::printf("\n%zu of %zu scenarios passed in %.1f s; chart written to %s\n",
                results.size() - failed, results.size(), seconds, svg_path.c_str());
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swarm demo: %s\n", e.what());
    return EXIT_FAILURE;
  }
}
