// The gater's rule file (BasicGater::attach_file): a versioned text format, one rule a
// line, read and written whole. Writing goes through a new file beside the old one, fsynced
// and renamed over it, then the directory fsynced, so the file on disk is always a
// complete version; reading refuses anything it does not fully understand, naming the line.
//
//   dep2p-connmgr-gater 1
//   block-peer 1220ab...            (a peer id in hex)
//   allow 10.1.2.7                  (an address or a subnet)
//   ban 192.0.2.0/24 1764000000000  (its end, in unix milliseconds)
//
// Thread safety: pure functions and plain file I/O; the caller serialises writes.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "dep2p/connmgr/types.hpp"
#include "net/prefix.hpp"

namespace dep2p::connmgr::detail {

inline constexpr std::string_view kGaterFileMagic = "dep2p-connmgr-gater";
inline constexpr std::string_view kGaterFileVersion = "1";

// What a rule is on: a peer, or an address or subnet.
using RuleKey = std::variant<NodeId, Prefix>;

// One rule of the file.
struct FileRule {
  enum class Kind { block, allow, ban } kind;
  RuleKey key;
  std::int64_t until_ms = 0;  // bans only: the end, in unix milliseconds
};

std::int64_t unix_ms(std::chrono::system_clock::time_point t);

// Parses a whole file; on failure returns nullopt and sets `error` to "line N: what".
std::optional<std::vector<FileRule>> parse_rules(std::string_view text, std::string& error);
// The file's text for `rules`: the header, then one line each, sorted, so that the same
// rules always give the same file.
std::string format_rules(const std::vector<FileRule>& rules);

// Why a write failed: the OS error, and the step and file it failed at.
struct WriteFailure {
  std::error_code error;
  std::string step;  // "create", "write", "rename over", "open directory", "fsync directory"
  std::string file;
};
// Replaces the file at `path` with `text` atomically (see above). On failure the previous
// file is intact and the temporary one removed.
std::optional<WriteFailure> write_atomically(const std::string& path, const std::string& text);
// Reads a whole file. Returns false with an errno value in `error` when it cannot; a
// missing file is ENOENT.
bool read_whole_file(const std::string& path, std::string& text, int& error);
std::error_code os_error(int error);

}  // namespace dep2p::connmgr::detail
