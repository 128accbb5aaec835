// The README's timer-memory figure: schedule N timers (delays 0..100 ms),
// cancel nine in ten, let the rest fire; three rounds. Prints the process's
// RSS and heap in use before, at each round's peak and after each round.
// (The same check, smaller and on the heap only, is tests/test_memory.cpp.)
//
//   stress-timer-memory [N]   (default 1,000,000)
#include <core/aio.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>
#if __has_include(<malloc.h>)
#include <malloc.h>
#endif

namespace {

double rss_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
  return -1;
}

double heap_mib() {
#if defined(__GLIBC__)
  return static_cast<double>(mallinfo2().uordblks) / (1 << 20);
#else
  return -1;
#endif
}

aio::Task<void> timer_round(std::size_t n, double& peak_rss, double& peak_heap) {
  aio::EventLoop& loop = aio::get_running_loop();
  std::size_t fired = 0;
  {
    std::vector<aio::TimerHandle> handles;
    handles.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      handles.push_back(loop.call_later(static_cast<double>(i % 1000) * 1e-4, [&fired] { ++fired; }));
    for (std::size_t i = 0; i < n; ++i)
      if (i % 10 != 0) handles[i].cancel();
    peak_rss = rss_mib();
    peak_heap = heap_mib();
  }
  co_await aio::sleep(0.2);
  if (fired != n / 10) std::fprintf(stderr, "fired %zu of %zu\n", fired, n / 10);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
  auto loop = aio::new_event_loop();
  loop->run_until_complete(aio::sleep(0));
  std::printf("before: RSS %.1f MiB, heap %.1f MiB\n", rss_mib(), heap_mib());
  for (int r = 1; r <= 3; ++r) {
    double peak_rss = 0, peak_heap = 0;
    loop->run_until_complete(timer_round(n, peak_rss, peak_heap));
    std::printf("round %d: peak RSS %.1f MiB, heap %.1f MiB; after: RSS %.1f MiB, heap %.1f MiB, %zu timers left\n", r,
                peak_rss, peak_heap, rss_mib(), heap_mib(), loop->timer_count());
  }
  loop->close();
}
