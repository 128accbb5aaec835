// Future<T>: results, exceptions, cancellation and done-callbacks
// (CONTRACTS.md 2), on the backend under test.
#include "support.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using test::make_loop;

namespace {

// Runs exactly one iteration: what is ready now, not what that schedules.
void run_one_iteration(aio::EventLoop& loop) {
  loop.call_soon([&loop] { loop.stop(); });
  loop.run_forever();
}

aio::Task<int> add_one(aio::Future<int> f) { co_return co_await f + 1; }

aio::Task<int> deref_unique(aio::Future<std::unique_ptr<int>> f) {
  std::unique_ptr<int> p = co_await f;
  co_return p ? *p : -1;
}

aio::Task<std::unique_ptr<int>> make_unique_later(aio::Future<int> f) { co_return std::make_unique<int>(co_await f); }

aio::Task<int> unwrap_unique(aio::Future<int> f) {
  std::unique_ptr<int> p = co_await make_unique_later(f);  // inline child with a move-only result
  co_return *p;
}

aio::Task<int> after_void(aio::Future<void> f) {
  co_await f;
  co_return 1;
}

}  // namespace

TEST_CASE("future: set_result, then result() and exception()") {
  auto loop = make_loop();
  aio::Future<int> f = loop->create_future<int>();
  CHECK_FALSE(f.done());
  CHECK_FALSE(f.cancelled());
  CHECK(&f.get_loop() == loop.get());
  f.set_result(42);
  CHECK(f.done());
  CHECK_FALSE(f.cancelled());
  CHECK(f.result() == 42);
  CHECK(f.result() == 42);  // a copyable result can be read again
  CHECK(f.exception() == nullptr);
  loop->close();
}

TEST_CASE("future: set_exception, then exception() and result() rethrowing it") {
  auto loop = make_loop();
  auto f = loop->create_future<int>();
  auto error = std::make_exception_ptr(std::runtime_error("boom"));
  f.set_exception(error);
  CHECK(f.done());
  CHECK_FALSE(f.cancelled());
  CHECK(f.exception() == error);
  CHECK_THROWS_WITH_AS(f.result(), "boom", std::runtime_error);

  auto g = loop->create_future<int>();
  CHECK_THROWS_AS(g.set_exception(nullptr), std::invalid_argument);
  CHECK_FALSE(g.done());
  loop->close();
}

TEST_CASE("future: cancel(message) returns true then false; result() throws CancelledError with the message") {
  auto loop = make_loop();
  auto f = loop->create_future<std::string>();
  CHECK(f.cancel("stop it"));
  CHECK(f.done());
  CHECK(f.cancelled());
  CHECK_FALSE(f.cancel("again"));
  bool thrown = false;
  try {
    (void)f.result();
  } catch (const aio::CancelledError& e) {
    thrown = true;
    CHECK(e.message() == "stop it");  // the first cancel's message, not the refused one's
  }
  CHECK(thrown);
  CHECK_THROWS_AS(f.exception(), aio::CancelledError);

  auto finished = loop->create_future<int>();
  finished.set_result(1);
  CHECK_FALSE(finished.cancel());
  CHECK_FALSE(finished.cancelled());
  CHECK(finished.result() == 1);
  loop->close();
}

TEST_CASE("future: result() and exception() of a pending future raise InvalidStateError") {
  auto loop = make_loop();
  auto f = loop->create_future<int>();
  CHECK_THROWS_AS((void)f.result(), aio::InvalidStateError);
  CHECK_THROWS_AS(f.exception(), aio::InvalidStateError);
  auto v = loop->create_future<void>();
  CHECK_THROWS_AS(v.result(), aio::InvalidStateError);
  CHECK_FALSE(f.done());
  loop->close();
}

TEST_CASE("future: completing a done future raises InvalidStateError and keeps the first outcome") {
  auto loop = make_loop();
  auto f = loop->create_future<int>();
  f.set_result(1);
  CHECK_THROWS_AS(f.set_result(2), aio::InvalidStateError);
  CHECK_THROWS_AS(f.set_exception(std::make_exception_ptr(std::runtime_error("late"))), aio::InvalidStateError);
  CHECK(f.result() == 1);

  auto c = loop->create_future<int>();
  c.cancel();
  CHECK_THROWS_AS(c.set_result(2), aio::InvalidStateError);
  CHECK(c.cancelled());

  auto e = loop->create_future<int>();
  e.set_exception(std::make_exception_ptr(std::runtime_error("first")));
  CHECK_THROWS_AS(e.set_result(2), aio::InvalidStateError);
  CHECK_THROWS_WITH_AS((void)e.result(), "first", std::runtime_error);
  loop->close();
}

TEST_CASE("future: done-callbacks run in registration order, from the loop, never inline") {
  auto loop = make_loop();
  auto f = loop->create_future<int>();
  std::vector<int> order;
  for (int i = 0; i < 5; ++i)
    f.add_done_callback([&order, i](const aio::Future<int>& done) { order.push_back(i * 100 + done.result()); });
  f.set_result(1);
  CHECK(order.empty());  // scheduled, not run by set_result
  run_one_iteration(*loop);
  CHECK(order == std::vector<int>{1, 101, 201, 301, 401});

  // Cancellation schedules them too, and the callback sees the cancelled future.
  auto c = loop->create_future<int>();
  bool saw_cancelled = false;
  c.add_done_callback([&](const aio::AnyFuture& done) { saw_cancelled = done.cancelled(); });
  c.cancel();
  CHECK_FALSE(saw_cancelled);
  run_one_iteration(*loop);
  CHECK(saw_cancelled);
  loop->close();
}

TEST_CASE("future: add_done_callback on a done future schedules it for the next iteration") {
  auto loop = make_loop();
  auto f = loop->create_future<int>();
  f.set_result(7);
  run_one_iteration(*loop);
  int seen = 0;
  f.add_done_callback([&](const aio::Future<int>& done) { seen = done.result(); });
  CHECK(seen == 0);
  run_one_iteration(*loop);
  CHECK(seen == 7);
  loop->close();
}

TEST_CASE("future: remove_done_callback returns how many it removed") {
  auto loop = make_loop();
  auto f = loop->create_future<void>();
  std::vector<char> ran;
  auto a = f.add_done_callback([&](const aio::AnyFuture&) { ran.push_back('a'); });
  auto b = f.add_done_callback([&](const aio::AnyFuture&) { ran.push_back('b'); });
  auto c = f.add_done_callback([&](const aio::AnyFuture&) { ran.push_back('c'); });
  CHECK(a != b);
  CHECK(b != c);
  CHECK(f.remove_done_callback(b) == 1);
  CHECK(f.remove_done_callback(b) == 0);
  f.set_result();
  // Once done, the callbacks are already scheduled: nothing left to remove.
  CHECK(f.remove_done_callback(c) == 0);
  run_one_iteration(*loop);
  CHECK(ran == std::vector<char>{'a', 'c'});
  loop->close();
}

TEST_CASE("future: callbacks may remove and add callbacks while callbacks are dispatched") {
  // [test_schedule_callbacks_list_mutation_1/2]
  auto loop = make_loop();
  auto f = loop->create_future<int>();
  std::vector<int> order;
  std::vector<std::uint64_t> ids;
  ids.push_back(f.add_done_callback([&](const aio::Future<int>& done) {
    order.push_back(0);
    aio::Future<int> self = done;
    // The others are already scheduled: removing them now finds nothing.
    for (std::size_t i = 1; i < ids.size(); ++i) CHECK(self.remove_done_callback(ids[i]) == 0);
    self.add_done_callback([&](const aio::Future<int>&) { order.push_back(1000); });
  }));
  for (int i = 1; i < 64; ++i)
    ids.push_back(f.add_done_callback([&order, i](const aio::Future<int>&) { order.push_back(i); }));
  f.set_result(5);
  run_one_iteration(*loop);
  REQUIRE(order.size() == 64);
  for (int i = 0; i < 64; ++i) CHECK(order[i] == i);
  run_one_iteration(*loop);  // the one added during dispatch runs after the batch
  REQUIRE(order.size() == 65);
  CHECK(order.back() == 1000);

  // A callback of one future mutating the callbacks of a pending one.
  auto g = loop->create_future<int>();
  auto h = loop->create_future<int>();
  std::vector<std::string> trace;
  auto doomed = h.add_done_callback([&](const aio::Future<int>&) { trace.push_back("doomed"); });
  h.add_done_callback([&](const aio::Future<int>&) { trace.push_back("kept"); });
  g.add_done_callback([&](const aio::Future<int>&) {
    CHECK(h.remove_done_callback(doomed) == 1);
    h.add_done_callback([&](const aio::Future<int>&) { trace.push_back("added"); });
    h.set_result(1);
  });
  g.set_result(1);
  run_one_iteration(*loop);
  CHECK(trace.empty());
  run_one_iteration(*loop);
  CHECK(trace == std::vector<std::string>{"kept", "added"});
  loop->close();
}

TEST_CASE("future: co_await in a task gives the result, the exception or CancelledError") {
  auto loop = make_loop();
  auto f = loop->create_future<int>();
  loop->call_soon([f]() mutable { f.set_result(41); });
  CHECK(test::run(*loop, add_one(f)) == 42);

  auto e = loop->create_future<int>();
  loop->call_soon([e]() mutable { e.set_exception(std::make_exception_ptr(std::runtime_error("bad"))); });
  CHECK_THROWS_WITH_AS(test::run(*loop, add_one(e)), "bad", std::runtime_error);

  auto c = loop->create_future<int>();
  loop->call_soon([c]() mutable { c.cancel("gone"); });
  auto t = loop->create_task(add_one(c));
  test::run_until(*loop, [&] { return t.done(); });
  CHECK(t.cancelled());  // the CancelledError escaped the task

  // Already done: co_await does not suspend.
  auto d = loop->create_future<int>();
  d.set_result(9);
  CHECK(test::run(*loop, add_one(d)) == 10);
  loop->close();
}

TEST_CASE("future: a task cannot await a future of another loop") {
  auto loop = make_loop();
  auto other = make_loop();
  auto foreign = other->create_future<int>();
  bool refused = false;
  try {
    test::run(*loop, add_one(foreign));
  } catch (const aio::TimeoutError&) {
    FAIL("the task waited for the foreign future instead of raising");
  } catch (const std::runtime_error&) {
    refused = true;
  }
  CHECK(refused);
  CHECK_FALSE(foreign.done());
  CHECK_THROWS_AS(loop->run_until_complete(foreign), std::invalid_argument);
  loop->close();
  other->close();
}

TEST_CASE("future: move-only results work with co_await and run_until_complete") {
  auto loop = make_loop();
  auto f = loop->create_future<std::unique_ptr<int>>();
  loop->call_soon([f]() mutable { f.set_result(std::make_unique<int>(42)); });
  CHECK(test::run(*loop, deref_unique(f)) == 42);

  auto g = loop->create_future<std::unique_ptr<int>>();
  loop->call_soon([g]() mutable { g.set_result(std::make_unique<int>(7)); });
  std::unique_ptr<int> p = loop->run_until_complete(g);
  REQUIRE(p);
  CHECK(*p == 7);

  auto v = loop->create_future<int>();
  loop->call_soon([v]() mutable { v.set_result(5); });
  CHECK(test::run(*loop, unwrap_unique(v)) == 5);

  auto w = loop->create_future<int>();
  w.set_result(3);
  auto t = loop->create_task(make_unique_later(w));
  std::unique_ptr<int> q = loop->run_until_complete(t);
  REQUIRE(q);
  CHECK(*q == 3);
  loop->close();
}

TEST_CASE("future: Future<void>") {
  auto loop = make_loop();
  auto f = loop->create_future<void>();
  int callbacks = 0;
  f.add_done_callback([&](const aio::Future<void>& done) {
    done.result();  // does not throw
    ++callbacks;
  });
  loop->call_soon([f]() mutable { f.set_result(); });
  CHECK(test::run(*loop, after_void(f)) == 1);
  CHECK(callbacks == 1);
  CHECK(f.done());
  CHECK_NOTHROW(f.result());
  CHECK_THROWS_AS(f.set_result(), aio::InvalidStateError);

  auto e = loop->create_future<void>();
  e.set_exception(std::make_exception_ptr(std::logic_error("void failed")));
  CHECK_THROWS_WITH_AS(test::run(*loop, after_void(e)), "void failed", std::logic_error);
  loop->close();
}

TEST_CASE("future: an exception never retrieved is reported when the last reference goes") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  {
    auto f = loop->create_future<int>();
    f.set_exception(std::make_exception_ptr(std::runtime_error("nobody looked")));
    CHECK(errors.contexts.empty());
  }
  REQUIRE(errors.contexts.size() == 1);
  const aio::ExceptionContext& context = errors.contexts[0];
  CHECK(context.message == "Future exception was never retrieved");
  CHECK(context.future);
  REQUIRE(context.exception);
  CHECK_THROWS_WITH_AS(std::rethrow_exception(context.exception), "nobody looked", std::runtime_error);

  {
    auto f = loop->create_future<int>();
    f.set_exception(std::make_exception_ptr(std::runtime_error("looked at")));
    CHECK(f.exception());
  }
  {
    auto f = loop->create_future<int>();
    f.set_exception(std::make_exception_ptr(std::runtime_error("awaited")));
    CHECK_THROWS_AS(test::run(*loop, add_one(f)), std::runtime_error);
  }
  CHECK(errors.contexts.size() == 1);
  loop->close();
}

TEST_CASE("future: a task refuses set_result and set_exception (asyncio: RuntimeError)") {
  auto loop = make_loop();
  auto coro = []() -> aio::Task<int> { co_return 1; };
  aio::Task<int> task = loop->create_task(coro());
  aio::Future<int> as_future = task;
  CHECK_THROWS_WITH_AS(as_future.set_result(2), "Task does not support set_result() operation", std::runtime_error);
  CHECK_THROWS_WITH_AS(as_future.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
                       "Task does not support set_exception() operation", std::runtime_error);
  CHECK(loop->run_until_complete(task) == 1);
  loop->close();
}

TEST_CASE("future: cancel() on a future or task that failed suppresses the never-retrieved report") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  {
    auto f = loop->create_future<int>();
    f.set_exception(std::make_exception_ptr(std::runtime_error("seen to")));
    CHECK_FALSE(f.cancel());
  }
  {
    auto failing = []() -> aio::Task<int> {
      throw std::runtime_error("task failed");
      co_return 0;
    };
    auto task = loop->create_task(failing());
    loop->run_until_complete(aio::sleep(0));
    loop->run_until_complete(aio::sleep(0));
    REQUIRE(task.done());
    CHECK_FALSE(task.cancel());
  }
  {
    auto f = loop->create_future<int>();  // not cancelled: still reported
    f.set_exception(std::make_exception_ptr(std::runtime_error("unseen")));
  }
  loop->run_until_complete(aio::sleep(0));
  REQUIRE(errors.contexts.size() == 1);
  CHECK(errors.contexts[0].message == "Future exception was never retrieved");
  loop->close();
}
