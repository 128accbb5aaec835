// Name resolution: getaddrinfo and getnameinfo, as blocking calls that the
// loop runs on its executor (EventLoop::getaddrinfo / getnameinfo).
#pragma once

#include <core/address.hpp>

#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace aio {

// One result of getaddrinfo (the OS AF_*, SOCK_*, IPPROTO_* values).
struct AddrInfo {
  int family = 0;
  int type = 0;
  int protocol = 0;
  std::string canonname;
  SocketAddress address;
};

// getaddrinfo's hints, as asyncio's keyword arguments (0: any).
struct AddrInfoHints {
  int family = 0;
  int type = 0;
  int protocol = 0;
  int flags = 0;
};

// The EAI_* error codes of getaddrinfo/getnameinfo (asyncio's socket.gaierror).
const std::error_category& gai_category() noexcept;

namespace detail {
// Throws std::invalid_argument if `value` holds a NUL byte: the C calls below
// would stop there and silently use a shorter name ("127.0.0.1\0.evil.example").
// `what` names the argument ("host", "port", "path") and `method` the caller.
void reject_nul(std::string_view value, const char* what, const char* method);

// The blocking calls. An empty `host` or `port` is passed as NULL. Errors are
// std::system_error in gai_category() (or the system category for EAI_SYSTEM),
// naming the host and port.
std::vector<AddrInfo> getaddrinfo_blocking(const std::string& host, const std::string& port,
                                           const AddrInfoHints& hints);
std::pair<std::string, std::string> getnameinfo_blocking(const SocketAddress& address, int flags);
}  // namespace detail

}  // namespace aio
