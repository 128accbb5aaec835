// The task toolkit of asyncio's documentation: timeout / timeout_at, shield,
// wait, as_completed, TaskGroup, run_coroutine_threadsafe, wrap_future.
#include "support.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

aio::Task<int> sleep_then(double delay, int value) {
  co_await aio::sleep(delay);
  co_return value;
}

aio::Task<int> sleep_then_fail(double delay, std::string what) {
  co_await aio::sleep(delay);
  throw std::runtime_error(what);
}

}  // namespace

// ---- timeout ----------------------------------------------------------------

TEST_CASE("timeout: the body finishing in time gives its value; expired() stays false") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  auto main = [&]() -> aio::Task<void> {
    aio::Timeout cm = aio::timeout(2.0);
    CHECK(cm.repr() == "<Timeout [created]>");
    CHECK(co_await cm.run(sleep_then(1.0, 5)) == 5);
    CHECK_FALSE(cm.expired());
    CHECK(cm.repr() == "<Timeout [finished]>");
    CHECK_THROWS_AS(cm.reschedule(loop.time() + 1), std::runtime_error);  // finished
    aio::Timeout none = aio::timeout(std::nullopt);
    CHECK(co_await none.run(sleep_then(100.0, 6)) == 6);  // no limit
  };
  loop.run_until_complete(main());
  loop.close();
}

TEST_CASE("timeout: on expiry the body is cancelled where it waits, then TimeoutError; expired() is true") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  bool body_cancelled = false;
  auto body = [&]() -> aio::Task<void> {
    try {
      co_await aio::sleep(10.0);
    } catch (const aio::CancelledError&) {
      body_cancelled = true;
      throw;
    }
  };
  auto main = [&]() -> aio::Task<void> {
    aio::Timeout cm = aio::timeout_at(loop.time() + 1.0);
    double start = loop.time();
    CHECK_THROWS_AS(co_await cm.run(body()), aio::TimeoutError);
    CHECK(loop.time() - start == doctest::Approx(1.0));
    CHECK(body_cancelled);
    CHECK(cm.expired());
    CHECK(cm.repr() == "<Timeout [expired]>");
    CHECK(aio::current_task().cancelling() == 0);
  };
  loop.run_until_complete(main());
  loop.close();
}

TEST_CASE("timeout: a rescheduled deadline, later and then earlier (asyncio's documentation example)") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  auto main = [&]() -> aio::Task<void> {
    aio::Timeout cm = aio::timeout(std::nullopt);  // "don't know the timeout yet"
    auto body = [&]() -> aio::Task<int> {
      CHECK(cm.repr() == "<Timeout [active] when=None>");
      cm.reschedule(loop.time() + 1.0);
      co_await aio::sleep(0.5);
      cm.reschedule(loop.time() + 2.0);  // pushed back: still running at 1.0
      REQUIRE(cm.when());
      CHECK(*cm.when() == doctest::Approx(loop.time() + 2.0));
      co_await aio::sleep(1.0);
      co_return 1;
    };
    double start = loop.time();
    CHECK(co_await cm.run(body()) == 1);
    CHECK(loop.time() - start == doctest::Approx(1.5));
    CHECK_FALSE(cm.expired());

    aio::Timeout earlier = aio::timeout(10.0);
    auto shortened = [&]() -> aio::Task<int> {
      earlier.reschedule(loop.time() - 1.0);  // in the past: expires at the next iteration
      co_await aio::sleep(5.0);
      co_return 2;
    };
    start = loop.time();
    CHECK_THROWS_AS(co_await earlier.run(shortened()), aio::TimeoutError);
    CHECK(loop.time() - start == doctest::Approx(0.0));
    CHECK(earlier.expired());
  };
  loop.run_until_complete(main());
  loop.close();
}

TEST_CASE("timeout: a cancellation from outside goes on as CancelledError, not TimeoutError") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  auto limited = [&]() -> aio::Task<int> {
    aio::Timeout cm = aio::timeout(5.0);
    co_return co_await cm.run(sleep_then(10.0, 1));
  };
  auto task = loop.create_task(limited());
  loop.call_later(1.0, [task]() mutable { task.cancel(); });
  CHECK_THROWS_AS(loop.run_until_complete(task), aio::CancelledError);
  CHECK(task.cancelled());
  CHECK_THROWS_AS(loop.run_until_complete(aio::timeout(1.0).run(sleep_then(0, 1))), std::runtime_error);
  loop.close();
}

// ---- shield -----------------------------------------------------------------

TEST_CASE("shield: cancelling the task that awaits it leaves the inner task running") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  auto inner = loop.create_task(sleep_then(2.0, 42));
  auto outer = [&]() -> aio::Task<int> { co_return co_await aio::shield(inner); };
  auto waiting = loop.create_task(outer());
  loop.call_later(1.0, [waiting]() mutable { waiting.cancel(); });
  CHECK_THROWS_AS(loop.run_until_complete(waiting), aio::CancelledError);
  CHECK_FALSE(inner.done());
  CHECK_FALSE(inner.cancelled());
  CHECK(loop.run_until_complete(inner) == 42);
  // The inner task's own outcome reaches the shield: its exception, its cancellation.
  auto failing = loop.create_task(sleep_then_fail(1.0, "inner failed"));
  CHECK_THROWS_WITH_AS(loop.run_until_complete(aio::shield(failing)), "inner failed", std::runtime_error);
  auto cancelled = loop.create_task(sleep_then(5.0, 1));
  auto shielded = aio::shield(cancelled);
  cancelled.cancel();
  CHECK_THROWS_AS(loop.run_until_complete(shielded), aio::CancelledError);
  CHECK(shielded.cancelled());
  loop.close();
}

// ---- wait / as_completed ----------------------------------------------------

TEST_CASE("wait: FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED and a timeout; nothing is cancelled") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  auto main = [&]() -> aio::Task<void> {
    std::vector<aio::Task<int>> tasks{loop.create_task(sleep_then(1.0, 1)), loop.create_task(sleep_then(2.0, 2)),
                                      loop.create_task(sleep_then_fail(1.5, "second")),
                                      loop.create_task(sleep_then(3.0, 3))};
    double start = loop.time();
    auto first = co_await aio::wait(tasks, std::nullopt, aio::FIRST_COMPLETED);
    CHECK(loop.time() - start == doctest::Approx(1.0));
    REQUIRE(first.done.size() == 1);
    CHECK(first.done[0].result() == 1);
    CHECK(first.pending.size() == 3);

    auto failed = co_await aio::wait(tasks, std::nullopt, aio::FIRST_EXCEPTION);
    CHECK(loop.time() - start == doctest::Approx(1.5));
    CHECK(failed.done.size() == 2);

    auto timed = co_await aio::wait(tasks, 0.25);
    CHECK(loop.time() - start == doctest::Approx(1.75));
    CHECK(timed.pending.size() == 2);
    for (auto& t : timed.pending) CHECK_FALSE(t.cancelled());

    auto all = co_await aio::wait(tasks);
    CHECK(loop.time() - start == doctest::Approx(3.0));
    CHECK(all.done.size() == 4);
    CHECK(all.pending.empty());
    CHECK_THROWS_WITH_AS(tasks[2].result(), "second", std::runtime_error);
    CHECK_THROWS_AS(co_await aio::wait(std::vector<aio::Future<int>>{}), std::invalid_argument);
  };
  loop.run_until_complete(main());
  loop.close();
}

TEST_CASE("as_completed: results in the order the futures finish; TimeoutError for the rest") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  auto main = [&]() -> aio::Task<void> {
    std::vector<aio::Task<int>> tasks{sleep_then(3.0, 3), sleep_then(1.0, 1), sleep_then(2.0, 2)};
    std::vector<int> order;
    for (auto& next : aio::as_completed(tasks)) order.push_back(co_await next);
    CHECK(order == std::vector<int>{1, 2, 3});

    std::vector<aio::Task<int>> slow{loop.create_task(sleep_then(0.5, 1)), loop.create_task(sleep_then(5.0, 2))};
    auto nexts = aio::as_completed(slow, 1.0);
    CHECK(co_await nexts[0] == 1);
    CHECK_THROWS_AS(co_await nexts[1], aio::TimeoutError);
    slow[1].cancel();
  };
  loop.run_until_complete(main());
  loop.close();
}

// ---- TaskGroup --------------------------------------------------------------

TEST_CASE("TaskGroup: waits for every task (asyncio's documentation example)") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  auto main = [&]() -> aio::Task<void> {
    double start = loop.time();
    aio::TaskGroup tg;
    auto task1 = tg.create_task(sleep_then(1.0, 1));
    auto task2 = tg.create_task(sleep_then(2.0, 2));
    co_await tg.wait();
    CHECK(loop.time() - start == doctest::Approx(2.0));
    CHECK(task1.result() == 1);
    CHECK(task2.result() == 2);
    CHECK_THROWS_WITH_AS(tg.create_task(sleep_then(1.0, 3)), "TaskGroup is finished", std::runtime_error);
  };
  loop.run_until_complete(main());
  loop.close();
}

TEST_CASE("TaskGroup: the first failure cancels the others and the body; errors come as an ExceptionGroup") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  bool slow_cancelled = false, body_cancelled = false;
  auto slow = [&]() -> aio::Task<int> {
    try {
      co_await aio::sleep(10.0);
    } catch (const aio::CancelledError&) {
      slow_cancelled = true;
      throw;
    }
    co_return 1;
  };
  auto main = [&]() -> aio::Task<void> {
    double start = loop.time();
    aio::TaskGroup tg;
    tg.create_task(slow());
    tg.create_task(sleep_then_fail(1.0, "first"));
    tg.create_task(sleep_then_fail(1.0, "second"));
    std::exception_ptr body_error;
    try {
      co_await aio::sleep(5.0);  // the parent is cancelled here by the group
    } catch (const aio::CancelledError&) {
      body_cancelled = true;
      body_error = std::current_exception();
    }
    try {
      co_await tg.wait(body_error);
      FAIL("no ExceptionGroup");
    } catch (const aio::ExceptionGroup& group) {
      REQUIRE(group.exceptions().size() == 2);
      CHECK_THROWS_WITH_AS(std::rethrow_exception(group.exceptions()[0]), "first", std::runtime_error);
      CHECK_THROWS_WITH_AS(std::rethrow_exception(group.exceptions()[1]), "second", std::runtime_error);
      CHECK(std::string(group.what()) == "unhandled errors in a TaskGroup (2 sub-exceptions)");
    }
    CHECK(loop.time() - start == doctest::Approx(1.0));
    CHECK(aio::current_task().cancelling() == 0);  // the group took its cancel request back
  };
  loop.run_until_complete(main());
  CHECK(slow_cancelled);
  CHECK(body_cancelled);
  loop.close();
}

TEST_CASE("TaskGroup: cancelling the parent cancels the group's tasks, and CancelledError goes on") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  int cancelled_children = 0;
  auto child = [&]() -> aio::Task<void> {
    try {
      co_await aio::sleep(10.0);
    } catch (const aio::CancelledError&) {
      ++cancelled_children;
      throw;
    }
  };
  auto body = [&](aio::TaskGroup& tg) -> aio::Task<void> {
    tg.create_task(child());
    tg.create_task(child());
    co_await aio::sleep(10.0);
  };
  auto parent = loop.create_task(aio::TaskGroup::run(body));
  loop.call_later(1.0, [parent]() mutable { parent.cancel(); });
  CHECK_THROWS_AS(loop.run_until_complete(parent), aio::CancelledError);
  CHECK(parent.cancelled());
  CHECK(cancelled_children == 2);
  loop.close();
}

TEST_CASE("TaskGroup: outside a task is an error; a body exception cancels the tasks and joins the group") {
  CHECK_THROWS_AS(aio::TaskGroup(), std::runtime_error);
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  bool child_cancelled = false;
  auto child = [&]() -> aio::Task<void> {
    try {
      co_await aio::sleep(10.0);
    } catch (const aio::CancelledError&) {
      child_cancelled = true;
      throw;
    }
  };
  auto body = [&](aio::TaskGroup& tg) -> aio::Task<void> {
    tg.create_task(child());
    co_await aio::sleep(1.0);
    throw std::logic_error("body failed");
  };
  auto main = [&]() -> aio::Task<void> {
    try {
      co_await aio::TaskGroup::run(body);
      FAIL("no ExceptionGroup");
    } catch (const aio::ExceptionGroup& group) {
      REQUIRE(group.exceptions().size() == 1);
      CHECK_THROWS_WITH_AS(std::rethrow_exception(group.exceptions()[0]), "body failed", std::logic_error);
    }
  };
  loop.run_until_complete(main());
  CHECK(child_cancelled);
  loop.close();
}

// ---- Threads ----------------------------------------------------------------

TEST_CASE("run_coroutine_threadsafe: another thread submits a coroutine and blocks on its result") {
  auto loop = test::make_loop();
  std::atomic<bool> stop{false};
  auto keep_running = [&]() -> aio::Task<void> {
    while (!stop.load()) co_await aio::sleep(0.005);
  };
  int result = 0;
  bool cancelled = false;
  std::thread other([&] {
    auto future = aio::run_coroutine_threadsafe(sleep_then(0.01, 42), *loop);
    result = future.result(10.0);
    auto slow = aio::run_coroutine_threadsafe(sleep_then(60.0, 1), *loop);
    try {
      slow.result(0.05);
    } catch (const aio::TimeoutError&) {
      slow.cancel();
    }
    try {
      slow.result(10.0);
    } catch (const aio::CancelledError&) {
      cancelled = slow.cancelled();
    }
    stop = true;
  });
  loop->run_until_complete(aio::wait_for(keep_running(), 20.0));
  other.join();
  CHECK(result == 42);
  CHECK(cancelled);
  loop->close();
}

TEST_CASE("wrap_future: a std::future from another thread becomes an awaitable future") {
  auto loop = test::make_loop();
  std::promise<int> promise;
  aio::Future<int> wrapped = aio::wrap_future(promise.get_future(), *loop);
  std::thread producer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    promise.set_value(7);
  });
  CHECK(loop->run_until_complete(aio::wait_for(wrapped, 10.0)) == 7);
  producer.join();
  std::promise<int> failing;
  failing.set_exception(std::make_exception_ptr(std::runtime_error("from elsewhere")));
  CHECK_THROWS_WITH_AS(loop->run_until_complete(aio::wrap_future(failing.get_future(), *loop)), "from elsewhere",
                       std::runtime_error);
  loop->run_until_complete(loop->shutdown_default_executor());
  loop->close();
}
