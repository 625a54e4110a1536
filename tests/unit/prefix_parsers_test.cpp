// The two address-prefix parsers, the gater's (parse_cidr, detail/cidr_set.hpp) and the
// caps' (parse_prefix, detail/subnet.hpp), compared on the CIDR fuzz corpus, the gater
// file corpus's rule texts and 300,000 generated strings: the same text must give the
// same prefix or be refused by both, before one of them replaces the other.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "detail/cidr_set.hpp"
#include "detail/subnet.hpp"

namespace dep2p::connmgr::detail {
namespace {

// Both parsers' answer for one text, as (accepted, family, length, high bits, low bits).
struct Parsed {
  bool accepted = false;
  bool v6 = false;
  unsigned length = 0;
  std::uint64_t high = 0;
  std::uint64_t low = 0;
  friend bool operator==(const Parsed&, const Parsed&) = default;
};

Parsed gater_parser(const std::string& text) {
  const auto cidr = parse_cidr(text);
  if (!cidr) return {};
  // IPv4 sits in the low 32 bits of `hi` here and of `low` in PrefixKey.
  return cidr->v6 ? Parsed{true, true, cidr->prefix, cidr->hi, cidr->lo}
                  : Parsed{true, false, cidr->prefix, 0, cidr->hi};
}

Parsed caps_parser(const std::string& text) {
  const auto key = parse_prefix(text);
  if (!key) return {};
  return Parsed{true, key->family == Family::v6, key->length, key->high, key->low};
}

void expect_agree(const std::string& text) {
  const Parsed a = gater_parser(text);
  const Parsed b = caps_parser(text);
  EXPECT_EQ(a, b) << "\"" << text << "\": gater " << (a.accepted ? "accepts" : "refuses")
                  << ", caps " << (b.accepted ? "accepts" : "refuses") << " (lengths " << a.length
                  << " / " << b.length << ")";
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(PrefixParsers, AgreeOnTheFuzzCorpus) {
  const std::filesystem::path corpus =
      std::filesystem::path(DEP2P_SOURCE_DIR) / "tests/fuzz/corpus";
  std::size_t inputs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(corpus / "cidr")) {
    const std::string text = read_file(entry.path());
    expect_agree(text);
    // The whole file, and each line and word of it.
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      expect_agree(line);
      std::istringstream words(line);
      for (std::string word; words >> word;) expect_agree(word);
    }
    ++inputs;
  }
  // Rule texts from the gater files: "block 10.1.2.0/24", "ban 2001:db8::/32 <ms>".
  for (const auto& entry : std::filesystem::directory_iterator(corpus / "gater_file")) {
    std::istringstream lines(read_file(entry.path()));
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      for (std::string word; words >> word;) expect_agree(word);
    }
    ++inputs;
  }
  EXPECT_GT(inputs, 5u);
}

TEST(PrefixParsers, AgreeOnThreeHundredThousandGeneratedStrings) {
  std::mt19937_64 random(17);
  auto below = [&](std::uint64_t n) { return static_cast<unsigned>(random() % n); };
  const std::string alphabet = "0123456789abcdefABCDEFxg.:/% -+\t\n";
  auto noise = [&] {
    std::string s(below(24), ' ');
    for (char& c : s) c = alphabet[below(alphabet.size())];
    return s;
  };
  auto ipv4 = [&] {
    std::string s;
    const unsigned parts = 1 + below(5);
    for (unsigned i = 0; i < parts; ++i) {
      if (i > 0) s += '.';
      s += std::to_string(below(8) == 0 ? below(1000) : below(256));
    }
    return s;
  };
  auto ipv6 = [&] {
    std::string s;
    const unsigned groups = below(9);
    bool gap = false;
    for (unsigned i = 0; i < groups; ++i) {
      if (i > 0) s += ':';
      if (!gap && below(5) == 0) {
        s += ':';
        gap = true;
      }
      std::ostringstream hex;
      hex << std::hex << below(below(4) == 0 ? 0x20000 : 0x10000);
      s += hex.str();
    }
    if (below(6) == 0) s = "::ffff:" + ipv4();
    if (below(10) == 0) s = "::" + s;
    return s;
  };
  auto length = [&] {
    switch (below(6)) {
      case 0: return std::string();
      case 1: return "/" + std::to_string(below(200));
      case 2: return "/0" + std::to_string(below(140));
      case 3: return "/" + noise();
      default: return "/" + std::to_string(below(129));
    }
  };
  for (int i = 0; i < 300'000; ++i) {
    std::string text;
    switch (below(5)) {
      case 0: text = noise(); break;
      case 1:
      case 2: text = ipv4() + length(); break;
      default: text = ipv6() + length(); break;
    }
    if (below(20) == 0) text.insert(below(text.size() + 1), 1, "% \0z"[below(4)]);
    expect_agree(text);
    if (::testing::Test::HasFailure()) return;
  }
}

}  // namespace
}  // namespace dep2p::connmgr::detail
