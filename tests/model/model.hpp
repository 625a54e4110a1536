// Model-based random testing (issue #8): a deliberately simple reference model of the
// pool — plain maps of peers, connections, tags, protections, reservations and gater
// rules — driven by random sequences of the public operations, side by side with a
// ConnectionManager on virtual time. After every step the library must agree with the
// model (counts, stats, per-peer state, events) and the invariants of docs/design.md must
// hold: counts equal the sum of the connections; no protected peer is closed by a normal
// trim; after a trim the pool holds at most low water + protected + in-grace connections;
// every reservation released; every closed handle released by the manager.
//
// Where the library makes a choice the design leaves open (which peer a trim takes, which
// path the per-peer cap closes, when exactly the keepalive grid fires) the model does not
// predict it: it observes the choice through FakeConnection::close and checks that it is
// allowed (the reason fits, the peer was eligible, the count is right), then follows it.
//
//   model::SeededChoices choices(seed);
//   model::Run run(choices);
//   while (run.steps() < 150) if (!run.step()) FAIL() << run.failure();
//
// Half the runs build a RealmConnectionManager with two realms and add its operations
// (bind, unbind, trim_realm, admissions with a realm claim); the model then also checks
// the realms' counts, their hard_max and max_members, that no claim is left outstanding,
// and that a node trim leaves no realm below its min_reserved. Half of those cap the node's
// connections (limits.system.connections_total), and realms fill there by claims only:
// admissions at the full cap are refused unless realms are short of their reserves, and
// the add of one above the cap closes a peer the reserve rules allow (made_room) or is
// refused when none is, as the model predicts.
// The same Run is driven by fuzzer bytes in tests/fuzz (ByteChoices).
//
// Thread safety: none; one Run per thread.
#pragma once

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/config.hpp"
#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/events.hpp"
#include "dep2p/connmgr/gater.hpp"
#include "dep2p/connmgr/realm_manager.hpp"
#include "support/fake_connection.hpp"

namespace dep2p::connmgr::model {

// Where a run's choices come from: a seeded generator, or a fuzzer's bytes.
class Choices {
 public:
  virtual ~Choices() = default;
  // A number in [0, bound). REQUIRES: bound > 0.
  virtual std::uint64_t below(std::uint64_t bound) = 0;
  // True once a byte source has nothing left (a seeded one never runs out).
  virtual bool exhausted() const { return false; }

  bool chance(std::uint64_t one_in) { return below(one_in) == 0; }
  std::int64_t between(std::int64_t low, std::int64_t high) {  // inclusive
    return low + static_cast<std::int64_t>(below(static_cast<std::uint64_t>(high - low) + 1));
  }
};

// splitmix64: tiny, fast, and the same sequence on every platform and standard library.
class SeededChoices final : public Choices {
 public:
  explicit SeededChoices(std::uint64_t seed) : state_(seed) {}
  std::uint64_t below(std::uint64_t bound) override { return next() % bound; }

 private:
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::uint64_t state_;
};

// Reads choices from bytes: as many bytes as the bound needs, zeros once they run out.
class ByteChoices final : public Choices {
 public:
  ByteChoices(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint64_t below(std::uint64_t bound) override {
    std::uint64_t value = 0;
    std::uint64_t range = 1;
    for (int i = 0; i < 8 && range < bound && pos_ < size_; ++i) {
      value = (value << 8) | data_[pos_++];
      range <<= 8;
    }
    return value % bound;
  }
  bool exhausted() const override { return pos_ >= size_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// Every public operation the model drives. A new one gets a weight in kWeights, a name in
// op_name and a case in Run::apply.
enum class Op : std::uint8_t {
  connect,           // add_connection(handle)
  connect_admitted,  // admit_inbound / check_dial_addr, on_secured, add_connection(reserved)
  admit_and_hold,    // the first admission stage; the reservation is kept for later
  complete_held,     // on_secured + add_connection with a held reservation
  drop_reservation,  // a handshake failed: the reservation goes
  reserve_resources,
  add_duplicate,     // add_connection of a handle already tracked
  host_disconnect,   // remove_connection of an open connection
  report_unknown,    // remove_connection of a handle never tracked
  late_report,       // a host that reports closures late reports one the manager closed
  repeat_connected,  // ... or, racing, reports such a connection as connected again
  close_peer,
  stream_open,
  stream_close,
  activity,
  ping_dies,  // the connection's pings stop being answered (or fail)
  tag,
  untag,
  upsert,
  protect,
  protect_for,
  unprotect,
  check_dial,
  block_peer,
  unblock_peer,
  ban_peer,
  advance_small,
  advance_large,
  trim,
  force_trim,
  trim_connections,
  set_limits,
  bind,  // RealmConnectionManager (runs with realms only)
  unbind,
  trim_realm,
  claim_connect,  // an admission with a realm claim (RealmConnectionManager::claim)
  kCount
};

// The run's peers have ids of several lengths, so that every run covers the pool's packed
// ids (up to 39 bytes inline) and the longer ones it keeps apart, with slots reused
// between them. The number sits in the last 8 bytes, so ids stay distinct.
inline NodeId model_peer_id(std::uint64_t n) {
  static constexpr std::array<std::size_t, 4> kSizes{32, 38, 40, 64};
  std::vector<std::uint8_t> bytes(kSizes[n % kSizes.size()], 0x12);
  for (std::size_t i = 0; i < 8; ++i) {
    bytes[bytes.size() - 1 - i] = static_cast<std::uint8_t>(n >> (8 * i));
  }
  return NodeId(bytes);
}

inline const char* op_name(Op op) {
  static constexpr const char* kNames[] = {"connect",
                                           "connect_admitted",
                                           "admit_and_hold",
                                           "complete_held",
                                           "drop_reservation",
                                           "reserve_resources",
                                           "add_duplicate",
                                           "host_disconnect",
                                           "report_unknown",
                                           "late_report",
                                           "repeat_connected",
                                           "close_peer",
                                           "stream_open",
                                           "stream_close",
                                           "activity",
                                           "ping_dies",
                                           "tag",
                                           "untag",
                                           "upsert",
                                           "protect",
                                           "protect_for",
                                           "unprotect",
                                           "check_dial",
                                           "block_peer",
                                           "unblock_peer",
                                           "ban_peer",
                                           "advance_small",
                                           "advance_large",
                                           "trim",
                                           "force_trim",
                                           "trim_connections",
                                           "set_limits",
                                           "bind",
                                           "unbind",
                                           "trim_realm",
                                           "claim_connect"};
  static_assert(std::size(kNames) == static_cast<std::size_t>(Op::kCount));
  return kNames[static_cast<std::size_t>(op)];
}

class Run {
 public:
  // Draws the configuration from `choices`, then builds the manager.
  explicit Run(Choices& choices) : choices_(choices) { setup(); }
  ~Run() {
    events_.reset();
    held_.clear();
    node_.reset();  // before the connections, which refer to it from close()
    own_manager_.reset();
  }
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  // One random operation and every check after it. False once a check failed.
  bool step() {
    if (!failure_.empty()) return false;
    ++steps_;
    const Op op = pick_op();
    op_ = op;
    detail_.clear();
    close_log_->clear();
    trim_ran_ = false;
    trim_result_ = 0;
    realm_rules_ = false;
    bound_before_ = bound_counts();
    apply(op);
    if (failure_.empty()) process_closes();
    if (failure_.empty()) check_all();
    history_.emplace_back(op, std::move(detail_));
    if (history_.size() > 12) history_.pop_front();
    return failure_.empty();
  }

  std::size_t steps() const { return steps_; }
  // Realm claims (claim_connect) accepted and refused so far.
  std::uint64_t claims_accepted() const { return claims_accepted_; }
  std::uint64_t claims_refused() const { return claims_refused_; }
  // Admissions above the cap that made room for a realm below its reserve, and claimed
  // ones that found none.
  std::uint64_t rooms_made() const { return rooms_made_; }
  std::uint64_t claims_no_room() const { return claims_no_room_; }
  std::uint64_t over_cap_admissions() const { return over_cap_admissions_; }
  // The manager under test, for the self-test that changes it behind the model's back.
  ConnectionManager& manager() { return *manager_; }
  const std::string& failure() const { return failure_; }
  // The configuration and the last operations, for failure messages.
  std::string context() const {
    std::string text = "config: " + config_.describe() +
                       " keepalive=" + std::to_string(config_.keepalive_interval.count()) +
                       "ms idle=" + std::to_string(config_.idle_timeout.count()) +
                       "ms per_peer=" + std::to_string(config_.max_connections_per_peer) +
                       " peers=" + std::to_string(ids_.size()) + "\nlast operations:";
    for (const auto& [op, detail] : history_) text += "\n  " + std::string(op_name(op)) + detail;
    return text;
  }

 private:
  using PingHandlers = std::vector<Connection::PingHandler>;
  enum class PingMode : std::uint8_t { answers, silent, fails };
  static constexpr TimePoint kForever = TimePoint::max();

  struct MConn {
    std::shared_ptr<testing::FakeConnection> handle;
    std::size_t peer = 0;
    Direction direction = Direction::inbound;
    bool relay = false;
    std::optional<std::string> capped;  // the address whose cap place it holds
    std::uint32_t streams_in = 0;
    std::uint32_t streams_out = 0;
    TimePoint last_activity{};
    PingMode ping = PingMode::answers;
    TimePoint dead_since{};
    bool report_back = false;      // close() reports the closure to the manager at once
    std::set<std::size_t> realms;  // indices into realms_ it is bound to
  };
  struct MRealm {
    std::string name;
    RealmConfig config;
  };
  struct MPeer {
    bool exists = false;
    bool temporary = false;
    TimePoint first_seen{};
    TimePoint expires_at{};                        // temporary entries
    std::map<std::string, int> tags;               // name -> value
    std::map<std::string, TimePoint> protections;  // tag -> end (kForever: until unprotected)
    std::set<std::uint64_t> conns;                 // model ids
    bool blocked = false;
    std::optional<TimePoint> ban_until;
  };
  struct MReservation {
    Reservation reservation;
    Direction direction = Direction::inbound;
    bool pending = true;                // a handshake slot (false: reserve_resources)
    std::optional<std::string> capped;  // the address (inbound)
    std::optional<std::size_t> peer;    // outbound: known from the start
    std::uint64_t memory = 0;
    std::size_t fds = 0;
    bool over_cap = false;  // admitted above the full connection cap, for a short reserve
  };
  struct Closed {
    const Connection* handle;
    CloseReason reason;
    std::error_code report;  // what remove_connection answered when reported back
    bool reported;
  };

  // --- Setup ----------------------------------------------------------------------

  static constexpr std::array<const char*, 6> kAddresses = {"127.0.0.1", "10.0.0.1", "10.0.0.2",
                                                            "10.0.0.3",  "10.0.1.1", "10.0.1.2"};
  static constexpr std::array<const char*, 3> kTagNames = {"a", "b", "c"};
  static constexpr std::array<const char*, 2> kProtectTags = {"x", "y"};

  void setup() {
    using std::chrono::milliseconds;
    using std::chrono::seconds;
    Config c;
    c.low_water = static_cast<std::size_t>(choices_.between(1, 8));
    c.high_water = c.low_water + static_cast<std::size_t>(choices_.between(0, 10));
    if (choices_.chance(10)) c.low_water = 0;  // trimming off
    constexpr std::array<milliseconds, 4> graces = {milliseconds(0), seconds(2), seconds(10),
                                                    seconds(30)};
    const std::size_t grace = choices_.below(graces.size());
    c.grace_period = graces[grace];
    // Temporary entries live their own setting, chosen without a draw (so that each seed
    // keeps its run): another of the durations, never 0.
    c.temp_peer_lifetime = graces[grace % 3 + 1];
    c.silence_period = choices_.chance(2) ? seconds(3) : seconds(10);
    c.max_temp_peers = choices_.chance(2) ? 3 : 100;
    c.max_peers_per_protection_tag = choices_.chance(3) ? 2 : 0;
    if (choices_.chance(3)) {
      c.keepalive_interval = milliseconds(0);
    } else {
      c.keepalive_interval = seconds(5);
      c.keepalive_timeout = seconds(5);
      c.keepalive_max_missed = 2;
    }
    c.idle_timeout = choices_.chance(2) ? milliseconds(0) : seconds(60);
    c.path_idle_timeout = milliseconds(0);  // not modelled: tests/unit/redial_test.cpp (PathIdle)
    constexpr std::array<std::size_t, 3> per_peer = {0, 2, 3};
    c.max_connections_per_peer = per_peer[choices_.below(per_peer.size())];
    c.limits.subnets.ipv4_32 = 2;
    c.limits.subnets.ipv4_24 = 3;
    // Token buckets would need the model to refill them; the caps are modelled instead.
    c.limits.inbound_rate.ipv4_24 = {0, 0};
    c.limits.inbound_rate.ipv4_16 = {0, 0};
    c.limits.inbound_rate.ipv6_64 = {0, 0};
    c.limits.inbound_rate.ipv6_48 = {0, 0};
    config_ = c;
    low_ = c.low_water;
    high_ = c.high_water;

    const auto peers = static_cast<std::size_t>(choices_.between(3, 12));
    for (std::size_t i = 0; i < peers; ++i) ids_.push_back(model_peer_id(i + 1));
    peers_.resize(peers);

    time_ = std::make_shared<ManualTimeSource>(io_);
    BasicGaterOptions gater_options;
    gater_options.time_source = time_;
    gater_options.close_existing = true;
    gater_ = std::make_shared<BasicGater>(io_.get_executor(), gater_options);
    Dependencies deps;
    deps.time_source = time_;
    deps.gater = gater_;
    if (choices_.chance(2)) {
      // Half the realm runs cap the node's connections, where reserves admit by making room.
      if (choices_.chance(2)) {
        config_.limits.system.connections_total =
            std::max<std::size_t>(high_, 2) + static_cast<std::size_t>(choices_.below(3));
      }
      node_ = std::make_unique<RealmConnectionManager>(io_, config_, deps);
      manager_ = &node_->manager();
      std::size_t reserved = 0;
      for (const char* name : {"r1", "r2"}) {
        MRealm realm;
        realm.name = name;
        RealmConfig& rc = realm.config;
        rc.hard_max = std::min(static_cast<std::size_t>(choices_.between(2, 6)),
                               config_.limits.system.connections_total);
        rc.high_water = static_cast<std::size_t>(choices_.below(rc.hard_max + 1));
        rc.low_water =
            rc.high_water == 0 ? 0 : static_cast<std::size_t>(choices_.below(rc.high_water + 1));
        if (rc.low_water > 0 && reserved + 1 <= low_ && choices_.chance(2)) {
          // Large reserves where the node is capped: they are short more often there.
          const bool capped = config_.limits.system.connections_total != kUnlimited;
          rc.min_reserved =
              std::min({rc.low_water, low_ - reserved,
                        capped ? rc.low_water : static_cast<std::size_t>(choices_.between(1, 3))});
        }
        if (choices_.chance(3))
          rc.max_members =
              static_cast<std::size_t>(choices_.between(1, static_cast<std::int64_t>(rc.hard_max)));
        reserved += rc.min_reserved;
        ConfigError error;
        if (node_->create_realm(name, rc, &error)) {
          fail(std::string("create_realm ") + name + ": " + error.message);
          return;
        }
        realms_.push_back(std::move(realm));
      }
    } else {
      own_manager_ = std::make_unique<ConnectionManager>(io_, config_, deps);
      manager_ = own_manager_.get();
    }
    events_ = manager_->subscribe([this](const Event& e) {
      if (std::holds_alternative<ConnectedEvent>(e)) ++connected_events_;
      if (std::holds_alternative<DisconnectedEvent>(e)) ++disconnected_events_;
    });
    now_ = time_->now();
  }

  // --- Choosing -------------------------------------------------------------------

  Op pick_op() {
    // Weights, in Op order: the pool's own operations most, admission and time often.
    static constexpr std::array<std::uint32_t, static_cast<std::size_t>(Op::kCount)> kWeights = {
        14, 6, 3, 3, 2, 1, 1, 6, 1, 2, 1, 1,  // connect .. close_peer
        3,  2, 2, 1, 5, 2, 2, 3, 2, 2,        // stream_open .. unprotect
        1,  1, 1, 1, 5, 3, 4, 1, 2, 1,        // check_dial .. set_limits
        8,  2, 1, 4                           // bind .. claim_connect (with realms only)
    };
    std::uint64_t total = 0;
    for (std::uint32_t w : kWeights) total += w;
    std::uint64_t pick = choices_.below(total);
    for (std::size_t i = 0; i < kWeights.size(); ++i) {
      if (pick < kWeights[i]) {
        const auto op = static_cast<Op>(i);
        if (op >= Op::bind && realms_.empty()) return Op::connect;
        // Where the node is capped, realms fill through admission only (their reserves
        // stay short long enough for admissions above the cap to make room for them).
        if (op == Op::bind && system_cap() != kUnlimited) return Op::claim_connect;
        return op;
      }
      pick -= kWeights[i];
    }
    return Op::connect;
  }

  std::size_t pick_peer() { return static_cast<std::size_t>(choices_.below(ids_.size())); }

  // A random open connection's model id, or nothing when none is open.
  std::optional<std::uint64_t> pick_conn() {
    if (conns_.empty()) return std::nullopt;
    auto it = conns_.begin();
    std::advance(it, static_cast<std::ptrdiff_t>(choices_.below(conns_.size())));
    return it->first;
  }

  // --- Failing --------------------------------------------------------------------

  void fail(const std::string& what) {
    if (!failure_.empty()) return;
    failure_ = "step " + std::to_string(steps_) + " (" + op_name(op_) + detail_ + "): " + what;
  }
  // `what` names the check in its failure message: text, a PeerCheck, or a callable that
  // returns the text. Only a failing check builds its message, so that the checks run after
  // every step allocate nothing for their names.
  template <class A, class B, class What>
  void expect_eq(const A& actual, const B& expected, const What& what) {
    if (!(actual == expected)) {
      fail(describe(what) + ": library " + show(actual) + ", model " + show(expected));
    }
  }
  // A check of one peer's state: "peer <n> <what>".
  struct PeerCheck {
    std::size_t peer;
    const char* what;
  };
  static std::string describe(const char* what) { return what; }
  static std::string describe(const std::string& what) { return what; }
  std::string describe(const PeerCheck& check) const {
    return peer_name(check.peer) + " " + check.what;
  }
  template <class F>
  requires std::is_invocable_r_v<std::string, const F&>
  static std::string describe(const F& what) { return what(); }
  static std::string show(const std::error_code& ec) {
    return ec ? ec.message() : std::string("success");
  }
  static std::string show(bool b) { return b ? "true" : "false"; }
  template <class T>
  static std::string show(const T& v) {
    if constexpr (std::is_integral_v<T>) {
      return std::to_string(v);
    } else {
      return "(value)";
    }
  }
  std::string peer_name(std::size_t p) const { return "peer " + std::to_string(p + 1); }

  // --- Model helpers --------------------------------------------------------------

  bool live_protection(const MPeer& peer) const {
    for (const auto& [tag, until] : peer.protections) {
      if (until > now_) return true;
    }
    return false;
  }
  bool denied(const MPeer& peer) const {
    return peer.blocked || (peer.ban_until && now_ < *peer.ban_until);
  }
  bool out_of_grace(const MPeer& peer) const {
    return config_.grace_period.count() == 0 || now_ - peer.first_seen >= config_.grace_period;
  }
  std::size_t temp_count() const {
    std::size_t n = 0;
    for (const MPeer& p : peers_)
      if (p.exists && p.temporary) ++n;
    return n;
  }
  bool watermarks_on() const { return low_ != 0 && high_ != 0; }
  static std::string subnet24(const std::string& address) {
    return address.substr(0, address.rfind('.'));
  }
  static bool loopback(const std::string& address) { return address.rfind("127.", 0) == 0; }
  // Whether the per-address or per-subnet cap refuses one more from `address`.
  bool cap_full(const std::string& address) const {
    if (loopback(address)) return false;
    std::size_t same = 0;
    std::size_t subnet = 0;
    auto count = [&](const std::optional<std::string>& held) {
      if (!held) return;
      if (*held == address) ++same;
      if (subnet24(*held) == subnet24(address)) ++subnet;
    };
    for (const auto& [id, c] : conns_) count(c.capped);
    for (const MReservation& r : held_) count(r.capped);
    return same >= config_.limits.subnets.ipv4_32 || subnet >= config_.limits.subnets.ipv4_24;
  }

  // A tag or upsert on a peer: the entry it lands on, created temporary when needed.
  // Returns false (temp_peer_limit) when no entry may be created.
  bool entry_for_tagging(std::size_t p) {
    MPeer& peer = peers_[p];
    if (peer.exists) return true;
    if (temp_count() >= config_.max_temp_peers) return false;
    peer.exists = true;
    peer.temporary = true;
    peer.first_seen = now_;
    peer.expires_at = now_ + config_.temp_peer_lifetime;
    peer.tags.clear();
    return true;
  }
  void release_peer(MPeer& peer) {
    peer.exists = false;
    peer.temporary = false;
    peer.tags.clear();
  }

  std::shared_ptr<testing::FakeConnection> make_connection(std::size_t p, Direction direction,
                                                           const std::string& address, bool relay,
                                                           bool report_back) {
    auto handle = std::make_shared<testing::FakeConnection>(
        ids_[p], direction, testing::endpoint(address.c_str()),
        relay ? PathKind::relay : PathKind::direct);
    auto log = close_log_;
    ConnectionManager* manager = manager_;
    handle->on_close = [log, manager, report_back](testing::FakeConnection& self,
                                                   CloseReason reason) {
      Closed closed{&self, reason, {}, report_back};
      if (report_back) closed.report = manager->remove_connection(self, reason);
      log->push_back(closed);
    };
    auto unanswered = std::make_shared<PingHandlers>();
    auto mode = std::make_shared<PingMode>(PingMode::answers);
    handle->on_ping = [unanswered, mode](Connection::PingHandler done) {
      switch (*mode) {
        case PingMode::answers: done({}); break;
        case PingMode::fails: done(std::make_error_code(std::errc::timed_out)); break;
        case PingMode::silent: unanswered->push_back(std::move(done)); break;
      }
    };
    ping_modes_[handle.get()] = mode;
    return handle;
  }

  // The model's side of a connection joining the pool.
  std::uint64_t join(std::shared_ptr<testing::FakeConnection> handle, std::size_t p,
                     Direction direction, bool relay, std::optional<std::string> capped,
                     bool report_back) {
    const std::uint64_t id = ++next_conn_;
    MPeer& peer = peers_[p];
    if (!peer.exists || peer.temporary) {
      if (!peer.exists) peer.tags.clear();
      peer.exists = true;
      peer.temporary = false;
      peer.first_seen = now_;
    }
    peer.conns.insert(id);
    // A connection to the peer ends its dial in flight and its backoff.
    dial_until_.erase(p);
    backoff_possible_.erase(p);
    MConn c;
    c.handle = std::move(handle);
    c.peer = p;
    c.direction = direction;
    c.relay = relay;
    c.capped = std::move(capped);
    c.last_activity = now_;
    c.report_back = report_back;
    by_handle_[c.handle.get()] = id;
    conns_.emplace(id, std::move(c));
    ++added_;
    return id;
  }

  // The model's side of a connection leaving the pool: closed by the host, or by the
  // manager (`by_manager`); a closure the host did not report back at once is reported
  // late (late_report), and until then the handle is the manager's duplicate.
  void leave(std::uint64_t id, CloseReason reason, bool by_manager) {
    auto it = conns_.find(id);
    MConn& c = it->second;
    MPeer& peer = peers_[c.peer];
    peer.conns.erase(id);
    // Missed keepalives count as a failed dial when they close the peer's last connection
    // (and grow nothing while the node is taken for offline): the peer may be in backoff,
    // for at most the error rule's cap and its jitter.
    if (reason == CloseReason::keepalive_timeout) {
      backoff_possible_[c.peer] =
          now_ + config_.dial.error_backoff_max + config_.dial.error_backoff_max / 5;
    }
    if (peer.conns.empty()) release_peer(peer);
    ++removed_;
    ++closes_[static_cast<std::size_t>(reason)];
    (by_manager && !c.report_back ? late_ : released_).push_back(c.handle);
    ping_modes_.erase(c.handle.get());
    by_handle_.erase(c.handle.get());
    conns_.erase(it);
  }

  // A peer's last protection ended at `at`: its temporary entry, which could not expire
  // while protected, lives one lifetime from then (or to its own end, if later).
  void protection_ended(MPeer& peer, TimePoint at) {
    if (peer.exists && peer.temporary) {
      peer.expires_at = std::max(peer.expires_at, at + config_.temp_peer_lifetime);
    }
  }

  // Time moved: the model's own time rules. Every protection left has not ended yet (each
  // move of time runs this), so one that ends now ends in the interval just passed.
  void expire_at_now() {
    for (MPeer& peer : peers_) {
      const bool was_protected = !peer.protections.empty();
      TimePoint last_end{};
      for (auto it = peer.protections.begin(); it != peer.protections.end();) {
        if (it->second <= now_) {
          last_end = std::max(last_end, it->second);
          it = peer.protections.erase(it);
        } else {
          ++it;
        }
      }
      if (was_protected && peer.protections.empty()) protection_ended(peer, last_end);
      if (peer.ban_until && *peer.ban_until <= now_) peer.ban_until.reset();
      if (peer.exists && peer.temporary && peer.protections.empty() && peer.expires_at <= now_) {
        release_peer(peer);
      }
    }
  }

  // --- Operations -----------------------------------------------------------------

  void apply(Op op) {
    switch (op) {
      case Op::connect: return do_connect();
      case Op::connect_admitted: return do_admitted(/*hold=*/false);
      case Op::admit_and_hold: return do_admitted(/*hold=*/true);
      case Op::complete_held: return do_complete_held();
      case Op::drop_reservation: return do_drop_reservation();
      case Op::reserve_resources: return do_reserve_resources();
      case Op::add_duplicate: return do_add_duplicate();
      case Op::host_disconnect: return do_host_disconnect();
      case Op::report_unknown: return do_report_unknown();
      case Op::late_report: return do_late_report();
      case Op::repeat_connected: return do_repeat_connected();
      case Op::close_peer: return do_close_peer();
      case Op::stream_open: return do_stream(true);
      case Op::stream_close: return do_stream(false);
      case Op::activity: return do_activity();
      case Op::ping_dies: return do_ping_dies();
      case Op::tag: return do_tag();
      case Op::untag: return do_untag();
      case Op::upsert: return do_upsert();
      case Op::protect: return do_protect(false);
      case Op::protect_for: return do_protect(true);
      case Op::unprotect: return do_unprotect();
      case Op::check_dial: return do_check_dial();
      case Op::block_peer: return do_block(false);
      case Op::unblock_peer: return do_unblock();
      case Op::ban_peer: return do_block(true);
      case Op::advance_small: return do_advance(false);
      case Op::advance_large: return do_advance(true);
      case Op::trim: return do_trim();
      case Op::force_trim: return do_force_trim();
      case Op::trim_connections: return do_trim_connections();
      case Op::set_limits: return do_set_limits();
      case Op::bind: return do_bind();
      case Op::unbind: return do_unbind();
      case Op::trim_realm: return do_trim_realm();
      case Op::claim_connect: return do_claim_connect();
      case Op::kCount: break;
    }
  }

  void do_connect() {
    const std::size_t p = pick_peer();
    const Direction direction = choices_.chance(2) ? Direction::inbound : Direction::outbound;
    const bool relay = choices_.chance(8);
    const bool report_back = choices_.chance(2);
    detail_ = " " + peer_name(p) + (relay ? " relay" : "");
    auto handle = make_connection(p, direction, "127.0.0.1", relay, report_back);
    cap_before_ = peers_[p].conns.size() + 1;
    expect_eq(manager_->add_connection(handle), std::error_code{}, "add_connection");
    join(std::move(handle), p, direction, relay, std::nullopt, report_back);
    cap_peer_ = p;
  }

  // Runs the first stage for a new inbound (from a random address) or outbound connection.
  // Returns the reservation when admitted; counts and checks refusals.
  std::optional<MReservation> first_stage(std::size_t p, Direction direction,
                                          const std::string& address) {
    MReservation held;
    held.direction = direction;
    // The system cap comes after the gater (which gates outbound dials by peer) and before
    // the per-address caps.
    const bool system_full =
        system_cap_full() && !(direction == Direction::outbound && denied(peers_[p]));
    if (system_full) held.over_cap = reserve_shortfall() > over_cap_held();
    if (held.over_cap) ++over_cap_admissions_;
    if (system_full && !held.over_cap) {
      Admission a = direction == Direction::inbound
                        ? manager_->admit_inbound(testing::endpoint(address.c_str()))
                        : manager_->check_dial_addr(ids_[p], testing::endpoint(address.c_str()));
      expect_eq(a.error, make_error_code(Errc::limit_exceeded), "an admission at the full cap");
      if (a.refusal.reason != RefusalReason::connection_limit) fail("refusal not connection_limit");
      ++refusals_[static_cast<std::size_t>(RefusalReason::connection_limit)];
      return std::nullopt;
    }
    if (direction == Direction::inbound) {
      Admission a = manager_->admit_inbound(testing::endpoint(address.c_str()));
      if (cap_full(address)) {
        expect_eq(a.error, make_error_code(Errc::limit_exceeded), "admit_inbound over the cap");
        if (a.refusal.reason != RefusalReason::subnet_cap) fail("refusal not subnet_cap");
        ++refusals_[static_cast<std::size_t>(RefusalReason::subnet_cap)];
        return std::nullopt;
      }
      expect_eq(a.error, std::error_code{}, [&] { return "admit_inbound from " + address; });
      held.reservation = std::move(a.reservation);
      if (!loopback(address)) held.capped = address;
      return held;
    }
    Admission a = manager_->check_dial_addr(ids_[p], testing::endpoint(address.c_str()));
    if (denied(peers_[p])) {
      expect_eq(a.error, make_error_code(Errc::connection_denied),
                "check_dial_addr of a blocked peer");
      ++refusals_[static_cast<std::size_t>(RefusalReason::gater)];
      return std::nullopt;
    }
    expect_eq(a.error, std::error_code{}, "check_dial_addr");
    held.reservation = std::move(a.reservation);
    held.peer = p;
    return held;
  }

  // on_secured and add_connection with a reservation; the reservation is consumed. With
  // `claim`, a claim of that realm (and sometimes a second, a no-op) between the two: a
  // refused claim drops the admission, and nothing enters the pool; otherwise the add
  // binds the realm.
  void complete(MReservation held, std::size_t p, const std::string& address,
                std::optional<std::size_t> claim = std::nullopt) {
    const bool report_back = choices_.chance(2);
    std::error_code ec = manager_->on_secured(held.reservation, ids_[p]).error;
    if (denied(peers_[p])) {
      expect_eq(ec, make_error_code(Errc::peer_blocked), "on_secured of a blocked peer");
      ++refusals_[static_cast<std::size_t>(RefusalReason::gater)];
      return;  // `held` goes: the reservation releases its charges
    }
    expect_eq(ec, std::error_code{}, "on_secured");
    if (claim && !claim_realm(held.reservation, p, *claim)) return;
    auto handle = make_connection(p, held.direction, address, false, report_back);
    cap_before_ = peers_[p].conns.size() + 1;
    // Above the cap, the add makes room for a claimed realm below its reserve, or fails.
    const bool needs_room = held.over_cap && conns_.size() + pending_held() >= system_cap();
    bool room = false;
    if (needs_room) {
      room_victims_ = claim && bound_count(*claim) < realms_[*claim].config.min_reserved
                          ? room_candidates(p)
                          : std::set<std::size_t>{};
      room = !room_victims_.empty();
      detail_ += room ? " making room" : " with no room";
    }
    ec = manager_->add_admitted(handle, std::move(held.reservation)).error;
    if (needs_room && !room) {
      expect_eq(ec, make_error_code(Errc::limit_exceeded), "an add above the cap with no room");
      ++refusals_[static_cast<std::size_t>(RefusalReason::connection_limit)];
      if (claim) ++claims_no_room_;
      return;
    }
    if (room) ++rooms_made_;
    expected_room_closes_ = room ? 1 : 0;
    expect_eq(ec, std::error_code{}, "add_connection(reserved)");
    const std::uint64_t id =
        join(std::move(handle), p, held.direction, false, held.capped, report_back);
    cap_peer_ = p;
    if (claim) {
      conns_[id].realms.insert(*claim);
      time_->run_ready();  // reaching high water schedules the realm's trim
    }
  }

  void do_admitted(bool hold) {
    const std::size_t p = pick_peer();
    const Direction direction = choices_.chance(2) ? Direction::inbound : Direction::outbound;
    const std::string address = kAddresses[choices_.below(kAddresses.size())];
    detail_ = " " + peer_name(p) + " " + std::string(to_string(direction)) + " from " + address;
    auto held = first_stage(p, direction, address);
    if (!held || !failure_.empty()) return;
    if (hold) {
      addresses_.push_back(address);
      held_.push_back(std::move(*held));
      return;
    }
    complete(std::move(*held), p, address);
  }

  void do_complete_held() {
    std::vector<std::size_t> pending;
    for (std::size_t i = 0; i < held_.size(); ++i) {
      if (held_[i].pending) pending.push_back(i);
    }
    if (pending.empty()) return;
    const std::size_t i = pending[choices_.below(pending.size())];
    MReservation held = std::move(held_[i]);
    const std::string address = addresses_[i];
    held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(i));
    addresses_.erase(addresses_.begin() + static_cast<std::ptrdiff_t>(i));
    const std::size_t p = held.peer ? *held.peer : pick_peer();
    detail_ = " " + peer_name(p) + " from " + address;
    complete(std::move(held), p, address);
  }

  void do_drop_reservation() {
    if (held_.empty()) return;
    const auto i = static_cast<std::ptrdiff_t>(choices_.below(held_.size()));
    held_.erase(held_.begin() + i);
    addresses_.erase(addresses_.begin() + i);
  }

  void do_reserve_resources() {
    std::optional<NodeId> peer;
    if (choices_.chance(2)) peer = ids_[pick_peer()];
    MReservation held;
    held.pending = false;
    held.memory = choices_.below(1 << 20);
    held.fds = static_cast<std::size_t>(choices_.below(4));
    Admission a = manager_->reserve_resources(peer, held.memory, held.fds);
    expect_eq(a.error, std::error_code{}, "reserve_resources");
    held.reservation = std::move(a.reservation);
    held_.push_back(std::move(held));
    addresses_.emplace_back();
  }

  void do_add_duplicate() {
    auto id = pick_conn();
    if (!id) return;
    expect_eq(manager_->add_connection(conns_[*id].handle),
              make_error_code(Errc::duplicate_connection), "add_connection of a tracked handle");
    ++duplicate_reports_;
  }

  void do_host_disconnect() {
    auto id = pick_conn();
    if (!id) return;
    detail_ = " " + peer_name(conns_[*id].peer);
    expect_eq(manager_->remove_connection(*conns_[*id].handle, CloseReason::host),
              std::error_code{}, "remove_connection");
    leave(*id, CloseReason::host, /*by_manager=*/false);
  }

  void do_report_unknown() {
    testing::FakeConnection stranger(ids_[pick_peer()], Direction::inbound);
    expect_eq(manager_->remove_connection(stranger), make_error_code(Errc::unknown_connection),
              "remove_connection of a stranger");
    ++duplicate_reports_;
  }

  // The host reports, late, the closure of a connection the manager closed: expected, and
  // the handle is the host's again.
  void do_late_report() {
    if (late_.empty()) return;
    const auto i = static_cast<std::ptrdiff_t>(choices_.below(late_.size()));
    auto handle = late_[static_cast<std::size_t>(i)];
    late_.erase(late_.begin() + i);
    expect_eq(manager_->remove_connection(*handle), std::error_code{},
              "the late report of a closure the manager asked for");
    ++closure_reports_;
    released_.push_back(std::move(handle));
  }

  // Racing its own close, the host reports such a connection as connected again: a
  // duplicate until its closure is reported, never a new connection.
  void do_repeat_connected() {
    if (late_.empty()) return;
    auto& handle = late_[static_cast<std::size_t>(choices_.below(late_.size()))];
    expect_eq(manager_->add_connection(handle), make_error_code(Errc::duplicate_connection),
              "add_connection of a handle the manager closed, its closure not reported yet");
    ++duplicate_reports_;
  }

  void do_close_peer() {
    const std::size_t p = pick_peer();
    detail_ = " " + peer_name(p);
    close_target_ = p;
    expected_host_closes_ = peers_[p].conns.size();
    const std::error_code ec = manager_->close_peer(ids_[p]);
    if (peers_[p].conns.empty()) {
      expect_eq(ec, make_error_code(Errc::unknown_peer), "close_peer without connections");
    } else {
      expect_eq(ec, std::error_code{}, "close_peer");
    }
  }

  void do_stream(bool open) {
    auto id = pick_conn();
    if (!id) return;
    MConn& c = conns_[*id];
    const Direction direction = choices_.chance(2) ? Direction::inbound : Direction::outbound;
    std::uint32_t& count = direction == Direction::inbound ? c.streams_in : c.streams_out;
    if (open) {
      expect_eq(manager_->stream_opened(*c.handle, direction).error, std::error_code{},
                "stream_opened");
      ++count;
    } else if (count > 0) {
      expect_eq(manager_->stream_closed(*c.handle, direction), std::error_code{}, "stream_closed");
      --count;
    } else {
      expect_eq(manager_->stream_closed(*c.handle, direction),
                make_error_code(Errc::invalid_argument), "stream_closed without a stream");
    }
  }

  void do_activity() {
    auto id = pick_conn();
    if (!id) return;
    MConn& c = conns_[*id];
    expect_eq(manager_->record_activity(*c.handle, 100, 100), std::error_code{}, "record_activity");
    c.last_activity = now_;
  }

  void do_ping_dies() {
    auto id = pick_conn();
    if (!id) return;
    MConn& c = conns_[*id];
    if (c.ping != PingMode::answers) return;
    c.ping = choices_.chance(2) ? PingMode::silent : PingMode::fails;
    c.dead_since = now_;
    *ping_modes_[c.handle.get()] = c.ping;
    detail_ = " " + peer_name(c.peer) + (c.ping == PingMode::silent ? " silent" : " failing");
  }

  void do_tag() {
    const std::size_t p = pick_peer();
    const std::string name = kTagNames[choices_.below(kTagNames.size())];
    const int value = static_cast<int>(choices_.between(-5, 20));
    detail_ = " " + peer_name(p) + " " + name + "=" + std::to_string(value);
    const std::error_code ec = manager_->tag_peer(ids_[p], name, value);
    if (!entry_for_tagging(p)) {
      expect_eq(ec, make_error_code(Errc::temp_peer_limit), "tag_peer over max_temp_peers");
      return;
    }
    expect_eq(ec, std::error_code{}, "tag_peer");
    peers_[p].tags[name] = value;
  }

  void do_untag() {
    const std::size_t p = pick_peer();
    const std::string name = kTagNames[choices_.below(kTagNames.size())];
    detail_ = " " + peer_name(p) + " " + name;
    const std::error_code ec = manager_->untag_peer(ids_[p], name);
    MPeer& peer = peers_[p];
    if (!peer.exists) {
      expect_eq(ec, make_error_code(Errc::unknown_peer), "untag_peer of an unknown peer");
      return;
    }
    expect_eq(ec, std::error_code{}, "untag_peer");
    peer.tags.erase(name);
    if (peer.temporary && peer.tags.empty()) release_peer(peer);
  }

  void do_upsert() {
    const std::size_t p = pick_peer();
    const std::string name = kTagNames[choices_.below(kTagNames.size())];
    const int delta = static_cast<int>(choices_.between(-3, 7));
    detail_ = " " + peer_name(p) + " " + name + "+=" + std::to_string(delta);
    const std::error_code ec =
        manager_->upsert_tag(ids_[p], name, [delta](int old) { return old + delta; });
    const int old = peers_[p].exists && peers_[p].tags.count(name) ? peers_[p].tags[name] : 0;
    if (!entry_for_tagging(p)) {
      expect_eq(ec, make_error_code(Errc::temp_peer_limit), "upsert_tag over max_temp_peers");
      return;
    }
    expect_eq(ec, std::error_code{}, "upsert_tag");
    peers_[p].tags[name] = old + delta;
  }

  void do_protect(bool timed) {
    const std::size_t p = pick_peer();
    const std::string tag = kProtectTags[choices_.below(kProtectTags.size())];
    const auto duration = std::chrono::milliseconds(choices_.between(1, 30'000));
    detail_ = " " + peer_name(p) + " " + tag +
              (timed ? " for " + std::to_string(duration.count()) + "ms" : "");
    const std::error_code ec =
        timed ? manager_->protect_for(ids_[p], tag, duration) : manager_->protect(ids_[p], tag);
    MPeer& peer = peers_[p];
    const bool has = peer.protections.count(tag) != 0;
    if (!has && config_.max_peers_per_protection_tag != 0) {
      std::size_t holders = 0;
      for (const MPeer& other : peers_) holders += other.protections.count(tag);
      if (holders >= config_.max_peers_per_protection_tag) {
        expect_eq(ec, make_error_code(Errc::protection_limit), "protect over the cap");
        return;
      }
    }
    expect_eq(ec, std::error_code{}, "protect");
    TimePoint& until = peer.protections[tag];
    if (!timed) {
      until = kForever;
    } else if (!has || until < now_ + duration) {
      until = now_ + duration;
    }
  }

  void do_unprotect() {
    const std::size_t p = pick_peer();
    const std::string tag = kProtectTags[choices_.below(kProtectTags.size())];
    detail_ = " " + peer_name(p) + " " + tag;
    const bool still = manager_->unprotect(ids_[p], tag);
    MPeer& peer = peers_[p];
    const bool was = !peer.protections.empty();
    peer.protections.erase(tag);
    expect_eq(still, live_protection(peer), "unprotect's answer");
    if (was && peer.protections.empty()) protection_ended(peer, now_);
  }

  void do_check_dial() {
    const std::size_t p = pick_peer();
    detail_ = " " + peer_name(p);
    Admission check = manager_->check_dial(ids_[p]);
    const MPeer& peer = peers_[p];
    if (!peer.conns.empty()) {
      // An open connection is offered for reuse before the gater is asked.
      expect_eq(check.error, std::error_code{}, "check_dial with a connection open");
      if (!check.existing || by_handle_.count(check.existing.get()) == 0 ||
          conns_[by_handle_[check.existing.get()]].peer != p) {
        fail("check_dial did not offer one of the peer's open connections");
      }
      return;
    }
    if (check.error == make_error_code(Errc::dial_backoff)) {
      auto possible = backoff_possible_.find(p);
      if (possible == backoff_possible_.end() || now_ >= possible->second)
        fail("check_dial: backoff for a peer that cannot be in one");
      if (!check.retry_at || *check.retry_at <= now_) fail("check_dial: a backoff already over");
      ++refusals_[static_cast<std::size_t>(RefusalReason::backoff)];
      return;
    }
    if (auto flight = dial_until_.find(p); flight != dial_until_.end() && flight->second > now_) {
      expect_eq(check.error, make_error_code(Errc::dial_pending),
                "check_dial with a dial in flight");
      if (check.retry_at != flight->second) fail("check_dial: a dial in flight lapses elsewhen");
      ++refusals_[static_cast<std::size_t>(RefusalReason::dial_pending)];
      return;
    }
    if (denied(peer)) {
      expect_eq(check.error, make_error_code(Errc::peer_blocked), "check_dial of a blocked peer");
      ++refusals_[static_cast<std::size_t>(RefusalReason::gater)];
      return;
    }
    expect_eq(check.error, std::error_code{}, "check_dial");
    if (check.existing) fail("check_dial offered a connection to a peer without one");
    dial_until_[p] = now_ + config_.dial.dial_timeout;  // in flight: no outcome is reported
  }

  void do_block(bool ban) {
    const std::size_t p = pick_peer();
    MPeer& peer = peers_[p];
    // Re-blocking a blocked peer tightens nothing, so it closes nothing: connections added
    // meanwhile through the plain add_connection (which asks no gater) stay.
    newly_denied_ = !denied(peer);
    if (ban) {
      const auto duration = std::chrono::milliseconds(choices_.between(1, 60'000));
      detail_ = " " + peer_name(p) + " for " + std::to_string(duration.count()) + "ms";
      gater_->ban_peer(ids_[p], duration);
      if (!peer.ban_until || *peer.ban_until < now_ + duration) peer.ban_until = now_ + duration;
    } else {
      detail_ = " " + peer_name(p);
      gater_->block_peer(ids_[p]);
      peer.blocked = true;
    }
    gated_peer_ = p;
    time_->run_ready();  // the manager re-checks its connections on its strand
  }

  void do_unblock() {
    const std::size_t p = pick_peer();
    detail_ = " " + peer_name(p);
    gater_->unblock_peer(ids_[p]);
    peers_[p].blocked = false;
    peers_[p].ban_until.reset();
  }

  void do_advance(bool large) {
    using std::chrono::milliseconds;
    const milliseconds by = large ? milliseconds(choices_.between(1'000, 40'000))
                                  : milliseconds(choices_.between(0, 999));
    detail_ = " " + std::to_string(by.count()) + "ms";
    time_->advance(by);
    now_ += by;
    if (time_->now() != now_) fail("the virtual clock and the model disagree");
  }

  // The trim's view of the pool before it runs.
  struct TrimPlan {
    std::size_t count = 0;
    std::size_t candidate_connections = 0;  // unprotected, out of grace
    std::size_t unprotected_connections = 0;
    std::size_t max_peer_connections = 0;
  };
  TrimPlan plan_trim() const {
    TrimPlan plan;
    plan.count = conns_.size();
    for (const MPeer& peer : peers_) {
      if (!peer.exists || peer.temporary) continue;
      const bool prot = live_protection(peer);
      if (!prot) plan.unprotected_connections += peer.conns.size();
      if (!prot && out_of_grace(peer)) plan.candidate_connections += peer.conns.size();
      plan.max_peer_connections = std::max(plan.max_peer_connections, peer.conns.size());
    }
    return plan;
  }

  void do_trim() {
    trim_plan_ = plan_trim();
    bound_before_ = bound_counts();
    realm_rules_ = any_bound();
    trim_ran_ = watermarks_on() && trim_plan_.count > low_;
    trim_result_ = manager_->trim();
    if (trim_ran_) prune_expired_temporaries();
  }

  void do_force_trim() {
    trim_plan_ = plan_trim();
    realm_rules_ = any_bound();
    force_keys_.assign(peers_.size(), std::nullopt);
    force_conns_.assign(peers_.size(), 0);
    force_protected_.assign(peers_.size(), false);
    for (std::size_t p = 0; p < peers_.size(); ++p) {
      const MPeer& peer = peers_[p];
      if (!peer.exists || peer.temporary || peer.conns.empty()) continue;
      force_keys_[p] = emergency_key(p);
      force_conns_[p] = peer.conns.size();
      force_protected_[p] = live_protection(peer);
    }
    trim_ran_ = watermarks_on() && trim_plan_.count > low_;
    trim_result_ = manager_->force_trim();
    if (trim_ran_) prune_expired_temporaries();
  }

  // The emergency order's key without the final tie-break (the pool's slot order, which
  // the model does not know): lower value; no streams before streams; a peer with an
  // inbound connection first; more streams first; later first_seen first.
  using EmergencyKey = std::tuple<std::int64_t, bool, bool, std::int64_t, std::int64_t>;
  EmergencyKey emergency_key(std::size_t p) const {
    const MPeer& peer = peers_[p];
    std::int64_t streams = 0;
    bool inbound = false;
    for (std::uint64_t id : peer.conns) {
      const MConn& c = conns_.at(id);
      streams += c.streams_in + c.streams_out;
      inbound = inbound || c.direction == Direction::inbound;
    }
    return {value_of(peer), streams > 0, !inbound, -streams,
            -peer.first_seen.time_since_epoch().count()};
  }

  void do_trim_connections() {
    trim_plan_ = plan_trim();
    exact_count_ = static_cast<std::size_t>(choices_.below(6));
    bound_before_ = bound_counts();
    realm_rules_ = any_bound();
    detail_ = " " + std::to_string(exact_count_);
    trim_result_ = manager_->trim_connections(exact_count_);
  }

  void do_set_limits() {
    std::size_t low = static_cast<std::size_t>(choices_.below(10));
    std::size_t high = low + static_cast<std::size_t>(choices_.below(12));
    if (choices_.chance(8)) std::swap(low, high);  // sometimes invalid
    detail_ = " " + std::to_string(low) + "/" + std::to_string(high);
    const std::error_code ec =
        node_ ? node_->set_limits(low, high) : manager_->set_limits(low, high);
    std::size_t reserved = 0;
    for (const MRealm& r : realms_) reserved += r.config.min_reserved;
    const bool valid = (low == 0 || high == 0 || (low <= high && reserved <= low)) &&
                       (high == 0 || system_cap() == kUnlimited || high <= system_cap());
    if (!valid) {
      expect_eq(ec, make_error_code(Errc::invalid_argument), "set_limits low > high");
      return;
    }
    expect_eq(ec, std::error_code{}, "set_limits");
    low_ = low;
    high_ = high;
    trim_plan_ = plan_trim();
    bound_before_ = bound_counts();
    realm_rules_ = any_bound();
    trim_ran_ = watermarks_on() && trim_plan_.count >= high_;
    time_->run_ready();  // the trim it schedules runs on the manager's strand
    if (trim_ran_) prune_expired_temporaries();
  }

  // --- Realms ---------------------------------------------------------------------

  std::size_t bound_count(std::size_t r) const {
    std::size_t n = 0;
    for (const auto& [id, c] : conns_) n += c.realms.count(r);
    return n;
  }
  std::set<std::size_t> realm_members(std::size_t r) const {
    std::set<std::size_t> members;
    for (const auto& [id, c] : conns_) {
      if (c.realms.count(r) != 0) members.insert(c.peer);
    }
    return members;
  }

  void do_bind() {
    auto id = pick_conn();
    if (!id) return;
    const std::size_t r = static_cast<std::size_t>(choices_.below(realms_.size()));
    MConn& c = conns_[*id];
    const RealmConfig& rc = realms_[r].config;
    detail_ = " " + peer_name(c.peer) + " to " + realms_[r].name;
    realm_target_ = r;
    bound_before_ = bound_counts();
    const std::error_code ec = node_->bind(*c.handle, realms_[r].name).error;
    if (c.realms.count(r) != 0) {
      expect_eq(ec, std::error_code{}, "bind twice");
      return;
    }
    const bool full = (rc.hard_max > 0 && bound_count(r) >= rc.hard_max) ||
                      (rc.max_members > 0 && realm_members(r).count(c.peer) == 0 &&
                       realm_members(r).size() >= rc.max_members);
    if (full) {
      expect_eq(ec, make_error_code(Errc::realm_full), "bind to a full realm");
      return;
    }
    expect_eq(ec, std::error_code{}, "bind");
    c.realms.insert(r);
    time_->run_ready();  // reaching high water schedules the realm's trim
  }

  // Claims realm r for peer p's admission; true when accepted (checked against the
  // realm's limits as a bind would be: no other claim is outstanding between steps).
  bool claim_realm(const Reservation& reservation, std::size_t p, std::size_t r) {
    const RealmConfig& rc = realms_[r].config;
    detail_ += " claims " + realms_[r].name;
    const std::error_code ec = node_->claim(reservation, realms_[r].name).error;
    const bool full = (rc.hard_max > 0 && bound_count(r) >= rc.hard_max) ||
                      (rc.max_members > 0 && realm_members(r).count(p) == 0 &&
                       realm_members(r).size() >= rc.max_members);
    if (full) {
      expect_eq(ec, make_error_code(Errc::realm_full), "claim of a full realm");
      ++claims_refused_;
      return false;
    }
    expect_eq(ec, std::error_code{}, "claim");
    ++claims_accepted_;
    if (choices_.chance(4)) {
      expect_eq(node_->claim(reservation, realms_[r].name).error, std::error_code{}, "claim twice");
    }
    return true;
  }

  void do_claim_connect() {
    const std::size_t p = pick_peer();
    const Direction direction = choices_.chance(2) ? Direction::inbound : Direction::outbound;
    const std::string address = kAddresses[choices_.below(kAddresses.size())];
    const std::size_t r = static_cast<std::size_t>(choices_.below(realms_.size()));
    detail_ = " " + peer_name(p) + " " + std::string(to_string(direction)) + " from " + address;
    realm_target_ = r;
    auto held = first_stage(p, direction, address);
    if (!held || !failure_.empty()) return;
    complete(std::move(*held), p, address, r);
  }

  // --- The system cap and reserves that admit ---------------------------------------

  std::size_t system_cap() const { return config_.limits.system.connections_total; }
  std::size_t pending_held() const {
    std::size_t n = 0;
    for (const MReservation& r : held_) n += r.pending ? 1 : 0;
    return n;
  }
  std::size_t over_cap_held() const {
    std::size_t n = 0;
    for (const MReservation& r : held_) n += r.over_cap ? 1 : 0;
    return n;
  }
  // Open and pending connections fill the cap (the host's own adds may go past it).
  bool system_cap_full() const {
    return system_cap() != kUnlimited && conns_.size() + pending_held() >= system_cap();
  }
  // What the realms are short of their reserves (no claim is outstanding between steps).
  std::size_t reserve_shortfall() const {
    std::size_t n = 0;
    for (std::size_t r = 0; r < realms_.size(); ++r) {
      const std::size_t bound = bound_count(r);
      const std::size_t reserve = realms_[r].config.min_reserved;
      if (reserve > bound) n += reserve - bound;
    }
    return n;
  }
  // The peers allowed to make room for claimant p's connection: candidates (connected, not
  // protected, out of grace, not p); those with no bound connection if any, and of them the
  // least valuable; else those whose loss keeps every realm of theirs at its reserve.
  std::set<std::size_t> room_candidates(std::size_t claimant) const {
    std::set<std::size_t> unbound;
    std::set<std::size_t> fitting;
    std::int64_t lowest = std::numeric_limits<std::int64_t>::max();
    for (std::size_t q = 0; q < peers_.size(); ++q) {
      const MPeer& peer = peers_[q];
      if (q == claimant || !peer.exists || peer.temporary || peer.conns.empty() ||
          live_protection(peer) || !out_of_grace(peer)) {
        continue;
      }
      std::map<std::size_t, std::size_t> stake;  // realm -> the peer's bound connections
      for (std::uint64_t id : peer.conns) {
        for (std::size_t r : conns_.at(id).realms) ++stake[r];
      }
      if (stake.empty()) {
        if (value_of(peer) < lowest) {
          lowest = value_of(peer);
          unbound.clear();
        }
        if (value_of(peer) == lowest) unbound.insert(q);
        continue;
      }
      bool fits = true;
      for (const auto& [r, n] : stake) {
        fits = fits && bound_count(r) >= realms_[r].config.min_reserved + n;
      }
      if (fits) fitting.insert(q);
    }
    return unbound.empty() ? fitting : unbound;
  }

  // The op adds a connection of peer cap_peer_ (which may close another by the per-peer cap).
  bool adds_connection() const {
    return op_ == Op::connect || op_ == Op::connect_admitted || op_ == Op::complete_held ||
           op_ == Op::claim_connect;
  }

  // The op binds a realm (and may start its trim) or trims one: realm_target_ names it.
  bool binds_or_trims_realm() const {
    return op_ == Op::bind || op_ == Op::trim_realm || op_ == Op::claim_connect;
  }

  void do_unbind() {
    auto id = pick_conn();
    if (!id) return;
    const std::size_t r = static_cast<std::size_t>(choices_.below(realms_.size()));
    MConn& c = conns_[*id];
    detail_ = " " + peer_name(c.peer) + " from " + realms_[r].name;
    const std::error_code ec = node_->unbind(*c.handle, realms_[r].name);
    if (c.realms.erase(r) != 0) {
      expect_eq(ec, std::error_code{}, "unbind");
    } else {
      expect_eq(ec, make_error_code(Errc::unknown_connection), "unbind of an unbound connection");
    }
  }

  void do_trim_realm() {
    const std::size_t r = static_cast<std::size_t>(choices_.below(realms_.size()));
    detail_ = " " + realms_[r].name;
    realm_target_ = r;
    bound_before_ = bound_counts();
    trim_result_ = node_->trim_realm(realms_[r].name);
  }

  std::vector<std::size_t> bound_counts() const {
    std::vector<std::size_t> counts;
    for (std::size_t r = 0; r < realms_.size(); ++r) counts.push_back(bound_count(r));
    return counts;
  }
  bool any_bound() const {
    for (const auto& [id, c] : conns_) {
      if (!c.realms.empty()) return true;
    }
    return false;
  }

  // What a trim prunes: temporary entries past their end, unless protected.
  void prune_expired_temporaries() {
    for (MPeer& peer : peers_) {
      if (peer.exists && peer.temporary && !live_protection(peer) && peer.expires_at <= now_) {
        release_peer(peer);
      }
    }
  }

  // --- Closes the manager made ----------------------------------------------------

  // Checks each close() the manager called against the rules of its reason, then applies
  // it to the model.
  void process_closes() {
    std::size_t trimmed = 0;
    std::size_t forced = 0;
    std::size_t host = 0;
    std::size_t protected_forced = 0;
    std::size_t made_room = 0;
    std::map<std::size_t, std::size_t> trimmed_peers;  // peer -> connections closed
    std::map<std::size_t, bool> forced_peers;          // peer -> protected
    std::int64_t max_victim_value = std::numeric_limits<std::int64_t>::min();
    const bool time_moved = op_ == Op::advance_small || op_ == Op::advance_large;
    if (time_moved) expire_at_now();
    const std::vector<Closed> log = *close_log_;
    for (const Closed& closed : log) {
      auto found = by_handle_.find(closed.handle);
      if (found == by_handle_.end()) {
        fail("close() called on a connection the model does not hold open (closed twice?)");
        return;
      }
      const std::uint64_t id = found->second;
      MConn& c = conns_[id];
      const MPeer& peer = peers_[c.peer];
      // The close, named in a failure message (built only on failure).
      const auto who = [&] {
        return peer_name(c.peer) + " closed with " + std::string(to_string(closed.reason));
      };
      if (c.handle->close_count() != 1)
        fail(who() + ": close() called " + std::to_string(c.handle->close_count()) + " times");
      if (closed.reported) {
        expect_eq(closed.report, std::error_code{}, "a closure reported back from close()");
        ++closure_reports_;
      }
      const bool prot = live_protection(peer);
      switch (closed.reason) {
        case CloseReason::trimmed:
          if (binds_or_trims_realm()) {
            if (c.realms.count(realm_target_) == 0)
              fail(who() + ": a realm trim took a connection not bound to it");
          } else if (!(op_ == Op::trim || op_ == Op::set_limits || time_moved)) {
            fail(who() + " outside a trim");
          }
          if (prot) fail(who() + ": a protected peer closed by a normal trim");
          if (!out_of_grace(peer)) fail(who() + ": a peer in grace closed by a normal trim");
          ++trimmed;
          if (!binds_or_trims_realm()) ++trimmed_peers[c.peer];
          max_victim_value = std::max(max_victim_value, value_of(peer));
          break;
        case CloseReason::forced_trim:
          if (op_ == Op::trim_connections) {
            if (prot || !out_of_grace(peer))
              fail(who() + ": trim_connections took an ineligible peer");
          } else if (op_ != Op::force_trim) {
            fail(who() + " outside force_trim / trim_connections");
          }
          if (prot) ++protected_forced;
          ++forced;
          forced_peers[c.peer] = prot;
          break;
        case CloseReason::keepalive_timeout:
          if (!time_moved || c.ping == PingMode::answers) fail(who() + ": its pings were answered");
          break;
        case CloseReason::idle_timeout:
          if (!time_moved || config_.idle_timeout.count() == 0) fail(who() + " unexpectedly");
          if (c.streams_in + c.streams_out != 0) fail(who() + " while it had streams");
          if (prot) fail(who() + " while its peer is protected");
          if (now_ - c.last_activity < config_.idle_timeout)
            fail(who() + " before its idle timeout");
          break;
        case CloseReason::gated:
          if (!denied(peer)) fail(who() + " but the gater allows the peer");
          break;
        case CloseReason::redundant_path: {
          const bool over_cap = adds_connection() && cap_peer_ == c.peer &&
                                config_.max_connections_per_peer != 0 &&
                                cap_before_ > config_.max_connections_per_peer;
          if (!over_cap && !(c.relay && time_moved)) fail(who() + " but no path made it redundant");
          break;
        }
        case CloseReason::host:
          if (op_ != Op::close_peer || c.peer != close_target_) fail(who() + " by no close_peer");
          ++host;
          break;
        case CloseReason::made_room:
          if (!adds_connection() || room_victims_.count(c.peer) == 0) {
            fail(who() + ": not a peer the rules let make room");
          }
          ++made_room;
          break;
        default: fail(who() + ": a reason the model never causes");
      }
      if (!failure_.empty()) return;
      leave(id, closed.reason, /*by_manager=*/true);
    }

    expect_eq(made_room, expected_room_closes_, "connections closed to make room");
    expected_room_closes_ = 0;
    room_victims_.clear();
    // Counts and order of the trims.
    if (op_ == Op::trim || op_ == Op::set_limits)
      check_trim(trimmed, trimmed_peers, max_victim_value);
    if (op_ == Op::trim_realm) expect_eq(trim_result_, trimmed, "trim_realm()'s result");
    if (binds_or_trims_realm()) {
      const RealmConfig& rc = realms_[realm_target_].config;
      if (rc.low_water != 0 && rc.high_water != 0 && trimmed > 0 &&
          bound_count(realm_target_) < rc.low_water) {
        fail("a realm trim took " + realms_[realm_target_].name + " below its low water");
      }
    }
    if (op_ == Op::force_trim) check_force_trim(forced, protected_forced, forced_peers);
    if (op_ == Op::trim_connections) {
      const std::size_t expected = std::min(exact_count_, trim_plan_.candidate_connections);
      expect_eq(trim_result_, forced, "trim_connections' result");
      if (realm_rules_) {
        // The realm rules keep the reserves (and may rank fewer victims than asked).
        if (forced > expected) fail("trim_connections closed more than asked");
        check_reserves("trim_connections");
      } else {
        expect_eq(forced, expected, "connections closed by trim_connections");
      }
    }
    if (op_ == Op::close_peer)
      expect_eq(host, expected_host_closes_, "connections closed by close_peer");
    if (op_ == Op::block_peer || op_ == Op::ban_peer) {
      if (newly_denied_ && denied(peers_[gated_peer_]) && !peers_[gated_peer_].conns.empty()) {
        fail(peer_name(gated_peer_) + " is blocked but its connections stay open");
      }
    }
    if (adds_connection() && config_.max_connections_per_peer != 0 &&
        peers_[cap_peer_].conns.size() > config_.max_connections_per_peer) {
      fail(peer_name(cap_peer_) + " holds more connections than max_connections_per_peer");
    }
    // Whole peers: a normal trim never leaves part of a peer behind.
    for (const auto& [p, n] : trimmed_peers) {
      if (!peers_[p].conns.empty()) fail(peer_name(p) + " only partly trimmed");
    }
  }

  std::int64_t value_of(const MPeer& peer) const {
    std::int64_t sum = 0;
    for (const auto& [name, v] : peer.tags) sum += v;
    return sum;
  }

  void check_trim(std::size_t closed, const std::map<std::size_t, std::size_t>& victims,
                  std::int64_t max_victim_value) {
    if (op_ == Op::trim) expect_eq(trim_result_, closed, "trim()'s result");
    if (!trim_ran_) {
      expect_eq(closed, std::size_t{0}, "connections closed by a trim that had no reason to run");
      return;
    }
    const std::size_t cc = trim_plan_.candidate_connections;
    const std::size_t target = cc >= low_ ? cc - low_ : 0;
    check_reserves("a node trim");
    // With bound connections the realm rules rank and may keep more (shares, reserves):
    // the ScoreTrimmer checks below do not apply.
    if (realm_rules_) {
      std::size_t largest = 0;
      for (const auto& [p, n] : victims) largest = std::max(largest, n);
      if (closed > 0 && closed - largest >= target)
        fail("a realm-aware trim closed more than its target needs");
      return;
    }
    if (closed < target) {
      fail("trim closed " + std::to_string(closed) + " connections, target " +
           std::to_string(target));
    }
    std::size_t largest = 0;
    for (const auto& [p, n] : victims) largest = std::max(largest, n);
    if (closed > 0 && closed - largest >= target) {
      fail("trim closed " + std::to_string(closed) +
           " connections, more whole peers than the target " + std::to_string(target) + " needs");
    }
    // The default trimmer evicts lower values first: no surviving candidate is worth less
    // than a victim.
    if (!victims.empty()) {
      for (std::size_t p = 0; p < peers_.size(); ++p) {
        const MPeer& peer = peers_[p];
        if (!peer.exists || peer.temporary || peer.conns.empty() || live_protection(peer) ||
            !out_of_grace(peer)) {
          continue;
        }
        if (value_of(peer) < max_victim_value) {
          fail(peer_name(p) + " (value " + std::to_string(value_of(peer)) +
               ") kept while a peer of value " + std::to_string(max_victim_value) + " was trimmed");
        }
      }
    }
    // After a trim: at most low water + protected + in grace.
    std::size_t kept_anyway = 0;
    for (const MPeer& peer : peers_) {
      if (peer.exists && !peer.temporary && (live_protection(peer) || !out_of_grace(peer))) {
        kept_anyway += peer.conns.size();
      }
    }
    if (conns_.size() > low_ + kept_anyway) {
      fail("after a trim " + std::to_string(conns_.size()) + " connections > low water " +
           std::to_string(low_) + " + protected/in grace " + std::to_string(kept_anyway));
    }
  }

  // No realm below its reserve after a node trim (only force_trim may go below).
  void check_reserves(const std::string& what) {
    for (std::size_t r = 0; r < realms_.size(); ++r) {
      const std::size_t floor = std::min(realms_[r].config.min_reserved, bound_before_[r]);
      if (bound_count(r) < floor) {
        fail(what + " took realm " + realms_[r].name + " below its min_reserved");
      }
    }
  }

  void check_force_trim(std::size_t closed, std::size_t protected_closed,
                        const std::map<std::size_t, bool>& victims) {
    expect_eq(trim_result_, closed, "force_trim()'s result");
    if (!trim_ran_) {
      expect_eq(closed, std::size_t{0}, "connections closed by a force_trim with no reason to run");
      return;
    }
    const std::size_t target = trim_plan_.count - low_;
    if (closed < target) {
      fail("force_trim closed " + std::to_string(closed) + ", target " + std::to_string(target));
    }
    if (conns_.size() > low_) fail("force_trim left more than low water");
    if (protected_closed > 0 && trim_plan_.unprotected_connections >= target) {
      fail("force_trim closed a protected peer although unprotected ones covered the target");
    }
    for (const auto& [p, prot] : victims) {
      if (!peers_[p].conns.empty()) fail(peer_name(p) + " only partly closed by force_trim");
    }
    // With bound connections the realm rules choose (reserves, shares); otherwise each
    // phase takes whole peers in the emergency order, and no more than its target needs.
    if (realm_rules_ || !failure_.empty()) return;
    const std::size_t shortfall = target > trim_plan_.unprotected_connections
                                      ? target - trim_plan_.unprotected_connections
                                      : 0;
    check_emergency_phase(victims, false, target, "unprotected");
    check_emergency_phase(victims, true, shortfall, "protected");
  }

  // One phase of force_trim: its victims (`prot` says which phase) come first in the
  // emergency order among that phase's peers (ties aside), and the last of them was needed.
  void check_emergency_phase(const std::map<std::size_t, bool>& victims, bool prot,
                             std::size_t target, const std::string& phase) {
    std::optional<EmergencyKey> worst_victim;
    std::size_t covered = 0;
    for (const auto& [p, was_protected] : victims) {
      if (was_protected != prot || !force_keys_[p]) continue;
      if (!worst_victim || *worst_victim < *force_keys_[p]) worst_victim = force_keys_[p];
      covered += force_conns_[p];
    }
    if (!worst_victim) return;
    std::size_t last = 0;  // the most connections a peer ranked last among the victims held
    for (const auto& [p, was_protected] : victims) {
      if (was_protected == prot && force_keys_[p] == worst_victim) {
        last = std::max(last, force_conns_[p]);
      }
    }
    if (covered - last >= target) {
      fail("force_trim's " + phase + " phase closed more whole peers than its target " +
           std::to_string(target) + " needs");
    }
    for (std::size_t p = 0; p < peers_.size(); ++p) {
      if (!force_keys_[p] || victims.count(p) != 0 || force_protected_[p] != prot) continue;
      if (*force_keys_[p] < *worst_victim) {
        fail("force_trim's " + phase + " phase kept " + peer_name(p) +
             ", which comes before a victim in the emergency order");
      }
    }
  }

  // --- Comparing ------------------------------------------------------------------

  void check_all() {
    std::size_t inbound = 0;
    std::size_t streams = 0;
    for (const auto& [id, c] : conns_) {
      if (c.direction == Direction::inbound) ++inbound;
      streams += c.streams_in + c.streams_out;
      if (c.handle->closed()) fail(peer_name(c.peer) + ": an open connection was closed");
      if (manager_->state(*c.handle) != ConnectionState::established) {
        fail(peer_name(c.peer) + ": an open connection is not established");
      }
      // Keepalive finds a dead connection within max_missed * interval + timeout; the
      // bound here leaves room for the timer grid.
      if (c.ping != PingMode::answers && config_.keepalive_interval.count() != 0 &&
          now_ - c.dead_since > 4 * config_.keepalive_interval + config_.keepalive_timeout) {
        fail(peer_name(c.peer) + ": a connection whose pings go unanswered is still open");
      }
    }
    const std::size_t count = conns_.size();
    expect_eq(manager_->connection_count(), count, "connection_count()");
    expect_eq(manager_->connection_count(Direction::inbound), inbound, "inbound count");
    expect_eq(manager_->connection_count(Direction::outbound), count - inbound, "outbound count");

    std::size_t peers = 0;
    std::size_t temps = 0;
    std::size_t protected_peers = 0;
    for (std::size_t p = 0; p < peers_.size() && failure_.empty(); ++p) {
      const MPeer& peer = peers_[p];
      if (peer.exists) (peer.temporary ? temps : peers) += 1;
      if (!peer.protections.empty()) ++protected_peers;
      const NodeId& id = ids_[p];
      expect_eq(manager_->is_protected(id), live_protection(peer), PeerCheck{p, "is_protected"});
      expect_eq(gater_->is_peer_blocked(id), denied(peer), PeerCheck{p, "blocked in the gater"});
      const std::optional<TagInfo> info = manager_->tag_info(id);
      expect_eq(info.has_value(), peer.exists, PeerCheck{p, "has an entry"});
      if (info && peer.exists) {
        expect_eq(info->temporary, peer.temporary, PeerCheck{p, "temporary"});
        expect_eq(info->connections, peer.conns.size(), PeerCheck{p, "connections"});
        expect_eq(info->value, value_of(peer), PeerCheck{p, "value"});
        expect_eq(info->tags.size(), peer.tags.size(), PeerCheck{p, "tag count"});
        for (const auto& [name, v] : info->tags) {
          auto it = peer.tags.find(name);
          if (it == peer.tags.end() || it->second != v) fail(peer_name(p) + " tag " + name);
        }
        if (info->first_seen != peer.first_seen) fail(peer_name(p) + " first_seen");
      }
      const auto open = manager_->connections(id);
      expect_eq(open.size(), peer.conns.size(), PeerCheck{p, "connections()"});
      for (const auto& handle : open) {
        auto it = by_handle_.find(handle.get());
        if (it == by_handle_.end() || conns_[it->second].peer != p) {
          fail(peer_name(p) + ": connections() lists a handle the model does not hold");
        }
      }
    }
    expect_eq(manager_->peer_count(), peers, "peer_count()");

    const Stats s = manager_->stats();
    expect_eq(s.connections, count, "stats.connections");
    expect_eq(s.inbound, inbound, "stats.inbound");
    expect_eq(s.outbound, count - inbound, "stats.outbound");
    expect_eq(s.peers, peers, "stats.peers");
    expect_eq(s.temporary_peers, temps, "stats.temporary_peers");
    expect_eq(s.protected_peers, protected_peers, "stats.protected_peers");
    expect_eq(s.streams, streams, "stats.streams");
    expect_eq(s.connections_added, added_, "stats.connections_added");
    expect_eq(s.connections_removed, removed_, "stats.connections_removed");
    expect_eq(s.connections_added - s.connections_removed, std::uint64_t{count},
              "added - removed = open");
    expect_eq(s.duplicate_reports, duplicate_reports_, "stats.duplicate_reports");
    expect_eq(s.closure_reports, closure_reports_, "stats.closure_reports");
    for (std::size_t r = 0; r < kCloseReasonCount; ++r) {
      expect_eq(s.closes_by_reason[r], closes_[r], [r] {
        return "stats.closes_by_reason[" + std::string(to_string(static_cast<CloseReason>(r))) +
               "]";
      });
    }
    expect_eq(s.refusals(RefusalReason::subnet_cap),
              refusals_[static_cast<std::size_t>(RefusalReason::subnet_cap)],
              "refusals subnet_cap");
    expect_eq(s.refusals(RefusalReason::gater),
              refusals_[static_cast<std::size_t>(RefusalReason::gater)], "refusals gater");
    expect_eq(s.refusals(RefusalReason::connection_limit),
              refusals_[static_cast<std::size_t>(RefusalReason::connection_limit)],
              "refusals connection_limit");
    expect_eq(s.refusals(RefusalReason::backoff),
              refusals_[static_cast<std::size_t>(RefusalReason::backoff)], "refusals backoff");
    expect_eq(s.refusals(RefusalReason::dial_pending),
              refusals_[static_cast<std::size_t>(RefusalReason::dial_pending)],
              "refusals dial_pending");
    std::size_t pending_in = 0;
    std::size_t pending_out = 0;
    std::uint64_t memory = 0;
    std::size_t fds = 0;
    for (const MReservation& r : held_) {
      if (r.pending) (r.direction == Direction::inbound ? pending_in : pending_out) += 1;
      memory += r.memory;
      fds += r.fds;
    }
    expect_eq(s.reservations, held_.size(), "stats.reservations");
    expect_eq(s.pending_inbound, pending_in, "stats.pending_inbound");
    expect_eq(s.pending_outbound, pending_out, "stats.pending_outbound");
    expect_eq(s.memory_reserved, memory, "stats.memory_reserved");
    expect_eq(s.fds_reserved, fds, "stats.fds_reserved");

    for (std::size_t r = 0; r < realms_.size(); ++r) {
      const std::string& name = realms_[r].name;
      const std::size_t bound = bound_count(r);
      expect_eq(node_->realm_connection_count(name), bound,
                [&] { return "realm_connection_count(" + name + ")"; });
      for (const auto& handle : node_->realm_connections(name)) {
        auto it = by_handle_.find(handle.get());
        if (it == by_handle_.end() || conns_.at(it->second).realms.count(r) == 0)
          fail("realm_connections(" + name + ") lists a connection not bound to it");
      }
      expect_eq(node_->realm_connections(name).size(), bound,
                [&] { return "realm_connections(" + name + ")"; });
      expect_eq(node_->members(name).size(), realm_members(r).size(),
                [&] { return "members(" + name + ")"; });
      expect_eq(node_->realm_stats(name)->pending, std::size_t{0},
                [&] { return "claims pending in " + name; });
      const RealmConfig& rc = realms_[r].config;
      if (rc.hard_max != 0 && bound > rc.hard_max) fail(name + " holds more than hard_max");
      if (rc.max_members != 0 && realm_members(r).size() > rc.max_members)
        fail(name + " has more than max_members");
    }

    // Events: exactly one per change, delivered by now.
    expect_eq(connected_events_, added_, "ConnectedEvents delivered");
    expect_eq(disconnected_events_, removed_, "DisconnectedEvents delivered");

    // The manager let go of every handle that left the pool.
    for (auto& handle : released_) {
      std::weak_ptr<testing::FakeConnection> weak = handle;
      handle.reset();
      if (!weak.expired()) fail("the manager still holds a closed connection's handle");
    }
    released_.clear();
    for (const auto& handle : late_) {
      if (handle.use_count() != 1) fail("the manager still holds a closed connection's handle");
    }
  }

  Choices& choices_;
  Config config_;
  std::size_t low_ = 0;
  std::size_t high_ = 0;
  std::vector<NodeId> ids_;

  // The model.
  TimePoint now_{};
  std::vector<MPeer> peers_;
  std::map<std::uint64_t, MConn> conns_;
  std::unordered_map<const Connection*, std::uint64_t> by_handle_;
  std::unordered_map<const Connection*, std::shared_ptr<PingMode>> ping_modes_;
  std::vector<MReservation> held_;
  std::vector<std::string> addresses_;  // parallel to held_: the address a handshake uses
  std::uint64_t next_conn_ = 0;
  std::uint64_t added_ = 0;
  std::uint64_t removed_ = 0;
  std::uint64_t duplicate_reports_ = 0;
  std::uint64_t closure_reports_ = 0;
  std::array<std::uint64_t, kCloseReasonCount> closes_{};
  std::array<std::uint64_t, kRefusalReasonCount> refusals_{};
  // Dialing, by peer index: when a dial check_dial allowed lapses (none is reported), and
  // until when the peer may be in backoff (missed keepalives closed a connection of it).
  std::map<std::size_t, TimePoint> dial_until_;
  std::map<std::size_t, TimePoint> backoff_possible_;
  std::vector<std::shared_ptr<testing::FakeConnection>> released_;
  // Closed by the manager, their closure not reported yet (see do_late_report).
  std::vector<std::shared_ptr<testing::FakeConnection>> late_;

  // The step in progress.
  Op op_ = Op::connect;
  std::string detail_;
  std::size_t steps_ = 0;
  std::string failure_;
  std::deque<std::pair<Op, std::string>> history_;  // the last operations and their details
  TrimPlan trim_plan_;
  // force_trim's view of each peer before it ran (no key: not a candidate).
  std::vector<std::optional<EmergencyKey>> force_keys_;
  std::vector<std::size_t> force_conns_;
  std::vector<bool> force_protected_;
  bool trim_ran_ = false;
  std::size_t trim_result_ = 0;
  std::size_t exact_count_ = 0;
  std::size_t close_target_ = 0;
  std::size_t expected_host_closes_ = 0;
  std::size_t gated_peer_ = 0;
  bool newly_denied_ = false;
  std::size_t cap_peer_ = 0;
  std::size_t cap_before_ = 0;
  std::size_t realm_target_ = 0;
  std::uint64_t claims_accepted_ = 0;
  std::uint64_t claims_refused_ = 0;
  std::uint64_t rooms_made_ = 0;
  std::uint64_t claims_no_room_ = 0;
  std::uint64_t over_cap_admissions_ = 0;
  // The peers the add under way may close to make room, and how many it must close.
  std::set<std::size_t> room_victims_;
  std::size_t expected_room_closes_ = 0;
  std::vector<std::size_t> bound_before_;
  bool realm_rules_ = false;
  std::shared_ptr<std::vector<Closed>> close_log_ = std::make_shared<std::vector<Closed>>();

  // The library, declared last so it goes first (the destructor resets the manager).
  boost::asio::io_context io_;
  std::shared_ptr<ManualTimeSource> time_;
  std::shared_ptr<BasicGater> gater_;
  std::unique_ptr<RealmConnectionManager> node_;    // with realms; manager_ is its manager()
  std::unique_ptr<ConnectionManager> own_manager_;  // without
  ConnectionManager* manager_ = nullptr;
  std::vector<MRealm> realms_;
  Subscription events_;
  std::uint64_t connected_events_ = 0;
  std::uint64_t disconnected_events_ = 0;
};

}  // namespace dep2p::connmgr::model
