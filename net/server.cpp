// Server, and the loop's create_server / create_connection.
#include <core/errors.hpp>
#include <core/log.hpp>
#include <core/tasks.hpp>
#include <net/dns.hpp>
#include <net/happy_eyeballs.hpp>
#include <net/selector_transport.hpp>
#include <net/server.hpp>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <stdexcept>
#include <system_error>

namespace aio {

namespace {

// Running out of descriptors or memory: accepting pauses, then retries.
bool out_of_resources(const std::system_error& e) {
  return e.code() == std::errc::too_many_files_open || e.code() == std::errc::too_many_files_open_in_system ||
         e.code() == std::errc::no_buffer_space || e.code() == std::errc::not_enough_memory;
}

constexpr double accept_retry_delay = 1.0;  // asyncio's constants.ACCEPT_RETRY_DELAY

}  // namespace

Server::Server(EventLoop& loop, ProtocolFactory factory, std::vector<Socket> sockets, int backlog,
               std::vector<detail::UnixSocketFile> socket_files)
    : loop_(loop),
      loop_ref_(loop),
      factory_(std::move(factory)),
      sockets_(std::move(sockets)),
      socket_files_(std::move(socket_files)),
      backlog_(backlog) {}

Server::~Server() {
  if (loop_ref_.get())
    for (Socket& sock : sockets_) loop_.remove_reader(sock.fileno());
}

EventLoop& Server::get_loop() const {
  if (!loop_ref_.get()) throw std::runtime_error("Event loop is closed (the server's loop is gone)");
  return loop_;
}

Task<void> Server::start_serving() {
  if (closed_) throw std::runtime_error("Server is closed");
  if (!serving_) {
    serving_ = true;
    for (std::size_t i = 0; i < sockets_.size(); ++i) {
      sockets_[i].listen(backlog_);
      start_accepting(i);
    }
  }
  co_await sleep(0);  // as asyncio: the first accepts can run before the caller goes on
}

void Server::start_accepting(std::size_t index) {
  std::weak_ptr<Server> weak = weak_from_this();
  try {
    loop_.add_reader(sockets_[index].fileno(), [weak, index] {
      if (auto self = weak.lock()) self->accept_ready(index);
    });
  } catch (const NotImplementedError&) {
    // An engine without readiness (the proactor) accepts through sock_accept
    // (AcceptEx there), one connection at a time per socket, as asyncio's
    // proactor server does.
    accept_tasks_.push_back(loop_.create_task(accept_loop(std::move(weak), index)));
  }
}

Task<void> Server::accept_loop(std::weak_ptr<Server> weak, std::size_t index) {
  for (;;) {
    EventLoop* loop = nullptr;
    Socket* listener = nullptr;
    if (auto self = weak.lock(); self && self->serving_ && index < self->sockets_.size()) {
      loop = &self->loop_;
      listener = &self->sockets_[index];
    } else {
      co_return;
    }
    // The server is not kept alive while it waits; close() cancels this task.
    std::pair<Socket, SocketAddress> accepted;
    try {
      accepted = co_await loop->sock_accept(*listener);
    } catch (const std::system_error& e) {
      auto self = weak.lock();
      if (!self || !self->serving_) co_return;
      if (e.code() == std::errc::connection_aborted) continue;  // the peer gave up first
      ExceptionContext context;
      context.message = "Accept failed on server socket";
      context.exception = std::current_exception();
      self->loop_.call_exception_handler(context);
      co_return;
    }
    auto self = weak.lock();
    if (!self || !self->serving_) co_return;  // `accepted` closes here
    self->attach(std::move(accepted.first));
  }
}

void Server::accept_ready(std::size_t index) {
  // Up to backlog connections per readiness, as asyncio.
  for (int i = 0; i < backlog_ && index < sockets_.size(); ++i) {
    std::optional<std::pair<Socket, SocketAddress>> accepted;
    try {
      accepted = sockets_[index].try_accept();
    } catch (const std::system_error& e) {
      if (e.code() == std::errc::connection_aborted) continue;  // the peer gave up first
      if (!out_of_resources(e)) throw;                          // to the exception handler
      ExceptionContext context;
      context.message = "socket.accept() out of system resource";
      context.exception = std::current_exception();
      loop_.call_exception_handler(context);
      // Pause this socket for a second instead of spinning on readiness.
      loop_.remove_reader(sockets_[index].fileno());
      std::weak_ptr<Server> weak = weak_from_this();
      retries_.push_back(loop_.call_later(accept_retry_delay, [weak, index] {
        if (auto self = weak.lock(); self && self->serving_) self->start_accepting(index);
      }));
      return;
    }
    if (!accepted) return;
    attach(std::move(accepted->first));
  }
}

void Server::attach(Socket conn) {
  std::shared_ptr<BaseProtocol> protocol;
  try {
    protocol = factory_();
    if (!protocol) throw std::invalid_argument("the protocol factory returned null");
  } catch (...) {
    ExceptionContext context;
    context.message = "Error on transport creation for incoming connection";
    context.exception = std::current_exception();
    loop_.call_exception_handler(context);
    return;  // `conn` closes here
  }
  auto transport = detail::make_socket_transport(loop_, std::move(conn), std::move(protocol));
  clients_.emplace(transport.get(), transport);
  std::weak_ptr<Server> weak = weak_from_this();
  transport->set_on_lost([weak, client = transport.get()] {
    if (auto self = weak.lock()) self->detach(client);
  });
  transport->start({});
}

void Server::detach(detail::StreamTransport* client) {
  clients_.erase(client);
  if (closed_ && clients_.empty()) wake_waiters();
}

void Server::wake_waiters() {
  for (Future<void>& waiter : waiters_)
    if (!waiter.done()) waiter.set_result();
  waiters_.clear();
}

void Server::close() {
  if (closed_) return;
  closed_ = true;
  serving_ = false;
  for (TimerHandle& retry : retries_) retry.cancel();
  retries_.clear();
  for (Task<void>& accepting : accept_tasks_) accepting.cancel();
  accept_tasks_.clear();
  if (loop_ref_.get())
    for (Socket& sock : sockets_) loop_.remove_reader(sock.fileno());
  sockets_.clear();       // closes them
  socket_files_.clear();  // removes them
  if (serving_forever_ && !serving_forever_.done()) serving_forever_.cancel();
  if (clients_.empty()) wake_waiters();
}

std::vector<std::shared_ptr<detail::StreamTransport>> Server::open_clients() const {
  std::vector<std::shared_ptr<detail::StreamTransport>> open;
  for (const auto& [ptr, weak] : clients_)
    if (auto client = weak.lock()) open.push_back(std::move(client));
  return open;  // a copy: closing a client may detach it from clients_
}

void Server::close_clients() {
  for (auto& client : open_clients()) client->close();
}

void Server::abort_clients() {
  for (auto& client : open_clients()) client->abort();
}

Task<void> Server::wait_closed() {
  if (closed_ && clients_.empty()) co_return;
  Future<void> waiter = loop_.create_future<void>();
  waiters_.push_back(waiter);
  co_await waiter;
}

Task<void> Server::serve_forever() {
  if (serving_forever_) throw std::runtime_error("the server is already being awaited on serve_forever()");
  if (closed_) throw std::runtime_error("Server is closed");
  co_await start_serving();
  serving_forever_ = loop_.create_future<void>();
  bool cancelled = false;
  try {
    co_await serving_forever_;
  } catch (const CancelledError&) {
    cancelled = true;
  }
  close();
  co_await wait_closed();
  serving_forever_ = Future<void>();
  if (cancelled) throw CancelledError();
}

// ---- Loop methods -----------------------------------------------------------

namespace {

void check_port(int port, const char* method) {
  if (port < 0 || port > 65535)
    throw std::invalid_argument(std::string(method) + ": invalid port " + std::to_string(port) + ": must be 0..65535");
}

// The Server over bound sockets, serving unless told not to.
Task<std::shared_ptr<Server>> open_server(EventLoop& loop, ProtocolFactory factory, std::vector<Socket> sockets,
                                          int backlog, bool start_serving,
                                          std::vector<detail::UnixSocketFile> socket_files = {}) {
  if (!factory) throw std::invalid_argument("create_server: the protocol factory is empty");
  if (backlog < 1) throw std::invalid_argument("create_server: backlog must be >= 1");
  auto server =
      std::make_shared<Server>(loop, std::move(factory), std::move(sockets), backlog, std::move(socket_files));
  if (start_serving) co_await server->start_serving();
  co_return server;
}

// A stream socket of `family`, or std::invalid_argument naming `method`.
void check_stream_socket(const Socket& sock, int family, const char* method) {
  if (!sock) throw std::invalid_argument(std::string(method) + ": the socket is closed (an empty aio::Socket)");
  if (sock.get_option(SOL_SOCKET, SO_TYPE) != SOCK_STREAM)
    throw std::invalid_argument(std::string(method) + ": a stream socket (SOCK_STREAM) was expected");
  if (family != AF_UNSPEC && sock.getsockname().family() != family)
    throw std::invalid_argument(std::string(method) + ": a Unix-domain socket (AF_UNIX) was expected");
}

}  // namespace

Task<std::shared_ptr<Server>> EventLoop::create_server(ProtocolFactory factory, std::string host, int port,
                                                       ServerOptions options) {
  return create_server(std::move(factory), std::vector<std::string>{std::move(host)}, port, options);
}

Task<std::shared_ptr<Server>> EventLoop::create_server(ProtocolFactory factory, std::vector<std::string> hosts,
                                                       int port, ServerOptions options) {
  check_port(port, "create_server");
  if (options.reuse_port) check_reuse_port("create_server");
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
  co_return co_await open_server(*this, std::move(factory), std::move(sockets), options.backlog, options.start_serving);
}

Task<std::shared_ptr<Server>> EventLoop::create_server(ProtocolFactory factory, Socket sock, ServerOptions options) {
  check_stream_socket(sock, AF_UNSPEC, "create_server");
  std::vector<Socket> sockets;
  sockets.push_back(std::move(sock));
  co_return co_await open_server(*this, std::move(factory), std::move(sockets), options.backlog, options.start_serving);
}

Task<std::shared_ptr<Server>> EventLoop::create_unix_server(ProtocolFactory factory, std::string path,
                                                            UnixServerOptions options) {
  SocketAddress address = SocketAddress::unix_path(path);  // validates the path
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
  check_stream_socket(sock, AF_UNIX, "create_unix_server");
  std::vector<detail::UnixSocketFile> files;
  if (options.cleanup_socket) files.push_back(detail::UnixSocketFile::record(sock.getsockname()));
  std::vector<Socket> sockets;
  sockets.push_back(std::move(sock));
  co_return co_await open_server(*this, std::move(factory), std::move(sockets), options.backlog, options.start_serving,
                                 std::move(files));
}

Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> EventLoop::create_unix_connection(
    ProtocolFactory factory, std::string path) {
  SocketAddress address = SocketAddress::unix_path(path);  // validates the path
  if (!factory) throw std::invalid_argument("create_unix_connection: the protocol factory is empty");
  Socket sock = Socket::create(AF_UNIX, SOCK_STREAM);
  co_await sock_connect(sock, address);
  co_return co_await connect_accepted_socket(std::move(factory), std::move(sock));
}

Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> EventLoop::create_unix_connection(
    ProtocolFactory factory, Socket sock) {
  check_stream_socket(sock, AF_UNIX, "create_unix_connection");
  return connect_accepted_socket(std::move(factory), std::move(sock));
}

Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> EventLoop::create_connection(
    ProtocolFactory factory, Socket sock) {
  return connect_accepted_socket(std::move(factory), std::move(sock));
}

Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> EventLoop::create_connection(
    ProtocolFactory factory, std::string host, int port, ConnectOptions options) {
  check_port(port, "create_connection");
  if (!factory) throw std::invalid_argument("create_connection: the protocol factory is empty");
  if (options.happy_eyeballs_delay &&
      !(*options.happy_eyeballs_delay >= 0 && std::isfinite(*options.happy_eyeballs_delay)))
    throw std::invalid_argument(
        "create_connection: happy_eyeballs_delay must be a finite number of seconds >= 0, got " +
        std::to_string(*options.happy_eyeballs_delay));
  if (options.interleave && *options.interleave < 0)
    throw std::invalid_argument("create_connection: interleave must be >= 0, got " +
                                std::to_string(*options.interleave));
  auto infos = co_await getaddrinfo(host, port, options.family, SOCK_STREAM, options.proto, options.flags);
  int interleave = options.interleave.value_or(options.happy_eyeballs_delay ? 1 : 0);
  infos = detail::interleave_addrinfos(std::move(infos), interleave);
  std::vector<std::exception_ptr> errors;
  Socket sock = co_await detail::connect_staggered(*this, std::move(infos), options.local_addr,
                                                   options.happy_eyeballs_delay, errors);
  if (sock) co_return co_await connect_accepted_socket(std::move(factory), std::move(sock));
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
