// DialBook: what the manager remembers of dialing (docs/design.md, "Dialing"): each peer's
// and address's backoff (BackoffTable), the peers with a dial in flight, and whether the
// node is offline. Sans-I/O, with no lock of its own: the core calls it under its lock
// with the time, and acts on what it answers.
//
//   switch (book.begin(peer, now).what) {   // check_dial
//     case DialBook::Verdict::dial: ...     // marked in flight until an outcome or timeout
//     case DialBook::Verdict::backoff: ...  // until .until
//     case DialBook::Verdict::pending: ...  // another dial is in flight
//   }
//   book.failed(peer, nullptr, DialFailure::timeout, now, /*connections=*/0);
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "dep2p/connmgr/dial.hpp"
#include "dep2p/connmgr/types.hpp"
#include "dial/backoff_table.hpp"

namespace dep2p::connmgr::detail {

class DialBook {
 public:
  struct Verdict {
    enum What : std::uint8_t { dial, backoff, pending } what = dial;
    TimePoint until{};           // backoff: when it ends; pending: when the mark lapses
    std::uint32_t failures = 0;  // an address's backoff: failures in a row
  };

  DialBook(const DialConfig& config, std::uint64_t seed);

  // check_dial's answer for `peer`, in two steps: its backoff (asked first: a peer in
  // backoff has no connection, see failed()), then, once no open connection is offered
  // for reuse, begin(): `dial` marks the peer's dial in flight until an outcome, a
  // connection to it, or dial_timeout.
  std::optional<Verdict> in_backoff(const NodeId& peer, TimePoint now) const;
  Verdict begin(const NodeId& peer, TimePoint now);
  // The backoff of one address, if it lasts past `now`.
  std::optional<TimePoint> address_backoff(const NodeId& peer, const Endpoint& address,
                                           TimePoint now) const {
    return backoff_.address_until(peer, address, now);
  }
  // Outcomes. A peer failure ends its dial in flight; an address failure does not (the
  // host may try the peer's other addresses). While offline, failures end dials but grow
  // no backoff; `connections` is the number open on the node (for inferring offline). A
  // peer failure while the peer has a connection (`peer_connected`: another path failed)
  // grows no backoff either, so that a peer in backoff never has a connection. Returns the
  // end of the backoff the failure started, if it started one.
  std::optional<TimePoint> failed(const NodeId& peer, const Endpoint* address, DialFailure kind,
                                  TimePoint now, std::size_t connections,
                                  bool peer_connected = false);
  void succeeded(const NodeId& peer, TimePoint now);
  // A connection to `peer` entered the pool: whatever dial was in flight is over, and the
  // peer is reachable.
  void connected(const NodeId& peer, TimePoint now) {
    if (!in_flight_.empty() || !backoff_.empty() || inferred_down_ || failures_in_row_ != 0) {
      succeeded(peer, now);
    }
  }
  void clear(const NodeId& peer) { backoff_.clear(peer); }
  // The dial begin() allowed is not made after all (the gater refused it).
  void abandon(const NodeId& peer) { end_flight(peer, DialOutcome::failed); }

  // Waiters on dials in flight: kept until the dial ends, then handed back with its
  // outcome (take_ready()) for the owner to run outside its lock.
  using Waiter = std::function<void(DialOutcome)>;
  struct Ready {
    Waiter waiter;
    DialOutcome outcome;
  };
  // Keeps `waiter` while `peer` has a dial in flight at `now`; returns when that dial
  // lapses, or nullopt (nothing kept) when none is in flight.
  std::optional<TimePoint> wait(const NodeId& peer, Waiter waiter, TimePoint now);
  // Ends the marks lapsed at `now` that have waiters; returns the next lapse of a mark
  // with waiters, if any.
  std::optional<TimePoint> lapse_waited(TimePoint now);
  // Ends every wait with `canceled` (the owner closes).
  void cancel_waiters();
  bool has_ready() const noexcept { return !ready_.empty(); }
  std::vector<Ready> take_ready() { return std::exchange(ready_, {}); }
  std::uint32_t address_failures(const NodeId& peer, const Endpoint& address, TimePoint now) const {
    return backoff_.failures(peer, address, now);
  }
  // The host says the network went down or came back. Back up (reported, or inferred and
  // ended by a success): every backoff ends now, counts kept.
  void network_changed(bool up, TimePoint now);
  bool offline() const noexcept { return reported_down_ || inferred_down_; }
  bool reported_down() const noexcept { return reported_down_; }

  std::optional<TimePoint> backoff_until(const NodeId& peer, TimePoint now) const {
    return backoff_.peer_until(peer, now);
  }
  std::uint32_t failures(const NodeId& peer, TimePoint now) const {
    return backoff_.failures(peer, now);
  }
  std::size_t table_size() const noexcept { return backoff_.size(); }
  std::size_t in_backoff(TimePoint now) const { return backoff_.in_backoff(now); }
  std::size_t dials_in_flight(TimePoint now) const;
  // Failures reported while offline (they grew no backoff).
  std::uint64_t failures_offline() const noexcept { return failures_offline_; }

 private:
  void end_flight(const NodeId& peer, DialOutcome outcome) {
    if (in_flight_.empty()) return;
    in_flight_.erase(peer);
    if (!waiters_.empty()) release_waiters(peer, outcome);
  }
  void release_waiters(const NodeId& peer, DialOutcome outcome);
  void sweep_flights(TimePoint now);

  BackoffTable backoff_;
  Duration dial_timeout_;
  std::uint32_t offline_after_;
  // Peers with a dial in flight, and when the mark lapses. Swept of lapsed marks whenever
  // it doubles past the size it had after the last sweep.
  boost::unordered_flat_map<NodeId, TimePoint, NodeIdHash> in_flight_;
  std::size_t sweep_at_ = 64;
  // Waiters by peer (few: only hosts that wait on another thread's dial add them), and
  // those whose dial ended, to be run.
  std::vector<std::pair<NodeId, Waiter>> waiters_;
  std::vector<Ready> ready_;
  bool reported_down_ = false;
  bool inferred_down_ = false;
  std::uint32_t failures_in_row_ = 0;
  std::uint64_t failures_offline_ = 0;
};

// check_dial asks this once per call: inline.
inline std::optional<DialBook::Verdict> DialBook::in_backoff(const NodeId& peer,
                                                             TimePoint now) const {
  // The failures stay in the table's cold part: check_dial's answer does not name them.
  auto until = backoff_.peer_until(peer, now);
  if (!until) return std::nullopt;
  return Verdict{Verdict::backoff, *until, 0};
}

}  // namespace dep2p::connmgr::detail
