// Effects: what a critical section of the manager core decided to do to the host's side,
// collected under the lock and acted on after it is released (ManagerCore::act), so that
// no host code — Connection::close and ping, event handlers, the path selector, the
// dialer — ever runs
// under the lock. A handle in here may be the last reference to the host's object: it is
// released outside the lock too.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dep2p/connmgr/connection.hpp"
#include "dep2p/connmgr/types.hpp"
#include "dial/redial_queue.hpp"

namespace dep2p::connmgr::detail {

// A connection to close, with its own reason and detail.
struct Closing {
  std::shared_ptr<Connection> handle;
  CloseReason reason;
  std::string detail;
};

// A keepalive ping to send.
struct Ping {
  std::shared_ptr<Connection> handle;
  std::uint32_t slot;
  ConnectionId id;
  std::uint32_t sequence;
  TimePoint sent_at;  // carried to the answer, which measures the RTT from it
};

struct Effects {
  std::vector<Closing> closes;
  std::vector<Ping> pings;
  // Peers whose paths changed: the path selector is asked for their best one.
  std::vector<NodeId> reselect;
  // Dials to ask the host's Dialer for.
  std::vector<RedialQueue::Started> dials;

  bool empty() const {
    return closes.empty() && pings.empty() && reselect.empty() && dials.empty();
  }
};

// A trim's victims, sharing one reason and detail: 16 bytes a handle instead of a Closing's
// 56 (at 50k victims, 2 MB less memory touched for the first time).
struct ClosingBatch {
  std::vector<std::shared_ptr<Connection>> handles;
  CloseReason reason = CloseReason::trimmed;
  std::string detail;
};

}  // namespace dep2p::connmgr::detail
