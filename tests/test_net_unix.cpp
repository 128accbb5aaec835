// Unix-domain stream servers and connections: create_unix_server (with
// cleanup_socket), create_unix_connection, start_unix_server and
// open_unix_connection.
#include <net/server.hpp>
#include <net/socket.hpp>
#include <net/streams.hpp>
#include <net/transports.hpp>

#include "support.hpp"

#ifdef _WIN32
#include <windows.h>
#else
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include <any>
#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>

using test::make_loop;
using test::until;

namespace {

struct Echo : aio::Protocol {
  aio::Transport* transport = nullptr;
  void connection_made(aio::Transport& t) override { transport = &t; }
  void data_received(std::string_view data) override { transport->write(data); }
};

struct Sink : aio::Protocol {
  std::string received;
  int lost = 0;
  void data_received(std::string_view data) override { received += data; }
  void connection_lost(std::exception_ptr) override { ++lost; }
};

aio::ProtocolFactory echo_factory() {
  return [] { return std::make_shared<Echo>(); };
}
aio::ProtocolFactory sink_factory() {
  return [] { return std::make_shared<Sink>(); };
}

// Connects to the echo `server` listening at `path`, checks that `text`
// comes back, then closes the connection and the server.
aio::Task<void> echo_round_trip(aio::EventLoop& loop, std::shared_ptr<aio::Server> server, std::string path,
                                std::string text) {
  auto [client, protocol] = co_await loop.create_unix_connection(sink_factory(), path);
  auto* sink = static_cast<Sink*>(protocol.get());
  client->write(text);
  co_await until([&] { return sink->received == text; });
  client->close();
  server->close();
  co_await aio::wait_for(server->wait_closed(), 5.0);
}

#ifndef _WIN32
// A socket path of this process in /tmp, removed (if still there) at the end.
struct TempPath {
  TempPath() {
    static std::atomic<int> counter{0};
    path = "/tmp/aio-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".sock";
    ::unlink(path.c_str());
  }
  ~TempPath() { ::unlink(path.c_str()); }
  std::string path;
};

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}
#endif

}  // namespace

#ifndef _WIN32

TEST_CASE("create_unix_server and create_unix_connection: echo, addresses, the socket file removed on close") {
  auto loop = make_loop();
  TempPath where;
  auto main = [&]() -> aio::Task<void> {
    auto server = co_await loop->create_unix_server(echo_factory(), where.path);
    CHECK(server->is_serving());
    REQUIRE(server->sockets().size() == 1);
    CHECK(exists(where.path));
    auto [client, protocol] = co_await loop->create_unix_connection(sink_factory(), where.path);
    auto* sink = static_cast<Sink*>(protocol.get());
    client->write("over a unix socket");
    co_await until([&] { return sink->received.size() == 18; });
    CHECK(sink->received == "over a unix socket");
    auto peer = std::any_cast<aio::SocketAddress>(client->get_extra_info("peername"));
    CHECK(peer.family() == AF_UNIX);
    CHECK(peer.path() == where.path);
    client->close();
    server->close();
    co_await aio::wait_for(server->wait_closed(), 5.0);
    CHECK(sink->lost == 1);
    CHECK_FALSE(exists(where.path));
  };
  test::run(*loop, main());
  loop->close();
}

TEST_CASE("create_unix_server: cleanup_socket = false keeps the file; a replaced file is never removed") {
  auto loop = make_loop();
  TempPath where;
  auto main = [&]() -> aio::Task<void> {
    auto kept = co_await loop->create_unix_server(echo_factory(), where.path, {.cleanup_socket = false});
    kept->close();
    co_await kept->wait_closed();
    CHECK(exists(where.path));  // left behind, a stale socket file

    // The next server removes the stale file and binds anew.
    auto first = co_await loop->create_unix_server(echo_factory(), where.path);
    // Someone replaces the file meanwhile: closing `first` must not remove theirs.
    ::unlink(where.path.c_str());
    aio::Socket other = aio::Socket::create(AF_UNIX, SOCK_STREAM);
    other.bind(aio::SocketAddress::unix_path(where.path));
    first->close();
    co_await first->wait_closed();
    CHECK(exists(where.path));
    other.close();
  };
  test::run(*loop, main());
  loop->close();
}

TEST_CASE("create_unix_server and create_unix_connection on given sockets") {
  auto loop = make_loop();
  TempPath where;
  auto main = [&]() -> aio::Task<void> {
    aio::Socket listener = aio::Socket::create(AF_UNIX, SOCK_STREAM);
    listener.bind(aio::SocketAddress::unix_path(where.path));
    auto server = co_await loop->create_unix_server(echo_factory(), std::move(listener));
    aio::Socket sock = aio::Socket::create(AF_UNIX, SOCK_STREAM);
    co_await loop->sock_connect(sock, aio::SocketAddress::unix_path(where.path));
    auto [client, protocol] = co_await loop->create_unix_connection(sink_factory(), std::move(sock));
    auto* sink = static_cast<Sink*>(protocol.get());
    client->write("given");
    co_await until([&] { return sink->received == "given"; });
    client->close();
    server->close();
    co_await aio::wait_for(server->wait_closed(), 5.0);
    CHECK_FALSE(exists(where.path));  // cleanup_socket applies to a given socket too
  };
  test::run(*loop, main());
  loop->close();
}

#ifdef __linux__
TEST_CASE("Unix servers on Linux abstract names leave no file") {
  auto loop = make_loop();
  auto main = [&]() -> aio::Task<void> {
    std::string name = std::string(1, '\0') + "aio-test-" + std::to_string(::getpid());
    auto server = co_await loop->create_unix_server(echo_factory(), name);
    co_await echo_round_trip(*loop, server, name, "abstract");
  };
  test::run(*loop, main());
  loop->close();
}
#endif

TEST_CASE("start_unix_server and open_unix_connection: a line round trip") {
  auto loop = make_loop();
  TempPath where;
  auto main = [&]() -> aio::Task<void> {
    aio::ClientConnected serve = [](aio::StreamReader reader, aio::StreamWriter writer) -> aio::Task<void> {
      std::string line = co_await reader.readline();
      writer.write("echo: " + line);
      co_await writer.drain();
      writer.close();
      co_await writer.wait_closed();
    };
    auto server = co_await aio::start_unix_server(serve, where.path);
    auto [reader, writer] = co_await aio::open_unix_connection(where.path);
    writer.write("hello\n");
    co_await writer.drain();
    CHECK(co_await reader.readline() == "echo: hello\n");
    CHECK((co_await reader.read()).empty());
    writer.close();
    co_await writer.wait_closed();
    server->close();
    co_await aio::wait_for(server->wait_closed(), 5.0);
  };
  test::run(*loop, main());
  loop->close();
}

TEST_CASE("Unix servers and connections reject bad input with clear errors") {
  auto loop = make_loop();
  TempPath where;
  auto main = [&]() -> aio::Task<void> {
    CHECK_THROWS_AS(co_await loop->create_unix_server(echo_factory(), ""), std::invalid_argument);
    CHECK_THROWS_AS(co_await loop->create_unix_server(echo_factory(), std::string(200, 'x')), std::invalid_argument);
    CHECK_THROWS_AS(co_await loop->create_unix_connection(echo_factory(), ""), std::invalid_argument);
    try {
      co_await loop->create_unix_connection(sink_factory(), where.path);
      FAIL("connected to a missing path");
    } catch (const std::system_error& e) {
      CHECK(e.code() == std::errc::no_such_file_or_directory);
      CHECK(std::string(e.what()).find(where.path) != std::string::npos);
    }
    // Not a socket: kept, and binding over it fails.
    { std::ofstream(where.path) << "data"; }
    try {
      co_await loop->create_unix_server(echo_factory(), where.path);
      FAIL("bound over a regular file");
    } catch (const std::system_error& e) {
      CHECK(e.code() == std::errc::address_in_use);
      CHECK(std::string(e.what()).find("already in use") != std::string::npos);
    }
    CHECK(exists(where.path));
    ::unlink(where.path.c_str());

    aio::Socket tcp = aio::Socket::create(AF_INET, SOCK_STREAM);
    tcp.bind(aio::SocketAddress::parse("127.0.0.1", 0));
    try {
      co_await loop->create_unix_server(echo_factory(), std::move(tcp));
      FAIL("took a TCP socket");
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).find("AF_UNIX") != std::string::npos);
    }
    aio::Socket dgram = aio::Socket::create(AF_UNIX, SOCK_DGRAM);
    CHECK_THROWS_AS(co_await loop->create_unix_connection(sink_factory(), std::move(dgram)), std::invalid_argument);
    CHECK_THROWS_AS(co_await loop->create_unix_connection(sink_factory(), aio::Socket()), std::invalid_argument);
    CHECK_THROWS_AS(co_await loop->create_unix_server(nullptr, where.path), std::invalid_argument);
    CHECK_FALSE(exists(where.path));  // the failed server left nothing behind
    // A coroutine: the empty callback is refused when it runs.
    CHECK_THROWS_AS(co_await aio::start_unix_server(nullptr, where.path), std::invalid_argument);
  };
  test::run(*loop, main());
  loop->close();
}

#else  // _WIN32

// Windows 10 (1803) and later have AF_UNIX stream sockets; Wine 8.0 does
// not (socket() fails with WSAEAFNOSUPPORT). Either the round trip works or
// the error says what is missing.
TEST_CASE("Unix servers and connections on Windows: a round trip, or a clear error where AF_UNIX is missing") {
  auto loop = make_loop();
  auto main = [&]() -> aio::Task<void> {
    std::string path = "aio-test-" + std::to_string(::GetCurrentProcessId()) + ".sock";
    std::shared_ptr<aio::Server> server;
    try {
      server = co_await loop->create_unix_server(echo_factory(), path);
    } catch (const std::system_error& e) {
      CHECK(e.code() == std::errc::address_family_not_supported);
      CHECK(std::string(e.what()).find("AF_UNIX") != std::string::npos);
      MESSAGE("not checked: no AF_UNIX here (Wine 8.0 lacks it): ", e.what());
      co_return;
    }
    co_await echo_round_trip(*loop, server, path, "windows");
  };
  test::run(*loop, main());
  loop->close();
}

#endif
