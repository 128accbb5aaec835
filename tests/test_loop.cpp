// The loop's run state, scheduling and file-descriptor watching
// (CONTRACTS.md 1, 8-12, 14, 16), on the backend under test.
#include "support.hpp"

#include <atomic>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using test::make_loop;

TEST_CASE("call_soon callbacks run FIFO, with their arguments") {
  auto loop = make_loop();
  std::vector<int> order;
  for (int i = 0; i < 100; ++i) loop->call_soon([&order](int v) { order.push_back(v); }, i);
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  REQUIRE(order.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(order[i] == i);
  loop->close();
}

TEST_CASE("call_soon_threadsafe from another thread keeps submission order and wakes the loop") {
  auto loop = make_loop();
  std::vector<int> order;
  std::thread producer([&] {
    for (int i = 0; i < 1000; ++i) loop->call_soon_threadsafe([&order, i] { order.push_back(i); });
    loop->call_soon_threadsafe([&] { loop->stop(); });
  });
  // Nothing else is scheduled: only the wakeup can end this wait.
  auto guard = loop->call_later(10.0, [&] { loop->stop(); });
  loop->run_forever();
  producer.join();
  guard.cancel();
  REQUIRE(order.size() == 1000);
  for (int i = 0; i < 1000; ++i) REQUIRE(order[i] == i);
  loop->close();
}

TEST_CASE("a cancelled handle never runs") {
  auto loop = make_loop();
  bool ran = false;
  aio::Handle h = loop->call_soon([&] { ran = true; });
  CHECK_FALSE(h.cancelled());
  h.cancel();
  CHECK(h.cancelled());
  h.cancel();  // idempotent
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  CHECK_FALSE(ran);
  loop->close();
}

TEST_CASE("a callback may cancel itself and later ones") {
  auto loop = make_loop();
  int later_ran = 0;
  aio::Handle later;
  aio::Handle self;
  self = loop->call_soon([&] {
    self.cancel();
    later.cancel();
  });
  later = loop->call_soon([&] { ++later_ran; });
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  CHECK(later_ran == 0);
  loop->close();
}

TEST_CASE("callbacks run from the loop, never inline from the call that schedules them") {
  auto loop = make_loop();
  std::vector<std::string> trace;
  loop->call_soon([&] {
    trace.push_back("outer start");
    loop->call_soon([&] { trace.push_back("inner"); });
    trace.push_back("outer end");
  });
  CHECK(trace.empty());
  // stop() after the first batch: "inner" was scheduled by it, so it runs in
  // the next run_forever.
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  CHECK(trace == std::vector<std::string>{"outer start", "outer end"});
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  CHECK(trace == std::vector<std::string>{"outer start", "outer end", "inner"});
  loop->close();
}

TEST_CASE("stop() before run_forever(): one zero-timeout poll, run what is ready, return") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  int ran = 0, scheduled_by_it = 0;
  loop.call_later(5.0, [&] { ++ran; });  // must not be waited for
  loop.stop();
  loop.call_soon([&] {
    ++ran;
    loop.call_soon([&] { ++scheduled_by_it; });
  });
  loop.run_forever();
  CHECK(ran == 1);
  CHECK(scheduled_by_it == 0);
  REQUIRE(v.selector->timeouts.size() == 1);
  CHECK(v.selector->timeouts[0] == 0);
  CHECK_FALSE(loop.is_running());
  loop.close();
}

TEST_CASE("stop() while running finishes the batch; what it scheduled runs on the next run") {
  auto loop = make_loop();
  std::vector<int> trace;
  loop->call_soon([&] {
    trace.push_back(1);
    loop->stop();
    loop->call_soon([&] { trace.push_back(3); });
  });
  loop->call_soon([&] { trace.push_back(2); });  // same batch: still runs
  loop->run_forever();
  CHECK(trace == std::vector<int>{1, 2});
  CHECK_FALSE(loop->is_running());
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  CHECK(trace == std::vector<int>{1, 2, 3});
  loop->close();
}

TEST_CASE("is_running is true only inside run_forever") {
  auto loop = make_loop();
  CHECK_FALSE(loop->is_running());
  bool inside = false;
  loop->call_soon([&] {
    inside = loop->is_running();
    loop->stop();
  });
  loop->run_forever();
  CHECK(inside);
  CHECK_FALSE(loop->is_running());
  loop->close();
}

namespace {
aio::Task<int> forty_two() { co_return 42; }
}  // namespace

TEST_CASE("nested run_forever / run_until_complete raise, and the outer run goes on") {
  auto loop = make_loop();
  std::string nested_forever, nested_until;
  loop->call_soon([&] {
    try {
      loop->run_forever();
    } catch (const std::runtime_error& e) {
      nested_forever = e.what();
    }
    try {
      loop->run_until_complete(forty_two());
    } catch (const std::runtime_error& e) {
      nested_until = e.what();
    }
    loop->stop();
  });
  loop->run_forever();
  CHECK(nested_forever == "This event loop is already running");
  CHECK(nested_until == "This event loop is already running");
  CHECK(loop->run_until_complete(forty_two()) == 42);
  loop->close();
}

TEST_CASE("running a second loop inside a running one raises") {
  auto outer = make_loop();
  auto inner = make_loop();
  std::string error;
  outer->call_soon([&] {
    try {
      inner->run_until_complete(forty_two());
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
    outer->stop();
  });
  outer->run_forever();
  CHECK(error == "Cannot run the event loop while another loop is running");
  inner->close();
  outer->close();
}

TEST_CASE("run_until_complete on a future the loop stopped before finishing raises") {
  auto loop = make_loop();
  auto never = loop->create_future<int>();
  loop->call_soon([&] { loop->stop(); });
  CHECK_THROWS_WITH_AS(loop->run_until_complete(never), "Event loop stopped before Future completed.",
                       std::runtime_error);
  loop->close();
}

TEST_CASE("close() is idempotent, refuses a running loop, and every scheduling call then raises") {
  auto loop = make_loop();
  std::string running_error;
  loop->call_soon([&] {
    try {
      loop->close();
    } catch (const std::runtime_error& e) {
      running_error = e.what();
    }
    loop->stop();
  });
  loop->run_forever();
  CHECK(running_error == "Cannot close a running event loop");
  CHECK_FALSE(loop->is_closed());

  bool ran = false;
  loop->call_soon([&] { ran = true; });  // discarded by close()
  loop->close();
  CHECK(loop->is_closed());
  loop->close();
  CHECK_FALSE(ran);

  auto closed = [](auto&& f) { CHECK_THROWS_WITH_AS(f(), "Event loop is closed", std::runtime_error); };
  closed([&] { loop->call_soon([] {}); });
  closed([&] { loop->call_later(0.1, [] {}); });
  closed([&] { loop->call_at(loop->time(), [] {}); });
  closed([&] { loop->call_soon_threadsafe([] {}); });
  closed([&] { loop->create_future<int>(); });
  closed([&] { loop->create_task(forty_two()); });
  closed([&] { loop->run_forever(); });
  closed([&] { loop->run_until_complete(forty_two()); });
  test::SocketPair pair;
  closed([&] { loop->add_reader(pair.a, [] {}); });
  closed([&] { loop->add_writer(pair.a, [] {}); });
  CHECK_FALSE(loop->remove_reader(pair.a));
  CHECK_FALSE(loop->remove_writer(pair.a));
}

TEST_CASE("call_soon_threadsafe on a closed loop raises from another thread too") {
  auto loop = make_loop();
  loop->close();
  std::string error;
  std::thread t([&] {
    try {
      loop->call_soon_threadsafe([] {});
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
  });
  t.join();
  CHECK(error == "Event loop is closed");
}

TEST_CASE("the loop holds a fixed, small number of fds while open and none after close") {
  int before = test::open_fd_count();
  if (before < 0) return test::skip("no count of open descriptors on this platform (Windows)");
#ifdef __linux__
  // kqueue on Linux is libkqueue's emulation (2.7), which keeps process-wide
  // descriptors and frees those of a closed kqueue later, from its monitor
  // thread: a per-loop count cannot be observed there. Real kqueue holds one.
  if (aio::new_event_loop()->backend() == "kqueue")
    return test::skip("libkqueue (kqueue on Linux) keeps process-wide descriptors and frees them late");
#endif
  auto loop = make_loop();
  int open = test::open_fd_count() - before;
  CHECK(open >= 1);
  CHECK(open <= 2);
  // Running, scheduling and waking do not add any.
  for (int i = 0; i < 3; ++i) loop->run_until_complete(forty_two());
  std::thread t([&] { loop->call_soon_threadsafe([] {}); });
  t.join();
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  CHECK(test::open_fd_count() - before == open);
  loop->close();
  CHECK(test::open_fd_count() == before);
}

TEST_CASE("add_reader runs on readability until remove_reader; removal returns true then false") {
  auto loop = make_loop();
  // Readiness only: the proactor has none, as asyncio's ProactorEventLoop
  // (its add_reader raising is tested in test_proactor.cpp).
  if (!test::loop_has_readiness(*loop)) return test::skip(test::readiness_only);
  test::SocketPair pair;
  int calls = 0, bytes = 0;
  loop->add_reader(pair.b, [&] {
    ++calls;
    bytes += pair.recv_all(pair.b);
    if (bytes == 3) loop->stop();
  });
  loop->call_soon([&] { pair.send_byte(pair.a); });
  loop->call_later(0.01, [&] {
    pair.send_byte(pair.a, 'y');
    pair.send_byte(pair.a, 'z');
  });
  auto guard = loop->call_later(10.0, [&] { loop->stop(); });
  loop->run_forever();
  guard.cancel();
  CHECK(bytes == 3);
  CHECK(calls >= 2);
  CHECK(loop->remove_reader(pair.b));
  CHECK_FALSE(loop->remove_reader(pair.b));
  CHECK_FALSE(loop->remove_writer(pair.b));
  // Removed: more data does not call it any more.
  int calls_after = calls;
  pair.send_byte(pair.a);
  loop->call_later(0.02, [&] { loop->stop(); });
  loop->run_forever();
  CHECK(calls == calls_after);
  loop->close();
}

TEST_CASE("a reader is level-triggered: unread data keeps calling it") {
  auto loop = make_loop();
  // Readiness only: the proactor has none, as asyncio's ProactorEventLoop
  // (its add_reader raising is tested in test_proactor.cpp).
  if (!test::loop_has_readiness(*loop)) return test::skip(test::readiness_only);
  test::SocketPair pair;
  int calls = 0;
  pair.send_byte(pair.a);
  loop->add_reader(pair.b, [&] {
    if (++calls == 3) loop->stop();  // never reads: stays readable
  });
  auto guard = loop->call_later(10.0, [&] { loop->stop(); });
  loop->run_forever();
  guard.cancel();
  CHECK(calls == 3);
  CHECK(loop->remove_reader(pair.b));
  loop->close();
}

TEST_CASE("add_writer runs while writable; reader and writer on one fd are independent") {
  auto loop = make_loop();
  // Readiness only: the proactor has none, as asyncio's ProactorEventLoop
  // (its add_reader raising is tested in test_proactor.cpp).
  if (!test::loop_has_readiness(*loop)) return test::skip(test::readiness_only);
  test::SocketPair pair;
  int writes = 0, reads = 0;
  loop->add_writer(pair.a, [&] {
    if (++writes == 2) {
      CHECK(loop->remove_writer(pair.a));
      pair.send_byte(pair.a);
    }
  });
  loop->add_reader(pair.a, [&] { ++reads; });  // same fd: nothing to read there
  loop->add_reader(pair.b, [&] {
    pair.recv_all(pair.b);
    loop->stop();
  });
  auto guard = loop->call_later(10.0, [&] { loop->stop(); });
  loop->run_forever();
  guard.cancel();
  CHECK(writes == 2);
  CHECK(reads == 0);
  CHECK_FALSE(loop->remove_writer(pair.a));
  CHECK(loop->remove_reader(pair.a));
  CHECK(loop->remove_reader(pair.b));
  loop->close();
}

TEST_CASE("add_reader on a watched fd replaces the callback") {
  auto loop = make_loop();
  // Readiness only: the proactor has none, as asyncio's ProactorEventLoop
  // (its add_reader raising is tested in test_proactor.cpp).
  if (!test::loop_has_readiness(*loop)) return test::skip(test::readiness_only);
  test::SocketPair pair;
  int first = 0, second = 0;
  loop->add_reader(pair.b, [&] { ++first; });
  loop->add_reader(pair.b, [&] {
    ++second;
    pair.recv_all(pair.b);
    loop->stop();
  });
  pair.send_byte(pair.a);
  auto guard = loop->call_later(10.0, [&] { loop->stop(); });
  loop->run_forever();
  guard.cancel();
  CHECK(first == 0);
  CHECK(second == 1);
  loop->close();
}

TEST_CASE("a reader that finds nothing to read (spurious readiness) does no harm") {
  auto loop = make_loop();
  // Readiness only: the proactor has none, as asyncio's ProactorEventLoop
  // (its add_reader raising is tested in test_proactor.cpp).
  if (!test::loop_has_readiness(*loop)) return test::skip(test::readiness_only);
  test::SocketPair pair;
  int calls = 0;
  loop->add_reader(pair.b, [&] {
    ++calls;
    // Another reader of the same data drained it first: nothing here.
    CHECK(pair.recv_all(pair.b) >= 0);
    CHECK(pair.recv_all(pair.b) == 0);
    if (calls == 1) loop->call_soon([&] { loop->stop(); });
  });
  pair.send_byte(pair.a);
  auto guard = loop->call_later(10.0, [&] { loop->stop(); });
  loop->run_forever();
  guard.cancel();
  CHECK(calls >= 1);
  loop->close();
}

TEST_CASE("add_reader / add_writer with a negative fd raise std::invalid_argument") {
  auto loop = make_loop();
  CHECK_THROWS_WITH_AS(loop->add_reader(-1, [] {}), "add_reader: invalid file descriptor -1 (must be >= 0)",
                       std::invalid_argument);
  CHECK_THROWS_AS(loop->add_writer(-5, [] {}), std::invalid_argument);
  CHECK_FALSE(loop->remove_reader(-1));
  loop->close();
}

TEST_CASE("add_reader on an fd that cannot be watched raises std::system_error and registers nothing") {
  auto loop = make_loop();
  // Readiness only: the proactor has none, as asyncio's ProactorEventLoop
  // (its add_reader raising is tested in test_proactor.cpp).
  if (!test::loop_has_readiness(*loop)) return test::skip(test::readiness_only);
  test::RegularFile file;
  if (file.fd >= 0) {
    CHECK_THROWS_AS(loop->add_reader(file.fd, [] {}), std::system_error);
    CHECK_FALSE(loop->remove_reader(file.fd));
  }
  // A closed descriptor.
  aio::fd_t stale;
  {
    test::SocketPair pair;
    stale = pair.a;
  }
  CHECK_THROWS_AS(loop->add_reader(stale, [] {}), std::system_error);
  CHECK_FALSE(loop->remove_reader(stale));
  // The loop still works.
  CHECK(loop->run_until_complete(forty_two()) == 42);
  loop->close();
}

TEST_CASE("add_reader callbacks get bound arguments") {
  auto loop = make_loop();
  // Readiness only: the proactor has none, as asyncio's ProactorEventLoop
  // (its add_reader raising is tested in test_proactor.cpp).
  if (!test::loop_has_readiness(*loop)) return test::skip(test::readiness_only);
  test::SocketPair pair;
  std::string seen;
  loop->add_reader(
      pair.b,
      [&](const std::string& tag, int n) {
        seen = tag + std::to_string(n);
        pair.recv_all(pair.b);
        loop->stop();
      },
      std::string("fd"), 7);
  pair.send_byte(pair.a);
  auto guard = loop->call_later(10.0, [&] { loop->stop(); });
  loop->run_forever();
  guard.cancel();
  CHECK(seen == "fd7");
  loop->close();
}

TEST_CASE("time() is monotonic seconds") {
  auto loop = make_loop();
  double t0 = loop->time();
  loop->run_until_complete(aio::sleep(0.01));
  double t1 = loop->time();
  CHECK(t1 >= t0 + 0.01 - 1e-6);
  CHECK(t1 - t0 < 5.0);
  loop->close();
}

// asyncio's call_soon_threadsafe appends to the same ready queue as call_soon.
TEST_CASE("call_soon_threadsafe keeps its place in the ready queue, from this thread or another") {
  auto loop = make_loop();
  std::vector<int> order;
  loop->call_soon_threadsafe([&] { order.push_back(1); });
  loop->call_soon([&] { order.push_back(2); });
  std::thread other([&] { loop->call_soon_threadsafe([&] { order.push_back(3); }); });
  other.join();
  loop->call_soon([&] {
    order.push_back(4);
    // From inside a callback: the same order in the next iteration.
    loop->call_soon_threadsafe([&] { order.push_back(5); });
    loop->call_soon([&] {
      order.push_back(6);
      loop->stop();
    });
  });
  loop->run_forever();
  CHECK(order == std::vector<int>{1, 2, 3, 4, 5, 6});
  loop->close();
}
