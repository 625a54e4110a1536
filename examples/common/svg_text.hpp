// Text for hand-written SVG, shared by the examples' charts: numbers with one decimal (the
// same bytes on every platform for the same value) and text escaped for XML.
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

}  // namespace svg
