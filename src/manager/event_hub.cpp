#include "dep2p/connmgr/events.hpp"

#include <exception>

#include <spdlog/spdlog.h>

#include "manager/event_hub.hpp"

namespace dep2p::connmgr {

Subscription::~Subscription() { reset(); }

Subscription::Subscription(Subscription&& other) noexcept
    : cancel_(std::exchange(other.cancel_, nullptr)) {}

Subscription& Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    reset();
    cancel_ = std::exchange(other.cancel_, nullptr);
  }
  return *this;
}

void Subscription::reset() {
  if (auto cancel = std::exchange(cancel_, nullptr)) cancel();
}

namespace detail {

EventHub::EventHub(std::shared_ptr<spdlog::logger> logger)
    : state_(std::make_shared<State>()), logger_(std::move(logger)) {}

Subscription EventHub::subscribe(EventHandler handler) {
  std::lock_guard lock(state_->mutex);
  if (state_->closed || !handler) return Subscription{};
  auto slot = std::make_shared<Slot>();
  slot->id = state_->next_id++;
  slot->handler = std::move(handler);
  state_->slots.push_back(slot);
  state_->subscriber_count.fetch_add(1, std::memory_order_relaxed);
  return Subscription([weak = std::weak_ptr<State>(state_), id = slot->id] {
    auto state = weak.lock();
    if (!state) return;
    std::lock_guard inner(state->mutex);
    auto& slots = state->slots;
    for (auto it = slots.begin(); it != slots.end(); ++it) {
      if ((*it)->id == id) {
        (*it)->active.store(false);
        slots.erase(it);
        state->subscriber_count.fetch_sub(1, std::memory_order_relaxed);
        break;
      }
    }
  });
}

void EventHub::enqueue(Event event) {
  std::lock_guard lock(state_->mutex);
  if (state_->closed) return;
  state_->queue.push_back(std::move(event));
  state_->pending.store(state_->queue.size(), std::memory_order_release);
}

void EventHub::deliver() {
  std::unique_lock lock(state_->mutex);
  if (state_->draining) return;
  state_->draining = true;
  while (!state_->queue.empty() && !state_->closed) {
    std::deque<Event> batch;
    batch.swap(state_->queue);
    state_->pending.store(0, std::memory_order_release);
    std::vector<std::shared_ptr<Slot>> slots = state_->slots;
    lock.unlock();
    for (const Event& event : batch) {
      for (const auto& slot : slots) {
        if (!slot->active.load()) continue;
        try {
          slot->handler(event);
        } catch (const std::exception& e) {
          logger_->warn("connmgr: event handler threw: {}", e.what());
        } catch (...) {
          logger_->warn("connmgr: event handler threw a non-standard exception");
        }
      }
      // close() from a handler stops delivery of the rest at once.
      std::lock_guard check(state_->mutex);
      if (state_->closed) break;
    }
    lock.lock();
  }
  state_->draining = false;
}

void EventHub::close() {
  std::lock_guard lock(state_->mutex);
  state_->closed = true;
  state_->queue.clear();
  state_->pending.store(0, std::memory_order_release);
}

}  // namespace detail
}  // namespace dep2p::connmgr
