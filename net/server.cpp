// Server (asyncio.Server): its listening sockets, the connections it
// accepted, and the two ways of accepting an engine may choose
// (EventLoop::start_accepting).
#include <core/errors.hpp>
#include <core/tasks.hpp>
#include <net/loop_access.hpp>
#include <net/server.hpp>
#include <net/ssl_protocol.hpp>

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
               std::vector<detail::UnixSocketFile> socket_files, std::shared_ptr<const detail::SSLSettings> tls)
    : loop_(loop),
      loop_ref_(loop),
      factory_(std::move(factory)),
      tls_(std::move(tls)),
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

void Server::start_accepting(std::size_t index) { detail::LoopAccess::start_accepting(loop_, *this, index); }

// The default: any engine has sock_accept.
void EventLoop::start_accepting(Server& server, std::size_t index) { server.accept_by_awaiting(index); }

void Server::accept_on_readiness(std::size_t index) {
  std::weak_ptr<Server> weak = weak_from_this();
  loop_.add_reader(sockets_[index].fileno(), [weak, index] {
    if (auto self = weak.lock()) self->accept_ready(index);
  });
}

void Server::accept_by_awaiting(std::size_t index) {
  accept_tasks_.push_back(loop_.create_task(accept_loop(weak_from_this(), index)));
}

void Server::pause_accepting(std::size_t index) {
  std::weak_ptr<Server> weak = weak_from_this();
  retries_.push_back(loop_.call_later(accept_retry_delay, [weak, index] {
    if (auto self = weak.lock(); self && self->serving_) self->start_accepting(index);
  }));
}

void Server::report_out_of_resources() {
  ExceptionContext context;
  context.message = "socket.accept() out of system resource";
  context.exception = std::current_exception();
  loop_.call_exception_handler(context);
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
      if (out_of_resources(e)) {
        // As on readiness: a second's pause instead of a tight retry loop.
        self->report_out_of_resources();
        self->pause_accepting(index);
        co_return;
      }
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
      report_out_of_resources();
      // Pause this socket for a second instead of spinning on readiness.
      loop_.remove_reader(sockets_[index].fileno());
      pause_accepting(index);
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
    // The application's protocol sees the connection once the handshake
    // is done; one that fails closes quietly (SSLError is an OS error).
    if (tls_) protocol = std::make_shared<detail::SSLProtocol>(loop_, std::move(protocol), *tls_);
  } catch (...) {
    ExceptionContext context;
    context.message = "Error on transport creation for incoming connection";
    context.exception = std::current_exception();
    loop_.call_exception_handler(context);
    return;  // `conn` closes here
  }
  auto transport = detail::LoopAccess::make_socket_transport(loop_, std::move(conn), std::move(protocol));
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

}  // namespace aio
