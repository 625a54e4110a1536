// The test suite's host side: the public testing kit (FakeConnection, reporting_connection,
// VirtualTime in dep2p/connmgr/testing.hpp) plus the suite's own ways of naming peers and
// endpoints.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include <boost/asio/ip/address.hpp>

#include "dep2p/connmgr/testing.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr::testing {

// A peer id made of a number: 32 bytes, the number big-endian in the last 8.
inline NodeId peer_id(std::uint64_t n) {
  std::array<std::uint8_t, 32> bytes{};
  bytes[0] = 0x12;
  for (int i = 0; i < 8; ++i) {
    bytes[31 - static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  }
  return NodeId(bytes);
}

inline Endpoint endpoint(const char* address, std::uint16_t port = 4001) {
  return Endpoint{boost::asio::ip::make_address(address), port};
}

}  // namespace dep2p::connmgr::testing
