// Formatting for the observability API (docs/design.md, "Observability"): explain()'s summary line
// and the Prometheus text exposition, shared by ConnectionManager and RealmConnectionManager. Pure
// functions of values: called with no lock held.
#pragma once

#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "dep2p/connmgr/explain.hpp"
#include "dep2p/connmgr/metrics.hpp"
#include "dep2p/connmgr/metrics_description.hpp"
#include "dep2p/connmgr/realm_manager.hpp"

namespace dep2p::connmgr::detail {

// "peer 12*X3p9Vb: kept: protected by relay, bootstrap", "peer …: next to go: rank 3 of
// 120, value 10 (dht 10)", ... (times relative to explanation.at).
std::string explain_summary(const Explanation& explanation);
// "value 10 (dht 10, relay-hops 3)": a peer's value and its tags, decaying ones after
// plain ones; "(no tags)" when it has none. explain() and plan_trim() word it alike.
std::string describe_value(PeerValue value,
                           const std::vector<std::pair<std::string, TagValue>>& tags,
                           const std::vector<std::pair<std::string, TagValue>>& decaying_tags);

// Prometheus text format 0.0.4 of one manager's Stats: the walk of for_each_metric().
void write_prometheus(std::ostream& out, const Stats& stats);
// One realm's figures: its usage and counters next to its configured limits.
struct RealmFigures {
  std::string name;
  RealmStats stats;
  RealmConfig config;
};
// The per-realm metrics, realms in the given order: families labelled by realm name.
void for_each_realm_metric(const std::vector<RealmFigures>& realms, MetricVisitor& visitor);
// Their Prometheus text: the walk of for_each_realm_metric().
void write_realm_prometheus(std::ostream& out, const std::vector<RealmFigures>& realms);

// A label value escaped per the format: backslash, double quote and newline.
std::string escape_label_value(std::string_view value);

}  // namespace dep2p::connmgr::detail
