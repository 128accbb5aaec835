// Happy Eyeballs (RFC 8305): address interleaving, staggered attempts, and
// create_connection's happy_eyeballs_delay / interleave, on loopback.
#include <net/dns.hpp>
#include <net/happy_eyeballs.hpp>
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
#include <sys/socket.h>
#endif

#include <any>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

using test::make_loop;

namespace {

aio::AddrInfo info_of(const char* host, int port) {
  aio::AddrInfo info;
  info.address = aio::SocketAddress::parse(host, port);
  info.family = info.address.family();
  info.type = SOCK_STREAM;
  return info;
}

std::vector<std::string> hosts_of(const std::vector<aio::AddrInfo>& infos) {
  std::vector<std::string> hosts;
  for (const auto& info : infos) hosts.push_back(info.address.host());
  return hosts;
}

// A port nothing listens on (connecting to it is refused).
int dead_port() {
  aio::Socket probe = aio::Socket::create(AF_INET, SOCK_STREAM);
  probe.bind(aio::SocketAddress::parse("127.0.0.1", 0));
  return probe.getsockname().port();
}

// A listener whose accept queue is full: the kernel drops further SYNs, so a
// new connection to it stays pending (for minutes of SYN retries).
struct StuckListener {
  aio::Socket listener;
  aio::Socket queued;  // the connection that fills the queue (listen(0) holds one)
  int port = 0;
};

aio::Task<void> fill(aio::EventLoop& loop, StuckListener& stuck) {
  stuck.listener = aio::Socket::create(AF_INET, SOCK_STREAM);
  stuck.listener.bind(aio::SocketAddress::parse("127.0.0.1", 0));
  stuck.listener.listen(0);
  stuck.port = stuck.listener.getsockname().port();
  stuck.queued = aio::Socket::create(AF_INET, SOCK_STREAM);
  co_await loop.sock_connect(stuck.queued, aio::SocketAddress::parse("127.0.0.1", stuck.port));
}

struct Sink : aio::Protocol {};

}  // namespace

TEST_CASE("interleave_addrinfos: families alternate after the first-family count (RFC 8305 section 4)") {
  std::vector<aio::AddrInfo> infos = {info_of("::1", 1), info_of("::2", 1), info_of("::3", 1), info_of("127.0.0.1", 1),
                                      info_of("127.0.0.2", 1)};
  using V = std::vector<std::string>;
  CHECK(hosts_of(aio::detail::interleave_addrinfos(infos, 1)) == V{"::1", "127.0.0.1", "::2", "127.0.0.2", "::3"});
  CHECK(hosts_of(aio::detail::interleave_addrinfos(infos, 2)) == V{"::1", "::2", "127.0.0.1", "::3", "127.0.0.2"});
  CHECK(hosts_of(aio::detail::interleave_addrinfos(infos, 9)) == V{"::1", "::2", "::3", "127.0.0.1", "127.0.0.2"});
  CHECK(hosts_of(aio::detail::interleave_addrinfos(infos, 0)) == hosts_of(infos));
  std::vector<aio::AddrInfo> v4_first = {info_of("127.0.0.1", 1), info_of("127.0.0.2", 1), info_of("::1", 1)};
  CHECK(hosts_of(aio::detail::interleave_addrinfos(v4_first, 1)) == V{"127.0.0.1", "::1", "127.0.0.2"});
  CHECK(aio::detail::interleave_addrinfos({}, 1).empty());
}

TEST_CASE("connect_staggered: a pending attempt does not hold up the next address past the delay") {
  auto loop = make_loop();
  auto main = [&]() -> aio::Task<void> {
    StuckListener stuck;
    co_await fill(*loop, stuck);
    aio::Socket good = aio::Socket::create(AF_INET, SOCK_STREAM);
    good.bind(aio::SocketAddress::parse("127.0.0.1", 0));
    good.listen(8);
    int good_port = good.getsockname().port();

    std::vector<aio::AddrInfo> infos = {info_of("127.0.0.1", stuck.port), info_of("127.0.0.1", good_port)};
    std::vector<std::exception_ptr> errors;
    aio::Socket sock = co_await aio::detail::connect_staggered(*loop, infos, std::nullopt, 0.05, errors);
    REQUIRE(sock);
    CHECK(sock.getpeername().port() == good_port);
    CHECK(errors.empty());  // the stuck attempt was cancelled, not failed

    // Without a delay the attempts are sequential: the pending one blocks
    // the next, so the call is still waiting when the caller gives up.
    std::vector<std::exception_ptr> none;
    auto sequential = aio::detail::connect_staggered(*loop, infos, std::nullopt, std::nullopt, none);
    CHECK_THROWS_AS(co_await aio::wait_for(std::move(sequential), 0.2), aio::TimeoutError);
    CHECK(none.empty());
  };
  test::run(*loop, main());
  loop->close();
}

TEST_CASE("connect_staggered: a failed attempt starts the next at once; every error is kept") {
  auto loop = make_loop();
  auto main = [&]() -> aio::Task<void> {
    aio::Socket good = aio::Socket::create(AF_INET, SOCK_STREAM);
    good.bind(aio::SocketAddress::parse("127.0.0.1", 0));
    good.listen(8);
    int good_port = good.getsockname().port();
    int dead = dead_port();

    // A delay far beyond the test's deadline: only the failure can start
    // the second attempt.
    std::vector<std::exception_ptr> errors;
    std::vector<aio::AddrInfo> infos = {info_of("127.0.0.1", dead), info_of("127.0.0.1", good_port)};
    aio::Socket sock = co_await aio::detail::connect_staggered(*loop, infos, std::nullopt, 3600.0, errors);
    REQUIRE(sock);
    CHECK(sock.getpeername().port() == good_port);
    REQUIRE(errors.size() == 1);
    CHECK_THROWS_AS(std::rethrow_exception(errors[0]), std::system_error);

    // Every address fails: an empty socket and one error per attempt.
    std::vector<std::exception_ptr> all;
    std::vector<aio::AddrInfo> dead_ones = {info_of("127.0.0.1", dead), info_of("127.0.0.1", dead_port()),
                                            info_of("127.0.0.1", dead_port())};
    aio::Socket none = co_await aio::detail::connect_staggered(*loop, dead_ones, std::nullopt, 0.01, all);
    CHECK_FALSE(none);
    CHECK(all.size() == 3);

    // local_addr of another family fails that attempt only.
    std::vector<std::exception_ptr> family;
    std::vector<aio::AddrInfo> v4 = {info_of("127.0.0.1", good_port)};
    aio::Socket bound =
        co_await aio::detail::connect_staggered(*loop, v4, aio::SocketAddress::parse("::1", 0), std::nullopt, family);
    CHECK_FALSE(bound);
    REQUIRE(family.size() == 1);
    try {
      std::rethrow_exception(family[0]);
    } catch (const std::system_error& e) {
      CHECK(e.code() == std::errc::address_family_not_supported);
      CHECK(std::string(e.what()).find("local_addr") != std::string::npos);
    }
  };
  test::run(*loop, main());
  loop->close();
}

TEST_CASE("create_connection with happy_eyeballs_delay and interleave") {
  auto loop = make_loop();
  auto main = [&]() -> aio::Task<void> {
    auto factory = [] { return std::make_shared<Sink>(); };
    auto server = co_await loop->create_server(factory, "127.0.0.1", 0);
    int port = server->sockets().front().getsockname().port();
    // "localhost" may resolve to ::1 as well, where nothing listens: the
    // IPv4 address must still win.
    auto [a, pa] = co_await loop->create_connection(factory, "localhost", port, {.happy_eyeballs_delay = 0.25});
    CHECK(std::any_cast<aio::SocketAddress>(a->get_extra_info("peername")).port() == port);
    a->close();
    auto [b, pb] =
        co_await loop->create_connection(factory, "127.0.0.1", port, {.happy_eyeballs_delay = 0.0, .interleave = 2});
    CHECK(std::any_cast<aio::SocketAddress>(b->get_extra_info("peername")).port() == port);
    b->close();

    CHECK_THROWS_AS(co_await loop->create_connection(factory, "127.0.0.1", port, {.happy_eyeballs_delay = -1.0}),
                    std::invalid_argument);
    CHECK_THROWS_AS(co_await loop->create_connection(
                        factory, "127.0.0.1", port, {.happy_eyeballs_delay = std::numeric_limits<double>::quiet_NaN()}),
                    std::invalid_argument);
    CHECK_THROWS_AS(co_await loop->create_connection(factory, "127.0.0.1", port,
                                                     {.happy_eyeballs_delay = std::numeric_limits<double>::infinity()}),
                    std::invalid_argument);
    try {
      co_await loop->create_connection(factory, "127.0.0.1", port, {.interleave = -1});
      FAIL("accepted interleave = -1");
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).find("interleave must be >= 0") != std::string::npos);
    }

    // Refused with a delay: the same error as without one.
    try {
      co_await loop->create_connection(factory, "127.0.0.1", dead_port(), {.happy_eyeballs_delay = 0.1});
      FAIL("connected to a dead port");
    } catch (const std::system_error& e) {
      if (test::backend_consumes_socket_errors(*loop))
        CHECK(e.code() == std::errc::not_connected);
      else
        CHECK(e.code() == std::errc::connection_refused);
    }
    server->close();
    co_await aio::wait_for(server->wait_closed(), 5.0);
  };
  test::run(*loop, main());
  loop->close();
}
