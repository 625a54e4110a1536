// The metrics a Stats yields, described once: for each family its name, type, help and label
// names, and its samples read from a Stats. write_prometheus() is a walk of this description,
// so a host that walks it too (to feed prometheus-cpp, OpenTelemetry or its own registry)
// sees exactly the families and values of the text, under the same names.
//
//   class Printer : public dep2p::connmgr::MetricVisitor {
//     void family(const MetricFamily& f) override { std::cout << f.name << "\n"; }
//     void sample(const MetricFamily& f, const MetricSample& s) override {
//       if (s.histogram == nullptr) std::cout << "  " << s.value << "\n";
//     }
//   } printer;
//   dep2p::connmgr::for_each_metric(manager.stats(), printer);
//
// Names follow the Prometheus conventions (docs/design.md, "Metric names"): the prefix
// dep2p_connmgr_, base units in the name (_seconds, _bytes), counters ending in _total, one
// family per quantity with its breakdowns as labels whose sum over every label is
// meaningful. Durations are in seconds.
//
// Thread safety: for_each_metric() reads only its arguments and may run on any thread; the
// views it passes to the visitor live until the visitor's call returns.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "dep2p/connmgr/metrics.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {

enum class MetricType : std::uint8_t {
  counter,    // only grows (until the manager is rebuilt); the name ends in _total
  gauge,      // a value now
  histogram,  // observations counted in buckets since construction, with their sum
  // A histogram of values now (OpenMetrics' gaugehistogram): the buckets may go down. The
  // Prometheus text format 0.0.4 has no such type and writes it as `histogram`; read it
  // without rate(), e.g. histogram_quantile(0.9, dep2p_connmgr_rtt_seconds_bucket).
  gauge_histogram,
};
// "counter", "gauge", "histogram", "gaugehistogram".
DEP2P_CONNMGR_EXPORT std::string_view to_string(MetricType type) noexcept;

// A family: one metric name and its samples, one per combination of label values.
struct MetricFamily {
  std::string_view name;  // the full name, e.g. "dep2p_connmgr_connections"; a
                          // histogram's samples add _bucket, _sum and _count to it
  MetricType type = MetricType::gauge;
  std::string_view help;
  std::span<const std::string_view> labels;  // label names, in the order samples give values
};

// A histogram's value: per-bucket counts (not cumulative) under ascending upper bounds,
// and one more bucket for the observations above the last bound.
struct HistogramValue {
  std::span<const double> upper_bounds;          // inclusive, in the family's unit
  std::span<const std::uint64_t> bucket_counts;  // upper_bounds.size() + 1 counts
  std::uint64_t count = 0;                       // the sum of bucket_counts
  double sum = 0;                                // of the observations
};

// One sample of a family.
struct MetricSample {
  std::span<const std::string_view> label_values;  // one per MetricFamily::labels
  // Counters and gauges. A limit that is not set is +infinity.
  double value = 0;
  // Histograms (of either type); null for counters and gauges.
  const HistogramValue* histogram = nullptr;
};

// Receives the families in a fixed order, each family() followed by its samples; a family
// may have no sample (e.g. one per realm, with no realm defined).
class DEP2P_CONNMGR_EXPORT MetricVisitor {
 public:
  MetricVisitor() = default;
  MetricVisitor(const MetricVisitor&) = delete;
  MetricVisitor& operator=(const MetricVisitor&) = delete;
  virtual ~MetricVisitor() = default;

  virtual void family(const MetricFamily& family) = 0;
  virtual void sample(const MetricFamily& family, const MetricSample& sample) = 0;
};

// Walks the metrics of one manager's Stats (ConnectionManager::write_prometheus writes
// this walk), build_info first.
DEP2P_CONNMGR_EXPORT void for_each_metric(const Stats& stats, MetricVisitor& visitor);

}  // namespace dep2p::connmgr
