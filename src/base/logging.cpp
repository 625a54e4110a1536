#include "base/logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>

namespace dep2p::connmgr::detail {

std::shared_ptr<spdlog::logger> make_default_logger() {
  auto logger = std::make_shared<spdlog::logger>("connmgr",
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_level(spdlog::level::warn);
  return logger;
}

}  // namespace dep2p::connmgr::detail
