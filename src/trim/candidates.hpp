// CandidateView: a trim's view of the pool — which peers are candidates, their values and
// default keys — concrete and non-virtual, so the walks over it (the in-place ranking, the
// realm layer's ranking, explain()) compile to plain loops over the pool's tables. It
// reads; it changes nothing. REQUIRES: the pool's owner holds its lock for as long as the
// view is used.
//
//   CandidateView view(pool, decay, now, grace, CandidateView::Mode::normal);
//   view.for_each([&](std::uint32_t slot, const PeerSlot& peer) { rank(view.key(slot)); });
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "dep2p/connmgr/trimmer.hpp"
#include "dep2p/connmgr/types.hpp"
#include "pool/pool.hpp"
#include "tags/decay_engine.hpp"
#include "trim/score_key.hpp"

namespace dep2p::connmgr::detail {

struct DiversityRule;  // trim/diversity.hpp

class CandidateView {
 public:
  enum class Mode : std::uint8_t {
    normal,              // connected, not protected, out of grace
    forced_unprotected,  // force_trim's first phase: connected, not protected
    forced_protected,    // its second phase: connected and protected
  };

  CandidateView(const Pool& pool, const DecayEngine& decay, TimePoint now, Duration grace,
                Mode mode)
      : pool_(pool), decay_(decay), now_(now), grace_(grace), mode_(mode) {}

  const Pool& pool() const { return pool_; }
  Mode mode() const { return mode_; }
  bool forced() const { return mode_ != Mode::normal; }
  TimePoint now() const { return now_; }
  // Slot numbers are below this.
  std::size_t peer_slots() const { return pool_.peer_slots(); }

  // The same view in which the peers flagged in `exposed` (by slot) are candidates although
  // in their grace period (the diversity rule's grace limit). REQUIRES: `exposed` outlives
  // the view.
  CandidateView exposing(const std::vector<std::uint8_t>& exposed) const {
    CandidateView wider = *this;
    wider.exposed_ = &exposed;
    return wider;
  }
  // The same view carrying the diversity rule, for choosers that take one victim among
  // equals outside the trim (the realms' make-room eviction); null: the rule is off.
  // REQUIRES: `rule` outlives the view.
  CandidateView with_diversity(const DiversityRule* rule) const {
    CandidateView ruled = *this;
    ruled.diversity_ = rule;
    return ruled;
  }
  const DiversityRule* diversity() const { return diversity_; }

  bool out_of_grace(std::uint32_t slot) const {
    return grace_.count() == 0 || now_ - pool_.cold(slot).first_seen >= grace_;
  }
  // In grace, and a candidate all the same (see exposing()).
  bool exposed(std::uint32_t slot) const {
    return exposed_ != nullptr && slot < exposed_->size() && (*exposed_)[slot] != 0;
  }
  bool is_candidate(std::uint32_t slot, const PeerSlot& entry) const {
    if (!entry.live || entry.temporary || entry.conns.empty()) return false;
    switch (mode_) {
      case Mode::normal: return !entry.is_protected && (out_of_grace(slot) || exposed(slot));
      case Mode::forced_unprotected: return !entry.is_protected;
      case Mode::forced_protected: return entry.is_protected;
    }
    return false;
  }
  // The sum of the peer's plain and decaying tags.
  std::int64_t value(const PeerSlot& entry) const {
    return entry.tags.sum() + decay_.sum(entry.decay);
  }
  // The peer as the default trimmer sees it (the fields key_of reads).
  PeerSnapshot snapshot_of(std::uint32_t slot) const {
    const PeerSlot& entry = pool_.peer(slot);
    PeerSnapshot peer;
    peer.value = value(entry);
    peer.first_seen = pool_.cold(slot).first_seen;
    peer.streams = entry.streams;
    peer.has_inbound = entry.inbound > 0;
    peer.is_protected = entry.is_protected;
    peer.connection_count = static_cast<std::uint32_t>(entry.conns.size());
    return peer;
  }
  // The default order's key, in this view's order (the emergency one when forced); the
  // slot is the last tie-break, as a snapshot's index would be.
  RankKey key(std::uint32_t slot) const { return key_of(snapshot_of(slot), slot, forced()); }
  std::span<const std::uint32_t> connections(const PeerSlot& entry) const {
    return {entry.conns.data(), entry.conns.size()};
  }
  // The id of the connection in `conn_slot` now.
  ConnectionId connection_id(std::uint32_t conn_slot) const { return pool_.conn(conn_slot).id; }

  // f(slot, entry) for every candidate, in slot order. The walk is bound by its stream of
  // peer entries: they are fetched 16 ahead. The mode is decided once, outside the loop.
  template <class F>
  void for_each(F&& f) const {
    switch (mode_) {
      case Mode::normal:
        if (grace_.count() == 0) {
          walk([](std::uint32_t, const PeerSlot& e) { return !e.is_protected; }, f);
        } else {
          walk(
              [this](std::uint32_t slot, const PeerSlot& e) {
                return !e.is_protected && (out_of_grace(slot) || exposed(slot));
              },
              f);
        }
        return;
      case Mode::forced_unprotected:
        walk([](std::uint32_t, const PeerSlot& e) { return !e.is_protected; }, f);
        return;
      case Mode::forced_protected:
        walk([](std::uint32_t, const PeerSlot& e) { return e.is_protected; }, f);
        return;
    }
  }

 private:
  template <class Keep, class F>
  void walk(Keep&& keep, F& f) const {
    pool_.for_each_slot([&](std::size_t index, const PeerSlot& entry) {
      __builtin_prefetch(Pool::ahead_of(entry, 16));  // past the page's end is harmless
      const auto slot = static_cast<std::uint32_t>(index);
      if (entry.live && !entry.temporary && !entry.conns.empty() && keep(slot, entry)) {
        f(slot, entry);
      }
    });
  }

  const Pool& pool_;
  const DecayEngine& decay_;
  TimePoint now_;
  Duration grace_;
  Mode mode_;
  const std::vector<std::uint8_t>* exposed_ = nullptr;
  const DiversityRule* diversity_ = nullptr;
};

}  // namespace dep2p::connmgr::detail
