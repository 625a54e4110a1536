// Command-line numbers for the example programs: the whole text must be the number, or
// there is none (no trailing characters, no sign the type cannot hold).
#pragma once

#include <charconv>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace cli {

// An integer of type T written in decimal, e.g. parse_number<std::size_t>("1000").
template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// A decimal fraction or number, e.g. "0.1" or "2.5".
inline std::optional<double> parse_decimal(std::string_view text) {
  try {
    std::size_t used = 0;
    const std::string copy(text);
    const double value = std::stod(copy, &used);
    if (used != copy.size()) return std::nullopt;
    return value;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace cli
