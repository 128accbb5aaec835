// aio-bench: load generators written on aiocpp itself.
//
//   aio-bench callbacks N          N call_soon callbacks, each scheduling the
//                                  next (one per loop iteration; the loop's
//                                  wakeup fd is registered, so every iteration
//                                  polls the selector, as asyncio's self-pipe)
//   aio-bench timers N MAX_MS      N call_later timers with uniform random
//                                  delays in [0, MAX_MS] ms, all scheduled up
//                                  front, then run until the last has fired
//
// One JSON line per run, as tools/bench/micro reads it (impl "aiocpp").
#include <core/aio.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <exception>
#include <iostream>
#include <vector>

namespace {

double wall_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Process CPU time (clock() measures it on POSIX systems).
double cpu_s() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

double round1(double v) { return std::round(v * 10) / 10; }

nlohmann::json bench_callbacks(aio::EventLoop& loop, long n) {
  long left = n;
  struct Chain {
    aio::EventLoop& loop;
    long& left;
    void operator()() const {
      if (--left)
        loop.call_soon(*this);
      else
        loop.stop();
    }
  };
  double c0 = cpu_s(), t0 = wall_s();
  loop.call_soon(Chain{loop, left});
  loop.run_forever();
  double wall = wall_s() - t0, cpu = cpu_s() - c0;
  return {{"impl", "aiocpp"},
          {"backend", std::string(loop.backend())},
          {"bench", "callbacks"},
          {"n", n},
          {"wall_s", wall},
          {"ns_per_op", round1(wall / n * 1e9)},
          {"cpu_ns_per_op", round1(cpu / n * 1e9)}};
}

nlohmann::json bench_timers(aio::EventLoop& loop, long n, long max_ms) {
  std::vector<double> delays(n);
  std::uint64_t x = 12345;
  double max_delay = 0;
  for (double& d : delays) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    d = static_cast<double>(x % 1'000'001) / 1'000'000.0 * static_cast<double>(max_ms) / 1000.0;
    max_delay = std::max(max_delay, d);
  }
  long left = n;
  double c0 = cpu_s(), t0 = wall_s();
  for (double d : delays)
    loop.call_later(d, [&left, &loop] {
      if (--left == 0) loop.stop();
    });
  double t1 = wall_s();
  loop.run_forever();
  double t2 = wall_s(), cpu = cpu_s() - c0;
  return {{"impl", "aiocpp"},
          {"backend", std::string(loop.backend())},
          {"bench", "timers"},
          {"n", n},
          {"max_delay_ms", max_ms},
          {"sched_ns_per_op", round1((t1 - t0) / n * 1e9)},
          {"wall_s", t2 - t0},
          {"ns_per_op", round1((t2 - t0) / n * 1e9)},
          {"cpu_ns_per_op", round1(cpu / n * 1e9)},
          {"late_ms", round1((t2 - t0) * 1e3 - max_delay * 1e3)}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"aio-bench: aiocpp load generators (the micro-benchmarks tools/bench/micro runs)"};
  app.require_subcommand(1);
  std::string backend;
  app.add_option("--backend", backend, "Event loop backend (default: AIO_BACKEND, else the platform default)");

  long n = 0, max_ms = 1000;
  auto* callbacks = app.add_subcommand("callbacks", "N call_soon callbacks, each scheduling the next");
  callbacks->add_option("n", n, "Number of callbacks")->required()->check(CLI::PositiveNumber);
  auto* timers = app.add_subcommand("timers", "N call_later timers with random delays, scheduled up front");
  timers->add_option("n", n, "Number of timers")->required()->check(CLI::PositiveNumber);
  timers->add_option("max_ms", max_ms, "Largest delay in ms")->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);

  try {
    auto loop = aio::new_event_loop({.backend = backend});
    nlohmann::json result = *callbacks ? bench_callbacks(*loop, n) : bench_timers(*loop, n, max_ms);
    loop->close();
    std::cout << result.dump() << '\n';
  } catch (const std::exception& e) {
    std::cerr << "aio-bench: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
