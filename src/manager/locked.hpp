// Locked: the proof that code runs inside the manager core's critical section — what
// "REQUIRES: the core's lock held" says in words, checked by the compiler. Only the core
// makes one, right after it locks; a function that must run under the lock takes one by
// reference. It is an empty object: free at run time.
//
//   void ManagerCore::detach(const Locked<>& locked, std::uint32_t conn_slot, ...);
//
// `Part` names what the lock guards for the callee. One mutex guards every part of the
// core today, so the core makes each kind of token from that lock; when the lock is split
// (by peer, say), a part gets its own lock and its tokens are made from that one.
#pragma once

namespace dep2p::connmgr::detail {

class ManagerCore;

// The whole of the core's state: the pool, tags, admission counts, schedules.
struct CoreState;

template <class Part = CoreState>
class Locked {
 public:
  Locked(const Locked&) = delete;
  Locked& operator=(const Locked&) = delete;

 private:
  friend class ManagerCore;
  constexpr Locked() noexcept = default;
};

}  // namespace dep2p::connmgr::detail
