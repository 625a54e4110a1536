// p2p_node: a small, real P2P node on Boost.Asio TCP that uses dep2p-connmgr as a host
// does. It listens on a loopback address, IPv4 or IPv6 (::1), and dials from it (the
// socket is bound before connect, so the remote sees this node's /24), speaks a framed
// protocol of its own (p2p_node.cpp has the wire format: hello, ping/pong, goodbye with the
// close reason, data) and takes every connection through each admission stage of a
// RealmConnectionManager, claiming the realms both hellos name before the add (which binds
// them).
//
//   auto node = p2p::Node::create(io, {.id = id, .address = make_address_v4("127.0.1.1")});
//   node->join_realm("chat", {});  // named in every later hello
//   node->dial(peer, endpoint, cm::PathKind::direct, [](std::error_code, const std::string&) {});
//
// Relay paths are modelled, not routed: a relay dial says so in its hello and both sides
// mark the connection relayed, which is all the manager needs to see.
// Thread safety: none. A node, its connections and its manager's timers run on one
// io_context driven by one thread; call a node only from that thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "dep2p/connmgr/connmgr.hpp"

namespace spdlog {
class logger;
}

namespace p2p {

namespace cm = dep2p::connmgr;
using boost::asio::ip::tcp;

// A node id for the example programs: `kind` (which group of nodes) in the first byte, `n`
// in the last two, zeros between; ids differ for different (kind, n) with n < 65536.
inline cm::NodeId example_id(std::uint8_t kind, std::size_t n) {
  std::array<std::uint8_t, 32> bytes{};
  bytes[0] = kind;
  bytes[30] = static_cast<std::uint8_t>(n >> 8);
  bytes[31] = static_cast<std::uint8_t>(n);
  return cm::NodeId(bytes);
}

struct NodeOptions {
  cm::NodeId id;
  boost::asio::ip::address address;        // listens here and dials from here (v4 or v6)
  cm::Config config;                       // local_node_id is set to `id`
  std::shared_ptr<spdlog::logger> logger;  // null: a quiet logger (warnings to stderr)
  bool listen = true;                      // false: a node that only dials
  std::uint16_t port = 0;                  // the listening port; 0: any (a restarted node
                                           // passes its old one to be found again)
};

// How one connection ended, as this node saw it.
struct CloseRecord {
  cm::NodeId peer;
  cm::PathKind path = cm::PathKind::direct;
  cm::CloseReason reason = cm::CloseReason::host;
  std::string detail;
  bool by_remote = false;  // the remote's goodbye (or EOF) ended it
};

struct Session;

class Node : public std::enable_shared_from_this<Node> {
 public:
  static std::shared_ptr<Node> create(boost::asio::io_context& io, NodeOptions options);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Creates the realm here and names it in later hellos (both sides claim shared realms).
  std::error_code join_realm(const std::string& realm, const cm::RealmConfig& limits);

  // check_dial, check_dial_addr, connect, hello, on_secured, claim, add_connection. `done`
  // runs once: no error when the connection joined the pool (or one was reused), else the
  // error and why (ours, or the remote's goodbye). A direct dial to a peer reached only
  // through relay opens a direct connection; the manager then retires the relay.
  using DialHandler = std::function<void(std::error_code, const std::string& why)>;
  void dial(const cm::NodeId& peer, const tcp::endpoint& remote, cm::PathKind path,
            DialHandler done);
  // The node's Dialer (given to its manager): the manager asks for a reconnect of a
  // protected peer that dropped, or a direct path to a peer reached through relay. Dials
  // the request's addresses, else the last endpoint this node dialed the peer at, past
  // check_dial (the manager's own dial is the one in flight); `done` runs once.
  void dial_for_manager(const cm::DialRequest& request, cm::Dialer::Done done);

  // Sends application bytes on the best connection to `peer`; false when none is open.
  bool send_data(const cm::NodeId& peer, const std::string& bytes);
  // A frozen node stops answering pings (everything else still works).
  void set_frozen(bool frozen) { frozen_ = frozen; }
  // Says goodbye (shutdown) on every connection, stops listening, closes the manager.
  void stop();

  const cm::NodeId& id() const { return options_.id; }
  tcp::endpoint endpoint() const { return endpoint_; }
  cm::RealmConnectionManager& realms() { return *realms_; }
  cm::ConnectionManager& manager() { return realms_->manager(); }
  const std::vector<CloseRecord>& closes() const { return closes_; }
  // Admission refusals this node made (inbound, claims) with their reasons.
  const std::vector<cm::Refusal>& refusals() const { return refusals_; }
  // The connections this node holds now. `pooled`: joined the manager's pool and not yet
  // ended, so equal to manager().connection_count() whenever no call into the node is
  // running. `handshaking`: connecting or awaiting a hello; each holds at most one of the
  // manager's reservations, so stats().reservations never exceeds it.
  struct SessionCounts {
    std::size_t pooled = 0;
    std::size_t handshaking = 0;
  };
  SessionCounts session_counts() const;

 private:
  friend struct Session;
  Node(boost::asio::io_context& io, NodeOptions options, std::shared_ptr<cm::Dialer> dialer);
  // dial() past check_dial. `report_failure`: a failed connect is reported to the manager
  // (the manager's own dials learn theirs through the Dialer's `done`).
  void connect(const cm::NodeId& peer, const tcp::endpoint& remote, cm::PathKind path,
               DialHandler done, bool report_failure);
  void accept_next();
  void on_accepted(tcp::socket socket);
  // The hello arrived: the secured, add and bind stages. Returns the reason to close the
  // connection with when it must go, else nothing.
  std::optional<std::pair<cm::CloseReason, std::string>> admit_secured(
      Session& session, const std::vector<std::string>& remote_realms);
  // Records a refusal (its text filled from the error when it has none); returns the close
  // reason that tells the remote about it.
  cm::CloseReason refused(cm::Admission& verdict);
  void forget(Session& session, cm::CloseReason reason, const std::string& detail, bool by_remote);
  std::string hello(cm::PathKind path) const;  // this node's hello payload

  boost::asio::io_context& io_;
  NodeOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<cm::RealmConnectionManager> realms_;
  tcp::acceptor acceptor_;
  tcp::endpoint endpoint_;
  std::set<std::string> realm_names_;                            // realms announced in hellos
  std::map<const Session*, std::shared_ptr<Session>> sessions_;  // open and handshaking
  std::vector<CloseRecord> closes_;
  std::vector<cm::Refusal> refusals_;
  std::map<cm::NodeId, tcp::endpoint> known_;  // where this node last dialed each peer
  bool frozen_ = false;
  bool stopped_ = false;
};

}  // namespace p2p
