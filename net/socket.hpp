// A move-only owner of one OS socket, and the few socket calls the transports
// build on. Every OS failure is a std::system_error naming the call (and the
// address, where there is one).
#pragma once

#include <core/address.hpp>
#include <core/event_loop.hpp>

#include <cstddef>
#include <optional>
#include <utility>

namespace aio {

class Socket {
 public:
  Socket() noexcept = default;
  ~Socket() { close(); }
  Socket(Socket&& other) noexcept : fd_(other.release()) {}
  Socket& operator=(Socket&& other) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  // A new socket, always close-on-exec (not inherited by child processes) and
  // non-blocking; on macOS and the BSDs also SO_NOSIGPIPE. `family`, `type`
  // and `protocol` are the OS values (AF_INET, SOCK_STREAM, ...).
  static Socket create(int family, int type, int protocol = 0);
  // Takes ownership of an open socket as it is.
  static Socket adopt(fd_t fd) noexcept { return Socket(fd); }
  // A connected pair of stream sockets, both close-on-exec and non-blocking:
  // AF_UNIX socketpair on POSIX, a loopback TCP connection on Windows.
  static std::pair<Socket, Socket> socketpair();

  // The OS socket (a SOCKET on Windows), or -1 when empty.
  fd_t fileno() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ != -1; }
  // Closes the socket; does nothing when empty. Errors are ignored.
  void close() noexcept;
  // Gives up ownership and returns the socket, leaving this one empty.
  fd_t release() noexcept { return std::exchange(fd_, -1); }

  void bind(const SocketAddress& address);
  void listen(int backlog);
  SocketAddress getsockname() const;
  SocketAddress getpeername() const;
  // setsockopt/getsockopt for options whose value is an int.
  void set_option(int level, int name, int value);
  // SO_REUSEPORT; std::invalid_argument where the OS has none (see check_reuse_port).
  void set_reuse_port();
  int get_option(int level, int name) const;
  void set_blocking(bool blocking);
  // shutdown(SHUT_WR): the peer reads end of file.
  void shutdown_write();
  // shutdown(SHUT_RDWR), errors ignored (a socket never connected, or
  // already reset): the peer sees the end of the connection even while
  // another descriptor of this socket (a dup, a child's copy) stays open.
  void shutdown_both() noexcept;

  // Non-blocking calls, the building blocks of the loop's sock_* coroutines
  // and transports: each returns std::nullopt (or false) when the call would
  // block, retries on EINTR, and throws std::system_error for other errors.
  std::optional<std::size_t> try_recv(void* buffer, std::size_t size);
  std::optional<std::size_t> try_send(const void* data, std::size_t size);
  std::optional<std::pair<std::size_t, SocketAddress>> try_recvfrom(void* buffer, std::size_t size);
  std::optional<std::size_t> try_sendto(const void* data, std::size_t size, const SocketAddress& to);
  // An accepted connection, close-on-exec and non-blocking like create()'s.
  std::optional<std::pair<Socket, SocketAddress>> try_accept();
  // Starts connecting: true if connected at once, false if the connection is
  // in progress (wait until writable, then finish_connect()).
  bool start_connect(const SocketAddress& address);
  // Throws the error a connection in progress ended with, if any.
  void finish_connect(const SocketAddress& address);

 private:
  explicit Socket(fd_t fd) noexcept : fd_(fd) {}
  fd_t fd_ = -1;
};

// Flags for every send on a stream socket: MSG_NOSIGNAL where it exists, so
// that writing to a closed peer is an EPIPE error and not a SIGPIPE.
int send_flags() noexcept;

// Throws std::invalid_argument naming `method` where the OS has no
// SO_REUSEPORT (Windows): lets callers refuse reuse_port before any work.
void check_reuse_port(const char* method);

}  // namespace aio
