// The loop's create_connection, create_unix_connection and
// connect_accepted_socket: a connected stream socket wrapped in the engine's
// transport (EventLoop::make_socket_transport), under the TLS layer
// (net/ssl_protocol.hpp) when asked.
#include <core/tasks.hpp>
#include <net/dns.hpp>
#include <net/happy_eyeballs.hpp>
#include <net/loop_access.hpp>
#include <net/sock_ops.hpp>
#include <net/ssl_protocol.hpp>
#include <net/stream_transport.hpp>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <sys/socket.h>
#endif

#include <cmath>
#include <stdexcept>
#include <system_error>

namespace aio {

namespace {

using Connection = std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>;

// The connected socket in the engine's transport, with the protocol from
// `factory`, under a TLS layer when `tls` says so; returns once the
// protocol's connection_made ran (after the handshake, with TLS).
Task<Connection> open_transport(EventLoop& loop, ProtocolFactory factory, Socket sock,
                                std::optional<detail::SSLSettings> tls, const char* method) {
  std::shared_ptr<BaseProtocol> protocol = detail::make_stream_protocol(factory, method);
  if (!tls) {
    auto transport = detail::LoopAccess::make_socket_transport(loop, std::move(sock), protocol);
    co_await detail::start_transport(loop, transport);
    co_return Connection{transport, protocol};
  }
  auto layer = std::make_shared<detail::SSLProtocol>(loop, protocol, std::move(*tls));
  Future<void> handshake = layer->handshake_done();
  auto transport = detail::LoopAccess::make_socket_transport(loop, std::move(sock), layer);
  co_await detail::start_transport(loop, transport);
  try {
    co_await handshake;
  } catch (...) {
    // Failed, timed out, or the caller gave up (cancelled): the socket goes.
    transport->abort();
    throw;
  }
  co_return Connection{layer->handle(), protocol};
}

}  // namespace

Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> EventLoop::connect_accepted_socket(
    ProtocolFactory factory, Socket sock, SSLOptions options) {
  detail::check_stream_socket(sock, AF_UNSPEC, "connect_accepted_socket");
  auto tls = detail::ssl_settings("connect_accepted_socket", options.ssl, true, options.server_hostname,
                                  options.ssl_handshake_timeout, options.ssl_shutdown_timeout);
  co_return co_await open_transport(*this, std::move(factory), std::move(sock), std::move(tls),
                                    "connect_accepted_socket");
}

Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> EventLoop::create_unix_connection(
    ProtocolFactory factory, std::string path, SSLOptions options) {
  SocketAddress address = SocketAddress::unix_path(path);  // validates the path
  if (!factory) throw std::invalid_argument("create_unix_connection: the protocol factory is empty");
  auto tls = detail::ssl_settings("create_unix_connection", options.ssl, false, options.server_hostname,
                                  options.ssl_handshake_timeout, options.ssl_shutdown_timeout);
  Socket sock = Socket::create(AF_UNIX, SOCK_STREAM);
  co_await sock_connect(sock, address);
  co_return co_await open_transport(*this, std::move(factory), std::move(sock), std::move(tls),
                                    "create_unix_connection");
}

Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> EventLoop::create_unix_connection(
    ProtocolFactory factory, Socket sock, SSLOptions options) {
  detail::check_stream_socket(sock, AF_UNIX, "create_unix_connection");
  auto tls = detail::ssl_settings("create_unix_connection", options.ssl, false, options.server_hostname,
                                  options.ssl_handshake_timeout, options.ssl_shutdown_timeout);
  return open_transport(*this, std::move(factory), std::move(sock), std::move(tls), "create_unix_connection");
}

Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> EventLoop::create_connection(
    ProtocolFactory factory, Socket sock, SSLOptions options) {
  detail::check_stream_socket(sock, AF_UNSPEC, "create_connection");
  auto tls = detail::ssl_settings("create_connection", options.ssl, false, options.server_hostname,
                                  options.ssl_handshake_timeout, options.ssl_shutdown_timeout);
  return open_transport(*this, std::move(factory), std::move(sock), std::move(tls), "create_connection");
}

Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> EventLoop::create_connection(
    ProtocolFactory factory, std::string host, int port, ConnectOptions options) {
  detail::check_port(port, "create_connection");
  if (!factory) throw std::invalid_argument("create_connection: the protocol factory is empty");
  if (options.happy_eyeballs_delay &&
      !(*options.happy_eyeballs_delay >= 0 && std::isfinite(*options.happy_eyeballs_delay)))
    throw std::invalid_argument(
        "create_connection: happy_eyeballs_delay must be a finite number of seconds >= 0, got " +
        std::to_string(*options.happy_eyeballs_delay));
  if (options.interleave && *options.interleave < 0)
    throw std::invalid_argument("create_connection: interleave must be >= 0, got " +
                                std::to_string(*options.interleave));
  // asyncio: server_hostname defaults to the host.
  std::optional<std::string_view> server_hostname = options.server_hostname;
  if (options.ssl && !server_hostname) server_hostname = host;
  auto tls = detail::ssl_settings("create_connection", options.ssl, false, server_hostname,
                                  options.ssl_handshake_timeout, options.ssl_shutdown_timeout);
  auto infos = co_await getaddrinfo(host, port, options.family, SOCK_STREAM, options.proto, options.flags);
  int interleave = options.interleave.value_or(options.happy_eyeballs_delay ? 1 : 0);
  infos = detail::interleave_addrinfos(std::move(infos), interleave);
  std::vector<std::exception_ptr> errors;
  Socket sock = co_await detail::connect_staggered(*this, std::move(infos), options.local_addr,
                                                   options.happy_eyeballs_delay, errors);
  if (sock)
    co_return co_await open_transport(*this, std::move(factory), std::move(sock), std::move(tls), "create_connection");
  if (errors.empty())
    throw std::system_error(std::make_error_code(std::errc::address_not_available),
                            "create_connection: no address for '" + host + "'");
  if (options.all_errors) throw ConnectionErrors("create_connection: every attempt failed", errors);
  // One error, or all alike: that one; else one naming them all.
  std::string combined;
  std::error_code first_code;
  bool alike = true;
  for (const std::exception_ptr& error : errors) {
    try {
      std::rethrow_exception(error);
    } catch (const std::system_error& e) {
      if (combined.empty()) first_code = e.code();
      alike = alike && e.code() == first_code;
      combined += (combined.empty() ? "" : ", ") + std::string(e.what());
    }
  }
  if (alike) std::rethrow_exception(errors.front());
  throw std::system_error(first_code, "Multiple exceptions: " + combined);
}

}  // namespace aio
