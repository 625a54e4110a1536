#include "dep2p/connmgr/clock.hpp"

#include <atomic>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace dep2p::connmgr {
namespace {

// steady_timer is not safe for concurrent use, and the owner may cancel from another
// thread than the one running the handler; a mutex serialises the operations, and the
// generation tells a completed wait that it was superseded or cancelled meanwhile.
class SteadyTimer final : public Timer {
 public:
  explicit SteadyTimer(boost::asio::any_io_executor executor)
      : state_(std::make_shared<State>(std::move(executor))) {}
  ~SteadyTimer() override { cancel(); }

  void wait_until(TimePoint deadline, std::function<void()> handler) override {
    std::lock_guard lock(state_->mutex);
    const std::uint64_t generation = ++state_->generation;
    state_->timer.expires_at(deadline);
    state_->timer.async_wait([state = state_, generation,
                              handler = std::move(handler)](const boost::system::error_code& ec) {
      if (ec) return;
      {
        std::lock_guard inner(state->mutex);
        if (state->generation != generation) return;
      }
      handler();
    });
  }

  void cancel() override {
    std::lock_guard lock(state_->mutex);
    ++state_->generation;
    state_->timer.cancel();
  }

 private:
  struct State {
    explicit State(boost::asio::any_io_executor executor) : timer(std::move(executor)) {}
    std::mutex mutex;
    std::uint64_t generation = 0;
    boost::asio::steady_timer timer;
  };
  std::shared_ptr<State> state_;
};

}  // namespace

TimePoint SteadyTimeSource::now() const { return Clock::now(); }

std::unique_ptr<Timer> SteadyTimeSource::make_timer(boost::asio::any_io_executor executor) {
  return std::make_unique<SteadyTimer>(std::move(executor));
}

// The generation lives in a shared block so that a handler already posted to the
// executor can tell, when it runs, whether its timer was re-armed, cancelled or destroyed.
// Hidden (DEP2P_CONNMGR_NO_EXPORT), or it would be exported with ManualTimeSource.
class DEP2P_CONNMGR_NO_EXPORT ManualTimeSource::ManualTimer final : public Timer {
 public:
  ManualTimer(ManualTimeSource& source, boost::asio::any_io_executor executor)
      : source_(source), executor_(std::move(executor)) {}
  ~ManualTimer() override { cancel(); }

  void wait_until(TimePoint deadline, std::function<void()> handler) override {
    const std::uint64_t generation = ++*generation_;
    source_.arm(this, deadline, executor_,
                [token = generation_, generation, handler = std::move(handler)] {
                  if (token->load() == generation) handler();
                });
  }

  void cancel() override {
    ++*generation_;
    source_.disarm(this);
  }

 private:
  ManualTimeSource& source_;
  boost::asio::any_io_executor executor_;
  std::shared_ptr<std::atomic<std::uint64_t>> generation_ =
      std::make_shared<std::atomic<std::uint64_t>>(0);
};

ManualTimeSource::ManualTimeSource(boost::asio::io_context& io)
    : io_(io), now_(TimePoint{} + std::chrono::hours(1)) {}

ManualTimeSource::~ManualTimeSource() = default;

TimePoint ManualTimeSource::now() const { return now_.load(std::memory_order_acquire); }

std::unique_ptr<Timer> ManualTimeSource::make_timer(boost::asio::any_io_executor executor) {
  return std::make_unique<ManualTimer>(*this, std::move(executor));
}

void ManualTimeSource::arm(ManualTimer* timer, TimePoint deadline,
                           boost::asio::any_io_executor executor, std::function<void()> handler) {
  std::lock_guard lock(mutex_);
  std::erase_if(pending_, [timer](const auto& entry) { return entry.second.owner == timer; });
  pending_.emplace(std::make_pair(deadline, next_sequence_++),
                   Pending{std::move(executor), std::move(handler), timer});
}

void ManualTimeSource::disarm(ManualTimer* timer) {
  std::lock_guard lock(mutex_);
  std::erase_if(pending_, [timer](const auto& entry) { return entry.second.owner == timer; });
}

void ManualTimeSource::jump(Duration by) {
  std::lock_guard lock(mutex_);
  now_.store(now_.load(std::memory_order_relaxed) + by, std::memory_order_release);
}

void ManualTimeSource::run_ready() {
  if (io_.stopped()) io_.restart();
  io_.poll();
}

void ManualTimeSource::advance(Duration by) {
  TimePoint target;
  {
    std::lock_guard lock(mutex_);
    target = now_.load(std::memory_order_relaxed) + by;
  }
  run_ready();
  for (;;) {
    Pending due;
    {
      std::lock_guard lock(mutex_);
      if (pending_.empty() || pending_.begin()->first.first > target) {
        now_.store(target, std::memory_order_release);
        break;
      }
      auto first = pending_.begin();
      now_.store(std::max(now_.load(std::memory_order_relaxed), first->first.first),
                 std::memory_order_release);
      due = std::move(first->second);
      pending_.erase(first);
    }
    boost::asio::post(due.executor, std::move(due.handler));
    run_ready();
  }
  run_ready();
}

std::size_t ManualTimeSource::pending_timers() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

}  // namespace dep2p::connmgr
