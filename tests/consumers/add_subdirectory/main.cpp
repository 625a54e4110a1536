// The smallest program that uses the library built with add_subdirectory: a manager on an
// io_context, one connection in, a trim request, one connection out, and the version the
// build tree generated (version.hpp) against the library's. Exits 0 when all went as
// expected.
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <memory>
#include <string_view>

#include <dep2p/connmgr/connmgr.hpp>

namespace cm = dep2p::connmgr;

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

}  // namespace

int main() {
  boost::asio::io_context io;
  cm::ConnectionManager manager(io, cm::Config::preset(cm::Preset::minimal));
  const auto peer = cm::NodeId::from_hex("1220aabbccdd");
  auto connection = std::make_shared<LoopbackConnection>(peer);

  bool ok = cm::version() == std::string_view(DEP2P_CONNMGR_VERSION_STRING);
  ok = ok && !manager.add_connection(connection);
  ok = ok && !manager.tag_peer(peer, "consumer", 5);
  ok = ok && manager.connection_count() == 1 && manager.trim() == 0;
  ok = ok && !manager.remove_connection(*connection) && manager.connection_count() == 0;
  manager.close();
  std::printf("consumer: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
