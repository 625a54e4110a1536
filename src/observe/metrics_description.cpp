// for_each_metric(): the one description of the metrics of a Stats and of the realms
// (docs/design.md, "Metric names"). write_prometheus() and write_realm_prometheus() are
// walks of it, so the text and what a host reads through MetricVisitor cannot differ.
#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <span>
#include <string_view>
#include <vector>

#include "dep2p/connmgr/limits.hpp"
#include "dep2p/connmgr/metrics_description.hpp"
#include "dep2p/connmgr/realm_manager.hpp"
#include "dep2p/connmgr/version.hpp"
#include "observe/observability.hpp"

namespace dep2p::connmgr {
namespace {

using Labels = std::span<const std::string_view>;

constexpr std::array<std::string_view, 1> kVersion = {"version"};
constexpr std::array<std::string_view, 1> kDirection = {"direction"};
constexpr std::array<std::string_view, 3> kDirectionPathState = {"direction", "path", "state"};
constexpr std::array<std::string_view, 1> kState = {"state"};
constexpr std::array<std::string_view, 1> kReason = {"reason"};
constexpr std::array<std::string_view, 1> kKind = {"kind"};
constexpr std::array<std::string_view, 1> kRealm = {"realm"};
constexpr std::array<std::string_view, 2> kRealmReason = {"realm", "reason"};
constexpr std::array<std::string_view, 2> kRealmTrim = {"realm", "trim"};

constexpr double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

constexpr std::array<double, kDurationBuckets.size()> kDurationBucketSeconds = [] {
  std::array<double, kDurationBuckets.size()> out{};
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = seconds(kDurationBuckets[i]);
  return out;
}();

constexpr double kInfinity = std::numeric_limits<double>::infinity();

// A limit as a gauge: no limit reads +Inf, so that usage / limit is 0 rather than absent.
double limit(std::size_t value) {
  return value == kUnlimited ? kInfinity : static_cast<double>(value);
}
double limit(std::uint64_t value, std::uint64_t unlimited) {
  return value == unlimited ? kInfinity : static_cast<double>(value);
}
// A realm limit: 0 is none.
double realm_limit(std::size_t value) {
  return value == 0 ? kInfinity : static_cast<double>(value);
}

// Hands families and samples to the visitor; a family's samples follow it.
class Walk {
 public:
  explicit Walk(MetricVisitor& visitor) : visitor_(visitor) {}

  void begin(std::string_view name, MetricType type, std::string_view help, Labels labels = {}) {
    family_ = MetricFamily{name, type, help, labels};
    visitor_.family(family_);
  }
  void sample(double value) { visitor_.sample(family_, MetricSample{{}, value, nullptr}); }
  void sample(std::initializer_list<std::string_view> values, double value) {
    visitor_.sample(family_, MetricSample{Labels(values.begin(), values.size()), value, nullptr});
  }
  void sample(const DurationHistogram& h) {
    const HistogramValue value{kDurationBucketSeconds, h.buckets, h.count, seconds(h.sum)};
    visitor_.sample(family_, MetricSample{{}, 0, &value});
  }

  void gauge(std::string_view name, std::string_view help, double value) {
    begin(name, MetricType::gauge, help);
    sample(value);
  }
  void counter(std::string_view name, std::string_view help, std::uint64_t value) {
    begin(name, MetricType::counter, help);
    sample(static_cast<double>(value));
  }

 private:
  MetricVisitor& visitor_;
  MetricFamily family_;
};

template <std::unsigned_integral Count>
double num(Count n) {
  return static_cast<double>(n);
}

constexpr Direction kDirections[] = {Direction::inbound, Direction::outbound};
constexpr PathKind kPaths[] = {PathKind::direct, PathKind::relay};
constexpr ConnectionState kPooledStates[] = {ConnectionState::established,
                                             ConnectionState::closing};

}  // namespace

std::string_view to_string(MetricType type) noexcept {
  switch (type) {
    case MetricType::counter: return "counter";
    case MetricType::gauge: return "gauge";
    case MetricType::histogram: return "histogram";
    case MetricType::gauge_histogram: return "gaugehistogram";
  }
  return "unknown";
}

void for_each_metric(const Stats& s, MetricVisitor& visitor) {
  Walk w(visitor);
  w.begin("dep2p_connmgr_build_info", MetricType::gauge,
          "The version of the library the manager runs (the value is always 1).", kVersion);
  w.sample({version()}, 1);

  // The pool, then its configured bounds.
  w.begin("dep2p_connmgr_connections", MetricType::gauge,
          "Connections in the pool, by direction, path kind and state (established, or closing "
          "as the host reported).",
          kDirectionPathState);
  for (Direction d : kDirections) {
    for (PathKind p : kPaths) {
      for (ConnectionState state : kPooledStates) {
        w.sample({to_string(d), to_string(p), to_string(state)}, num(s.pooled(d, p, state)));
      }
    }
  }
  w.begin("dep2p_connmgr_pending_connections", MetricType::gauge,
          "Connections tracked before they are established (track_pending), by state; not in "
          "the pool.",
          kState);
  w.sample({to_string(ConnectionState::dialing)}, num(s.dialing));
  w.sample({to_string(ConnectionState::handshaking)}, num(s.handshaking));
  w.gauge("dep2p_connmgr_connections_limit",
          "The system's limit on pooled connections, both directions together (+Inf: none).",
          limit(s.system_limits.connections_total));
  w.begin("dep2p_connmgr_connections_direction_limit", MetricType::gauge,
          "The system's limit on pooled connections of one direction (+Inf: none).", kDirection);
  w.sample({to_string(Direction::inbound)}, limit(s.system_limits.connections_inbound));
  w.sample({to_string(Direction::outbound)}, limit(s.system_limits.connections_outbound));
  w.gauge("dep2p_connmgr_high_water",
          "Pooled connections at which a trim starts (0: trimming is off).", num(s.high_water));
  w.gauge("dep2p_connmgr_low_water",
          "Pooled connections a trim brings the pool down to (0: trimming is off).",
          num(s.low_water));

  w.gauge("dep2p_connmgr_peers", "Peers with at least one connection.", num(s.peers));
  w.gauge("dep2p_connmgr_temporary_peers", "Peers tagged but not connected.",
          num(s.temporary_peers));
  w.gauge("dep2p_connmgr_protected_peers", "Peers with at least one protection.",
          num(s.protected_peers));
  w.gauge("dep2p_connmgr_streams", "Streams open on pooled connections.", num(s.streams));
  w.gauge("dep2p_connmgr_streams_limit",
          "The system's limit on open streams, both directions together (+Inf: none).",
          limit(s.system_limits.streams_total));

  w.begin("dep2p_connmgr_rtt_seconds", MetricType::gauge_histogram,
          "Smoothed keepalive RTTs of the pooled connections that have one (a ping answered), "
          "now: the buckets may go down.");
  w.sample(s.rtts);

  w.counter("dep2p_connmgr_connections_added_total", "Connections added to the pool.",
            s.connections_added);
  w.counter("dep2p_connmgr_connections_removed_total", "Connections that left the pool.",
            s.connections_removed);
  w.counter("dep2p_connmgr_duplicate_reports_total",
            "Add or remove reports ignored as duplicate or unknown.", s.duplicate_reports);
  w.counter("dep2p_connmgr_closure_reports_total",
            "The host's reports of closes the manager made (expected).", s.closure_reports);
  w.counter("dep2p_connmgr_trims_total", "Trims that ran.", s.trims);
  w.counter("dep2p_connmgr_trims_joined_total", "trim() calls that joined a running trim.",
            s.trims_joined);
  w.begin("dep2p_connmgr_trim_duration_seconds", MetricType::histogram,
          "How long each trim took, from its start to its last close, on the manager's time "
          "source.");
  w.sample(s.trim_durations);
  w.counter("dep2p_connmgr_temporary_peers_pruned_total", "Temporary peer entries deleted.",
            s.temporary_peers_pruned);
  w.counter("dep2p_connmgr_protections_expired_total", "Peers whose last timed protection ended.",
            s.protections_expired);
  w.counter("dep2p_connmgr_decay_ticks_total", "Decay ticks that decayed at least one tag.",
            s.decay_ticks);
  w.counter("dep2p_connmgr_keepalive_pings_total", "Keepalive pings sent.", s.pings_sent);
  w.counter("dep2p_connmgr_keepalive_misses_total", "Keepalive pings unanswered in time or failed.",
            s.keepalive_misses);

  w.begin("dep2p_connmgr_closes_total", MetricType::counter, "Connections closed, by reason.",
          kReason);
  for (std::size_t i = 0; i < kCloseReasonCount; ++i) {
    w.sample({to_string(static_cast<CloseReason>(i))}, num(s.closes_by_reason[i]));
  }
  w.begin("dep2p_connmgr_refusals_total", MetricType::counter, "Admissions refused, by reason.",
          kReason);
  for (std::size_t i = 0; i < kRefusalReasonCount; ++i) {
    w.sample({to_string(static_cast<RefusalReason>(i))}, num(s.refusals_by_reason[i]));
  }

  // Admission: what reservations hold, next to the system's limits on it.
  w.begin("dep2p_connmgr_pending_handshakes", MetricType::gauge,
          "Admission slots held by handshakes in progress, by direction.", kDirection);
  w.sample({to_string(Direction::inbound)}, num(s.pending_inbound));
  w.sample({to_string(Direction::outbound)}, num(s.pending_outbound));
  w.begin("dep2p_connmgr_pending_handshakes_limit", MetricType::gauge,
          "The system's limit on handshakes in progress, by direction (+Inf: none).", kDirection);
  w.sample({to_string(Direction::inbound)}, limit(s.system_limits.pending_inbound));
  w.sample({to_string(Direction::outbound)}, limit(s.system_limits.pending_outbound));
  w.gauge("dep2p_connmgr_reservations", "Admission reservations alive.", num(s.reservations));
  w.gauge("dep2p_connmgr_reserved_memory_bytes", "Memory reserved through reservations.",
          num(s.memory_reserved));
  w.gauge("dep2p_connmgr_reserved_memory_limit_bytes",
          "The system's limit on memory reserved (+Inf: none).",
          limit(s.system_limits.memory_bytes, std::numeric_limits<std::uint64_t>::max()));
  w.gauge("dep2p_connmgr_reserved_fds", "File descriptors reserved through reservations.",
          num(s.fds_reserved));
  w.gauge("dep2p_connmgr_reserved_fds_limit",
          "The system's limit on file descriptors reserved (+Inf: none).",
          limit(s.system_limits.file_descriptors));
  w.gauge("dep2p_connmgr_capped_addresses",
          "Entries in the per-address, per-subnet and per-group cap tables.",
          num(s.capped_addresses));

  w.counter("dep2p_connmgr_dial_attempts_total", "Dials check_dial allowed.", s.dial_attempts);
  w.counter("dep2p_connmgr_dial_successes_total", "Dials the host reported successful.",
            s.dial_successes);
  w.begin("dep2p_connmgr_dial_failures_total", MetricType::counter,
          "Dial failures the host reported, by kind.", kKind);
  for (std::size_t i = 0; i < kDialFailureCount; ++i) {
    w.sample({to_string(static_cast<DialFailure>(i))}, num(s.dial_failures[i]));
  }
  w.counter("dep2p_connmgr_dial_failures_offline_total",
            "Dial failures reported while offline (they grew no backoff).",
            s.dial_failures_offline);
  w.gauge("dep2p_connmgr_backoff_entries", "Peers in the dial backoff table.",
          num(s.backoff_entries));
  w.gauge("dep2p_connmgr_peers_in_backoff",
          "Peers whose own or one of whose addresses' backoff lasts.", num(s.peers_in_backoff));
  w.gauge("dep2p_connmgr_dials_in_flight",
          "Dials allowed by check_dial whose outcome is still to come.", num(s.dials_in_flight));
  w.gauge("dep2p_connmgr_offline", "1 while the node is taken for offline.", s.offline ? 1 : 0);
  w.counter("dep2p_connmgr_reconnect_dials_total",
            "Reconnect dials the manager asked the Dialer for.", s.reconnect_dials);
  w.counter("dep2p_connmgr_reconnects_succeeded_total", "Reconnects whose dial succeeded.",
            s.reconnects_succeeded);
  w.counter("dep2p_connmgr_reconnects_given_up_total", "Reconnects that failed their last attempt.",
            s.reconnects_given_up);
  w.counter("dep2p_connmgr_direct_path_dials_total",
            "Direct-path dials the manager asked the Dialer for (peers reached through relays).",
            s.direct_path_dials);
  w.gauge("dep2p_connmgr_redials_queued", "Reconnects and direct-path jobs waiting or in flight.",
          num(s.redials_queued));
}

namespace detail {

void for_each_realm_metric(const std::vector<RealmFigures>& realms, MetricVisitor& visitor) {
  Walk w(visitor);
  w.gauge("dep2p_connmgr_realms", "Realms defined.", num(realms.size()));
  // One family per figure, one sample per realm.
  struct Field {
    std::string_view name;
    MetricType type;
    std::string_view help;
    double (*get)(const RealmFigures&);
  };
  static constexpr Field kUsage[] = {
      {"dep2p_connmgr_realm_connections", MetricType::gauge, "Connections bound to the realm.",
       [](const RealmFigures& r) { return num(r.stats.connections); }},
      {"dep2p_connmgr_realm_members", MetricType::gauge, "Distinct peers bound to the realm.",
       [](const RealmFigures& r) { return num(r.stats.members); }},
      {"dep2p_connmgr_realm_binds_total", MetricType::counter, "Connections bound to the realm.",
       [](const RealmFigures& r) { return num(r.stats.binds); }},
      {"dep2p_connmgr_realm_unbinds_total", MetricType::counter,
       "Bindings ended: explicitly, by disconnect or by realm removal.",
       [](const RealmFigures& r) { return num(r.stats.unbinds); }},
      {"dep2p_connmgr_realm_trims_total", MetricType::counter, "Realm trims that ran.",
       [](const RealmFigures& r) { return num(r.stats.trims); }},
      {"dep2p_connmgr_realm_claims_pending", MetricType::gauge,
       "Claims outstanding: admissions that claimed the realm, not yet added or dropped.",
       [](const RealmFigures& r) { return num(r.stats.pending); }},
      {"dep2p_connmgr_realm_claims_total", MetricType::counter, "Claims of the realm accepted.",
       [](const RealmFigures& r) { return num(r.stats.claims); }},
      {"dep2p_connmgr_realm_made_room_total", MetricType::counter,
       "Members admitted above a full connection cap while the realm was below its reserve, "
       "each by closing another connection.",
       [](const RealmFigures& r) { return num(r.stats.made_room); }},
      {"dep2p_connmgr_realm_streams", MetricType::gauge,
       "Streams open on the realm's bound connections (counted once a realm limits streams).",
       [](const RealmFigures& r) { return num(r.stats.streams); }},
  };
  for (const Field& field : kUsage) {
    w.begin(field.name, field.type, field.help, kRealm);
    for (const RealmFigures& realm : realms) w.sample({realm.name}, field.get(realm));
  }

  // Breakdowns as labels: every refusal of the realm by what refused it, and the bound
  // connections trims closed by whose trim.
  w.begin("dep2p_connmgr_realm_refusals_total", MetricType::counter,
          "Refusals for the realm, by reason: full (binds and claims at hard_max or "
          "max_members), max_pending (claims), no_room (members above a full cap while the realm "
          "was below its reserve, with nothing to close), max_streams (stream opens).",
          kRealmReason);
  for (const RealmFigures& realm : realms) {
    w.sample({realm.name, "full"}, num(realm.stats.refused_full));
    w.sample({realm.name, "max_pending"}, num(realm.stats.refused_pending));
    w.sample({realm.name, "no_room"}, num(realm.stats.refused_no_room));
    w.sample({realm.name, "max_streams"}, num(realm.stats.refused_streams));
  }
  w.begin("dep2p_connmgr_realm_trimmed_total", MetricType::counter,
          "Bound connections closed by trims, by trim: the realm's own, or the node's.",
          kRealmTrim);
  for (const RealmFigures& realm : realms) {
    w.sample({realm.name, "realm"}, num(realm.stats.trimmed));
    w.sample({realm.name, "node"}, num(realm.stats.trimmed_globally));
  }

  // The configured limits, next to the usage above.
  static constexpr Field kLimits[] = {
      {"dep2p_connmgr_realm_hard_max", MetricType::gauge,
       "The realm's hard_max: bound connections at most (+Inf: none).",
       [](const RealmFigures& r) { return realm_limit(r.config.hard_max); }},
      {"dep2p_connmgr_realm_max_members", MetricType::gauge,
       "The realm's max_members (+Inf: none).",
       [](const RealmFigures& r) { return realm_limit(r.config.max_members); }},
      {"dep2p_connmgr_realm_max_pending", MetricType::gauge,
       "The realm's max_pending (+Inf: none).",
       [](const RealmFigures& r) { return realm_limit(r.config.max_pending); }},
      {"dep2p_connmgr_realm_max_streams", MetricType::gauge,
       "The realm's max_streams (+Inf: none).",
       [](const RealmFigures& r) { return realm_limit(r.config.max_streams); }},
      {"dep2p_connmgr_realm_low_water", MetricType::gauge,
       "The realm's low water: its trim's target and its share.",
       [](const RealmFigures& r) { return num(r.config.low_water); }},
      {"dep2p_connmgr_realm_high_water", MetricType::gauge,
       "The realm's high water (0: no realm trim).",
       [](const RealmFigures& r) { return num(r.config.high_water); }},
      {"dep2p_connmgr_realm_min_reserved", MetricType::gauge,
       "Bound connections the node's trim leaves the realm.",
       [](const RealmFigures& r) { return num(r.config.min_reserved); }},
  };
  for (const Field& field : kLimits) {
    w.begin(field.name, field.type, field.help, kRealm);
    for (const RealmFigures& realm : realms) w.sample({realm.name}, field.get(realm));
  }
}

}  // namespace detail
}  // namespace dep2p::connmgr
