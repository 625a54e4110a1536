// The eclipse simulation of issue 22 (examples/eclipse_sim): 1000 nodes, 10% of them
// attackers in two /16s dialing ten times as often as honest nodes and keeping a stream on
// every connection, 30 simulated minutes with 10% churn a minute; honest nodes keep
// dialing for 24 outbound connections. With the diversity rule no honest node is eclipsed,
// the honest overlay stays connected, and the attacker share after a trim stays near the
// floor: the share the best possible order would have left in the same pool. With the
// rule's grace limit, almost no trim leaves more than 10% where the floor was below it.
// The default order and go-libp2p's are run too and their figures recorded
// (RecordProperty), not judged. Then: the simulation is the same for the same seed, and
// its chart is well-formed SVG with a line per policy.
//
// The share after every trim is not bounded by 10% by any trim order: a trim closes only
// what its candidates hold above low water, so a node with fewer than 36 honest peers keeps
// attackers in the rest whatever the order (the floor is above 10% at about a fifth of the
// trims, seed 1). Admission bounds it: with each network group capped at two connections
// (DiversityConfig::max_per_group), no trim leaves more than 10%.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "eclipse_sim.hpp"
#include "share_chart.hpp"

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

std::string percent(double share) {
  char out[32];
  std::snprintf(out, sizeof out, "%.2f%%", share * 100.0);
  return out;
}

void record(const std::string& prefix, const eclipse_sim::SimResult& r) {
  ::testing::Test::RecordProperty(prefix + "_trims", std::to_string(r.trims));
  ::testing::Test::RecordProperty(prefix + "_max_share", percent(r.max_share));
  ::testing::Test::RecordProperty(prefix + "_mean_share", percent(r.mean_share));
  ::testing::Test::RecordProperty(prefix + "_max_share_out_of_grace",
                                  percent(r.max_share_out_of_grace));
  ::testing::Test::RecordProperty(prefix + "_trims_above_10_percent",
                                  std::to_string(r.trims_above_10_percent));
  ::testing::Test::RecordProperty(prefix + "_max_floor_share", percent(r.max_floor_share));
  ::testing::Test::RecordProperty(prefix + "_mean_floor_share", percent(r.mean_floor_share));
  ::testing::Test::RecordProperty(prefix + "_trims_floor_above_10_percent",
                                  std::to_string(r.trims_floor_above_10_percent));
  ::testing::Test::RecordProperty(prefix + "_max_kept_over_honest",
                                  std::to_string(r.max_kept_over_honest));
  ::testing::Test::RecordProperty(prefix + "_eclipsed_nodes", std::to_string(r.eclipsed_nodes));
  ::testing::Test::RecordProperty(prefix + "_always_connected", r.always_connected ? "yes" : "no");
  ::testing::Test::RecordProperty(prefix + "_wall_seconds", std::to_string(r.wall_seconds));
  std::printf(
      "[ %-9s ] trims %llu, max share %s, mean share %s (out of grace: max %s, mean %s), trims "
      "above 10%% %llu; the best order's: max %s, mean %s, above 10%% %llu; attackers kept over "
      "honest peers at most %zu; eclipsed %zu, always connected %s (%llu checks, at most %zu "
      "components), %.2f s\n",
      prefix.c_str(), static_cast<unsigned long long>(r.trims), percent(r.max_share).c_str(),
      percent(r.mean_share).c_str(), percent(r.max_share_out_of_grace).c_str(),
      percent(r.mean_share_out_of_grace).c_str(),
      static_cast<unsigned long long>(r.trims_above_10_percent), percent(r.max_floor_share).c_str(),
      percent(r.mean_floor_share).c_str(),
      static_cast<unsigned long long>(r.trims_floor_above_10_percent), r.max_kept_over_honest,
      r.eclipsed_nodes, r.always_connected ? "yes" : "no",
      static_cast<unsigned long long>(r.connectivity_checks), r.max_components, r.wall_seconds);
}

eclipse_sim::SimOptions full_run(eclipse_sim::Policy policy) {
  eclipse_sim::SimOptions options;  // 1000 nodes, 10% attackers, 30 minutes, seed 1
  options.policy = policy;
  return options;
}

// The simulation itself worked: nodes filled up, trimmed, churned and were checked.
// `min_trims`: fewer under the group cap, which keeps most attackers out of the pools.
void expect_sane(const eclipse_sim::SimResult& r, std::uint64_t min_trims = 1000) {
  EXPECT_EQ(r.honest_nodes, 900U);
  EXPECT_EQ(r.attacker_nodes, 100U);
  EXPECT_GT(r.trims, min_trims);
  EXPECT_GT(r.attacker_dials, 10'000U);
  EXPECT_GT(r.leaves, 2000U);
  EXPECT_GT(r.joins, 2000U);
  EXPECT_EQ(r.add_refusals, 0U);
  EXPECT_GE(r.eclipse_checks, 170U);
  EXPECT_GE(r.connectivity_checks, 29U);
  EXPECT_GT(r.final_mean_connections, 30.0);
  if (!kSanitized) {
    EXPECT_LT(r.wall_seconds, 60.0);
  }
}

// How far the rule's shares stay from the floor (the best any order could have left in the
// same pools), and how many trims the rule itself takes above 10%: those whose share is
// above 10% while the floor was not (share >= floor at every trim, so this is a difference
// of counts).
void expect_near_the_floor(const eclipse_sim::SimResult& r, double mean_margin) {
  EXPECT_EQ(r.eclipsed_nodes, 0U);
  EXPECT_TRUE(r.always_connected) << "up to " << r.max_components << " components";
  EXPECT_LE(r.mean_share, r.mean_floor_share + mean_margin);
  EXPECT_LE(r.max_share, r.max_floor_share + 0.05);
}

TEST(EclipseSim, DiversityKeepsTheShareNearTheFloorAndNoHonestNodeIsEclipsed) {
  const auto r = eclipse_sim::run_simulation(full_run(eclipse_sim::Policy::diversity));
  record("diversity", r);
  expect_sane(r);
  // Without the grace limit, attackers' newest connections are out of every trim's reach;
  // they are what separates the rule's mean from the floor's.
  expect_near_the_floor(r, 0.04);
}

TEST(EclipseSim, WithTheGraceLimitTheRuleItselfAlmostNeverLeavesMoreThanTenPercent) {
  const auto r = eclipse_sim::run_simulation(full_run(eclipse_sim::Policy::diversity_grace));
  record("diversity-grace", r);
  expect_sane(r);
  expect_near_the_floor(r, 0.04);
  const std::uint64_t own = r.trims_above_10_percent - r.trims_floor_above_10_percent;
  EXPECT_LE(own, r.trims / 100) << own << " of " << r.trims << " trims";
}

// With admission capping each network group at two connections, the two attacker groups
// hold at most four of the at least 40 (low water) connections a trim leaves: at most 10%
// after every trim, at the cost of the honest connections the cap refuses (two honest
// nodes of one /16 at most per node), which stays small enough for the nodes to fill up.
TEST(EclipseSim, WithTheGroupCapAttackersHoldAtMostTenPercentAfterEveryTrim) {
  const auto r = eclipse_sim::run_simulation(full_run(eclipse_sim::Policy::diversity_capped));
  record("diversity-capped", r);
  ::testing::Test::RecordProperty("diversity-capped_admission_refusals_honest",
                                  std::to_string(r.admission_refusals_honest));
  ::testing::Test::RecordProperty("diversity-capped_admission_refusals_attacker",
                                  std::to_string(r.admission_refusals_attacker));
  std::printf("[ %-9s ] refused by admission: %llu between honest nodes, %llu with attackers\n",
              "capped", static_cast<unsigned long long>(r.admission_refusals_honest),
              static_cast<unsigned long long>(r.admission_refusals_attacker));
  expect_sane(r, 300);
  EXPECT_EQ(r.eclipsed_nodes, 0U);
  EXPECT_TRUE(r.always_connected) << "up to " << r.max_components << " components";
  EXPECT_EQ(r.trims_above_10_percent, 0U);
  EXPECT_LE(r.max_share, 0.10 + 1e-12);
  // The cap, not luck, kept them out: attackers were refused often.
  EXPECT_GT(r.admission_refusals_attacker, 10'000U);
}

// The reference orders only run where the figures are meant to be read (an optimised
// build); under the sanitizers they would add minutes and judge nothing.
TEST(EclipseSim, DefaultOrderIsRecorded) {
  if (kSanitized) GTEST_SKIP() << "figures recorded by the optimised build";
  const auto r = eclipse_sim::run_simulation(full_run(eclipse_sim::Policy::default_order));
  record("default", r);
  expect_sane(r);
}

TEST(EclipseSim, GoLibp2pOrderIsRecorded) {
  if (kSanitized) GTEST_SKIP() << "figures recorded by the optimised build";
  const auto r = eclipse_sim::run_simulation(full_run(eclipse_sim::Policy::go));
  record("go", r);
  expect_sane(r);
}

void expect_same(const eclipse_sim::SimResult& a, const eclipse_sim::SimResult& b) {
  EXPECT_EQ(a.trims, b.trims);
  EXPECT_EQ(a.max_share, b.max_share);
  EXPECT_EQ(a.mean_share, b.mean_share);
  EXPECT_EQ(a.max_share_out_of_grace, b.max_share_out_of_grace);
  EXPECT_EQ(a.mean_floor_share, b.mean_floor_share);
  EXPECT_EQ(a.max_kept_over_honest, b.max_kept_over_honest);
  EXPECT_EQ(a.eclipsed_nodes, b.eclipsed_nodes);
  EXPECT_EQ(a.always_connected, b.always_connected);
  EXPECT_EQ(a.max_components, b.max_components);
  EXPECT_EQ(a.connections_opened, b.connections_opened);
  EXPECT_EQ(a.honest_dials, b.honest_dials);
  EXPECT_EQ(a.honest_dials_failed, b.honest_dials_failed);
  EXPECT_EQ(a.attacker_dials, b.attacker_dials);
  EXPECT_EQ(a.pings_answered, b.pings_answered);
  EXPECT_EQ(a.leaves, b.leaves);
  EXPECT_EQ(a.joins, b.joins);
  EXPECT_EQ(a.final_mean_connections, b.final_mean_connections);
  EXPECT_EQ(a.final_attacker_share, b.final_attacker_share);
  EXPECT_EQ(a.admission_refusals_honest, b.admission_refusals_honest);
  EXPECT_EQ(a.admission_refusals_attacker, b.admission_refusals_attacker);
  ASSERT_EQ(a.minutes.size(), b.minutes.size());
  for (std::size_t m = 0; m < a.minutes.size(); ++m) {
    EXPECT_EQ(a.minutes[m].trims, b.minutes[m].trims) << "minute " << m;
    EXPECT_EQ(a.minutes[m].share_sum, b.minutes[m].share_sum) << "minute " << m;
    EXPECT_EQ(a.minutes[m].components, b.minutes[m].components) << "minute " << m;
  }
}

TEST(EclipseSim, SameSeedGivesTheSameRun) {
  for (const auto policy : {eclipse_sim::Policy::diversity, eclipse_sim::Policy::go,
                            eclipse_sim::Policy::diversity_capped}) {
    SCOPED_TRACE(std::string(eclipse_sim::to_string(policy)));
    // Small and quick, with watermarks low enough that nodes trim within the run.
    eclipse_sim::SimOptions options;
    options.nodes = 120;
    options.minutes = 6;
    options.low_water = 16;
    options.high_water = 24;
    options.seed = 7;
    options.policy = policy;
    const auto first = eclipse_sim::run_simulation(options);
    const auto second = eclipse_sim::run_simulation(options);
    EXPECT_GT(first.connections_opened, 0U);
    EXPECT_GT(first.trims, 0U);
    expect_same(first, second);
    options.seed = 8;
    const auto other = eclipse_sim::run_simulation(options);
    EXPECT_NE(first.connections_opened, other.connections_opened);
  }
}

// A small well-formedness check: every tag closed in order, attributes quoted, no stray
// '<' or '&' in text. Returns an empty string when well-formed, else what is wrong.
std::string xml_problem(const std::string& xml) {
  std::vector<std::string> open;
  std::size_t i = 0;
  bool root_seen = false;
  while (i < xml.size()) {
    if (xml[i] == '&') {
      const auto end = xml.find(';', i);
      if (end == std::string::npos || end - i > 6) return "bare '&' at " + std::to_string(i);
      i = end + 1;
      continue;
    }
    if (xml[i] != '<') {
      ++i;
      continue;
    }
    const auto end = xml.find('>', i);
    if (end == std::string::npos) return "unterminated tag at " + std::to_string(i);
    std::string tag = xml.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag.starts_with("?")) {
      if (!tag.ends_with("?")) return "bad declaration";
      continue;
    }
    if (tag.find('<') != std::string::npos) return "'<' inside a tag: " + tag;
    // Attribute values quoted: an even number of quotes.
    std::size_t quotes = 0;
    for (char c : tag) quotes += c == '"' ? 1 : 0;
    if (quotes % 2 != 0) return "unbalanced quotes in <" + tag + ">";
    if (tag.starts_with("/")) {
      const std::string name = tag.substr(1);
      if (open.empty() || open.back() != name) return "unexpected </" + name + ">";
      open.pop_back();
      continue;
    }
    const bool self_closing = tag.ends_with("/");
    const std::string name = tag.substr(0, tag.find_first_of(" \n/"));
    if (name.empty()) return "empty tag name";
    if (open.empty()) {
      if (root_seen) return "a second root element <" + name + ">";
      root_seen = true;
    }
    if (!self_closing) open.push_back(name);
  }
  if (!open.empty()) return "<" + open.back() + "> not closed";
  if (!root_seen) return "no root element";
  return {};
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(EclipseSimChart, WellFormedSvgWithALinePerPolicy) {
  eclipse_sim::chart::ShareChart chart;
  chart.title = "shares <after> trims & more";
  chart.series.push_back(
      {"default", {0.30, 0.42, std::nullopt, 0.5}, {0.1, 0.2, std::nullopt, 0.3}});
  chart.series.push_back({"diversity", {0.05, 0.10, 0.08, 0.09}, {0.02, 0.03, 0.03, 0.04}});
  chart.series.push_back({"go", {std::nullopt, 0.6, 0.7, 0.65}, {std::nullopt, 0.3, 0.3, 0.3}});
  const std::string svg = eclipse_sim::chart::render_share_svg(chart);
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_TRUE(svg.starts_with("<?xml")) << svg.substr(0, 40);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_EQ(count(svg, "<polyline"), 6U);
  EXPECT_EQ(count(svg, "class=\"share-max\""), 3U);
  EXPECT_EQ(count(svg, "class=\"share-mean\""), 3U);
  for (const char* name : {"default", "diversity", "go"}) {
    EXPECT_NE(svg.find("data-policy=\"" + std::string(name) + "\""), std::string::npos) << name;
    EXPECT_NE(svg.find(">" + std::string(name) + "</text>"), std::string::npos) << name;
  }
  // The threshold line and its label, the axes' labels, the escaped title.
  EXPECT_EQ(count(svg, "class=\"threshold\""), 1U);
  EXPECT_NE(svg.find(">10%</text>"), std::string::npos);
  EXPECT_NE(svg.find("simulated time (minutes)"), std::string::npos);
  EXPECT_NE(svg.find("attacker share"), std::string::npos);
  EXPECT_NE(svg.find("shares &lt;after&gt; trims &amp; more"), std::string::npos);
  // A bucket without a trim has no point: the first policy's line has 3 points.
  const auto first = svg.find("class=\"share-max\"");
  const auto points = svg.find("points=\"", first);
  const auto end = svg.find('"', points + 8);
  EXPECT_EQ(count(svg.substr(points + 8, end - points - 8), ","), 3U);
  // The same bytes for the same data.
  EXPECT_EQ(svg, eclipse_sim::chart::render_share_svg(chart));
}

TEST(EclipseSimChart, EmptyChartIsStillWellFormed) {
  eclipse_sim::chart::ShareChart chart;
  const std::string svg = eclipse_sim::chart::render_share_svg(chart);
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_EQ(count(svg, "<polyline"), 0U);
}

TEST(EclipseSimPolicy, NamesRoundTrip) {
  for (const auto policy : {eclipse_sim::Policy::default_order, eclipse_sim::Policy::diversity,
                            eclipse_sim::Policy::diversity_grace, eclipse_sim::Policy::go,
                            eclipse_sim::Policy::diversity_capped}) {
    EXPECT_EQ(eclipse_sim::parse_policy(eclipse_sim::to_string(policy)), policy);
  }
  EXPECT_FALSE(eclipse_sim::parse_policy("all").has_value());
}

}  // namespace
