// The default logger: private, named "connmgr", warnings and above to stderr.
#pragma once

#include <memory>

#include <spdlog/spdlog.h>

namespace dep2p::connmgr::detail {

// Never registered in spdlog's registry and never the default logger, so a host's own
// spdlog setup is left untouched.
std::shared_ptr<spdlog::logger> make_default_logger();

}  // namespace dep2p::connmgr::detail
