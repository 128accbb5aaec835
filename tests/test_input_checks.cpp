// Hard input checks at the API boundary: sizes that make no sense and
// embedded NUL bytes that the C calls underneath would silently cut at.
#include "support.hpp"

#include <core/address.hpp>
#include <net/dns.hpp>
#include <net/protocols.hpp>
#include <net/streams.hpp>

#include <stdexcept>
#include <string>

using namespace std::string_literals;

namespace {

const std::string nul_host = "127.0.0.1\0.evil.example"s;

// The message of the std::invalid_argument that `task` ends with ("" if none).
std::string invalid_message(aio::EventLoop& loop, aio::Task<void> task) {
  try {
    test::run(loop, std::move(task));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const char* part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("input checks: SocketAddress refuses an embedded NUL in a host or a Unix path") {
  CHECK_THROWS_AS(aio::SocketAddress::parse(nul_host, 80), std::invalid_argument);
  CHECK_THROWS_AS(aio::SocketAddress::parse("::1\0x"s, 80), std::invalid_argument);
  try {
    aio::SocketAddress::parse("127.0.0.1\0x"s, 80);
    FAIL("parsed a host with a NUL byte");
  } catch (const std::invalid_argument& e) {
    CHECK(contains(e.what(), "NUL"));
  }
#ifndef _WIN32
  CHECK_THROWS_AS(aio::SocketAddress::unix_path("/tmp/x\0tail"s), std::invalid_argument);
#endif
}

TEST_CASE("input checks: getaddrinfo, create_connection, create_server and datagram endpoints refuse a NUL") {
  auto loop = test::make_loop();
  CHECK(
      contains(invalid_message(
                   *loop, [](aio::EventLoop& l) -> aio::Task<void> { co_await l.getaddrinfo(nul_host, "80"); }(*loop)),
               "host contains a NUL"));
  CHECK(contains(
      invalid_message(
          *loop, [](aio::EventLoop& l) -> aio::Task<void> { co_await l.getaddrinfo("127.0.0.1", "80\0 99"s); }(*loop)),
      "port contains a NUL"));
  auto factory = [] { return std::make_shared<aio::Protocol>(); };
  CHECK(contains(invalid_message(*loop,
                                 [](aio::EventLoop& l, aio::ProtocolFactory f) -> aio::Task<void> {
                                   co_await l.create_connection(std::move(f), nul_host, 9);
                                 }(*loop, factory)),
                 "NUL"));
  CHECK(contains(invalid_message(*loop,
                                 [](aio::EventLoop& l, aio::ProtocolFactory f) -> aio::Task<void> {
                                   co_await l.create_server(std::move(f), nul_host, 0);
                                 }(*loop, factory)),
                 "NUL"));
  auto datagram = [] { return std::make_shared<aio::DatagramProtocol>(); };
  CHECK(contains(invalid_message(*loop,
                                 [](aio::EventLoop& l, aio::ProtocolFactory f) -> aio::Task<void> {
                                   aio::DatagramOptions options;
                                   options.remote_addr = aio::HostPort{nul_host, 9};
                                   co_await l.create_datagram_endpoint(std::move(f), options);
                                 }(*loop, datagram)),
                 "NUL"));
#ifndef _WIN32
  CHECK(contains(invalid_message(*loop,
                                 [](aio::EventLoop& l, aio::ProtocolFactory f) -> aio::Task<void> {
                                   co_await l.create_unix_server(std::move(f), "/tmp/aiocpp-nul\0tail"s);
                                 }(*loop, factory)),
                 "NUL"));
#endif
  loop->close();
}

TEST_CASE("input checks: readexactly with a negative size raises at once (asyncio's ValueError)") {
  auto loop = test::make_loop();
  std::string message = invalid_message(*loop, []() -> aio::Task<void> {
    aio::StreamReader reader;
    reader.feed_data("abc");
    co_await reader.readexactly(-1);
  }());
  CHECK(contains(message, "less than zero"));
  loop->close();
}
