#include "dial/redial_queue.hpp"

#include <algorithm>

namespace dep2p::connmgr::detail {

RedialQueue::Settings RedialQueue::settings_of(const DialConfig& config) {
  Settings s;
  s.reconnect_attempts = config.reconnect_attempts;
  s.max_parallel = std::max<std::size_t>(config.max_parallel_dials, 1);
  s.dial_timeout = config.dial_timeout;
  s.direct_interval = config.direct_path_interval;
  s.direct_interval_max = std::max(config.direct_path_interval_max, config.direct_path_interval);
  // A failed reconnect that started no backoff (the node is offline) waits at least this.
  s.retry_floor = std::max<Duration>(config.error_backoff, std::chrono::seconds(1));
  return s;
}

void RedialQueue::wait(const NodeId& peer, Job& job, TimePoint due) {
  job.in_flight = false;
  job.due = due;
  job.serial = ++next_serial_;
  waiting_[job.priority].emplace(WaitKey{due, job.serial}, peer);
}

void RedialQueue::unwait(const Job& job) {
  if (job.in_flight) {
    flying_.erase(WaitKey{job.due, job.serial});
    --in_flight_;
  } else {
    waiting_[job.priority].erase(WaitKey{job.due, job.serial});
  }
}

bool RedialQueue::reconnect(const NodeId& peer, std::uint8_t priority,
                            std::vector<Endpoint> addresses, TimePoint now) {
  if (settings_.reconnect_attempts == 0) return false;
  if (auto it = jobs_.find(peer); it != jobs_.end()) {
    Job& job = it->second;
    if (job.purpose == DialPurpose::reconnect) {
      if (!addresses.empty()) job.addresses = std::move(addresses);
      return false;
    }
    // A direct-path job becomes a reconnect: its dial in flight, if any, finishes unheard.
    unwait(job);
    jobs_.erase(it);
  }
  Job& job = jobs_[peer];
  job.purpose = DialPurpose::reconnect;
  job.priority = priority;
  job.addresses = std::move(addresses);
  wait(peer, job, now);
  return true;
}

bool RedialQueue::want_direct(const NodeId& peer, TimePoint now) {
  if (settings_.direct_interval.count() <= 0 || jobs_.contains(peer)) return false;
  Job& job = jobs_[peer];
  job.purpose = DialPurpose::direct_path;
  job.priority = kDirectPath;
  wait(peer, job, now);
  return true;
}

std::optional<RedialQueue::Ended> RedialQueue::cancel(const NodeId& peer) {
  if (jobs_.empty()) return std::nullopt;
  auto it = jobs_.find(peer);
  if (it == jobs_.end()) return std::nullopt;
  const Ended ended{it->second.purpose, it->second.in_flight, it->second.attempts};
  unwait(it->second);
  jobs_.erase(it);
  return ended;
}

void RedialQueue::cancel_direct(const NodeId& peer) {
  if (jobs_.empty()) return;
  auto it = jobs_.find(peer);
  if (it == jobs_.end() || it->second.purpose != DialPurpose::direct_path) return;
  unwait(it->second);
  jobs_.erase(it);
}

void RedialQueue::clear() {
  jobs_.clear();
  for (auto& w : waiting_) w.clear();
  flying_.clear();
  in_flight_ = 0;
}

std::vector<RedialQueue::Started> RedialQueue::take(
    TimePoint now, const std::function<Admit(const NodeId&, DialPurpose)>& admit) {
  std::vector<Started> out;
  for (auto& waiting : waiting_) {
    while (in_flight_ < settings_.max_parallel && !waiting.empty() &&
           waiting.begin()->first.first <= now) {
      const NodeId peer = waiting.begin()->second;
      waiting.erase(waiting.begin());
      Job& job = jobs_.find(peer)->second;
      const Admit verdict = admit(peer, job.purpose);
      if (verdict.what == Admit::drop) {
        jobs_.erase(peer);
        continue;
      }
      if (verdict.what == Admit::later) {
        // Never due again at `now`: that would take it again in this same call.
        wait(peer, job, std::max(verdict.until, now + std::chrono::milliseconds(1)));
        continue;
      }
      job.in_flight = true;
      ++job.attempts;
      job.serial = ++next_serial_;
      job.due = now + settings_.dial_timeout;
      flying_.emplace(WaitKey{job.due, job.serial}, peer);
      ++in_flight_;
      out.push_back({DialRequest{peer, job.purpose, job.addresses, job.attempts}, job.serial});
    }
  }
  return out;
}

std::vector<std::pair<NodeId, std::uint64_t>> RedialQueue::lapsed(TimePoint now) const {
  std::vector<std::pair<NodeId, std::uint64_t>> out;
  for (auto it = flying_.begin(); it != flying_.end() && it->first.first <= now; ++it) {
    out.emplace_back(it->second, it->first.second);
  }
  return out;
}

std::optional<DialPurpose> RedialQueue::flying(const NodeId& peer, std::uint64_t serial) const {
  if (jobs_.empty()) return std::nullopt;
  auto it = jobs_.find(peer);
  if (it == jobs_.end() || !it->second.in_flight || it->second.serial != serial) {
    return std::nullopt;
  }
  return it->second.purpose;
}

std::optional<RedialQueue::Finished> RedialQueue::finished(const NodeId& peer, std::uint64_t serial,
                                                           std::optional<DialFailure> failure,
                                                           TimePoint now,
                                                           std::optional<TimePoint> backoff_end) {
  if (!flying(peer, serial)) return std::nullopt;
  auto it = jobs_.find(peer);
  Job& job = it->second;
  unwait(job);
  job.in_flight = false;
  const Finished done{job.purpose, End::retry, job.attempts};
  if (job.purpose == DialPurpose::reconnect) {
    if (!failure) {
      jobs_.erase(it);
      return Finished{done.purpose, End::done, done.attempt};
    }
    ++job.failures;
    if (job.attempts >= settings_.reconnect_attempts) {
      jobs_.erase(it);
      return Finished{done.purpose, End::gave_up, done.attempt};
    }
    const TimePoint due =
        backoff_end && *backoff_end > now ? *backoff_end : now + settings_.retry_floor;
    wait(peer, job, due);
    return done;
  }
  // A direct path: asked again one interval on, doubled for each failure in a row past
  // the first, until a direct connection ends the job.
  job.failures = failure ? job.failures + 1 : 0;
  Duration next = settings_.direct_interval;
  for (std::uint32_t i = 1; i < job.failures && next < settings_.direct_interval_max; ++i) {
    next *= 2;
  }
  wait(peer, job, now + std::min(next, settings_.direct_interval_max));
  return done;
}

void RedialQueue::all_due(TimePoint now) {
  for (std::uint8_t p : {kProtected, kHeld}) {
    std::map<WaitKey, NodeId> waiting;
    waiting.swap(waiting_[p]);
    for (auto& [key, peer] : waiting) {
      Job& job = jobs_.find(peer)->second;
      const TimePoint due = std::min(key.first, now);
      job.due = due;
      waiting_[p].emplace(WaitKey{due, key.second}, peer);
    }
  }
}

std::optional<TimePoint> RedialQueue::next_wake(bool dialing) const {
  std::optional<TimePoint> wake;
  const auto earlier = [&](TimePoint t) {
    if (!wake || t < *wake) wake = t;
  };
  if (!flying_.empty()) earlier(flying_.begin()->first.first);
  if (dialing && in_flight_ < settings_.max_parallel) {
    for (const auto& waiting : waiting_) {
      if (!waiting.empty()) earlier(waiting.begin()->first.first);
    }
  }
  return wake;
}

std::optional<DialPurpose> RedialQueue::job_of(const NodeId& peer) const {
  if (jobs_.empty()) return std::nullopt;
  auto it = jobs_.find(peer);
  if (it == jobs_.end()) return std::nullopt;
  return it->second.purpose;
}

}  // namespace dep2p::connmgr::detail
