#include "dep2p/connmgr/decay.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "base/token_owners.hpp"
#include "dep2p/connmgr/error.hpp"

namespace dep2p::connmgr {
namespace {

int saturate(std::int64_t v) {
  constexpr std::int64_t lo = std::numeric_limits<int>::min();
  constexpr std::int64_t hi = std::numeric_limits<int>::max();
  return static_cast<int>(v < lo ? lo : (v > hi ? hi : v));
}

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace

Decay Decay::none() { return Decay(None{}); }
Decay Decay::fixed(int amount) { return Decay(Fixed{amount}); }
Decay Decay::linear(double coefficient) {
  if (!(coefficient > 0.0 && coefficient < 1.0)) {
    throw std::invalid_argument("Decay::linear: coefficient must be in (0, 1)");
  }
  return Decay(Linear{coefficient});
}
Decay Decay::expire_when_inactive(Duration inactivity) {
  if (inactivity.count() <= 0) {
    throw std::invalid_argument("Decay::expire_when_inactive: inactivity must be positive");
  }
  return Decay(ExpireWhenInactive{inactivity});
}
Decay Decay::custom(DecayFn fn) {
  if (!fn) throw std::invalid_argument("Decay::custom: empty function");
  return Decay(std::move(fn));
}

DecayResult Decay::apply(const DecayingValue& v) const {
  return std::visit(Overloaded{
                        [&](const None&) {
                          return DecayResult{v.value, false};
                        },
                        [&](const Fixed& f) {
                          const int after = saturate(static_cast<std::int64_t>(v.value) - f.amount);
                          return DecayResult{after, after <= 0};
                        },
                        [&](const Linear& l) {
                          const double scaled =
                              std::floor(static_cast<double>(v.value) * l.coefficient);
                          const int after = saturate(static_cast<std::int64_t>(scaled));
                          return DecayResult{after, after <= 0};
                        },
                        [&](const ExpireWhenInactive& e) {
                          return DecayResult{v.value, v.now - v.last_visit >= e.inactivity};
                        },
                        [&](const DecayFn& fn) { return fn(v); },
                    },
                    rule_);
}

Bump Bump::sum() { return Bump(Sum{}); }
Bump Bump::bounded_sum(int min, int max) {
  if (min > max) throw std::invalid_argument("Bump::bounded_sum: min must not exceed max");
  return Bump(BoundedSum{min, max});
}
Bump Bump::overwrite() { return Bump(Overwrite{}); }
Bump Bump::custom(BumpFn fn) {
  if (!fn) throw std::invalid_argument("Bump::custom: empty function");
  return Bump(std::move(fn));
}

int Bump::apply(const DecayingValue& v, int delta) const {
  return std::visit(
      Overloaded{
          [&](const Sum&) { return saturate(static_cast<std::int64_t>(v.value) + delta); },
          [&](const BoundedSum& b) {
            const std::int64_t sum = static_cast<std::int64_t>(v.value) + delta;
            return static_cast<int>(sum < b.min ? b.min : (sum > b.max ? b.max : sum));
          },
          [&](const Overwrite&) { return delta; },
          [&](const BumpFn& fn) { return fn(v, delta); },
      },
      rule_);
}

DecayingTag::DecayingTag(detail::TokenKey, std::weak_ptr<detail::DecayingTagOwner> owner,
                         std::uint32_t tag, std::uint64_t generation, std::string name,
                         Duration interval)
    : owner_(std::move(owner)),
      registered_(true),
      tag_(tag),
      generation_(generation),
      name_(std::move(name)),
      interval_(interval) {}

std::error_code DecayingTag::bump(const NodeId& peer, int delta) {
  auto owner = owner_.lock();
  if (!registered_ || !owner) return Errc::tag_closed;
  return owner->bump_decaying(tag_, generation_, peer, delta);
}

std::error_code DecayingTag::remove(const NodeId& peer) {
  auto owner = owner_.lock();
  if (!registered_ || !owner) return Errc::tag_closed;
  return owner->remove_decaying(tag_, generation_, peer);
}

void DecayingTag::close() {
  if (auto owner = owner_.lock(); registered_ && owner) owner->close_decaying(tag_, generation_);
}

}  // namespace dep2p::connmgr
