// ManagerCore: dialing — the outcomes the host reports, backoff and dials in flight
// (docs/design.md, "Dialing"). The rules are DialBook's; this file locks, asks it, and
// explains its refusals.
#include <charconv>
#include <string>

#include "manager/core.hpp"

#include <exception>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

namespace dep2p::connmgr::detail {

namespace {

// Appends how long until `until`: "4.2 s", or "3 min 5 s" from a minute on.
void append_remaining(std::string& out, TimePoint now, TimePoint until) {
  const auto tenths =
      std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() / 100;
  char digits[24];
  const auto put = [&](long long v) {
    const auto end = std::to_chars(digits, digits + sizeof digits, v).ptr;
    out.append(digits, end);
  };
  if (tenths < 600) {
    put(tenths / 10);
    out += '.';
    put(tenths % 10);
    out += " s";
  } else {
    put(tenths / 600);
    out += " min ";
    put(tenths / 10 % 60);
    out += " s";
  }
}

}  // namespace

void ManagerCore::refuse_dial(const NodeId& peer, const Endpoint* address,
                              const DialBook::Verdict& verdict, TimePoint now,
                              std::error_code& error, Refusal& refusal) {
  if (address == nullptr) {
    // check_dial: a node's dialing loop may ask about thousands of peers in backoff, so
    // the answer allocates nothing. Its texts fit std::string's inline buffer; the caller
    // has the peer, retry_at says when, and backoff_until() and the address stage say more.
    const bool pending = verdict.what == DialBook::Verdict::pending;
    error = pending ? Errc::dial_pending : Errc::dial_backoff;
    refusal.stage = Stage::dial;
    refusal.reason = pending ? RefusalReason::dial_pending : RefusalReason::backoff;
    refusal.scope.assign("peer");
    refusal.limit.assign(pending ? "dial_pending" : "backoff");
    refusal.message.assign(pending ? "dial in flight" : "in dial backoff");
    note_refusal(refusal);
    return;
  }
  // check_dial_addr (only backoff: dials in flight are per peer): the full sentence, with
  // the address, the time left and the failures.
  const std::string hex = peer.short_string();
  std::string message;
  message.reserve(128);
  message += "dial refused: address ";
  message += address->to_string();
  message += " of peer ";
  message += hex;
  message += " is in backoff for ";
  append_remaining(message, now, verdict.until);
  message += " more, after ";
  message += std::to_string(verdict.failures);
  message += verdict.failures == 1 ? " failure in a row" : " failures in a row";
  error = Errc::dial_backoff;
  refusal = count_refusal(Stage::dial_addr, RefusalReason::backoff, "peer " + hex, "backoff",
                          std::move(message));
}

void ManagerCore::dial_outcome(const NodeId& peer, const Endpoint* address,
                               std::optional<DialFailure> why) {
  const TimePoint now = env_.time->now();
  std::lock_guard lock(lock_);
  if (closed_) return;
  const Locked<> locked;
  if (!why) {
    ++stats_.dial_successes;
    dial_.succeeded(peer, now);
    post_dial_waiters(locked);
    return;
  }
  ++stats_.dial_failures[static_cast<std::size_t>(*why)];
  const std::uint32_t slot = address == nullptr ? pool_.find(peer) : kNoSlot;
  const bool connected = slot != kNoSlot && !pool_.peer(slot).conns.empty();
  dial_.failed(peer, address, *why, now, pool_.counts().connections, connected);
  post_dial_waiters(locked);
}

bool ManagerCore::wait_dial(const NodeId& peer, DialBook::Waiter handler) {
  if (!handler) return false;
  const TimePoint now = env_.time->now();
  std::lock_guard lock(lock_);
  const Locked<> locked;
  if (closed_) return false;
  const std::optional<TimePoint> lapse = dial_.wait(peer, std::move(handler), now);
  if (!lapse) return false;
  arm_housekeeping(locked, *lapse);  // where a dial that nobody reports lapses
  return true;
}

void ManagerCore::post_ready_waiters(const Locked<>&) {
  for (DialBook::Ready& ready : dial_.take_ready()) {
    boost::asio::post(env_.strand, [waiter = std::move(ready.waiter), outcome = ready.outcome,
                                    logger = env_.logger] {
      try {
        waiter(outcome);
      } catch (const std::exception& e) {
        logger->warn("connmgr: a wait_dial handler threw: {}", e.what());
      } catch (...) {
        logger->warn("connmgr: a wait_dial handler threw a non-standard exception");
      }
    });
  }
}

void ManagerCore::clear_backoff(const NodeId& peer) {
  std::lock_guard lock(lock_);
  dial_.clear(peer);
}

void ManagerCore::network_changed(bool up) {
  const TimePoint now = env_.time->now();
  std::lock_guard lock(lock_);
  const Locked<> locked;
  dial_.network_changed(up, now);
  if (up && !redial_.empty()) {
    redial_.all_due(now);  // the reconnects run at once, from the strand
    arm_housekeeping(locked, now);
  }
}

std::optional<TimePoint> ManagerCore::backoff_until(const NodeId& peer) const {
  const TimePoint now = env_.time->now();
  std::lock_guard lock(lock_);
  return dial_.backoff_until(peer, now);
}

}  // namespace dep2p::connmgr::detail
