// The smallest program that uses the installed library: a manager on an io_context, one
// connection in, a trim request, one connection out; then the same through the public
// testing kit; and the version of the headers against the library's. Exits 0 when all went
// as expected. Built by the find_package consumer and, with pkg-config's flags, by
// .ci/consumers.sh's pkg-config consumer.
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string_view>

#include <dep2p/connmgr/connmgr.hpp>
#include <dep2p/connmgr/testing.hpp>

namespace cm = dep2p::connmgr;

static_assert(DEP2P_CONNMGR_VERSION_MAJOR == 0, "this consumer is written against 0.x");

namespace {

class LoopbackConnection final : public cm::Connection {
 public:
  explicit LoopbackConnection(cm::NodeId peer) : peer_(peer) {}
  cm::NodeId remote_peer() const override { return peer_; }
  cm::Direction direction() const override { return cm::Direction::inbound; }
  cm::Endpoint remote_endpoint() const override {
    return {boost::asio::ip::make_address("127.0.0.1"), 4001};
  }
  void close(cm::CloseReason, std::string_view) override {}
  void ping(PingHandler done) override { done({}); }

 private:
  cm::NodeId peer_;
};

bool check(bool ok, const char* what) {
  if (!ok) std::printf("consumer: %s failed\n", what);
  return ok;
}

}  // namespace

int main() {
  bool ok = check(cm::version() == std::string_view(DEP2P_CONNMGR_VERSION_STRING),
                  "the library's version() against the headers' version");
  std::printf("consumer: headers %s, library %.*s\n", DEP2P_CONNMGR_VERSION_STRING,
              static_cast<int>(cm::version().size()), cm::version().data());

  {
    boost::asio::io_context io;
    cm::ConnectionManager manager(io, cm::Config::preset(cm::Preset::minimal));
    const auto peer = cm::NodeId::from_hex("1220aabbccdd");
    auto connection = std::make_shared<LoopbackConnection>(peer);
    bool steps = !manager.add_connection(connection);
    steps = steps && !manager.tag_peer(peer, "consumer", 5);
    steps = steps && manager.connection_count() == 1 && manager.trim() == 0;
    steps = steps && !manager.remove_connection(*connection) && manager.connection_count() == 0;
    manager.close();
    ok = check(steps, "a connection in and out") && ok;
  }

  {
    cm::testing::VirtualTime time;
    cm::Config config = cm::Config::preset(cm::Preset::minimal);
    config.keepalive_interval = std::chrono::seconds(5);
    cm::ConnectionManager manager(time.io(), config, {.time_source = time.source()});
    auto fake = cm::testing::reporting_connection(manager, cm::NodeId::from_hex("1220eeff"),
                                                  cm::Direction::outbound);
    bool steps = !manager.add_connection(fake) && manager.connection_count() == 1;
    time.advance(std::chrono::seconds(5));
    steps = steps && fake->pings.load() == 1;
    steps = steps && !manager.close_connection(*fake) && fake->close_count() == 1;
    steps = steps && manager.connection_count() == 0;
    ok = check(steps, "the testing kit's FakeConnection on VirtualTime") && ok;
  }

  std::printf("consumer: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
