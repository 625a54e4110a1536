// BasicGater: its RuleBook under a shared lock, the timer that sweeps ended bans, the
// on_tightened handlers, and the rule file. Intercepts take the lock shared; changes take
// it exclusively, commit, and only after releasing it write the file and run the handlers
// (plan, commit, act), so a handler may call the gater.
#include "dep2p/connmgr/gater.hpp"

#include <atomic>
#include <cerrno>
#include <exception>
#include <mutex>
#include <shared_mutex>

#include <spdlog/spdlog.h>
#include <boost/asio/strand.hpp>

#include "base/logging.hpp"
#include "dep2p/connmgr/error.hpp"
#include "gater/gater_file.hpp"
#include "gater/rule_book.hpp"

namespace dep2p::connmgr {

using detail::LazyNow;
using detail::RuleBook;
using Flag = detail::RuleBook::Flag;

// Hidden (DEP2P_CONNMGR_NO_EXPORT): a nested type of an exported class is exported with it
// unless marked, and this one is the library's own (docs/architecture.md, "Packaging").
struct DEP2P_CONNMGR_NO_EXPORT BasicGater::Impl : std::enable_shared_from_this<Impl> {
  // An on_tightened registration. `active` turns false when its Subscription goes, so a
  // delivery that copied the list before still skips it.
  struct HandlerSlot {
    std::uint64_t id;
    std::function<void()> handler;
    std::atomic<bool> active{true};
  };

  Impl(boost::asio::any_io_executor executor, BasicGaterOptions options)
      : strand_(boost::asio::make_strand(std::move(executor))),
        time_(options.time_source ? std::move(options.time_source)
                                  : std::make_shared<SteadyTimeSource>()),
        logger_(options.logger ? std::move(options.logger) : detail::make_default_logger()),
        close_existing_(options.close_existing),
        wall_clock_(options.wall_clock ? std::move(options.wall_clock)
                                       : [] { return std::chrono::system_clock::now(); }),
        sweep_timer_(time_->make_timer(strand_)) {}

  // One change: `apply` runs under the exclusive lock and says whether it changed anything;
  // then, unlocked, the log line, the file and (if it denies more than before) the handlers.
  template <class Apply>
  bool change(Apply&& apply, bool tightens, const std::string& what) {
    bool changed;
    {
      std::unique_lock lock(mutex_);
      changed = apply();
      if (changed) arm_sweep_for_next();
    }
    if (!changed) return false;
    logger_->info("connmgr: gater: {}", what);
    persist();
    if (tightens && close_existing_) fire_tightened();
    return true;
  }

  Decision decide(const NodeId* peer, const Endpoint* remote) const {
    std::shared_lock lock(mutex_);
    LazyNow now(*time_);
    return book_.decide(peer, remote, now);
  }

  TimePoint ban_end(Duration duration) const {
    return time_->now() + std::min(duration, detail::kMaxBan);
  }

  // --- Sweeping ended bans -------------------------------------------------------------

  // Arms the sweep for the earliest ban end unless it is due earlier already.
  // REQUIRES: mutex_ held exclusively.
  void arm_sweep_for_next() {
    const std::optional<TimePoint> at = book_.next_ban_end();
    if (!at || closed_ || (sweep_armed_ && sweep_at_ <= *at)) return;
    sweep_armed_ = true;
    sweep_at_ = *at;
    sweep_timer_->wait_until(*at, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->sweep();
    });
  }

  // Runs on the strand. The file is not rewritten: an ended ban in it is dropped on load,
  // and the next change writes the file without it.
  void sweep() {
    const TimePoint now = time_->now();
    std::unique_lock lock(mutex_);
    sweep_armed_ = false;
    if (closed_) return;
    const std::size_t removed = book_.sweep(now);
    arm_sweep_for_next();
    lock.unlock();
    if (removed != 0) logger_->debug("connmgr: gater: {} expired ban(s) swept", removed);
  }

  // --- on_tightened handlers ------------------------------------------------------------

  void fire_tightened() {
    std::vector<std::shared_ptr<HandlerSlot>> slots;
    {
      std::lock_guard lock(handlers_mutex_);
      slots = handlers_;
    }
    for (const auto& slot : slots) {
      if (!slot->active.load()) continue;
      try {
        slot->handler();
      } catch (const std::exception& e) {
        logger_->warn("connmgr: gater: on_tightened handler threw: {}", e.what());
      } catch (...) {
        logger_->warn("connmgr: gater: on_tightened handler threw a non-standard exception");
      }
    }
  }

  Subscription subscribe(std::function<void()> handler) {
    if (!handler) return Subscription{};
    auto slot = std::make_shared<HandlerSlot>();
    slot->handler = std::move(handler);
    {
      std::lock_guard lock(handlers_mutex_);
      slot->id = next_handler_id_++;
      handlers_.push_back(slot);
    }
    return Subscription([weak = weak_from_this(), id = slot->id] {
      auto self = weak.lock();
      if (!self) return;
      std::lock_guard lock(self->handlers_mutex_);
      auto& handlers = self->handlers_;
      auto it = std::find_if(handlers.begin(), handlers.end(),
                             [id](const auto& s) { return s->id == id; });
      if (it != handlers.end()) {
        (*it)->active.store(false);
        handlers.erase(it);
      }
    });
  }

  // --- The rule file ---------------------------------------------------------------------

  // Writes the rules in force to the attached file (if any). REQUIRES: file_mutex_ held.
  std::error_code write_file() {
    if (path_.empty()) return {};
    // The clocks are read before the lock: wall_clock_ is the host's code.
    const TimePoint now = time_->now();
    const std::int64_t wall_ms = detail::unix_ms(wall_clock_());
    std::vector<detail::FileRule> rules;
    {
      std::shared_lock lock(mutex_);
      rules = book_.to_file(now, wall_ms);
    }
    if (auto failure = detail::write_atomically(path_, detail::format_rules(rules))) {
      logger_->error("connmgr: gater: cannot save rules to {}: {} {}: {}", path_, failure->step,
                     failure->file, failure->error.message());
      return failure->error;
    }
    return {};
  }

  void persist() {
    std::lock_guard lock(file_mutex_);
    write_file();  // a failure is logged there and reported by the next save()
  }

  std::error_code attach(const std::string& path, std::string* message, bool& tightened) {
    std::lock_guard file_lock(file_mutex_);
    auto report = [&](std::error_code ec, const std::string& text) {
      logger_->error("connmgr: gater: {}", text);
      if (message != nullptr) *message = text;
      return ec;
    };
    if (path.empty()) return report(Errc::invalid_argument, "gater file: empty path");
    std::string text;
    int error = 0;
    std::vector<detail::FileRule> rules;
    if (detail::read_whole_file(path, text, error)) {
      std::string what;
      auto parsed = detail::parse_rules(text, what);
      if (!parsed) return report(Errc::invalid_argument, "gater file " + path + ", " + what);
      rules = std::move(*parsed);
    } else if (error != ENOENT) {
      const std::error_code ec = detail::os_error(error);
      return report(ec, "cannot read gater file " + path + ": " + ec.message());
    }
    const TimePoint now = time_->now();
    const std::int64_t wall_ms = detail::unix_ms(wall_clock_());
    bool had_rules;
    {
      std::unique_lock lock(mutex_);
      had_rules = book_.rule_count() != 0;
      tightened = book_.apply(rules, now, wall_ms);
      arm_sweep_for_next();
    }
    path_ = path;
    logger_->info("connmgr: gater: attached {} ({} rules read)", path, rules.size());
    // Rules made before attaching are not in the file yet.
    if (had_rules) {
      if (auto ec = write_file()) {
        return report(ec, "attached " + path + " but cannot write it: " + ec.message());
      }
    }
    return {};
  }

  // Immutable after construction.
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  std::shared_ptr<TimeSource> time_;
  std::shared_ptr<spdlog::logger> logger_;
  bool close_existing_;
  std::function<std::chrono::system_clock::time_point()> wall_clock_;

  mutable std::shared_mutex mutex_;  // guards everything down to closed_
  RuleBook book_;
  std::unique_ptr<Timer> sweep_timer_;
  bool sweep_armed_ = false;
  TimePoint sweep_at_{};
  bool closed_ = false;

  std::mutex handlers_mutex_;  // guards handlers_ and next_handler_id_
  std::vector<std::shared_ptr<HandlerSlot>> handlers_;
  std::uint64_t next_handler_id_ = 1;

  // Taken before mutex_ when both are needed. Serialises attaching and writing, so each
  // write snapshots the rules after every change acknowledged before it.
  std::mutex file_mutex_;
  std::string path_;  // the attached file; empty when none
};

BasicGater::BasicGater(boost::asio::any_io_executor executor, BasicGaterOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {}

BasicGater::~BasicGater() {
  std::unique_lock lock(impl_->mutex_);
  impl_->closed_ = true;
  impl_->sweep_timer_->cancel();
}

void BasicGater::block_peer(const NodeId& peer) {
  impl_->change([&] { return impl_->book_.set(peer, Flag::blocked); }, true,
                "blocked peer " + peer.short_string());
}

bool BasicGater::unblock_peer(const NodeId& peer) {
  return impl_->change(
      [&] {
        const bool block = impl_->book_.clear(peer, Flag::blocked);
        const bool ban = impl_->book_.lift_ban(peer);
        return block || ban;
      },
      false, "unblocked peer " + peer.short_string());
}

void BasicGater::allow_peer(const NodeId& peer) {
  impl_->change([&] { return impl_->book_.set(peer, Flag::allowed); }, false,
                "allowed peer " + peer.short_string());
}

bool BasicGater::disallow_peer(const NodeId& peer) {
  // Its blocks and bans apply again: a tightening.
  return impl_->change([&] { return impl_->book_.clear(peer, Flag::allowed); }, true,
                       "peer " + peer.short_string() + " no longer allowed");
}

std::error_code BasicGater::block(std::string_view address_or_subnet) {
  const auto net = detail::parse_prefix(address_or_subnet);
  if (!net) return Errc::invalid_argument;
  impl_->change([&] { return impl_->book_.set(*net, Flag::blocked); }, true,
                "blocked " + detail::to_string(*net));
  return {};
}

bool BasicGater::unblock(std::string_view address_or_subnet) {
  const auto net = detail::parse_prefix(address_or_subnet);
  if (!net) return false;
  return impl_->change(
      [&] {
        const bool block = impl_->book_.clear(*net, Flag::blocked);
        const bool ban = impl_->book_.lift_ban(*net);
        return block || ban;
      },
      false, "unblocked " + detail::to_string(*net));
}

std::error_code BasicGater::allow(std::string_view address_or_subnet) {
  const auto net = detail::parse_prefix(address_or_subnet);
  if (!net) return Errc::invalid_argument;
  impl_->change([&] { return impl_->book_.set(*net, Flag::allowed); }, false,
                "allowed " + detail::to_string(*net));
  return {};
}

bool BasicGater::disallow(std::string_view address_or_subnet) {
  const auto net = detail::parse_prefix(address_or_subnet);
  if (!net) return false;
  return impl_->change([&] { return impl_->book_.clear(*net, Flag::allowed); }, true,
                       detail::to_string(*net) + " no longer allowed");
}

void BasicGater::ban_peer(const NodeId& peer, Duration duration) {
  if (duration <= Duration::zero()) {
    impl_->logger_->warn("connmgr: gater: ban of peer {} ignored: the duration is not positive",
                         peer.short_string());
    return;
  }
  const TimePoint until = impl_->ban_end(duration);
  impl_->change(
      [&] { return impl_->book_.ban(peer, until); }, true,
      "banned peer " + peer.short_string() + " for " +
          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(duration).count()) +
          " ms");
}

std::error_code BasicGater::ban(std::string_view address_or_subnet, Duration duration) {
  const auto net = detail::parse_prefix(address_or_subnet);
  if (!net || duration <= Duration::zero()) return Errc::invalid_argument;
  const TimePoint until = impl_->ban_end(duration);
  impl_->change(
      [&] { return impl_->book_.ban(*net, until); }, true,
      "banned " + detail::to_string(*net) + " for " +
          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(duration).count()) +
          " ms");
  return {};
}

bool BasicGater::is_peer_blocked(const NodeId& peer) const {
  std::shared_lock lock(impl_->mutex_);
  LazyNow now(*impl_->time_);
  return impl_->book_.peer_denial(peer, now).has_value();
}

bool BasicGater::is_address_blocked(const boost::asio::ip::address& address) const {
  std::shared_lock lock(impl_->mutex_);
  LazyNow now(*impl_->time_);
  return impl_->book_.address_denial(detail::host_prefix(address), now).has_value();
}

bool BasicGater::is_allowed(const boost::asio::ip::address& address) const {
  std::shared_lock lock(impl_->mutex_);
  return impl_->book_.address_allowed(detail::host_prefix(address));
}

bool BasicGater::is_peer_allowed(const NodeId& peer) const {
  std::shared_lock lock(impl_->mutex_);
  return impl_->book_.peer_allowed(peer);
}

GaterRules BasicGater::rules() const {
  GaterRules out;
  out.at = impl_->time_->now();
  {
    std::shared_lock lock(impl_->mutex_);
    impl_->book_.list(out);
  }
  detail::sort_listing(out);  // unlocked: intercepts never wait on a listing's sort
  return out;
}

GaterCounts BasicGater::counts() const {
  const TimePoint now = impl_->time_->now();
  std::shared_lock lock(impl_->mutex_);
  return impl_->book_.counts(now);
}

std::size_t BasicGater::rule_count() const {
  std::shared_lock lock(impl_->mutex_);
  return impl_->book_.rule_count();
}

std::error_code BasicGater::attach_file(const std::string& path, std::string* message) {
  bool tightened = false;
  const std::error_code ec = impl_->attach(path, message, tightened);
  // Loaded blocks and bans may deny connections opened before the file was attached.
  if (tightened && impl_->close_existing_) impl_->fire_tightened();
  return ec;
}

std::error_code BasicGater::save() {
  std::lock_guard lock(impl_->file_mutex_);
  if (impl_->path_.empty()) return Errc::invalid_argument;
  return impl_->write_file();
}

Decision BasicGater::intercept_peer_dial(const NodeId& peer) {
  return impl_->decide(&peer, nullptr);
}
Decision BasicGater::intercept_addr_dial(const NodeId& peer, const Endpoint& remote) {
  return impl_->decide(&peer, &remote);
}
Decision BasicGater::intercept_accept(const Endpoint& remote) {
  return impl_->decide(nullptr, &remote);
}
Decision BasicGater::intercept_secured(Direction, const NodeId& peer, const Endpoint& remote) {
  return impl_->decide(&peer, &remote);
}
Subscription BasicGater::on_tightened(std::function<void()> handler) {
  return impl_->subscribe(std::move(handler));
}
bool BasicGater::bypasses_caps(const boost::asio::ip::address& address) {
  return is_allowed(address);
}

}  // namespace dep2p::connmgr
