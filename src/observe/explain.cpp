// ConnectionManager::explain()'s summary line (see explain.hpp). The data is gathered under
// the manager's lock in connection_manager.cpp; the text is built here, unlocked.
#include <chrono>
#include <string>

#include "dep2p/connmgr/explain.hpp"
#include "observe/observability.hpp"

namespace dep2p::connmgr {

std::string_view to_string(NotCandidateReason reason) noexcept {
  switch (reason) {
    case NotCandidateReason::protection: return "protected";
    case NotCandidateReason::in_grace: return "in grace";
    case NotCandidateReason::temporary: return "temporary";
  }
  return "unknown";
}

namespace detail {
namespace {

// Whole seconds as "20 s", anything finer as "1500 ms"; never negative.
std::string describe(Duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms <= 0) return "0 s";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

std::string describe_protections(const Explanation& e) {
  std::string text = "protected by ";
  bool first = true;
  for (const Protection& p : e.protections) {
    if (!first) text += ", ";
    first = false;
    text += p.tag;
    if (p.until) text += " (" + describe(*p.until - e.at) + " left)";
  }
  return text;
}

}  // namespace

std::string describe_value(PeerValue value,
                           const std::vector<std::pair<std::string, TagValue>>& tags,
                           const std::vector<std::pair<std::string, TagValue>>& decaying_tags) {
  std::string text = "value " + std::to_string(value) + " (";
  bool first = true;
  for (const auto* list : {&tags, &decaying_tags}) {
    for (const auto& [name, tag] : *list) {
      if (!first) text += ", ";
      first = false;
      text += name + " " + std::to_string(tag);
    }
  }
  text += first ? "no tags)" : ")";
  return text;
}

std::string explain_summary(const Explanation& e) {
  std::string text = "peer " + e.peer.short_string() + ": ";
  if (e.rank) {
    text += "next to go: rank " + std::to_string(*e.rank) + " of " + std::to_string(e.candidates) +
            ", " + describe_value(e.value, e.tags, e.decaying_tags);
    if (e.rank_in_force != e.rank) {
      text += e.rank_in_force
                  ? "; rank " + std::to_string(*e.rank_in_force) + " under the order in force"
                  : "; kept under the order in force";
    }
    return text;
  }
  if (e.temporary) {
    text += "not connected: temporary entry";
    if (e.expires_at) {
      text += " for " + describe(*e.expires_at - e.at) + " more";
    } else if (!e.protections.empty()) {
      text += ", kept while " + describe_protections(e);
    }
    return text + "; " + describe_value(e.value, e.tags, e.decaying_tags);
  }
  text += "kept: ";
  if (!e.protections.empty()) {
    text += describe_protections(e);
    if (e.grace_until) text += "; ";
  }
  if (e.grace_until) text += "in grace for " + describe(*e.grace_until - e.at) + " more";
  return text + "; " + describe_value(e.value, e.tags, e.decaying_tags);
}

}  // namespace detail
}  // namespace dep2p::connmgr
