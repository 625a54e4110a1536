#include "dep2p/connmgr/types.hpp"

#include "dep2p/connmgr/dial.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <ostream>
#include <stdexcept>

namespace dep2p::connmgr {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Why `hex` is not a valid NodeId, or nullptr when it is.
const char* hex_problem(std::string_view hex) noexcept {
  if (hex.empty()) return "NodeId: empty hex string";
  if (hex.size() % 2 != 0) return "NodeId: hex string has an odd number of digits";
  if (hex.size() > 2 * NodeId::kMaxSize) return "NodeId: hex string longer than 128 digits";
  for (char c : hex) {
    if (hex_value(c) < 0) return "NodeId: hex string contains a non-hex character";
  }
  return nullptr;
}

std::string to_hex_string(std::span<const std::uint8_t> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::uint8_t b : bytes) {
    out.push_back(kHexDigits[b >> 4]);
    out.push_back(kHexDigits[b & 0x0f]);
  }
  return out;
}

constexpr char kBase58Digits[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

int base58_value(char c) noexcept {
  static constexpr auto kTable = [] {
    std::array<std::int8_t, 256> table{};
    table.fill(-1);
    for (std::size_t i = 0; i < 58; ++i) {
      table[static_cast<unsigned char>(kBase58Digits[i])] = static_cast<std::int8_t>(i);
    }
    return table;
  }();
  return kTable[static_cast<unsigned char>(c)];
}

// Base58 of at most kMaxSize bytes has at most 88 digits (64 * log(256) / log(58) < 88).
constexpr std::size_t kMaxBase58 = 88;

// Base58btc: each leading zero byte is a '1', the rest is the bytes read as one big-endian
// number written in base 58. Schoolbook conversion, digits kept little-endian in `digits`.
std::string to_base58_string(std::span<const std::uint8_t> bytes) {
  std::size_t zeros = 0;
  while (zeros < bytes.size() && bytes[zeros] == 0) ++zeros;
  std::array<std::uint8_t, kMaxBase58> digits{};
  std::size_t length = 0;
  for (std::size_t i = zeros; i < bytes.size(); ++i) {
    unsigned carry = bytes[i];
    for (std::size_t j = 0; j < length; ++j) {
      carry += static_cast<unsigned>(digits[j]) << 8;
      digits[j] = static_cast<std::uint8_t>(carry % 58);
      carry /= 58;
    }
    while (carry != 0) {
      digits[length++] = static_cast<std::uint8_t>(carry % 58);
      carry /= 58;
    }
  }
  std::string out(zeros, '1');
  out.reserve(zeros + length);
  for (std::size_t j = length; j-- > 0;) out.push_back(kBase58Digits[digits[j]]);
  return out;
}

// Why `text` is not the base58 of a NodeId (nullptr when it is); the bytes in `out`.
const char* from_base58_string(std::string_view text,
                               std::array<std::uint8_t, NodeId::kMaxSize>& out,
                               std::size_t& size) noexcept {
  if (text.empty()) return "NodeId: empty base58 string";
  if (text.size() > kMaxBase58) return "NodeId: base58 string longer than 64 bytes";
  std::size_t zeros = 0;
  while (zeros < text.size() && text[zeros] == '1') ++zeros;
  // Bytes kept little-endian; one extra so that an overflow past kMaxSize is seen.
  std::array<std::uint8_t, NodeId::kMaxSize + 1> number{};
  std::size_t length = 0;
  for (std::size_t i = zeros; i < text.size(); ++i) {
    const int value = base58_value(text[i]);
    if (value < 0) return "NodeId: base58 string contains a character outside the alphabet";
    unsigned carry = static_cast<unsigned>(value);
    for (std::size_t j = 0; j < length; ++j) {
      carry += static_cast<unsigned>(number[j]) * 58;
      number[j] = static_cast<std::uint8_t>(carry & 0xff);
      carry >>= 8;
    }
    while (carry != 0) {
      if (length == number.size()) return "NodeId: base58 string longer than 64 bytes";
      number[length++] = static_cast<std::uint8_t>(carry & 0xff);
      carry >>= 8;
    }
  }
  size = zeros + length;
  if (size > NodeId::kMaxSize) return "NodeId: base58 string longer than 64 bytes";
  std::fill(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(zeros), std::uint8_t{0});
  for (std::size_t j = 0; j < length; ++j) out[zeros + j] = number[length - 1 - j];
  return nullptr;
}

std::span<const std::uint8_t> as_bytes(std::string_view bytes) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()};
}

}  // namespace

NodeId::NodeId(std::span<const std::uint8_t> bytes) {
  if (bytes.empty()) throw std::invalid_argument("NodeId: empty id");
  if (bytes.size() > kMaxSize) {
    throw std::invalid_argument("NodeId: " + std::to_string(bytes.size()) +
                                " bytes, at most 64 allowed");
  }
  std::copy(bytes.begin(), bytes.end(), data_.begin());
  size_ = static_cast<std::uint8_t>(bytes.size());
}

std::optional<NodeId> NodeId::try_from_bytes(std::span<const std::uint8_t> bytes) noexcept {
  if (bytes.empty() || bytes.size() > kMaxSize) return std::nullopt;
  NodeId id;
  std::copy(bytes.begin(), bytes.end(), id.data_.begin());
  id.size_ = static_cast<std::uint8_t>(bytes.size());
  return id;
}

NodeId NodeId::from_bytes(std::string_view bytes) { return NodeId(as_bytes(bytes)); }

std::optional<NodeId> NodeId::try_from_bytes(std::string_view bytes) noexcept {
  return try_from_bytes(as_bytes(bytes));
}

std::optional<NodeId> NodeId::try_from_base58(std::string_view text) noexcept {
  NodeId id;
  std::size_t size = 0;
  if (from_base58_string(text, id.data_, size) != nullptr) return std::nullopt;
  id.size_ = static_cast<std::uint8_t>(size);
  return id;
}

NodeId NodeId::from_base58(std::string_view text) {
  NodeId id;
  std::size_t size = 0;
  if (const char* problem = from_base58_string(text, id.data_, size)) {
    throw std::invalid_argument(problem);
  }
  id.size_ = static_cast<std::uint8_t>(size);
  return id;
}

std::optional<NodeId> NodeId::try_from_hex(std::string_view hex) noexcept {
  if (hex_problem(hex) != nullptr) return std::nullopt;
  NodeId id;
  id.size_ = static_cast<std::uint8_t>(hex.size() / 2);
  for (std::size_t i = 0; i < id.size_; ++i) {
    id.data_[i] =
        static_cast<std::uint8_t>((hex_value(hex[2 * i]) << 4) | hex_value(hex[2 * i + 1]));
  }
  return id;
}

NodeId NodeId::from_hex(std::string_view hex) {
  if (const char* problem = hex_problem(hex)) throw std::invalid_argument(problem);
  return *try_from_hex(hex);
}

std::string NodeId::to_hex() const { return to_hex_string(bytes()); }

std::string NodeId::to_base58() const { return to_base58_string(bytes()); }

std::string NodeId::short_string() const {
  std::string text = to_base58();
  constexpr std::size_t kHead = 2;
  constexpr std::size_t kTail = 6;
  if (text.size() <= kHead + kTail) return text;
  text.replace(kHead, text.size() - kHead - kTail, "*");
  return text;
}

std::string NodeId::short_hex() const {
  constexpr std::size_t kShown = 6;
  if (size_ <= kShown) return to_hex();
  return "…" + to_hex_string(bytes().last(kShown));
}

std::strong_ordering operator<=>(const NodeId& a, const NodeId& b) noexcept {
  const std::size_t common = std::min(a.size_, b.size_);
  if (int c = std::memcmp(a.data_.data(), b.data_.data(), common); c != 0) {
    return c < 0 ? std::strong_ordering::less : std::strong_ordering::greater;
  }
  return a.size_ <=> b.size_;
}

std::ostream& operator<<(std::ostream& os, const NodeId& id) { return os << id.to_base58(); }

std::string_view to_string(DialFailure failure) noexcept {
  switch (failure) {
    case DialFailure::error: return "error";
    case DialFailure::timeout: return "timeout";
    case DialFailure::refused: return "refused";
  }
  return "unknown";
}

std::string_view to_string(DialOutcome outcome) noexcept {
  switch (outcome) {
    case DialOutcome::succeeded: return "succeeded";
    case DialOutcome::failed: return "failed";
    case DialOutcome::lapsed: return "lapsed";
    case DialOutcome::canceled: return "canceled";
  }
  return "unknown";
}

std::string_view to_string(DialPurpose purpose) noexcept {
  switch (purpose) {
    case DialPurpose::reconnect: return "reconnect";
    case DialPurpose::direct_path: return "direct_path";
  }
  return "unknown";
}

std::string_view to_string(CloseReason reason) noexcept {
  switch (reason) {
    case CloseReason::trimmed: return "trimmed";
    case CloseReason::forced_trim: return "forced_trim";
    case CloseReason::keepalive_timeout: return "keepalive_timeout";
    case CloseReason::idle_timeout: return "idle_timeout";
    case CloseReason::gated: return "gated";
    case CloseReason::limit_exceeded: return "limit_exceeded";
    case CloseReason::redundant_path: return "redundant_path";
    case CloseReason::duplicate: return "duplicate";
    case CloseReason::shutdown: return "shutdown";
    case CloseReason::host: return "host";
    case CloseReason::handshake_timeout: return "handshake_timeout";
    case CloseReason::made_room: return "made_room";
    case CloseReason::remote: return "remote";
  }
  return "unknown";
}

std::string_view to_string(ConnectionState state) noexcept {
  switch (state) {
    case ConnectionState::dialing: return "dialing";
    case ConnectionState::handshaking: return "handshaking";
    case ConnectionState::established: return "established";
    case ConnectionState::closing: return "closing";
    case ConnectionState::closed: return "closed";
  }
  return "unknown";
}

std::string_view to_string(Direction direction) noexcept {
  return direction == Direction::inbound ? "inbound" : "outbound";
}

std::string_view to_string(PathKind kind) noexcept {
  return kind == PathKind::direct ? "direct" : "relay";
}

std::string_view to_string(Transport transport) noexcept {
  switch (transport) {
    case Transport::tcp: return "tcp";
    case Transport::quic: return "quic";
    case Transport::websocket: return "websocket";
    case Transport::webrtc: return "webrtc";
    case Transport::other: return "other";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, CloseReason reason) { return os << to_string(reason); }
std::ostream& operator<<(std::ostream& os, Direction direction) {
  return os << to_string(direction);
}

std::string Endpoint::to_string() const {
  const std::string port_text = std::to_string(port);
  if (address.is_v6()) return "[" + address.to_string() + "]:" + port_text;
  return address.to_string() + ":" + port_text;
}

std::string Subnet::to_string() const {
  return address.to_string() + "/" + std::to_string(unsigned{prefix_length});
}

bool operator<(const Subnet& a, const Subnet& b) noexcept {
  if (a.address.is_v4() != b.address.is_v4()) return a.address.is_v4();
  if (a.address != b.address) return a.address < b.address;
  return a.prefix_length < b.prefix_length;
}

}  // namespace dep2p::connmgr
