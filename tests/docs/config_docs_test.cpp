// docs/configuration.md against the code. Each table of defaults there is preceded by a
// marker, <!-- defaults: StructName -->, and has a `setting` and a `default` column; this
// test reads those tables and compares every documented default with the value-initialised
// struct, field by field, and fails on a field that is undocumented, documented but
// unknown, or documented with another default. The presets table
// (<!-- presets -->) is compared with Config::preset(). Boost.PFR counts each struct's
// fields, so a field added to a struct without a line here (and in the docs) fails too.
//
// Default column grammar: a count ("100", "10 000"), a decimal ("0.1"), "unlimited", a duration
// ("20 s", "500 ms", "1 min", "2 h"), "true" / "false", a token-bucket rate ("10/s burst 50" or
// "disabled"), or "none" (an empty optional or list).
#include <gtest/gtest.h>

#include <boost/pfr/core.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "dep2p/connmgr/config.hpp"
#include "dep2p/connmgr/limits.hpp"
#include "dep2p/connmgr/path_selector.hpp"
#include "dep2p/connmgr/realm_manager.hpp"
#include "dep2p/connmgr/trimmer.hpp"

namespace dep2p::connmgr {
namespace {

using std::chrono::milliseconds;

// --- Canonical text of a value -------------------------------------------------------
// Both sides, the documented text and the actual value, are reduced to the same canonical
// text: a count in decimal or "unlimited", a duration in milliseconds ("20000 ms"),
// "true"/"false", a rate as "<per second>/s burst <burst>", "none".

std::string count(std::uint64_t v, std::uint64_t unlimited) {
  return v == unlimited ? "unlimited" : std::to_string(v);
}
std::string count(std::size_t v) { return count(v, kUnlimited); }
std::string duration(Duration d) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(d).count()) + " ms";
}
std::string flag(bool b) { return b ? "true" : "false"; }
std::string number(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}
std::string rate(const Rate& r) { return number(r.per_second) + "/s burst " + number(r.burst); }

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(" \t");
  return s.substr(first, last - first + 1);
}

std::string strip_backticks(std::string s) {
  std::erase(s, '`');
  return trim(s);
}

// The documented text in canonical form, or an explanation starting with "?" when it
// fits no form of the grammar.
std::string canonical(const std::string& documented) {
  const std::string text = strip_backticks(documented);
  static const std::regex duration_re(R"((\d+) ?(ms|s|min|h))");
  static const std::regex rate_re(R"(([0-9.]+)/s burst ([0-9.]+))");
  static const std::regex count_re(R"([0-9][0-9 ]*)");
  std::smatch m;
  if (text == "unlimited" || text == "true" || text == "false" || text == "none") return text;
  if (text == "disabled") return rate(Rate{0, 0});
  if (std::regex_match(text, m, duration_re)) {
    const std::map<std::string, std::int64_t> unit_ms = {
        {"ms", 1}, {"s", 1000}, {"min", 60'000}, {"h", 3'600'000}};
    return std::to_string(std::stoll(m[1].str()) * unit_ms.at(m[2].str())) + " ms";
  }
  if (std::regex_match(text, m, rate_re)) {
    return rate(Rate{std::stod(m[1].str()), std::stod(m[2].str())});
  }
  static const std::regex decimal_re(R"([0-9]+\.[0-9]+)");
  if (std::regex_match(text, decimal_re)) return number(std::stod(text));
  if (std::regex_match(text, count_re)) {
    std::string digits = text;
    std::erase(digits, ' ');
    return digits;
  }
  return "? not a default in the documented grammar: '" + text + "'";
}

// --- The documented tables -----------------------------------------------------------

// One table of docs/configuration.md: the first column's cells (`setting`) to the cells
// of the named column.
using Table = std::map<std::string, std::map<std::string, std::string>>;

std::vector<std::string> cells(const std::string& row) {
  std::vector<std::string> out;
  std::string cell;
  // Split on '|' outside backticks, so `a|b` inside code stays one cell.
  bool code = false;
  for (std::size_t i = 0; i < row.size(); ++i) {
    const char c = row[i];
    if (c == '`') code = !code;
    if (c == '|' && !code) {
      out.push_back(trim(cell));
      cell.clear();
    } else {
      cell += c;
    }
  }
  out.push_back(trim(cell));
  // A row "| a | b |" splits into "", "a", "b", "": drop the outer empties.
  if (!out.empty() && out.front().empty()) out.erase(out.begin());
  if (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

// Tables keyed by their marker: "<!-- defaults: Config -->" gives "Config".
std::map<std::string, Table> read_tables(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot read " << path;
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);

  static const std::regex marker_re(R"(<!--\s*(defaults:\s*(\w+)|presets)\s*-->)");
  std::map<std::string, Table> tables;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::smatch m;
    if (!std::regex_search(lines[i], m, marker_re)) continue;
    const std::string name = m[2].matched ? m[2].str() : "presets";
    EXPECT_EQ(tables.count(name), 0u) << "two tables marked " << name;
    std::size_t at = i + 1;
    while (at < lines.size() && trim(lines[at]).empty()) ++at;
    if (at + 1 >= lines.size() || lines[at].rfind('|', 0) != 0) {
      ADD_FAILURE() << "marker " << name << " is not followed by a table";
      continue;
    }
    const std::vector<std::string> header = cells(lines[at]);
    Table& table = tables[name];
    for (at += 2; at < lines.size() && lines[at].rfind('|', 0) == 0; ++at) {
      const std::vector<std::string> row = cells(lines[at]);
      EXPECT_EQ(row.size(), header.size()) << path << ":" << at + 1 << ": wrong cell count";
      const std::string key = strip_backticks(row.at(0));
      EXPECT_EQ(table.count(key), 0u) << name << ": " << key << " documented twice";
      for (std::size_t c = 1; c < row.size() && c < header.size(); ++c) {
        table[key][header[c]] = row[c];
      }
    }
  }
  return tables;
}

const std::map<std::string, Table>& documented() {
  static const auto tables = read_tables(std::string(DEP2P_SOURCE_DIR) + "/docs/configuration.md");
  return tables;
}

// --- The code's fields ---------------------------------------------------------------

template <typename T>
using Fields = std::map<std::string, std::function<std::string(const T&)>>;

Fields<Config> config_fields() {
  return {
      {"low_water", [](const Config& c) { return count(c.low_water); }},
      {"high_water", [](const Config& c) { return count(c.high_water); }},
      {"grace_period", [](const Config& c) { return duration(c.grace_period); }},
      {"silence_period", [](const Config& c) { return duration(c.silence_period); }},
      {"max_temp_peers", [](const Config& c) { return count(c.max_temp_peers); }},
      {"decay_resolution", [](const Config& c) { return duration(c.decay_resolution); }},
      {"temp_peer_lifetime", [](const Config& c) { return duration(c.temp_peer_lifetime); }},
      {"tag_retention", [](const Config& c) { return duration(c.tag_retention); }},
      {"max_peers_per_protection_tag",
       [](const Config& c) { return count(c.max_peers_per_protection_tag); }},
      {"keepalive_interval", [](const Config& c) { return duration(c.keepalive_interval); }},
      {"keepalive_timeout", [](const Config& c) { return duration(c.keepalive_timeout); }},
      {"keepalive_max_missed", [](const Config& c) { return count(c.keepalive_max_missed); }},
      {"idle_timeout", [](const Config& c) { return duration(c.idle_timeout); }},
      {"path_idle_timeout", [](const Config& c) { return duration(c.path_idle_timeout); }},
      {"handshake_timeout", [](const Config& c) { return duration(c.handshake_timeout); }},
      {"max_connections_per_peer",
       [](const Config& c) { return count(c.max_connections_per_peer); }},
      {"redundant_grace", [](const Config& c) { return duration(c.redundant_grace); }},
      {"local_node_id",
       [](const Config& c) { return c.local_node_id ? c.local_node_id->to_hex() : "none"; }},
  };
}
// Config::limits, Config::dial and Config::diversity, documented by their own tables.
constexpr std::size_t kConfigStructFields = 3;

Fields<DiversityConfig> diversity_fields() {
  return {
      {"enabled", [](const DiversityConfig& d) { return flag(d.enabled); }},
      {"ipv4_prefix", [](const DiversityConfig& d) { return count(std::size_t{d.ipv4_prefix}); }},
      {"ipv6_prefix", [](const DiversityConfig& d) { return count(std::size_t{d.ipv6_prefix}); }},
      {"loopback_v4_prefix",
       [](const DiversityConfig& d) { return count(std::size_t{d.loopback_v4_prefix}); }},
      {"group_slots", [](const DiversityConfig& d) { return count(std::size_t{d.group_slots}); }},
      {"rtt_slots", [](const DiversityConfig& d) { return count(std::size_t{d.rtt_slots}); }},
      {"age_slots", [](const DiversityConfig& d) { return count(std::size_t{d.age_slots}); }},
      {"grace_per_group",
       [](const DiversityConfig& d) { return count(std::size_t{d.grace_per_group}); }},
      {"salt", [](const DiversityConfig& d) { return d.salt ? std::to_string(*d.salt) : "none"; }},
      {"max_per_group", [](const DiversityConfig& d) { return count(d.max_per_group); }},
  };
}

Fields<DialConfig> dial_fields() {
  return {
      {"error_backoff", [](const DialConfig& d) { return duration(d.error_backoff); }},
      {"error_backoff_max", [](const DialConfig& d) { return duration(d.error_backoff_max); }},
      {"timeout_backoff", [](const DialConfig& d) { return duration(d.timeout_backoff); }},
      {"timeout_backoff_max", [](const DialConfig& d) { return duration(d.timeout_backoff_max); }},
      {"refused_backoff", [](const DialConfig& d) { return duration(d.refused_backoff); }},
      {"refused_backoff_max", [](const DialConfig& d) { return duration(d.refused_backoff_max); }},
      {"backoff_factor", [](const DialConfig& d) { return number(d.backoff_factor); }},
      {"backoff_jitter", [](const DialConfig& d) { return number(d.backoff_jitter); }},
      {"backoff_memory", [](const DialConfig& d) { return duration(d.backoff_memory); }},
      {"max_backoff_peers", [](const DialConfig& d) { return count(d.max_backoff_peers); }},
      {"max_backoff_addresses", [](const DialConfig& d) { return count(d.max_backoff_addresses); }},
      {"dial_timeout", [](const DialConfig& d) { return duration(d.dial_timeout); }},
      {"offline_after_failures",
       [](const DialConfig& d) { return count(std::size_t{d.offline_after_failures}); }},
      {"reconnect_protected", [](const DialConfig& d) { return flag(d.reconnect_protected); }},
      {"reconnect_tags",
       [](const DialConfig& d) {
         std::string out;
         for (const std::string& tag : d.reconnect_tags) out += (out.empty() ? "" : ", ") + tag;
         return out.empty() ? std::string("none") : out;
       }},
      {"reconnect_held", [](const DialConfig& d) { return flag(d.reconnect_held); }},
      {"reconnect_attempts",
       [](const DialConfig& d) { return count(std::size_t{d.reconnect_attempts}); }},
      {"max_parallel_dials", [](const DialConfig& d) { return count(d.max_parallel_dials); }},
      {"direct_path_interval",
       [](const DialConfig& d) { return duration(d.direct_path_interval); }},
      {"direct_path_interval_max",
       [](const DialConfig& d) { return duration(d.direct_path_interval_max); }},
  };
}

Fields<ScopeLimits> scope_fields() {
  return {
      {"connections_inbound", [](const ScopeLimits& s) { return count(s.connections_inbound); }},
      {"connections_outbound", [](const ScopeLimits& s) { return count(s.connections_outbound); }},
      {"connections_total", [](const ScopeLimits& s) { return count(s.connections_total); }},
      {"streams_inbound", [](const ScopeLimits& s) { return count(s.streams_inbound); }},
      {"streams_outbound", [](const ScopeLimits& s) { return count(s.streams_outbound); }},
      {"streams_total", [](const ScopeLimits& s) { return count(s.streams_total); }},
      {"pending_inbound", [](const ScopeLimits& s) { return count(s.pending_inbound); }},
      {"pending_outbound", [](const ScopeLimits& s) { return count(s.pending_outbound); }},
      {"memory_bytes",
       [](const ScopeLimits& s) {
         return count(s.memory_bytes, std::numeric_limits<std::uint64_t>::max());
       }},
      {"file_descriptors", [](const ScopeLimits& s) { return count(s.file_descriptors); }},
  };
}

Fields<SubnetCaps> subnet_fields() {
  return {
      {"ipv4_32", [](const SubnetCaps& s) { return count(s.ipv4_32); }},
      {"ipv4_24", [](const SubnetCaps& s) { return count(s.ipv4_24); }},
      {"ipv6_56", [](const SubnetCaps& s) { return count(s.ipv6_56); }},
      {"ipv6_48", [](const SubnetCaps& s) { return count(s.ipv6_48); }},
      {"exempt_loopback", [](const SubnetCaps& s) { return flag(s.exempt_loopback); }},
      {"overrides",
       [](const SubnetCaps& s) {
         return s.overrides.empty() ? std::string("none") : std::to_string(s.overrides.size());
       }},
  };
}

Fields<InboundRates> rate_fields() {
  return {
      {"ipv4_24", [](const InboundRates& r) { return rate(r.ipv4_24); }},
      {"ipv4_16", [](const InboundRates& r) { return rate(r.ipv4_16); }},
      {"ipv6_64", [](const InboundRates& r) { return rate(r.ipv6_64); }},
      {"ipv6_48", [](const InboundRates& r) { return rate(r.ipv6_48); }},
      {"exempt_loopback", [](const InboundRates& r) { return flag(r.exempt_loopback); }},
      {"max_buckets", [](const InboundRates& r) { return count(r.max_buckets); }},
  };
}

Fields<Limits> limits_fields() {
  return {{"outbound_dials", [](const Limits& l) { return rate(l.outbound_dials); }}};
}
constexpr std::size_t kLimitsStructFields = 4;  // system, peer, subnets, inbound_rate

Fields<RealmConfig> realm_fields() {
  return {
      {"max_members", [](const RealmConfig& r) { return count(r.max_members); }},
      {"hard_max", [](const RealmConfig& r) { return count(r.hard_max); }},
      {"low_water", [](const RealmConfig& r) { return count(r.low_water); }},
      {"high_water", [](const RealmConfig& r) { return count(r.high_water); }},
      {"min_reserved", [](const RealmConfig& r) { return count(r.min_reserved); }},
      {"max_pending", [](const RealmConfig& r) { return count(r.max_pending); }},
      {"max_streams", [](const RealmConfig& r) { return count(r.max_streams); }},
  };
}

Fields<PathSelectorOptions> path_selector_fields() {
  return {
      {"switch_threshold",
       [](const PathSelectorOptions& o) { return duration(o.switch_threshold); }},
      {"ipv6_bias", [](const PathSelectorOptions& o) { return duration(o.ipv6_bias); }},
  };
}

Fields<ActivityTrimmerOptions> activity_trimmer_fields() {
  return {{"balance_directions",
           [](const ActivityTrimmerOptions& o) { return flag(o.balance_directions); }}};
}

// Compares the table marked `name` with `value`'s fields: the same set of names, and each
// documented default equal to the field's value.
template <typename T>
void expect_documented(const std::string& name, const Fields<T>& fields, const T& value) {
  SCOPED_TRACE("docs/configuration.md, table <!-- defaults: " + name + " -->");
  const auto found = documented().find(name);
  ASSERT_NE(found, documented().end()) << "no table marked <!-- defaults: " << name << " -->";
  const Table& table = found->second;
  for (const auto& [field, actual] : fields) {
    const auto row = table.find(field);
    if (row == table.end()) {
      ADD_FAILURE() << name << "::" << field << " is not documented";
      continue;
    }
    const auto cell = row->second.find("default");
    ASSERT_NE(cell, row->second.end()) << "the table has no `default` column";
    EXPECT_EQ(canonical(cell->second), actual(value))
        << name << "::" << field << " is documented as '" << cell->second << "'";
  }
  for (const auto& [field, row] : table) {
    EXPECT_TRUE(fields.count(field) != 0)
        << "'" << field << "' is documented in " << name << " but is not a field of it";
  }
}

TEST(ConfigDocs, EveryConfigFieldIsDocumentedWithItsDefault) {
  expect_documented("Config", config_fields(), Config{});
}

TEST(ConfigDocs, EveryLimitIsDocumentedWithItsDefault) {
  const Limits limits{};
  expect_documented("ScopeLimits", scope_fields(), limits.system);
  expect_documented("ScopeLimits", scope_fields(), limits.peer);
  expect_documented("SubnetCaps", subnet_fields(), limits.subnets);
  expect_documented("InboundRates", rate_fields(), limits.inbound_rate);
  expect_documented("Limits", limits_fields(), limits);
  // The documented Config defaults include these limits.
  const Config config{};
  EXPECT_EQ(count(config.limits.system.connections_total), count(limits.system.connections_total));
}

TEST(ConfigDocs, EveryDialSettingIsDocumentedWithItsDefault) {
  expect_documented("DialConfig", dial_fields(), DialConfig{});
}

TEST(ConfigDocs, EveryDiversitySettingIsDocumentedWithItsDefault) {
  expect_documented("DiversityConfig", diversity_fields(), DiversityConfig{});
}

TEST(ConfigDocs, EveryRealmSettingIsDocumentedWithItsDefault) {
  expect_documented("RealmConfig", realm_fields(), RealmConfig{});
}

TEST(ConfigDocs, PolicyOptionsAreDocumentedWithTheirDefaults) {
  expect_documented("PathSelectorOptions", path_selector_fields(), PathSelectorOptions{});
  expect_documented("ActivityTrimmerOptions", activity_trimmer_fields(), ActivityTrimmerOptions{});
}

// A field added to one of these structs must be added to this test and to the docs.
TEST(ConfigDocs, TheTestKnowsEveryFieldOfTheDocumentedStructs) {
  EXPECT_EQ(boost::pfr::tuple_size_v<Config>, config_fields().size() + kConfigStructFields);
  EXPECT_EQ(boost::pfr::tuple_size_v<ScopeLimits>, scope_fields().size());
  EXPECT_EQ(boost::pfr::tuple_size_v<SubnetCaps>, subnet_fields().size());
  EXPECT_EQ(boost::pfr::tuple_size_v<InboundRates>, rate_fields().size());
  EXPECT_EQ(boost::pfr::tuple_size_v<Limits>, limits_fields().size() + kLimitsStructFields);
  EXPECT_EQ(boost::pfr::tuple_size_v<RealmConfig>, realm_fields().size());
  EXPECT_EQ(boost::pfr::tuple_size_v<DialConfig>, dial_fields().size());
  EXPECT_EQ(boost::pfr::tuple_size_v<DiversityConfig>, diversity_fields().size());
  EXPECT_EQ(boost::pfr::tuple_size_v<PathSelectorOptions>, path_selector_fields().size());
  EXPECT_EQ(boost::pfr::tuple_size_v<ActivityTrimmerOptions>, activity_trimmer_fields().size());
}

// The presets table: one row per preset, one column per Config field the preset changes;
// every other field must keep Config{}'s default.
TEST(ConfigDocs, PresetsAreDocumentedAsConfigPresetBuildsThem) {
  const auto found = documented().find("presets");
  ASSERT_NE(found, documented().end()) << "no table marked <!-- presets -->";
  const std::map<std::string, Preset> presets = {{"minimal", Preset::minimal},
                                                 {"mobile", Preset::mobile},
                                                 {"desktop", Preset::desktop},
                                                 {"server", Preset::server}};
  std::set<std::string> seen;
  const auto fields = config_fields();
  for (const auto& [label, columns] : found->second) {
    // "desktop (default)" names the desktop preset.
    const std::string name = label.substr(0, label.find(' '));
    const auto preset = presets.find(name);
    if (preset == presets.end()) {
      ADD_FAILURE() << "unknown preset '" << label << "' in the presets table";
      continue;
    }
    seen.insert(name);
    const Config built = Config::preset(preset->second);
    const Config defaults{};
    for (const auto& [field, actual] : fields) {
      const auto cell = columns.find(field);
      const std::string want = cell != columns.end() && strip_backticks(cell->second) != "-"
                                   ? canonical(cell->second)
                                   : actual(defaults);
      EXPECT_EQ(actual(built), want) << "preset " << name << ", field " << field;
    }
    for (const auto& [column, cell] : columns) {
      EXPECT_TRUE(fields.count(column) != 0)
          << "presets column '" << column << "' is not a Config field";
    }
  }
  EXPECT_EQ(seen.size(), presets.size()) << "every preset has a row";
}

}  // namespace
}  // namespace dep2p::connmgr
