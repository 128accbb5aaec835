#include <net/socket_extra_info.hpp>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <netinet/in.h>
#include <netinet/tcp.h>
#endif

#include <system_error>

namespace aio::detail {

StreamSocketInfo::StreamSocketInfo(Socket& sock) {
  int family = sock.getsockname().family();
  if (family == AF_INET || family == AF_INET6) sock.set_option(IPPROTO_TCP, TCP_NODELAY, 1);
  try {
    peername_ = sock.getpeername();
  } catch (const std::system_error&) {
    // Not connected (any more): no peer name to give.
  }
  sockname_ = sock.getsockname();
}

std::any StreamSocketInfo::get(std::string_view name, const Socket& sock) const {
  if (name == "peername" && peername_.size()) return peername_;
  if (name == "sockname") return sockname_;
  if (name == "socket" && sock) return sock.fileno();
  return {};
}

std::any datagram_extra_info(std::string_view name, const Socket& sock, const std::optional<SocketAddress>& peername) {
  if (name == "peername" && peername) return *peername;
  if (name == "sockname" && sock) {
    try {
      return sock.getsockname();
    } catch (const std::system_error&) {
      return {};  // Windows: not bound yet
    }
  }
  if (name == "socket" && sock) return sock.fileno();
  return {};
}

}  // namespace aio::detail
