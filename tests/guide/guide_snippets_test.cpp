// Keeps docs/guide.md and its compiled code in step: every ```cpp block of the guide must
// appear in one of the guide's source files, line for line. A block may be indented less
// than in the source (the guide shows the body of a test flush left), by the same number
// of spaces on every line; otherwise it must match exactly.
#include <gtest/gtest.h>

#include <cstddef>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot read " << path;
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

struct Block {
  std::size_t line = 0;  // 1-based line of the opening fence in the guide
  std::vector<std::string> lines;
};

std::vector<Block> cpp_blocks(const std::vector<std::string>& markdown) {
  std::vector<Block> blocks;
  bool inside = false;
  for (std::size_t i = 0; i < markdown.size(); ++i) {
    const std::string& line = markdown[i];
    if (!inside && line.rfind("```cpp", 0) == 0) {
      inside = true;
      blocks.push_back({i + 1, {}});
    } else if (inside && line.rfind("```", 0) == 0) {
      inside = false;
    } else if (inside) {
      blocks.back().lines.push_back(line);
    }
  }
  EXPECT_FALSE(inside) << "an unterminated ```cpp block";
  return blocks;
}

bool blank(const std::string& line) { return line.find_first_not_of(' ') == std::string::npos; }

// Whether `block` appears in `source` starting at line `at`, each line indented by the
// same extra number of spaces.
bool matches_at(const std::vector<std::string>& source, std::size_t at, const Block& block) {
  if (block.lines.empty() || at + block.lines.size() > source.size()) return false;
  const std::string& first = source[at];
  if (first.size() < block.lines[0].size()) return false;
  const std::size_t indent = first.size() - block.lines[0].size();
  if (first.compare(indent, std::string::npos, block.lines[0]) != 0) return false;
  const std::string pad(indent, ' ');
  for (std::size_t i = 0; i < block.lines.size(); ++i) {
    const std::string& want = block.lines[i];
    const std::string& have = source[at + i];
    if (want.empty() ? !blank(have) : have != pad + want) return false;
  }
  return true;
}

TEST(GuideSnippets, EveryCodeBlockOfTheGuideIsCompiledCode) {
  const std::string root = DEP2P_SOURCE_DIR;
  const auto guide = read_lines(root + "/docs/guide.md");
  const std::vector<std::string> sources = {"tests/guide/guide_host.hpp",
                                            "tests/guide/guide_host.cpp",
                                            "tests/guide/guide_realms.cpp"};
  std::vector<std::vector<std::string>> source_lines;
  for (const auto& path : sources) source_lines.push_back(read_lines(root + "/" + path));

  const auto blocks = cpp_blocks(guide);
  EXPECT_GE(blocks.size(), 8u) << "the guide should show its code";
  for (const Block& block : blocks) {
    bool found = false;
    for (const auto& source : source_lines) {
      for (std::size_t at = 0; at < source.size() && !found; ++at) {
        found = matches_at(source, at, block);
      }
    }
    std::ostringstream shown;
    for (const auto& line : block.lines) shown << "\n    " << line;
    EXPECT_TRUE(found) << "docs/guide.md:" << block.line
                       << ": this block is not in tests/guide/ (copy it from there):"
                       << shown.str();
  }
}

}  // namespace
