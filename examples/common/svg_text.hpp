// Text for hand-written SVG, shared by the examples' charts: numbers with one decimal (the
// same bytes on every platform for the same value), text escaped for XML, and the two
// elements both charts draw most (text and line).
//
//   out << "<text x=\"" << svg::num(x) << "\">" << svg::escape(label) << "</text>";
//
// Thread safety: pure functions.
#pragma once

#include <cstdio>
#include <string>

namespace svg {

inline std::string num(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", v);
  return text;
}

inline std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '&') {
      out += "&amp;";
    } else if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else if (c == '"') {
      out += "&quot;";
    } else {
      out += c;
    }
  }
  return out;
}

// A <text> element at (x, y) with `body` escaped, and optional extra attributes.
inline std::string text(double x, double y, const std::string& body,
                        const std::string& attributes = {}) {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\"" +
         (attributes.empty() ? "" : " " + attributes) + ">" + escape(body) + "</text>\n";
}

// A <line> element from (x1, y1) to (x2, y2) with the given attributes.
inline std::string line(double x1, double y1, double x2, double y2, const std::string& attributes) {
  return "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" +
         num(y2) + "\" " + attributes + "/>\n";
}

}  // namespace svg
