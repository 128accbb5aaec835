// libFuzzer target: what turns outside text into an address. The input is
// two bytes of port, then a host (or a Unix path). Whatever the bytes, each
// call either succeeds with a consistent address or throws
// std::invalid_argument / std::system_error; never crashes, never accepts a
// name cut at a NUL.
#include <core/address.hpp>
#include <net/dns.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#ifdef _WIN32
#include <ws2tcpip.h>
#else
#include <netdb.h>
#include <sys/socket.h>
#endif

namespace {

// A broken invariant: crash, so that libFuzzer keeps the input.
[[noreturn]] void fail(const char* what) {
  (void)what;
  __builtin_trap();
}

void check_parse(std::string_view host, int port) {
  aio::SocketAddress address;
  try {
    address = aio::SocketAddress::parse(host, port);
  } catch (const std::invalid_argument&) {
    return;
  }
  if (host.find('\0') != std::string_view::npos) fail("parse accepted a NUL byte");
  if (address.port() != port) fail("port did not round trip");
  if (address.family() != AF_INET && address.family() != AF_INET6) fail("parse made a non-IP address");
  // The canonical text parses back to the same address (a named IPv6 scope
  // comes back as its number, which parses too).
  std::string text = address.host();
  if (aio::SocketAddress::parse(text, port) != address) fail("host() did not round trip");
  (void)address.to_string();
}

void check_unix(std::string_view path) {
  try {
    aio::SocketAddress address = aio::SocketAddress::unix_path(path);
    if (!path.empty() && path.front() != '\0' && path.find('\0') != std::string_view::npos)
      fail("unix_path accepted a NUL inside a path");
    if (address.path() != path) fail("unix path did not round trip");
    (void)address.to_string();
  } catch (const std::invalid_argument&) {
  }
}

void check_numeric_lookup(const std::string& host, const std::string& port) {
  // Numeric only: no name service is ever asked.
  aio::AddrInfoHints hints{0, SOCK_STREAM, 0, AI_NUMERICHOST | AI_NUMERICSERV};
  try {
    auto results = aio::detail::getaddrinfo_blocking(host, port, hints);
    if (host.find('\0') != std::string::npos || port.find('\0') != std::string::npos)
      fail("getaddrinfo accepted a NUL byte");
    for (const auto& r : results) (void)r.address.to_string();
  } catch (const std::invalid_argument&) {
  } catch (const std::system_error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const int port = (data[0] << 8 | data[1]) % 65537 - (data[0] & 0x80 ? 1 : 0);  // -1 and 65536 too
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  check_parse(rest, port);
  check_unix(rest);
  // The same bytes split at the first '|' into a host and a port string.
  auto bar = rest.find('|');
  std::string host(rest.substr(0, bar));
  std::string service = bar == std::string_view::npos ? std::string() : std::string(rest.substr(bar + 1));
  check_numeric_lookup(host, service);
  return 0;
}
