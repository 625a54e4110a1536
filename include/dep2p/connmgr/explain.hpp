// Explanation: why the manager keeps a peer, or how close it is to being trimmed
// (docs/design.md, "Observability"). Returned by ConnectionManager::explain(peer).
//
//   if (auto why = manager.explain(peer)) {
//     std::cout << why->summary << "\n";  // "peer 12*X3p9Vb: next to go: rank 3 of 120, ..."
//     if (why->rank) ...                  // 1 = the next trim's first victim
//   }
//
// It is for diagnosis (an admin command, a debug page, a test), not for hot paths: computing
// the rank visits every peer of the pool under the manager's lock (O(peers)), and the rank
// in force, with a host trimmer or realms bound, ranks every candidate (O(peers log
// peers); the host trimmer runs with no lock held).
//
// Thread safety: a plain value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dep2p/connmgr/export.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {

// One of the peer's pooled connections.
struct ConnectionExplanation {
  ConnectionId id{};
  Direction direction = Direction::inbound;
  PathKind path = PathKind::direct;
  ConnectionState state = ConnectionState::established;  // established or closing
  std::uint32_t streams = 0;
  std::optional<Duration> rtt;  // smoothed keepalive RTT, once a ping was answered
  bool best = false;            // the PathSelector's choice (best_connection())
};

// One protection of a peer (ConnectionManager::protections(), Explanation::protections).
struct Protection {
  std::string tag;
  std::optional<TimePoint> until;  // nullopt: until unprotected
};

// Why a peer is not among the trim candidates. A peer both protected and in grace
// reports `protection` (it outlasts the grace).
enum class NotCandidateReason : std::uint8_t {
  protection,  // at least one protection tag holds it
  in_grace,    // connected more recently than config().grace_period
  temporary,   // tagged but not connected: nothing to close
};
DEP2P_CONNMGR_EXPORT std::string_view to_string(NotCandidateReason reason) noexcept;

struct Explanation {
  NodeId peer;
  TimePoint at{};          // the manager's clock when the explanation was taken
  bool temporary = false;  // tagged but not connected
  // Pooled connections in the order they were added. Pending ones (track_pending) are not
  // listed: their peer is not known before the handshake.
  std::vector<ConnectionExplanation> connections;
  std::vector<Protection> protections;   // in the order first set
  std::optional<TimePoint> grace_until;  // set while the peer is in grace
  std::optional<TimePoint> expires_at;   // a temporary entry's deletion time (none while protected)
  // The trim value: the sum of plain and decaying tags, and its breakdown.
  PeerValue value = 0;
  std::vector<std::pair<std::string, TagValue>> tags;           // plain, in the order first set
  std::vector<std::pair<std::string, TagValue>> decaying_tags;  // name, current value
  // The rank among the current trim candidates (connected, unprotected, out of grace)
  // under the default score order (make_score_trimmer()): 1 goes first. Independent of
  // the trimmer actually installed and of the realm layer's reordering.
  std::optional<std::size_t> rank;
  // The rank under the order a trim follows now: the host's trimmer's when one is
  // installed (asked, with no lock held, for its order of every candidate), else the
  // default one; with connections bound to realms (RealmConnectionManager), the place among
  // the victims the realm rules would take one after another. Nullopt when the peer is not
  // a candidate, when the realm rules keep it (its realms at their reserves), or when the
  // trimmer threw or left it out.
  std::optional<std::size_t> rank_in_force;
  std::optional<NotCandidateReason> not_candidate;  // set exactly when rank is not
  std::size_t candidates = 0;                       // trim candidates in the pool now
  // One line for humans, e.g.
  //   "peer 12*X3p9Vb: next to go: rank 3 of 120, value 10 (dht 10)"
  //   "peer 12*X3p9Vb: kept: protected by relay, bootstrap (25 s left); value 0 (no tags)"
  //   "peer 12*X3p9Vb: kept: in grace for 15 s more; value 3 (dht 3)"
  //   "peer 12*X3p9Vb: not connected: temporary entry for 15 s more; value 4 (dht 4)"
  // Its wording may change; read the fields above in code.
  std::string summary;
};

// One peer a trim would close now (ConnectionManager::plan_trim()).
struct PlannedVictim {
  NodeId peer;
  std::size_t rank = 0;         // 1: the first the trim takes
  std::size_t connections = 0;  // of the peer's connections, those the trim closes (all)
  std::uint32_t streams = 0;    // open on them
  PeerValue value = 0;          // the trim value, plain and decaying tags together
  std::vector<std::pair<std::string, TagValue>> tags;           // plain, in the order first set
  std::vector<std::pair<std::string, TagValue>> decaying_tags;  // name, current value
  // One line for humans: "rank 1 of 40: value 0 (no tags), 0 streams". Its wording may
  // change; read the fields above in code.
  std::string why;
};

// A trim's dry run: what trim() would close if it ran now, and why, closing nothing.
struct TrimPlan {
  TimePoint at{};               // the manager's clock when the plan was made
  std::size_t connections = 0;  // in the pool now
  std::size_t low_water = 0;    // the watermark the trim would bring the pool down to
  std::size_t candidates = 0;   // peers a trim may close (connected, unprotected, out of grace)
  std::size_t target = 0;       // connections the trim would close
  std::vector<PlannedVictim> victims;  // in the order the trim takes them
  // "trim would close 5 connections of 3 peers: 105 connections, low water 100", or why
  // it would close nothing ("at or below low water", "no candidates", ...).
  std::string summary;
};

}  // namespace dep2p::connmgr
