// The asyncio documentation's example "Set signal handlers for SIGINT and
// SIGTERM" (../shared/reference/asyncio-eventloop.md), in C++. One change:
// the two lines are printed once the handlers are in place, so that whoever
// reads the pid and signals it at once never meets the default action.
#include <core/aio.hpp>

#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>

void ask_exit(const std::string& signame, aio::EventLoop& loop) {
  std::printf("got signal %s: exit\n", signame.c_str());
  loop.stop();
}

aio::Task<void> main_task() {
  aio::EventLoop& loop = aio::get_running_loop();
  for (auto [signame, sig] : {std::pair{"SIGINT", SIGINT}, std::pair{"SIGTERM", SIGTERM}})
    loop.add_signal_handler(sig, ask_exit, std::string(signame), std::ref(loop));
  std::printf("Event loop running for 1 hour, press Ctrl+C to interrupt.\n");
  std::printf("pid %d: send SIGINT or SIGTERM to exit.\n", static_cast<int>(getpid()));
  std::fflush(stdout);
  co_await aio::sleep(3600);
}

int main() {
  try {
    aio::run(main_task());
  } catch (const std::runtime_error& e) {
    // As in Python: loop.stop() ends run() before main() finished, and run()
    // says so ("Event loop stopped before Future completed.").
    std::printf("%s\n", e.what());
  }
}
