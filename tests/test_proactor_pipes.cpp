// Named pipes on the proactor loop (asyncio's start_serving_pipe and
// create_pipe_connection; test_windows_events.py). Windows only, and only on
// the proactor: each case returns early elsewhere.
#include "support.hpp"

#ifdef _WIN32
#include <backends/windows_event_loop.hpp>
#include <net/protocols.hpp>
#include <net/transports.hpp>

#include <windows.h>

#include <any>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace {

aio::WindowsProactorEventLoop* proactor_loop(aio::EventLoop& loop) {
  return dynamic_cast<aio::WindowsProactorEventLoop*>(&loop);
}

// A name no other test run uses at the same time.
std::string unique_pipe(const char* what) {
  static int count = 0;
  return std::string(R"(\\.\pipe\aiocpp-test-)") + what + "-" + std::to_string(GetCurrentProcessId()) + "-" +
         std::to_string(++count);
}

// Records what a pipe end receives, checking the protocol order.
struct Peer : aio::Protocol {
  void connection_made(aio::Transport& t) override {
    CHECK(made == 0);
    ++made;
    transport = &t;
  }
  void data_received(std::string_view data) override {
    CHECK(made == 1);
    CHECK(eofs == 0);
    received += data;
    if (echo) transport->write(data);
  }
  bool eof_received() override {
    CHECK(lost == 0);
    ++eofs;
    return false;
  }
  void connection_lost(std::exception_ptr e) override {
    CHECK(lost == 0);
    ++lost;
    error = e;
  }
  void pause_writing() override { ++paused; }
  void resume_writing() override { ++resumed; }

  bool echo = false;
  aio::Transport* transport = nullptr;
  std::string received;
  int made = 0, eofs = 0, lost = 0, paused = 0, resumed = 0;
  std::exception_ptr error;
};

// A server whose protocols are kept here, to be looked at.
struct Served {
  std::vector<std::shared_ptr<Peer>> peers;
  bool echo = false;
  aio::ProtocolFactory factory() {
    return [this] {
      auto peer = std::make_shared<Peer>();
      peer->echo = echo;
      peers.push_back(peer);
      return peer;
    };
  }
};

aio::ProtocolFactory client_factory(std::shared_ptr<Peer>& out) {
  return [&out] {
    out = std::make_shared<Peer>();
    return out;
  };
}

}  // namespace

TEST_CASE("pipes: an echo round trip through start_serving_pipe and create_pipe_connection; extra info") {
  auto loop = test::make_loop();
  auto* proactor = proactor_loop(*loop);
  if (!proactor) return test::skip(test::proactor_only);
  const std::string name = unique_pipe("echo");
  Served served;
  served.echo = true;
  auto main = [&]() -> aio::Task<void> {
    auto server = co_await proactor->start_serving_pipe(served.factory(), name);
    CHECK(server->address() == name);
    std::shared_ptr<Peer> client;
    auto [transport, protocol] = co_await proactor->create_pipe_connection(client_factory(client), name);
    CHECK(protocol == client);
    CHECK(std::any_cast<std::string>(transport->get_extra_info("addr")) == name);
    CHECK(transport->get_extra_info("pipe").has_value());
    CHECK_FALSE(transport->can_write_eof());
    CHECK_THROWS_AS(transport->write_eof(), aio::NotImplementedError);
    transport->write("hello, ");
    transport->write("pipe");
    std::function<bool()> echoed = [&] { return client->received.size() == 11; };
    co_await test::until(echoed);
    CHECK(client->received == "hello, pipe");
    REQUIRE(served.peers.size() == 1);
    CHECK(served.peers[0]->received == "hello, pipe");
    transport->close();
    std::function<bool()> both_lost = [&] { return client->lost == 1 && served.peers[0]->lost == 1; };
    co_await test::until(both_lost);
    // The server's end saw the client go: end of file, then the loss, without an error.
    CHECK(served.peers[0]->eofs == 1);
    CHECK_FALSE(served.peers[0]->error);
    server->close();
    CHECK(server->closed());
  };
  test::run(*loop, main(), 20.0);
  loop->close();
}

TEST_CASE("pipes: several clients at once each get their own connection") {
  auto loop = test::make_loop();
  auto* proactor = proactor_loop(*loop);
  if (!proactor) return test::skip(test::proactor_only);
  const std::string name = unique_pipe("many");
  Served served;
  served.echo = true;
  auto main = [&]() -> aio::Task<void> {
    auto server = co_await proactor->start_serving_pipe(served.factory(), name);
    constexpr int count = 5;
    std::vector<std::shared_ptr<Peer>> clients(count);
    std::vector<std::shared_ptr<aio::Transport>> transports;
    for (int i = 0; i < count; ++i) {
      auto made = co_await proactor->create_pipe_connection(client_factory(clients[i]), name);
      transports.push_back(made.first);
    }
    for (int i = 0; i < count; ++i) transports[i]->write("client " + std::to_string(i));
    std::function<bool()> all_echoed = [&] {
      for (int i = 0; i < count; ++i)
        if (clients[i]->received.size() < 8) return false;
      return true;
    };
    co_await test::until(all_echoed);
    for (int i = 0; i < count; ++i) CHECK(clients[i]->received == "client " + std::to_string(i));
    CHECK(served.peers.size() == count);
    for (auto& transport : transports) transport->close();
    server->close();
    std::function<bool()> all_lost = [&] {
      for (auto& peer : served.peers)
        if (peer->lost == 0) return false;
      return true;
    };
    co_await test::until(all_lost);
  };
  test::run(*loop, main(), 20.0);
  loop->close();
}

TEST_CASE("pipes: 8 MiB each way with flow control engaged arrives byte for byte") {
  auto loop = test::make_loop();
  auto* proactor = proactor_loop(*loop);
  if (!proactor) return test::skip(test::proactor_only);
  const std::string name = unique_pipe("bulk");
  std::string payload(8 << 20, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>((i * 7919) >> 5);
  Served served;
  served.echo = true;
  auto main = [&]() -> aio::Task<void> {
    auto server = co_await proactor->start_serving_pipe(served.factory(), name);
    std::shared_ptr<Peer> client;
    auto made = co_await proactor->create_pipe_connection(client_factory(client), name);
    made.first->set_write_buffer_limits(64 * 1024);
    made.first->write(payload);  // far past the high-water mark: paused at once
    CHECK(client->paused == 1);
    std::function<bool()> all_back = [&] { return client->received.size() >= payload.size(); };
    co_await test::until(all_back, 60.0);
    CHECK(client->received.size() == payload.size());
    CHECK(client->received == payload);
    CHECK(client->resumed == 1);
    CHECK(made.first->get_write_buffer_size() == 0);
    made.first->close();
    server->close();
    std::function<bool()> server_lost = [&] { return !served.peers.empty() && served.peers[0]->lost == 1; };
    co_await test::until(server_lost);
  };
  test::run(*loop, main(), 90.0);
  loop->close();
}

TEST_CASE("pipes: a closed server refuses new clients; its connections stay; the loop closes with reads pending") {
  auto loop = test::make_loop();
  auto* proactor = proactor_loop(*loop);
  if (!proactor) return test::skip(test::proactor_only);
  const std::string name = unique_pipe("close");
  Served served;
  served.echo = true;
  std::shared_ptr<Peer> client;
  auto main = [&]() -> aio::Task<void> {
    auto server = co_await proactor->start_serving_pipe(served.factory(), name);
    auto made = co_await proactor->create_pipe_connection(client_factory(client), name);
    std::function<bool()> accepted = [&] { return served.peers.size() == 1; };
    co_await test::until(accepted);
    server->close();  // cancels the ConnectNamedPipe of the next instance
    server->close();
    CHECK(server->closed());
    // No instance waits any more: Windows says the pipe is busy (the one
    // connection still holds its name), so the client keeps trying.
    std::shared_ptr<Peer> late;
    auto connecting = loop->create_task(proactor->create_pipe_connection(client_factory(late), name));
    co_await aio::sleep(0.3);
    CHECK_FALSE(late);
    connecting.cancel();
    try {
      co_await connecting;
    } catch (const aio::CancelledError&) {
    } catch (const std::system_error&) {
      // where the OS calls the pipe gone rather than busy
    }
    CHECK_FALSE(late);
    made.first->write("still here");
    std::function<bool()> echoed = [&] { return client->received == "still here"; };
    co_await test::until(echoed);
  };
  test::run(*loop, main(), 20.0);
  // Both ends have a ReadFile pending: close() cancels them and waits.
  CHECK(proactor->proactor().in_flight() >= 2);
  loop->close();
  CHECK(proactor->proactor().in_flight() == 0);
}

TEST_CASE("pipes: create_pipe_connection retries a busy pipe until cancelled; a missing pipe is an error") {
  auto loop = test::make_loop();
  auto* proactor = proactor_loop(*loop);
  if (!proactor) return test::skip(test::proactor_only);
  const std::string name = unique_pipe("busy");
  // One instance at most, taken by a client: every other open is ERROR_PIPE_BUSY.
  std::wstring wide(name.begin(), name.end());
  HANDLE instance =
      CreateNamedPipeW(wide.c_str(), PIPE_ACCESS_DUPLEX, PIPE_TYPE_BYTE | PIPE_WAIT, 1, 4096, 4096, 0, nullptr);
  REQUIRE(instance != INVALID_HANDLE_VALUE);
  HANDLE taken = CreateFileW(wide.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING, 0, nullptr);
  REQUIRE(taken != INVALID_HANDLE_VALUE);
  auto main = [&]() -> aio::Task<void> {
    std::shared_ptr<Peer> client;
    auto connecting = loop->create_task(proactor->create_pipe_connection(client_factory(client), name));
    co_await aio::sleep(0.2);
    CHECK_FALSE(connecting.done());  // still trying
    double cancelled_at = loop->time();
    connecting.cancel();
    CHECK_THROWS_AS(co_await connecting, aio::CancelledError);
    CHECK(loop->time() - cancelled_at < 0.5);
    CHECK_FALSE(client);  // connection_made never ran
    std::shared_ptr<Peer> missing;
    try {
      co_await proactor->create_pipe_connection(client_factory(missing), unique_pipe("nobody"));
      FAIL("connected to a pipe nobody serves");
    } catch (const std::system_error& e) {
      CHECK(e.code().value() == ERROR_FILE_NOT_FOUND);
      CHECK(std::string(e.what()).find("aiocpp-test-nobody") != std::string::npos);
    }
  };
  test::run(*loop, main(), 20.0);
  CloseHandle(taken);
  CloseHandle(instance);
  loop->close();
}

TEST_CASE("pipes: bad names, factories and a name already served are clear errors") {
  auto loop = test::make_loop();
  auto* proactor = proactor_loop(*loop);
  if (!proactor) return test::skip(test::proactor_only);
  const std::string name = unique_pipe("taken");
  Served served;
  auto main = [&]() -> aio::Task<void> {
    std::shared_ptr<Peer> client;
    for (std::string bad : {"", "pipe-name", R"(\\.\pipe\)", R"(C:\temp\x)", R"(\\server\pipe\x)"}) {
      CAPTURE(bad);
      CHECK_THROWS_AS(co_await proactor->create_pipe_connection(client_factory(client), bad), std::invalid_argument);
      CHECK_THROWS_AS(co_await proactor->start_serving_pipe(served.factory(), bad), std::invalid_argument);
    }
    CHECK_THROWS_AS(co_await proactor->start_serving_pipe({}, name), std::invalid_argument);
    CHECK_THROWS_AS(co_await proactor->create_pipe_connection({}, name), std::invalid_argument);
    auto server = co_await proactor->start_serving_pipe(served.factory(), name);
    aio::ProtocolFactory null_factory = [] { return std::shared_ptr<aio::BaseProtocol>(); };
    CHECK_THROWS_AS(co_await proactor->create_pipe_connection(null_factory, name), std::invalid_argument);
    // Wine 8.0 ignores FILE_FLAG_FIRST_PIPE_INSTANCE: there a second server
    // of the same name is made (as a plain second instance).
    if (!test::running_under_wine())
      CHECK_THROWS_AS(co_await proactor->start_serving_pipe(served.factory(), name), std::system_error);
    server->close();
  };
  test::run(*loop, main(), 20.0);
  loop->close();
}
#endif  // _WIN32
