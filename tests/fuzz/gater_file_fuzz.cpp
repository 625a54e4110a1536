// Fuzz target: BasicGater's persistence file parser (attach_file). A file is either
// refused — with a message, and left byte for byte as it was — or loaded; a loaded file
// saved again loads into a fresh gater with the same rules, and saving is idempotent.
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "dep2p/connmgr/clock.hpp"
#include "dep2p/connmgr/gater.hpp"
#include "fuzz/fuzz_check.hpp"

namespace cm = dep2p::connmgr;

namespace {

// On tmpfs when there is one: every input is written, fsynced and renamed.
std::string scratch_path() {
  const std::filesystem::path dir =
      std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
  return (dir / ("dep2p_gater_fuzz_" + std::to_string(::getpid()) + ".rules")).string();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::shared_ptr<cm::BasicGater> make_gater(boost::asio::io_context& io,
                                           const std::shared_ptr<cm::ManualTimeSource>& time) {
  cm::BasicGaterOptions options;
  options.time_source = time;
  // Fixed wall time, so that bans in the input are neither all expired nor all live.
  options.wall_clock = [] {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'000));
  };
  return std::make_shared<cm::BasicGater>(io.get_executor(), options);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = scratch_path();
  const std::string input(reinterpret_cast<const char*>(data), size);
  write_file(path, input);

  boost::asio::io_context io;
  auto time = std::make_shared<cm::ManualTimeSource>(io);
  auto gater = make_gater(io, time);
  std::string message;
  if (gater->attach_file(path, &message)) {
    DEP2P_FUZZ_CHECK(!message.empty(), "a refusal without a message");
    DEP2P_FUZZ_CHECK(read_file(path) == input, "a refused file was changed");
    DEP2P_FUZZ_CHECK(gater->rule_count() == 0, "a refused file left rules behind");
    return 0;
  }
  const std::size_t rules = gater->rule_count();
  DEP2P_FUZZ_CHECK(!gater->save(), "save after attach");
  const std::string saved = read_file(path);
  DEP2P_FUZZ_CHECK(!gater->save(), "second save");
  DEP2P_FUZZ_CHECK(read_file(path) == saved, "saving twice gave different files");

  auto fresh = make_gater(io, time);
  message.clear();
  DEP2P_FUZZ_CHECK(!fresh->attach_file(path, &message), "a saved file does not load: " + message);
  DEP2P_FUZZ_CHECK(fresh->rule_count() == rules, "rules lost or gained in a round trip");
  return 0;
}
