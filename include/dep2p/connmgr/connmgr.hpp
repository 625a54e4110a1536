// Umbrella header: everything a host needs to use the connection manager.
#pragma once

#include "dep2p/connmgr/admission.hpp"
#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/config.hpp"
#include "dep2p/connmgr/connection.hpp"
#include "dep2p/connmgr/connection_manager.hpp"
#include "dep2p/connmgr/decay.hpp"
#include "dep2p/connmgr/error.hpp"
#include "dep2p/connmgr/events.hpp"
#include "dep2p/connmgr/gater.hpp"
#include "dep2p/connmgr/keepalive.hpp"
#include "dep2p/connmgr/limits.hpp"
#include "dep2p/connmgr/metrics.hpp"
#include "dep2p/connmgr/protect_store.hpp"
#include "dep2p/connmgr/tag_store.hpp"
#include "dep2p/connmgr/trimmer.hpp"
#include "dep2p/connmgr/types.hpp"
