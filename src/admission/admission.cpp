#include "dep2p/connmgr/admission.hpp"

namespace dep2p::connmgr {

std::string_view to_string(Stage stage) noexcept {
  switch (stage) {
    case Stage::dial: return "dial";
    case Stage::dial_addr: return "dial_addr";
    case Stage::accept: return "accept";
    case Stage::secured: return "secured";
    case Stage::add: return "add";
    case Stage::stream: return "stream";
    case Stage::resources: return "resources";
    case Stage::bind: return "bind";
    case Stage::claim: return "claim";
  }
  return "unknown";
}

std::string_view to_string(RefusalReason reason) noexcept {
  switch (reason) {
    case RefusalReason::gater: return "gater";
    case RefusalReason::connection_limit: return "connection_limit";
    case RefusalReason::pending_limit: return "pending_limit";
    case RefusalReason::stream_limit: return "stream_limit";
    case RefusalReason::memory_limit: return "memory_limit";
    case RefusalReason::fd_limit: return "fd_limit";
    case RefusalReason::subnet_cap: return "subnet_cap";
    case RefusalReason::rate_limit: return "rate_limit";
    case RefusalReason::hook: return "hook";
    case RefusalReason::realm_limit: return "realm_limit";
    case RefusalReason::backoff: return "backoff";
    case RefusalReason::dial_pending: return "dial_pending";
  }
  return "unknown";
}

}  // namespace dep2p::connmgr
