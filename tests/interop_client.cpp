// Interop: aiocpp as the client of a peer nobody here wrote (Python's
// asyncio echo server, driven by tests/interop_client.py).
//
//   interop-client PORT MODE BYTES [--cafile FILE [--server-hostname NAME]]
//   MODE: streams | protocol
//
// Connects to 127.0.0.1:PORT on the backend AIO_BACKEND names, sends BYTES
// bytes of a pattern with flow control while reading the echo, half-closes,
// and checks that every byte came back once, in order, before the server's
// end of file. With --cafile the connection is TLS, verified against FILE
// and NAME (default "localhost"); TLS has no half-close, so the client
// closes once every byte is back. Exit status 0 on success; 1 with a
// message otherwise.
#include <core/aio.hpp>
#include <net/ssl.hpp>
#include <net/streams.hpp>
#include <net/transports.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>

namespace {

// Byte i of the stream: not periodic at any power of two, so a chunk lost,
// repeated or reordered shows.
char pattern(std::size_t i) { return static_cast<char>((i * 7 + i / 4093) & 0xff); }

std::string chunk_at(std::size_t offset, std::size_t size) {
  std::string chunk(size, '\0');
  for (std::size_t i = 0; i < size; ++i) chunk[i] = pattern(offset + i);
  return chunk;
}

constexpr std::size_t chunk_size = 256 * 1024;

// TLS settings (--cafile): none when `context` is null.
struct Tls {
  std::shared_ptr<aio::SSLContext> context;
  std::string hostname = "localhost";
  aio::ConnectOptions options() const {
    aio::ConnectOptions options;
    options.ssl = context.get();
    if (context) options.server_hostname = hostname;
    return options;
  }
};
Tls tls;

// Checks what comes back against the pattern as it arrives.
struct Checker {
  std::size_t received = 0;
  std::string error;
  void feed(std::string_view data) {
    for (std::size_t i = 0; i < data.size() && error.empty(); ++i)
      if (data[i] != pattern(received + i))
        error = "byte " + std::to_string(received + i) + " differs from what was sent";
    received += data.size();
  }
};

aio::Task<void> run_streams(int port, std::size_t total, Checker& checker) {
  aio::ConnectOptions options = tls.options();
  auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port, options);
  auto send = [](aio::StreamWriter writer, std::size_t total) -> aio::Task<void> {
    for (std::size_t sent = 0; sent < total;) {
      std::size_t n = std::min(chunk_size, total - sent);
      writer.write(chunk_at(sent, n));
      sent += n;
      co_await writer.drain();
    }
    if (!tls.context) writer.write_eof();
  };
  auto sending = aio::get_running_loop().create_task(send(writer, total));
  // TLS: until every byte is back, then close; else until the server's end of file.
  while (!tls.context || checker.received < total) {
    std::string data = co_await reader.read(chunk_size);
    if (data.empty()) break;
    checker.feed(data);
  }
  co_await sending;
  writer.close();
  co_await writer.wait_closed();
}

// The protocol flavour: writes whenever the transport wants more.
struct Pump : aio::Protocol {
  std::size_t total = 0, sent = 0;
  aio::Transport* transport = nullptr;
  bool paused = false, eof_sent = false;
  Checker* checker = nullptr;
  aio::Future<void> done;

  void connection_made(aio::Transport& t) override {
    transport = &t;
    fill();
  }
  void fill() {
    while (!paused && sent < total) {
      std::size_t n = std::min(chunk_size, total - sent);
      transport->write(chunk_at(sent, n));
      sent += n;
    }
    if (sent == total && !paused && !eof_sent && !tls.context) {
      eof_sent = true;
      transport->write_eof();  // once everything is written, however the last write ended
    }
  }
  void pause_writing() override { paused = true; }
  void resume_writing() override {
    paused = false;
    fill();
  }
  void data_received(std::string_view data) override {
    checker->feed(data);
    if (tls.context && checker->received >= total) transport->close();  // TLS: no half-close
  }
  void connection_lost(std::exception_ptr error) override {
    if (done.done()) return;
    if (error)
      done.set_exception(error);
    else
      done.set_result();
  }
};

aio::Task<void> run_protocol(int port, std::size_t total, Checker& checker) {
  auto& loop = aio::get_running_loop();
  auto pump = std::make_shared<Pump>();
  pump->total = total;
  pump->checker = &checker;
  pump->done = loop.create_future<void>();
  aio::ProtocolFactory factory = [pump] { return pump; };
  aio::ConnectOptions options = tls.options();
  auto connected = co_await loop.create_connection(factory, "127.0.0.1", port, options);
  co_await pump->done;
  if (pump->sent != total) throw std::runtime_error("connection lost after " + std::to_string(pump->sent) + " bytes");
}

}  // namespace

int main(int argc, char** argv) {
  auto usage = [&] {
    std::fprintf(stderr, "usage: %s PORT streams|protocol BYTES [--cafile FILE [--server-hostname NAME]]\n", argv[0]);
    return 2;
  };
  if (argc < 4) return usage();
  for (int i = 4; i < argc; i += 2) {
    std::string option = argv[i];
    if (i + 1 >= argc) return usage();
    try {
      if (option == "--cafile")
        tls.context = aio::create_default_context(aio::Purpose::server_auth, argv[i + 1]);
      else if (option == "--server-hostname")
        tls.hostname = argv[i + 1];
      else
        return usage();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "interop-client: %s\n", e.what());
      return 2;
    }
  }
  int port = std::atoi(argv[1]);
  std::string mode = argv[2];
  std::size_t total = std::strtoull(argv[3], nullptr, 10);
  if (mode != "streams" && mode != "protocol") {
    std::fprintf(stderr, "unknown mode '%s': streams or protocol\n", mode.c_str());
    return 2;
  }
  Checker checker;
  try {
    aio::run(mode == "streams" ? run_streams(port, total, checker) : run_protocol(port, total, checker));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "interop-client: %s\n", e.what());
    return 1;
  }
  if (!checker.error.empty() || checker.received != total) {
    std::fprintf(stderr, "interop-client: sent %zu bytes, got %zu back%s%s\n", total, checker.received,
                 checker.error.empty() ? "" : ": ", checker.error.c_str());
    return 1;
  }
  return 0;
}
