// The loop's create_server and create_unix_server: bound listening sockets
// handed to a Server (net/server.cpp).
#include <core/tasks.hpp>
#include <net/dns.hpp>
#include <net/server.hpp>
#include <net/sock_ops.hpp>
#include <net/ssl_protocol.hpp>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#include <algorithm>
#include <stdexcept>
#include <system_error>

namespace aio {

namespace {

// The Server over bound sockets, serving unless told not to.
Task<std::shared_ptr<Server>> open_server(EventLoop& loop, ProtocolFactory factory, std::vector<Socket> sockets,
                                          int backlog, bool start_serving, std::optional<detail::SSLSettings> tls,
                                          std::vector<detail::UnixSocketFile> socket_files = {}) {
  if (!factory) throw std::invalid_argument("create_server: the protocol factory is empty");
  if (backlog < 1) throw std::invalid_argument("create_server: backlog must be >= 1");
  std::shared_ptr<const detail::SSLSettings> shared_tls;
  if (tls) shared_tls = std::make_shared<const detail::SSLSettings>(std::move(*tls));
  auto server = std::make_shared<Server>(loop, std::move(factory), std::move(sockets), backlog, std::move(socket_files),
                                         std::move(shared_tls));
  if (start_serving) co_await server->start_serving();
  co_return server;
}

template <class Options>
std::optional<detail::SSLSettings> server_tls(const char* method, const Options& options) {
  return detail::ssl_settings(method, options.ssl, true, std::nullopt, options.ssl_handshake_timeout,
                              options.ssl_shutdown_timeout);
}

}  // namespace

Task<std::shared_ptr<Server>> EventLoop::create_server(ProtocolFactory factory, std::string host, int port,
                                                       ServerOptions options) {
  return create_server(std::move(factory), std::vector<std::string>{std::move(host)}, port, options);
}

Task<std::shared_ptr<Server>> EventLoop::create_server(ProtocolFactory factory, std::vector<std::string> hosts,
                                                       int port, ServerOptions options) {
  detail::check_port(port, "create_server");
  if (options.reuse_port) check_reuse_port("create_server");
  auto tls = server_tls("create_server", options);
  if (hosts.empty()) hosts.emplace_back();
  std::vector<AddrInfo> infos;
  for (const std::string& host : hosts) {
    auto found = co_await getaddrinfo(host, port, options.family, SOCK_STREAM, 0, options.flags | AI_PASSIVE);
    for (AddrInfo& info : found)
      if (std::none_of(infos.begin(), infos.end(), [&](const AddrInfo& seen) { return seen.address == info.address; }))
        infos.push_back(std::move(info));
  }
  std::vector<Socket> sockets;
  for (const AddrInfo& info : infos) {
    Socket sock = Socket::create(info.family, SOCK_STREAM, info.protocol);
#ifndef _WIN32
    // On Windows SO_REUSEADDR lets another process steal the port.
    if (options.reuse_address.value_or(true)) sock.set_option(SOL_SOCKET, SO_REUSEADDR, 1);
#endif
    if (options.reuse_port) sock.set_reuse_port();
    if (options.keep_alive) sock.set_option(SOL_SOCKET, SO_KEEPALIVE, 1);
    // One socket per family: the IPv6 one must not also take IPv4.
    if (info.family == AF_INET6) sock.set_option(IPPROTO_IPV6, IPV6_V6ONLY, 1);
    try {
      sock.bind(info.address);
    } catch (const std::system_error& e) {
      throw std::system_error(e.code(), "error while attempting to bind on address " + info.address.to_string());
    }
    sockets.push_back(std::move(sock));
  }
  co_return co_await open_server(*this, std::move(factory), std::move(sockets), options.backlog, options.start_serving,
                                 std::move(tls));
}

Task<std::shared_ptr<Server>> EventLoop::create_server(ProtocolFactory factory, Socket sock, ServerOptions options) {
  detail::check_stream_socket(sock, AF_UNSPEC, "create_server");
  auto tls = server_tls("create_server", options);
  std::vector<Socket> sockets;
  sockets.push_back(std::move(sock));
  co_return co_await open_server(*this, std::move(factory), std::move(sockets), options.backlog, options.start_serving,
                                 std::move(tls));
}

Task<std::shared_ptr<Server>> EventLoop::create_unix_server(ProtocolFactory factory, std::string path,
                                                            UnixServerOptions options) {
  SocketAddress address = SocketAddress::unix_path(path);  // validates the path
  server_tls("create_unix_server", options);               // before touching the file system
  detail::remove_stale_unix_socket(path);
  Socket sock = Socket::create(AF_UNIX, SOCK_STREAM);
  try {
    sock.bind(address);
  } catch (const std::system_error& e) {
    if (e.code() == std::errc::address_in_use)
      throw std::system_error(e.code(), "create_unix_server: address " + address.to_string() + " is already in use");
    throw;
  }
  co_return co_await create_unix_server(std::move(factory), std::move(sock), options);
}

Task<std::shared_ptr<Server>> EventLoop::create_unix_server(ProtocolFactory factory, Socket sock,
                                                            UnixServerOptions options) {
  detail::check_stream_socket(sock, AF_UNIX, "create_unix_server");
  auto tls = server_tls("create_unix_server", options);
  std::vector<detail::UnixSocketFile> files;
  if (options.cleanup_socket) files.push_back(detail::UnixSocketFile::record(sock.getsockname()));
  std::vector<Socket> sockets;
  sockets.push_back(std::move(sock));
  co_return co_await open_server(*this, std::move(factory), std::move(sockets), options.backlog, options.start_serving,
                                 std::move(tls), std::move(files));
}

}  // namespace aio
