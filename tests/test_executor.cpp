// run_in_executor, ThreadPoolExecutor and the default executor
// (CONTRACTS.md 17), on the backend under test.
#include "support.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

using test::make_loop;

namespace {

// Runs exactly one iteration: what is ready now, not what that schedules.
void run_one_iteration(aio::EventLoop& loop) {
  loop.call_soon([&loop] { loop.stop(); });
  loop.run_forever();
}

template <class T>
T await_bounded(aio::EventLoop& loop, aio::Future<T> f, double timeout = 10.0) {
  return loop.run_until_complete(aio::wait_for(f, timeout));
}

// Joins the default executor's threads, so no test leaves one behind.
void close_loop(aio::EventLoop& loop) {
  loop.run_until_complete(aio::wait_for(loop.shutdown_default_executor(), 10.0));
  loop.close();
}

// A gate work items block on. Shared with them, so a failing test that
// leaves before opening it leaves them nothing dangling (the destructor opens it).
struct Gate {
  std::promise<void> open_promise;
  std::shared_future<void> opened = open_promise.get_future().share();
  std::promise<void> entered_promise;
  std::shared_future<void> entered = entered_promise.get_future().share();
  std::atomic<int> ran{0};
  void open() { open_promise.set_value(); }
};

// Forwards to a pool, counting what goes through it.
class CountingExecutor final : public aio::Executor {
 public:
  void submit(Work work) override {
    ++submitted;
    pool_.submit(std::move(work));
  }
  void shutdown(bool wait, bool cancel_futures) override {
    ++shutdowns;
    pool_.shutdown(wait, cancel_futures);
  }
  std::atomic<int> submitted{0};
  std::atomic<int> shutdowns{0};

 private:
  aio::ThreadPoolExecutor pool_{2};
};

}  // namespace

TEST_CASE("run_in_executor: the work runs on another thread and its result arrives as a future") {
  auto loop = make_loop();
  const auto loop_thread = std::this_thread::get_id();
  auto f = loop->run_in_executor(nullptr, [] { return std::this_thread::get_id(); });
  CHECK_FALSE(f.done());
  CHECK(await_bounded(*loop, f) != loop_thread);

  auto value = loop->run_in_executor(nullptr, [] { return 6 * 7; });
  CHECK(await_bounded(*loop, value) == 42);

  std::atomic<bool> ran{false};
  aio::Future<void> v = loop->run_in_executor(nullptr, [&ran] { ran = true; });
  await_bounded(*loop, v);
  CHECK(ran);

  aio::ThreadPoolExecutor pool(2);
  auto custom = loop->run_in_executor(&pool, [] { return std::this_thread::get_id(); });
  CHECK(await_bounded(*loop, custom) != loop_thread);
  pool.shutdown(true);
  close_loop(*loop);
}

TEST_CASE("run_in_executor: an exception thrown by the work arrives through the future") {
  auto loop = make_loop();
  auto f = loop->run_in_executor(nullptr, []() -> int { throw std::runtime_error("worker failed"); });
  CHECK_THROWS_WITH_AS(await_bounded(*loop, f), "worker failed", std::runtime_error);
  CHECK(f.done());
  CHECK(f.exception());
  auto v = loop->run_in_executor(nullptr, [] { throw std::logic_error("void worker failed"); });
  CHECK_THROWS_WITH_AS(await_bounded(*loop, v), "void worker failed", std::logic_error);
  close_loop(*loop);
}

TEST_CASE("run_in_executor: many concurrent items all complete with their own results") {
  auto loop = make_loop();
  aio::ThreadPoolExecutor pool(4);
  CHECK(pool.max_workers() == 4);
  std::vector<aio::Future<int>> futures;
  for (int i = 0; i < 200; ++i) {
    aio::Executor* executor = i % 2 ? static_cast<aio::Executor*>(&pool) : nullptr;
    futures.push_back(loop->run_in_executor(executor, [i] { return i * i; }));
  }
  auto results = loop->run_until_complete(aio::wait_for(aio::gather(futures), 10.0));
  REQUIRE(results.size() == 200);
  for (int i = 0; i < 200; ++i) CHECK(results[i] == i * i);
  pool.shutdown(true);
  close_loop(*loop);
}

TEST_CASE("run_in_executor: a future cancelled before its work starts keeps the work from running") {
  // [test_run_in_executor_cancel]
  auto loop = make_loop();
  aio::ThreadPoolExecutor pool(1);
  auto gate = std::make_shared<Gate>();
  auto second_ran = std::make_shared<std::atomic<bool>>(false);
  auto first = loop->run_in_executor(&pool, [gate] {
    gate->entered_promise.set_value();
    gate->opened.wait();
    return 1;
  });
  auto second = loop->run_in_executor(&pool, [second_ran] {
    *second_ran = true;
    return 2;
  });
  REQUIRE(gate->entered.wait_for(std::chrono::seconds(10)) == std::future_status::ready);  // the one worker is busy
  CHECK(second.cancel());
  run_one_iteration(*loop);  // the cancellation reaches the work item through a done-callback
  gate->open();
  CHECK(await_bounded(*loop, first) == 1);
  pool.shutdown(true);  // joins: the second item would have run by now
  CHECK_FALSE(*second_ran);
  CHECK(second.cancelled());
  close_loop(*loop);
}

TEST_CASE("run_in_executor: work finishing after the loop closed does not touch the loop") {
  // CONTRACTS 17: a worker that completes after close() must not call back.
  aio::ThreadPoolExecutor pool(1);
  auto gate = std::make_shared<Gate>();
  auto finished = std::make_shared<std::atomic<bool>>(false);
  bool done_callback_ran = false;
  {
    auto loop = make_loop();
    auto f = loop->run_in_executor(&pool, [gate, finished] {
      gate->entered_promise.set_value();
      gate->opened.wait();
      *finished = true;
      return 5;
    });
    f.add_done_callback([&](const aio::Future<int>&) { done_callback_ran = true; });
    auto cancelled = loop->run_in_executor(&pool, [] { return 6; });  // queued behind it
    CHECK(cancelled.cancel());
    REQUIRE(gate->entered.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    loop->close();
    gate->open();
    pool.shutdown(true);  // the worker finishes and posts to the closed loop
    CHECK(*finished);
    CHECK_FALSE(f.done());
    CHECK_FALSE(done_callback_ran);
  }

  // The same when the loop object is already gone.
  aio::ThreadPoolExecutor pool2(1);
  auto gate2 = std::make_shared<Gate>();
  auto finished2 = std::make_shared<std::atomic<bool>>(false);
  {
    auto loop = make_loop();
    (void)loop->run_in_executor(&pool2, [gate2, finished2] {
      gate2->entered_promise.set_value();
      gate2->opened.wait();
      *finished2 = true;
      return 5;
    });
    REQUIRE(gate2->entered.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    loop->close();
  }
  gate2->open();
  pool2.shutdown(true);
  CHECK(*finished2);
  CHECK_FALSE(done_callback_ran);
}

TEST_CASE("run_in_executor: work dropped by shutdown(cancel_futures=true) cancels its future") {
  auto loop = make_loop();
  aio::ThreadPoolExecutor pool(1);
  auto gate = std::make_shared<Gate>();
  auto first = loop->run_in_executor(&pool, [gate] {
    gate->entered_promise.set_value();
    gate->opened.wait();
    return 1;
  });
  auto queued = loop->run_in_executor(&pool, [] { return 2; });
  REQUIRE(gate->entered.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  std::thread opener([gate] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    gate->open();
  });
  pool.shutdown(true, true);  // drops `queued`
  opener.join();
  CHECK(await_bounded(*loop, first) == 1);
  CHECK_THROWS_AS(await_bounded(*loop, queued, 1.0), aio::CancelledError);
  close_loop(*loop);
}

TEST_CASE("shutdown_default_executor: afterwards the default executor refuses work") {
  auto loop = make_loop();
  auto f = loop->run_in_executor(nullptr, [] { return 1; });  // creates the default pool
  CHECK(await_bounded(*loop, f) == 1);
  loop->run_until_complete(aio::wait_for(loop->shutdown_default_executor(), 10.0));
  CHECK_THROWS_AS(loop->run_in_executor(nullptr, [] { return 2; }), std::runtime_error);

  // An explicit executor still works.
  aio::ThreadPoolExecutor pool(1);
  CHECK(await_bounded(*loop, loop->run_in_executor(&pool, [] { return 3; })) == 3);
  pool.shutdown(true);
  loop->close();

  // Without any default executor ever created, it is a no-op that still closes the door.
  auto fresh = make_loop();
  fresh->run_until_complete(aio::wait_for(fresh->shutdown_default_executor(), 10.0));
  CHECK_THROWS_AS(fresh->run_in_executor(nullptr, [] { return 2; }), std::runtime_error);
  fresh->close();
}

TEST_CASE("set_default_executor: a null executor raises; a custom one is used and shut down") {
  auto loop = make_loop();
  CHECK_THROWS_AS(loop->set_default_executor(nullptr), std::invalid_argument);
  auto custom = std::make_shared<CountingExecutor>();
  loop->set_default_executor(custom);
  auto f = loop->run_in_executor(nullptr, [] { return 11; });
  CHECK(await_bounded(*loop, f) == 11);
  CHECK(custom->submitted == 1);
  loop->run_until_complete(aio::wait_for(loop->shutdown_default_executor(), 10.0));
  CHECK(custom->shutdowns == 1);
  loop->close();
}

TEST_CASE("ThreadPoolExecutor: submit after shutdown raises; shutdown(wait) runs what was queued") {
  aio::ThreadPoolExecutor pool(2);
  std::atomic<int> ran{0};
  for (int i = 0; i < 20; ++i) pool.submit([&ran] { ++ran; });
  pool.shutdown(true);
  CHECK(ran == 20);
  CHECK_THROWS_AS(pool.submit([] {}), std::runtime_error);
  pool.shutdown(true);  // again: harmless
}
