// Connection states reported by the host, illegal transitions and the handshake timeout
// (docs/design.md, "Lifecycle, hooks and events"), in virtual time.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "support/fake_connection.hpp"
#include "support/manager_harness.hpp"

namespace dep2p::connmgr {
namespace {

using namespace std::chrono_literals;
using testing::FakeConnection;
using testing::ManagerHarness;
using testing::peer_id;
using testing::trim_config;

Config lifecycle_config() {
  Config config = trim_config(0, 0);
  config.handshake_timeout = 10s;
  config.keepalive_interval = 0ms;
  config.idle_timeout = 0ms;
  return config;
}

std::shared_ptr<FakeConnection> outbound(std::uint64_t peer) {
  return std::make_shared<FakeConnection>(peer_id(peer), Direction::outbound);
}

TEST(Lifecycle, AConnectionWalksDialingHandshakingEstablishedClosingClosed) {
  ManagerHarness h(lifecycle_config());
  auto c = outbound(1);
  ASSERT_FALSE(h.manager.track_pending(c, ConnectionState::dialing));
  EXPECT_EQ(h.manager.state(*c), ConnectionState::dialing);
  EXPECT_EQ(h.manager.connection_count(), 0u) << "pending connections are not in the pool";
  ASSERT_FALSE(h.manager.report_state(*c, ConnectionState::handshaking));
  EXPECT_EQ(h.manager.state(*c), ConnectionState::handshaking);
  ASSERT_FALSE(h.manager.report_state(*c, ConnectionState::established));
  EXPECT_EQ(h.manager.state(*c), ConnectionState::established);
  EXPECT_EQ(h.manager.connection_count(), 1u);
  ASSERT_FALSE(h.manager.report_state(*c, ConnectionState::closing));
  EXPECT_EQ(h.manager.state(*c), ConnectionState::closing);
  ASSERT_FALSE(h.manager.report_state(*c, ConnectionState::closed));
  EXPECT_EQ(h.manager.state(*c), std::nullopt);
  EXPECT_EQ(h.manager.connection_count(), 0u);
}

TEST(Lifecycle, IllegalTransitionsAreRejectedAndChangeNothing) {
  ManagerHarness h(lifecycle_config());
  auto c = outbound(1);
  EXPECT_EQ(h.manager.track_pending(c, ConnectionState::established), Errc::illegal_transition);
  EXPECT_EQ(h.manager.track_pending(c, ConnectionState::closed), Errc::illegal_transition);
  ASSERT_FALSE(h.manager.track_pending(c, ConnectionState::dialing));
  EXPECT_EQ(h.manager.track_pending(c, ConnectionState::dialing), Errc::duplicate_connection);
  EXPECT_EQ(h.manager.report_state(*c, ConnectionState::established), Errc::illegal_transition)
      << "dialing cannot skip the handshake";
  EXPECT_EQ(h.manager.report_state(*c, ConnectionState::closing), Errc::illegal_transition);
  EXPECT_EQ(h.manager.report_state(*c, ConnectionState::dialing), Errc::illegal_transition);
  EXPECT_EQ(h.manager.state(*c), ConnectionState::dialing);
  ASSERT_FALSE(h.manager.report_state(*c, ConnectionState::handshaking));
  EXPECT_EQ(h.manager.report_state(*c, ConnectionState::handshaking), Errc::illegal_transition);
  ASSERT_FALSE(h.manager.report_state(*c, ConnectionState::established));
  EXPECT_EQ(h.manager.report_state(*c, ConnectionState::handshaking), Errc::illegal_transition);
  EXPECT_EQ(h.manager.report_state(*c, ConnectionState::established), Errc::illegal_transition);
  ASSERT_FALSE(h.manager.report_state(*c, ConnectionState::closing));
  EXPECT_EQ(h.manager.report_state(*c, ConnectionState::closing), Errc::illegal_transition);
  EXPECT_EQ(h.manager.state(*c), ConnectionState::closing);
  EXPECT_EQ(h.manager.report_state(*outbound(2), ConnectionState::closed),
            Errc::unknown_connection);
}

TEST(Lifecycle, APendingConnectionMayCloseAtAnyStage) {
  ManagerHarness h(lifecycle_config());
  auto c = outbound(1);
  ASSERT_FALSE(h.manager.track_pending(c, ConnectionState::dialing));
  ASSERT_FALSE(h.manager.report_state(*c, ConnectionState::closed));
  EXPECT_EQ(h.manager.state(*c), std::nullopt);
  h.time->advance(20s);
  EXPECT_FALSE(c->closed()) << "a connection the host closed is not timed out later";
}

TEST(Lifecycle, AHandshakeThatTakesTooLongIsClosed) {
  ManagerHarness h(lifecycle_config());
  auto slow = outbound(1);
  auto quick = outbound(2);
  ASSERT_FALSE(h.manager.track_pending(slow, ConnectionState::handshaking));
  ASSERT_FALSE(h.manager.track_pending(quick, ConnectionState::dialing));
  h.time->advance(5s);
  ASSERT_FALSE(h.manager.report_state(*quick, ConnectionState::handshaking));
  ASSERT_FALSE(h.manager.report_state(*quick, ConnectionState::established));
  h.time->advance(5s - 200ms);
  EXPECT_FALSE(slow->closed());
  h.time->advance(200ms);
  ASSERT_TRUE(slow->closed());
  EXPECT_EQ(slow->last_reason(), CloseReason::handshake_timeout);
  EXPECT_NE(slow->last_detail().find("handshaking"), std::string::npos) << slow->last_detail();
  EXPECT_EQ(h.manager.state(*slow), std::nullopt);
  EXPECT_FALSE(quick->closed()) << "an established connection has no handshake deadline";
  EXPECT_EQ(h.manager.stats().closes(CloseReason::handshake_timeout), 1u);
  EXPECT_EQ(h.manager.report_state(*slow, ConnectionState::established), Errc::unknown_connection)
      << "too late";
}

TEST(Lifecycle, HandshakeTimeoutIsValidated) {
  Config config;
  config.handshake_timeout = 0ms;
  ASSERT_TRUE(config.validate().has_value());
  EXPECT_EQ(config.validate()->field, "handshake_timeout");
  EXPECT_EQ(Config{}.handshake_timeout, std::chrono::milliseconds(10s));
}

}  // namespace
}  // namespace dep2p::connmgr
