// Fuzz target: realm operations. The fuzzer's bytes choose one RealmConnectionManager's
// configuration (valid or not) and a sequence of operations in any order: realms created,
// changed and removed (with invalid limits too), staged admissions with claims (completed,
// or dropped part-way), binds and unbinds, realm and node tags and protections, host
// closures, node and realm trims, virtual time. A small model of what the fuzzer did (the
// reservations it holds and their claims, the connections open and the realms each is
// bound to, realm tags and protections) is checked against the layer after every step;
// any disagreement or broken invariant aborts with the reason (fuzz_check.hpp).
#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/realm_manager.hpp"
#include "dep2p/connmgr/testing.hpp"
#include "fuzz/fuzz_check.hpp"
#include "support/fake_connection.hpp"

namespace {

namespace cm = dep2p::connmgr;
using cm::testing::FakeConnection;

// Reads the input a byte at a time; past its end every choice is 0.
class Bytes {
 public:
  Bytes(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t next() { return pos_ < size_ ? data_[pos_++] : 0; }
  // A value in [0, bound); bound > 0.
  std::size_t below(std::size_t bound) { return next() % bound; }
  bool flag() { return (next() & 1) != 0; }
  bool exhausted() const { return pos_ >= size_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

constexpr std::size_t kRealms = 4;           // realm names r0 .. r3
constexpr std::size_t kPeers = 6;            // peer_id(1) .. peer_id(6)
constexpr std::size_t kHeld = 4;             // reservations held at once
constexpr std::size_t kMaxConnections = 48;  // connections made per input
constexpr std::size_t kMaxSteps = 100;

constexpr std::array<std::string_view, kRealms> kRealmNames{"r0", "r1", "r2", "r3"};

const std::array<cm::Endpoint, 6>& endpoints() {
  static const std::array<cm::Endpoint, 6> all{
      cm::testing::endpoint("127.0.0.1"), cm::testing::endpoint("127.0.0.2"),
      cm::testing::endpoint("10.0.0.1"),  cm::testing::endpoint("10.0.0.2"),
      cm::testing::endpoint("10.0.1.1"),  cm::testing::endpoint("2001:db8::1")};
  return all;
}

const std::array<cm::NodeId, kPeers>& peers() {
  static const std::array<cm::NodeId, kPeers> all{cm::testing::peer_id(1), cm::testing::peer_id(2),
                                                  cm::testing::peer_id(3), cm::testing::peer_id(4),
                                                  cm::testing::peer_id(5), cm::testing::peer_id(6)};
  return all;
}

// A limit from the input: usually small, sometimes 0 (off) or out of any sensible range.
std::size_t small_limit(Bytes& in) {
  const std::uint8_t b = in.next();
  if (b >= 0xf8) return cm::kUnlimited - (b & 3u);
  if (b >= 0xf0) return 1000u + b;
  return b % 9u;
}

// A realm's limits: mostly consistent ones (0 or min_reserved <= low_water <= high_water
// <= hard_max, max_members <= hard_max), now and then any values at all.
cm::RealmConfig realm_config(Bytes& in) {
  cm::RealmConfig c;
  if (in.next() < 0x30) {
    c.max_members = small_limit(in);
    c.hard_max = small_limit(in);
    c.low_water = small_limit(in);
    c.high_water = small_limit(in);
    c.min_reserved = small_limit(in) % 4u;
    c.max_pending = small_limit(in);
    return c;
  }
  const std::uint8_t shape = in.next();
  c.hard_max = (shape & 1u) != 0 ? 0 : 1 + in.below(8);
  const std::size_t top = c.hard_max == 0 ? 8 : c.hard_max;
  c.high_water = (shape & 2u) != 0 ? 0 : in.below(top + 1);
  c.low_water = in.below((c.high_water == 0 ? top : c.high_water) + 1);
  c.min_reserved = (shape & 4u) != 0 ? 0 : in.below(std::min<std::size_t>(c.low_water, 3) + 1);
  c.max_members = (shape & 8u) != 0 ? 0 : in.below(top + 1);
  c.max_pending = (shape & 16u) != 0 ? 0 : in.below(4);
  return c;
}

bool same(const cm::RealmConfig& a, const cm::RealmConfig& b) {
  return a.max_members == b.max_members && a.hard_max == b.hard_max && a.low_water == b.low_water &&
         a.high_water == b.high_water && a.min_reserved == b.min_reserved &&
         a.max_pending == b.max_pending && a.max_streams == b.max_streams;
}

cm::Config node_config(Bytes& in) {
  cm::Config c;
  c.low_water = in.below(10);
  c.high_water = in.below(14);
  c.grace_period = in.flag() ? std::chrono::milliseconds(0) : std::chrono::milliseconds(1500);
  c.silence_period = std::chrono::milliseconds(1000 * (1 + in.below(4)));
  c.max_connections_per_peer = 0;  // no redundant-path closes: every close is a trim's or ours
  c.keepalive_interval = std::chrono::milliseconds(0);
  c.idle_timeout = std::chrono::milliseconds(0);
  c.path_idle_timeout = std::chrono::milliseconds(0);
  c.diversity.enabled = in.flag();
  c.diversity.salt = 1;  // reproducible runs
  const std::uint8_t caps = in.next();
  if ((caps & 1u) != 0) c.limits.system.connections_total = 4 + in.below(12);
  if ((caps & 2u) != 0) c.limits.system.connections_inbound = 2 + in.below(10);
  if ((caps & 4u) != 0) c.limits.system.pending_inbound = 1 + in.below(5);
  if ((caps & 8u) != 0) c.limits.system.pending_outbound = 1 + in.below(5);
  if ((caps & 16u) != 0) c.limits.peer.connections_total = 1 + in.below(4);
  if ((caps & 32u) != 0) c.limits.subnets.ipv4_32 = 1 + in.below(8);
  if ((caps & 64u) != 0) c.limits.subnets.exempt_loopback = false;
  return c;
}

// A reservation the fuzzer holds, with the realms it claimed on it (each named by its slot
// and the generation the slot had then: a realm removed and made again is another one).
struct Held {
  cm::Reservation reservation;
  std::optional<std::size_t> peer;  // the peer on_secured was asked for
  std::vector<std::pair<std::size_t, std::uint64_t>> claims;
};

// A connection the fuzzer made and whether it is in the pool, and the realms it is bound to.
struct Conn {
  std::shared_ptr<FakeConnection> handle;
  std::size_t peer = 0;
  bool added = false;      // entered the pool
  bool open = false;       // in the pool now
  std::uint8_t bound = 0;  // bit r: bound to realm slot r
};

bool bound_to(const Conn& c, std::size_t realm) { return ((c.bound >> realm) & 1u) != 0; }

struct RealmModel {
  bool exists = false;
  std::uint64_t generation = 0;
  cm::RealmConfig config;
  std::size_t held_before = 0;  // bound + claims after the previous step
  // The realm's own tags and protections of each member that has some.
  std::map<std::size_t, std::map<std::string, int>> tags;
  std::map<std::size_t, std::set<std::string>> protections;
};

class Run {
 public:
  explicit Run(const cm::Config& config)
      : node_(time_.io(), config, cm::Dependencies{.time_source = time_.source()}),
        config_(config) {}

  ~Run() {
    // The close hooks call the manager: detach them before it goes.
    for (Conn& c : conns_) c.handle->on_close = nullptr;
  }
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  void step(Bytes& in);
  void finish();
  // The invariants; `full` adds the costlier ones (the lists, the node's stats).
  void check(bool full);

 private:
  cm::ConnectionManager& m() { return node_.manager(); }

  // The realm name an op names: one of the slots, or now and then an unknown or empty one.
  std::optional<std::size_t> realm_slot(Bytes& in) {
    const std::size_t r = in.below(kRealms + 1);
    return r < kRealms ? std::optional<std::size_t>(r) : std::nullopt;
  }
  std::string_view name_of(std::optional<std::size_t> slot, Bytes& in) {
    if (slot) return kRealmNames[*slot];
    return in.flag() ? std::string_view("") : std::string_view("nope");
  }
  bool exists(std::optional<std::size_t> slot) const { return slot && realms_[*slot].exists; }

  std::size_t bound_count(std::size_t r) const {
    std::size_t n = 0;
    for (const Conn& c : conns_) n += (c.open && bound_to(c, r)) ? 1u : 0u;
    return n;
  }
  std::size_t claim_count(std::size_t r) const {
    std::size_t n = 0;
    for (const Held& h : held_) {
      if (!h.reservation.valid()) continue;
      for (const auto& [slot, generation] : h.claims) {
        if (slot == r && generation == realms_[r].generation) ++n;
      }
    }
    return n;
  }
  bool is_member(std::size_t r, std::size_t peer) const {
    return std::any_of(conns_.begin(), conns_.end(),
                       [&](const Conn& c) { return c.open && c.peer == peer && bound_to(c, r); });
  }
  std::size_t reserves() const {
    std::size_t sum = 0;
    for (const RealmModel& realm : realms_) sum += realm.exists ? realm.config.min_reserved : 0;
    return sum;
  }

  // The model's side of a binding that ends: the member's realm tags and protections go
  // with its last bound connection.
  void unbound(Conn& c, std::size_t r) {
    c.bound = static_cast<std::uint8_t>(c.bound & ~(1u << r));
    if (!is_member(r, c.peer)) {
      realms_[r].tags.erase(c.peer);
      realms_[r].protections.erase(c.peer);
    }
  }

  // Connection::close() of one of ours: the manager closed it (a trim, made room) or we
  // asked it to. Reported back at once, as most hosts do.
  void on_close(std::size_t index, FakeConnection& self, cm::CloseReason reason) {
    Conn& c = conns_[index];
    DEP2P_FUZZ_CHECK(c.open, "close() of a connection not in the pool (closed twice?)");
    DEP2P_FUZZ_CHECK(c.handle->close_count() == 1, "a connection closed more than once");
    c.open = false;
    for (std::size_t r = 0; r < kRealms; ++r) {
      if (bound_to(c, r)) unbound(c, r);
    }
    closed_now_.push_back({index, reason});
    const std::error_code ec = m().remove_connection(self, reason);
    DEP2P_FUZZ_CHECK(!ec, "the first report of a connection the manager closed: " + ec.message());
  }

  std::shared_ptr<FakeConnection> make_connection(std::size_t peer, cm::Direction direction,
                                                  const cm::Endpoint& remote) {
    auto handle = std::make_shared<FakeConnection>(peers()[peer], direction, remote);
    const std::size_t index = conns_.size();
    handle->on_close = [this, index](FakeConnection& self, cm::CloseReason reason) {
      on_close(index, self, reason);
    };
    conns_.push_back(Conn{handle, peer, false, false, 0});
    return handle;
  }
  // An open connection chosen by the input (any connection made, now and then).
  Conn* pick_connection(Bytes& in) {
    if (conns_.empty()) return nullptr;
    return &conns_[in.below(conns_.size())];
  }

  void admit(Bytes& in);
  void secure(Bytes& in);
  void claim(Bytes& in);
  void add_admitted(Bytes& in);
  void add_connection(Bytes& in);
  void bind(Bytes& in);
  void unbind(Bytes& in);
  void realm_tag(Bytes& in);
  void realm_protect(Bytes& in);
  void node_tag(Bytes& in);
  void host_close(Bytes& in);
  void node_trim(Bytes& in);
  void realm_trim(Bytes& in);
  void create_realm(Bytes& in);
  void remove_realm(Bytes& in);
  void set_realm_limit(Bytes& in);
  void set_limits(Bytes& in);

  // A trim of the node and the admission's room-making never take a realm below its
  // reserve: each realm holds at least min(before, min_reserved) after.
  void check_reserves_kept(const std::array<std::size_t, kRealms>& before, const char* what) {
    for (std::size_t r = 0; r < kRealms; ++r) {
      if (!realms_[r].exists) continue;
      const std::size_t floor = std::min(before[r], realms_[r].config.min_reserved);
      DEP2P_FUZZ_CHECK(bound_count(r) >= floor,
                       std::string(what) + " took realm " + std::string(kRealmNames[r]) +
                           " below its reserve: " + std::to_string(before[r]) + " -> " +
                           std::to_string(bound_count(r)) + ", min_reserved " +
                           std::to_string(realms_[r].config.min_reserved));
    }
  }
  std::array<std::size_t, kRealms> bound_counts() const {
    std::array<std::size_t, kRealms> counts{};
    for (std::size_t r = 0; r < kRealms; ++r) counts[r] = bound_count(r);
    return counts;
  }

  cm::testing::VirtualTime time_;  // first, so that it goes last
  cm::RealmConnectionManager node_;
  cm::Config config_;
  std::array<Held, kHeld> held_;
  std::vector<Conn> conns_;
  std::array<RealmModel, kRealms> realms_;
  std::uint64_t generations_ = 0;
  std::size_t steps_ = 0;
  // The closes of the current step, in call order.
  std::vector<std::pair<std::size_t, cm::CloseReason>> closed_now_;
};

void Run::admit(Bytes& in) {
  Held& h = held_[in.below(kHeld)];
  const cm::Endpoint& remote = endpoints()[in.below(endpoints().size())];
  cm::Admission admitted = [&] {
    if (in.flag()) return m().admit_inbound(remote);
    return m().check_dial_addr(peers()[in.below(kPeers)], remote);
  }();
  if (!admitted) {
    DEP2P_FUZZ_CHECK(!admitted.reservation.valid(), "a refused admission holds a reservation");
    DEP2P_FUZZ_CHECK(!admitted.refusal.message.empty() ||
                         admitted.error != cm::make_error_code(cm::Errc::connection_denied),
                     "a refusal that does not explain itself");
    return;
  }
  DEP2P_FUZZ_CHECK(admitted.reservation.valid(), "an admission without its reservation");
  h.reservation = std::move(admitted.reservation);  // the old one, if any, is released
  h.peer.reset();
  h.claims.clear();
}

void Run::secure(Bytes& in) {
  Held& h = held_[in.below(kHeld)];
  const std::size_t peer = in.below(kPeers);
  const bool with_realm = in.flag();
  const std::optional<std::size_t> slot = realm_slot(in);
  const std::string_view name = name_of(slot, in);
  if (!with_realm) {
    const cm::Admission secured = m().on_secured(h.reservation, peers()[peer]);
    if (secured) h.peer = peer;
    return;
  }
  const cm::Admission secured = node_.on_secured(h.reservation, peers()[peer], name);
  if (secured) {
    DEP2P_FUZZ_CHECK(exists(slot), "a claim of a realm that does not exist succeeded");
    h.peer = peer;
    const std::pair<std::size_t, std::uint64_t> claim{*slot, realms_[*slot].generation};
    if (std::find(h.claims.begin(), h.claims.end(), claim) == h.claims.end()) {
      h.claims.push_back(claim);
    }
  } else if (secured.refusal.stage == cm::Stage::claim && h.reservation.valid()) {
    h.peer = peer;  // secured, its claim refused
  }
}

void Run::claim(Bytes& in) {
  Held& h = held_[in.below(kHeld)];
  const std::optional<std::size_t> slot = realm_slot(in);
  const std::string_view name = name_of(slot, in);
  const std::size_t taken = exists(slot) ? bound_count(*slot) + claim_count(*slot) : 0;
  const cm::Admission claimed = node_.claim(h.reservation, name);
  if (!h.reservation.valid()) {
    DEP2P_FUZZ_CHECK(claimed.error == cm::Errc::invalid_argument,
                     "a claim on no reservation: " + claimed.error.message());
    return;
  }
  if (!exists(slot)) {
    DEP2P_FUZZ_CHECK(!claimed, "a claim of a realm that does not exist succeeded");
    return;
  }
  const std::pair<std::size_t, std::uint64_t> claim{*slot, realms_[*slot].generation};
  const bool again = std::find(h.claims.begin(), h.claims.end(), claim) != h.claims.end();
  if (again) {
    DEP2P_FUZZ_CHECK(!claimed.error,
                     "claiming a realm twice is a no-op, not an error: " + claimed.error.message());
    return;
  }
  if (claimed) {
    h.claims.push_back(claim);
    return;
  }
  if (claimed.error == cm::Errc::realm_full || claimed.error == cm::Errc::limit_exceeded) {
    DEP2P_FUZZ_CHECK(claimed.refusal.stage == cm::Stage::claim && !claimed.refusal.limit.empty(),
                     "a claim refusal names its stage and limit");
    const cm::RealmConfig& c = realms_[*slot].config;
    if (claimed.refusal.limit == "hard_max") {
      DEP2P_FUZZ_CHECK(c.hard_max > 0 && taken >= c.hard_max,
                       "a claim refused at hard_max " + std::to_string(c.hard_max) + " with " +
                           std::to_string(taken) + " taken");
    }
  }
}

void Run::add_admitted(Bytes& in) {
  if (conns_.size() >= kMaxConnections) return;
  Held& h = held_[in.below(kHeld)];
  // Mostly the connection the reservation is for; now and then another peer or direction.
  std::size_t peer = h.peer.value_or(in.below(kPeers));
  cm::Direction direction = h.reservation.direction();
  const std::uint8_t twist = in.next();
  if (twist >= 0xe0) peer = (peer + 1) % kPeers;
  if ((twist & 0xf) == 0xf) {
    direction =
        direction == cm::Direction::inbound ? cm::Direction::outbound : cm::Direction::inbound;
  }
  const cm::Endpoint remote = h.reservation.remote().value_or(endpoints()[0]);
  const auto before = bound_counts();
  const std::size_t count_before = m().connection_count();
  auto handle = make_connection(peer, direction, remote);
  const std::size_t index = conns_.size() - 1;
  const cm::Admission added = m().add_admitted(handle, std::move(h.reservation));
  if (added) {
    DEP2P_FUZZ_CHECK(!h.reservation.valid(), "an add that succeeded left its reservation");
    Conn& c = conns_[index];
    c.added = c.open = true;
    for (const auto& [slot, generation] : h.claims) {
      if (realms_[slot].exists && realms_[slot].generation == generation) {
        c.bound = static_cast<std::uint8_t>(c.bound | (1u << slot));
      }
    }
    // At most one other connection closed to make room for it.
    DEP2P_FUZZ_CHECK(closed_now_.size() <= 1, "an add closed more than one connection");
    for (const auto& [closed, reason] : closed_now_) {
      DEP2P_FUZZ_CHECK(closed != index, "the added connection was closed by its own add");
      DEP2P_FUZZ_CHECK(reason == cm::CloseReason::made_room,
                       "an add closed a connection for another reason than made_room");
    }
    DEP2P_FUZZ_CHECK(m().connection_count() == count_before + 1 - closed_now_.size(),
                     "the add's count");
    check_reserves_kept(before, "an add making room");
  } else {
    DEP2P_FUZZ_CHECK(closed_now_.empty(), "a refused add closed a connection");
  }
  h.peer.reset();
  h.claims.clear();
  if (h.reservation.valid()) h.reservation.release();  // the host drops a refused admission
}

void Run::add_connection(Bytes& in) {
  if (conns_.size() >= kMaxConnections) return;
  const std::size_t peer = in.below(kPeers);
  const cm::Direction direction = in.flag() ? cm::Direction::inbound : cm::Direction::outbound;
  auto handle = make_connection(peer, direction, endpoints()[in.below(endpoints().size())]);
  const std::size_t index = conns_.size() - 1;
  const std::error_code ec = m().add_connection(handle);
  if (!ec) conns_[index].added = conns_[index].open = true;
  DEP2P_FUZZ_CHECK(closed_now_.empty(), "an add without claims closed a connection");
}

void Run::bind(Bytes& in) {
  Conn* c = pick_connection(in);
  const std::optional<std::size_t> slot = realm_slot(in);
  const std::string_view name = name_of(slot, in);
  if (c == nullptr) return;
  const bool was_bound = exists(slot) && bound_to(*c, *slot);
  const cm::Admission bound = node_.bind(*c->handle, name);
  if (!c->open || !exists(slot)) {
    DEP2P_FUZZ_CHECK(
        bound.error == cm::Errc::unknown_connection || bound.error == cm::Errc::unknown_realm,
        "a bind of a connection not in the pool or to no realm: " + bound.error.message());
    return;
  }
  if (was_bound) {
    DEP2P_FUZZ_CHECK(!bound.error, "binding twice is a no-op: " + bound.error.message());
    return;
  }
  if (bound) {
    c->bound = static_cast<std::uint8_t>(c->bound | (1u << *slot));
    return;
  }
  DEP2P_FUZZ_CHECK(bound.error == cm::Errc::realm_full,
                   "a bind of an open connection to a realm: " + bound.error.message());
  DEP2P_FUZZ_CHECK(bound.refusal.stage == cm::Stage::bind &&
                       bound.refusal.reason == cm::RefusalReason::realm_limit,
                   "a bind refusal names its stage and reason");
  const cm::RealmConfig& config = realms_[*slot].config;
  DEP2P_FUZZ_CHECK(config.hard_max > 0 || config.max_members > 0,
                   "a bind refused by a realm without limits");
}

void Run::unbind(Bytes& in) {
  Conn* c = pick_connection(in);
  const std::optional<std::size_t> slot = realm_slot(in);
  const std::string_view name = name_of(slot, in);
  if (c == nullptr) return;
  const std::error_code ec = node_.unbind(*c->handle, name);
  const bool was_bound = c->open && exists(slot) && bound_to(*c, *slot);
  DEP2P_FUZZ_CHECK(!ec == was_bound, "unbind succeeds exactly for a bound connection: " +
                                         (ec ? ec.message() : std::string("succeeded")));
  if (was_bound) unbound(*c, *slot);
}

void Run::realm_tag(Bytes& in) {
  const std::optional<std::size_t> slot = realm_slot(in);
  const std::string_view name = name_of(slot, in);
  const std::size_t peer = in.below(kPeers);
  static constexpr std::array<std::string_view, 3> kTags{"a", "b", ""};
  const std::string_view tag = kTags[in.below(kTags.size())];
  const int value = static_cast<int>(in.next()) - 100;
  const bool untag = in.flag();
  const std::error_code ec = untag ? node_.untag_peer(name, peers()[peer], tag)
                                   : node_.tag_peer(name, peers()[peer], tag, value);
  const bool member = exists(slot) && is_member(*slot, peer);
  if (!member || (!untag && tag.empty())) {
    DEP2P_FUZZ_CHECK(ec, "a realm tag of a non-member, in no realm or without a name");
    if (exists(slot) && !member) {
      DEP2P_FUZZ_CHECK(ec == cm::Errc::unknown_peer || ec == cm::Errc::invalid_argument,
                       "a realm tag of a non-member: " + ec.message());
    }
    return;
  }
  DEP2P_FUZZ_CHECK(!ec, "a realm tag of a member: " + ec.message());
  auto& tags = realms_[*slot].tags[peer];
  if (untag) {
    tags.erase(std::string(tag));
  } else {
    tags[std::string(tag)] = value;
  }
}

void Run::realm_protect(Bytes& in) {
  const std::optional<std::size_t> slot = realm_slot(in);
  const std::string_view name = name_of(slot, in);
  const std::size_t peer = in.below(kPeers);
  static constexpr std::array<std::string_view, 3> kTags{"p", "q", ""};
  const std::string_view tag = kTags[in.below(kTags.size())];
  const bool member = exists(slot) && is_member(*slot, peer);
  if (in.flag()) {
    const bool still = node_.unprotect(name, peers()[peer], tag);
    if (!member) {
      DEP2P_FUZZ_CHECK(!still, "unprotect in a realm the peer is not a member of");
      return;
    }
    auto& tags = realms_[*slot].protections[peer];
    tags.erase(std::string(tag));
    DEP2P_FUZZ_CHECK(still == !tags.empty(), "unprotect answers whether another tag protects");
    return;
  }
  const std::error_code ec = node_.protect(name, peers()[peer], tag);
  if (!member || tag.empty()) {
    DEP2P_FUZZ_CHECK(ec, "a realm protection of a non-member, in no realm or without a tag");
    return;
  }
  DEP2P_FUZZ_CHECK(!ec, "a realm protection of a member: " + ec.message());
  realms_[*slot].protections[peer].insert(std::string(tag));
}

void Run::node_tag(Bytes& in) {
  const cm::NodeId& peer = peers()[in.below(kPeers)];
  switch (in.below(4)) {
    case 0: (void)m().tag_peer(peer, "t", static_cast<int>(in.next()) - 100); break;
    case 1: (void)m().untag_peer(peer, "t"); break;
    case 2: (void)m().protect(peer, "keep"); break;
    default: (void)m().unprotect(peer, "keep"); break;
  }
}

void Run::host_close(Bytes& in) {
  Conn* c = pick_connection(in);
  if (c == nullptr) return;
  const bool was_open = c->open;
  const std::size_t index = static_cast<std::size_t>(c - conns_.data());
  switch (in.below(3)) {
    case 0: {
      // The host reports a closure it saw (the remote went away): no close() call.
      const std::error_code ec = m().remove_connection(*c->handle, cm::CloseReason::remote);
      DEP2P_FUZZ_CHECK(!ec == was_open, "remove_connection succeeds exactly for a pooled one: " +
                                            (ec ? ec.message() : std::string("succeeded")));
      if (was_open) {
        conns_[index].open = false;
        for (std::size_t r = 0; r < kRealms; ++r) {
          if (bound_to(conns_[index], r)) unbound(conns_[index], r);
        }
      }
      break;
    }
    case 1: {
      const std::error_code ec = m().close_connection(*c->handle);
      DEP2P_FUZZ_CHECK(!ec == was_open, "close_connection succeeds exactly for a pooled one");
      DEP2P_FUZZ_CHECK(!conns_[index].open, "a closed connection stays in the pool");
      break;
    }
    default: {
      const std::size_t peer = c->peer;
      (void)m().close_peer(peers()[peer]);
      for (const Conn& other : conns_) {
        DEP2P_FUZZ_CHECK(!(other.open && other.peer == peer), "close_peer left a connection");
      }
      break;
    }
  }
}

void Run::node_trim(Bytes& in) {
  const auto before = bound_counts();
  const std::size_t count_before = m().connection_count();
  switch (in.below(3)) {
    case 0: {
      const std::size_t closed = m().trim();
      DEP2P_FUZZ_CHECK(closed == closed_now_.size(), "trim() returns the connections it closed");
      check_reserves_kept(before, "the node's trim");
      break;
    }
    case 1: {
      const std::size_t closed = m().force_trim();
      DEP2P_FUZZ_CHECK(closed == closed_now_.size(), "force_trim() returns the connections closed");
      break;
    }
    default: {
      const std::size_t want = in.below(4);
      const std::size_t closed = m().trim_connections(want);
      DEP2P_FUZZ_CHECK(closed == closed_now_.size() && closed <= want,
                       "trim_connections() closes at most the count asked");
      break;
    }
  }
  DEP2P_FUZZ_CHECK(m().connection_count() == count_before - closed_now_.size(), "a trim's count");
}

void Run::realm_trim(Bytes& in) {
  const std::optional<std::size_t> slot = realm_slot(in);
  const std::string_view name = name_of(slot, in);
  std::vector<bool> bound_before(conns_.size(), false);
  bool anyone_protected = false;
  if (exists(slot)) {
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      const Conn& c = conns_[i];
      bound_before[i] = c.open && bound_to(c, *slot);
      if (bound_before[i] &&
          (m().is_protected(peers()[c.peer]) || node_.is_protected(name, peers()[c.peer]))) {
        anyone_protected = true;
      }
    }
  }
  const std::size_t closed = node_.trim_realm(name);
  DEP2P_FUZZ_CHECK(closed == closed_now_.size(), "trim_realm returns the connections it closed");
  for (const auto& [index, reason] : closed_now_) {
    DEP2P_FUZZ_CHECK(index < bound_before.size() && bound_before[index],
                     "a realm's trim closed a connection not bound to it");
    DEP2P_FUZZ_CHECK(reason == cm::CloseReason::trimmed, "a realm's trim closes as trimmed");
  }
  if (!exists(slot)) return;
  const cm::RealmConfig& c = realms_[*slot].config;
  // With no grace and nobody protected every member is a candidate: the realm ends at
  // its low water.
  if (c.low_water > 0 && c.high_water > 0 && config_.grace_period.count() == 0 &&
      !anyone_protected) {
    DEP2P_FUZZ_CHECK(bound_count(*slot) <= c.low_water,
                     "a realm trim left " + std::to_string(bound_count(*slot)) +
                         " bound connections above low_water " + std::to_string(c.low_water));
  }
}

void Run::create_realm(Bytes& in) {
  const std::optional<std::size_t> slot = realm_slot(in);
  const std::string_view name = slot ? kRealmNames[*slot] : std::string_view("");
  const cm::RealmConfig config = realm_config(in);
  cm::ConfigError error;
  const std::error_code ec = node_.create_realm(name, config, &error);
  if (exists(slot)) {
    DEP2P_FUZZ_CHECK(ec == cm::Errc::realm_exists || ec == cm::Errc::invalid_argument,
                     "creating a realm that exists: " + ec.message());
    return;
  }
  if (config.validate() || name.empty()) {
    DEP2P_FUZZ_CHECK(
        ec == cm::Errc::invalid_argument && !error.field.empty() && !error.message.empty(),
        "an invalid realm config is refused naming the field");
    return;
  }
  if (ec) {
    DEP2P_FUZZ_CHECK(ec == cm::Errc::invalid_argument && !error.field.empty(),
                     "a realm refused by the node names the field: " + ec.message());
    return;
  }
  DEP2P_FUZZ_CHECK(slot.has_value(), "a realm was made under a name outside the slots");
  RealmModel& realm = realms_[*slot];
  realm = RealmModel{};
  realm.exists = true;
  realm.generation = ++generations_;
  realm.config = config;
}

void Run::remove_realm(Bytes& in) {
  const std::optional<std::size_t> slot = realm_slot(in);
  const std::string_view name = name_of(slot, in);
  const std::error_code ec = node_.remove_realm(name);
  if (!exists(slot)) {
    DEP2P_FUZZ_CHECK(ec == cm::Errc::unknown_realm, "removing no realm: " + ec.message());
    return;
  }
  DEP2P_FUZZ_CHECK(!ec, "removing a realm: " + ec.message());
  for (Conn& c : conns_) c.bound = static_cast<std::uint8_t>(c.bound & ~(1u << *slot));
  realms_[*slot].exists = false;
  realms_[*slot].tags.clear();
  realms_[*slot].protections.clear();
  DEP2P_FUZZ_CHECK(closed_now_.empty(), "removing a realm closed a connection");
}

void Run::set_realm_limit(Bytes& in) {
  const std::optional<std::size_t> slot = realm_slot(in);
  const std::string_view name = name_of(slot, in);
  const cm::RealmConfig config = realm_config(in);
  cm::ConfigError error;
  const std::error_code ec = node_.set_realm_limit(name, config, &error);
  if (!exists(slot)) {
    DEP2P_FUZZ_CHECK(ec == cm::Errc::unknown_realm, "changing no realm: " + ec.message());
    return;
  }
  if (config.validate()) {
    DEP2P_FUZZ_CHECK(ec == cm::Errc::invalid_argument && !error.field.empty(),
                     "an invalid realm config is refused naming the field");
  }
  if (ec) {
    DEP2P_FUZZ_CHECK(ec == cm::Errc::invalid_argument, "set_realm_limit: " + ec.message());
    return;
  }
  realms_[*slot].config = config;
  DEP2P_FUZZ_CHECK(closed_now_.empty(), "set_realm_limit closed a connection at once");
}

void Run::set_limits(Bytes& in) {
  const std::size_t low = in.below(10);
  const std::size_t high = in.below(14);
  cm::ConfigError error;
  const std::error_code ec = node_.set_limits(low, high, &error);
  if (low != 0 && high != 0 && reserves() > low) {
    DEP2P_FUZZ_CHECK(ec == cm::Errc::invalid_argument,
                     "a low water below the realms' reserves is refused");
  }
  if (!ec) {
    DEP2P_FUZZ_CHECK(m().config().low_water == low && m().config().high_water == high,
                     "set_limits took effect");
  }
}

void Run::step(Bytes& in) {
  closed_now_.clear();
  switch (in.below(20)) {
    case 0:
    case 1: admit(in); break;
    case 2:
    case 3: secure(in); break;
    case 4: claim(in); break;
    case 5:
    case 6: add_admitted(in); break;
    case 7:
      held_[in.below(kHeld)] = Held{};  // a handshake failed: the reservation goes
      break;
    case 8: add_connection(in); break;
    case 9:
    case 10: bind(in); break;
    case 11: unbind(in); break;
    case 12:
      if (in.flag()) {
        realm_tag(in);
      } else {
        realm_protect(in);
      }
      break;
    case 13:
      if (in.flag()) {
        node_tag(in);
      } else {
        host_close(in);
      }
      break;
    case 14: node_trim(in); break;
    case 15: realm_trim(in); break;
    case 16: time_.advance(std::chrono::milliseconds(250 * (1 + in.below(16)))); break;
    case 17: create_realm(in); break;
    case 18:
      if (in.flag()) {
        remove_realm(in);
      } else {
        set_realm_limit(in);
      }
      break;
    default: set_limits(in); break;
  }
  check(++steps_ % 4 == 0);
}

void Run::check(bool full) {
  // The pool: what we added minus what was closed or reported closed.
  std::size_t open = 0;
  for (const Conn& c : conns_) open += c.open ? 1u : 0u;
  DEP2P_FUZZ_CHECK(m().connection_count() == open,
                   "connection_count " + std::to_string(m().connection_count()) +
                       ", connections open " + std::to_string(open));
  if (full) {
    // Reservations: exactly the ones we hold.
    std::size_t holding = 0;
    for (const Held& h : held_) holding += h.reservation.valid() ? 1u : 0u;
    const cm::Stats stats = m().stats();
    DEP2P_FUZZ_CHECK(stats.reservations == holding, "stats().reservations " +
                                                        std::to_string(stats.reservations) +
                                                        ", held " + std::to_string(holding));
    DEP2P_FUZZ_CHECK(stats.connections == open, "stats().connections");
    // The reserves fit under the node's low water whenever the node trims.
    if (stats.low_water != 0 && stats.high_water != 0) {
      DEP2P_FUZZ_CHECK(reserves() <= stats.low_water,
                       "the realms' reserves sum to " + std::to_string(reserves()) +
                           ", above low_water " + std::to_string(stats.low_water));
    }
  }
  std::size_t existing = 0;
  for (std::size_t r = 0; r < kRealms; ++r) {
    RealmModel& realm = realms_[r];
    const std::string_view name = kRealmNames[r];
    const std::optional<cm::RealmStats> rs = node_.realm_stats(name);
    DEP2P_FUZZ_CHECK(rs.has_value() == realm.exists, "realm_stats of " + std::string(name));
    if (!realm.exists) continue;
    ++existing;
    // Bindings, members and claims: the model's and the realm's statistics.
    const std::size_t bound = bound_count(r);
    DEP2P_FUZZ_CHECK(rs->connections == bound,
                     "realm " + std::string(name) + " counts " + std::to_string(rs->connections) +
                         " bound, the fuzzer bound " + std::to_string(bound));
    std::uint32_t member_bits = 0;
    for (const Conn& c : conns_) {
      if (c.open && bound_to(c, r)) member_bits |= 1u << c.peer;
    }
    const auto members = static_cast<std::size_t>(std::popcount(member_bits));
    DEP2P_FUZZ_CHECK(rs->members == members, "realm_stats().members " +
                                                 std::to_string(rs->members) + ", expected " +
                                                 std::to_string(members));
    const std::size_t claims = claim_count(r);
    DEP2P_FUZZ_CHECK(rs->pending == claims,
                     "realm " + std::string(name) + " has " + std::to_string(rs->pending) +
                         " claims pending, the fuzzer holds " + std::to_string(claims));
    // hard_max counts bound connections and claims: nothing makes the realm grow past it
    // (a lowered hard_max may leave it above, never growing).
    const std::size_t held = bound + claims;
    if (realm.config.hard_max > 0) {
      DEP2P_FUZZ_CHECK(held <= std::max(realm.config.hard_max, realm.held_before),
                       "realm " + std::string(name) + " grew to " + std::to_string(bound) +
                           " bound + " + std::to_string(claims) + " claims, past hard_max " +
                           std::to_string(realm.config.hard_max) + " (was " +
                           std::to_string(realm.held_before) + ")");
    }
    realm.held_before = held;
    if (!full) continue;
    DEP2P_FUZZ_CHECK(node_.realm_connection_count(name) == bound, "realm_connection_count");
    const std::optional<cm::RealmConfig> config = node_.realm_config(name);
    DEP2P_FUZZ_CHECK(config && same(*config, realm.config), "realm_config is the one set");
    const auto listed = node_.realm_connections(name);
    DEP2P_FUZZ_CHECK(listed.size() == bound, "realm_connections lists realm_connection_count");
    for (const auto& handle : listed) {
      const auto it = std::find_if(conns_.begin(), conns_.end(),
                                   [&](const Conn& c) { return c.handle.get() == handle.get(); });
      DEP2P_FUZZ_CHECK(it != conns_.end() && it->open && bound_to(*it, r),
                       "realm_connections lists a connection not bound to the realm");
    }
    std::uint32_t listed_members = 0;
    for (const cm::NodeId& peer : node_.members(name)) {
      const auto it = std::find(peers().begin(), peers().end(), peer);
      DEP2P_FUZZ_CHECK(it != peers().end(), "members() lists a stranger");
      listed_members |= 1u << static_cast<std::size_t>(it - peers().begin());
    }
    DEP2P_FUZZ_CHECK(listed_members == member_bits, "members() of the realm");
    // The realm's own tags and protections, of its members only.
    for (const auto& [peer, tags] : realm.tags) {
      std::int64_t sum = 0;
      for (const auto& [tag, value] : tags) sum += value;
      const std::optional<std::int64_t> value = node_.realm_value(name, peers()[peer]);
      DEP2P_FUZZ_CHECK(value && *value == sum, "realm_value is the sum of the realm's tags");
    }
    for (const auto& [peer, tags] : realm.protections) {
      DEP2P_FUZZ_CHECK(node_.is_protected(name, peers()[peer]) == !tags.empty(),
                       "is_protected in the realm");
    }
  }
  if (full) {
    DEP2P_FUZZ_CHECK(node_.realms().size() == existing, "realms() lists the realms made");
  }
}

void Run::finish() {
  closed_now_.clear();
  // Every admission in progress ends: no reservation and no claim is left.
  for (Held& h : held_) h = Held{};
  const cm::Stats dropped = m().stats();
  DEP2P_FUZZ_CHECK(
      dropped.reservations == 0 && dropped.pending_inbound == 0 && dropped.pending_outbound == 0,
      "reservations or pending slots left after every reservation went");
  for (std::size_t r = 0; r < kRealms; ++r) {
    if (!realms_[r].exists) continue;
    DEP2P_FUZZ_CHECK(node_.realm_stats(kRealmNames[r])->pending == 0,
                     "claims left after every reservation went");
  }
  // Every connection closes: no binding and no member is left.
  for (Conn& c : conns_) {
    if (c.open) (void)m().close_connection(*c.handle);
  }
  check(true);
  DEP2P_FUZZ_CHECK(m().connection_count() == 0, "connections left after closing every one");
  for (std::size_t r = 0; r < kRealms; ++r) {
    if (!realms_[r].exists) continue;
    const cm::RealmStats rs = *node_.realm_stats(kRealmNames[r]);
    DEP2P_FUZZ_CHECK(rs.connections == 0 && rs.members == 0 && rs.pending == 0,
                     "bindings, members or claims left in realm " + std::string(kRealmNames[r]));
    DEP2P_FUZZ_CHECK(!node_.remove_realm(kRealmNames[r]), "removing an empty realm");
  }
  DEP2P_FUZZ_CHECK(node_.realms().empty(), "realms left after removing every one");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes in(data, size);
  const cm::Config config = node_config(in);
  // An invalid configuration is refused at construction, naming the field; nothing else.
  const bool valid = !config.validate();
  std::unique_ptr<Run> run;
  try {
    run = std::make_unique<Run>(config);
  } catch (const std::invalid_argument& e) {
    DEP2P_FUZZ_CHECK(!valid, std::string("a valid config was refused: ") + e.what());
    DEP2P_FUZZ_CHECK(std::string_view(e.what()).starts_with("connmgr Config."),
                     "the refusal names the field");
    return 0;
  }
  DEP2P_FUZZ_CHECK(valid, "an invalid config was accepted");
  for (std::size_t steps = 0; steps < kMaxSteps && !in.exhausted(); ++steps) run->step(in);
  run->finish();
  return 0;
}
