// BackoffTable: how long each peer, and each of its addresses, must wait before the next
// dial, after the failures the host reported and the closes our own rules made (sans-I/O:
// plain time points; docs/design.md, "Dialing").
//
//   table.fail(peer, nullptr, BackoffKind::timeout, now);   // the peer: 2 s, 4 s, 8 s, ...
//   if (auto until = table.peer_until(peer, now)) refuse(*until);
//
// An entry is found by a 64-bit hash of the peer's id, salted per table with a secret
// drawn at construction: two peers share an entry only if their keys collide (about one
// table in 10^9 at 100,000 peers, and not to be aimed at from outside). The key and the
// peer's wait are 16 bytes in one array (KeySlots' hot part), the counts beside it in
// another, so that check_dial's lookup misses the cache once over a small array.
// Bounded: at most max_peers entries and max_addresses addresses per entry. An entry
// whose every wait ended more than `memory` ago is forgotten (its count starts again);
// when the table is full, the entry whose last failure is oldest makes way.
//
// Thread safety: none; the owner locks.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <optional>
#include <vector>

#include "dep2p/connmgr/dial.hpp"
#include "dep2p/connmgr/types.hpp"
#include "dial/key_slots.hpp"

namespace dep2p::connmgr::detail {

// The rules a failure can fall under: the host's three kinds (DialFailure).
using BackoffKind = DialFailure;
inline constexpr std::size_t kBackoffKinds = kDialFailureCount;

class BackoffTable {
 public:
  struct Rule {
    Duration base{};
    Duration max{};
  };
  struct Rules {
    std::array<Rule, kBackoffKinds> by_kind{};
    double factor = 2.0;
    double jitter = 0.0;
    Duration memory{};
    std::size_t max_peers = 1;
    std::size_t max_addresses = 1;
  };
  static Rules rules_of(const DialConfig& config);

  // `seed` drives the jitter: two tables with the same seed and calls wait the same.
  BackoffTable(const Rules& rules, std::uint64_t seed);

  // The end of the backoff of `peer` (of its `address`), if it lasts past `now`.
  // With `failures`, also the peer's failures in a row (when it is in backoff).
  std::optional<TimePoint> peer_until(const NodeId& peer, TimePoint now,
                                      std::uint32_t* failures = nullptr) const;
  std::optional<TimePoint> address_until(const NodeId& peer, const Endpoint& address,
                                         TimePoint now) const;
  // Failures in a row of `peer` (of its `address`) that still count at `now`.
  std::uint32_t failures(const NodeId& peer, TimePoint now) const;
  std::uint32_t failures(const NodeId& peer, const Endpoint& address, TimePoint now) const;

  // Records a failure of `peer`, or of its `address` when not null, under `kind`'s rule;
  // returns the end of the backoff it starts.
  TimePoint fail(const NodeId& peer, const Endpoint* address, BackoffKind kind, TimePoint now);
  // Forgets `peer` and every address of it; forgets one address.
  void clear(const NodeId& peer);
  void clear(const NodeId& peer, const Endpoint& address);
  // Ends every wait at `now`, keeping the counts (the network came back: the failures
  // before were likely its fault, but a peer that fails again backs off further).
  void lift_all(TimePoint now);

  std::size_t size() const noexcept { return entries_.size(); }
  bool empty() const noexcept { return entries_.empty(); }
  // Entries whose peer or an address of it is in backoff at `now` (a walk of the table).
  std::size_t in_backoff(TimePoint now) const;

 private:
  struct Wait {
    TimePoint until{};
    std::uint32_t failures = 0;
  };
  struct Address {
    Endpoint endpoint;
    Wait wait;
  };
  static constexpr std::uint32_t kNoAddresses = UINT32_MAX;
  // A peer's entry: its wait in the hot part (read by every check_dial), the rest cold.
  struct Hot {
    TimePoint until{};  // the peer's own wait
  };
  struct Cold {
    std::uint32_t failures = 0;
    std::uint32_t addresses = kNoAddresses;  // in address_lists_
    std::uint32_t stamp = 0;                 // of its newest record in order_ (wraps)
  };
  struct Record {
    std::uint64_t key;
    std::uint32_t stamp;
  };
  using Entries = KeySlots<Hot, Cold>;
  static constexpr std::size_t npos = Entries::npos;

  // The peer's key: never 0 (KeySlots' free mark).
  std::uint64_t key_of(const NodeId& peer) const noexcept;
  std::size_t find(const NodeId& peer) const {
    return entries_.empty() ? npos : entries_.find(key_of(peer));
  }
  const std::vector<Address>* addresses_of(const Cold& cold) const {
    return cold.addresses == kNoAddresses ? nullptr : &address_lists_[cold.addresses];
  }
  std::vector<Address>& own_addresses(Cold& cold);
  void erase(std::uint64_t key, std::size_t at);
  bool forgotten(std::size_t at, TimePoint now) const;
  bool forgotten(TimePoint until, std::uint32_t failures, TimePoint now) const;
  bool forgotten(const Wait& wait, TimePoint now) const {
    return forgotten(wait.until, wait.failures, now);
  }
  Duration wait_for(BackoffKind kind, std::uint32_t failures);
  void make_room();
  void compact();

  Rules rules_;
  std::uint64_t rng_;
  std::uint64_t salt_;
  Entries entries_;
  // The address lists of the entries that have some, by index; freed lists are reused.
  std::vector<std::vector<Address>> address_lists_;
  std::vector<std::uint32_t> free_lists_;
  // Failures oldest first, one record per failure; a record is stale once its entry has
  // failed again (a newer stamp) or is gone. Compacted when stale records outnumber live.
  std::deque<Record> order_;
  std::uint32_t next_stamp_ = 1;
};

// check_dial asks these once per call: inline.

inline std::uint64_t BackoffTable::key_of(const NodeId& peer) const noexcept {
  std::uint64_t key = salt_;
  const auto bytes = peer.bytes();
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, bytes.data() + i, 8);
    key = (key ^ word) * 0x9e3779b97f4a7c15ULL;
    key ^= key >> 29;
  }
  if (i < bytes.size()) {
    std::uint64_t word = 0;
    std::memcpy(&word, bytes.data() + i, bytes.size() - i);
    key = (key ^ word) * 0xbf58476d1ce4e5b9ULL;
  }
  key ^= bytes.size();
  key = (key ^ (key >> 30)) * 0xbf58476d1ce4e5b9ULL;
  key = (key ^ (key >> 27)) * 0x94d049bb133111ebULL;
  key ^= key >> 31;
  return key != 0 ? key : 1;
}

inline std::optional<TimePoint> BackoffTable::peer_until(const NodeId& peer, TimePoint now,
                                                         std::uint32_t* failures) const {
  const std::size_t at = find(peer);
  if (at == npos || entries_.hot(at).until <= now) return std::nullopt;
  if (failures != nullptr) *failures = entries_.cold(at).failures;
  return entries_.hot(at).until;
}

}  // namespace dep2p::connmgr::detail
