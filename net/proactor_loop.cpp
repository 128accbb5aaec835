// ProactorEventLoop's members that build net/ objects (asyncio's
// proactor_events.py): the sock_* coroutines as the proactor's operations,
// its transports and sendfile, written once for every Proactor.
#include <backends/proactor_event_loop.hpp>
#include <core/tasks.hpp>
#include <net/proactor_datagram_transport.hpp>
#include <net/proactor_stream_transport.hpp>
#include <net/sock_ops.hpp>
#include <net/socket.hpp>

#ifdef _WIN32
#include <winsock2.h>
#else
#include <sys/socket.h>
#endif

#include <cstring>
#include <string>

namespace aio {
namespace {

std::string on_socket(const char* call, const Socket& sock) {
  return std::string(call) + " (socket " + std::to_string(sock.fileno()) + ")";
}

bool is_stream(const Socket& sock) { return sock.get_option(SOL_SOCKET, SO_TYPE) == SOCK_STREAM; }

}  // namespace

Task<std::size_t> ProactorEventLoop::sock_recv_into(Socket& sock, std::span<char> buffer) {
  detail::check_sock(*this, sock, "sock_recv_into");
  if (!is_stream(sock)) co_return (co_await sock_recvfrom_into(sock, buffer)).first;
  // Waits for data without taking any, then reads it without blocking: a
  // cancelled wait loses no bytes, and no buffer is pinned meanwhile.
  std::shared_ptr<ProactorOperation> op;
  for (;;) {
    if (std::optional<std::size_t> n = sock.try_recv(buffer.data(), buffer.size())) co_return *n;
    if (!op) op = proactor_->make_operation();
    fd_t fd = sock.fileno();
    std::string what = on_socket("receive", sock);
    co_await perform(
        *op, [&] { proactor_->wait_readable(*op, fd); }, std::move(what));
  }
}

// A datagram is taken whole by the receive that gets it, so the operation
// has its own buffer; one that completes after a cancel is dropped, as the
// network may drop any datagram.
Task<std::pair<std::size_t, SocketAddress>> ProactorEventLoop::sock_recvfrom_into(Socket& sock,
                                                                                  std::span<char> buffer) {
  detail::check_sock(*this, sock, "sock_recvfrom_into");
  std::shared_ptr<ProactorOperation> op = proactor_->make_operation();
  op->buffer.resize(buffer.size());
  fd_t fd = sock.fileno();
  std::string what = on_socket("recvfrom", sock);
  co_await perform(
      *op, [&] { proactor_->recvfrom(*op, fd); }, std::move(what));
  std::memcpy(buffer.data(), op->buffer.data(), op->bytes);
  co_return std::pair{op->bytes, op->address};
}

Task<void> ProactorEventLoop::sock_sendall(Socket& sock, std::string data) {
  detail::check_sock(*this, sock, "sock_sendall");
  std::shared_ptr<ProactorOperation> op = proactor_->make_operation();
  fd_t fd = sock.fileno();
  std::size_t sent = 0;
  // A send may complete short (io_uring); the rest goes in the next one.
  do {
    op->buffer.assign(data, sent);
    std::string what = on_socket("send", sock);
    co_await perform(
        *op, [&] { proactor_->send(*op, fd); }, std::move(what));
    sent += op->bytes;
  } while (sent < data.size());
}

Task<std::size_t> ProactorEventLoop::sock_sendto(Socket& sock, std::string data, SocketAddress address) {
  detail::check_sock(*this, sock, "sock_sendto");
  std::shared_ptr<ProactorOperation> op = proactor_->make_operation();
  op->buffer = std::move(data);
  fd_t fd = sock.fileno();
  std::string what = on_socket("sendto", sock) + " to " + address.to_string();
  co_await perform(
      *op, [&] { proactor_->sendto(*op, fd, &address); }, std::move(what));
  co_return op->bytes;
}

Task<void> ProactorEventLoop::sock_connect(Socket& sock, SocketAddress address) {
  detail::check_sock(*this, sock, "sock_connect");
  if (!is_stream(sock)) {
    // A datagram connect() only sets the default peer and never waits.
    if (!sock.start_connect(address)) sock.finish_connect(address);
    co_return;
  }
  std::shared_ptr<ProactorOperation> op = proactor_->make_operation();
  fd_t fd = sock.fileno();
  std::string what = on_socket("connect", sock) + " to " + address.to_string();
  co_await perform(
      *op, [&] { proactor_->connect(*op, fd, address); }, std::move(what));
}

Task<std::pair<Socket, SocketAddress>> ProactorEventLoop::sock_accept(Socket& sock) {
  detail::check_sock(*this, sock, "sock_accept");
  std::shared_ptr<ProactorOperation> op = proactor_->make_operation();
  fd_t fd = sock.fileno();
  // `sock` is not touched after the wait: a server may be gone by then.
  std::string what = on_socket("accept", sock);
  co_await perform(
      *op, [&] { proactor_->accept(*op, fd); }, std::move(what));
  Socket conn = Socket::adopt(op->take_accepted());
  co_return std::pair{std::move(conn), op->address};
}

std::shared_ptr<detail::StreamTransport> ProactorEventLoop::make_socket_transport(
    Socket sock, std::shared_ptr<BaseProtocol> protocol) {
  return detail::make_proactor_socket_transport(*this, std::move(sock), std::move(protocol));
}

std::shared_ptr<detail::DatagramTransportBase> ProactorEventLoop::make_datagram_transport(
    Socket sock, std::shared_ptr<BaseProtocol> protocol, std::optional<SocketAddress> remote) {
  return detail::make_proactor_datagram_transport(*this, std::move(sock), std::move(protocol), std::move(remote));
}

// The transport, if any, has flushed its buffer; closing it cancels the
// operation (cancel_all on its socket), which fails this call.
Task<std::size_t> ProactorEventLoop::sendfile_native(fd_t sock, int file, std::uint64_t offset, std::size_t count,
                                                     detail::StreamTransport*) {
  std::shared_ptr<ProactorOperation> op = proactor_->make_operation();
  std::string what = "sendfile (file " + std::to_string(file) + " to socket " + std::to_string(sock) + ")";
  co_await perform(
      *op, [&] { proactor_->sendfile(*op, sock, file, offset, count); }, std::move(what));
  co_return op->bytes;
}

}  // namespace aio
