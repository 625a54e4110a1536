// Swarm::svg(): the connection count of every node over time, their median and maximum,
// the low and high watermarks and the scenarios' start times, as a plain SVG document
// written by hand (no dependency for one chart).
#include <algorithm>
#include <cstdio>
#include <string>

#include "swarm.hpp"

namespace swarm {
namespace {

std::string num(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", v);
  return text;
}

}  // namespace

std::string Swarm::svg() const {
  constexpr double kWidth = 960, kHeight = 440, kLeft = 50, kRight = 150, kTop = 40, kBottom = 50;
  const double plot_w = kWidth - kLeft - kRight;
  const double plot_h = kHeight - kTop - kBottom;
  const double t_end = samples_.empty() ? 1.0 : std::max(1.0, samples_.back().t);
  std::size_t y_max = config_.limits.system.connections_total;
  for (const auto& s : samples_) {
    for (std::size_t c : s.counts) y_max = std::max(y_max, c);
  }
  const double y_top = static_cast<double>(y_max + 1);
  auto x = [&](double t) { return kLeft + plot_w * t / t_end; };
  auto y = [&](double v) { return kTop + plot_h * (1.0 - v / y_top); };
  auto polyline = [&](auto value, const std::string& style) {
    std::string out = "<polyline fill=\"none\" " + style + " points=\"";
    for (const auto& s : samples_) out += num(x(s.t)) + "," + num(y(value(s))) + " ";
    return out + "\"/>\n";
  };
  auto hline = [&](double v, const std::string& color, const std::string& label) {
    return "<line x1=\"" + num(kLeft) + "\" x2=\"" + num(kLeft + plot_w) + "\" y1=\"" + num(y(v)) +
           "\" y2=\"" + num(y(v)) + "\" stroke=\"" + color +
           "\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n<text x=\"" +
           num(kLeft + plot_w + 6) + "\" y=\"" + num(y(v) + 4) + "\" fill=\"" + color + "\">" +
           label + "</text>\n";
  };

  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(kWidth) +
                    "\" height=\"" + num(kHeight) +
                    "\" font-family=\"sans-serif\" font-size=\"12\">\n"
                    "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"" +
                    num(kLeft) + "\" y=\"22\" font-size=\"15\">Connections per node, " +
                    std::to_string(nodes_.size()) + " nodes on loopback</text>\n";
  // Axes and ticks.
  svg += "<g stroke=\"#444\"><line x1=\"" + num(kLeft) + "\" y1=\"" + num(kTop) + "\" x2=\"" +
         num(kLeft) + "\" y2=\"" + num(kTop + plot_h) + "\"/><line x1=\"" + num(kLeft) +
         "\" y1=\"" + num(kTop + plot_h) + "\" x2=\"" + num(kLeft + plot_w) + "\" y2=\"" +
         num(kTop + plot_h) + "\"/></g>\n";
  for (std::size_t v = 0; v <= y_max; v += 2) {
    svg += "<text x=\"" + num(kLeft - 8) + "\" y=\"" + num(y(static_cast<double>(v)) + 4) +
           "\" text-anchor=\"end\">" + std::to_string(v) + "</text>\n";
  }
  const double step = t_end > 30 ? 5 : (t_end > 10 ? 2 : 1);
  for (double t = 0; t <= t_end; t += step) {
    svg += "<text x=\"" + num(x(t)) + "\" y=\"" + num(kTop + plot_h + 16) +
           "\" text-anchor=\"middle\">" + num(t) + "</text>\n";
  }
  svg += "<text x=\"" + num(kLeft + plot_w / 2) + "\" y=\"" + num(kHeight - 10) +
         "\" text-anchor=\"middle\">seconds</text>\n";
  // Scenario starts.
  double last_x = -100, label_y = kTop + 12;
  for (const auto& m : markers_) {
    label_y = x(m.t) - last_x < 50 ? label_y + 14 : kTop + 12;  // close starts: stagger
    last_x = x(m.t);
    svg += "<line x1=\"" + num(x(m.t)) + "\" x2=\"" + num(x(m.t)) + "\" y1=\"" + num(kTop) +
           "\" y2=\"" + num(kTop + plot_h) +
           "\" stroke=\"#999\" stroke-dasharray=\"2 3\"/>\n<text x=\"" + num(x(m.t) + 3) +
           "\" y=\"" + num(label_y) + "\" fill=\"#666\">" + m.label + "</text>\n";
  }
  // Every node, then the median and the maximum across nodes.
  for (std::size_t n = 0; n < nodes_.size(); ++n) {
    svg += polyline([n](const Sample& s) { return static_cast<double>(s.counts[n]); },
                    "stroke=\"#bbb\" stroke-width=\"0.7\"");
  }
  auto nth = [](const Sample& s, bool max) {
    std::vector<std::size_t> sorted = s.counts;
    std::sort(sorted.begin(), sorted.end());
    return static_cast<double>(max ? sorted.back() : sorted[sorted.size() / 2]);
  };
  svg += polyline([&](const Sample& s) { return nth(s, false); },
                  "stroke=\"#1f6fd0\" stroke-width=\"2\"");
  svg += polyline([&](const Sample& s) { return nth(s, true); },
                  "stroke=\"#d03030\" stroke-width=\"2\"");
  svg += hline(static_cast<double>(config_.high_water), "#e08000",
               "high water " + std::to_string(config_.high_water));
  svg += hline(static_cast<double>(config_.low_water), "#2a9d3a",
               "low water " + std::to_string(config_.low_water));
  svg += hline(static_cast<double>(config_.limits.system.connections_total), "#888",
               "hard cap " + std::to_string(config_.limits.system.connections_total));
  // Legend.
  const double lx = kLeft + plot_w + 6;
  const std::pair<const char*, const char*> legend[] = {
      {"#d03030", "max"}, {"#1f6fd0", "median"}, {"#bbb", "each node"}};
  double ly = kTop + plot_h - 50;
  for (const auto& [color, label] : legend) {
    svg += "<line x1=\"" + num(lx) + "\" x2=\"" + num(lx + 18) + "\" y1=\"" + num(ly) + "\" y2=\"" +
           num(ly) + "\" stroke=\"" + color + "\" stroke-width=\"2\"/><text x=\"" + num(lx + 24) +
           "\" y=\"" + num(ly + 4) + "\">" + label + "</text>\n";
    ly += 18;
  }
  return svg + "</svg>\n";
}

}  // namespace swarm
