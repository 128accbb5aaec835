#include <backends/iocp_proactor.hpp>
#include <backends/syscall.hpp>
#include <backends/windows_handle.hpp>

// winsock2.h first: windows.h alone pulls in the old winsock.h.
#include <winsock2.h>

#include <mswsock.h>
#include <windows.h>
#include <ws2tcpip.h>

#include <io.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <utility>
#include <vector>

namespace aio {
namespace {

// Completion keys: operation packets carry 0; the wakeup packet has no
// OVERLAPPED and this key.
constexpr ULONG_PTR wake_key = 1;
constexpr std::size_t batch = 64;
constexpr LONG status_cancelled = static_cast<LONG>(0xC0000120);  // STATUS_CANCELLED
// What one recv brings at most: the proactor's own buffer.
constexpr std::size_t recv_buffer_size = 256 * 1024;
// Bytes per TransmitFile call (at most 2^31 - 2). A cancelled call's packet
// does not say how much of its range went out, so the file position after a
// cancel may lag what the peer got by up to this much, as the fallback's
// chunks do.
constexpr std::uint64_t transmit_chunk = 1 << 20;
// What AcceptEx needs per address.
constexpr DWORD accept_slot = sizeof(SOCKADDR_STORAGE) + 16;

// peek_pipe: wait_readable on a pipe handle.
enum class Kind {
  recv,
  wait_readable,
  peek_pipe,
  send,
  recvfrom,
  sendto,
  accept,
  connect,
  sendfile,
  read,
  write,
  wait,
  pipe
};

HANDLE as_handle(fd_t fd) noexcept { return reinterpret_cast<HANDLE>(fd); }
SOCKET as_socket(fd_t fd) noexcept { return static_cast<SOCKET>(fd); }

std::string on(const char* call, fd_t fd) { return std::string(call) + " (handle " + std::to_string(fd) + ")"; }

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

// The other end closed (or never was): end of file for a reader.
bool is_pipe_eof(DWORD error) noexcept {
  return error == ERROR_BROKEN_PIPE || error == ERROR_PIPE_NOT_CONNECTED || error == ERROR_NO_DATA ||
         error == ERROR_HANDLE_EOF;
}

struct IocpOperation;

// The OVERLAPPED the OS sees, and the operation it belongs to (an
// OVERLAPPED inside a polymorphic class has no portable offset).
struct Overlapped {
  OVERLAPPED overlapped;
  IocpOperation* op;
};

// One overlapped operation: its OVERLAPPED and every buffer the OS reads or
// writes until the completion packet arrives.
struct IocpOperation final : ProactorOperation {
  ~IocpOperation() override {
    if (accept_socket != INVALID_SOCKET) closesocket(accept_socket);
    if (fd_t fd = take_accepted(); fd != -1) closesocket(as_socket(fd));
  }

  Overlapped ov{};
  Kind kind = Kind::recv;
  fd_t handle = -1;
  HANDLE port = nullptr;
  WSABUF wsabuf{};
  DWORD flags = 0;
  alignas(8) char address_buf[2 * accept_slot] = {};
  int address_len = 0;
  SOCKET accept_socket = INVALID_SOCKET;  // AcceptEx's, until it completes
  fd_t listener = -1;
  std::size_t max = 0;
  HANDLE wait_handle = nullptr;  // RegisterWaitForSingleObject's
  std::atomic<bool> signalled{false};
  bool forced = false;  // a packet post() made: its result is `forced_error`
  int forced_error = 0;
  // The in-flight list (close() cancels everything on it).
  IocpOperation* prev = nullptr;
  IocpOperation* next = nullptr;

  OVERLAPPED* overlapped() noexcept { return &ov.overlapped; }
  void set_accepted_socket(fd_t fd) noexcept { accepted_ = fd; }
};

IocpOperation& as_iocp(ProactorOperation& op) noexcept { return static_cast<IocpOperation&>(op); }

}  // namespace

struct IocpProactor::Impl {
  detail::UniqueHandle port;
  std::vector<OVERLAPPED_ENTRY> entries = std::vector<OVERLAPPED_ENTRY>(batch);
  std::atomic<bool> wake_posted{false};
  IocpOperation* head = nullptr;
  std::size_t count = 0;
  std::vector<char> recv_buffer;  // made on first use

  void link(IocpOperation& op) noexcept {
    op.prev = nullptr;
    op.next = head;
    if (head) head->prev = &op;
    head = &op;
    ++count;
  }
  void unlink(IocpOperation& op) noexcept {
    if (op.prev) op.prev->next = op.next;
    if (op.next) op.next->prev = op.prev;
    if (head == &op) head = op.next;
    op.prev = op.next = nullptr;
    --count;
  }

  // Associates `handle` with the port. A handle can be associated with one
  // port only, once; a second call fails with ERROR_INVALID_PARAMETER
  // (Windows and Wine 8.0 alike). Operations associate on every start rather
  // than tracking handles, whose values are reused after a close.
  void associate(fd_t handle) {
    if (CreateIoCompletionPort(as_handle(handle), port.get(), 0, 0)) return;
    DWORD err = GetLastError();
    if (err == ERROR_INVALID_PARAMETER) return;
    detail::throw_os_error(static_cast<int>(err), on("CreateIoCompletionPort (associating)", handle));
  }

  // A fresh start for `op` on `handle`.
  IocpOperation& prepare(ProactorOperation& base, Kind kind, fd_t handle) {
    auto& op = as_iocp(base);
    associate(handle);
    op.ov = Overlapped{};
    op.ov.op = &op;
    op.kind = kind;
    op.handle = handle;
    op.port = port.get();
    op.flags = 0;
    op.error = 0;
    op.bytes = 0;
    op.forced = false;
    return op;
  }

  void cancel(IocpOperation& op) noexcept {
    if (op.kind == Kind::wait) {
      // The wait ends here unless its callback ran (then its packet comes).
      if (op.wait_handle && UnregisterWaitEx(op.wait_handle, INVALID_HANDLE_VALUE)) {
        op.wait_handle = nullptr;
        if (!op.signalled.load()) {
          op.forced = true;
          op.forced_error = ERROR_OPERATION_ABORTED;
          PostQueuedCompletionStatus(port.get(), 0, 0, op.overlapped());
        }
      }
      return;
    }
    // ERROR_NOT_FOUND: it completed already and its packet is queued.
    CancelIoEx(as_handle(op.handle), op.overlapped());
  }
};

namespace {

// What the packet finished, made into the operation's results; false when
// the operation was started again instead (it stays in flight). With `run`
// false (close()) only releases what the operation holds.
bool finish(IocpProactor::Impl& impl, IocpOperation& op, bool run) {
  switch (op.kind) {
    case Kind::recv: {
      if (!run || op.error != 0) return true;
      if (impl.recv_buffer.empty()) impl.recv_buffer.resize(recv_buffer_size);
      int want = static_cast<int>(std::min(op.max, impl.recv_buffer.size()));
      int n = ::recv(as_socket(op.handle), impl.recv_buffer.data(), want, 0);
      if (n >= 0) {
        op.bytes = static_cast<std::size_t>(n);
        op.data = std::span<const char>(impl.recv_buffer.data(), op.bytes);
        return true;
      }
      int err = WSAGetLastError();
      if (err != WSAEWOULDBLOCK) {
        op.error = err;
        return true;
      }
      // Readiness without data (another reader took it first): wait again.
      op.ov = Overlapped{};
      op.ov.op = &op;
      op.wsabuf = WSABUF{0, nullptr};
      op.flags = 0;
      if (WSARecv(as_socket(op.handle), &op.wsabuf, 1, nullptr, &op.flags, op.overlapped(), nullptr) == 0 ||
          WSAGetLastError() == WSA_IO_PENDING)
        return false;
      op.error = WSAGetLastError();
      return true;
    }
    case Kind::recvfrom:
      if (op.error == 0) op.address = SocketAddress::from_native(op.address_buf, static_cast<unsigned>(op.address_len));
      return true;
    case Kind::accept: {
      if (op.error != 0 || !run) return true;
      SOCKET conn = std::exchange(op.accept_socket, INVALID_SOCKET);
      auto listener = as_socket(op.listener);
      u_long nonblocking = 1;
      SOCKADDR_STORAGE peer{};
      int peer_len = sizeof(peer);
      // Without SO_UPDATE_ACCEPT_CONTEXT getpeername, getsockname and
      // shutdown fail on the new socket.
      if (setsockopt(conn, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, reinterpret_cast<const char*>(&listener),
                     sizeof(listener)) != 0 ||
          ioctlsocket(conn, FIONBIO, &nonblocking) != 0 ||
          getpeername(conn, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
        op.error = WSAGetLastError();
        closesocket(conn);
        return true;
      }
      op.address = SocketAddress::from_native(&peer, static_cast<unsigned>(peer_len));
      op.set_accepted_socket(static_cast<fd_t>(conn));
      return true;
    }
    case Kind::connect:
      // Without it getpeername, shutdown and getsockopt fail on the socket.
      if (op.error == 0 && setsockopt(as_socket(op.handle), SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, nullptr, 0) != 0)
        op.error = WSAGetLastError();
      return true;
    case Kind::read:
      if (is_pipe_eof(static_cast<DWORD>(op.error))) {
        op.error = 0;
        op.bytes = 0;
        return true;
      }
      // A read of 0 bytes is a writer's empty write, not the end: read on.
      if (run && op.error == 0 && op.bytes == 0 && !op.forced) {
        op.ov = Overlapped{};
        op.ov.op = &op;
        if (ReadFile(as_handle(op.handle), op.buffer.data(), static_cast<DWORD>(op.buffer.size()), nullptr,
                     op.overlapped()) ||
            GetLastError() == ERROR_IO_PENDING)
          return false;
        DWORD err = GetLastError();
        op.error = is_pipe_eof(err) ? 0 : static_cast<int>(err);
      }
      return true;
    case Kind::wait:
      if (op.wait_handle) UnregisterWait(std::exchange(op.wait_handle, nullptr));
      return true;
    default:
      return true;
  }
}

}  // namespace

IocpProactor::IocpProactor() : impl_(std::make_unique<Impl>()) {
  detail::ensure_sockets_ready();
  HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
  if (!port) detail::throw_os_error(static_cast<int>(GetLastError()), "CreateIoCompletionPort");
  impl_->port.reset(port);
}

IocpProactor::~IocpProactor() { close(); }

std::shared_ptr<ProactorOperation> IocpProactor::make_operation() { return std::make_shared<IocpOperation>(); }

std::size_t IocpProactor::in_flight() const noexcept { return impl_->count; }

void IocpProactor::launch(ProactorOperation& base, bool ok, const std::string& what) {
  auto& op = as_iocp(base);
  if (!ok) {
    // WSAGetLastError() is GetLastError(), and WSA_IO_PENDING is ERROR_IO_PENDING.
    auto err = static_cast<int>(GetLastError());
    if (err != ERROR_IO_PENDING) detail::throw_os_error(err, what);
  }
  mark_started(op);
  impl_->link(op);
}

void IocpProactor::post(ProactorOperation& base, int error, unsigned long bytes) {
  auto& op = as_iocp(base);
  op.forced = true;
  op.forced_error = error;
  if (!PostQueuedCompletionStatus(impl_->port.get(), bytes, 0, op.overlapped()))
    detail::throw_os_error(static_cast<int>(GetLastError()), "PostQueuedCompletionStatus");
  mark_started(op);
  impl_->link(op);
}

// ---- The operations --------------------------------------------------------------

void IocpProactor::wait_readable(ProactorOperation& base, fd_t sock) {
  auto& op = impl_->prepare(base, Kind::wait_readable, sock);
  op.wsabuf = WSABUF{0, nullptr};
  bool ok = WSARecv(as_socket(sock), &op.wsabuf, 1, nullptr, &op.flags, op.overlapped(), nullptr) == 0;
  // Not a socket (Windows says WSAENOTSOCK, Wine 8.0 WSAEOPNOTSUPP) but a
  // pipe, such as the duplex stdin of a child (as asyncio's): a one-byte
  // read that completes when the other end writes or goes away. No packet
  // follows the failed WSARecv.
  if (!ok && (WSAGetLastError() == WSAENOTSOCK || WSAGetLastError() == WSAEOPNOTSUPP) &&
      GetNamedPipeInfo(as_handle(sock), nullptr, nullptr, nullptr, nullptr)) {
    op.kind = Kind::peek_pipe;
    if (ReadFile(as_handle(sock), op.address_buf, 1, nullptr, op.overlapped())) return launch(op, true, {});
    DWORD err = GetLastError();
    if (is_pipe_eof(err)) return post(op, 0, 0);
    if (err != ERROR_IO_PENDING) detail::throw_os_error(static_cast<int>(err), on("ReadFile (one byte)", sock));
    return launch(op, true, {});
  }
  launch(op, ok, on("WSARecv (zero-byte)", sock));
}

void IocpProactor::recv(ProactorOperation& base, fd_t sock, std::size_t max) {
  wait_readable(base, sock);
  auto& op = as_iocp(base);
  op.kind = Kind::recv;
  op.max = max;
}

void IocpProactor::send(ProactorOperation& base, fd_t sock) {
  auto& op = impl_->prepare(base, Kind::send, sock);
  op.wsabuf = WSABUF{static_cast<ULONG>(op.buffer.size()), op.buffer.data()};
  bool ok = WSASend(as_socket(sock), &op.wsabuf, 1, nullptr, 0, op.overlapped(), nullptr) == 0;
  launch(op, ok, on("WSASend", sock));
}

void IocpProactor::recvfrom(ProactorOperation& base, fd_t sock) {
  auto& op = impl_->prepare(base, Kind::recvfrom, sock);
  op.wsabuf = WSABUF{static_cast<ULONG>(op.buffer.size()), op.buffer.data()};
  op.address_len = sizeof(SOCKADDR_STORAGE);
  bool ok = WSARecvFrom(as_socket(sock), &op.wsabuf, 1, nullptr, &op.flags, reinterpret_cast<sockaddr*>(op.address_buf),
                        &op.address_len, op.overlapped(), nullptr) == 0;
  launch(op, ok, on("WSARecvFrom", sock));
}

void IocpProactor::sendto(ProactorOperation& base, fd_t sock, const SocketAddress* to) {
  auto& op = impl_->prepare(base, Kind::sendto, sock);
  op.wsabuf = WSABUF{static_cast<ULONG>(op.buffer.size()), op.buffer.data()};
  const sockaddr* target = nullptr;
  op.address_len = 0;
  if (to) {
    std::memcpy(op.address_buf, to->data(), to->size());
    op.address_len = static_cast<int>(to->size());
    target = reinterpret_cast<const sockaddr*>(op.address_buf);
  }
  bool ok =
      WSASendTo(as_socket(sock), &op.wsabuf, 1, nullptr, 0, target, op.address_len, op.overlapped(), nullptr) == 0;
  launch(op, ok, on("WSASendTo", sock) + (to ? " to " + to->to_string() : std::string()));
}

void IocpProactor::accept(ProactorOperation& base, fd_t listener) {
  auto& op = impl_->prepare(base, Kind::accept, listener);
  SOCKADDR_STORAGE local{};
  int local_len = sizeof(local);
  detail::check_socket_call(getsockname(as_socket(listener), reinterpret_cast<sockaddr*>(&local), &local_len) != 0,
                            on("getsockname", listener));
  SOCKET s = WSASocketW(local.ss_family, SOCK_STREAM, 0, nullptr, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL) {
    // Windows 7 before SP1 rejects WSA_FLAG_NO_HANDLE_INHERIT.
    s = WSASocketW(local.ss_family, SOCK_STREAM, 0, nullptr, 0, WSA_FLAG_OVERLAPPED);
    if (s != INVALID_SOCKET) SetHandleInformation(reinterpret_cast<HANDLE>(s), HANDLE_FLAG_INHERIT, 0);
  }
  detail::check_socket_call(s == INVALID_SOCKET, "socket (for AcceptEx)");
  if (op.accept_socket != INVALID_SOCKET) closesocket(op.accept_socket);
  op.accept_socket = s;
  op.listener = listener;
  DWORD received = 0;
  bool ok = accept_ex(as_socket(listener))(as_socket(listener), s, op.address_buf, 0, accept_slot, accept_slot,
                                           &received, op.overlapped()) != FALSE;
  launch(op, ok, on("AcceptEx", listener));
}

void IocpProactor::connect(ProactorOperation& base, fd_t sock, const SocketAddress& to) {
  auto& op = impl_->prepare(base, Kind::connect, sock);
  // ConnectEx wants a bound socket: bind to the wildcard of its family, as
  // connect() does implicitly.
  SOCKADDR_STORAGE name{};
  int name_len = sizeof(name);
  if (getsockname(as_socket(sock), reinterpret_cast<sockaddr*>(&name), &name_len) != 0) {
    SOCKADDR_STORAGE any{};
    any.ss_family = static_cast<ADDRESS_FAMILY>(to.family());
    int any_len = to.family() == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    detail::check_socket_call(bind(as_socket(sock), reinterpret_cast<sockaddr*>(&any), any_len) != 0,
                              on("bind (before ConnectEx)", sock));
  }
  std::memcpy(op.address_buf, to.data(), to.size());
  op.address_len = static_cast<int>(to.size());
  bool ok = connect_ex(as_socket(sock))(as_socket(sock), reinterpret_cast<const sockaddr*>(op.address_buf),
                                        op.address_len, nullptr, 0, nullptr, op.overlapped()) != FALSE;
  launch(op, ok, on("ConnectEx", sock) + " to " + to.to_string());
}

void IocpProactor::sendfile(ProactorOperation& base, fd_t sock, int file, std::uint64_t offset, std::size_t count) {
  auto& op = impl_->prepare(base, Kind::sendfile, sock);
  HANDLE handle = reinterpret_cast<HANDLE>(_get_osfhandle(file));
  LARGE_INTEGER size{};
  if (!GetFileSizeEx(handle, &size))
    detail::throw_os_error(static_cast<int>(GetLastError()), "GetFileSizeEx (file " + std::to_string(file) + ")");
  auto end = static_cast<std::uint64_t>(size.QuadPart);
  if (offset >= end) return post(op, 0, 0);
  std::uint64_t want = std::min<std::uint64_t>({count, end - offset, transmit_chunk});
  // The file is read from the OVERLAPPED's offset, not from its position.
  op.overlapped()->Offset = static_cast<DWORD>(offset);
  op.overlapped()->OffsetHigh = static_cast<DWORD>(offset >> 32);
  SOCKET s = as_socket(sock);
  bool ok = transmit_file(s)(s, handle, static_cast<DWORD>(want), 0, op.overlapped(), nullptr, 0) != FALSE;
  launch(op, ok, "TransmitFile (file " + std::to_string(file) + " to socket " + std::to_string(sock) + ")");
}

void IocpProactor::read(ProactorOperation& base, fd_t handle) {
  auto& op = impl_->prepare(base, Kind::read, handle);
  if (!ReadFile(as_handle(handle), op.buffer.data(), static_cast<DWORD>(op.buffer.size()), nullptr, op.overlapped())) {
    DWORD err = GetLastError();
    if (is_pipe_eof(err)) return post(op, 0, 0);
    if (err != ERROR_IO_PENDING) detail::throw_os_error(static_cast<int>(err), on("ReadFile", handle));
  }
  launch(op, true, {});
}

void IocpProactor::write(ProactorOperation& base, fd_t handle) {
  auto& op = impl_->prepare(base, Kind::write, handle);
  bool ok = WriteFile(as_handle(handle), op.buffer.data(), static_cast<DWORD>(op.buffer.size()), nullptr,
                      op.overlapped()) != FALSE;
  launch(op, ok, on("WriteFile", handle));
}

void IocpProactor::wait_handle(ProactorOperation& base, fd_t handle) {
  auto& op = as_iocp(base);
  op.ov = Overlapped{};
  op.ov.op = &op;
  op.kind = Kind::wait;
  op.handle = handle;
  op.port = impl_->port.get();
  op.error = 0;
  op.bytes = 0;
  op.forced = false;
  op.signalled.store(false);
  // The callback runs on a thread-pool thread: it only posts the packet.
  auto signalled = [](void* context, BOOLEAN) {
    auto* target = static_cast<IocpOperation*>(context);
    target->signalled.store(true);
    PostQueuedCompletionStatus(target->port, 0, 0, target->overlapped());
  };
  HANDLE wait = nullptr;
  if (!RegisterWaitForSingleObject(&wait, as_handle(handle), signalled, &op, INFINITE, WT_EXECUTEONLYONCE))
    detail::throw_os_error(static_cast<int>(GetLastError()), on("RegisterWaitForSingleObject", handle));
  op.wait_handle = wait;
  launch(op, true, {});
}

void IocpProactor::connect_pipe(ProactorOperation& base, fd_t pipe) {
  auto& op = impl_->prepare(base, Kind::pipe, pipe);
  if (!ConnectNamedPipe(as_handle(pipe), op.overlapped())) {
    DWORD err = GetLastError();
    // A client came before the call: no packet follows, so make one.
    if (err == ERROR_PIPE_CONNECTED) return post(op, 0, 0);
    if (err != ERROR_IO_PENDING) detail::throw_os_error(static_cast<int>(err), on("ConnectNamedPipe", pipe));
  }
  launch(op, true, {});
}

bool IocpProactor::is_cancelled(const ProactorOperation& op) const noexcept {
  return op.error == ERROR_OPERATION_ABORTED;  // WSA_OPERATION_ABORTED is the same value
}

void IocpProactor::cancel(ProactorOperation& op) noexcept {
  if (op.in_flight()) impl_->cancel(as_iocp(op));
}

// And a sendfile's TransmitFile: Wine 8.0's closesocket leaves it pending.
void IocpProactor::cancel_all(fd_t fd) noexcept { CancelIoEx(as_handle(fd), nullptr); }

// ---- Waiting ---------------------------------------------------------------------

void IocpProactor::wakeup() noexcept {
  if (!impl_->port || impl_->wake_posted.exchange(true)) return;
  PostQueuedCompletionStatus(impl_->port.get(), 0, wake_key, nullptr);
}

void IocpProactor::wait(std::int64_t timeout_ns) {
  DWORD ms = INFINITE;
  if (timeout_ns >= 0) {
    // Rounded up: a wait never ends early only because of the millisecond unit.
    std::int64_t up = (timeout_ns + 999'999) / 1'000'000;
    ms = up >= static_cast<std::int64_t>(INFINITE) ? INFINITE - 1 : static_cast<DWORD>(up);
  }
  dequeue(ms, true);
}

bool IocpProactor::dequeue(unsigned long timeout_ms, bool run) {
  Impl& impl = *impl_;
  ULONG n = 0;
  if (!GetQueuedCompletionStatusEx(impl.port.get(), impl.entries.data(), static_cast<ULONG>(impl.entries.size()), &n,
                                   timeout_ms, FALSE)) {
    DWORD err = GetLastError();
    if (err == WAIT_TIMEOUT) return false;
    detail::throw_os_error(static_cast<int>(err), "GetQueuedCompletionStatusEx");
  }
  for (ULONG i = 0; i < n; ++i) {
    const OVERLAPPED_ENTRY& entry = impl.entries[i];
    if (!entry.lpOverlapped) {
      if (entry.lpCompletionKey == wake_key) impl.wake_posted.store(false);
      continue;
    }
    IocpOperation& op = *reinterpret_cast<Overlapped*>(entry.lpOverlapped)->op;
    op.bytes = entry.dwNumberOfBytesTransferred;
    op.error = 0;
    if (op.forced) {
      op.error = op.forced_error;
    } else if (static_cast<LONG>(op.overlapped()->Internal) != 0) {
      // The packet carries an NTSTATUS; (WSA)GetOverlappedResult turns it
      // into the code a caller of WSARecv or ReadFile would have seen.
      DWORD bytes = 0, flags = 0;
      bool socket = op.kind != Kind::read && op.kind != Kind::write && op.kind != Kind::pipe && op.kind != Kind::wait &&
                    op.kind != Kind::peek_pipe;
      if (socket) {
        if (!WSAGetOverlappedResult(as_socket(op.handle), op.overlapped(), &bytes, FALSE, &flags))
          op.error = WSAGetLastError();
      } else if (!GetOverlappedResult(as_handle(op.handle), op.overlapped(), &bytes, FALSE)) {
        op.error = static_cast<int>(GetLastError());
      }
      if (op.error == 0 || op.error == WSAENOTSOCK)
        op.error = static_cast<LONG>(op.overlapped()->Internal) == status_cancelled ? ERROR_OPERATION_ABORTED
                                                                                    : ERROR_GEN_FAILURE;
    }
    if (!finish(impl, op, run)) continue;  // started again: still in flight
    impl.unlink(op);
    std::shared_ptr<ProactorOperation> keep = mark_finished(op);
    complete(op, run);
  }
  return true;
}

void IocpProactor::close() noexcept {
  if (!impl_ || !impl_->port) return;
  for (IocpOperation* op = impl_->head; op; op = op->next) impl_->cancel(*op);
  // Every cancelled operation still delivers a packet; its OVERLAPPED and
  // buffers stay alive until then. Ten quiet seconds means the OS lost some:
  // those are leaked rather than freed under a pending write.
  int quiet = 0;
  while (impl_->head && quiet < 10) {
    try {
      quiet = dequeue(1000, false) ? 0 : quiet + 1;
    } catch (const std::system_error&) {
      break;
    }
  }
  while (IocpOperation* op = impl_->head) {
    impl_->unlink(*op);
    new std::shared_ptr<ProactorOperation>(mark_finished(*op));  // deliberate leak
  }
  impl_->port.reset();
}

}  // namespace aio
