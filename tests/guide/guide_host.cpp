// The code of docs/guide.md, compiled and run: the host's admission flow (Host::accept,
// Host::dial) and one test per section of the guide. The guide quotes this file verbatim;
// guide_snippets_test.cpp checks that it still does.
#include "guide/guide_host.hpp"

#include "dep2p/connmgr/testing.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace guide {

std::shared_ptr<MyConnection> Host::accept(const cm::Endpoint& remote,
                                           const cm::NodeId& authenticated) {
  // Before any handshake: gater, inbound limits, per-address and per-subnet caps, rate.
  cm::Admission admitted = manager_.admit_inbound(remote);
  if (!admitted) return refuse(admitted.refusal);

  // ... the handshake runs here and proves the peer is `authenticated` ...

  // The peer is known: the gater again, then the peer's own limits. The reservation
  // knows the direction and the address.
  cm::Admission secured = manager_.on_secured(admitted.reservation, authenticated);
  if (!secured) return refuse(secured.refusal);  // the reservation releases what it held

  // The connection joins the pool; what the reservation held passes to it.
  auto connection =
      std::make_shared<MyConnection>(manager_, authenticated, cm::Direction::inbound, remote);
  cm::Admission added = manager_.add_admitted(connection, std::move(admitted.reservation));
  if (!added) return refuse(added.refusal);
  return connection;
}

std::shared_ptr<cm::Connection> Host::dial(const cm::NodeId& peer, const cm::Endpoint& address) {
  // Is the peer blocked? Is a connection to it open already?
  cm::Admission check = manager_.check_dial(peer);
  if (!check) return refuse(check.refusal);
  if (check.existing) return check.existing;
  return connect(peer, address);
}

std::shared_ptr<cm::Connection> Host::connect(const cm::NodeId& peer,
                                              const cm::Endpoint& address) {
  // This address: gater, outbound limits, the dial rate. Holds a pending outbound slot.
  cm::Admission admitted = manager_.check_dial_addr(peer, address);
  if (!admitted) return refuse(admitted.refusal);

  // ... connect and run the handshake here; it proves the remote is `peer` ...

  cm::Admission secured = manager_.on_secured(admitted.reservation, peer);
  if (!secured) return refuse(secured.refusal);
  auto connection =
      std::make_shared<MyConnection>(manager_, peer, cm::Direction::outbound, address);
  cm::Admission added = manager_.add_admitted(connection, std::move(admitted.reservation));
  if (!added) return refuse(added.refusal);
  return connection;
}

namespace {

using namespace std::chrono_literals;

// A 32-byte peer id whose second byte is `n` (a real host has public keys or multihashes).
cm::NodeId peer(std::uint8_t n) {
  std::array<std::uint8_t, 32> bytes{};
  bytes[0] = 0x12;
  bytes[1] = n;
  return cm::NodeId(bytes);
}

cm::Endpoint at(const char* address) {
  return {boost::asio::ip::make_address(address), 4001};
}

// A configuration whose background check never runs within a test's virtual minutes, so
// only the explicit calls trim.
cm::Config quiet_config() {
  cm::Config config;
  config.silence_period = 24h;
  return config;
}

TEST(GuideHost, RunsOnAnIoContextWithItsOwnLogger) {
  boost::asio::io_context io;
  cm::Config config = cm::Config::preset(cm::Preset::server);  // low 500, high 2000
  config.grace_period = std::chrono::seconds(30);

  // Optional: the manager's log lines go to our logger (by default: a private logger
  // named "connmgr", warnings and above, to stderr).
  auto logger = std::make_shared<spdlog::logger>(
      "my-node.connmgr", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  logger->set_level(spdlog::level::warn);

  cm::ConnectionManager manager(io, config, {.logger = logger});

  // The manager's timers (background trim check, decay, keepalive) run on a strand of
  // io's executor, so some thread must run io.
  auto work = boost::asio::make_work_guard(io);
  std::thread io_thread([&io] { io.run(); });

  Host host(manager);
  auto connection = host.accept(at("192.0.2.10"), peer(1));
  ASSERT_NE(connection, nullptr) << host.last_refusal();
  EXPECT_EQ(manager.connection_count(), 1u);

  // Shutting down: stop the manager (connections stay open: they are the host's), then io.
  manager.close();
  work.reset();
  io_thread.join();
}

TEST(GuideHost, AdmitsInboundAndOutboundConnectionsStageByStage) {
  boost::asio::io_context io;
  cm::ConnectionManager manager(io, quiet_config());
  Host host(manager);

  auto inbound = host.accept(at("192.0.2.10"), peer(1));
  ASSERT_NE(inbound, nullptr) << host.last_refusal();
  auto outbound = host.dial(peer(2), at("198.51.100.7"));
  ASSERT_NE(outbound, nullptr) << host.last_refusal();
  EXPECT_EQ(manager.connection_count(cm::Direction::inbound), 1u);
  EXPECT_EQ(manager.connection_count(cm::Direction::outbound), 1u);

  // Dialing a peer we already hold a connection to reuses it.
  EXPECT_EQ(host.dial(peer(1), at("192.0.2.10")), inbound);
  EXPECT_EQ(manager.connection_count(), 2u);
  // Nothing is left pending: every reservation was consumed by add_connection.
  EXPECT_EQ(manager.stats().reservations, 0u);
}

TEST(GuideHost, RefusalsNameTheStageScopeAndLimit) {
  boost::asio::io_context io;
  auto gater = std::make_shared<cm::BasicGater>(io.get_executor());
  gater->block("203.0.113.0/24");
  cm::ConnectionManager manager(io, quiet_config(), {.gater = gater});
  Host host(manager);

  // The gater's block list: refused before any handshake.
  EXPECT_EQ(host.accept(at("203.0.113.5"), peer(1)), nullptr);
  EXPECT_NE(host.last_refusal().find("203.0.113.5"), std::string::npos) << host.last_refusal();

  // The per-address cap (8 connections per IPv4 address by default).
  for (std::uint8_t n = 10; n < 18; ++n) {
    ASSERT_NE(host.accept(at("192.0.2.10"), peer(n)), nullptr) << host.last_refusal();
  }
  EXPECT_EQ(host.accept(at("192.0.2.10"), peer(18)), nullptr);
  EXPECT_NE(host.last_refusal().find("8 of 8"), std::string::npos) << host.last_refusal();

  const cm::Stats stats = manager.stats();
  EXPECT_EQ(stats.refusals(cm::RefusalReason::gater), 1u);
  EXPECT_EQ(stats.refusals(cm::RefusalReason::subnet_cap), 1u);
  EXPECT_EQ(stats.pending_inbound, 0u);  // refused admissions released their slots
}

TEST(GuideHost, ReportsClosuresStreamsAndActivity) {
  boost::asio::io_context io;
  cm::ConnectionManager manager(io, quiet_config());
  Host host(manager);
  auto connection = host.accept(at("192.0.2.10"), peer(1));
  ASSERT_NE(connection, nullptr);

  ASSERT_TRUE(connection->on_stream_opened(cm::Direction::inbound));
  connection->on_bytes(1200, 300);
  EXPECT_EQ(manager.stats().streams, 1u);
  connection->on_stream_closed(cm::Direction::inbound);
  EXPECT_EQ(manager.stats().streams, 0u);

  connection->on_transport_closed();  // the remote hung up
  EXPECT_EQ(manager.connection_count(), 0u);
  // A second report of the same closure is ignored, not counted twice.
  EXPECT_EQ(manager.remove_connection(*connection), cm::Errc::unknown_connection);
}

TEST(GuideHost, TagsAndProtectionsDecideWhatATrimCloses) {
  boost::asio::io_context io;
  cm::Config config = quiet_config();
  config.low_water = 2;
  config.high_water = 4;
  config.grace_period = 0ms;  // no grace, so that the trim below may close new peers
  cm::ConnectionManager manager(io, config);
  Host host(manager);
  std::vector<std::shared_ptr<MyConnection>> connections;
  for (std::uint8_t n = 1; n <= 5; ++n) {
    connections.push_back(host.accept(at("192.0.2.10"), peer(n)));
  }

  manager.tag_peer(peer(2), "dht", 20);  // a peer's value is the sum of its tags
  manager.upsert_tag(peer(3), "useful", [](int old) { return old + 5; });
  manager.protect(peer(1), "bootstrap");  // never trimmed while protected

  // Candidates: peers 2..5 (peer 1 is protected); 4 connections, low water 2, so the two
  // least valuable go: peers 4 and 5 (value 0).
  EXPECT_EQ(manager.trim(), 2u);
  EXPECT_FALSE(connections[0]->closed());
  EXPECT_FALSE(connections[1]->closed());
  EXPECT_FALSE(connections[2]->closed());
  EXPECT_TRUE(connections[3]->closed());
  EXPECT_EQ(connections[4]->close_reason(), cm::CloseReason::trimmed);

  // Decaying tags fade on a schedule unless bumped (here: -1 a minute, kept within 0..100).
  std::error_code ec;
  cm::DecayingTag pubsub = manager.register_decaying_tag(
      "pubsub", std::chrono::minutes(1), cm::Decay::fixed(1), cm::Bump::bounded_sum(0, 100), ec);
  pubsub.bump(peer(2), 10);
  EXPECT_EQ(manager.tag_info(peer(2))->value, 30);

  // A protection for a while: ends by itself.
  manager.protect_for(peer(3), "handshake-boost", std::chrono::minutes(2));
  EXPECT_TRUE(manager.is_protected(peer(3)));
  EXPECT_FALSE(manager.unprotect(peer(1), "bootstrap"));  // false: no other protection left
  EXPECT_FALSE(ec);
}

TEST(GuideHost, SubscribersSeeConnectsRefusalsAndTrims) {
  boost::asio::io_context io;
  cm::Config config = quiet_config();
  config.low_water = 1;
  config.high_water = 2;
  config.grace_period = 0ms;
  cm::ConnectionManager manager(io, config);
  Host host(manager);

  std::vector<std::string> seen;  // what our handler saw
  cm::Subscription subscription = manager.subscribe([&seen](const cm::Event& event) {
    if (const auto* connected = std::get_if<cm::ConnectedEvent>(&event)) {
      seen.push_back("connected " + connected->peer.short_string());
    } else if (const auto* gone = std::get_if<cm::DisconnectedEvent>(&event)) {
      seen.push_back("disconnected " + gone->peer.short_string() + ", " +
                     std::string(cm::to_string(gone->reason)));
    } else if (const auto* trimmed = std::get_if<cm::TrimmedEvent>(&event)) {
      seen.push_back("trimmed " + std::to_string(trimmed->connections_closed));
    } else if (const auto* refused = std::get_if<cm::RefusedEvent>(&event)) {
      seen.push_back(refused->refusal.message);
    }
  });

  auto first = host.accept(at("192.0.2.10"), peer(1));
  auto second = host.accept(at("192.0.2.11"), peer(2));
  manager.tag_peer(peer(2), "dht", 10);
  manager.trim();

  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0], "connected " + peer(1).short_string());
  EXPECT_EQ(seen[1], "connected " + peer(2).short_string());
  EXPECT_EQ(seen[2], "disconnected " + peer(1).short_string() + ", trimmed");
  EXPECT_EQ(seen[3], "trimmed 1");
  // The host's close() reported the trimmed connection back: expected, not a duplicate.
  EXPECT_EQ(manager.stats().closure_reports, 1u);
  EXPECT_EQ(manager.stats().duplicate_reports, 0u);

  subscription.reset();  // or let it go out of scope: no delivery starts afterwards
  host.accept(at("192.0.2.12"), peer(3));
  EXPECT_EQ(seen.size(), 4u);
}

TEST(GuideHost, KeepaliveClosesAPeerThatStopsAnsweringInVirtualTime) {
  boost::asio::io_context io;  // never run by the test: the manual time source drives it
  auto time = std::make_shared<cm::ManualTimeSource>(io);
  cm::ConnectionManager manager(io, cm::Config{}, {.time_source = time});
  Host host(manager);
  auto connection = host.accept(at("192.0.2.10"), peer(1));
  ASSERT_NE(connection, nullptr);

  time->advance(std::chrono::seconds(5));  // the first keepalive ping goes out
  ASSERT_EQ(connection->pings_waiting(), 1u);
  time->advance(std::chrono::milliseconds(40));
  connection->on_pong();  // answered after 40 ms: the peer is alive, its RTT measured
  EXPECT_EQ(manager.rtt(*connection).value_or(cm::Duration{}), std::chrono::milliseconds(40));

  // From now on the peer is silent: 2 pings in a row unanswered within 5 s close it.
  time->advance(std::chrono::seconds(15));
  EXPECT_TRUE(connection->closed());
  EXPECT_EQ(connection->close_reason(), cm::CloseReason::keepalive_timeout);
  EXPECT_EQ(manager.connection_count(), 0u);
}

TEST(GuideHost, TheTestingKitTestsATaggingPolicyWithoutSockets) {
  cm::testing::VirtualTime time;
  cm::Config config;
  config.low_water = 1;
  config.high_water = 3;
  config.grace_period = std::chrono::seconds(30);
  cm::ConnectionManager manager(time.io(), config, {.time_source = time.source()});

  auto useful = cm::testing::reporting_connection(manager, peer(1), cm::Direction::inbound);
  auto idle = cm::testing::reporting_connection(manager, peer(2), cm::Direction::inbound);
  auto other = cm::testing::reporting_connection(manager, peer(3), cm::Direction::outbound);
  for (const auto& c : {useful, idle, other}) manager.add_connection(c);
  manager.tag_peer(peer(1), "useful", 10);   // what our policy would do
  manager.tag_peer(peer(3), "useful", 5);

  time.advance(std::chrono::seconds(30));  // grace over: the background check trims
  EXPECT_EQ(idle->close_count(), 1);       // the lowest value went first
  EXPECT_EQ(other->close_count(), 1);      // down to low water: one connection kept
  EXPECT_EQ(useful->close_count(), 0);
  EXPECT_EQ(manager.connection_count(), 1u);
}

TEST(GuideHost, IdleConnectionsCloseUnlessHeld) {
  boost::asio::io_context io;
  auto time = std::make_shared<cm::ManualTimeSource>(io);
  cm::Config config = quiet_config();
  config.keepalive_interval = 0ms;  // keepalive off: this test is about idleness alone
  config.idle_timeout = std::chrono::minutes(5);
  cm::ConnectionManager manager(io, config, {.time_source = time});
  Host host(manager);
  auto quiet = host.accept(at("192.0.2.10"), peer(1));
  auto subscribed = host.accept(at("192.0.2.11"), peer(2));

  // Our protocol holds a long, quiet subscription with peer 2: keep its connections.
  cm::KeepAliveHold hold = manager.keep_alive(peer(2));

  time->advance(std::chrono::minutes(6));
  EXPECT_EQ(quiet->close_reason(), cm::CloseReason::idle_timeout);
  EXPECT_TRUE(quiet->closed());
  EXPECT_FALSE(subscribed->closed());
}

TEST(GuideHost, AProtectedPeerThatDropsIsDialedAgainThroughTheDialer) {
  boost::asio::io_context io;
  auto time = std::make_shared<cm::ManualTimeSource>(io);
  auto dialer = std::make_shared<HostDialer>();
  cm::ConnectionManager manager(io, quiet_config(), {.time_source = time, .dialer = dialer});
  Host host(manager);
  dialer->attach(host);

  auto connection = host.dial(peer(1), at("192.0.2.10"));
  ASSERT_NE(connection, nullptr);
  manager.protect(peer(1), "bootstrap");  // a peer the node keeps
  static_cast<MyConnection&>(*connection).on_transport_closed();  // the remote went away
  EXPECT_EQ(manager.connection_count(), 0u);

  time->advance(std::chrono::milliseconds(0));  // the manager's dial runs on its strand
  EXPECT_EQ(manager.connection_count(), 1u);
  EXPECT_EQ(manager.stats().reconnects_succeeded, 1u);
}

}  // namespace
}  // namespace guide
