// The swarm demo's chart (examples/swarm/svg_chart.cpp) on synthetic runs: it draws step
// lines, a marker at every trim, bars where admissions were refused, labelled axes and
// watermarks, and no two texts on top of each other. The SVG is read back with a few
// regular expressions: the chart writes one element per tag, attributes in double quotes.
#include "svg_chart.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <regex>
#include <string>
#include <vector>

namespace {

using swarm::chart::Chart;
using swarm::chart::Sample;

using Attributes = std::map<std::string, std::string>;

Attributes attributes_of(const std::string& tag) {
  Attributes out;
  static const std::regex attribute(R"re(([a-zA-Z][a-zA-Z0-9-]*)="([^"]*)")re");
  for (auto it = std::sregex_iterator(tag.begin(), tag.end(), attribute);
       it != std::sregex_iterator(); ++it) {
    out[(*it)[1]] = (*it)[2];
  }
  return out;
}

double number(const Attributes& a, const std::string& name, double otherwise = 0) {
  const auto it = a.find(name);
  return it == a.end() ? otherwise : std::stod(it->second);
}

// Every element `<name ...>` (or `<name .../>`): its attributes.
std::vector<Attributes> elements(const std::string& svg, const std::string& name) {
  std::vector<Attributes> out;
  const std::regex tag("<" + name + R"re(\s([^>]*)>)re");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), tag); it != std::sregex_iterator();
       ++it) {
    out.push_back(attributes_of((*it)[1]));
  }
  return out;
}

std::string unescape(std::string text) {
  for (const auto& [entity, c] : std::map<std::string, std::string>{
           {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}}) {
    for (auto at = text.find(entity); at != std::string::npos; at = text.find(entity, at)) {
      text.replace(at, entity.size(), c);
    }
  }
  return text;
}

struct Box {
  std::string text;
  double left, top, right, bottom;
};

// A text's box from its x, y (the baseline), font size, anchor and rotation, with a fixed
// width per character: kCharWidth em, and an em's height from 0.8 above the baseline to
// 0.2 below.
std::vector<Box> text_boxes(const std::string& svg) {
  std::vector<Box> out;
  static const std::regex text(R"re(<text\s([^>]*)>([^<]*)</text>)re");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), text); it != std::sregex_iterator();
       ++it) {
    const Attributes a = attributes_of((*it)[1]);
    const std::string body = unescape((*it)[2]);
    const double font = number(a, "font-size", 12);
    const double width = static_cast<double>(body.size()) * font * swarm::chart::kCharWidth;
    const double x = number(a, "x");
    const double y = number(a, "y");
    const std::string anchor = a.count("text-anchor") ? a.at("text-anchor") : "start";
    const double left = anchor == "middle" ? x - width / 2 : (anchor == "end" ? x - width : x);
    Box box{body, left, y - 0.8 * font, left + width, y + 0.2 * font};
    if (a.count("transform")) {
      // rotate(-90 x y): the text reads upwards; (dx, dy) from (x, y) goes to (dy, -dx).
      EXPECT_EQ(a.at("transform"), "rotate(-90 " + a.at("x") + " " + a.at("y") + ")") << body;
      box = {body, x + (box.top - y), y - (box.right - x), x + (box.bottom - y),
             y - (box.left - x)};
    }
    out.push_back(box);
  }
  return out;
}

std::size_t svg_count_of(const std::string& svg, const std::string& what) {
  std::size_t n = 0;
  for (auto at = svg.find(what); at != std::string::npos; at = svg.find(what, at + 1)) ++n;
  return n;
}

bool overlap(const Box& a, const Box& b) {
  return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
}

// Ten nodes over 10 s, one sample a second; node 0 climbs above high water and is trimmed.
Chart synthetic() {
  Chart c;
  c.title = "synthetic run";
  c.low_water = 4;
  c.high_water = 8;
  c.hard_cap = 12;
  c.refusal_kinds = {"rate limit", "address or subnet cap"};
  for (int s = 0; s <= 10; ++s) {
    Sample sample{static_cast<double>(s), std::vector<std::size_t>(10, 4), {0, 0}};
    sample.counts[0] = s == 3 ? 11 : (s < 3 ? static_cast<std::size_t>(2 * s) : 4);
    sample.counts[1] = static_cast<std::size_t>(s % 6);
    c.samples.push_back(sample);
  }
  c.highlights = {{0, "hub"}, {1, "victim"}};
  return c;
}

std::string attribute_or(const Attributes& a, const std::string& name) {
  return a.count(name) ? a.at(name) : "";
}

TEST(SvgChart, EverySeriesIsAStepLineOfHorizontalAndVerticalSegments) {
  const Chart c = synthetic();
  const std::string svg = swarm::chart::render_svg(c);
  const auto paths = elements(svg, "path");
  std::size_t series = 0;
  const std::regex steps(R"re(M[0-9.]+ [0-9.]+( [HV][0-9.]+)*)re");
  for (const auto& p : paths) {
    if (attribute_or(p, "class") != "series") continue;
    ++series;
    EXPECT_TRUE(std::regex_match(p.at("d"), steps)) << p.at("d");
  }
  // Ten nodes, two highlighted, the median and the maximum.
  EXPECT_EQ(series, 14U);
  // Node 0 holds 6 until t = 3, where it jumps to 11: a horizontal run, then a rise.
  const swarm::chart::Scale s = swarm::chart::connection_scale(c);
  char rise[64];
  std::snprintf(rise, sizeof rise, "H%.1f V%.1f", s.x(3), s.y(11));
  EXPECT_NE(svg.find(rise), std::string::npos) << rise;
}

TEST(SvgChart, MarksEveryTrimFromTheCountBeforeToTheCountAfterAtItsTime) {
  Chart c = synthetic();
  EXPECT_EQ(svg_count_of(swarm::chart::render_svg(c), "class=\"trim\""), 0U);
  c.trims = {{3.5, 0, 11, 4}, {7.25, 1, 9, 5}};
  const std::string svg = swarm::chart::render_svg(c);
  const swarm::chart::Scale s = swarm::chart::connection_scale(c);
  const std::regex group(R"re(<g class="trim"><title>([^<]*)</title><line\s([^>]*)/>)re");
  std::vector<std::smatch> found;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), group); it != std::sregex_iterator();
       ++it) {
    found.push_back(*it);
  }
  ASSERT_EQ(found.size(), c.trims.size());
  for (std::size_t i = 0; i < found.size(); ++i) {
    const auto& trim = c.trims[i];
    const Attributes a = attributes_of(found[i][2]);
    EXPECT_NEAR(number(a, "x1"), s.x(trim.t), 0.06);
    EXPECT_NEAR(number(a, "x2"), s.x(trim.t), 0.06);
    EXPECT_NEAR(number(a, "y1"), s.y(static_cast<double>(trim.before)), 0.06);
    EXPECT_NEAR(number(a, "y2"), s.y(static_cast<double>(trim.after)), 0.06);
    EXPECT_NE(found[i][1].str().find("node " + std::to_string(trim.node)), std::string::npos);
  }
}

TEST(SvgChart, DrawsRefusalBarsOverTheSamplesThatRefusedAndNowhereElse) {
  Chart c = synthetic();
  EXPECT_EQ(svg_count_of(swarm::chart::render_svg(c), "class=\"refusal\""), 0U);
  c.samples[4].refusals = {3, 2};  // refused between t = 3 and t = 4
  c.samples[7].refusals = {0, 1};
  const std::string svg = swarm::chart::render_svg(c);
  const swarm::chart::Scale s = swarm::chart::connection_scale(c);
  std::vector<Attributes> bars;
  for (const auto& rect : elements(svg, "rect")) {
    if (attribute_or(rect, "class") == "refusal") bars.push_back(rect);
  }
  ASSERT_EQ(bars.size(), 3U);  // two kinds stacked at t = 4, one at t = 7
  EXPECT_NEAR(number(bars[0], "x"), s.x(3), 0.06);
  EXPECT_NEAR(number(bars[0], "width"), s.x(4) - s.x(3), 0.1);
  EXPECT_NEAR(number(bars[1], "x"), s.x(3), 0.06);
  EXPECT_NEAR(number(bars[2], "x"), s.x(6), 0.06);
  // Stacked: the second kind sits on the first; heights in proportion to the counts.
  EXPECT_NEAR(number(bars[1], "y") + number(bars[1], "height"), number(bars[0], "y"), 0.1);
  EXPECT_NEAR(number(bars[0], "height") * 2, number(bars[1], "height") * 3, 0.3);
  EXPECT_NE(bars[0].at("fill"), bars[1].at("fill"));
  // Their panel lies under the connection plot.
  EXPECT_GT(number(bars[0], "y"), s.bottom);
}

TEST(SvgChart, NoTwoTextsOverlapEvenWhenScenariosStartCloseTogether) {
  Chart c = synthetic();
  c.phases = {{0.0, "growth"}, {4.0, "flood"},   {6.0, "frozen"},   {6.1, "realm"},
              {6.2, "relay"},  {6.4, "reserve"}, {9.9, "reconnect"}};
  // Watermarks a connection apart on a tall scale: their labels (and the hard cap's)
  // would touch if left at their lines.
  c.low_water = 10;
  c.high_water = 11;
  c.samples[5].counts[2] = 40;
  const std::string svg = swarm::chart::render_svg(c);
  const std::vector<Box> boxes = text_boxes(svg);
  for (const auto& phase : c.phases) {
    EXPECT_NE(svg.find(">" + phase.label + "</text>"), std::string::npos) << phase.label;
  }
  ASSERT_GT(boxes.size(), 20U);
  for (std::size_t i = 0; i < boxes.size(); ++i) {
    for (std::size_t j = i + 1; j < boxes.size(); ++j) {
      EXPECT_FALSE(overlap(boxes[i], boxes[j]))
          << "\"" << boxes[i].text << "\" [" << boxes[i].left << ", " << boxes[i].top << ", "
          << boxes[i].right << ", " << boxes[i].bottom << "] and \"" << boxes[j].text << "\" ["
          << boxes[j].left << ", " << boxes[j].top << ", " << boxes[j].right << ", "
          << boxes[j].bottom << "]";
    }
  }
  // Every label lies inside the document.
  const auto root = elements(svg, "svg").at(0);
  for (const auto& b : boxes) {
    EXPECT_GE(b.left, 0) << b.text;
    EXPECT_GE(b.top, 0) << b.text;
    EXPECT_LE(b.right, number(root, "width")) << b.text;
    EXPECT_LE(b.bottom, number(root, "height")) << b.text;
  }
}

TEST(SvgChart, LabelsBothAxesAndDrawsTheWatermarksOverTheData) {
  const Chart c = synthetic();
  const std::string svg = swarm::chart::render_svg(c);
  for (const char* label : {">connections per node</text>", ">time since start (s)</text>",
                            ">low water 4</text>", ">high water 8</text>", ">hard cap 12</text>"}) {
    EXPECT_NE(svg.find(label), std::string::npos) << label;
  }
  // The watermark lines come after every series, so no line of data hides them.
  const swarm::chart::Scale s = swarm::chart::connection_scale(c);
  char low[64];
  std::snprintf(low, sizeof low, "y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"", s.y(4), s.right,
                s.y(4));
  const auto low_line = svg.find(low);
  ASSERT_NE(low_line, std::string::npos) << low;
  EXPECT_GT(low_line, svg.rfind("class=\"series\""));
}

TEST(SvgChart, SameDataGivesTheSameDocument) {
  Chart c = synthetic();
  c.trims = {{3.5, 0, 11, 4}};
  c.phases = {{0.0, "growth"}, {5.0, "flood & <friends>"}};
  EXPECT_EQ(swarm::chart::render_svg(c), swarm::chart::render_svg(c));
  EXPECT_NE(swarm::chart::render_svg(c).find("flood &amp; &lt;friends&gt;"), std::string::npos);
}

TEST(Stagger, PutsALabelInTheFirstRowWhereItCollidesWithNothing) {
  // [0, 50] and [40, 90] collide; [95, 120] fits after the first; [52, 60] is within the
  // gap of the first and collides with the second: a third row.
  EXPECT_EQ(swarm::chart::stagger({{0, 50}, {40, 90}, {52, 60}, {95, 120}}, 4),
            (std::vector<std::size_t>{0, 1, 2, 0}));
  EXPECT_EQ(swarm::chart::stagger({{0, 10}, {20, 30}}, 4), (std::vector<std::size_t>{0, 0}));
}

}  // namespace
