// Unit tests for Config: defaults (docs/configuration.md), presets and validate().
#include "dep2p/connmgr/config.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <limits>

#include <chrono>
#include <cstddef>
#include <string>

namespace dep2p::connmgr {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ConfigDefaults, MatchDesignSection4) {
  const Config config;
  EXPECT_EQ(config.low_water, std::size_t{100});
  EXPECT_EQ(config.high_water, std::size_t{400});
  EXPECT_EQ(config.grace_period, seconds(20));
  EXPECT_EQ(config.silence_period, seconds(10));
  EXPECT_GT(config.max_temp_peers, std::size_t{0});
  EXPECT_FALSE(config.validate().has_value());
}

TEST(ConfigPresets, HaveTheDocumentedWatermarks) {
  const Config minimal = Config::preset(Preset::minimal);
  EXPECT_EQ(minimal.low_water, std::size_t{10});
  EXPECT_EQ(minimal.high_water, std::size_t{50});
  const Config mobile = Config::preset(Preset::mobile);
  EXPECT_EQ(mobile.low_water, std::size_t{20});
  EXPECT_EQ(mobile.high_water, std::size_t{100});
  const Config desktop = Config::preset(Preset::desktop);
  EXPECT_EQ(desktop.low_water, std::size_t{100});
  EXPECT_EQ(desktop.high_water, std::size_t{400});
  const Config server = Config::preset(Preset::server);
  EXPECT_EQ(server.low_water, std::size_t{500});
  EXPECT_EQ(server.high_water, std::size_t{2000});
}

TEST(ConfigPresets, DesktopEqualsTheDefaultConfig) {
  const Config desktop = Config::preset(Preset::desktop);
  const Config defaults;
  EXPECT_EQ(desktop.low_water, defaults.low_water);
  EXPECT_EQ(desktop.high_water, defaults.high_water);
  EXPECT_EQ(desktop.grace_period, defaults.grace_period);
  EXPECT_EQ(desktop.silence_period, defaults.silence_period);
  EXPECT_EQ(desktop.max_temp_peers, defaults.max_temp_peers);
}

TEST(ConfigPresets, AllValidate) {
  for (Preset p : {Preset::minimal, Preset::mobile, Preset::desktop, Preset::server}) {
    const auto error = Config::preset(p).validate();
    EXPECT_FALSE(error.has_value())
        << static_cast<int>(p) << ": " << (error ? error->message : std::string());
  }
}

TEST(ConfigValidate, LowAboveHighNamesLowWaterAndBothValues) {
  Config config;
  config.low_water = 500;
  config.high_water = 123;
  const auto error = config.validate();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "low_water");
  EXPECT_NE(error->message.find("500"), std::string::npos) << error->message;
  EXPECT_NE(error->message.find("123"), std::string::npos) << error->message;
}

TEST(ConfigValidate, EqualWatermarksAreValid) {
  Config config;
  config.low_water = 100;
  config.high_water = 100;
  EXPECT_FALSE(config.validate().has_value());
}

TEST(ConfigValidate, NegativeGracePeriodNamesGracePeriod) {
  Config config;
  config.grace_period = milliseconds(-1);
  const auto error = config.validate();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "grace_period");
  EXPECT_FALSE(error->message.empty());
}

TEST(ConfigValidate, ZeroGracePeriodIsValid) {
  Config config;
  config.grace_period = milliseconds(0);
  EXPECT_FALSE(config.validate().has_value());
}

TEST(ConfigValidate, ZeroSilencePeriodNamesSilencePeriod) {
  Config config;
  config.silence_period = milliseconds(0);
  const auto error = config.validate();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "silence_period");
  EXPECT_FALSE(error->message.empty());
}

TEST(ConfigValidate, NegativeSilencePeriodNamesSilencePeriod) {
  Config config;
  config.silence_period = milliseconds(-5000);
  const auto error = config.validate();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "silence_period");
}

TEST(ConfigValidate, ZeroMaxTempPeersNamesMaxTempPeers) {
  Config config;
  config.max_temp_peers = 0;
  const auto error = config.validate();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "max_temp_peers");
  EXPECT_FALSE(error->message.empty());
}

TEST(ConfigValidate, ZeroLowWaterIsValidWithNonzeroHigh) {
  Config config;
  config.low_water = 0;
  config.high_water = 400;
  EXPECT_FALSE(config.validate().has_value());
}

TEST(ConfigValidate, ZeroHighWaterIsValidEvenWithLowAboveIt) {
  // Either watermark 0 disables trimming, so low > high does not apply.
  Config config;
  config.low_water = 100;
  config.high_water = 0;
  const auto error = config.validate();
  EXPECT_FALSE(error.has_value()) << (error ? error->field + ": " + error->message : "");
}

TEST(ConfigValidate, BothWatermarksZeroIsValid) {
  Config config;
  config.low_water = 0;
  config.high_water = 0;
  EXPECT_FALSE(config.validate().has_value());
}

// Soft against hard: each contradiction names the field that must move.
struct Contradiction {
  const char* name;
  std::function<void(Config&)> make;
  const char* field;
  const char* mentions;  // a phrase the message must contain
};

class ConfigContradiction : public ::testing::TestWithParam<Contradiction> {};

TEST_P(ConfigContradiction, IsRejectedNamingTheField) {
  Config config;
  GetParam().make(config);
  const auto error = config.validate();
  ASSERT_TRUE(error.has_value()) << GetParam().name;
  EXPECT_EQ(error->field, GetParam().field);
  EXPECT_NE(error->message.find(GetParam().mentions), std::string::npos) << error->message;
}

INSTANTIATE_TEST_SUITE_P(
    SoftAgainstHard, ConfigContradiction,
    ::testing::Values(
        Contradiction{"HighWaterAboveSystemCap",
                      [](Config& c) { c.limits.system.connections_total = 300; }, "high_water",
                      "limits.system.connections_total (300)"},
        Contradiction{"SystemInboundAboveTotal",
                      [](Config& c) {
                        c.limits.system.connections_total = 500;
                        c.limits.system.connections_inbound = 600;
                      },
                      "limits.system.connections_inbound", "limits.system.connections_total"},
        Contradiction{"SystemOutboundAboveTotal",
                      [](Config& c) {
                        c.limits.system.connections_total = 500;
                        c.limits.system.connections_outbound = 501;
                      },
                      "limits.system.connections_outbound", "(500)"},
        Contradiction{"SystemStreamsInboundAboveTotal",
                      [](Config& c) {
                        c.limits.system.streams_total = 10;
                        c.limits.system.streams_inbound = 11;
                      },
                      "limits.system.streams_inbound", "limits.system.streams_total"},
        Contradiction{"PeerStreamsOutboundAboveTotal",
                      [](Config& c) {
                        c.limits.peer.streams_total = 10;
                        c.limits.peer.streams_outbound = 11;
                      },
                      "limits.peer.streams_outbound", "limits.peer.streams_total"},
        Contradiction{"PeerConnectionsAboveSystem",
                      [](Config& c) {
                        c.limits.system.connections_total = 500;
                        c.limits.peer.connections_total = 501;
                      },
                      "limits.peer.connections_total", "limits.system.connections_total"},
        Contradiction{"PeerPendingAboveSystem",
                      [](Config& c) {
                        c.limits.system.pending_inbound = 5;
                        c.limits.peer.pending_inbound = 6;
                      },
                      "limits.peer.pending_inbound", "limits.system.pending_inbound"},
        Contradiction{"PeerMemoryAboveSystem",
                      [](Config& c) {
                        c.limits.system.memory_bytes = 1000;
                        c.limits.peer.memory_bytes = 1001;
                      },
                      "limits.peer.memory_bytes", "limits.system.memory_bytes (1000)"},
        Contradiction{"AddressCapAboveSubnetCapV4",
                      [](Config& c) { c.limits.subnets.ipv4_32 = 65; }, "limits.subnets.ipv4_32",
                      "limits.subnets.ipv4_24 (64)"},
        Contradiction{"AddressCapAboveSubnetCapV6",
                      [](Config& c) { c.limits.subnets.ipv6_56 = 65; }, "limits.subnets.ipv6_56",
                      "limits.subnets.ipv6_48 (64)"},
        Contradiction{"MalformedOverride",
                      [](Config& c) {
                        c.limits.subnets.overrides.push_back({"10.0.0.0/33", 5});
                      },
                      "limits.subnets.overrides[0].subnet", "10.0.0.0/33"},
        Contradiction{"RateThatCanNeverAdmit",
                      [](Config& c) {
                        c.limits.inbound_rate.ipv4_24 = {10, 0.5};
                      },
                      "limits.inbound_rate.ipv4_24", "burst"},
        Contradiction{"NegativeRate",
                      [](Config& c) {
                        c.limits.outbound_dials = {-1, 5};
                      },
                      "limits.outbound_dials", "negative"},
        Contradiction{"TooFewRateBuckets", [](Config& c) { c.limits.inbound_rate.max_buckets = 1; },
                      "limits.inbound_rate.max_buckets", "at least 2"},
        Contradiction{"RepeatedOverride",
                      [](Config& c) {
                        c.limits.subnets.overrides.push_back({"10.0.0.0/8", 5});
                        c.limits.subnets.overrides.push_back({"10.0.0.0/8", 9});
                      },
                      "limits.subnets.overrides[1].subnet", "10.0.0.0/8"},
        Contradiction{
            "InfiniteRate",
            [](Config& c) {
              c.limits.inbound_rate.ipv6_48 = {std::numeric_limits<double>::infinity(), 5};
            },
            "limits.inbound_rate.ipv6_48", "limits.inbound_rate.ipv6_48"}),
    [](const ::testing::TestParamInfo<Contradiction>& param) { return param.param.name; });

TEST(ConfigValidate, UnlimitedPeerScopeUnderALimitedSystemIsValid) {
  Config config;
  config.limits.system.connections_total = 1000;
  config.limits.system.memory_bytes = 1 << 20;
  EXPECT_FALSE(config.validate().has_value());
}

TEST(ConfigValidate, HighWaterAtTheSystemCapIsValid) {
  Config config;
  config.limits.system.connections_total = config.high_water;
  EXPECT_FALSE(config.validate().has_value());
}

TEST(ConfigDescribe, NamesTheLimitsInForce) {
  Config config;
  config.limits.system.connections_inbound = 77;
  const std::string text = config.describe();
  EXPECT_NE(text.find("low_water=100"), std::string::npos) << text;
  EXPECT_NE(text.find("system.connections=77/unlimited/unlimited"), std::string::npos) << text;
}

}  // namespace
}  // namespace dep2p::connmgr
