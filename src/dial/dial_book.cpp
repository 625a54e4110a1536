#include "dial/dial_book.hpp"

#include <algorithm>

namespace dep2p::connmgr::detail {

DialBook::DialBook(const DialConfig& config, std::uint64_t seed)
    : backoff_(BackoffTable::rules_of(config), seed),
      dial_timeout_(config.dial_timeout),
      offline_after_(config.offline_after_failures) {}

DialBook::Verdict DialBook::begin(const NodeId& peer, TimePoint now) {
  Verdict verdict;
  if (auto backoff = in_backoff(peer, now)) return *backoff;
  auto [it, fresh] = in_flight_.try_emplace(peer, now + dial_timeout_);
  if (!fresh) {
    if (it->second > now) {
      verdict.what = Verdict::pending;
      verdict.until = it->second;
      return verdict;
    }
    // The earlier mark lapsed: this dial replaces it.
    if (!waiters_.empty()) release_waiters(peer, DialOutcome::lapsed);
    it->second = now + dial_timeout_;
  } else if (in_flight_.size() >= sweep_at_) {
    sweep_flights(now);
  }
  return verdict;
}

void DialBook::sweep_flights(TimePoint now) {
  if (!waiters_.empty()) lapse_waited(now);
  boost::unordered::erase_if(in_flight_, [&](const auto& kv) { return kv.second <= now; });
  sweep_at_ = std::max<std::size_t>(64, 2 * in_flight_.size());
}

std::optional<TimePoint> DialBook::failed(const NodeId& peer, const Endpoint* address,
                                          DialFailure kind, TimePoint now, std::size_t connections,
                                          bool peer_connected) {
  if (address == nullptr) end_flight(peer, DialOutcome::failed);
  if (address == nullptr && peer_connected) return std::nullopt;
  if (!offline() && offline_after_ > 0) {
    // Failures in a row with no connection open; one while a connection is open ends the
    // streak (the node is evidently online).
    if (connections > 0) {
      failures_in_row_ = 0;
    } else if (++failures_in_row_ >= offline_after_) {
      inferred_down_ = true;
    }
  }
  if (offline()) {
    ++failures_offline_;
    return std::nullopt;
  }
  return backoff_.fail(peer, address, kind, now);
}

void DialBook::succeeded(const NodeId& peer, TimePoint now) {
  end_flight(peer, DialOutcome::succeeded);
  backoff_.clear(peer);
  failures_in_row_ = 0;
  if (inferred_down_) {
    inferred_down_ = false;
    if (!reported_down_) backoff_.lift_all(now);
  }
}

void DialBook::network_changed(bool up, TimePoint now) {
  const bool was_offline = offline();
  reported_down_ = !up;
  if (up) {
    inferred_down_ = false;
    failures_in_row_ = 0;
    if (was_offline) backoff_.lift_all(now);
  }
}

std::size_t DialBook::dials_in_flight(TimePoint now) const {
  return static_cast<std::size_t>(
      std::ranges::count_if(in_flight_, [&](const auto& kv) { return kv.second > now; }));
}

std::optional<TimePoint> DialBook::wait(const NodeId& peer, Waiter waiter, TimePoint now) {
  auto it = in_flight_.find(peer);
  if (it == in_flight_.end() || it->second <= now) return std::nullopt;
  waiters_.emplace_back(peer, std::move(waiter));
  return it->second;
}

void DialBook::release_waiters(const NodeId& peer, DialOutcome outcome) {
  for (std::size_t i = 0; i < waiters_.size();) {
    if (waiters_[i].first == peer) {
      ready_.push_back(Ready{std::move(waiters_[i].second), outcome});
      waiters_[i] = std::move(waiters_.back());
      waiters_.pop_back();
    } else {
      ++i;
    }
  }
}

std::optional<TimePoint> DialBook::lapse_waited(TimePoint now) {
  std::optional<TimePoint> next;
  for (std::size_t i = 0; i < waiters_.size();) {
    auto it = in_flight_.find(waiters_[i].first);
    if (it == in_flight_.end() || it->second <= now) {
      // Lapsed (or ended without a word, which cannot happen while it has waiters).
      if (it != in_flight_.end()) in_flight_.erase(it);
      ready_.push_back(Ready{std::move(waiters_[i].second), DialOutcome::lapsed});
      waiters_[i] = std::move(waiters_.back());
      waiters_.pop_back();
      continue;
    }
    next = next ? std::min(*next, it->second) : it->second;
    ++i;
  }
  return next;
}

void DialBook::cancel_waiters() {
  for (auto& [peer, waiter] : waiters_)
    ready_.push_back(Ready{std::move(waiter), DialOutcome::canceled});
  waiters_.clear();
}

}  // namespace dep2p::connmgr::detail
