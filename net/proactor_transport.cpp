// Stream transports of the proactor loop: bytes move by overlapped Winsock
// calls on the loop's completion port. Only how bytes move differs from the
// selector transport; the buffer, flow control and close/abort/eof states are
// detail::StreamTransport's.
//
// Reading posts a zero-byte overlapped WSARecv: its completion says data (or
// end of file, or an error) is there, then a non-blocking recv reads it into
// the protocol's buffer. No receive buffer is pinned per idle connection, and
// BufferedProtocol's buffers work unchanged (libuv reads TCP the same way).
//
// Writing is detail::ProactorStreamTransport's, by overlapped WSASend.
#include <backends/iocp_proactor.hpp>
#include <backends/proactor_event_loop.hpp>
#include <backends/syscall.hpp>
#include <net/proactor_stream_transport.hpp>
#include <net/selector_transport.hpp>
#include <net/socket_extra_info.hpp>

#include <winsock2.h>
#include <ws2tcpip.h>

#include <system_error>

namespace aio {
namespace {

class ProactorSocketTransport final : public detail::ProactorStreamTransport {
 public:
  ProactorSocketTransport(ProactorEventLoop& loop, Socket sock, std::shared_ptr<BaseProtocol> protocol)
      : ProactorStreamTransport(loop, std::move(protocol), "Fatal write error on socket transport"),
        sock_(std::move(sock)),
        info_(sock_) {
    proactor_.associate(sock_.fileno());
  }

  fd_t sendfile_socket() const noexcept override { return sock_ ? sock_.fileno() : -1; }

  std::any get_extra_info(std::string_view name) const override { return info_.get(name, sock_); }

 private:
  void engine_start_reading() override {
    reading_ = true;
    if (!read_op_) post_read();
  }
  // A zero-byte read already posted stays; its completion is ignored while
  // reading is stopped, and counts again once it resumes.
  void engine_stop_reading() override { reading_ = false; }

  void engine_shutdown_write() override {
    try {
      sock_.shutdown_write();
    } catch (const std::system_error&) {
      fatal_error(std::current_exception(), "Fatal error on shutdown of the write side");
    }
  }
  void engine_close() noexcept override {
    closed_ = true;
    // The operations own their buffers and keep this transport alive until
    // their packets arrive; closing the socket aborts them.
    if (read_op_) proactor_.cancel(*read_op_);
    if (write_op_) proactor_.cancel(*write_op_);
    // And a sendfile's TransmitFile: Wine 8.0's closesocket leaves it pending.
    CancelIoEx(reinterpret_cast<HANDLE>(sock_.fileno()), nullptr);
    sock_.close();
  }

  void post_read() {
    auto op = std::make_shared<IocpOperation>(sock_.fileno());
    op->wsabuf = WSABUF{0, nullptr};
    if (WSARecv(static_cast<SOCKET>(sock_.fileno()), &op->wsabuf, 1, nullptr, &op->flags, op->overlapped(), nullptr) !=
            0 &&
        WSAGetLastError() != WSA_IO_PENDING) {
      // The error itself comes from the recv that follows (never "would
      // block" here: then that recv would post again, without end).
      if (WSAGetLastError() == WSAEWOULDBLOCK)
        detail::throw_os_error(WSAEWOULDBLOCK, "WSARecv (zero-byte, overlapped)");
      read_now();
      return;
    }
    op->on_complete = [this, self = shared_from_this()](ProactorOperation& done) {
      read_op_.reset();
      if (closed_ || !reading_) return;
      read_now(done.error);
    };
    read_op_ = op;
    proactor_.started(std::move(op));
  }

  // `error`: what the zero-byte read ended with. Wine 8.0 fails it with
  // WSAECONNRESET after a peer's linger-0 close, while the recv after it then
  // reads a plain end of file; the error is what happened.
  void read_now(std::uint32_t error = 0) {
    bool eof = false;
    on_readable([this, &eof, error](std::span<char> buffer) {
      if (error != 0) detail::throw_os_error(static_cast<int>(error), "WSARecv");
      auto n = sock_.try_recv(buffer.data(), buffer.size());
      eof = n && *n == 0;
      return n;
    });
    if (!eof && !closed_ && reading_ && !lost_scheduled() && !read_op_) post_read();
  }

  bool start_overlapped_write(IocpOperation& op) override {
    op.wsabuf = WSABUF{static_cast<ULONG>(op.buffer.size()), op.buffer.data()};
    return WSASend(static_cast<SOCKET>(sock_.fileno()), &op.wsabuf, 1, nullptr, 0, op.overlapped(), nullptr) == 0;
  }
  fd_t io_handle() const noexcept override { return sock_.fileno(); }
  bool io_on_socket() const noexcept override { return true; }
  std::string write_call() const override { return "WSASend"; }

  Socket sock_;
  detail::StreamSocketInfo info_;
  std::shared_ptr<IocpOperation> read_op_;
  bool reading_ = false;
};

}  // namespace

std::shared_ptr<detail::StreamTransport> detail::make_socket_transport(EventLoop& loop, Socket sock,
                                                                       std::shared_ptr<BaseProtocol> protocol) {
  if (auto* proactor = dynamic_cast<ProactorEventLoop*>(&loop))
    return std::make_shared<ProactorSocketTransport>(*proactor, std::move(sock), std::move(protocol));
  return make_selector_transport(loop, std::move(sock), std::move(protocol));
}

}  // namespace aio
