// Unit tests for the core value types (types.hpp): NodeId construction, hex and base58
// text, the short form, printing, equality, ordering and hashing; the names of the small enums.
#include "dep2p/connmgr/types.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace dep2p::connmgr {
namespace {

std::vector<std::uint8_t> bytes_of_size(std::size_t n) {
  std::vector<std::uint8_t> bytes(n);
  for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<std::uint8_t>(i + 1);
  return bytes;
}

NodeId id_of(std::initializer_list<std::uint8_t> bytes) {
  const std::vector<std::uint8_t> v(bytes);
  return NodeId(v);
}

// The message of the std::invalid_argument that from_hex throws, or "" when it does not.
std::string from_hex_error(std::string_view hex) {
  try {
    (void)NodeId::from_hex(hex);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return {};
}

// --- construction ----------------------------------------------------------------------

TEST(NodeId, ConstructsFromOneByte) {
  const auto bytes = bytes_of_size(1);
  const NodeId id(bytes);
  EXPECT_EQ(id.size(), std::size_t{1});
  ASSERT_EQ(id.bytes().size(), std::size_t{1});
  EXPECT_EQ(id.bytes()[0], std::uint8_t{1});
}

TEST(NodeId, ConstructsFromSixtyFourBytes) {
  const auto bytes = bytes_of_size(NodeId::kMaxSize);
  const NodeId id(bytes);
  EXPECT_EQ(id.size(), std::size_t{64});
  EXPECT_TRUE(std::ranges::equal(id.bytes(), bytes));
}

// Every way of making an id leaves zeros after its bytes (tables compare fixed lengths).
TEST(NodeId, PaddedBytesAreTheIdThenZerosHoweverItWasMade) {
  const auto bytes = bytes_of_size(5);
  std::vector<NodeId> ids{NodeId(bytes), *NodeId::try_from_bytes(bytes),
                          NodeId::from_hex("0102030405"), *NodeId::try_from_hex("0102030405")};
  NodeId reassigned(bytes_of_size(NodeId::kMaxSize));
  reassigned = ids[0];
  ids.push_back(reassigned);
  for (const NodeId& id : ids) {
    const auto& padded = id.padded_bytes();
    EXPECT_TRUE(std::ranges::equal(std::span(padded).first(5), id.bytes()));
    EXPECT_TRUE(
        std::ranges::all_of(std::span(padded).subspan(5), [](std::uint8_t b) { return b == 0; }));
  }
}

TEST(NodeId, EmptyBytesThrowInvalidArgument) {
  const std::vector<std::uint8_t> empty;
  EXPECT_THROW(NodeId{empty}, std::invalid_argument);
}

TEST(NodeId, SixtyFiveBytesThrowInvalidArgument) {
  const auto bytes = bytes_of_size(NodeId::kMaxSize + 1);
  EXPECT_THROW(NodeId{bytes}, std::invalid_argument);
}

TEST(NodeId, TryFromBytesAcceptsValidSizes) {
  const auto one = bytes_of_size(1);
  const auto max = bytes_of_size(NodeId::kMaxSize);
  const auto a = NodeId::try_from_bytes(one);
  const auto b = NodeId::try_from_bytes(max);
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(a->size(), std::size_t{1});
  EXPECT_TRUE(std::ranges::equal(b->bytes(), max));
}

TEST(NodeId, TryFromBytesReturnsNulloptForEmptyAndOversized) {
  const std::vector<std::uint8_t> empty;
  const auto oversized = bytes_of_size(NodeId::kMaxSize + 1);
  EXPECT_FALSE(NodeId::try_from_bytes(empty).has_value());
  EXPECT_FALSE(NodeId::try_from_bytes(oversized).has_value());
}

TEST(NodeId, CopyIsEqualAndIndependent) {
  const NodeId original = id_of({0xde, 0xad, 0xbe, 0xef});
  NodeId copy = original;
  EXPECT_EQ(copy, original);
  copy = id_of({0x01});
  EXPECT_EQ(original.to_hex(), "deadbeef");
}

// --- hex -------------------------------------------------------------------------------

TEST(NodeIdHex, ToHexIsLowercaseTwoDigitsPerByte) {
  const NodeId id = id_of({0x00, 0x0a, 0xAB, 0xff, 0x10});
  EXPECT_EQ(id.to_hex(), "000aabff10");
}

TEST(NodeIdHex, FromHexRoundTripsWithToHex) {
  const auto bytes = bytes_of_size(32);
  const NodeId id(bytes);
  const NodeId parsed = NodeId::from_hex(id.to_hex());
  EXPECT_EQ(parsed, id);
  EXPECT_EQ(parsed.to_hex(), id.to_hex());
  EXPECT_TRUE(std::ranges::equal(parsed.bytes(), bytes));
}

TEST(NodeIdHex, FromHexParsesBytes) {
  const NodeId id = NodeId::from_hex("1220ab00ff");
  EXPECT_EQ(id, id_of({0x12, 0x20, 0xab, 0x00, 0xff}));
}

TEST(NodeIdHex, FromHexAcceptsUppercaseAndMixedCase) {
  EXPECT_EQ(NodeId::from_hex("DEADBEEF"), id_of({0xde, 0xad, 0xbe, 0xef}));
  EXPECT_EQ(NodeId::from_hex("DeAdBeEf"), id_of({0xde, 0xad, 0xbe, 0xef}));
  EXPECT_EQ(NodeId::from_hex("ABCDEF").to_hex(), "abcdef");
}

TEST(NodeIdHex, FromHexAcceptsTwoAndOneHundredTwentyEightDigits) {
  EXPECT_EQ(NodeId::from_hex("7f").size(), std::size_t{1});
  const std::string max(128, 'a');
  const NodeId id = NodeId::from_hex(max);
  EXPECT_EQ(id.size(), std::size_t{64});
  EXPECT_EQ(id.to_hex(), max);
}

TEST(NodeIdHex, FromHexRejectsEmptyWithMessage) {
  EXPECT_THROW((void)NodeId::from_hex(""), std::invalid_argument);
  EXPECT_FALSE(from_hex_error("").empty());
}

TEST(NodeIdHex, FromHexRejectsOddLengthWithMessage) {
  EXPECT_THROW((void)NodeId::from_hex("abc"), std::invalid_argument);
  EXPECT_THROW((void)NodeId::from_hex("a"), std::invalid_argument);
  EXPECT_FALSE(from_hex_error("abc").empty());
}

TEST(NodeIdHex, FromHexRejectsNonHexDigitsWithMessage) {
  for (std::string_view bad : {"zz", "0g", "g0", "12 4", "0x12", "ab-d", "\xc3\xa9"}) {
    EXPECT_THROW((void)NodeId::from_hex(bad), std::invalid_argument) << bad;
  }
  EXPECT_FALSE(from_hex_error("0g").empty());
}

TEST(NodeIdHex, FromHexRejectsMoreThanOneHundredTwentyEightDigitsWithMessage) {
  const std::string too_long(130, 'a');
  EXPECT_THROW((void)NodeId::from_hex(too_long), std::invalid_argument);
  EXPECT_FALSE(from_hex_error(too_long).empty());
}

TEST(NodeIdHex, FromHexMessagesNameDifferentProblemsDifferently) {
  const std::string empty = from_hex_error("");
  const std::string odd = from_hex_error("abc");
  const std::string non_hex = from_hex_error("zz");
  const std::string too_long = from_hex_error(std::string(130, 'a'));
  const std::set<std::string> distinct{empty, odd, non_hex, too_long};
  EXPECT_EQ(distinct.size(), std::size_t{4})
      << "empty: " << empty << "\nodd: " << odd << "\nnon-hex: " << non_hex
      << "\ntoo long: " << too_long;
}

TEST(NodeIdHex, TryFromHexReturnsIdForValidInput) {
  const auto id = NodeId::try_from_hex("00FF");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(*id, id_of({0x00, 0xff}));
}

TEST(NodeIdHex, TryFromHexReturnsNulloptForInvalidInput) {
  EXPECT_FALSE(NodeId::try_from_hex("").has_value());
  EXPECT_FALSE(NodeId::try_from_hex("abc").has_value());
  EXPECT_FALSE(NodeId::try_from_hex("zz").has_value());
  EXPECT_FALSE(NodeId::try_from_hex(std::string(130, 'a')).has_value());
}

TEST(NodeIdHex, ShortHexIsWholeHexUpToSixBytes) {
  EXPECT_EQ(id_of({0xab}).short_hex(), "ab");
  const NodeId six = id_of({1, 2, 3, 4, 5, 6});
  EXPECT_EQ(six.short_hex(), "010203040506");
}

TEST(NodeIdHex, ShortHexOfLongerIdsShowsTheirLastSixBytes) {
  const NodeId seven = id_of({1, 2, 3, 4, 5, 6, 7});
  EXPECT_EQ(seven.short_hex(),
            "\xE2\x80\xA6"
            "020304050607");
  const NodeId long_id(bytes_of_size(32));
  EXPECT_EQ(long_id.short_hex(), "\xE2\x80\xA6" + long_id.to_hex().substr(52));
}

TEST(NodeIdText, StreamOutputIsTheBase58Text) {
  const NodeId id = NodeId(bytes_of_size(32));
  std::ostringstream out;
  out << id;
  EXPECT_EQ(out.str(), id.to_base58());
}

// --- base58 and the short form ----------------------------------------------------------

// An Ed25519 libp2p peer id: the identity multihash of the protobuf-wrapped public key,
// 00 24 08 01 12 20 and the key's 32 bytes. Every such id shares its first 6 bytes.
NodeId ed25519_peer(std::uint8_t seed) {
  std::vector<std::uint8_t> bytes = {0x00, 0x24, 0x08, 0x01, 0x12, 0x20};
  for (std::uint8_t i = 0; i < 32; ++i)
    bytes.push_back(static_cast<std::uint8_t>(seed * 31 + i * 7));
  return NodeId(bytes);
}

TEST(NodeIdText, Base58MatchesBitcoinsTestVectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"61", "2g"},
      {"626262", "a3gV"},
      {"636363", "aPEr"},
      {"73696d706c792061206c6f6e6720737472696e67", "2cFupjhnEsSn59qHXstmK2ffpLv2"},
      {"00eb15231dfceb60925886b67d065299925915aeb172c06647", "1NS17iag9jJgTHD1VXjvLCEnZuQ3rJDE9L"},
      {"516b6fcd0f", "ABnLTmg"},
      {"bf4f89001e670274dd", "3SEo3LWLoPntC"},
      {"572e4794", "3EFU7m"},
      {"ecac89cad93923c02321", "EJDM8drfXA6uyA"},
      {"10c8511e", "Rt5zm"},
      {"00000000000000000000", "1111111111"},
  };
  for (const auto& [hex, text] : vectors) {
    const NodeId id = NodeId::from_hex(hex);
    EXPECT_EQ(id.to_base58(), text) << hex;
    EXPECT_EQ(NodeId::from_base58(text), id) << text;
  }
}

TEST(NodeIdText, LibP2PIdsReadAsLibP2PPrintsThem) {
  // A sha256 multihash (12 20 ...) prints as "Qm...", an Ed25519 identity one as "12D3KooW...".
  const NodeId sha = NodeId::from_base58("QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN");
  ASSERT_EQ(sha.size(), 34u);
  EXPECT_EQ(sha.bytes()[0], 0x12);
  EXPECT_EQ(sha.bytes()[1], 0x20);
  EXPECT_EQ(sha.to_base58(), "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN");
  for (std::uint8_t seed = 0; seed < 20; ++seed) {
    const NodeId id = ed25519_peer(seed);
    EXPECT_EQ(id.to_base58().substr(0, 8), "12D3KooW") << id.to_base58();
    EXPECT_EQ(NodeId::from_base58(id.to_base58()), id);
  }
}

TEST(NodeIdText, Base58RoundTripsEveryLengthAndLeadingZeros) {
  for (std::size_t n = 1; n <= NodeId::kMaxSize; ++n) {
    std::vector<std::uint8_t> bytes = bytes_of_size(n);
    bytes[0] = static_cast<std::uint8_t>(n % 3 == 0 ? 0 : 0xff);
    const NodeId id(bytes);
    EXPECT_EQ(NodeId::from_base58(id.to_base58()), id) << n;
    EXPECT_EQ(NodeId::try_from_base58(id.to_base58()), id) << n;
  }
}

TEST(NodeIdText, BadBase58IsRefusedWithTheProblemNamed) {
  auto problem = [](std::string_view text) -> std::string {
    try {
      (void)NodeId::from_base58(text);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(problem("").find("empty"), std::string::npos);
  for (const char* bad : {"0abc", "Oabc", "Iabc", "labc", "ab c", "ab+"}) {
    EXPECT_NE(problem(bad).find("outside the alphabet"), std::string::npos) << bad;
    EXPECT_FALSE(NodeId::try_from_base58(bad).has_value()) << bad;
  }
  // 65 bytes of 0xff: one byte too many, whatever the text's length.
  const std::string too_long = "z" + NodeId(std::vector<std::uint8_t>(64, 0xff)).to_base58();
  EXPECT_NE(problem(too_long).find("longer than 64 bytes"), std::string::npos);
  EXPECT_NE(problem(std::string(65, '1')).find("longer than 64 bytes"), std::string::npos);
  EXPECT_NE(problem(std::string(89, '2')).find("longer than 64 bytes"), std::string::npos);
  EXPECT_FALSE(NodeId::try_from_base58(too_long).has_value());
}

TEST(NodeIdText, TheShortFormTellsApartIdsThatShareTheirFirstBytes) {
  std::set<std::string> shorts;
  std::set<std::string> old_prefixes;
  for (std::uint8_t seed = 0; seed < 50; ++seed) {
    const NodeId id = ed25519_peer(seed);
    const std::string text = id.to_base58();
    const std::string short_form = id.short_string();
    EXPECT_EQ(short_form, text.substr(0, 2) + "*" + text.substr(text.size() - 6));
    shorts.insert(short_form);
    old_prefixes.insert(id.to_hex().substr(0, 12));
  }
  EXPECT_EQ(old_prefixes.size(), 1u);  // the first 6 bytes say nothing
  EXPECT_EQ(shorts.size(), 50u);
  // A text of at most 8 characters is shown whole.
  EXPECT_EQ(id_of({0x61}).short_string(), "2g");
}

TEST(NodeIdText, BytesHeldAsCharsNeedNoCast) {
  const std::string raw("\x12\x20\x00\xff", 4);
  const NodeId id = NodeId::from_bytes(raw);
  EXPECT_EQ(id, id_of({0x12, 0x20, 0x00, 0xff}));
  EXPECT_EQ(NodeId::try_from_bytes(std::string_view(raw)), id);
  EXPECT_FALSE(NodeId::try_from_bytes(std::string_view()).has_value());
  EXPECT_THROW((void)NodeId::from_bytes(std::string(65, 'x')), std::invalid_argument);
}

// --- Endpoint -----------------------------------------------------------------------------

TEST(EndpointConversion, ToAndFromAsioEndpointsOfEitherProtocol) {
  namespace ip = boost::asio::ip;
  const ip::tcp::endpoint tcp(ip::make_address("10.1.2.3"), 4001);
  const Endpoint from_tcp = Endpoint::from(tcp);
  EXPECT_EQ(from_tcp.address, ip::make_address("10.1.2.3"));
  EXPECT_EQ(from_tcp.port, 4001);
  EXPECT_EQ(from_tcp.to<ip::tcp>(), tcp);
  const ip::udp::endpoint udp(ip::make_address("2001:db8::1"), 443);
  const Endpoint from_udp = Endpoint::from(udp);
  EXPECT_EQ(from_udp.to<ip::udp>(), udp);
  EXPECT_EQ(from_udp.to<ip::tcp>().port(), 443);
  EXPECT_EQ(from_tcp.to_string(), "10.1.2.3:4001");
  EXPECT_EQ(from_udp.to_string(), "[2001:db8::1]:443");
}

// --- equality, ordering, hashing -------------------------------------------------------

TEST(NodeIdOrdering, EqualityComparesBytesAndLength) {
  EXPECT_EQ(id_of({1, 2, 3}), id_of({1, 2, 3}));
  EXPECT_NE(id_of({1, 2, 3}), id_of({1, 2, 4}));
  // Same leading bytes, different length: the inline buffer is zero-padded, so a
  // comparison that ignored the length would call these equal.
  EXPECT_NE(id_of({1}), id_of({1, 0}));
  EXPECT_NE(id_of({1, 0}), id_of({1, 0, 0}));
}

TEST(NodeIdOrdering, OrdersByteWiseLexicographically) {
  EXPECT_LT(id_of({1, 2}), id_of({1, 3}));
  EXPECT_LT(id_of({1, 255}), id_of({2}));
  EXPECT_GT(id_of({2, 0}), id_of({1, 255, 255}));
  // Bytes compare as unsigned.
  EXPECT_LT(id_of({0x7f}), id_of({0x80}));
  EXPECT_LT(id_of({0x00}), id_of({0xff}));
}

TEST(NodeIdOrdering, ShorterIdOrdersFirstOnCommonPrefix) {
  EXPECT_LT(id_of({1, 2}), id_of({1, 2, 0}));
  EXPECT_GT(id_of({1, 2, 0}), id_of({1, 2}));
  EXPECT_TRUE((id_of({5}) <=> id_of({5, 0})) == std::strong_ordering::less);
  EXPECT_TRUE((id_of({5, 0}) <=> id_of({5})) == std::strong_ordering::greater);
  EXPECT_TRUE((id_of({5, 0}) <=> id_of({5, 0})) == std::strong_ordering::equal);
}

TEST(NodeIdOrdering, SortsDeterministicallyInASet) {
  const std::set<NodeId> ids{id_of({2}), id_of({1, 0}), id_of({1}), id_of({0, 9, 9}),
                             id_of({1, 0, 0})};
  std::vector<std::string> hex;
  for (const auto& id : ids) hex.push_back(id.to_hex());
  EXPECT_EQ(hex, (std::vector<std::string>{"000909", "01", "0100", "010000", "02"}));
}

TEST(NodeIdHash, EqualIdsHashEqual) {
  const auto bytes = bytes_of_size(32);
  const NodeId a(bytes);
  const NodeId b = NodeId::from_hex(a.to_hex());
  EXPECT_EQ(a.hash(), b.hash());
  EXPECT_EQ(NodeIdHash{}(a), NodeIdHash{}(b));
  EXPECT_EQ(std::hash<NodeId>{}(a), std::hash<NodeId>{}(b));
  EXPECT_EQ(std::hash<NodeId>{}(a), a.hash());
}

TEST(NodeIdHash, UsableInUnorderedSet) {
  std::unordered_set<NodeId> set;
  EXPECT_TRUE(set.insert(id_of({1, 2, 3})).second);
  EXPECT_FALSE(set.insert(NodeId::from_hex("010203")).second);
  EXPECT_TRUE(set.insert(id_of({1, 2})).second);
  EXPECT_EQ(set.size(), std::size_t{2});
  EXPECT_EQ(set.count(id_of({1, 2, 3})), std::size_t{1});
  EXPECT_EQ(set.count(id_of({1, 2, 3, 0})), std::size_t{0});

  std::unordered_set<NodeId, NodeIdHash> with_functor{id_of({9})};
  EXPECT_EQ(with_functor.count(id_of({9})), std::size_t{1});
}

TEST(NodeIdHash, IdsDifferingOnlyInTheirLastBytesHashApart) {
  // Ids that share a long prefix (as multihashes do) must still spread: a hash that
  // looked only at the first bytes would collide on all of them.
  std::unordered_set<std::size_t> hashes;
  constexpr std::size_t kIds = 1000;
  for (std::size_t n = 0; n < kIds; ++n) {
    auto bytes = bytes_of_size(32);
    bytes[30] = static_cast<std::uint8_t>(n >> 8);
    bytes[31] = static_cast<std::uint8_t>(n);
    hashes.insert(NodeId(bytes).hash());
  }
  EXPECT_GE(hashes.size(), kIds - 5);
}

// Hash tables take a bucket from some bits of the hash and a fingerprint from others (the
// pool's index uses the hash as is): every part of it must spread, low and high bits alike,
// whichever bytes of the ids differ.
TEST(NodeIdHash, EveryByteOfTheHashSpreadsWhicheverBytesOfTheIdsDiffer) {
  constexpr std::size_t kIds = 4096;
  for (const std::size_t differing : {0u, 7u, 24u, 31u}) {  // first, middle, last word
    std::array<std::set<std::uint8_t>, 8> byte_values;
    for (std::size_t n = 0; n < kIds; ++n) {
      auto bytes = bytes_of_size(32);
      bytes[differing] = static_cast<std::uint8_t>(n);
      bytes[differing == 0 ? 1 : differing - 1] = static_cast<std::uint8_t>(n >> 8);
      const std::size_t h = NodeId(bytes).hash();
      for (std::size_t b = 0; b < 8; ++b) {
        byte_values[b].insert(static_cast<std::uint8_t>(h >> (8 * b)));
      }
    }
    for (std::size_t b = 0; b < 8; ++b) {
      // 4,096 random bytes take about 256 values; a byte the ids do not reach takes one.
      EXPECT_GE(byte_values[b].size(), 250u) << "hash byte " << b << ", id byte " << differing;
    }
  }
}

// --- enum names ------------------------------------------------------------------------

static_assert(static_cast<std::size_t>(CloseReason::remote) + 1 == kCloseReasonCount,
              "kCloseReasonCount must cover every CloseReason");

TEST(NodeIdTypesToString, EveryCloseReasonHasADistinctNonEmptyName) {
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < kCloseReasonCount; ++i) {
    const auto reason = static_cast<CloseReason>(i);
    const std::string_view name = to_string(reason);
    EXPECT_FALSE(name.empty()) << "reason " << i;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), kCloseReasonCount);
}

TEST(NodeIdTypesToString, CloseReasonStreamsItsName) {
  for (std::size_t i = 0; i < kCloseReasonCount; ++i) {
    const auto reason = static_cast<CloseReason>(i);
    std::ostringstream out;
    out << reason;
    EXPECT_EQ(out.str(), to_string(reason));
  }
}

TEST(NodeIdTypesToString, DirectionNamesAreDistinctAndStreamed) {
  const std::string_view in = to_string(Direction::inbound);
  const std::string_view out = to_string(Direction::outbound);
  EXPECT_FALSE(in.empty());
  EXPECT_FALSE(out.empty());
  EXPECT_NE(in, out);
  std::ostringstream stream;
  stream << Direction::outbound;
  EXPECT_EQ(stream.str(), out);
}

TEST(NodeIdTypesToString, PathKindNamesAreDistinct) {
  const std::string_view direct = to_string(PathKind::direct);
  const std::string_view relay = to_string(PathKind::relay);
  EXPECT_FALSE(direct.empty());
  EXPECT_FALSE(relay.empty());
  EXPECT_NE(direct, relay);
}

TEST(NodeIdTypesToString, TransportNamesAreDistinct) {
  std::set<std::string_view> names;
  for (Transport t : {Transport::tcp, Transport::quic, Transport::websocket, Transport::webrtc,
                      Transport::other}) {
    EXPECT_FALSE(to_string(t).empty());
    names.insert(to_string(t));
  }
  EXPECT_EQ(names.size(), std::size_t{5});
}

}  // namespace
}  // namespace dep2p::connmgr
