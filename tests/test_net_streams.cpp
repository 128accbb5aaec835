// Streams: open_connection, start_server, StreamReader, StreamWriter, on
// loopback TCP.
#include <net/streams.hpp>

#include "support.hpp"

#include <functional>
#include <memory>
#include <string>
#include <system_error>

using test::make_loop;

namespace {

int port_of(const aio::Server& server) { return server.sockets().front().getsockname().port(); }

// Starts a stream server with `handler`, runs `client(port)`, then closes the server.
void with_server(aio::EventLoop& loop, aio::ClientConnected handler, std::function<aio::Task<void>(int)> client,
                 std::size_t limit = aio::stream_default_limit) {
  auto main = [&]() -> aio::Task<void> {
    auto server = co_await aio::start_server(handler, "127.0.0.1", 0, {}, limit);
    co_await client(port_of(*server));
    server->close();
    server->close_clients();
    co_await aio::wait_for(server->wait_closed(), 5.0);
  };
  test::run(loop, main());
}

// Echoes line by line; an unterminated last line too; closes at end of file.
aio::Task<void> line_echo(aio::StreamReader reader, aio::StreamWriter writer) {
  for (;;) {
    std::string line = co_await reader.readline();
    if (line.empty()) break;
    writer.write(line);
    co_await writer.drain();
  }
  writer.close();
}

// Sends `data`, then closes.
aio::ClientConnected send_and_close(std::string data) {
  return [data](aio::StreamReader, aio::StreamWriter writer) -> aio::Task<void> {
    writer.write(data);
    co_await writer.drain();
    writer.close();
    co_await writer.wait_closed();
  };
}

}  // namespace

TEST_CASE("streams: a line echoed through start_server and open_connection (the README example)") {
  auto loop = make_loop();
  with_server(*loop, line_echo, [](int port) -> aio::Task<void> {
    auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port);
    writer.write("hello\n");
    co_await writer.drain();
    CHECK(co_await reader.readline() == "hello\n");
    writer.write("second line\nthird");
    writer.write_eof();
    CHECK(co_await reader.readline() == "second line\n");
    CHECK(co_await reader.readline() == "third");  // the unterminated tail, then end of file
    CHECK(co_await reader.readline() == "");
    CHECK(reader.at_eof());
    writer.close();
    co_await aio::wait_for(writer.wait_closed(), 5.0);
    CHECK(writer.is_closing());
  });
  loop->close();
}

TEST_CASE("streams: read(n), read() to end of file, readexactly and IncompleteReadError") {
  auto loop = make_loop();
  with_server(*loop, send_and_close("0123456789abc"), [](int port) -> aio::Task<void> {
    auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port);
    CHECK(co_await reader.readexactly(4) == "0123");
    std::string some = co_await reader.read(3);
    CHECK(!some.empty());
    CHECK(some.size() <= 3);
    CHECK(co_await reader.read(0) == "");
    std::string rest = some + co_await reader.read();
    CHECK(rest == "456789abc");
    CHECK(reader.at_eof());
    CHECK(co_await reader.read(10) == "");
    writer.close();
  });
  with_server(*loop, send_and_close("abc"), [](int port) -> aio::Task<void> {
    auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port);
    try {
      co_await reader.readexactly(5);
      FAIL("read 5 bytes of 3");
    } catch (const aio::IncompleteReadError& e) {
      CHECK(e.partial == "abc");
      CHECK(e.expected == 5u);
    }
    writer.close();
  });
  loop->close();
}

TEST_CASE("streams: readuntil with a separator; IncompleteReadError at end of file") {
  auto loop = make_loop();
  with_server(*loop, send_and_close("key=value;;next;;tail"), [](int port) -> aio::Task<void> {
    auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port);
    CHECK(co_await reader.readuntil(";;") == "key=value;;");
    CHECK(co_await reader.readuntil(";;") == "next;;");
    try {
      co_await reader.readuntil(";;");
      FAIL("found a separator that is not there");
    } catch (const aio::IncompleteReadError& e) {
      CHECK(e.partial == "tail");
      CHECK_FALSE(e.expected);
    }
    CHECK_THROWS_AS(co_await reader.readuntil(""), std::invalid_argument);
    writer.close();
  });
  loop->close();
}

TEST_CASE("streams: the buffer limit: LimitOverrunError from readuntil and readline") {
  auto loop = make_loop();
  std::string long_line = std::string(100, 'x') + "\nshort\n";
  with_server(
      *loop, send_and_close(long_line),
      [](int port) -> aio::Task<void> {
        auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port, {}, 16);
        try {
          co_await reader.readline();
          FAIL("no limit");
        } catch (const aio::LimitOverrunError& e) {
          CHECK(std::string(e.what()).find("limit") != std::string::npos);
        }
        // readline dropped the overlong line: it never comes back whole.
        std::string next = co_await reader.readline();
        CHECK(next.find(std::string(17, 'x')) == std::string::npos);
        writer.close();
      },
      16);
  loop->close();
}

TEST_CASE("streams: drain() with flow control delivers everything; a peer that reads slowly is waited for") {
  auto loop = make_loop();
  const std::size_t size = 8 << 20;
  auto slow_reader = [size](aio::StreamReader reader, aio::StreamWriter writer) -> aio::Task<void> {
    std::size_t got = 0;
    while (got < size) {
      co_await aio::sleep(0.001);
      got += (co_await reader.read(256 * 1024)).size();
    }
    writer.write(std::to_string(got) + "\n");
    co_await writer.drain();
    writer.close();
  };
  with_server(*loop, slow_reader, [size](int port) -> aio::Task<void> {
    auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port);
    std::string chunk(1 << 20, 'd');
    for (std::size_t sent = 0; sent < size; sent += chunk.size()) {
      writer.write(chunk);
      co_await writer.drain();
      CHECK(writer.transport().get_write_buffer_size() <= writer.transport().get_write_buffer_limits().second);
    }
    CHECK(co_await reader.readline() == std::to_string(size) + "\n");
    writer.close();
  });
  loop->close();
}

TEST_CASE("streams: two coroutines waiting to read at once is an error") {
  auto loop = make_loop();
  auto quiet = [](aio::StreamReader reader, aio::StreamWriter writer) -> aio::Task<void> {
    co_await reader.read();  // until the client closes
    writer.close();
  };
  with_server(*loop, quiet, [](int port) -> aio::Task<void> {
    auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port);
    auto first = aio::get_running_loop().create_task(reader.read(10));
    co_await aio::sleep(0.01);
    CHECK_THROWS_AS(co_await reader.read(10), std::runtime_error);
    first.cancel();
    CHECK_THROWS_AS(co_await first, aio::CancelledError);
    writer.close();
  });
  loop->close();
}

TEST_CASE("streams: an exception in the connection callback is reported and closes the connection") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  auto failing = [](aio::StreamReader, aio::StreamWriter) -> aio::Task<void> {
    throw std::runtime_error("handler failed");
    co_return;
  };
  with_server(*loop, failing, [&](int port) -> aio::Task<void> {
    auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port);
    CHECK(co_await aio::wait_for(reader.read(), 5.0) == "");  // closed by the server
    REQUIRE(errors.contexts.size() == 1);
    CHECK(errors.contexts[0].message == "Unhandled exception in client_connected_cb");
    CHECK(errors.contexts[0].transport);
    writer.close();
  });
  loop->close();
}

TEST_CASE("streams: drain() after the connection was lost raises") {
  auto loop = make_loop();
  with_server(*loop, send_and_close(""), [](int port) -> aio::Task<void> {
    auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port);
    co_await reader.read();  // the server closed
    writer.close();
    co_await aio::wait_for(writer.wait_closed(), 5.0);
    CHECK_THROWS_AS(co_await writer.drain(), std::system_error);
  });
  loop->close();
}

TEST_CASE("streams: a StreamReader fed by hand; bad arguments") {
  auto loop = make_loop();
  CHECK_THROWS_AS(aio::StreamReader(0), std::invalid_argument);
  aio::StreamReader reader;
  reader.feed_data("line one\nline");
  reader.feed_data(" two\n");
  reader.feed_eof();
  auto main = [&]() -> aio::Task<void> {
    CHECK(co_await reader.readline() == "line one\n");
    CHECK(co_await reader.readline() == "line two\n");
    CHECK(reader.at_eof());
  };
  test::run(*loop, main());
  aio::StreamReader broken;
  broken.set_exception(std::make_exception_ptr(std::runtime_error("broken stream")));
  CHECK_THROWS_WITH_AS(test::run(*loop, broken.read(1)), "broken stream", std::runtime_error);
  loop->close();
}

namespace {

// Byte i of a stream that is not periodic at any power of two.
char pattern_at(std::size_t i) { return static_cast<char>((i * 7 + i / 4093) & 0xff); }

// An echo that stops reading while its own write buffer is full.
struct BackpressureEcho : aio::Protocol {
  aio::Transport* transport = nullptr;
  int paused = 0;
  void connection_made(aio::Transport& t) override { transport = &t; }
  void data_received(std::string_view data) override { transport->write(data); }
  void pause_writing() override {
    ++paused;
    transport->pause_reading();
  }
  void resume_writing() override { transport->resume_reading(); }
};

}  // namespace

TEST_CASE("streams: 64 MiB through an echo server with flow control on both ends, nothing lost or duplicated") {
  auto loop = make_loop();
  const std::size_t total = 64 << 20, chunk = 256 * 1024;
  auto echo = std::make_shared<BackpressureEcho>();
  auto main = [&]() -> aio::Task<void> {
    aio::ProtocolFactory factory = [echo] { return echo; };
    auto server = co_await loop->create_server(factory, "127.0.0.1", 0);
    auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port_of(*server));
    auto send = [&, writer]() mutable -> aio::Task<void> {
      std::string data(chunk, '\0');
      for (std::size_t sent = 0; sent < total; sent += chunk) {
        for (std::size_t i = 0; i < chunk; ++i) data[i] = pattern_at(sent + i);
        writer.write(data);
        co_await writer.drain();
      }
      writer.write_eof();
    };
    auto sending = loop->create_task(send());
    std::size_t received = 0, first_bad = total;
    for (;;) {
      std::string data = co_await reader.read(chunk);
      if (data.empty()) break;
      for (std::size_t i = 0; i < data.size() && first_bad == total; ++i)
        if (data[i] != pattern_at(received + i)) first_bad = received + i;
      received += data.size();
    }
    co_await sending;
    CHECK(received == total);
    CHECK(first_bad == total);
    CHECK(echo->paused > 0);  // the server's flow control did engage
    writer.close();
    co_await writer.wait_closed();
    server->close();
    co_await aio::wait_for(server->wait_closed(), 5.0);
  };
  test::run(*loop, main(), 120.0);
  loop->close();
}

// As every Task<T> function: made outside a running loop, it does nothing
// until run_until_complete schedules it.
TEST_CASE("streams: start_server created outside a running loop runs under run_until_complete") {
  auto loop = make_loop();
  aio::Task<std::shared_ptr<aio::Server>> starting = aio::start_server(line_echo, "127.0.0.1", 0);
  CHECK_FALSE(starting.started());
  std::shared_ptr<aio::Server> server = loop->run_until_complete(starting);
  REQUIRE(server);
  int port = port_of(*server);
  auto client = [](int port) -> aio::Task<std::string> {
    auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port);
    writer.write("made before the loop ran\n");
    co_await writer.drain();
    std::string line = co_await reader.readline();
    writer.close();
    co_await writer.wait_closed();
    co_return line;
  };
  auto connecting = client(port);  // open_connection too: nothing runs yet
  CHECK(test::run(*loop, std::move(connecting)) == "made before the loop ran\n");
  server->close();
  server->close_clients();
  loop->run_until_complete(aio::wait_for(server->wait_closed(), 5.0));
  loop->close();
}
