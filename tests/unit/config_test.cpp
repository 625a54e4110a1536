// Unit tests for Config: defaults (DESIGN §4), presets and validate().
#include "dep2p/connmgr/config.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace dep2p::connmgr
