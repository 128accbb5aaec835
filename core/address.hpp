// Socket addresses: IPv4, IPv6 and Unix-domain, as the OS passes them to
// bind/connect/accept, without exposing any OS header. The type is core
// vocabulary (the loop's sock_* methods and the Proactor contract name it);
// what talks to the OS (parsing, formatting) is net/address.cpp.
#pragma once

#include <string>
#include <string_view>

namespace aio {

// One socket address (a sockaddr_storage and its length). Built from numeric
// text with parse() or unix_path(), or from what the OS returned with
// from_native() / data() + set_size(). A default-constructed address is empty:
// family() is AF_UNSPEC (0) and size() is 0.
class SocketAddress {
 public:
  // Bytes available behind data(); at least sizeof(sockaddr_storage).
  static constexpr unsigned capacity = 128;

  SocketAddress() noexcept = default;

  // A numeric IPv4 ("127.0.0.1") or IPv6 ("::1", "fe80::1%eth0", "fe80::1%2")
  // host and a port in 0..65535. An IPv6 scope is an interface name or index on
  // POSIX and an index only on Windows. Host names are not resolved: anything
  // else throws std::invalid_argument saying what was wrong and what is allowed.
  static SocketAddress parse(std::string_view host, int port);

  // An AF_UNIX address. A path starting with '\0' is a Linux abstract name
  // (std::invalid_argument elsewhere). Throws std::invalid_argument for an empty
  // path, one longer than sun_path allows, or where Unix sockets do not exist.
  static SocketAddress unix_path(std::string_view path);

  // Copies `len` bytes of a native sockaddr; std::invalid_argument when
  // `len` > capacity.
  static SocketAddress from_native(const void* sa, unsigned len);

  // The OS AF_* value.
  int family() const noexcept;
  // Numeric host of an IPv4/IPv6 address (IPv6 with "%scope" when it has one);
  // empty for other families.
  std::string host() const;
  // The port of an IPv4/IPv6 address; 0 for other families.
  int port() const noexcept;
  // The path of an AF_UNIX address (abstract names keep their leading '\0');
  // empty for other families and for unnamed Unix sockets.
  std::string path() const;
  // "127.0.0.1:8080", "[::1]:8080", "[fe80::1%lo]:80", a Unix path as is, an
  // abstract name as "@name".
  std::string to_string() const;

  // Same family and same address (host, port and scope, or Unix path).
  bool operator==(const SocketAddress& other) const noexcept;

  // The native sockaddr, to pass to the OS.
  const void* data() const noexcept { return storage_; }
  void* data() noexcept { return storage_; }
  unsigned size() const noexcept { return length_; }
  // Sets the length after the OS filled data() (accept, getsockname, recvfrom);
  // std::invalid_argument when `len` > capacity.
  void set_size(unsigned len);

 private:
  alignas(8) unsigned char storage_[capacity] = {};
  unsigned length_ = 0;
};

}  // namespace aio
