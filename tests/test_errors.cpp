// The exception handler and debug mode (CONTRACTS.md 1, 13, 15), on the
// backend under test.
#include "support.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using test::make_loop;

namespace {

// Runs exactly one iteration: what is ready now, not what that schedules.
void run_one_iteration(aio::EventLoop& loop) {
  loop.call_soon([&loop] { loop.stop(); });
  loop.run_forever();
}

std::string what_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "?";
  }
}

// Counts the captured log lines at `level` that contain `needle`.
int count_lines(const test::CaptureLog& log, aio::LogLevel level, const std::string& needle) {
  int n = 0;
  for (const auto& [l, line] : log.lines)
    if (l == level && line.find(needle) != std::string::npos) ++n;
  return n;
}

}  // namespace

// ---- The exception handler (CONTRACTS 15) -----------------------------------

TEST_CASE("an exception escaping a callback reaches the handler with a context; the loop keeps running") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  bool later_ran = false;
  aio::Handle failing = loop->call_soon([] { throw std::runtime_error("callback failed"); });
  loop->call_soon([&] { later_ran = true; });
  run_one_iteration(*loop);
  CHECK(later_ran);
  REQUIRE(errors.contexts.size() == 1);
  const aio::ExceptionContext& context = errors.contexts[0];
  CHECK(context.message.find("Exception in callback") != std::string::npos);
  REQUIRE(context.exception);
  CHECK(what_of(context.exception) == "callback failed");
  REQUIRE(context.handle);
  CHECK(context.handle.state() == failing.state());
  CHECK_FALSE(context.task);
  CHECK_FALSE(context.future);

  // An exception not derived from std::exception, and one from a timer, too.
  loop->call_soon([] { throw 42; });
  loop->call_later(0.001, [] { throw std::logic_error("timer failed"); });
  test::run_until(*loop, [&] { return errors.contexts.size() == 3; });
  CHECK_THROWS_AS(std::rethrow_exception(errors.contexts[1].exception), int);
  CHECK(what_of(errors.contexts[2].exception) == "timer failed");
  loop->close();
}

TEST_CASE("get/set_exception_handler; an empty handler restores the default, which logs at error level") {
  auto loop = make_loop();
  CHECK_FALSE(loop->get_exception_handler());
  int calls = 0;
  loop->set_exception_handler([&](aio::EventLoop& l, const aio::ExceptionContext&) {
    CHECK(&l == loop.get());
    ++calls;
  });
  CHECK(loop->get_exception_handler());
  test::CaptureLog log;
  loop->call_soon([] { throw std::runtime_error("to the custom handler"); });
  run_one_iteration(*loop);
  CHECK(calls == 1);
  CHECK_FALSE(log.contains("to the custom handler"));

  loop->set_exception_handler({});
  CHECK_FALSE(loop->get_exception_handler());
  loop->call_soon([] { throw std::runtime_error("to the default handler"); });
  run_one_iteration(*loop);
  CHECK(calls == 1);
  CHECK(count_lines(log, aio::LogLevel::error, "to the default handler") == 1);
  CHECK(count_lines(log, aio::LogLevel::error, "Exception in callback") == 1);
  loop->close();
}

TEST_CASE("default_exception_handler logs the context at error level") {
  auto loop = make_loop();
  test::CaptureLog log;
  aio::ExceptionContext context;
  context.message = "something went wrong";
  context.exception = std::make_exception_ptr(std::runtime_error("the cause"));
  loop->default_exception_handler(context);
  REQUIRE(log.lines.size() == 1);
  CHECK(log.lines[0].first == aio::LogLevel::error);
  CHECK(log.lines[0].second.find("something went wrong") != std::string::npos);
  CHECK(log.lines[0].second.find("the cause") != std::string::npos);
  loop->close();
}

TEST_CASE("an exception thrown by a custom handler is logged, not propagated") {
  auto loop = make_loop();
  test::CaptureLog log;
  loop->set_exception_handler(
      [](aio::EventLoop&, const aio::ExceptionContext&) { throw std::runtime_error("the handler itself failed"); });
  bool later_ran = false;
  loop->call_soon([] { throw std::runtime_error("original"); });
  loop->call_soon([&] { later_ran = true; });
  CHECK_NOTHROW(run_one_iteration(*loop));
  CHECK(later_ran);
  CHECK(count_lines(log, aio::LogLevel::error, "the handler itself failed") == 1);

  aio::ExceptionContext context;
  context.message = "direct";
  CHECK_NOTHROW(loop->call_exception_handler(context));
  CHECK(count_lines(log, aio::LogLevel::error, "the handler itself failed") == 2);
  loop->close();
}

TEST_CASE("call_exception_handler passes a custom context through") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  auto error = std::make_exception_ptr(std::runtime_error("custom cause"));
  auto f = loop->create_future<int>();
  aio::ExceptionContext context;
  context.message = "custom message";
  context.exception = error;
  context.future = f;
  loop->call_exception_handler(context);
  REQUIRE(errors.contexts.size() == 1);
  CHECK(errors.contexts[0].message == "custom message");
  CHECK(errors.contexts[0].exception == error);
  CHECK(errors.contexts[0].future == f);
  CHECK_FALSE(errors.contexts[0].handle);

  // Without a custom handler: the default one logs it.
  loop->set_exception_handler({});
  test::CaptureLog log;
  loop->call_exception_handler(context);
  CHECK(count_lines(log, aio::LogLevel::error, "custom message") == 1);
  errors.contexts.clear();
  loop->close();
}

// ---- Debug mode (CONTRACTS 13) ----------------------------------------------

TEST_CASE("set_debug/get_debug; set_slow_callback_duration validates its argument") {
  auto loop = make_loop();
  loop->set_debug(true);
  CHECK(loop->get_debug());
  loop->set_debug(false);
  CHECK_FALSE(loop->get_debug());
  loop->set_slow_callback_duration(0.5);
  CHECK(loop->slow_callback_duration() == doctest::Approx(0.5));
  CHECK_THROWS_AS(loop->set_slow_callback_duration(-1), std::invalid_argument);
  CHECK_THROWS_AS(loop->set_slow_callback_duration(std::numeric_limits<double>::quiet_NaN()), std::invalid_argument);
  CHECK(loop->slow_callback_duration() == doctest::Approx(0.5));  // unchanged
  loop->set_slow_callback_duration(0);
  CHECK(loop->slow_callback_duration() == 0);
  loop->close();
}

TEST_CASE("debug mode: call_soon from another thread while the loop runs raises std::runtime_error") {
  // [test_check_thread]
  auto loop = make_loop();
  loop->set_debug(true);
  std::atomic<int> refused{0};
  std::atomic<bool> ran_anyway{false};
  std::thread other;
  loop->call_soon([&] {
    other = std::thread([&] {
      try {
        loop->call_soon([&] { ran_anyway = true; });
      } catch (const std::runtime_error&) {
        ++refused;
      }
      try {
        loop->call_later(0.001, [&] { ran_anyway = true; });
      } catch (const std::runtime_error&) {
        ++refused;
      }
      loop->call_soon_threadsafe([&] { loop->stop(); });  // the way in from another thread
    });
  });
  auto guard = loop->call_later(10.0, [&] { loop->stop(); });
  loop->run_forever();
  other.join();
  guard.cancel();
  CHECK(refused == 2);
  run_one_iteration(*loop);
  CHECK_FALSE(ran_anyway);
  loop->close();
}

TEST_CASE("debug mode: call_soon_threadsafe from another thread works and keeps submission order") {
  // [test_call_soon_threadsafe; CONTRACTS 1]
  auto loop = make_loop();
  loop->set_debug(true);
  std::vector<int> order;
  std::atomic<int> refused{0};
  std::thread producer([&] {
    for (int i = 0; i < 1000; ++i) {
      try {
        loop->call_soon_threadsafe([&order, i] { order.push_back(i); });
      } catch (const std::runtime_error&) {
        ++refused;
      }
    }
    loop->call_soon_threadsafe([&] { loop->stop(); });
  });
  auto guard = loop->call_later(10.0, [&] { loop->stop(); });
  loop->run_forever();
  producer.join();
  guard.cancel();
  CHECK(refused == 0);
  REQUIRE(order.size() == 1000);
  for (int i = 0; i < 1000; ++i) REQUIRE(order[i] == i);
  loop->close();
}

TEST_CASE("debug mode: callbacks slower than slow_callback_duration are logged at warning level") {
  // [test_log_slow_callbacks]
  auto loop = make_loop();
  test::CaptureLog log;
  loop->set_debug(true);
  loop->set_slow_callback_duration(0.01);
  loop->call_soon([] { std::this_thread::sleep_for(std::chrono::milliseconds(30)); });
  run_one_iteration(*loop);
  // At least: a loaded machine may make another callback slow too.
  const int after_callback = count_lines(log, aio::LogLevel::warning, "Executing");
  CHECK(after_callback >= 1);

  // A slow task step is a slow callback too.
  auto slow_step = []() -> aio::Task<void> {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    co_return;
  };
  loop->run_until_complete(slow_step());
  const int after_step = count_lines(log, aio::LogLevel::warning, "Executing");
  CHECK(after_step >= after_callback + 1);

  // Not with debug mode off.
  loop->set_debug(false);
  loop->call_soon([] { std::this_thread::sleep_for(std::chrono::milliseconds(30)); });
  run_one_iteration(*loop);
  CHECK(count_lines(log, aio::LogLevel::warning, "Executing") == after_step);
  loop->close();
}

TEST_CASE("debug mode: slow-callback reports follow the loop's clock (virtual loop)") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  test::CaptureLog log;
  loop.set_debug(true);
  loop.set_slow_callback_duration(0.01);
  loop.call_soon([&] { v.clock->now_ns += 5'000'000; });   // 5 ms: fast enough
  loop.call_soon([&] { v.clock->now_ns += 30'000'000; });  // 30 ms: slow
  run_one_iteration(loop);
  CHECK(count_lines(log, aio::LogLevel::warning, "Executing") == 1);
  loop.close();
}

TEST_CASE("AIO_DEBUG=1 in the environment makes new loops debug") {
  {
    test::ScopedEnv env("AIO_DEBUG", "1");
    auto loop = aio::new_event_loop();
    CHECK(loop->get_debug());
    loop->close();
    auto explicit_off = aio::new_event_loop({.debug = false});
    CHECK_FALSE(explicit_off->get_debug());
    explicit_off->close();
  }
  {
    test::ScopedEnv env("AIO_DEBUG", nullptr);
    auto loop = aio::new_event_loop();
    CHECK_FALSE(loop->get_debug());
    loop->close();
    auto explicit_on = aio::new_event_loop({.debug = true});
    CHECK(explicit_on->get_debug());
    explicit_on->close();
  }
  {
    test::ScopedEnv env("AIO_DEBUG", "0");
    auto loop = aio::new_event_loop();
    CHECK_FALSE(loop->get_debug());
    loop->close();
  }
}
