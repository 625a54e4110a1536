// flood: runs the flood (flood.hpp) and prints what the victim admitted, refused and spent;
// optionally a CSV of the per-second samples. Exits 1 when the honest share is below 95%
// or anything leaked, 2 on a usage error.
//
//   flood --seconds 20 --honest 50 --subnets 20 --csv flood.csv
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "cli_number.hpp"
#include "flood.hpp"

namespace {

constexpr const char* kUsage =
    "usage: flood [--seconds S] [--honest N] [--subnets N] [--flooders-per-subnet N]\n"
    "             [--in-flight N] [--seed N] [--csv FILE]\n"
    "  --seconds S               how long the flood runs; default 20\n"
    "  --honest N                honest peers dialing the victim, each on its own /24; 50\n"
    "  --subnets N               flooding /24s, 0 for none (a baseline); default 20\n"
    "  --flooders-per-subnet N   source addresses per flooding /24; default 4\n"
    "  --in-flight N             flood sockets open at once (all subnets); default 2000,\n"
    "                            lowered to what the descriptor limit allows\n"
    "  --seed N                  the honest peers' random waits; default 1\n"
    "  --csv FILE                one line a second: dials, flood attempts, victim refusals\n";

using cli::parse_number;

std::optional<double> parse_seconds(std::string_view text) {
  const auto value = cli::parse_decimal(text);
  if (!value || !(*value > 0)) return std::nullopt;
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  flood::FloodOptions options;
  std::string csv;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (i + 1 >= argc) {
      std::cerr << "flood: " << flag << " needs a value\n" << kUsage;
      return 2;
    }
    const std::string_view value = argv[++i];
    bool ok = true;
    auto set_size = [&](std::size_t& field) {
      auto n = parse_number<std::size_t>(value);
      ok = n.has_value();
      if (ok) field = *n;
    };
    if (flag == "--seconds") {
      auto s = parse_seconds(value);
      ok = s.has_value();
      if (ok) options.seconds = *s;
    } else if (flag == "--honest") {
      set_size(options.honest);
    } else if (flag == "--subnets") {
      set_size(options.subnets);
    } else if (flag == "--flooders-per-subnet") {
      set_size(options.flooders_per_subnet);
    } else if (flag == "--in-flight") {
      set_size(options.in_flight);
    } else if (flag == "--seed") {
      auto n = parse_number<std::uint32_t>(value);
      ok = n.has_value();
      if (ok) options.seed = *n;
    } else if (flag == "--csv") {
      csv = value;
    } else {
      std::cerr << "flood: unknown flag " << flag << "\n" << kUsage;
      return 2;
    }
    if (!ok) {
      std::cerr << "flood: bad value for " << flag << ": " << value << "\n" << kUsage;
      return 2;
    }
  }
  options.progress = [](const std::string& line) { std::cout << line << std::endl; };

  flood::FloodResult result;
  try {
    result = flood::run_flood(options);
  } catch (const std::invalid_argument& e) {
    std::cerr << "flood: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "flood: " << e.what() << "\n";
    return 1;
  }
  for (const std::string& line : flood::describe(result)) std::cout << line << "\n";
  if (!csv.empty()) {
    std::ofstream out(csv);
    out << flood::samples_csv(result);
    if (!out) {
      std::cerr << "flood: cannot write " << csv << "\n";
      return 1;
    }
  }
  return result.ok() ? 0 : 1;
}
