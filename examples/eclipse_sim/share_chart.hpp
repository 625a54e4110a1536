// share_chart: the eclipse simulation's chart as a function of plain data. The SVG is
// written by hand, self-contained (no scripts, fonts or links) and the same bytes for the
// same data.
//
//   eclipse_sim::chart::ShareChart c{.title = "Attacker share after trims"};
//   c.series.push_back({.name = "diversity", .max_share = {0.05, 0.1}, .mean_share = {0.02,
//   0.03}}); std::string svg = eclipse_sim::chart::render_share_svg(c);
//
// What it draws: for each policy, the largest attacker share seen right after a trim in
// each bucket of simulated time as a solid line (one <polyline class="share-max">), and the
// mean share as a dashed line of the same colour (<polyline class="share-mean">); buckets
// without a trim have no point. A dashed horizontal line marks the threshold (10%). Axes
// labelled (simulated minutes, attacker share in percent), a legend naming each policy.
//
// Thread safety: a pure function of its argument.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace eclipse_sim::chart {

struct Series {
  std::string name;
  // One entry per bucket, shares in [0, 1]; nullopt where the bucket saw no trim.
  std::vector<std::optional<double>> max_share;
  std::vector<std::optional<double>> mean_share;
};

struct ShareChart {
  std::string title;
  double bucket_minutes = 1;  // bucket i covers [i, i + 1) x bucket_minutes
  double threshold = 0.10;    // drawn as a horizontal line; <= 0: not drawn
  std::vector<Series> series;
};

std::string render_share_svg(const ShareChart& chart);

}  // namespace eclipse_sim::chart
