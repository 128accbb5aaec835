// create_server, Server and create_connection (CONTRACTS.md 33, 34, 37), on
// loopback.
#include <net/dns.hpp>
#include <net/server.hpp>
#include <net/socket.hpp>
#include <net/transports.hpp>

#include "support.hpp"

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

#include <any>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

using test::make_loop;
using test::until;

namespace {

// Echoes what it receives; records its life.
struct Echo : aio::Protocol {
  aio::Transport* transport = nullptr;
  int lost = 0;
  std::exception_ptr error;
  void connection_made(aio::Transport& t) override { transport = &t; }
  void data_received(std::string_view data) override { transport->write(data); }
  void connection_lost(std::exception_ptr e) override {
    ++lost;
    error = e;
  }
};

// Collects what it receives.
struct Sink : aio::Protocol {
  aio::Transport* transport = nullptr;
  std::string received;
  int lost = 0;
  void connection_made(aio::Transport& t) override { transport = &t; }
  void data_received(std::string_view data) override { received += data; }
  void connection_lost(std::exception_ptr) override { ++lost; }
};

struct Echoes {
  std::vector<std::shared_ptr<Echo>> made;
  aio::ProtocolFactory factory() {
    return [this] {
      auto e = std::make_shared<Echo>();
      made.push_back(e);
      return e;
    };
  }
};

aio::ProtocolFactory sink_factory() {
  return [] { return std::make_shared<Sink>(); };
}

int port_of(const aio::Server& server) { return server.sockets().front().getsockname().port(); }

bool nodelay(const aio::Transport& t) {
  aio::Socket view = aio::Socket::adopt(std::any_cast<aio::fd_t>(t.get_extra_info("socket")));
  bool on = view.get_option(IPPROTO_TCP, TCP_NODELAY) != 0;
  view.release();  // not ours
  return on;
}

}  // namespace

TEST_CASE("create_server and create_connection: echo over TCP, TCP_NODELAY on both ends") {
  auto loop = make_loop();
  Echoes echoes;
  auto main = [&]() -> aio::Task<void> {
    auto server = co_await loop->create_server(echoes.factory(), "127.0.0.1", 0);
    CHECK(server->is_serving());
    REQUIRE(server->sockets().size() == 1);
    int port = port_of(*server);
    CHECK(port > 0);
    auto [transport, protocol] = co_await loop->create_connection(sink_factory(), "127.0.0.1", port);
    auto* sink = static_cast<Sink*>(protocol.get());
    transport->write("hello over tcp");
    co_await until([&] { return sink->received.size() == 14; });
    CHECK(sink->received == "hello over tcp");
    REQUIRE(echoes.made.size() == 1);
    CHECK(nodelay(*transport));
    CHECK(nodelay(*echoes.made[0]->transport));
    CHECK(std::any_cast<aio::SocketAddress>(transport->get_extra_info("peername")).port() == port);
    transport->close();
    server->close();
    co_await aio::wait_for(server->wait_closed(), 5.0);
    CHECK(echoes.made[0]->lost == 1);
    CHECK(sink->lost == 1);
    CHECK_FALSE(server->is_serving());
    CHECK(server->sockets().empty());
  };
  test::run(*loop, main());
  loop->close();
}

TEST_CASE("Server.close() refuses new connections; wait_closed() waits for every client") {
  auto loop = make_loop();
  Echoes echoes;
  auto main = [&]() -> aio::Task<void> {
    auto server = co_await loop->create_server(echoes.factory(), "127.0.0.1", 0);
    int port = port_of(*server);
    auto [client, protocol] = co_await loop->create_connection(sink_factory(), "127.0.0.1", port);
    co_await until([&] { return echoes.made.size() == 1; });
    server->close();
    server->close();  // idempotent
    try {
      co_await loop->create_connection(sink_factory(), "127.0.0.1", port);
      FAIL("connected to a closed server");
    } catch (const std::system_error& e) {
      if (test::backend_consumes_socket_errors(*loop))
        CHECK(e.code() == std::errc::not_connected);
      else
        CHECK(e.code() == std::errc::connection_refused);
    }
    // The accepted connection still works.
    client->write("still here");
    auto* sink = static_cast<Sink*>(protocol.get());
    co_await until([&] { return sink->received == "still here"; });
    auto waiting = loop->create_task(server->wait_closed());
    co_await aio::sleep(0.02);
    CHECK_FALSE(waiting.done());
    client->close();
    co_await aio::wait_for(waiting, 5.0);
    CHECK(echoes.made[0]->lost == 1);
  };
  test::run(*loop, main());
  loop->close();
}

namespace {

// Reads `sock` until its connection ends (end of file or an error such as a
// reset); returns true then.
aio::Task<bool> sees_end(aio::EventLoop& loop, aio::Socket& sock) {
  try {
    while (!(co_await loop.sock_recv(sock, 4096)).empty()) {
    }
  } catch (const std::system_error&) {
  }
  co_return true;
}

}  // namespace

// Connections the OS completed for a listener that the application has not
// accepted yet end when the listener closes: a selector loop leaves them in
// the kernel's backlog, which the close resets; an engine that accepts ahead
// (io_uring's multishot accept) must close what it holds for the listener,
// while the loop runs on, not when it closes.
TEST_CASE("a listener closed after one sock_accept: the connections still queued for it end") {
  auto loop = make_loop();
  aio::Socket listener = aio::Socket::create(AF_INET, SOCK_STREAM);
  listener.bind(aio::SocketAddress::parse("127.0.0.1", 0));
  listener.listen(16);
  aio::SocketAddress address = listener.getsockname();
  constexpr int n = 5;
  std::vector<aio::Socket> clients(n);
  int ended = 0;
  auto main = [&]() -> aio::Task<void> {
    for (auto& client : clients) {
      client = aio::Socket::create(AF_INET, SOCK_STREAM);
      co_await loop->sock_connect(client, address);
    }
    auto accepted = co_await loop->sock_accept(listener);
    accepted.first.close();
    co_await aio::sleep(0.05);  // the loop runs on with the others queued
    listener.close();
    for (auto& client : clients)
      if (co_await sees_end(*loop, client)) ++ended;
  };
  test::run(*loop, main(), 5.0);
  CHECK(ended == n);
  loop->close();
}

TEST_CASE("Server.close() with connections not yet accepted: every client sees its connection end") {
  auto loop = make_loop();
  // What the server did accept closes at once.
  struct Closer : aio::Protocol {
    void connection_made(aio::Transport& t) override { t.close(); }
  };
  aio::ProtocolFactory closer = [] { return std::make_shared<Closer>(); };
  constexpr int n = 48;  // more than io_uring's multishot accept keeps queued per listener (32)
  std::vector<aio::Socket> clients(n);
  int ended = 0;
  auto main = [&]() -> aio::Task<void> {
    auto server = co_await loop->create_server(closer, "127.0.0.1", 0);
    aio::SocketAddress address = server->sockets().front().getsockname();
    std::vector<aio::Task<void>> connecting;
    for (auto& client : clients) {
      client = aio::Socket::create(AF_INET, SOCK_STREAM);
      connecting.push_back(loop->create_task(loop->sock_connect(client, address)));
    }
    for (auto& connected : connecting) co_await connected;
    server->close();
    for (auto& client : clients)
      if (co_await sees_end(*loop, client)) ++ended;
    co_await aio::wait_for(server->wait_closed(), 5.0);
  };
  test::run(*loop, main(), 10.0);
  CHECK(ended == n);
  loop->close();
}

TEST_CASE("close_clients() and abort_clients() with a client stuck writing") {
  auto loop = make_loop();
  std::vector<std::shared_ptr<Echo>> made;
  // Server side: floods the client, which never reads.
  aio::ProtocolFactory flood = [&] {
    struct Flood : Echo {
      void connection_made(aio::Transport& t) override {
        Echo::connection_made(t);
        t.write(std::string(16 << 20, 'f'));
      }
    };
    auto p = std::make_shared<Flood>();
    made.push_back(p);
    return p;
  };
  auto main = [&]() -> aio::Task<void> {
    auto server = co_await loop->create_server(flood, "127.0.0.1", 0);
    aio::Socket raw = aio::Socket::create(AF_INET, SOCK_STREAM);
    co_await loop->sock_connect(raw, server->sockets().front().getsockname());
    co_await until(
        [&] { return made.size() == 1 && made[0]->transport && made[0]->transport->get_write_buffer_size() > 0; });
    server->close();
    server->close_clients();  // waits for the buffer to drain: it cannot
    co_await aio::sleep(0.05);
    CHECK(made[0]->transport->is_closing());
    CHECK(made[0]->lost == 0);
    server->abort_clients();  // drops it
    co_await aio::wait_for(server->wait_closed(), 5.0);
    CHECK(made[0]->lost == 1);
  };
  test::run(*loop, main());
  loop->close();
}

TEST_CASE("serve_forever: runs until cancelled, then the server is closed") {
  auto loop = make_loop();
  Echoes echoes;
  auto main = [&]() -> aio::Task<void> {
    auto server = co_await loop->create_server(echoes.factory(), "127.0.0.1", 0, {.start_serving = false});
    CHECK_FALSE(server->is_serving());
    auto forever = loop->create_task(server->serve_forever());
    co_await aio::sleep(0.01);
    CHECK(server->is_serving());
    CHECK_THROWS_AS(co_await server->serve_forever(), std::runtime_error);
    auto [client, protocol] = co_await loop->create_connection(sink_factory(), "127.0.0.1", port_of(*server));
    client->close();
    forever.cancel();
    CHECK_THROWS_AS(co_await aio::wait_for(forever, 5.0), aio::CancelledError);
    CHECK_FALSE(server->is_serving());
    CHECK(server->sockets().empty());
    CHECK_THROWS_AS(co_await server->start_serving(), std::runtime_error);
  };
  test::run(*loop, main());
  loop->close();
}

TEST_CASE("create_server on all interfaces, on a list of hosts, and on a given socket") {
  auto loop = make_loop();
  Echoes echoes;
  auto main = [&]() -> aio::Task<void> {
    auto any = co_await loop->create_server(echoes.factory(), "", 0);
    CHECK(any->sockets().size() >= 1);  // one per family the machine has
    any->close();
    std::vector<std::string> hosts(2, "127.0.0.1");  // named: GCC 12 rejects a braced list inside co_await
    auto listed = co_await loop->create_server(echoes.factory(), hosts, 0);
    CHECK(listed->sockets().size() == 1);  // the same address once
    listed->close();
    aio::Socket sock = aio::Socket::create(AF_INET, SOCK_STREAM);
    sock.bind(aio::SocketAddress::parse("127.0.0.1", 0));
    int port = sock.getsockname().port();
    auto given = co_await loop->create_server(echoes.factory(), std::move(sock), {});
    auto [client, protocol] = co_await loop->create_connection(sink_factory(), "127.0.0.1", port);
    client->close();
    given->close();
    co_await aio::wait_for(given->wait_closed(), 5.0);
  };
  test::run(*loop, main());
  loop->close();
}

TEST_CASE("create_server and create_connection reject bad input with clear errors") {
  auto loop = make_loop();
  Echoes echoes;
  auto main = [&]() -> aio::Task<void> {
    CHECK_THROWS_AS(co_await loop->create_server(echoes.factory(), "127.0.0.1", 70000), std::invalid_argument);
    CHECK_THROWS_AS(co_await loop->create_server(echoes.factory(), "127.0.0.1", -1), std::invalid_argument);
    CHECK_THROWS_AS(co_await loop->create_server(nullptr, "127.0.0.1", 0), std::invalid_argument);
    CHECK_THROWS_AS(co_await loop->create_server(echoes.factory(), "127.0.0.1", 0, {.backlog = 0}),
                    std::invalid_argument);
    aio::Socket udp = aio::Socket::create(AF_INET, SOCK_DGRAM);
    CHECK_THROWS_AS(co_await loop->create_server(echoes.factory(), std::move(udp), {}), std::invalid_argument);
    CHECK_THROWS_AS(co_await loop->create_connection(sink_factory(), "127.0.0.1", 65536), std::invalid_argument);
    // An address in use.
    auto first = co_await loop->create_server(echoes.factory(), "127.0.0.1", 0);
    int port = port_of(*first);
    try {
      co_await loop->create_server(echoes.factory(), "127.0.0.1", port, {.reuse_address = false});
      FAIL("bound twice");
    } catch (const std::system_error& e) {
      CHECK(e.code() == std::errc::address_in_use);
      CHECK(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
    }
    first->close();
    // An unresolvable host (AI_NUMERICHOST: no name server asked).
    try {
      co_await loop->create_connection(sink_factory(), "no-such-host.invalid", 80, {.flags = AI_NUMERICHOST});
      FAIL("resolved");
    } catch (const std::system_error& e) {
      CHECK(e.code().category() == aio::gai_category());
    }
  };
  test::run(*loop, main());
  loop->close();
}

TEST_CASE("create_connection: refused, local_addr, all_errors") {
  auto loop = make_loop();
  Echoes echoes;
  auto main = [&]() -> aio::Task<void> {
    int dead;
    {
      aio::Socket probe = aio::Socket::create(AF_INET, SOCK_STREAM);
      probe.bind(aio::SocketAddress::parse("127.0.0.1", 0));
      dead = probe.getsockname().port();
    }
    try {
      co_await loop->create_connection(sink_factory(), "127.0.0.1", dead);
      FAIL("connected");
    } catch (const std::system_error& e) {
      if (test::backend_consumes_socket_errors(*loop))
        CHECK(e.code() == std::errc::not_connected);
      else
        CHECK(e.code() == std::errc::connection_refused);
    }
    try {
      co_await loop->create_connection(sink_factory(), "127.0.0.1", dead, {.all_errors = true});
      FAIL("connected");
    } catch (const aio::ConnectionErrors& e) {
      CHECK(e.errors.size() == 1);
    }
    auto server = co_await loop->create_server(echoes.factory(), "127.0.0.1", 0);
    aio::Socket probe = aio::Socket::create(AF_INET, SOCK_STREAM);
    probe.bind(aio::SocketAddress::parse("127.0.0.1", 0));
    int local_port = probe.getsockname().port();
    probe.close();
    auto [client, protocol] =
        co_await loop->create_connection(sink_factory(), "127.0.0.1", port_of(*server),
                                         {.local_addr = aio::SocketAddress::parse("127.0.0.1", local_port)});
    CHECK(std::any_cast<aio::SocketAddress>(client->get_extra_info("sockname")).port() == local_port);
    client->close();
    server->close();
    co_await aio::wait_for(server->wait_closed(), 5.0);
  };
  test::run(*loop, main());
  loop->close();
}

#ifndef _WIN32
TEST_CASE("accept under EMFILE: reported, accepting paused for a second, then retried") {
  auto loop = make_loop();
  Echoes echoes;
  test::CaptureErrors errors(*loop);
  rlimit saved;
  REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
  auto main = [&]() -> aio::Task<void> {
    // Listening but not serving yet: the kernel completes the connections,
    // nobody accepts them.
    aio::Socket listener = aio::Socket::create(AF_INET, SOCK_STREAM);
    listener.bind(aio::SocketAddress::parse("127.0.0.1", 0));
    listener.listen(16);
    auto address = listener.getsockname();
    auto server = co_await loop->create_server(echoes.factory(), std::move(listener), {.start_serving = false});
    // Connect first (the client sockets need descriptors), then leave no
    // descriptor for accept().
    std::vector<aio::Socket> clients;
    for (int i = 0; i < 3; ++i) {
      clients.push_back(aio::Socket::create(AF_INET, SOCK_STREAM));
      co_await loop->sock_connect(clients.back(), address);
    }
    // Leave no descriptor for accept(): a low limit, and every number below it taken.
    rlimit tight = saved;
    tight.rlim_cur = 256;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &tight) == 0);
    std::vector<int> fillers;
    for (int fd; (fd = dup(0)) >= 0;) fillers.push_back(fd);
    co_await server->start_serving();
    co_await until([&] { return !errors.contexts.empty(); });
    CHECK(errors.contexts.front().message == "socket.accept() out of system resource");
    CHECK(echoes.made.empty());
    for (int fd : fillers) close(fd);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &saved) == 0);
    // After the pause, accepting resumes by itself.
    co_await until([&] { return echoes.made.size() == 3; }, 5.0);
    server->close();
    server->abort_clients();
    co_await aio::wait_for(server->wait_closed(), 5.0);
  };
  try {
    test::run(*loop, main());
  } catch (...) {
    setrlimit(RLIMIT_NOFILE, &saved);
    throw;
  }
  setrlimit(RLIMIT_NOFILE, &saved);
  loop->close();
}
#endif

// The server keeps only weak references to its clients: a server-side
// transport is owned by its own reader registration. close() or abort()
// from outside any callback must not destroy it in the middle of the call.
TEST_CASE("a server-side transport closed or aborted from outside any callback") {
  auto loop = make_loop();
  Echoes echoes;
  auto main = [&]() -> aio::Task<void> {
    auto server = co_await loop->create_server(echoes.factory(), "127.0.0.1", 0);
    int port = port_of(*server);
    auto [first, first_protocol] = co_await loop->create_connection(sink_factory(), "127.0.0.1", port);
    auto [second, second_protocol] = co_await loop->create_connection(sink_factory(), "127.0.0.1", port);
    co_await until([&] { return echoes.made.size() == 2 && echoes.made[1]->transport; });
    REQUIRE(echoes.made[0]->transport);
    echoes.made[0]->transport->close();  // from the task, not from a protocol callback
    echoes.made[1]->transport->abort();
    co_await until([&] { return echoes.made[0]->lost == 1 && echoes.made[1]->lost == 1; });
    auto* sink = static_cast<Sink*>(first_protocol.get());
    co_await until([&] { return sink->lost == 1; });  // the client saw the close
    first->close();
    second->close();
    server->close();
    co_await aio::wait_for(server->wait_closed(), 5.0);
    CHECK(echoes.made[0]->lost == 1);
    CHECK(echoes.made[1]->lost == 1);
  };
  test::run(*loop, main());
  loop->close();
}
