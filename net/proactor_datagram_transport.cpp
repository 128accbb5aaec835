// Datagram transports of the proactor loop: one overlapped WSARecvFrom
// always posted while reading, into a buffer the operation owns; datagrams go
// out with a non-blocking sendto, and only when that would block as an
// overlapped WSASendTo (one in flight; the rest wait in the base's queue, in
// order). Queueing, flow control and the close states are
// detail::DatagramTransportBase's.
#include <backends/iocp_proactor.hpp>
#include <backends/proactor_event_loop.hpp>
#include <backends/syscall.hpp>
#include <net/selector_datagram_transport.hpp>
#include <net/socket_extra_info.hpp>

#include <winsock2.h>
#include <ws2tcpip.h>

#include <any>
#include <cstring>
#include <system_error>

namespace aio {
namespace {

// As large as any UDP datagram over IPv4 or IPv6 (without jumbograms).
constexpr std::size_t read_size = 65536;

class ProactorDatagramTransport final : public detail::DatagramTransportBase {
 public:
  ProactorDatagramTransport(ProactorEventLoop& loop, Socket sock, std::shared_ptr<BaseProtocol> protocol,
                            std::optional<SocketAddress> peername, std::optional<SocketAddress> remote)
      : DatagramTransportBase(loop, std::move(protocol), peername ? peername : remote, peername.has_value()),
        proactor_(static_cast<IocpProactor&>(loop.proactor())),
        sock_(std::move(sock)),
        peername_(std::move(peername)) {
    proactor_.associate(sock_.fileno());
  }

  std::any get_extra_info(std::string_view name) const override {
    return detail::datagram_extra_info(name, sock_, peername_);
  }

 private:
  void engine_start_reading() override {
    reading_ = true;
    if (!read_op_) post_read();
  }
  void engine_stop_reading() override { reading_ = false; }
  bool engine_sendto(std::string_view data, const SocketAddress* to) override {
    if (send_op_) return false;  // keep the order: wait behind the one in flight
    auto sent = to ? sock_.try_sendto(data.data(), data.size(), *to) : sock_.try_send(data.data(), data.size());
    if (sent) return true;
    start_send(data, to);
    return true;
  }
  // The in-flight send's completion calls on_writable() itself.
  void engine_start_writing() override {}
  void engine_stop_writing() override {}
  void engine_close() noexcept override {
    closed_ = true;
    if (read_op_) proactor_.cancel(*read_op_);
    if (send_op_) proactor_.cancel(*send_op_);
    sock_.close();
  }

  void post_read() {
    // Not posted again from its own failure: a socket that fails every
    // receive at once would otherwise spin here.
    for (;;) {
      auto op = std::make_shared<IocpOperation>(sock_.fileno());
      op->buffer.resize(read_size);
      op->wsabuf = WSABUF{static_cast<ULONG>(op->buffer.size()), op->buffer.data()};
      op->address_len = sizeof(SOCKADDR_STORAGE);
      if (WSARecvFrom(static_cast<SOCKET>(sock_.fileno()), &op->wsabuf, 1, nullptr, &op->flags,
                      reinterpret_cast<sockaddr*>(op->address), &op->address_len, op->overlapped(), nullptr) != 0) {
        int err = WSAGetLastError();
        if (err != WSA_IO_PENDING) {
          try {
            detail::throw_os_error(err, "WSARecvFrom");
          } catch (const std::system_error&) {
            receive_failed(std::current_exception());
          }
          // WSAECONNRESET (an ICMP port unreachable) leaves the socket
          // usable: receiving goes on, as asyncio's.
          if (err == WSAECONNRESET && !closed_ && reading_) continue;
          return;
        }
      }
      op->on_complete = [this, self = shared_from_this()](ProactorOperation& base) {
        auto& done = static_cast<IocpOperation&>(base);
        read_op_.reset();
        if (closed_) return;
        bool go_on = true;
        if (done.error != 0) {
          try {
            detail::throw_os_error(static_cast<int>(done.error), "WSARecvFrom");
          } catch (const std::system_error&) {
            receive_failed(std::current_exception());
          }
        } else {
          auto from = SocketAddress::from_native(done.address, static_cast<unsigned>(done.address_len));
          go_on = datagram_arrived(std::string_view(done.buffer.data(), done.bytes), from);
        }
        if (go_on && !closed_ && reading_ && !read_op_) post_read();
      };
      read_op_ = op;
      proactor_.started(std::move(op));
      return;
    }
  }

  void start_send(std::string_view data, const SocketAddress* to) {
    auto op = std::make_shared<IocpOperation>(sock_.fileno());
    op->buffer.assign(data);
    op->wsabuf = WSABUF{static_cast<ULONG>(op->buffer.size()), op->buffer.data()};
    const sockaddr* target = nullptr;
    if (to) {
      std::memcpy(op->address, to->data(), to->size());
      op->address_len = static_cast<int>(to->size());
      target = reinterpret_cast<const sockaddr*>(op->address);
    }
    if (WSASendTo(static_cast<SOCKET>(sock_.fileno()), &op->wsabuf, 1, nullptr, 0, target, op->address_len,
                  op->overlapped(), nullptr) != 0) {
      int err = WSAGetLastError();
      if (err != WSA_IO_PENDING) detail::throw_os_error(err, "WSASendTo");
    }
    op->on_complete = [this, self = shared_from_this()](ProactorOperation& done) {
      send_op_.reset();
      if (closed_) return;
      if (done.error != 0) {
        try {
          detail::throw_os_error(static_cast<int>(done.error), "WSASendTo");
        } catch (const std::system_error&) {
          receive_failed(std::current_exception());  // to error_received, as a failed sendto
        }
      }
      on_writable();
    };
    send_op_ = op;
    proactor_.started(std::move(op));
  }

  IocpProactor& proactor_;
  Socket sock_;
  std::optional<SocketAddress> peername_;
  std::shared_ptr<IocpOperation> read_op_;
  std::shared_ptr<IocpOperation> send_op_;
  bool reading_ = false;
  bool closed_ = false;
};

}  // namespace

std::shared_ptr<detail::DatagramTransportBase> detail::make_datagram_transport(EventLoop& loop, Socket sock,
                                                                               std::shared_ptr<BaseProtocol> protocol,
                                                                               std::optional<SocketAddress> remote) {
  auto* proactor = dynamic_cast<ProactorEventLoop*>(&loop);
  if (!proactor) return make_selector_datagram_transport(loop, std::move(sock), std::move(protocol), std::move(remote));
  std::optional<SocketAddress> peername;
  try {
    peername = sock.getpeername();
  } catch (const std::system_error&) {
    // Not connected: sendto needs an address, or `remote`.
  }
  return std::make_shared<ProactorDatagramTransport>(*proactor, std::move(sock), std::move(protocol),
                                                     std::move(peername), std::move(remote));
}

}  // namespace aio
