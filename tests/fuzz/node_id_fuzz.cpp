// Fuzz target: NodeId parsing from hex, base58 and bytes. try_from_hex and try_from_base58
// accept exactly what from_hex and from_base58 accept (which throw std::invalid_argument
// otherwise); an accepted hex id prints back as the lowercase input, an accepted base58 id
// as its input with its leading '1's kept; ids from bytes keep them, round-trip through
// both text forms, and order agrees with equality.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "dep2p/connmgr/types.hpp"
#include "fuzz/fuzz_check.hpp"

namespace cm = dep2p::connmgr;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed = cm::NodeId::try_from_hex(text);
  bool threw = false;
  try {
    const cm::NodeId id = cm::NodeId::from_hex(text);
    DEP2P_FUZZ_CHECK(parsed && id == *parsed, "from_hex and try_from_hex disagree");
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  DEP2P_FUZZ_CHECK(threw == !parsed.has_value(), "from_hex and try_from_hex disagree");
  if (parsed) {
    std::string lower(text);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    DEP2P_FUZZ_CHECK(parsed->to_hex() == lower, lower);
    DEP2P_FUZZ_CHECK(parsed->size() * 2 == size && size >= 2 && size <= 128, lower);
  }

  const auto b58 = cm::NodeId::try_from_base58(text);
  bool b58_threw = false;
  try {
    const cm::NodeId id = cm::NodeId::from_base58(text);
    DEP2P_FUZZ_CHECK(b58 && id == *b58, "from_base58 and try_from_base58 disagree");
  } catch (const std::invalid_argument&) {
    b58_threw = true;
  }
  DEP2P_FUZZ_CHECK(b58_threw == !b58.has_value(), "from_base58 and try_from_base58 disagree");
  if (b58) DEP2P_FUZZ_CHECK(b58->to_base58() == text, "base58 prints back as read");

  const auto bytes = std::span<const std::uint8_t>(data, size);
  const auto from_bytes = cm::NodeId::try_from_bytes(bytes);
  DEP2P_FUZZ_CHECK(from_bytes.has_value() == (size >= 1 && size <= cm::NodeId::kMaxSize),
                   "try_from_bytes size rule");
  if (from_bytes) {
    DEP2P_FUZZ_CHECK(from_bytes->size() == size, "size");
    DEP2P_FUZZ_CHECK(std::equal(bytes.begin(), bytes.end(), from_bytes->bytes().begin()), "bytes");
    const auto round = cm::NodeId::try_from_hex(from_bytes->to_hex());
    DEP2P_FUZZ_CHECK(round && *round == *from_bytes, "hex round trip");
    DEP2P_FUZZ_CHECK(round->hash() == from_bytes->hash(), "hash of equal ids");
    const auto round58 = cm::NodeId::try_from_base58(from_bytes->to_base58());
    DEP2P_FUZZ_CHECK(round58 && *round58 == *from_bytes, "base58 round trip");
    if (parsed) {
      const bool equal = *parsed == *from_bytes;
      DEP2P_FUZZ_CHECK(equal == ((*parsed <=> *from_bytes) == 0), "order and equality");
    }
  }
  return 0;
}
