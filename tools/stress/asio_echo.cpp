// A minimal standalone-asio echo server, the peer of stress.py's
// idle-connection figure (RSS per connection beside aio-echo's). Each
// connection reads into its own 64 KiB buffer, allocated when it connects
// (as asio's examples do), and writes the echo back before reading again.
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
  void start() { read(); }

 private:
  void read() {
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(*buffer_), [self](std::error_code ec, std::size_t n) {
      if (!ec) self->write(n);
    });
  }
  void write(std::size_t n) {
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(*buffer_, n), [self](std::error_code ec, std::size_t) {
      if (!ec) self->read();
    });
  }
  asio::ip::tcp::socket socket_;
  std::unique_ptr<std::array<char, 64 * 1024>> buffer_ = std::make_unique<std::array<char, 64 * 1024>>();
};

void accept(asio::ip::tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](std::error_code ec, asio::ip::tcp::socket socket) {
    if (!ec) std::make_shared<Session>(std::move(socket))->start();
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
