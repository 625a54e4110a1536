// Hooks: the host's before_connect and after_handshake checks (docs/design.md, "Lifecycle,
// hooks and events"), run in the order added, with no manager lock held; the first
// rejection wins, and an exception rejects.
//
//   Subscription s = hooks.add(hooks.before_connect, std::move(hook));
//   Decision d = hooks.run(hooks.before_connect, logger, peer, remote);
//
// Thread safety: every method may be called from any thread; the lists have their own
// lock, taken alone and never while a hook runs. A hook may add or remove hooks.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "dep2p/connmgr/connection_manager.hpp"

namespace dep2p::connmgr::detail {

// Runs one check of host code (a gater intercept, a hook); an exception denies.
template <class F>
Decision run_guarded(spdlog::logger& logger, const char* what, F&& check) {
  try {
    return check();
  } catch (const std::exception& e) {
    logger.warn("connmgr: {} threw, denying: {}", what, e.what());
    return Decision::deny(std::string(what) + " failed: " + e.what());
  } catch (...) {
    logger.warn("connmgr: {} threw a non-standard exception, denying", what);
    return Decision::deny(std::string(what) + " failed");
  }
}

class Hooks {
 public:
  template <class Hook>
  struct List {
    std::vector<std::pair<std::uint64_t, Hook>> hooks;  // in the order added
    std::atomic<std::size_t> count{0};  // hooks.size(), read without the lock on hot paths
  };
  using BeforeConnectList = List<ConnectionManager::BeforeConnectHook>;
  using AfterHandshakeList = List<ConnectionManager::AfterHandshakeHook>;

  BeforeConnectList& before_connect() { return state_->before_connect; }
  AfterHandshakeList& after_handshake() { return state_->after_handshake; }

  // Adds a hook; the Subscription removes it.
  template <class Hook>
  Subscription add(List<Hook>& list, Hook hook) {
    if (!hook) return {};
    std::lock_guard lock(state_->mutex);
    const std::uint64_t id = ++state_->next_id;
    list.hooks.emplace_back(id, std::move(hook));
    list.count.store(list.hooks.size(), std::memory_order_release);
    return Subscription([weak = std::weak_ptr<State>(state_), &list, id] {
      if (auto state = weak.lock()) {
        std::lock_guard inner(state->mutex);
        std::erase_if(list.hooks, [id](const auto& h) { return h.first == id; });
        list.count.store(list.hooks.size(), std::memory_order_release);
      }
    });
  }

  // Runs the hooks in order until one rejects.
  template <class Hook, class... Args>
  Decision run(List<Hook>& list, spdlog::logger& logger, const Args&... args) {
    if (list.count.load(std::memory_order_acquire) == 0) return Decision::allow();
    std::vector<Hook> copies;
    {
      std::lock_guard lock(state_->mutex);
      if (list.hooks.empty()) return Decision::allow();
      for (const auto& [id, hook] : list.hooks) copies.push_back(hook);
    }
    for (const Hook& hook : copies) {
      Decision decision = run_guarded(logger, "hook", [&] { return hook(args...); });
      if (!decision) return decision;
    }
    return Decision::allow();
  }

 private:
  struct State {
    std::mutex mutex;  // guards the lists' vectors and next_id
    std::uint64_t next_id = 0;
    BeforeConnectList before_connect;
    AfterHandshakeList after_handshake;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace dep2p::connmgr::detail
