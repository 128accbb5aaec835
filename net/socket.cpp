#include <net/socket.hpp>

#include <backends/syscall.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>

#include <windows.h>
#else
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#endif

namespace aio {

namespace {

#ifdef _WIN32
using native_t = SOCKET;
using socklen_type = int;
using option_ptr = char*;
constexpr int shut_write = SD_SEND;
constexpr int shut_both = SD_BOTH;
#else
using native_t = int;
using socklen_type = socklen_t;
using option_ptr = void*;
constexpr int shut_write = SHUT_WR;
constexpr int shut_both = SHUT_RDWR;
#endif

native_t native(fd_t fd) { return static_cast<native_t>(fd); }

std::string describe(int family, int type) {
  std::string f = family == AF_INET    ? "AF_INET"
                  : family == AF_INET6 ? "AF_INET6"
                  : family == AF_UNIX  ? "AF_UNIX"
                                       : "family " + std::to_string(family);
  std::string t = type == SOCK_STREAM  ? "SOCK_STREAM"
                  : type == SOCK_DGRAM ? "SOCK_DGRAM"
                                       : "type " + std::to_string(type);
  return f + " " + t;
}

std::string on_fd(const char* call, fd_t fd) { return std::string(call) + " fd " + std::to_string(fd); }

#ifdef _WIN32
void set_no_inherit(SOCKET s, const char* what) {
  if (!SetHandleInformation(reinterpret_cast<HANDLE>(s), HANDLE_FLAG_INHERIT, 0))
    detail::throw_os_error(static_cast<int>(GetLastError()), what);
}
#elif !defined(SOCK_CLOEXEC)
void set_fd_flags(int fd) {
  int fd_flags = fcntl(fd, F_GETFD);
  detail::check_socket_call(fd_flags == -1 || fcntl(fd, F_SETFD, fd_flags | FD_CLOEXEC) == -1,
                            on_fd("fcntl FD_CLOEXEC", fd));
  int fl_flags = fcntl(fd, F_GETFL);
  detail::check_socket_call(fl_flags == -1 || fcntl(fd, F_SETFL, fl_flags | O_NONBLOCK) == -1,
                            on_fd("fcntl O_NONBLOCK", fd));
}
#endif

}  // namespace

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = other.release();
  }
  return *this;
}

void Socket::close() noexcept {
  if (fd_ == -1) return;
#ifdef _WIN32
  closesocket(native(fd_));
#else
  // Not retried on EINTR: Linux has released the descriptor even then.
  ::close(native(fd_));
#endif
  fd_ = -1;
}

Socket Socket::create(int family, int type, int protocol) {
  detail::ensure_sockets_ready();
#ifdef _WIN32
  // Overlapped so that the proactor can use the same sockets.
  SOCKET s = WSASocketW(family, type, protocol, nullptr, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL) {
    // Windows 7 before SP1 rejects WSA_FLAG_NO_HANDLE_INHERIT.
    s = WSASocketW(family, type, protocol, nullptr, 0, WSA_FLAG_OVERLAPPED);
    if (s != INVALID_SOCKET) {
      Socket guard(static_cast<fd_t>(s));
      set_no_inherit(s, "SetHandleInformation on a new socket");
      guard.release();
    }
  }
  detail::check_socket_call(s == INVALID_SOCKET, "socket " + describe(family, type));
  Socket sock(static_cast<fd_t>(s));
  sock.set_blocking(false);
  return sock;
#else
#ifdef SOCK_CLOEXEC
  int fd = ::socket(family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
  detail::check_socket_call(fd == -1, "socket " + describe(family, type));
  Socket sock(fd);
#else
  int fd = ::socket(family, type, protocol);
  detail::check_socket_call(fd == -1, "socket " + describe(family, type));
  Socket sock(fd);
  set_fd_flags(fd);
#endif
#ifdef SO_NOSIGPIPE
  sock.set_option(SOL_SOCKET, SO_NOSIGPIPE, 1);
#endif
  return sock;
#endif
}

std::pair<Socket, Socket> Socket::socketpair() {
#ifdef _WIN32
  Socket listener = create(AF_INET, SOCK_STREAM);
  listener.bind(SocketAddress::parse("127.0.0.1", 0));
  listener.listen(1);
  SocketAddress address = listener.getsockname();
  Socket client = create(AF_INET, SOCK_STREAM);
  client.set_blocking(true);
  detail::check_socket_call(::connect(native(client.fd_), static_cast<const sockaddr*>(address.data()),
                                      static_cast<int>(address.size())) == SOCKET_ERROR,
                            "socketpair: connect " + address.to_string());
  listener.set_blocking(true);
  SOCKET s = ::accept(native(listener.fd_), nullptr, nullptr);
  detail::check_socket_call(s == INVALID_SOCKET, "socketpair: accept on " + address.to_string());
  Socket server(static_cast<fd_t>(s));
  set_no_inherit(s, "socketpair: SetHandleInformation");
  // Another local process could have connected first (CPython checks the same).
  if (!(server.getpeername() == client.getsockname()))
    detail::throw_os_error(WSAECONNABORTED, "socketpair: unexpected peer on " + address.to_string());
  client.set_blocking(false);
  server.set_blocking(false);
  return {std::move(client), std::move(server)};
#else
  int fds[2];
#ifdef SOCK_CLOEXEC
  detail::check_socket_call(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) == -1,
                            "socketpair AF_UNIX SOCK_STREAM");
  std::pair<Socket, Socket> pair{Socket(fds[0]), Socket(fds[1])};
#else
  detail::check_socket_call(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == -1, "socketpair AF_UNIX SOCK_STREAM");
  std::pair<Socket, Socket> pair{Socket(fds[0]), Socket(fds[1])};
  set_fd_flags(fds[0]);
  set_fd_flags(fds[1]);
#endif
#ifdef SO_NOSIGPIPE
  pair.first.set_option(SOL_SOCKET, SO_NOSIGPIPE, 1);
  pair.second.set_option(SOL_SOCKET, SO_NOSIGPIPE, 1);
#endif
  return pair;
#endif
}

void Socket::bind(const SocketAddress& address) {
  detail::check_socket_call(
      ::bind(native(fd_), static_cast<const sockaddr*>(address.data()), static_cast<socklen_type>(address.size())) != 0,
      "bind " + address.to_string());
}

void Socket::listen(int backlog) {
  detail::check_socket_call(::listen(native(fd_), backlog) != 0, on_fd("listen", fd_));
}

SocketAddress Socket::getsockname() const {
  SocketAddress address;
  socklen_type len = SocketAddress::capacity;
  detail::check_socket_call(::getsockname(native(fd_), static_cast<sockaddr*>(address.data()), &len) != 0,
                            on_fd("getsockname", fd_));
  address.set_size(static_cast<unsigned>(len));
  return address;
}

SocketAddress Socket::getpeername() const {
  SocketAddress address;
  socklen_type len = SocketAddress::capacity;
  detail::check_socket_call(::getpeername(native(fd_), static_cast<sockaddr*>(address.data()), &len) != 0,
                            on_fd("getpeername", fd_));
  address.set_size(static_cast<unsigned>(len));
  return address;
}

void Socket::set_option(int level, int name, int value) {
  detail::check_socket_call(
      ::setsockopt(native(fd_), level, name, reinterpret_cast<const char*>(&value), sizeof value) != 0,
      on_fd("setsockopt", fd_) + " level " + std::to_string(level) + " option " + std::to_string(name));
}

int Socket::get_option(int level, int name) const {
  int value = 0;
  socklen_type len = sizeof value;
  detail::check_socket_call(
      ::getsockopt(native(fd_), level, name, reinterpret_cast<option_ptr>(&value), &len) != 0,
      on_fd("getsockopt", fd_) + " level " + std::to_string(level) + " option " + std::to_string(name));
  return value;
}

void Socket::set_blocking(bool blocking) {
#ifdef _WIN32
  u_long nonblocking = blocking ? 0 : 1;
  detail::check_socket_call(ioctlsocket(native(fd_), FIONBIO, &nonblocking) != 0, on_fd("ioctlsocket FIONBIO", fd_));
#else
  int flags = fcntl(native(fd_), F_GETFL);
  detail::check_socket_call(flags == -1, on_fd("fcntl F_GETFL", fd_));
  int wanted = blocking ? (flags & ~O_NONBLOCK) : (flags | O_NONBLOCK);
  detail::check_socket_call(wanted != flags && fcntl(native(fd_), F_SETFL, wanted) == -1, on_fd("fcntl F_SETFL", fd_));
#endif
}

void Socket::shutdown_write() {
  detail::check_socket_call(::shutdown(native(fd_), shut_write) != 0, on_fd("shutdown SHUT_WR", fd_));
}

void Socket::shutdown_both() noexcept {
  if (fd_ != -1) (void)::shutdown(native(fd_), shut_both);
}

namespace {

#ifdef _WIN32
bool would_block(int error) { return error == WSAEWOULDBLOCK || error == WSAEINPROGRESS; }
bool interrupted(int) { return false; }
#else
bool would_block(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINPROGRESS; }
bool interrupted(int error) { return error == EINTR; }
#endif

// Runs `call` (returning a byte count or -1) until it is not interrupted;
// nullopt when it would block.
template <class Call>
std::optional<std::size_t> nonblocking(Call call, const char* what, fd_t fd) {
  for (;;) {
    auto n = call();
    if (n >= 0) return static_cast<std::size_t>(n);
    int error = detail::last_socket_error();
    if (interrupted(error)) continue;
    if (would_block(error)) return std::nullopt;
    detail::throw_os_error(error, on_fd(what, fd));
  }
}

// Sizes are capped where the OS takes an int (Winsock).
int io_size(std::size_t size) { return static_cast<int>(std::min<std::size_t>(size, 0x7fffffff)); }

}  // namespace

std::optional<std::size_t> Socket::try_recv(void* buffer, std::size_t size) {
  return nonblocking([&] { return ::recv(native(fd_), static_cast<char*>(buffer), io_size(size), 0); }, "recv", fd_);
}

std::optional<std::size_t> Socket::try_send(const void* data, std::size_t size) {
  return nonblocking([&] { return ::send(native(fd_), static_cast<const char*>(data), io_size(size), send_flags()); },
                     "send", fd_);
}

std::optional<std::pair<std::size_t, SocketAddress>> Socket::try_recvfrom(void* buffer, std::size_t size) {
  SocketAddress from;
  socklen_type len = SocketAddress::capacity;
  auto n = nonblocking(
      [&] {
        len = SocketAddress::capacity;
        return ::recvfrom(native(fd_), static_cast<char*>(buffer), io_size(size), 0,
                          static_cast<sockaddr*>(from.data()), &len);
      },
      "recvfrom", fd_);
  if (!n) return std::nullopt;
  from.set_size(static_cast<unsigned>(len));
  return std::pair{*n, from};
}

std::optional<std::size_t> Socket::try_sendto(const void* data, std::size_t size, const SocketAddress& to) {
  return nonblocking(
      [&] {
        return ::sendto(native(fd_), static_cast<const char*>(data), io_size(size), send_flags(),
                        static_cast<const sockaddr*>(to.data()), static_cast<socklen_type>(to.size()));
      },
      "sendto", fd_);
}

std::optional<std::pair<Socket, SocketAddress>> Socket::try_accept() {
  SocketAddress peer;
  for (;;) {
    socklen_type len = SocketAddress::capacity;
#if defined(SOCK_CLOEXEC) && !defined(_WIN32)
    int fd = ::accept4(native(fd_), static_cast<sockaddr*>(peer.data()), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    bool failed = fd == -1;
#else
    auto fd = ::accept(native(fd_), static_cast<sockaddr*>(peer.data()), &len);
#ifdef _WIN32
    bool failed = fd == INVALID_SOCKET;
#else
    bool failed = fd == -1;
#endif
#endif
    if (failed) {
      int error = detail::last_socket_error();
      if (interrupted(error)) continue;
      if (would_block(error)) return std::nullopt;
      detail::throw_os_error(error, on_fd("accept", fd_));
    }
    Socket conn(static_cast<fd_t>(fd));
#if defined(_WIN32)
    set_no_inherit(fd, "SetHandleInformation on an accepted socket");
    conn.set_blocking(false);
#elif !defined(SOCK_CLOEXEC)
    set_fd_flags(fd);
#endif
#ifdef SO_NOSIGPIPE
    conn.set_option(SOL_SOCKET, SO_NOSIGPIPE, 1);
#endif
    peer.set_size(static_cast<unsigned>(len));
    return std::pair{std::move(conn), peer};
  }
}

bool Socket::start_connect(const SocketAddress& address) {
  for (;;) {
    if (::connect(native(fd_), static_cast<const sockaddr*>(address.data()),
                  static_cast<socklen_type>(address.size())) == 0)
      return true;
    int error = detail::last_socket_error();
    if (interrupted(error)) return false;  // the connection goes on in the background
    if (would_block(error)) return false;
    detail::throw_os_error(error, "connect " + address.to_string());
  }
}

void Socket::finish_connect(const SocketAddress& address) {
  if (int error = get_option(SOL_SOCKET, SO_ERROR)) detail::throw_os_error(error, "connect " + address.to_string());
  // SO_ERROR is read-and-clear, and a readiness layer may have read it first
  // (libkqueue 2.7 does, to fill in EV_EOF): a socket without a peer failed.
  SocketAddress peer;
  socklen_type len = SocketAddress::capacity;
  if (::getpeername(native(fd_), static_cast<sockaddr*>(peer.data()), &len) != 0)
    detail::throw_os_error(detail::last_socket_error(), "connect " + address.to_string());
}

void check_reuse_port(const char* method) {
#ifndef SO_REUSEPORT
  throw std::invalid_argument(std::string(method) +
                              ": reuse_port is not supported on this platform (it has no SO_REUSEPORT)");
#else
  (void)method;
#endif
}

void Socket::set_reuse_port() {
  check_reuse_port("set_reuse_port");
#ifdef SO_REUSEPORT
  set_option(SOL_SOCKET, SO_REUSEPORT, 1);
#endif
}

int send_flags() noexcept {
#ifdef MSG_NOSIGNAL
  return MSG_NOSIGNAL;
#else
  return 0;
#endif
}

}  // namespace aio
