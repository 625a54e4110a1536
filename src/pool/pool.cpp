#include "pool/pool.hpp"

namespace dep2p::connmgr::detail {

std::uint32_t Pool::add_connection(std::uint32_t peer_slot, std::shared_ptr<Connection> handle,
                                   ConnectionId id, const ConnectionFacts& facts, TimePoint now,
                                   const std::optional<boost::asio::ip::address>& capped) {
  std::uint32_t slot;
  if (free_conn_ != kNoSlot) {
    slot = free_conn_;
    free_conn_ = conns_[slot].peer_slot;
  } else {
    slot = static_cast<std::uint32_t>(conns_.size());
    conns_.emplace_back();
  }
  const bool in = facts.direction == Direction::inbound;
  ConnEntry& c = conns_[slot];
  c = ConnEntry{};
  c.handle = std::move(handle);
  c.id = id;
  c.peer_slot = peer_slot;
  c.direction = facts.direction;
  c.path = facts.path;
  c.transport = facts.transport;
  c.streams_in = in ? facts.streams : 0;
  c.streams_out = in ? 0 : facts.streams;
  c.opened_at = now;
  c.ipv6 = facts.remote.address.is_v6() && !facts.remote.address.to_v6().is_v4_mapped();
  pack_remote(c, slot, facts.remote);
  if (capped) {
    c.capped = true;
    if (*capped != facts.remote.address) {
      c.cap_elsewhere = true;
      odd_caps_.insert_or_assign(slot, *capped);
    }
  }
  PeerSlot& entry = peers_[peer_slot];
  PeerCold& cold = cold_[peer_slot];
  entry.conns.push_back(slot);
  entry.streams += facts.streams;
  if (in) cold.streams_in += facts.streams;
  counts_.streams[in ? 0 : 1] += facts.streams;
  if (in) {
    ++entry.inbound;
    ++counts_.inbound;
  } else {
    ++counts_.outbound;
  }
  ++counts_.connections;
  ++cold.paths_version;
  if (entry.conns.size() == 1) {
    // A single path is the best one; the selector is asked once there are several.
    entry.best = slot;
    cold.last_best = id;
  }
  return slot;
}

void Pool::pack_remote(ConnEntry& c, std::uint32_t conn_slot, const Endpoint& remote) {
  c.port = remote.port;
  if (remote.address.is_v6()) {
    const boost::asio::ip::address_v6 v6 = remote.address.to_v6();
    const auto bytes = v6.to_bytes();
    std::copy(bytes.begin(), bytes.end(), c.address.begin());
    c.address_v6 = true;
    if (v6.scope_id() != 0) {
      c.has_scope = true;
      scope_ids_.insert_or_assign(conn_slot, v6.scope_id());
    }
  } else {
    const auto bytes = remote.address.to_v4().to_bytes();
    std::copy(bytes.begin(), bytes.end(), c.address.begin());
  }
}

boost::asio::ip::address Pool::remote_address(std::uint32_t conn_slot) const {
  const ConnEntry& c = conns_[conn_slot];
  if (!c.address_v6) {
    boost::asio::ip::address_v4::bytes_type bytes;
    std::copy_n(c.address.begin(), bytes.size(), bytes.begin());
    return boost::asio::ip::address_v4(bytes);
  }
  boost::asio::ip::address_v6::bytes_type bytes;
  std::copy_n(c.address.begin(), bytes.size(), bytes.begin());
  return boost::asio::ip::address_v6(bytes, c.has_scope ? scope_ids_.find(conn_slot)->second : 0);
}

}  // namespace dep2p::connmgr::detail
