// aio-echo: an echo server on a chosen backend, the peer of tools/bench/echo.
//
// Echoes every byte once on the connection it came from; closes a connection
// once the client has half-closed and everything is echoed; survives clients
// that vanish mid-message. Single-threaded. Backpressure: while a client
// does not read its echo, the server stops reading from it. --mode datagram
// is a UDP echo server instead: each datagram goes back to its sender.
// --tls (with --cert and --key) serves TLS in every stream mode; TLS has no
// half-close, so there a connection ends when the client closes (close_notify).
#include <core/address.hpp>
#include <core/aio.hpp>
#include <net/protocols.hpp>
#include <net/server.hpp>
#include <net/ssl.hpp>
#include <net/streams.hpp>
#include <net/transports.hpp>

#include <CLI/CLI.hpp>

#include <any>
#include <exception>
#if __has_include(<malloc.h>)
#include <malloc.h>
#endif
#include <iostream>
#include <memory>
#include <string>
#include <system_error>

namespace {

// Reads into the transport's buffer and writes from it.
class EchoProtocol final : public aio::Protocol {
 public:
  void connection_made(aio::Transport& transport) override { transport_ = &transport; }
  void data_received(std::string_view data) override { transport_->write(data); }
  bool eof_received() override { return false; }  // close once the echo is flushed
  void pause_writing() override { transport_->pause_reading(); }
  void resume_writing() override { transport_->resume_reading(); }

 private:
  aio::Transport* transport_ = nullptr;
};

// Reads into its own buffer (no copy before the write). The buffer is
// allocated at the first read and left uninitialised: an idle connection
// costs no 256 KiB of zeroed memory.
class BufferedEchoProtocol final : public aio::BufferedProtocol {
 public:
  void connection_made(aio::Transport& transport) override { transport_ = &transport; }
  std::span<char> get_buffer(std::size_t) override {
    if (!buffer_) buffer_ = std::make_unique_for_overwrite<char[]>(buffer_size);
    return {buffer_.get(), buffer_size};
  }
  void buffer_updated(std::size_t nbytes) override { transport_->write(std::string_view(buffer_.get(), nbytes)); }
  bool eof_received() override { return false; }
  void pause_writing() override { transport_->pause_reading(); }
  void resume_writing() override { transport_->resume_reading(); }

 private:
  static constexpr std::size_t buffer_size = 256 * 1024;
  aio::Transport* transport_ = nullptr;
  std::unique_ptr<char[]> buffer_;
};

// UDP: each datagram back to where it came from. A datagram protocol has no
// reading to pause: while the socket cannot take more (the queue is over its
// high mark), datagrams are dropped, as a congested network would.
class DatagramEchoProtocol final : public aio::DatagramProtocol {
 public:
  explicit DatagramEchoProtocol(aio::Future<void> lost) : lost_(std::move(lost)) {}
  void connection_made(aio::DatagramTransport& transport) override { transport_ = &transport; }
  void datagram_received(std::string_view data, const aio::SocketAddress& addr) override {
    if (!paused_) transport_->sendto(data, addr);
  }
  void pause_writing() override { paused_ = true; }
  void resume_writing() override { paused_ = false; }
  void connection_lost(std::exception_ptr error) override {
    if (error)
      lost_.set_exception(error);
    else
      lost_.set_result();
  }

 private:
  aio::DatagramTransport* transport_ = nullptr;
  aio::Future<void> lost_;
  bool paused_ = false;
};

// Serves until the endpoint is lost.
aio::Task<void> serve_datagrams(std::string host, int port) {
  auto& loop = aio::get_running_loop();
  aio::Future<void> lost = loop.create_future<void>();
  aio::ProtocolFactory factory = [lost] { return std::make_shared<DatagramEchoProtocol>(lost); };
  auto [transport, protocol] =
      co_await loop.create_datagram_endpoint(factory, {.local_addr = aio::HostPort{host, port}});
  std::cerr << "aio-echo: datagram on "
            << std::any_cast<aio::SocketAddress>(transport->get_extra_info("sockname")).to_string() << " ("
            << loop.backend() << ")\n";
  co_await lost;
}

// The streams flavour: read what is there, write it back, drain. A client
// that resets or vanishes is an ordinary end of the connection, not an error
// for the loop's exception handler.
aio::Task<void> echo_stream(aio::StreamReader reader, aio::StreamWriter writer) {
  try {
    for (;;) {
      std::string data = co_await reader.read(256 * 1024);
      if (data.empty()) break;  // the client half-closed: everything was echoed
      writer.write(data);
      co_await writer.drain();
    }
  } catch (const std::system_error&) {
    // ECONNRESET, EPIPE, ETIMEDOUT ...: the transport is already closing.
  }
  writer.close();
}

aio::Task<void> serve(std::string host, int port, std::string mode, int backlog, std::shared_ptr<aio::SSLContext> tls) {
  if (mode == "datagram") co_return co_await serve_datagrams(host, port);
  auto& loop = aio::get_running_loop();
  std::shared_ptr<aio::Server> server;
  aio::ServerOptions options;
  options.backlog = backlog;
  options.ssl = tls.get();
  if (mode == "streams") {
    server = co_await aio::start_server(echo_stream, host, port, options);
  } else {
    aio::ProtocolFactory factory;
    if (mode == "buffered")
      factory = [] { return std::make_shared<BufferedEchoProtocol>(); };
    else
      factory = [] { return std::make_shared<EchoProtocol>(); };
    server = co_await loop.create_server(factory, host, port, options);
  }
  std::cerr << "aio-echo: " << mode << (tls ? " (TLS)" : "") << " on "
            << server->sockets().front().getsockname().to_string() << " (" << loop.backend() << ")\n";
  co_await server->serve_forever();
}

}  // namespace

int main(int argc, char** argv) {
#if defined(M_TRIM_THRESHOLD) && defined(M_MMAP_THRESHOLD)
  // glibc hands freed memory above 128 KiB back to the kernel and maps it
  // anew on the next large message: every 100 KiB echo then pays for fresh
  // pages. A server that reuses such buffers keeps them instead.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
  CLI::App app{"aio-echo: an aiocpp echo server"};
  std::string backend, host = "127.0.0.1", mode = "protocol";
  int port = 8888;
  int backlog = 100;
  app.add_option("--backend", backend, "Event loop backend (default: AIO_BACKEND, else the platform default)");
  app.add_option("--mode", mode,
                 "protocol (data_received), buffered (BufferedProtocol), streams (StreamReader/Writer) or datagram "
                 "(UDP, DatagramProtocol)")
      ->check(CLI::IsMember({"protocol", "buffered", "streams", "datagram"}));
  app.add_option("--host", host, "Address to listen on");
  app.add_option("--port", port, "Port to listen on (0: any free port)")->check(CLI::Range(0, 65535));
  app.add_option("port_arg", port, "The port, as a positional argument (as a benchmark driver may pass it)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--backlog", backlog,
                 "listen() backlog (asyncio's default 100; raise it for bursts of thousands of connects, as the "
                 "kernel caps it at net.core.somaxconn)")
      ->check(CLI::Range(1, 1 << 20));
  bool tls = false;
  std::string cert, key, tls_max;
  app.add_flag("--tls", tls, "Serve TLS (needs --cert)");
  app.add_option("--cert", cert, "Certificate chain (PEM) for --tls");
  app.add_option("--key", key, "Private key (PEM) for --tls (default: in --cert)");
  app.add_option("--tls-max", tls_max, "Highest TLS version for --tls (TLSv1.2, TLSv1.3)");
  CLI11_PARSE(app, argc, argv);
  std::shared_ptr<aio::SSLContext> context;
  try {
    if (tls) {
      if (mode == "datagram") throw std::invalid_argument("--tls serves stream modes only, not datagram");
      if (cert.empty()) throw std::invalid_argument("--tls needs --cert FILE (and --key FILE unless the key is in it)");
      context = aio::create_default_context(aio::Purpose::client_auth);
      context->load_cert_chain(cert, key);
      if (!tls_max.empty()) context->set_maximum_version(aio::parse_tls_version(tls_max));
    } else if (!cert.empty() || !key.empty() || !tls_max.empty()) {
      throw std::invalid_argument("--cert, --key and --tls-max go with --tls");
    }
  } catch (const std::exception& e) {
    std::cerr << "aio-echo: " << e.what() << '\n';
    return 2;
  }
  try {
    aio::run(serve(host, port, mode, backlog, context), {.backend = backend});
  } catch (const std::exception& e) {
    std::cerr << "aio-echo: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
