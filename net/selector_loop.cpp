// SelectorEventLoop's members that build net/ objects (asyncio's
// selector_events.py): the sock_* coroutines over readiness, its transports,
// accepting on readiness and sendfile(2). Each sock_* first tries the call,
// then waits for readiness as often as needed.
#include <backends/selector_event_loop.hpp>
#include <backends/sendfile.hpp>
#include <core/tasks.hpp>
#include <net/selector_datagram_transport.hpp>
#include <net/selector_transport.hpp>
#include <net/server.hpp>
#include <net/sock_ops.hpp>
#include <net/socket.hpp>
#include <net/stream_transport.hpp>

namespace aio {

#ifndef _WIN32
Task<void> SelectorEventLoop::wait_for_handle(fd_t handle) { return wait_ready(handle, false); }
#endif

Task<void> SelectorEventLoop::wait_ready(fd_t fd, bool writable) {
  Future<void> ready = create_future<void>();
  auto wake = [ready]() mutable {
    if (!ready.done()) ready.set_result();
  };
  check_thread(writable ? "add_writer" : "add_reader");
  Handle mine = add_watch(fd, writable ? EVENT_WRITE : EVENT_READ, std::move(wake));
  detail::ScopeExit unwatch([&] {
    // Replaced (and so cancelled) by a later wait on the same fd: that one's now.
    if (!mine.cancelled()) remove_watch(fd, writable ? EVENT_WRITE : EVENT_READ);
  });
  co_await ready;
}

Task<std::size_t> SelectorEventLoop::sock_recv_into(Socket& sock, std::span<char> buffer) {
  detail::check_sock(*this, sock, "sock_recv_into");
  for (;;) {
    if (auto n = sock.try_recv(buffer.data(), buffer.size())) co_return *n;
    co_await wait_ready(sock.fileno(), false);
  }
}

Task<std::pair<std::size_t, SocketAddress>> SelectorEventLoop::sock_recvfrom_into(Socket& sock,
                                                                                  std::span<char> buffer) {
  detail::check_sock(*this, sock, "sock_recvfrom_into");
  for (;;) {
    if (auto got = sock.try_recvfrom(buffer.data(), buffer.size())) co_return std::move(*got);
    co_await wait_ready(sock.fileno(), false);
  }
}

Task<void> SelectorEventLoop::sock_sendall(Socket& sock, std::string data) {
  detail::check_sock(*this, sock, "sock_sendall");
  std::size_t sent = 0;
  while (sent < data.size()) {
    if (auto n = sock.try_send(data.data() + sent, data.size() - sent))
      sent += *n;
    else
      co_await wait_ready(sock.fileno(), true);
  }
}

Task<std::size_t> SelectorEventLoop::sock_sendto(Socket& sock, std::string data, SocketAddress address) {
  detail::check_sock(*this, sock, "sock_sendto");
  for (;;) {
    if (auto n = sock.try_sendto(data.data(), data.size(), address)) co_return *n;
    co_await wait_ready(sock.fileno(), true);
  }
}

Task<void> SelectorEventLoop::sock_connect(Socket& sock, SocketAddress address) {
  detail::check_sock(*this, sock, "sock_connect");
  if (sock.start_connect(address)) co_return;
  co_await wait_ready(sock.fileno(), true);
  sock.finish_connect(address);
}

Task<std::pair<Socket, SocketAddress>> SelectorEventLoop::sock_accept(Socket& sock) {
  detail::check_sock(*this, sock, "sock_accept");
  for (;;) {
    if (auto got = sock.try_accept()) co_return std::move(*got);
    co_await wait_ready(sock.fileno(), false);
  }
}

std::shared_ptr<detail::StreamTransport> SelectorEventLoop::make_socket_transport(
    Socket sock, std::shared_ptr<BaseProtocol> protocol) {
  return detail::make_selector_transport(*this, std::move(sock), std::move(protocol));
}

std::shared_ptr<detail::DatagramTransportBase> SelectorEventLoop::make_datagram_transport(
    Socket sock, std::shared_ptr<BaseProtocol> protocol, std::optional<SocketAddress> remote) {
  return detail::make_selector_datagram_transport(*this, std::move(sock), std::move(protocol), std::move(remote));
}

void SelectorEventLoop::start_accepting(Server& server, std::size_t index) { server.accept_on_readiness(index); }

Task<std::size_t> SelectorEventLoop::sendfile_native(fd_t sock, int file, std::uint64_t offset, std::size_t count,
                                                     detail::StreamTransport* transport) {
  if (const char* missing = detail::native_sendfile_missing()) throw SendfileNotAvailableError(missing);
  for (;;) {
    if (std::optional<std::size_t> n = detail::sendfile_some(sock, file, offset, count)) co_return *n;
    if (transport)
      co_await transport->sendfile_writable();
    else
      co_await wait_ready(sock, true);
  }
}

}  // namespace aio
