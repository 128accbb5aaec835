// asio_echo PORT: an echo server on standalone asio, in asio's own idiom
// (async_read_some into a per-connection 64 KiB buffer, async_write of what
// came in, then the next read), on one io_context run by one thread.
#include <asio.hpp>

#include <array>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>

namespace {

using asio::ip::tcp;

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket socket) : socket_(std::move(socket)) {}

  void start() {
    socket_.set_option(tcp::no_delay(true));
    read();
  }

 private:
  void read() {
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(buf_), [self](const asio::error_code& ec, std::size_t n) {
      if (!ec) self->write(n);
    });
  }

  void write(std::size_t n) {
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(buf_.data(), n), [self](const asio::error_code& ec, std::size_t) {
      if (!ec) self->read();
    });
  }

  tcp::socket socket_;
  std::array<char, 64 * 1024> buf_;
};

void accept(tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](const asio::error_code& ec, tcp::socket socket) {
    if (!ec) std::make_shared<Session>(std::move(socket))->start();
    accept(acceptor);
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: asio_echo PORT\n";
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);
  // One thread: tell asio so that it leaves out its locking.
  asio::io_context io(1);
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                           static_cast<unsigned short>(std::atoi(argv[1]))));
  accept(acceptor);
  io.run();
}
