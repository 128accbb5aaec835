// TLS (CONTRACTS-wave2 50-64), on every backend: contexts and their errors,
// the ssl arguments of create_connection / create_server / start_tls, the
// layer's close, EOF and flow control, and the same session over an
// in-memory transport in every chunking. The certificates come from
// tests/make_certs.py, which the build runs (AIO_TEST_CERT_DIR).
#include <core/errors.hpp>
#include <net/protocols.hpp>
#include <net/socket.hpp>
#include <net/ssl.hpp>
#include <net/ssl_bio.hpp>
#include <net/ssl_protocol.hpp>
#include <net/streams.hpp>
#include <net/transports.hpp>
#include <process/process.hpp>

#include <openssl/bio.h>

#include "support.hpp"

#ifndef _WIN32
#include <unistd.h>
#endif

#include <any>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

using test::make_loop;
using test::pattern;
using test::spin;

namespace {

std::string cert(std::string_view name) { return std::string(AIO_TEST_CERT_DIR) + "/" + std::string(name); }

std::shared_ptr<aio::SSLContext> server_context(std::string_view stem = "srv") {
  auto context = aio::create_default_context(aio::Purpose::client_auth);
  context->load_cert_chain(cert(std::string(stem) + ".pem"), cert(std::string(stem) + ".key"));
  return context;
}

std::shared_ptr<aio::SSLContext> client_context() {
  return aio::create_default_context(aio::Purpose::server_auth, cert("ca.pem"));
}

// Records what the TLS transport does to the application's protocol.
struct Recorder : aio::Protocol {
  std::vector<std::string> events;  // "made", "eof", "lost"; data is counted, not listed
  std::string data;
  int paused = 0, resumed = 0;
  std::exception_ptr error;
  aio::Transport* transport = nullptr;
  std::any cipher, peercert, ssl_object, compression, sslcontext;
  std::function<void(aio::Transport&)> on_made;
  std::function<void(std::string_view)> on_data;

  void connection_made(aio::Transport& t) override {
    transport = &t;
    events.push_back("made");
    cipher = t.get_extra_info("cipher");
    peercert = t.get_extra_info("peercert");
    ssl_object = t.get_extra_info("ssl_object");
    compression = t.get_extra_info("compression");
    sslcontext = t.get_extra_info("sslcontext");
    if (on_made) on_made(t);
  }
  void data_received(std::string_view d) override {
    data += d;
    if (on_data) on_data(d);
  }
  bool eof_received() override {
    events.push_back("eof");
    return false;
  }
  void connection_lost(std::exception_ptr e) override {
    events.push_back("lost");
    error = e;
    transport = nullptr;
  }
  void pause_writing() override { ++paused; }
  void resume_writing() override { ++resumed; }
  bool lost() const { return !events.empty() && events.back() == "lost"; }
};

// Echoes what it gets; closes when the peer does.
struct Echo : aio::Protocol {
  aio::Transport* transport = nullptr;
  void connection_made(aio::Transport& t) override { transport = &t; }
  void data_received(std::string_view d) override { transport->write(d); }
};

struct TlsServer {
  std::shared_ptr<aio::Server> server;
  int port = 0;
};

aio::Task<TlsServer> start_echo_server(aio::EventLoop& loop, aio::SSLContext* context,
                                       aio::ProtocolFactory factory = nullptr) {
  if (!factory) factory = [] { return std::make_shared<Echo>(); };
  aio::ServerOptions options;
  options.ssl = context;
  auto server = co_await loop.create_server(std::move(factory), "127.0.0.1", 0, options);
  int port = server->sockets().front().getsockname().port();
  co_return TlsServer{server, port};
}

// A client's options: TLS with `context`, checking the name "localhost".
aio::ConnectOptions tls_options(aio::SSLContext* context) {
  aio::ConnectOptions options;
  options.ssl = context;
  options.server_hostname = "localhost";
  return options;
}

// Connects `rec` to 127.0.0.1:port; returns the transport.
aio::Task<std::shared_ptr<aio::Transport>> connect(aio::EventLoop& loop, int port, aio::ConnectOptions options,
                                                   std::shared_ptr<Recorder> rec) {
  aio::ProtocolFactory factory = [rec] { return rec; };
  auto connected = co_await loop.create_connection(factory, "127.0.0.1", port, options);
  co_return connected.first;
}

// Waits (at most `timeout` seconds) until `rec` lost its connection.
aio::Task<void> until_lost(std::shared_ptr<Recorder> rec, double timeout = 5.0) {
  std::function<bool()> lost = [rec] { return rec->lost(); };
  co_await test::until(lost, timeout);
}

template <class E>
std::exception_ptr caught(const std::function<void()>& f) {
  try {
    f();
  } catch (const E&) {
    return std::current_exception();
  }
  return nullptr;
}

}  // namespace

TEST_CASE("tls: a context's bad input is a clear error naming what was wrong") {
  auto context = aio::SSLContext::create(true);
  // A missing file: the OS's error, naming it.
  try {
    context->load_cert_chain(cert("missing.pem"));
    FAIL("no error");
  } catch (const std::system_error& e) {
    CHECK(std::string(e.what()).find("missing.pem") != std::string::npos);
  }
  // A key that does not belong to the certificate.
  try {
    context->load_cert_chain(cert("srv.pem"), cert("client.key"));
    FAIL("no error");
  } catch (const aio::SSLError& e) {
    CHECK(std::string(e.what()).find("client.key") != std::string::npos);
  }
  // An encrypted key: no password, a wrong one, the right one.
  CHECK_THROWS_AS(context->load_cert_chain(cert("srv.pem"), cert("srv-enc.key")), aio::SSLError);
  CHECK_THROWS_AS(context->load_cert_chain(cert("srv.pem"), cert("srv-enc.key"), "wrong"), aio::SSLError);
  context->load_cert_chain(cert("srv.pem"), cert("srv-enc.key"), "aiocpp-test");

  CHECK_THROWS_AS(aio::parse_tls_version("TLSv9"), std::invalid_argument);
  CHECK(aio::parse_tls_version("TLSv1.3") == aio::TLSVersion::tlsv1_3);
  CHECK_THROWS_AS(context->set_ciphers("NO-SUCH-CIPHER"), aio::SSLError);
  CHECK_THROWS_AS(context->set_alpn_protocols({"h2", ""}), std::invalid_argument);
  CHECK_THROWS_AS(context->load_verify_locations(), std::invalid_argument);
  CHECK_THROWS_AS(context->load_verify_locations(cert("nothing-here.pem")), std::system_error);
  CHECK_THROWS_AS(context->load_verify_locations("", "", "not a certificate"), aio::SSLError);

  auto client = aio::create_default_context();
  CHECK(client->check_hostname());
  CHECK(client->verify_mode() == aio::VerifyMode::cert_required);
  CHECK(client->minimum_version() == aio::TLSVersion::tlsv1_2);
  CHECK_THROWS_AS(client->set_verify_mode(aio::VerifyMode::cert_none), std::invalid_argument);
  client->set_check_hostname(false);
  client->set_verify_mode(aio::VerifyMode::cert_none);
  client->set_check_hostname(true);  // turns cert_none back into cert_required, as Python
  CHECK(client->verify_mode() == aio::VerifyMode::cert_required);
}

TEST_CASE("tls: the ssl arguments are checked as asyncio checks them") {
  auto loop = make_loop();
  auto client = client_context();
  auto server = server_context();
  auto factory = [] { return std::make_shared<Recorder>(); };
  auto expect_invalid = [&](aio::ConnectOptions options) {
    CHECK_THROWS_AS(test::run(*loop, loop->create_connection(factory, "127.0.0.1", 1, options)), std::invalid_argument);
  };
  expect_invalid({.server_hostname = "localhost"});
  expect_invalid({.ssl_handshake_timeout = 1.0});
  expect_invalid({.ssl_shutdown_timeout = 1.0});
  expect_invalid({.ssl = client.get(), .ssl_handshake_timeout = 0.0});
  expect_invalid({.ssl = client.get(), .ssl_shutdown_timeout = -1.0});
  expect_invalid({.ssl = server.get()});                         // a server context on a client
  expect_invalid({.ssl = client.get(), .server_hostname = ""});  // check_hostname with no name
  aio::ServerOptions bad;
  bad.ssl = client.get();  // a client context on a server
  CHECK_THROWS_AS(test::run(*loop, loop->create_server(factory, "127.0.0.1", 0, bad)), std::invalid_argument);
  aio::ServerOptions no_ssl;
  no_ssl.ssl_handshake_timeout = 5.0;
  CHECK_THROWS_AS(test::run(*loop, loop->create_server(factory, "127.0.0.1", 0, no_ssl)), std::invalid_argument);
  loop->close();
}

TEST_CASE("tls: echo over create_connection / create_server, with the extra info (51)") {
  auto loop = make_loop();
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  auto rec = std::make_shared<Recorder>();
  test::run(*loop, [&]() -> aio::Task<void> {
    TlsServer srv = co_await start_echo_server(*loop, server_ctx.get());
    aio::ConnectOptions options = tls_options(client_ctx.get());
    std::shared_ptr<aio::Transport> transport = co_await connect(*loop, srv.port, options, rec);
    CHECK(dynamic_cast<aio::SSLTransport*>(transport.get()) != nullptr);
    CHECK(rec->events == std::vector<std::string>{"made"});
    // Set before connection_made ran.
    auto cipher = std::any_cast<aio::CipherInfo>(rec->cipher);
    CHECK(std::get<1>(cipher) == "TLSv1.3");
    auto peer = std::any_cast<std::optional<aio::PeerCertificate>>(rec->peercert);
    REQUIRE(peer);
    REQUIRE(!peer->subject.empty());
    CHECK(peer->subject.back() == std::pair<std::string, std::string>{"commonName", "localhost"});
    CHECK(std::any_cast<std::optional<std::string>>(rec->compression) == std::nullopt);
    CHECK(std::any_cast<std::shared_ptr<aio::SSLContext>>(rec->sslcontext) == client_ctx);
    auto object = std::any_cast<std::shared_ptr<aio::SSLObject>>(rec->ssl_object);
    CHECK(object->version() == "TLSv1.3");
    CHECK(object->server_hostname() == "localhost");
    // The socket's keys come from the transport underneath.
    CHECK(transport->get_extra_info("peername").has_value());
    CHECK(transport->can_write_eof() == false);
    CHECK_THROWS_AS(transport->write_eof(), aio::NotImplementedError);

    std::string big = pattern(300 * 1024);  // larger than a record, and than one read
    transport->write(big);
    std::function<bool()> echoed = [&] { return rec->data.size() >= big.size(); };
    co_await test::until(echoed);
    CHECK(rec->data == big);
    transport->close();
    CHECK(transport->is_closing());
    co_await until_lost(rec);
    CHECK(rec->error == nullptr);
    // Gone with the connection.
    CHECK(!transport->get_extra_info("peername").has_value());
    srv.server->close();
    co_await srv.server->wait_closed();
  }());
  loop->close();
}

TEST_CASE("tls: names and certificates are verified (64)") {
  auto loop = make_loop();
  auto client_ctx = client_context();
  test::run(
      *loop,
      [&]() -> aio::Task<void> {
        struct Case {
          std::string stem;
          std::optional<std::string> hostname;
          long verify_code;  // 0: succeeds
        };
        const std::vector<Case> cases = {
            {"srv", std::nullopt, 0},        // host 127.0.0.1: the IP SAN, no SNI
            {"srv", "localhost", 0},         // the DNS SAN
            {"wrongname", "localhost", 62},  // X509_V_ERR_HOSTNAME_MISMATCH
            {"expired", "localhost", 10},    // X509_V_ERR_CERT_HAS_EXPIRED
            {"self", "localhost", 18},       // X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
        };
        for (const Case& c : cases) {
          CAPTURE(c.stem);
          auto ctx = server_context(c.stem);
          std::optional<std::string> sni = "unset";
          ctx->set_sni_callback(
              [&sni](aio::SSLObject&, std::optional<std::string> name, aio::SSLContext&) { sni = std::move(name); });
          TlsServer srv = co_await start_echo_server(*loop, ctx.get());
          aio::ConnectOptions options;
          options.ssl = client_ctx.get();
          if (c.hostname) options.server_hostname = *c.hostname;
          auto factory = [] { return std::make_shared<Recorder>(); };
          if (c.verify_code == 0) {
            auto [transport, protocol] = co_await loop->create_connection(factory, "127.0.0.1", srv.port, options);
            // SNI carries a name, never an address (RFC 6066).
            CHECK(sni == (c.hostname ? c.hostname : std::nullopt));
            transport->close();
          } else {
            try {
              co_await loop->create_connection(factory, "127.0.0.1", srv.port, options);
              FAIL("the handshake succeeded");
            } catch (const aio::SSLCertVerificationError& e) {
              CHECK(e.verify_code() == c.verify_code);
              CHECK(std::string(e.what()).find("certificate verify failed") != std::string::npos);
            }
          }
          srv.server->close();
          co_await srv.server->wait_closed();
        }
      }(),
      20.0);
  loop->close();
}

TEST_CASE("tls: a peer that never answers the handshake times out") {
  auto loop = make_loop();
  auto client_ctx = client_context();
  test::run(*loop, [&]() -> aio::Task<void> {
    // A plain server that accepts and says nothing.
    auto silent = co_await loop->create_server([] { return std::make_shared<Recorder>(); }, "127.0.0.1", 0);
    int port = silent->sockets().front().getsockname().port();
    aio::ConnectOptions options = tls_options(client_ctx.get());
    options.ssl_handshake_timeout = 0.2;
    auto start = std::chrono::steady_clock::now();
    try {
      co_await loop->create_connection([] { return std::make_shared<Recorder>(); }, "127.0.0.1", port, options);
      FAIL("connected");
    } catch (const std::system_error& e) {
      CHECK(e.code() == std::errc::connection_aborted);
    }
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(3));
    silent->close();
  }());
  loop->close();
}

TEST_CASE("tls: a plain-text client fails fast and quietly; the server keeps accepting (63)") {
  auto loop = make_loop();
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  test::CaptureErrors errors(*loop);
  int made = 0;
  test::run(*loop, [&]() -> aio::Task<void> {
    aio::ProtocolFactory counting = [&made] {
      auto rec = std::make_shared<Recorder>();
      rec->on_made = [&made](aio::Transport&) { ++made; };
      return rec;
    };
    TlsServer srv = co_await start_echo_server(*loop, server_ctx.get(), counting);
    auto plain = std::make_shared<Recorder>();
    aio::ProtocolFactory factory = [plain] { return plain; };
    auto [transport, protocol] = co_await loop->create_connection(factory, "127.0.0.1", srv.port);
    transport->write("GET / HTTP/1.0\r\n\r\n");
    std::function<bool()> refused = [&] { return plain->lost(); };
    co_await test::until(refused, 2.0);
    CHECK(made == 0);
    // The server still accepts, and serves TLS.
    aio::ConnectOptions options = tls_options(client_ctx.get());
    auto [tls, tls_protocol] =
        co_await loop->create_connection([] { return std::make_shared<Recorder>(); }, "127.0.0.1", srv.port, options);
    std::function<bool()> served = [&] { return made == 1; };
    co_await test::until(served);
    tls->close();
    srv.server->close();
  }());
  CHECK(errors.contexts.empty());
  loop->close();
}

TEST_CASE("tls: close() flushes, then close_notify: the peer reads it all, then eof and a clean loss (55)") {
  auto loop = make_loop();
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  const std::string payload = pattern(4 * 1024 * 1024, 3);
  test::run(
      *loop,
      [&]() -> aio::Task<void> {
        // The server writes 4 MiB at once and closes at once.
        aio::ProtocolFactory writer = [&payload] {
          auto rec = std::make_shared<Recorder>();
          rec->on_made = [&payload](aio::Transport& t) {
            t.write(payload);
            t.close();
            t.write("dropped");  // after close(): dropped
          };
          return rec;
        };
        TlsServer srv = co_await start_echo_server(*loop, server_ctx.get(), writer);
        aio::ConnectOptions options = tls_options(client_ctx.get());
        auto rec = std::make_shared<Recorder>();
        std::shared_ptr<aio::Transport> transport = co_await connect(*loop, srv.port, options, rec);
        co_await until_lost(rec, 20.0);
        CHECK(rec->data.size() == payload.size());
        CHECK(rec->data == payload);
        CHECK(rec->events == std::vector<std::string>{"made", "eof", "lost"});
        CHECK(rec->error == nullptr);
        srv.server->close();
      }(),
      30.0);
  loop->close();
}

TEST_CASE("tls: end of file without close_notify: data, then eof_received, then a clean loss (57)") {
  auto loop = make_loop();
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  test::run(*loop, [&]() -> aio::Task<void> {
    // The server upgrades a plain connection itself, so that it can end the
    // TCP stream underneath (write_eof: a FIN once flushed) with no close_notify.
    auto plain = std::make_shared<Recorder>();
    aio::Task<void> upgrading;
    plain->on_made = [&](aio::Transport& t) {
      upgrading = loop->create_task([](aio::EventLoop& loop, aio::Transport& t, std::shared_ptr<aio::BaseProtocol> app,
                                       aio::SSLContext* context) -> aio::Task<void> {
        aio::StartTLSOptions options;
        options.server_side = true;
        auto tls = co_await loop.start_tls(t, app, context, options);
        tls->write("last words");
        t.write_eof();
      }(*loop, t, plain, server_ctx.get()));
    };
    aio::ProtocolFactory serving = [plain] { return plain; };
    auto server = co_await loop->create_server(serving, "127.0.0.1", 0);
    int port = server->sockets().front().getsockname().port();
    aio::ConnectOptions options = tls_options(client_ctx.get());
    auto rec = std::make_shared<Recorder>();
    std::shared_ptr<aio::Transport> transport = co_await connect(*loop, port, options, rec);
    co_await until_lost(rec);
    co_await upgrading;
    CHECK(rec->data == "last words");
    CHECK(rec->events == std::vector<std::string>{"made", "eof", "lost"});
    CHECK(rec->error == nullptr);
    server->close();
  }());
  loop->close();
}

namespace {

// 16 MiB written at once while the server does not read, or in 4 KiB writes
// (each one record, which goes from OpenSSL's buffer to the transport
// directly: the socket takes part of one, the transport keeps the rest, and
// the transport's pause comes inside SSL_write).
void write_until_paused(std::size_t piece) {
  auto loop = make_loop();
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  test::run(
      *loop,
      [&]() -> aio::Task<void> {
        // The server does not read until the client's writing has paused: the
        // kernel's buffers fill, then the socket transport's, then the TLS one.
        // Paused with nothing to write, the server's connection has no I/O
        // to keep it alive: the test holds it, as an application would.
        std::shared_ptr<aio::Transport> server_side;
        aio::ProtocolFactory echo = [&server_side] {
          auto rec = std::make_shared<Recorder>();
          rec->on_made = [&server_side](aio::Transport& t) {
            server_side = aio::detail::share_transport(t, "test");
            t.pause_reading();
          };
          rec->on_data = [r = rec.get()](std::string_view d) { r->transport->write(d); };
          return rec;
        };
        TlsServer srv = co_await start_echo_server(*loop, server_ctx.get(), echo);
        aio::ConnectOptions options = tls_options(client_ctx.get());
        auto rec = std::make_shared<Recorder>();
        std::shared_ptr<aio::Transport> transport = co_await connect(*loop, srv.port, options, rec);
        CHECK(transport->get_write_buffer_limits() == std::pair<std::size_t, std::size_t>{128 * 1024, 512 * 1024});
        auto& tls = dynamic_cast<aio::SSLTransport&>(*transport);
        CHECK(tls.get_read_buffer_limits() == std::pair<std::size_t, std::size_t>{64 * 1024, 256 * 1024});
        CHECK_THROWS_AS(tls.set_read_buffer_limits(1, 2), std::invalid_argument);
        const std::string payload = pattern(16 * 1024 * 1024, 5);
        for (std::size_t at = 0; at < payload.size(); at += piece)
          transport->write(std::string_view(payload).substr(at, piece));
        std::function<bool()> paused = [&] { return rec->paused == 1 && server_side != nullptr; };
        co_await test::until(paused, 10.0);
        CHECK(transport->get_write_buffer_size() >= 512 * 1024);
        server_side->resume_reading();
        std::function<bool()> echoed = [&] { return rec->data.size() >= payload.size(); };
        co_await test::until(echoed, 30.0);
        CHECK(rec->data == payload);
        CHECK(rec->paused == 1);
        CHECK(rec->resumed == 1);
        transport->close();
        co_await until_lost(rec);
        srv.server->close();
      }(),
      60.0);
  loop->close();
}

}  // namespace

TEST_CASE("tls: one large write pauses and resumes writing once, at asyncio's TLS limits (59)") {
  write_until_paused(16 * 1024 * 1024);
}

TEST_CASE("tls: small writes that fill every buffer pause and resume once, every byte in order (59)") {
  write_until_paused(4096);
}

namespace {

// A STARTTLS exchange over streams: a line in the clear (or in an outer TLS
// layer: TLS over TLS), then the upgrade, then 1 MiB echoed.
void starttls_echo(bool outer_tls) {
  auto loop = make_loop();
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  test::run(
      *loop,
      [&]() -> aio::Task<void> {
        aio::ClientConnected handler = [&server_ctx](aio::StreamReader reader,
                                                     aio::StreamWriter writer) -> aio::Task<void> {
          std::string line = co_await reader.readline();
          CHECK(line == "STARTTLS\n");
          co_await writer.start_tls(server_ctx.get());
          CHECK(writer.get_extra_info("ssl_object").has_value());
          for (;;) {
            std::string data = co_await reader.read(65536);
            if (data.empty()) break;
            writer.write(data);
            co_await writer.drain();
          }
          writer.close();
        };
        aio::ServerOptions server_options;
        if (outer_tls) server_options.ssl = server_ctx.get();
        auto server = co_await aio::start_server(handler, "127.0.0.1", 0, server_options);
        int port = server->sockets().front().getsockname().port();
        aio::ConnectOptions options;
        if (outer_tls) {
          options.ssl = client_ctx.get();
          options.server_hostname = "localhost";
        }
        auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port, options);
        // The line and the ClientHello leave together: the server's reader
        // holds the ClientHello when start_tls is called (contract 61).
        writer.write("STARTTLS\n");
        co_await writer.start_tls(client_ctx.get(), "localhost");
        std::string payload = pattern(1024 * 1024, 7);
        writer.write(payload);
        co_await writer.drain();
        std::string echoed = co_await reader.readexactly(static_cast<long long>(payload.size()));
        CHECK(echoed == payload);
        writer.close();
        co_await writer.wait_closed();
        server->close();
        co_await server->wait_closed();
      }(),
      20.0);
  loop->close();
}

}  // namespace

TEST_CASE("tls: streams, start_tls after a plain-text line, bytes already read go to TLS (61)") {
  starttls_echo(false);
}

TEST_CASE("tls: start_tls over a TLS connection: TLS in TLS (62)") { starttls_echo(true); }

TEST_CASE("tls: a peer that never answers close_notify cannot hold the connection past ssl_shutdown_timeout (56)") {
  auto loop = make_loop();
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  test::run(
      *loop,
      [&]() -> aio::Task<void> {
        // The server streams for ever and never reads, so it never sees our close_notify.
        struct Streamer : Recorder {
          void resume_writing() override {
            Recorder::resume_writing();
            if (transport) transport->write(pattern(1024 * 1024));
          }
        };
        aio::ProtocolFactory factory_server = [] {
          auto rec = std::make_shared<Streamer>();
          rec->on_made = [](aio::Transport& t) {
            t.pause_reading();
            t.write(pattern(1024 * 1024));
          };
          return rec;
        };
        TlsServer srv = co_await start_echo_server(*loop, server_ctx.get(), factory_server);
        aio::ConnectOptions options = tls_options(client_ctx.get());
        options.ssl_shutdown_timeout = 0.5;
        auto rec = std::make_shared<Recorder>();
        std::shared_ptr<aio::Transport> transport = co_await connect(*loop, srv.port, options, rec);
        std::function<bool()> some = [&] { return !rec->data.empty(); };
        co_await test::until(some);
        transport->close();
        std::size_t at_close = rec->data.size();
        auto start = std::chrono::steady_clock::now();
        co_await until_lost(rec, 5.0);
        double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        CHECK(took >= 0.4);
        CHECK(took < 3.0);
        CHECK(rec->data.size() == at_close);  // nothing after our close reaches the application
        REQUIRE(rec->error);
        CHECK_THROWS_AS(std::rethrow_exception(rec->error), aio::TimeoutError);
        srv.server->close();
      }(),
      20.0);
  loop->close();
}

TEST_CASE("tls: close() while reading is paused still ends the connection (58)") {
  auto loop = make_loop();
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  test::run(
      *loop,
      [&]() -> aio::Task<void> {
        aio::ProtocolFactory talker = [] {
          auto rec = std::make_shared<Recorder>();
          rec->on_made = [](aio::Transport& t) {
            t.write(pattern(100 * 1024));
            t.close();  // data, then close_notify
          };
          return rec;
        };
        TlsServer srv = co_await start_echo_server(*loop, server_ctx.get(), talker);
        aio::ConnectOptions options = tls_options(client_ctx.get());
        auto rec = std::make_shared<Recorder>();
        rec->on_made = [](aio::Transport& t) { t.pause_reading(); };
        std::shared_ptr<aio::Transport> transport = co_await connect(*loop, srv.port, options, rec);
        co_await aio::sleep(0.2);  // the data and the close_notify arrive, and wait
        CHECK(rec->data.empty());  // paused: nothing delivered, even what is decrypted
        transport->close();
        co_await until_lost(rec, 10.0);
        CHECK(rec->events == std::vector<std::string>{"made", "eof", "lost"});
        srv.server->close();
      }(),
      20.0);
  loop->close();
}

TEST_CASE("tls: a reset underneath makes is_closing() true and drain() raise (60)") {
  test::CaptureLog log;
  auto loop = make_loop();
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  test::run(
      *loop,
      [&]() -> aio::Task<void> {
        aio::ProtocolFactory aborting = [] {
          auto rec = std::make_shared<Recorder>();
          rec->on_data = [r = rec.get()](std::string_view) {
            if (r->transport) r->transport->abort();
          };
          return rec;
        };
        TlsServer srv = co_await start_echo_server(*loop, server_ctx.get(), aborting);
        aio::ConnectOptions options = tls_options(client_ctx.get());
        auto [reader, writer] = co_await aio::open_connection("127.0.0.1", srv.port, options);
        std::string chunk = pattern(256 * 1024);
        bool raised = false;
        auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < 400 && !raised; ++i) {
          writer.write(chunk);
          try {
            co_await writer.drain();
          } catch (const std::system_error&) {
            raised = true;
          }
        }
        CHECK(raised);
        CHECK(writer.is_closing());
        CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
        writer.write("dropped quietly");
        CHECK(log.warnings() == 0);
        srv.server->close();
      }(),
      20.0);
  loop->close();
}

TEST_CASE("tls: a TLS 1.3 server that wants a client certificate fails the first read, not the connect (54)") {
  auto loop = make_loop();
  auto server_ctx = server_context();
  server_ctx->load_verify_locations(cert("ca.pem"));
  server_ctx->set_verify_mode(aio::VerifyMode::cert_required);
  auto client_ctx = client_context();
  test::run(
      *loop,
      [&]() -> aio::Task<void> {
        TlsServer srv = co_await start_echo_server(*loop, server_ctx.get());
        aio::ConnectOptions options = tls_options(client_ctx.get());
        auto rec = std::make_shared<Recorder>();
        std::shared_ptr<aio::Transport> transport = co_await connect(*loop, srv.port, options, rec);
        CHECK(rec->events.front() == "made");  // the client's handshake was done
        transport->write("hello");
        co_await until_lost(rec);
        REQUIRE(rec->error);
        CHECK_THROWS_AS(std::rethrow_exception(rec->error), aio::SSLError);
        // With the client certificate it works.
        auto with_cert = client_context();
        with_cert->load_cert_chain(cert("client.pem"), cert("client.key"));
        options.ssl = with_cert.get();
        auto echo = std::make_shared<Recorder>();
        aio::ProtocolFactory factory2 = [echo] { return echo; };
        auto [transport2, protocol2] = co_await loop->create_connection(factory2, "127.0.0.1", srv.port, options);
        transport2->write("hello");
        std::function<bool()> echoed = [&] { return echo->data == "hello"; };
        co_await test::until(echoed);
        transport2->close();
        srv.server->close();
      }(),
      20.0);
  loop->close();
}

TEST_CASE("tls: start_tls refuses what it cannot upgrade") {
  auto loop = make_loop();
  auto client_ctx = client_context();
  auto [server_side, client_side] = test::tcp_pair(*loop);
  test::run(*loop, [&]() -> aio::Task<void> {
    auto rec = std::make_shared<Recorder>();
    aio::ProtocolFactory factory = [rec] { return rec; };
    auto [transport, protocol] = co_await loop->connect_accepted_socket(factory, std::move(client_side));
    std::shared_ptr<aio::BaseProtocol> app = rec;
    auto no_context = loop->start_tls(*transport, app, nullptr);
    CHECK_THROWS_AS(co_await std::move(no_context), std::invalid_argument);
    aio::StartTLSOptions no_name;  // the context checks host names: one is needed
    auto nameless = loop->start_tls(*transport, app, client_ctx.get(), no_name);
    CHECK_THROWS_AS(co_await std::move(nameless), std::invalid_argument);
    CHECK(!transport->is_closing());  // refused before touching the connection
    transport->close();
  }());
#ifndef _WIN32
  // A pipe carries one direction: the library's stream transport, but no TLS.
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  test::run(*loop, [&]() -> aio::Task<void> {
    auto rec = std::make_shared<Recorder>();
    aio::ProtocolFactory factory = [rec] { return rec; };
    auto [pipe_transport, protocol] = co_await loop->connect_read_pipe(factory, fds[0]);
    REQUIRE(rec->transport);
    CHECK(rec->transport->stream_transport() != nullptr);
    std::shared_ptr<aio::BaseProtocol> app = rec;
    aio::StartTLSOptions options;
    options.server_hostname = "localhost";
    auto upgrade = loop->start_tls(*rec->transport, app, client_ctx.get(), options);
    CHECK_THROWS_WITH_AS(co_await std::move(upgrade), "start_tls: a pipe transport cannot carry TLS",
                         std::invalid_argument);
    CHECK(!pipe_transport->is_closing());
    pipe_transport->close();
  }());
  ::close(fds[1]);
#endif
  loop->close();
}

// ---- The same session over an in-memory transport, in every chunking ----------

namespace {

// A transport that only records what the layer writes; the test carries it.
struct MemoryTransport : aio::Transport {
  std::string out;
  bool closed = false, paused = false;
  void close() override { closed = true; }
  bool is_closing() const noexcept override { return closed; }
  std::any get_extra_info(std::string_view) const override { return {}; }
  void set_protocol(std::shared_ptr<aio::BaseProtocol>) override {}
  std::shared_ptr<aio::BaseProtocol> get_protocol() const override { return nullptr; }
  void pause_reading() override { paused = true; }
  void resume_reading() override { paused = false; }
  bool is_reading() const noexcept override { return !paused; }
  void write(std::string_view data) override { out += data; }
  void writelines(std::span<const std::string_view> lines) override {
    for (auto line : lines) out += line;
  }
  void write_eof() override {}
  bool can_write_eof() const noexcept override { return true; }
  void abort() override { closed = true; }
  std::size_t get_write_buffer_size() const noexcept override { return 0; }
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override { return {0, 0}; }
  void set_write_buffer_limits(std::optional<long long>, std::optional<long long>) override {}
};

struct Session {
  std::string client_data, server_data;  // what each application received
  std::vector<std::string> client_events, server_events;
};

// A handshake, 200 KiB each way, and the client's close, with every byte
// between the two layers handed over in pieces `next_piece()` long.
Session run_session(aio::EventLoop& loop, const std::function<std::size_t()>& next_piece) {
  auto client_app = std::make_shared<Recorder>();
  auto server_app = std::make_shared<Recorder>();
  aio::detail::SSLSettings client_settings{client_context(), false, "localhost"};
  aio::detail::SSLSettings server_settings{server_context(), true, ""};
  auto client = std::make_shared<aio::detail::SSLProtocol>(loop, client_app, client_settings);
  auto server = std::make_shared<aio::detail::SSLProtocol>(loop, server_app, server_settings);
  auto to_server = std::make_shared<MemoryTransport>();
  auto to_client = std::make_shared<MemoryTransport>();
  const std::string up = pattern(200 * 1024, 1), down = pattern(200 * 1024, 2);
  server_app->on_made = [&](aio::Transport& t) { t.write(down); };
  client_app->on_made = [&](aio::Transport& t) { t.write(up); };
  client->attach(to_server);
  server->attach(to_client);
  auto carry = [&](MemoryTransport& from, aio::detail::SSLProtocol& to) {
    std::string bytes = std::move(from.out);
    from.out.clear();
    for (std::size_t at = 0; at < bytes.size();) {
      std::size_t n = std::min(next_piece(), bytes.size() - at);
      to.data_received(std::string_view(bytes).substr(at, n));
      at += n;
    }
    return !bytes.empty();
  };
  bool closing = false;
  test::run_until(loop, [&] {
    bool moved = carry(*to_server, *server) | carry(*to_client, *client);
    if (!closing && client_app->data.size() == down.size() && server_app->data.size() == up.size()) {
      closing = true;
      client->close();
      moved = true;
    }
    return closing && !moved && to_server->closed && to_client->closed;
  });
  client->connection_lost(nullptr);
  server->connection_lost(nullptr);
  CHECK(client_app->data == down);
  CHECK(server_app->data == up);
  return {client_app->data, server_app->data, client_app->events, server_app->events};
}

}  // namespace

TEST_CASE("tls: the memory BIO keeps the bytes in order, lent or copied, and outlives nothing") {
  BIO* bio = nullptr;
  {
    aio::detail::MemoryBio memory;
    bio = memory.give_bio();
    char out[16] = {};
    // Empty: OpenSSL is told to retry, not that the stream ended.
    CHECK(BIO_read(bio, out, sizeof out) <= 0);
    CHECK(BIO_should_retry(bio));
    CHECK_FALSE(BIO_eof(bio));

    memory.append("ab");
    std::string first = "cdef", second = "gh";
    memory.lend(first);
    CHECK(BIO_ctrl_pending(bio) == 6);
    CHECK(BIO_read(bio, out, 3) == 3);
    CHECK(std::string_view(out, 3) == "abc");
    memory.lend(second);  // a nested segment: the rest of the first is kept ahead of it
    first = "XXXX";       // ... as a copy
    memory.append("ij");  // and what is appended goes after the lent bytes
    CHECK(memory.pending() == 7);
    CHECK(BIO_read(bio, out, sizeof out) == 7);
    CHECK(std::string_view(out, 7) == "defghij");
    memory.keep_lent();
    CHECK(memory.pending() == 0);

    // What a loan leaves is copied when it ends; the caller's buffer may go.
    std::string third = "klmnop";
    memory.lend(third);
    CHECK(BIO_read(bio, out, 2) == 2);
    memory.keep_lent();
    third.assign(6, 'Z');
    CHECK(BIO_read(bio, out, sizeof out) == 4);
    CHECK(std::string_view(out, 4) == "mnop");

    // Writes land in the buffer; larger than its first allocation, too.
    const std::string big = pattern(300 * 1024, 3);
    CHECK(BIO_write(bio, big.data(), static_cast<int>(big.size())) == static_cast<int>(big.size()));
    CHECK(memory.kept() == big);
    memory.clear();
    CHECK(memory.pending() == 0);
    CHECK(memory.kept().empty());

    // A pass-through takes writes while nothing is kept; what it declines
    // is kept, and once something is, later writes queue behind it.
    struct Taker final : aio::detail::MemoryBio::PassThrough {
      std::string taken;
      bool willing = true;
      bool pass(std::string_view data) noexcept override {
        if (willing) taken += data;
        return willing;
      }
    } taker;
    memory.set_pass_through(&taker);
    CHECK(BIO_write(bio, "qr", 2) == 2);
    CHECK(taker.taken == "qr");
    CHECK(memory.pending() == 0);
    taker.willing = false;
    CHECK(BIO_write(bio, "st", 2) == 2);
    taker.willing = true;
    CHECK(BIO_write(bio, "uv", 2) == 2);
    CHECK(taker.taken == "qr");
    CHECK(memory.kept() == "stuv");
    memory.clear();
    memory.set_pass_through(nullptr);
    CHECK(BIO_write(bio, "w", 1) == 1);
    CHECK(memory.kept() == "w");
    memory.clear();
  }
  // The SSL object may outlive the layer (get_extra_info("ssl_object")): its
  // BIO then reads nothing and drops what is written, never touching freed memory.
  char out[4];
  CHECK(BIO_read(bio, out, sizeof out) <= 0);
  CHECK(BIO_write(bio, "x", 1) == 1);
  BIO_free(bio);
}

TEST_CASE("tls: the layer gives the same plain text and events however the bytes are split") {
  auto loop = make_loop();
  Session whole = run_session(*loop, [] { return std::size_t(1) << 30; });
  CHECK(whole.client_events == std::vector<std::string>{"made", "eof", "lost"});
  CHECK(whole.server_events == std::vector<std::string>{"made", "eof", "lost"});
  std::mt19937 random(12345);
  std::uniform_int_distribution<std::size_t> sizes(1, 5000);
  Session pieces = run_session(*loop, [&] { return sizes(random); });
  Session bytes = run_session(*loop, [] { return std::size_t(1); });
  for (const Session* s : {&pieces, &bytes}) {
    CHECK(s->client_data == whole.client_data);
    CHECK(s->server_data == whole.server_data);
    CHECK(s->client_events == whole.client_events);
    CHECK(s->server_events == whole.server_events);
  }
  loop->close();
}

TEST_CASE("tls: start_tls and sendfile refuse a transport that is not this library's, naming what they need") {
  auto loop = make_loop();
  auto client_ctx = client_context();
  // A user's own Transport overrides none of the loop's questions: the
  // defaults say it is none of the library's.
  auto foreign = std::make_shared<MemoryTransport>();
  CHECK(foreign->shared_handle() == nullptr);
  CHECK(foreign->stream_transport() == nullptr);
  CHECK_FALSE(foreign->is_tls());
  test::TempFile file("some content");
  test::run(*loop, [&]() -> aio::Task<void> {
    std::shared_ptr<aio::BaseProtocol> app = std::make_shared<Recorder>();
    aio::StartTLSOptions options;
    options.server_hostname = "localhost";
    auto upgrade = loop->start_tls(*foreign, app, client_ctx.get(), options);
    CHECK_THROWS_WITH_AS(co_await std::move(upgrade),
                         "start_tls: the transport must be a stream or TLS transport of this library, got another "
                         "aio::Transport (its shared_handle() is null)",
                         std::invalid_argument);
    auto send = loop->sendfile(*foreign, file.fd);
    CHECK_THROWS_WITH_AS(co_await std::move(send), doctest::Contains("neither a stream nor a TLS transport"),
                         std::runtime_error);
  }());
  CHECK(foreign->out.empty());
  CHECK_FALSE(foreign->closed);
  loop->close();
}

TEST_CASE("tls: the TLS transport refuses an application protocol of another kind, naming it") {
  auto loop = make_loop();
  aio::detail::SSLSettings settings{client_context(), false, "localhost"};
  auto app = std::make_shared<Recorder>();
  auto layer = std::make_shared<aio::detail::SSLProtocol>(*loop, app, settings);
  CHECK(layer->is_tls());
  CHECK(layer->stream_transport() == nullptr);
  CHECK_THROWS_WITH_AS(layer->set_protocol(std::make_shared<aio::DatagramProtocol>()),
                       "a TLS transport needs an aio::Protocol or aio::BufferedProtocol, got an aio::DatagramProtocol",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(layer->set_protocol(nullptr), doctest::Contains("got null"), std::invalid_argument);
  CHECK(layer->get_protocol() == app);
  std::shared_ptr<aio::BaseProtocol> datagram = std::make_shared<aio::DatagramProtocol>();
  auto make_layer = [&] { return std::make_shared<aio::detail::SSLProtocol>(*loop, datagram, settings); };
  CHECK_THROWS_WITH_AS(make_layer(), doctest::Contains("got an aio::DatagramProtocol"), std::invalid_argument);
  loop->close();
}

TEST_CASE("tls: sendfile over a TLS transport goes through the fallback, byte for byte") {
  auto loop = make_loop();
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  const std::string content = pattern(3 * 1024 * 1024 + 17, 9);
  test::TempFile file(content);
  test::run(
      *loop,
      [&]() -> aio::Task<void> {
        auto sink = std::make_shared<Recorder>();
        aio::ProtocolFactory collecting = [sink] { return sink; };
        TlsServer srv = co_await start_echo_server(*loop, server_ctx.get(), collecting);
        aio::ConnectOptions options = tls_options(client_ctx.get());
        auto rec = std::make_shared<Recorder>();
        std::shared_ptr<aio::Transport> transport = co_await connect(*loop, srv.port, options, rec);
        CHECK(transport->is_tls());  // what makes sendfile take the fallback
        CHECK(transport->stream_transport() == nullptr);
        CHECK(transport->shared_handle() == transport);
        transport->write("head:");
        auto refused = loop->sendfile(*transport, file.fd, 0, std::nullopt, false);
        CHECK_THROWS_AS(co_await std::move(refused), aio::SendfileNotAvailableError);
        std::size_t sent = co_await loop->sendfile(*transport, file.fd);
        CHECK(sent == content.size());
        CHECK(transport->get_protocol() == rec);  // the application's protocol is back
        transport->write(":tail");
        std::function<bool()> all = [&] { return sink->data.size() >= content.size() + 10; };
        co_await test::until(all, 20.0);
        CHECK(sink->data == "head:" + content + ":tail");
        transport->close();
        co_await until_lost(rec);
        srv.server->close();
      }(),
      30.0);
  loop->close();
}

TEST_CASE("tls: a TLS transport kept past its loop: using it is a clear error, releasing it is safe") {
  std::shared_ptr<aio::Transport> kept;
  auto rec = std::make_shared<Recorder>();
  {
    auto loop = make_loop();
    auto server_ctx = server_context();
    auto client_ctx = client_context();
    test::run(*loop, [&]() -> aio::Task<void> {
      TlsServer srv = co_await start_echo_server(*loop, server_ctx.get());
      kept = co_await connect(*loop, srv.port, tls_options(client_ctx.get()), rec);
      srv.server->close();
    }());
    loop->close();
  }
  CHECK_THROWS_AS(kept->write("late"), std::runtime_error);
  CHECK_THROWS_AS(kept->close(), std::runtime_error);
  CHECK_THROWS_AS(kept->abort(), std::runtime_error);
  kept.reset();
}

TEST_CASE("tls: a TLS client against a plain-text server that speaks first fails fast with SSLError (63)") {
  auto loop = make_loop();
  auto client_ctx = client_context();
  test::run(*loop, [&]() -> aio::Task<void> {
    aio::ProtocolFactory banner = [] {
      auto rec = std::make_shared<Recorder>();
      rec->on_made = [](aio::Transport& t) { t.write("220 smtp.example ESMTP ready\r\n"); };
      return rec;
    };
    auto server = co_await loop->create_server(banner, "127.0.0.1", 0);
    int port = server->sockets().front().getsockname().port();
    auto start = std::chrono::steady_clock::now();
    auto rec = std::make_shared<Recorder>();
    try {
      co_await connect(*loop, port, tls_options(client_ctx.get()), rec);
      FAIL("the handshake succeeded");
    } catch (const aio::SSLError& e) {
      CHECK(e.reason() == "WRONG_VERSION_NUMBER");
      CHECK(std::string(e.what()).find("[SSL: WRONG_VERSION_NUMBER]") != std::string::npos);
    }
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
    CHECK(rec->events.empty());  // connection_made never ran
    server->close();
  }());
  loop->close();
}

namespace {

// `openssl s_server` on a free port, one connection, its stdin and stdout
// piped; returns it and the port it announced.
aio::Task<std::pair<aio::Process, int>> start_s_server(std::vector<std::string> extra) {
  aio::ProcessOptions options;
  options.stdin_ = aio::PIPE;
  options.stdout_ = aio::PIPE;
  options.stderr_ = aio::Stdio::devnull();
  std::vector<std::string> args = {"s_server", "-accept",       "127.0.0.1:0", "-cert", cert("srv.pem"),
                                   "-key",     cert("srv.key"), "-naccept",    "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  aio::Process server = co_await aio::create_subprocess_exec("/usr/bin/openssl", args, options);
  for (;;) {  // "ACCEPT 127.0.0.1:PORT"
    std::string line = co_await server.stdout_->readline();
    if (line.empty()) throw std::runtime_error("openssl s_server did not start");
    if (line.rfind("ACCEPT ", 0) == 0)
      co_return std::pair<aio::Process, int>{server, std::stoi(line.substr(line.rfind(':') + 1))};
  }
}

// The openssl command as the peer: natively only (under Wine it would be a
// Linux program). Skips and says so where it cannot run.
bool skip_without_openssl_command() {
#ifdef _WIN32
  test::skip("needs the openssl command as the peer, which runs natively only");
  return true;
#else
  if (access("/usr/bin/openssl", X_OK) == 0) return false;
  test::skip("needs /usr/bin/openssl as the peer");
  return true;
#endif
}

}  // namespace

TEST_CASE("tls: extra info against openssl s_server with ChaCha20 (51)") {
  if (skip_without_openssl_command()) return;
  auto loop = make_loop();
  auto client_ctx = client_context();
  test::run(*loop, [&]() -> aio::Task<void> {
    std::vector<std::string> extra = {"-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"};
    auto [server, port] = co_await start_s_server(extra);
    auto rec = std::make_shared<Recorder>();
    auto transport = co_await connect(*loop, port, tls_options(client_ctx.get()), rec);
    CHECK(std::any_cast<aio::CipherInfo>(rec->cipher) ==
          aio::CipherInfo{"TLS_CHACHA20_POLY1305_SHA256", "TLSv1.3", 256});
    CHECK(std::any_cast<std::optional<std::string>>(rec->compression) == std::nullopt);
    auto peer = std::any_cast<std::optional<aio::PeerCertificate>>(rec->peercert);
    REQUIRE(peer);
    CHECK(peer->subject.back() == std::pair<std::string, std::string>{"commonName", "localhost"});
    transport->close();
    co_await until_lost(rec);
    server.stdin_->close();
    co_await server.communicate();
  }());
  loop->close();
}

TEST_CASE("tls: as a TLS 1.2 client, a renegotiation the server starts completes unnoticed (53)") {
  if (skip_without_openssl_command()) return;
  auto loop = make_loop();
  auto client_ctx = client_context();
  test::run(
      *loop,
      [&]() -> aio::Task<void> {
        std::vector<std::string> extra = {"-tls1_2", "-msg"};
        auto [server, port] = co_await start_s_server(extra);
        // s_server's output (-msg) must keep flowing while the test runs.
        std::string trace;
        aio::Task<void> draining =
            aio::get_running_loop().create_task([](aio::StreamReader out, std::string& into) -> aio::Task<void> {
              for (;;) {
                std::string chunk = co_await out.read(65536);
                if (chunk.empty()) break;
                into += chunk;
              }
            }(*server.stdout_, trace));
        auto rec = std::make_shared<Recorder>();
        auto transport = co_await connect(*loop, port, tls_options(client_ctx.get()), rec);
        server.stdin_->write("first\n");
        std::function<bool()> first = [&] { return rec->data == "first\n"; };
        co_await test::until(first);
        server.stdin_->write("r\n");  // s_server: renegotiate (a HelloRequest)
        co_await aio::sleep(0.5);
        server.stdin_->write("second\n");
        std::function<bool()> second = [&] { return rec->data == "first\nsecond\n"; };
        co_await test::until(second);
        transport->write("still here\n");
        std::function<bool()> echoed_trace = [&] { return trace.find("still here") != std::string::npos; };
        co_await test::until(echoed_trace);
        CHECK(trace.find("HelloRequest") != std::string::npos);
        transport->close();
        co_await until_lost(rec);
        CHECK(rec->error == nullptr);
        server.stdin_->close();
        co_await server.wait();
        co_await draining;
      }(),
      20.0);
  loop->close();
}

TEST_CASE("tls: after the peer's end of file, plain text still waiting is sent before the close (57)") {
  auto loop = make_loop();
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  test::run(
      *loop,
      [&]() -> aio::Task<void> {
        // The server (test_ssl.py's eof_server): TLS by start_tls, does not
        // read until the client has a backlog, half-closes the TCP stream
        // with no close_notify, then reads everything.
        auto server_app = std::make_shared<Recorder>();
        std::shared_ptr<aio::Transport> server_tls;
        aio::Transport* plain_side = nullptr;
        aio::Task<void> upgrading;
        server_app->on_made = [&](aio::Transport& t) {
          plain_side = &t;
          upgrading =
              loop->create_task([](aio::EventLoop& loop, aio::Transport& t, std::shared_ptr<aio::BaseProtocol> app,
                                   aio::SSLContext* context, std::shared_ptr<aio::Transport>& out) -> aio::Task<void> {
                aio::StartTLSOptions options;
                options.server_side = true;
                out = co_await loop.start_tls(t, app, context, options);
                out->pause_reading();
              }(*loop, t, server_app, server_ctx.get(), server_tls));
        };
        aio::ProtocolFactory serving = [server_app] { return server_app; };
        auto server = co_await loop->create_server(serving, "127.0.0.1", 0);
        int port = server->sockets().front().getsockname().port();
        auto rec = std::make_shared<Recorder>();
        auto transport = co_await connect(*loop, port, tls_options(client_ctx.get()), rec);
        co_await upgrading;
        const std::string payload = pattern(16 * 1024 * 1024, 11);
        transport->write(payload);
        std::function<bool()> backlog = [&] { return rec->paused == 1; };
        co_await test::until(backlog, 10.0);
        CHECK(transport->get_write_buffer_size() >= 512 * 1024);
        plain_side->write_eof();  // a FIN, no close_notify
        co_await aio::sleep(0.2);
        server_tls->resume_reading();
        std::function<bool()> all = [&] { return server_app->data.size() >= payload.size(); };
        co_await test::until(all, 30.0);
        CHECK(server_app->data == payload);
        co_await until_lost(rec);
        CHECK(rec->events == std::vector<std::string>{"made", "eof", "lost"});
        CHECK(rec->error == nullptr);
        server->close();
      }(),
      60.0);
  loop->close();
}
