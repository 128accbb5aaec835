// Tasks, cancellation, the task factory, sleep, wait_for, gather, aio::run
// and aio::Runner (CONTRACTS.md 18-21).
#include "support.hpp"

#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

using test::make_loop;

namespace {

// Runs exactly one iteration: what is ready now, not what that schedules.
void run_one_iteration(aio::EventLoop& loop) {
  loop.call_soon([&loop] { loop.stop(); });
  loop.run_forever();
}

aio::Task<int> answer() { co_return 42; }

aio::Task<int> fail_with(std::string what) {
  throw std::runtime_error(what);
  co_return 0;
}

aio::Task<int> await_value(aio::Future<int> f) { co_return co_await f; }

aio::Task<int> sleep_then(double delay, int value) {
  co_await aio::sleep(delay);
  co_return value;
}

aio::Task<std::string> sleep_then_string(double delay, std::string value) {
  co_await aio::sleep(delay);
  co_return value;
}

aio::Task<void> sleep_void(double delay, int* done) {
  co_await aio::sleep(delay);
  ++*done;
}

aio::Task<int> sleep_then_fail(double delay, std::string what) {
  co_await aio::sleep(delay);
  throw std::runtime_error(what);
}

// Sleeps, recording whether the sleep was cancelled (and letting it escape).
aio::Task<int> sleep_recording_cancel(double delay, bool* cancelled) {
  try {
    co_await aio::sleep(delay);
  } catch (const aio::CancelledError&) {
    *cancelled = true;
    throw;
  }
  co_return 1;
}

// Sleeps; if cancelled, swallows it and returns `on_cancel`.
aio::Task<int> sleep_swallowing_cancel(double delay, int on_cancel) {
  try {
    co_await aio::sleep(delay);
  } catch (const aio::CancelledError&) {
    co_return on_cancel;
  }
  co_return 0;
}

// gather() is a future made at once, as asyncio's: children not started yet
// go to the current loop when none is running.
struct CurrentLoop {
  explicit CurrentLoop(aio::EventLoop& loop) { aio::set_event_loop(&loop); }
  ~CurrentLoop() { aio::set_event_loop(nullptr); }
  CurrentLoop(const CurrentLoop&) = delete;
  CurrentLoop& operator=(const CurrentLoop&) = delete;
};

int task_number(const std::string& name) {
  REQUIRE(name.rfind("Task-", 0) == 0);
  REQUIRE(name.size() > 5);
  for (char ch : name.substr(5)) REQUIRE(std::isdigit(static_cast<unsigned char>(ch)));
  return std::stoi(name.substr(5));
}

}  // namespace

// ---- Running tasks ----------------------------------------------------------

TEST_CASE("task: run_until_complete returns the task's value or rethrows its exception") {
  // [test_run_until_complete; CONTRACTS 19]
  auto loop = make_loop();
  CHECK(loop->run_until_complete(answer()) == 42);  // an unstarted task is scheduled first
  auto t = loop->create_task(answer());
  CHECK(loop->run_until_complete(t) == 42);
  CHECK(t.done());
  CHECK(t.result() == 42);

  auto bad = loop->create_task(fail_with("task failed"));
  CHECK_THROWS_WITH_AS(loop->run_until_complete(bad), "task failed", std::runtime_error);
  CHECK(bad.done());
  CHECK_FALSE(bad.cancelled());
  CHECK(bad.exception());
  loop->close();
}

TEST_CASE("task: a task awaits a task created with create_task; several may await the same one") {
  auto loop = make_loop();
  auto shared = loop->create_task(sleep_then(0.01, 5));
  auto plus = [](aio::Task<int> other, int n) -> aio::Task<int> { co_return co_await other + n; };
  auto a = loop->create_task(plus(shared, 1));
  auto b = loop->create_task(plus(shared, 2));
  test::run_until(*loop, [&] { return a.done() && b.done(); });
  CHECK(a.result() == 6);
  CHECK(b.result() == 7);
  CHECK(shared.result() == 5);
  loop->close();
}

TEST_CASE("task: create_task on a coroutine already started raises std::invalid_argument") {
  auto loop = make_loop();
  auto t = loop->create_task(answer());
  CHECK(t.started());
  CHECK_THROWS_AS(loop->create_task(t), std::invalid_argument);
  CHECK(loop->run_until_complete(t) == 42);

  // Awaited inline by another task counts as started too.
  aio::Task<int> child = answer();
  CHECK_FALSE(child.started());
  auto parent = [&]() -> aio::Task<int> { co_return co_await child; };
  CHECK(test::run(*loop, parent()) == 42);
  CHECK(child.started());
  CHECK_THROWS_AS(loop->create_task(child), std::invalid_argument);
  loop->close();
}

TEST_CASE("task: a task awaiting itself raises std::runtime_error") {
  auto loop = make_loop();
  aio::Task<int> t;
  bool refused = false;
  auto body = [&]() -> aio::Task<int> {
    co_await aio::sleep(0);
    try {
      co_return co_await t;
    } catch (const std::runtime_error&) {
      refused = true;
    }
    co_return 1;
  };
  t = loop->create_task(body());
  test::run_until(*loop, [&] { return t.done(); });
  CHECK(refused);
  CHECK(t.result() == 1);
  loop->close();
}

// ---- Cancellation -----------------------------------------------------------

TEST_CASE("task: cancel() makes the pending co_await throw; a task that catches it finishes normally") {
  // [CONTRACTS 18]
  auto loop = make_loop();
  auto never = loop->create_future<int>();
  std::string seen;
  auto body = [&]() -> aio::Task<int> {
    try {
      co_await never;
    } catch (const aio::CancelledError& e) {
      seen = "caught: " + e.message();
    }
    co_return 7;
  };
  auto t = loop->create_task(body());
  run_one_iteration(*loop);  // now suspended on `never`
  CHECK(t.cancel("halt"));
  CHECK(never.cancelled());  // the awaited future is cancelled at once
  CHECK(t.cancelling() == 1);
  CHECK_FALSE(t.done());
  test::run_until(*loop, [&] { return t.done(); });
  CHECK(seen == "caught: halt");
  CHECK_FALSE(t.cancelled());
  CHECK(t.result() == 7);
  CHECK_FALSE(t.cancel());  // done: refused
  loop->close();
}

TEST_CASE("task: a CancelledError escaping the coroutine ends the task cancelled, with the message") {
  auto loop = make_loop();
  auto never = loop->create_future<int>();
  bool after = false;
  auto body = [&]() -> aio::Task<int> {
    int v = co_await never;
    after = true;
    co_return v;
  };
  auto t = loop->create_task(body());
  run_one_iteration(*loop);
  CHECK(t.cancel("reason"));
  test::run_until(*loop, [&] { return t.done(); });
  CHECK(t.cancelled());
  CHECK_FALSE(after);
  std::string message = "not thrown";
  try {
    (void)t.result();
  } catch (const aio::CancelledError& e) {
    message = e.message();
  }
  CHECK(message == "reason");
  CHECK_THROWS_AS(loop->run_until_complete(t), aio::CancelledError);
  CHECK_FALSE(t.cancel());  // done: refused
  loop->close();
}

TEST_CASE("task: cancelling()/uncancel() count the cancel requests") {
  auto loop = make_loop();
  auto never = loop->create_future<int>();
  auto body = [&]() -> aio::Task<int> {
    try {
      co_await never;
    } catch (const aio::CancelledError&) {
      co_return 1;
    }
    co_return 0;
  };
  auto t = loop->create_task(body());
  run_one_iteration(*loop);
  CHECK(t.cancelling() == 0);
  CHECK(t.cancel());
  CHECK(t.cancel());  // still pending: every request counts, as asyncio's
  CHECK(t.cancelling() == 2);
  aio::AnyTask any = t;
  CHECK(any.cancelling() == 2);
  CHECK(t.uncancel() == 1);
  CHECK(any.uncancel() == 0);
  CHECK(t.uncancel() == 0);
  test::run_until(*loop, [&] { return t.done(); });
  CHECK_FALSE(t.cancelled());
  CHECK(t.result() == 1);
  loop->close();
}

TEST_CASE("task: cancelling a task cancels the future an inline child awaits, and it propagates") {
  auto loop = make_loop();
  auto fut = loop->create_future<int>();
  bool child_saw = false, parent_saw = false, parent_went_on = false;
  auto child = [&]() -> aio::Task<int> {
    try {
      co_return co_await fut;
    } catch (const aio::CancelledError&) {
      child_saw = true;
      throw;
    }
  };
  auto parent = [&]() -> aio::Task<int> {
    try {
      int v = co_await child();
      parent_went_on = true;
      co_return v;
    } catch (const aio::CancelledError& e) {
      parent_saw = e.message() == "from outside";
      throw;
    }
  };
  auto t = loop->create_task(parent());
  run_one_iteration(*loop);
  CHECK(t.cancel("from outside"));
  CHECK(fut.cancelled());
  test::run_until(*loop, [&] { return t.done(); });
  CHECK(child_saw);
  CHECK(parent_saw);
  CHECK_FALSE(parent_went_on);
  CHECK(t.cancelled());
  loop->close();
}

TEST_CASE("task: cancelled before its first step, the body never runs") {
  auto loop = make_loop();
  bool ran = false;
  auto body = [&]() -> aio::Task<void> {
    ran = true;
    co_return;
  };
  auto t = loop->create_task(body());
  CHECK(t.cancel());
  test::run_until(*loop, [&] { return t.done(); });
  CHECK(t.cancelled());
  CHECK_FALSE(ran);
  CHECK_THROWS_AS(t.result(), aio::CancelledError);
  loop->close();
}

TEST_CASE("task: a task cancelling itself gets CancelledError at its next co_await") {
  // [test_cancel_current_task]
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  aio::Task<int> t;
  bool after = false;
  auto body = [&]() -> aio::Task<int> {
    CHECK(t.cancel());
    co_await aio::sleep(100);  // cancelled at once, no 100 s wait
    after = true;
    co_return 12;
  };
  t = loop.create_task(body());
  double start = loop.time();
  CHECK_THROWS_AS(loop.run_until_complete(t), aio::CancelledError);
  CHECK(loop.time() - start < 1.0);
  CHECK(t.cancelled());
  CHECK_FALSE(after);
  CHECK_FALSE(t.cancel());
  loop.close();
}

TEST_CASE("task: a task cancelling itself right before it returns ends cancelled") {
  // [test_cancel_at_end]
  auto loop = make_loop();
  aio::Task<int> t;
  auto body = [&]() -> aio::Task<int> {
    CHECK(aio::current_task().cancel());
    co_return 12;
  };
  t = loop->create_task(body());
  CHECK_THROWS_AS(loop->run_until_complete(t), aio::CancelledError);
  CHECK(t.done());
  CHECK(t.cancelled());
  CHECK_FALSE(t.cancel());
  loop->close();
}

// ---- Names, current_task, all_tasks, the task factory -----------------------

TEST_CASE("task: names default to Task-N, can be given and changed") {
  auto loop = make_loop();
  auto a = loop->create_task(answer());
  auto b = loop->create_task(answer());
  auto c = loop->create_task(answer(), "worker");
  CHECK(task_number(b.get_name()) == task_number(a.get_name()) + 1);
  CHECK(c.get_name() == "worker");
  c.set_name("renamed");
  CHECK(c.get_name() == "renamed");
  aio::AnyTask any = c;
  CHECK(any.get_name() == "renamed");
  std::string inside;
  auto named = [&]() -> aio::Task<void> {
    inside = aio::current_task().get_name();
    co_return;
  };
  loop->run_until_complete(loop->create_task(named(), "inner-name"));
  CHECK(inside == "inner-name");
  test::run_until(*loop, [&] { return a.done() && b.done() && c.done(); });
  loop->close();
}

TEST_CASE("task: current_task() is the running task inside, empty outside") {
  auto loop = make_loop();
  CHECK_FALSE(aio::current_task());
  aio::Task<int> t;
  bool is_self = false, is_self_in_child = false, empty_in_callback = false;
  auto child = [&]() -> aio::Task<int> {
    is_self_in_child = aio::current_task() == t;  // an inline child runs under its parent's task
    co_return 1;
  };
  auto body = [&]() -> aio::Task<int> {
    is_self = aio::current_task() == t;
    loop->call_soon([&] { empty_in_callback = !aio::current_task(); });
    co_await aio::sleep(0);
    co_return co_await child();
  };
  t = loop->create_task(body());
  CHECK(loop->run_until_complete(t) == 1);
  CHECK(is_self);
  CHECK(is_self_in_child);
  CHECK(empty_in_callback);
  CHECK_FALSE(aio::current_task());
  loop->close();
}

TEST_CASE("task: all_tasks() lists the loop's pending tasks only") {
  auto loop = make_loop();
  CHECK(loop->all_tasks().empty());
  auto never = loop->create_future<int>();
  auto a = loop->create_task(await_value(never));
  auto b = loop->create_task(await_value(never));
  auto done = loop->create_task(answer());
  CHECK(loop->run_until_complete(done) == 42);
  auto tasks = loop->all_tasks();
  REQUIRE(tasks.size() == 2);
  CHECK(((tasks[0] == a && tasks[1] == b) || (tasks[0] == b && tasks[1] == a)));
  never.set_result(3);
  test::run_until(*loop, [&] { return a.done() && b.done(); });
  CHECK(loop->all_tasks().empty());
  loop->close();
}

TEST_CASE("task: the task factory receives each task and must start it") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  std::vector<aio::AnyTask> seen;
  loop->set_task_factory([&](aio::EventLoop& l, aio::AnyTask task) {
    CHECK(&l == loop.get());
    task.set_name("made-" + std::to_string(seen.size()));
    seen.push_back(task);
    l.start_task(task);
  });
  CHECK(loop->get_task_factory());
  auto a = loop->create_task(answer());
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == a);
  CHECK(a.get_name() == "made-0");
  CHECK(loop->run_until_complete(a) == 42);
  CHECK_THROWS_AS(loop->start_task(a), std::logic_error);  // started already

  bool ran = false;
  auto body = [&]() -> aio::Task<void> {
    ran = true;
    co_return;
  };
  loop->set_task_factory([](aio::EventLoop&, aio::AnyTask) {});  // forgets start_task
  CHECK_THROWS_AS(loop->create_task(body()), std::logic_error);
  run_one_iteration(*loop);
  CHECK_FALSE(ran);
  CHECK(loop->all_tasks().empty());

  loop->set_task_factory({});
  CHECK_FALSE(loop->get_task_factory());
  CHECK(loop->run_until_complete(loop->create_task(answer())) == 42);
  seen.clear();
  loop->close();
}

// ---- Failures nobody looked at (CONTRACTS 20) -------------------------------

TEST_CASE("task: an exception nobody retrieved is reported when the last reference goes") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  {
    auto t = loop->create_task(fail_with("lost"));
    test::run_until(*loop, [&] { return t.done(); });
    CHECK(errors.contexts.empty());  // still referenced: someone may look yet
  }
  REQUIRE(errors.contexts.size() == 1);
  {
    const aio::ExceptionContext& context = errors.contexts[0];
    CHECK(context.message == "Task exception was never retrieved");
    REQUIRE(context.task);
    CHECK(context.task.is_task());
    CHECK(context.task.done());
    REQUIRE(context.exception);
    CHECK_THROWS_WITH_AS(std::rethrow_exception(context.exception), "lost", std::runtime_error);
  }

  // Fire and forget: reported once the loop drops it.
  loop->create_task(fail_with("dropped"));
  test::run_until(*loop, [&] { return errors.contexts.size() == 2; });
  CHECK(errors.contexts[1].message == "Task exception was never retrieved");

  // Retrieved through result(), exception() or an awaiting task: not reported.
  {
    auto t = loop->create_task(fail_with("seen"));
    test::run_until(*loop, [&] { return t.done(); });
    CHECK_THROWS_AS(t.result(), std::runtime_error);
  }
  {
    auto t = loop->create_task(fail_with("seen"));
    test::run_until(*loop, [&] { return t.done(); });
    CHECK(t.exception());
  }
  {
    auto waiter = [](aio::Task<int> other) -> aio::Task<int> {
      try {
        co_return co_await other;
      } catch (const std::runtime_error&) {
        co_return -1;
      }
    };
    CHECK(test::run(*loop, waiter(loop->create_task(fail_with("awaited")))) == -1);
  }
  run_one_iteration(*loop);
  CHECK(errors.contexts.size() == 2);
  loop->close();
}

TEST_CASE("task: a task still pending when the loop closes is reported as destroyed while pending") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  auto never = loop->create_future<int>();
  loop->create_task(await_value(never));
  run_one_iteration(*loop);
  CHECK(errors.contexts.empty());
  loop->close();
  REQUIRE(errors.contexts.size() == 1);
  CHECK(errors.contexts[0].message == "Task was destroyed but it is pending!");
  CHECK(errors.contexts[0].task);
}

// ---- sleep ------------------------------------------------------------------

TEST_CASE("sleep(0) yields to the loop for exactly one iteration") {
  auto loop = make_loop();
  std::vector<std::string> trace;
  auto body = [&]() -> aio::Task<void> {
    loop->call_soon([&] {
      trace.push_back("A");
      loop->call_soon([&] { trace.push_back("B"); });
    });
    trace.push_back("before");
    co_await aio::sleep(0);
    trace.push_back("after");
    co_await aio::sleep(-1);  // negative: the same
    trace.push_back("end");
  };
  test::run(*loop, body());
  CHECK(trace == std::vector<std::string>{"before", "A", "after", "B", "end"});
  loop->close();
}

TEST_CASE("sleep(d) suspends for d seconds of loop time; sleep(d, value) returns the value") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  double start = loop.time();
  loop.run_until_complete(aio::sleep(2.5));
  CHECK(loop.time() - start == doctest::Approx(2.5));
  start = loop.time();
  CHECK(loop.run_until_complete(aio::sleep(1.0, std::string("done"))) == "done");
  CHECK(loop.time() - start == doctest::Approx(1.0));
  loop.close();
}

TEST_CASE("sleep(NaN) raises std::invalid_argument") {
  auto loop = make_loop();
  CHECK_THROWS_AS(loop->run_until_complete(aio::sleep(std::numeric_limits<double>::quiet_NaN())),
                  std::invalid_argument);
  loop->close();
}

TEST_CASE("a cancelled sleep leaves no timer behind") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  auto t = loop.create_task(aio::sleep(100.0));
  loop.call_later(1.0, [t]() mutable { t.cancel(); });
  CHECK_THROWS_AS(loop.run_until_complete(t), aio::CancelledError);
  // With the 100 s timer gone, the next wait is for the 200 s one (else ~99 s).
  std::size_t before = v.selector->timeouts.size();
  loop.call_later(200.0, [&] { loop.stop(); });
  loop.run_forever();
  REQUIRE(v.selector->timeouts.size() > before);
  CHECK(v.selector->timeouts[before] == 200'000'000'000);
  CHECK(loop.timer_count() == 0);
  loop.close();
}

// ---- wait_for (CONTRACTS 21) ------------------------------------------------

TEST_CASE("wait_for: returns the result that comes in time") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  double start = loop.time();
  CHECK(loop.run_until_complete(aio::wait_for(sleep_then(1.0, 5), 10.0)) == 5);
  CHECK(loop.time() - start == doctest::Approx(1.0));

  auto done = loop.create_future<int>();
  done.set_result(8);
  CHECK(loop.run_until_complete(aio::wait_for(done, 0.0)) == 8);  // done already: no timeout
  loop.close();
}

TEST_CASE("wait_for: on timeout the inner task is cancelled, and has finished, before TimeoutError") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  bool inner_cancelled = false, done_at_timeout = false, cancelled_at_timeout = false;
  aio::Task<int> inner;
  auto main = [&]() -> aio::Task<int> {
    inner = loop.create_task(sleep_recording_cancel(100.0, &inner_cancelled));
    try {
      co_await aio::wait_for(inner, 1.0);
    } catch (const aio::TimeoutError&) {
      done_at_timeout = inner.done();
      cancelled_at_timeout = inner.cancelled();
      co_return 1;
    }
    co_return 0;
  };
  double start = loop.time();
  CHECK(loop.run_until_complete(main()) == 1);
  CHECK(loop.time() - start == doctest::Approx(1.0));
  CHECK(inner_cancelled);
  CHECK(done_at_timeout);
  CHECK(cancelled_at_timeout);

  // A plain future is cancelled too.
  auto f = loop.create_future<int>();
  CHECK_THROWS_AS(loop.run_until_complete(aio::wait_for(f, 0.5)), aio::TimeoutError);
  CHECK(f.cancelled());
  loop.close();
}

TEST_CASE("wait_for: a timeout <= 0 on a pending awaitable times out at once") {
  // [test_wait_for_timeout_less_then_0_or_0, ..._coroutine_do_not_started]
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  for (double timeout : {0.0, -1.0}) {
    CAPTURE(timeout);
    auto pending = loop.create_task(sleep_then(10.0, 1));
    run_one_iteration(loop);  // started and suspended
    double start = loop.time();
    CHECK_THROWS_AS(loop.run_until_complete(aio::wait_for(pending, timeout)), aio::TimeoutError);
    CHECK(pending.cancelled());
    CHECK(loop.time() - start < 1.0);

    bool started = false;
    auto quick = [&]() -> aio::Task<int> {
      started = true;
      co_return 1;
    };
    CHECK_THROWS_AS(loop.run_until_complete(aio::wait_for(quick(), timeout)), aio::TimeoutError);
    CHECK_FALSE(started);
  }
  loop.close();
}

TEST_CASE("wait_for: without a timeout it just waits") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  double start = loop.time();
  CHECK(loop.run_until_complete(aio::wait_for(sleep_then(50.0, 3), std::nullopt)) == 3);
  CHECK(loop.time() - start == doctest::Approx(50.0));
  loop.close();
}

TEST_CASE("wait_for: cancelling the caller cancels the inner task") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  for (std::optional<double> timeout : {std::optional<double>(50.0), std::optional<double>()}) {
    bool inner_cancelled = false;
    auto inner = loop.create_task(sleep_recording_cancel(100.0, &inner_cancelled));
    auto outer = loop.create_task(aio::wait_for(inner, timeout));
    loop.call_later(1.0, [outer]() mutable { outer.cancel(); });
    double start = loop.time();
    CHECK_THROWS_AS(loop.run_until_complete(outer), aio::CancelledError);
    CHECK(loop.time() - start == doctest::Approx(1.0));
    CHECK(outer.cancelled());
    CHECK(inner.cancelled());
    CHECK(inner_cancelled);
  }
  loop.close();
}

TEST_CASE("wait_for: an inner task that swallows the cancellation gives its value") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  CHECK(loop.run_until_complete(aio::wait_for(sleep_swallowing_cancel(100.0, 99), 1.0)) == 99);
  CHECK_THROWS_AS(loop.run_until_complete(aio::wait_for(answer(), std::numeric_limits<double>::quiet_NaN())),
                  std::invalid_argument);
  loop.close();
}

// ---- gather (CONTRACTS 21) --------------------------------------------------

TEST_CASE("gather: results in argument order, of mixed types, whatever order the children finish in") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  CurrentLoop current(loop);
  int voids = 0;
  auto already = loop.create_future<int>();
  already.set_result(4);
  double start = loop.time();
  auto results = loop.run_until_complete(
      aio::gather(sleep_then(3.0, 1), sleep_then_string(1.0, "x"), sleep_void(2.0, &voids), already));
  CHECK(std::get<0>(results) == 1);
  CHECK(std::get<1>(results) == "x");
  CHECK(std::get<2>(results) == std::monostate{});
  CHECK(std::get<3>(results) == 4);
  CHECK(voids == 1);
  CHECK(loop.time() - start == doctest::Approx(3.0));  // concurrently: not 6 s
  loop.close();
}

TEST_CASE("gather: the vector form keeps argument order") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  CurrentLoop current(loop);
  std::vector<aio::Task<int>> tasks;
  for (int i = 0; i < 5; ++i) tasks.push_back(sleep_then(5.0 - i, i));
  double start = loop.time();
  CHECK(loop.run_until_complete(aio::gather(std::move(tasks))) == std::vector<int>{0, 1, 2, 3, 4});
  CHECK(loop.time() - start == doctest::Approx(5.0));

  int voids = 0;
  std::vector<aio::Task<void>> void_tasks;
  for (int i = 0; i < 3; ++i) void_tasks.push_back(sleep_void(1.0 + i, &voids));
  loop.run_until_complete(aio::gather(std::move(void_tasks)));
  CHECK(voids == 3);

  CHECK(loop.run_until_complete(aio::gather(std::vector<aio::Task<int>>{})).empty());
  loop.close();
}

TEST_CASE("gather: the first exception propagates at once; the others keep running") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  test::CaptureErrors errors(loop);
  auto slow = loop.create_task(sleep_then(5.0, 2));
  auto failing = loop.create_task(sleep_then_fail(1.0, "child failed"));
  auto later_failing = loop.create_task(sleep_then_fail(2.0, "second failure"));
  double start = loop.time();
  CHECK_THROWS_WITH_AS(loop.run_until_complete(aio::gather(slow, failing, later_failing)), "child failed",
                       std::runtime_error);
  CHECK(loop.time() - start == doctest::Approx(1.0));
  CHECK_FALSE(slow.done());
  CHECK(loop.run_until_complete(slow) == 2);
  CHECK(later_failing.done());
  run_one_iteration(loop);
  CHECK(errors.contexts.empty());  // gather retrieved the children's exceptions
  loop.close();
}

TEST_CASE("gather: a cancelled child makes gather raise CancelledError") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  auto a = loop.create_task(sleep_then(5.0, 1));
  auto b = loop.create_task(sleep_then(1.0, 2));
  loop.call_later(0.5, [a]() mutable { a.cancel(); });
  CHECK_THROWS_AS(loop.run_until_complete(aio::gather(a, b)), aio::CancelledError);
  CHECK(a.cancelled());
  CHECK(loop.run_until_complete(b) == 2);
  loop.close();
}

TEST_CASE("gather: cancelling gather cancels every child; it fails with CancelledError at the first cancelled one") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  bool a_cancelled = false, b_cancelled = false;
  auto a = loop.create_task(sleep_recording_cancel(5.0, &a_cancelled));
  auto b = loop.create_task(sleep_recording_cancel(6.0, &b_cancelled));
  auto slow_to_cancel = [](double cleanup) -> aio::Task<int> {
    bool cancelled = false;
    try {
      co_await aio::sleep(10.0);
    } catch (const aio::CancelledError&) {
      cancelled = true;
    }
    if (cancelled) co_await aio::sleep(cleanup);  // cleanup before giving up
    co_return 5;                                  // swallows the cancellation
  };
  auto c = loop.create_task(slow_to_cancel(1.0));
  auto g = aio::gather(a, b, c);
  bool cancel_result = false;
  loop.call_later(1.0, [g, &cancel_result]() mutable { cancel_result = g.cancel("enough"); });
  double start = loop.time();
  std::string message = "not thrown";
  try {
    loop.run_until_complete(g);
  } catch (const aio::CancelledError& e) {
    message = e.message();
  }
  CHECK(cancel_result);
  CHECK(message == "enough");
  // As asyncio's _GatheringFuture: done with CancelledError as its exception
  // once a child ends cancelled (c's cleanup still runs), not cancelled itself.
  CHECK(loop.time() - start == doctest::Approx(1.0));
  CHECK(g.done());
  CHECK_FALSE(g.cancelled());
  CHECK(a.cancelled());
  CHECK(b.cancelled());
  CHECK(a_cancelled);
  CHECK(b_cancelled);
  CHECK_FALSE(c.done());
  CHECK(loop.run_until_complete(c) == 5);
  loop.close();
}

TEST_CASE("gather: once every child is done, cancel() returns false and the result stands") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  auto a = loop.create_task(sleep_then(1.0, 1));
  auto b = loop.create_task(sleep_then(2.0, 2));
  auto g = aio::gather(std::vector<aio::Task<int>>{a, b});
  loop.run_until_complete(b);  // the gather's own callback runs in the same iteration as b's waiter
  loop.run_until_complete(aio::sleep(0));
  REQUIRE(g.done());
  CHECK_FALSE(g.cancel());
  CHECK(g.result() == std::vector<int>{1, 2});
  loop.close();
}

TEST_CASE("gather: a cancelled child makes it done with CancelledError as its exception, not cancelled") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  auto a = loop.create_task(sleep_then(5.0, 1));
  auto b = loop.create_task(sleep_then(0.5, 2));
  auto g = aio::gather(a, b);
  a.cancel("child cancelled");
  CHECK_THROWS_AS(loop.run_until_complete(g), aio::CancelledError);
  CHECK(g.done());
  CHECK_FALSE(g.cancelled());
  std::exception_ptr error = g.exception();
  REQUIRE(error);
  std::string message = "not a CancelledError";
  try {
    std::rethrow_exception(error);
  } catch (const aio::CancelledError& e) {
    message = e.message();
  } catch (...) {
  }
  CHECK(message == "child cancelled");
  CHECK(loop.run_until_complete(b) == 2);
  loop.close();
}

TEST_CASE("gather: return_exceptions gives every child's value or exception, cancelled ones included") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  auto ok = loop.create_task(sleep_then(1.0, 1));
  auto failing = loop.create_task(sleep_then_fail(0.5, "boom"));
  auto cancelled = loop.create_task(sleep_then(10.0, 3));
  cancelled.cancel();
  auto g = aio::gather(std::vector<aio::Task<int>>{ok, failing, cancelled}, aio::return_exceptions);
  auto results = loop.run_until_complete(g);
  REQUIRE(results.size() == 3);
  CHECK(std::get<0>(results[0]) == 1);
  CHECK_THROWS_WITH_AS(std::rethrow_exception(std::get<1>(results[1])), "boom", std::runtime_error);
  CHECK_THROWS_AS(std::rethrow_exception(std::get<1>(results[2])), aio::CancelledError);

  auto mixed = aio::gather(aio::return_exceptions, loop.create_task(sleep_then_string(0.1, "s")),
                           loop.create_task(fail_with("tuple boom")));
  auto [s, e] = loop.run_until_complete(mixed);
  CHECK(std::get<0>(s) == "s");
  CHECK_THROWS_WITH_AS(std::rethrow_exception(std::get<1>(e)), "tuple boom", std::runtime_error);
  loop.close();
}

// asyncio 3.12: wait_for awaits a coroutine inline (under asyncio.timeout).
TEST_CASE("wait_for: the coroutine runs inline; cancelling right after it starts lets it finish as asyncio's") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  bool started = false;
  auto inner = [&started]() -> aio::Task<int> {
    started = true;
    try {
      co_await aio::sleep(10.0);
    } catch (const aio::CancelledError&) {
      co_return 7;  // cleans up and gives a value
    }
    co_return 0;
  };
  auto main = [&]() -> aio::Task<int> {
    auto t = loop.create_task(aio::wait_for(inner(), 5.0));
    co_await aio::sleep(0);  // wait_for has started, and with it inner()
    CHECK(started);
    CHECK(t.cancel());
    co_return co_await t;
  };
  CHECK(loop.run_until_complete(main()) == 7);
  CHECK(started);
  loop.close();
}

TEST_CASE("wait_for: a timeout on an inline coroutine cancels it where it waits, then TimeoutError") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  bool cleaned_up = false;
  auto inner = [&cleaned_up]() -> aio::Task<int> {
    try {
      co_await aio::sleep(10.0);
    } catch (const aio::CancelledError&) {
      cleaned_up = true;
      throw;
    }
    co_return 0;
  };
  auto main = [&]() -> aio::Task<void> {
    double start = loop.time();
    CHECK_THROWS_AS(co_await aio::wait_for(inner(), 1.0), aio::TimeoutError);
    CHECK(loop.time() - start == doctest::Approx(1.0));
    CHECK(cleaned_up);
    CHECK(aio::current_task().cancelling() == 0);  // the timeout took its own request back
  };
  loop.run_until_complete(main());
  loop.close();
}

// ---- Descriptions -----------------------------------------------------------

namespace {
aio::Task<void> slowpoke(std::shared_ptr<test::VirtualClock> clock) {
  clock->now_ns += 150'000'000;  // this step "takes" 150 ms of loop time
  co_return;
}
}  // namespace

TEST_CASE("debug: the slow-callback warning names the task, as asyncio's") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  loop.set_debug(true);
  test::CaptureLog log;
  auto task = loop.create_task(slowpoke(v.clock), "slowpoke");
  loop.run_until_complete(task);
  REQUIRE(log.lines.size() == 1);
  const std::string& line = log.lines[0].second;
  INFO(line);
  CHECK(line.rfind("Executing <Task ", 0) == 0);
  CHECK(line.find("name='slowpoke'") != std::string::npos);
  CHECK(line.find("coro=<") != std::string::npos);
  CHECK(line.find("slowpoke(") != std::string::npos);
  CHECK(line.find("test_tasks.cpp") != std::string::npos);
  CHECK(line.find("took 0.150 seconds") != std::string::npos);
  loop.close();
}

TEST_CASE("repr: tasks, futures and handles read as asyncio's") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  auto task = loop.create_task(sleep_then(1.0, 1), "sleeper");
  std::string pending = task.repr();
  CHECK(pending.rfind("<Task pending name='sleeper' coro=<", 0) == 0);
  CHECK(pending.find("sleep_then(") != std::string::npos);
  loop.run_until_complete(aio::sleep(0));
  CHECK(task.repr().find("wait_for=<Future pending>") != std::string::npos);
  loop.run_until_complete(task);
  CHECK(task.repr().rfind("<Task finished name='sleeper'", 0) == 0);

  auto f = loop.create_future<int>();
  CHECK(f.repr() == "<Future pending>");
  f.set_exception(std::make_exception_ptr(std::runtime_error("bad")));
  CHECK(f.repr() == "<Future finished exception=std::runtime_error: bad>");
  (void)f.exception();
  auto c = loop.create_future<int>();
  c.cancel();
  CHECK(c.repr() == "<Future cancelled>");

  aio::TimerHandle timer = loop.call_later(1.0, [] {});
  CHECK(timer.repr().rfind("<TimerHandle when=", 0) == 0);
  timer.cancel();
  CHECK(timer.repr().rfind("<TimerHandle cancelled when=", 0) == 0);
  loop.close();
}

TEST_CASE("aio::run returns main's value or rethrows its exception") {
  CHECK(aio::run(answer()) == 42);
  CHECK_THROWS_WITH_AS(aio::run(fail_with("main failed")), "main failed", std::runtime_error);
  bool same_loop = false;
  auto main = [&]() -> aio::Task<void> {
    same_loop = &aio::get_event_loop() == &aio::get_running_loop();
    co_await aio::sleep(0.001);
  };
  aio::run(main());
  CHECK(same_loop);
}

TEST_CASE("aio::run from inside a running loop raises std::runtime_error") {
  auto loop = make_loop();
  bool threw = false;
  auto body = [&]() -> aio::Task<void> {
    try {
      aio::run(answer());
    } catch (const std::runtime_error&) {
      threw = true;
    }
    co_return;
  };
  test::run(*loop, body());
  CHECK(threw);
  loop->close();
}

TEST_CASE("aio::run cancels the tasks still pending when main returns") {
  bool cancelled = false, finished = false;
  auto forever = [&]() -> aio::Task<void> {
    try {
      co_await aio::sleep(5.0);  // long enough to notice, short enough not to hang
      finished = true;
    } catch (const aio::CancelledError&) {
      cancelled = true;
      throw;
    }
  };
  auto main = [&]() -> aio::Task<int> {
    aio::get_running_loop().create_task(forever());
    co_await aio::sleep(0);
    co_return 3;
  };
  CHECK(aio::run(main()) == 3);
  CHECK(cancelled);
  CHECK_FALSE(finished);
}

TEST_CASE("aio::Runner runs mains one after another on the same loop") {
  aio::Task<int> background;
  aio::EventLoop* first_loop = nullptr;
  aio::EventLoop* second_loop = nullptr;
  auto first = [&]() -> aio::Task<int> {
    first_loop = &aio::get_running_loop();
    background = first_loop->create_task(sleep_then(0.01, 9));
    co_return 1;
  };
  auto second = [&]() -> aio::Task<int> {
    second_loop = &aio::get_running_loop();
    co_return co_await background + 1;  // a task from the first run goes on in the second
  };
  aio::Runner runner;
  CHECK(runner.run(first()) == 1);
  CHECK(runner.run(second()) == 10);
  CHECK(first_loop == second_loop);
  CHECK(&runner.get_loop() == first_loop);
  runner.close();
  runner.close();  // idempotent
  CHECK_THROWS_AS(runner.run(answer()), std::runtime_error);
  CHECK_THROWS_AS(runner.get_loop(), std::runtime_error);
}
