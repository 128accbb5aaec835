// Datagram transports of selector loops: datagrams move on readiness,
// through add_reader / add_writer and non-blocking sendto / recvfrom.
#include <net/selector_datagram_transport.hpp>
#include <net/selector_watch.hpp>
#include <net/socket_extra_info.hpp>

#include <any>
#include <system_error>
#include <vector>

namespace aio {

namespace {

// One buffer per thread, as large as any UDP datagram (and a default Linux
// Unix datagram): datagram_received sees it only during the call.
constexpr std::size_t read_size = 256 * 1024;
// Datagrams read per readiness: a burst costs one wakeup, and a busy socket
// still cannot keep the loop from its other callbacks for long.
constexpr int datagrams_per_wakeup = 16;

class SelectorDatagramTransport final : public detail::DatagramTransportBase {
 public:
  SelectorDatagramTransport(EventLoop& loop, Socket sock, std::shared_ptr<BaseProtocol> protocol,
                            std::optional<SocketAddress> peername, std::optional<SocketAddress> remote)
      : DatagramTransportBase(loop, std::move(protocol), peername ? peername : remote, peername.has_value()),
        sock_(std::move(sock)),
        watch_(loop, sock_.fileno()),
        peername_(std::move(peername)) {}

  std::any get_extra_info(std::string_view name) const override {
    return detail::datagram_extra_info(name, sock_, peername_);
  }

 private:
  void engine_start_reading() override {
    watch_.start_reading([this, self = shared_from_this()] { on_readable(); });
  }
  void engine_stop_reading() override { watch_.stop_reading(); }
  bool engine_sendto(std::string_view data, const SocketAddress* to) override {
    auto sent = to ? sock_.try_sendto(data.data(), data.size(), *to) : sock_.try_send(data.data(), data.size());
    return sent.has_value();
  }
  void engine_start_writing() override {
    watch_.start_writing([this, self = shared_from_this()] { on_writable(); });
  }
  void engine_stop_writing() override { watch_.stop_writing(); }
  void engine_close() noexcept override {
    watch_.stop();
    sock_.close();
  }

  void on_readable() {
    thread_local std::vector<char> buffer(read_size);
    for (int i = 0; i < datagrams_per_wakeup; ++i) {
      std::optional<std::pair<std::size_t, SocketAddress>> got;
      try {
        got = sock_.try_recvfrom(buffer.data(), buffer.size());
      } catch (const std::system_error&) {
        // ECONNREFUSED after an ICMP port unreachable (Windows: WSAECONNRESET), ...
        receive_failed(std::current_exception());
        return;
      }
      if (!got || !datagram_arrived(std::string_view(buffer.data(), got->first), got->second)) return;
    }
  }

  Socket sock_;
  detail::SelectorWatch watch_;
  std::optional<SocketAddress> peername_;
};

}  // namespace

std::shared_ptr<detail::DatagramTransportBase> detail::make_selector_datagram_transport(
    EventLoop& loop, Socket sock, std::shared_ptr<BaseProtocol> protocol, std::optional<SocketAddress> remote) {
  std::optional<SocketAddress> peername;
  try {
    peername = sock.getpeername();
  } catch (const std::system_error&) {
    // Not connected: sendto needs an address, or `remote`.
  }
  return std::make_shared<SelectorDatagramTransport>(loop, std::move(sock), std::move(protocol), std::move(peername),
                                                     std::move(remote));
}

}  // namespace aio
