// The swarm demo's chart (see svg_chart.hpp), written by hand: one chart does not need a
// plotting library, and hand-written SVG stays deterministic and self-contained.
//
// Layout, top to bottom: the title; the scenario labels in as many rows as they need; the
// connection plot; the refusal panel; the shared time axis; the legend, wrapped into rows.
// Labels of the watermarks sit in the right margin, pushed apart when they would touch.
#include "svg_chart.hpp"

#include "svg_text.hpp"

#include <algorithm>
#include <cstdio>
#include <numeric>

namespace swarm::chart {
namespace {

constexpr double kWidth = 960;
constexpr double kLeft = 64;    // the y axes' ticks and labels
constexpr double kRight = 130;  // the watermarks' labels
constexpr double kFont = 12;    // the document's font size
constexpr double kTitleY = 22;
constexpr double kRowHeight = 15;  // a row of scenario labels
constexpr double kPlotHeight = 280;
constexpr double kPanelGap = 22;  // between the plot and the refusal panel (its title)
constexpr double kPanelHeight = 70;
constexpr double kLegendRow = 18;

const char* const kHighlightColors[] = {"#8e44ad", "#e67e22", "#16a085",
                                        "#c2185b", "#7a9a01", "#7f8c8d"};
const char* const kRefusalColors[] = {"#e74c3c", "#f39c12", "#9b59b6", "#607d8b"};
constexpr const char* kMaxColor = "#d03030";
constexpr const char* kMedianColor = "#1f4fa0";
constexpr const char* kTrimColor = "#b35900";
constexpr const char* kLowColor = "#2a9d3a";
constexpr const char* kHighColor = "#e08000";

using svg::escape;
using svg::num;

double text_width(const std::string& text, double font = kFont) {
  return static_cast<double>(text.size()) * font * kCharWidth;
}

using svg::line;
using svg::text;

const char* pick(const char* const* colors, std::size_t size, std::size_t i) {
  return colors[i % size];
}

struct Layout {
  Scale scale;
  std::vector<std::size_t> phase_rows;
  double panel_top = 0, panel_bottom = 0;
};

double end_time(const Chart& chart) {
  double t_end = 1.0;
  if (!chart.samples.empty()) t_end = std::max(t_end, chart.samples.back().t);
  for (const auto& p : chart.phases) t_end = std::max(t_end, p.t);
  for (const auto& trim : chart.trims) t_end = std::max(t_end, trim.t);
  return t_end;
}

Layout layout(const Chart& chart) {
  Layout out;
  Scale& s = out.scale;
  s.left = kLeft;
  s.right = kWidth - kRight;
  s.t_end = end_time(chart);
  std::vector<std::pair<double, double>> spans;
  for (const auto& p : chart.phases) {
    const double x = s.x(p.t) + 3;
    spans.emplace_back(x, x + text_width(p.label));
  }
  out.phase_rows = stagger(spans, 6);
  const std::size_t rows =
      out.phase_rows.empty() ? 1
                             : *std::max_element(out.phase_rows.begin(), out.phase_rows.end()) + 1;
  s.top = kTitleY + 16 + static_cast<double>(rows) * kRowHeight;
  s.bottom = s.top + kPlotHeight;
  std::size_t v_max = std::max({chart.hard_cap, chart.high_water, std::size_t{1}});
  for (const auto& sample : chart.samples) {
    for (std::size_t c : sample.counts) v_max = std::max(v_max, c);
  }
  for (const auto& trim : chart.trims) v_max = std::max(v_max, trim.before);
  s.v_top = static_cast<double>(v_max + 1);
  out.panel_top = s.bottom + kPanelGap;
  out.panel_bottom = out.panel_top + kPanelHeight;
  return out;
}

// A step line through (t, value(sample)): horizontal to the next sample's time, then
// vertical to its value. Only M, H and V commands.
template <typename Value>
std::string step_path(const Chart& chart, const Scale& s, Value value, const std::string& style) {
  if (chart.samples.empty()) return {};
  std::string d;
  double last_y = 0;
  for (std::size_t i = 0; i < chart.samples.size(); ++i) {
    const double x = s.x(chart.samples[i].t);
    const double y = s.y(value(chart.samples[i]));
    if (i == 0) {
      d = "M" + num(x) + " " + num(y);
    } else {
      d += " H" + num(x);
      if (num(y) != num(last_y)) d += " V" + num(y);
    }
    last_y = y;
  }
  return "<path class=\"series\" fill=\"none\" " + style + " d=\"" + d + "\"/>\n";
}

double median(const Sample& s) {
  std::vector<std::size_t> sorted = s.counts;
  if (sorted.empty()) return 0;
  std::sort(sorted.begin(), sorted.end());
  return static_cast<double>(sorted[sorted.size() / 2]);
}

double maximum(const Sample& s) {
  return s.counts.empty()
             ? 0
             : static_cast<double>(*std::max_element(s.counts.begin(), s.counts.end()));
}

std::size_t refused(const Sample& s) {
  return std::accumulate(s.refusals.begin(), s.refusals.end(), std::size_t{0});
}

// A legend wrapped into rows from `top`: each entry is a swatch (SVG drawn in a 20 x 12
// box whose top-left corner is given) and a label.
class Legend {
 public:
  Legend(double left, double right, double top) : left_(left), right_(right), x_(left), y_(top) {}
  template <typename Swatch>
  void add(const std::string& label, Swatch swatch) {
    const double width = 26 + text_width(label) + 18;
    if (x_ > left_ && x_ + width > right_) {
      x_ = left_;
      y_ += kLegendRow;
    }
    svg_ += swatch(x_, y_);
    svg_ += text(x_ + 26, y_ + 10, label);
    x_ += width;
  }
  double bottom() const { return y_ + kLegendRow; }
  const std::string& svg() const { return svg_; }

 private:
  double left_, right_, x_, y_;
  std::string svg_;
};

std::string trim_marker(double x, double y_before, double y_after) {
  return line(x, y_before, x, y_after,
              "stroke=\"" + std::string(kTrimColor) + "\" stroke-width=\"1.2\"") +
         "<path fill=\"" + kTrimColor + "\" d=\"M" + num(x - 4) + " " + num(y_before - 7) + " H" +
         num(x + 4) + " L" + num(x) + " " + num(y_before) + " Z\"/>";
}

}  // namespace

Scale connection_scale(const Chart& chart) { return layout(chart).scale; }

std::vector<std::size_t> stagger(const std::vector<std::pair<double, double>>& spans, double gap) {
  std::vector<std::size_t> rows;
  std::vector<double> row_end;  // where the last label of each row ends
  for (const auto& [left, right] : spans) {
    std::size_t row = 0;
    while (row < row_end.size() && row_end[row] + gap > left) ++row;
    if (row == row_end.size()) row_end.push_back(0);
    row_end[row] = right;
    rows.push_back(row);
  }
  return rows;
}

std::string render_svg(const Chart& chart) {
  const Layout l = layout(chart);
  const Scale& s = l.scale;
  std::string body;

  body += text(s.left, kTitleY, chart.title, "font-size=\"15\"");

  // The target band and the axes, under the data.
  body +=
      "<rect x=\"" + num(s.left) + "\" y=\"" + num(s.y(static_cast<double>(chart.high_water))) +
      "\" width=\"" + num(s.right - s.left) + "\" height=\"" +
      num(s.y(static_cast<double>(chart.low_water)) - s.y(static_cast<double>(chart.high_water))) +
      "\" fill=\"#eaf6ea\"/>\n";
  body += "<g stroke=\"#444\">" + line(s.left, s.top, s.left, s.bottom, "") +
          line(s.left, s.bottom, s.right, s.bottom, "") +
          line(s.left, l.panel_top, s.left, l.panel_bottom, "") +
          line(s.left, l.panel_bottom, s.right, l.panel_bottom, "") + "</g>\n";
  const auto v_max = static_cast<std::size_t>(s.v_top) - 1;
  const std::size_t v_step = v_max > 40 ? 10 : (v_max > 16 ? 4 : 2);
  for (std::size_t v = 0; v <= v_max; v += v_step) {
    const double y = s.y(static_cast<double>(v));
    body += line(s.left - 4, y, s.left, y, "stroke=\"#444\"");
    body += text(s.left - 7, y + 4, std::to_string(v), "text-anchor=\"end\"");
  }
  const double axis_x = 22;
  const double plot_mid = (s.top + s.bottom) / 2;
  body += text(
      axis_x, plot_mid, "connections per node",
      "text-anchor=\"middle\" transform=\"rotate(-90 " + num(axis_x) + " " + num(plot_mid) + ")\"");

  // Scenario starts: a dotted line through both panels, the label in its row above.
  for (std::size_t i = 0; i < chart.phases.size(); ++i) {
    const double x = s.x(chart.phases[i].t);
    const double label_y = kTitleY + 16 + static_cast<double>(l.phase_rows[i]) * kRowHeight;
    body += line(x, label_y + 3, x, l.panel_bottom, "stroke=\"#999\" stroke-dasharray=\"2 3\"");
    body += text(x + 3, label_y, chart.phases[i].label, "class=\"phase\" fill=\"#555\"");
  }

  // Every node in grey, the highlighted ones in colour, then the median and the maximum.
  const std::size_t nodes = chart.samples.empty() ? 0 : chart.samples.front().counts.size();
  auto count_of = [](std::size_t n) {
    return [n](const Sample& sample) {
      return n < sample.counts.size() ? static_cast<double>(sample.counts[n]) : 0.0;
    };
  };
  for (std::size_t n = 0; n < nodes; ++n) {
    body += step_path(chart, s, count_of(n), "stroke=\"#c8c8c8\" stroke-width=\"0.7\"");
  }
  for (std::size_t h = 0; h < chart.highlights.size(); ++h) {
    body += step_path(
        chart, s, count_of(chart.highlights[h].node),
        "stroke=\"" + std::string(pick(kHighlightColors, 6, h)) + "\" stroke-width=\"1.6\"");
  }
  body += step_path(chart, s, median,
                    "stroke=\"" + std::string(kMedianColor) + "\" stroke-width=\"2\"");
  body +=
      step_path(chart, s, maximum, "stroke=\"" + std::string(kMaxColor) + "\" stroke-width=\"2\"");

  // Trims: from the count before down to the count after.
  for (const auto& trim : chart.trims) {
    body += "<g class=\"trim\"><title>node " + std::to_string(trim.node) + " trimmed from " +
            std::to_string(trim.before) + " to " + std::to_string(trim.after) + " connections at " +
            num(trim.t) + " s</title>" +
            trim_marker(s.x(trim.t), s.y(static_cast<double>(trim.before)),
                        s.y(static_cast<double>(trim.after))) +
            "</g>\n";
  }

  // The watermarks and the hard cap on top of the data, labelled in the right margin;
  // labels closer than a line apart are pushed down.
  struct Mark {
    std::size_t value;
    const char* color;
    std::string label;
  };
  std::vector<Mark> marks = {
      {chart.hard_cap, "#888", "hard cap " + std::to_string(chart.hard_cap)},
      {chart.high_water, kHighColor, "high water " + std::to_string(chart.high_water)},
      {chart.low_water, kLowColor, "low water " + std::to_string(chart.low_water)}};
  std::stable_sort(marks.begin(), marks.end(),
                   [](const Mark& a, const Mark& b) { return a.value > b.value; });
  double last_label_y = -1e9;
  for (const auto& m : marks) {
    const double y = s.y(static_cast<double>(m.value));
    body += line(
        s.left, y, s.right, y,
        "stroke=\"" + std::string(m.color) + "\" stroke-width=\"1.8\" stroke-dasharray=\"7 4\"");
    const double label_y = std::max(y + 4, last_label_y + kFont + 3);
    body += text(s.right + 6, label_y, m.label, "fill=\"" + std::string(m.color) + "\"");
    last_label_y = label_y;
  }

  // Refusals per sample, stacked by kind, each bar over its sample's interval.
  std::size_t r_max = 1;
  for (const auto& sample : chart.samples) r_max = std::max(r_max, refused(sample));
  const double r_scale = (l.panel_bottom - l.panel_top) / static_cast<double>(r_max);
  for (std::size_t i = 0; i < chart.samples.size(); ++i) {
    const Sample& sample = chart.samples[i];
    const double x0 = s.x(i == 0 ? 0.0 : chart.samples[i - 1].t);
    const double width = std::max(1.0, s.x(sample.t) - x0);
    double y = l.panel_bottom;
    for (std::size_t k = 0; k < sample.refusals.size(); ++k) {
      if (sample.refusals[k] == 0) continue;
      const double h = r_scale * static_cast<double>(sample.refusals[k]);
      y -= h;
      const std::string kind = k < chart.refusal_kinds.size() ? chart.refusal_kinds[k] : "other";
      body += "<rect class=\"refusal\" x=\"" + num(x0) + "\" y=\"" + num(y) + "\" width=\"" +
              num(width) + "\" height=\"" + num(h) + "\" fill=\"" + pick(kRefusalColors, 4, k) +
              "\"><title>" + std::to_string(sample.refusals[k]) + " refused (" + escape(kind) +
              ") by " + num(sample.t) + " s</title></rect>\n";
    }
  }
  body += text(s.left, l.panel_top - 6, "admissions refused per sample, by reason",
               "font-size=\"11\" fill=\"#444\"");
  for (const std::size_t v : {std::size_t{0}, r_max}) {
    const double y = l.panel_bottom - r_scale * static_cast<double>(v);
    body += line(s.left - 4, y, s.left, y, "stroke=\"#444\"");
    body += text(s.left - 7, y + 4, std::to_string(v), "text-anchor=\"end\"");
  }
  const double panel_mid = (l.panel_top + l.panel_bottom) / 2;
  body += text(axis_x, panel_mid, "refused",
               "text-anchor=\"middle\" transform=\"rotate(-90 " + num(axis_x) + " " +
                   num(panel_mid) + ")\"");

  // The time axis, under the panel.
  const double t_step = s.t_end > 60 ? 10 : (s.t_end > 30 ? 5 : (s.t_end > 10 ? 2 : 1));
  for (double t = 0; t <= s.t_end + 1e-9; t += t_step) {
    body += line(s.x(t), l.panel_bottom, s.x(t), l.panel_bottom + 4, "stroke=\"#444\"");
    body += text(s.x(t), l.panel_bottom + 17, std::to_string(static_cast<long>(t)),
                 "text-anchor=\"middle\"");
  }
  body += text((s.left + s.right) / 2, l.panel_bottom + 35, "time since start (s)",
               "text-anchor=\"middle\"");

  // The legend.
  Legend legend(s.left, kWidth - 10, l.panel_bottom + 48);
  auto stroke = [](const char* color, double width) {
    return [color, width](double x, double y) {
      return line(x, y + 6, x + 20, y + 6,
                  "stroke=\"" + std::string(color) + "\" stroke-width=\"" + num(width) + "\"");
    };
  };
  legend.add("max", stroke(kMaxColor, 2));
  legend.add("median", stroke(kMedianColor, 2));
  legend.add("each node", stroke("#c8c8c8", 1.5));
  for (std::size_t h = 0; h < chart.highlights.size(); ++h) {
    legend.add(
        chart.highlights[h].label + " (node " + std::to_string(chart.highlights[h].node) + ")",
        stroke(pick(kHighlightColors, 6, h), 1.6));
  }
  legend.add(
      "trim, from the count before to the count after (" + std::to_string(chart.trims.size()) + ")",
      [](double x, double y) { return trim_marker(x + 10, y + 7, y + 12) + "\n"; });
  legend.add("low to high water", [](double x, double y) {
    return "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"20\" height=\"12\" " +
           "fill=\"#eaf6ea\"/>\n";
  });
  for (std::size_t k = 0; k < chart.refusal_kinds.size(); ++k) {
    std::size_t total = 0;
    for (const auto& sample : chart.samples) {
      total += k < sample.refusals.size() ? sample.refusals[k] : 0;
    }
    if (total == 0) continue;  // a kind nothing was refused for
    legend.add("refused: " + chart.refusal_kinds[k] + " (" + std::to_string(total) + ")",
               [k](double x, double y) {
                 return "<rect x=\"" + num(x + 4) + "\" y=\"" + num(y) +
                        "\" width=\"12\" height=\"12\" fill=\"" + pick(kRefusalColors, 4, k) +
                        "\"/>\n";
               });
  }
  body += legend.svg();

  const double height = legend.bottom() + 8;
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(kWidth) + "\" height=\"" +
         num(height) + "\" viewBox=\"0 0 " + num(kWidth) + " " + num(height) +
         "\" font-family=\"sans-serif\" font-size=\"" + num(kFont) +
         "\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n" + body + "</svg>\n";
}

}  // namespace swarm::chart
