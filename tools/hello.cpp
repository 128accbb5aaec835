// The README's example: timers, a sleeping task and a thread-pool call.
#include <core/aio.hpp>

#include <cstdio>

aio::Task<int> main_task() {
  auto& loop = aio::get_running_loop();
  std::printf("backend: %s\n", loop.backend().data());
  loop.call_later(0.05, [] { std::puts("later"); });
  co_await aio::sleep(0.1);
  int v = co_await loop.run_in_executor(nullptr, [] { return 42; });
  std::printf("from the executor: %d\n", v);
  co_return v;
}

int main() { return aio::run(main_task()) == 42 ? 0 : 1; }
