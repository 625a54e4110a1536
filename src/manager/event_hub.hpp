// EventHub: the queue between the manager's commits and its subscribers.
//
// Events are enqueued while the manager holds its lock, so the queue is in commit order.
// drain() is called with no manager lock held: the first thread to call it delivers
// everything queued (including events its handlers cause) and the others return at once,
// so events are delivered exactly once, in order, and never under the manager's lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "dep2p/connmgr/events.hpp"

namespace spdlog {
class logger;
}

namespace dep2p::connmgr::detail {

class EventHub {
 public:
  explicit EventHub(std::shared_ptr<spdlog::logger> logger);

  Subscription subscribe(EventHandler handler);
  // Cheap check so the pool builds no event when nobody listens.
  bool has_subscribers() const noexcept {
    return state_->subscriber_count.load(std::memory_order_relaxed) > 0;
  }
  void enqueue(Event event);
  // Delivers the queued events. A thread always sees the events it queued itself; with
  // none queued (most calls: nobody subscribes) this is one load.
  void drain() {
    if (state_->pending.load(std::memory_order_acquire) != 0) deliver();
  }
  // Drops queued events; no delivery starts afterwards.
  void close();

 private:
  struct Slot {
    std::uint64_t id;
    EventHandler handler;
    std::atomic<bool> active{true};
  };
  void deliver();

  struct State {
    std::mutex mutex;
    std::deque<Event> queue;
    std::atomic<std::size_t> pending{0};  // queue.size(), readable without the mutex
    // Registered handlers; a delivery copies this list and checks `active` per call.
    std::vector<std::shared_ptr<Slot>> slots;
    std::atomic<std::size_t> subscriber_count{0};
    std::uint64_t next_id = 1;
    bool draining = false;
    bool closed = false;
  };
  std::shared_ptr<State> state_;
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace dep2p::connmgr::detail
