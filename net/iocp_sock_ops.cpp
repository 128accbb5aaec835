// The sock_* coroutines of ProactorEventLoop as overlapped Winsock operations
// (WSARecv, WSASend, WSARecvFrom, WSASendTo, ConnectEx, AcceptEx) on an
// IocpProactor. Each operation owns its buffers (copied out on completion),
// so a task destroyed mid-operation leaves the OS nothing freed to write to.
#include <backends/iocp_proactor.hpp>
#include <backends/proactor_event_loop.hpp>
#include <backends/syscall.hpp>
#include <core/errors.hpp>
#include <core/tasks.hpp>
#include <net/iocp_operation.hpp>
#include <net/sock_ops.hpp>
#include <net/socket.hpp>

#include <mswsock.h>
#include <winsock2.h>
#include <ws2tcpip.h>

#include <io.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

namespace aio {
namespace {

using detail::check_started;
using detail::completion;
using detail::iocp;
using detail::new_operation;

SOCKET native(const Socket& sock) noexcept { return static_cast<SOCKET>(sock.fileno()); }

std::string on_socket(const char* call, const Socket& sock) {
  return std::string(call) + " (socket " + std::to_string(sock.fileno()) + ")";
}

std::shared_ptr<IocpOperation> new_operation(ProactorEventLoop& loop, Socket& sock) {
  return new_operation(loop, sock.fileno());
}

// Extension functions are per provider; Windows and Wine have one provider
// for TCP/IP, so one lookup per process (as CPython's overlapped module).
template <class Fn>
Fn extension(SOCKET sock, GUID guid, const char* name) {
  Fn fn = nullptr;
  DWORD bytes = 0;
  if (WSAIoctl(sock, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof(guid), &fn, sizeof(fn), &bytes, nullptr,
               nullptr) != 0)
    detail::throw_os_error(WSAGetLastError(), std::string("WSAIoctl(") + name + ")");
  return fn;
}

LPFN_CONNECTEX connect_ex(SOCKET sock) {
  static LPFN_CONNECTEX fn = extension<LPFN_CONNECTEX>(sock, WSAID_CONNECTEX, "ConnectEx");
  return fn;
}

LPFN_ACCEPTEX accept_ex(SOCKET sock) {
  static LPFN_ACCEPTEX fn = extension<LPFN_ACCEPTEX>(sock, WSAID_ACCEPTEX, "AcceptEx");
  return fn;
}

LPFN_TRANSMITFILE transmit_file(SOCKET sock) {
  static LPFN_TRANSMITFILE fn = extension<LPFN_TRANSMITFILE>(sock, WSAID_TRANSMITFILE, "TransmitFile");
  return fn;
}

// Bytes per TransmitFile call (at most 2^31 - 2). A cancelled call's packet
// does not say how much of its range went out, so the file position after a
// cancel may lag what the peer got by up to this much, as the fallback's
// chunks do.
constexpr std::uint64_t transmit_chunk = 1 << 20;

}  // namespace

Task<std::size_t> ProactorEventLoop::sock_recv_into(Socket& sock, std::span<char> buffer) {
  detail::check_socket_open(sock, "sock_recv_into");
  if (sock.get_option(SOL_SOCKET, SO_TYPE) == SOCK_STREAM) {
    // A zero-byte WSARecv waits for data without taking any, then a
    // non-blocking recv reads it into `buffer`: cancelling the wait loses no
    // bytes, and no buffer is copied (the transports read the same way).
    for (;;) {
      if (std::optional<std::size_t> n = sock.try_recv(buffer.data(), buffer.size())) co_return *n;
      auto op = new_operation(*this, sock);
      op->wsabuf = WSABUF{0, nullptr};
      bool ok = WSARecv(native(sock), &op->wsabuf, 1, nullptr, &op->flags, op->overlapped(), nullptr) == 0;
      std::string what = on_socket("WSARecv", sock);
      check_started(*this, op, ok, what);
      co_await completion(*this, op, std::move(what));
    }
  }
  // A datagram is taken whole by the receive that gets it, so the operation
  // has its own buffer; one that completes after a cancel is dropped, as the
  // network may drop any datagram.
  auto op = new_operation(*this, sock);
  op->buffer.resize(buffer.size());
  op->wsabuf = WSABUF{static_cast<ULONG>(op->buffer.size()), op->buffer.data()};
  bool ok = WSARecv(native(sock), &op->wsabuf, 1, nullptr, &op->flags, op->overlapped(), nullptr) == 0;
  std::string what = on_socket("WSARecv", sock);
  check_started(*this, op, ok, what);
  co_await completion(*this, op, std::move(what));
  std::memcpy(buffer.data(), op->buffer.data(), op->bytes);
  co_return op->bytes;
}

Task<std::pair<std::size_t, SocketAddress>> ProactorEventLoop::sock_recvfrom_into(Socket& sock,
                                                                                  std::span<char> buffer) {
  detail::check_socket_open(sock, "sock_recvfrom_into");
  auto op = new_operation(*this, sock);
  op->buffer.resize(buffer.size());
  op->wsabuf = WSABUF{static_cast<ULONG>(op->buffer.size()), op->buffer.data()};
  op->address_len = sizeof(SOCKADDR_STORAGE);
  bool ok = WSARecvFrom(native(sock), &op->wsabuf, 1, nullptr, &op->flags, reinterpret_cast<sockaddr*>(op->address),
                        &op->address_len, op->overlapped(), nullptr) == 0;
  std::string what = on_socket("WSARecvFrom", sock);
  check_started(*this, op, ok, what);
  co_await completion(*this, op, std::move(what));
  std::memcpy(buffer.data(), op->buffer.data(), op->bytes);
  co_return std::pair{op->bytes, SocketAddress::from_native(op->address, static_cast<unsigned>(op->address_len))};
}

Task<void> ProactorEventLoop::sock_sendall(Socket& sock, std::string data) {
  detail::check_socket_open(sock, "sock_sendall");
  std::size_t sent = 0;
  // An overlapped WSASend on a stream socket completes when all of it was
  // taken; the loop only matters if a provider ever reports less.
  do {
    auto op = new_operation(*this, sock);
    op->buffer.assign(data, sent);
    op->wsabuf = WSABUF{static_cast<ULONG>(op->buffer.size()), op->buffer.data()};
    bool ok = WSASend(native(sock), &op->wsabuf, 1, nullptr, 0, op->overlapped(), nullptr) == 0;
    std::string what = on_socket("WSASend", sock);
    check_started(*this, op, ok, what);
    co_await completion(*this, op, std::move(what));
    sent += op->bytes;
  } while (sent < data.size());
}

Task<std::size_t> ProactorEventLoop::sock_sendto(Socket& sock, std::string data, SocketAddress address) {
  detail::check_socket_open(sock, "sock_sendto");
  auto op = new_operation(*this, sock);
  op->buffer = std::move(data);
  op->wsabuf = WSABUF{static_cast<ULONG>(op->buffer.size()), op->buffer.data()};
  std::memcpy(op->address, address.data(), address.size());
  op->address_len = static_cast<int>(address.size());
  bool ok = WSASendTo(native(sock), &op->wsabuf, 1, nullptr, 0, reinterpret_cast<const sockaddr*>(op->address),
                      op->address_len, op->overlapped(), nullptr) == 0;
  std::string what = on_socket("WSASendTo", sock) + " to " + address.to_string();
  check_started(*this, op, ok, what);
  co_await completion(*this, op, std::move(what));
  co_return op->bytes;
}

Task<void> ProactorEventLoop::sock_connect(Socket& sock, SocketAddress address) {
  detail::check_socket_open(sock, "sock_connect");
  if (sock.get_option(SOL_SOCKET, SO_TYPE) != SOCK_STREAM) {
    // ConnectEx is for stream sockets; a datagram connect() only sets the
    // default peer and never waits.
    if (!sock.start_connect(address)) sock.finish_connect(address);
    co_return;
  }
  // ConnectEx wants a bound socket: bind to the wildcard of its family, as
  // connect() does implicitly.
  sockaddr_storage name{};
  int name_len = sizeof(name);
  if (getsockname(native(sock), reinterpret_cast<sockaddr*>(&name), &name_len) != 0) {
    SocketAddress any = SocketAddress::parse(address.family() == AF_INET6 ? "::" : "0.0.0.0", 0);
    sock.bind(any);
  }
  auto op = new_operation(*this, sock);
  std::memcpy(op->address, address.data(), address.size());
  op->address_len = static_cast<int>(address.size());
  bool ok = connect_ex(native(sock))(native(sock), reinterpret_cast<const sockaddr*>(op->address), op->address_len,
                                     nullptr, 0, nullptr, op->overlapped()) != FALSE;
  std::string what = on_socket("ConnectEx", sock) + " to " + address.to_string();
  check_started(*this, op, ok, what);
  co_await completion(*this, op, std::move(what));
  // Without it getpeername, shutdown and getsockopt fail on the socket.
  detail::check_socket_call(setsockopt(native(sock), SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, nullptr, 0) != 0,
                            on_socket("setsockopt SO_UPDATE_CONNECT_CONTEXT", sock));
}

Task<std::pair<Socket, SocketAddress>> ProactorEventLoop::sock_accept(Socket& sock) {
  detail::check_socket_open(sock, "sock_accept");
  SocketAddress local = sock.getsockname();
  Socket accepted = Socket::create(local.family(), SOCK_STREAM, 0);
  auto op = new_operation(*this, sock);
  op->accepted = static_cast<SOCKET>(accepted.release());
  constexpr DWORD slot = sizeof(SOCKADDR_STORAGE) + 16;  // what AcceptEx requires per address
  DWORD received = 0;
  bool ok = accept_ex(native(sock))(native(sock), op->accepted, op->address, 0, slot, slot, &received,
                                    op->overlapped()) != FALSE;
  std::string what = on_socket("AcceptEx", sock);
  check_started(*this, op, ok, what);
  SOCKET listener = native(sock);  // `sock` is not touched after the wait: a server may be gone by then
  co_await completion(*this, op, std::move(what));
  Socket conn = Socket::adopt(static_cast<fd_t>(std::exchange(op->accepted, INVALID_SOCKET)));
  // Without it getpeername, getsockname and shutdown fail on the new socket.
  detail::check_socket_call(setsockopt(native(conn), SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT,
                                       reinterpret_cast<const char*>(&listener), sizeof(listener)) != 0,
                            on_socket("setsockopt SO_UPDATE_ACCEPT_CONTEXT", conn));
  SocketAddress peer = conn.getpeername();
  co_return std::pair{std::move(conn), peer};
}

Task<std::size_t> ProactorEventLoop::sendfile_native(fd_t sock, int file, std::uint64_t offset, std::size_t count,
                                                     detail::StreamTransport*) {
  auto handle = reinterpret_cast<HANDLE>(_get_osfhandle(file));
  LARGE_INTEGER size{};
  if (!GetFileSizeEx(handle, &size))
    detail::throw_os_error(static_cast<int>(GetLastError()), "GetFileSizeEx (file " + std::to_string(file) + ")");
  auto end = static_cast<std::uint64_t>(size.QuadPart);
  if (offset >= end) co_return 0;
  std::uint64_t want = std::min<std::uint64_t>(count, end - offset);
  want = std::min(want, transmit_chunk);
  // The file is read from the OVERLAPPED's offset, not from its position.
  auto op = new_operation(*this, sock);
  op->overlapped()->Offset = static_cast<DWORD>(offset);
  op->overlapped()->OffsetHigh = static_cast<DWORD>(offset >> 32);
  SOCKET s = static_cast<SOCKET>(sock);
  bool ok = transmit_file(s)(s, handle, static_cast<DWORD>(want), 0, op->overlapped(), nullptr, 0) != FALSE;
  std::string what = "TransmitFile (file " + std::to_string(file) + " to socket " + std::to_string(sock) + ")";
  check_started(*this, op, ok, what);
  co_await completion(*this, op, std::move(what));
  co_return op->bytes;
}

}  // namespace aio
