// Datagram transports of the proactor loop, over the Proactor's operations
// for every Proactor: one recvfrom always in flight while reading, into a
// buffer the operation owns; datagrams go out with a non-blocking sendto,
// and only when that would block as a sendto operation (one in flight; the
// rest wait in the base's queue, in order). Queueing, flow control and the
// close states are detail::DatagramTransportBase's.
#include <backends/syscall.hpp>
#include <net/proactor_datagram_transport.hpp>
#include <net/socket_extra_info.hpp>

#include <any>
#include <system_error>

namespace aio::detail {
namespace {

// As large as any UDP datagram over IPv4 or IPv6 (without jumbograms).
constexpr std::size_t read_size = 65536;

class ProactorDatagramTransport final : public DatagramTransportBase {
 public:
  ProactorDatagramTransport(ProactorEventLoop& loop, Socket sock, std::shared_ptr<BaseProtocol> protocol,
                            std::optional<SocketAddress> peername, std::optional<SocketAddress> remote)
      : DatagramTransportBase(loop, std::move(protocol), peername ? peername : remote, peername.has_value()),
        proactor_(loop.proactor()),
        sock_(std::move(sock)),
        peername_(std::move(peername)),
        read_op_(proactor_.make_operation()),
        send_op_(proactor_.make_operation()) {
    // Each start gives the operation a reference to this transport.
    read_op_->on_complete = [this](ProactorOperation& op) { read_done(op); };
    send_op_->on_complete = [this](ProactorOperation& op) { send_done(op); };
  }

  std::any get_extra_info(std::string_view name) const override { return datagram_extra_info(name, sock_, peername_); }

 private:
  void engine_start_reading() override {
    reading_ = true;
    if (!read_op_->in_flight()) post_read();
  }
  void engine_stop_reading() override { reading_ = false; }
  bool engine_sendto(std::string_view data, const SocketAddress* to) override {
    if (send_op_->in_flight()) return false;  // keep the order: wait behind the one in flight
    auto sent = to ? sock_.try_sendto(data.data(), data.size(), *to) : sock_.try_send(data.data(), data.size());
    if (sent) return true;
    send_op_->buffer.assign(data);
    send_op_->keep_alive = shared_from_this();
    try {
      proactor_.sendto(*send_op_, sock_.fileno(), to);
    } catch (...) {
      send_op_->keep_alive.reset();
      throw;
    }
    return true;
  }
  // The in-flight send's completion calls on_writable() itself.
  void engine_start_writing() override {}
  void engine_stop_writing() override {}
  // The send in flight was reported sent (the queue no longer holds it), so
  // it is not cancelled: the socket closes once it completes. Only the
  // receive is cancelled.
  void engine_close() noexcept override {
    closed_ = true;
    proactor_.cancel(*read_op_);
    if (!send_op_->in_flight()) sock_.close();
  }

  // Not posted again from its own failure to start: a socket that fails
  // every receive at once would otherwise spin here.
  void post_read() {
    read_op_->buffer.resize(read_size);
    read_op_->keep_alive = shared_from_this();
    try {
      proactor_.recvfrom(*read_op_, sock_.fileno());
    } catch (const std::system_error&) {
      read_op_->keep_alive.reset();
      receive_failed(std::current_exception());
    }
  }

  void read_done(ProactorOperation& op) {
    if (closed_) return;
    bool go_on = true;
    if (op.error != 0) {
      // An ICMP port unreachable (ECONNREFUSED; WSAECONNRESET on Windows)
      // leaves the socket usable: receiving goes on, as asyncio's.
      receive_failed(os_error(op.error, "recvfrom (socket " + std::to_string(sock_.fileno()) + ")"));
    } else {
      go_on = datagram_arrived(std::string_view(op.buffer.data(), op.bytes), op.address);
    }
    if (go_on && !closed_ && reading_ && !read_op_->in_flight()) post_read();
  }

  void send_done(ProactorOperation& op) {
    if (closed_) {
      sock_.close();  // held open for this send by engine_close()
      return;
    }
    // As a failed sendto: to error_received.
    if (op.error != 0) receive_failed(os_error(op.error, "sendto (socket " + std::to_string(sock_.fileno()) + ")"));
    on_writable();
  }

  Proactor& proactor_;
  Socket sock_;
  std::optional<SocketAddress> peername_;
  std::shared_ptr<ProactorOperation> read_op_;
  std::shared_ptr<ProactorOperation> send_op_;
  bool reading_ = false;
  bool closed_ = false;
};

}  // namespace

std::shared_ptr<DatagramTransportBase> make_proactor_datagram_transport(ProactorEventLoop& loop, Socket sock,
                                                                        std::shared_ptr<BaseProtocol> protocol,
                                                                        std::optional<SocketAddress> remote) {
  std::optional<SocketAddress> peername;
  try {
    peername = sock.getpeername();
  } catch (const std::system_error&) {
    // Not connected: sendto needs an address, or `remote`.
  }
  return std::make_shared<ProactorDatagramTransport>(loop, std::move(sock), std::move(protocol), std::move(peername),
                                                     std::move(remote));
}

}  // namespace aio::detail
