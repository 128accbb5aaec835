// Memory that comes back: after a burst of timers the loop holds about what
// it held before (freed handle slots reused, empty slabs freed, the timer
// heap and the ready queue shrunk). Measured on the heap, with a virtual
// clock so that a million-timer burst takes no wall time.
#include "support.hpp"

#include <algorithm>
#include <cstddef>
#include <vector>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define AIO_TEST_SANITIZER_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define AIO_TEST_SANITIZER_HEAP 1
#endif
#endif

#if defined(AIO_TEST_SANITIZER_HEAP)
// From the ASan and TSan runtimes (GCC ships no header declaring it).
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#elif defined(__GLIBC__) || __has_include(<malloc.h>) && defined(__linux__)
#include <malloc.h>
#define AIO_TEST_MALLINFO 1
#endif

namespace {

// Bytes allocated on the heap now, or -1 where the platform cannot tell.
long long heap_in_use() {
#if defined(AIO_TEST_SANITIZER_HEAP)
  return static_cast<long long>(__sanitizer_get_current_allocated_bytes());
#elif defined(AIO_TEST_MALLINFO)
  return static_cast<long long>(mallinfo2().uordblks);
#else
  return -1;
#endif
}

// Schedules `n` timers, cancels nine in ten, and waits until the rest fired.
aio::Task<void> timer_round(std::size_t n, std::size_t& fired, long long& peak) {
  aio::EventLoop& loop = aio::get_running_loop();
  {
    std::vector<aio::TimerHandle> handles;
    handles.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      handles.push_back(loop.call_later(1.0 + static_cast<double>(i % 100) * 0.001, [&fired] { ++fired; }));
    for (std::size_t i = 0; i < n; ++i)
      if (i % 10 != 0) handles[i].cancel();
    peak = std::max(peak, heap_in_use());
  }
  co_await aio::sleep(2.0);
}

}  // namespace

TEST_CASE("memory: a burst of timers gives its memory back (three rounds, cancel 90 %)") {
  if (heap_in_use() < 0) return test::skip("no way to measure the heap here (glibc mallinfo2 or a sanitizer)");
  auto v = test::make_virtual_loop();
  aio::EventLoop& loop = *v.loop;
  std::size_t fired = 0;
  long long peak = 0;
  loop.run_until_complete(timer_round(1000, fired, peak));  // what any loop allocates once
  const long long before = heap_in_use();
  peak = before;
  constexpr std::size_t n = 100'000;
  for (int round = 0; round < 3; ++round) {
    fired = 0;
    loop.run_until_complete(timer_round(n, fired, peak));
    CHECK(fired == n / 10);
    CHECK(loop.timer_count() == 0);
  }
  const long long after = heap_in_use();
  MESSAGE("heap before " << before << " B, peak " << peak << " B, after three rounds " << after << " B");
  // A burst of 100,000 handles is about 12 MiB; what stays is a spare slab
  // and the queues' floors.
  CHECK(after - before < 512 * 1024);
  loop.close();
}
