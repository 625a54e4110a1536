// Fuzz target: the staged admission path. The fuzzer's bytes choose the limits (system and
// peer connection and pending limits, the per-address, per-subnet and per-group caps,
// override prefixes, loopback exemption) and then staged calls in any order on endpoints
// of a small pool (IPv4 across /16s and /24s, IPv4-mapped IPv6, IPv6 across /32s, /48s and
// /56s, loopback): admit_inbound, check_dial_addr, on_secured, add_admitted, dropping a
// reservation, closing a connection. A plain model of the limits predicts every answer of
// admit_inbound, check_dial_addr, on_secured and add_admitted; after every call the counts
// the manager reports (reservations, connections by direction) must equal the model's,
// and once everything is dropped nothing may remain (reservations, cap table entries).
// A configuration that Config::validate() refuses must make the constructor throw.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/testing.hpp"
#include "fuzz/fuzz_check.hpp"
#include "net/netgroup.hpp"
#include "net/prefix.hpp"

namespace cm = dep2p::connmgr;
namespace detail = dep2p::connmgr::detail;

namespace {

// Reads the input a byte at a time; zeros once it is used up.
class Bytes {
 public:
  Bytes(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t next() { return at_ < size_ ? data_[at_++] : 0; }
  std::size_t below(std::size_t n) { return n == 0 ? 0 : next() % n; }
  bool flag() { return (next() & 1U) != 0; }
  bool exhausted() const { return at_ >= size_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

constexpr std::array kAddresses = {
    "10.1.2.3",          "10.1.2.4",          "10.1.9.1",      "10.2.0.1",
    "10.2.0.2",          "::ffff:10.1.2.3",   "192.0.2.7",     "2001:db8:1:100::1",
    "2001:db8:1:100::2", "2001:db8:1:200::1", "2001:db8:2::1", "2001:db9::1",
    "127.0.0.1",         "127.0.1.1",         "::1",           "10.9.9.9",
};
constexpr std::array kOverridePrefixes = {"10.1.0.0/16", "10.1.2.0/24", "2001:db8::/32",
                                          "127.0.0.0/8", "10.9.0.0/16"};
constexpr std::size_t kPeers = 6;

std::size_t small_limit(Bytes& in) {
  const std::uint8_t b = in.next();
  return b >= 200 ? cm::kUnlimited : b % 9;
}

cm::Config config_from(Bytes& in) {
  cm::Config c;
  c.low_water = 0;
  c.high_water = 0;  // admission alone: no trims
  c.keepalive_interval = std::chrono::milliseconds(0);
  c.idle_timeout = std::chrono::milliseconds(0);
  c.path_idle_timeout = std::chrono::milliseconds(0);
  c.max_connections_per_peer = in.below(4);  // 0: no cap
  cm::ScopeLimits& s = c.limits.system;
  s.connections_inbound = small_limit(in);
  s.connections_outbound = small_limit(in);
  s.connections_total = small_limit(in);
  s.pending_inbound = small_limit(in);
  s.pending_outbound = small_limit(in);
  cm::ScopeLimits& p = c.limits.peer;
  p.connections_inbound = small_limit(in);
  p.connections_outbound = small_limit(in);
  p.connections_total = small_limit(in);
  p.pending_inbound = small_limit(in);
  p.pending_outbound = small_limit(in);
  cm::SubnetCaps& caps = c.limits.subnets;
  caps.ipv4_32 = in.below(5);
  caps.ipv4_24 = in.below(7);
  caps.ipv6_56 = in.below(5);
  caps.ipv6_48 = in.below(7);
  caps.exempt_loopback = in.flag();
  // Mostly a configuration validate() accepts (a peer limit within the system's, an address
  // cap within its subnet's); one in eight is left as drawn, to check the refusal.
  if (in.below(8) != 0) {
    for (auto [peer, system] : {std::pair{&p.connections_inbound, s.connections_inbound},
                                std::pair{&p.connections_outbound, s.connections_outbound},
                                std::pair{&p.connections_total, s.connections_total},
                                std::pair{&p.pending_inbound, s.pending_inbound},
                                std::pair{&p.pending_outbound, s.pending_outbound}}) {
      *peer = std::min(*peer, system);
    }
    caps.ipv4_32 = std::min(caps.ipv4_32, caps.ipv4_24);
    caps.ipv6_56 = std::min(caps.ipv6_56, caps.ipv6_48);
  }
  for (std::size_t n = in.below(3); n > 0; --n) {
    caps.overrides.push_back({kOverridePrefixes[in.below(kOverridePrefixes.size())], in.below(6)});
  }
  // Rates off: a token bucket's refusals depend on time, not on the counts modelled here.
  c.limits.inbound_rate.ipv4_24 = {};
  c.limits.inbound_rate.ipv4_16 = {};
  c.limits.inbound_rate.ipv6_64 = {};
  c.limits.inbound_rate.ipv6_48 = {};
  c.diversity.max_per_group = in.below(4);
  c.diversity.ipv4_prefix = static_cast<std::uint8_t>(8 + in.below(25));  // 8..32
  c.diversity.salt = 1;
  return c;
}

struct Held {  // a reservation the fuzzer holds
  cm::Reservation reservation;
  cm::Direction direction;
  boost::asio::ip::address address;
  std::optional<std::size_t> peer;  // known to the manager (dial, or on_secured)
};

struct Open {  // a connection in the pool
  std::shared_ptr<cm::testing::FakeConnection> handle;
  cm::Direction direction;
  boost::asio::ip::address charged;  // the reservation's address
  std::size_t peer;
};

class Model {
 public:
  explicit Model(const cm::Config& config) : config_(config) {
    for (const auto& o : config.limits.subnets.overrides) {
      overrides_.emplace_back(*detail::parse_prefix(o.subnet), o.max_connections);
    }
  }

  // The refusal the staged call would give, by the modelled rules; nullopt: admitted.
  std::optional<cm::RefusalReason> admit(const std::vector<Held>& held,
                                         const std::vector<Open>& open, cm::Direction d,
                                         const boost::asio::ip::address& a,
                                         std::optional<std::size_t> peer) const {
    if (auto r = limits(config_.limits.system, held, open, d, std::nullopt)) return r;
    if (peer) {
      if (auto r = limits(config_.limits.peer, held, open, d, peer)) return r;
    }
    if (capped(a, d, held, open)) return cm::RefusalReason::subnet_cap;
    return std::nullopt;
  }
  // on_secured's peer check for a reservation not yet tied to a peer.
  std::optional<cm::RefusalReason> secure(const std::vector<Held>& held,
                                          const std::vector<Open>& open, cm::Direction d,
                                          std::size_t peer) const {
    return limits(config_.limits.peer, held, open, d, peer);
  }

 private:
  // connection_breach: pending, then open + pending in the direction, then the total.
  static std::optional<cm::RefusalReason> limits(const cm::ScopeLimits& l,
                                                 const std::vector<Held>& held,
                                                 const std::vector<Open>& open, cm::Direction d,
                                                 std::optional<std::size_t> peer) {
    std::size_t pending[2] = {0, 0}, opened[2] = {0, 0};
    for (const Held& h : held) {
      if (!peer || h.peer == peer) ++pending[h.direction == cm::Direction::inbound ? 0 : 1];
    }
    for (const Open& o : open) {
      if (!peer || o.peer == *peer) ++opened[o.direction == cm::Direction::inbound ? 0 : 1];
    }
    const bool in = d == cm::Direction::inbound;
    const std::size_t i = in ? 0 : 1;
    if (pending[i] >= (in ? l.pending_inbound : l.pending_outbound)) {
      return cm::RefusalReason::pending_limit;
    }
    if (opened[i] + pending[i] >= (in ? l.connections_inbound : l.connections_outbound)) {
      return cm::RefusalReason::connection_limit;
    }
    if (opened[0] + opened[1] + pending[0] + pending[1] >= l.connections_total) {
      return cm::RefusalReason::connection_limit;
    }
    return std::nullopt;
  }

  std::optional<std::pair<detail::Prefix, std::size_t>> override_of(
      const boost::asio::ip::address& a) const {
    const detail::Prefix host = detail::host_prefix(a);
    std::optional<std::pair<detail::Prefix, std::size_t>> best;
    for (const auto& [prefix, cap] : overrides_) {
      if (prefix.family != host.family || detail::prefix_of(host, prefix.length) != prefix) {
        continue;
      }
      if (!best || prefix.length > best->first.length) best = std::pair{prefix, cap};
    }
    return best;
  }
  bool exempt(const boost::asio::ip::address& a) const {
    return config_.limits.subnets.exempt_loopback && detail::is_loopback(a);
  }
  detail::GroupRule group_rule() const {
    return detail::GroupRule{config_.diversity.ipv4_prefix, config_.diversity.ipv6_prefix,
                             config_.diversity.loopback_v4_prefix};
  }

  // Whether one more connection from `a` in direction `d` breaks a cap, counting every
  // charged reservation and connection: inbound ones against the address, subnet,
  // override and group caps; outbound ones against the group cap only (and only under one).
  bool capped(const boost::asio::ip::address& a, cm::Direction d, const std::vector<Held>& held,
              const std::vector<Open>& open) const {
    if (exempt(a)) return false;
    const cm::SubnetCaps& caps = config_.limits.subnets;
    const std::size_t group_cap = config_.diversity.max_per_group;
    const auto o = override_of(a);
    if (d == cm::Direction::outbound && (o || group_cap == 0)) return false;
    std::vector<std::pair<boost::asio::ip::address, cm::Direction>> charged;
    for (const Held& h : held) charged.emplace_back(h.address, h.direction);
    for (const Open& c : open) charged.emplace_back(c.charged, c.direction);
    const detail::Prefix host = detail::host_prefix(a);
    const auto count = [&](auto&& same) {
      std::size_t n = 0;
      for (const auto& [at, dir] : charged) {
        if (!exempt(at) && same(at, dir)) ++n;
      }
      return n;
    };
    const auto inbound_outside_overrides = [&](const boost::asio::ip::address& at,
                                               cm::Direction dir) {
      return dir == cm::Direction::inbound && !override_of(at);
    };
    if (d == cm::Direction::inbound) {
      if (o) {
        const std::size_t n = count([&](const auto& at, cm::Direction dir) {
          const auto other = override_of(at);
          return dir == cm::Direction::inbound && other && other->first == o->first;
        });
        return n >= o->second;
      }
      const auto within = [&](unsigned length) {
        return [&, length](const auto& at, cm::Direction dir) {
          const detail::Prefix h = detail::host_prefix(at);
          return inbound_outside_overrides(at, dir) && h.family == host.family &&
                 detail::prefix_of(h, length) == detail::prefix_of(host, length);
        };
      };
      if (host.family == detail::Family::v4) {
        if (count(within(32)) >= caps.ipv4_32) return true;
        if (count(within(24)) >= caps.ipv4_24) return true;
      } else {
        if (count(within(56)) >= caps.ipv6_56) return true;
        if (count(within(48)) >= caps.ipv6_48) return true;
      }
    }
    if (group_cap == 0) return false;
    const detail::NetGroup group = detail::network_group(a, group_rule());
    const std::size_t n = count([&](const auto& at, cm::Direction) {
      return !override_of(at) && detail::network_group(at, group_rule()) == group;
    });
    return n >= group_cap;
  }

  cm::Config config_;
  std::vector<std::pair<detail::Prefix, std::size_t>> overrides_;
};

std::string describe(const char* call, std::size_t step, const cm::Admission& got,
                     std::optional<cm::RefusalReason> expected) {
  return std::string(call) + " at step " + std::to_string(step) + ": manager " +
         (got ? std::string("admitted") : got.refusal.message + " (" + got.error.message() + ")") +
         ", model " +
         (expected ? "refuses (" + std::string(cm::to_string(*expected)) + ")" : "admits");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes in(data, size);
  const cm::Config config = config_from(in);
  cm::testing::VirtualTime time;
  if (auto error = config.validate()) {
    bool threw = false;
    try {
      cm::ConnectionManager refused(time.io(), config, {.time_source = time.source()});
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    DEP2P_FUZZ_CHECK(threw, "an invalid configuration constructed: " + error->message);
    return 0;
  }
  cm::ConnectionManager manager(time.io(), config, {.time_source = time.source()});
  const Model model(config);
  std::vector<cm::NodeId> peers;
  for (std::size_t i = 0; i < kPeers; ++i) {
    std::array<std::uint8_t, 32> id{};
    id[0] = static_cast<std::uint8_t>(i + 1);
    peers.emplace_back(std::span<const std::uint8_t>(id));
  }
  std::vector<Held> held;
  std::vector<Open> open;
  // The manager closes a connection itself (a redundant path): the host reports it.
  const auto report = [&manager](cm::testing::FakeConnection& self, cm::CloseReason reason) {
    manager.remove_connection(self, reason);
  };
  const auto sweep = [&open] {
    std::erase_if(open, [](const Open& o) { return o.handle->closed(); });
  };

  for (std::size_t step = 0; !in.exhausted() && step < 300; ++step) {
    const std::size_t op = in.below(7);
    if (op <= 1) {  // admit_inbound, or check_dial_addr
      const auto d = op == 0 ? cm::Direction::inbound : cm::Direction::outbound;
      const auto address = boost::asio::ip::make_address(kAddresses[in.below(kAddresses.size())]);
      const cm::Endpoint remote{address, 4001};
      std::optional<std::size_t> peer;
      if (d == cm::Direction::outbound) peer = in.below(kPeers);
      const auto expected = model.admit(held, open, d, address, peer);
      cm::Admission got = d == cm::Direction::inbound
                              ? manager.admit_inbound(remote)
                              : manager.check_dial_addr(peers[*peer], remote);
      const char* call = d == cm::Direction::inbound ? "admit_inbound" : "check_dial_addr";
      DEP2P_FUZZ_CHECK(static_cast<bool>(got) == !expected, describe(call, step, got, expected));
      if (got) {
        held.push_back({std::move(got.reservation), d, detail::normalize(address), peer});
      } else {
        DEP2P_FUZZ_CHECK(got.refusal.reason == *expected, describe(call, step, got, expected));
        DEP2P_FUZZ_CHECK(!got.refusal.message.empty() && !got.refusal.scope.empty(),
                         describe(call, step, got, expected));
      }
    } else if (op == 2 && !held.empty()) {  // on_secured
      Held& h = held[in.below(held.size())];
      const std::size_t peer = in.below(kPeers);
      std::optional<cm::RefusalReason> expected;
      bool invalid = false;
      if (h.peer) {
        invalid = *h.peer != peer;  // a reservation's peer cannot change
      } else {
        expected = model.secure(held, open, h.direction, peer);
      }
      const cm::Admission got = manager.on_secured(h.reservation, peers[peer]);
      if (invalid) {
        DEP2P_FUZZ_CHECK(got.error == cm::Errc::invalid_argument,
                         "on_secured with another peer at step " + std::to_string(step));
      } else {
        DEP2P_FUZZ_CHECK(static_cast<bool>(got) == !expected,
                         describe("on_secured", step, got, expected));
        if (got) h.peer = peer;
      }
    } else if (op == 3 && !held.empty()) {  // add_admitted
      const std::size_t k = in.below(held.size());
      Held h = std::move(held[k]);
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(k));
      // Mostly the reservation's own peer and direction; sometimes not (refused, released).
      const std::size_t peer = h.peer && in.below(4) != 0 ? *h.peer : in.below(kPeers);
      const cm::Direction d = in.below(8) != 0                        ? h.direction
                              : h.direction == cm::Direction::inbound ? cm::Direction::outbound
                                                                      : cm::Direction::inbound;
      const auto remote =
          in.flag() ? h.address
                    : boost::asio::ip::make_address(kAddresses[in.below(kAddresses.size())]);
      auto c =
          std::make_shared<cm::testing::FakeConnection>(peers[peer], d, cm::Endpoint{remote, 4001});
      c->on_close = report;
      const bool valid = d == h.direction && (!h.peer || *h.peer == peer);
      const cm::Admission got = manager.add_admitted(c, std::move(h.reservation));
      DEP2P_FUZZ_CHECK(static_cast<bool>(got) == valid,
                       "add_admitted at step " + std::to_string(step) + ": " +
                           (got ? "added" : got.error.message()) +
                           (valid ? ", expected added" : ", expected refused"));
      if (got) open.push_back({c, d, h.address, peer});
      sweep();                              // a path beyond max_connections_per_peer closed at once
    } else if (op == 4 && !held.empty()) {  // the host drops a reservation
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(in.below(held.size())));
    } else if (op == 5 && !open.empty()) {  // a connection closes
      const std::size_t k = in.below(open.size());
      DEP2P_FUZZ_CHECK(!manager.remove_connection(*open[k].handle, cm::CloseReason::remote),
                       "remove_connection at step " + std::to_string(step));
      open.erase(open.begin() + static_cast<std::ptrdiff_t>(k));
    } else if (op == 6) {
      time.advance(std::chrono::seconds(in.below(30)));
      sweep();
    }
    // The manager's counts are the model's.
    const cm::Stats stats = manager.stats();
    DEP2P_FUZZ_CHECK(stats.reservations == held.size(),
                     "reservations " + std::to_string(stats.reservations) + " held " +
                         std::to_string(held.size()) + " at step " + std::to_string(step));
    std::size_t in_open = 0;
    for (const Open& o : open) in_open += o.direction == cm::Direction::inbound ? 1 : 0;
    DEP2P_FUZZ_CHECK(manager.connection_count() == open.size(),
                     "connections " + std::to_string(manager.connection_count()) + " open " +
                         std::to_string(open.size()) + " at step " + std::to_string(step));
    DEP2P_FUZZ_CHECK(manager.connection_count(cm::Direction::inbound) == in_open,
                     "inbound connections at step " + std::to_string(step));
  }
  held.clear();
  for (const Open& o : open) {
    DEP2P_FUZZ_CHECK(!manager.remove_connection(*o.handle, cm::CloseReason::remote),
                     "remove_connection at the end");
  }
  const cm::Stats stats = manager.stats();
  DEP2P_FUZZ_CHECK(stats.reservations == 0, "reservations left");
  DEP2P_FUZZ_CHECK(stats.capped_addresses == 0,
                   "cap table entries left: " + std::to_string(stats.capped_addresses));
  DEP2P_FUZZ_CHECK(manager.connection_count() == 0, "connections left");
  return 0;
}
