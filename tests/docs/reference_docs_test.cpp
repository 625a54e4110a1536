// The reference lists of the docs against the headers, read as text at run time, so that a
// member or an enumerator added to a header without a line in the docs fails here:
//
// - every member of `Dependencies` (include/dep2p/connmgr/connection_manager.hpp) is a row
//   of the table marked <!-- members: Dependencies --> in docs/configuration.md, except the
//   library-internal ones named below, which must not be;
// - every CloseReason and every RefusalReason is a row of the table marked
//   <!-- reasons: CloseReason --> (or RefusalReason) in docs/design.md, and the enum in its
//   header has exactly kCloseReasonCount (kRefusalReasonCount) entries, named as to_string()
//   names them.
//
// The header scan is deliberately simple: comments are dropped, then the declarations at
// the struct's (or enum's) own brace depth are split on ';' (or ','); nested types,
// functions and aliases are skipped. It reads the public headers, which keep one
// declaration per statement.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "dep2p/connmgr/admission.hpp"
#include "dep2p/connmgr/types.hpp"

namespace dep2p::connmgr {
namespace {

std::string read(const std::string& relative) {
  const std::string path = std::string(DEP2P_SOURCE_DIR) + "/" + relative;
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot read " << path;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

// C++ text without its // and /* */ comments (string literals in these headers hold none).
std::string without_comments(const std::string& code) {
  std::string out;
  for (std::size_t i = 0; i < code.size(); ++i) {
    if (code.compare(i, 2, "//") == 0) {
      while (i < code.size() && code[i] != '\n') ++i;
      out += '\n';
    } else if (code.compare(i, 2, "/*") == 0) {
      const auto end = code.find("*/", i + 2);
      i = end == std::string::npos ? code.size() : end + 1;
      out += ' ';
    } else {
      out += code[i];
    }
  }
  return out;
}

// The text between the braces that follow `opening` (e.g. "struct Stats"), braces nested
// inside included; empty when `opening` is not found.
std::string body_of(const std::string& code, const std::string& opening) {
  const std::regex re(opening + R"(\s*(:[^{]*)?\{)");
  std::smatch m;
  if (!std::regex_search(code, m, re)) return "";
  const std::size_t start = static_cast<std::size_t>(m.position(0) + m.length(0));
  int depth = 1;
  for (std::size_t i = start; i < code.size(); ++i) {
    if (code[i] == '{') ++depth;
    if (code[i] == '}' && --depth == 0) return code.substr(start, i - start);
  }
  return "";
}

// The data members a struct declares, in order: statements at the struct's own depth that
// end in ';', minus nested types, functions, aliases and static members.
std::vector<std::string> struct_members(const std::string& header, const std::string& name) {
  const std::string body = body_of(without_comments(read(header)), "struct " + name);
  EXPECT_FALSE(body.empty()) << "struct " << name << " not found in " << header;
  std::vector<std::string> members;
  std::string statement;
  int depth = 0;
  for (const char c : body) {
    if (c == '{') {
      ++depth;
      continue;
    }
    if (c == '}') {
      // The end of a function body: the function is no member.
      if (--depth == 0 && statement.find('(') != std::string::npos) statement.clear();
      continue;
    }
    if (depth > 0) continue;  // an initializer's or a nested type's inside
    if (c != ';') {
      statement += c;
      continue;
    }
    std::string s = trim(statement);
    statement.clear();
    static const std::regex skipped(R"(^(struct|class|enum|union|using|typedef|static|friend)\b)");
    if (s.empty() || s.find('(') != std::string::npos || std::regex_search(s, skipped)) continue;
    s = trim(s.substr(0, s.find('=')));
    static const std::regex last_name(R"((\w+)$)");
    std::smatch m;
    if (std::regex_search(s, m, last_name)) members.push_back(m[1].str());
  }
  return members;
}

// The enumerators of `enum class name`, in order.
std::vector<std::string> enumerators(const std::string& header, const std::string& name) {
  const std::string body = body_of(without_comments(read(header)), "enum class " + name);
  EXPECT_FALSE(body.empty()) << "enum class " << name << " not found in " << header;
  std::vector<std::string> out;
  std::stringstream entries(body);
  for (std::string entry; std::getline(entries, entry, ',');) {
    entry = trim(entry.substr(0, entry.find('=')));
    if (!entry.empty()) out.push_back(entry);
  }
  return out;
}

// The first column of the table that follows `marker` in a doc, backticks removed.
std::vector<std::string> table_keys(const std::string& doc, const std::string& marker) {
  std::istringstream in(read(doc));
  std::vector<std::string> keys;
  bool found = false;
  int row = 0;
  for (std::string line; std::getline(in, line);) {
    if (!found) {
      found = line.find(marker) != std::string::npos;
      continue;
    }
    line = trim(line);
    if (line.empty() && row == 0) continue;  // between the marker and the table
    if (line.rfind('|', 0) != 0) break;      // the table ended
    if (row++ < 2) continue;                 // the header and its rule
    std::string key = line.substr(1, line.find('|', 1) - 1);
    std::erase(key, '`');
    keys.push_back(trim(key));
  }
  EXPECT_TRUE(found) << doc << " has no " << marker;
  return keys;
}

// `documented` lists each of `expected` exactly once and nothing else.
void expect_same(const std::vector<std::string>& documented, const std::set<std::string>& expected,
                 const std::string& what) {
  std::set<std::string> seen;
  for (const std::string& key : documented) {
    EXPECT_TRUE(seen.insert(key).second) << what << ": '" << key << "' is documented twice";
    EXPECT_TRUE(expected.count(key) != 0) << what << ": '" << key << "' is documented but unknown";
  }
  for (const std::string& name : expected) {
    EXPECT_TRUE(seen.count(name) != 0) << what << ": '" << name << "' is not documented";
  }
}

// --- Dependencies ------------------------------------------------------------------------

// Members a host never sets: the docs say so in prose, not in the table of members.
const std::set<std::string> kLibraryInternalDependencies = {"extension"};

TEST(ReferenceDocs, EveryDependencyIsDocumented) {
  const auto members =
      struct_members("include/dep2p/connmgr/connection_manager.hpp", "Dependencies");
  ASSERT_GE(members.size(), 6u) << "the header scan found too few members of Dependencies";
  std::set<std::string> public_members;
  for (const std::string& m : members) {
    if (kLibraryInternalDependencies.count(m) == 0) public_members.insert(m);
  }
  for (const std::string& internal : kLibraryInternalDependencies) {
    EXPECT_TRUE(std::find(members.begin(), members.end(), internal) != members.end())
        << "Dependencies::" << internal << " is gone: drop it from this test and the docs";
  }
  expect_same(table_keys("docs/configuration.md", "<!-- members: Dependencies -->"), public_members,
              "docs/configuration.md, Dependencies");
}

// --- Close and refusal reasons -----------------------------------------------------------

TEST(ReferenceDocs, TheCloseReasonEnumHasKCloseReasonCountEntriesNamedByToString) {
  const auto names = enumerators("include/dep2p/connmgr/types.hpp", "CloseReason");
  ASSERT_EQ(names.size(), kCloseReasonCount);
  for (std::size_t i = 0; i < kCloseReasonCount; ++i) {
    EXPECT_EQ(names[i], to_string(static_cast<CloseReason>(i))) << "CloseReason " << i;
  }
}

TEST(ReferenceDocs, EveryCloseReasonIsDocumented) {
  std::set<std::string> reasons;
  for (std::size_t i = 0; i < kCloseReasonCount; ++i) {
    reasons.insert(std::string(to_string(static_cast<CloseReason>(i))));
  }
  ASSERT_EQ(reasons.size(), kCloseReasonCount);
  expect_same(table_keys("docs/design.md", "<!-- reasons: CloseReason -->"), reasons,
              "docs/design.md, CloseReason");
}

TEST(ReferenceDocs, TheRefusalReasonEnumHasKRefusalReasonCountEntriesNamedByToString) {
  const auto names = enumerators("include/dep2p/connmgr/admission.hpp", "RefusalReason");
  ASSERT_EQ(names.size(), kRefusalReasonCount);
  for (std::size_t i = 0; i < kRefusalReasonCount; ++i) {
    EXPECT_EQ(names[i], to_string(static_cast<RefusalReason>(i))) << "RefusalReason " << i;
  }
}

TEST(ReferenceDocs, EveryRefusalReasonIsDocumented) {
  std::set<std::string> reasons;
  for (std::size_t i = 0; i < kRefusalReasonCount; ++i) {
    reasons.insert(std::string(to_string(static_cast<RefusalReason>(i))));
  }
  ASSERT_EQ(reasons.size(), kRefusalReasonCount);
  expect_same(table_keys("docs/design.md", "<!-- reasons: RefusalReason -->"), reasons,
              "docs/design.md, RefusalReason");
}

// The scan itself, on text whose members are known.
TEST(ReferenceDocs, TheHeaderScanSkipsFunctionsNestedTypesAndInitializers) {
  const auto stats = struct_members("include/dep2p/connmgr/metrics.hpp", "Stats");
  const std::set<std::string> found(stats.begin(), stats.end());
  EXPECT_TRUE(found.count("connections") != 0);
  EXPECT_TRUE(found.count("rtt") != 0);               // declared after a nested struct
  EXPECT_TRUE(found.count("closes_by_reason") != 0);  // with a {} initializer
  EXPECT_TRUE(found.count("redials_queued") != 0);
  EXPECT_EQ(found.count("refusals"), 0u);  // a member function
  EXPECT_EQ(found.count("min"), 0u);       // a member of the nested RttSummary
  EXPECT_EQ(found.count("RttSummary"), 0u);
}

}  // namespace
}  // namespace dep2p::connmgr
