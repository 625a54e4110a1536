// Connection: the handle the host implements for each transport connection it hands to
// the manager. The manager reads a connection's fixed properties once, when it is added,
// and later calls only close() and ping().
//
//   class TcpConnection final : public dep2p::connmgr::Connection { ... };
//   manager.add_connection(std::make_shared<TcpConnection>(...));
//
// A Connection is tracked by at most one manager at a time: the base class keeps one word
// saying where that manager keeps it, so reports about it cost no hash lookup, and the
// connection's recorded traffic, so recording it takes no lock of the manager.
//
// Thread safety: the manager never calls these methods while holding one of its locks, so
// an implementation may call back into the manager (e.g. report the closure from close()).
// close() may be called from any thread the host uses to call the manager and from the
// manager's strand; it must be safe to call more than once.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string_view>
#include <system_error>

#include "dep2p/connmgr/export.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {

namespace detail {
struct ConnectionAccess;
struct ActivityAccess;
// A connection's traffic as the manager records it (ConnectionManager::record_activity):
// kept on the handle, so that recording takes none of the manager's locks and calls for
// different connections never meet. `busy` is a one-word lock ordering the calls for the
// same connection; the manager reads the cell only under it.
struct ActivityCell {
  std::atomic<bool> busy{false};
  TimePoint last{};         // the last reported bytes, or when the connection was added
  float download_rate = 0;  // bytes per second, smoothed
  float upload_rate = 0;
};
}  // namespace detail

class DEP2P_CONNMGR_EXPORT Connection {
 public:
  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  virtual ~Connection() = default;

  // Fixed properties, read once by add_connection().
  virtual NodeId remote_peer() const = 0;
  virtual Direction direction() const = 0;
  virtual Endpoint remote_endpoint() const = 0;
  virtual PathKind path_kind() const { return PathKind::direct; }
  virtual Transport transport() const { return Transport::tcp; }
  // Streams open when the connection is added; afterwards the host reports stream opens
  // and closes to the manager, which keeps the count.
  virtual std::uint32_t stream_count() const { return 0; }

  // Asks the host to close the connection. `detail` is a human-readable explanation of
  // the close, valid only during the call. It describes the decision, not this peer: a
  // trim gives every connection it closes the same text ("trimmed by the background
  // check: 412 connections, low water 100, high water 400"); explain() tells a peer's
  // value and rank. docs/design.md, "Close and refusal reasons", lists the details.
  // The host reports the closure with ConnectionManager::remove_connection() (or
  // report_state(closed)) as usual: the manager has already dropped the connection and
  // expects that report. Until it comes, adding the handle again is refused as a duplicate.
  virtual void close(CloseReason reason, std::string_view detail) = 0;

  // Sends a liveness probe; `done` is called once, with an empty error code when the peer
  // answered. Used by keepalive.
  using PingHandler = std::function<void(std::error_code)>;
  virtual void ping(PingHandler done) = 0;

 private:
  friend struct detail::ConnectionAccess;
  friend struct detail::ActivityAccess;
  // Which manager holds this connection, as that manager's token (0: none). The manager
  // claims it with a compare-and-swap when it adds the connection; when it closes the
  // connection itself it sets the token's low bit (closed, the host's report still to come)
  // and the report clears it; a closure the host reports first clears it at once. `slot_`
  // (its index in that manager's table) is read and written only under that manager's lock.
  mutable std::atomic<std::uint64_t> owner_{0};
  std::uint32_t slot_ = 0;
  mutable detail::ActivityCell activity_;
};

}  // namespace dep2p::connmgr
