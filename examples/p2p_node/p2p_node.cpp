// p2p_node's implementation: Session (one TCP connection, the cm::Connection the manager
// holds) and Node (listening, dialing, the admission stages). See p2p_node.hpp.
//
// Wire format: frames of [u32 big-endian length][u8 type][payload], the length counting
// type and payload.
//   hello (1)    text lines: the node id in hex, "direct" or "relay", then one realm per
//                line. The dialer speaks first; the acceptor answers with its own hello
//                once the connection is admitted, or with a goodbye saying why not.
//   ping (2)     an 8-byte nonce, echoed in a pong (3). A frozen node does not answer.
//   goodbye (4)  a CloseReason byte, then the detail; the sender closes after it.
//   data (5)     application bytes, reported to the manager as activity.
#include "p2p_node.hpp"

#include <deque>
#include <sstream>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

namespace p2p {
namespace {

enum class Frame : std::uint8_t { hello = 1, ping, pong, goodbye, data };

std::string be_bytes(std::uint64_t v, std::size_t n) {  // v's last n bytes, big-endian
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>(v >> (8 * (n - 1 - i)));
  return out;
}

}  // namespace

// Internal to the node, so its state is open to it.
struct Session final : cm::Connection, std::enable_shared_from_this<Session> {
  Session(const std::shared_ptr<Node>& owner, tcp::socket s, cm::Direction d, cm::Endpoint to)
      : node(owner), socket(std::move(s)), deadline(socket.get_executor()), dir(d), remote(to) {}

  cm::NodeId remote_peer() const override { return *peer; }  // known before the add
  cm::Direction direction() const override { return dir; }
  cm::Endpoint remote_endpoint() const override { return remote; }
  cm::PathKind path_kind() const override { return path; }
  void close(cm::CloseReason reason, std::string_view detail) override {
    end(reason, std::string(detail), false);
  }
  void ping(PingHandler done) override {
    if (closed) return done(cm::make_error_code(cm::Errc::closed));
    pending_ping = {++nonce, std::move(done)};  // the manager sends one at a time
    send(Frame::ping, be_bytes(nonce, 8));
  }

  // The dialer speaks first; a hello must come within 3 s.
  void start() {
    connected = true;
    auto owner = node.lock();
    if (owner && dir == cm::Direction::outbound) send(Frame::hello, owner->hello(path));
    deadline.expires_after(std::chrono::seconds(3));
    deadline.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec && !self->hello_done)
        self->end(cm::CloseReason::handshake_timeout, "no hello", false);
    });
    read(4);
  }
  void send(Frame type, std::string_view payload) {
    if (!connected) return;
    out.push_back(be_bytes(payload.size() + 1, 4) + static_cast<char>(type) + std::string(payload));
    if (out.size() == 1) write_next();
  }
  // Ends the session once: a goodbye with the reason unless the remote ended it; then the
  // node reports the closure to the manager (which ignores it if it closed it itself).
  void end(cm::CloseReason reason, const std::string& detail, bool by_remote) {
    if (std::exchange(closed, true)) return;
    auto self = shared_from_this();
    deadline.cancel();
    pending_ping.reset();
    if (!by_remote && connected) {
      send(Frame::goodbye, static_cast<char>(reason) + detail);
    } else {
      close_socket();
    }
    reservation.release();
    if (auto done = std::exchange(dial_done, nullptr)) {
      done(by_remote ? cm::Errc::connection_denied : cm::Errc::closed,
           (by_remote ? "remote: " : "") + detail);
    }
    if (auto owner = node.lock()) owner->forget(*this, reason, detail, by_remote);
  }

  // Reads a 4-byte length, then the frame it announces, and so on.
  void read(std::size_t size) {
    in.resize(size);
    boost::asio::async_read(socket, boost::asio::buffer(in),
                            [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                              self->on_read(ec);
                            });
  }
  void on_read(boost::system::error_code ec) {
    if (closed) return;
    if (ec) return end(cm::CloseReason::host, "lost: " + ec.message(), true);
    if (in_length) {
      std::size_t size = 0;
      for (char b : in) size = (size << 8) | static_cast<std::uint8_t>(b);
      if (size == 0 || size > 65536) return end(cm::CloseReason::host, "bad frame", false);
      in_length = false;
      return read(size);
    }
    in_length = true;
    const std::string frame = std::move(in);
    on_frame(static_cast<Frame>(frame[0]), std::string_view(frame).substr(1));
    if (!closed) read(4);
  }
  void on_frame(Frame type, std::string_view payload) {
    auto owner = node.lock();
    if (!owner) return end(cm::CloseReason::shutdown, "node gone", false);
    if (type == Frame::goodbye && !payload.empty()) {
      const auto code = static_cast<std::uint8_t>(payload[0]);
      return end(
          code < cm::kCloseReasonCount ? static_cast<cm::CloseReason>(code) : cm::CloseReason::host,
          std::string(payload.substr(1)), true);
    }
    if (!hello_done) return on_hello(*owner, type == Frame::hello ? payload : "");
    if (type == Frame::ping && !owner->frozen_) {
      send(Frame::pong, payload);
    } else if (type == Frame::pong && pending_ping && be_bytes(pending_ping->first, 8) == payload) {
      std::exchange(pending_ping, std::nullopt)->second({});
    } else if (type == Frame::data && established) {
      owner->manager().record_activity(*this, payload.size(), 0);
    } else if (type != Frame::ping) {
      end(cm::CloseReason::host, "unexpected frame", false);
    }
  }
  void on_hello(Node& owner, std::string_view payload) {
    std::istringstream lines{std::string(payload)};
    std::string id, kind, realm;
    std::getline(lines, id);
    std::getline(lines, kind);
    auto from = cm::NodeId::try_from_hex(id);
    if (!from || (kind != "direct" && kind != "relay"))
      return end(cm::CloseReason::host, "bad hello", false);
    if (peer && *peer != *from) return end(cm::CloseReason::host, "wrong peer", false);
    std::vector<std::string> realms;
    while (std::getline(lines, realm)) realms.push_back(realm);
    hello_done = true;
    peer = from;
    if (dir == cm::Direction::inbound && kind == "relay") path = cm::PathKind::relay;
    if (auto refusal = owner.admit_secured(*this, realms)) {
      return end(refusal->first, refusal->second, false);
    }
    if (closed) return;  // the manager closed it at once (e.g. a simultaneous open)
    if (dir == cm::Direction::inbound) send(Frame::hello, owner.hello(path));
    if (auto done = std::exchange(dial_done, nullptr)) done({}, "connected");
  }
  void write_next() {
    boost::asio::async_write(
        socket, boost::asio::buffer(out.front()),
        [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
          self->out.pop_front();
          if (ec && !self->closed) return self->end(cm::CloseReason::host, "lost", true);
          if (ec || (self->out.empty() && self->closed)) return self->close_socket();
          if (!self->out.empty()) self->write_next();
        });
  }
  void close_socket() {
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  std::weak_ptr<Node> node;
  tcp::socket socket;
  boost::asio::steady_timer deadline;  // for the hello
  cm::Direction dir;
  cm::Endpoint remote;
  cm::PathKind path = cm::PathKind::direct;
  std::optional<cm::NodeId> peer;  // outbound: from the dial; inbound: from the hello
  cm::Reservation reservation;     // the admission in progress, until add_connection
  Node::DialHandler dial_done;     // outbound, until the hello or the end
  bool connected = false, hello_done = false, established = false, closed = false;
  bool in_length = true;  // `in` is to hold a frame's length (else the frame)
  std::string in;
  std::deque<std::string> out;  // frames to write, the front one in flight
  std::uint64_t nonce = 0;
  std::optional<std::pair<std::uint64_t, PingHandler>> pending_ping;
};

// Hands the manager's dial requests to the node, on its io_context (the manager may ask
// from inside one of the node's own calls).
class NodeDialer final : public cm::Dialer {
 public:
  explicit NodeDialer(boost::asio::io_context& io) : io_(io) {}
  void dial(const cm::DialRequest& request, Done done) override {
    boost::asio::post(io_, [node = node_, request, done = std::move(done)]() mutable {
      if (auto self = node.lock()) return self->dial_for_manager(request, std::move(done));
      done(cm::DialFailure::error);
    });
  }
  std::weak_ptr<Node> node_;  // set by Node::create

 private:
  boost::asio::io_context& io_;
};

std::shared_ptr<Node> Node::create(boost::asio::io_context& io, NodeOptions options) {
  auto dialer = std::make_shared<NodeDialer>(io);
  std::shared_ptr<Node> node(new Node(io, std::move(options), dialer));
  dialer->node_ = node;
  if (node->options_.listen) node->accept_next();
  return node;
}

Node::Node(boost::asio::io_context& io, NodeOptions options, std::shared_ptr<cm::Dialer> dialer)
    : io_(io), options_(std::move(options)), acceptor_(io) {
  log_ = options_.logger ? options_.logger : std::make_shared<spdlog::logger>("p2p");  // silent
  options_.config.local_node_id = options_.id;
  realms_ = std::make_unique<cm::RealmConnectionManager>(
      io, options_.config,
      cm::Dependencies{.logger = options_.logger, .dialer = std::move(dialer)});
  if (!options_.listen) return;
  acceptor_.open(options_.address.is_v6() ? tcp::v6() : tcp::v4());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(tcp::endpoint(options_.address, options_.port));
  acceptor_.listen();
  endpoint_ = acceptor_.local_endpoint();
  manager().listen({endpoint_.address(), endpoint_.port()});
}

Node::~Node() { stop(); }

std::error_code Node::join_realm(const std::string& realm, const cm::RealmConfig& limits) {
  if (realm.find('\n') != std::string::npos) return cm::Errc::invalid_argument;  // hello lines
  auto ec = realms_->create_realm(realm, limits);
  if (!ec) realm_names_.insert(realm);
  return ec;
}

void Node::accept_next() {
  acceptor_.async_accept([weak = weak_from_this()](boost::system::error_code ec, tcp::socket s) {
    auto self = weak.lock();
    if (!self || self->stopped_) return;
    if (!ec) self->on_accepted(std::move(s));
    self->accept_next();
  });
}

// Admission before any handshake: only the remote address is known. A refusal goes back as
// a goodbye, so the dialer learns why.
void Node::on_accepted(tcp::socket socket) {
  boost::system::error_code ec;
  const tcp::endpoint from = socket.remote_endpoint(ec);
  if (ec) return;
  const cm::Endpoint remote{from.address(), from.port()};
  cm::Admission admitted = manager().admit_inbound(remote);
  auto session = std::make_shared<Session>(shared_from_this(), std::move(socket),
                                           cm::Direction::inbound, remote);
  session->reservation = std::move(admitted.reservation);
  sessions_[session.get()] = session;
  session->start();
  if (!admitted) session->end(refused(admitted), admitted.refusal.message, false);
}

void Node::dial(const cm::NodeId& peer, const tcp::endpoint& remote, cm::PathKind path,
                DialHandler done) {
  if (stopped_) return done(cm::Errc::closed, "node stopped");
  cm::Admission check = manager().check_dial(peer);
  if (check && check.existing && path == cm::PathKind::direct &&
      check.existing->path_kind() == cm::PathKind::relay) {
    check = manager().check_dial(peer, /*force_new=*/true);  // upgrade: dial direct anyway
  }
  if (!check) return done(check.error, check.refusal.message);
  if (check.existing) return done({}, "reused an open connection");
  connect(peer, remote, path, std::move(done), true);
}

void Node::dial_for_manager(const cm::DialRequest& request, cm::Dialer::Done done) {
  std::optional<tcp::endpoint> remote;
  if (!request.addresses.empty()) {
    remote = tcp::endpoint(request.addresses.front().address, request.addresses.front().port);
  } else if (auto it = known_.find(request.peer); it != known_.end()) {
    remote = it->second;
  }
  if (stopped_ || !remote) return done(cm::DialFailure::error);
  connect(
      request.peer, *remote, cm::PathKind::direct,
      [done = std::move(done)](std::error_code ec, const std::string&) {
        // The remote's goodbye turned us away (its limits or gater), or the dial failed.
        if (!ec) return done(std::nullopt);
        done(ec == cm::Errc::connection_denied ? cm::DialFailure::refused : cm::DialFailure::error);
      },
      false);
}

void Node::connect(const cm::NodeId& peer, const tcp::endpoint& remote, cm::PathKind path,
                   DialHandler done, bool report_failure) {
  if (stopped_) return done(cm::Errc::closed, "node stopped");
  known_[peer] = remote;  // relays are modelled: a relay dial goes to the peer's own endpoint
  const cm::Endpoint to{remote.address(), remote.port()};
  cm::Admission admitted = manager().check_dial_addr(peer, to);
  if (!admitted) return done(admitted.error, admitted.refusal.message);
  tcp::socket socket(io_);
  boost::system::error_code ec;
  socket.open(options_.address.is_v6() ? tcp::v6() : tcp::v4(), ec);
  if (!ec) socket.bind(tcp::endpoint(options_.address, 0), ec);  // the remote sees our /24
  if (ec) return done(ec, "socket: " + ec.message());
  auto session =
      std::make_shared<Session>(shared_from_this(), std::move(socket), cm::Direction::outbound, to);
  session->path = path;
  session->peer = peer;
  session->reservation = std::move(admitted.reservation);
  session->dial_done = std::move(done);
  sessions_[session.get()] = session;
  session->socket.async_connect(remote, [session, report_failure](boost::system::error_code error) {
    if (session->closed) return;
    if (error) {
      // The dial failed: the manager backs the peer off (and ends its dial in flight).
      if (auto owner = session->node.lock(); owner && report_failure) {
        owner->manager().dial_failed(*session->peer, cm::DialFailure::error);
      }
      // Told here, as a connect error (end() would say the remote turned us away).
      if (auto told = std::exchange(session->dial_done, nullptr)) {
        told(std::error_code(error.value(), std::system_category()), "connect: " + error.message());
      }
      return session->end(cm::CloseReason::host, "connect: " + error.message(), true);
    }
    session->start();
  });
}

cm::CloseReason Node::refused(cm::Admission& verdict) {
  cm::Refusal& refusal = verdict.refusal;
  if (refusal.message.empty()) refusal.message = verdict.error.message();
  refusals_.push_back(refusal);
  log_->info("{}: {}", options_.id.short_string(), refusal.message);
  return refusal.reason == cm::RefusalReason::gater ? cm::CloseReason::gated
                                                    : cm::CloseReason::limit_exceeded;
}

std::optional<std::pair<cm::CloseReason, std::string>> Node::admit_secured(
    Session& session, const std::vector<std::string>& remote_realms) {
  cm::Admission secured = manager().on_secured(session.reservation, *session.peer);
  if (!secured) return std::pair(refused(secured), secured.refusal.message);
  // Claim the realms both hellos name: their limits are checked now, before the add, which
  // binds the connection to every realm claimed. A peer that none of them would take is
  // refused before it joins the pool, and told why.
  bool shared = false, claimed = false;
  std::string last_refusal;
  for (const auto& realm : remote_realms) {
    if (!realm_names_.contains(realm)) continue;
    shared = true;
    if (cm::Admission claim = realms_->claim(session.reservation, realm); claim) {
      claimed = true;
    } else {
      refused(claim);
      last_refusal = claim.refusal.message;
    }
  }
  if (shared && !claimed) return std::pair(cm::CloseReason::limit_exceeded, last_refusal);
  session.established = true;  // before the add: the manager may close it from inside
  cm::Admission added =
      manager().add_admitted(session.shared_from_this(), std::move(session.reservation));
  if (!added) {
    session.established = false;
    return std::pair(refused(added), added.refusal.message);
  }
  return std::nullopt;
}

void Node::forget(Session& session, cm::CloseReason reason, const std::string& detail,
                  bool by_remote) {
  if (std::exchange(session.established, false)) {
    closes_.push_back({*session.peer, session.path, reason, detail, by_remote});
    log_->info("{}: connection to {} closed{}: {}: {}", options_.id.short_string(),
               session.peer->short_string(), by_remote ? " by the remote" : "",
               cm::to_string(reason), detail);
    // Lost, or the remote shut down: CloseReason::remote (a protected peer is reconnected).
    // The remote's own policy (its trim, its gater) dropped us: not worth dialing back.
    const bool lost = reason == cm::CloseReason::host || reason == cm::CloseReason::shutdown;
    manager().remove_connection(
        session, by_remote ? (lost ? cm::CloseReason::remote : cm::CloseReason::host) : reason);
  }
  sessions_.erase(&session);
}

std::string Node::hello(cm::PathKind path) const {
  std::string out = options_.id.to_hex() + (path == cm::PathKind::relay ? "\nrelay" : "\ndirect");
  for (const auto& realm : realm_names_) out += "\n" + realm;
  return out;
}

bool Node::send_data(const cm::NodeId& peer, const std::string& bytes) {
  auto session = std::static_pointer_cast<Session>(manager().best_connection(peer));
  if (!session) return false;
  session->send(Frame::data, bytes);
  return !manager().record_activity(*session, 0, bytes.size());
}

Node::SessionCounts Node::session_counts() const {
  SessionCounts counts;
  for (const auto& entry : sessions_) {  // an ended session has left sessions_
    ++(entry.second->established ? counts.pooled : counts.handshaking);
  }
  return counts;
}

void Node::stop() {
  if (std::exchange(stopped_, true)) return;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  std::vector<std::shared_ptr<Session>> open;
  for (auto& entry : sessions_) open.push_back(entry.second);
  for (auto& session : open) session->end(cm::CloseReason::shutdown, "node stopping", false);
  realms_->close();
}

}  // namespace p2p
