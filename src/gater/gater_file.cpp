#include "gater/gater_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <filesystem>

namespace dep2p::connmgr::detail {
namespace {

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

}  // namespace

std::optional<std::vector<FileRule>> parse_rules(std::string_view text, std::string& error) {
  std::vector<FileRule> rules;
  std::size_t line_number = 0;
  bool header_seen = false;
  auto fail = [&](const std::string& what) {
    error = "line " + std::to_string(line_number) + ": " + what;
    return std::nullopt;
  };
  while (!text.empty() || !header_seen) {
    ++line_number;
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::vector<std::string_view> fields = split_fields(line);

    if (!header_seen) {
      if (fields.size() == 2 && fields[0] == kGaterFileMagic && fields[1] != kGaterFileVersion) {
        return fail("unsupported version \"" + std::string(fields[1]) + "\" (this build reads " +
                    std::string(kGaterFileVersion) + ")");
      }
      if (fields.size() != 2 || fields[0] != kGaterFileMagic) {
        return fail("expected the header \"" + std::string(kGaterFileMagic) + " " +
                    std::string(kGaterFileVersion) + "\"");
      }
      header_seen = true;
      continue;
    }
    if (fields.empty() || fields[0].front() == '#') continue;

    const std::string_view keyword = fields[0];
    const bool peer = keyword.ends_with("-peer");
    const std::string_view verb = peer ? keyword.substr(0, keyword.size() - 5) : keyword;
    FileRule::Kind kind;
    if (verb == "block") {
      kind = FileRule::Kind::block;
    } else if (verb == "allow") {
      kind = FileRule::Kind::allow;
    } else if (verb == "ban") {
      kind = FileRule::Kind::ban;
    } else {
      return fail("unknown keyword \"" + std::string(keyword) + "\"");
    }
    const std::size_t expected = kind == FileRule::Kind::ban ? 3 : 2;
    if (fields.size() != expected) {
      return fail("\"" + std::string(keyword) + "\" takes " + std::to_string(expected - 1) +
                  (expected == 2 ? " field" : " fields") + ", found " +
                  std::to_string(fields.size() - 1));
    }
    std::optional<RuleKey> key;
    if (peer) {
      if (auto id = NodeId::try_from_hex(fields[1])) key.emplace(*id);
    } else if (auto net = parse_prefix(fields[1])) {
      key.emplace(*net);
    }
    if (!key) {
      return fail(std::string(peer ? "bad peer id" : "bad address or subnet") + " \"" +
                  std::string(fields[1]) + "\"");
    }
    std::int64_t until_ms = 0;
    if (kind == FileRule::Kind::ban) {
      const std::string_view number = fields[2];
      const auto [ptr, ec] =
          std::from_chars(number.data(), number.data() + number.size(), until_ms);
      if (ec != std::errc{} || ptr != number.data() + number.size() || until_ms < 0) {
        return fail("bad ban end \"" + std::string(number) + "\" (unix milliseconds)");
      }
    }
    rules.push_back(FileRule{kind, std::move(*key), until_ms});
  }
  return rules;
}

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string format_rules(const std::vector<FileRule>& rules) {
  std::vector<std::string> lines;
  lines.reserve(rules.size());
  for (const FileRule& rule : rules) {
    const auto* peer = std::get_if<NodeId>(&rule.key);
    std::string line = rule.kind == FileRule::Kind::block   ? "block"
                       : rule.kind == FileRule::Kind::allow ? "allow"
                                                            : "ban";
    if (peer != nullptr) line += "-peer";
    line += ' ';
    line += peer != nullptr ? peer->to_hex() : to_string(std::get<Prefix>(rule.key));
    if (rule.kind == FileRule::Kind::ban) line += " " + std::to_string(rule.until_ms);
    lines.push_back(std::move(line));
  }
  std::sort(lines.begin(), lines.end());
  std::string text;
  text.reserve(32 + lines.size() * 48);
  text.append(kGaterFileMagic).append(" ").append(kGaterFileVersion).append("\n");
  for (const std::string& line : lines) text.append(line).append("\n");
  return text;
}

std::error_code os_error(int error) { return {error != 0 ? error : EIO, std::system_category()}; }

std::optional<WriteFailure> write_atomically(const std::string& path, const std::string& text) {
  const std::string temp = path + ".tmp";
  auto fail = [](int error, const char* step, const std::string& file) {
    return WriteFailure{os_error(error), step, file};
  };
  std::FILE* out = std::fopen(temp.c_str(), "wbe");
  if (out == nullptr) return fail(errno, "create", temp);
  const bool written = std::fwrite(text.data(), 1, text.size(), out) == text.size() &&
                       std::fflush(out) == 0 && ::fsync(::fileno(out)) == 0;
  const int write_error = errno;
  if (std::fclose(out) != 0 || !written) {
    const int error = written ? errno : write_error;
    ::unlink(temp.c_str());
    return fail(error, "write", temp);
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    return fail(error, "rename over", path);
  }
  // The rename itself must survive a crash: fsync the directory too.
  std::string directory = std::filesystem::path(path).parent_path().string();
  if (directory.empty()) directory = ".";
  const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return fail(errno, "open directory", directory);
  const bool synced = ::fsync(dir) == 0;
  const int sync_error = errno;
  ::close(dir);
  if (!synced) return fail(sync_error, "fsync directory", directory);
  return std::nullopt;
}

bool read_whole_file(const std::string& path, std::string& text, int& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = errno;
    return false;
  }
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno;
      ::close(fd);
      return false;
    }
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return true;
}

}  // namespace dep2p::connmgr::detail
