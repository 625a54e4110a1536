// Gater: yes/no decisions on peers and addresses at each admission stage (docs/design.md,
// "Admission"), before the manager spends resources on a connection. BasicGater keeps block and
// allow lists of peers, IP addresses and CIDR subnets, bans that expire, and can persist them.
//
//   auto gater = std::make_shared<dep2p::connmgr::BasicGater>(io.get_executor());
//   gater->block_subnet("10.1.2.0/24");
//   gater->ban_peer(peer, std::chrono::hours(1));
//   if (!gater->intercept_accept(remote)) refuse();
//
// Thread safety: every method of BasicGater and CompositeGater is thread-safe. The manager
// calls intercepts without holding its lock; an intercept must not block for long (it is
// on the accept path) and may call the manager.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/events.hpp"
#include "dep2p/connmgr/export.hpp"
#include "dep2p/connmgr/types.hpp"

namespace spdlog {
class logger;
}

namespace dep2p::connmgr {

class Connection;

// One gate's answer. A denial carries a reason for logs, events and refusals.
struct Decision {
  bool allowed = true;
  std::string reason;

  static Decision allow() { return {}; }
  static Decision deny(std::string reason) { return {false, std::move(reason)}; }
  explicit operator bool() const { return allowed; }
};

// The five intercepts, cheapest first. Every default allows.
class DEP2P_CONNMGR_EXPORT Gater {
 public:
  virtual ~Gater() = default;
  // Before dialing a peer.
  virtual Decision intercept_peer_dial(const NodeId& peer);
  // Before dialing one of its addresses.
  virtual Decision intercept_addr_dial(const NodeId& peer, const Endpoint& remote);
  // An inbound connection arrived, before any handshake.
  virtual Decision intercept_accept(const Endpoint& remote);
  // The handshake authenticated the peer.
  virtual Decision intercept_secured(Direction direction, const NodeId& peer,
                                     const Endpoint& remote);
  // The connection is about to join the pool.
  virtual Decision intercept_upgraded(const Connection& connection);

  // Called (from any thread, without locks) after the gater started denying something it
  // allowed before, when it wants open connections re-checked. The manager subscribes
  // and closes those intercept_secured() now denies, with CloseReason::gated.
  virtual Subscription on_tightened(std::function<void()> handler);

  // Whether connections from `address` skip the per-address, per-subnet and per-group caps (an
  // allow list). Default: no.
  virtual bool bypasses_caps(const boost::asio::ip::address& address);
};

// Asks each gater in order; the first denial wins.
class DEP2P_CONNMGR_EXPORT CompositeGater final : public Gater {
 public:
  explicit CompositeGater(std::vector<std::shared_ptr<Gater>> gaters);

  Decision intercept_peer_dial(const NodeId& peer) override;
  Decision intercept_addr_dial(const NodeId& peer, const Endpoint& remote) override;
  Decision intercept_accept(const Endpoint& remote) override;
  Decision intercept_secured(Direction direction, const NodeId& peer,
                             const Endpoint& remote) override;
  Decision intercept_upgraded(const Connection& connection) override;
  Subscription on_tightened(std::function<void()> handler) override;
  // True when any gater says so: one allow list is enough to trust an address.
  bool bypasses_caps(const boost::asio::ip::address& address) override;

 private:
  std::vector<std::shared_ptr<Gater>> gaters_;
};

struct BasicGaterOptions {
  // Defaults to SteadyTimeSource. Bans expire by this clock.
  std::shared_ptr<TimeSource> time_source;
  // Defaults to a private "connmgr" logger (warnings to stderr).
  std::shared_ptr<spdlog::logger> logger;
  // When set, blocking or banning something asks the manager to close the open
  // connections it now denies (see Gater::on_tightened).
  bool close_existing = false;
  // Wall-clock time, used only to store ban ends in the file (steady time does not survive
  // a restart). Defaults to std::chrono::system_clock::now.
  std::function<std::chrono::system_clock::time_point()> wall_clock;
};

// What a BasicGater holds, by kind (BasicGater::rules()). "Addresses" are rules on one IP
// address, "subnets" the rest; IPv4-mapped IPv6 rules are listed as IPv4. Bans carry their
// end on the gater's TimeSource; a ban is listed until its end and not at or after it.
struct PeerBan {
  NodeId peer;
  TimePoint until{};
  friend bool operator==(const PeerBan&, const PeerBan&) = default;
};
struct AddressBan {
  boost::asio::ip::address address;
  TimePoint until{};
  friend bool operator==(const AddressBan&, const AddressBan&) = default;
};
struct SubnetBan {
  Subnet subnet;
  TimePoint until{};
  friend bool operator==(const SubnetBan&, const SubnetBan&) = default;
};
// Lists are sorted: peers by id, addresses and subnets by address (IPv4 first), bans by
// their end, then by what they ban.
struct GaterRules {
  TimePoint at{};  // when the listing was taken, on the gater's TimeSource
  std::vector<NodeId> blocked_peers;
  std::vector<NodeId> allowed_peers;
  std::vector<PeerBan> banned_peers;
  std::vector<boost::asio::ip::address> blocked_addresses;
  std::vector<boost::asio::ip::address> allowed_addresses;
  std::vector<AddressBan> banned_addresses;
  std::vector<Subnet> blocked_subnets;
  std::vector<Subnet> allowed_subnets;
  std::vector<SubnetBan> banned_subnets;
};
// The sizes of GaterRules' lists, kept as rules change (bans that ended but are not yet
// swept are left out).
struct GaterCounts {
  std::size_t blocked_peers = 0;
  std::size_t allowed_peers = 0;
  std::size_t banned_peers = 0;
  std::size_t blocked_addresses = 0;
  std::size_t allowed_addresses = 0;
  std::size_t banned_addresses = 0;
  std::size_t blocked_subnets = 0;
  std::size_t allowed_subnets = 0;
  std::size_t banned_subnets = 0;
  friend bool operator==(const GaterCounts&, const GaterCounts&) = default;
};

// Block lists, allow lists and bans. An allowed peer, address or subnet is never denied
// by the block lists or bans (the allow list wins), and the manager lets allowed
// addresses past its per-IP and per-subnet caps. Peers and addresses are judged apart: an
// allowed peer dialing from a blocked address is refused for the address, since at
// accept time only the address is known and the two stages must agree.
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are IPv4 for rules and lookups alike.
class DEP2P_CONNMGR_EXPORT BasicGater final : public Gater {
 public:
  explicit BasicGater(boost::asio::any_io_executor executor, BasicGaterOptions options = {});
  ~BasicGater() override;
  BasicGater(const BasicGater&) = delete;
  BasicGater& operator=(const BasicGater&) = delete;

  // Peers. Unblocking also lifts a ban.
  void block_peer(const NodeId& peer);
  bool unblock_peer(const NodeId& peer);
  void allow_peer(const NodeId& peer);
  bool disallow_peer(const NodeId& peer);
  // Addresses: an IP address ("10.1.2.3", "::1") or a CIDR subnet ("10.1.2.0/24",
  // "2001:db8::/32"). Errc::invalid_argument for malformed text (nothing changes); zone
  // ids ("fe80::1%eth0") are refused. Host bits are cleared: "10.1.2.3/24" means
  // 10.1.2.0/24, for block and unblock alike. Unblocking also lifts a ban.
  std::error_code block(std::string_view address_or_subnet);
  bool unblock(std::string_view address_or_subnet);
  std::error_code allow(std::string_view address_or_subnet);
  bool disallow(std::string_view address_or_subnet);
  // Bans: blocks that end by themselves after `duration` (> 0; ban_peer ignores and logs
  // others, ban returns Errc::invalid_argument; longer than 100 years counts as 100 years).
  // A ban on something already banned keeps the later end. An expired ban denies nothing;
  // a timer on the executor's strand removes it at its end (without rewriting the file:
  // expired bans are dropped on load).
  void ban_peer(const NodeId& peer, Duration duration);
  std::error_code ban(std::string_view address_or_subnet, Duration duration);

  bool is_peer_blocked(const NodeId& peer) const;  // blocked or banned, and not allowed
  bool is_address_blocked(const boost::asio::ip::address& address) const;
  bool is_allowed(const boost::asio::ip::address& address) const;
  bool is_peer_allowed(const NodeId& peer) const;
  std::size_t rule_count() const;  // block, allow and ban entries
  // Everything the gater holds, in one consistent listing (go-libp2p's ListBlockedPeers,
  // ListBlockedAddrs and ListBlockedSubnets, plus allows and bans). O(rules).
  GaterRules rules() const;
  // The same, counted: O(1) plus the bans that ended and wait for their sweep.
  GaterCounts counts() const;

  // Persistence. attach_file() loads the file if it exists (creating nothing), and from
  // then on writes every change to it: a new file written and fsynced beside it, then
  // renamed over it, so the file on disk is always a complete version. A corrupt or
  // unreadable file is reported (Errc::invalid_argument / the OS error, with a message
  // naming the file and line in `message`) and left untouched, and nothing is attached.
  // A failed write is logged and returned by save(); the previous file stays intact.
  // The file's rules join those already in memory; if there were some, the file is
  // rewritten at once (a failure is returned, but the file stays attached). save() without
  // an attached file returns Errc::invalid_argument. Every change rewrites the whole file
  // synchronously in the caller's thread, outside the rule lock (intercepts never wait).
  std::error_code attach_file(const std::string& path, std::string* message = nullptr);
  std::error_code save();

  Decision intercept_peer_dial(const NodeId& peer) override;
  Decision intercept_addr_dial(const NodeId& peer, const Endpoint& remote) override;
  Decision intercept_accept(const Endpoint& remote) override;
  Decision intercept_secured(Direction direction, const NodeId& peer,
                             const Endpoint& remote) override;
  // With close_existing: fired after block*, ban*, disallow* and an attach_file that
  // loaded blocks or bans, in the caller's thread, with no gater lock held.
  Subscription on_tightened(std::function<void()> handler) override;
  // is_allowed(address).
  bool bypasses_caps(const boost::asio::ip::address& address) override;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace dep2p::connmgr
