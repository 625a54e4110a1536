// The version macros and version(): one version, from project(VERSION), seen the same way
// by the headers and by the library built from them.
#include "dep2p/connmgr/version.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#define DEP2P_TEST_STRINGIZE_VALUE(x) #x
#define DEP2P_TEST_STRINGIZE(x) DEP2P_TEST_STRINGIZE_VALUE(x)

namespace dep2p::connmgr {
namespace {

TEST(Version, TheLibraryReportsTheVersionOfTheHeaders) {
  EXPECT_EQ(version(), std::string_view(DEP2P_CONNMGR_VERSION_STRING));
}

TEST(Version, TheStringIsMajorDotMinorDotPatch) {
  const std::string composed =
      DEP2P_TEST_STRINGIZE(DEP2P_CONNMGR_VERSION_MAJOR) "." DEP2P_TEST_STRINGIZE(
          DEP2P_CONNMGR_VERSION_MINOR) "." DEP2P_TEST_STRINGIZE(DEP2P_CONNMGR_VERSION_PATCH);
  EXPECT_EQ(composed, DEP2P_CONNMGR_VERSION_STRING);
}

}  // namespace
}  // namespace dep2p::connmgr
