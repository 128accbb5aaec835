#include <core/address.hpp>
#include <net/dns.hpp>

#include <backends/syscall.hpp>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#if __has_include(<afunix.h>)
#include <afunix.h>
#define AIO_HAVE_AF_UNIX 1
#endif
#else
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#define AIO_HAVE_AF_UNIX 1
#endif

namespace aio {

static_assert(sizeof(sockaddr_storage) <= SocketAddress::capacity);
static_assert(alignof(sockaddr_storage) <= 8);

namespace {

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

[[noreturn]] void not_numeric(std::string_view host) {
  throw std::invalid_argument(quoted(host) +
                              " is not a numeric IPv4 or IPv6 address; resolve host names with getaddrinfo");
}

std::uint32_t parse_scope(std::string_view scope, std::string_view host) {
  if (scope.empty()) throw std::invalid_argument("empty IPv6 scope in " + quoted(host));
  std::uint32_t index = 0;
  auto [end, ec] = std::from_chars(scope.data(), scope.data() + scope.size(), index);
  if (ec == std::errc() && end == scope.data() + scope.size()) return index;
#ifdef _WIN32
  // Named scopes need if_nametoindex from iphlpapi, which the library does not link.
  throw std::invalid_argument("IPv6 scope " + quoted(scope) + " in " + quoted(host) +
                              ": only numeric scope ids (e.g. %2) are supported on Windows");
#else
  index = if_nametoindex(std::string(scope).c_str());
  if (index == 0)
    throw std::invalid_argument("IPv6 scope " + quoted(scope) + " in " + quoted(host) +
                                " is not a network interface name or a number");
  return index;
#endif
}

#ifdef AIO_HAVE_AF_UNIX
constexpr unsigned path_offset = offsetof(sockaddr_un, sun_path);
#endif

}  // namespace

SocketAddress SocketAddress::parse(std::string_view host, int port) {
  if (port < 0 || port > 65535)
    throw std::invalid_argument("invalid port " + std::to_string(port) + ": must be 0..65535");
  detail::reject_nul(host, "host", "SocketAddress::parse");
  detail::ensure_sockets_ready();
  SocketAddress a;
  if (host.find(':') == std::string_view::npos) {
    auto* sin = reinterpret_cast<sockaddr_in*>(a.storage_);
    if (inet_pton(AF_INET, std::string(host).c_str(), &sin->sin_addr) != 1) not_numeric(host);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<std::uint16_t>(port));
#ifdef SIN6_LEN
    sin->sin_len = sizeof(sockaddr_in);
#endif
    a.length_ = sizeof(sockaddr_in);
    return a;
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(a.storage_);
  std::string_view address = host;
  if (auto percent = host.find('%'); percent != std::string_view::npos) {
    address = host.substr(0, percent);
    sin6->sin6_scope_id = parse_scope(host.substr(percent + 1), host);
  }
  if (inet_pton(AF_INET6, std::string(address).c_str(), &sin6->sin6_addr) != 1) not_numeric(host);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(static_cast<std::uint16_t>(port));
#ifdef SIN6_LEN
  sin6->sin6_len = sizeof(sockaddr_in6);
#endif
  a.length_ = sizeof(sockaddr_in6);
  return a;
}

SocketAddress SocketAddress::unix_path(std::string_view path) {
#ifndef AIO_HAVE_AF_UNIX
  (void)path;
  throw std::invalid_argument("Unix sockets are not available on this platform");
#else
  if (path.empty()) throw std::invalid_argument("empty Unix socket path");
  SocketAddress a;
  auto* sun = reinterpret_cast<sockaddr_un*>(a.storage_);
  constexpr std::size_t room = sizeof(sun->sun_path);
  if (path.front() == '\0') {
#ifndef __linux__
    throw std::invalid_argument("abstract Unix socket names (leading '\\0') exist on Linux only");
#else
    if (path.size() > room)
      throw std::invalid_argument("abstract Unix socket name of " + std::to_string(path.size()) +
                                  " bytes is too long: at most " + std::to_string(room));
    a.length_ = static_cast<unsigned>(path_offset + path.size());
#endif
  } else {
    // The OS would stop at an embedded NUL and bind a shorter path.
    detail::reject_nul(path, "path", "SocketAddress::unix_path");
    // The path is stored NUL-terminated, as the BSDs and macOS require.
    if (path.size() >= room)
      throw std::invalid_argument("Unix socket path of " + std::to_string(path.size()) +
                                  " bytes is too long: at most " + std::to_string(room - 1));
    a.length_ = static_cast<unsigned>(path_offset + path.size() + 1);
  }
  sun->sun_family = AF_UNIX;
  std::memcpy(sun->sun_path, path.data(), path.size());
#ifdef SIN6_LEN
  sun->sun_len = static_cast<std::uint8_t>(a.length_);
#endif
  return a;
#endif
}

SocketAddress SocketAddress::from_native(const void* sa, unsigned len) {
  SocketAddress a;
  a.set_size(len);
  std::memcpy(a.storage_, sa, len);
  return a;
}

void SocketAddress::set_size(unsigned len) {
  if (len > capacity)
    throw std::invalid_argument("socket address of " + std::to_string(len) + " bytes: at most " +
                                std::to_string(capacity));
  length_ = len;
}

int SocketAddress::family() const noexcept {
  if (length_ < offsetof(sockaddr, sa_family) + sizeof(sockaddr{}.sa_family)) return AF_UNSPEC;
  return reinterpret_cast<const sockaddr*>(storage_)->sa_family;
}

std::string SocketAddress::host() const {
  char text[INET6_ADDRSTRLEN + 1] = {};
  switch (family()) {
    case AF_INET: {
      auto* sin = reinterpret_cast<const sockaddr_in*>(storage_);
      if (!inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text)) return {};
      return text;
    }
    case AF_INET6: {
      auto* sin6 = reinterpret_cast<const sockaddr_in6*>(storage_);
      if (!inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof text)) return {};
      std::string result = text;
      if (auto scope = sin6->sin6_scope_id; scope != 0) {
#ifndef _WIN32
        char name[IF_NAMESIZE] = {};
        if (if_indextoname(scope, name)) return result + "%" + name;
#endif
        result += "%" + std::to_string(scope);
      }
      return result;
    }
    default:
      return {};
  }
}

int SocketAddress::port() const noexcept {
  switch (family()) {
    case AF_INET:
      return ntohs(reinterpret_cast<const sockaddr_in*>(storage_)->sin_port);
    case AF_INET6:
      return ntohs(reinterpret_cast<const sockaddr_in6*>(storage_)->sin6_port);
    default:
      return 0;
  }
}

std::string SocketAddress::path() const {
#ifdef AIO_HAVE_AF_UNIX
  if (family() != AF_UNIX || length_ <= path_offset) return {};
  auto* sun = reinterpret_cast<const sockaddr_un*>(storage_);
  std::size_t n = length_ - path_offset;
  if (sun->sun_path[0] == '\0') return std::string(sun->sun_path, n);
  std::size_t len = 0;
  while (len < n && sun->sun_path[len] != '\0') ++len;
  return std::string(sun->sun_path, len);
#else
  return {};
#endif
}

std::string SocketAddress::to_string() const {
  switch (family()) {
    case AF_INET:
      return host() + ":" + std::to_string(port());
    case AF_INET6:
      return "[" + host() + "]:" + std::to_string(port());
    default: {
      std::string p = path();
      if (!p.empty() && p.front() == '\0') p.front() = '@';
      return p;
    }
  }
}

bool SocketAddress::operator==(const SocketAddress& other) const noexcept {
  if (family() != other.family()) return false;
  switch (family()) {
    case AF_INET: {
      auto* a = reinterpret_cast<const sockaddr_in*>(storage_);
      auto* b = reinterpret_cast<const sockaddr_in*>(other.storage_);
      return a->sin_port == b->sin_port && std::memcmp(&a->sin_addr, &b->sin_addr, sizeof a->sin_addr) == 0;
    }
    case AF_INET6: {
      auto* a = reinterpret_cast<const sockaddr_in6*>(storage_);
      auto* b = reinterpret_cast<const sockaddr_in6*>(other.storage_);
      return a->sin6_port == b->sin6_port && a->sin6_scope_id == b->sin6_scope_id &&
             std::memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
    }
#ifdef AIO_HAVE_AF_UNIX
    case AF_UNIX:
      try {
        return path() == other.path();
      } catch (...) {
        return false;
      }
#endif
    default:
      return length_ == other.length_ && std::memcmp(storage_, other.storage_, length_) == 0;
  }
}

}  // namespace aio
