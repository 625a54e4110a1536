// Unit tests for the connmgr error category (error.hpp).
#include "dep2p/connmgr/error.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>
#include <system_error>
#include <vector>

namespace dep2p::connmgr {
namespace {

// Every enumerator, first to last. Keep in step with error.hpp.
const std::vector<Errc>& all_errc() {
  static const std::vector<Errc> all{
      Errc::connection_denied,  Errc::peer_blocked,
      Errc::limit_exceeded,     Errc::unknown_peer,
      Errc::unknown_connection, Errc::duplicate_connection,
      Errc::realm_full,         Errc::closed,
      Errc::invalid_argument,   Errc::temp_peer_limit,
      Errc::protection_limit,   Errc::tag_exists,
      Errc::tag_closed,         Errc::illegal_transition,
      Errc::unknown_realm,      Errc::realm_exists,
  };
  return all;
}

TEST(ErrcValues, StartAtOneAndAreContiguous) {
  EXPECT_EQ(static_cast<int>(Errc::connection_denied), 1);
  int expected = 1;
  for (Errc e : all_errc()) {
    EXPECT_EQ(static_cast<int>(e), expected);
    ++expected;
  }
}

TEST(ErrorCategory, IsNamedConnmgr) {
  EXPECT_STREQ(connmgr_category().name(), "connmgr");
  EXPECT_STREQ(make_error_code(Errc::closed).category().name(), "connmgr");
}

TEST(ErrorCategory, IsASingleton) {
  EXPECT_EQ(&connmgr_category(), &make_error_code(Errc::unknown_peer).category());
  EXPECT_EQ(&connmgr_category(), &make_error_code(Errc::tag_closed).category());
}

TEST(ErrorCategory, EveryErrcHasADistinctNonEmptyMessage) {
  std::set<std::string> messages;
  for (Errc e : all_errc()) {
    const std::string message = make_error_code(e).message();
    EXPECT_FALSE(message.empty()) << static_cast<int>(e);
    messages.insert(message);
  }
  EXPECT_EQ(messages.size(), all_errc().size());
}

TEST(ErrorCategory, UnknownValueStillHasAMessage) {
  EXPECT_FALSE(connmgr_category().message(999).empty());
  EXPECT_FALSE(connmgr_category().message(0).empty());
}

TEST(ErrorCode, ConvertsImplicitlyFromErrcAndComparesEqual) {
  std::error_code ec = Errc::closed;
  EXPECT_TRUE(static_cast<bool>(ec));
  EXPECT_EQ(ec, Errc::closed);
  EXPECT_NE(ec, Errc::unknown_peer);
  EXPECT_EQ(ec.value(), static_cast<int>(Errc::closed));
  EXPECT_EQ(ec.category(), connmgr_category());
  EXPECT_EQ(ec, make_error_code(Errc::closed));
}

TEST(ErrorCode, EqualValueInAnotherCategoryIsNotTheSameError) {
  const std::error_code generic(static_cast<int>(Errc::closed), std::generic_category());
  EXPECT_NE(generic, Errc::closed);
  const std::error_code system(static_cast<int>(Errc::invalid_argument), std::system_category());
  EXPECT_NE(system, Errc::invalid_argument);
}

TEST(ErrorCode, DefaultErrorCodeIsSuccessAndNoErrc) {
  const std::error_code ok;
  EXPECT_FALSE(static_cast<bool>(ok));
  for (Errc e : all_errc()) {
    EXPECT_NE(ok, e) << static_cast<int>(e);
    EXPECT_TRUE(static_cast<bool>(make_error_code(e))) << static_cast<int>(e);
  }
}

}  // namespace
}  // namespace dep2p::connmgr
