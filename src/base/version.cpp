// version(): compiled into the library, so it reports the headers the library was built
// with rather than the ones its caller includes.
#include "dep2p/connmgr/version.hpp"

namespace dep2p::connmgr {

std::string_view version() noexcept { return DEP2P_CONNMGR_VERSION_STRING; }

}  // namespace dep2p::connmgr
