// SocketAddress parsing and formatting, and the Socket RAII owner. No loop:
// these are plain OS calls, the same on every backend.
#include "support.hpp"

#include <core/address.hpp>
#include <net/socket.hpp>

#include <stdexcept>
#include <string>
#include <system_error>

#ifdef _WIN32
// winsock2.h must come before windows.h.
#include <winsock2.h>
#include <ws2tcpip.h>

#include <windows.h>
#else
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#endif

using aio::Socket;
using aio::SocketAddress;

namespace {

std::string invalid_message(std::string_view host, int port) {
  try {
    SocketAddress::parse(host, port);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  FAIL("parse('" << std::string(host) << "', " << port << ") did not throw std::invalid_argument");
  return {};
}

std::string unix_message(std::string_view path) {
  try {
    SocketAddress::unix_path(path);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  FAIL("unix_path did not throw std::invalid_argument");
  return {};
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

#ifdef _WIN32
int socket_error() { return WSAGetLastError(); }
constexpr int would_block = WSAEWOULDBLOCK;
#else
int socket_error() { return errno; }
constexpr int would_block = EWOULDBLOCK;
#endif

}  // namespace

TEST_CASE("SocketAddress: IPv4 round trip") {
  auto a = SocketAddress::parse("127.0.0.1", 8080);
  CHECK(a.family() == AF_INET);
  CHECK(a.host() == "127.0.0.1");
  CHECK(a.port() == 8080);
  CHECK(a.to_string() == "127.0.0.1:8080");
  CHECK(a.size() == sizeof(sockaddr_in));
  CHECK(a.path().empty());
  CHECK(SocketAddress::parse("0.0.0.0", 0).to_string() == "0.0.0.0:0");
  CHECK(SocketAddress::parse("255.255.255.255", 65535).to_string() == "255.255.255.255:65535");
  CHECK(a == SocketAddress::parse("127.0.0.1", 8080));
  CHECK_FALSE(a == SocketAddress::parse("127.0.0.1", 8081));
  CHECK_FALSE(a == SocketAddress::parse("127.0.0.2", 8080));
  CHECK_FALSE(a == SocketAddress::parse("::1", 8080));
  CHECK(SocketAddress::from_native(a.data(), a.size()) == a);
}

TEST_CASE("SocketAddress: IPv6 round trip") {
  auto a = SocketAddress::parse("::1", 8080);
  CHECK(a.family() == AF_INET6);
  CHECK(a.host() == "::1");
  CHECK(a.port() == 8080);
  CHECK(a.to_string() == "[::1]:8080");
  CHECK(a.size() == sizeof(sockaddr_in6));
  CHECK(SocketAddress::parse("2001:db8:0:0:0:0:0:1", 0).to_string() == "[2001:db8::1]:0");
  CHECK(SocketAddress::parse("::", 65535).to_string() == "[::]:65535");
  CHECK(SocketAddress::parse("::ffff:1.2.3.4", 1).host() == "::ffff:1.2.3.4");

  auto scoped = SocketAddress::parse("fe80::1%2", 80);
  CHECK(static_cast<const sockaddr_in6*>(scoped.data())->sin6_scope_id == 2);
  CHECK(scoped.port() == 80);
  CHECK_FALSE(scoped == SocketAddress::parse("fe80::1", 80));
  CHECK(scoped == SocketAddress::parse("fe80::1%2", 80));
#ifdef _WIN32
  // Named scopes would need iphlpapi, which the library does not link.
  CHECK(scoped.to_string() == "[fe80::1%2]:80");
  CHECK(contains(invalid_message("fe80::1%lo", 80), "only numeric scope"));
#else
  if (if_nametoindex("lo") == 0) {
    MESSAGE("no interface named lo: named-scope case skipped");
  } else {
    auto named = SocketAddress::parse("fe80::1%lo", 80);
    CHECK(named.host() == "fe80::1%lo");
    CHECK(named.to_string() == "[fe80::1%lo]:80");
    CHECK(SocketAddress::parse(named.host(), named.port()) == named);
    auto by_index = SocketAddress::parse("fe80::1%" + std::to_string(if_nametoindex("lo")), 80);
    CHECK(by_index == named);
  }
  CHECK(contains(invalid_message("fe80::1%nosuchif0", 80), "nosuchif0"));
#endif
  CHECK(contains(invalid_message("fe80::1%", 80), "empty IPv6 scope"));
}

TEST_CASE("SocketAddress: bad input names the problem") {
  CHECK(invalid_message("127.0.0.1", -1) == "invalid port -1: must be 0..65535");
  CHECK(invalid_message("127.0.0.1", 65536) == "invalid port 65536: must be 0..65535");
  CHECK(invalid_message("::1", 70000) == "invalid port 70000: must be 0..65535");
  for (const char* host : {"", "1.2.3", "::g", "localhost", "1.2.3.4.5", "256.0.0.1", "[::1]", " 127.0.0.1"}) {
    CAPTURE(host);
    std::string message = invalid_message(host, 80);
    CHECK(message ==
          "'" + std::string(host) + "' is not a numeric IPv4 or IPv6 address; resolve host names with getaddrinfo");
  }
}

TEST_CASE("SocketAddress: Unix paths") {
  CHECK(unix_message("") == "empty Unix socket path");
  std::string too_long(200, 'x');
#ifdef _WIN32
  // MinGW-w64 ships afunix.h; without it every unix_path throws.
  std::string probe = unix_message(too_long);
  if (probe == "Unix sockets are not available on this platform") {
    return test::skip("no AF_UNIX in this SDK (afunix.h)");
  }
#endif
  std::string message = unix_message(too_long);
  CHECK(contains(message, "too long"));
  CHECK(contains(message, "at most"));

  auto a = SocketAddress::unix_path("/tmp/aiocpp.sock");
  CHECK(a.family() == AF_UNIX);
  CHECK(a.path() == "/tmp/aiocpp.sock");
  CHECK(a.to_string() == "/tmp/aiocpp.sock");
  CHECK(a.port() == 0);
  CHECK(a.host().empty());
  CHECK(a == SocketAddress::unix_path("/tmp/aiocpp.sock"));
  CHECK_FALSE(a == SocketAddress::unix_path("/tmp/other.sock"));
  CHECK(SocketAddress::from_native(a.data(), a.size()) == a);

  std::string abstract("\0aiocpp-test", 12);
#ifdef __linux__
  auto b = SocketAddress::unix_path(abstract);
  CHECK(b.path() == abstract);
  CHECK(b.to_string() == "@aiocpp-test");
  CHECK_FALSE(b == a);
#else
  CHECK(contains(unix_message(abstract), "Linux only"));
#endif
}

TEST_CASE("SocketAddress: empty and native") {
  SocketAddress empty;
  CHECK(empty.family() == AF_UNSPEC);
  CHECK(empty.size() == 0);
  CHECK(empty.to_string().empty());
  CHECK_THROWS_AS(empty.set_size(SocketAddress::capacity + 1), std::invalid_argument);
}

TEST_CASE("Socket: TCP listener on loopback") {
  Socket s = Socket::create(AF_INET, SOCK_STREAM);
  REQUIRE(s);
  s.bind(SocketAddress::parse("127.0.0.1", 0));
  s.listen(16);
  SocketAddress bound = s.getsockname();
  CHECK(bound.family() == AF_INET);
  CHECK(bound.host() == "127.0.0.1");
  CHECK(bound.port() != 0);
  CHECK(s.get_option(SOL_SOCKET, SO_TYPE) == SOCK_STREAM);
  s.set_option(SOL_SOCKET, SO_KEEPALIVE, 1);
  CHECK(s.get_option(SOL_SOCKET, SO_KEEPALIVE) != 0);
  CHECK_THROWS_AS(s.getpeername(), std::system_error);

  SUBCASE("bind to an address in use fails") {
    Socket other = Socket::create(AF_INET, SOCK_STREAM);
    try {
      other.bind(bound);
      FAIL("second bind to " << bound.to_string() << " succeeded");
    } catch (const std::system_error& e) {
      CHECK(contains(e.what(), "bind " + bound.to_string()));
    }
  }
}

TEST_CASE("Socket: close-on-exec and non-blocking") {
  Socket s = Socket::create(AF_INET, SOCK_STREAM);
#ifdef _WIN32
  DWORD flags = 0;
  REQUIRE(GetHandleInformation(reinterpret_cast<HANDLE>(static_cast<SOCKET>(s.fileno())), &flags));
  CHECK((flags & HANDLE_FLAG_INHERIT) == 0);
#else
  int fd = static_cast<int>(s.fileno());
  CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
  s.set_blocking(true);
  CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0);
  s.set_blocking(false);
  CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
#endif
  // Non-blocking observed the portable way: a read with nothing there.
  auto [a, b] = Socket::socketpair();
  char byte;
  CHECK(recv(static_cast<decltype(socket(0, 0, 0))>(a.fileno()), &byte, 1, 0) == -1);
  CHECK(socket_error() == would_block);
#ifndef _WIN32
  CHECK((fcntl(static_cast<int>(a.fileno()), F_GETFD) & FD_CLOEXEC) != 0);
  CHECK((fcntl(static_cast<int>(b.fileno()), F_GETFD) & FD_CLOEXEC) != 0);
#endif
}

TEST_CASE("Socket: move, release, close") {
  Socket a = Socket::create(AF_INET, SOCK_STREAM);
  aio::fd_t fd = a.fileno();
  Socket b = std::move(a);
  CHECK_FALSE(a);
  CHECK(a.fileno() == -1);
  CHECK(b.fileno() == fd);
  Socket c;
  c = std::move(b);
  CHECK_FALSE(b);
  CHECK(c.fileno() == fd);
  aio::fd_t raw = c.release();
  CHECK_FALSE(c);
  Socket d = Socket::adopt(raw);
  CHECK(d.fileno() == fd);
  d.close();
  d.close();
  CHECK_FALSE(d);
}

TEST_CASE("Socket: the destructor closes") {
  aio::fd_t fd;
  {
    Socket s = Socket::create(AF_INET, SOCK_STREAM);
    fd = s.fileno();
  }
#ifdef _WIN32
  int type = 0;
  int len = sizeof type;
  CHECK(getsockopt(static_cast<SOCKET>(fd), SOL_SOCKET, SO_TYPE, reinterpret_cast<char*>(&type), &len) == SOCKET_ERROR);
  CHECK(WSAGetLastError() == WSAENOTSOCK);
#else
  CHECK(fcntl(static_cast<int>(fd), F_GETFD) == -1);
  CHECK(errno == EBADF);
#endif
}

TEST_CASE("Socket: socketpair works both ways") {
  auto [a, b] = Socket::socketpair();
  REQUIRE(a);
  REQUIRE(b);
  using native_t = decltype(socket(0, 0, 0));
  auto send_one = [](const Socket& s, char c) {
    return send(static_cast<native_t>(s.fileno()), &c, 1, aio::send_flags());
  };
  auto recv_one = [](const Socket& s) {
    char c = 0;
    // Loopback TCP (Windows) may take a moment to deliver.
    for (int i = 0; i < 1000; ++i) {
      if (recv(static_cast<native_t>(s.fileno()), &c, 1, 0) == 1) return c;
#ifdef _WIN32
      Sleep(1);
#else
      usleep(1000);
#endif
    }
    return '\0';
  };
  CHECK(send_one(a, 'x') == 1);
  CHECK(recv_one(b) == 'x');
  CHECK(send_one(b, 'y') == 1);
  CHECK(recv_one(a) == 'y');
  b.shutdown_write();
  char c;
  int n = -1;
  for (int i = 0; i < 1000 && n != 0; ++i) n = static_cast<int>(recv(static_cast<native_t>(a.fileno()), &c, 1, 0));
  CHECK(n == 0);
}

TEST_CASE("Socket: UDP") {
  Socket s = Socket::create(AF_INET, SOCK_DGRAM);
  s.bind(SocketAddress::parse("127.0.0.1", 0));
  CHECK(s.get_option(SOL_SOCKET, SO_TYPE) == SOCK_DGRAM);
  SocketAddress bound = s.getsockname();
  CHECK(bound.port() != 0);
  Socket t = Socket::create(AF_INET, SOCK_DGRAM);
  t.bind(SocketAddress::parse("127.0.0.1", 0));
  using native_t = decltype(socket(0, 0, 0));
  const char msg[] = "hi";
  CHECK(sendto(static_cast<native_t>(t.fileno()), msg, 2, 0, static_cast<const sockaddr*>(bound.data()),
               static_cast<int>(bound.size())) == 2);
  char buf[8];
  SocketAddress from;
  long n = -1;
  for (int i = 0; i < 1000 && n < 0; ++i) {
#ifdef _WIN32
    int len = SocketAddress::capacity;
#else
    socklen_t len = SocketAddress::capacity;
#endif
    n = static_cast<long>(
        recvfrom(static_cast<native_t>(s.fileno()), buf, sizeof buf, 0, static_cast<sockaddr*>(from.data()), &len));
    if (n >= 0) from.set_size(static_cast<unsigned>(len));
  }
  CHECK(n == 2);
  CHECK(from == t.getsockname());
}

TEST_CASE("Socket: IPv6 loopback") {
  Socket s;
  try {
    s = Socket::create(AF_INET6, SOCK_STREAM);
    s.bind(SocketAddress::parse("::1", 0));
  } catch (const std::system_error& e) {
    return test::skip(std::string("no IPv6 loopback here: ") + e.what());
  }
  s.listen(1);
  SocketAddress bound = s.getsockname();
  CHECK(bound.family() == AF_INET6);
  CHECK(bound.host() == "::1");
  CHECK(bound.port() != 0);
  CHECK(bound.to_string() == "[::1]:" + std::to_string(bound.port()));
}

#ifndef _WIN32
TEST_CASE("Socket: Unix stream socket bound to a path") {
  std::string path = "/tmp/aiocpp-test-" + std::to_string(getpid()) + ".sock";
  unlink(path.c_str());
  Socket s = Socket::create(AF_UNIX, SOCK_STREAM);
  s.bind(SocketAddress::unix_path(path));
  CHECK(s.getsockname().path() == path);
  CHECK(s.getsockname() == SocketAddress::unix_path(path));
  unlink(path.c_str());
}
#endif
