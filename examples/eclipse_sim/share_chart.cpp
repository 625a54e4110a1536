// The eclipse simulation's chart (see share_chart.hpp), written by hand in the style of
// examples/swarm/svg_chart.cpp: a fixed-size plot, ticks on both axes, the threshold line,
// one solid and one dashed polyline per policy, the legend under the plot.
#include "share_chart.hpp"

#include "svg_text.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace eclipse_sim::chart {
namespace {

constexpr double kWidth = 860;
constexpr double kLeft = 70;
constexpr double kRight = 60;
constexpr double kTop = 44;
constexpr double kPlotHeight = 320;
constexpr double kFont = 12;
constexpr double kLegendRow = 18;
constexpr double kCharWidth = 0.6;  // a glyph's width in em, estimated
constexpr const char* kThresholdColor = "#c0392b";
const char* const kColors[] = {"#1f4fa0", "#2a9d3a", "#e08000", "#8e44ad", "#16a085", "#7f8c8d"};

using svg::escape;
using svg::num;

using svg::line;
using svg::text;

// A share as a percentage label: "10%", "2.5%".
std::string percent(double share) {
  const double p = share * 100.0;
  char out[32];
  if (std::fabs(p - std::round(p)) < 1e-9) {
    std::snprintf(out, sizeof out, "%.0f%%", p);
  } else {
    std::snprintf(out, sizeof out, "%.1f%%", p);
  }
  return out;
}

// A round step giving about `wanted` ticks over [0, top].
double nice_step(double top, double wanted) {
  const double raw = top / wanted;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (raw <= m * magnitude) return m * magnitude;
  }
  return 10.0 * magnitude;
}

struct Scale {
  double left = 0, right = 0, top = 0, bottom = 0;
  double t_end = 1;  // minutes at `right`
  double v_top = 1;  // share at `top`
  double x(double t) const { return left + (right - left) * t / t_end; }
  double y(double v) const { return top + (bottom - top) * (1.0 - v / v_top); }
};

std::string polyline(const Scale& s, const std::vector<std::optional<double>>& values,
                     double bucket_minutes, const std::string& attributes) {
  std::string points;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!values[i]) continue;
    // A bucket's value at its middle.
    const double t = (static_cast<double>(i) + 0.5) * bucket_minutes;
    if (!points.empty()) points += ' ';
    points += num(s.x(t)) + "," + num(s.y(std::clamp(*values[i], 0.0, 1.0)));
  }
  return "<polyline " + attributes + " fill=\"none\" points=\"" + points + "\"/>\n";
}

}  // namespace

std::string render_share_svg(const ShareChart& chart) {
  const double bucket = chart.bucket_minutes > 0 ? chart.bucket_minutes : 1.0;
  std::size_t buckets = 1;
  double v_max = std::max(chart.threshold, 0.0);
  for (const auto& series : chart.series) {
    buckets = std::max({buckets, series.max_share.size(), series.mean_share.size()});
    for (const auto& v : series.max_share) {
      if (v) v_max = std::max(v_max, std::clamp(*v, 0.0, 1.0));
    }
    for (const auto& v : series.mean_share) {
      if (v) v_max = std::max(v_max, std::clamp(*v, 0.0, 1.0));
    }
  }
  Scale s;
  s.left = kLeft;
  s.right = kWidth - kRight;
  s.top = kTop;
  s.bottom = kTop + kPlotHeight;
  s.t_end = static_cast<double>(buckets) * bucket;
  const double v_step = nice_step(std::max(v_max * 1.1, 0.05), 5);
  s.v_top = std::min(1.0, std::ceil(std::max(v_max * 1.1, 0.05) / v_step - 1e-9) * v_step);
  if (s.v_top < v_max) s.v_top = v_max;

  const std::size_t legend_rows = (chart.series.size() + 2) / 3 + 1;  // + the line styles
  const double height = s.bottom + 48 + static_cast<double>(legend_rows) * kLegendRow + 8;

  std::string svg;
  svg += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(kWidth) + "\" height=\"" +
         num(height) + "\" viewBox=\"0 0 " + num(kWidth) + " " + num(height) +
         "\" font-family=\"sans-serif\" font-size=\"" + num(kFont) + "\">\n";
  svg += "<rect x=\"0\" y=\"0\" width=\"" + num(kWidth) + "\" height=\"" + num(height) +
         "\" fill=\"white\"/>\n";
  svg += text(kWidth / 2, 22, chart.title, "text-anchor=\"middle\" font-size=\"15\"");

  // Grid, ticks and axis labels.
  for (double v = 0; v <= s.v_top + 1e-9; v += v_step) {
    svg += line(s.left, s.y(v), s.right, s.y(v), "stroke=\"#e4e4e4\"");
    svg += text(s.left - 6, s.y(v) + 4, percent(v), "text-anchor=\"end\"");
  }
  const double t_step = nice_step(s.t_end, 10);
  for (double t = 0; t <= s.t_end + 1e-9; t += t_step) {
    svg += line(s.x(t), s.bottom, s.x(t), s.bottom + 4, "stroke=\"#333\"");
    char label[32];
    std::snprintf(label, sizeof label, "%g", t);
    svg += text(s.x(t), s.bottom + 17, label, "text-anchor=\"middle\"");
  }
  svg += line(s.left, s.bottom, s.right, s.bottom, "stroke=\"#333\"");
  svg += line(s.left, s.top, s.left, s.bottom, "stroke=\"#333\"");
  svg += text((s.left + s.right) / 2, s.bottom + 34, "simulated time (minutes)",
              "text-anchor=\"middle\"");
  svg += text(
      16, (s.top + s.bottom) / 2, "attacker share of a node's connections after a trim",
      "text-anchor=\"middle\" transform=\"rotate(-90 16 " + num((s.top + s.bottom) / 2) + ")\"");

  // The threshold, on top of the grid, under the data.
  if (chart.threshold > 0) {
    svg += line(s.left, s.y(chart.threshold), s.right, s.y(chart.threshold),
                "class=\"threshold\" stroke=\"" + std::string(kThresholdColor) +
                    "\" stroke-width=\"1.2\" stroke-dasharray=\"6 4\"");
    svg += text(s.right + 4, s.y(chart.threshold) + 4, percent(chart.threshold),
                "fill=\"" + std::string(kThresholdColor) + "\"");
  }

  // The series: each policy's group holds its two lines.
  for (std::size_t i = 0; i < chart.series.size(); ++i) {
    const auto& series = chart.series[i];
    const std::string color = kColors[i % (sizeof kColors / sizeof kColors[0])];
    svg += "<g class=\"policy\" data-policy=\"" + escape(series.name) + "\">\n";
    svg += polyline(s, series.max_share, bucket,
                    "class=\"share-max\" stroke=\"" + color + "\" stroke-width=\"2\"");
    svg += polyline(s, series.mean_share, bucket,
                    "class=\"share-mean\" stroke=\"" + color +
                        "\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"");
    svg += "</g>\n";
  }

  // Legend: the policies, three a row, then what the line styles mean.
  const double legend_top = s.bottom + 52;
  for (std::size_t i = 0; i < chart.series.size(); ++i) {
    const std::string color = kColors[i % (sizeof kColors / sizeof kColors[0])];
    const double x = s.left + static_cast<double>(i % 3) * 240;
    const double y = legend_top + static_cast<double>(i / 3) * kLegendRow;
    svg += line(x, y - 4, x + 24, y - 4, "stroke=\"" + color + "\" stroke-width=\"2\"");
    svg += text(x + 30, y, chart.series[i].name);
  }
  const double y = legend_top + static_cast<double>(legend_rows - 1) * kLegendRow;
  svg += line(s.left, y - 4, s.left + 24, y - 4, "stroke=\"#555\" stroke-width=\"2\"");
  const std::string solid = "solid: the largest share after a trim in the minute";
  svg += text(s.left + 30, y, solid);
  const double x2 = s.left + 30 + static_cast<double>(solid.size()) * kFont * kCharWidth + 24;
  svg += line(x2, y - 4, x2 + 24, y - 4,
              "stroke=\"#555\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"");
  svg += text(x2 + 30, y, "dashed: the mean");
  svg += "</svg>\n";
  return svg;
}

}  // namespace eclipse_sim::chart
