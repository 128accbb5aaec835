#include <backends/syscall.hpp>
#include <backends/waker.hpp>

#if defined(_WIN32)
#include <winsock2.h>
#include <ws2tcpip.h>
#elif defined(__linux__)
#include <sys/eventfd.h>
#include <unistd.h>
#include <cstdint>
#else
#include <fcntl.h>
#include <unistd.h>
#endif

namespace aio::detail {

#if defined(_WIN32)

namespace {
void close_socket(fd_t s) noexcept {
  if (s != -1) closesocket(static_cast<SOCKET>(s));
}

// The loop's own sockets never pass to a child: socket() and accept() make
// inheritable handles on Windows.
SOCKET new_socket() noexcept {
  return WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
}
SOCKET no_inherit(SOCKET s) noexcept {
  if (s != INVALID_SOCKET) SetHandleInformation(reinterpret_cast<HANDLE>(s), HANDLE_FLAG_INHERIT, 0);
  return s;
}
}  // namespace

Waker::Waker() {
  ensure_sockets_ready();
  // No socketpair() on Windows: connect two TCP sockets over loopback.
  SOCKET listener = new_socket();
  check_socket_call(listener == INVALID_SOCKET, "waker: socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int len = sizeof addr;
  SOCKET client = INVALID_SOCKET, server = INVALID_SOCKET;
  try {
    check_socket_call(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0, "waker: bind");
    check_socket_call(listen(listener, 1) != 0, "waker: listen");
    check_socket_call(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0, "waker: getsockname");
    client = new_socket();
    check_socket_call(client == INVALID_SOCKET, "waker: socket");
    check_socket_call(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0, "waker: connect");
    server = no_inherit(accept(listener, nullptr, nullptr));
    check_socket_call(server == INVALID_SOCKET, "waker: accept");
    u_long nonblocking = 1;
    check_socket_call(ioctlsocket(client, FIONBIO, &nonblocking) != 0, "waker: ioctlsocket");
    check_socket_call(ioctlsocket(server, FIONBIO, &nonblocking) != 0, "waker: ioctlsocket");
    BOOL nodelay = TRUE;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&nodelay), sizeof nodelay);
  } catch (...) {
    closesocket(listener);
    close_socket(static_cast<fd_t>(client));
    close_socket(static_cast<fd_t>(server));
    throw;
  }
  closesocket(listener);
  read_ = static_cast<fd_t>(server);
  write_ = static_cast<fd_t>(client);
}

Waker::~Waker() {
  close_socket(read_);
  close_socket(write_);
}

void Waker::wake() noexcept {
  char byte = 0;
  // A full buffer already guarantees a wakeup.
  send(static_cast<SOCKET>(write_), &byte, 1, 0);
}

void Waker::drain() noexcept {
  char buf[256];
  while (recv(static_cast<SOCKET>(read_), buf, sizeof buf, 0) > 0) {
  }
}

#elif defined(__linux__)

Waker::Waker() {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  check_socket_call(fd < 0, "eventfd");
  read_ = write_ = fd;
}

Waker::~Waker() { close(static_cast<int>(read_)); }

void Waker::wake() noexcept {
  std::uint64_t one = 1;
  // EAGAIN means the counter is saturated: it is readable already.
  [[maybe_unused]] auto n = write(static_cast<int>(write_), &one, sizeof one);
}

void Waker::drain() noexcept {
  std::uint64_t value;
  [[maybe_unused]] auto n = read(static_cast<int>(read_), &value, sizeof value);
}

#else

Waker::Waker() {
  int fds[2];
  check_socket_call(pipe(fds) != 0, "pipe");
  for (int fd : fds) {
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  read_ = fds[0];
  write_ = fds[1];
}

Waker::~Waker() {
  close(static_cast<int>(read_));
  close(static_cast<int>(write_));
}

void Waker::wake() noexcept {
  char byte = 0;
  // EAGAIN means the pipe is full: it is readable already.
  [[maybe_unused]] auto n = write(static_cast<int>(write_), &byte, 1);
}

void Waker::drain() noexcept {
  char buf[256];
  while (read(static_cast<int>(read_), buf, sizeof buf) > 0) {
  }
}

#endif

}  // namespace aio::detail
