// A minimal standalone-asio echo server, the peer of stress.py's
// idle-connection figure (RSS per connection beside aio-echo's). As libuv's
// alloc callback does, a connection holds no buffer while idle: it waits for
// readability, then reads into a 64 KiB buffer that lives until the echo is
// written.
//
//   stress-asio-echo [PORT]   (0: any free port; prints "... on 127.0.0.1:PORT (asio)")
#include <asio.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}
  void start() { wait(); }

 private:
  void wait() {
    auto self = shared_from_this();
    socket_.async_wait(asio::ip::tcp::socket::wait_read, [self](std::error_code ec) {
      if (!ec) self->read();
    });
  }
  void read() {
    buffer_ = std::make_unique<std::array<char, 64 * 1024>>();
    std::error_code ec;
    std::size_t n = socket_.read_some(asio::buffer(*buffer_), ec);
    if (ec == asio::error::would_block) {
      buffer_.reset();
      wait();
    } else if (!ec) {
      auto self = shared_from_this();
      asio::async_write(socket_, asio::buffer(*buffer_, n), [self](std::error_code ec, std::size_t) {
        self->buffer_.reset();
        if (!ec) self->wait();
      });
    }
  }
  asio::ip::tcp::socket socket_;
  std::unique_ptr<std::array<char, 64 * 1024>> buffer_;
};

void accept(asio::ip::tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](std::error_code ec, asio::ip::tcp::socket socket) {
    if (!ec) {
      socket.non_blocking(true);
      std::make_shared<Session>(std::move(socket))->start();
    }
    accept(acceptor);
  });
}

}  // namespace

int main(int argc, char** argv) {
  auto port = static_cast<unsigned short>(argc > 1 ? std::atoi(argv[1]) : 0);
  asio::io_context io(1);
  asio::ip::tcp::acceptor acceptor(io);
  asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(4096);
  std::fprintf(stderr, "stress-asio-echo: on 127.0.0.1:%u (asio %d)\n", acceptor.local_endpoint().port(), ASIO_VERSION);
  accept(acceptor);
  io.run();
}
