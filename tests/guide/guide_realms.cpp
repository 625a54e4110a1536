// The realms section of docs/guide.md, compiled and run: a RealmConnectionManager, a realm
// with limits, binding authenticated connections, claiming a realm at admission, realm
// tags and protections. Quoted verbatim by the guide (checked by guide_snippets_test.cpp).
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "guide/guide_host.hpp"

namespace guide {
namespace {

cm::NodeId member(std::uint8_t n) {
  std::array<std::uint8_t, 32> bytes{};
  bytes[0] = 0x12;
  bytes[1] = n;
  return cm::NodeId(bytes);
}

cm::Endpoint at(const char* address) {
  return {boost::asio::ip::make_address(address), 4001};
}

TEST(GuideRealms, BindingCountsConnectionsPerRealmAndRefusesBeyondHardMax) {
  boost::asio::io_context io;
  cm::Config config;
  config.silence_period = std::chrono::hours(24);  // no background trim in this test

  // The node's pool, with realms inside it. node.manager() is the ConnectionManager.
  cm::RealmConnectionManager node(io, config);
  Host host(node.manager());

  cm::RealmConfig chat;
  chat.max_members = 3;   // distinct peers
  chat.hard_max = 4;      // bound connections; binding beyond is refused (realm_full)
  chat.low_water = 2;     // the realm trim's target, and the realm's share in the node's trim
  chat.high_water = 4;    // the realm trims itself from here
  chat.min_reserved = 1;  // the node's trim leaves this many of the realm's connections alone
  cm::ConfigError error;  // on Errc::invalid_argument: which field, and why
  ASSERT_FALSE(node.create_realm("chat", chat, &error)) << error.message;

  // A connection enters the node's pool as usual; once our protocol has authenticated the
  // peer as a member of "chat", we bind the connection to the realm.
  auto connection = host.accept(at("192.0.2.10"), member(1));
  ASSERT_NE(connection, nullptr) << host.last_refusal();
  cm::Admission bound = node.bind(*connection, "chat");
  // Refused (cm::Errc::realm_full): bound.refusal.message says whether hard_max or
  // max_members was reached; the connection stays in the node's pool, unbound.
  EXPECT_TRUE(bound) << bound.refusal.message;
  EXPECT_EQ(node.realm_connection_count("chat"), 1u);
  EXPECT_EQ(node.realms_of(member(1)), std::vector<std::string>{"chat"});

  // Realm tags and protections count in the realm's own trim only.
  node.tag_peer("chat", member(1), "moderator", 50);
  node.protect("chat", member(1), "room-owner");
  EXPECT_EQ(node.realm_value("chat", member(1)).value_or(0), 50);
  EXPECT_TRUE(node.is_protected("chat", member(1)));
  EXPECT_FALSE(node.manager().is_protected(member(1)));

  // Three members fill max_members; a fourth distinct peer is refused.
  for (std::uint8_t n = 2; n <= 3; ++n) {
    auto other = host.accept(at("192.0.2.11"), member(n));
    ASSERT_NE(other, nullptr) << host.last_refusal();
    EXPECT_TRUE(node.bind(*other, "chat"));
  }
  auto fourth = host.accept(at("192.0.2.12"), member(4));
  ASSERT_NE(fourth, nullptr) << host.last_refusal();
  cm::Admission refused = node.bind(*fourth, "chat");
  EXPECT_EQ(refused.error, cm::Errc::realm_full);
  EXPECT_EQ(refused.refusal.stage, cm::Stage::bind);
  EXPECT_EQ(refused.refusal.reason, cm::RefusalReason::realm_limit);
  EXPECT_EQ(node.manager().connection_count(), 4u);  // refused binds leave the pool alone

  // A connection that leaves the pool leaves its realms by itself.
  connection->on_transport_closed();
  EXPECT_EQ(node.realm_connection_count("chat"), 2u);
  EXPECT_EQ(node.realm_stats("chat")->unbinds, 1u);
}

TEST(GuideRealms, AClaimChecksTheRealmBeforeTheConnectionJoinsThePool) {
  boost::asio::io_context io;
  cm::Config config;
  config.silence_period = std::chrono::hours(24);  // no background trim in this test
  cm::RealmConnectionManager node(io, config);
  cm::RealmConfig one;
  one.hard_max = 1;
  ASSERT_FALSE(node.create_realm("chat", one));
  cm::ConnectionManager& manager = node.manager();

  // The handshake names the realm the peer joins: claim it before the connection enters
  // the pool. A full realm refuses here; the add binds the connection to the realm.
  auto accept_into = [&](const char* realm, const cm::NodeId& peer,
                         const cm::Endpoint& remote) -> std::shared_ptr<MyConnection> {
    cm::Admission admitted = manager.admit_inbound(remote);
    if (!admitted) return nullptr;
    // ... the handshake runs here, proves `peer` and names `realm` ...
    // on_secured with the realm: secures and claims in one step (claim() adds more realms).
    if (!node.on_secured(admitted.reservation, peer, realm)) {
      return nullptr;  // its refusal: "claim refused: realm chat holds 1 of 1 connections (claims included)"
    }
    auto connection =
        std::make_shared<MyConnection>(manager, peer, cm::Direction::inbound, remote);
    if (!manager.add_admitted(connection, std::move(admitted.reservation))) return nullptr;
    return connection;  // in the node's pool, bound to `realm`
  };

  EXPECT_NE(accept_into("chat", member(1), at("192.0.2.10")), nullptr);
  EXPECT_EQ(node.realm_connection_count("chat"), 1u);
  EXPECT_EQ(accept_into("chat", member(2), at("192.0.2.11")), nullptr);
  EXPECT_EQ(manager.connection_count(), 1u);  // the refused one never entered the pool
  EXPECT_EQ(node.realm_stats("chat")->refused_full, 1u);
}

}  // namespace
}  // namespace guide
