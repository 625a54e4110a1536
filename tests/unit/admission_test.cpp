// Admission (docs/design.md, "Admission"): every stage, every limit, reservations that release
// exactly what they hold, refusals that name their stage, scope and limit.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/gater.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using testing::endpoint;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

Config limited(const std::function<void(Limits&)>& set) {
  Config config = trim_config(0, 0);  // no trimming: admission alone
  set(config.limits);
  return config;
}

// A gater that denies what it is told to, counting its calls.
class ScriptedGater final : public Gater {
 public:
  Decision intercept_peer_dial(const NodeId&) override { return answer(deny_dial, "dial"); }
  Decision intercept_addr_dial(const NodeId&, const Endpoint&) override {
    return answer(deny_addr, "addr");
  }
  Decision intercept_accept(const Endpoint&) override { return answer(deny_accept, "accept"); }
  Decision intercept_secured(Direction, const NodeId&, const Endpoint&) override {
    return answer(deny_secured, "secured");
  }
  Decision intercept_upgraded(const Connection&) override {
    return answer(deny_upgraded, "upgraded");
  }
  bool deny_dial = false, deny_addr = false, deny_accept = false, deny_secured = false,
       deny_upgraded = false;
  int calls = 0;

 private:
  Decision answer(bool deny, const char* stage) {
    ++calls;
    return deny ? Decision::deny(std::string("scripted ") + stage) : Decision::allow();
  }
};

// Runs the inbound stages for `peer` from `from` and adds the connection.
std::shared_ptr<FakeConnection> admit_and_add(ConnectionManager& m, std::uint64_t peer,
                                              const char* from) {
  Admission admitted = m.admit_inbound(endpoint(from));
  if (!admitted) return nullptr;
  if (!m.on_secured(admitted.reservation, peer_id(peer))) {
    return nullptr;
  }
  auto c = std::make_shared<FakeConnection>(peer_id(peer), Direction::inbound, endpoint(from));
  if (!m.add_admitted(c, std::move(admitted.reservation))) return nullptr;
  return c;
}

TEST(Admission, CheckDialOffersTheOpenConnectionForReuse) {
  ManagerHarness h;
  auto c = h.add(1);
  Admission check = h.manager.check_dial(peer_id(1));
  EXPECT_FALSE(check.error);
  EXPECT_EQ(check.existing.get(), c.get());
  EXPECT_EQ(h.manager.check_dial(peer_id(1), /*force_new=*/true).existing, nullptr);
  EXPECT_EQ(h.manager.check_dial(peer_id(2)).existing, nullptr);
}

TEST(Admission, EachGaterStageRefusesWithItsStageAndReason) {
  auto gater = std::make_shared<ScriptedGater>();
  Dependencies deps;
  deps.gater = gater;
  ManagerHarness h(trim_config(0, 0), deps);

  gater->deny_dial = true;
  Admission dial = h.manager.check_dial(peer_id(1));
  EXPECT_EQ(dial.error, Errc::peer_blocked);
  EXPECT_EQ(dial.refusal.stage, Stage::dial);
  EXPECT_EQ(dial.refusal.message, "dial refused by the gater: scripted dial");

  gater->deny_addr = true;
  Admission addr = h.manager.check_dial_addr(peer_id(1), endpoint("10.0.0.1"));
  EXPECT_EQ(addr.error, Errc::connection_denied);
  EXPECT_EQ(addr.refusal.stage, Stage::dial_addr);
  EXPECT_FALSE(addr.reservation.valid());

  gater->deny_accept = true;
  Admission accept = h.manager.admit_inbound(endpoint("10.0.0.1"));
  EXPECT_EQ(accept.error, Errc::connection_denied);
  EXPECT_EQ(accept.refusal.stage, Stage::accept);
  EXPECT_EQ(accept.refusal.reason, RefusalReason::gater);

  gater->deny_accept = false;
  gater->deny_secured = true;
  Admission ok = h.manager.admit_inbound(endpoint("10.0.0.1"));
  ASSERT_TRUE(ok);
  Refusal refusal;
  EXPECT_EQ(keep_refusal(refusal, h.manager.on_secured(ok.reservation, peer_id(1))),
            Errc::peer_blocked);
  EXPECT_EQ(refusal.stage, Stage::secured);

  gater->deny_secured = false;
  gater->deny_upgraded = true;
  ASSERT_TRUE(h.manager.on_secured(ok.reservation, peer_id(1)));
  auto c = std::make_shared<FakeConnection>(peer_id(1), Direction::inbound, endpoint("10.0.0.1"));
  EXPECT_EQ(keep_refusal(refusal, h.manager.add_admitted(c, std::move(ok.reservation))),
            Errc::connection_denied);
  EXPECT_EQ(refusal.stage, Stage::add);
  EXPECT_EQ(h.manager.connection_count(), 0u);
  const Stats stats = h.manager.stats();
  EXPECT_EQ(stats.refusals(RefusalReason::gater), 5u);
  EXPECT_EQ(stats.reservations, 0u) << "the refused add released the reservation";
  EXPECT_EQ(stats.pending_inbound, 0u);
}

TEST(Admission, SystemInboundLimitRefusesTheNextConnectionCountingPendingOnes) {
  ManagerHarness h(limited([](Limits& l) { l.system.connections_inbound = 3; }));
  ASSERT_NE(admit_and_add(h.manager, 1, "10.0.0.1"), nullptr);
  ASSERT_NE(admit_and_add(h.manager, 2, "10.0.0.2"), nullptr);
  Admission pending = h.manager.admit_inbound(endpoint("10.0.0.3"));
  ASSERT_TRUE(pending);  // the third: open 2 + pending 0 < 3
  Admission fourth = h.manager.admit_inbound(endpoint("10.0.0.4"));
  EXPECT_EQ(fourth.error, Errc::limit_exceeded);
  EXPECT_EQ(fourth.refusal.reason, RefusalReason::connection_limit);
  EXPECT_EQ(fourth.refusal.scope, "system");
  EXPECT_EQ(fourth.refusal.limit, "connections_inbound");
  EXPECT_EQ(fourth.refusal.message, "inbound refused: system holds 3 of 3 inbound connections");
  pending.reservation.release();  // a failed handshake gives its place back
  EXPECT_TRUE(h.manager.admit_inbound(endpoint("10.0.0.4")));
}

TEST(Admission, SystemTotalAndPendingLimits) {
  ManagerHarness h(limited([](Limits& l) {
    l.system.connections_total = 2;
    l.system.pending_outbound = 1;
  }));
  Admission first = h.manager.check_dial_addr(peer_id(1), endpoint("10.0.0.1"));
  ASSERT_TRUE(first);
  Admission second = h.manager.check_dial_addr(peer_id(2), endpoint("10.0.0.2"));
  EXPECT_EQ(second.refusal.reason, RefusalReason::pending_limit);
  EXPECT_EQ(second.refusal.message,
            "outbound refused: system holds 1 of 1 pending outbound handshakes");
  ASSERT_NE(admit_and_add(h.manager, 3, "10.0.0.3"), nullptr);
  // One open inbound + one pending outbound = 2 of 2 in total.
  Admission third = h.manager.admit_inbound(endpoint("10.0.0.4"));
  EXPECT_EQ(third.refusal.limit, "connections_total");
  EXPECT_EQ(third.refusal.message, "inbound refused: system holds 2 of 2 connections");
}

TEST(Admission, PeerLimitsApplyOnceThePeerIsKnown) {
  ManagerHarness h(limited([](Limits& l) { l.peer.connections_total = 2; }));
  ASSERT_NE(admit_and_add(h.manager, 7, "10.0.0.1"), nullptr);
  ASSERT_NE(admit_and_add(h.manager, 7, "10.0.0.2"), nullptr);
  Admission third = h.manager.admit_inbound(endpoint("10.0.0.3"));
  ASSERT_TRUE(third) << "the peer is unknown before the handshake";
  Refusal refusal;
  EXPECT_EQ(keep_refusal(refusal, h.manager.on_secured(third.reservation, peer_id(7))),
            Errc::limit_exceeded);
  EXPECT_EQ(refusal.scope, "peer " + peer_id(7).short_string());
  EXPECT_EQ(refusal.message,
            "inbound refused: peer " + peer_id(7).short_string() + " holds 2 of 2 connections");
  // Outbound dials know their peer at once.
  Admission dial = h.manager.check_dial_addr(peer_id(7), endpoint("10.0.0.9"));
  EXPECT_EQ(dial.error, Errc::limit_exceeded);
  EXPECT_TRUE(h.manager.check_dial_addr(peer_id(8), endpoint("10.0.0.9")));
}

TEST(Admission, StreamLimitsRefuseTheNextStreamAndCountNothing) {
  ManagerHarness h(limited([](Limits& l) {
    l.system.streams_total = 3;
    l.peer.streams_inbound = 2;
  }));
  auto a = h.add(1);
  auto b = h.add(2);
  EXPECT_TRUE(h.manager.stream_opened(*a, Direction::inbound));
  EXPECT_TRUE(h.manager.stream_opened(*a, Direction::inbound));
  Refusal refusal;
  EXPECT_EQ(keep_refusal(refusal, h.manager.stream_opened(*a, Direction::inbound)),
            Errc::limit_exceeded);
  EXPECT_EQ(refusal.limit, "streams_inbound");
  EXPECT_EQ(refusal.stage, Stage::stream);
  EXPECT_TRUE(h.manager.stream_opened(*a, Direction::outbound));
  EXPECT_EQ(keep_refusal(refusal, h.manager.stream_opened(*b, Direction::outbound)),
            Errc::limit_exceeded);
  EXPECT_EQ(refusal.message, "outbound stream refused: system holds 3 of 3 streams");
  EXPECT_EQ(h.manager.stats().streams, 3u);
  EXPECT_FALSE(h.manager.stream_closed(*a, Direction::outbound));
  EXPECT_TRUE(h.manager.stream_opened(*b, Direction::outbound));
  EXPECT_EQ(h.manager.stats().refusals(RefusalReason::stream_limit), 2u);
}

TEST(Admission, MemoryAndDescriptorReservationsAreBoundedPerScope) {
  ManagerHarness h(limited([](Limits& l) {
    l.system.memory_bytes = 1000;
    l.peer.memory_bytes = 600;
    l.system.file_descriptors = 3;
  }));
  Admission a = h.manager.reserve_resources(peer_id(1), 500, 1);
  ASSERT_TRUE(a);
  Admission b = h.manager.reserve_resources(peer_id(1), 200);
  EXPECT_EQ(b.refusal.reason, RefusalReason::memory_limit);
  EXPECT_EQ(b.refusal.message, "reservation refused: peer " + peer_id(1).short_string() +
                                   " holds 500 of 600 bytes, 200 more asked");
  Admission c = h.manager.reserve_resources(std::nullopt, 500, 2);
  ASSERT_TRUE(c);
  EXPECT_EQ(h.manager.reserve_resources(std::nullopt, 1).refusal.scope, "system");
  EXPECT_EQ(h.manager.reserve_resources(std::nullopt, 0, 1).refusal.reason,
            RefusalReason::fd_limit);
  EXPECT_EQ(h.manager.stats().memory_reserved, 1000u);
  a.reservation.release();
  EXPECT_EQ(h.manager.stats().memory_reserved, 500u);
  EXPECT_EQ(h.manager.stats().fds_reserved, 2u);
  EXPECT_TRUE(h.manager.reserve_resources(peer_id(1), 500));
}

TEST(Admission, AReservationThatDiesWithAnExceptionReleasesItsShare) {
  ManagerHarness h(limited([](Limits& l) { l.system.pending_inbound = 1; }));
  try {
    Admission admitted = h.manager.admit_inbound(endpoint("10.0.0.1"));
    ASSERT_TRUE(admitted);
    EXPECT_EQ(h.manager.stats().pending_inbound, 1u);
    throw std::runtime_error("handshake failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(h.manager.stats().pending_inbound, 0u);
  EXPECT_EQ(h.manager.stats().reservations, 0u);
  EXPECT_TRUE(h.manager.admit_inbound(endpoint("10.0.0.1")));
}

TEST(Admission, AReservationIsUsableOnlyByItsOwnConnection) {
  ManagerHarness h;
  Admission out = h.manager.check_dial_addr(peer_id(1), endpoint("10.0.0.1"));
  ASSERT_TRUE(out);
  auto wrong_peer = std::make_shared<FakeConnection>(peer_id(2), Direction::outbound);
  EXPECT_EQ(h.manager.add_admitted(wrong_peer, std::move(out.reservation)).error,
            Errc::invalid_argument);
  EXPECT_EQ(h.manager.connection_count(), 0u);
  EXPECT_EQ(h.manager.stats().pending_outbound, 0u) << "the refused add released it";

  Admission in = h.manager.admit_inbound(endpoint("10.0.0.1"));
  auto outbound = std::make_shared<FakeConnection>(peer_id(3), Direction::outbound);
  EXPECT_EQ(h.manager.add_admitted(outbound, std::move(in.reservation)).error,
            Errc::invalid_argument);
  EXPECT_EQ(h.manager.add_admitted(outbound, Reservation{}).error, Errc::invalid_argument);
  EXPECT_EQ(h.manager.stats().reservations, 0u);
}

TEST(Admission, ConnectionsAddedThroughTheStagesReleaseTheirPlacesWhenTheyClose) {
  ManagerHarness h(limited([](Limits& l) { l.system.connections_inbound = 1; }));
  auto c = admit_and_add(h.manager, 1, "10.0.0.1");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(h.manager.stats().pending_inbound, 0u);
  EXPECT_FALSE(h.manager.admit_inbound(endpoint("10.0.0.2")));
  ASSERT_FALSE(h.manager.remove_connection(*c));
  EXPECT_TRUE(h.manager.admit_inbound(endpoint("10.0.0.2")));
}

TEST(Admission, RandomisedSequencesLeaveEveryCounterAtZero) {
  std::mt19937 rng(20261122);
  for (int round = 0; round < 1000; ++round) {
    ManagerHarness h(limited([](Limits& l) {
      l.system.connections_total = 6;
      l.system.pending_inbound = 3;
      l.peer.connections_total = 2;
      l.system.memory_bytes = 5000;
    }));
    std::vector<Reservation> held;
    std::vector<std::shared_ptr<FakeConnection>> open;
    for (int step = 0; step < 30; ++step) {
      const std::uint64_t peer = rng() % 4;
      const std::string from =
          "10.0." + std::to_string(rng() % 3) + "." + std::to_string(rng() % 4);
      switch (rng() % 7) {
        case 0: {
          Admission a = h.manager.admit_inbound(endpoint(from.c_str()));
          if (a) held.push_back(std::move(a.reservation));
          break;
        }
        case 1: {
          Admission a = h.manager.check_dial_addr(peer_id(peer), endpoint(from.c_str()));
          if (a) held.push_back(std::move(a.reservation));
          break;
        }
        case 2:
          if (!held.empty()) held.erase(held.begin() + static_cast<long>(rng() % held.size()));
          break;
        case 3:
          if (auto c = admit_and_add(h.manager, peer, from.c_str())) open.push_back(c);
          break;
        case 4:
          if (!open.empty()) {
            const auto i = rng() % open.size();
            (void)h.manager.remove_connection(*open[i]);
            open.erase(open.begin() + static_cast<long>(i));
          }
          break;
        case 5: {
          Admission a = h.manager.reserve_resources(peer_id(peer), rng() % 2000, rng() % 2);
          if (a) held.push_back(std::move(a.reservation));
          break;
        }
        default:
          if (!held.empty() && held.back().valid()) {
            (void)h.manager.on_secured(held.back(), peer_id(peer));
          }
          break;
      }
      const Stats s = h.manager.stats();
      ASSERT_LE(s.connections + s.pending_inbound + s.pending_outbound, 6u) << "round " << round;
    }
    held.clear();
    for (auto& c : open) (void)h.manager.remove_connection(*c);
    const Stats s = h.manager.stats();
    ASSERT_EQ(s.connections, 0u) << "round " << round;
    ASSERT_EQ(s.pending_inbound, 0u) << "round " << round;
    ASSERT_EQ(s.pending_outbound, 0u) << "round " << round;
    ASSERT_EQ(s.reservations, 0u) << "round " << round;
    ASSERT_EQ(s.memory_reserved, 0u) << "round " << round;
    ASSERT_EQ(s.fds_reserved, 0u) << "round " << round;
    ASSERT_EQ(s.capped_addresses, 0u) << "round " << round;
  }
}

TEST(Admission, ReservationsOutliveTheManagerHarmlessly) {
  Reservation kept;
  {
    ManagerHarness h;
    Admission a = h.manager.admit_inbound(endpoint("10.0.0.1"));
    kept = std::move(a.reservation);
    EXPECT_TRUE(kept.valid());
  }
  kept.release();  // the manager is gone: nothing to release, nothing to crash
  EXPECT_FALSE(kept.valid());
}

TEST(Admission, CallsAfterCloseAreRefusedAsClosed) {
  ManagerHarness h;
  h.manager.close();
  EXPECT_EQ(h.manager.check_dial(peer_id(1)).error, Errc::closed);
  EXPECT_EQ(h.manager.admit_inbound(endpoint("10.0.0.1")).error, Errc::closed);
  EXPECT_EQ(h.manager.check_dial_addr(peer_id(1), endpoint("10.0.0.1")).error, Errc::closed);
  EXPECT_EQ(h.manager.reserve_resources(std::nullopt, 1).error, Errc::closed);
}

TEST(Admission, EffectiveLimitsReportWhatIsInForce) {
  ManagerHarness h(limited([](Limits& l) { l.system.connections_inbound = 42; }));
  EXPECT_EQ(h.manager.effective_limits().system.connections_inbound, 42u);
  EXPECT_EQ(h.manager.effective_limits().subnets.ipv4_32, 8u);
}

TEST(Admission, TheNinthConnectionFromOneAddressIsRefusedByTheAddressCap) {
  ManagerHarness h(trim_config(0, 0));
  std::vector<std::shared_ptr<FakeConnection>> open;
  for (std::uint64_t i = 0; i < 8; ++i) {
    auto c = admit_and_add(h.manager, i, "10.1.2.3");
    ASSERT_NE(c, nullptr) << i;
    open.push_back(c);
  }
  Admission ninth = h.manager.admit_inbound(endpoint("10.1.2.3"));
  EXPECT_EQ(ninth.error, Errc::limit_exceeded);
  EXPECT_EQ(ninth.refusal.reason, RefusalReason::subnet_cap);
  EXPECT_EQ(ninth.refusal.stage, Stage::accept);
  EXPECT_EQ(ninth.refusal.scope, "address 10.1.2.3");
  EXPECT_EQ(ninth.refusal.message, "inbound refused: address 10.1.2.3 holds 8 of 8 connections");
  EXPECT_TRUE(h.manager.admit_inbound(endpoint("10.1.2.4"))) << "the /24 still has room";
  ASSERT_FALSE(h.manager.remove_connection(*open.front()));
  EXPECT_TRUE(h.manager.admit_inbound(endpoint("10.1.2.3")))
      << "a closed connection frees its place";
}

TEST(Admission, TheSubnetCapCountsEveryAddressOfTheSubnet) {
  Config config = trim_config(0, 0);
  config.limits.subnets.ipv4_24 = 8;
  config.limits.subnets.ipv4_32 = 2;
  ManagerHarness h(config);
  std::vector<Reservation> held;
  for (int i = 0; i < 8; ++i) {
    const std::string from = "10.1.2." + std::to_string(i / 2);
    Admission a = h.manager.admit_inbound(endpoint(from.c_str()));
    ASSERT_TRUE(a) << from << ": " << a.refusal.message;
    held.push_back(std::move(a.reservation));
  }
  Admission next = h.manager.admit_inbound(endpoint("10.1.2.200"));
  EXPECT_EQ(next.refusal.message, "inbound refused: subnet 10.1.2.0/24 holds 8 of 8 connections");
  EXPECT_EQ(next.refusal.scope, "subnet 10.1.2.0/24");
  EXPECT_TRUE(h.manager.admit_inbound(endpoint("10.1.3.1")));
  held.pop_back();  // a dropped reservation gives its place back at once
  EXPECT_TRUE(h.manager.admit_inbound(endpoint("10.1.2.200")));
}

TEST(Admission, IPv6PrefixesAreCappedToo) {
  Config config = trim_config(0, 0);
  config.limits.subnets.ipv6_56 = 2;
  config.limits.subnets.ipv6_48 = 3;
  ManagerHarness h(config);
  std::vector<Reservation> held;
  for (const char* from : {"2001:db8:1:100::1", "2001:db8:1:100::2"}) {
    Admission a = h.manager.admit_inbound(endpoint(from));
    ASSERT_TRUE(a) << a.refusal.message;
    held.push_back(std::move(a.reservation));
  }
  EXPECT_EQ(h.manager.admit_inbound(endpoint("2001:db8:1:1ff::9")).refusal.scope,
            "subnet 2001:db8:1:100::/56");
  Admission third = h.manager.admit_inbound(endpoint("2001:db8:1:200::1"));
  ASSERT_TRUE(third);
  EXPECT_EQ(h.manager.admit_inbound(endpoint("2001:db8:1:300::1")).refusal.scope,
            "subnet 2001:db8:1::/48");
}

TEST(Admission, LoopbackIsExemptFromTheCapsByDefault) {
  ManagerHarness h(trim_config(0, 0));
  std::vector<Reservation> held;
  for (int i = 0; i < 100; ++i) {
    Admission a = h.manager.admit_inbound(endpoint("127.0.0.1"));
    ASSERT_TRUE(a) << i << ": " << a.refusal.message;
    held.push_back(std::move(a.reservation));
  }
}

// A gater whose allow list lets one address past the caps.
class AllowOne final : public Gater {
 public:
  bool bypasses_caps(const boost::asio::ip::address& a) override {
    return a == boost::asio::ip::make_address("10.9.9.9");
  }
};

TEST(Admission, AnAllowListedAddressBypassesTheCaps) {
  Dependencies deps;
  deps.gater = std::make_shared<AllowOne>();
  Config config = trim_config(0, 0);
  config.limits.subnets.ipv4_32 = 1;
  config.limits.subnets.ipv4_24 = 1;
  ManagerHarness h(config, deps);
  std::vector<Reservation> held;
  for (int i = 0; i < 5; ++i) {
    Admission a = h.manager.admit_inbound(endpoint("10.9.9.9"));
    ASSERT_TRUE(a) << a.refusal.message;
    held.push_back(std::move(a.reservation));
  }
  Admission other = h.manager.admit_inbound(endpoint("10.9.8.1"));
  ASSERT_TRUE(other);
  EXPECT_FALSE(h.manager.admit_inbound(endpoint("10.9.8.2")));
  held.clear();
  other.reservation.release();
  EXPECT_EQ(h.manager.stats().capped_addresses, 0u);
}

TEST(Admission, InboundRateAdmitsTheBurstThenTheSteadyRatePerSubnet) {
  Config config = trim_config(0, 0);
  config.limits.inbound_rate.ipv4_24 = {10, 50};
  config.limits.inbound_rate.ipv4_16 = {0, 0};  // this test looks at the /24 alone
  config.limits.subnets.ipv4_32 = kUnlimited;
  config.limits.subnets.ipv4_24 = kUnlimited;
  ManagerHarness h(config);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(h.manager.admit_inbound(endpoint("10.1.2.3"))) << "burst " << i;
  }
  Admission over = h.manager.admit_inbound(endpoint("10.1.2.4"));
  EXPECT_EQ(over.refusal.reason, RefusalReason::rate_limit);
  EXPECT_EQ(over.refusal.scope, "subnet 10.1.2.0/24");
  EXPECT_NE(over.refusal.message.find("10/s"), std::string::npos) << over.refusal.message;
  EXPECT_TRUE(h.manager.admit_inbound(endpoint("10.1.3.1"))) << "another /24 is independent";
  h.time->advance(100ms);
  EXPECT_TRUE(h.manager.admit_inbound(endpoint("10.1.2.5")));
  EXPECT_FALSE(h.manager.admit_inbound(endpoint("10.1.2.5")));
  int admitted = 0;
  for (int step = 0; step < 10; ++step) {
    h.time->advance(100ms);
    for (int i = 0; i < 3; ++i) admitted += h.manager.admit_inbound(endpoint("10.1.2.6")) ? 1 : 0;
  }
  EXPECT_EQ(admitted, 10) << "10 per second after the burst";
  EXPECT_GE(h.manager.stats().refusals(RefusalReason::rate_limit), 21u);
}

TEST(Admission, OutboundDialRateIsEnforced) {
  Config config = trim_config(0, 0);
  config.limits.outbound_dials = {1, 2};
  ManagerHarness h(config);
  EXPECT_TRUE(h.manager.check_dial_addr(peer_id(1), endpoint("10.0.0.1")));
  EXPECT_TRUE(h.manager.check_dial_addr(peer_id(2), endpoint("10.0.0.2")));
  Admission third = h.manager.check_dial_addr(peer_id(3), endpoint("10.0.0.3"));
  EXPECT_EQ(third.refusal.reason, RefusalReason::rate_limit);
  EXPECT_EQ(third.refusal.limit, "outbound_dials");
  h.time->advance(1s);
  EXPECT_TRUE(h.manager.check_dial_addr(peer_id(3), endpoint("10.0.0.3")));
}

// The gater, the manager and a shared virtual clock, for re-gating tests.
struct GatedManager {
  explicit GatedManager(bool close_existing)
      : time(std::make_shared<ManualTimeSource>(io)),
        gater(std::make_shared<BasicGater>(io.get_executor(), gater_options(time, close_existing))),
        manager(io, trim_config(0, 0), deps(time, gater)) {}
  static BasicGaterOptions gater_options(std::shared_ptr<ManualTimeSource> t, bool close) {
    BasicGaterOptions o;
    o.time_source = std::move(t);
    o.close_existing = close;
    return o;
  }
  static Dependencies deps(std::shared_ptr<ManualTimeSource> t, std::shared_ptr<Gater> g) {
    Dependencies d;
    d.time_source = std::move(t);
    d.gater = std::move(g);
    return d;
  }
  boost::asio::io_context io;
  std::shared_ptr<ManualTimeSource> time;
  std::shared_ptr<BasicGater> gater;
  ConnectionManager manager;
};

TEST(Admission, BlockingASubnetClosesItsOpenConnectionsWhenAsked) {
  GatedManager g(/*close_existing=*/true);
  auto a = admit_and_add(g.manager, 1, "10.1.2.3");
  auto b = admit_and_add(g.manager, 2, "10.1.2.4");
  auto c = admit_and_add(g.manager, 3, "10.2.0.1");
  ASSERT_TRUE(a && b && c);
  ASSERT_FALSE(g.gater->block("10.1.2.0/24"));
  g.time->run_ready();  // the re-check runs on the manager's strand
  EXPECT_EQ(a->close_count(), 1);
  EXPECT_EQ(b->close_count(), 1);
  EXPECT_EQ(a->last_reason(), CloseReason::gated);
  EXPECT_NE(a->last_detail().find("10.1.2.0/24"), std::string::npos) << a->last_detail();
  EXPECT_FALSE(c->closed());
  EXPECT_EQ(g.manager.connection_count(), 1u);
  EXPECT_EQ(g.manager.stats().closes(CloseReason::gated), 2u);
  EXPECT_FALSE(g.manager.admit_inbound(endpoint("10.1.2.9")));
}

TEST(Admission, BlockingAPeerClosesItsConnectionsWhenAsked) {
  GatedManager g(/*close_existing=*/true);
  auto a = admit_and_add(g.manager, 1, "10.1.2.3");
  auto b = admit_and_add(g.manager, 2, "10.1.2.4");
  ASSERT_TRUE(a && b);
  g.gater->ban_peer(peer_id(2), 1h);
  g.time->run_ready();
  EXPECT_FALSE(a->closed());
  EXPECT_EQ(b->last_reason(), CloseReason::gated);
  EXPECT_EQ(g.manager.check_dial(peer_id(2)).error, Errc::peer_blocked);
}

TEST(Admission, BlockingLeavesOpenConnectionsAloneUnlessAsked) {
  GatedManager g(/*close_existing=*/false);
  auto a = admit_and_add(g.manager, 1, "10.1.2.3");
  ASSERT_TRUE(a);
  ASSERT_FALSE(g.gater->block("10.1.2.0/24"));
  g.time->run_ready();
  EXPECT_FALSE(a->closed());
  EXPECT_EQ(g.manager.connection_count(), 1u);
  EXPECT_FALSE(g.manager.admit_inbound(endpoint("10.1.2.3"))) << "new ones are refused";
}

TEST(Admission, BasicGaterAllowListBypassesTheManagersCaps) {
  GatedManager g(false);
  ASSERT_FALSE(g.gater->allow("10.5.0.0/16"));
  std::vector<Reservation> held;
  for (int i = 0; i < 20; ++i) {
    Admission a = g.manager.admit_inbound(endpoint("10.5.1.1"));
    ASSERT_TRUE(a) << i << ": " << a.refusal.message;
    held.push_back(std::move(a.reservation));
  }
}

}  // namespace
}  // namespace dep2p::connmgr
