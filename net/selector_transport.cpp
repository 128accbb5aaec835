// Stream transports of selector loops: bytes move on readiness, through
// add_reader / add_writer and non-blocking send / recv.
#include <backends/syscall.hpp>
#include <core/tasks.hpp>
#include <net/selector_transport.hpp>
#include <net/selector_watch.hpp>
#include <net/socket.hpp>
#include <net/socket_extra_info.hpp>
#include <net/stream_transport.hpp>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif

#include <stdexcept>

namespace aio {

namespace {

class SelectorSocketTransport final : public detail::StreamTransport {
 public:
  SelectorSocketTransport(EventLoop& loop, Socket sock, std::shared_ptr<BaseProtocol> protocol)
      : StreamTransport(loop, std::move(protocol)),
        sock_(std::move(sock)),
        info_(sock_),
        watch_(loop, sock_.fileno()) {}

  std::any get_extra_info(std::string_view name) const override { return info_.get(name, sock_); }
  fd_t sendfile_socket() const noexcept override { return sock_.fileno(); }

 private:
  void engine_start_reading() override {
    watch_.start_reading([this, self = shared_from_this()] {
      on_readable([this](std::span<char> buffer) { return sock_.try_recv(buffer.data(), buffer.size()); });
    });
  }
  void engine_stop_reading() override { watch_.stop_reading(); }
  Sent engine_send(std::string_view data) override {
    std::size_t n = sock_.try_send(data.data(), data.size()).value_or(0);
    return {n, n};
  }
  void engine_start_writing() override {
    watch_.start_writing([this, self = shared_from_this()] { on_writable(); });
  }
  void engine_stop_writing() override { watch_.stop_writing(); }
  void engine_shutdown_write() override { shutdown_socket_write(sock_); }
  void engine_close() noexcept override {
    watch_.stop();
    sock_.close();
  }

  Socket sock_;
  detail::StreamSocketInfo info_;
  detail::SelectorWatch watch_;
};

}  // namespace

std::shared_ptr<detail::StreamTransport> detail::make_selector_transport(EventLoop& loop, Socket sock,
                                                                         std::shared_ptr<BaseProtocol> protocol) {
  return std::make_shared<SelectorSocketTransport>(loop, std::move(sock), std::move(protocol));
}

}  // namespace aio
