// ManagerCore: dialing — the outcomes the host reports, backoff and dials in flight
// (docs/design.md, "Dialing"). The rules are DialBook's; this file locks, asks it, and
// explains its refusals.
#include <cstdio>

#include "manager/core.hpp"

namespace dep2p::connmgr::detail {

namespace {

// "4.2 s", "3 min 5 s": how long until `until`.
std::string remaining(TimePoint now, TimePoint until) {
  const double seconds = std::chrono::duration<double>(until - now).count();
  char text[48];
  if (seconds < 60) {
    std::snprintf(text, sizeof text, "%.1f s", seconds);
  } else {
    const auto whole = static_cast<long long>(seconds);
    std::snprintf(text, sizeof text, "%lld min %lld s", whole / 60, whole % 60);
  }
  return text;
}

}  // namespace

void ManagerCore::refuse_dial(const NodeId& peer, const Endpoint* address,
                              const DialBook::Verdict& verdict, TimePoint now,
                              std::error_code& error, Refusal& refusal) {
  const Stage stage = address != nullptr ? Stage::dial_addr : Stage::dial;
  std::string scope = "peer " + peer.short_hex();
  if (verdict.what == DialBook::Verdict::pending) {
    error = Errc::dial_pending;
    refusal = count_refusal(stage, RefusalReason::dial_pending, std::move(scope), "dial_pending",
                            "dial refused: a dial to peer " + peer.short_hex() +
                                " is in flight (it lapses in " + remaining(now, verdict.until) +
                                " unless reported)");
    return;
  }
  error = Errc::dial_backoff;
  std::string what = address != nullptr
                         ? "address " + address->address.to_string() + ":" +
                               std::to_string(address->port) + " of peer " + peer.short_hex()
                         : "peer " + peer.short_hex();
  refusal = count_refusal(stage, RefusalReason::backoff, std::move(scope), "backoff",
                          "dial refused: " + what + " is in backoff for " +
                              remaining(now, verdict.until) + " more, after " +
                              std::to_string(verdict.failures) + " failure" +
                              (verdict.failures == 1 ? "" : "s") + " in a row");
}

void ManagerCore::dial_outcome(const NodeId& peer, const Endpoint* address,
                               std::optional<DialFailure> why) {
  const TimePoint now = env_.time->now();
  std::lock_guard lock(lock_);
  if (closed_) return;
  if (!why) {
    ++stats_.dial_successes;
    dial_.succeeded(peer, now);
    return;
  }
  ++stats_.dial_failures[static_cast<std::size_t>(*why)];
  dial_.failed(peer, address, *why, now, pool_.counts().connections);
}

void ManagerCore::clear_backoff(const NodeId& peer) {
  std::lock_guard lock(lock_);
  dial_.clear(peer);
}

void ManagerCore::network_changed(bool up) {
  const TimePoint now = env_.time->now();
  std::lock_guard lock(lock_);
  dial_.network_changed(up, now);
}

std::optional<TimePoint> ManagerCore::backoff_until(const NodeId& peer) const {
  const TimePoint now = env_.time->now();
  std::lock_guard lock(lock_);
  return dial_.backoff_until(peer, now);
}

}  // namespace dep2p::connmgr::detail
