#include "dep2p/connmgr/config.hpp"

#include <limits>
#include <string>

#include "base/rate_rules.hpp"
#include "net/prefix.hpp"

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
      config.keepalive_interval = std::chrono::seconds(30);  // radio wake-ups cost battery
      break;
    case Preset::desktop: break;
    case Preset::server:
      config.low_water = 500;
      config.high_water = 2000;
      break;
  }
  return config;
}

namespace {

std::string number(std::size_t v) { return v == kUnlimited ? "unlimited" : std::to_string(v); }
std::string number(std::uint64_t v, bool) {
  return v == std::numeric_limits<std::uint64_t>::max() ? "unlimited" : std::to_string(v);
}

std::optional<ConfigError> fail(std::string field, std::string message) {
  return ConfigError{std::move(field), std::move(message)};
}

// `inner` must not exceed `outer`; both are fields of the same config.
std::optional<ConfigError> at_most(const std::string& inner_name, std::size_t inner,
                                   const std::string& outer_name, std::size_t outer) {
  if (inner == kUnlimited || inner <= outer) return std::nullopt;
  return fail(inner_name, inner_name + " (" + number(inner) + ") must not exceed " + outer_name +
                              " (" + number(outer) + ")");
}

std::optional<ConfigError> check_scope(const std::string& name, const ScopeLimits& s) {
  if (auto e = at_most(name + ".connections_inbound", s.connections_inbound,
                       name + ".connections_total", s.connections_total)) {
    return e;
  }
  if (auto e = at_most(name + ".connections_outbound", s.connections_outbound,
                       name + ".connections_total", s.connections_total)) {
    return e;
  }
  if (auto e = at_most(name + ".streams_inbound", s.streams_inbound, name + ".streams_total",
                       s.streams_total)) {
    return e;
  }
  if (auto e = at_most(name + ".streams_outbound", s.streams_outbound, name + ".streams_total",
                       s.streams_total)) {
    return e;
  }
  return std::nullopt;
}

std::optional<ConfigError> check_peer_within_system(const ScopeLimits& peer,
                                                    const ScopeLimits& system) {
  struct Pair {
    const char* name;
    std::size_t peer;
    std::size_t system;
  };
  const Pair pairs[] = {
      {"connections_inbound", peer.connections_inbound, system.connections_inbound},
      {"connections_outbound", peer.connections_outbound, system.connections_outbound},
      {"connections_total", peer.connections_total, system.connections_total},
      {"streams_inbound", peer.streams_inbound, system.streams_inbound},
      {"streams_outbound", peer.streams_outbound, system.streams_outbound},
      {"streams_total", peer.streams_total, system.streams_total},
      {"pending_inbound", peer.pending_inbound, system.pending_inbound},
      {"pending_outbound", peer.pending_outbound, system.pending_outbound},
      {"file_descriptors", peer.file_descriptors, system.file_descriptors},
  };
  for (const Pair& p : pairs) {
    if (auto e = at_most(std::string("limits.peer.") + p.name, p.peer,
                         std::string("limits.system.") + p.name, p.system)) {
      return e;
    }
  }
  if (peer.memory_bytes != std::numeric_limits<std::uint64_t>::max() &&
      peer.memory_bytes > system.memory_bytes) {
    return fail("limits.peer.memory_bytes", "limits.peer.memory_bytes (" +
                                                number(peer.memory_bytes, true) +
                                                ") must not exceed limits.system.memory_bytes (" +
                                                number(system.memory_bytes, true) + ")");
  }
  return std::nullopt;
}

std::optional<ConfigError> check_rate(const std::string& name, const Rate& rate) {
  if (rate.per_second < 0 || rate.burst < 0) {
    return fail(name, name + " must not be negative");
  }
  if (rate.per_second > 0 && rate.burst < 1) {
    return fail(name, name + ".burst (" + std::to_string(rate.burst) +
                          ") must be at least 1, or no connection is ever admitted");
  }
  try {
    detail::validate_rate(rate, name);  // NaN, infinities: what the bucket refuses
  } catch (const std::invalid_argument& e) {
    return fail(name, e.what());
  }
  return std::nullopt;
}

}  // namespace

std::optional<ConfigError> Config::validate_limits() const {
  const ScopeLimits& system = limits.system;
  if (high_water != 0 && system.connections_total != kUnlimited &&
      high_water > system.connections_total) {
    return fail("high_water", "high_water (" + std::to_string(high_water) +
                                  ") must not exceed limits.system.connections_total (" +
                                  number(system.connections_total) +
                                  "): the pool could never reach it, so it would never trim");
  }
  if (auto e = check_scope("limits.system", system)) return e;
  if (auto e = check_scope("limits.peer", limits.peer)) return e;
  if (auto e = check_peer_within_system(limits.peer, system)) return e;
  const SubnetCaps& caps = limits.subnets;
  if (auto e =
          at_most("limits.subnets.ipv4_32", caps.ipv4_32, "limits.subnets.ipv4_24", caps.ipv4_24)) {
    return e;
  }
  if (auto e =
          at_most("limits.subnets.ipv6_56", caps.ipv6_56, "limits.subnets.ipv6_48", caps.ipv6_48)) {
    return e;
  }
  // The same checks the tables run when built, so a config that validates constructs.
  if (auto e = detail::check_overrides(caps)) {
    return e;
  }
  const InboundRates& rates = limits.inbound_rate;
  if (auto e = check_rate("limits.inbound_rate.ipv4_24", rates.ipv4_24)) return e;
  if (auto e = check_rate("limits.inbound_rate.ipv4_16", rates.ipv4_16)) return e;
  if (auto e = check_rate("limits.inbound_rate.ipv6_64", rates.ipv6_64)) return e;
  if (auto e = check_rate("limits.inbound_rate.ipv6_48", rates.ipv6_48)) return e;
  if (rates.max_buckets < 2) {
    // Every address is charged to two prefixes: fewer buckets refuse every new subnet.
    return fail("limits.inbound_rate.max_buckets",
                "limits.inbound_rate.max_buckets (" + std::to_string(rates.max_buckets) +
                    ") must be at least 2, or every new subnet is refused");
  }
  if (auto e = check_rate("limits.outbound_dials", limits.outbound_dials)) return e;
  return std::nullopt;
}

std::string Config::describe() const {
  const ScopeLimits& s = limits.system;
  const ScopeLimits& p = limits.peer;
  return "low_water=" + std::to_string(low_water) + " high_water=" + std::to_string(high_water) +
         " grace_period=" + std::to_string(grace_period.count()) +
         "ms silence_period=" + std::to_string(silence_period.count()) +
         "ms max_temp_peers=" + std::to_string(max_temp_peers) +
         " temp_peer_lifetime=" + std::to_string(temp_peer_lifetime.count()) +
         "ms decay_resolution=" + std::to_string(decay_resolution.count()) +
         "ms tag_retention=" + std::to_string(tag_retention.count()) +
         "ms max_peers_per_protection_tag=" + std::to_string(max_peers_per_protection_tag) +
         " system.connections=" + number(s.connections_inbound) + "/" +
         number(s.connections_outbound) + "/" + number(s.connections_total) +
         " system.pending=" + number(s.pending_inbound) + "/" + number(s.pending_outbound) +
         " system.streams=" + number(s.streams_inbound) + "/" + number(s.streams_outbound) + "/" +
         number(s.streams_total) + " peer.connections=" + number(p.connections_inbound) + "/" +
         number(p.connections_outbound) + "/" + number(p.connections_total) +
         " subnets=" + std::to_string(limits.subnets.ipv4_32) + "/" +
         std::to_string(limits.subnets.ipv4_24) + "/" + std::to_string(limits.subnets.ipv6_56) +
         "/" + std::to_string(limits.subnets.ipv6_48) +
         " inbound_rate.ipv4_24=" + std::to_string(limits.inbound_rate.ipv4_24.per_second) + "/s" +
         " diversity=" + (diversity.enabled ? "on" : "off") +
         (diversity.max_per_group != 0 ? " max_per_group=" + std::to_string(diversity.max_per_group)
                                       : std::string());
}

std::optional<ConfigError> Config::validate() const {
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
  if (temp_peer_lifetime.count() <= 0) {
    return fail("temp_peer_lifetime", "temp_peer_lifetime (" +
                                          std::to_string(temp_peer_lifetime.count()) +
                                          " ms) must be positive");
  }
  if (decay_resolution.count() <= 0) {
    return fail(
        "decay_resolution",
        "decay_resolution (" + std::to_string(decay_resolution.count()) + " ms) must be positive");
  }
  if (keepalive_interval.count() < 0) {
    return fail("keepalive_interval", "keepalive_interval (" +
                                          std::to_string(keepalive_interval.count()) +
                                          " ms) must not be negative (0 disables keepalive)");
  }
  if (keepalive_interval.count() > 0 && keepalive_timeout.count() <= 0) {
    return fail("keepalive_timeout", "keepalive_timeout (" +
                                         std::to_string(keepalive_timeout.count()) +
                                         " ms) must be positive while keepalive is on");
  }
  if (keepalive_interval.count() > 0 && keepalive_max_missed == 0) {
    return fail("keepalive_max_missed",
                "keepalive_max_missed must be at least 1 while keepalive is on");
  }
  if (idle_timeout.count() < 0) {
    return fail("idle_timeout", "idle_timeout (" + std::to_string(idle_timeout.count()) +
                                    " ms) must not be negative (0 disables it)");
  }
  if (path_idle_timeout.count() < 0) {
    return fail("path_idle_timeout", "path_idle_timeout (" +
                                         std::to_string(path_idle_timeout.count()) +
                                         " ms) must not be negative (0 disables it)");
  }
  if (handshake_timeout.count() <= 0) {
    return fail("handshake_timeout", "handshake_timeout (" +
                                         std::to_string(handshake_timeout.count()) +
                                         " ms) must be positive");
  }
  if (redundant_grace.count() < 0) {
    return fail("redundant_grace", "redundant_grace (" + std::to_string(redundant_grace.count()) +
                                       " ms) must not be negative");
  }
  if (tag_retention.count() < 0) {
    return fail("tag_retention", "tag_retention (" + std::to_string(tag_retention.count()) +
                                     " ms) must not be negative");
  }
  if (auto error = validate_limits()) return error;
  if (auto error = validate_dial()) return error;
  if (auto error = validate_diversity()) return error;
  return std::nullopt;
}

std::optional<ConfigError> Config::validate_diversity() const {
  const struct {
    const char* name;
    unsigned value;
    unsigned lowest;
    unsigned highest;
  } prefixes[] = {{"diversity.ipv4_prefix", diversity.ipv4_prefix, 1, 32},
                  {"diversity.ipv6_prefix", diversity.ipv6_prefix, 1, 128},
                  {"diversity.loopback_v4_prefix", diversity.loopback_v4_prefix, 8, 32}};
  for (const auto& p : prefixes) {
    if (p.value < p.lowest || p.value > p.highest) {
      return fail(p.name, std::string(p.name) + " (" + std::to_string(p.value) +
                              ") must be within " + std::to_string(p.lowest) + ".." +
                              std::to_string(p.highest) + " bits");
    }
  }
  return std::nullopt;
}

std::optional<ConfigError> Config::validate_dial() const {
  const auto ms = [](std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; };
  const struct {
    const char* name;
    std::chrono::milliseconds base;
    std::chrono::milliseconds max;
  } rules[] = {{"error_backoff", dial.error_backoff, dial.error_backoff_max},
               {"timeout_backoff", dial.timeout_backoff, dial.timeout_backoff_max},
               {"refused_backoff", dial.refused_backoff, dial.refused_backoff_max}};
  for (const auto& rule : rules) {
    const std::string name = std::string("dial.") + rule.name;
    if (rule.base.count() < 0) {
      return fail(name, name + " (" + ms(rule.base) + ") must not be negative");
    }
    if (rule.max < rule.base) {
      return fail(name + "_max", name + "_max (" + ms(rule.max) + ") must not be below " + name +
                                     " (" + ms(rule.base) + ")");
    }
  }
  if (!(dial.backoff_factor >= 1.0) || dial.backoff_factor > 1e6) {
    return fail("dial.backoff_factor", "dial.backoff_factor (" +
                                           std::to_string(dial.backoff_factor) +
                                           ") must be at least 1 (and at most 1e6)");
  }
  if (!(dial.backoff_jitter >= 0.0 && dial.backoff_jitter < 1.0)) {
    return fail(
        "dial.backoff_jitter",
        "dial.backoff_jitter (" + std::to_string(dial.backoff_jitter) + ") must lie in [0, 1)");
  }
  if (dial.backoff_memory.count() <= 0) {
    return fail("dial.backoff_memory",
                "dial.backoff_memory (" + ms(dial.backoff_memory) + ") must be positive");
  }
  if (dial.max_backoff_peers == 0) {
    return fail("dial.max_backoff_peers", "dial.max_backoff_peers must be positive");
  }
  if (dial.max_backoff_addresses == 0) {
    return fail("dial.max_backoff_addresses", "dial.max_backoff_addresses must be positive");
  }
  if (dial.dial_timeout.count() <= 0) {
    return fail("dial.dial_timeout",
                "dial.dial_timeout (" + ms(dial.dial_timeout) + ") must be positive");
  }
  if (dial.max_parallel_dials == 0) {
    return fail("dial.max_parallel_dials", "dial.max_parallel_dials must be positive");
  }
  for (const std::string& tag : dial.reconnect_tags) {
    if (tag.empty()) {
      return fail("dial.reconnect_tags", "dial.reconnect_tags must not hold an empty tag");
    }
  }
  if (dial.direct_path_interval.count() < 0) {
    return fail(
        "dial.direct_path_interval",
        "dial.direct_path_interval (" + ms(dial.direct_path_interval) + ") must not be negative");
  }
  if (dial.direct_path_interval_max < dial.direct_path_interval) {
    return fail("dial.direct_path_interval_max",
                "dial.direct_path_interval_max (" + ms(dial.direct_path_interval_max) +
                    ") must not be below dial.direct_path_interval (" +
                    ms(dial.direct_path_interval) + ")");
  }
  return std::nullopt;
}

}  // namespace dep2p::connmgr
