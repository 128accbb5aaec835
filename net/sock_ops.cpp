// The engine-neutral part of the loop's sock_* coroutines: the argument
// checks every engine makes, and the calls written over the engine's own
// (sock_recv over sock_recv_into, sock_connect by name over sock_connect).
#include <backends/sendfile.hpp>
#include <core/tasks.hpp>
#include <net/dns.hpp>
#include <net/sock_ops.hpp>
#include <net/socket.hpp>

#ifdef _WIN32
#include <winsock2.h>
#else
#include <sys/socket.h>
#endif

#include <stdexcept>

namespace aio {

void detail::check_sock(const EventLoop& loop, const Socket& sock, const char* method) {
  if (!sock) throw std::invalid_argument(std::string(method) + ": the socket is closed (an empty aio::Socket)");
  // asyncio checks this in debug mode only (a ValueError): a blocking socket
  // would block the whole loop the first time it has nothing to give.
  if (loop.get_debug() && detail::socket_is_blocking(sock.fileno()))
    throw std::invalid_argument(std::string(method) + ": the socket must be non-blocking");
}

void detail::check_port(int port, const char* method) {
  if (port < 0 || port > 65535)
    throw std::invalid_argument(std::string(method) + ": invalid port " + std::to_string(port) + ": must be 0..65535");
}

void detail::check_stream_socket(const Socket& sock, int family, const char* method) {
  if (!sock) throw std::invalid_argument(std::string(method) + ": the socket is closed (an empty aio::Socket)");
  if (sock.get_option(SOL_SOCKET, SO_TYPE) != SOCK_STREAM)
    throw std::invalid_argument(std::string(method) + ": a stream socket (SOCK_STREAM) was expected");
  if (family != AF_UNSPEC && sock.getsockname().family() != family)
    throw std::invalid_argument(std::string(method) + ": a Unix-domain socket (AF_UNIX) was expected");
}

Task<std::string> EventLoop::sock_recv(Socket& sock, std::size_t nbytes) {
  std::string data(nbytes, '\0');
  data.resize(co_await sock_recv_into(sock, data));
  co_return data;
}

Task<std::pair<std::string, SocketAddress>> EventLoop::sock_recvfrom(Socket& sock, std::size_t bufsize) {
  std::string data(bufsize, '\0');
  auto [n, from] = co_await sock_recvfrom_into(sock, data);
  data.resize(n);
  co_return std::pair{std::move(data), from};
}

Task<void> EventLoop::sock_connect(Socket& sock, std::string host, int port) {
  detail::check_sock(*this, sock, "sock_connect");
  detail::check_port(port, "sock_connect");
  SocketAddress address;
  bool numeric = true;
  try {
    address = SocketAddress::parse(host, port);  // numeric: no lookup
  } catch (const std::invalid_argument&) {
    numeric = false;
  }
  if (!numeric) {
    int family = 0;
    try {
      family = sock.getsockname().family();
    } catch (const std::system_error&) {
      // Windows: an unbound socket has no name yet; take the first result.
    }
    auto infos = co_await getaddrinfo(host, port, family);
    if (infos.empty())
      throw std::system_error(std::make_error_code(std::errc::address_not_available),
                              "sock_connect: no address for '" + host + "'");
    address = infos.front().address;
  }
  co_await sock_connect(sock, address);
}

}  // namespace aio
