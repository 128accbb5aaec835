// sock_sendfile and sendfile (asyncio's test_sendfile / test_sock_lowlevel
// sendfile cases), over socket pairs and loopback TCP. Linux, FreeBSD and
// macOS send regular files natively; Windows' selector loop has no native
// sendfile, so there every case goes through the fallback, as pipes do
// everywhere.
#include <net/protocols.hpp>
#include <net/socket.hpp>
#include <net/transports.hpp>

#include "support.hpp"

#ifdef _WIN32
#include <winsock2.h>
#else
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#include <any>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

using test::make_loop;

namespace {

// Where sendfile without fallback works for a regular file and a stream
// socket: every POSIX loop here, and the proactor (TransmitFile); as asyncio,
// Windows' selector loop has none.
bool has_native_sendfile([[maybe_unused]] const aio::EventLoop& loop) {
#ifdef _WIN32
  return !test::loop_has_readiness(loop);
#else
  return true;
#endif
}

// Bytes whose value at each offset is unlikely elsewhere: a shifted or
// truncated copy does not compare equal.
std::string pattern(std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>(i * 131 + i / 4099);
  return s;
}

aio::Task<std::string> recv_to_eof(aio::EventLoop& loop, aio::Socket& sock) {
  std::string out;
  for (;;) {
    std::string chunk = co_await loop.sock_recv(sock, 1 << 16);
    if (chunk.empty()) co_return out;
    out += chunk;
  }
}

// Whether `got` is `prefix` followed by `tail`, said without printing MiBs.
bool is(const std::string& got, std::string_view prefix, std::string_view tail = {}) {
  return got.size() == prefix.size() + tail.size() && std::string_view(got).substr(0, prefix.size()) == prefix &&
         std::string_view(got).substr(prefix.size()) == tail;
}

struct Sink : aio::Protocol {
  std::string data;
  int paused = 0, resumed = 0, lost = 0;
  std::exception_ptr error;
  void data_received(std::string_view d) override { data += d; }
  void pause_writing() override { ++paused; }
  void resume_writing() override { ++resumed; }
  void connection_lost(std::exception_ptr e) override {
    ++lost;
    error = e;
  }
};

struct Conn {
  std::shared_ptr<aio::Transport> tr;
  std::shared_ptr<Sink> proto = std::make_shared<Sink>();
  aio::Socket peer;  // the other end, read by hand
};

Conn connect(aio::EventLoop& loop) {
  auto [a, b] = aio::Socket::socketpair();
  Conn c;
  c.peer = std::move(b);
  auto proto = c.proto;
  auto made = test::run(loop, loop.connect_accepted_socket([proto] { return proto; }, std::move(a)));
  c.tr = made.first;
  return c;
}

// By reference: GCC 12 destroys a lambda built inside a co_await expression twice.
template <class F>
aio::Task<void> wait_until(const F& done) {
  for (int i = 0; i < 500 && !done(); ++i) co_await aio::sleep(0.01);
}

}  // namespace

TEST_CASE("sock_sendfile sends a whole file byte for byte and leaves the position at its end") {
  auto loop = make_loop();
  const std::string content = pattern(3 << 20);
  test::TempFile file(content);
  file.seek(12345);  // the range starts at `offset`, not at the position
  std::pair<aio::Socket, aio::Socket> pair;
  SUBCASE("socket pair") { pair = aio::Socket::socketpair(); }
  SUBCASE("loopback TCP") { pair = test::tcp_pair(*loop); }
  auto& [a, b] = pair;
  auto main = [&]() -> aio::Task<void> {
    auto receiving = loop->create_task(recv_to_eof(*loop, b));
    CHECK(co_await loop->sock_sendfile(a, file.fd) == content.size());
    a.shutdown_write();
    CHECK(is(co_await receiving, content));
    CHECK(file.position() == static_cast<std::int64_t>(content.size()));
  };
  test::run(*loop, main());
  loop->close();
}

TEST_CASE("sock_sendfile sends [offset, offset + count); past the end it stops there; an empty range sends nothing") {
  auto loop = make_loop();
  const std::string content = pattern(1 << 20);
  const std::size_t size = content.size();
  test::TempFile file(content);
  auto [a, b] = aio::Socket::socketpair();
  auto main = [&]() -> aio::Task<void> {
    auto receiving = loop->create_task(recv_to_eof(*loop, b));
    CHECK(co_await loop->sock_sendfile(a, file.fd, 1000, 5000) == 5000);
    CHECK(file.position() == 6000);
    CHECK(co_await loop->sock_sendfile(a, file.fd, size - 100, 1000) == 100);
    CHECK(file.position() == static_cast<std::int64_t>(size));
    CHECK(co_await loop->sock_sendfile(a, file.fd, size) == 0);
    CHECK(co_await loop->sock_sendfile(a, file.fd, size + 10, 5) == 0);
    CHECK(file.position() == static_cast<std::int64_t>(size + 10));
    CHECK(co_await loop->sock_sendfile(a, file.fd, 7) == size - 7);
    a.shutdown_write();
    std::string expected = content.substr(1000, 5000) + content.substr(size - 100) + content.substr(7);
    CHECK(is(co_await receiving, expected));
  };
  test::run(*loop, main());
  loop->close();
}

TEST_CASE("sock_sendfile without fallback sends natively where the OS has sendfile") {
  auto loop = make_loop();
  const std::string content = pattern(1 << 20);
  test::TempFile file(content);
  auto [a, b] = aio::Socket::socketpair();
  auto main = [&]() -> aio::Task<void> {
    if (!has_native_sendfile(*loop)) {
      CHECK_THROWS_AS(co_await loop->sock_sendfile(a, file.fd, 0, std::nullopt, false), aio::SendfileNotAvailableError);
      co_return;
    }
    auto receiving = loop->create_task(recv_to_eof(*loop, b));
    CHECK(co_await loop->sock_sendfile(a, file.fd, 0, std::nullopt, false) == content.size());
    a.shutdown_write();
    CHECK(is(co_await receiving, content));
  };
  test::run(*loop, main());
  loop->close();
}

TEST_CASE("sock_sendfile from a pipe: SendfileNotAvailableError without fallback, read and sent with it") {
  auto loop = make_loop();
  const std::string content = pattern(60000);  // fits in a pipe's buffer
  test::Pipe pipe;
  pipe.write_all(content);
  pipe.close_write();
  auto [a, b] = aio::Socket::socketpair();
  auto main = [&]() -> aio::Task<void> {
    CHECK_THROWS_AS(co_await loop->sock_sendfile(a, pipe.read_fd, 0, std::nullopt, false),
                    aio::SendfileNotAvailableError);
    CHECK_THROWS_AS(co_await loop->sock_sendfile(a, pipe.read_fd, 10), std::invalid_argument);  // no position
    auto receiving = loop->create_task(recv_to_eof(*loop, b));
    CHECK(co_await loop->sock_sendfile(a, pipe.read_fd, 0, 1000) == 1000);
    CHECK(co_await loop->sock_sendfile(a, pipe.read_fd) == content.size() - 1000);
    CHECK(co_await loop->sock_sendfile(a, pipe.read_fd) == 0);
    a.shutdown_write();
    CHECK(is(co_await receiving, content));
  };
  test::run(*loop, main());
  loop->close();
}

TEST_CASE("sock_sendfile rejects bad arguments with std::invalid_argument") {
  auto loop = make_loop();
  test::TempFile file("data");
  auto [a, b] = aio::Socket::socketpair();
  aio::Socket none;
  auto udp = aio::Socket::create(AF_INET, SOCK_DGRAM);
  auto fails = [&](aio::Task<std::size_t> call) {
    CHECK_THROWS_AS(loop->run_until_complete(std::move(call)), std::invalid_argument);
  };
  fails(loop->sock_sendfile(none, file.fd));
  CHECK_THROWS_WITH_AS(loop->run_until_complete(loop->sock_sendfile(udp, file.fd)),
                       "sock_sendfile: only SOCK_STREAM type sockets are supported", std::invalid_argument);
  fails(loop->sock_sendfile(a, -1));
  fails(loop->sock_sendfile(a, file.fd, 0, 0));
  CHECK_THROWS_WITH_AS(loop->run_until_complete(loop->sock_sendfile(a, file.fd, static_cast<std::size_t>(-1))),
                       "sock_sendfile: offset must be a non-negative integer (got -1)", std::invalid_argument);
  int gone;
  {
    test::Pipe closed;
    gone = closed.read_fd;
  }
  fails(loop->sock_sendfile(a, gone));  // nothing here opens a descriptor meanwhile
#ifndef _WIN32
  // Winsock cannot tell whether a socket blocks.
  a.set_blocking(true);
  CHECK_THROWS_WITH_AS(loop->run_until_complete(loop->sock_sendfile(a, file.fd)),
                       "sock_sendfile: the socket must be non-blocking", std::invalid_argument);
#endif
  CHECK(file.position() == 0);  // untouched
  loop->close();
}

TEST_CASE("cancelling a sock_sendfile blocked on a full socket is prompt; socket and file stay usable") {
  auto loop = make_loop();
  const std::string content = pattern(24 << 20);  // far more than the socket buffers hold
  test::TempFile file(content);
  auto [a, b] = aio::Socket::socketpair();
  auto main = [&]() -> aio::Task<void> {
    auto pending = loop->create_task(loop->sock_sendfile(a, file.fd));
    co_await aio::sleep(0.05);
    REQUIRE_FALSE(pending.done());
    double cancelled_at = loop->time();
    pending.cancel();
    CHECK_THROWS_AS(co_await pending, aio::CancelledError);
    CHECK(loop->time() - cancelled_at < 1.0);
    auto position = static_cast<std::size_t>(file.position());
    CHECK(position > 0);
    CHECK(position < content.size());
    auto receiving = loop->create_task(recv_to_eof(*loop, b));
    co_await loop->sock_sendall(a, "tail");
    a.shutdown_write();
    std::string got = co_await receiving;
    REQUIRE(got.size() >= position + 4);
    std::size_t file_bytes = got.size() - 4;
    CHECK(is(got, std::string_view(content).substr(0, file_bytes), "tail"));
#ifdef _WIN32
    // The fallback counts whole chunks, and a cancelled TransmitFile does not
    // say how much of its range went: the cut-short part went out uncounted.
    CHECK(file_bytes >= position);
#else
    CHECK(file_bytes == position);
#endif
  };
  test::run(*loop, main());
  loop->close();
}

TEST_CASE("sock_sendfile to a peer that has gone fails with a system_error, not SIGPIPE") {
  auto loop = make_loop();
  test::TempFile file(pattern(4 << 20));
  // Wine 8.0: an overlapped send that must wait for room in the socket's
  // buffer (TransmitFile here, or a large WSASend) never completes once the
  // peer has closed; the select loop's send fails there as it should. A
  // peer's reset does fail a pending WSASend (test_proactor.cpp).
  if (!test::loop_has_readiness(*loop) && test::running_under_wine())
    return test::skip("Wine 8.0: an overlapped send waiting for room never completes once the peer has closed");
  auto [a, b] = aio::Socket::socketpair();
  b.close();
  CHECK_THROWS_AS(test::run(*loop, loop->sock_sendfile(a, file.fd)), std::system_error);
  loop->close();
}

TEST_CASE("sendfile over a transport: after its buffered data, refusing writes, with reading paused") {
  auto loop = make_loop();
  const std::string head(8 << 20, 'h');           // buffered before: more than the socket takes
  const std::string content = pattern(16 << 20);  // still sending after a pause
  test::TempFile file(content);
  Conn c = connect(*loop);
  auto main = [&]() -> aio::Task<void> {
    c.tr->write(head);
    CHECK(c.proto->paused == 1);
    auto sending = loop->create_task(loop->sendfile(*c.tr, file.fd));
    co_await aio::sleep(0.05);
    REQUIRE_FALSE(sending.done());
    CHECK_THROWS_WITH_AS(c.tr->write("x"), "unable to write; sendfile is in progress", std::runtime_error);
    CHECK_FALSE(c.tr->is_reading());
    auto receiving = loop->create_task(recv_to_eof(*loop, c.peer));
    CHECK(co_await sending == content.size());
    CHECK(file.position() == static_cast<std::int64_t>(content.size()));
    CHECK(c.tr->is_reading());
    CHECK(c.proto->paused == c.proto->resumed);  // held back, then caught up
    c.tr->write("after");
    co_await loop->sock_sendall(c.peer, "ping");
    auto got_ping = [&] { return c.proto->data.size() >= 4; };
    co_await wait_until(got_ping);
    CHECK(c.proto->data == "ping");
    c.tr->close();
    CHECK(is(co_await receiving, head + content, "after"));
  };
  test::run(*loop, main(), 30.0);
  loop->close();
}

TEST_CASE("sendfile over a transport: offset and count, and a pipe through the fallback under flow control") {
  auto loop = make_loop();
  const std::string content = pattern(1 << 20);
  const std::string piped = pattern(60000).substr(100);
  test::TempFile file(content);
  test::Pipe pipe;
  pipe.write_all(piped);
  pipe.close_write();
  Conn c = connect(*loop);
  c.tr->set_write_buffer_limits(4096);
  auto main = [&]() -> aio::Task<void> {
    auto receiving = loop->create_task(recv_to_eof(*loop, c.peer));
    CHECK(co_await loop->sendfile(*c.tr, file.fd, 1000, 300000) == 300000);
    CHECK(file.position() == 301000);
    CHECK_THROWS_AS(co_await loop->sendfile(*c.tr, pipe.read_fd, 0, std::nullopt, false),
                    aio::SendfileNotAvailableError);
    CHECK(co_await loop->sendfile(*c.tr, pipe.read_fd) == piped.size());
    CHECK(c.tr->get_write_buffer_size() == 0);  // returns once flushed
    CHECK(c.proto->paused == c.proto->resumed);
    c.tr->close();
    CHECK(is(co_await receiving, content.substr(1000, 300000) + piped));
  };
  test::run(*loop, main(), 30.0);
  loop->close();
}

TEST_CASE("closing or aborting a transport during sendfile fails the call promptly") {
  auto loop = make_loop();
  const std::string content = pattern(16 << 20);
  test::TempFile file(content);
  test::Pipe pipe;
  pipe.write_all(pattern(60000));
  pipe.close_write();
  bool abort = false;
  int source = file.fd;  // natively (but on Windows' selector loop), blocked on the socket
  SUBCASE("abort, regular file") { abort = true; }
  SUBCASE("abort, pipe") {
    abort = true;
    source = pipe.read_fd;
  }
  SUBCASE("close, regular file") {}
  SUBCASE("close, pipe") { source = pipe.read_fd; }
  Conn c = connect(*loop);
  auto main = [&]() -> aio::Task<void> {
    // The fallback from the pipe then waits for the transport's buffer.
    if (source == pipe.read_fd) c.tr->write(std::string(4 << 20, 'h'));
    auto sending = loop->create_task(loop->sendfile(*c.tr, source));
    co_await aio::sleep(0.05);
    REQUIRE_FALSE(sending.done());
    double closed_at = loop->time();
    if (abort)
      c.tr->abort();
    else
      c.tr->close();
    try {
      co_await sending;
      FAIL("sendfile went on after the transport closed");
    } catch (const std::system_error& e) {
      CHECK(e.code() == std::errc::connection_aborted);
    }
    CHECK(loop->time() - closed_at < 1.0);
    CHECK(c.tr->is_closing());
  };
  test::run(*loop, main(), 30.0);
  c.peer.close();  // a closing transport with data left lets go once its peer has gone
  test::run_until(*loop, [&] { return c.proto->lost == 1; });
  if (abort) CHECK_FALSE(c.proto->error);  // connection_lost(nullptr), as for any abort()
  loop->close();
}

TEST_CASE("cancelling a transport sendfile leaves the transport usable") {
  auto loop = make_loop();
  const std::string content = pattern(16 << 20);
  test::TempFile file(content);
  Conn c = connect(*loop);
  auto main = [&]() -> aio::Task<void> {
    auto sending = loop->create_task(loop->sendfile(*c.tr, file.fd));
    co_await aio::sleep(0.05);
    REQUIRE_FALSE(sending.done());
    sending.cancel();
    CHECK_THROWS_AS(co_await sending, aio::CancelledError);
    CHECK(c.tr->is_reading());
    auto position = static_cast<std::size_t>(file.position());
    auto receiving = loop->create_task(recv_to_eof(*loop, c.peer));
    c.tr->write("tail");
    c.tr->close();
    std::string got = co_await receiving;
    REQUIRE(got.size() >= position + 4);
    CHECK(is(got, std::string_view(content).substr(0, got.size() - 4), "tail"));
  };
  test::run(*loop, main(), 30.0);
  loop->close();
}

namespace {

// A transport that is none of the library's.
struct ForeignTransport : aio::Transport {
  void close() override {}
  bool is_closing() const noexcept override { return false; }
  std::any get_extra_info(std::string_view) const override { return {}; }
  void pause_reading() override {}
  void resume_reading() override {}
  bool is_reading() const noexcept override { return true; }
  void write(std::string_view) override {}
  void writelines(std::span<const std::string_view>) override {}
  void write_eof() override {}
  bool can_write_eof() const noexcept override { return false; }
  void abort() override {}
  std::size_t get_write_buffer_size() const noexcept override { return 0; }
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override { return {0, 0}; }
  void set_write_buffer_limits(std::optional<long long>, std::optional<long long>) override {}
  void set_protocol(std::shared_ptr<aio::BaseProtocol>) override {}
  std::shared_ptr<aio::BaseProtocol> get_protocol() const override { return nullptr; }
};

}  // namespace

TEST_CASE("sendfile refuses a closing or foreign transport, a second sendfile, and bad arguments") {
  auto loop = make_loop();
  test::TempFile file(pattern(16 << 20));
  Conn c = connect(*loop);
  auto run = [&](aio::Task<std::size_t> call) { return loop->run_until_complete(std::move(call)); };
  ForeignTransport foreign;
  CHECK_THROWS_AS(run(loop->sendfile(foreign, file.fd)), std::runtime_error);
  CHECK_THROWS_AS(run(loop->sendfile(*c.tr, -1)), std::invalid_argument);
  CHECK_THROWS_AS(run(loop->sendfile(*c.tr, file.fd, 0, 0)), std::invalid_argument);
  auto main = [&]() -> aio::Task<void> {
    auto first = loop->create_task(loop->sendfile(*c.tr, file.fd));
    co_await aio::sleep(0.02);
    CHECK_THROWS_WITH_AS(co_await loop->sendfile(*c.tr, file.fd), "sendfile is already in progress on this transport",
                         std::runtime_error);
    first.cancel();
    CHECK_THROWS_AS(co_await first, aio::CancelledError);
  };
  test::run(*loop, main());
  c.tr->close();
  CHECK_THROWS_WITH_AS(run(loop->sendfile(*c.tr, file.fd)), "Transport is closing", std::runtime_error);
  c.peer.close();
  test::run_until(*loop, [&] { return c.proto->lost == 1; });
  loop->close();
}
