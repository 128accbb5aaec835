// Stream transports over a socket pair (CONTRACTS.md 22-32): one end wrapped
// by connect_accepted_socket, the other driven by hand as the raw peer.
#include <core/address.hpp>
#include <core/log.hpp>
#include <net/protocols.hpp>
#include <net/socket.hpp>
#include <net/transports.hpp>

#include "support.hpp"

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#include <any>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

using test::make_loop;
using test::pattern;
using test::spin;
using test::tcp_pair;

namespace {

// asyncio's MyBaseProto: checks that callbacks come in the order
// connection_made -> data_received* -> eof_received? -> connection_lost.
struct Recorder : aio::Protocol {
  enum class State { initial, connected, eof, closed };
  State state = State::initial;
  std::vector<std::string> events;  // consecutive data_received calls recorded once
  std::string data;
  int made = 0, eofs = 0, lost = 0, paused = 0, resumed = 0;
  std::size_t size_at_pause = 0, size_at_resume = 0;
  std::exception_ptr error;
  aio::Transport* transport = nullptr;  // valid until connection_lost returns
  bool keep_open = false;               // what eof_received returns
  std::function<void(aio::Transport&)> on_made;
  std::function<void(std::string_view)> on_data;
  std::function<void()> on_resume;

  void connection_made(aio::Transport& t) override {
    CHECK(state == State::initial);
    state = State::connected;
    ++made;
    transport = &t;
    events.push_back("made");
    if (on_made) on_made(t);
  }
  void data_received(std::string_view d) override {
    CHECK(state == State::connected);
    CHECK(!d.empty());
    if (events.empty() || events.back() != "data") events.push_back("data");
    data += d;
    if (on_data) on_data(d);
  }
  bool eof_received() override {
    CHECK(state == State::connected);
    state = State::eof;
    ++eofs;
    events.push_back("eof");
    return keep_open;
  }
  void pause_writing() override {
    CHECK((state == State::connected || state == State::eof));
    ++paused;
    if (transport) size_at_pause = transport->get_write_buffer_size();
  }
  void resume_writing() override {
    CHECK((state == State::connected || state == State::eof));
    ++resumed;
    if (transport) size_at_resume = transport->get_write_buffer_size();
    if (on_resume) on_resume();
  }
  void connection_lost(std::exception_ptr e) override {
    CHECK((state == State::connected || state == State::eof));
    state = State::closed;
    ++lost;
    error = e;
    transport = nullptr;
    events.push_back("lost");
  }
};

struct Conn {
  std::shared_ptr<aio::Transport> tr;
  std::shared_ptr<Recorder> proto;
  aio::Socket peer;
};

// Wraps `mine` in a transport with `proto`; `peer` is the raw other end.
Conn wrap(aio::EventLoop& loop, aio::Socket mine, aio::Socket peer,
          std::shared_ptr<Recorder> proto = std::make_shared<Recorder>()) {
  auto [tr, p] = test::run(loop, loop.connect_accepted_socket([proto] { return proto; }, std::move(mine)));
  REQUIRE(tr);
  CHECK(p == proto);
  CHECK(proto->made == 1);  // returns after connection_made ran
  return {tr, proto, std::move(peer)};
}

Conn connect_pair(aio::EventLoop& loop, std::shared_ptr<Recorder> proto = std::make_shared<Recorder>()) {
  auto [a, b] = aio::Socket::socketpair();
  return wrap(loop, std::move(a), std::move(b), std::move(proto));
}

aio::Task<std::string> recv_exactly(aio::EventLoop& loop, aio::Socket& sock, std::size_t n) {
  std::string out;
  while (out.size() < n) {
    std::string chunk = co_await loop.sock_recv(sock, std::min<std::size_t>(n - out.size(), 1 << 20));
    if (chunk.empty()) break;
    out += chunk;
  }
  co_return out;
}

aio::Task<std::string> recv_to_eof(aio::EventLoop& loop, aio::Socket& sock) {
  std::string out;
  for (;;) {
    std::string chunk = co_await loop.sock_recv(sock, 1 << 20);
    if (chunk.empty()) break;
    out += chunk;
  }
  co_return out;
}

void send_now(aio::Socket& sock, std::string_view data) {
  auto sent = sock.try_send(data.data(), data.size());
  REQUIRE(sent);
  REQUIRE(*sent == data.size());
}

// Makes sure the connection is gone, then closes the loop.
void finish(aio::EventLoop& loop, Conn& c) {
  if (c.proto->lost == 0) {
    c.tr->abort();
    test::run_until(
        loop, [&] { return c.proto->lost > 0; }, 5.0);
  }
  CHECK(c.proto->lost == 1);
  loop.close();
}

std::string join(const std::vector<std::string>& events) {
  std::string out;
  for (const auto& e : events) out += (out.empty() ? "" : " ") + e;
  return out;
}

}  // namespace

TEST_CASE("test_net_transport: callbacks come in order and 1 MiB arrives intact (22)") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  Conn c = connect_pair(*loop);
  CHECK(c.tr->get_protocol() == c.proto);
  CHECK(c.tr->is_reading());
  CHECK_FALSE(c.tr->is_closing());
  std::string payload = pattern(1 << 20);
  test::run(*loop, loop->sock_sendall(c.peer, payload));
  c.peer.shutdown_write();
  test::run_until(*loop, [&] { return c.proto->lost > 0; });
  CHECK(c.proto->data.size() == payload.size());
  CHECK(c.proto->data == payload);
  CHECK(c.proto->events == std::vector<std::string>{"made", "data", "eof", "lost"});
  CHECK(c.proto->eofs == 1);
  CHECK_FALSE(c.proto->error);
  CHECK(c.tr->is_closing());
  spin(*loop, 0.05);
  CHECK(c.proto->lost == 1);
  CHECK(errors.contexts.empty());
  finish(*loop, c);
}

TEST_CASE("test_net_transport: connection_lost runs exactly once (23)") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  Conn c = connect_pair(*loop);
  SUBCASE("repeated close") {
    c.tr->close();
    CHECK(c.tr->is_closing());
    c.tr->close();
    c.tr->close();
    test::run_until(*loop, [&] { return c.proto->lost > 0; });
    c.tr->close();
    c.tr->abort();
  }
  SUBCASE("abort during a close that waits for the buffer") {
    c.tr->write(std::string(8 << 20, 'z'));
    REQUIRE(c.tr->get_write_buffer_size() > 0);
    c.tr->close();
    spin(*loop, 0.02);
    CHECK(c.proto->lost == 0);  // still flushing: the peer reads nothing
    c.tr->abort();
    c.tr->abort();
    c.tr->close();
    test::run_until(
        *loop, [&] { return c.proto->lost > 0; }, 2.0);
    c.tr->abort();
  }
  spin(*loop, 0.05);
  CHECK(c.proto->lost == 1);
  CHECK_FALSE(c.proto->error);
  CHECK(c.proto->events.back() == "lost");
  CHECK(errors.contexts.empty());
  finish(*loop, c);
}

TEST_CASE("test_net_transport: close() with buffered data stops reading and flushes first (24)") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  Conn c = connect_pair(*loop);
  std::string payload = pattern(8 << 20);
  c.tr->write(payload);
  REQUIRE(c.tr->get_write_buffer_size() > 0);
  c.tr->close();
  CHECK(c.tr->is_closing());
  CHECK_FALSE(c.tr->is_reading());
#ifndef _WIN32
  // Unread data on a loopback TCP socket would reset the peer at close; an
  // AF_UNIX pair keeps it harmless.
  send_now(c.peer, "late");
#endif
  spin(*loop, 0.05);
  CHECK(c.proto->lost == 0);  // the peer has not read yet
  CHECK(c.proto->data.empty());
  std::string got = test::run(*loop, recv_exactly(*loop, c.peer, payload.size()), 20.0);
  CHECK(got.size() == payload.size());
  CHECK(got == payload);
  test::run_until(*loop, [&] { return c.proto->lost > 0; });
  CHECK_FALSE(c.proto->error);
  CHECK(c.proto->data.empty());  // reading stopped at close()
  CHECK(c.tr->get_write_buffer_size() == 0);
  CHECK(errors.contexts.empty());
  finish(*loop, c);
}

TEST_CASE("test_net_transport: abort() drops the buffer and closes at once (25)") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  Conn c = connect_pair(*loop);
  const std::size_t total = 8 << 20;
  c.tr->write(std::string(total, 'a'));
  REQUIRE(c.tr->get_write_buffer_size() > 0);
  c.tr->abort();
  CHECK(c.tr->is_closing());
  test::run_until(
      *loop, [&] { return c.proto->lost > 0; }, 2.0);
  CHECK_FALSE(c.proto->error);
  CHECK(c.tr->get_write_buffer_size() == 0);
  // The peer reads what was already in the socket, then end of file.
  std::string got = test::run(*loop, recv_to_eof(*loop, c.peer), 5.0);
  CHECK(got.size() < total);
  CHECK(errors.contexts.empty());
  finish(*loop, c);
}

TEST_CASE("test_net_transport: writes after close or connection loss are dropped, with a warning (26)") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  test::CaptureLog log;
  Conn c = connect_pair(*loop);
  SUBCASE("after close") {
    c.tr->close();
    CHECK_NOTHROW(c.tr->write("dropped"));
    CHECK(log.warnings() == 0);  // one dropped write is not yet worth a warning
    for (int i = 0; i < 10; ++i) CHECK_NOTHROW(c.tr->write("dropped"));
    test::run_until(*loop, [&] { return c.proto->lost > 0; });
    for (int i = 0; i < 3; ++i) CHECK_NOTHROW(c.tr->write("dropped"));
    std::string got = test::run(*loop, recv_to_eof(*loop, c.peer), 5.0);
    CHECK(got.empty());
  }
  SUBCASE("after connection loss") {
    c.peer.close();
    test::run_until(*loop, [&] { return c.proto->lost > 0; });
    CHECK(log.warnings() == 0);
    for (int i = 0; i < 10; ++i) CHECK_NOTHROW(c.tr->write("dropped"));
    CHECK(c.tr->get_write_buffer_size() == 0);
  }
  spin(*loop, 0.02);
  CHECK(log.warnings() >= 1);
  CHECK(c.proto->lost == 1);
  CHECK(errors.contexts.empty());
  finish(*loop, c);
}

TEST_CASE("test_net_transport: a write dropped while close() flushes does not stop the flush (24, 26)") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  test::CaptureLog log;
  Conn c = connect_pair(*loop);
  std::string payload = pattern(8 << 20);
  c.tr->write(payload);
  REQUIRE(c.tr->get_write_buffer_size() > 0);
  c.tr->close();
  for (int i = 0; i < 10; ++i) CHECK_NOTHROW(c.tr->write("dropped"));
  CHECK(log.warnings() >= 1);
  std::string got = test::run(*loop, recv_to_eof(*loop, c.peer), 20.0);
  CHECK(got.size() == payload.size());
  CHECK(got == payload);
  test::run_until(*loop, [&] { return c.proto->lost > 0; });
  CHECK_FALSE(c.proto->error);
  CHECK(errors.contexts.empty());
  finish(*loop, c);
}

TEST_CASE("test_net_transport: write buffer limits are validated and re-evaluated at once (27)") {
  auto loop = make_loop();
  Conn c = connect_pair(*loop);
  using Limits = std::pair<std::size_t, std::size_t>;
  CHECK(c.tr->get_write_buffer_limits() == Limits{16384, 65536});
  c.tr->set_write_buffer_limits(1000);
  CHECK(c.tr->get_write_buffer_limits() == Limits{250, 1000});
  c.tr->set_write_buffer_limits(std::nullopt, 100);
  CHECK(c.tr->get_write_buffer_limits() == Limits{100, 400});
  c.tr->set_write_buffer_limits(1000, 10);
  CHECK(c.tr->get_write_buffer_limits() == Limits{10, 1000});
  c.tr->set_write_buffer_limits(500, 500);
  CHECK(c.tr->get_write_buffer_limits() == Limits{500, 500});
  CHECK_THROWS_AS(c.tr->set_write_buffer_limits(100, 200), std::invalid_argument);
  CHECK_THROWS_AS(c.tr->set_write_buffer_limits(-1), std::invalid_argument);
  CHECK_THROWS_AS(c.tr->set_write_buffer_limits(100, -1), std::invalid_argument);
  CHECK_THROWS_AS(c.tr->set_write_buffer_limits(std::nullopt, -4), std::invalid_argument);
  CHECK(c.tr->get_write_buffer_limits() == Limits{500, 500});  // unchanged by a bad call
  c.tr->set_write_buffer_limits(0, 0);
  CHECK(c.tr->get_write_buffer_limits() == Limits{0, 0});
  c.tr->set_write_buffer_limits();
  CHECK(c.tr->get_write_buffer_limits() == Limits{16384, 65536});
  CHECK(c.proto->paused == 0);  // nothing buffered: limits alone never pause

  // A buffer under a high limit does not pause; lowering the limit below it does.
  c.tr->set_write_buffer_limits(64 << 20);
  std::string payload = pattern(4 << 20);
  c.tr->write(payload);
  std::size_t buffered = c.tr->get_write_buffer_size();
  REQUIRE(buffered > 4096);
  spin(*loop, 0.02);
  CHECK(c.proto->paused == 0);
  c.tr->set_write_buffer_limits(1024);
  test::run_until(
      *loop, [&] { return c.proto->paused > 0; }, 1.0);
  CHECK(c.proto->paused == 1);
  CHECK(c.proto->size_at_pause > 1024);
  c.tr->write("more");  // already paused: no second pause_writing
  spin(*loop, 0.02);
  CHECK(c.proto->paused == 1);
  CHECK(c.proto->resumed == 0);
  std::string got = test::run(*loop, recv_exactly(*loop, c.peer, payload.size() + 4), 20.0);
  CHECK(got == payload + "more");
  test::run_until(*loop, [&] { return c.proto->resumed > 0; });
  CHECK(c.proto->resumed == 1);
  CHECK(c.proto->size_at_resume <= 256);
  CHECK(c.proto->paused == 1);
  finish(*loop, c);
}

TEST_CASE("test_net_transport: pause_writing over high, resume_writing at low, also for writelines (27)") {
  auto loop = make_loop();
  Conn c = connect_pair(*loop);
  // More than the pair's kernel buffers can take: on Windows the pair is
  // loopback TCP, where Linux (under Wine) grows the receive buffer up to
  // tcp_rmem's maximum, 32 MiB here, and a 4 MiB write could go through whole.
  std::string payload = pattern(48 << 20);
  SUBCASE("write") { c.tr->write(payload); }
  SUBCASE("writelines") {
    std::string_view all = payload;
    std::vector<std::string_view> parts{all.substr(0, 1), all.substr(1, 1 << 20), all.substr((1 << 20) + 1)};
    c.tr->writelines(parts);
  }
  REQUIRE(c.tr->get_write_buffer_size() > 65536);
  test::run_until(
      *loop, [&] { return c.proto->paused > 0; }, 1.0);
  CHECK(c.proto->paused == 1);
  CHECK(c.proto->size_at_pause > 65536);
  CHECK(c.proto->resumed == 0);
  std::string got = test::run(*loop, recv_exactly(*loop, c.peer, payload.size()), 20.0);
  CHECK(got == payload);
  test::run_until(*loop, [&] { return c.proto->resumed > 0; });
  CHECK(c.proto->resumed == 1);
  CHECK(c.proto->size_at_resume <= 16384);
  CHECK(c.proto->paused == 1);
  CHECK(c.tr->get_write_buffer_size() == 0);
  finish(*loop, c);
}

TEST_CASE("test_net_transport: pause_reading/resume_reading are idempotent (28)") {
  auto loop = make_loop();
  Conn c = connect_pair(*loop);
  CHECK(c.tr->is_reading());
  c.tr->pause_reading();
  c.tr->pause_reading();
  CHECK_FALSE(c.tr->is_reading());
  send_now(c.peer, "abc");
  spin(*loop, 0.05);
  CHECK(c.proto->data.empty());
  c.tr->resume_reading();
  c.tr->resume_reading();
  CHECK(c.tr->is_reading());
  test::run_until(*loop, [&] { return c.proto->data == "abc"; });
  send_now(c.peer, "def");
  test::run_until(*loop, [&] { return c.proto->data == "abcdef"; });
  c.tr->close();
  CHECK_FALSE(c.tr->is_reading());
  test::run_until(*loop, [&] { return c.proto->lost > 0; });
  finish(*loop, c);
}

TEST_CASE(
    "test_net_transport: released by everyone while paused with nothing to write, it closes without connection_lost") {
  // What net/transports.hpp promises, and what asyncio does when the
  // garbage collector takes such a transport.
  auto loop = make_loop();
  auto proto = std::make_shared<Recorder>();
  aio::Socket peer;
  {
    Conn c = connect_pair(*loop, proto);
    c.tr->pause_reading();
    peer = std::move(c.peer);
  }
  // A completion engine's receive in flight holds the transport until
  // bytes come; then it goes too.
  std::string got;
  bool reset = false;
  test::run(*loop, [&]() -> aio::Task<void> {
    try {
      co_await loop->sock_sendall(peer, "x");
      got = co_await recv_to_eof(*loop, peer);
    } catch (const std::system_error&) {
      reset = true;  // closed already (a broken pipe), or with "x" unread (a reset): an end too
    }
  }());
  CHECK(got.empty());
  CHECK(proto->lost == 0);
  CHECK(proto->events == std::vector<std::string>{"made"});
  INFO("reset: " << reset);
  loop->close();
}

TEST_CASE("test_net_transport: pause_reading inside connection_made is honoured (28)") {
  auto loop = make_loop();
  auto [a, b] = aio::Socket::socketpair();
  send_now(b, "early");  // already waiting when the transport starts
  auto proto = std::make_shared<Recorder>();
  proto->on_made = [](aio::Transport& t) {
    t.pause_reading();
    CHECK_FALSE(t.is_reading());
  };
  Conn c = wrap(*loop, std::move(a), std::move(b), proto);
  CHECK_FALSE(c.tr->is_reading());
  spin(*loop, 0.05);
  CHECK(c.proto->data.empty());
  c.tr->resume_reading();
  CHECK(c.tr->is_reading());
  test::run_until(*loop, [&] { return c.proto->data == "early"; });
  finish(*loop, c);
}

TEST_CASE("test_net_transport: end of file from the peer (29)") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  auto proto = std::make_shared<Recorder>();
  SUBCASE("eof_received returns false: the transport closes") {
    Conn c = connect_pair(*loop, proto);
    send_now(c.peer, "bye");
    c.peer.shutdown_write();
    test::run_until(*loop, [&] { return proto->lost > 0; });
    CHECK(proto->events == std::vector<std::string>{"made", "data", "eof", "lost"});
    CHECK(proto->data == "bye");
    CHECK_FALSE(proto->error);
    // The peer sees our end of file too.
    CHECK(test::run(*loop, recv_to_eof(*loop, c.peer), 5.0).empty());
    finish(*loop, c);
  }
  SUBCASE("eof_received returns true: the connection stays half-open") {
    proto->keep_open = true;
    Conn c = connect_pair(*loop, proto);
    c.peer.shutdown_write();
    test::run_until(*loop, [&] { return proto->eofs > 0; });
    spin(*loop, 0.05);
    CHECK(proto->lost == 0);
    CHECK_FALSE(c.tr->is_closing());
    c.tr->write("still here");
    CHECK(test::run(*loop, recv_exactly(*loop, c.peer, 10), 5.0) == "still here");
    c.tr->close();
    test::run_until(*loop, [&] { return proto->lost > 0; });
    CHECK(proto->events == std::vector<std::string>{"made", "eof", "lost"});
    CHECK_FALSE(proto->error);
    CHECK(test::run(*loop, recv_to_eof(*loop, c.peer), 5.0).empty());
    finish(*loop, c);
  }
  CHECK(errors.contexts.empty());
}

TEST_CASE("test_net_transport: write_eof after buffered data (30)") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  Conn c = connect_pair(*loop);
  CHECK(c.tr->can_write_eof());
  SUBCASE("flushes, then shuts the write side down once") {
    std::string payload = pattern(4 << 20);
    c.tr->write(payload);
    REQUIRE(c.tr->get_write_buffer_size() > 0);
    c.tr->write_eof();
    CHECK_NOTHROW(c.tr->write_eof());
    CHECK_THROWS_AS(c.tr->write("late"), std::runtime_error);
    CHECK_FALSE(c.tr->is_closing());
    std::string got = test::run(*loop, recv_to_eof(*loop, c.peer), 20.0);
    CHECK(got.size() == payload.size());
    CHECK(got == payload);
    // The read side still works.
    send_now(c.peer, "back");
    test::run_until(*loop, [&] { return c.proto->data == "back"; });
    CHECK(c.proto->lost == 0);
    c.peer.shutdown_write();
    test::run_until(*loop, [&] { return c.proto->lost > 0; });
    CHECK(c.proto->events == std::vector<std::string>{"made", "data", "eof", "lost"});
    CHECK_FALSE(c.proto->error);
  }
  SUBCASE("with an empty buffer the peer reads end of file at once") {
    c.tr->write_eof();
    CHECK(test::run(*loop, recv_to_eof(*loop, c.peer), 5.0).empty());
    CHECK(c.proto->lost == 0);
  }
  SUBCASE("a no-op after close") {
    c.tr->close();
    CHECK_NOTHROW(c.tr->write_eof());
    test::run_until(*loop, [&] { return c.proto->lost > 0; });
    CHECK_NOTHROW(c.tr->write_eof());
    CHECK_FALSE(c.proto->error);
  }
  CHECK(errors.contexts.empty());
  finish(*loop, c);
}

TEST_CASE("test_net_transport: write_eof from resume_writing shuts the write side once (30)") {
  // The flush that empties the buffer calls resume_writing, which calls
  // write_eof: the write side is shut there, and not again when the flush
  // returns. By then the peer has read everything and closed, and a second
  // shutdown(SHUT_WR) on Linux fails with ENOTCONN (it failed that way, now
  // and then, in the interop test, which does just this).
  using namespace std::chrono_literals;
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  auto [server, client] = tcp_pair(*loop);
  Conn c = wrap(*loop, std::move(client), std::move(server));
  c.tr->set_write_buffer_limits(0, 0);  // resume_writing only once the buffer is empty
  std::string payload = pattern(8 << 20);
  c.tr->write(payload);
  REQUIRE(c.proto->paused == 1);

  std::atomic<bool> peer_closed{false};
  std::string got;
  std::thread peer([&] {
    // Reads to end of file and closes, without the loop; bounded.
    auto deadline = std::chrono::steady_clock::now() + 20s;
    std::vector<char> buffer(1 << 20);
    while (std::chrono::steady_clock::now() < deadline) {
      std::optional<std::size_t> n;
      try {
        n = c.peer.try_recv(buffer.data(), buffer.size());
      } catch (const std::system_error&) {
        break;
      }
      if (!n) {
        std::this_thread::sleep_for(1ms);
        continue;
      }
      if (*n == 0) break;
      got.append(buffer.data(), *n);
    }
    c.peer.close();
    peer_closed = true;
  });
  c.proto->on_resume = [&] {
    c.proto->transport->write_eof();
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!peer_closed && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(50ms);  // the peer's FIN reaches this socket
  };
  test::run_until(
      *loop, [&] { return c.proto->lost > 0; }, 30.0);
  peer.join();
  CHECK(c.proto->resumed == 1);
  CHECK(got.size() == payload.size());
  CHECK(got == payload);
  CHECK_FALSE(c.proto->error);
  CHECK(errors.contexts.empty());
  finish(*loop, c);
}

namespace {

// Whether a plain recv sees that reset as an error (Wine reports end of file).
bool os_reports_reset(aio::EventLoop& loop) {
  auto [server, client] = tcp_pair(loop);
  test::abortive_close(client);
  try {
    test::run(loop, loop.sock_recv(server, 100), 5.0);
    return false;
  } catch (const std::system_error&) {
    return true;
  }
}

}  // namespace

TEST_CASE("test_net_transport: a reset by the peer closes quietly with the error (31)") {
  auto loop = make_loop();
  if (!os_reports_reset(*loop) || test::backend_consumes_socket_errors(*loop)) {
    loop->close();
    return test::skip("this system or backend reports a linger-0 close as end of file (Wine 8.0, libkqueue)");
  }
  test::CaptureErrors errors(*loop);
  auto [server, client] = tcp_pair(*loop);
  Conn c = wrap(*loop, std::move(server), std::move(client));
  test::abortive_close(c.peer);
  test::run_until(*loop, [&] { return c.proto->lost > 0; });
  INFO("callbacks: ", join(c.proto->events));
  REQUIRE(c.proto->error);
  try {
    std::rethrow_exception(c.proto->error);
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::connection_reset);
  } catch (...) {
    FAIL("connection_lost got something other than a std::system_error");
  }
  CHECK(c.tr->is_closing());
  CHECK(errors.contexts.empty());  // a reset is not reported
  finish(*loop, c);
}

// asyncio's proactor transports shut a socket down before closing it
// (_ProactorBasePipeTransport._call_connection_lost), so that the peer sees
// the end even while another descriptor of the socket stays open (a dup, a
// child's copy). Its selector transports only close
// (_SelectorTransport._call_connection_lost): there the duplicate keeps the
// connection up, as asyncio's does, and the case does not apply.
TEST_CASE("test_net_transport: close() and abort() end the connection while a duplicate of the socket is open") {
  for (bool aborting : {false, true}) {
    CAPTURE(aborting);
    auto loop = make_loop();
    if (test::loop_has_readiness(*loop)) {
      loop->close();
      return test::skip("asyncio's selector transports only close their socket: a duplicate keeps it connected");
    }
    auto [server, client] = tcp_pair(*loop);
    aio::Socket copy = test::duplicate_socket(server);
    if (!copy) {
      loop->close();
      return test::skip("this system cannot duplicate a socket");
    }
    Conn c = wrap(*loop, std::move(server), std::move(client));
    if (aborting)
      c.tr->abort();
    else
      c.tr->close();
    test::run_until(*loop, [&] { return c.proto->lost > 0; });
    // The peer sees the end (end of file, or a reset) although `copy` is open.
    bool ended = false;
    auto read_end = [&]() -> aio::Task<void> {
      try {
        co_await recv_to_eof(*loop, c.peer);
      } catch (const std::system_error&) {
      }
      ended = true;
    };
    test::run(*loop, read_end(), 5.0);
    CHECK(ended);
    copy.close();
    finish(*loop, c);
  }
}

TEST_CASE("test_net_transport: a peer reset mid-write loses the connection once, quietly, without SIGPIPE") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  auto [server, client] = tcp_pair(*loop);
  Conn c = wrap(*loop, std::move(server), std::move(client));
  // More than the socket buffers hold: the rest waits in the transport.
  c.tr->write(pattern(16 << 20));
  REQUIRE(c.tr->get_write_buffer_size() > 0);
  CHECK(c.proto->paused == 1);
  spin(*loop, 0.01);
  CHECK(c.proto->lost == 0);
  test::abortive_close(c.peer);
  test::run_until(*loop, [&] { return c.proto->lost > 0; });
  INFO("callbacks: ", join(c.proto->events));
  if (c.proto->error) {
    try {
      std::rethrow_exception(c.proto->error);
    } catch (const std::system_error& e) {
      INFO("error: ", e.what());
      CHECK((e.code() == std::errc::connection_reset || e.code() == std::errc::broken_pipe ||
             e.code() == std::errc::connection_aborted));
    } catch (...) {
      FAIL("connection_lost got something other than a std::system_error");
    }
  } else {
    // libkqueue and Wine may report the reset as end of file: the
    // transport then closes, and its pending data is dropped with it.
    CHECK((test::backend_consumes_socket_errors(*loop) || !os_reports_reset(*loop)));
  }
  CHECK(c.tr->get_write_buffer_size() == 0);
  c.tr->write("after the reset");  // dropped, not a crash
  CHECK(errors.contexts.empty());  // a reset is the peer's doing: not reported
  finish(*loop, c);
}

TEST_CASE("test_net_transport: an exception from data_received is a fatal transport error (32)") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  auto proto = std::make_shared<Recorder>();
  proto->on_data = [](std::string_view) { throw std::runtime_error("boom"); };
  Conn c = connect_pair(*loop, proto);
  send_now(c.peer, "x");
  test::run_until(*loop, [&] { return proto->lost > 0; });
  CHECK(c.tr->is_closing());
  REQUIRE(errors.contexts.size() == 1);
  const auto& ctx = errors.contexts[0];
  CHECK(ctx.transport == c.tr);
  CHECK(ctx.protocol == proto);
  REQUIRE(ctx.exception);
  try {
    std::rethrow_exception(ctx.exception);
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) == "boom");
  } catch (...) {
    FAIL("context.exception is not the thrown std::runtime_error");
  }
  // The loop keeps running and the connection is gone for the peer too.
  spin(*loop, 0.05);
  CHECK(proto->lost == 1);
  CHECK(errors.contexts.size() == 1);
  CHECK(test::run(*loop, recv_to_eof(*loop, c.peer), 5.0).empty());
  finish(*loop, c);
}

namespace {

struct BufRecorder : aio::BufferedProtocol {
  std::vector<char> buffer;
  bool give_empty = false;
  std::string data;
  int made = 0, lost = 0, eofs = 0, gets = 0;
  bool pending = false;  // get_buffer was called and buffer_updated not yet
  std::exception_ptr error;

  explicit BufRecorder(std::size_t size) : buffer(size) {}
  void connection_made(aio::Transport&) override {
    CHECK(made == 0);
    ++made;
  }
  std::span<char> get_buffer(std::size_t) override {
    CHECK(made == 1);
    CHECK(lost == 0);
    ++gets;
    pending = true;
    if (give_empty) return {};
    return {buffer.data(), buffer.size()};
  }
  void buffer_updated(std::size_t n) override {
    CHECK(pending);
    pending = false;
    CHECK(n > 0);
    CHECK(n <= buffer.size());
    data.append(buffer.data(), n);
  }
  bool eof_received() override {
    CHECK(lost == 0);
    ++eofs;
    return false;
  }
  void connection_lost(std::exception_ptr e) override {
    CHECK(made == 1);
    ++lost;
    error = e;
  }
};

}  // namespace

TEST_CASE("test_net_transport: BufferedProtocol reads into the protocol's buffer") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  auto [a, b] = aio::Socket::socketpair();
  aio::Socket peer = std::move(b);
  auto proto = std::make_shared<BufRecorder>(1000);
  SUBCASE("data arrives through get_buffer/buffer_updated") {
    auto [tr, p] = test::run(*loop, loop->connect_accepted_socket([proto] { return proto; }, std::move(a)));
    CHECK(p == proto);
    CHECK(proto->made == 1);
    std::string payload = pattern(300000);
    test::run(*loop, loop->sock_sendall(peer, payload));
    peer.shutdown_write();
    test::run_until(*loop, [&] { return proto->lost > 0; });
    CHECK(proto->data == payload);
    CHECK(proto->gets >= 300);  // 1000-byte buffer
    CHECK(proto->eofs == 1);
    CHECK_FALSE(proto->error);
    CHECK(errors.contexts.empty());
  }
  SUBCASE("an empty buffer is a fatal error") {
    proto->give_empty = true;
    auto [tr, p] = test::run(*loop, loop->connect_accepted_socket([proto] { return proto; }, std::move(a)));
    send_now(peer, "x");
    test::run_until(*loop, [&] { return proto->lost > 0; });
    CHECK(proto->data.empty());
    CHECK(tr->is_closing());
    REQUIRE(errors.contexts.size() == 1);
    CHECK(errors.contexts[0].transport == tr);
    CHECK(errors.contexts[0].protocol == proto);
    CHECK(errors.contexts[0].exception);
    spin(*loop, 0.02);
    CHECK(proto->lost == 1);
  }
  loop->close();
}

TEST_CASE("test_net_transport: get_extra_info") {
  auto loop = make_loop();
  auto [server, client] = tcp_pair(*loop);
  aio::fd_t fd = server.fileno();
  aio::SocketAddress peername = client.getsockname();
  aio::SocketAddress sockname = client.getpeername();
  Conn c = wrap(*loop, std::move(server), std::move(client));
  std::any v = c.tr->get_extra_info("peername");
  REQUIRE(v.type() == typeid(aio::SocketAddress));
  CHECK(std::any_cast<aio::SocketAddress>(v) == peername);
  v = c.tr->get_extra_info("sockname");
  REQUIRE(v.type() == typeid(aio::SocketAddress));
  CHECK(std::any_cast<aio::SocketAddress>(v) == sockname);
  v = c.tr->get_extra_info("socket");
  REQUIRE(v.type() == typeid(aio::fd_t));
  CHECK(std::any_cast<aio::fd_t>(v) == fd);
  CHECK_FALSE(c.tr->get_extra_info("no such thing").has_value());
  CHECK_FALSE(c.tr->get_extra_info("").has_value());
  finish(*loop, c);
}

TEST_CASE("test_net_transport: set_protocol switches the protocol that is called") {
  auto loop = make_loop();
  Conn c = connect_pair(*loop);
  auto second = std::make_shared<Recorder>();
  second->state = Recorder::State::connected;  // it takes over a live connection
  second->transport = c.tr.get();
  c.tr->set_protocol(second);
  CHECK(c.tr->get_protocol() == second);
  send_now(c.peer, "to second");
  test::run_until(*loop, [&] { return second->data == "to second"; });
  c.tr->close();
  test::run_until(*loop, [&] { return second->lost > 0; });
  CHECK(second->lost == 1);
  CHECK(c.proto->data.empty());
  CHECK(c.proto->lost == 0);
  loop->close();
}

namespace {

// A user's protocols, one of each kind: they override nothing but callbacks.
struct MyStream : aio::Protocol {};
struct MyBuffered : aio::BufferedProtocol {
  char memory[16];
  std::span<char> get_buffer(std::size_t) override { return memory; }
  void buffer_updated(std::size_t) override {}
};
struct MyDatagram : aio::DatagramProtocol {};
struct MyOther : aio::BaseProtocol {};

}  // namespace

TEST_CASE("test_net_transport: a protocol answers for its own kind, a user's class overriding nothing") {
  MyStream stream;
  MyBuffered buffered;
  MyDatagram datagram;
  MyOther other;
  aio::BaseProtocol* base = &stream;
  CHECK(base->as_protocol() == &stream);
  CHECK(base->as_buffered_protocol() == nullptr);
  CHECK(base->as_datagram_protocol() == nullptr);
  base = &buffered;
  CHECK(base->as_protocol() == nullptr);
  CHECK(base->as_buffered_protocol() == &buffered);
  CHECK(base->as_datagram_protocol() == nullptr);
  base = &datagram;
  CHECK(base->as_protocol() == nullptr);
  CHECK(base->as_buffered_protocol() == nullptr);
  CHECK(base->as_datagram_protocol() == &datagram);
  base = &other;
  CHECK(base->as_protocol() == nullptr);
  CHECK(base->as_buffered_protocol() == nullptr);
  CHECK(base->as_datagram_protocol() == nullptr);
}

TEST_CASE("test_net_transport: set_protocol refuses a protocol of another kind, naming it, and keeps its own") {
  auto loop = make_loop();
  Conn c = connect_pair(*loop);
  CHECK_THROWS_WITH_AS(
      c.tr->set_protocol(std::make_shared<MyDatagram>()),
      "a stream transport needs an aio::Protocol or aio::BufferedProtocol, got an aio::DatagramProtocol",
      std::invalid_argument);
  CHECK_THROWS_WITH_AS(c.tr->set_protocol(std::make_shared<MyOther>()),
                       doctest::Contains("got another kind of aio::BaseProtocol"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(c.tr->set_protocol(nullptr), doctest::Contains("got null"), std::invalid_argument);
  CHECK(c.tr->get_protocol() == c.proto);
  auto buffered = std::make_shared<MyBuffered>();
  c.tr->set_protocol(buffered);  // the other stream kind is fine
  CHECK(c.tr->get_protocol() == buffered);
  c.tr->set_protocol(c.proto);
  finish(*loop, c);
}

TEST_CASE("test_net_transport: a socket transport tells start_tls and sendfile what it is") {
  auto loop = make_loop();
  Conn c = connect_pair(*loop);
  aio::Transport& transport = *c.tr;
  std::shared_ptr<aio::Transport> shared = transport.shared_handle();
  CHECK(shared == c.tr);  // the transport itself, owned with it
  CHECK_FALSE(shared.owner_before(c.tr));
  CHECK_FALSE(c.tr.owner_before(shared));
  CHECK(transport.stream_transport() != nullptr);
  CHECK_FALSE(transport.is_tls());
  shared.reset();
  finish(*loop, c);
}

TEST_CASE("test_net_transport: connect_accepted_socket rejects what is no stream connection") {
  auto loop = make_loop();
  SUBCASE("a UDP socket") {
    aio::Socket udp = aio::Socket::create(AF_INET, SOCK_DGRAM);
    auto proto = std::make_shared<Recorder>();
    CHECK_THROWS_AS(test::run(*loop, loop->connect_accepted_socket([proto] { return proto; }, std::move(udp))),
                    std::invalid_argument);
    CHECK(proto->made == 0);
  }
  SUBCASE("a factory returning nullptr") {
    auto [a, b] = aio::Socket::socketpair();
    CHECK_THROWS_AS(test::run(*loop, loop->connect_accepted_socket([] { return std::shared_ptr<aio::BaseProtocol>(); },
                                                                   std::move(a))),
                    std::invalid_argument);
  }
  SUBCASE("a factory making a protocol that is no stream protocol") {
    auto [a, b] = aio::Socket::socketpair();
    CHECK_THROWS_WITH_AS(
        test::run(*loop,
                  loop->connect_accepted_socket([] { return std::make_shared<aio::BaseProtocol>(); }, std::move(a))),
        doctest::Contains("the protocol factory must make an aio::Protocol or aio::BufferedProtocol, got another kind"),
        std::invalid_argument);
  }
  SUBCASE("a factory making a datagram protocol") {
    auto [a, b] = aio::Socket::socketpair();
    CHECK_THROWS_WITH_AS(
        test::run(*loop, loop->connect_accepted_socket([] { return std::make_shared<MyDatagram>(); }, std::move(a))),
        "connect_accepted_socket: the protocol factory must make an aio::Protocol or aio::BufferedProtocol, got an "
        "aio::DatagramProtocol",
        std::invalid_argument);
  }
  spin(*loop, 0.01);
  loop->close();
}
