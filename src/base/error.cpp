#include "dep2p/connmgr/error.hpp"

namespace dep2p::connmgr {
namespace {

class ConnmgrCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "connmgr"; }
  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::connection_denied: return "connection denied";
      case Errc::peer_blocked: return "peer blocked";
      case Errc::limit_exceeded: return "limit exceeded";
      case Errc::unknown_peer: return "unknown peer";
      case Errc::unknown_connection: return "unknown connection";
      case Errc::duplicate_connection: return "connection already tracked";
      case Errc::realm_full: return "realm full";
      case Errc::closed: return "connection manager closed";
      case Errc::invalid_argument: return "invalid argument";
      case Errc::temp_peer_limit: return "too many temporary peer entries";
      case Errc::protection_limit: return "too many peers protected by this tag";
      case Errc::tag_exists: return "decaying tag already registered";
      case Errc::tag_closed: return "decaying tag closed";
      case Errc::illegal_transition: return "illegal connection state transition";
      case Errc::unknown_realm: return "unknown realm";
      case Errc::realm_exists: return "realm already exists";
      case Errc::dial_backoff: return "peer or address in dial backoff";
      case Errc::dial_pending: return "a dial to the peer is in flight";
    }
    return "unknown connmgr error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& connmgr_category() noexcept {
  static const ConnmgrCategory category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), connmgr_category()};
}

}  // namespace dep2p::connmgr
