// Decaying tags: tags whose values fade on a schedule unless bumped (docs/design.md, "Pool and
// tags"), as pubsub and DHT scoring use them. A Decay says what happens to a value at each
// interval, a Bump what a bump does; the built-in ones are plain arithmetic that the manager
// applies under its own lock, custom functions run outside it.
//
//   std::error_code ec;
//   auto tag = manager.register_decaying_tag("pubsub", std::chrono::minutes(1),
//                                            Decay::fixed(1), Bump::bounded_sum(0, 100), ec);
//   tag.bump(peer, 10);   // value 10, minus 1 per minute, removed at 0
//   tag.close();          // removes it from every peer; the name can be registered again
//
// Thread safety: Decay and Bump are values. DecayingTag is a copyable handle whose methods
// are thread-safe; every copy refers to the same registration.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <variant>

#include "dep2p/connmgr/export.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {

// A decaying tag's value on one peer, as decay and bump functions see it.
struct DecayingValue {
  int value = 0;
  TimePoint added{};       // when the peer first got this tag
  TimePoint last_visit{};  // the last bump (or `added`)
  TimePoint now{};         // the time of the tick or bump
};

struct DecayResult {
  int value = 0;
  bool remove = false;  // drop the tag from the peer
};

using DecayFn = std::function<DecayResult(const DecayingValue&)>;
using BumpFn = std::function<int(const DecayingValue&, int delta)>;

// What one interval does to a value.
class DEP2P_CONNMGR_EXPORT Decay {
 public:
  // The value stays; the tag is never removed by decay.
  static Decay none();
  // Subtracts `amount`; removed once the value is <= 0.
  static Decay fixed(int amount);
  // Multiplies by `coefficient` (0 < c < 1) and rounds down; removed once <= 0.
  static Decay linear(double coefficient);
  // The value stays until `inactivity` has passed since the last bump; then removed
  // (at the first tick with now - last_visit >= inactivity).
  static Decay expire_when_inactive(Duration inactivity);
  // Your function, called outside the manager's lock once per due interval per peer.
  static Decay custom(DecayFn fn);

  struct None {};
  struct Fixed {
    int amount;
  };
  struct Linear {
    double coefficient;
  };
  struct ExpireWhenInactive {
    Duration inactivity;
  };
  using Rule = std::variant<None, Fixed, Linear, ExpireWhenInactive, DecayFn>;
  const Rule& rule() const { return rule_; }
  bool is_custom() const { return std::holds_alternative<DecayFn>(rule_); }
  // Applies a built-in rule. REQUIRES: !is_custom().
  DecayResult apply(const DecayingValue& value) const;

 private:
  explicit Decay(Rule rule) : rule_(std::move(rule)) {}
  Rule rule_;
};

// What a bump does to a value.
class DEP2P_CONNMGR_EXPORT Bump {
 public:
  // value + delta (saturating at the int range).
  static Bump sum();
  // value + delta, clamped to [min, max].
  static Bump bounded_sum(int min, int max);
  // delta replaces the value.
  static Bump overwrite();
  // Your function, called outside the manager's lock; it may run again if the peer's
  // value of this tag changed meanwhile.
  static Bump custom(BumpFn fn);

  struct Sum {};
  struct BoundedSum {
    int min;
    int max;
  };
  struct Overwrite {};
  using Rule = std::variant<Sum, BoundedSum, Overwrite, BumpFn>;
  const Rule& rule() const { return rule_; }
  bool is_custom() const { return std::holds_alternative<BumpFn>(rule_); }
  // Applies a built-in rule. REQUIRES: !is_custom().
  int apply(const DecayingValue& value, int delta) const;

 private:
  explicit Bump(Rule rule) : rule_(std::move(rule)) {}
  Rule rule_;
};

namespace detail {
struct TokenKey;
class DecayingTagOwner;
}  // namespace detail

// A registered decaying tag. A default-constructed handle is not valid; methods on it,
// and on a closed tag, return Errc::tag_closed. Only the manager makes a valid one.
class DEP2P_CONNMGR_EXPORT DecayingTag {
 public:
  DecayingTag() = default;

  // Applies the tag's bump to the peer's value (0 when the peer does not hold the tag
  // yet). Tagging a peer without connections creates a temporary entry, as tag_peer does.
  std::error_code bump(const NodeId& peer, int delta);
  // Drops the tag from the peer. Errc::unknown_peer if the peer does not hold it.
  std::error_code remove(const NodeId& peer);
  // Removes the tag from every peer and frees its name. Idempotent.
  void close();

  bool valid() const { return registered_; }
  const std::string& name() const { return name_; }
  // The interval in force (the requested one raised to the decay resolution).
  Duration interval() const { return interval_; }

  // Library-internal: the manager's constructor (a host cannot name the key).
  DecayingTag(detail::TokenKey key, std::weak_ptr<detail::DecayingTagOwner> owner,
              std::uint32_t tag, std::uint64_t generation, std::string name, Duration interval);

 private:
  std::weak_ptr<detail::DecayingTagOwner> owner_;
  bool registered_ = false;
  std::uint32_t tag_ = 0;
  std::uint64_t generation_ = 0;
  std::string name_;
  Duration interval_{};
};

}  // namespace dep2p::connmgr
