// RealmConnectionManager: realm stream limits (RealmConfig::max_streams; docs/design.md,
// "Realms"). Once a realm has one, the core tells the layer of every stream open and
// close under its whole lock (CoreDoor::watch_streams), so a realm's count of streams on
// its bound connections is exact: a binding adds its connection's open streams, its end
// takes them away, and a stream on a bound connection counts in each of its realms.
#include <algorithm>

#include "realm/realm_state.hpp"

namespace dep2p::connmgr {

using State = RealmConnectionManager::State;

std::optional<detail::StreamRefusal> State::stream_changed(const detail::Locked<>&,
                                                           std::uint32_t slot, ConnectionId id,
                                                           bool opened) {
  std::lock_guard lock(mutex);
  if (slot >= slot_streams.size()) slot_streams.resize(slot + 1);
  SlotStreams& streams = slot_streams[slot];
  if (streams.id != id) streams = SlotStreams{id, 0};  // a new connection in the slot
  Binding* b = binding_at(slot, id);
  if (opened) {
    if (b != nullptr) {
      for (const BoundTo& bound : b->realms) {
        Realm& realm = *realm_table[bound.realm];
        const std::size_t limit = realm.config.max_streams;
        if (limit > 0 && realm.streams >= limit) {
          ++realm.stats.refused_streams;
          return detail::StreamRefusal{realm.name, realm.streams, limit};
        }
      }
      for (const BoundTo& bound : b->realms) ++realm_table[bound.realm]->streams;
    }
    ++streams.count;
    return std::nullopt;
  }
  if (streams.count == 0) return std::nullopt;
  --streams.count;
  if (b != nullptr) {
    for (const BoundTo& bound : b->realms) {
      Realm& realm = *realm_table[bound.realm];
      if (realm.streams > 0) --realm.streams;
    }
  }
  return std::nullopt;
}

void State::seed_streams(const detail::Locked<>&, std::span<const detail::StreamSeed> connections) {
  std::lock_guard lock(mutex);
  streams_watched = true;
  slot_streams.clear();
  for (const detail::StreamSeed& seed : connections) {
    if (seed.slot >= slot_streams.size()) slot_streams.resize(seed.slot + 1);
    slot_streams[seed.slot] = SlotStreams{seed.id, seed.streams};
  }
  for (const auto& [name, realm] : realms) realm->streams = 0;
  for (const Binding& b : bindings) {
    if (b.realms.empty()) continue;
    const std::uint32_t open = streams_of(b);
    for (const BoundTo& bound : b.realms) realm_table[bound.realm]->streams += open;
  }
}

}  // namespace dep2p::connmgr
