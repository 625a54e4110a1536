// CoreProbe: the library's own tests' way to a manager's core, for what no public call can
// reach: a probe that runs between a trim's ranking and its commit, and the commit's batch
// size. Not installed; hosts never see it.
#pragma once

#include <cstddef>
#include <functional>
#include <utility>

#include "dep2p/connmgr/connection_manager.hpp"
#include "manager/core.hpp"

namespace dep2p::connmgr::detail {

struct CoreProbe {
  using TrimPoint = ManagerCore::TrimPoint;
  // See ManagerCore::set_trim_probe. REQUIRES: no trim running.
  static void on_trim(ConnectionManager& manager, std::function<void(TrimPoint)> probe,
                      std::size_t batch) {
    manager.core_->set_trim_probe(std::move(probe), batch);
  }
};

}  // namespace dep2p::connmgr::detail
