// Lifetimes (DESIGN.md): a future, task, handle or server may outlive the
// loop it was made on. Releasing it then is safe; using it is a clear error
// ("Event loop is closed"), never a use-after-free. The ASan configuration
// is what proves the "safe" part.
#include "support.hpp"

#include <net/server.hpp>
#include <net/streams.hpp>

#include <memory>
#include <stdexcept>
#include <string>

namespace {

bool is_closed_error(const std::runtime_error& e) {
  return std::string(e.what()).find("Event loop is closed") != std::string::npos;
}

}  // namespace

TEST_CASE("lifetimes: a task suspended in sleep outlives its closed and destroyed loop") {
  test::CaptureLog log;
  aio::Task<void> sleeper;
  {
    auto loop = test::make_loop();
    sleeper = loop->create_task([]() -> aio::Task<void> { co_await aio::sleep(3600); }());
    loop->run_until_complete(aio::sleep(0));  // the task is now suspended in sleep
    loop->close();
  }
  CHECK_FALSE(sleeper.done());
  sleeper = aio::Task<void>();  // released after the loop: reported to the log, not to a dead loop
  CHECK(log.contains("Task was destroyed but it is pending!"));
}

TEST_CASE("lifetimes: a future holding a never retrieved exception released after its loop") {
  test::CaptureLog log;
  aio::Future<int> future;
  {
    auto loop = test::make_loop();
    future = loop->create_future<int>();
    future.set_exception(std::make_exception_ptr(std::runtime_error("boom")));
  }  // destroyed without close()
  future = aio::Future<int>();
  CHECK(log.contains("Future exception was never retrieved"));
}

TEST_CASE("lifetimes: using a future after its loop is gone is a clear error") {
  aio::Future<int> future;
  bool called = false;
  {
    auto loop = test::make_loop();
    future = loop->create_future<int>();
    future.add_done_callback([&called](const aio::Future<int>&) { called = true; });
  }
  future.set_result(7);  // its callback can never run, but nothing breaks
  CHECK(future.result() == 7);
  CHECK_FALSE(called);
  try {
    future.add_done_callback([](const aio::Future<int>&) {});
    FAIL("add_done_callback on a finished future whose loop is gone");
  } catch (const std::runtime_error& e) {
    CHECK(is_closed_error(e));
  }
  try {
    (void)future.get_loop();
    FAIL("get_loop after the loop is gone");
  } catch (const std::runtime_error& e) {
    CHECK(is_closed_error(e));
  }
}

TEST_CASE("lifetimes: a failed background task kept past aio::run") {
  test::CaptureLog log;
  aio::Task<void> background;
  aio::run([](aio::Task<void>& out) -> aio::Task<void> {
    out = aio::get_running_loop().create_task([]() -> aio::Task<void> {
      throw std::runtime_error("background failure");
      co_return;
    }());
    co_await aio::sleep(0);
    co_await aio::sleep(0);
  }(background));
  CHECK(background.done());
  background = aio::Task<void>();
  CHECK(log.contains("Task exception was never retrieved"));
}

TEST_CASE("lifetimes: a Server from start_server kept past aio::run") {
  std::shared_ptr<aio::Server> server;
  aio::run([](std::shared_ptr<aio::Server>& out) -> aio::Task<void> {
    auto on_client = [](aio::StreamReader, aio::StreamWriter writer) -> aio::Task<void> {
      writer.close();
      co_return;
    };
    out = co_await aio::start_server(on_client, "127.0.0.1", 0);
  }(server));
  REQUIRE(server);
  try {
    (void)server->get_loop();
    FAIL("get_loop after the loop is gone");
  } catch (const std::runtime_error& e) {
    CHECK(is_closed_error(e));
  }
  server->close();  // closes its sockets; no loop to tell
  CHECK(server->sockets().empty());
  server.reset();
}

TEST_CASE("lifetimes: handles released after their loop is destroyed") {
  aio::Handle soon;
  aio::TimerHandle later;
  {
    auto loop = test::make_loop();
    soon = loop->call_soon([] {});
    later = loop->call_later(3600, [] {});
  }
  later.cancel();
  soon.cancel();
  CHECK(later.cancelled());
  soon = aio::Handle();
  later = aio::TimerHandle();
}

TEST_CASE("lifetimes: a transport kept past aio::run: using it is a clear error, releasing it is safe") {
  struct Sink : aio::Protocol {
    void data_received(std::string_view) override {}
  };
  std::shared_ptr<aio::Transport> transport;
  std::shared_ptr<aio::Server> server;
  aio::run([](std::shared_ptr<aio::Transport>& out, std::shared_ptr<aio::Server>& srv) -> aio::Task<void> {
    auto& loop = aio::get_running_loop();
    aio::ProtocolFactory sink = [] { return std::make_shared<Sink>(); };
    srv = co_await loop.create_server(sink, "127.0.0.1", 0);
    int port = srv->sockets().front().getsockname().port();
    auto made = co_await loop.create_connection(sink, "127.0.0.1", port);
    out = made.first;
    out->write("before");
  }(transport, server));
  REQUIRE(transport);
  auto closed_error = [](auto&& use) {
    try {
      use();
    } catch (const std::runtime_error& e) {
      return is_closed_error(e);
    }
    return false;
  };
  CHECK(closed_error([&] { transport->write("after"); }));
  CHECK(closed_error([&] { transport->pause_reading(); }));
  CHECK(closed_error([&] { transport->resume_reading(); }));
  CHECK(closed_error([&] { transport->write_eof(); }));
  CHECK(closed_error([&] { transport->set_write_buffer_limits(1024); }));
  CHECK(closed_error([&] { transport->abort(); }));
  CHECK(closed_error([&] { transport->close(); }));
  transport.reset();  // its socket closes; nothing touches the loop
  server->close();
  server.reset();
}
