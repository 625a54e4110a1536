// Test harness for ConnectionManager unit tests: a manager running on an io_context that
// only the test drives, with virtual time (ManualTimeSource), plus helpers to add fake
// connections, record events and build the trimmers the tests need (one that blocks until
// released, one that throws, one that calls a hook).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <variant>
#include <vector>

#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/config.hpp"
#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/events.hpp"
#include "dep2p/connmgr/trimmer.hpp"
#include "support/fake_connection.hpp"

namespace dep2p::connmgr {
// The tests' shorthand for a refused stage: keeps the admission's refusal in `out` and
// returns its error, so that one line can check both. (Found by argument-dependent
// lookup from any test in dep2p::connmgr.)
inline std::error_code keep_refusal(Refusal& out, Admission admission) {
  out = std::move(admission.refusal);
  return admission.error;
}
// The same into an optional out-parameter (null: the refusal is dropped).
inline std::error_code keep_refusal(Refusal* out, Admission admission) {
  if (out != nullptr) *out = std::move(admission.refusal);
  return admission.error;
}
}  // namespace dep2p::connmgr

namespace dep2p::connmgr::testing {

// A configuration for trim tests: the given watermarks and grace, and a background check
// so rare (one hour) that advancing time by a grace period never runs it by accident.
inline Config trim_config(std::size_t low_water, std::size_t high_water,
                          std::chrono::milliseconds grace = std::chrono::milliseconds(0),
                          std::chrono::milliseconds silence = std::chrono::hours(1)) {
  Config config;
  config.low_water = low_water;
  config.high_water = high_water;
  config.grace_period = grace;
  config.max_connections_per_peer = 0;  // these tests stack connections on one peer freely
  config.path_idle_timeout = std::chrono::milliseconds(0);  // and leave them quiet
  config.silence_period = silence;
  return config;
}

// The io_context, the virtual clock and the manager, declared in that order so that the
// manager goes first and the io_context last.
class ManagerHarness {
 public:
  explicit ManagerHarness(Config config = trim_config(10, 100),
                          std::shared_ptr<Trimmer> trimmer = nullptr)
      : time(std::make_shared<ManualTimeSource>(io)),
        manager(io, std::move(config), make_dependencies(time, std::move(trimmer))) {}
  // With other dependencies (a gater, a logger); the virtual clock is filled in.
  ManagerHarness(Config config, Dependencies deps)
      : time(std::make_shared<ManualTimeSource>(io)),
        manager(io, std::move(config), with_time(std::move(deps), time)) {}

  // A fake connection to peer_id(n) that is added to the manager (the addition must
  // succeed). When `reporting`, its close() reports the closure back synchronously.
  std::shared_ptr<FakeConnection> add(std::uint64_t n, Direction direction = Direction::inbound,
                                      bool reporting = true) {
    auto connection = reporting ? reporting_connection(manager, peer_id(n), direction)
                                : std::make_shared<FakeConnection>(peer_id(n), direction);
    auto error = manager.add_connection(connection);
    EXPECT_FALSE(error) << "add_connection(peer " << n << "): " << error.message();
    return connection;
  }

  // Adds one connection to each of peers first .. first + count - 1.
  std::vector<std::shared_ptr<FakeConnection>> add_peers(std::uint64_t first, std::size_t count,
                                                         Direction direction = Direction::inbound,
                                                         bool reporting = true) {
    std::vector<std::shared_ptr<FakeConnection>> added;
    for (std::size_t i = 0; i < count; ++i) {
      added.push_back(add(first + i, direction, reporting));
    }
    return added;
  }

  boost::asio::io_context io;
  std::shared_ptr<ManualTimeSource> time;
  ConnectionManager manager;

 private:
  static Dependencies with_time(Dependencies deps, std::shared_ptr<ManualTimeSource> time) {
    if (!deps.time_source) deps.time_source = std::move(time);
    return deps;
  }
  static Dependencies make_dependencies(std::shared_ptr<ManualTimeSource> time_source,
                                        std::shared_ptr<Trimmer> trimmer) {
    Dependencies deps;
    deps.time_source = std::move(time_source);
    deps.trimmer = std::move(trimmer);
    return deps;
  }
};

inline std::size_t count_closed(const std::vector<std::shared_ptr<FakeConnection>>& connections) {
  std::size_t closed = 0;
  for (const auto& c : connections) {
    if (c->closed()) ++closed;
  }
  return closed;
}

// Every closed connection was closed exactly once, with `reason` and a non-empty detail.
inline void expect_closes_carry(const std::vector<std::shared_ptr<FakeConnection>>& connections,
                                CloseReason reason) {
  for (const auto& c : connections) {
    if (!c->closed()) continue;
    EXPECT_EQ(c->close_count(), 1) << c->remote_peer();
    EXPECT_EQ(c->last_reason(), reason) << c->remote_peer();
    EXPECT_FALSE(c->last_detail().empty()) << c->remote_peer();
  }
}

// Records every event delivered to it, in delivery order. The subscription is the last
// member, so it is reset before the record it writes to is destroyed.
class EventRecorder {
 public:
  explicit EventRecorder(ConnectionManager& manager)
      : subscription(manager.subscribe([this](const Event& e) {
          std::lock_guard lock(mutex_);
          events_.push_back(e);
        })) {}

  std::vector<Event> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  template <typename T>
  std::vector<T> of() const {
    std::vector<T> selected;
    std::lock_guard lock(mutex_);
    for (const auto& e : events_) {
      if (const auto* p = std::get_if<T>(&e)) selected.push_back(*p);
    }
    return selected;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return events_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Event> events_;

 public:
  Subscription subscription;
};

// Delegates to the default trimmer after running `hook` inside rank() (no manager lock is
// held there, so the hook may call the manager).
class HookTrimmer final : public Trimmer {
 public:
  explicit HookTrimmer(std::function<void()> hook) : hook_(std::move(hook)) {}
  void rank(const TrimSnapshot& snapshot, std::size_t target,
            std::vector<std::uint32_t>& order) override {
    ++calls;
    if (hook_) hook_();
    inner_->rank(snapshot, target, order);
  }
  std::atomic<int> calls{0};

 private:
  std::function<void()> hook_;
  std::shared_ptr<Trimmer> inner_ = make_score_trimmer();
};

// The first rank() call announces itself (entered()) and blocks until release(); later
// calls go straight through. Ranking is delegated to the default trimmer.
class BlockingTrimmer final : public Trimmer {
 public:
  void rank(const TrimSnapshot& snapshot, std::size_t target,
            std::vector<std::uint32_t>& order) override {
    if (calls.fetch_add(1) == 0) {
      entered_.set_value();
      gate_.wait();
    }
    inner_->rank(snapshot, target, order);
  }
  // Waits until the first rank() call has started.
  void wait_entered() { entered_future_.wait(); }
  void release() {
    std::call_once(released_, [this] { release_.set_value(); });
  }
  std::atomic<int> calls{0};

 private:
  std::promise<void> entered_;
  std::future<void> entered_future_ = entered_.get_future();
  std::promise<void> release_;
  std::shared_future<void> gate_ = release_.get_future().share();
  std::once_flag released_;
  std::shared_ptr<Trimmer> inner_ = make_score_trimmer();
};

class ThrowingTrimmer final : public Trimmer {
 public:
  void rank(const TrimSnapshot&, std::size_t, std::vector<std::uint32_t>& order) override {
    ++calls;
    order.push_back(0);  // a partial answer must not be used either
    throw std::runtime_error("trimmer failure");
  }
  std::atomic<int> calls{0};
};

}  // namespace dep2p::connmgr::testing
