// The loop's sock_* coroutines and DNS methods, written once over readiness
// (add_reader/add_writer): what every selector loop uses. An engine without
// readiness (the proactor) overrides the virtual ones.
#include <core/tasks.hpp>
#include <net/dns.hpp>
#include <net/sock_ops.hpp>
#include <net/socket.hpp>

#include <stdexcept>

namespace aio {

void detail::check_socket_open(const Socket& sock, const char* method) {
  if (!sock) throw std::invalid_argument(std::string(method) + ": the socket is closed (an empty aio::Socket)");
}

Task<void> detail::wait_ready(EventLoop& loop, fd_t fd, bool writable) {
  Future<void> ready = loop.create_future<void>();
  auto wake = [ready]() mutable {
    if (!ready.done()) ready.set_result();
  };
  if (writable)
    loop.add_writer(fd, wake);
  else
    loop.add_reader(fd, wake);
  detail::ScopeExit unwatch([&] { writable ? loop.remove_writer(fd) : loop.remove_reader(fd); });
  co_await ready;
}

Task<std::size_t> EventLoop::sock_recv_into(Socket& sock, std::span<char> buffer) {
  detail::check_socket_open(sock, "sock_recv_into");
  for (;;) {
    if (auto n = sock.try_recv(buffer.data(), buffer.size())) co_return *n;
    co_await detail::wait_ready(*this, sock.fileno(), false);
  }
}

Task<std::string> EventLoop::sock_recv(Socket& sock, std::size_t nbytes) {
  std::string data(nbytes, '\0');
  data.resize(co_await sock_recv_into(sock, data));
  co_return data;
}

Task<std::pair<std::size_t, SocketAddress>> EventLoop::sock_recvfrom_into(Socket& sock, std::span<char> buffer) {
  detail::check_socket_open(sock, "sock_recvfrom_into");
  for (;;) {
    if (auto got = sock.try_recvfrom(buffer.data(), buffer.size())) co_return std::move(*got);
    co_await detail::wait_ready(*this, sock.fileno(), false);
  }
}

Task<std::pair<std::string, SocketAddress>> EventLoop::sock_recvfrom(Socket& sock, std::size_t bufsize) {
  std::string data(bufsize, '\0');
  auto [n, from] = co_await sock_recvfrom_into(sock, data);
  data.resize(n);
  co_return std::pair{std::move(data), from};
}

Task<void> EventLoop::sock_sendall(Socket& sock, std::string data) {
  detail::check_socket_open(sock, "sock_sendall");
  std::size_t sent = 0;
  while (sent < data.size()) {
    if (auto n = sock.try_send(data.data() + sent, data.size() - sent))
      sent += *n;
    else
      co_await detail::wait_ready(*this, sock.fileno(), true);
  }
}

Task<std::size_t> EventLoop::sock_sendto(Socket& sock, std::string data, SocketAddress address) {
  detail::check_socket_open(sock, "sock_sendto");
  for (;;) {
    if (auto n = sock.try_sendto(data.data(), data.size(), address)) co_return *n;
    co_await detail::wait_ready(*this, sock.fileno(), true);
  }
}

Task<void> EventLoop::sock_connect(Socket& sock, SocketAddress address) {
  detail::check_socket_open(sock, "sock_connect");
  if (sock.start_connect(address)) co_return;
  co_await detail::wait_ready(*this, sock.fileno(), true);
  sock.finish_connect(address);
}

Task<void> EventLoop::sock_connect(Socket& sock, std::string host, int port) {
  detail::check_socket_open(sock, "sock_connect");
  if (port < 0 || port > 65535)
    throw std::invalid_argument("sock_connect: invalid port " + std::to_string(port) + ": must be 0..65535");
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

Task<std::pair<Socket, SocketAddress>> EventLoop::sock_accept(Socket& sock) {
  detail::check_socket_open(sock, "sock_accept");
  for (;;) {
    if (auto got = sock.try_accept()) co_return std::move(*got);
    co_await detail::wait_ready(*this, sock.fileno(), false);
  }
}

Task<std::vector<AddrInfo>> EventLoop::getaddrinfo(std::string host, std::string port, int family, int type, int proto,
                                                   int flags) {
  // Here too, not only on the executor: the caller learns of it at once.
  detail::reject_nul(host, "host", "getaddrinfo");
  detail::reject_nul(port, "port", "getaddrinfo");
  AddrInfoHints hints{family, type, proto, flags};
  // Named, not written inside the co_await expression: GCC 12 destroys a
  // capturing lambda created in the same expression as a co_await twice.
  auto resolve = [host = std::move(host), port = std::move(port), hints] {
    return detail::getaddrinfo_blocking(host, port, hints);
  };
  co_return co_await run_in_executor(nullptr, std::move(resolve));
}

Task<std::vector<AddrInfo>> EventLoop::getaddrinfo(std::string host, int port, int family, int type, int proto,
                                                   int flags) {
  if (port < 0 || port > 65535)
    throw std::invalid_argument("getaddrinfo: invalid port " + std::to_string(port) + ": must be 0..65535");
  return getaddrinfo(std::move(host), std::to_string(port), family, type, proto, flags);
}

Task<std::pair<std::string, std::string>> EventLoop::getnameinfo(SocketAddress address, int flags) {
  auto lookup = [address, flags] { return detail::getnameinfo_blocking(address, flags); };  // named: see getaddrinfo
  co_return co_await run_in_executor(nullptr, std::move(lookup));
}

}  // namespace aio
