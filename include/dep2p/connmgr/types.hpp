// Core value types shared by every part of the connection manager: peer identity
// (NodeId), connection identity, direction, path description and close reasons.
//
//   auto peer = dep2p::connmgr::NodeId::from_base58("12D3KooW...");  // libp2p's text form
//   std::string text = peer.to_base58();
//   log("{}", peer.short_string());  // "12*X3p9Vb": what tells peers apart, for logs
//
// Thread safety: these are plain values. Distinct objects may be used from different
// threads; one object may be read concurrently but not written while read.
#pragma once

#include <array>
#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iosfwd>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/basic_endpoint.hpp>

#include "dep2p/connmgr/export.hpp"

namespace dep2p::connmgr {

// The one clock every timing rule is expressed in. Time sources (clock.hpp) produce its
// time points; tests substitute a manual source that advances this clock's time points.
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

// A peer's identity: 1 to 64 opaque bytes (a multihash, a 32-byte public key, ...).
// Stored inline, so copying never allocates. Compared and hashed byte-wise.
class DEP2P_CONNMGR_EXPORT NodeId {
 public:
  static constexpr std::size_t kMaxSize = 64;

  // REQUIRES: 1 <= bytes.size() <= kMaxSize, otherwise throws std::invalid_argument.
  explicit NodeId(std::span<const std::uint8_t> bytes);
  // The same for bytes held as chars (a std::string or string_view of raw id bytes, as
  // many hosts keep them): no cast needed. These are the id's bytes, not a text form.
  static NodeId from_bytes(std::string_view bytes);

  // Text forms. Hex: lowercase or uppercase, 2..128 digits. Base58btc (Bitcoin's
  // alphabet, no multibase prefix): the form libp2p prints peer ids in ("12D3KooW...",
  // "Qm..."). The throwing forms throw std::invalid_argument naming the problem (empty,
  // odd length, too long, a character outside the alphabet).
  static NodeId from_hex(std::string_view hex);
  static NodeId from_base58(std::string_view text);
  // Non-throwing forms for input that comes from the network.
  static std::optional<NodeId> try_from_bytes(std::span<const std::uint8_t> bytes) noexcept;
  static std::optional<NodeId> try_from_bytes(std::string_view bytes) noexcept;
  static std::optional<NodeId> try_from_hex(std::string_view hex) noexcept;
  static std::optional<NodeId> try_from_base58(std::string_view text) noexcept;

  std::span<const std::uint8_t> bytes() const noexcept { return {data_.data(), size_}; }
  std::size_t size() const noexcept { return size_; }
  // The id's bytes followed by zeros up to kMaxSize, so that a table holding ids can
  // copy and compare a fixed number of bytes instead of a length-dependent one.
  const std::array<std::uint8_t, kMaxSize>& padded_bytes() const noexcept { return data_; }
  std::string to_hex() const;
  std::string to_base58() const;
  // The short form logs, refusals and explanations use: the base58 text's first 2 and
  // last 6 characters ("12*X3p9Vb"), the whole text when it has at most 8. Ids that share
  // a prefix (every Ed25519 libp2p id starts with the same 6 bytes) differ at the end.
  std::string short_string() const;
  // Hex of the last 6 bytes after "…" ("…a1b2c3d4e5f6"); the whole hex up to 6 bytes.
  std::string short_hex() const;
  // Word-at-a-time multiply-xorshift: ids are usually 32+ bytes of hash output, so a
  // cheap mix per 8 bytes is enough (hash tables mix the result once more). Inline: it
  // sits on every pool lookup.
  std::size_t hash() const noexcept { return hash_bytes({data_.data(), size_}); }
  // The same hash over an id's bytes held elsewhere (a table that stores ids packed):
  // hash_bytes(id.bytes()) == id.hash() for every id.
  static std::size_t hash_bytes(std::span<const std::uint8_t> bytes) noexcept {
    const std::size_t size = bytes.size();
    std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ size;
    std::size_t i = 0;
    for (; i + 8 <= size; i += 8) {
      std::uint64_t word;
      std::memcpy(&word, bytes.data() + i, 8);
      h = (h ^ word) * 0xff51afd7ed558ccdULL;
      h ^= h >> 32;
    }
    if (i < size) {
      std::uint64_t word = 0;
      std::memcpy(&word, bytes.data() + i, size - i);
      h = (h ^ word) * 0xc4ceb9fe1a85ec53ULL;
      h ^= h >> 29;
    }
    // A full finalizer (MurmurHash3's fmix64): every input bit reaches every output bit.
    // The rounds above only carry bits upwards (a product's low bits depend only on its
    // factors' low bits), so ids differing in the high bytes of their last word would
    // otherwise differ only in the hash's high bits, and tables that take their
    // fingerprint from the low bits would see them all alike.
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return static_cast<std::size_t>(h);
  }

  friend bool operator==(const NodeId& a, const NodeId& b) noexcept {
    return a.size_ == b.size_ && std::memcmp(a.data_.data(), b.data_.data(), a.size_) == 0;
  }
  // Byte-wise lexicographic order, shorter first on a common prefix. Used wherever the
  // design needs a deterministic order between peers (simultaneous open, ties).
  friend DEP2P_CONNMGR_EXPORT std::strong_ordering operator<=>(const NodeId& a,
                                                               const NodeId& b) noexcept;
  // Writes to_base58().
  friend DEP2P_CONNMGR_EXPORT std::ostream& operator<<(std::ostream& os, const NodeId& id);

 private:
  NodeId() = default;
  std::array<std::uint8_t, kMaxSize> data_{};
  std::uint8_t size_ = 0;
};

struct NodeIdHash {
  std::size_t operator()(const NodeId& id) const noexcept { return id.hash(); }
};

// A tag's value, and a peer's value: the sum of its plain and decaying tags. A tag is 32
// bits (each costs 8 bytes in the pool, name included); the sum is 64 bits, so a peer's
// value is exact however many tags of whatever values it holds.
using TagValue = std::int32_t;
using PeerValue = std::int64_t;

// Identifies one connection for the lifetime of a manager; assigned by the manager when
// the connection is added, never reused. Zero is never assigned.
enum class ConnectionId : std::uint64_t {};

enum class Direction : std::uint8_t { inbound, outbound };

// How a connection reaches its peer.
enum class PathKind : std::uint8_t { direct, relay };
enum class Transport : std::uint8_t { tcp, quic, websocket, webrtc, other };

// A transport address: IPv4 or IPv6 address and port. Converts both ways to Asio's
// endpoints of any IP protocol:
//
//   auto remote = Endpoint::from(socket.remote_endpoint());  // tcp or udp
//   boost::asio::ip::tcp::endpoint target = remote.to<boost::asio::ip::tcp>();
struct DEP2P_CONNMGR_EXPORT Endpoint {
  boost::asio::ip::address address;
  std::uint16_t port = 0;

  template <typename Protocol>
  static Endpoint from(const boost::asio::ip::basic_endpoint<Protocol>& endpoint) {
    return Endpoint{endpoint.address(), endpoint.port()};
  }
  template <typename Protocol>
  boost::asio::ip::basic_endpoint<Protocol> to() const {
    return {address, port};
  }
  // "10.1.2.3:4001", "[2001:db8::1]:4001".
  std::string to_string() const;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// An IP subnet: its network address (host bits clear) and prefix length. One address is
// the subnet of its full length (/32 for IPv4, /128 for IPv6). to_string() gives CIDR text
// ("10.1.2.0/24", "2001:db8::/32"), the form BasicGater's block() and unblock() take.
struct DEP2P_CONNMGR_EXPORT Subnet {
  boost::asio::ip::address address;
  std::uint8_t prefix_length = 0;

  bool is_host() const noexcept { return prefix_length == (address.is_v4() ? 32 : 128); }
  std::string to_string() const;
  friend bool operator==(const Subnet&, const Subnet&) = default;
  // IPv4 before IPv6, then by address, then shorter prefixes first.
  friend DEP2P_CONNMGR_EXPORT bool operator<(const Subnet& a, const Subnet& b) noexcept;
};

// Why the manager (or the host) closed a connection. Every close carries one, with a
// human-readable detail, both in `Connection::close` and in events. `limit_exceeded`,
// `shutdown`, `host` and `remote` are the host's to give (close_peer, close_connection,
// remove_connection); the manager closes with the others. docs/design.md, "Close and
// refusal reasons", lists them with the details the manager gives.
enum class CloseReason : std::uint8_t {
  trimmed,            // a trim (background, trim(), lowered limits, a realm's) chose its peer
  forced_trim,        // force_trim() or trim_connections() chose it
  keepalive_timeout,  // pings went unanswered
  idle_timeout,       // no streams and no activity for too long
  gated,              // the gater refused the peer or address after the fact
  limit_exceeded,     // the host refused it on a limit (an admission or claim refused)
  redundant_path,     // a better path to the same peer made this one redundant
  duplicate,          // a simultaneous open kept the other connection
  shutdown,           // the host is shutting down (the manager's close() closes nothing)
  host,               // the host closed it for its own reasons
  handshake_timeout,  // a pending connection did not finish its handshake in time
  made_room,          // closed to admit a member of a realm below its reserve
  remote,             // the host reports that the remote side closed it or it broke
};
inline constexpr std::size_t kCloseReasonCount = 13;

// A connection's lifecycle as the host reports it (ConnectionManager::track_pending,
// report_state). Allowed moves: dialing -> handshaking -> established -> closing ->
// closed, and from any state but closed straight to closed.
enum class ConnectionState : std::uint8_t { dialing, handshaking, established, closing, closed };
DEP2P_CONNMGR_EXPORT std::string_view to_string(ConnectionState state) noexcept;

DEP2P_CONNMGR_EXPORT std::string_view to_string(CloseReason reason) noexcept;
DEP2P_CONNMGR_EXPORT std::string_view to_string(Direction direction) noexcept;
DEP2P_CONNMGR_EXPORT std::string_view to_string(PathKind kind) noexcept;
DEP2P_CONNMGR_EXPORT std::string_view to_string(Transport transport) noexcept;
DEP2P_CONNMGR_EXPORT std::ostream& operator<<(std::ostream& os, CloseReason reason);
DEP2P_CONNMGR_EXPORT std::ostream& operator<<(std::ostream& os, Direction direction);

}  // namespace dep2p::connmgr

template <>
struct std::hash<dep2p::connmgr::NodeId> {
  std::size_t operator()(const dep2p::connmgr::NodeId& id) const noexcept { return id.hash(); }
};
