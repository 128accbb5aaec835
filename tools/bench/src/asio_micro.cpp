// asio_micro: aio-bench's two micro-benchmarks on standalone asio, same JSON fields.
//
//   asio_micro callbacks N       a handler that posts itself, N times. A pending
//                                steady_timer (cancelled at the end) brings up asio's
//                                reactor, so every pass through the handler queue also
//                                polls epoll, as aio-bench's loop polls its wakeup fd;
//                                without it asio would never enter the kernel.
//   asio_micro timers N MAX_MS   N steady_timer with aio-bench's delays (ns), all
//                                started up front, run until the last fires
#include <asio.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

namespace {

double wall_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct Chain {
  asio::io_context& io;
  asio::steady_timer& keepalive;
  long& left;
  void operator()() const {
    if (--left)
      asio::post(io, *this);
    else
      keepalive.cancel();
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || (std::strcmp(argv[1], "callbacks") != 0 && std::strcmp(argv[1], "timers") != 0)) {
    std::fprintf(stderr, "usage: asio_micro callbacks N | asio_micro timers N MAX_MS\n");
    return 1;
  }
  long n = std::atol(argv[2]);
  long max_ms = argc > 3 ? std::atol(argv[3]) : 1000;
  if (n <= 0 || max_ms < 0) {
    std::fprintf(stderr, "asio_micro: N must be positive and MAX_MS not negative\n");
    return 1;
  }
  asio::io_context io(1);  // one thread: no locking
  long left = n;
  if (std::strcmp(argv[1], "callbacks") == 0) {
    asio::steady_timer keepalive(io, std::chrono::hours(1));
    keepalive.async_wait([](const asio::error_code&) {});
    double c0 = cpu_s(), t0 = wall_s();
    asio::post(io, Chain{io, keepalive, left});
    io.run();
    double wall = wall_s() - t0, cpu = cpu_s() - c0;
    std::printf(
        "{\"impl\":\"asio\",\"bench\":\"callbacks\",\"n\":%ld,\"wall_s\":%.6f,\"ns_per_op\":%.1f,"
        "\"cpu_ns_per_op\":%.1f}\n",
        n, wall, wall / static_cast<double>(n) * 1e9, cpu / static_cast<double>(n) * 1e9);
    return 0;
  }
  std::vector<std::chrono::nanoseconds> delays(n);
  std::uint64_t x = 12345;
  double max_delay = 0;
  for (auto& d : delays) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double s = static_cast<double>(x % 1'000'001) / 1'000'000.0 * static_cast<double>(max_ms) / 1000.0;
    max_delay = std::max(max_delay, s);
    d = std::chrono::nanoseconds(std::llround(s * 1e9));
  }
  std::vector<std::unique_ptr<asio::steady_timer>> timers;
  timers.reserve(n);
  for (long i = 0; i < n; i++) timers.push_back(std::make_unique<asio::steady_timer>(io));
  double c0 = cpu_s(), t0 = wall_s();
  for (long i = 0; i < n; i++) {
    timers[i]->expires_after(delays[i]);
    timers[i]->async_wait([&left](const asio::error_code&) { --left; });
  }
  double t1 = wall_s();
  io.run();
  double t2 = wall_s(), cpu = cpu_s() - c0;
  const double dn = static_cast<double>(n);
  std::printf(
      "{\"impl\":\"asio\",\"bench\":\"timers\",\"n\":%ld,\"max_delay_ms\":%ld,\"sched_ns_per_op\":%.1f,"
      "\"wall_s\":%.6f,\"ns_per_op\":%.1f,\"cpu_ns_per_op\":%.1f,\"late_ms\":%.1f}\n",
      n, max_ms, (t1 - t0) / dn * 1e9, t2 - t0, (t2 - t0) / dn * 1e9, cpu / dn * 1e9,
      (t2 - t0) * 1e3 - max_delay * 1e3);
  return left == 0 ? 0 : 1;
}
