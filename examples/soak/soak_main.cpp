// soak: runs the soak (soak.hpp) and prints its summary. Exits 1 on any violation, 2 on a
// usage error.
//
//   soak --minutes 30 --nodes 16 --seed 1
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "cli_number.hpp"
#include "soak.hpp"

namespace {

constexpr const char* kUsage =
    "usage: soak [--minutes M | --seconds S] [--nodes N] [--seed N] [--quiet]\n"
    "  --minutes M   how long the churn runs, in minutes\n"
    "  --seconds S   the same in seconds; default 60\n"
    "  --nodes N     nodes on loopback, each on its own /24 (4..250); default 16\n"
    "  --seed N      the churn's random choices; default 1\n"
    "  --quiet       no progress lines, only the summary\n";

using cli::parse_number;

std::optional<double> parse_positive(std::string_view text) {
  const auto value = cli::parse_decimal(text);
  if (!value || !(*value > 0)) return std::nullopt;
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  soak::SoakOptions options;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (flag == "--quiet") {
      quiet = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::cerr << "soak: " << flag << " needs a value\n" << kUsage;
      return 2;
    }
    const std::string_view value = argv[++i];
    bool ok = true;
    if (flag == "--minutes" || flag == "--seconds") {
      auto v = parse_positive(value);
      ok = v.has_value();
      if (ok) options.seconds = flag == "--minutes" ? *v * 60 : *v;
    } else if (flag == "--nodes") {
      auto v = parse_number<std::size_t>(value);
      ok = v.has_value();
      if (ok) options.nodes = *v;
    } else if (flag == "--seed") {
      auto v = parse_number<std::uint32_t>(value);
      ok = v.has_value();
      if (ok) options.seed = *v;
    } else {
      std::cerr << "soak: unknown flag " << flag << "\n" << kUsage;
      return 2;
    }
    if (!ok) {
      std::cerr << "soak: bad value for " << flag << ": " << value << "\n" << kUsage;
      return 2;
    }
  }
  // Long runs report every 30 s, short ones every 10 s (checks come every 2 s).
  options.progress_every_checks = options.seconds > 600 ? 15 : 5;
  if (!quiet) options.progress = [](const std::string& line) { std::cout << line << std::endl; };

  soak::SoakResult result;
  try {
    result = soak::run_soak(options);
  } catch (const std::invalid_argument& e) {
    std::cerr << "soak: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "soak: " << e.what() << "\n";
    return 1;
  }
  for (const std::string& line : soak::describe(result)) std::cout << line << "\n";
  return result.ok() ? 0 : 1;
}
