// libFuzzer target: the TLS layer (net/ssl_protocol.cpp) as a client, fed
// whatever a server might send. The first byte sets the size of the pieces
// the rest arrives in, so that record and handshake boundaries fall
// anywhere. Whatever the bytes, the layer fails the connection or waits for
// more; it never crashes, never hands the application bytes before a
// handshake, and ends with one connection_lost.
#include <core/events.hpp>
#include <net/protocols.hpp>
#include <net/ssl.hpp>
#include <net/ssl_protocol.hpp>
#include <net/transports.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void fail(const char* what) {
  (void)what;
  __builtin_trap();
}

// Where the layer's output goes: nowhere, but it is counted.
struct NullTransport final : aio::Transport {
  std::size_t written = 0;
  bool closed = false;
  void close() override { closed = true; }
  bool is_closing() const noexcept override { return closed; }
  std::any get_extra_info(std::string_view) const override { return {}; }
  void set_protocol(std::shared_ptr<aio::BaseProtocol>) override {}
  std::shared_ptr<aio::BaseProtocol> get_protocol() const override { return nullptr; }
  void pause_reading() override {}
  void resume_reading() override {}
  bool is_reading() const noexcept override { return true; }
  void write(std::string_view data) override { written += data.size(); }
  void writelines(std::span<const std::string_view> lines) override {
    for (auto line : lines) written += line.size();
  }
  void write_eof() override {}
  bool can_write_eof() const noexcept override { return false; }
  void abort() override { closed = true; }
  std::size_t get_write_buffer_size() const noexcept override { return 0; }
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override { return {0, 0}; }
  void set_write_buffer_limits(std::optional<long long>, std::optional<long long>) override {}
};

struct App final : aio::Protocol {
  bool made = false;
  int lost = 0;
  void connection_made(aio::Transport&) override { made = true; }
  void data_received(std::string_view) override {
    if (!made) fail("data before the handshake");
  }
  void connection_lost(std::exception_ptr) override { ++lost; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::unique_ptr<aio::EventLoop> loop = aio::new_event_loop();
  static std::shared_ptr<aio::SSLContext> context = [] {
    auto c = aio::SSLContext::create(false);
    c->set_check_hostname(false);
    c->set_verify_mode(aio::VerifyMode::cert_none);
    return c;
  }();
  if (size == 0) return 0;
  std::size_t piece = std::max<std::size_t>(1, data[0]);
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  auto app = std::make_shared<App>();
  aio::detail::SSLSettings settings{context, false, "localhost"};
  auto layer = std::make_shared<aio::detail::SSLProtocol>(*loop, app, settings);
  auto transport = std::make_shared<NullTransport>();
  layer->attach(transport);
  if (transport->written == 0) fail("no ClientHello");
  for (std::size_t at = 0; at < input.size() && !transport->closed; at += piece)
    layer->data_received(input.substr(at, piece));
  if (!transport->closed) layer->eof_received();
  layer->connection_lost(nullptr);
  if (app->lost > 1) fail("connection_lost twice");
  // What the layer scheduled (a transport close) runs, and goes.
  loop->call_soon([] { aio::get_running_loop().stop(); });
  loop->run_forever();
  return 0;
}
