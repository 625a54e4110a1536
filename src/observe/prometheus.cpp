// write_prometheus(): Stats (and realm stats) in the Prometheus text exposition format
// 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/). Each family gets
// `# HELP` and `# TYPE` once, then its samples; counters end in `_total`; label values are
// escaped (backslash, double quote, newline). The text is built from a Stats snapshot and
// written in one go, with no lock held.
#include <charconv>
#include <chrono>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "dep2p/connmgr/admission.hpp"
#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/realm_manager.hpp"
#include "observe/observability.hpp"

namespace dep2p::connmgr {
namespace detail {
namespace {

constexpr std::string_view kPrefix = "dep2p_connmgr_";

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

std::string format_number(std::uint64_t value) { return std::to_string(value); }

// The shortest text that reads back as the same double (never locale-dependent).
std::string format_number(double value) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return result.ec == std::errc{} ? std::string(buffer, result.ptr) : std::string("NaN");
}

double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

class Exposition {
 public:
  // Starts a family: its HELP and TYPE lines.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    name_ = std::string(kPrefix) + std::string(name);
    text_ += "# HELP " + name_ + " " + escape_help(help) + "\n";
    text_ += "# TYPE " + name_ + " " + std::string(type) + "\n";
  }
  // A sample of the current family, unlabelled or with one label.
  template <typename Number>
  void sample(Number value) {
    text_ += name_ + " " + format_number(value) + "\n";
  }
  template <typename Number>
  void sample(std::string_view label, std::string_view label_value, Number value) {
    text_ += name_ + "{" + std::string(label) + "=\"" + escape_label_value(label_value) + "\"} " +
             format_number(value) + "\n";
  }

  const std::string& text() const { return text_; }

 private:
  std::string name_;
  std::string text_;
};

std::uint64_t u64(std::size_t n) { return static_cast<std::uint64_t>(n); }

void gauge(Exposition& x, std::string_view name, std::string_view help, std::size_t value) {
  x.family(name, "gauge", help);
  x.sample(u64(value));
}
void counter(Exposition& x, std::string_view name, std::string_view help, std::uint64_t value) {
  x.family(name, "counter", help);
  x.sample(value);
}

void write_stats(Exposition& x, const Stats& s) {
  x.family("connections", "gauge", "Connections in the pool, by direction.");
  x.sample("direction", to_string(Direction::inbound), u64(s.inbound));
  x.sample("direction", to_string(Direction::outbound), u64(s.outbound));
  x.family("connections_by_path", "gauge", "Connections in the pool, by path kind.");
  x.sample("path", to_string(PathKind::direct), u64(s.direct));
  x.sample("path", to_string(PathKind::relay), u64(s.relay));
  x.family("connections_by_state", "gauge",
           "Connections by lifecycle state; dialing and handshaking ones are pending, not "
           "yet in the pool.");
  x.sample("state", to_string(ConnectionState::dialing), u64(s.dialing));
  x.sample("state", to_string(ConnectionState::handshaking), u64(s.handshaking));
  x.sample("state", to_string(ConnectionState::established), u64(s.established));
  x.sample("state", to_string(ConnectionState::closing), u64(s.closing));
  gauge(x, "peers", "Peers with at least one connection.", s.peers);
  gauge(x, "temporary_peers", "Peers tagged but not connected.", s.temporary_peers);
  gauge(x, "protected_peers", "Peers with at least one protection.", s.protected_peers);
  gauge(x, "streams", "Streams open on pooled connections.", s.streams);

  gauge(x, "rtt_measured_connections",
        "Pooled connections with a smoothed keepalive RTT (a ping answered).", s.rtt.count);
  // No sample while nothing is measured: a 0 would read as an instant round trip.
  struct RttStat {
    std::string_view name;
    std::string_view help;
    Duration value;
  };
  const RttStat rtt_stats[] = {
      {"rtt_min_seconds", "The lowest smoothed keepalive RTT of the measured connections.",
       s.rtt.min},
      {"rtt_mean_seconds", "The mean smoothed keepalive RTT of the measured connections.",
       s.rtt.mean},
      {"rtt_max_seconds", "The highest smoothed keepalive RTT of the measured connections.",
       s.rtt.max},
  };
  for (const RttStat& rtt : rtt_stats) {
    x.family(rtt.name, "gauge", rtt.help);
    if (s.rtt.count > 0) x.sample(seconds(rtt.value));
  }

  counter(x, "connections_added_total", "Connections added to the pool.", s.connections_added);
  counter(x, "connections_removed_total", "Connections that left the pool.", s.connections_removed);
  counter(x, "duplicate_reports_total", "Add or remove reports ignored as duplicate or unknown.",
          s.duplicate_reports);
  counter(x, "closure_reports_total", "The host's reports of closes the manager made (expected).",
          s.closure_reports);
  counter(x, "trims_total", "Trims that ran.", s.trims);
  counter(x, "trims_joined_total", "trim() calls that joined a running trim.", s.trims_joined);
  counter(x, "temporary_peers_pruned_total", "Temporary peer entries deleted.",
          s.temporary_peers_pruned);
  counter(x, "protections_expired_total", "Peers whose last timed protection ended.",
          s.protections_expired);
  counter(x, "decay_ticks_total", "Decay ticks that decayed at least one tag.", s.decay_ticks);
  counter(x, "keepalive_pings_total", "Keepalive pings sent.", s.pings_sent);
  counter(x, "keepalive_misses_total", "Keepalive pings unanswered in time or failed.",
          s.keepalive_misses);

  x.family("closes_total", "counter", "Connections closed, by reason.");
  for (std::size_t i = 0; i < kCloseReasonCount; ++i) {
    x.sample("reason", to_string(static_cast<CloseReason>(i)), s.closes_by_reason[i]);
  }
  x.family("refusals_total", "counter", "Admissions refused, by reason.");
  for (std::size_t i = 0; i < kRefusalReasonCount; ++i) {
    x.sample("reason", to_string(static_cast<RefusalReason>(i)), s.refusals_by_reason[i]);
  }

  x.family("pending_handshakes", "gauge",
           "Admission slots held by handshakes in progress, by direction.");
  x.sample("direction", to_string(Direction::inbound), u64(s.pending_inbound));
  x.sample("direction", to_string(Direction::outbound), u64(s.pending_outbound));
  gauge(x, "reservations", "Admission reservations alive.", s.reservations);
  x.family("reserved_memory_bytes", "gauge", "Memory reserved through reservations.");
  x.sample(s.memory_reserved);
  gauge(x, "reserved_fds", "File descriptors reserved through reservations.", s.fds_reserved);
  gauge(x, "capped_addresses", "Entries in the per-address and per-subnet cap tables.",
        s.capped_addresses);

  counter(x, "dial_attempts_total", "Dials check_dial allowed.", s.dial_attempts);
  counter(x, "dial_successes_total", "Dials the host reported successful.", s.dial_successes);
  x.family("dial_failures_total", "counter", "Dial failures the host reported, by kind.");
  for (std::size_t i = 0; i < kDialFailureCount; ++i) {
    x.sample("kind", to_string(static_cast<DialFailure>(i)), s.dial_failures[i]);
  }
  counter(x, "dial_failures_offline_total",
          "Dial failures reported while offline (they grew no backoff).", s.dial_failures_offline);
  gauge(x, "backoff_entries", "Peers in the dial backoff table.", s.backoff_entries);
  gauge(x, "peers_in_backoff", "Peers whose own or one of whose addresses' backoff lasts.",
        s.peers_in_backoff);
  gauge(x, "dials_in_flight", "Dials allowed by check_dial whose outcome is still to come.",
        s.dials_in_flight);
  gauge(x, "offline", "1 while the node is taken for offline.", std::size_t{s.offline ? 1u : 0u});
  counter(x, "reconnect_dials_total", "Reconnect dials the manager asked the Dialer for.",
          s.reconnect_dials);
  counter(x, "reconnects_succeeded_total", "Reconnects whose dial succeeded.",
          s.reconnects_succeeded);
  counter(x, "reconnects_given_up_total", "Reconnects that failed their last attempt.",
          s.reconnects_given_up);
  counter(x, "direct_path_dials_total",
          "Direct-path dials the manager asked the Dialer for (peers reached through relays).",
          s.direct_path_dials);
  gauge(x, "redials_queued", "Reconnects and direct-path jobs waiting or in flight.",
        s.redials_queued);
}

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
  Exposition x;
  write_stats(x, stats);
  out << x.text();
}

void write_realm_prometheus(std::ostream& out, const std::vector<RealmFigures>& realms) {
  Exposition x;
  gauge(x, "realms", "Realms defined.", realms.size());
  // One family per figure, one sample per realm.
  struct Field {
    std::string_view name;
    std::string_view type;
    std::string_view help;
    std::uint64_t (*get)(const RealmFigures&);
  };
  static constexpr Field kFields[] = {
      {"realm_connections", "gauge", "Connections bound to the realm.",
       [](const RealmFigures& r) { return u64(r.stats.connections); }},
      {"realm_members", "gauge", "Distinct peers bound to the realm.",
       [](const RealmFigures& r) { return u64(r.stats.members); }},
      {"realm_binds_total", "counter", "Connections bound to the realm.",
       [](const RealmFigures& r) { return r.stats.binds; }},
      {"realm_unbinds_total", "counter",
       "Bindings ended: explicitly, by disconnect or by realm removal.",
       [](const RealmFigures& r) { return r.stats.unbinds; }},
      {"realm_refused_full_total", "counter",
       "Binds and claims refused because the realm was full.",
       [](const RealmFigures& r) { return r.stats.refused_full; }},
      {"realm_trims_total", "counter", "Realm trims that ran.",
       [](const RealmFigures& r) { return r.stats.trims; }},
      {"realm_trimmed_total", "counter", "Connections closed by the realm's own trims.",
       [](const RealmFigures& r) { return r.stats.trimmed; }},
      {"realm_trimmed_globally_total", "counter", "Bound connections closed by the node's trims.",
       [](const RealmFigures& r) { return r.stats.trimmed_globally; }},
      {"realm_claims_pending", "gauge",
       "Claims outstanding: admissions that claimed the realm, not yet added or dropped.",
       [](const RealmFigures& r) { return u64(r.stats.pending); }},
      {"realm_claims_total", "counter", "Claims of the realm accepted.",
       [](const RealmFigures& r) { return r.stats.claims; }},
      {"realm_refused_pending_total", "counter", "Claims refused at the realm's max_pending.",
       [](const RealmFigures& r) { return r.stats.refused_pending; }},
      {"realm_made_room_total", "counter",
       "Members admitted above a full connection cap while the realm was below its reserve, "
       "each by closing another connection.",
       [](const RealmFigures& r) { return r.stats.made_room; }},
      {"realm_refused_no_room_total", "counter",
       "Members above a full cap refused while the realm was below its reserve: nothing "
       "could close for them.",
       [](const RealmFigures& r) { return r.stats.refused_no_room; }},
      {"realm_streams", "gauge",
       "Streams open on the realm's bound connections (counted once a realm limits streams).",
       [](const RealmFigures& r) { return u64(r.stats.streams); }},
      {"realm_refused_streams_total", "counter", "Stream opens refused at the realm's max_streams.",
       [](const RealmFigures& r) { return r.stats.refused_streams; }},
      {"realm_hard_max", "gauge", "The realm's hard_max (0: no limit).",
       [](const RealmFigures& r) { return u64(r.config.hard_max); }},
      {"realm_max_members", "gauge", "The realm's max_members (0: no limit).",
       [](const RealmFigures& r) { return u64(r.config.max_members); }},
      {"realm_max_pending", "gauge", "The realm's max_pending (0: no limit).",
       [](const RealmFigures& r) { return u64(r.config.max_pending); }},
      {"realm_max_streams", "gauge", "The realm's max_streams (0: no limit).",
       [](const RealmFigures& r) { return u64(r.config.max_streams); }},
      {"realm_low_water", "gauge", "The realm's low water: its trim's target and its share.",
       [](const RealmFigures& r) { return u64(r.config.low_water); }},
      {"realm_high_water", "gauge", "The realm's high water (0: no realm trim).",
       [](const RealmFigures& r) { return u64(r.config.high_water); }},
      {"realm_min_reserved", "gauge", "Bound connections the node's trim leaves the realm.",
       [](const RealmFigures& r) { return u64(r.config.min_reserved); }},
  };
  for (const Field& field : kFields) {
    x.family(field.name, field.type, field.help);
    for (const RealmFigures& realm : realms) x.sample("realm", realm.name, field.get(realm));
  }
  out << x.text();
}

}  // namespace detail

}  // namespace dep2p::connmgr
