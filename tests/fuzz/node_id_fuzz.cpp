// Fuzz target: NodeId parsing from hex and from bytes. try_from_hex accepts exactly what
// from_hex accepts (which throws std::invalid_argument otherwise); an accepted id prints
// back as the lowercase input; ids from bytes keep them, and order agrees with equality.
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
    if (parsed) {
      const bool equal = *parsed == *from_bytes;
      DEP2P_FUZZ_CHECK(equal == ((*parsed <=> *from_bytes) == 0), "order and equality");
    }
  }
  return 0;
}
