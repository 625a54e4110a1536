// swarm_demo: starts N p2p nodes (default 40) on loopback, runs the scenarios of
// swarm.hpp on real sockets, prints each against its expectation, writes an SVG chart of
// the connection counts, and exits non-zero if any scenario failed.
//
//   ./dev.sh demo                      # or: swarm_demo --nodes 40 --svg swarm.svg
//   swarm_demo --verbose               # the nodes' and the library's info logs on stderr
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

int usage() {
  std::fprintf(stderr,
               "usage: swarm_demo [--nodes N (>= %zu)] [--svg PATH] [--seed S] [--verbose]\n",
               swarm::kMinNodes);
  return 2;
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
    } else if (std::strcmp(argv[i], "--verbose") == 0) {
      verbose = true;
    } else {
      return usage();
    }
  }
  if (options.nodes < swarm::kMinNodes) return usage();
  options.logger =
      std::make_shared<spdlog::logger>("swarm", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  options.logger->set_level(verbose ? spdlog::level::info : spdlog::level::warn);
  options.progress = [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };

  try {
    std::printf("swarm demo: %zu nodes on 127.0.1-5.x, attackers on 127.66.0.0/24\n",
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
