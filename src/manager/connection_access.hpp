// ConnectionAccess: the manager's access to the tracking word every Connection carries
// (connection.hpp): which manager holds it, and its slot there, so that a report about a
// connection costs an array access and no hash lookup.
#pragma once

#include <atomic>
#include <cstdint>

#include "dep2p/connmgr/connection.hpp"

namespace dep2p::connmgr {

namespace detail {
// The manager's access to the tracking word every Connection carries. A manager's token is
// even and never reused in the process; token | 1 marks a connection that manager closed
// and whose closure the host has not reported yet.
struct ConnectionAccess {
  // A token no other manager of the process has had.
  static std::uint64_t new_token();
  static bool claim(Connection& c, std::uint64_t token) {
    std::uint64_t expected = 0;
    return c.owner_.compare_exchange_strong(expected, token, std::memory_order_acq_rel);
  }
  static void release(const Connection& c) { c.owner_.store(0, std::memory_order_release); }
  // The manager asked the host to close it: held as closed until the host's report, unless
  // that report came first (the word no longer holds the token then).
  static void mark_closed(const Connection& c, std::uint64_t token) {
    std::uint64_t expected = token;
    c.owner_.compare_exchange_strong(expected, token | 1, std::memory_order_acq_rel);
  }
  // The host's report of a closure the manager asked for: the handle is the host's again.
  // Returns whether it was that report (false: the handle was not marked closed by us).
  static bool end_closed(const Connection& c, std::uint64_t token) {
    std::uint64_t expected = token | 1;
    return c.owner_.compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
  }
  // The same for a connection the manager detached and is about to close (or has just
  // closed: mark_closed may run meanwhile, so the plain token is tried first).
  // REQUIRES: the manager's lock held, so that no claim of the token can interleave.
  // Returns whether it was that report.
  static bool end_detached(const Connection& c, std::uint64_t token) {
    std::uint64_t expected = token;
    if (c.owner_.compare_exchange_strong(expected, 0, std::memory_order_acq_rel)) return true;
    return end_closed(c, token);
  }
  static std::uint64_t owner(const Connection& c) {
    return c.owner_.load(std::memory_order_acquire);
  }
  static std::uint32_t slot(const Connection& c) { return c.slot_; }
  static void set_slot(Connection& c, std::uint32_t slot) { c.slot_ = slot; }
};
}  // namespace detail

}  // namespace dep2p::connmgr
