// Token buckets for the admission rate limits of docs/design.md, "Admission": new inbound
// connections per subnet (SubnetRateLimiter, defaults in docs/configuration.md) and outbound dials
// overall (OutboundDialLimiter). Written here because nothing in Boost fits.
//
//   SubnetRateLimiter inbound(limits.inbound_rate);
//   if (auto refusal = inbound.admit(remote.address, now))
//     return refuse(*refusal);  // "inbound rate limit: subnet 10.1.2.0/24 over 10/s (burst 50)"
//
// A bucket is kept as one time point, the moment it will be full again (the "theoretical
// arrival time" of GCRA, which is exactly a token bucket with continuous refill): a take
// is allowed while that moment is at most (burst - 1) / rate ahead of now, and pushes it
// 1 / rate further. Integer clock arithmetic keeps virtual-time tests exact (10/s is
// exactly 100 ms a token), a full bucket is simply one whose moment has passed, and a
// table of buckets is a table of time points. Time is always passed in: no clock is read.
//
// Thread safety: none inside. The owner's lock protects these.
#pragma once

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <boost/asio/ip/address.hpp>
#include <boost/unordered/unordered_flat_map.hpp>

#include "base/rate_rules.hpp"
#include "dep2p/connmgr/limits.hpp"
#include "dep2p/connmgr/types.hpp"
#include "net/prefix.hpp"

namespace dep2p::connmgr::detail {

// "10" or "2.5": the shortest text that reads back as the same number.
inline std::string format_number(double value) {
  std::array<char, 32> buffer{};
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  return std::string(buffer.data(), result.ptr);
}

// "10/s (burst 50)", for refusal messages.
inline std::string describe(const Rate& rate) {
  return format_number(rate.per_second) + "/s (burst " + format_number(rate.burst) + ")";
}

// The arithmetic of one rate, applied to a bucket's state: the time point at which the
// bucket is full again (TimePoint::min() for a bucket that has always been full).
class BucketRule {
 public:
  static constexpr TimePoint kFull = TimePoint::min();

  BucketRule() = default;  // disabled: admits everything
  // REQUIRES: validate_rate(rate) passes.
  explicit BucketRule(const Rate& rate) : rate_(rate), enabled_(rate.per_second > 0) {
    if (!enabled_) return;
    // Rates so slow that a token takes decades would overflow the clock's arithmetic;
    // capping each span at 50 years changes nothing anyone could observe.
    const std::chrono::duration<double> cap = std::chrono::hours(24 * 365 * 50);
    const std::chrono::duration<double> interval(1.0 / rate.per_second);
    const std::chrono::duration<double> tolerance((rate.burst - 1.0) / rate.per_second);
    interval_ = std::chrono::round<Duration>(std::min(interval, cap));
    tolerance_ = std::chrono::round<Duration>(std::min(tolerance, cap));
  }

  bool enabled() const noexcept { return enabled_; }
  const Rate& rate() const noexcept { return rate_; }

  // Whether a bucket in state `full_at` holds a whole token at `now`.
  bool admits(TimePoint full_at, TimePoint now) const noexcept {
    return !enabled_ || std::max(full_at, now) - now <= tolerance_;
  }
  // The state after taking one token. REQUIRES: admits(full_at, now).
  TimePoint charge(TimePoint full_at, TimePoint now) const noexcept {
    return enabled_ ? std::max(full_at, now) + interval_ : full_at;
  }
  // Tokens held at `now` (fractions included); infinite when disabled.
  double tokens(TimePoint full_at, TimePoint now) const noexcept {
    if (!enabled_) return std::numeric_limits<double>::infinity();
    if (full_at <= now) return rate_.burst;
    const std::chrono::duration<double> deficit = full_at - now;
    return std::max(0.0, rate_.burst - deficit.count() * rate_.per_second);
  }

 private:
  Rate rate_;
  bool enabled_ = false;
  Duration interval_{};   // time to earn one token
  Duration tolerance_{};  // how far ahead of now a bucket may be full again and still admit
};

// One bucket: `rate.per_second` tokens a second, at most `rate.burst`, full at the start.
class TokenBucket {
 public:
  TokenBucket() = default;  // disabled: admits everything
  // Throws std::invalid_argument naming `field` for an unusable rate (see validate_rate).
  explicit TokenBucket(const Rate& rate, std::string_view field = "rate")
      : rule_(checked(rate, field)) {}

  bool enabled() const noexcept { return rule_.enabled(); }
  const Rate& rate() const noexcept { return rule_.rate(); }

  // Takes one token if there is one. A refusal changes nothing.
  bool take(TimePoint now) noexcept {
    if (!rule_.admits(full_at_, now)) return false;
    full_at_ = rule_.charge(full_at_, now);
    return true;
  }
  bool can_take(TimePoint now) const noexcept { return rule_.admits(full_at_, now); }
  double tokens(TimePoint now) const noexcept { return rule_.tokens(full_at_, now); }
  bool full(TimePoint now) const noexcept { return full_at_ <= now; }

 private:
  static Rate checked(const Rate& rate, std::string_view field) {
    validate_rate(rate, field);
    return rate;
  }

  BucketRule rule_;
  TimePoint full_at_ = BucketRule::kFull;
};

// All outbound dials together: one bucket for Limits::outbound_dials.
class OutboundDialLimiter {
 public:
  OutboundDialLimiter() = default;  // disabled
  // Throws std::invalid_argument naming limits.outbound_dials for an unusable rate.
  explicit OutboundDialLimiter(const Rate& rate) : bucket_(rate, "limits.outbound_dials") {}

  bool enabled() const noexcept { return bucket_.enabled(); }
  bool take(TimePoint now) noexcept { return bucket_.take(now); }
  // take() with the refusal spelled out: "outbound dial rate limit: over 5/s (burst 10)".
  std::optional<std::string> admit(TimePoint now) {
    if (bucket_.take(now)) return std::nullopt;
    return "outbound dial rate limit: over " + describe(bucket_.rate());
  }
  double tokens(TimePoint now) const noexcept { return bucket_.tokens(now); }

 private:
  TokenBucket bucket_;
};

// New inbound connections per subnet: each address is charged one token in the bucket of
// each of its two prefixes (IPv4 /24 and /16, IPv6 /64 and /48), and refused, charging
// nothing, when either is empty. A bucket is created on first use, full.
//
// The table holds at most max_buckets buckets. A full bucket is the same as an absent one,
// so when a new subnet needs room the full ones are dropped. If none is full the new
// subnet is refused rather than another bucket evicted: eviction would let an attacker
// who floods fresh subnets (cheap in IPv6) reset the buckets of the subnets being limited,
// its own included, while refusing only delays newcomers until some bucket refills (a few
// seconds at the defaults) and leaves every existing limit intact.
class SubnetRateLimiter {
  // Bucket of each prefix: the time it is full again (see BucketRule).
  using Buckets = boost::unordered_flat_map<Prefix, TimePoint, PrefixHash>;

 public:
  // Throws std::invalid_argument naming the field (e.g. limits.inbound_rate.ipv4_24) for
  // an unusable rate.
  explicit SubnetRateLimiter(const InboundRates& rates = {})
      : v4_levels_{{{24, rule(rates.ipv4_24, "limits.inbound_rate.ipv4_24")},
                    {16, rule(rates.ipv4_16, "limits.inbound_rate.ipv4_16")}}},
        v6_levels_{{{64, rule(rates.ipv6_64, "limits.inbound_rate.ipv6_64")},
                    {48, rule(rates.ipv6_48, "limits.inbound_rate.ipv6_48")}}},
        max_buckets_(rates.max_buckets),
        exempt_loopback_(rates.exempt_loopback) {}

  // Charges one token to each bucket of the address's subnets, or returns why not:
  // "inbound rate limit: subnet 10.1.2.0/24 over 10/s (burst 50)", naming the narrowest
  // empty bucket, or a full table. A refusal changes no bucket.
  std::optional<std::string> admit(const boost::asio::ip::address& address, TimePoint now) {
    const Prefix host = host_prefix(address);
    if (exempt_loopback_ && is_loopback(host)) return std::nullopt;
    struct Step {
      const Level* level;
      Prefix prefix;
      TimePoint full_at;
      bool present;
      Buckets::iterator at;  // valid when present, until the first insertion below
    };
    std::array<Step, 2> steps{};
    std::size_t count = 0;
    std::size_t absent = 0;
    for (const Level& level : family_levels(host.family)) {
      if (!level.rule.enabled()) continue;
      const Prefix prefix = prefix_of(host, level.length);
      const auto it = buckets_.find(prefix);
      const bool present = it != buckets_.end();
      const TimePoint full_at = present ? it->second : BucketRule::kFull;
      if (!level.rule.admits(full_at, now)) {
        return "inbound rate limit: subnet " + to_string(prefix) + " over " +
               describe(level.rule.rate());
      }
      steps[count++] = Step{&level, prefix, full_at, present, it};
      if (!present) ++absent;
    }
    if (absent > 0 && buckets_.size() + absent > max_buckets_) {
      if (now >= earliest_full_ && now >= next_sweep_) sweep(now);
      if (buckets_.size() + absent > max_buckets_) {
        const Step& first_new = steps[steps[0].present ? 1 : 0];
        return "inbound rate limit: " + std::to_string(buckets_.size()) + " of " +
               std::to_string(max_buckets_) + " subnet buckets busy, none refilled; new subnet " +
               to_string(first_new.prefix) + " refused";
      }
    }
    // Existing buckets first, through the iterators found above (no second lookup); new
    // ones after, since an insertion may rehash and move the others.
    for (std::size_t i = 0; i < count; ++i) {
      if (!steps[i].present) continue;
      const TimePoint full_at = steps[i].level->rule.charge(steps[i].full_at, now);
      steps[i].at->second = full_at;
      earliest_full_ = std::min(earliest_full_, full_at);
    }
    for (std::size_t i = 0; i < count; ++i) {
      if (steps[i].present) continue;
      const TimePoint full_at = steps[i].level->rule.charge(steps[i].full_at, now);
      buckets_.emplace(steps[i].prefix, full_at);
      earliest_full_ = std::min(earliest_full_, full_at);
    }
    return std::nullopt;
  }

  // Drops every bucket that has refilled completely; returns how many. admit() calls it
  // when the table is full; a host may also call it from a timer to keep the table small.
  std::size_t sweep(TimePoint now) {
    TimePoint earliest = TimePoint::max();
    const std::size_t dropped = boost::unordered::erase_if(buckets_, [&](const auto& bucket) {
      if (bucket.second <= now) return true;
      earliest = std::min(earliest, bucket.second);
      return false;
    });
    earliest_full_ = earliest;
    next_sweep_ = now + kSweepSpacing;
    return dropped;
  }

  // Buckets held. Refilled ones count until a sweep drops them.
  std::size_t size() const noexcept { return buckets_.size(); }
  // Tokens in the bucket of `prefix` at `now` (the burst when it has none); nullopt when
  // no enabled limit applies to a prefix of that family and length.
  std::optional<double> tokens(const Prefix& prefix, TimePoint now) const {
    for (const Level& level : family_levels(prefix.family)) {
      if (level.length != prefix.length || !level.rule.enabled()) continue;
      const auto it = buckets_.find(prefix);
      return level.rule.tokens(it == buckets_.end() ? BucketRule::kFull : it->second, now);
    }
    return std::nullopt;
  }

 private:
  struct Level {
    unsigned length;
    BucketRule rule;
  };
  // A full sweep walks the whole table; when no bucket refills (an ongoing flood) this
  // spacing bounds that work to ten sweeps a second, and delays a newcomer by at most
  // 100 ms more than strictly needed, well under any sensible bucket's refill time.
  static constexpr Duration kSweepSpacing = std::chrono::milliseconds(100);

  static BucketRule rule(const Rate& rate, std::string_view field) {
    validate_rate(rate, field);
    return BucketRule(rate);
  }
  // The levels of one family, narrowest first so a refusal names the narrowest bucket.
  const std::array<Level, 2>& family_levels(Family family) const {
    return family == Family::v4 ? v4_levels_ : v6_levels_;
  }

  std::array<Level, 2> v4_levels_;  // /24, /16
  std::array<Level, 2> v6_levels_;  // /64, /48
  std::size_t max_buckets_;
  bool exempt_loopback_;
  // Subnet prefix -> the moment its bucket is full again. Full buckets may linger until
  // a sweep; they behave exactly like absent ones.
  Buckets buckets_;
  // No bucket in the table is full before earliest_full_ (a lower bound: charging only
  // moves a bucket's moment later), so a sweep before then would find nothing.
  TimePoint earliest_full_ = TimePoint::max();
  TimePoint next_sweep_ = TimePoint::min();  // kSweepSpacing after the last sweep
};

}  // namespace dep2p::connmgr::detail
