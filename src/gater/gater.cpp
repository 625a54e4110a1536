// Gater's defaults (every intercept allows) and CompositeGater (the first denial wins).
#include "dep2p/connmgr/gater.hpp"

#include <exception>

#include <spdlog/spdlog.h>

#include "dep2p/connmgr/connection.hpp"

namespace dep2p::connmgr {

// --- Gater defaults -------------------------------------------------------------------

Decision Gater::intercept_peer_dial(const NodeId&) { return Decision::allow(); }
Decision Gater::intercept_addr_dial(const NodeId&, const Endpoint&) { return Decision::allow(); }
Decision Gater::intercept_accept(const Endpoint&) { return Decision::allow(); }
Decision Gater::intercept_secured(Direction, const NodeId&, const Endpoint&) {
  return Decision::allow();
}
Decision Gater::intercept_upgraded(const Connection&) { return Decision::allow(); }
Subscription Gater::on_tightened(std::function<void()>) { return Subscription{}; }

// --- CompositeGater -------------------------------------------------------------------

namespace {

template <class Ask>
Decision first_denial(const std::vector<std::shared_ptr<Gater>>& gaters, Ask&& ask) {
  for (const auto& gater : gaters) {
    Decision decision = ask(*gater);
    if (!decision) return decision;
  }
  return Decision::allow();
}

}  // namespace

CompositeGater::CompositeGater(std::vector<std::shared_ptr<Gater>> gaters)
    : gaters_(std::move(gaters)) {
  for (std::size_t i = 0; i < gaters_.size(); ++i) {
    if (!gaters_[i]) {
      throw std::invalid_argument("CompositeGater: gaters[" + std::to_string(i) + "] is null");
    }
  }
}

Decision CompositeGater::intercept_peer_dial(const NodeId& peer) {
  return first_denial(gaters_, [&](Gater& g) { return g.intercept_peer_dial(peer); });
}
Decision CompositeGater::intercept_addr_dial(const NodeId& peer, const Endpoint& remote) {
  return first_denial(gaters_, [&](Gater& g) { return g.intercept_addr_dial(peer, remote); });
}
Decision CompositeGater::intercept_accept(const Endpoint& remote) {
  return first_denial(gaters_, [&](Gater& g) { return g.intercept_accept(remote); });
}
Decision CompositeGater::intercept_secured(Direction direction, const NodeId& peer,
                                           const Endpoint& remote) {
  return first_denial(gaters_,
                      [&](Gater& g) { return g.intercept_secured(direction, peer, remote); });
}
Decision CompositeGater::intercept_upgraded(const Connection& connection) {
  return first_denial(gaters_, [&](Gater& g) { return g.intercept_upgraded(connection); });
}

Subscription CompositeGater::on_tightened(std::function<void()> handler) {
  if (!handler) return Subscription{};
  // One copy of the handler shared by every child; Subscription is move-only, so the
  // children's handles live in a shared vector that the returned handle's cancel clears.
  auto shared = std::make_shared<std::function<void()>>(std::move(handler));
  auto children = std::make_shared<std::vector<Subscription>>();
  for (const auto& gater : gaters_) {
    Subscription sub = gater->on_tightened([shared] { (*shared)(); });
    if (sub.active()) children->push_back(std::move(sub));
  }
  if (children->empty()) return Subscription{};
  return Subscription([children] { children->clear(); });
}

bool CompositeGater::bypasses_caps(const boost::asio::ip::address& address) {
  return std::any_of(gaters_.begin(), gaters_.end(),
                     [&](const auto& gater) { return gater->bypasses_caps(address); });
}

bool Gater::bypasses_caps(const boost::asio::ip::address&) { return false; }

}  // namespace dep2p::connmgr
