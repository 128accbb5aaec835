// A program for tests/check_sigint.py: Ctrl-C and signal delivery seen from
// outside, as a user's program meets them. Each mode prints "ready" once it
// waits for the signals the check then sends.
//   wait-sigint  the main task sleeps; a SIGINT cancels it ("cancelled"),
//                aio::run throws KeyboardInterrupt, and the program ends as
//                CPython does on an uncaught KeyboardInterrupt: killed by
//                SIGINT (the shell's 130)
//   swallow      the main task catches the cancellation and returns 7
//   slow-cleanup the main task takes 30 s to clean up after the
//                cancellation: a second SIGINT ends the process at once
//   stuck        a callback spins without returning: the first SIGINT
//                cannot be handled, the second ends the process
//   own-handler  a SIGINT handler installed before aio::run: the runner
//                leaves SIGINT alone ("own handler", exit 0)
//   signals      handlers for SIGUSR1 and SIGUSR2; SIGUSR2 ends the run and
//                prints "usr1 N usr2 M"
#include <core/aio.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

namespace {

void ready() {
  std::puts("ready");
  std::fflush(stdout);
}

aio::Task<int> wait_sigint(bool swallow, bool slow_cleanup) {
  ready();
  try {
    co_await aio::sleep(3600);
  } catch (const aio::CancelledError&) {
    std::puts(swallow ? "swallowed" : "cancelled");
    std::fflush(stdout);
    if (swallow) co_return 7;
    if (!slow_cleanup) throw;
  }
  co_await aio::sleep(30);  // slow-cleanup: cleaning up after the cancellation
  co_return 1;
}

aio::Task<int> stuck() {
  ready();
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < until) {
  }
  co_return 1;
}

std::atomic<int> own_calls{0};
void own_handler(int) { own_calls.fetch_add(1); }

aio::Task<int> own_handler_main() {
  ready();
  while (own_calls.load() == 0) co_await aio::sleep(0.01);
  std::puts("own handler");
  co_return 0;
}

aio::Task<int> signals() {
  aio::EventLoop& loop = aio::get_running_loop();
  int usr1 = 0, usr2 = 0;
  aio::Future<void> done = loop.create_future<void>();
  loop.add_signal_handler(SIGUSR1, [&] { ++usr1; });
  loop.add_signal_handler(SIGUSR2, [&] {
    ++usr2;
    if (!done.done()) done.set_result();
  });
  ready();
  co_await done;
  co_await aio::sleep(0.05);  // SIGUSR1s still in flight are counted too
  std::printf("usr1 %d usr2 %d\n", usr1, usr2);
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "wait-sigint") return aio::run(wait_sigint(false, false));
    if (mode == "swallow") return aio::run(wait_sigint(true, false));
    if (mode == "slow-cleanup") return aio::run(wait_sigint(false, true));
    if (mode == "stuck") return aio::run(stuck());
    if (mode == "own-handler") {
      struct sigaction action {};
      action.sa_handler = own_handler;
      sigemptyset(&action.sa_mask);
      sigaction(SIGINT, &action, nullptr);
      return aio::run(own_handler_main());
    }
    if (mode == "signals") return aio::run(signals());
  } catch (const aio::KeyboardInterrupt&) {
    // As CPython 3.8+ on an uncaught KeyboardInterrupt: die of SIGINT.
    std::puts("KeyboardInterrupt");
    std::fflush(stdout);
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
    return 130;
  }
  std::fprintf(stderr, "usage: %s wait-sigint|swallow|slow-cleanup|stuck|own-handler|signals\n", argv[0]);
  return 2;
}
