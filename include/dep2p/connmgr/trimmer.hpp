// Trimmer: the policy that decides which peers a trim closes. The manager builds an
// immutable snapshot of the candidates (peers not protected and out of grace; for
// force_trim every peer), asks the trimmer for an eviction order, and closes whole peers
// in that order until enough connections are gone. A trimmer never sees the pool itself.
//
//   class OldestFirst final : public dep2p::connmgr::Trimmer {
//     void rank(const TrimSnapshot& s, std::size_t, std::vector<std::uint32_t>& order) override {
//       for (std::uint32_t i = 0; i < s.peers.size(); ++i) order.push_back(i);
//       std::ranges::sort(order, {}, [&](auto i) { return s.peers[i].first_seen; });
//     }
//   };
//
// Thread safety: rank() is called without any of the manager's locks held, one trim at a
// time per manager; a trimmer shared by several managers must be thread-safe itself.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dep2p/connmgr/export.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {

struct ConnectionSnapshot {
  ConnectionId id{};
  Direction direction = Direction::inbound;
  PathKind path = PathKind::direct;
  std::uint32_t streams = 0;
  TimePoint opened_at{};
  // Activity, from the bytes the host reports (ConnectionManager::record_activity).
  bool established = true;    // false while the handshake is still in progress
  TimePoint last_activity{};  // the last reported bytes, or opened_at
  double download_rate = 0;   // bytes per second received, smoothed
  double upload_rate = 0;     // bytes per second sent, smoothed
};

struct PeerSnapshot {
  std::int64_t value = 0;  // the sum of the peer's tags
  TimePoint first_seen{};  // start of the peer's grace period
  std::uint32_t streams = 0;
  bool has_inbound = false;   // at least one of its connections is inbound
  bool is_protected = false;  // only force_trim() shows protected peers
  std::uint32_t connection_count = 0;
  // When the snapshot carries connections, the peer's are
  // connections[first_connection .. first_connection + connection_count).
  std::uint32_t first_connection = 0;
  // When the snapshot carries realms, the peer's are
  // peer_realms[first_realm .. first_realm + realm_count).
  std::uint32_t first_realm = 0;
  std::uint32_t realm_count = 0;
};

// Columns a trimmer may go without: copying 100k peer ids costs more than ranking them,
// so the manager fills only what Trimmer::inputs() asks for.
struct TrimInputs {
  bool peer_ids = true;     // TrimSnapshot::peer_ids
  bool connections = true;  // TrimSnapshot::connections
};

struct TrimSnapshot {
  TimePoint now{};
  // True for force_trim(): an emergency, where reserves (realms' min_reserved) may go and
  // the default order closes peers with more streams first (streams hold memory).
  bool forced = false;
  // True when the manager needs the whole order: the realm rules (RealmConnectionManager)
  // choose the victims among the candidates in the trimmer's order, skipping those their
  // reserves and shares keep, so rank() is asked to cover every candidate and should sort
  // them all, first evicted first.
  bool ordered = false;
  std::vector<PeerSnapshot> peers;
  std::vector<NodeId> peer_ids;                 // peer_ids[i] is the id of peers[i], if asked for
  std::vector<ConnectionSnapshot> connections;  // if asked for
  // The realms the candidates' connections are bound to, when a realm layer is attached
  // and any connection is bound: realm names, and each peer's realms as indices into them
  // (each realm once per peer, in no particular order).
  std::vector<std::string> realm_names;
  std::vector<std::uint32_t> peer_realms;

  std::span<const ConnectionSnapshot> connections_of(const PeerSnapshot& peer) const {
    return {connections.data() + peer.first_connection, peer.connection_count};
  }
  std::span<const std::uint32_t> realms_of(const PeerSnapshot& peer) const {
    return {peer_realms.data() + peer.first_realm, peer.realm_count};
  }
};

class DEP2P_CONNMGR_EXPORT Trimmer {
 public:
  virtual ~Trimmer() = default;
  // Read once, when the manager is constructed.
  virtual TrimInputs inputs() const { return {}; }
  // Appends to `order` indices into snapshot.peers, first evicted first. The manager
  // walks `order` closing whole peers until `target_connections` connections are closed,
  // so an order only needs to cover that many; it skips indices out of range or repeated.
  // The order of the peers that end up closed need not be sorted: only which peers fall
  // within the target matters. Exceptions are caught by the manager and abort the trim.
  virtual void rank(const TrimSnapshot& snapshot, std::size_t target_connections,
                    std::vector<std::uint32_t>& order) = 0;
};

// The default order (docs/design.md, "Trimming"), first evicted first: lower value; no streams
// before some streams; a peer with an inbound connection before one without; fewer streams (more
// streams when TrimSnapshot::forced, as in go-libp2p's emergency trim); later first_seen. Needs
// neither peer ids nor connections. Runs in O(n) expected time: it selects the victims with
// nth_element and sorts them only when some peer holds several connections.
DEP2P_CONNMGR_EXPORT std::shared_ptr<Trimmer> make_score_trimmer();

struct ActivityTrimmerOptions {
  // As anacrolix/torrent does: when one direction holds more connections than the other,
  // peers whose connections are all in the surplus direction go first, before every other
  // key. Counted over the snapshot's connections, i.e. over the candidates, since those are
  // what a trim can rebalance; a peer with connections in both directions is not in surplus.
  bool balance_directions = false;
};

// The seed design's torrent-style order (docs/design.md, "Trimming"), first evicted first: peers
// with no established connection (handshake not done); then the longest inactive (by the most
// recent activity over the peer's connections); then the lowest download rate; then the
// lowest upload rate (rates summed over the peer's connections; a NaN or negative rate
// counts as 0); then, as ScoreTrimmer, later first_seen, then the lower index. Needs the
// connections column; not peer ids. O(n + connections) expected, selecting as ScoreTrimmer.
DEP2P_CONNMGR_EXPORT std::shared_ptr<Trimmer> make_activity_trimmer(
    ActivityTrimmerOptions options = {});

}  // namespace dep2p::connmgr
