// svg_chart: the swarm demo's chart as a function of plain data, so that a test can render
// synthetic runs and check what it draws. No dependency: the SVG is written by hand, is
// self-contained (no scripts, fonts or links) and is the same bytes for the same data.
//
//   swarm::chart::Chart c{.title = "…", .low_water = 4, .high_water = 8, .hard_cap = 12};
//   c.samples.push_back({.t = 0.1, .counts = {3, 9}, .refusals = {0, 2}});
//   std::string svg = swarm::chart::render_svg(c);
//
// What it draws: the connection count of every node as step lines (a value holds until the
// next sample), the nodes the scenarios are about in colour, the median and the maximum
// across nodes; the band between low and high water with both lines on top of the data;
// a marker at every trim, from the count before it down to the count after; the
// admissions refused per sample as stacked bars in a panel under the same time axis; the
// scenarios' start times, their labels staggered into rows so that none overlaps another.
//
// Thread safety: pure functions of their arguments.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace swarm::chart {

// A text's width is estimated as characters x font size x this: the layout reserves that
// much room for every label (sans-serif glyphs average about 0.5 em).
inline constexpr double kCharWidth = 0.6;

struct Sample {
  double t = 0;                       // seconds since the run started
  std::vector<std::size_t> counts;    // connections per node
  std::vector<std::size_t> refusals;  // refused since the previous sample, per refusal kind
};

// A trim that closed connections at one node.
struct Trim {
  double t = 0;
  std::size_t node = 0;
  std::size_t before = 0;  // the node's connections before the trim
  std::size_t after = 0;
};

// A scenario's start.
struct Phase {
  double t = 0;
  std::string label;
};

// A node drawn in colour and named in the legend.
struct Highlight {
  std::size_t node = 0;
  std::string label;
};

struct Chart {
  std::string title;
  std::vector<Sample> samples;  // in time order; every one counts the same nodes
  std::vector<Trim> trims;
  std::vector<Phase> phases;  // in time order
  std::vector<Highlight> highlights;
  std::vector<std::string> refusal_kinds;  // names the entries of Sample::refusals
  std::size_t low_water = 0;
  std::size_t high_water = 0;
  std::size_t hard_cap = 0;
};

// The connection plot's mapping from (seconds, connections) to SVG coordinates.
struct Scale {
  double left = 0, right = 0, top = 0, bottom = 0;  // the plot area
  double t_end = 1;                                 // seconds at `right`
  double v_top = 1;                                 // connections at `top`
  double x(double t) const { return left + (right - left) * t / t_end; }
  double y(double v) const { return top + (bottom - top) * (1.0 - v / v_top); }
};
Scale connection_scale(const Chart& chart);

// Rows for labels laid out left to right: spans[i] is label i's [left, right] in x, in
// order of left; each goes into the first row whose last label ends at least `gap` before
// it starts. Returns each label's row (0 is the first).
std::vector<std::size_t> stagger(const std::vector<std::pair<double, double>>& spans, double gap);

std::string render_svg(const Chart& chart);

}  // namespace swarm::chart
