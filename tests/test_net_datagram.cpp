// Datagram endpoints (create_datagram_endpoint, DatagramTransport,
// DatagramProtocol; CONTRACTS.md 22-27, 32, 36) over loopback UDP and, on
// POSIX, Unix datagram sockets.
#include <core/address.hpp>
#include <core/log.hpp>
#include <net/dns.hpp>
#include <net/protocols.hpp>
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
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#endif

#include <any>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
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

// Checks the order connection_made -> (datagram_received | error_received)*
// -> connection_lost, and records everything.
struct Recorder : aio::DatagramProtocol {
  enum class State { initial, connected, closed };
  State state = State::initial;
  int made = 0, lost = 0, paused = 0, resumed = 0;
  std::vector<std::pair<std::string, aio::SocketAddress>> received;
  std::vector<std::exception_ptr> errors;
  std::exception_ptr lost_error;
  std::size_t size_at_pause = 0, size_at_resume = 0;
  aio::DatagramTransport* transport = nullptr;  // valid until connection_lost returns
  std::function<void(std::string_view, const aio::SocketAddress&)> on_datagram;

  void connection_made(aio::DatagramTransport& t) override {
    CHECK(state == State::initial);
    state = State::connected;
    ++made;
    transport = &t;
  }
  void datagram_received(std::string_view data, const aio::SocketAddress& addr) override {
    CHECK(state == State::connected);
    received.emplace_back(std::string(data), addr);
    if (on_datagram) on_datagram(data, addr);
  }
  void error_received(std::exception_ptr error) override {
    CHECK(state == State::connected);
    errors.push_back(error);
  }
  void pause_writing() override {
    CHECK(state == State::connected);
    ++paused;
    size_at_pause = transport->get_write_buffer_size();
  }
  void resume_writing() override {
    CHECK(state == State::connected);
    ++resumed;
    size_at_resume = transport->get_write_buffer_size();
  }
  void connection_lost(std::exception_ptr error) override {
    CHECK(state == State::connected);
    state = State::closed;
    ++lost;
    lost_error = error;
    transport = nullptr;
  }
  std::vector<std::string> payloads() const {
    std::vector<std::string> out;
    for (const auto& [data, from] : received) out.push_back(data);
    return out;
  }
};

struct Endpoint {
  std::shared_ptr<aio::DatagramTransport> tr;
  std::shared_ptr<Recorder> proto;
  aio::SocketAddress sockname() const { return std::any_cast<aio::SocketAddress>(tr->get_extra_info("sockname")); }
};

aio::ProtocolFactory factory_of(const std::shared_ptr<Recorder>& proto) {
  return [proto] { return proto; };
}

Endpoint open(aio::EventLoop& loop, aio::DatagramOptions options) {
  auto proto = std::make_shared<Recorder>();
  auto [tr, p] = test::run(loop, loop.create_datagram_endpoint(factory_of(proto), options));
  REQUIRE(tr);
  CHECK(p == proto);
  CHECK(proto->made == 1);  // returns after connection_made ran
  return {tr, proto};
}

Endpoint open_socket(aio::EventLoop& loop, aio::Socket sock) {
  auto proto = std::make_shared<Recorder>();
  auto [tr, p] = test::run(loop, loop.create_datagram_endpoint(factory_of(proto), std::move(sock)));
  REQUIRE(tr);
  CHECK(p == proto);
  CHECK(proto->made == 1);
  return {tr, proto};
}

Endpoint open_udp(aio::EventLoop& loop, std::string_view host = "127.0.0.1") {
  return open(loop, {.local_addr = aio::HostPort{host, 0}});
}

void wait_for_datagrams(aio::EventLoop& loop, const Endpoint& e, std::size_t n, double timeout = 5.0) {
  test::run_until(
      loop, [&] { return e.proto->received.size() >= n; }, timeout);
}

// Aborts what is still open, waits for connection_lost, closes the loop.
void finish(aio::EventLoop& loop, std::initializer_list<const Endpoint*> endpoints) {
  for (const Endpoint* e : endpoints)
    if (e->proto->lost == 0) e->tr->abort();
  test::run_until(
      loop,
      [&] {
        for (const Endpoint* e : endpoints)
          if (e->proto->lost == 0) return false;
        return true;
      },
      5.0);
  for (const Endpoint* e : endpoints) CHECK(e->proto->lost == 1);
  loop.close();
}

// A loopback UDP port that nothing listens on (it was free a moment ago).
aio::SocketAddress dead_udp_address() {
  aio::Socket gone = aio::Socket::create(AF_INET, SOCK_DGRAM);
  gone.bind(aio::SocketAddress::parse("127.0.0.1", 0));
  return gone.getsockname();
}

int sockopt(aio::fd_t fd, int level, int name) {
  aio::Socket view = aio::Socket::adopt(fd);  // borrowed: released below, never closed here
  int value = 0;
  try {
    value = view.get_option(level, name);
  } catch (...) {
    view.release();
    throw;
  }
  view.release();
  return value;
}

std::error_code code_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::system_error& e) {
    return e.code();
  } catch (...) {
    FAIL("not a std::system_error");
  }
  return {};
}

template <class F>
std::string invalid_argument_message(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("not std::invalid_argument: ", e.what());
  }
  FAIL("no exception");
  return {};
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("test_net_datagram: round trip over IPv4 loopback, unconnected and connected (22)") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  Endpoint server = open_udp(*loop);
  aio::SocketAddress server_address = server.sockname();
  CHECK(server_address.family() == AF_INET);
  CHECK(server_address.port() != 0);
  Endpoint client = open(*loop, {.remote_addr = aio::HostPort{"127.0.0.1", server_address.port()}});
  CHECK(std::any_cast<aio::SocketAddress>(client.tr->get_extra_info("peername")) == server_address);
  CHECK_FALSE(server.tr->get_extra_info("peername").has_value());

  // Every size, in order, each exactly once; the server echoes to the sender.
  server.proto->on_datagram = [&](std::string_view data, const aio::SocketAddress& from) {
    server.tr->sendto(data, from);
  };
  std::vector<std::string> sent;
  for (std::size_t size : {1, 100, 1000, 8192, 60000}) sent.push_back(pattern(size, static_cast<int>(size)));
  for (const std::string& d : sent) client.tr->sendto(d);
  wait_for_datagrams(*loop, client, sent.size());
  CHECK(server.proto->payloads() == sent);
  CHECK(client.proto->payloads() == sent);
  for (const auto& [data, from] : server.proto->received) CHECK(from == client.sockname());
  for (const auto& [data, from] : client.proto->received) CHECK(from == server_address);
  // The connected client may name its peer, and nobody else.
  client.tr->sendto("named", server_address);
  wait_for_datagrams(*loop, client, sent.size() + 1);
  CHECK(client.proto->received.back().first == "named");
  spin(*loop, 0.02);
  CHECK(server.proto->received.size() == sent.size() + 1);  // exactly once
  CHECK(client.proto->errors.empty());
  CHECK(server.proto->errors.empty());
  CHECK(errors.contexts.empty());
  finish(*loop, {&server, &client});
}

TEST_CASE("test_net_datagram: round trip over IPv6 loopback") {
  auto loop = make_loop();
  try {
    aio::Socket probe = aio::Socket::create(AF_INET6, SOCK_DGRAM);
    probe.bind(aio::SocketAddress::parse("::1", 0));
  } catch (const std::system_error& e) {
    loop->close();
    return test::skip(std::string("no IPv6 loopback here: ") + e.what());
  }
  Endpoint server = open_udp(*loop, "::1");
  aio::SocketAddress server_address = server.sockname();
  CHECK(server_address.family() == AF_INET6);
  Endpoint client = open(*loop, {.remote_addr = aio::HostPort{"::1", server_address.port()}, .family = AF_INET6});
  client.tr->sendto("over six");
  wait_for_datagrams(*loop, server, 1);
  CHECK(server.proto->received[0].first == "over six");
  CHECK(server.proto->received[0].second == client.sockname());
  server.tr->sendto("back", server.proto->received[0].second);
  wait_for_datagrams(*loop, client, 1);
  CHECK(client.proto->received[0].first == "back");
  // IPv4 and IPv6 addresses never pair up.
  std::string message = invalid_argument_message([&] {
    test::run(*loop, loop->create_datagram_endpoint(factory_of(std::make_shared<Recorder>()),
                                                    {.local_addr = aio::HostPort{"127.0.0.1", 0},
                                                     .remote_addr = aio::HostPort{"::1", server_address.port()}}));
  });
  CHECK(contains(message, "no address family in common"));
  finish(*loop, {&server, &client});
}

TEST_CASE("test_net_datagram: empty datagrams are sent and delivered") {
  auto loop = make_loop();
  Endpoint a = open_udp(*loop);
  Endpoint b = open_udp(*loop);
  a.tr->sendto("", b.sockname());
  a.tr->sendto("after", b.sockname());
  wait_for_datagrams(*loop, b, 2);
  CHECK(b.proto->payloads() == std::vector<std::string>{"", "after"});
  CHECK(b.proto->received[0].second == a.sockname());
  finish(*loop, {&a, &b});
}

TEST_CASE("test_net_datagram: a connected endpoint sends to its remote only; an unconnected one needs an address") {
  auto loop = make_loop();
  Endpoint server = open_udp(*loop);
  Endpoint other = open_udp(*loop);
  Endpoint client = open(*loop, {.remote_addr = aio::HostPort{"127.0.0.1", server.sockname().port()}});
  std::string message = invalid_argument_message([&] { client.tr->sendto("x", other.sockname()); });
  CHECK(contains(message, other.sockname().to_string()));
  CHECK(contains(message, server.sockname().to_string()));
  CHECK_THROWS_AS(client.tr->sendto("x", aio::SocketAddress()), std::invalid_argument);
  message = invalid_argument_message([&] { server.tr->sendto("x"); });
  CHECK(contains(message, "no address"));
  // Datagrams from anyone but its peer never reach a connected endpoint.
  other.tr->sendto("stranger", client.sockname());
  server.tr->sendto("peer", client.sockname());
  wait_for_datagrams(*loop, client, 1);
  spin(*loop, 0.05);
  CHECK(client.proto->payloads() == std::vector<std::string>{"peer"});
  // An unconnected endpoint talks to anyone.
  server.tr->sendto("to other", other.sockname());
  wait_for_datagrams(*loop, other, 1);
  CHECK(other.proto->received[0].second == server.sockname());
  finish(*loop, {&server, &other, &client});
}

namespace {

// Whether this OS reports an ICMP port unreachable to a UDP socket at all
// (connected: ECONNREFUSED on Linux; unconnected: WSAECONNRESET on Windows,
// nothing on Linux), seen by a plain recvfrom.
bool os_reports_port_unreachable(aio::EventLoop& loop, bool connected) {
  aio::SocketAddress dead = dead_udp_address();
  aio::Socket sock = aio::Socket::create(AF_INET, SOCK_DGRAM);
  sock.bind(aio::SocketAddress::parse("127.0.0.1", 0));
  if (connected) sock.start_connect(dead);
  try {
    if (connected)
      sock.try_send("?", 1);
    else
      sock.try_sendto("?", 1, dead);
    spin(loop, 0.1);
    char buf[8];
    sock.try_recvfrom(buf, sizeof buf);
    return false;
  } catch (const std::system_error&) {
    return true;
  }
}

}  // namespace

TEST_CASE("test_net_datagram: an ICMP port unreachable goes to error_received; receiving goes on (36)") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  // libkqueue (kqueue on Linux) reads SO_ERROR itself to fill in EV_EOF:
  // the ECONNREFUSED never reaches recvfrom there.
  bool expect_error = !test::backend_consumes_socket_errors(*loop);
  SUBCASE("connected: the error arrives on the endpoint itself") {
    if (!test::loop_has_readiness(*loop) && test::running_under_wine()) {
      // Wine 8.0 gap: once an overlapped WSARecvFrom on a connected UDP
      // socket completed with WSAECONNREFUSED (the ICMP port unreachable),
      // later overlapped receives on it never complete, although datagrams
      // arrive (a non-blocking recvfrom then reads them). Windows goes on.
      MESSAGE("not checked: Wine 8.0 stops completing overlapped receives after a refused UDP datagram");
      return;
    }
    if (!os_reports_port_unreachable(*loop, true)) {
      // Wine 8.0: a connected UDP socket's recv never fails after an ICMP
      // port unreachable (Linux says ECONNREFUSED, Windows WSAECONNRESET).
      MESSAGE("not checked: this system (Wine) does not report an ICMP port unreachable to a UDP socket");
      expect_error = false;
    }
    aio::SocketAddress dead = dead_udp_address();
    Endpoint client = open(*loop, {.remote_addr = aio::HostPort{"127.0.0.1", dead.port()}});
    client.tr->sendto("to nobody");
    if (expect_error) {
      test::run_until(*loop, [&] { return !client.proto->errors.empty(); });
      std::error_code code = code_of(client.proto->errors.front());
      INFO("error: ", code.message());
      CHECK((code == std::errc::connection_refused || code == std::errc::connection_reset));
    } else {
      spin(*loop, 0.1);
    }
    CHECK_FALSE(client.tr->is_closing());
    // Someone listens there now: both directions still work.
    aio::Socket peer = aio::Socket::create(AF_INET, SOCK_DGRAM);
    peer.bind(dead);
    REQUIRE(peer.try_sendto("back", 4, client.sockname()));
    wait_for_datagrams(*loop, client, 1);
    CHECK(client.proto->received[0].first == "back");
    client.tr->sendto("again");
    auto [data, from] = test::run(*loop, loop->sock_recvfrom(peer, 100), 5.0);
    CHECK(data == "again");
    CHECK(client.proto->lost == 0);
    finish(*loop, {&client});
  }
  SUBCASE("unconnected: asyncio's test_datagram_send_to_non_listening_address") {
    bool reported = os_reports_port_unreachable(*loop, false);
    Endpoint one = open_udp(*loop);
    Endpoint two = open_udp(*loop);
    one.tr->sendto("a", two.sockname());
    wait_for_datagrams(*loop, two, 1);
    two.tr->sendto("b", one.sockname());
    wait_for_datagrams(*loop, one, 1);
    one.tr->sendto("c", dead_udp_address());
    spin(*loop, 0.05);
    two.tr->sendto("d", one.sockname());
    wait_for_datagrams(*loop, one, 2);
    CHECK(one.proto->payloads() == std::vector<std::string>{"b", "d"});
    if (reported && expect_error) {
      // Windows: WSAECONNRESET on the next recvfrom (SIO_UDP_CONNRESET).
      REQUIRE_FALSE(one.proto->errors.empty());
      CHECK(code_of(one.proto->errors.front()) == std::errc::connection_reset);
    } else {
      // Linux tells unconnected sockets nothing; nor does Wine 8.0, where
      // Windows would say WSAECONNRESET.
#ifdef _WIN32
      MESSAGE("not checked: this system (Wine) does not report an ICMP port unreachable to a UDP socket");
#endif
      CHECK(one.proto->errors.empty());
    }
    CHECK(one.proto->lost == 0);
    finish(*loop, {&one, &two});
  }
  CHECK(errors.contexts.empty());
}

TEST_CASE("test_net_datagram: a datagram too large goes to error_received; the endpoint stays usable") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  Endpoint a = open_udp(*loop);
  Endpoint b = open_udp(*loop);
  a.tr->sendto(std::string(70000, 'x'), b.sockname());  // over UDP's 65507
  CHECK(a.proto->errors.empty());                       // delivered from the loop, not from inside sendto
  test::run_until(*loop, [&] { return !a.proto->errors.empty(); });
  CHECK(code_of(a.proto->errors.front()) == std::errc::message_size);
  a.tr->sendto("fits", b.sockname());
  wait_for_datagrams(*loop, b, 1);
  CHECK(b.proto->payloads() == std::vector<std::string>{"fits"});
  CHECK(a.proto->lost == 0);
  CHECK(errors.contexts.empty());
  finish(*loop, {&a, &b});
}

TEST_CASE("test_net_datagram: connection_lost runs exactly once; close and abort with nothing queued (23, 25)") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  Endpoint e = open_udp(*loop);
  aio::fd_t fd = std::any_cast<aio::fd_t>(e.tr->get_extra_info("socket"));
  CHECK(fd >= 0);
  SUBCASE("close, again and again, then abort") {
    e.tr->close();
    CHECK(e.tr->is_closing());
    e.tr->close();
    e.tr->abort();
    test::run_until(*loop, [&] { return e.proto->lost > 0; });
    e.tr->close();
    e.tr->abort();
  }
  SUBCASE("abort, then close") {
    e.tr->abort();
    CHECK(e.tr->is_closing());
    e.tr->close();
    test::run_until(*loop, [&] { return e.proto->lost > 0; });
  }
  spin(*loop, 0.05);
  CHECK(e.proto->lost == 1);
  CHECK_FALSE(e.proto->lost_error);
  CHECK_FALSE(e.tr->get_extra_info("socket").has_value());  // the socket is closed
  CHECK(errors.contexts.empty());
  loop->close();
}

TEST_CASE("test_net_datagram: sendto after close is dropped and counted, with a warning after a few (26)") {
  auto loop = make_loop();
  test::CaptureLog log;
  Endpoint a = open_udp(*loop);
  Endpoint b = open_udp(*loop);
  a.tr->close();
  CHECK_NOTHROW(a.tr->sendto("dropped", b.sockname()));
  CHECK(log.warnings() == 0);
  test::run_until(*loop, [&] { return a.proto->lost > 0; });
  for (int i = 0; i < 10; ++i) CHECK_NOTHROW(a.tr->sendto("dropped", b.sockname()));
  CHECK(log.warnings() >= 1);
  // Address mistakes are still mistakes after close.
  CHECK_THROWS_AS(a.tr->sendto("x"), std::invalid_argument);
  spin(*loop, 0.05);
  CHECK(b.proto->received.empty());
  CHECK(a.tr->get_write_buffer_size() == 0);
  finish(*loop, {&a, &b});
}

TEST_CASE("test_net_datagram: write buffer limits are validated (27)") {
  auto loop = make_loop();
  Endpoint e = open_udp(*loop);
  using Limits = std::pair<std::size_t, std::size_t>;
  CHECK(e.tr->get_write_buffer_limits() == Limits{16384, 65536});
  e.tr->set_write_buffer_limits(1000);
  CHECK(e.tr->get_write_buffer_limits() == Limits{250, 1000});
  e.tr->set_write_buffer_limits(std::nullopt, 100);
  CHECK(e.tr->get_write_buffer_limits() == Limits{100, 400});
  CHECK_THROWS_AS(e.tr->set_write_buffer_limits(100, 200), std::invalid_argument);
  CHECK_THROWS_AS(e.tr->set_write_buffer_limits(-1), std::invalid_argument);
  CHECK(e.tr->get_write_buffer_limits() == Limits{100, 400});
  e.tr->set_write_buffer_limits(0, 0);  // nothing queued: still no pause
  CHECK(e.tr->get_write_buffer_size() == 0);
  CHECK(e.proto->paused == 0);
  finish(*loop, {&e});
}

#ifndef _WIN32

// Queuing needs a socket that refuses datagrams, deterministically: UDP on
// loopback never does (the receiver drops what it has no room for), a Unix
// datagram socket whose peer does not read does (EAGAIN once the peer's queue
// or our small send buffer is full). Windows has no Unix datagram sockets.
namespace {

struct UnixPair {
  aio::Socket ours, peer;
  UnixPair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_DGRAM, 0, fds) == 0);
    ours = aio::Socket::adopt(fds[0]);
    peer = aio::Socket::adopt(fds[1]);
    ours.set_blocking(false);
    peer.set_blocking(false);
    ours.set_option(SOL_SOCKET, SO_SNDBUF, 4096);
  }
};

std::string numbered(int i) { return std::to_string(i) + ":" + std::string(1000, static_cast<char>('a' + i % 26)); }

// Sends numbered datagrams until `done()` (at most 100000); returns how many.
int send_until(aio::DatagramTransport& tr, const std::function<bool()>& done, int first = 0) {
  int i = first;
  while (!done() && i < first + 100000) tr.sendto(numbered(i++));
  REQUIRE(done());
  return i - first;
}

// An endpoint over a Unix datagram socket whose peer reads nothing yet, sent
// to until its first datagram is queued.
struct Stalled {
  std::unique_ptr<aio::EventLoop> loop = make_loop();
  test::CaptureErrors errors{*loop};
  UnixPair pair;
  Endpoint e = open_socket(*loop, std::move(pair.ours));
  int sent = send_until(*e.tr, [this] { return e.tr->get_write_buffer_size() > 0; });
};

// Reads what the peer has now; returns the datagrams.
std::vector<std::string> drain(aio::Socket& peer) {
  std::vector<std::string> got;
  std::vector<char> buf(4096);
  while (auto n = peer.try_recv(buf.data(), buf.size())) got.emplace_back(buf.data(), *n);
  return got;
}

}  // namespace

TEST_CASE("test_net_datagram: pause_writing over high, resume_writing at low, whole datagrams in order (27)") {
  Stalled stalled;
  auto& [loop, errors, pair, e, sent] = stalled;
  // A queued datagram counts its size and 8, as asyncio's.
  CHECK(e.tr->get_write_buffer_size() == numbered(sent - 1).size() + 8);
  CHECK(e.proto->paused == 0);
  e.tr->set_write_buffer_limits(3000, 1000);
  sent += send_until(
      *e.tr, [&] { return e.proto->paused > 0; }, sent);
  CHECK(e.proto->paused == 1);
  CHECK(e.proto->size_at_pause > 3000);
  sent += send_until(
      *e.tr, [&] { return e.tr->get_write_buffer_size() > 10000; }, sent);
  CHECK(e.proto->paused == 1);  // no second pause
  std::vector<std::string> got;
  test::run_until(*loop, [&] {
    for (std::string& d : drain(pair.peer)) got.push_back(std::move(d));
    return e.proto->resumed > 0 && e.tr->get_write_buffer_size() == 0 && got.size() == static_cast<std::size_t>(sent);
  });
  CHECK(e.proto->resumed == 1);
  CHECK(e.proto->size_at_resume <= 1000);
  REQUIRE(got.size() == static_cast<std::size_t>(sent));
  for (int i = 0; i < sent; ++i) CHECK(got[static_cast<std::size_t>(i)] == numbered(i));
  CHECK(e.proto->errors.empty());
  CHECK(errors.contexts.empty());
  finish(*loop, {&e});
}

TEST_CASE("test_net_datagram: close() flushes the queue before connection_lost; abort() drops it (24, 25)") {
  Stalled stalled;
  auto& [loop, errors, pair, e, sent] = stalled;
  sent += send_until(
      *e.tr, [&] { return e.tr->get_write_buffer_size() > 5000; }, sent);
  SUBCASE("close") {
    e.tr->close();
    CHECK(e.tr->is_closing());
    spin(*loop, 0.05);
    CHECK(e.proto->lost == 0);  // the peer reads nothing: the queue waits
    std::vector<std::string> got;
    test::run_until(*loop, [&] {
      for (std::string& d : drain(pair.peer)) got.push_back(std::move(d));
      return e.proto->lost > 0;
    });
    for (std::string& d : drain(pair.peer)) got.push_back(std::move(d));
    REQUIRE(got.size() == static_cast<std::size_t>(sent));
    for (int i = 0; i < sent; ++i) CHECK(got[static_cast<std::size_t>(i)] == numbered(i));
  }
  SUBCASE("abort") {
    e.tr->abort();
    CHECK(e.tr->get_write_buffer_size() == 0);
    test::run_until(
        *loop, [&] { return e.proto->lost > 0; }, 2.0);
    // The peer has what the socket took before, in order; the queue is gone.
    std::vector<std::string> got = drain(pair.peer);
    CHECK(got.size() < static_cast<std::size_t>(sent));
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == numbered(static_cast<int>(i)));
  }
  CHECK_FALSE(e.proto->lost_error);
  CHECK(e.proto->errors.empty());
  CHECK(errors.contexts.empty());
  finish(*loop, {&e});
}

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/aiocpp-dgram-XXXXXX";
    REQUIRE(mkdtemp(name));
    path = name;
  }
  ~TempDir() {
    for (const char* leaf : {"/a", "/b"}) unlink((path + leaf).c_str());
    rmdir(path.c_str());
  }
};

}  // namespace

TEST_CASE("test_net_datagram: Unix datagram sockets by path") {
  auto loop = make_loop();
  TempDir dir;
  std::string a_path = dir.path + "/a", b_path = dir.path + "/b";
  Endpoint a = open(*loop, {.local_addr = aio::HostPort{a_path, 0}, .family = AF_UNIX});
  CHECK(a.sockname().path() == a_path);
  Endpoint b =
      open(*loop, {.local_addr = aio::HostPort{b_path, 0}, .remote_addr = aio::HostPort{a_path, 0}, .family = AF_UNIX});
  CHECK(std::any_cast<aio::SocketAddress>(b.tr->get_extra_info("peername")).path() == a_path);
  b.tr->sendto("over a path");
  b.tr->sendto("");
  wait_for_datagrams(*loop, a, 2);
  CHECK(a.proto->payloads() == std::vector<std::string>{"over a path", ""});
  CHECK(a.proto->received[0].second.path() == b_path);
  a.tr->sendto("reply", a.proto->received[0].second);
  wait_for_datagrams(*loop, b, 1);
  CHECK(b.proto->payloads() == std::vector<std::string>{"reply"});
  finish(*loop, {&a, &b});

  // The socket file stays behind; as asyncio, a new endpoint replaces it.
  struct stat st {};
  REQUIRE(stat(a_path.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  auto loop2 = make_loop();
  Endpoint again = open(*loop2, {.local_addr = aio::HostPort{a_path, 0}, .family = AF_UNIX});
  CHECK(again.sockname().path() == a_path);
  std::string message = invalid_argument_message([&] {
    test::run(*loop2, loop2->create_datagram_endpoint(factory_of(std::make_shared<Recorder>()),
                                                      {.local_addr = aio::HostPort{b_path, 5}, .family = AF_UNIX}));
  });
  CHECK(contains(message, "port must be 0"));
  finish(*loop2, {&again});
}

#endif  // !_WIN32

TEST_CASE("test_net_datagram: allow_broadcast sets SO_BROADCAST and leaves the remote unconnected") {
  auto loop = make_loop();
  Endpoint server = open_udp(*loop);
  Endpoint plain = open_udp(*loop);
  CHECK(sockopt(std::any_cast<aio::fd_t>(plain.tr->get_extra_info("socket")), SOL_SOCKET, SO_BROADCAST) == 0);
  Endpoint broadcaster = open(*loop, {.local_addr = aio::HostPort{"127.0.0.1", 0},
                                      .remote_addr = aio::HostPort{"127.0.0.1", server.sockname().port()},
                                      .allow_broadcast = true});
  CHECK(sockopt(std::any_cast<aio::fd_t>(broadcaster.tr->get_extra_info("socket")), SOL_SOCKET, SO_BROADCAST) != 0);
  CHECK_FALSE(broadcaster.tr->get_extra_info("peername").has_value());  // as asyncio: not connected
  broadcaster.tr->sendto("to the default remote");
  wait_for_datagrams(*loop, server, 1);
  CHECK(server.proto->payloads() == std::vector<std::string>{"to the default remote"});
  CHECK_THROWS_AS(broadcaster.tr->sendto("x", plain.sockname()), std::invalid_argument);
  finish(*loop, {&server, &plain, &broadcaster});
}

TEST_CASE("test_net_datagram: reuse_port") {
  auto loop = make_loop();
#ifdef SO_REUSEPORT
  Endpoint first = open(*loop, {.local_addr = aio::HostPort{"127.0.0.1", 0}, .reuse_port = true});
  int port = first.sockname().port();
  CHECK(sockopt(std::any_cast<aio::fd_t>(first.tr->get_extra_info("socket")), SOL_SOCKET, SO_REUSEPORT) != 0);
  Endpoint second = open(*loop, {.local_addr = aio::HostPort{"127.0.0.1", port}, .reuse_port = true});
  CHECK(second.sockname() == first.sockname());
  // Without it the address is taken; SO_REUSEADDR is never set for UDP.
  CHECK(sockopt(std::any_cast<aio::fd_t>(first.tr->get_extra_info("socket")), SOL_SOCKET, SO_REUSEADDR) == 0);
  try {
    test::run(*loop, loop->create_datagram_endpoint(factory_of(std::make_shared<Recorder>()),
                                                    {.local_addr = aio::HostPort{"127.0.0.1", port}}));
    FAIL("bound an address in use");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::address_in_use);
  }
  finish(*loop, {&first, &second});
#else
  std::string message = invalid_argument_message([&] {
    test::run(*loop, loop->create_datagram_endpoint(factory_of(std::make_shared<Recorder>()),
                                                    {.local_addr = aio::HostPort{"127.0.0.1", 0}, .reuse_port = true}));
  });
  CHECK(contains(message, "reuse_port"));
  loop->close();
#endif
}

TEST_CASE("test_net_datagram: an existing socket (sock=)") {
  auto loop = make_loop();
  Endpoint server = open_udp(*loop);
  SUBCASE("bound") {
    aio::Socket sock = aio::Socket::create(AF_INET, SOCK_DGRAM);
    sock.bind(aio::SocketAddress::parse("127.0.0.1", 0));
    aio::SocketAddress bound = sock.getsockname();
    Endpoint e = open_socket(*loop, std::move(sock));
    CHECK(e.sockname() == bound);
    CHECK_FALSE(e.tr->get_extra_info("peername").has_value());
    e.tr->sendto("from a socket", server.sockname());
    wait_for_datagrams(*loop, server, 1);
    CHECK(server.proto->received[0].second == bound);
    finish(*loop, {&server, &e});
  }
  SUBCASE("connected: its peer is the remote address") {
    aio::Socket sock = aio::Socket::create(AF_INET, SOCK_DGRAM);
    REQUIRE(sock.start_connect(server.sockname()));
    Endpoint e = open_socket(*loop, std::move(sock));
    CHECK(std::any_cast<aio::SocketAddress>(e.tr->get_extra_info("peername")) == server.sockname());
    e.tr->sendto("connected");
    CHECK_THROWS_AS(e.tr->sendto("x", e.sockname()), std::invalid_argument);
    wait_for_datagrams(*loop, server, 1);
    server.tr->sendto("back", e.sockname());
    wait_for_datagrams(*loop, e, 1);
    finish(*loop, {&server, &e});
  }
  SUBCASE("with any other option: std::invalid_argument naming it") {
    aio::Socket sock = aio::Socket::create(AF_INET, SOCK_DGRAM);
    auto proto = std::make_shared<Recorder>();
    std::string message = invalid_argument_message([&] {
      test::run(*loop, loop->create_datagram_endpoint(
                           factory_of(proto), std::move(sock),
                           {.local_addr = aio::HostPort{"127.0.0.1", 0}, .family = AF_INET, .allow_broadcast = true}));
    });
    CHECK(contains(message, "local_addr=('127.0.0.1', 0)"));
    CHECK(contains(message, "family="));
    CHECK(contains(message, "allow_broadcast"));
    CHECK(proto->made == 0);
    finish(*loop, {&server});
  }
  SUBCASE("not a datagram socket, or none") {
    aio::Socket tcp = aio::Socket::create(AF_INET, SOCK_STREAM);
    std::string message = invalid_argument_message([&] {
      test::run(*loop, loop->create_datagram_endpoint(factory_of(std::make_shared<Recorder>()), std::move(tcp)));
    });
    CHECK(contains(message, "SOCK_DGRAM"));
    CHECK_THROWS_AS(
        test::run(*loop, loop->create_datagram_endpoint(factory_of(std::make_shared<Recorder>()), aio::Socket())),
        std::invalid_argument);
    finish(*loop, {&server});
  }
}

TEST_CASE("test_net_datagram: host names, family only, and the pairing of local and remote addresses") {
  auto loop = make_loop();
  Endpoint server = open_udp(*loop);
  SUBCASE("host names are resolved; only families both addresses have are tried") {
    Endpoint e = open(*loop, {.local_addr = aio::HostPort{"localhost", 0},
                              .remote_addr = aio::HostPort{"127.0.0.1", server.sockname().port()}});
    CHECK(e.sockname().family() == AF_INET);
    e.tr->sendto("by name");
    wait_for_datagrams(*loop, server, 1);
    finish(*loop, {&server, &e});
  }
  SUBCASE("a family alone: an unbound socket, named at its first send") {
    Endpoint e = open(*loop, {.family = AF_INET});
    e.tr->sendto("unbound", server.sockname());
    wait_for_datagrams(*loop, server, 1);
    aio::SocketAddress from = server.proto->received[0].second;
    CHECK(e.sockname().port() == from.port());  // bound to the wildcard address, 0.0.0.0
    server.tr->sendto("reply", from);
    wait_for_datagrams(*loop, e, 1);
    finish(*loop, {&server, &e});
  }
}

TEST_CASE("test_net_datagram: bad arguments are std::invalid_argument saying what is wrong") {
  auto loop = make_loop();
  auto attempt = [&](aio::ProtocolFactory factory, aio::DatagramOptions options) {
    return invalid_argument_message([&] { test::run(*loop, loop->create_datagram_endpoint(factory, options)); });
  };
  auto proto = std::make_shared<Recorder>();
  aio::ProtocolFactory good = factory_of(proto);
  int fds_before = test::open_fd_count();

  CHECK(contains(attempt(good, {}), "unexpected address family"));
  CHECK(contains(attempt(good, {.local_addr = aio::HostPort{"127.0.0.1", 70000}}), "invalid port 70000"));
  CHECK(contains(attempt(good, {.remote_addr = aio::HostPort{"127.0.0.1", -1}}), "invalid port -1"));
  std::string message = attempt(good, {.local_addr = aio::HostPort{"127.0.0.1", 0}, .reuse_address = true});
  CHECK(contains(message, "reuse_address is not allowed for UDP"));
  CHECK(contains(message, "reuse_port"));
  CHECK(contains(attempt(nullptr, {.local_addr = aio::HostPort{"127.0.0.1", 0}}), "factory is empty"));
  CHECK(contains(attempt([] { return std::shared_ptr<aio::BaseProtocol>(); }, {.family = AF_INET}), "returned null"));
  message = attempt([] { return std::make_shared<aio::Protocol>(); }, {.local_addr = aio::HostPort{"127.0.0.1", 0}});
  CHECK(contains(message, "must make an aio::DatagramProtocol"));
  CHECK(contains(message, "got an aio::Protocol"));
  CHECK(proto->made == 0);
  // The failures leaked no socket (libkqueue may meanwhile release descriptors of its own).
  if (fds_before >= 0) CHECK(test::open_fd_count() <= fds_before);
  // A host that is no address (and, with AI_NUMERICHOST, no lookup either).
  try {
    test::run(*loop, loop->create_datagram_endpoint(
                         good, {.local_addr = aio::HostPort{"no-such-host.invalid", 0}, .flags = AI_NUMERICHOST}));
    FAIL("resolved a host that is no address");
  } catch (const std::system_error& e) {
    CHECK(e.code().category() == aio::gai_category());
    CHECK(contains(e.what(), "no-such-host.invalid"));
  }
  // An IPv4 address asked for as IPv6: getaddrinfo's refusal.
  CHECK_THROWS_AS(test::run(*loop, loop->create_datagram_endpoint(
                                       good, {.local_addr = aio::HostPort{"127.0.0.1", 0}, .family = AF_INET6})),
                  std::system_error);
  // A transport refuses a protocol of the wrong kind, and keeps its own.
  Endpoint e = open_udp(*loop);
  CHECK_THROWS_WITH_AS(e.tr->set_protocol(std::make_shared<aio::Protocol>()),
                       "a datagram transport needs an aio::DatagramProtocol, got an aio::Protocol",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(e.tr->set_protocol(nullptr), "a datagram transport needs an aio::DatagramProtocol, got null",
                       std::invalid_argument);
  CHECK(e.tr->get_protocol() == e.proto);
  finish(*loop, {&e});
}

TEST_CASE("test_net_datagram: an exception from datagram_received is a fatal transport error (32)") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  Endpoint a = open_udp(*loop);
  Endpoint b = open_udp(*loop);
  b.proto->on_datagram = [](std::string_view, const aio::SocketAddress&) { throw std::runtime_error("boom"); };
  a.tr->sendto("x", b.sockname());
  a.tr->sendto("y", b.sockname());
  test::run_until(*loop, [&] { return b.proto->lost > 0; });
  CHECK(b.proto->received.size() == 1);
  REQUIRE(errors.contexts.size() == 1);
  CHECK(errors.contexts[0].transport == b.tr);
  CHECK(errors.contexts[0].protocol == b.proto);
  CHECK(b.proto->lost_error);
  finish(*loop, {&a, &b});
}

TEST_CASE("test_net_datagram: set_protocol switches the protocol that is called") {
  auto loop = make_loop();
  Endpoint a = open_udp(*loop);
  Endpoint b = open_udp(*loop);
  auto second = std::make_shared<Recorder>();
  second->state = Recorder::State::connected;  // it takes over a live endpoint
  second->transport = b.tr.get();
  b.tr->set_protocol(second);
  CHECK(b.tr->get_protocol() == second);
  a.tr->sendto("to second", b.sockname());
  test::run_until(*loop, [&] { return !second->received.empty(); });
  CHECK(b.proto->received.empty());
  b.tr->close();
  test::run_until(*loop, [&] { return second->lost > 0; });
  CHECK(b.proto->lost == 0);
  a.tr->abort();
  test::run_until(*loop, [&] { return a.proto->lost > 0; });
  loop->close();
}

TEST_CASE("test_net_datagram: options with temporary host strings inside co_await (GCC 12)") {
  auto loop = make_loop();
  auto proto = std::make_shared<Recorder>();
  aio::ProtocolFactory factory = factory_of(proto);
  auto proto2 = std::make_shared<Recorder>();
  aio::ProtocolFactory factory2 = factory_of(proto2);
  std::shared_ptr<aio::DatagramTransport> kept, kept2;
  auto main = [&]() -> aio::Task<void> {
    // Braced options, a host from a temporary std::string, all in the co_await.
    auto [tr, p] =
        co_await loop->create_datagram_endpoint(factory, {.local_addr = aio::HostPort{std::string("127.0.0.1"), 0}});
    kept = tr;
    // The task outlives the temporary string: the call copied the host.
    CHECK(p == proto);
    int port = std::any_cast<aio::SocketAddress>(kept->get_extra_info("sockname")).port();
    auto pending =
        loop->create_datagram_endpoint(factory2, {.remote_addr = aio::HostPort{std::string("127.0.0.") + "1", port}});
    auto [tr2, p2] = co_await pending;
    kept2 = tr2;
  };
  test::run(*loop, main());
  REQUIRE(kept);
  REQUIRE(kept2);
  kept2->sendto("through temporaries");
  test::run_until(*loop, [&] { return !proto->received.empty(); });
  CHECK(proto->received[0].first == "through temporaries");
  kept->abort();
  kept2->abort();
  test::run_until(*loop, [&] { return proto->lost > 0 && proto2->lost > 0; });
  loop->close();
}
