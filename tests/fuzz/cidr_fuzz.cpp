// Fuzz target: prefix parsing (src/net/prefix.hpp) and BasicGater's block/unblock on the
// same text. A parsed prefix is canonical (host bits zero), prints as text that parses back
// to itself, contains its own network address in a PrefixMap, and the gater accepts
// exactly the text the parser accepts.
#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dep2p/connmgr/gater.hpp"
#include "fuzz/fuzz_check.hpp"
#include "net/prefix.hpp"
#include "net/prefix_map.hpp"

namespace cm = dep2p::connmgr;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto net = cm::detail::parse_prefix(text);

  static boost::asio::io_context io;
  static cm::BasicGater gater(io.get_executor());
  const std::error_code blocked = gater.block(text);
  DEP2P_FUZZ_CHECK(static_cast<bool>(blocked) == !net.has_value(), text);
  if (!net) return 0;
  DEP2P_FUZZ_CHECK(gater.unblock(text), text);
  DEP2P_FUZZ_CHECK(gater.rule_count() == 0, text);

  DEP2P_FUZZ_CHECK(net->length <= net->max_length(), text);
  DEP2P_FUZZ_CHECK(cm::detail::prefix_of(*net, net->length) == *net,
                   "not canonical: " + std::string(text));
  const std::string printed = cm::detail::to_string(*net);
  const auto again = cm::detail::parse_prefix(printed);
  DEP2P_FUZZ_CHECK(again.has_value() && *again == *net, std::string(text) + " -> " + printed);

  cm::detail::PrefixMap<int> map;
  map[*net] = 1;
  cm::detail::Prefix host = *net;
  host.length = static_cast<std::uint8_t>(net->max_length());
  bool found = false;
  map.visit_matches(host, [&](const cm::detail::Prefix& match, const int&) {
    found = match == *net;
    return true;
  });
  DEP2P_FUZZ_CHECK(found, "its own network address does not match " + printed);
  DEP2P_FUZZ_CHECK(map.erase(*net) && map.empty(), printed);
  return 0;
}
