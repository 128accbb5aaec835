// aio-echo: an echo server on a chosen backend, for ../shared/bench/run.sh.
//
// Echoes every byte once on the connection it came from; closes a connection
// once the client has half-closed and everything is echoed; survives clients
// that vanish mid-message. Single-threaded. Backpressure: while a client
// does not read its echo, the server stops reading from it.
#include <core/aio.hpp>
#include <net/server.hpp>
#include <net/streams.hpp>
#include <net/transports.hpp>

#include <CLI/CLI.hpp>

#include <exception>
#if __has_include(<malloc.h>)
#include <malloc.h>
#endif
#include <iostream>
#include <memory>
#include <string>
#include <vector>

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

// Reads into its own buffer (no copy before the write).
class BufferedEchoProtocol final : public aio::BufferedProtocol {
 public:
  void connection_made(aio::Transport& transport) override { transport_ = &transport; }
  std::span<char> get_buffer(std::size_t) override { return buffer_; }
  void buffer_updated(std::size_t nbytes) override { transport_->write(std::string_view(buffer_.data(), nbytes)); }
  bool eof_received() override { return false; }
  void pause_writing() override { transport_->pause_reading(); }
  void resume_writing() override { transport_->resume_reading(); }

 private:
  aio::Transport* transport_ = nullptr;
  std::vector<char> buffer_ = std::vector<char>(256 * 1024);
};

// The streams flavour: read what is there, write it back, drain.
aio::Task<void> echo_stream(aio::StreamReader reader, aio::StreamWriter writer) {
  for (;;) {
    std::string data = co_await reader.read(256 * 1024);
    if (data.empty()) break;  // the client half-closed: everything was echoed
    writer.write(data);
    co_await writer.drain();
  }
  writer.close();
}

aio::Task<void> serve(std::string host, int port, std::string mode) {
  auto& loop = aio::get_running_loop();
  std::shared_ptr<aio::Server> server;
  if (mode == "streams") {
    server = co_await aio::start_server(echo_stream, host, port);
  } else {
    aio::ProtocolFactory factory;
    if (mode == "buffered")
      factory = [] { return std::make_shared<BufferedEchoProtocol>(); };
    else
      factory = [] { return std::make_shared<EchoProtocol>(); };
    server = co_await loop.create_server(factory, host, port);
  }
  std::cerr << "aio-echo: " << mode << " on " << server->sockets().front().getsockname().to_string() << " ("
            << loop.backend() << ")\n";
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
  app.add_option("--backend", backend, "Event loop backend (default: AIO_BACKEND, else the platform default)");
  app.add_option("--mode", mode,
                 "protocol (data_received), buffered (BufferedProtocol) or streams (StreamReader/Writer)")
      ->check(CLI::IsMember({"protocol", "buffered", "streams"}));
  app.add_option("--host", host, "Address to listen on");
  app.add_option("--port", port, "Port to listen on (0: any free port)")->check(CLI::Range(0, 65535));
  app.add_option("port_arg", port, "The port, as a positional argument (as run.sh passes it)")
      ->check(CLI::Range(0, 65535));
  CLI11_PARSE(app, argc, argv);
  try {
    aio::run(serve(host, port, mode), {.backend = backend});
  } catch (const std::exception& e) {
    std::cerr << "aio-echo: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
