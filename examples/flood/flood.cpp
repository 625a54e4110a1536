// The flood (see flood.hpp): the victim, the honest peers and the flooders, each on its own
// thread and io_context, and the run that starts them, samples them once a second, stops
// them in order and checks what is left.
#include "flood.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>

#include <future>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "p2p_node.hpp"
#include "proc_stats.hpp"

namespace flood {
namespace {

using namespace std::chrono_literals;
using boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr int kBindAddressNoPort = 24;    // IP_BIND_ADDRESS_NO_PORT (linux/in.h)
constexpr std::size_t kMaxHonest = 90;    // 127.10.0.0/16 .. 127.99.0.0/16
constexpr std::size_t kMaxSubnets = 100;  // 127.100.0.0/24 .. 127.199.0.0/24
// Descriptors kept free of the flood: the honest peers' (two ends each, counted per peer)
// and the process's own.
constexpr std::size_t kReservedFds = 256;
constexpr std::size_t kFdsPerHonestPeer = 4;

double seconds_of(clockid_t clock) {
  timespec now{};
  clock_gettime(clock, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

// Raises the soft descriptor limit to the hard one; returns {soft before, soft now}.
std::pair<std::uint64_t, std::uint64_t> raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return {0, 0};
  const std::uint64_t before = limit.rlim_cur;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return {before, limit.rlim_cur};
}

boost::asio::ip::address v4(unsigned b, unsigned c, unsigned d) {
  return boost::asio::ip::make_address_v4("127." + std::to_string(b) + "." + std::to_string(c) +
                                          "." + std::to_string(d));
}

// A refusal's text with every run of digits replaced by "N", so that like reasons count
// together.
std::string elide_digits(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] >= '0' && text[i] <= '9') {
      out += 'N';
      while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
    } else {
      out += text[i++];
    }
  }
  return out;
}

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

std::string fixed(double v, int decimals) {
  char text[48];
  std::snprintf(text, sizeof text, "%.*f", decimals, v);
  return text;
}

// A thread running its own io_context until finish().
class Worker {
 public:
  Worker() : guard_(boost::asio::make_work_guard(io_)) {}
  ~Worker() {
    if (!thread_.joinable()) return;
    io_.stop();
    thread_.join();
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  boost::asio::io_context& io() { return io_; }
  void start() {
    thread_ = std::thread([this] {
      io_.run();
      exited_.set_value();
    });
  }
  // Runs `f` on the worker's thread and returns its result.
  template <typename F>
  auto call(F f) -> decltype(f()) {
    auto task = std::make_shared<std::packaged_task<decltype(f())()>>(std::move(f));
    auto result = task->get_future();
    boost::asio::post(io_, [task] { (*task)(); });
    return result.get();
  }
  // Lets run() return once no work is left; stops the io_context if that takes longer than
  // `limit` (what is still pending is dropped with it). Joins the thread.
  void finish(std::chrono::milliseconds limit) {
    guard_.reset();
    if (exited_.get_future().wait_for(limit) != std::future_status::ready) io_.stop();
    thread_.join();
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::promise<void> exited_;
  std::thread thread_;
};

// The honest peers, on one io_context. Counters read from other threads are atomic; the
// rest is read only after the thread has been joined.
class Honest {
 public:
  Honest(boost::asio::io_context& io, std::size_t count, const p2p::Node& victim,
         std::uint32_t seed, const std::shared_ptr<spdlog::logger>& log)
      : victim_id_(victim.id()), victim_at_(victim.endpoint()), rng_(seed) {
    for (std::size_t i = 0; i < count; ++i) {
      auto peer = std::make_unique<Peer>(io);
      peer->node = p2p::Node::create(io, {.id = p2p::example_id(0x48, i),
                                          .address = v4(10 + static_cast<unsigned>(i), 1, 1),
                                          .logger = log,
                                          .listen = false});
      peers_.push_back(std::move(peer));
    }
  }
  // On the io_context's thread.
  void start() {
    for (auto& peer : peers_) dial(*peer);
  }
  void stop_dialing() { stopping_ = true; }
  // Stops every node: dials still in flight end (counted as failed).
  void stop_nodes() {
    stopping_ = closing_ = true;
    for (auto& peer : peers_) {
      peer->timer.cancel();
      peer->node->stop();
    }
  }

  std::atomic<std::uint64_t> dials{0}, admitted{0}, in_flight{0};
  std::uint64_t refused = 0, failed = 0, local_refusals = 0;
  std::map<std::string, std::uint64_t> failures;
  std::vector<double> latencies_ms;

 private:
  struct Peer {
    explicit Peer(boost::asio::io_context& io) : timer(io) {}
    std::shared_ptr<p2p::Node> node;
    boost::asio::steady_timer timer;
  };

  std::chrono::milliseconds between(int lo, int hi) {
    return std::chrono::milliseconds(std::uniform_int_distribution<int>(lo, hi)(rng_));
  }
  void after(Peer& peer, std::chrono::milliseconds wait, void (Honest::*next)(Peer&)) {
    peer.timer.expires_after(wait);
    peer.timer.async_wait([this, &peer, next](boost::system::error_code ec) {
      if (!ec && !stopping_) (this->*next)(peer);
    });
  }
  void dial(Peer& peer) {
    if (stopping_) return;
    const auto started = Clock::now();
    calling_ = true;
    peer.node->dial(victim_id_, victim_at_, cm::PathKind::direct,
                    [this, &peer, started](std::error_code ec, const std::string& why) {
                      done(peer, started, ec, why);
                    });
    calling_ = false;
    if (!local_) {
      dials.fetch_add(1, std::memory_order_relaxed);
      in_flight.fetch_add(1, std::memory_order_relaxed);
    }
    local_ = false;
  }
  void done(Peer& peer, Clock::time_point started, std::error_code ec, const std::string& why) {
    if (calling_) {  // the node's own checks answered before any connect
      local_ = true;
      ++local_refusals;
      return after(peer, between(100, 300), &Honest::dial);
    }
    in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (!ec) {
      admitted.fetch_add(1, std::memory_order_relaxed);
      latencies_ms.push_back(
          std::chrono::duration<double, std::milli>(Clock::now() - started).count());
      return after(peer, between(100, 400), &Honest::leave);
    }
    ++(ec == cm::Errc::connection_denied ? refused : failed);
    ++failures[closing_ ? "unfinished when the run ended" : elide_digits(why)];
    after(peer, between(100, 300), &Honest::dial);
  }
  void leave(Peer& peer) {
    peer.node->manager().close_peer(victim_id_, cm::CloseReason::host, "leaving");
    after(peer, between(0, 100), &Honest::dial);
  }

  cm::NodeId victim_id_;
  tcp::endpoint victim_at_;
  std::mt19937 rng_;
  std::vector<std::unique_ptr<Peer>> peers_;
  bool stopping_ = false, closing_ = false;
  bool calling_ = false, local_ = false;  // inside a node's dial(); it answered at once
};

// The flooders, on one io_context: `in_flight` sockets, each in a loop of connect, send a
// malformed hello or nothing, read until the victim closes, close, connect again.
class Flooders {
 public:
  Flooders(boost::asio::io_context& io, const FloodOptions& options, tcp::endpoint victim)
      : io_(io), victim_(victim) {
    const std::size_t sockets = options.subnets == 0 ? 0 : options.in_flight;
    for (std::size_t s = 0; s < sockets; ++s) {
      const std::size_t subnet = s % options.subnets;
      const std::size_t host = (s / options.subnets) % options.flooders_per_subnet;
      auto slot = std::make_unique<Slot>(io);
      slot->source = v4(100 + static_cast<unsigned>(subnet), 0, 1 + static_cast<unsigned>(host));
      slot->garbage = (s / options.subnets) % 2 == 0;
      slots_.push_back(std::move(slot));
    }
  }
  // On the io_context's thread.
  void start() {
    for (auto& slot : slots_) open(*slot);
  }
  void stop() {
    stopping_ = true;
    for (auto& slot : slots_) {
      slot->timer.cancel();
      boost::system::error_code ignored;
      slot->socket.close(ignored);
    }
  }

  std::atomic<std::uint64_t> attempts{0}, connect_errors{0}, connected{0}, answered{0};
  std::atomic<std::uint64_t> refused_at_accept{0}, admitted_then_dropped{0};

 private:
  struct Slot {
    explicit Slot(boost::asio::io_context& io) : socket(io), timer(io) {}
    tcp::socket socket;
    boost::asio::steady_timer timer;  // a pause after a local error
    boost::asio::ip::address source;
    bool garbage = false;
    std::array<std::uint8_t, 6> head{};  // the first bytes the victim sent
    std::size_t got = 0;
    std::array<char, 256> buffer{};
  };

  static constexpr std::string_view kBadHello{"\0\0\0\x05\x01junk", 9};

  void retry_later(Slot& slot) {
    slot.timer.expires_after(10ms);
    slot.timer.async_wait([this, &slot](boost::system::error_code ec) {
      if (!ec && !stopping_) open(slot);
    });
  }
  void open(Slot& slot) {
    if (stopping_) return;
    boost::system::error_code ec;
    slot.socket.close(ec);
    slot.socket.open(tcp::v4(), ec);
    if (!ec) {
      // The port is chosen at connect, per destination: many more connections per source.
      const int one = 1;
      setsockopt(slot.socket.native_handle(), IPPROTO_IP, kBindAddressNoPort, &one, sizeof one);
      slot.socket.bind(tcp::endpoint(slot.source, 0), ec);
    }
    if (ec) {
      connect_errors.fetch_add(1, std::memory_order_relaxed);
      return retry_later(slot);
    }
    attempts.fetch_add(1, std::memory_order_relaxed);
    slot.got = 0;
    slot.socket.async_connect(victim_, [this, &slot](boost::system::error_code error) {
      if (stopping_) return;
      if (error) {
        connect_errors.fetch_add(1, std::memory_order_relaxed);
        return retry_later(slot);
      }
      connected.fetch_add(1, std::memory_order_relaxed);
      if (slot.garbage) {
        boost::asio::async_write(slot.socket, boost::asio::buffer(kBadHello),
                                 [](boost::system::error_code, std::size_t) {});
      }
      read(slot);
    });
  }
  void read(Slot& slot) {
    slot.socket.async_read_some(
        boost::asio::buffer(slot.buffer),
        [this, &slot](boost::system::error_code ec, std::size_t n) {
          if (stopping_) return;
          for (std::size_t i = 0; i < n && slot.got < slot.head.size(); ++i) {
            slot.head[slot.got++] = static_cast<std::uint8_t>(slot.buffer[i]);
          }
          if (!ec) return read(slot);
          // The victim closed it (or reset it): it had accepted the connection.
          answered.fetch_add(1, std::memory_order_relaxed);
          if (slot.got == slot.head.size() && slot.head[4] == 4) {  // a goodbye and its reason
            const auto reason = static_cast<cm::CloseReason>(slot.head[5]);
            const bool at_accept =
                reason == cm::CloseReason::limit_exceeded || reason == cm::CloseReason::gated;
            (at_accept ? refused_at_accept : admitted_then_dropped)
                .fetch_add(1, std::memory_order_relaxed);
          }
          boost::asio::post(io_, [this, &slot] { open(slot); });
        });
  }

  boost::asio::io_context& io_;
  tcp::endpoint victim_;
  std::vector<std::unique_ptr<Slot>> slots_;
  bool stopping_ = false;
};

struct VictimState {
  std::size_t connections = 0, reservations = 0, capped = 0, pending_inbound = 0;
  std::array<std::uint64_t, cm::kRefusalReasonCount> refusals{};
  bool empty() const {
    return connections == 0 && reservations == 0 && capped == 0 && pending_inbound == 0;
  }
};

VictimState read_victim(p2p::Node& victim) {
  const cm::Stats stats = victim.manager().stats();
  return {victim.manager().connection_count(), stats.reservations, stats.capped_addresses,
          stats.pending_inbound, stats.refusals_by_reason};
}

void validate(const FloodOptions& o) {
  auto fail = [](const std::string& what) { throw std::invalid_argument(what); };
  if (!(o.seconds > 0)) fail("seconds: must be > 0");
  if (o.honest == 0 || o.honest > kMaxHonest) fail("honest: 1 to 90");
  if (o.subnets > kMaxSubnets) fail("subnets: 0 (no flood) to 100");
  if (o.flooders_per_subnet == 0 || o.flooders_per_subnet > 250) {
    fail("flooders per subnet: 1 to 250");
  }
  if (o.subnets > 0 && o.in_flight < o.subnets) {
    fail("in flight: at least one socket per subnet");
  }
  if (o.honest_grace_seconds < 0) fail("honest grace: must be >= 0");
}

}  // namespace

std::uint64_t FloodResult::victim_refusals() const {
  std::uint64_t sum = 0;
  for (auto n : refusals_by_reason) sum += n;
  return sum;
}

FloodResult run_flood(const FloodOptions& options) {
  validate(options);
  FloodResult result;
  result.options = options;
  auto say = [&](const std::string& line) {
    if (options.progress) options.progress(line);
  };
  std::tie(result.fd_soft_limit_before, result.fd_soft_limit) = raise_fd_limit();
  result.fds_before = proc_stats::open_fds();
  // Each flood socket can hold a descriptor here and one at the victim.
  const std::uint64_t reserved =
      result.fds_before + kReservedFds + kFdsPerHonestPeer * options.honest;
  const std::uint64_t budget =
      result.fd_soft_limit > reserved ? (result.fd_soft_limit - reserved) / 2 : 0;
  result.options.in_flight =
      static_cast<std::size_t>(std::min<std::uint64_t>(options.in_flight, budget));
  if (options.subnets > 0 && result.options.in_flight < options.subnets) {
    throw std::runtime_error("the descriptor limit (" + std::to_string(result.fd_soft_limit) +
                             ") leaves too few for the flood");
  }
  result.options.progress = nullptr;

  {
    // Declared first, destroyed last: the nodes and sockets below live on their io_contexts.
    Worker victim_thread, honest_thread, flood_thread;
    auto log = std::make_shared<spdlog::logger>("flood",
                                                std::make_shared<spdlog::sinks::stderr_sink_mt>());
    log->set_level(spdlog::level::warn);

    cm::Config config;  // the defaults, with loopback not exempt from caps and rates
    config.limits.subnets.exempt_loopback = false;
    config.limits.inbound_rate.exempt_loopback = false;
    auto victim = p2p::Node::create(
        victim_thread.io(),
        {.id = p2p::example_id(0x56, 0), .address = v4(1, 0, 1), .config = config, .logger = log});
    Honest honest(honest_thread.io(), options.honest, *victim, options.seed, log);
    Flooders flooders(flood_thread.io(), result.options, victim->endpoint());
    victim_thread.start();
    honest_thread.start();
    flood_thread.start();

    say("victim on " + victim->endpoint().address().to_string() + ":" +
        std::to_string(victim->endpoint().port()) +
        " (default limits; loopback not exempt from caps and rates); " +
        std::to_string(options.honest) + " honest peers; " + std::to_string(options.subnets) +
        " flooding /24s, " + std::to_string(result.options.in_flight) + " sockets in flight");
    const double cpu_start = victim_thread.call([] { return seconds_of(CLOCK_THREAD_CPUTIME_ID); });
    const double process_start = seconds_of(CLOCK_PROCESS_CPUTIME_ID);
    const auto started = Clock::now();
    boost::asio::post(flood_thread.io(), [&] { flooders.start(); });
    boost::asio::post(honest_thread.io(), [&] { honest.start(); });

    // The run: a sample a second until `seconds` have passed.
    const auto end = started + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(options.seconds));
    for (int second = 1;; ++second) {
      const auto next = std::min(end, started + std::chrono::seconds(second));
      std::this_thread::sleep_until(next);
      const VictimState v = victim_thread.call([&] { return read_victim(*victim); });
      Sample s;
      s.t = std::chrono::duration<double>(Clock::now() - started).count();
      s.honest_dials = honest.dials.load(std::memory_order_relaxed);
      s.honest_admitted = honest.admitted.load(std::memory_order_relaxed);
      s.flood_attempts = flooders.attempts.load(std::memory_order_relaxed);
      s.flood_connected = flooders.connected.load(std::memory_order_relaxed);
      s.flood_answered = flooders.answered.load(std::memory_order_relaxed);
      for (auto n : v.refusals) s.victim_refusals += n;
      s.victim_connections = v.connections;
      s.victim_pending_inbound = v.pending_inbound;
      result.samples.push_back(s);
      say("[" + fixed(s.t, 1) + " s] honest " + std::to_string(s.honest_admitted) + "/" +
          std::to_string(s.honest_dials) + " admitted; flood " + std::to_string(s.flood_attempts) +
          " attempts, " + std::to_string(s.flood_answered) + " answered; victim refused " +
          std::to_string(s.victim_refusals) + ", holds " + std::to_string(s.victim_connections) +
          " (+" + std::to_string(s.victim_pending_inbound) + " pending)");
      if (next >= end) break;
    }

    // Honest dials in flight get their grace, the flood still on; then the flood stops.
    boost::asio::post(honest_thread.io(), [&] { honest.stop_dialing(); });
    const auto grace_end =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(options.honest_grace_seconds));
    while (honest.in_flight.load(std::memory_order_relaxed) != 0 && Clock::now() < grace_end) {
      std::this_thread::sleep_for(10ms);
    }
    flood_thread.call([&] { flooders.stop(); });
    result.flood_seconds = std::chrono::duration<double>(Clock::now() - started).count();
    result.victim_cpu_seconds =
        victim_thread.call([] { return seconds_of(CLOCK_THREAD_CPUTIME_ID); }) - cpu_start;
    result.process_cpu_seconds = seconds_of(CLOCK_PROCESS_CPUTIME_ID) - process_start;
    say("flood stopped after " + fixed(result.flood_seconds, 1) + " s; closing everything");
    honest_thread.call([&] { honest.stop_nodes(); });
    flood_thread.finish(5s);
    honest_thread.finish(5s);

    // Everything the victim held must go: its pool, reservations and cap entries.
    const auto drain_end = Clock::now() + 10s;
    VictimState v;
    for (;;) {
      v = victim_thread.call([&] { return read_victim(*victim); });
      result.drained = v.empty();
      if (result.drained || Clock::now() >= drain_end) break;
      std::this_thread::sleep_for(20ms);
    }
    result.connections_after = v.connections;
    result.reservations_after = v.reservations;
    result.capped_after = v.capped;
    result.pending_inbound_after = v.pending_inbound;
    result.refusals_by_reason = v.refusals;
    victim_thread.call([&] { victim->stop(); });
    victim_thread.finish(5s);

    result.honest_dials = honest.dials.load();
    result.honest_admitted = honest.admitted.load();
    result.honest_refused = honest.refused;
    result.honest_failed = honest.failed;
    result.honest_local_refusals = honest.local_refusals;
    result.honest_failures = honest.failures;
    std::sort(honest.latencies_ms.begin(), honest.latencies_ms.end());
    result.latency_p50_ms = percentile(honest.latencies_ms, 0.50);
    result.latency_p99_ms = percentile(honest.latencies_ms, 0.99);
    result.latency_max_ms = honest.latencies_ms.empty() ? 0 : honest.latencies_ms.back();
    result.flood_attempts = flooders.attempts.load();
    result.flood_connect_errors = flooders.connect_errors.load();
    result.flood_connected = flooders.connected.load();
    result.flood_answered = flooders.answered.load();
    result.flood_refused_at_accept = flooders.refused_at_accept.load();
    result.flood_admitted_then_dropped = flooders.admitted_then_dropped.load();
  }
  result.fds_after = proc_stats::open_fds();
  return result;
}

std::vector<std::string> describe(const FloodResult& r) {
  const auto& o = r.options;
  auto n = [](std::uint64_t v) { return std::to_string(v); };
  auto per_s = [&](std::uint64_t v) {
    return fixed(r.flood_seconds > 0 ? static_cast<double>(v) / r.flood_seconds : 0.0, 0) + "/s";
  };
  std::vector<std::string> out;
  out.push_back("flood: " + fixed(r.flood_seconds, 1) + " s; victim 127.1.0.1 (default limits, " +
                "loopback not exempt from caps and rates)");
  const std::string flooders =
      o.subnets == 0 ? std::string("no flood")
                     : std::to_string(o.subnets) + " flooding /24s (127.100-" +
                           std::to_string(99 + o.subnets) + ".0.0/24, " +
                           std::to_string(o.flooders_per_subnet) + " sources each), " +
                           std::to_string(o.in_flight) + " flood sockets in flight";
  out.push_back("  " + std::to_string(o.honest) + " honest peers (127.10-" +
                std::to_string(9 + o.honest) + ".1.1), " + flooders + "; descriptor limit " +
                n(r.fd_soft_limit_before) + " -> " + n(r.fd_soft_limit));
  out.push_back("honest dials        " + n(r.honest_admitted) + " admitted of " +
                n(r.honest_dials) + " = " + fixed(100.0 * r.honest_share(), 2) +
                "% (target >= " + fixed(100.0 * FloodResult::kHonestTarget, 0) + "%); refused " +
                n(r.honest_refused) + ", failed " + n(r.honest_failed) +
                "; refused by their own node before connecting " + n(r.honest_local_refusals));
  for (const auto& [why, count] : r.honest_failures) {
    out.push_back("  " + n(count) + " x " + why);
  }
  out.push_back("admission latency   p50 " + fixed(r.latency_p50_ms, 2) + " ms, p99 " +
                fixed(r.latency_p99_ms, 2) + " ms, max " + fixed(r.latency_max_ms, 2) +
                " ms (honest dial to admitted, both handshakes)");
  out.push_back("flood               " + n(r.flood_attempts) + " connection attempts (" +
                per_s(r.flood_attempts) + "), " + n(r.flood_connected) + " connected, " +
                n(r.flood_connect_errors) + " errors; the victim accepted " + n(r.flood_answered) +
                " (" + per_s(r.flood_answered) + "): " + n(r.flood_refused_at_accept) +
                " refused at accept, " + n(r.flood_admitted_then_dropped) +
                " admitted then dropped (bad or no hello)");
  out.push_back("victim refusals     " + n(r.victim_refusals()) + " in all");
  for (std::size_t k = 0; k < r.refusals_by_reason.size(); ++k) {
    if (r.refusals_by_reason[k] == 0) continue;
    out.push_back("  " + std::string(cm::to_string(static_cast<cm::RefusalReason>(k))) + " " +
                  n(r.refusals_by_reason[k]));
  }
  out.push_back("victim CPU          " + fixed(r.victim_cpu_seconds, 2) + " s of " +
                fixed(r.flood_seconds, 2) + " s = " + fixed(100.0 * r.victim_cpu_share(), 1) +
                "% of one core; the whole process " + fixed(r.process_cpu_seconds, 2) + " s");
  out.push_back("after               victim connections " + n(r.connections_after) +
                ", reservations " + n(r.reservations_after) + ", capped addresses " +
                n(r.capped_after) + ", pending inbound " + n(r.pending_inbound_after) +
                (r.drained ? "" : " (not drained in time)") + "; open descriptors " +
                n(r.fds_before) + " before, " + n(r.fds_after) + " after");
  out.push_back(
      std::string("verdict             ") +
      (r.ok() ? "PASS"
              : std::string("FAIL:") +
                    (r.honest_share() < FloodResult::kHonestTarget ? " honest share below target"
                                                                   : "") +
                    (r.leaked() ? " leaked" : "")));
  return out;
}

std::string samples_csv(const FloodResult& r) {
  std::ostringstream out;
  out << "t,honest_dials,honest_admitted,flood_attempts,flood_connected,flood_answered,"
         "victim_refusals,victim_connections,victim_pending_inbound\n";
  for (const Sample& s : r.samples) {
    out << fixed(s.t, 2) << ',' << s.honest_dials << ',' << s.honest_admitted << ','
        << s.flood_attempts << ',' << s.flood_connected << ',' << s.flood_answered << ','
        << s.victim_refusals << ',' << s.victim_connections << ',' << s.victim_pending_inbound
        << '\n';
  }
  return out.str();
}

}  // namespace flood
