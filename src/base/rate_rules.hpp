// The rule a Rate (limits.hpp) must follow to be usable, shared by Config::validate() and
// the token buckets that apply it.
#pragma once

#include <cmath>
#include <stdexcept>
#include <string>
#include <string_view>

#include "dep2p/connmgr/limits.hpp"

namespace dep2p::connmgr::detail {

// Throws std::invalid_argument naming `field` unless `rate` is usable: per_second a finite
// number >= 0 (0 disables), and when enabled a finite burst of at least 1, since a bucket
// that can never hold one token would refuse everything.
inline void validate_rate(const Rate& rate, std::string_view field) {
  const auto fail = [&](const std::string& why) {
    throw std::invalid_argument(std::string(field) + ": " + why);
  };
  if (!std::isfinite(rate.per_second) || rate.per_second < 0) {
    fail("per_second must be a finite number, at least 0 (0 disables the limit)");
  }
  if (rate.per_second > 0 && (!std::isfinite(rate.burst) || rate.burst < 1)) {
    fail("burst must be at least 1, or no connection is ever admitted");
  }
}

}  // namespace dep2p::connmgr::detail
