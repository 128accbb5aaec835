// Signals: add_signal_handler / remove_signal_handler (asyncio's
// test_unix_events.py SelectorEventLoopSignalTests, uvloop's
// test_signals.py, libuv's test-signal-multiple-loops.c) and aio::run's
// Ctrl-C (test_runners.py test_interrupt_*), with real signals on every
// backend. On Windows both methods refuse, as asyncio's.
#include <core/errors.hpp>
#include <core/runners.hpp>

#include "support.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifndef _WIN32
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

using test::make_loop;
using test::run_until;

#ifdef _WIN32

TEST_CASE("add_signal_handler is not implemented on Windows, as asyncio") {
  auto loop = make_loop();
  CHECK_THROWS_AS(loop->add_signal_handler(SIGINT, [] {}), aio::NotImplementedError);
  CHECK_FALSE(loop->remove_signal_handler(SIGINT));
}

#else

namespace {

// The disposition of `sig` now: SIG_DFL, SIG_IGN or a handler.
void (*disposition(int sig))(int) {
  struct sigaction current {};
  sigaction(sig, nullptr, &current);
  return current.sa_handler;
}

// Puts `sig` at its default disposition for the guard's lifetime: doctest
// catches SIGINT while a case runs, and a shell's background job ignores it.
class DefaultDisposition {
 public:
  explicit DefaultDisposition(int sig) : sig_(sig) {
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    sigaction(sig_, &action, &saved_);
  }
  ~DefaultDisposition() { sigaction(sig_, &saved_, nullptr); }
  DefaultDisposition(const DefaultDisposition&) = delete;
  DefaultDisposition& operator=(const DefaultDisposition&) = delete;

 private:
  int sig_;
  struct sigaction saved_ {};
};

int earlier_calls = 0;
void earlier_handler(int) { ++earlier_calls; }

}  // namespace

TEST_CASE("add_signal_handler runs the callback on the loop with its arguments") {
  auto loop = make_loop();
  std::vector<int> got;
  std::thread::id where;
  loop->add_signal_handler(
      SIGUSR1,
      [&](int a, int b) {
        got.push_back(a + b);
        where = std::this_thread::get_id();
      },
      40, 2);
  CHECK((disposition(SIGUSR1) != SIG_DFL));
  ::kill(::getpid(), SIGUSR1);
  run_until(*loop, [&] { return !got.empty(); });
  CHECK(got == std::vector<int>{42});
  CHECK(where == std::this_thread::get_id());
  CHECK(loop->remove_signal_handler(SIGUSR1));
  CHECK_FALSE(loop->remove_signal_handler(SIGUSR1));
  CHECK((disposition(SIGUSR1) == SIG_DFL));
  loop->close();
}

TEST_CASE("add_signal_handler replaces the loop's handler and a removed one never runs") {
  auto loop = make_loop();
  int first = 0, second = 0;
  loop->add_signal_handler(SIGUSR1, [&] { ++first; });
  loop->add_signal_handler(SIGUSR1, [&] { ++second; });
  ::kill(::getpid(), SIGUSR1);
  run_until(*loop, [&] { return second == 1; });
  CHECK(first == 0);
  // Arrived, then removed before the loop looked: not run (asyncio cancels
  // the handle).
  ::kill(::getpid(), SIGUSR1);
  CHECK(loop->remove_signal_handler(SIGUSR1));
  test::spin(*loop, 0.05);
  CHECK(second == 1);
  loop->close();
}

TEST_CASE("add_signal_handler checks its arguments as asyncio") {
  auto loop = make_loop();
  for (int bad : {0, -1, 1000, 129}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(loop->add_signal_handler(bad, [] {}), std::invalid_argument);
    CHECK_THROWS_AS(loop->remove_signal_handler(bad), std::invalid_argument);
  }
  for (int uncatchable : {SIGKILL, SIGSTOP}) {
    CAPTURE(uncatchable);
    try {
      loop->add_signal_handler(uncatchable, [] {});
      FAIL("accepted a signal that cannot be caught");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()).find("cannot be caught") != std::string::npos);
    }
    CHECK((disposition(uncatchable) == SIG_DFL));
  }
  CHECK_FALSE(loop->remove_signal_handler(SIGUSR2));
  loop->close();
  CHECK_THROWS_AS(loop->add_signal_handler(SIGUSR1, [] {}), std::runtime_error);
}

TEST_CASE("removing the last handler restores another library's handler") {
  struct sigaction mine {};
  mine.sa_handler = earlier_handler;
  sigemptyset(&mine.sa_mask);
  struct sigaction before {};
  REQUIRE(sigaction(SIGUSR2, &mine, &before) == 0);
  earlier_calls = 0;
  {
    auto loop = make_loop();
    int ours = 0;
    loop->add_signal_handler(SIGUSR2, [&] { ++ours; });
    ::kill(::getpid(), SIGUSR2);
    run_until(*loop, [&] { return ours == 1; });
    CHECK(earlier_calls == 0);  // replaced while we watch, as asyncio's signal.signal
    // close() removes the loop's handlers.
    loop->close();
    CHECK((disposition(SIGUSR2) == earlier_handler));
  }
  ::kill(::getpid(), SIGUSR2);
  CHECK(earlier_calls == 1);
  sigaction(SIGUSR2, &before, nullptr);
}

TEST_CASE("a signal sent to another thread reaches the loop (contract 81)") {
  auto loop = make_loop();
  // Threads that exist before the handler and do not block the signal, as
  // executor workers: the kernel may deliver to any of them.
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int i = 0; i < 4; ++i)
    workers.emplace_back([&] {
      while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  int calls = 0;
  loop->add_signal_handler(SIGUSR1, [&] { ++calls; });
  for (auto& worker : workers) pthread_kill(worker.native_handle(), SIGUSR1);
  run_until(*loop, [&] { return calls >= 1; });
  for (int i = 0; i < 100; ++i) ::kill(::getpid(), SIGUSR1);
  test::spin(*loop, 0.05);
  CHECK(calls >= 2);
  stop = true;
  for (auto& worker : workers) worker.join();
  loop->close();
}

TEST_CASE("no signal is lost or starved while the loop is busy (contract 82)") {
  auto loop = make_loop();
  int usr1 = 0, usr2 = 0;
  std::atomic<int> threadsafe{0};
  loop->add_signal_handler(SIGUSR1, [&] { ++usr1; });
  loop->add_signal_handler(SIGUSR2, [&] { ++usr2; });
  std::atomic<bool> blocked{false};
  loop->call_soon([&] {
    blocked = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  });
  std::thread sender([&] {
    while (!blocked.load()) std::this_thread::yield();
    for (int i = 0; i < 10000; ++i) ::kill(::getpid(), SIGUSR1);
    ::kill(::getpid(), SIGUSR2);
    for (int i = 0; i < 100000; ++i) loop->call_soon_threadsafe([&] { threadsafe.fetch_add(1); });
  });
  run_until(
      *loop, [&] { return threadsafe.load() == 100000 && usr1 >= 1 && usr2 >= 1; }, 30.0);
  sender.join();
  CHECK(usr1 >= 1);
  CHECK(usr2 == 1);
  loop->close();
}

TEST_CASE("several loops in several threads each get the signal (contract 83)") {
  constexpr int loops = 8;
  std::atomic<int> calls{0};
  std::atomic<int> ready{0};
  std::atomic<int> phase{0};  // 1: close all but the first; 2: close the first
  std::vector<std::thread> threads;
  for (int i = 0; i < loops; ++i)
    threads.emplace_back([&, i] {
      auto loop = make_loop();
      loop->add_signal_handler(SIGUSR1, [&] { calls.fetch_add(1); });
      ready.fetch_add(1);
      // Each loop runs until told to close (for all but the first, phase 1).
      run_until(
          *loop, [&] { return phase.load() >= (i == 0 ? 2 : 1); }, 30.0);
      loop->close();
      ready.fetch_sub(1);
    });
  while (ready.load() < loops) std::this_thread::yield();
  ::kill(::getpid(), SIGUSR1);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (calls.load() < loops && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(calls.load() == loops);
  phase = 1;
  while (ready.load() > 1) std::this_thread::yield();
  CHECK((disposition(SIGUSR1) != SIG_DFL));  // the first loop still watches
  calls = 0;
  ::kill(::getpid(), SIGUSR1);
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (calls.load() < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(calls.load() == 1);
  phase = 2;
  for (auto& thread : threads) thread.join();
  CHECK((disposition(SIGUSR1) == SIG_DFL));
}

TEST_CASE("removing one loop's handler leaves another loop's in place") {
  auto a = make_loop();
  auto b = make_loop();
  int on_a = 0, on_b = 0;
  a->add_signal_handler(SIGUSR2, [&] { ++on_a; });
  b->add_signal_handler(SIGUSR2, [&] { ++on_b; });
  CHECK(a->remove_signal_handler(SIGUSR2));
  ::kill(::getpid(), SIGUSR2);
  run_until(*b, [&] { return on_b == 1; });
  test::spin(*a, 0.02);
  CHECK(on_a == 0);
  b->close();
  CHECK((disposition(SIGUSR2) == SIG_DFL));
  a->close();
}

TEST_CASE("a forked child neither inherits the loop's watching nor touches its wakeup (contract 86)") {
  auto loop = make_loop();
  int parent_calls = 0;
  loop->add_signal_handler(SIGUSR1, [&] { ++parent_calls; });
  int status = -1;
  std::thread forker([&] {
    pid_t pid = ::fork();
    if (pid == 0) {
      // The child: SIGUSR1 is back at its old disposition, and a new loop
      // may watch signals of its own.
      int code = 0;
      struct sigaction current {};
      sigaction(SIGUSR1, nullptr, &current);
      if (current.sa_handler != SIG_DFL) code = 3;
      try {
        auto child_loop = make_loop();
        bool got = false;
        child_loop->add_signal_handler(SIGINT, [&] { got = true; });
        ::kill(::getpid(), SIGINT);
        for (int i = 0; i < 1000 && !got; ++i) {
          child_loop->run_until_complete(aio::sleep(0.001));
        }
        if (!got) code = 4;
        child_loop->close();
      } catch (...) {
        code = 5;
      }
      ::_exit(code);
    }
    ::waitpid(pid, &status, 0);
  });
  forker.join();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  test::spin(*loop, 0.02);
  CHECK(parent_calls == 0);
  ::kill(::getpid(), SIGUSR1);
  run_until(*loop, [&] { return parent_calls == 1; });
  loop->close();
}

// ---- aio::run and Ctrl-C (contract 85) ------------------------------------
// Each case puts SIGINT at its default disposition first, the only one
// aio::run takes over; the process-level cases (a second Ctrl-C, exit status 130) are in
// tests/check_sigint.py with tests/sigtest.cpp.

TEST_CASE("aio::run: SIGINT cancels the main task and run throws KeyboardInterrupt") {
  DefaultDisposition guard(SIGINT);
  bool cancelled = false;
  auto started = std::chrono::steady_clock::now();
  auto main = [&]() -> aio::Task<void> {
    ::kill(::getpid(), SIGINT);
    try {
      co_await aio::sleep(30);
    } catch (const aio::CancelledError&) {
      cancelled = true;
      throw;
    }
  };
  CHECK_THROWS_AS(aio::run(main()), aio::KeyboardInterrupt);
  CHECK(cancelled);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(10));
  CHECK((disposition(SIGINT) == SIG_DFL));
}

TEST_CASE("aio::run: a main task that swallows the cancellation returns its value") {
  DefaultDisposition guard(SIGINT);
  auto main = []() -> aio::Task<int> {
    ::kill(::getpid(), SIGINT);
    try {
      co_await aio::sleep(30);
    } catch (const aio::CancelledError&) {
      co_return 7;
    }
    co_return 0;
  };
  CHECK(aio::run(main()) == 7);
  CHECK((disposition(SIGINT) == SIG_DFL));
}

TEST_CASE("aio::run: the user's own SIGINT handler turns the Ctrl-C handling off") {
  DefaultDisposition guard(SIGINT);
  // On the loop: it replaces the runner's, as in asyncio.
  auto main = []() -> aio::Task<int> {
    aio::EventLoop& loop = aio::get_running_loop();
    int handled = 0;
    loop.add_signal_handler(SIGINT, [&] { ++handled; });
    ::kill(::getpid(), SIGINT);
    co_await test::until([&] { return handled == 1; });
    co_await aio::sleep(0.01);
    loop.remove_signal_handler(SIGINT);
    co_return handled;
  };
  CHECK(aio::run(main()) == 1);
  // Installed before aio::run: the runner leaves SIGINT alone.
  struct sigaction mine {};
  mine.sa_handler = earlier_handler;
  sigemptyset(&mine.sa_mask);
  struct sigaction before {};
  REQUIRE(sigaction(SIGINT, &mine, &before) == 0);
  earlier_calls = 0;
  auto main2 = []() -> aio::Task<int> {
    ::kill(::getpid(), SIGINT);
    co_await aio::sleep(0.02);
    co_return 5;
  };
  CHECK(aio::run(main2()) == 5);
  CHECK(earlier_calls == 1);
  CHECK((disposition(SIGINT) == earlier_handler));
  sigaction(SIGINT, &before, nullptr);
}

TEST_CASE("aio::run off the main thread leaves SIGINT alone") {
  DefaultDisposition guard(SIGINT);
  void (*seen)(int) = nullptr;
  std::thread other([&] {
    auto main = [&]() -> aio::Task<void> {
      seen = disposition(SIGINT);
      co_return;
    };
    aio::run(main());
  });
  other.join();
  CHECK((seen == SIG_DFL));
}

#endif
