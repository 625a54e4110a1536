#include "dep2p/connmgr/config.hpp"

#include <string>

namespace dep2p::connmgr {

Config Config::preset(Preset preset) {
  Config config;
  switch (preset) {
    case Preset::minimal:
      config.low_water = 10;
      config.high_water = 50;
      break;
    case Preset::mobile:
      config.low_water = 20;
      config.high_water = 100;
      break;
    case Preset::desktop: break;
    case Preset::server:
      config.low_water = 500;
      config.high_water = 2000;
      break;
  }
  return config;
}

std::optional<ConfigError> Config::validate() const {
  auto fail = [](std::string field, std::string message) {
    return std::optional<ConfigError>(ConfigError{std::move(field), std::move(message)});
  };
  if (low_water != 0 && high_water != 0 && low_water > high_water) {
    return fail("low_water", "low_water (" + std::to_string(low_water) +
                                 ") must not exceed high_water (" + std::to_string(high_water) +
                                 ")");
  }
  if (grace_period.count() < 0) {
    return fail("grace_period", "grace_period (" + std::to_string(grace_period.count()) +
                                    " ms) must not be negative");
  }
  if (silence_period.count() <= 0) {
    return fail("silence_period", "silence_period (" + std::to_string(silence_period.count()) +
                                      " ms) must be positive");
  }
  if (max_temp_peers == 0) {
    return fail("max_temp_peers", "max_temp_peers must be positive");
  }
  if (decay_resolution.count() <= 0) {
    return fail("decay_resolution", "decay_resolution (" +
                                        std::to_string(decay_resolution.count()) +
                                        " ms) must be positive");
  }
  if (tag_retention.count() < 0) {
    return fail("tag_retention", "tag_retention (" + std::to_string(tag_retention.count()) +
                                     " ms) must not be negative");
  }
  return std::nullopt;
}

}  // namespace dep2p::connmgr
