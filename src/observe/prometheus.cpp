// write_prometheus(): Stats (and realm stats) in the Prometheus text exposition format
// 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/), written as a walk of
// the public description (metrics_description.hpp), so the text cannot drift from it. Each
// family gets `# HELP` and `# TYPE` once, then its samples; a histogram's samples are its
// cumulative `_bucket`s with their `le` bound, `le="+Inf"` last (equal to `_count`), then
// `_sum` and `_count`. Label values are escaped (backslash, double quote, newline). The
// text is built from a Stats snapshot and written in one go, with no lock held.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "dep2p/connmgr/metrics_description.hpp"
#include "observe/observability.hpp"

namespace dep2p::connmgr {
namespace detail {
namespace {

// HELP text escapes backslash and newline only.
std::string escape_help(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// The shortest text that reads back as the same double (never locale-dependent), and the
// format's spelling of the infinities and NaN. Plain decimals from 1e-4 to 1e15 ("0.0001",
// not "1e-04"): an `le` bound names its series, so it is spelled as other exporters do.
std::string format_number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  const double magnitude = std::fabs(value);
  const bool plain = value == 0 || (magnitude >= 1e-4 && magnitude < 1e15);
  char buffer[64];
  const auto result =
      plain ? std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::fixed)
            : std::to_chars(buffer, buffer + sizeof buffer, value);
  return result.ec == std::errc{} ? std::string(buffer, result.ptr) : std::string("NaN");
}

// The 0.0.4 format knows no gauge histogram: it is written as a histogram.
std::string_view type_text(MetricType type) {
  return type == MetricType::gauge_histogram ? to_string(MetricType::histogram) : to_string(type);
}

class TextWriter final : public MetricVisitor {
 public:
  void family(const MetricFamily& family) override {
    const std::string name(family.name);
    text_ += "# HELP " + name + " " + escape_help(family.help) + "\n";
    text_ += "# TYPE " + name + " " + std::string(type_text(family.type)) + "\n";
  }

  void sample(const MetricFamily& family, const MetricSample& sample) override {
    std::string labels;
    for (std::size_t i = 0; i < family.labels.size() && i < sample.label_values.size(); ++i) {
      if (!labels.empty()) labels += ",";
      labels +=
          std::string(family.labels[i]) + "=\"" + escape_label_value(sample.label_values[i]) + "\"";
    }
    const std::string name(family.name);
    if (sample.histogram == nullptr) {
      line(name, labels, format_number(sample.value));
      return;
    }
    const HistogramValue& h = *sample.histogram;
    const std::string bucket_labels = labels.empty() ? labels : labels + ",";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < h.upper_bounds.size() && i < h.bucket_counts.size(); ++i) {
      cumulative += h.bucket_counts[i];
      line(name + "_bucket", bucket_labels + "le=\"" + format_number(h.upper_bounds[i]) + "\"",
           std::to_string(cumulative));
    }
    line(name + "_bucket", bucket_labels + "le=\"+Inf\"", std::to_string(h.count));
    line(name + "_sum", labels, format_number(h.sum));
    line(name + "_count", labels, std::to_string(h.count));
  }

  const std::string& text() const { return text_; }

 private:
  void line(const std::string& name, const std::string& labels, const std::string& value) {
    text_ += labels.empty() ? name + " " + value + "\n" : name + "{" + labels + "} " + value + "\n";
  }

  std::string text_;
};

}  // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void write_prometheus(std::ostream& out, const Stats& stats) {
  TextWriter writer;
  for_each_metric(stats, writer);
  out << writer.text();
}

void write_realm_prometheus(std::ostream& out, const std::vector<RealmFigures>& realms) {
  TextWriter writer;
  for_each_realm_metric(realms, writer);
  out << writer.text();
}

}  // namespace detail

}  // namespace dep2p::connmgr
