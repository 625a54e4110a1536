// A check of the Prometheus text exposition format 0.0.4 (expect_valid_exposition) and a
// comparison of a text with the public metric description it was written from
// (DescribedText, expect_text_matches), for the tests of write_prometheus.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dep2p/connmgr/metrics_description.hpp"

namespace dep2p::connmgr::testing {

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

inline bool valid_metric_name(std::string_view name) {
  static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
  return std::regex_match(name.begin(), name.end(), kName);
}
inline bool valid_label_name(std::string_view name) {
  static const std::regex kName("[a-zA-Z_][a-zA-Z0-9_]*");
  return std::regex_match(name.begin(), name.end(), kName) && !name.starts_with("__");
}

// A number as the format spells it: a float, +Inf, -Inf or NaN. nullopt if it is none.
inline std::optional<double> parse_number(const std::string& text) {
  if (text == "+Inf") return std::numeric_limits<double>::infinity();
  if (text == "-Inf") return -std::numeric_limits<double>::infinity();
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  static const std::regex kFloat(R"(-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)");
  if (!std::regex_match(text, kFloat)) return std::nullopt;
  return std::stod(text);
}

// The shortest text of a double, the key under which both sides file an `le` bound.
inline std::string number_key(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

// One sample line: its name, its labels (values unescaped) and its value.
struct SampleLine {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  std::string value;
};

// Parses `name{label="value",...} value`; nullopt (and why) if the line is malformed: a
// bad name, an unescaped quote, an unknown escape, a missing separator.
inline std::optional<SampleLine> parse_sample(const std::string& line, std::string& why) {
  SampleLine out;
  std::size_t i = line.find_first_of("{ ");
  if (i == std::string::npos) return why = "no value", std::nullopt;
  out.name = line.substr(0, i);
  if (line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const std::size_t eq = line.find('=', i);
      if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
        return why = "label without =\"", std::nullopt;
      }
      std::string name = line.substr(i, eq - i);
      std::string value;
      std::size_t j = eq + 2;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] != '\\') {
          value += line[j];
          continue;
        }
        if (++j >= line.size()) return why = "escape at the end", std::nullopt;
        if (line[j] == 'n') {
          value += '\n';
        } else if (line[j] == '\\' || line[j] == '"') {
          value += line[j];
        } else {
          return why = "unknown escape \\" + std::string(1, line[j]), std::nullopt;
        }
      }
      if (j >= line.size()) return why = "unterminated label value", std::nullopt;
      out.labels.emplace_back(std::move(name), std::move(value));
      i = j + 1;
      if (i < line.size() && line[i] == ',') {
        ++i;
      } else if (i >= line.size() || line[i] != '}') {
        return why = "label not followed by , or }", std::nullopt;
      }
    }
    if (i >= line.size()) return why = "unterminated labels", std::nullopt;
    ++i;  // the '}'
  }
  if (i >= line.size() || line[i] != ' ') return why = "no space before the value", std::nullopt;
  out.value = line.substr(i + 1);
  return out;
}

// A label value quoted as in the text, so that keys cannot run into each other.
inline std::string escape_for_key(const std::string& value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return out + "\"";
}

// A series' key: its name and its labels sorted by name, `le` bounds in their shortest form.
inline std::string series_key(const std::string& name,
                              std::vector<std::pair<std::string, std::string>> labels) {
  std::sort(labels.begin(), labels.end());
  std::string key = name + "{";
  for (auto& [label, value] : labels) {
    if (label == "le") {
      if (auto bound = parse_number(value)) value = number_key(*bound);
    }
    key += label + "=" + escape_for_key(value) + ";";
  }
  return key + "}";
}

// The Prometheus text format 0.0.4 as this library writes it (docs/design.md, "Metric
// names"): every family has one # HELP, then one # TYPE (counter, gauge or histogram),
// then its samples, and appears once; names and label names are valid, label values
// escaped, no series repeats; counters end in _total and nothing else does; a gauge or a
// counter has samples named after it, a histogram _bucket (with le), _sum and _count, whose
// buckets are cumulative, le ascending and ending at +Inf, which equals _count.
inline void expect_valid_exposition(const std::string& text) {
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n') << "the text ends with a newline";
  struct Family {
    int helps = 0;
    int types = 0;
    std::string type;
    bool sampled = false;
  };
  struct Histogram {
    std::vector<std::pair<double, double>> buckets;  // (le, cumulative count), text order
    std::optional<double> sum;
    std::optional<double> count;
  };
  std::map<std::string, Family> families;
  std::set<std::string> ended;  // families whose lines are behind us
  std::set<std::string> series;
  std::map<std::string, Histogram> histograms;  // by name and labels other than le
  std::string current;
  const auto enter = [&](const std::string& name) {
    if (name == current) return;
    if (!current.empty()) ended.insert(current);
    EXPECT_EQ(ended.count(name), 0u) << "family " << name << " appears twice";
    current = name;
  };
  for (const std::string& line : lines_of(text)) {
    if (line.starts_with("# HELP ")) {
      const std::string rest = line.substr(7);
      const std::string name = rest.substr(0, rest.find(' '));
      EXPECT_TRUE(valid_metric_name(name)) << line;
      EXPECT_GT(rest.size(), name.size() + 1) << "empty HELP: " << line;
      enter(name);
      Family& f = families[name];
      EXPECT_EQ(++f.helps, 1) << "second HELP for " << name;
      EXPECT_EQ(f.types, 0) << "HELP after TYPE for " << name;
      EXPECT_FALSE(f.sampled) << "HELP after samples of " << name;
    } else if (line.starts_with("# TYPE ")) {
      std::istringstream words(line.substr(7));
      std::string name, type, extra;
      words >> name >> type >> extra;
      EXPECT_TRUE(extra.empty()) << line;
      EXPECT_TRUE(type == "counter" || type == "gauge" || type == "histogram") << line;
      enter(name);
      Family& f = families[name];
      EXPECT_EQ(f.helps, 1) << "TYPE without a HELP before it: " << name;
      EXPECT_EQ(++f.types, 1) << "second TYPE for " << name;
      EXPECT_FALSE(f.sampled) << "TYPE after samples of " << name;
      f.type = type;
      EXPECT_EQ(name.ends_with("_total"), type == "counter")
          << name << ": counters, and only they, end in _total";
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        EXPECT_FALSE(name.ends_with(suffix)) << name << " ends in a histogram sample's suffix";
      }
    } else if (line.starts_with("#")) {
      ADD_FAILURE() << "a comment that is neither HELP nor TYPE: " << line;
    } else {
      std::string why;
      const auto sample = parse_sample(line, why);
      if (!sample) {
        ADD_FAILURE() << "unparsable sample (" << why << "): [" << line << "]";
        continue;
      }
      EXPECT_TRUE(valid_metric_name(sample->name)) << line;
      const auto value = parse_number(sample->value);
      EXPECT_TRUE(value.has_value()) << "bad value: " << line;
      std::set<std::string> label_names;
      std::vector<std::pair<std::string, std::string>> without_le;
      std::optional<double> le;
      for (const auto& [label, label_value] : sample->labels) {
        EXPECT_TRUE(valid_label_name(label)) << "label " << label << ": " << line;
        EXPECT_TRUE(label_names.insert(label).second) << "label " << label << " twice: " << line;
        if (label == "le") {
          le = parse_number(label_value);
          EXPECT_TRUE(le.has_value()) << "bad le: " << line;
        } else {
          without_le.emplace_back(label, label_value);
        }
      }
      EXPECT_TRUE(series.insert(series_key(sample->name, sample->labels)).second)
          << "series repeated: " << line;
      const auto family = families.find(current);
      if (family == families.end() || family->second.types != 1) {
        ADD_FAILURE() << "sample before its family's TYPE: " << line;
        continue;
      }
      family->second.sampled = true;
      if (family->second.type != "histogram") {
        EXPECT_EQ(sample->name, current) << "sample outside its family: " << line;
        EXPECT_FALSE(le.has_value()) << "le outside a histogram: " << line;
        continue;
      }
      Histogram& h = histograms[series_key(current, without_le)];
      if (sample->name == current + "_bucket") {
        EXPECT_TRUE(le.has_value()) << "a bucket without le: " << line;
        if (le && value) h.buckets.emplace_back(*le, *value);
      } else if (sample->name == current + "_sum") {
        EXPECT_FALSE(le.has_value()) << line;
        EXPECT_FALSE(h.sum.has_value()) << "second _sum: " << line;
        h.sum = value;
      } else if (sample->name == current + "_count") {
        EXPECT_FALSE(le.has_value()) << line;
        EXPECT_FALSE(h.count.has_value()) << "second _count: " << line;
        h.count = value;
      } else {
        ADD_FAILURE() << "sample outside its histogram: " << line;
      }
    }
  }
  for (const auto& [name, f] : families) {
    EXPECT_EQ(f.helps, 1) << name;
    EXPECT_EQ(f.types, 1) << name;
  }
  for (const auto& [key, h] : histograms) {
    ASSERT_FALSE(h.buckets.empty()) << key << " has no bucket";
    for (std::size_t i = 1; i < h.buckets.size(); ++i) {
      EXPECT_LT(h.buckets[i - 1].first, h.buckets[i].first) << key << ": le not ascending";
      EXPECT_LE(h.buckets[i - 1].second, h.buckets[i].second) << key << ": buckets not cumulative";
    }
    EXPECT_TRUE(std::isinf(h.buckets.back().first)) << key << ": no le=\"+Inf\" bucket last";
    EXPECT_TRUE(h.sum.has_value()) << key << ": no _sum";
    EXPECT_TRUE(h.count.has_value()) << key << ": no _count";
    if (h.count) {
      EXPECT_EQ(h.buckets.back().second, *h.count) << key << ": +Inf bucket != _count";
    }
  }
}

// What the public description says, as the lines of text it implies: each family (name,
// type as the text writes it, help) in order, and each series' value by key.
class DescribedText final : public MetricVisitor {
 public:
  struct FamilyLine {
    std::string name;
    std::string type;
    std::string help;
    bool operator==(const FamilyLine&) const = default;
  };
  std::vector<FamilyLine> families;
  std::map<std::string, double> series;

  void family(const MetricFamily& family) override {
    families.push_back({std::string(family.name),
                        family.type == MetricType::gauge_histogram
                            ? "histogram"
                            : std::string(to_string(family.type)),
                        std::string(family.help)});
    for (std::string_view label : family.labels) {
      EXPECT_TRUE(valid_label_name(label)) << family.name << ": " << label;
    }
  }
  void sample(const MetricFamily& family, const MetricSample& sample) override {
    const std::string name(family.name);
    EXPECT_EQ(sample.label_values.size(), family.labels.size()) << name;
    std::vector<std::pair<std::string, std::string>> labels;
    for (std::size_t i = 0; i < std::min(family.labels.size(), sample.label_values.size()); ++i) {
      labels.emplace_back(family.labels[i], sample.label_values[i]);
    }
    const bool histogram =
        family.type == MetricType::histogram || family.type == MetricType::gauge_histogram;
    ASSERT_EQ(sample.histogram != nullptr, histogram) << name;
    if (!histogram) {
      put(name, labels, sample.value);
      return;
    }
    const HistogramValue& h = *sample.histogram;
    ASSERT_EQ(h.bucket_counts.size(), h.upper_bounds.size() + 1) << name;
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < h.upper_bounds.size(); ++i) {
      cumulative += h.bucket_counts[i];
      auto with_le = labels;
      with_le.emplace_back("le", number_key(h.upper_bounds[i]));
      put(name + "_bucket", with_le, static_cast<double>(cumulative));
    }
    EXPECT_EQ(cumulative + h.bucket_counts.back(), h.count) << name << ": buckets sum to count";
    auto with_inf = labels;
    with_inf.emplace_back("le", "+Inf");
    put(name + "_bucket", with_inf, static_cast<double>(h.count));
    put(name + "_sum", labels, h.sum);
    put(name + "_count", labels, static_cast<double>(h.count));
  }

 private:
  void put(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels,
           double value) {
    EXPECT_TRUE(series.emplace(series_key(name, labels), value).second)
        << "the description repeats " << series_key(name, labels);
  }
};

// The text says what the description says, family for family and series for series, and
// nothing else.
inline void expect_text_matches(const std::string& text, const DescribedText& described) {
  std::vector<DescribedText::FamilyLine> families;
  std::map<std::string, double> series;
  for (const std::string& line : lines_of(text)) {
    if (line.starts_with("# HELP ")) {
      const std::string rest = line.substr(7);
      const std::size_t space = rest.find(' ');
      families.push_back({rest.substr(0, space), "", rest.substr(space + 1)});
    } else if (line.starts_with("# TYPE ")) {
      const std::string rest = line.substr(7);
      if (!families.empty()) families.back().type = rest.substr(rest.find(' ') + 1);
    } else {
      std::string why;
      const auto sample = parse_sample(line, why);
      ASSERT_TRUE(sample.has_value()) << why << ": " << line;
      const auto value = parse_number(sample->value);
      ASSERT_TRUE(value.has_value()) << line;
      series[series_key(sample->name, sample->labels)] = *value;
    }
  }
  EXPECT_EQ(families.size(), described.families.size());
  for (std::size_t i = 0; i < std::min(families.size(), described.families.size()); ++i) {
    EXPECT_EQ(families[i].name, described.families[i].name) << "family " << i;
    EXPECT_EQ(families[i].type, described.families[i].type) << families[i].name;
    // HELP text is escaped in the exposition; ours has no backslash or newline.
    EXPECT_EQ(families[i].help, described.families[i].help) << families[i].name;
  }
  for (const auto& [key, value] : described.series) {
    const auto found = series.find(key);
    if (found == series.end()) {
      ADD_FAILURE() << "described, not in the text: " << key;
    } else {
      EXPECT_EQ(found->second, value) << key;
    }
  }
  for (const auto& [key, value] : series) {
    EXPECT_EQ(described.series.count(key), 1u) << "in the text, not described: " << key;
  }
}

}  // namespace dep2p::connmgr::testing
