// One style for every admission stage (docs/design.md, "Admission"): each answers with an
// Admission, true when it admits, its error and refusal inside when not; the reservation
// carries the direction and the address to on_secured.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/gater.hpp"
#include "dep2p/connmgr/realm_manager.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using testing::endpoint;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

// Every admission stage answers with an Admission (true: admitted); none takes an
// out-parameter for its refusal.
template <class T>
constexpr bool is_admission = std::is_same_v<T, Admission>;
using M = ConnectionManager;
using R = RealmConnectionManager;
static_assert(is_admission<decltype(std::declval<M&>().check_dial(std::declval<NodeId>()))>);
static_assert(is_admission<decltype(std::declval<M&>().check_dial_addr(std::declval<NodeId>(),
                                                                       std::declval<Endpoint>()))>);
static_assert(is_admission<decltype(std::declval<M&>().admit_inbound(std::declval<Endpoint>()))>);
static_assert(is_admission<decltype(std::declval<M&>().on_secured(std::declval<Reservation&>(),
                                                                  std::declval<NodeId>()))>);
static_assert(is_admission<decltype(std::declval<M&>().add_admitted(
                  std::declval<std::shared_ptr<Connection>>(), std::declval<Reservation>()))>);
static_assert(
    is_admission<decltype(std::declval<M&>().stream_opened(std::declval<const Connection&>()))>);
static_assert(is_admission<decltype(std::declval<M&>().reserve_resources(
                  std::declval<std::optional<NodeId>>(), 0))>);
static_assert(
    is_admission<decltype(std::declval<R&>().claim(std::declval<const Reservation&>(), "realm"))>);
static_assert(is_admission<decltype(std::declval<R&>().on_secured(
                  std::declval<Reservation&>(), std::declval<NodeId>(), "realm"))>);
static_assert(
    is_admission<decltype(std::declval<R&>().bind(std::declval<const Connection&>(), "realm"))>);

// A gater that records what on_secured told it and denies the stages it is told to.
class StageGater final : public Gater {
 public:
  Decision intercept_secured(Direction direction, const NodeId&, const Endpoint& remote) override {
    seen.emplace_back(direction, remote);
    return deny_secured ? Decision::deny("scripted secured") : Decision::allow();
  }
  Decision intercept_upgraded(const Connection&) override {
    return deny_upgraded ? Decision::deny("scripted upgraded") : Decision::allow();
  }
  std::vector<std::pair<Direction, Endpoint>> seen;
  bool deny_secured = false, deny_upgraded = false;
};

TEST(AdmissionStyle, TheReservationCarriesTheDirectionAndAddressToOnSecured) {
  auto gater = std::make_shared<StageGater>();
  ManagerHarness h(trim_config(0, 0), Dependencies{.gater = gater});
  Admission in = h.manager.admit_inbound(endpoint("10.0.0.1", 4100));
  ASSERT_TRUE(in);
  EXPECT_EQ(in.reservation.direction(), Direction::inbound);
  EXPECT_EQ(in.reservation.remote(), endpoint("10.0.0.1", 4100));
  Admission out = h.manager.check_dial_addr(peer_id(2), endpoint("10.0.0.2", 4200));
  ASSERT_TRUE(out);
  EXPECT_EQ(out.reservation.direction(), Direction::outbound);

  EXPECT_TRUE(h.manager.on_secured(in.reservation, peer_id(1)));
  EXPECT_TRUE(h.manager.on_secured(out.reservation, peer_id(2)));
  ASSERT_EQ(gater->seen.size(), 2u);
  EXPECT_EQ(gater->seen[0], std::pair(Direction::inbound, endpoint("10.0.0.1", 4100)));
  EXPECT_EQ(gater->seen[1], std::pair(Direction::outbound, endpoint("10.0.0.2", 4200)));

  // A reservation of resources only knows no address: it is not an admission's.
  Admission resources = h.manager.reserve_resources(std::nullopt, 1024);
  ASSERT_TRUE(resources);
  EXPECT_EQ(resources.reservation.remote(), std::nullopt);
  const Admission invalid = h.manager.on_secured(resources.reservation, peer_id(3));
  EXPECT_FALSE(invalid);
  EXPECT_EQ(invalid.error, Errc::invalid_argument);
  EXPECT_EQ(gater->seen.size(), 2u);
}

TEST(AdmissionStyle, TrueAdmitsAndFalseCarriesTheRefusalAtEveryStage) {
  auto gater = std::make_shared<StageGater>();
  ManagerHarness h(trim_config(0, 0), Dependencies{.gater = gater});
  // Admitted all the way: each stage's answer is true.
  Admission in = h.manager.admit_inbound(endpoint("10.0.0.1"));
  ASSERT_TRUE(in);
  ASSERT_TRUE(h.manager.on_secured(in.reservation, peer_id(1)));
  auto c = std::make_shared<FakeConnection>(peer_id(1), Direction::inbound, endpoint("10.0.0.1"));
  const Admission added = h.manager.add_admitted(c, std::move(in.reservation));
  EXPECT_TRUE(added);
  EXPECT_FALSE(added.error);
  EXPECT_TRUE(added.refusal.message.empty());
  EXPECT_TRUE(h.manager.stream_opened(*c));

  // Refused: false, and the refusal in the answer names the stage.
  gater->deny_secured = true;
  Admission second = h.manager.admit_inbound(endpoint("10.0.0.2"));
  ASSERT_TRUE(second);
  const Admission secured = h.manager.on_secured(second.reservation, peer_id(2));
  EXPECT_FALSE(secured);
  EXPECT_EQ(secured.error, Errc::peer_blocked);
  EXPECT_EQ(secured.refusal.stage, Stage::secured);
  EXPECT_FALSE(secured.refusal.message.empty());
  gater->deny_secured = false;
  gater->deny_upgraded = true;
  Admission third = h.manager.admit_inbound(endpoint("10.0.0.3"));
  ASSERT_TRUE(h.manager.on_secured(third.reservation, peer_id(3)));
  auto d = std::make_shared<FakeConnection>(peer_id(3), Direction::inbound, endpoint("10.0.0.3"));
  const Admission refused = h.manager.add_admitted(d, std::move(third.reservation));
  EXPECT_FALSE(refused);
  EXPECT_EQ(refused.error, Errc::connection_denied);
  EXPECT_EQ(refused.refusal.stage, Stage::add);
  EXPECT_EQ(h.manager.connection_count(), 1u);
}

}  // namespace
}  // namespace dep2p::connmgr
